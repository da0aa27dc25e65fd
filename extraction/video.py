"""One video (or photo) through alignment and the network, in batches.

Frames are decoded in a thread (`frames.FrameReader`), aligned in order by
the `tracking.FaceTracker`, and sent to the network `batch_size` at a time;
each batch's reconstructed landmarks then steer the alignment of the frames
after it. A batch's crops are made together on a pool of threads
(`FaceTracker.prepare`), which leaves the results as they would be one frame
at a time. Only the small per-frame results are kept: memory does not grow
with the length of the video beyond them (kept as one array per batch;
bench/extract.py measures the peak by video length).
"""
import collections
import concurrent.futures
import dataclasses
import itertools
import os
import time

import numpy as np

from extraction.frames import FrameReader, lower_thread_priority
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
      lm68: [N, 68, 2] float32 reconstructed landmarks, frame pixels.
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
    chunks = {"frame_index": [], "valid": [], "coeff": [], "lm68": [], "lm5": [],
              "transform_params": []}   # one array per batch: no per-frame objects
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
        n = len(pending)
        batch = {"frame_index": np.array([f for _, f, _ in pending], np.int64),
                 "valid": np.array([a is not None for _, _, a in pending], bool),
                 # Without a face in the batch, the length is not known yet.
                 "coeff": None if results is None else
                 np.zeros((n, results["coeff"].shape[1]), np.float32),
                 "lm68": np.zeros((n, 68, 2), np.float32),
                 "lm5": np.zeros((n, 5, 2), np.float64),
                 "transform_params": np.zeros((n, 5), np.float64)}
        row = 0
        for i, (number, _, aligned) in enumerate(pending):
            if aligned is None:
                continue
            lm68 = map_to_original(results["lm_68p"][row], aligned.trans_params)
            tracker.update(number, aligned, lm68)
            batch["coeff"][i] = results["coeff"][row]
            batch["lm68"][i] = lm68
            batch["lm5"][i] = aligned.lm5
            batch["transform_params"][i] = aligned.trans_params
            row += 1
        for key, value in batch.items():
            chunks[key].append(value)
        if on_frames is not None:
            on_frames(len(pending))
        pending.clear()

    crop_pool = concurrent.futures.ThreadPoolExecutor(max(1, min(batch_size, os.cpu_count() or 1)))
    detect_pool = concurrent.futures.ThreadPoolExecutor(1, initializer=lower_thread_priority)
    with reader, crop_pool, detect_pool:
        clock = time.perf_counter()
        decoded = enumerate(reader)
        ahead = collections.deque()   # decoded frames, not aligned yet
        prepared = 0                  # how many of them have their crops made
        while True:
            if not prepared:
                # The frames up to the batch's end, their crops made together.
                wanted = max(tracker.batch_limit(batch_size) - len(pending), 1)
                ahead.extend(itertools.islice(decoded, max(wanted - len(ahead), 0)))
                if not ahead:
                    break
                prepared = min(wanted, len(ahead))
                tracker.prepare([(number, frame) for number, (_, frame)
                                 in itertools.islice(ahead, prepared)], crop_pool)
            number, (frame_index, frame) = ahead.popleft()
            prepared -= 1
            pending.append((number, frame_index, tracker.align(frame, number)))
            if len(pending) >= tracker.batch_limit(batch_size):
                # The next batch's frames, and its periodic detection started,
                # while the network runs.
                ahead.extend(itertools.islice(decoded, batch_size - len(ahead)))
                tracker.detect_ahead([(number, frame) for number, (_, frame) in ahead],
                                     detect_pool)
                seconds["decode+align"] += time.perf_counter() - clock
                flush()
                prepared = 0
                clock = time.perf_counter()
        seconds["decode+align"] += time.perf_counter() - clock
        if pending:
            flush()
        fps = reader.fps
    seconds["total"] = time.perf_counter() - start
    if not chunks["frame_index"]:
        raise InputError(f"{path}: no frames could be decoded")
    valid = np.concatenate(chunks["valid"])
    if not valid.any():
        raise InputError(f"{path}: no face found in any of its {valid.size} frames")
    length = next(c.shape[1] for c in chunks["coeff"] if c is not None)
    chunks["coeff"] = [np.zeros((len(v), length), np.float32) if c is None else c
                       for c, v in zip(chunks["coeff"], chunks["valid"])]
    arrays = {key: np.concatenate(value) for key, value in chunks.items()}
    return FrameResults(fps=float(fps), detector_calls=tracker.detector_calls,
                        seconds=seconds, **arrays)
