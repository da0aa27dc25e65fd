"""One honest training experiment: does the trainer learn faces it has not seen?

    python bench/train_experiment.py [--train 400] [--heldout 100] [--minutes 30]
                                     [--batch-size 16] [--out DIR]

Data: synthetic faces with known coefficients. A small synthetic BFM
(tests.synthetic_assets.write_bfm09(seed=3, bases=--bases), converted by
load_data.transferBFM09: 672 vertices, a procedural face-shaped cap), random coefficients
(identity N(0, 1), expression N(0, --exp-std), albedo N(0, 0.5); pose:
angles U(+-0.3) rad about x and y, U(+-0.15) roll, translation U(+-0.15) dm in x and y,
U(+-0.5) dm in z; lighting: first SH coefficient per colour U(--light0) plus a little per
colour, the other 8 bands U(+-0.1) shared plus U(+-0.02) per colour), rendered by
face_decoder.Face3D (Reconstruction_Block, render_images=True) at 224x224 and composited
with the render's alpha over random 224x224 crops of the shared photos
(../shared/data/images/*.jpg; the repository's input/ photos when ../shared is absent).
Each face is written as a prepared sample in the release's layout
(training.data.write_sample): the crop, the decoder's 68 landmarks (landmark_p) and a
skin mask: preparation.skin.skin_mask_png of the crop when the Bayes classifier fires on the
synthetic albedo (mean skin probability over the face's pixels at least 0.5), else
255 * the render's coverage alpha (--mask auto; the output says which was used).

The model's shape and expression components are smooth by default (--bases smooth:
each a sum of random sinusoids of the vertex positions, wavelengths 2 dm down to 0.4
dm, the same size of deformation as the noise ones), because that is what a morphable
model's components are: a component of the real BFM moves whole regions of the face.
With --bases noise (the tests' model) every component moves every vertex independently,
so the 68 landmarks say little about the other vertices and a shape is a noise pattern
seen only through shading.

Two departures from the obvious recipe, both forced by the synthetic model and both
flags: (1) expression std 0.15, not 1: the synthetic expression basis (std_exp.txt made
up as 3e5 / (1 + k)^0.7 micrometres, random per-vertex directions) moves each vertex by
about 28 mm at std 1 and shreds the mesh, against about 4 mm for identity at std 1; at
0.15 both move vertices by about 4 mm. (2) first SH coefficient U(0, 0.3), not 0.3-0.6:
the decoder adds 0.8 (face_decoder.AMBIENT_LIGHT) to it, and with 0.3-0.6 about 30% of
the face's pixels of the bright synthetic albedo (RGB 200, 150, 120) clip at 255.

Training: training.loop.train (init none: random weights, no identity network, batch
--batch-size, Adam at --learning-rate, batch norm decay --bn-decay) for a fixed
wall-clock budget (--minutes, counted from the call of train(), so it includes building
and compiling): the progress callback raises KeyboardInterrupt when the time is up, and
train() saves a checkpoint and returns. The batch norm decay is 0.99, not the release's
0.997: at 0.997 the moving averages keep 22% of their initial values (mean 0, variance
1, while the R-Net sees raw 0-255 pixels) after 500 steps, and inference mode is then
far off the batch statistics the network was trained with; at 0.99 that is under 1% after
500 steps. Every loss term is recorded at every step.

Evaluation on the held-out faces (and, to see the generalisation gap, on as many of the
training faces), with the trained R-Net in inference mode (training=False: batch norm's
moving averages) and the decoder:
  (a) landmark error: mean over faces and the 68 points of the pixel distance between the
      predicted and the true landmarks; also divided by each face's true inter-ocular
      distance (outer eye corners, points 36 and 45), averaged over faces;
  (b) shape error: mean Euclidean distance per vertex, in millimetres (1 dm = 100 mm),
      between the predicted and the true unposed shapes (identity + expression,
      Face3D.face_shape, before rotation and translation);
  (c) both for the mean-face baseline: all coefficients zero (mean shape; zero pose for
      the landmarks), which is also what the untrained R-Net outputs (zero heads).
Diagnostics: pose errors; the trained R-Net with batch statistics (training=True); and,
last, in inference mode again after re-estimating the batch norms' moving statistics on
--recalibrate-batches batches of training faces (momentum 0.9 while doing so), which
shows how much of any gap between inference mode and batch statistics is the moving
averages' lag.

It prints the run (steps, time, final losses), baseline vs trained for both metrics, a
loss-curve table (each 10% of the steps: the mean of every term over that tenth), and
ends with one JSON line of all figures.
"""
import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import SHARED_IMAGES  # noqa: E402
from facemodel.coefficients import BLOCKS, LENGTH, SIZES  # noqa: E402

