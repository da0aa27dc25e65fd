"""Times one training step of the R-Net, part by part, on a full-size synthetic face model.

    python bench/make_assets.py            # once: the full-size synthetic BFM (35,709 vertices)
    python bench/train.py [--batch-size 16] [--steps 10]

Face model: bench/make_assets.py's BFM in ~/.cache/deep3dface-bench/BFM (--assets); when it
is missing, a full-size BFM09-format model is written there first (tests.synthetic_assets.
write_bfm09 with the release's public index files shipped in BFM/), so the
front mesh has the real 35,709 vertices and 70,789 triangles.

Data: the repository's input/ photos prepared as `train.py prepare` does (their 5-point
files, synthetic 68-point files), read back with `training.data.TrainingSet`; a batch of
--batch-size repeats them.

It prints, in ms per step (warm: after --warmup calls that trace and compile; the median
of --steps calls):

- R-Net forward+backward alone: a GradientTape over rnet(images, training=True) with a
  dummy scalar loss, gradients w.r.t. every trainable variable;
- decoder+render forward+backward: `training.model.TrainingModel` (Face3D decode, the
  full render and the face-region render, every loss term) on fixed coefficients,
  gradient w.r.t. the coefficients: the mean shape in random poses and lights (a smooth
  face, as the real model gives and as the untrained R-Net's zero output gives in the
  whole step), and, as an extra row, with random identity, expression and albedo too
  (on the synthetic bases, random per-vertex noise: a spiky mesh, slower to raster);
- identity network forward+backward: a TINY STAND-IN (tests.synthetic_network.
  write_tiny_identity_net, one 5x5 convolution). FaceNet 20170512-110547, the release's
  identity network, is a user asset that cannot be had here: its real cost is NOT
  measured (the tiny net measures only the wrapper, the resize to 160 and the loss);
- optimizer apply: Adam (as `training.loop.build` makes it) on the R-Net's variables with
  given gradients;
- reading a batch from disk (the loop reads one batch ahead in threads, overlapping it);
- the whole compiled step (`training.loop.make_train_step`) without the identity term
  (what `train.py` runs without --id-net), and with the tiny stand-in identity net, each
  call from the same state (weights and Adam's state restored, untimed, before it: the
  untrained R-Net, whose zero heads give the mean face). The render's cost depends on the
  predicted mesh, so a step whose R-Net predicts the synthetic bases' spiky shapes costs
  more (see the random-shape decoder row);

plus steps/s and images/s of the whole step, and the peak resident memory (VmHWM of
/proc/self/status) of the process and, where /proc/self/clear_refs can reset it, of each
part. The last line is one JSON object of all figures.
"""
import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import DEFAULT_ASSETS, INDEX_DIR  # noqa: E402
from facemodel.coefficients import BLOCKS  # noqa: E402

DECODER = "decoder+render fwd+bwd"
DECODER_SPIKY = "decoder+render, random shape (spiky)"
WHOLE = "whole step, no identity term"
WHOLE_ID = "whole step + tiny identity net"


def vm_hwm_mb():
    """Peak resident memory of this process (VmHWM), MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak():
    """Resets VmHWM to the current RSS (Linux: '5' into clear_refs); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def load_average():
    with open("/proc/loadavg") as stream:
        return [float(v) for v in stream.read().split()[:3]]


def ensure_bfm(assets, log):
    """The full-size synthetic BFM folder, written when missing; returns its path."""
    import load_data
    from tests.synthetic_assets import write_bfm09

    bfm_dir = assets / "BFM"
    if not (bfm_dir / "01_MorphableModel.mat").exists() and \
            not (bfm_dir / load_data.FRONT_MODEL_NAME).exists():
        bfm_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        write_bfm09(bfm_dir, seed=0, index_dir=INDEX_DIR)
        log(f"{bfm_dir}: full-size synthetic BFM09 written in "
            f"{time.perf_counter() - start:.0f} s")
    load_data.transferBFM09(bfm_dir)
    return bfm_dir


