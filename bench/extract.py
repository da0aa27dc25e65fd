"""Throughput, stage costs, peak memory and Ray scaling of the video extractor (extract.py).

    python bench/make_assets.py            # once: full-size model and ResNet-50 R-Net
    python bench/extract.py                # all three parts (about 15 minutes on 2 cores)
    python bench/extract.py --skip-long    # without the 10-minute video (about 5 minutes)
    python bench/extract.py --frames 100 --long-minutes 1      # a quick check

Every video is synthetic, 1280x720 at 25 fps: a real photo with its 5-point
landmark file (--photo, then ../shared/data/images/*.jpg in order, else the
repository's input/astronaut.png) moved along tests/synthetic_video.py's
default path (an ellipse, a breathing scale and a gentle roll, one loop every
10 seconds). Where the marker oracle is the network, the first photos whose
face it follows (within 0.15 eye distances, checked on 8 frames) are used;
the others are named on stderr. Figures are printed, never asserted: a table
per part, then, as the last line, one JSON object with every figure.

1. Throughput (`extraction.extractor.Extractor`, --landmarks track, no
   preview, as `python extract.py` runs it), on the full-size assets of
   bench/make_assets.py. A ResNet-50 with random weights reconstructs
   nonsense, which the tracker rightly calls lost at once (then MTCNN runs
   on every frame and the network on batches of 1); so by default
   (--net tracking) the network is that ResNet-50 with the marker oracle of
   tests/synthetic_video.py beside it: coeff = oracle + w * resnet,
   w a placeholder_with_default(0.0), so the ResNet is run in full and the
   landmarks follow the face (the videos carry the oracle's markers, drawn
   at a radius scaled to the frame). --net resnet runs the plain ResNet-50.
   Printed:
   - frames/s end to end, on a warm `Extractor` (MTCNN and the session loaded
     and run once on a short video first), writing the .mat included;
   - frames/s of `Reconstructor.network_only` at the same batch size on the
     same number of aligned crops (warm), and the ratio of the two (the
     target is at least 0.85);
   - ms per frame by stage, in the run (a second, instrumented run: the
     package's callables are wrapped in this process, never edited) and each
     on its own where that means something: decode (FrameReader; in the run,
     the time spent waiting for a frame, as decoding runs in a thread), align
     (FaceTracker.align and .update, i.e. prediction, Preprocess and the
     appearance check, without the detector; alone: Alignment and the
     thumbnail with the true points), detector (MTCNN: calls, ms per call),
     network+decoder (the reconstructor call), writing (outputs.write_result),
     other (post-processing, bookkeeping);
   - detector calls per 100 frames with --landmarks track, and with
     --landmarks detect on a shorter video (--detect-frames).
   The network runs of a track's first frames come in batches of 1, 2, 4...
   (FaceTracker.batch_limit): the mean batch size of the run is printed too.
2. Peak memory against video length: `python extract.py` as a child process
   with a cheap network and a small synthetic BFM
   (tests.synthetic_assets.write_bfm09(seed=3)), on a --short-minutes
   (default 1) and a --long-minutes (default 10) video, both written frame
   by frame (never held); the child's peak RSS is its VmHWM, polled in
   /proc/PID/status as bench/pipeline.py does. The two peaks and their ratio
   (flat memory: near 1). --skip-long leaves out the long video.
   The network (--small-net) is by default the marker oracle calibrated for
   the small BFM, on videos with scaled markers: the tracker then follows
   the face as it would with the real R-Net. With --small-net tiny
   (tests.synthetic_network.write_tiny_rnet, videos from make_long_video)
   every reconstruction is noise, every track is lost at once, and the
   extractor runs MTCNN on every frame with network batches of 1: about
   3 frames/s at 720p, 80 minutes for 10 minutes of video.
3. Ray: the same --ray-videos short videos (--small-net) through
   `python extract.py --engine ray --workers N` and `--engine local`, each as
   a child process; frames per second of wall-clock time (the child's whole
   life: imports, loading, Ray's start) and as extract.py reports it, and the
   ratio ray / local. --skip-ray leaves it out.

Other processes on the same cores skew every timing: the load average is
printed at the start and the end, and throughput figures are the best of
--repeat runs.

Scratch files go to --out (default: a temporary folder, removed at the end).
"""
import argparse
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import load_data  # noqa: E402
from tests.synthetic_video import (  # noqa: E402
    MARKER_RADIUS,
    draw_markers,
    iter_moving_face_frames,
    make_long_video,
    make_video,
)

