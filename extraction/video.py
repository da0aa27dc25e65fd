"""One video (or photo) through alignment and the network, in batches.

Frames are decoded in a thread (`frames.FrameReader`), aligned in order by
the `tracking.FaceTracker`, and sent to the network `batch_size` at a time;
each batch's reconstructed landmarks then steer the alignment of the frames
after it. Only the small per-frame results are kept: memory does not grow
with the length of the video beyond them (about 2 KB a frame).
"""
import dataclasses
import time

import numpy as np

from extraction.frames import FrameReader
from extraction.tracking import FaceTracker
from image_io import InputError
from preprocess_img import map_to_original


@dataclasses.dataclass
class FrameResults:
    """What a video's frames gave, before post-processing.

    Attributes (N frames processed, in order):
      frame_index: [N] int64, the decoded frame numbers (0-based).
      valid: [N] bool, a face was found and reconstructed.
      coeff: [N, L] float32 (rows of invalid frames are zero).
      lm68: [N, 68, 2] float64 reconstructed landmarks, frame pixels.
      lm5: [N, 5, 2] float64 points that aligned each frame, frame pixels.
      transform_params: [N, 5] float64 [w0, h0, 102/s, t0, t1].
      fps: frames per second of the video (0.0 for a photo).
      detector_calls: how many times the landmark detector ran.
      seconds: {stage: seconds} for decode+align, network, total.
    """
    frame_index: np.ndarray
    valid: np.ndarray
    coeff: np.ndarray
    lm68: np.ndarray
    lm5: np.ndarray
    transform_params: np.ndarray
    fps: float
    detector_calls: int
    seconds: dict


def reconstruct_video(path, reconstructor, lm3d, detect, batch_size=8, every=1,
                      always_detect=False, redetect_every=30, on_frames=None,
                      on_batch=None):
    """Aligns and reconstructs every frame of a video or photo.

    Args:
      path: the video or photo.
      reconstructor: a `reconstructor.Reconstructor` (rendering or not).
      lm3d: [5,3] standard landmarks of the mean face.
      detect: callable(frame) -> [5,2] points, raising `InputError` when no
        face is found.
      batch_size: frames per network run.
      every: keep every `every`-th frame.
      always_detect: detect on every frame instead of tracking.
      redetect_every: detect at least every this many processed frames.
      on_frames: optional callable(n) told of every n frames finished.
      on_batch: optional callable(alignments, results, fps) with each
        batch's `Alignment`s, the reconstructor's output for them and the
        video's frame rate (previews).

    Returns:
      A `FrameResults`.

    Raises:
      InputError: the file cannot be read or decoded, has no frames, or no
        face in any frame. The message names the file.
    """
    tracker = FaceTracker(detect, lm3d, redetect_every=redetect_every,
                          always_detect=always_detect)
    rows = {"frame_index": [], "valid": [], "coeff": [], "lm68": [], "lm5": [],
            "transform_params": []}
    seconds = {"decode+align": 0.0, "network": 0.0}
    start = time.perf_counter()
    pending = []                 # (number, frame_index, Alignment or None)
    reader = FrameReader(path, every=every)

    def flush():
        faces = [(number, aligned) for number, _, aligned in pending if aligned is not None]
        results = None
        if faces:
            clock = time.perf_counter()
            results = reconstructor(np.stack([aligned.crop_bgr for _, aligned in faces]))
            seconds["network"] += time.perf_counter() - clock
            if on_batch is not None:
                on_batch([aligned for _, aligned in faces], results, reader.fps)
        row = 0
        for number, frame_index, aligned in pending:
            rows["frame_index"].append(frame_index)
            rows["valid"].append(aligned is not None)
            if aligned is None:
                rows["coeff"].append(None)
                rows["lm68"].append(None)
                rows["lm5"].append(None)
                rows["transform_params"].append(None)
                continue
            lm68 = map_to_original(results["lm_68p"][row], aligned.trans_params)
            tracker.update(number, aligned, lm68)
            rows["coeff"].append(results["coeff"][row])
            rows["lm68"].append(lm68)
            rows["lm5"].append(aligned.lm5)
            rows["transform_params"].append(aligned.trans_params)
            row += 1
        if on_frames is not None:
            on_frames(len(pending))
        pending.clear()

    with reader:
        clock = time.perf_counter()
        for number, (frame_index, frame) in enumerate(reader):
            pending.append((number, frame_index, tracker.align(frame, number)))
            if len(pending) >= tracker.batch_limit(batch_size):
                seconds["decode+align"] += time.perf_counter() - clock
                flush()
                clock = time.perf_counter()
        seconds["decode+align"] += time.perf_counter() - clock
        if pending:
            flush()
        fps = reader.fps
    seconds["total"] = time.perf_counter() - start
    n_frames = len(rows["frame_index"])
    if n_frames == 0:
        raise InputError(f"{path}: no frames could be decoded")
    if not any(rows["valid"]):
        raise InputError(f"{path}: no face found in any of its {n_frames} frames")
    return FrameResults(
        frame_index=np.asarray(rows["frame_index"], np.int64),
        valid=np.asarray(rows["valid"], bool),
        coeff=_stack(rows["coeff"], np.float32),
        lm68=_stack(rows["lm68"], np.float64),
        lm5=_stack(rows["lm5"], np.float64),
        transform_params=_stack(rows["transform_params"], np.float64),
        fps=float(fps), detector_calls=tracker.detector_calls, seconds=seconds)


def _stack(values, dtype):
    """Stacks per-frame arrays, with zeros where a frame has none."""
    shape = next(np.shape(v) for v in values if v is not None)
    return np.stack([np.zeros(shape, dtype) if v is None else np.asarray(v, dtype)
                     for v in values])
