"""Five alignment points for every frame, with the landmark detector on few of them.

A video starts with MTCNN on its first frame. The next frames are aligned
with points predicted from the reconstruction of earlier frames: the 68
reconstructed landmarks are mapped back to the frame
(`preprocess_img.map_to_original`) and give the 5 points (eye centres, nose
tip, mouth corners), extrapolated to the new frame by their recent velocity.
The network runs on batches, so a frame is aligned before the frames just
before it have been reconstructed: the prediction bridges that gap.

The detector runs again
- every `redetect_every` frames;
- when the track is judged lost, by either of two checks:
  - appearance: the aligned crop no longer looks like the previous one (the
    normalised cross-correlation of their grey 56x56 face regions falls below
    `min_similarity`; a covered face, a cut or a face that moved away);
  - geometry: the 5 points reconstructed on a frame are further than
    `max_drift` eye distances from the points that aligned it.
A frame on which the detector finds no face has no alignment (`None`); the
detector is tried again on each following frame until a face is found.
"""
import numpy as np

from image_io import InputError
from preprocess_img import Preprocess

# The release's 5 points from its 68 (as load_data.load_lm3d): eye corners
# 36/39 and 42/45 averaged, nose tip 30, mouth corners 48 and 54.
_EYE_A, _EYE_B, _NOSE, _MOUTH_A, _MOUTH_B = (36, 39), (42, 45), 30, 48, 54
_THUMB_REGION = slice(28, 196)     # the face's part of the 224x224 crop
_THUMB_FACTOR = 3                  # 168 / 3 = 56 pixels a side
_HISTORY = 8                       # reconstructed frames the velocity is fitted on


def lm5_from_lm68(lm68):
    """The release's 5 points from 68 landmarks.

    Args:
      lm68: [..., 68, 2] landmarks.

    Returns:
      [..., 5, 2]: eye A (mean of 36, 39), eye B (mean of 42, 45), nose tip
      (30), mouth corners (48, 54), in the landmark file's order.
    """
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[..., _EYE_A, :].mean(axis=-2), lm68[..., _EYE_B, :].mean(axis=-2),
                     lm68[..., _NOSE, :], lm68[..., _MOUTH_A, :], lm68[..., _MOUTH_B, :]],
                    axis=-2)


def eye_distance(lm5):
    """Distance between the two eye points of [5, 2] points (pixels)."""
    lm5 = np.asarray(lm5, dtype=np.float64)
    return float(np.linalg.norm(lm5[1] - lm5[0]))


def face_thumbnail(crop_bgr):
    """A zero-mean, unit-norm grey 56x56 vector of the face region of a crop.

    Args:
      crop_bgr: [224, 224, 3] aligned crop, BGR 0-255.

    Returns:
      [3136] float64, or zeros when the region is flat (nothing to compare).
    """
    region = np.asarray(crop_bgr, dtype=np.float64)[_THUMB_REGION, _THUMB_REGION]
    grey = region @ np.array([0.114, 0.587, 0.299])
    size = grey.shape[0] // _THUMB_FACTOR
    small = grey.reshape(size, _THUMB_FACTOR, size, _THUMB_FACTOR).mean(axis=(1, 3)).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 1e-6 * small.size else np.zeros_like(small)


class Alignment:
    """One frame's alignment.

    Attributes:
      crop_bgr: [224, 224, 3] float32 network input, BGR 0-255.
      lm5: [5, 2] the points used, frame pixels.
      lm5_crop: [5, 2] the same points in crop pixels.
      trans_params: [5] the release's [w0, h0, 102/s, t0, t1].
      detected: True when the points came from the detector.
    """

    __slots__ = ("crop_bgr", "lm5", "lm5_crop", "trans_params", "detected")

    def __init__(self, frame, points, lm3d, detected):
        from PIL import Image

        crop, lm5_crop, params = Preprocess(Image.fromarray(frame), points, lm3d)
        self.crop_bgr = np.asarray(crop, np.float32)[0]
        self.lm5 = np.asarray(points, np.float64)
        self.lm5_crop = np.asarray(lm5_crop, np.float64)
        self.trans_params = np.asarray(params, np.float64)
        self.detected = detected