try:
    from bench.pipeline import _high_water_mb
except ImportError:  # bench/pipeline.py moved or changed: the same poller.
    def _high_water_mb(pid):
        """VmHWM of a running process in MB (None once it has exited)."""
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return None

DEFAULT_ASSETS = pathlib.Path.home() / ".cache" / "deep3dface-bench"
SHARED_IMAGES = REPO_ROOT.parent / "shared" / "data" / "images"
FPS = 25
PERIOD_SECONDS = 10          # one loop of the face's path, as make_long_video
PROGRESS_EVERY_S = 30.0


def log(line):
    print(line, file=sys.stderr, flush=True)


def default_photos():
    """Photos with a 5-point landmark file: the shared ones, else the repository's."""
    photos = sorted(p for p in SHARED_IMAGES.glob("*.jpg") if p.with_suffix(".txt").exists()) \
        if SHARED_IMAGES.is_dir() else []
    if not photos:
        photos = [p for p in (REPO_ROOT / "input" / "astronaut.png",
                              REPO_ROOT / "input" / "astronaut_mirrored.jpg")
                  if p.with_suffix(".txt").exists()]
    return photos


def write_face_video(path, photo, n_frames, size, markers=True):
    """A moving-face video (tests.synthetic_video's default path, 10 s a loop).

    The markers are drawn at MARKER_RADIUS scaled from 240 lines to the
    frame's height (at 2 pixels in a 720p frame they shrink below a pixel in
    the crop and the oracle loses them).

    Returns:
      [n_frames, 5, 2] the true 5 points of each frame.
    """
    radius = MARKER_RADIUS * min(size) / 240.0
    points = []

    def frames():
        for frame, frame_points, _ in iter_moving_face_frames(
                photo, photo.with_suffix(".txt"), n_frames, size, markers=False,
                period=PERIOD_SECONDS * FPS):
            points.append(frame_points)
            yield draw_markers(frame, frame_points, radius) if markers else frame

    make_video(path, frames(), fps=FPS)
    return np.asarray(points)


def tracking_network(resnet_path, bfm_dir, path):
    """Writes the ResNet-50 with the marker oracle beside it (see the module's docstring).

    Returns:
      `path`; its graph holds `oracle/coeff` (the oracle alone) and
      `rnet/coeff` under the importer's prefix.
    """
    import tensorflow as tf

    from tests.synthetic_video import write_marker_rnet

    oracle_path = path.with_name("marker_oracle.pb")
    write_marker_rnet(oracle_path, bfm_dir)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        (resnet,) = tf.import_graph_def(load_data.load_graph(resnet_path), name="rnet",
                                        input_map={"input_imgs:0": images},
                                        return_elements=["coeff:0"])
        (oracle,) = tf.import_graph_def(load_data.load_graph(oracle_path), name="oracle",
                                        input_map={"input_imgs:0": images},
                                        return_elements=["coeff:0"])
        weight = tf.compat.v1.placeholder_with_default(tf.constant(0.0), [], name="rnet_weight")
        tf.identity(oracle + weight * resnet, name="coeff")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def oracle_miss(reconstructor, lm3d, photo, size, work, n_frames=8):
    """How far the marker oracle's 5 points land from the markers, for a photo.

    The photo's first frames are aligned with their true points and
    reconstructed; the result is the largest distance between reconstructed
    and true 5 points, in eye distances. The tracker drops a track beyond
    0.25: the oracle's nose and mouth split starts from where the model's
    mean face has them, which a turned face can defeat.
    """
    from extraction.frames import FrameReader
    from extraction.tracking import Alignment, lm5_from_lm68

    path = work / "oracle_check.mp4"
    points = write_face_video(path, photo, n_frames, size)
    crops, truth = [], []
    with FrameReader(path) as reader:
        for index, frame in reader:
            aligned = Alignment(frame, points[index], lm3d, False)
            crops.append(aligned.crop_bgr)
            truth.append(aligned.lm5_crop)
    path.unlink()
    found = lm5_from_lm68(reconstructor(np.stack(crops))["lm_68p"])
    truth = np.stack(truth)
    eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
    return float((np.linalg.norm(found - truth, axis=2).max(axis=1) / eye).max())


