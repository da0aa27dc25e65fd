"""Fitting (demo.py --refine, --model none, --identity set; extract.py --refine) measured
against synthetic faces of known truth.

    python bench/make_assets.py            # once: the full-size synthetic model
    python bench/fit.py                    # everything (about 30 minutes on 2 cores)
    python bench/fit.py --faces 4 --steps 50,100 --skip-sets --skip-video    # a quick look

The faces: the full-size synthetic model of bench/make_assets.py (smooth
bases, the release's file formats), with coefficients drawn as
tests/synthetic_faces.py draws them, rendered over the shared photos
(../shared/data/images, resized to 224x224; textured noise without them),
written as photos with their 5-point and 68-point files from the true
landmarks, and aligned as demo.py aligns them (`photos.align`). Nothing the
fit produced enters the truth: the errors are against the drawn
coefficients' own shapes.

Figures (a table each, then one JSON line with all of them):
1. From the mean face (`--model none`): per-vertex shape error (mm, unposed
   shapes) and landmark error (mean over the 68 points, crop pixels)
   after N steps, for each N of --steps, against the mean face's.
2. From a start with a network's kind of error (the truth plus noise in
   every block): the error after the largest N against the start's.
3. Image sets of 2, 4 and 8 photos of one person (pose, expression and light
   varied): the shared identity's shape error (identity alone, no
   expression) against the mean of the single-photo fits' identities, both
   from noisy starts, --set-steps steps; and the mean of the starts'
   identities (what `--identity set` gives without --refine).
4. A still head in a video (camera noise of 3 grey levels, a network's
   per-frame noise in the starts): the frame-to-frame change of expression
   and pose coefficients with and without the temporal term
   (`fitting.video_fit.refine_video`).
5. Cost: ms per photo per Adam step at batch 1 and 8, once the steps of
   that batch size have been traced and the renderer's kernels compiled (a
   second run of --cost-steps steps), and seconds per photo for the
   default N (demo.py's --refine: 100) at batch 8; and how long the first
   run took (tracing and compiling: what the first batch of a process
   pays).
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

import numpy as np

from bench.common import DEFAULT_ASSETS, SHARED_IMAGES  # noqa: E402

NOISE = {"identity": 0.5, "expression": 0.3, "albedo": 0.5, "angles": 0.05, "lighting": 0.05,
         "translation": 0.03}
DEFAULT_STEPS = 100


def log(line):
    print(line, file=sys.stderr, flush=True)


def noisy(rng, coeff, scale=1.0):
    """The truth plus a network's kind of error: N(0, NOISE[block] * scale) in each block."""
    from facemodel.coefficients import BLOCKS

    start = np.array(coeff, np.float32)
    for name, part in BLOCKS.items():
        start[:, part] += rng.normal(0, NOISE[name] * scale, (len(start), part.stop - part.start))
    return start


class Faces:
    """Synthetic photos of known truth, aligned as demo.py aligns them."""

    def __init__(self, face, lm3d, work, backgrounds):
        self.face, self.lm3d, self.work, self.backgrounds = face, lm3d, work, backgrounds
        self.count = 0

    def make(self, coeff):
        """Renders, writes and aligns faces; returns (FitBatch, truth dict)."""
        import functools

        from fitting.objective import FitBatch, landmark_target
        from landmarks.sources import PhotoLandmarks
        from preparation.photo import prepare_photo
        from tests.synthetic_faces import render_faces, write_photos

        backgrounds = np.stack([self.backgrounds[(self.count + i) % len(self.backgrounds)]
                                for i in range(len(coeff))])
        rendered = render_faces(self.face, coeff, backgrounds)
        names = [f"face{self.count + i:03d}" for i in range(len(coeff))]
        self.count += len(coeff)
        paths = write_photos(self.work, names, rendered)
        align = functools.partial(prepare_photo, landmarks=PhotoLandmarks("file", None),
                                  lm3d=self.lm3d, targets=True)
        aligned = [align(path) for path in paths]
        batch = FitBatch.stack([a.crop_bgr for a in aligned],
                               [landmark_target(a.lm68_crop, a.lm5_crop) for a in aligned],
                               [a.skin_mask for a in aligned])
        return batch, {"coeff": np.asarray(coeff), "shape": rendered["shape"],
                       "lm68": np.stack([a.lm68_crop for a in aligned])}