TERMS = ("total", "photo", "landmark", "regularization", "reflectance", "gamma")
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
MM_PER_DM = 100.0


def load_average():
    with open("/proc/loadavg") as stream:
        return float(stream.read().split()[0])


def background_photos():
    """The background photos: the shared ones, else input/'s; [] when there are none."""
    if SHARED_IMAGES.is_dir():
        photos = sorted(SHARED_IMAGES.glob("*.jpg"))
        if photos:
            return photos, str(SHARED_IMAGES)
    photos = sorted(p for p in (REPO_ROOT / "input").iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return photos, str(REPO_ROOT / "input")


def random_crop(rng, image):
    """A random 224x224 RGB crop (the photo scaled up first when it is smaller)."""
    from PIL import Image

    width, height = image.size
    if min(width, height) < 224:
        scale = 224.0 / min(width, height)
        image = image.resize((max(224, round(width * scale)), max(224, round(height * scale))),
                             Image.BILINEAR)
        width, height = image.size
    x = int(rng.integers(0, width - 224 + 1))
    y = int(rng.integers(0, height - 224 + 1))
    return np.asarray(image.crop((x, y, x + 224, y + 224)), np.float32)


def sample_coefficients(rng, count, args):
    """[count, 257] float32 coefficients of faces in view and lit (see the module doc)."""
    coeff = np.zeros((count, LENGTH), np.float64)
    for name, std in (("identity", args.id_std), ("expression", args.exp_std),
                      ("albedo", args.tex_std)):
        coeff[:, BLOCKS[name]] = std * rng.standard_normal((count, SIZES[name]))
    pitch, _, roll = range(BLOCKS["angles"].start, BLOCKS["angles"].stop)
    coeff[:, pitch:roll] = rng.uniform(-0.3, 0.3, (count, 2))    # pitch, yaw
    coeff[:, roll] = rng.uniform(-0.15, 0.15, count)
    gamma = np.zeros((count, 3, 9))
    gamma[:, :, 0] = rng.uniform(*args.light0, (count, 1)) + rng.uniform(-0.05, 0.05, (count, 3))
    gamma[:, :, 1:] = rng.uniform(-0.1, 0.1, (count, 1, 8)) + rng.uniform(-0.02, 0.02,
                                                                          (count, 3, 8))
    coeff[:, BLOCKS["lighting"]] = gamma.reshape(count, SIZES["lighting"])
    x, _, z = range(BLOCKS["translation"].start, BLOCKS["translation"].stop)
    coeff[:, x:z] = rng.uniform(-0.15, 0.15, (count, 2))          # x, y (dm)
    coeff[:, z] = rng.uniform(-0.5, 0.5, count)                   # z (dm)
    return coeff.astype(np.float32)


def make_set(root, count, seed, face, photos, args, mask_mode, log):
    """Renders `count` faces into prepared folder `root`; returns (coeff, stats, mask_mode)."""
    from PIL import Image

    from preparation.skin import skin_mask_png
    from training.data import write_sample

    rng = np.random.default_rng(seed)
    coeff = sample_coefficients(rng, count, args)
    backgrounds = [Image.open(p).convert("RGB") for p in photos]
    skin_on_face, skin_off_face, coverage, clipped = [], [], [], []
    for start in range(0, count, 32):
        chunk = coeff[start:start + 32]
        face.Reconstruction_Block(chunk, len(chunk), render_images=True)
        renders = face.render_imgs.numpy()
        landmarks = face.landmark_p.numpy()
        made = []
        for i in range(len(chunk)):
            rgb, alpha = renders[i, :, :, :3], renders[i, :, :, 3:4]
            background = random_crop(rng, backgrounds[int(rng.integers(len(backgrounds)))])
            crop_bgr = np.rint(alpha * rgb + (1.0 - alpha) * background)[:, :, ::-1]
            crop_bgr = np.clip(crop_bgr, 0, 255).astype(np.uint8)
            on = alpha[..., 0] > 0.5
            skin_png = skin_mask_png(crop_bgr)
            probability = skin_png[..., 0] / 255.0
            skin_on_face.append(float(probability[on].mean()) if on.any() else 0.0)
            skin_off_face.append(float(probability[~on].mean()) if (~on).any() else 0.0)
            coverage.append(float(on.mean()))
            clipped.append(float((rgb[on] >= 254.5).any(-1).mean()) if on.any() else 0.0)
            made.append((crop_bgr, skin_png, alpha))
        if mask_mode == "auto":     # Decided once, on the first chunk of faces.
            mask_mode = "skin" if np.mean(skin_on_face) >= 0.5 else "alpha"
            log(f"mask: the skin classifier gives {np.mean(skin_on_face):.2f} on average over "
                f"the faces' pixels of the first {len(skin_on_face)} faces -> {mask_mode}")
        for i, (crop_bgr, skin_png, alpha) in enumerate(made):
            if mask_mode == "skin":
                mask = skin_png[..., 0]
            else:
                mask = np.rint(255.0 * alpha[..., 0]).astype(np.uint8)
            write_sample(root, f"face_{start + i:05d}", crop_bgr, landmarks[i], mask)
    stats = {"skin_probability_on_face": round(float(np.mean(skin_on_face)), 3),
             "skin_probability_off_face": round(float(np.mean(skin_off_face)), 3),
             "face_coverage": round(float(np.mean(coverage)), 3),
             "clipped_face_pixels": round(float(np.mean(clipped)), 3)}
    np.save(pathlib.Path(root) / "coeff.npy", coeff)
    return coeff, stats, mask_mode


def decode(face, coeff):
    """(landmarks [B,68,2] px y down, unposed shapes [B,N,3] dm) of coefficients."""
    face.Reconstruction_Block(coeff, len(coeff), render_images=False)
    return face.landmark_p.numpy(), face.face_shape.numpy()


def metrics(face, predicted, truth):
    """Landmark and shape errors of predicted against true coefficients."""
    lm_p, shape_p = decode(face, predicted)
    lm_t, shape_t = decode(face, truth)
    per_face = np.linalg.norm(lm_p - lm_t, axis=-1).mean(axis=1)                  # [B]
    inter_ocular = np.linalg.norm(lm_t[:, LEFT_EYE_OUTER] - lm_t[:, RIGHT_EYE_OUTER], axis=-1)
    angles = np.degrees(np.abs(predicted[:, BLOCKS["angles"]] - truth[:, BLOCKS["angles"]]))
    translation = np.abs(predicted[:, BLOCKS["translation"]]
                         - truth[:, BLOCKS["translation"]]) * MM_PER_DM
    return {"landmark_px": round(float(per_face.mean()), 3),
            "landmark_over_iod": round(float((per_face / inter_ocular).mean()), 4),
            "shape_mm": round(float(np.linalg.norm(shape_p - shape_t, axis=-1).mean()
                                    * MM_PER_DM), 3),
            "angle_error_deg": [round(float(v), 2) for v in angles.mean(axis=0)],
            "translation_error_mm": [round(float(v), 2) for v in translation.mean(axis=0)]}


def predict(rnet, root, count, batch_size, training):
    """The R-Net's coefficients for the first `count` samples of prepared folder `root`."""
    import tensorflow as tf

    from training.data import read_sample

    @tf.function(reduce_retracing=True)
    def run(images):
        return rnet(images, training=training)

    out = []
    for start in range(0, count, batch_size):
        images = np.stack([read_sample(root, f"face_{i:05d}")[0]
                           for i in range(start, min(start + batch_size, count))])
        out.append(run(tf.constant(images)).numpy())
    return np.concatenate(out)


def recalibrate_batch_norm(rnet, root, count, batch_size, batches, seed):
    """Re-estimates every batch norm's moving statistics on `batches` random batches of the
    first `count` samples of `root` (momentum 0.9 while doing it; no weight changes)."""
    import keras
    import tensorflow as tf

    from training.data import read_sample

    layers = [layer for layer in rnet.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.9

    @tf.function
    def run(images):
        return rnet(images, training=True)

    rng = np.random.default_rng(seed)
    for _ in range(batches):
        chosen = rng.choice(count, size=min(batch_size, count), replace=False)
        run(tf.constant(np.stack([read_sample(root, f"face_{i:05d}")[0] for i in chosen])))
    for layer, momentum in zip(layers, saved, strict=True):
        layer.momentum = momentum


def curve_table(history, parts=10):
    """Mean of each term over each tenth of the recorded steps."""
    rows = []
    steps = len(history)
    if steps == 0:
        return rows
    edges = np.unique(np.linspace(0, steps, parts + 1).round().astype(int))
    for lo, hi in zip(edges[:-1], edges[1:]):
        chunk = history[lo:hi]
        row = {"step": chunk[-1]["step"], "time_s": round(chunk[-1]["time_s"], 1)}
        for name in TERMS:
            row[name] = round(float(np.mean([h[name] for h in chunk])), 5)
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train on synthetic faces, evaluate held out.")
    parser.add_argument("--train", type=int, default=400, help="training faces (400)")
    parser.add_argument("--heldout", type=int, default=100, help="held-out faces (100)")
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="wall-clock training budget, build and compile included (30)")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per step (16)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam (1e-4)")
    parser.add_argument("--bn-decay", type=float, default=0.99,
                        help="batch norm moving-average decay (0.99; see the module doc)")
    parser.add_argument("--bases", choices=("smooth", "noise"), default="smooth",
                        help="the synthetic model's shape and expression components (smooth; "
                             "see the module doc)")
    parser.add_argument("--summary-every", type=int, default=10,
                        help="steps between TensorBoard scalars and progress lines (10)")
    parser.add_argument("--id-std", type=float, default=1.0, help="identity std (1)")
    parser.add_argument("--exp-std", type=float, default=0.15,
                        help="expression std (0.15; see the module doc)")
    parser.add_argument("--tex-std", type=float, default=0.5, help="albedo std (0.5)")
    parser.add_argument("--light0", type=float, nargs=2, default=(0.0, 0.3), metavar=("LO", "HI"),
                        help="range of the first SH coefficient, before the decoder's +0.8 "
                             "(0 0.3)")
    parser.add_argument("--mask", choices=("auto", "skin", "alpha"), default="auto",
                        help="skin masks: the classifier, the render's alpha, or the "
                             "classifier when it fires on the faces (auto)")
    parser.add_argument("--recalibrate-batches", type=int, default=50,
                        help="diagnostic: batches of training faces to re-estimate the batch "
                             "norms' moving statistics on, after the main evaluation (50; 0: "
                             "skip)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (0)")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="work folder (default: a new folder under /tmp, kept)")
    args = parser.parse_args(argv)
    if min(args.train, args.heldout, args.batch_size, args.summary_every) < 1:
        parser.error("--train, --heldout, --batch-size and --summary-every must be at least 1")

    def log(line):
        print(line, flush=True)

    photos, photo_source = background_photos()
    if not photos:
        log(f"no background photos ({SHARED_IMAGES} and input/ hold none): skipped")
        return 0
    if not SHARED_IMAGES.is_dir():
        log(f"{SHARED_IMAGES} is absent: backgrounds from {photo_source} instead")

    import tensorflow as tf

    import load_data
    from face_decoder import Face3D
    from tests.synthetic_assets import write_bfm09
    from training.loop import TrainConfig, train
    from training.rnet import build_rnet

    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="deep3dface-train-experiment-"))
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
              "tensorflow": tf.__version__, "out": str(out), "backgrounds": photo_source,
              "n_backgrounds": len(photos), "train_faces": args.train,
              "heldout_faces": args.heldout, "batch_size": args.batch_size,
              "learning_rate": args.learning_rate, "bn_decay": args.bn_decay,
              "bases": args.bases, "budget_minutes": args.minutes,
              "coefficients": {"id_std": args.id_std, "exp_std": args.exp_std,
                               "tex_std": args.tex_std, "light0": list(args.light0)},
              "seed": args.seed}
    log(f"work folder: {out}")

    # The face model and the data.
    start = time.perf_counter()
    bfm_dir = out / "BFM"
    if not (bfm_dir / "01_MorphableModel.mat").exists():
        write_bfm09(bfm_dir, seed=3, bases=args.bases)
    load_data.transferBFM09(bfm_dir)
    face = Face3D(bfm_dir / load_data.FRONT_MODEL_NAME)
    report["mesh_vertices"] = int(face.facemodel.n_vertices)
    train_dir, heldout_dir = out / "train", out / "heldout"
    train_coeff, train_stats, mask_mode = make_set(
        train_dir, args.train, [args.seed, 1], face, photos, args, args.mask, log)
    heldout_coeff, heldout_stats, _ = make_set(
        heldout_dir, args.heldout, [args.seed, 2], face, photos, args, mask_mode, log)
    report["mask"] = mask_mode
    report["data_stats"] = {"train": train_stats, "heldout": heldout_stats}
    report["data_s"] = round(time.perf_counter() - start, 1)
    log(f"data: {args.train} training and {args.heldout} held-out faces in "
        f"{report['data_s']:.0f} s; masks: {mask_mode}; {train_stats}")

    # Training for a fixed wall-clock budget.
    history, loads = [], []
    config = TrainConfig(data=[str(train_dir)], log_dir=str(out / "run"), bfm_dir=str(bfm_dir),
                         init=("none",), id_net=None, steps=10 ** 9,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         save_every=10 ** 9, summary_every=args.summary_every, seed=args.seed,
                         bn_decay=args.bn_decay)
    train_start = time.perf_counter()
    deadline = train_start + 60.0 * args.minutes
    first_step_s = []

    def progress(done, terms):
        now = time.perf_counter()
        if not first_step_s:
            first_step_s.append(now - train_start)
        history.append({"step": done, "time_s": now - train_start,
                        **{name: float(terms[name]) for name in TERMS}})
        if done % args.summary_every == 0:
            loads.append(load_average())
            recent = history[-args.summary_every:]
            rate = (len(recent) - 1) / max(recent[-1]["time_s"] - recent[0]["time_s"], 1e-9)
            log(f"step {done} at {now - train_start:.0f} s: " + ", ".join(
                f"{name} {history[-1][name]:.4g}" for name in TERMS)
                + f"; {rate:.3f} steps/s, load {loads[-1]:.2f}")
        if now >= deadline:
            raise KeyboardInterrupt

    steps = train(config, log=log, progress=progress)
    train_s = time.perf_counter() - train_start
    report["steps"] = steps
    report["train_s"] = round(train_s, 1)
    report["first_step_s"] = round(first_step_s[0], 1) if first_step_s else None
    if len(history) > 1:
        report["steps_per_s_after_first"] = round(
            (len(history) - 1) / (history[-1]["time_s"] - history[0]["time_s"]), 4)
    report["load_average_mean"] = round(float(np.mean(loads)), 2) if loads else None
    last = history[-min(10, len(history)):]
    report["final_losses_last10_mean"] = {name: round(float(np.mean([h[name] for h in last])), 5)
                                          for name in TERMS}
    report["first_losses"] = {name: round(history[0][name], 5) for name in TERMS}
    report["loss_curve"] = curve_table(history)
    report["loss_every_summary"] = [
        {k: (round(v, 5) if k != "step" else v) for k, v in h.items()}
        for h in history if h["step"] % args.summary_every == 0]

    # Evaluation.
    rnet = build_rnet()
    latest = tf.train.latest_checkpoint(str(out / "run" / "checkpoints"))
    tf.train.Checkpoint(rnet=rnet).restore(latest).expect_partial()
    n_train_eval = min(args.train, args.heldout)
    results = {}
    for name, root, count, truth in (("heldout", heldout_dir, args.heldout, heldout_coeff),
                                     ("train", train_dir, n_train_eval, train_coeff)):
        truth = truth[:count]
        results[name] = {
            "baseline": metrics(face, np.zeros_like(truth), truth),
            "trained": metrics(face, predict(rnet, root, count, args.batch_size, False), truth),
        }
    # Diagnostic, last: batch statistics instead of the moving averages (this call also
    # moves the moving averages, which are no longer used afterwards).
    results["heldout"]["trained_batch_statistics"] = metrics(
        face, predict(rnet, heldout_dir, args.heldout, args.batch_size, True), heldout_coeff)
    if args.recalibrate_batches > 0:
        recalibrate_batch_norm(rnet, train_dir, args.train, args.batch_size,
                               args.recalibrate_batches, args.seed)
        results["heldout"]["trained_recalibrated"] = metrics(
            face, predict(rnet, heldout_dir, args.heldout, args.batch_size, False),
            heldout_coeff)
    report["evaluation"] = results
    held = results["heldout"]
    report["heldout_ratio_trained_over_baseline"] = {
        key: round(held["trained"][key] / held["baseline"][key], 3)
        for key in ("landmark_px", "shape_mm")}
    report["beats_baseline"] = {key: bool(value < 0.8) for key, value in
                                report["heldout_ratio_trained_over_baseline"].items()}
    print_tables(report)
    print(json.dumps(report))
    return 0


