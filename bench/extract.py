"""Throughput, stage costs and alignment of the video extractor (extract.py); all four parts.

    python bench/make_assets.py            # once: full-size model and ResNet-50 R-Net
    python bench/extract.py                # all four parts (about 10 minutes on 2 cores)
    python bench/extract.py --skip-long    # without the 10-minute video (about 6 minutes)
    python bench/extract.py --frames 100 --align-frames 24 --long-minutes 1   # a quick check

Parts 1 and 2 are measured here and in bench/extract_alignment.py; parts 3 (peak
memory by video length) and 4 (Ray against the local engine), and the synthetic
25 fps videos of a photo with its 5-point file (--photo, then
../shared/data/images/*.jpg, else input/astronaut.png) that all parts use, are in
bench/extract_scaling.py. Figures are printed, never asserted: a table per part,
then, as the last line, one JSON object with every figure.

1. Throughput (`extraction.extractor.Extractor`, --landmarks track, no preview, as
   `python extract.py` runs it) on bench/make_assets.py's full-size assets, whose
   ResNet-50 has random weights (the network does not steer the alignment, so its
   nonsense costs what the real R-Net costs). 1280x720 by default. Printed:
   - frames/s end to end, on a warm `Extractor` (MTCNN, dlib's predictor and the
     session loaded and run once on a short video first), writing the .mat included;
   - frames/s of `Reconstructor.network_only` at the same batch size on the same
     aligned crops (warm; each of its --repeat runs right after an end-to-end run,
     so that a slow spell of the machine hits both), and the ratio of the two bests
     (target >= 0.9, issue 35);
   - ms per frame by stage, in a second, instrumented run (the package's callables
     are wrapped in this process, never edited). Alignment runs in a thread one
     batch ahead of the network, so its stages overlap the network's: they are
     shown in two columns. The alignment thread: decode (the wait for a frame
     decoded in a third thread), track (`FaceTracker.track`: dlib's predictor, the
     appearance thumbnails and MTCNN, each also shown), crop (preparation.frame.
     align_frame, summed over the threads that make a batch's crops together). The
     main thread: waiting for the next aligned batch, network+decoder (the
     reconstructor call), writing (outputs.write_result), other. Stages on their
     own, one frame after the other, beside them: decode, predictor, thumbnail,
     crop, network+decoder, network only;
   - detector calls per 100 frames with --landmarks track, and with --landmarks
     detect on a shorter video (--detect-frames); each search is one call (a region
     that holds no face and the whole-frame search after it are two).
2. Alignment (bench/extract_alignment.py): the aligning points' error on a moving
   head and their jitter on a still one, --landmarks track against detect, on every
   photo, --align-frames frames each.
3. (--compare) The throughput part again in child processes, the code before issue
   35 (`bench.code_versions`) and this one, alternated --compare-rounds times:
   extraction / network of each (medians), and issue 35's target (at least 0.9,
   720p, batch 8), met or not.

Other processes on the same cores skew every timing: the load average is printed at
the start and the end, and throughput figures are the best of --repeat runs. Scratch
files go to --out (default: a temporary folder, removed at the end).
"""
import argparse
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# A child of --compare measures the code named by bench.code_versions.CODE_ENV
# (read here directly: the code measured may have no bench.code_versions).
CODE_ROOT = pathlib.Path(os.environ.get("DEEP3DFACE_BENCH_CODE") or REPO_ROOT)
sys.path.insert(0, str(CODE_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import load_data
from bench.extract_alignment import part_alignment
from bench.extract_scaling import default_photos, log, part_memory, part_ray, write_face_video

DETECTOR_KINDS = ("region", "scaled frame", "whole frame")
from bench.common import DEFAULT_ASSETS  # noqa: E402


class Probe:
    """Seconds and calls per stage, added by the wrappers of `instrumented`."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.failures = collections.Counter()     # calls that raised (a region without a face)
        self.batch_sizes = []
        self.frame_shape = None                   # of the frame being aligned

    def ms_per_call(self, stage):
        return 1000.0 * self.seconds[stage] / max(self.calls[stage], 1)

    def timed(self, stage, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            except Exception:
                self.failures[stage] += 1
                raise
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1
        return wrapper

    def timed_items(self, items, stage):
        """Yields `items`, adding the time each `next` takes to `stage` (no call count)."""
        items = iter(items)
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                self.seconds[stage] += time.perf_counter() - start
            yield item


ALIGN_STAGES = ("decode", "track", "predictor", "thumbnail", "detector", "crop")
MAIN_STAGES = ("waiting for alignment", "network+decoder", "writing")


@contextlib.contextmanager
def instrumented(extractor):
    """Times the stages of the extractor's calls by wrapping the package's callables.

    In this process only, until the block ends: extraction.video's FrameReader
    (frame waits), FaceTracker.track and Background (the main thread's waits
    for an aligned batch) by subclasses; write_result, align_frame and
    face_thumbnail (looked up by name when called) and the extractor's
    reconstructor, detector and predictor by timed wrappers (a detector call on an
    image of the frame's size or of its scaled-down size is on the whole frame, any
    other on a region).
    """
    from extraction import outputs, tracking, video
    from preparation import frame as alignment

    probe = Probe()
    patched = ((video, "FrameReader"), (video, "FaceTracker"), (video, "Background"),
               (outputs, "write_result"), (alignment, "align_frame"),
               (tracking, "face_thumbnail"), (extractor, "reconstructor"),
               (extractor, "detector"), (extractor.predictor, "from_points"))
    saved = [getattr(owner, name) for owner, name in patched]
    base_reader, base_tracker, base_background = saved[:3]
    reconstructor, detector, predict = saved[6:]

    class TimedReader(base_reader):
        def __iter__(self):
            for item in probe.timed_items(super().__iter__(), "decode"):
                probe.frame_shape = item[2].shape[:2]
                yield item

    class TimedTracker(base_tracker):
        def track(self, frame):
            return probe.timed("track", super().track)(frame)

    class TimedBackground(base_background):
        def __iter__(self):
            return probe.timed_items(super().__iter__(), "waiting for alignment")

    video.FrameReader, video.FaceTracker = TimedReader, TimedTracker
    video.Background = TimedBackground
    for (owner, name), fn, stage in zip(patched[3:6], saved[3:6],
                                        ("writing", "crop", "thumbnail")):
        setattr(owner, name, probe.timed(stage, fn))
    extractor.predictor.from_points = probe.timed("predictor", predict)
    timed_detector = probe.timed("detector", detector)
    by_kind = {kind: probe.timed(f"detector {kind}", timed_detector) for kind in DETECTOR_KINDS}

    def detect(image, *args, **kwargs):
        shape = np.shape(image)[:2]
        height, width = probe.frame_shape
        scale = tracking._COARSE_SIDE / max(height, width)
        kind = ("whole frame" if shape == probe.frame_shape else
                "scaled frame" if shape == (round(height * scale), round(width * scale)) else
                "region")
        return by_kind[kind](image, *args, **kwargs)

    timed_reconstructor = probe.timed("network+decoder", reconstructor)

    def network(images):
        probe.batch_sizes.append(len(images))
        return timed_reconstructor(images)

    extractor.reconstructor, extractor.detector = network, detect
    try:
        yield probe
    finally:
        for (owner, name), value in zip(patched, saved):
            setattr(owner, name, value)
        del extractor.predictor.from_points      # the bound method again


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
    """ms per frame by stage from an instrumented run: (alignment thread, main thread)."""
    frames = row["frames"]
    align = {stage: 1000.0 * probe.seconds[stage] / frames for stage in ALIGN_STAGES}
    main = {stage: 1000.0 * probe.seconds[stage] / frames for stage in MAIN_STAGES}
    main["other"] = 1000.0 * seconds / frames - sum(main.values())
    main["total"] = 1000.0 * seconds / frames
    return align, main


def batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def time_batches(fn, batch_list):
    """Seconds for fn over every batch, after one untimed run of each batch shape.

    (Warmed on every call: TensorFlow plans each new shape once.)"""
    for shape in {len(batch) for batch in batch_list}:
        fn(next(batch for batch in batch_list if len(batch) == shape))
    start = time.perf_counter()
    for batch in batch_list:
        fn(batch)
    return time.perf_counter() - start


def aligned_crops(video_path, points, extractor, batch_size):
    """Decode, the predictor, the thumbnails and the crops each on its own over the video.

    Returns:
      (the crops in batches, {stage: seconds}, frames decoded).
    """
    from extraction.tracking import face_thumbnail
    from fileio.video import FrameReader
    from preparation.frame import Alignment

    start = time.perf_counter()
    with FrameReader(video_path) as reader:
        count = sum(1 for _ in reader)
    spent = {"decode": time.perf_counter() - start, "predictor": 0.0, "thumbnail": 0.0,
             "crop": 0.0}
    crops = []
    with FrameReader(video_path) as reader:
        for index, _, frame in reader:
            clock = time.perf_counter()
            extractor.predictor.from_points(frame, points[index], False)
            spent["predictor"] += time.perf_counter() - clock
            clock = time.perf_counter()
            face_thumbnail(frame, points[index])
            spent["thumbnail"] += time.perf_counter() - clock
            clock = time.perf_counter()
            crops.append(Alignment(frame, points[index], extractor.lm3d).crop_bgr)
            spent["crop"] += time.perf_counter() - clock
    return [np.stack(batch) for batch in batches(crops, batch_size)], spent, count


def part_throughput(args, work, photos):
    from extraction.extractor import ExtractOptions, Extractor

    bfm_dir = args.assets / "BFM"
    model = args.assets / "network" / "FaceReconModel.pb"
    videos = work / "throughput_videos"
    videos.mkdir(parents=True, exist_ok=True)
    size = args.size
    load_data.transferBFM09(bfm_dir)
    options = ExtractOptions(input_root=str(videos), output_root=str(work / "throughput_out"),
                             bfm_dir=str(bfm_dir), model_path=str(model),
                             batch_size=args.batch_size, overwrite=True)
    start = time.perf_counter()
    extractor = Extractor(options)
    load_s = time.perf_counter() - start
    photo = photos[0]
    try:
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
        crop_batches, alone_s, count = aligned_crops(videos / "main.mp4", points, extractor,
                                                     args.batch_size)
        log(f"[throughput] extractor loaded in {load_s:.1f} s, warmed in {warm_s:.1f} s; "
            f"end-to-end and network-only runs, alternating, {args.repeat} of each ...")
        # Alternated, so that a slow spell of the machine hits both alike.
        runs, network_runs = [], []
        for _ in range(args.repeat):
            runs.append(run_video(extractor, "main.mp4"))
            network_runs.append(time_batches(extractor.reconstructor.network_only,
                                             crop_batches))
        row, seconds = min(runs, key=lambda run: run[1])
        log(f"[throughput] {row['frames']} frames in "
            f"{', '.join(f'{run[1]:.1f}' for run in runs)} s end to end, "
            f"{', '.join(f'{run:.1f}' for run in network_runs)} s network only; "
            "instrumented run ...")
        with instrumented(extractor) as probe:
            row_i, seconds_i = run_video(extractor, "main.mp4")
        align_ms, main_ms = stages_in_run(probe, row_i, seconds_i)
        alone_s["network+decoder"] = min(time_batches(extractor.reconstructor, crop_batches)
                                         for _ in range(args.repeat))
        alone_s["network only"] = min(network_runs)
        alone = {stage: 1000.0 * value / count for stage, value in alone_s.items()}
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
        "net": "resnet50", "photo": photo.name, "batch_size": args.batch_size,
        "frames": frames, "size": f"{size[0]}x{size[1]}", "load_s": round(load_s, 2),
        "frames_per_s": round(frames / seconds, 2),
        "network_only_frames_per_s": round(1000.0 / network_ms, 2),
        "ratio": round(network_ms / (1000.0 * seconds / frames), 3),
        "instrumented_frames_per_s": round(row_i["frames"] / seconds_i, 2),
        "alignment_thread_ms": {k: round(v, 2) for k, v in align_ms.items()},
        "main_thread_ms": {k: round(v, 2) for k, v in main_ms.items()},
        "stage_alone_ms": {k: round(v, 2) for k, v in alone.items()},
        "detector_ms_per_call": round(probe.ms_per_call("detector"), 1),
        "detector_calls_by_kind": {
            kind: {"calls": probe.calls[f"detector {kind}"],
                   "no_face": probe.failures[f"detector {kind}"],
                   "ms_per_call": round(probe.ms_per_call(f"detector {kind}"), 1)}
            for kind in DETECTOR_KINDS},
        "detector_calls_per_100": {
            "track": round(100.0 * row["detector_calls"] / frames, 2),
            "detect": round(100.0 * row_d["detector_calls"] / row_d["frames"], 2)},
        "detect_mode_frames_per_s": round(row_d["frames"] / seconds_d, 2),
        "detect_mode_detector_ms_per_call": round(probe_detect.ms_per_call("detector"), 1),
        "valid_frames": row["valid_frames"], "network_calls": len(probe.batch_sizes),
        "repeat": args.repeat}
    if count != frames:
        result["frames_decoded_alone"] = count
    print_throughput(result)
    return result


def print_throughput(r):
    print(f"\n1. Throughput: {r['frames']} frames of {r['size']} ({r['photo']}), batch "
          f"{r['batch_size']}, {r['net']}, --landmarks track, no preview")
    print(f"{'frames per second, end to end':<40}{r['frames_per_s']:>10.2f}")
    print(f"{'frames per second, network only':<40}{r['network_only_frames_per_s']:>10.2f}")
    print(f"{'ratio end to end / network (>= 0.9)':<40}{r['ratio']:>10.3f}")
    alone = r["stage_alone_ms"]
    print(f"{'ms per frame':<40}{'in the run':>12}{'alone':>10}")
    print("alignment thread (a batch ahead of the network)")
    for stage, value in r["alignment_thread_ms"].items():
        label = f"  {stage}" if stage in ("decode", "track", "crop") else f"    of which {stage}"
        other = alone.get(stage)
        print(f"{label:<40}{value:>12.2f}" + (f"{other:>10.2f}" if other is not None else ""))
    print("main thread")
    for stage, value in r["main_thread_ms"].items():
        other = alone.get(stage)
        print(f"{'  ' + stage:<40}{value:>12.2f}" + (f"{other:>10.2f}" if other else ""))
    print(f"{'  network only':<40}{'':>12}{alone['network only']:>10.2f}")
    print(f"(best of {r['repeat']}; instrumented run: {r['instrumented_frames_per_s']:.2f} "
          f"frames/s, {r['network_calls']} network calls; {r['valid_frames']}/{r['frames']} "
          f"frames with a face; extractor loaded in {r['load_s']:.1f} s)")
    calls = r["detector_calls_per_100"]
    print(f"detector calls per 100 frames: {calls['track']:.1f} (track), {calls['detect']:.1f} "
          f"(detect); MTCNN {r['detector_ms_per_call']:.0f} ms per call (track), "
          f"{r['detect_mode_detector_ms_per_call']:.0f} (detect); detect mode "
          f"{r['detect_mode_frames_per_s']:.2f} frames/s")
    print("track mode detector calls: " + "; ".join(
        f"{kind} {c['calls']} ({c['no_face']} without a face), {c['ms_per_call']:.0f} ms per call"
        for kind, c in r["detector_calls_by_kind"].items()))


def compare_versions(args):
    """The throughput part in children, the code before issue 35 and this one, alternated."""
    from bench.code_versions import BEFORE_SPEED, export_tree, run_alternated

    tree = export_tree(args.before or BEFORE_SPEED, log)
    child_args = ["--skip-alignment", "--skip-memory", "--skip-ray", "--assets",
                  str(args.assets), "--frames", str(args.frames), "--repeat", str(args.repeat),
                  "--size", f"{args.size[0]}x{args.size[1]}",
                  "--batch-size", str(args.batch_size)]
    if args.photo is not None:
        child_args += ["--photo", str(args.photo)]
    runs = run_alternated(__file__, {"before": (tree, child_args), "after": (None, child_args)},
                          args.compare_rounds, log)
    ratios = {name: [run["ratio"] for run in results] for name, results in runs.items()}
    result = {"before_revision": args.before or BEFORE_SPEED,
              "ratios": ratios, "median": {k: float(np.median(v)) for k, v in ratios.items()}}
    print(f"\n3. Extraction / network alone, the code before ({result['before_revision']}) "
          f"and this one, {args.compare_rounds} alternated rounds: before "
          f"{', '.join(f'{r:.3f}' for r in ratios['before'])}; after "
          f"{', '.join(f'{r:.3f}' for r in ratios['after'])}")
    return result


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 64")
    return width, height


# flag, type, default, help; the whole numbers must be at least 1.
OPTIONS = (
    ("--assets", pathlib.Path, DEFAULT_ASSETS, "folder written by bench/make_assets.py"),
    ("--batch-size", int, 8, "frames per network run"),
    ("--frames", int, 400, "frames of the throughput video (default 400)"),
    ("--detect-frames", int, 48, "frames of the --landmarks detect run (default 48)"),
    ("--size", parse_size, (1280, 720), "frame size WIDTHxHEIGHT (default 1280x720)"),
    ("--short-minutes", float, 1.0, "the short video of the memory part (default 1)"),
    ("--long-minutes", float, 10.0, "the long video of the memory part (default 10)"),
    ("--repeat", int, 3, "throughput: best of this many end-to-end and network runs "
                         "(default 3; other processes share the cores)"),
    ("--align-frames", int, 60, "alignment: frames of each moving and still video "
                                "(default 60)"),
    ("--ray-videos", int, 4, None), ("--ray-frames", int, 100, None),
    ("--workers", int, 2, "Ray workers (default 2)"),
    ("--photo", pathlib.Path, None, "photo with a NAME.txt 5-point file, tried first "
                                    "(then ../shared/data/images, else input/astronaut.png)"),
    ("--out", pathlib.Path, None, "scratch folder, kept (default: a temporary one, removed)"))
TARGET_RATIO = 0.9              # issue 35: extraction / network alone, 720p, batch 8
SKIPS = (("--compare", "also the throughput of the code before issue 35 against this one, "
                       "in child processes"),
         ("--skip-long", "no long video"), ("--skip-memory", "no memory part at all"),
         ("--skip-throughput", "no throughput part"),
         ("--skip-alignment", "no alignment part"), ("--skip-ray", "no Ray part"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    for flag, text in SKIPS:
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--compare-rounds", type=int, default=2,
                        help="--compare: rounds, the two versions alternated (2)")
    parser.add_argument("--before", default=None, help="--compare: the 'before' commit")
    args = parser.parse_args(argv)
    for flag, kind, _, _ in OPTIONS:
        if kind is int and getattr(args, flag[2:].replace("-", "_")) < 1:
            parser.error(f"{flag} must be at least 1")
    if not args.skip_throughput and not (args.assets / "network" / "FaceReconModel.pb").exists():
        parser.error(f"{args.assets}: no full-size assets; run `python bench/make_assets.py` "
                     "first")
    photos = default_photos(args.photo)
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
        if not args.skip_alignment:
            report.update(part_alignment(args, work, photos))
        if not args.skip_memory:
            report.update(part_memory(args, work, photos))
        if not args.skip_ray:
            report.update(part_ray(args, work, photos))
        if args.compare:
            report["compare"] = compare_versions(args)
    if "ratio" in report:
        met = report["ratio"] >= TARGET_RATIO
        report["target"] = {"value": report["ratio"], "goal": f">= {TARGET_RATIO}", "met": met}
        print(f"\nTarget (issue 35), from this run: {'met' if met else 'NOT MET'}  extraction "
              f"/ network alone, {report['size']}, batch {report['batch_size']}: "
              f"{report['ratio']} (>= {TARGET_RATIO})")
    report["bench_s"] = round(time.perf_counter() - start, 1)
    report["load_average_end"] = round(os.getloadavg()[0], 2)
    print(f"\nbench time: {report['bench_s']:.0f} s, load average at the end "
          f"{report['load_average_end']:.2f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