def errors(face, coeff, truth):
    """(shape error mm [B], landmark error px [B]) of coefficients against the truth."""
    from tests.synthetic_faces import shape_error_mm

    shape = shape_error_mm(face, coeff, truth["shape"])
    face.Reconstruction_Block(np.asarray(coeff, np.float32), len(coeff), render_images=False)
    landmarks = np.linalg.norm(face.landmark_p.numpy() - truth["lm68"], axis=2).mean(axis=1)
    return shape, landmarks


def part_mean_face(args, fitter, faces, rng):
    from fitting.optimize import plan
    from tests.synthetic_faces import draw_coefficients

    truth_coeff = draw_coefficients(rng, args.faces)
    batch, truth = faces.make(truth_coeff)
    zero = np.zeros_like(truth_coeff)
    shape0, lm0 = errors(faces.face, zero, truth)
    rows = {"mean face": (float(shape0.mean()), float(lm0.mean()), 0.0)}
    for steps in args.steps:
        log(f"[mean face] {steps} steps on {args.faces} faces ...")
        start = time.perf_counter()
        result = fitter.fit(zero, batch, plan(steps, from_mean_face=True), per_photo_terms=False)
        seconds = time.perf_counter() - start
        shape, lm = errors(faces.face, result.coeff, truth)
        rows[f"{steps} steps"] = (float(shape.mean()), float(lm.mean()), seconds)
    print(f"\n1. From the mean face ({args.faces} faces, batch {args.faces}): errors after N steps")
    print(f"{'start / steps':<16}{'shape mm':>10}{'landmarks px':>14}{'/ mean face':>13}"
          f"{'seconds':>9}")
    for label, (shape, lm, seconds) in rows.items():
        print(f"{label:<16}{shape:>10.3f}{lm:>14.2f}{shape / shape0.mean():>13.3f}"
              f"{seconds:>9.1f}")
    return {"mean_face": {label: {"shape_mm": round(s, 4), "landmark_px": round(lm, 3),
                                  "seconds": round(t, 1)} for label, (s, lm, t) in rows.items()}}


def part_noisy(args, fitter, faces, rng):
    from fitting.optimize import plan
    from tests.synthetic_faces import draw_coefficients

    truth_coeff = draw_coefficients(rng, args.faces)
    batch, truth = faces.make(truth_coeff)
    start = noisy(rng, truth_coeff)
    shape0, lm0 = errors(faces.face, start, truth)
    rows = {"start": (float(shape0.mean()), float(lm0.mean()))}
    for steps in args.steps:
        log(f"[network-like start] {steps} steps on {args.faces} faces ...")
        result = fitter.fit(start, batch, plan(steps), per_photo_terms=False)
        shape, lm = errors(faces.face, result.coeff, truth)
        rows[f"{steps} steps"] = (float(shape.mean()), float(lm.mean()))
    print(f"\n2. From the truth plus noise ({args.faces} faces): errors after N steps")
    print(f"{'start / steps':<16}{'shape mm':>10}{'landmarks px':>14}{'/ start':>9}")
    for label, (shape, lm) in rows.items():
        print(f"{label:<16}{shape:>10.3f}{lm:>14.2f}{shape / shape0.mean():>9.3f}")
    return {"noisy_start": {label: {"shape_mm": round(s, 4), "landmark_px": round(lm, 3)}
                            for label, (s, lm) in rows.items()}}


def identity_error_mm(face, id_coeff, true_id):
    """Shape error of identities alone (no expression), mm [B]."""
    from facemodel.coefficients import BLOCKS, LENGTH
    from tests.synthetic_faces import shape_error_mm

    coeff = np.zeros((len(id_coeff), LENGTH), np.float32)
    coeff[:, BLOCKS["identity"]] = id_coeff
    truth = np.zeros((1, LENGTH), np.float32)
    truth[0, BLOCKS["identity"]] = true_id
    face.Reconstruction_Block(truth, 1, render_images=False)
    return shape_error_mm(face, coeff, face.face_shape.numpy())


