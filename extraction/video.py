"""One video (or photo) through alignment and the network, in batches.

Frames are decoded in a thread (`fileio.video.FrameReader`); the
`tracking.FaceTracker` finds each frame's landmarks on the frame itself, in
order, and a batch's crops are then made together on a pool of threads.
Since no frame's alignment waits for the network, all of this runs in a
thread of its own, one batch ahead of the network: while the network
reconstructs batch k, batch k + 1 is decoded, tracked and cropped (the
network and Pillow's resampling release the GIL). Only the small per-frame
results are kept: memory does not grow with the length of the video beyond
them (kept as one array per batch; bench/extract.py measures the peak by
video length).
"""
import concurrent.futures
import dataclasses
import os
import time

import numpy as np

from extraction.tracking import FaceTracker
from fileio.background import Background
from fileio.errors import InputError
from fileio.video import FrameReader
from preparation.frame import Alignment
from preprocess_img import map_to_original


@dataclasses.dataclass
class FrameResults:
    """What a video's frames gave, before post-processing.

    Attributes (N frames processed, in order):
      frame_index: [N] int64, the decoded frame numbers (0-based).
      time: [N] float64, each frame's presentation time, seconds.
      valid: [N] bool, a face was found and reconstructed.
      coeff: [N, L] float32 (rows of invalid frames are zero).
      lm68: [N, 68, 2] float32 reconstructed landmarks, frame pixels.
      lm68_detected: [N, 68, 2] float32 the landmark predictor's points,
        frame pixels.
      lm5: [N, 5, 2] float64 points that aligned each frame, frame pixels.
      transform_params: [N, 5] float64 [w0, h0, 102/s, t0, t1].
      fps: frames per second of the video (0.0 for a photo).
      rotation: the display rotation applied to the frames, degrees
        counterclockwise (0, 90, 180, -90).
      damage: None, or one line saying where the video broke off.
      detector_calls: how many times the face detector ran.
      seconds: {stage: seconds} for network, total.
    """
    frame_index: np.ndarray
    time: np.ndarray
    valid: np.ndarray
    coeff: np.ndarray
    lm68: np.ndarray
    lm68_detected: np.ndarray
    lm5: np.ndarray
    transform_params: np.ndarray
    fps: float
    rotation: int
    damage: object
    detector_calls: int
    seconds: dict


def aligned_batches(reader, tracker, lm3d, batch_size, pool, keep_frames=False):
    """Decodes, tracks and crops a video's frames, `batch_size` at a time.

    Args:
      reader: a `FrameReader`.
      tracker: a `FaceTracker`.
      lm3d: [5,3] standard landmarks of the mean face.
      batch_size: frames per batch.
      pool: a `concurrent.futures.Executor` for the crops.
      keep_frames: each `Alignment` keeps its frame (a batch's frames are
        held until the batch is done).

    Yields:
      Lists of (frame_index, time, `FacePoints` or None, `Alignment` or
      None), in frame order; None where the detector found no face.
    """
    def crop(item):
        index, seconds, points, frame = item
        aligned = None
        if points is not None:
            try:
                aligned = Alignment(frame, points.lm5, lm3d, keep_frame=keep_frames)
            except ValueError:        # Degenerate points: no face on this frame.
                points = None
        return index, seconds, points, aligned

    batch = []
    for index, seconds, frame in reader:
        batch.append((index, seconds, tracker.track(frame), frame))
        if len(batch) == batch_size:
            yield list(pool.map(crop, batch))
            batch = []
    if batch:
        yield list(pool.map(crop, batch))


