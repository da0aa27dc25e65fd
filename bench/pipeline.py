"""Times every stage of the demo's own code path on full-size synthetic assets.

    python bench/make_assets.py            # once: full-size model and ResNet-50 R-Net
    python bench/pipeline.py               # stage table + one JSON line
    python bench/pipeline.py --memory      # also: peak memory of demo.py, 20 vs 200 photos
    python bench/pipeline.py --landmarks detect   # also: MTCNN detection per photo

Photos: the shared photos of ../shared/data/images with their landmark files,
repeated under new names up to --images (generated photos when ../shared is
absent). For each batch size it prints, in ms per photo:

- each stage run on its own, one after the other: read+decode, alignment,
  network, decoder, render (decoder and render by difference of session runs
  that fetch more and more of the graph), writing .mat, .obj, .png and lm5;
- the streamed demo (`reconstruction.pipeline.run_folder`, the code `python demo.py` runs), total
  wall time per photo and photos per second;
- the network alone at the same batch size over the same photos;
- the ratio total / network (the target is at most 1.25 at batch 8);
- the peak resident memory of this process.

Then (unless --skip-compare) the code before issue 35 (`bench.code_versions`)
against this one with demo.py's --workers 0, 1 and 2, each a child process
of its own, alternated for --rounds rounds (medians): ms per photo of each
output kind written on its own, the network alone, the streamed demo and
photos per second, and issue 35's target (total / network at most 1.25,
batch 8, all four outputs), met or not.
"""
import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# A child of --compare measures the code named by bench.code_versions.CODE_ENV
# (read here directly: the code measured may have no bench.code_versions).
CODE_ROOT = pathlib.Path(os.environ.get("DEEP3DFACE_BENCH_CODE") or REPO_ROOT)
sys.path.insert(0, str(CODE_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import DEFAULT_ASSETS, SHARED_IMAGES, high_water_mb  # noqa: E402
from fileio import result_files  # noqa: E402
from fileio.images import find_images, read_image  # noqa: E402
from landmarks.files import read_landmarks  # noqa: E402
from photos import inputs as photo_inputs  # noqa: E402
from photos import outputs as photo_outputs  # noqa: E402
from preparation.photo import PreparedPhoto, prepare_photo  # noqa: E402
from preprocess_img import Preprocess  # noqa: E402
from reconstruction.pipeline import network_step, run_folder  # noqa: E402


def make_photos(folder, count):
    """Fills `folder` with `count` photos and their landmark files."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    rng = np.random.default_rng(0)
    for i in range(count):
        name = f"photo_{i:05d}"
        if sources:
            source = sources[i % len(sources)]
            shutil.copy(source, folder / f"{name}.jpg")
            shutil.copy(source.with_suffix(".txt"), folder / f"{name}.txt")
        else:
            from PIL import Image
            Image.fromarray(rng.integers(0, 255, (480, 400, 3), dtype=np.uint8)).save(
                folder / f"{name}.jpg", quality=90)
            np.savetxt(folder / f"{name}.txt",
                       [[160, 200], [240, 200], [200, 260], [170, 310], [230, 310]], fmt="%.1f")
    return find_images(folder)


def _batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _clock(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def time_stages(photos, reconstructor, triangles, lm3d, batch_size, out_dir):
    """Each stage on its own, over all photos; returns ms per photo by stage."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = dict.fromkeys(["read+decode", "alignment", "network", "decoder", "render",
                             "write .mat", "write .obj", "write .png", "write lm5"], 0.0)
    fetches = reconstructor.fetches
    decoder_fetches = {k: fetches[k] for k in ("coeff", "face_shape", "face_texture",
                                               "face_color", "lm_68p")}
    for batch in _batches(photos, batch_size):
        aligned = []
        for path in batch:
            (image, lm5), t = _clock(lambda p: (read_image(p), read_landmarks(
                p.with_suffix(".txt"))), path)
            seconds["read+decode"] += t
            (crop, lm_crop, params), t = _clock(Preprocess, image, lm5, lm3d)
            seconds["alignment"] += t
            crop = np.asarray(crop, np.float32)[0]
            aligned.append(PreparedPhoto(path.stem, crop, crop[:, :, ::-1].astype(np.uint8),
                                         lm_crop, lm5, params))
        feed = {reconstructor.images: np.stack([a.crop_bgr for a in aligned])}
        _, t_net = _clock(reconstructor.session.run, reconstructor.network_coeff, feed)
        _, t_dec = _clock(reconstructor.session.run, decoder_fetches, feed)
        results, t_all = _clock(reconstructor.session.run, fetches, feed)
        seconds["network"] += t_net
        seconds["decoder"] += max(t_dec - t_net, 0.0)
        seconds["render"] += max(t_all - t_dec, 0.0)
        for i, a in enumerate(aligned):
            one = {k: v[i] for k, v in results.items()}
            paths = photo_inputs.output_paths(out_dir, a.name)
            seconds["write .mat"] += _clock(photo_outputs.write_mat, paths[0], a, one)[1]
            seconds["write .obj"] += _clock(photo_outputs.write_mesh, paths[1], one, triangles)[1]
            seconds["write lm5"] += _clock(result_files.write_landmarks, paths[2], a.lm5_image)[1]
            seconds["write .png"] += _clock(photo_outputs.write_preview, paths[3], a, one)[1]
    return {k: 1000.0 * v / len(photos) for k, v in seconds.items()}