def prepare_samples(bfm_dir, root):
    """Prepares the input/ photos (5-point files, synthetic 68 points) into root/data."""
    import load_data
    from landmarks.sources import PhotoLandmarks
    from training.prepare import prepare_folder

    photos = root / "photos"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for lm5_path in sorted((REPO_ROOT / "input").glob("*.txt")):
        images = [p for p in lm5_path.parent.glob(lm5_path.stem + ".*") if p.suffix != ".txt"]
        if not images:
            continue
        shutil.copy(images[0], photos / images[0].name)
        lm5 = np.loadtxt(lm5_path)
        np.savetxt(photos / lm5_path.name, lm5)
        np.savetxt(photos / f"{lm5_path.stem}_lm68.txt",
                   lm5.mean(0) + rng.uniform(-50, 50, (68, 2)))

    data = root / "data"        # every photo has its 5- and 68-point files: no detector
    done, _, failed = prepare_folder(sorted(p for p in photos.iterdir() if p.suffix != ".txt"),
                                     data, load_data.load_lm3d(bfm_dir),
                                     PhotoLandmarks("file", None))
    if failed or not done:
        raise SystemExit(f"preparing the input/ photos failed: {failed}")
    return data, done


def measure(fn, warmup, steps, before=None):
    """Calls fn warmup times then steps times, each after `before` (untimed) when given.

    Returns:
      (seconds of the first call, [ms of each timed call]).
    """
    times = []
    for _ in range(warmup + steps):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], [1000.0 * t for t in times[warmup:]]


class FixedCoefficients:
    """Stands in for the R-Net in `TrainingModel`: returns the same coefficients."""

    def __init__(self, coeff):
        self.coeff = coeff

    def __call__(self, images, training=True):
        del images, training
        return self.coeff