def part_sets(args, fitter, faces, rng):
    from facemodel.coefficients import BLOCKS
    from fitting.optimize import plan
    from tests.synthetic_faces import draw_coefficients

    ids = BLOCKS["identity"]
    rows = {}
    for size in (2, 4, 8):
        person = draw_coefficients(rng, 1)[0]
        truth_coeff = draw_coefficients(rng, size, person=person)
        batch, truth = faces.make(truth_coeff)
        start = noisy(rng, truth_coeff)
        log(f"[sets] {size} photos: joint and single fits, {args.set_steps} steps ...")
        joint = fitter.fit(start, batch, plan(args.set_steps), shared=("identity", "albedo"),
                           per_photo_terms=False)
        single = fitter.fit(start, batch, plan(args.set_steps), per_photo_terms=False)
        shared = identity_error_mm(faces.face, joint.coeff[:1, ids], person[ids])[0]
        averaged = identity_error_mm(faces.face, single.coeff[:, ids].mean(0, keepdims=True),
                                     person[ids])[0]
        each = identity_error_mm(faces.face, single.coeff[:, ids], person[ids]).mean()
        starts = identity_error_mm(faces.face, start[:, ids].mean(0, keepdims=True),
                                   person[ids])[0]
        rows[size] = (float(shared), float(averaged), float(each), float(starts))
    print(f"\n3. Image sets: identity shape error (mm), {args.set_steps} steps from noisy starts")
    print(f"{'photos':<8}{'shared (joint fit)':>20}{'mean of single fits':>22}"
          f"{'single fits, each':>20}{'mean of the starts':>20}")
    for size, (shared, averaged, each, starts) in rows.items():
        print(f"{size:<8}{shared:>20.3f}{averaged:>22.3f}{each:>20.3f}{starts:>20.3f}")
    return {"sets": {str(size): {"shared_mm": round(a, 4), "mean_of_singles_mm": round(b, 4),
                                 "single_mm": round(c, 4), "mean_of_starts_mm": round(d, 4)}
                     for size, (a, b, c, d) in rows.items()}}


def part_video(args, face, lm3d, work, backgrounds, rng):
    from extraction.video import FrameResults
    from facemodel.coefficients import BLOCKS
    from fitting.optimize import Fitter
    from fitting.video_fit import refine_video
    from preparation.frame import Alignment
    from preprocess_img import map_to_original
    from tests.synthetic_faces import draw_coefficients, render_faces
    from tests.synthetic_video import five_from_68 as lm5_from_lm68
    from tests.synthetic_video import make_video

    n = args.video_frames
    truth = draw_coefficients(rng, 1)
    rendered = render_faces(face, truth, backgrounds[0])
    frames = [np.clip(rendered["rgb"][0] + rng.normal(0, 3, (224, 224, 3)), 0, 255)
              .astype(np.uint8) for _ in range(n)]
    path = work / "still.mkv"
    make_video(path, frames, codec="ffv1")
    lm5 = lm5_from_lm68(rendered["lm68"][0])
    params = Alignment(frames[0], lm5, lm3d).trans_params
    network = noisy(rng, np.tile(truth, (n, 1)), scale=0.3)
    results = FrameResults(
        frame_index=np.arange(n), time=np.arange(n) / 25.0, valid=np.ones(n, bool),
        coeff=network, lm68=np.tile(rendered["lm68"], (n, 1, 1)),
        lm68_detected=np.tile(map_to_original(rendered["lm68"][0], params), (n, 1, 1)),
        lm5=np.tile(lm5, (n, 1, 1)), transform_params=np.tile(params, (n, 1)), fps=25.0,
        rotation=0, damage=None, detector_calls=1, seconds={})
    columns = {name: np.arange(BLOCKS[name].start, BLOCKS[name].stop)
               for name in ("expression", "angles", "translation")}

    def spread(coeff):
        return {name: float(np.abs(np.diff(coeff[:, c], axis=0)).mean())
                for name, c in columns.items()}

    rows = {"network": spread(network)}
    for label, weight in (("fit, no temporal term", 0.0), ("fit, temporal term", 1.0)):
        log(f"[video] {n} frames, {label} ...")
        fitter = Fitter(face, temporal_weight=weight)
        coeff, _, _ = refine_video(path, results, fitter, lm3d, args.video_steps,
                                   batch_size=8, sample_size=8)
        rows[label] = spread(coeff)
    print(f"\n4. A still head, {n} frames: mean frame-to-frame change "
          f"({args.video_steps} steps a batch)")
    print(f"{'':<26}{'expression':>12}{'angles rad':>12}{'translation dm':>16}")
    for label, row in rows.items():
        print(f"{label:<26}{row['expression']:>12.4f}{row['angles']:>12.5f}"
              f"{row['translation']:>16.5f}")
    return {"video": {label: {k: round(v, 6) for k, v in row.items()}
                      for label, row in rows.items()}}


