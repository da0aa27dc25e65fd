"""How well extract.py aligns frames: error on a moving head, jitter on a still one.

Part 2 of `python bench/extract.py` (run it from there: it parses the
arguments and prints the final JSON line).

The alignment of a frame is decided by `extraction.tracking.FaceTracker`
alone (the network does not steer it), so it is measured here on decoded
frames without any network: the same tracker, MTCNN and dlib predictor as
`python extract.py`, in `--landmarks track` and in `--landmarks detect`
mode, on the same frames.

- Moving head: for each photo with a 5-point file (the shared photos by
  default: hand-marked points, which neither MTCNN nor dlib produced), a
  384x384 video of --align-frames frames (default 60) in which the head
  starts still and speeds up steadily to 8% of its eye distance a frame
  (tests/synthetic_video.py's accelerating_path, also rolling to 8 degrees
  and growing by 5%). The error of a frame is the mean distance of its 5
  aligning points to the photo's own points moved with it, in eye
  distances, on the frames where both modes found the face. Target: the
  track's mean at most 1.3 times the detector's, and never above 0.2.
- Still head: the same photos, still, with fresh noise on every frame
  (Gaussian, 2 grey levels, as a camera's sensor; then the codec), for
  --align-frames frames. Jitter: the mean frame-to-frame movement of the 5
  aligning points, in eye distances (0 for a perfectly still alignment).
"""
import time

import numpy as np

from bench.extract_scaling import log
from tests.synthetic_video import accelerating_path, iter_moving_face_frames, make_video

SIZE = (384, 384)
NOISE = 2.0                # grey levels, standard deviation of the still head's noise


def align_video(path, detector, predictor, always_detect):
    """The aligning points of every frame (NaN where no face), and the detector calls."""
    from extraction.tracking import FaceTracker
    from fileio.video import FrameReader

    tracker = FaceTracker(detector, predictor.from_points, always_detect=always_detect)
    points = []
    with FrameReader(path) as reader:
        for _, _, frame in reader:
            found = tracker.track(frame)
            points.append(np.full((5, 2), np.nan) if found is None else found.lm5)
    return np.array(points), tracker.detector_calls


def still_path(t):
    return 1.0, 0.0, SIZE[0] / 2.0, SIZE[1] / 2.0


def write_video(path, photo, n_frames, path_fn, noise=0.0, seed=0):
    """A 384x384 video of the photo along `path_fn`; returns the true points [N,5,2]."""
    rng = np.random.default_rng(seed)
    truth = []

    def frames():
        for frame, points, _ in iter_moving_face_frames(
                photo, photo.with_suffix(".txt"), n_frames, SIZE, path_fn, markers=False):
            truth.append(points)
            if noise:
                frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255)
            yield frame.astype(np.uint8)

    make_video(path, frames())
    return np.array(truth)


def part_alignment(args, work, photos):
    from landmarks.dlib68 import Landmark68Predictor
    from landmarks.mtcnn import FivePointDetector

    detector, predictor = FivePointDetector(), Landmark68Predictor()
    folder = work / "alignment"
    folder.mkdir(parents=True, exist_ok=True)
    modes = ("track", "detect")
    errors = {mode: [] for mode in modes}
    jitter = {mode: [] for mode in modes}
    missed = {mode: 0 for mode in modes}
    calls = {mode: 0 for mode in modes}
    seconds = {mode: 0.0 for mode in modes}
    per_photo = {}
    n = args.align_frames
    log(f"[alignment] {len(photos)} photos, {n} frames each, moving then still ...")
    for index, photo in enumerate(photos):
        moving = folder / f"{photo.stem}_moving.mp4"
        still = folder / f"{photo.stem}_still.mp4"
        truth = write_video(moving, photo, n, accelerating_path(n, SIZE))
        write_video(still, photo, n, still_path, noise=NOISE, seed=index)
        eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
        found = {}
        for mode in modes:
            start = time.perf_counter()
            found[mode], count = align_video(moving, detector, predictor, mode == "detect")
            seconds[mode] += time.perf_counter() - start
            calls[mode] += count
            missed[mode] += int(np.isnan(found[mode][:, 0, 0]).sum())
        both = ~np.isnan(found["track"][:, 0, 0]) & ~np.isnan(found["detect"][:, 0, 0])
        per_photo[photo.name] = {}
        for mode in modes:
            error = np.linalg.norm(found[mode] - truth, axis=2).mean(axis=1)[both] / eye[both]
            errors[mode].append(error)
            points, _ = align_video(still, detector, predictor, mode == "detect")
            steps = np.linalg.norm(np.diff(points, axis=0), axis=2).mean(axis=1)
            moved = float(np.nanmean(steps) / eye[0])
            jitter[mode].append(moved)
            per_photo[photo.name][mode] = {"mean": round(float(error.mean()), 4),
                                           "max": round(float(error.max()), 4),
                                           "jitter": round(moved, 4)}
        moving.unlink()
        still.unlink()
    frames = n * len(photos)
    result = {"align_photos": len(photos), "align_frames_per_video": n, "align_size": "384x384",
              "align_per_photo": per_photo}
    for mode in modes:
        error = np.concatenate(errors[mode])
        result[f"align_{mode}"] = {
            "mean_error": round(float(error.mean()), 4), "max_error": round(float(error.max()), 4),
            "jitter": round(float(np.mean(jitter[mode])), 4),
            "frames_without_face": missed[mode],
            "detector_calls_per_100": round(100.0 * calls[mode] / frames, 2),
            "ms_per_frame": round(1000.0 * seconds[mode] / frames, 2)}
    result["align_error_ratio"] = round(result["align_track"]["mean_error"]
                                        / result["align_detect"]["mean_error"], 3)
    print_alignment(result)
    return result


def print_alignment(r):
    print(f"\n2. Alignment: {r['align_photos']} photos, {r['align_frames_per_video']} frames "
          f"of {r['align_size']} each; error on a moving head (speeding up to 0.08 eye "
          "distances a frame), jitter on a still one (noise of 2 grey levels), eye distances")
    print(f"{'mode':<10}{'mean error':>12}{'max error':>11}{'jitter':>9}{'no face':>9}"
          f"{'det/100':>9}{'ms/frame':>10}")
    for mode in ("track", "detect"):
        m = r[f"align_{mode}"]
        print(f"{mode:<10}{m['mean_error']:>12.4f}{m['max_error']:>11.4f}{m['jitter']:>9.4f}"
              f"{m['frames_without_face']:>9}{m['detector_calls_per_100']:>9.1f}"
              f"{m['ms_per_frame']:>10.1f}")
    print(f"track / detect mean error: {r['align_error_ratio']:.3f} (target <= 1.3; track max "
          "<= 0.2)")