def main(argv=None):
    parser = argparse.ArgumentParser(description="Timings of one R-Net training step.")
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS,
                        help="folder of bench/make_assets.py (its BFM/ is used)")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per step (16)")
    parser.add_argument("--steps", type=int, default=10, help="timed calls per part (10)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls first (the first traces and compiles) (2)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 1:
        parser.error("--batch-size, --steps and --warmup must be at least 1")

    def log(line):
        print(line, file=sys.stderr, flush=True)

    import tensorflow as tf

    from networks.identity import IdentityNetwork
    from tests.synthetic_assets import random_coefficients
    from tests.synthetic_network import write_tiny_identity_net
    from training import losses
    from training.data import TrainingSet
    from training.loop import TrainConfig, build, make_train_step
    from training.model import TrainingModel

    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
              "tensorflow": tf.__version__, "batch_size": args.batch_size,
              "timed_steps": args.steps, "warmup": args.warmup,
              "load_average_start": load_average()}
    batch_size = args.batch_size
    bfm_dir = ensure_bfm(args.assets, log)
    part_peaks = {}
    can_reset = None        # Tried at the first part, after the setup's peak is read.
    times = {}
    first_call = {}

    def run(name, fn, before=None):
        nonlocal can_reset
        if can_reset is None:
            part_peaks["setup (build, data)"] = vm_hwm_mb()
            can_reset = reset_peak()
        elif can_reset:
            reset_peak()
        log(f"timing {name} ...")
        first, ms = measure(fn, args.warmup, args.steps, before)
        first_call[name] = first
        times[name] = ms
        part_peaks[name] = vm_hwm_mb()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        data_dir, n_samples = prepare_samples(bfm_dir, tmp)
        data = TrainingSet([data_dir], seed=0)
        config = TrainConfig(data=[str(data_dir)], log_dir=str(tmp / "run"),
                             bfm_dir=str(bfm_dir), batch_size=batch_size)
        start = time.perf_counter()
        parts, _ = build(config, log=lambda line: None)
        report["build_s"] = round(time.perf_counter() - start, 2)
        rnet, optimizer = parts["rnet"], parts["optimizer"]
        initial_weights = rnet.get_weights()
        initial_optimizer = [v.numpy() for v in optimizer.variables]
        face = parts["model"].face
        report["mesh"] = {"vertices": int(face.facemodel.n_vertices),
                          "triangles": int(face.facemodel.face_buf.shape[0]),
                          "region_triangles": int(face.facemodel.mask_face_buf.shape[0])}
        report["rnet_parameters"] = int(sum(np.prod(v.shape) for v in rnet.trainable_variables))
        batch = data.batch(0, batch_size)
        images = tf.constant(batch["images"])
        landmarks = tf.constant(batch["landmarks"])
        masks = tf.constant(batch["masks"])
        variables = rnet.trainable_variables

        # The data: one batch read from disk (PNG decode, 2 threads as the loop).
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as pool:
            step_counter = iter(range(10 ** 9))
            run("read batch", lambda: data.batch(next(step_counter), batch_size, pool))

        # R-Net alone.
        @tf.function
        def rnet_step(x):
            with tf.GradientTape() as tape:
                coeff = rnet(x, training=True)
                loss = tf.reduce_mean(tf.square(coeff))
            return tape.gradient(loss, variables)

        run("rnet fwd+bwd", lambda: rnet_step(images))

        # Decoder + both renders + losses, from fixed coefficients: a smooth (mean-shape)
        # face in random poses and lights, as the real model's smooth faces; and the same
        # with random identity, expression and albedo, which on the synthetic bases (random
        # per-vertex noise) is a spiky mesh whose overlapping triangles cost more to raster.
        posed = random_coefficients(seed=1, batch=batch_size)
        smooth = posed.copy()
        smooth[:, :BLOCKS["albedo"].stop] = 0.0       # identity, expression and albedo
        coeff = tf.Variable(smooth, name="coeff")
        decoder_model = TrainingModel(FixedCoefficients(coeff), face, None)

        @tf.function
        def decoder_step(x, lm, mask):
            with tf.GradientTape() as tape:
                terms, outputs = decoder_model(x, lm, mask, training=True)
            return terms["total"], tape.gradient(terms["total"], coeff), outputs["render"]

        run(DECODER, lambda: decoder_step(images, landmarks, masks))
        render_rgba = decoder_step(images, landmarks, masks)[2]
        coeff.assign(posed)
        run(DECODER_SPIKY, lambda: decoder_step(images, landmarks, masks))

        # The tiny stand-in identity network, on a render and the photos.
        id_path = write_tiny_identity_net(tmp / "tiny_facenet.pb", size=160)
        identity_net = IdentityNetwork(id_path)
        render_bgr = tf.Variable(tf.reverse(render_rgba[..., :3], axis=[-1]), name="render")

        @tf.function
        def identity_step(x):
            with tf.GradientTape() as tape:
                loss = losses.identity_loss(identity_net(render_bgr), identity_net(x))
            return loss, tape.gradient(loss, render_bgr)

        run("identity net fwd+bwd (tiny stand-in)", lambda: identity_step(images))

        # Adam on the R-Net's variables, gradients given.
        gradients = [tf.constant(g) for g in rnet_step(images)]

        @tf.function
        def apply_step(grads):
            optimizer.apply(grads, variables)

        run("optimizer apply (Adam)", lambda: apply_step(gradients))

        # The whole compiled step, as the loop runs it, each call from the same state (the
        # untrained R-Net, whose zero heads give the mean face): the raster's cost depends on
        # the predicted shapes, and on the synthetic bases any shape coefficient makes a
        # spiky mesh (see the random-shape decoder row), so letting the weights drift from
        # call to call would time a different mesh at every call.
        def restore():
            rnet.set_weights(initial_weights)
            for variable, value in zip(optimizer.variables, initial_optimizer, strict=True):
                variable.assign(value)

        counter = tf.Variable(0, dtype=tf.int64, trainable=False)   # the loop's step
        train_step = make_train_step(TrainingModel(rnet, face, None), optimizer, counter)

        def whole():
            terms = train_step(images, landmarks, masks)[0]
            float(terms["total"])

        run(WHOLE, whole, restore)
        train_step_id = make_train_step(TrainingModel(rnet, face, identity_net), optimizer,
                                        counter)

        def whole_id():
            terms = train_step_id(images, landmarks, masks)[0]
            float(terms["total"])

        run(WHOLE_ID, whole_id, restore)

    report["load_average_end"] = load_average()
    report["samples_prepared"] = n_samples
    report["ms_per_step_median"] = {k: round(statistics.median(v), 1) for k, v in times.items()}
    report["ms_per_step_min"] = {k: round(min(v), 1) for k, v in times.items()}
    report["ms_per_step_max"] = {k: round(max(v), 1) for k, v in times.items()}
    report["first_call_s"] = {k: round(v, 2) for k, v in first_call.items()}
    parts_sum = sum(report["ms_per_step_median"][k] for k in (
        "rnet fwd+bwd", DECODER, "optimizer apply (Adam)"))
    report["sum_of_parts_ms"] = round(parts_sum, 1)
    whole_ms = report["ms_per_step_median"][WHOLE]
    report["steps_per_s"] = round(1000.0 / whole_ms, 3)
    report["images_per_s"] = round(1000.0 * batch_size / whole_ms, 2)
    whole_id_ms = report["ms_per_step_median"][WHOLE_ID]
    report["steps_per_s_tiny_identity"] = round(1000.0 / whole_id_ms, 3)
    report["peak_rss_mb"] = round(max(part_peaks.values()) if can_reset else vm_hwm_mb(), 1)
    if can_reset:
        report["peak_rss_mb_by_part"] = {k: round(v, 1) for k, v in part_peaks.items()}
    report["identity_net"] = ("tiny stand-in (one 5x5 conv); FaceNet is a user asset not "
                              "available here, its real cost is not measured")
    print_table(report)
    print(json.dumps(report))
    return 0