def part_cost(args, fitter, faces, rng):
    from facemodel.coefficients import LENGTH
    from fitting.optimize import plan
    from tests.synthetic_faces import draw_coefficients

    rows, first = {}, {}
    for size in (1, 8):
        batch, _ = faces.make(draw_coefficients(rng, size))
        start = np.zeros((size, LENGTH), np.float32)
        clock = time.perf_counter()
        fitter.fit(start, batch, plan(args.cost_steps), per_photo_terms=False)
        first[size] = time.perf_counter() - clock       # traces, compiles, then steps
        clock = time.perf_counter()
        fitter.fit(start, batch, plan(args.cost_steps), per_photo_terms=False)
        rows[size] = 1000.0 * (time.perf_counter() - clock) / args.cost_steps / size
    per_photo = rows[8] * DEFAULT_STEPS / 1000.0
    print(f"\n5. Cost, once compiled: ms per photo per step: {rows[1]:.0f} at batch 1, "
          f"{rows[8]:.0f} at batch 8; {per_photo:.1f} s per photo for {DEFAULT_STEPS} steps "
          f"at batch 8. The first {args.cost_steps} steps of a new batch size (tracing and "
          f"the renderer's compiles) took {first[1]:.0f} s at batch 1, {first[8]:.0f} s at "
          "batch 8")
    return {"cost": {"ms_per_photo_step_batch1": round(rows[1], 1),
                     "ms_per_photo_step_batch8": round(rows[8], 1),
                     "s_per_photo_default_steps_batch8": round(per_photo, 2),
                     "first_steps_s": {str(k): round(v, 1) for k, v in first.items()}}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS,
                        help="folder written by bench/make_assets.py")
    parser.add_argument("--faces", type=int, default=8, help="faces per experiment (8)")
    parser.add_argument("--steps", default="50,100,200,400",
                        help="step counts from the mean face (50,100,200,400)")
    parser.add_argument("--set-steps", type=int, default=100, help="steps of the set fits")
    parser.add_argument("--video-frames", type=int, default=24, help="frames of the still head")
    parser.add_argument("--video-steps", type=int, default=50, help="steps a batch, video")
    parser.add_argument("--cost-steps", type=int, default=30, help="steps timed for the cost")
    parser.add_argument("--seed", type=int, default=0)
    for part in ("mean-face", "noisy", "sets", "video", "cost"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args(argv)
    args.steps = sorted(int(s) for s in args.steps.split(","))
    front = args.assets / "BFM" / "BFM_model_front.mat"
    if not (args.assets / "BFM" / "01_MorphableModel.mat").exists():
        parser.error(f"{args.assets}: no full-size assets; run `python bench/make_assets.py`")

    import tensorflow as tf

    import load_data
    from face_decoder import Face3D
    from fitting.optimize import Fitter
    from tests.synthetic_faces import background

    load_data.transferBFM09(args.assets / "BFM")
    face = Face3D(front)
    lm3d = load_data.load_lm3d(args.assets / "BFM")
    photos = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    backgrounds = [background(p) for p in photos] or [background(None, seed=s)
                                                      for s in range(4)]
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "tensorflow": tf.__version__, "faces": args.faces}
    print(f"machine: {report['machine']}, TensorFlow {report['tensorflow']}; full-size "
          f"synthetic model; backgrounds: {len(photos) or 'noise'} shared photos")
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    fitter = Fitter(face)
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as tmp:
        work = pathlib.Path(tmp)
        faces = Faces(face, lm3d, work, backgrounds)
        if not args.skip_mean_face:
            report.update(part_mean_face(args, fitter, faces, rng))
        if not args.skip_noisy:
            report.update(part_noisy(args, fitter, faces, rng))
        if not args.skip_sets:
            report.update(part_sets(args, fitter, faces, rng))
        if not args.skip_video:
            report.update(part_video(args, face, lm3d, work, backgrounds, rng))
        if not args.skip_cost:
            report.update(part_cost(args, fitter, faces, rng))
    report["bench_s"] = round(time.perf_counter() - start, 1)
    print(f"\nbench time: {report['bench_s']:.0f} s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