def time_network_only(photos, reconstructor, lm3d, batch_size):
    crops = []
    for path in photos:
        image = read_image(path)
        crop, _, _ = Preprocess(image, read_landmarks(path.with_suffix(".txt")), lm3d)
        crops.append(np.asarray(crop, np.float32)[0])
    start = time.perf_counter()
    for batch in _batches(crops, batch_size):
        reconstructor.network_only(np.stack(batch))
    return 1000.0 * (time.perf_counter() - start) / len(photos)


def time_streamed(photos, tools, batch_size, out_dir, outputs=photo_inputs.DEFAULT_OUTPUTS,
                  writers=None):
    """The demo's streamed run (demo.py's `run_job`) with `tools`' network; ms per photo.

    writers: demo.py's --workers (None: run_folder's default, for code that has none).
    """
    import functools

    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    align = functools.partial(prepare_photo, landmarks=tools.landmarks, lm3d=tools.lm3d)
    write = functools.partial(photo_outputs.write_outputs, output_dir=out_dir,
                              triangles=tools.triangles, outputs=outputs)
    options = {} if writers is None else {"writers": writers}
    done, failed = run_folder(
        photos, out_dir, network_step(tools.reconstructor), align, write,
        batch_size=batch_size, log=lambda line: print(line, file=sys.stderr), **options)
    elapsed = time.perf_counter() - start
    if failed:
        raise RuntimeError(f"streamed run failed on {failed[:3]}")
    return 1000.0 * elapsed / len(done)


def load_models(bfm_dir, model_path, outputs=photo_inputs.DEFAULT_OUTPUTS):
    """What demo.py loads for these outputs (`reconstruction.tools.load_tools`, as demo.py
    calls it, with --landmarks file)."""
    from reconstruction.tools import load_tools

    return load_tools(bfm_dir, model_path, render="mat" in outputs or "vis" in outputs,
                      mesh="mat" in outputs or "obj" in outputs, five="file")


def time_detection(photos, count=8):
    from landmarks.mtcnn import FivePointDetector

    detector = FivePointDetector()
    images = [np.asarray(read_image(p)) for p in photos[:count + 1]]
    detector(images[0])  # Loads MTCNN.
    start = time.perf_counter()
    for image in images[1:]:
        detector(image)
    return 1000.0 * (time.perf_counter() - start) / (len(images) - 1)


def demo_peak_memory_mb(assets, count, work_dir, batch_size=8):
    """Runs `python demo.py` over `count` photos; returns its peak RSS in MB.

    The peak is the child's own high-water mark (VmHWM), polled while it
    runs. (The rusage of a child is no use here: Linux carries the parent's
    peak into a child that it spawns, so it would report this process.)
    """
    photos_dir = work_dir / f"mem_in_{count}"
    make_photos(photos_dir, count)
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "demo.py"), "--input", str(photos_dir),
             "--output", str(work_dir / f"mem_out_{count}"), "--bfm-dir", str(assets / "BFM"),
             "--model", str(assets / "network" / "FaceReconModel.pb"),
             "--batch-size", str(batch_size), "--landmarks", "file"],
            stdout=subprocess.DEVNULL, stderr=errors)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, high_water_mb(process.pid) or 0.0)
            time.sleep(0.05)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"demo.py failed: {errors.read().decode()[-2000:]}")
    return peak


WRITER_COUNTS = (0, 1, 2)       # --workers compared in the same run
TARGET_OVER_NETWORK = 1.25      # issue 35: the streamed demo, batch 8, all outputs