def print_tables(report):
    print()
    print(f"machine: {report['machine']}, GPU: {report['gpu'] or 'none'}, TensorFlow "
          f"{report['tensorflow']}; mean load average during training "
          f"{report['load_average_mean']} (2 cores, shared with other processes)")
    print(f"data: {report['train_faces']} training + {report['heldout_faces']} held-out synthetic "
          f"faces ({report['mesh_vertices']}-vertex synthetic BFM) over "
          f"{report['n_backgrounds']} background photos; masks: {report['mask']}"
          + (" (the skin classifier fires on the synthetic albedo)" if report["mask"] == "skin"
             else " (255 * the render's coverage alpha: the classifier did not fire)"))
    print(f"run: {report['steps']} steps of {report['batch_size']} in {report['train_s']:.0f} s "
          f"(budget {report['budget_minutes']:g} min; first step done at "
          f"{report['first_step_s']} s, then {report.get('steps_per_s_after_first', 0):.3f} "
          "steps/s)")
    first, final = report["first_losses"], report["final_losses_last10_mean"]
    print(f"{'loss':<16}{'first step':>12}{'last 10 steps':>15}")
    for name in TERMS:
        print(f"{name:<16}{first[name]:>12.4f}{final[name]:>15.4f}")
    print()
    print("loss curve (mean of each term over each tenth of the run)")
    print(f"{'step':>6}{'time s':>9}" + "".join(f"{name:>16}" for name in TERMS))
    for row in report["loss_curve"]:
        print(f"{row['step']:>6}{row['time_s']:>9.0f}"
              + "".join(f"{row[name]:>16.4f}" for name in TERMS))
    print()
    print(f"{'evaluation':<44}{'landmark px':>12}{'/ IOD':>8}{'shape mm':>10}"
          f"{'angles deg (x y z)':>22}{'trans mm (x y z)':>22}")
    rows = [("held-out, mean-face baseline", "heldout", "baseline"),
            ("held-out, trained (inference mode)", "heldout", "trained"),
            ("held-out, trained (batch statistics; diag.)", "heldout",
             "trained_batch_statistics"),
            ("held-out, trained, BN re-estimated (diag.)", "heldout", "trained_recalibrated"),
            ("training faces, mean-face baseline", "train", "baseline"),
            ("training faces, trained (inference mode)", "train", "trained")]
    for label, split, key in rows:
        if key not in report["evaluation"][split]:
            continue
        m = report["evaluation"][split][key]
        angles = " ".join(f"{v:.3g}" for v in m["angle_error_deg"])
        trans = " ".join(f"{v:.3g}" for v in m["translation_error_mm"])
        print(f"{label:<44}{m['landmark_px']:>12.4g}{m['landmark_over_iod']:>8.3g}"
              f"{m['shape_mm']:>10.4g}{angles:>22}{trans:>22}")
    ratio = report["heldout_ratio_trained_over_baseline"]
    beats = report["beats_baseline"]
    print(f"held-out trained / baseline: landmarks {ratio['landmark_px']:.3f}, shape "
          f"{ratio['shape_mm']:.3f} (beats the baseline clearly, ratio < 0.8: landmarks "
          f"{beats['landmark_px']}, shape {beats['shape_mm']})")


if __name__ == "__main__":
    sys.exit(main())
