"""Peak memory by video length and Ray against the local engine, for bench/extract.py.

Parts 3 and 4 of `python bench/extract.py` (run them from there: it parses
the arguments and prints the final JSON line), and the synthetic videos and
photo choice that the other parts share with them.

Videos: a photo with its 5-point file moved along tests/synthetic_video.py's
default path (an ellipse, a breathing scale and a gentle roll, a loop every
PERIOD_SECONDS), FPS frames a second.

3. Peak memory against video length: `python extract.py` as a child process
   with the tiny synthetic R-Net and a small synthetic BFM
   (tests.synthetic_assets.write_bfm09(seed=3)), on a --short-minutes
   (default 1) and a --long-minutes (default 10) video, both written frame
   by frame (never held); the child's peak RSS is its VmHWM, polled in
   /proc/PID/status with bench/pipeline.py's poller. The two peaks and their
   ratio (flat memory: near 1). --skip-long leaves out the long video. The
   network does not steer the alignment, so the tiny one measures what the
   extraction itself holds.
4. Ray: the same --ray-videos short videos through
   `python extract.py --engine ray --workers N` and `--engine local`, each as
   a child process; frames per second of wall-clock time (the child's whole
   life: imports, loading, Ray's start) and as extract.py reports it, and the
   ratio ray / local. --skip-ray leaves it out.
"""
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import numpy as np