def print_table(report):
    print(f"machine: {report['machine']}, GPU: {report['gpu'] or 'none'}, TensorFlow "
          f"{report['tensorflow']}; load average {report['load_average_start'][0]:.2f} at the "
          f"start, {report['load_average_end'][0]:.2f} at the end")
    mesh = report["mesh"]
    print(f"face model: full-size synthetic, {mesh['vertices']} vertices, {mesh['triangles']} "
          f"triangles ({mesh['region_triangles']} in the face region render); R-Net "
          f"{report['rnet_parameters'] / 1e6:.1f} M parameters; batch {report['batch_size']}; "
          f"median of {report['timed_steps']} warm calls after {report['warmup']}")
    peaks = report.get("peak_rss_mb_by_part", {})
    print(f"{'part':<40}{'median ms':>11}{'min':>9}{'max':>9}{'first s':>9}{'peak MB':>9}")
    for name, median in report["ms_per_step_median"].items():
        peak = f"{peaks[name]:>9.0f}" if name in peaks else f"{'':>9}"
        print(f"{name:<40}{median:>11.1f}{report['ms_per_step_min'][name]:>9.1f}"
              f"{report['ms_per_step_max'][name]:>9.1f}{report['first_call_s'][name]:>9.1f}"
              + peak)
    print(f"{'sum: rnet + decoder/render + Adam':<40}{report['sum_of_parts_ms']:>11.1f}")
    print(f"whole step: {report['steps_per_s']:.3f} steps/s, {report['images_per_s']:.2f} "
          f"images/s (with the tiny identity net: {report['steps_per_s_tiny_identity']:.3f} "
          "steps/s)")
    print("identity net: a TINY STAND-IN; FaceNet (the release's identity network) is a user "
          "asset that cannot be had here, so its real cost is not measured")
    print(f"peak RSS (VmHWM) of this process: {report['peak_rss_mb']:.0f} MB"
          + (f" (setup: {peaks['setup (build, data)']:.0f} MB; per part above: VmHWM reset "
             "before each part)" if peaks else ""))


if __name__ == "__main__":
    sys.exit(main())