def reconstruct_video(path, reconstructor, lm3d, detect, predict, batch_size=8, every=1,
                      always_detect=False, redetect_every=30, on_frames=None,
                      on_batch=None, keep_frames=False):
    """Aligns and reconstructs every frame of a video or photo.

    Args:
      path: the video or photo.
      reconstructor: a `networks.reconstructor.Reconstructor` (rendering or not).
      lm3d: [5,3] standard landmarks of the mean face.
      detect: callable(frame) -> [5,2] points, raising `InputError` when no
        face is found.
      predict: callable(frame, points, refine) -> ([68,2], box)
        (`Landmark68Predictor.from_points`).
      batch_size: frames per network run.
      every: keep every `every`-th frame.
      always_detect: detect on every frame instead of tracking.
      redetect_every: check the track with the detector at least every this
        many processed frames.
      on_frames: optional callable(n) told of every n frames finished.
      on_batch: optional callable(alignments, results, fps) with each
        batch's `Alignment`s, the reconstructor's output for them and the
        video's frame rate (previews, textures).
      keep_frames: the `Alignment`s given to `on_batch` keep their frames.

    Returns:
      A `FrameResults`.

    Raises:
      InputError: the file cannot be read, its first frame cannot be
        decoded, it has no frames, or no face in any frame. The message
        names the file.
    """
    tracker = FaceTracker(detect, predict, redetect_every=redetect_every,
                          always_detect=always_detect)
    chunks = {key: [] for key in ("frame_index", "time", "valid", "coeff", "lm68",
                                  "lm68_detected", "lm5", "transform_params")}
    network_seconds = 0.0
    start = time.perf_counter()
    reader = FrameReader(path, every=every)
    pool = concurrent.futures.ThreadPoolExecutor(max(1, min(batch_size, os.cpu_count() or 1)))
    with reader, pool, Background(aligned_batches(reader, tracker, lm3d, batch_size, pool,
                                                  keep_frames)) as ahead:
        for batch in ahead:
            faces = [aligned for _, _, _, aligned in batch if aligned is not None]
            results = None
            if faces:
                clock = time.perf_counter()
                results = reconstructor(np.stack([aligned.crop_bgr for aligned in faces]))
                network_seconds += time.perf_counter() - clock
                if on_batch is not None:
                    on_batch(faces, results, reader.fps)
            _collect(chunks, batch, results)
            if on_frames is not None:
                on_frames(len(batch))
        fps, rotation, damage = reader.fps, reader.rotation, reader.damage
    if not chunks["frame_index"]:
        raise InputError(f"{path}: no frames could be decoded")
    valid = np.concatenate(chunks["valid"])
    if not valid.any():
        raise InputError(f"{path}: no face found in any of its {valid.size} frames")
    length = next(c.shape[1] for c in chunks["coeff"] if c is not None)
    chunks["coeff"] = [np.zeros((len(v), length), np.float32) if c is None else c
                       for c, v in zip(chunks["coeff"], chunks["valid"])]
    arrays = {key: np.concatenate(value) for key, value in chunks.items()}
    seconds = {"network": network_seconds, "total": time.perf_counter() - start}
    return FrameResults(fps=float(fps), rotation=rotation, damage=damage,
                        detector_calls=tracker.detector_calls, seconds=seconds, **arrays)


def _collect(chunks, batch, results):
    """Appends one batch's per-frame arrays to `chunks` (one array per batch and key)."""
    n = len(batch)
    arrays = {"frame_index": np.array([item[0] for item in batch], np.int64),
              "time": np.array([item[1] for item in batch], np.float64),
              "valid": np.array([item[3] is not None for item in batch], bool),
              # Without a face in the batch, the length is not known yet.
              "coeff": None if results is None else
              np.zeros((n, results["coeff"].shape[1]), np.float32),
              "lm68": np.zeros((n, 68, 2), np.float32),
              "lm68_detected": np.zeros((n, 68, 2), np.float32),
              "lm5": np.zeros((n, 5, 2), np.float64),
              "transform_params": np.zeros((n, 5), np.float64)}
    row = 0
    for i, (_, _, points, aligned) in enumerate(batch):
        if aligned is None:
            continue
        arrays["coeff"][i] = results["coeff"][row]
        arrays["lm68"][i] = map_to_original(results["lm_68p"][row], aligned.trans_params)
        arrays["lm68_detected"][i] = points.lm68
        arrays["lm5"][i] = aligned.lm5
        arrays["transform_params"][i] = aligned.trans_params
        row += 1
    for key, value in arrays.items():
        chunks[key].append(value)
