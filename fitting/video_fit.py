"""`extract.py --refine N`: one identity and albedo per video, then every frame, in order.

After the network has reconstructed every frame (`extraction.video`), the
video is fitted in two more passes over its frames, each decoded again and
cropped with the alignment the first pass chose (`lm5`), so that memory
stays that of a batch whatever the video's length:

1. Identity: up to `sample_size` valid frames spread evenly over the video
   are fitted together for N steps, their identity and albedo shared (one
   value for the video, its prior counted once: `objective.prior_view`),
   their expression, pose and light their own, without the temporal term
   (the frames are far apart; linking them pulled their expressions and
   poses together and the identity with them).
2. Frames: batch after batch, in order, each frame's expression, angles,
   lighting and translation are fitted for N steps, the identity and albedo
   held at the video's, with the temporal term (`objective.temporal_loss`)
   on expression and pose linking each frame to the one before (the first
   frame of a batch to the last of the batch before), so that a still head
   gives still coefficients, with Adam steps of 0.01 for every block
   (`FRAME_LEARNING_RATE`: the identity fit's larger ones are for starts
   far away). A batch starts warm: each frame from the last
   fitted frame, moved by the network's own change since that frame (the
   first batch from the network's coefficients).

The landmark targets are the predictor's 68 points of each frame
(`lm68_detected`), mapped into its crop; the skin masks are the release's
classifier on each crop. Frames without a face keep their values (they are
filled from their neighbours as usual afterwards).
"""
import dataclasses

import numpy as np

from facemodel.coefficients import BLOCKS, widen
from fileio.video import FrameReader
from fitting import FitFailed
from fitting.objective import FitBatch, landmark_target
from fitting.optimize import Stage, plan
from losses.terms import LOSS_WEIGHTS
from preparation.frame import Alignment
from preparation.photo import skin_mask
from preprocess_img import map_to_crop

FRAME_BLOCKS = ("expression", "angles", "lighting", "translation")
RELEASE_TERMS = tuple(LOSS_WEIGHTS)
# Frames start warm (the frame before, moved as the network moved): small steps.
FRAME_LEARNING_RATE = 0.01
IDENTITY_BLOCKS = ("identity", "albedo")


def sample_frames(valid, count):
    """Up to `count` valid frames spread evenly over the video (their positions)."""
    chosen = np.flatnonzero(valid)
    if len(chosen) <= count:
        return chosen
    return chosen[np.round(np.linspace(0, len(chosen) - 1, count)).astype(int)]


def _fit_batch(frames, positions, results, lm3d):
    """The `FitBatch` of some frames (decoded RGB) at positions of `results`."""
    crops, targets, masks = [], [], []
    for frame, position in zip(frames, positions):
        aligned = Alignment(frame, results.lm5[position], lm3d)
        lm68 = map_to_crop(results.lm68_detected[position], aligned.trans_params)
        crops.append(aligned.crop_bgr)
        targets.append(landmark_target(lm68=lm68))
        masks.append(skin_mask(aligned.crop_bgr))
    return FitBatch.stack(crops, targets, masks)


def _frames_at(path, every, positions):
    """Decodes the video again and yields (position, rgb) for the wanted positions, in order."""
    wanted = set(int(p) for p in positions)
    with FrameReader(path, every=every) as reader:
        for position, (_, _, frame) in enumerate(reader):
            if position in wanted:
                yield position, frame


def fit_sample(path, results, fitter, lm3d, steps, every=1, sample_size=16,
               shared=IDENTITY_BLOCKS):
    """Pass 1: fits the sampled frames together, their identity and albedo shared.

    Args:
      path, results, fitter, lm3d, steps, every, sample_size: as `refine_video`.
      shared: the blocks the frames share (() fits each frame alone: what one
        frame says of the identity, for comparison).

    Returns:
      (positions [S] of the sampled frames, the `fitting.optimize.FitResult`).
    """
    sample = sample_frames(results.valid, sample_size)
    frames = dict(_frames_at(path, every, sample))
    batch = _fit_batch([frames[p] for p in sample], sample, results, lm3d)
    del frames
    start = widen(results.coeff)[sample]
    # The sampled frames are far apart in time: no temporal term between them.
    stages = [dataclasses.replace(stage, terms=stage.terms or RELEASE_TERMS)
              for stage in plan(steps)]
    return sample, fitter.fit(start, batch, stages, shared=shared, per_photo_terms=False)


def refine_video(path, results, fitter, lm3d, steps, batch_size=8, every=1, sample_size=16,
                 progress=None):
    """Fits a video's coefficients (see the module docstring).

    Args:
      path: the video.
      results: its `extraction.video.FrameResults` (the network's pass).
      fitter: a `fitting.optimize.Fitter` with a temporal weight.
      lm3d: [5,3] the mean face's 5 points (alignment).
      steps: Adam steps per batch (and for the identity).
      batch_size: frames per fitted batch.
      every: the `--every` the first pass used.
      sample_size: frames of the identity fit, at most.
      progress: optional callable(frames just fitted, frames to fit in all,
        their batch's final total loss).

    Returns:
      (coeff [N, 257] float32 fitted (invalid frames: the network's),
      identity (id [80], tex [80]), fit_loss [N] float32: each frame's
      batch's final total loss, NaN for invalid frames).

    Raises:
      FitFailed: a fit gave non-finite values.
      InputError: the video can no longer be decoded.
    """
    network = widen(results.coeff)
    valid = results.valid
    sample, fitted = fit_sample(path, results, fitter, lm3d, steps, every, sample_size)
    if not fitted.finite.all():
        raise FitFailed(f"the identity fit over {len(sample)} frames gave non-finite values")
    identity = fitted.coeff[0, BLOCKS["identity"]], fitted.coeff[0, BLOCKS["albedo"]]

    coeff = network.copy()
    loss = np.full(len(valid), np.nan, np.float32)
    last = None                        # position of the last fitted frame
    pending = []
    todo = np.flatnonzero(valid)

    def flush():
        nonlocal last
        positions = np.array([p for p, _ in pending])
        start = network[positions].copy()
        if last is not None:           # warm: the last fitted frame, moved as the network moved
            start = coeff[last] + (network[positions] - network[last])
        start[:, BLOCKS["identity"]] = identity[0]
        start[:, BLOCKS["albedo"]] = identity[1]
        fit_batch = _fit_batch([f for _, f in pending], positions, results, lm3d)
        previous = None if last is None else coeff[last][None]
        result = fitter.fit(start, fit_batch, [Stage(steps, FRAME_BLOCKS,
                                                     learning_rate=FRAME_LEARNING_RATE)],
                            previous=previous,
                            per_photo_terms=False)
        if not result.finite.all():
            raise FitFailed(f"the fit of frames {positions[0]}-{positions[-1]} gave "
                            "non-finite values")
        coeff[positions] = result.coeff
        finite = result.history[np.isfinite(result.history)]
        loss[positions] = finite[-1] if finite.size else np.nan
        last = positions[-1]
        if progress is not None:
            progress(len(positions), len(todo), float(loss[positions[0]]))
        pending.clear()

    for position, frame in _frames_at(path, every, todo):
        pending.append((position, frame))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return coeff, identity, loss