def trackable_photos(reconstructor, lm3d, candidates, size, work, need, tolerance=0.15):
    """The first `need` candidate photos whose faces the marker oracle follows."""
    work.mkdir(parents=True, exist_ok=True)
    chosen = []
    for photo in candidates:
        miss = oracle_miss(reconstructor, lm3d, photo, size, work)
        if miss <= tolerance:
            chosen.append(photo)
            if len(chosen) == need:
                break
        else:
            log(f"[photos] {photo.name} left out: the marker oracle misses its face by "
                f"{miss:.2f} eye distances (the tracker would lose it)")
    if not chosen:
        log("[photos] the marker oracle follows none of the photos: tracking will be lost")
        chosen = list(candidates[:need])
    return chosen


# ----------------------------------------------------------------------------
# Part 1: throughput and stages
# ----------------------------------------------------------------------------

class Probe:
    """Seconds and calls per stage, added by the wrappers of `instrumented`."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.batch_sizes = []

    def timed(self, stage, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1
        return wrapper


@contextlib.contextmanager
def instrumented(extractor):
    """Times the stages of the extractor's calls by wrapping the package's callables.

    In this process only, for the duration of the block: extraction.video's
    FrameReader and FaceTracker are replaced by subclasses that time frame
    waits and align/update, outputs.write_result by a timed wrapper, and the
    extractor's reconstructor and detector by timed wrappers. Everything is
    put back on exit.
    """
    from extraction import outputs, video

    probe = Probe()
    saved = (video.FrameReader, video.FaceTracker, outputs.write_result,
             extractor.reconstructor, extractor.detector)
    base_reader, base_tracker, write_result, reconstructor, detector = saved

    class TimedReader(base_reader):
        def __iter__(self):
            frames = super().__iter__()
            while True:
                start = time.perf_counter()
                try:
                    item = next(frames)
                except StopIteration:
                    return
                finally:
                    probe.seconds["decode"] += time.perf_counter() - start
                yield item

    class TimedTracker(base_tracker):
        def align(self, frame, number):
            return probe.timed("align", super().align)(frame, number)

        def update(self, number, aligned, lm68):
            return probe.timed("align", super().update)(number, aligned, lm68)

    video.FrameReader, video.FaceTracker = TimedReader, TimedTracker
    outputs.write_result = probe.timed("writing", write_result)
    timed_reconstructor = probe.timed("network+decoder", reconstructor)

    def network(images):
        probe.batch_sizes.append(len(images))
        return timed_reconstructor(images)

    extractor.reconstructor = network
    extractor.detector = probe.timed("detector", detector)
    try:
        yield probe
    finally:
        (video.FrameReader, video.FaceTracker, outputs.write_result,
         extractor.reconstructor, extractor.detector) = saved


def run_video(extractor, name):
    """One video through the extractor; returns (its result row, seconds)."""
    start = time.perf_counter()
    result = extractor({"path": [name]})
    seconds = time.perf_counter() - start
    row = {key: value[0].item() for key, value in result.items()}
    if row["status"] != "done":
        raise RuntimeError(f"{name}: {row['status']}: {row['message']}")
    return row, seconds


def stages_in_run(probe, row, seconds):
    """ms per frame by stage from an instrumented run."""
    frames = row["frames"]
    spent = {
        "decode": probe.seconds["decode"],
        # align() calls the detector: its time is counted once, under detector.
        "align": probe.seconds["align"] - probe.seconds["detector"],
        "detector": probe.seconds["detector"],
        "network+decoder": probe.seconds["network+decoder"],
        "writing": probe.seconds["writing"],
    }
    spent["other"] = seconds - sum(spent.values())
    spent["total"] = seconds
    return {stage: 1000.0 * value / frames for stage, value in spent.items()}


def batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def time_batches(fn, batch_list):
    """Seconds for fn over every batch, after one untimed run of each batch shape.

    (The shapes are warmed on every call: TensorFlow plans each new shape once.)
    """
    for shape in {len(batch) for batch in batch_list}:
        fn(next(batch for batch in batch_list if len(batch) == shape))
    start = time.perf_counter()
    for batch in batch_list:
        fn(batch)
    return time.perf_counter() - start


def stages_alone(video_path, points, extractor, batch_size, oracle_tensor, repeat):
    """Decode, align and the network each on its own over the video; ms per frame."""
    from extraction.frames import FrameReader
    from extraction.tracking import Alignment, face_thumbnail

    start = time.perf_counter()
    with FrameReader(video_path) as reader:
        count = sum(1 for _ in reader)
    decode = time.perf_counter() - start

    crops, align = [], 0.0
    with FrameReader(video_path) as reader:
        for index, frame in reader:
            start = time.perf_counter()
            aligned = Alignment(frame, points[index], extractor.lm3d, False)
            face_thumbnail(aligned.crop_bgr, aligned.lm5_crop)
            align += time.perf_counter() - start
            crops.append(aligned.crop_bgr)
    crop_batches = [np.stack(batch) for batch in batches(crops, batch_size)]
    del crops
    reconstructor = extractor.reconstructor
    network = min(time_batches(reconstructor.network_only, crop_batches)
                  for _ in range(repeat))
    network_decoder = min(time_batches(reconstructor, crop_batches) for _ in range(repeat))
    figures = {"decode": decode, "align": align, "network+decoder": network_decoder,
               "network only": network}
    if oracle_tensor is not None:
        figures["marker oracle"] = time_batches(
            lambda batch: reconstructor.session.run(oracle_tensor,
                                                    {reconstructor.images: batch}),
            crop_batches)
    return {stage: 1000.0 * value / count for stage, value in figures.items()}, count


def part_throughput(args, work, candidates):
    from extraction.extractor import ExtractOptions, Extractor

    bfm_dir = args.assets / "BFM"
    resnet = args.assets / "network" / "FaceReconModel.pb"
    videos = work / "throughput_videos"
    videos.mkdir(parents=True, exist_ok=True)
    size = args.size

    load_data.transferBFM09(bfm_dir)
    model, oracle_name = resnet, None
    if args.net == "tracking":
        start = time.perf_counter()
        model = tracking_network(resnet, bfm_dir, work / "resnet50_and_oracle.pb")
        oracle_name = "resnet/oracle/coeff:0"
        log(f"[throughput] ResNet-50 + marker oracle written in "
            f"{time.perf_counter() - start:.1f} s")

    options = ExtractOptions(input_root=str(videos), output_root=str(work / "throughput_out"),
                             bfm_dir=str(bfm_dir), model_path=str(model),
                             batch_size=args.batch_size, overwrite=True)
    start = time.perf_counter()
    extractor = Extractor(options)
    load_s = time.perf_counter() - start
    oracle_tensor = (extractor.reconstructor.graph.get_tensor_by_name(oracle_name)
                     if oracle_name else None)
    try:
        photo = candidates[0]
        if oracle_name:
            photo = trackable_photos(extractor.reconstructor, extractor.lm3d, candidates, size,
                                     work, 1)[0]
        log(f"[throughput] writing {args.frames} frames of {size[0]}x{size[1]} video of "
            f"{photo.name} ...")
        start = time.perf_counter()
        points = write_face_video(videos / "main.mp4", photo, args.frames, size)
        write_face_video(videos / "detect.mp4", photo, args.detect_frames, size)
        warm_frames = 2 * args.batch_size + args.frames % args.batch_size
        write_face_video(videos / "warm.mp4", photo, warm_frames, size)
        log(f"[throughput] videos written in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        run_video(extractor, "warm.mp4")          # loads MTCNN, runs the session once
        warm_s = time.perf_counter() - start
        log(f"[throughput] extractor loaded in {load_s:.1f} s, warmed in {warm_s:.1f} s; "
            "end-to-end run ...")
        runs = [run_video(extractor, "main.mp4") for _ in range(args.repeat)]
        row, seconds = min(runs, key=lambda run: run[1])
        log(f"[throughput] {row['frames']} frames in "
            f"{', '.join(f'{run[1]:.1f}' for run in runs)} s; instrumented run ...")
        with instrumented(extractor) as probe:
            row_i, seconds_i = run_video(extractor, "main.mp4")
        in_run = stages_in_run(probe, row_i, seconds_i)
        ms_per_call = 1000.0 * probe.seconds["detector"] / max(probe.calls["detector"], 1)
        log("[throughput] stages on their own ...")
        alone, count = stages_alone(videos / "main.mp4", points, extractor, args.batch_size,
                                    oracle_tensor, args.repeat)
        log(f"[throughput] --landmarks detect on {args.detect_frames} frames ...")
        extractor.options = dataclasses.replace(options, landmarks="detect")
        with instrumented(extractor) as probe_detect:
            row_d, seconds_d = run_video(extractor, "detect.mp4")
        extractor.options = options
    finally:
        extractor.close()

    frames = row["frames"]
    network_ms = alone["network only"]
    result = {
        "net": "resnet50+marker_oracle" if args.net == "tracking" else "resnet50",
        "photo": photo.name, "batch_size": args.batch_size, "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "load_s": round(load_s, 2),
        "frames_per_s": round(frames / seconds, 2),
        "network_only_frames_per_s": round(1000.0 / network_ms, 2),
        "ratio": round(network_ms / (1000.0 * seconds / frames), 3),
        "instrumented_frames_per_s": round(row_i["frames"] / seconds_i, 2),
        "stage_ms": {k: round(v, 2) for k, v in in_run.items()},
        "stage_alone_ms": {k: round(v, 2) for k, v in alone.items()},
        "detector_ms_per_call": round(ms_per_call, 1),
        "detector_calls_per_100": {
            "track": round(100.0 * row["detector_calls"] / frames, 2),
            "detect": round(100.0 * row_d["detector_calls"] / row_d["frames"], 2)},
        "detect_mode_frames_per_s": round(row_d["frames"] / seconds_d, 2),
        "detect_mode_detector_ms_per_call": round(
            1000.0 * probe_detect.seconds["detector"] / max(probe_detect.calls["detector"], 1),
            1),
        "valid_frames": row["valid_frames"],
        "network_calls": len(probe.batch_sizes),
        "mean_batch": round(float(np.mean(probe.batch_sizes)), 2),
        "detect_mode_mean_batch": round(float(np.mean(probe_detect.batch_sizes)), 2),
        "repeat": args.repeat,
    }
    if count != frames:
        result["frames_decoded_alone"] = count
    if "marker oracle" in alone:
        oracle_ms = alone["marker oracle"]
        result["ratio_without_oracle"] = round(
            (network_ms - oracle_ms) / (1000.0 * seconds / frames - oracle_ms), 3)
    print_throughput(result)
    return result


def print_throughput(r):
    print(f"\n1. Throughput: {r['frames']} frames of {r['size']} ({r['photo']}), batch "
          f"{r['batch_size']}, {r['net']}, --landmarks track, no preview")
    print(f"{'frames per second, end to end':<40}{r['frames_per_s']:>10.2f}")
    print(f"{'frames per second, network only':<40}{r['network_only_frames_per_s']:>10.2f}")
    print(f"{'ratio end to end / network (>= 0.85)':<40}{r['ratio']:>10.3f}")
    if "ratio_without_oracle" in r:
        print(f"{'ratio, marker oracle taken out':<40}{r['ratio_without_oracle']:>10.3f}")
    print(f"{'ms per frame':<40}{'in the run':>12}{'alone':>10}")
    alone = r["stage_alone_ms"]
    for stage, value in r["stage_ms"].items():
        other = alone.get(stage)
        print(f"{stage:<40}{value:>12.2f}" + (f"{other:>10.2f}" if other is not None else ""))
    for stage in ("network only", "marker oracle"):
        if stage in alone:
            print(f"{stage:<40}{'':>12}{alone[stage]:>10.2f}")
    print(f"(best of {r['repeat']}; instrumented run: {r['instrumented_frames_per_s']:.2f} "
          f"frames/s, {r['network_calls']} network calls, mean batch {r['mean_batch']:.2f}; "
          f"{r['valid_frames']}/{r['frames']} frames with a face; extractor loaded in "
          f"{r['load_s']:.1f} s)")
    calls = r["detector_calls_per_100"]
    print(f"detector calls per 100 frames: {calls['track']:.1f} (track), {calls['detect']:.1f} "
          f"(detect); MTCNN {r['detector_ms_per_call']:.0f} ms per call (track), "
          f"{r['detect_mode_detector_ms_per_call']:.0f} (detect); detect mode "
          f"{r['detect_mode_frames_per_s']:.2f} frames/s, mean batch "
          f"{r['detect_mode_mean_batch']:.2f}")


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
            peak = max(peak, _high_water_mb(process.pid) or 0.0)
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


def small_assets(work, kind):
    """The small synthetic BFM and a cheap R-Net, written once per run.

    Args:
      kind: "oracle" (the marker oracle, calibrated for that BFM: its
        landmarks follow the face) or "tiny" (tests.synthetic_network's tiny
        R-Net: its landmarks are noise, so every track is lost at once).
    """
    from tests.synthetic_assets import write_bfm09
    from tests.synthetic_network import write_tiny_rnet
    from tests.synthetic_video import write_marker_rnet

    folder = work / "small_assets"
    bfm_dir, model = folder / "BFM", folder / f"{kind}.pb"
    if not (bfm_dir / "01_MorphableModel.mat").exists():
        bfm_dir.mkdir(parents=True, exist_ok=True)
        write_bfm09(bfm_dir, seed=3)
    if not model.exists():
        if kind == "tiny":
            write_tiny_rnet(model)
        else:
            write_marker_rnet(model, bfm_dir)
    return bfm_dir, model


def small_photos(args, work, candidates, need):
    """Photos for the small-network parts: those the small oracle follows."""
    if args.small_net == "tiny":
        return list(candidates)
    from reconstructor import Reconstructor

    bfm_dir, model = small_assets(work, args.small_net)
    reconstructor = Reconstructor(load_data.load_graph(model),
                                  load_data.transferBFM09(bfm_dir), render=False)
    try:
        return trackable_photos(reconstructor, load_data.load_lm3d(bfm_dir), candidates,
                                args.size, work / "small_assets", need)
    finally:
        reconstructor.close()


def part_memory(args, work, photos):
    bfm_dir, model = small_assets(work, args.small_net)
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
        if args.small_net == "tiny":
            with_heartbeat(f"memory {label} video", make_long_video, video, minutes * 60,
                           size=args.size, fps=FPS, photo_path=photo,
                           landmarks=photo.with_suffix(".txt"))
        else:                                # the same frames, markers the oracle sees
            with_heartbeat(f"memory {label} video", write_face_video, video, photo,
                           n_frames, args.size)
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
    summary["memory_net"] = args.small_net
    summary["memory_photo"] = photo.name
    summary["memory_runs"] = {label: {k: (round(v, 2) if isinstance(v, float) else v)
                                      for k, v in f.items()} for label, f in result.items()}
    print_memory(summary)
    return summary


def print_memory(s):
    print(f"\n2. Peak memory of `python extract.py` ({s['memory_net']} R-Net, small BFM), "
          "by video length")
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
    bfm_dir, model = small_assets(work, args.small_net)
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
        "ray_net": args.small_net, "ray_workers": args.workers, "ray_videos": args.ray_videos,
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
    print(f"\n3. Engines: {s['ray_videos']} videos, {s['ray_frames_total']} frames "
          f"({s['ray_net']} R-Net, small BFM), `python extract.py` as a child process")
    print(f"{'engine':<22}{'wall s':>10}{'frames/s wall':>15}{'frames/s reported':>19}")
    for name, label in (("local", "local"), ("ray", f"ray, {s['ray_workers']} workers")):
        reported = s[f"{name}_reported_frames_per_s"]
        print(f"{label:<22}{s[f'{name}_wall_s']:>10.1f}{s[f'{name}_frames_per_s']:>15.2f}"
              f"{(reported if reported is not None else float('nan')):>19.2f}")
    print(f"ray / local (wall clock): {s['ray_over_local']:.3f}")


# ----------------------------------------------------------------------------

def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 64")
    return width, height


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS,
                        help="folder written by bench/make_assets.py")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per network run")
    parser.add_argument("--frames", type=int, default=400,
                        help="frames of the throughput video (default 400)")
    parser.add_argument("--detect-frames", type=int, default=48,
                        help="frames of the --landmarks detect run (default 48)")
    parser.add_argument("--net", choices=("tracking", "resnet"), default="tracking",
                        help="throughput network: the ResNet-50 with the marker oracle "
                             "(default; landmarks that follow the face) or the plain ResNet-50")
    parser.add_argument("--size", type=parse_size, default=(1280, 720),
                        help="frame size WIDTHxHEIGHT (default 1280x720)")
    parser.add_argument("--short-minutes", type=float, default=1.0,
                        help="the short video of the memory part (default 1)")
    parser.add_argument("--long-minutes", type=float, default=10.0,
                        help="the long video of the memory part (default 10)")
    parser.add_argument("--skip-long", action="store_true", help="no long video")
    parser.add_argument("--skip-memory", action="store_true", help="no memory part at all")
    parser.add_argument("--skip-throughput", action="store_true", help="no throughput part")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray part")
    parser.add_argument("--small-net", choices=("oracle", "tiny"), default="oracle",
                        help="network of the memory and Ray parts, with the small BFM: the "
                             "marker oracle (default; it tracks) or the tiny R-Net")
    parser.add_argument("--repeat", type=int, default=2,
                        help="throughput: best of this many end-to-end and network runs "
                             "(default 2; other processes share the cores)")
    parser.add_argument("--ray-videos", type=int, default=4)
    parser.add_argument("--ray-frames", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    parser.add_argument("--photo", type=pathlib.Path, default=None,
                        help="photo with a NAME.txt 5-point file (default 000002.jpg of "
                             "../shared/data/images, else input/astronaut.png)")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="scratch folder, kept (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    for name in ("batch_size", "frames", "detect_frames", "ray_videos", "ray_frames",
                 "workers", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.skip_throughput and not (args.assets / "network" / "FaceReconModel.pb").exists():
        parser.error(f"{args.assets}: no full-size assets; run `python bench/make_assets.py` "
                     "first")
    photos = default_photos()
    if args.photo:
        photos = [args.photo] + [p for p in photos if p != args.photo]
    if not photos or not photos[0].with_suffix(".txt").exists():
        parser.error("no photo with a 5-point landmark file (NAME.txt); pass --photo")

    import tensorflow as tf

    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
              "tensorflow": tf.__version__, "load_average_start": round(os.getloadavg()[0], 2)}
    print(f"machine: {report['machine']}, GPU: {report['gpu'] or 'none'}, "
          f"TensorFlow {report['tensorflow']}, load average "
          f"{report['load_average_start']:.2f} (other processes on these cores skew timings)")
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.out is None:
            work = pathlib.Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="bench_extract_")))
        else:
            work = args.out
            work.mkdir(parents=True, exist_ok=True)
        if not args.skip_throughput:
            report.update(part_throughput(args, work / "throughput", photos))
            shutil.rmtree(work / "throughput" / "throughput_videos", ignore_errors=True)
        if not (args.skip_memory and args.skip_ray):
            small = small_photos(args, work, photos, 1 if args.skip_ray else args.ray_videos)
        if not args.skip_memory:
            report.update(part_memory(args, work, small))
        if not args.skip_ray:
            report.update(part_ray(args, work, small))
    report["bench_s"] = round(time.perf_counter() - start, 1)
    report["load_average_end"] = round(os.getloadavg()[0], 2)
    print(f"\nbench time: {report['bench_s']:.0f} s, load average at the end "
          f"{report['load_average_end']:.2f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