def child_streamed(args):
    """One version of the code, one --workers: the streamed demo against the network alone.

    Prints one JSON line: ms a photo of the network alone, of the streamed
    demo (all four outputs, batch 8), and of writing each output kind on its
    own (`time_stages`' rows).
    """
    bfm_dir, model = args.assets / "BFM", args.assets / "network" / "FaceReconModel.pb"
    tools = load_models(bfm_dir, model)
    writers = None if args.child_streamed < 0 else args.child_streamed
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        photos = make_photos(work / "input", args.images)
        warm = photos[:8]
        time_stages(warm, tools.reconstructor, tools.triangles, tools.lm3d, 8, work / "warm")
        time_streamed(warm, tools, 8, work / "warm_streamed", writers=writers)
        stages = time_stages(photos, tools.reconstructor, tools.triangles, tools.lm3d, 8,
                             work / "stages")
        network = time_network_only(photos, tools.reconstructor, tools.lm3d, 8)
        streamed = time_streamed(photos, tools, 8, work / "streamed", writers=writers)
    tools.close()
    print(json.dumps({"code": str(CODE_ROOT), "writers": writers, "network_only_ms": network,
                      "streamed_total_ms": streamed,
                      "write_ms": {k[len("write "):]: v for k, v in stages.items()
                                   if k.startswith("write ")}}))


def compare_versions(args, log=lambda line: print(line, file=sys.stderr, flush=True)):
    """The code before issue 35 and this one, --workers 0, 1 and 2: one child each.

    Returns:
      The report's "compare" part: each child's figures, and the targets.
    """
    from bench.code_versions import BEFORE_SPEED, export_tree, run_alternated

    tree = export_tree(args.before or BEFORE_SPEED, log)
    common = ["--assets", str(args.assets), "--images", str(args.images)]
    versions = {"before": (tree, common + ["--child-streamed", "-1"])}
    versions.update({f"workers {n}": (None, common + ["--child-streamed", str(n)])
                     for n in WRITER_COUNTS})
    rounds = run_alternated(__file__, versions, args.rounds, log)
    runs = {name: _median_run(results) for name, results in rounds.items()}
    for run in runs.values():
        run["total_over_network"] = run["streamed_total_ms"] / run["network_only_ms"]
        run["images_per_s"] = 1000.0 / run["streamed_total_ms"]
    best = min((k for k in runs if k != "before"), key=lambda k: runs[k]["total_over_network"])
    value = runs[best]["total_over_network"]
    return {"before_revision": args.before or BEFORE_SPEED, "runs": runs, "targets": {
        f"streamed demo / network alone, batch 8, all outputs ({best})": {
            "value": round(value, 3), "goal": f"<= {TARGET_OVER_NETWORK}",
            "met": value <= TARGET_OVER_NETWORK}}}


def _median_run(results):
    """Each figure's median over the rounds of one version."""
    run = dict(results[0])
    for key in ("network_only_ms", "streamed_total_ms"):
        run[key] = float(np.median([r[key] for r in results]))
    run["write_ms"] = {k: float(np.median([r["write_ms"][k] for r in results]))
                       for k in results[0]["write_ms"]}
    run["rounds"] = len(results)
    return run