class FaceTracker:
    """Chooses the 5 alignment points of each frame of one video, in order.

    Call `align` on every frame in order; after the network has run on a
    frame, call `update` with its reconstructed 68 landmarks (frame pixels).

    Args:
      detect: callable(frame [H,W,3] uint8 RGB) -> [5,2] points, raising
        `InputError` when it finds no face (a `LandmarkDetector`).
      lm3d: [5,3] standard landmarks of the mean face (`load_data.load_lm3d`).
      redetect_every: run the detector at least every this many frames
        (counted in frames processed, i.e. after `--every`).
      always_detect: run the detector on every frame (`--landmarks detect`).
      min_similarity: appearance check threshold, in [-1, 1].
      max_drift: geometry check threshold, in eye distances.

    Attributes:
      detector_calls: how many times `detect` was called.
    """

    def __init__(self, detect, lm3d, redetect_every=30, always_detect=False,
                 min_similarity=0.5, max_drift=0.25):
        self.detect = detect
        self.lm3d = lm3d
        self.redetect_every = max(1, int(redetect_every))
        self.always_detect = always_detect
        self.min_similarity = min_similarity
        self.max_drift = max_drift
        self.detector_calls = 0
        self._lost = True
        self._history = []            # (frame number, [5,2] points) reconstructed, this track
        self._anchor = None           # (frame number, [5,2] points) of the last detection
        self._since_detection = 0
        self._reference = None        # thumbnail of the last aligned crop

    def batch_limit(self, batch_size):
        """How many frames may wait for the network before the next frame is aligned.

        Right after a track starts there is no motion to extrapolate, so the
        first frames go to the network in batches of 1, 2, 4, ... up to
        `batch_size`: each batch's reconstruction then aligns the next ones.
        """
        return min(batch_size, 2 ** len(self._history))

    def predicted_points(self, number):
        """The points predicted for frame `number`.

        The latest known points (a detection, or the latest reconstruction,
        whichever is newer), moved by the velocity of a least-squares line
        through the recent reconstructed points.
        """
        base_frame, base = self._anchor
        if self._history and self._history[-1][0] > base_frame:
            base_frame, base = self._history[-1]
        if len(self._history) < 2:
            return base
        frames = np.array([f for f, _ in self._history], np.float64)
        points = np.stack([p for _, p in self._history])
        centred = frames - frames.mean()
        velocity = np.tensordot(centred, points - points.mean(axis=0), axes=1) / (
            centred @ centred)
        return base + velocity * (number - base_frame)

    def align(self, frame, number):
        """Aligns frame `number` (frames must come in increasing order).

        Args:
          frame: [H, W, 3] uint8 RGB.
          number: the frame's position in the sequence processed.

        Returns:
          An `Alignment`, or None when the detector found no face.
        """
        detect = (self.always_detect or self._lost or self._anchor is None
                  or self._since_detection >= self.redetect_every)
        if not detect:
            try:
                aligned = Alignment(frame, self.predicted_points(number), self.lm3d, False)
            except ValueError:        # Degenerate points: the track is lost.
                aligned = None
            if aligned is not None:
                thumbnail = face_thumbnail(aligned.crop_bgr)
                if self._reference is None or thumbnail @ self._reference >= self.min_similarity:
                    self._reference = thumbnail
                    self._since_detection += 1
                    return aligned
        self.detector_calls += 1
        try:
            points = self.detect(frame)
            aligned = Alignment(frame, points, self.lm3d, True)
        except (InputError, ValueError):
            self._lost = True
            self._reference = None
            return None
        if self._lost:
            self._history = []        # A new track: the old motion says nothing.
        self._lost = False
        self._anchor = (number, aligned.lm5)
        self._since_detection = 1
        self._reference = face_thumbnail(aligned.crop_bgr)
        return aligned

    def update(self, number, aligned, lm68):
        """Takes the reconstruction of frame `number`.

        Args:
          number: the frame's position in the sequence.
          aligned: the `Alignment` the frame was reconstructed with.
          lm68: [68, 2] its reconstructed landmarks, frame pixels.
        """
        if self._anchor is None or self._lost:
            return
        points = lm5_from_lm68(lm68)
        drift = np.linalg.norm(points - aligned.lm5, axis=1).max()
        if drift > self.max_drift * max(eye_distance(aligned.lm5), 1.0):
            self._lost = True
            return
        self._history = (self._history + [(number, points)])[-_HISTORY:]