from bench.common import high_water_mb
from tests.synthetic_video import (
    iter_moving_face_frames,
    make_long_video,
    make_video,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
from bench.common import SHARED_IMAGES  # noqa: E402

FPS = 25
PERIOD_SECONDS = 10          # one loop of the face's path, as make_long_video
PROGRESS_EVERY_S = 30.0


def log(line):
    print(line, file=sys.stderr, flush=True)


def default_photos(first=None):
    """Photos with a 5-point landmark file: `first`, then the shared ones, else the repository's."""
    photos = sorted(p for p in SHARED_IMAGES.glob("*.jpg") if p.with_suffix(".txt").exists()) \
        if SHARED_IMAGES.is_dir() else []
    if not photos:
        photos = [p for p in (REPO_ROOT / "input" / "astronaut.png",
                              REPO_ROOT / "input" / "astronaut_mirrored.jpg")
                  if p.with_suffix(".txt").exists()]
    return [first] + [p for p in photos if p != first] if first else photos


def write_face_video(path, photo, n_frames, size):
    """A moving-face video (tests.synthetic_video's default path, 10 s a loop).

    Returns:
      [n_frames, 5, 2] the true 5 points of each frame.
    """
    points = []

    def frames():
        for frame, frame_points, _ in iter_moving_face_frames(
                photo, photo.with_suffix(".txt"), n_frames, size, markers=False,
                period=PERIOD_SECONDS * FPS):
            points.append(frame_points)
            yield frame

    make_video(path, frames(), fps=FPS)
    return np.asarray(points)


# ----------------------------------------------------------------------------
# Parts 2 and 3: extract.py as a child process
# ----------------------------------------------------------------------------

_SUMMARY = re.compile(r"(\d+) frames, ([\d.]+) frames/s"
                      r"(?:, ([\d.]+) detector calls per 100 frames)?")


def run_extract(label, extract_args, work):
    """Runs `python extract.py ...`, polling its peak RSS; returns its figures.

    Returns:
      dict: seconds (wall clock), peak_mb (VmHWM), frames, reported_frames_per_s
      and detector_calls_per_100 (from extract.py's last line).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    out_path, err_path = work / f"{label}.stdout", work / f"{label}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / "extract.py"),
                                    *map(str, extract_args)],
                                   cwd=REPO_ROOT, env=env, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL)
        peak, next_report = 0.0, start + PROGRESS_EVERY_S
        while process.poll() is None:
            peak = max(peak, high_water_mb(process.pid) or 0.0)
            now = time.perf_counter()
            if now >= next_report:
                log(f"[{label}] extract.py running for {now - start:.0f} s, "
                    f"peak RSS so far {peak:.0f} MB")
                next_report += PROGRESS_EVERY_S
            time.sleep(0.02)
        seconds = time.perf_counter() - start
    stdout = out_path.read_text(errors="replace")
    if process.returncode != 0:
        stderr = err_path.read_text(errors="replace")
        raise RuntimeError(f"extract.py ({label}) exited with {process.returncode}:\n"
                           f"{stdout[-2000:]}\n{stderr[-4000:]}")
    match = _SUMMARY.search(stdout)
    figures = {"seconds": seconds, "peak_mb": peak}
    if match:
        figures.update(frames=int(match.group(1)), reported_frames_per_s=float(match.group(2)),
                       detector_calls_per_100=float(match.group(3) or 0.0))
    log(f"[{label}] done in {seconds:.1f} s, peak RSS {peak:.0f} MB: {stdout.strip()}")
    return figures


def with_heartbeat(label, fn, *args, **kwargs):
    """Calls fn, printing a line every PROGRESS_EVERY_S seconds until it returns."""
    done = threading.Event()
    start = time.perf_counter()

    def beat():
        while not done.wait(PROGRESS_EVERY_S):
            log(f"[{label}] still working, {time.perf_counter() - start:.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        return fn(*args, **kwargs)
    finally:
        done.set()
        thread.join()


def small_assets(work):
    """The small synthetic BFM and the tiny R-Net, written once per run.

    The network does not steer the alignment, so a cheap one measures the
    extraction's memory and engines as the real R-Net would, but for the
    network's own cost.
    """
    from tests.synthetic_assets import write_bfm09
    from tests.synthetic_network import write_tiny_rnet

    folder = work / "small_assets"
    bfm_dir, model = folder / "BFM", folder / "tiny.pb"
    if not (bfm_dir / "01_MorphableModel.mat").exists():
        bfm_dir.mkdir(parents=True, exist_ok=True)
        write_bfm09(bfm_dir, seed=3)
    if not model.exists():
        write_tiny_rnet(model)
    return bfm_dir, model


def part_memory(args, work, photos):
    bfm_dir, model = small_assets(work)
    photo = photos[0]
    lengths = [("short", args.short_minutes)]
    if not args.skip_long:
        lengths.append(("long", args.long_minutes))
    result = {}
    for label, minutes in lengths:
        folder = work / f"memory_{label}"
        video = folder / "in" / f"{label}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        n_frames = int(round(minutes * 60 * FPS))
        log(f"[memory] writing the {label} video: {minutes:g} min, {n_frames} frames ...")
        start = time.perf_counter()
        with_heartbeat(f"memory {label} video", make_long_video, video, minutes * 60,
                       size=args.size, fps=FPS, photo_path=photo,
                       landmarks=photo.with_suffix(".txt"), markers=False)
        log(f"[memory] written in {time.perf_counter() - start:.1f} s "
            f"({video.stat().st_size / 1e6:.0f} MB); extract.py ...")
        figures = run_extract(f"memory {label}", [
            "--input", folder / "in", "--output", folder / "out", "--bfm-dir", bfm_dir,
            "--model", model, "--batch-size", args.batch_size, "--overwrite"], work)
        figures["minutes"] = minutes
        figures["video_frames"] = n_frames
        result[label] = figures
        video.unlink()                       # the long one is large
    summary = {f"peak_mb_{label}": round(f["peak_mb"], 1) for label, f in result.items()}
    summary["peak_mb_long"] = summary.get("peak_mb_long")
    summary["peak_ratio"] = (round(summary["peak_mb_long"] / summary["peak_mb_short"], 3)
                             if summary["peak_mb_long"] else None)
    summary["memory_photo"] = photo.name
    summary["memory_runs"] = {label: {k: (round(v, 2) if isinstance(v, float) else v)
                                      for k, v in f.items()} for label, f in result.items()}
    print_memory(summary)
    return summary


def print_memory(s):
    print("\n3. Peak memory of `python extract.py` (tiny R-Net, small BFM), by video length")
    print(f"{'video':<22}{'frames':>9}{'peak RSS MB':>14}{'wall s':>10}{'frames/s':>10}"
          f"{'det/100':>9}")
    for label, f in s["memory_runs"].items():
        print(f"{label + ' (' + format(f['minutes'], 'g') + ' min)':<22}"
              f"{f.get('frames', f['video_frames']):>9}{f['peak_mb']:>14.1f}"
              f"{f['seconds']:>10.1f}{f.get('reported_frames_per_s', float('nan')):>10.2f}"
              f"{f.get('detector_calls_per_100', float('nan')):>9.1f}")
    if s["peak_ratio"] is not None:
        print(f"peak long / short: {s['peak_ratio']:.3f} (flat memory: near 1)")
    else:
        print("long video skipped (--skip-long)")


def part_ray(args, work, photos):
    bfm_dir, model = small_assets(work)
    folder = work / "ray_in"
    folder.mkdir(parents=True, exist_ok=True)
    log(f"[ray] writing {args.ray_videos} videos of {args.ray_frames} frames ...")
    for i in range(args.ray_videos):
        write_face_video(folder / f"video_{i}.mp4", photos[i % len(photos)], args.ray_frames,
                         args.size)
    total = args.ray_videos * args.ray_frames
    common = ["--input", folder, "--bfm-dir", bfm_dir, "--model", model,
              "--batch-size", args.batch_size, "--overwrite"]
    local = run_extract("local", [*common, "--output", work / "ray_out_local",
                                  "--engine", "local"], work)
    ray = run_extract("ray", [*common, "--output", work / "ray_out_ray", "--engine", "ray",
                              "--workers", args.workers], work)
    summary = {
        "ray_workers": args.workers, "ray_videos": args.ray_videos,
        "ray_photos": sorted({photos[i % len(photos)].name for i in range(args.ray_videos)}),
        "ray_frames_total": total,
        "local_frames_per_s": round(total / local["seconds"], 2),
        "ray_frames_per_s": round(total / ray["seconds"], 2),
        "ray_over_local": round(local["seconds"] / ray["seconds"], 3),
        "local_reported_frames_per_s": local.get("reported_frames_per_s"),
        "ray_reported_frames_per_s": ray.get("reported_frames_per_s"),
        "local_wall_s": round(local["seconds"], 1), "ray_wall_s": round(ray["seconds"], 1),
        "local_detector_calls_per_100": local.get("detector_calls_per_100"),
        "ray_detector_calls_per_100": ray.get("detector_calls_per_100"),
    }
    print_ray(summary)
    return summary


def print_ray(s):
    print(f"\n4. Engines: {s['ray_videos']} videos, {s['ray_frames_total']} frames "
          "(tiny R-Net, small BFM), `python extract.py` as a child process")
    print(f"{'engine':<22}{'wall s':>10}{'frames/s wall':>15}{'frames/s reported':>19}")
    for name, label in (("local", "local"), ("ray", f"ray, {s['ray_workers']} workers")):
        reported = s[f"{name}_reported_frames_per_s"]
        print(f"{label:<22}{s[f'{name}_wall_s']:>10.1f}{s[f'{name}_frames_per_s']:>15.2f}"
              f"{(reported if reported is not None else float('nan')):>19.2f}")
    print(f"ray / local (wall clock): {s['ray_over_local']:.3f}")