def _print_compare(compare):
    runs = compare["runs"]
    names = list(runs)
    print(f"\nBefore ({compare['before_revision']}) and after, batch 8, all four outputs, "
          "each in its own process, medians of rounds alternating them:")
    print(f"{'ms per photo':<28}" + "".join(f"{n:>12}" for n in names))
    kinds = list(runs["before"]["write_ms"])
    rows = [(f"write {k}", lambda r, k=k: r["write_ms"][k]) for k in kinds] + [
        ("network alone", lambda r: r["network_only_ms"]),
        ("streamed demo, total", lambda r: r["streamed_total_ms"]),
        ("photos per second", lambda r: r["images_per_s"]),
        ("total / network", lambda r: r["total_over_network"])]
    for label, get in rows:
        print(f"{label:<28}" + "".join(f"{get(runs[n]):>12.2f}" for n in names))
    print("Targets (issue 35, demo), from this run:")
    for label, target in compare["targets"].items():
        print(f"  {'met    ' if target['met'] else 'NOT MET'}  {label}: {target['value']} "
              f"({target['goal']})")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Stage timings of the demo pipeline.")
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS,
                        help="folder written by bench/make_assets.py")
    parser.add_argument("--images", type=int, default=48, help="photos per run (default 48)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--landmarks", choices=("file", "detect"), default="file",
                        help="detect: also time MTCNN detection per photo")
    parser.add_argument("--outputs", nargs="+", default=["mat,obj,lm5,vis", "mat"],
                        help="demo.py --outputs sets to stream, each timed against the same "
                             "network-only figure (default: all four, then mat alone)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure demo.py's peak memory over 20 and 200 photos")
    parser.add_argument("--skip-compare", action="store_true",
                        help="skip the comparison with the code before issue 35 and of "
                             "--workers 0, 1, 2 (children, about 3 minutes)")
    parser.add_argument("--before", default=None, help="the 'before' commit of the comparison")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of the comparison, its children alternated (2)")
    parser.add_argument("--child-streamed", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_streamed is not None:
        child_streamed(args)
        return 0
    try:
        output_sets = [photo_inputs.parse_outputs(text) for text in args.outputs]
    except ValueError as error:
        parser.error(str(error))
    bfm_dir, model = args.assets / "BFM", args.assets / "network" / "FaceReconModel.pb"
    if not model.exists():
        parser.error(f"{model} not found: run `python bench/make_assets.py` first")

    import tensorflow as tf

    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
              "tensorflow": tf.__version__, "images": args.images}
    start = time.perf_counter()
    tools = load_models(bfm_dir, model)
    reconstructor, triangles, lm3d = tools.reconstructor, tools.triangles, tools.lm3d
    report["load_models_s"] = round(time.perf_counter() - start, 2)
    # One set of tools per other --outputs set, loaded once for all batch sizes.
    subsets = {outputs: load_models(bfm_dir, model, outputs)
               for outputs in output_sets if tuple(outputs) != tuple(photo_inputs.DEFAULT_OUTPUTS)}

    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        photos = make_photos(work / "input", args.images)
        for batch_size in args.batch_sizes:
            warm = photos[:batch_size]  # First runs at a batch size compile and allocate.
            time_stages(warm, reconstructor, triangles, lm3d, batch_size, work / "warm")
            stages = time_stages(photos, reconstructor, triangles, lm3d, batch_size,
                                 work / f"stages_{batch_size}")
            network = time_network_only(photos, reconstructor, lm3d, batch_size)
            total = time_streamed(photos, tools, batch_size, work / f"streamed_{batch_size}")
            report[f"batch_{batch_size}"] = {
                "stages_ms": {k: round(v, 2) for k, v in stages.items()},
                "network_only_ms": round(network, 2),
                "streamed_total_ms": round(total, 2),
                "images_per_s": round(1000.0 / total, 2),
                "total_over_network": round(total / network, 3),
            }
            by_outputs = report[f"batch_{batch_size}"]["streamed_by_outputs"] = {}
            for outputs in output_sets:
                name = ",".join(outputs)
                if tuple(outputs) == tuple(photo_inputs.DEFAULT_OUTPUTS):
                    streamed = total       # The default run above.
                else:
                    subset = subsets[outputs]
                    folder = work / f"streamed_{batch_size}_{'_'.join(outputs)}"
                    time_streamed(photos[:batch_size], subset, batch_size, folder / "warm",
                                  outputs)
                    streamed = time_streamed(photos, subset, batch_size, folder, outputs)
                by_outputs[name] = {"streamed_total_ms": round(streamed, 2),
                                    "total_over_network": round(streamed / network, 3)}
        if args.landmarks == "detect":
            report["detection_ms"] = round(time_detection(photos), 1)
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if args.memory:
            small = demo_peak_memory_mb(args.assets, 20, work)
            large = demo_peak_memory_mb(args.assets, 200, work)
            report["demo_peak_rss_mb"] = {"20": round(small, 1), "200": round(large, 1),
                                          "ratio": round(large / small, 3)}
    tools.close()
    for subset in subsets.values():
        subset.close()
    if not args.skip_compare:
        report["compare"] = compare_versions(args)
    _print_table(report, args.batch_sizes)
    if "compare" in report:
        _print_compare(report["compare"])
    print(json.dumps(report))
    return 0


def _print_table(report, batch_sizes):
    print(f"machine: {report['machine']}, GPU: {report['gpu'] or 'none'}, "
          f"TensorFlow {report['tensorflow']}, {report['images']} photos")
    stages = list(report[f"batch_{batch_sizes[0]}"]["stages_ms"])
    print(f"{'ms per photo':<24}" + "".join(f"{'batch ' + str(b):>12}" for b in batch_sizes))
    rows = [(name, lambda r, n=name: r["stages_ms"][n]) for name in stages] + [
        ("network alone", lambda r: r["network_only_ms"]),
        ("streamed demo, total", lambda r: r["streamed_total_ms"]),
        ("photos per second", lambda r: r["images_per_s"]),
        ("total / network", lambda r: r["total_over_network"]),
    ]
    for name, get in rows:
        print(f"{name:<24}" + "".join(f"{get(report[f'batch_{b}']):>12.2f}" for b in batch_sizes))
    names = list(report[f"batch_{batch_sizes[0]}"]["streamed_by_outputs"])
    for name in names:
        print(f"{'--outputs ' + name + ' / network':<34}" + "".join(
            f"{report[f'batch_{b}']['streamed_by_outputs'][name]['total_over_network']:>12.2f}"
            for b in batch_sizes))
    if "detection_ms" in report:
        print(f"MTCNN detection: {report['detection_ms']:.1f} ms per photo")
    print(f"peak RSS of this process: {report['peak_rss_mb']:.0f} MB")
    if "demo_peak_rss_mb" in report:
        m = report["demo_peak_rss_mb"]
        print(f"demo.py peak RSS: {m['20']:.0f} MB (20 photos), {m['200']:.0f} MB (200 photos), "
              f"ratio {m['ratio']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
