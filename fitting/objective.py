"""What a fit minimises: the release's training loss, plus a temporal term for videos.

The release's terms come from `losses.hybrid.HybridLoss` (photometric with
the skin mask and the render's face region, 68-landmark, coefficient prior,
reflectance, lighting; identity when a face-recognition network is given),
with the release's weights (`losses.terms.LOSS_WEIGHTS`): no term is
written twice. What fitting adds:

- Landmark targets of two kinds in one batch. A photo with 68 landmarks
  (a `NAME_lm68.txt` file, or dlib's predictor) is compared on those, with
  the release's weights; a photo with only its 5 alignment points is
  compared on 5 points of the reconstruction (the eye-corner means 36/39
  and 42/45, the nose tip 30, the mouth corners 48 and 54, as
  `load_data.load_lm3d` builds the mean face's 5 points:
  `facemodel.keypoints.EYE_CORNER_FIVE`), with weights 1,
  1, 20, 1, 1 (the nose tip as heavy as the release weighs it among the
  68). Each photo's term is normalised as the release's (sum of weighted
  squared distances over its number of points), so both kinds weigh the
  same in the total. Both are carried as 73 points per photo, 68 and 5,
  with zero weights on the kind a photo does not have.
- `temporal_loss`: for a video's frames, the squared change of expression,
  angles and translation from each frame to the next (and from the frame
  before the batch), so that a still head gives still coefficients.
- `prior_view`: in an image set, the prior of a shared block (identity,
  albedo) counts once for the set, each photo's evidence in full (the MAP
  estimate; the release's batch mean would count the prior once per photo).
- A landmark-only path: a stage on `LANDMARK_TERMS` alone decodes the 68
  landmark vertices and renders nothing, so that Newton steps can afford
  the exact Hessian (`fitting.optimize`).
"""
import dataclasses

import numpy as np
import tensorflow as tf

from facemodel.coefficients import BLOCKS
from facemodel.keypoints import EYE_CORNER_FIVE, N_ALIGNMENT, N_LANDMARKS
from losses.terms import LANDMARK_WEIGHTS, landmark_loss, regularization_loss, total_loss

N_POINTS = N_LANDMARKS + N_ALIGNMENT      # 68 landmarks, then 5 alignment points
FIVE_POINT_WEIGHTS = np.array([1.0, 1.0, 20.0, 1.0, 1.0], np.float32)

# The temporal term: per-block weights inside it (angles in radians and
# translation in decimetres change by about a hundredth of what expression
# coefficients do for the same visible motion) and its weight in the total.
TEMPORAL_BLOCK_WEIGHTS = {"expression": 1.0, "angles": 100.0, "translation": 100.0}
TEMPORAL_WEIGHT = 1.0

# The terms that need no render: a stage on these alone decodes the 68
# landmark vertices only (`face_decoder.Face3D.landmarks`).
LANDMARK_TERMS = ("landmark", "regularization")


def prior_view(coeff, shared):
    """Coefficients as the prior should see them: shared blocks counted once.

    The release's prior (`losses.terms.regularization_loss`) is a mean over
    the batch's rows. A shared block is repeated in every row, so its prior
    would count once per photo, as heavy against the photos' (averaged)
    evidence as in a single photo. Scaling its columns by 1/sqrt(B) makes
    its squared norm count once in the batch's sum: the MAP estimate of one
    identity from B photos (docs/fitting.md#image-sets).

    Args:
      coeff: [B, 257] tensor.
      shared: names of the shared blocks.

    Returns:
      [B, 257] tensor.
    """
    if not shared:
        return coeff
    batch = tf.cast(tf.shape(coeff)[0], coeff.dtype)
    scale = np.ones(coeff.shape[-1], np.float32)
    for name in shared:
        scale[BLOCKS[name]] = 0.0
    keep = tf.constant(scale)
    return coeff * keep + coeff * (1.0 - keep) * tf.math.rsqrt(batch)


def landmark_target(lm68=None, lm5=None):
    """One photo's landmark target as 73 points and their weights.

    Args:
      lm68: [68, 2] landmarks in crop pixels (y down), or None.
      lm5: [5, 2] alignment points in crop pixels, used when `lm68` is None.

    Returns:
      (points [73, 2] float32, weights [73] float32): the release's weights on
      the 68 points, or `FIVE_POINT_WEIGHTS` on the last 5, scaled by 73/68
      or 73/5 so that `landmark_loss`'s division by 73 leaves the release's
      normalisation.

    Raises:
      ValueError: neither is given.
    """
    points = np.zeros((N_POINTS, 2), np.float32)
    weights = np.zeros(N_POINTS, np.float32)
    if lm68 is not None:
        points[:N_LANDMARKS] = lm68
        weights[:N_LANDMARKS] = LANDMARK_WEIGHTS * (N_POINTS / float(N_LANDMARKS))
    elif lm5 is not None:
        points[N_LANDMARKS:] = lm5
        weights[N_LANDMARKS:] = FIVE_POINT_WEIGHTS * (N_POINTS / float(N_ALIGNMENT))
    else:
        raise ValueError("a landmark target needs 68 or 5 points")
    return points, weights


def with_five_points(lm68):
    """[B, 68, 2] reconstructed landmarks -> [B, 73, 2]: the 68, then their 5 points.

    The 5 points by the mean face's rule (`facemodel.keypoints.EYE_CORNER_FIVE`).
    """
    five = tf.stack([lm68[:, rows[0]] if len(rows) == 1
                     else tf.reduce_mean(tf.gather(lm68, rows, axis=1), axis=1)
                     for rows in EYE_CORNER_FIVE], axis=1)
    return tf.concat([lm68, five], axis=1)


@dataclasses.dataclass
class FitBatch:
    """The photos of one fit, as the loss reads them.

    Attributes:
      images: [B, 224, 224, 3] float32 aligned crops, BGR 0-255.
      landmarks: [B, 73, 2] float32 targets (`landmark_target`), crop pixels.
      landmark_weights: [B, 73] float32.
      masks: [B, 224, 224] float32 skin masks, 0-255 (`preparation.skin`).
    """
    images: np.ndarray
    landmarks: np.ndarray
    landmark_weights: np.ndarray
    masks: np.ndarray

    @classmethod
    def stack(cls, crops_bgr, targets, masks):
        """Builds a batch from per-photo crops, `landmark_target` pairs and masks."""
        return cls(np.asarray(np.stack(crops_bgr), np.float32),
                   np.stack([points for points, _ in targets]).astype(np.float32),
                   np.stack([weights for _, weights in targets]).astype(np.float32),
                   np.asarray(np.stack(masks), np.float32))

    def __len__(self):
        return len(self.images)

    def slice(self, start, stop):
        return FitBatch(self.images[start:stop], self.landmarks[start:stop],
                        self.landmark_weights[start:stop], self.masks[start:stop])


def temporal_loss(coeff, previous=None):
    """The frame-to-frame change of expression and pose over a run of frames.

    Args:
      coeff: [T, 257] coefficients of consecutive frames, in order.
      previous: optional [1, 257] the frame before them (fixed: no gradient).

    Returns:
      Scalar sum over the T - 1 transitions (T with `previous`) and over the
      blocks of w_b ||c_{t,b} - c_{t-1,b}||^2, divided by the number of
      transitions (0 when there is none); w = `TEMPORAL_BLOCK_WEIGHTS`.
    """
    coeff = tf.convert_to_tensor(coeff, tf.float32)
    if previous is not None:
        coeff = tf.concat([tf.stop_gradient(tf.convert_to_tensor(previous, tf.float32)), coeff],
                          axis=0)
    steps = coeff[1:] - coeff[:-1]
    total = tf.constant(0.0)
    for name, weight in TEMPORAL_BLOCK_WEIGHTS.items():
        part = BLOCKS[name]
        total += weight * tf.reduce_sum(tf.square(steps[:, part]))
    transitions = tf.cast(tf.shape(steps)[0], tf.float32)
    return tf.math.divide_no_nan(total, transitions)


class FitLoss:
    """The loss terms of a batch of coefficients against its photos.

    Args:
      hybrid: a `losses.hybrid.HybridLoss`.
      temporal_weight: weight of `temporal_loss` in the total (0: none).
      weights: the fit's weights of the release's terms, over
        `losses.terms.LOSS_WEIGHTS` (default: the release's).
      shared_prior_once: count a shared block's prior once for the batch
        (`prior_view`, MAP); False counts it once per photo, as the
        release's batch mean does (kept to measure the difference).
    """

    def __init__(self, hybrid, temporal_weight=0.0, weights=None, shared_prior_once=True):
        self.hybrid = hybrid
        self.temporal_weight = float(temporal_weight)
        self.weights = dict(weights or {})
        self.shared_prior_once = bool(shared_prior_once)

    def __call__(self, coeff, batch, previous=None, terms=None, shared=()):
        """The terms and their weighted total.

        Args:
          coeff: [B, 257] tensor.
          batch: a `FitBatch` (arrays or tensors).
          previous: [1, 257] the frame before the batch, for the temporal term.
          terms: names of the release's terms in the total (default all);
            the others are still computed and returned. When they are
            `LANDMARK_TERMS` or fewer, only those are computed, on the 68
            landmark vertices (no render).
          shared: blocks with one value for the batch (`prior_view`): their
            prior and, for a shared albedo, the reflectance term count once.

        Returns:
          (terms, outputs): terms as `HybridLoss` gives them, plus "temporal"
          when it is weighted, and "total" recomputed over the chosen terms
          with the fit's weights; outputs as `HybridLoss` gives them (None
          on the landmark-only path).
        """
        shared = tuple(shared) if self.shared_prior_once else ()
        if terms is not None and set(terms) <= set(LANDMARK_TERMS):
            predicted = with_five_points(self.hybrid.face.landmarks(coeff))
            values = {"landmark": landmark_loss(predicted, batch.landmarks,
                                                batch.landmark_weights),
                      "regularization": regularization_loss(prior_view(coeff, shared))}
            outputs = None
        else:
            values, outputs = self.hybrid(coeff, batch.images, batch.landmarks, batch.masks,
                                          landmark_weights=batch.landmark_weights,
                                          predicted_landmarks=with_five_points)
            del values["total"]
            if shared:
                values["regularization"] = regularization_loss(prior_view(coeff, shared))
                if "albedo" in shared:
                    values["reflectance"] /= tf.cast(tf.shape(coeff)[0], tf.float32)
        chosen = {name: value for name, value in values.items()
                  if terms is None or name in terms}
        total = total_loss(chosen, self.weights)
        if self.temporal_weight:
            values["temporal"] = temporal_loss(coeff, previous)
            if terms is None or "temporal" in terms:
                total += self.temporal_weight * values["temporal"]
        values["total"] = total
        return values, outputs
