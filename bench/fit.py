"""Fitting (demo.py --refine, --model none, --identity set; extract.py --refine) measured
against synthetic faces of known truth, on a face model at BFM09's scale.

    python bench/fit.py                    # everything (about 15 minutes on 2 cores)
    python bench/fit.py --faces 4 --steps 50,100 --skip-sets --skip-video    # a quick look

The faces: the full-size synthetic model at BFM09's scale
(`bench.common.smooth_bfm(scale="bfm09")`: identity components that move a vertex by
3.8 mm per standard deviation for the first, as BFM09's), coefficients drawn
as tests/synthetic_faces.py draws them with the yaw uniform in +-20 degrees,
rendered over the shared photos (../shared/data/images, resized to 224x224;
textured noise without them), written as photos with their 5-point and
68-point files from the true landmarks, and aligned as demo.py aligns them.
Nothing the fit produced enters the truth.

Errors (mm, per vertex, after the similarity that aligns each shape with the
truth's; tests.synthetic_faces): shape (identity and expression), identity
(the neutral shape of the identity coefficients alone) and expression (the
vertices' movement by the expression), each also as a ratio to the mean
face's (zero coefficients).

Figures (a table each, then the targets of issue 34, met or not, then one
JSON line with everything; docs/make_fitting_figure.py draws it):
1. Single photos from the mean face (`--model none --refine N`): errors
   after N steps for each N of --steps.
2. What moved what, at the default N: the fit before (Adam at 0.01 for every
   block, a third of the steps on the pose), with Newton's landmark stages,
   with per-block step sizes (the fit now), and with a 4x weaker prior; the
   last two again with 2 px of noise on the 68 points (a detector's kind).
3. From a network's kind of start (the truth plus noise in every block).
4. Image sets of 1, 2, 4 and 8 photos of one person (pose, expression and
   light varied), from the mean face: the shared identity's error against
   the mean of the single-photo fits' errors over the same photos, with the
   prior of the shared blocks counted once (MAP, the fit's) and once per
   photo (the release's batch mean).
5. A video of a known face whose expression and pose change: the identity
   `extract.py --refine` fits over 16 frames against each frame's own fit;
   and a still head's frame-to-frame change with and without the temporal term.
6. Cost: ms per photo per Adam step at batch 1 and 8, once compiled, and
   seconds per photo for the default N at batch 8.
7. Speed against the code before issue 35, each in a child process
   (bench/fit_speed.py): the first step of new batch sizes, ms a photo a
   step, the same fit's errors and coefficients; issue 35's targets.
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

from bench.common import SHARED_IMAGES, smooth_bfm  # noqa: E402

NOISE = {"identity": 0.5, "expression": 0.3, "albedo": 0.5, "angles": 0.05, "lighting": 0.05,
         "translation": 0.03}
DEFAULT_STEPS = 100            # demo.py's --refine default
MAX_YAW = np.radians(20.0)
TARGETS = {"single_shape": 0.35, "single_identity": 0.35, "set4_over_singles": 0.75}


def log(line):
    print(line, file=sys.stderr, flush=True)


def draw(rng, count, person=None):
    """Coefficients as tests/synthetic_faces.py draws them, the yaw uniform in +-20 degrees."""
    from facemodel.coefficients import BLOCKS
    from tests.synthetic_faces import draw_coefficients

    coeff = draw_coefficients(rng, count, person=person)
    coeff[:, BLOCKS["angles"].start + 1] = rng.uniform(-MAX_YAW, MAX_YAW, count)
    return coeff


def noisy(rng, coeff, scale=1.0):
    """The truth plus a network's kind of error: N(0, NOISE[block] * scale) in each block."""
    from facemodel.coefficients import BLOCKS

    start = np.array(coeff, np.float32)
    for name, part in BLOCKS.items():
        start[:, part] += rng.normal(0, NOISE[name] * scale, (len(start), part.stop - part.start))
    return start


class Faces:
    """Synthetic photos of known truth, aligned as demo.py aligns them."""

    def __init__(self, face, front, lm3d, work, backgrounds):
        self.face, self.front, self.lm3d = face, front, lm3d
        self.work, self.backgrounds = work, backgrounds
        self.count = 0

    def make(self, coeff):
        """Renders, writes and aligns faces; returns their `FitBatch`."""
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
        return FitBatch.stack([a.crop_bgr for a in aligned],
                              [landmark_target(a.lm68_crop, a.lm5_crop) for a in aligned],
                              [a.skin_mask for a in aligned])

    def errors(self, coeff, truth):
        """{"shape", "identity", "expression"}: [B] errors in mm against the truth [B, 257]."""
        from facemodel.coefficients import BLOCKS
        from tests.synthetic_faces import (
            aligned_shape_error_mm,
            expression_error_mm,
            identity_error_mm,
        )

        ids, exp = BLOCKS["identity"], BLOCKS["expression"]
        return {"shape": aligned_shape_error_mm(self.front, coeff, truth),
                "identity": np.concatenate([identity_error_mm(self.front, c[ids], t[ids])
                                            for c, t in zip(coeff, truth)]),
                "expression": expression_error_mm(self.front, coeff[:, exp], truth[:, exp])}


def summary(errors, reference):
    """Mean errors (mm) and their ratios to the reference's means."""
    row = {}
    for name, values in errors.items():
        row[f"{name}_mm"] = round(float(values.mean()), 4)
        row[f"{name}_x"] = round(float(values.mean() / reference[name].mean()), 4)
    return row


def print_rows(title, rows):
    print(f"\n{title}")
    print(f"{'':<30}{'shape mm':>10}{'x':>7}{'identity mm':>13}{'x':>7}{'expression mm':>15}"
          f"{'x':>7}")
    for label, row in rows.items():
        print(f"{label:<30}{row['shape_mm']:>10.3f}{row['shape_x']:>7.3f}"
              f"{row['identity_mm']:>13.3f}{row['identity_x']:>7.3f}"
              f"{row['expression_mm']:>15.3f}{row['expression_x']:>7.3f}")


def part_steps(args, fitter, faces, rng):
    from fitting.optimize import plan

    truth = draw(rng, args.faces)
    batch = faces.make(truth)
    zero = np.zeros_like(truth)
    mean_face = faces.errors(zero, truth)
    rows = {"mean face": summary(mean_face, mean_face)}
    for steps in [0] + args.steps:
        log(f"[single photos] {steps} steps on {args.faces} faces ...")
        stages = plan(max(steps, 1), from_mean_face=True)
        if steps == 0:
            stages = stages[:-1]          # Newton's landmark stages alone
        clock = time.perf_counter()
        result = fitter.fit(zero, batch, stages, per_photo_terms=False)
        row = summary(faces.errors(result.coeff, truth), mean_face)
        row["seconds"] = round(time.perf_counter() - clock, 1)
        rows["landmark stages only" if steps == 0 else f"{steps} steps"] = row
    print_rows(f"1. Single photos from the mean face ({args.faces} faces, yaw up to 20 degrees, "
               "true 68 points)", rows)
    return {"steps": rows}, (truth, batch, mean_face)


def part_changes(args, face, faces, single):
    from fitting.optimize import POSE, Fitter, Stage, plan
    from losses.terms import LOSS_WEIGHTS

    truth, batch, mean_face = single
    zero = np.zeros_like(truth)
    steps = DEFAULT_STEPS
    third = round(steps / 3)
    before = [Stage(third, POSE, ("landmark",)), Stage(steps - third)]
    newton = plan(steps, from_mean_face=True)[:-1] + before[1:]
    weaker = {"regularization": LOSS_WEIGHTS["regularization"] / 4}
    noise = np.random.default_rng(5).normal(0, 2.0, batch.landmarks.shape).astype(np.float32)
    noisy_batch = type(batch)(batch.images, batch.landmarks + noise, batch.landmark_weights,
                              batch.masks)
    variants = [("before (Adam 0.01, pose third)", dict(learning_rate=0.01), before, batch),
                ("+ Newton landmark stages", dict(learning_rate=0.01), newton, batch),
                ("+ per-block steps (now)", {}, plan(steps, True), batch),
                ("now, prior / 4", dict(weights=weaker), plan(steps, True), batch),
                ("now, 2 px landmark noise", {}, plan(steps, True), noisy_batch),
                ("prior / 4, 2 px landmark noise", dict(weights=weaker), plan(steps, True),
                 noisy_batch)]
    rows = {}
    for label, options, stages, data in variants:
        log(f"[changes] {label} ...")
        result = Fitter(face, **options).fit(zero, data, stages, per_photo_terms=False)
        rows[label] = summary(faces.errors(result.coeff, truth), mean_face)
    print_rows(f"2. What moved what: the faces of 1, {steps} steps", rows)
    return {"changes": rows}


def part_noisy(args, fitter, faces, rng):
    from fitting.optimize import plan

    truth = draw(rng, args.faces)
    batch = faces.make(truth)
    start = noisy(rng, truth)
    reference = faces.errors(start, truth)
    rows = {"start": summary(reference, reference)}
    log(f"[network-like start] {DEFAULT_STEPS} steps on {args.faces} faces ...")
    result = fitter.fit(start, batch, plan(DEFAULT_STEPS), per_photo_terms=False)
    rows[f"{DEFAULT_STEPS} steps"] = summary(faces.errors(result.coeff, truth), reference)
    print_rows(f"3. From the truth plus noise ({args.faces} faces); x: against the start", rows)
    return {"noisy_start": rows}


def part_sets(args, fitter, faces, rng):
    from facemodel.coefficients import BLOCKS
    from fitting.optimize import plan
    from tests.synthetic_faces import identity_error_mm

    ids = BLOCKS["identity"]
    sizes = (1, 2, 4, 8)
    stages = plan(DEFAULT_STEPS, from_mean_face=True)
    shared, singles, per_photo = ({n: [] for n in sizes} for _ in range(3))
    mean_face = []
    for person_index in range(args.people):
        person = draw(rng, 1)[0]
        truth = draw(rng, max(sizes), person=person)
        batch = faces.make(truth)
        zero = np.zeros_like(truth)
        mean_face.append(identity_error_mm(faces.front, zero[0, ids], person[ids])[0])
        log(f"[sets] person {person_index + 1}: {max(sizes)} single fits ...")
        single = fitter.fit(zero, batch, stages, per_photo_terms=False)
        each = identity_error_mm(faces.front, single.coeff[:, ids], person[ids])
        for n in sizes:
            singles[n].append(each[:n].mean())
            if n == 1:
                shared[n].append(each[0])
                per_photo[n].append(each[0])
                continue
            for once, into in ((True, shared), (False, per_photo)):
                log(f"[sets] person {person_index + 1}: a set of {n}, prior "
                    f"{'once' if once else 'per photo'} ...")
                fitter.loss.shared_prior_once = once
                joint = fitter.fit(zero[:n], batch.slice(0, n), stages,
                                   shared=("identity", "albedo"), per_photo_terms=False)
                into[n].append(identity_error_mm(faces.front, joint.coeff[0, ids],
                                                 person[ids])[0])
            fitter.loss.shared_prior_once = True
    rows = {str(n): {"shared_mm": round(float(np.mean(shared[n])), 4),
                     "singles_mm": round(float(np.mean(singles[n])), 4),
                     "shared_over_singles": round(float(np.mean(np.array(shared[n])
                                                                / np.array(singles[n]))), 4),
                     "prior_per_photo_mm": round(float(np.mean(per_photo[n])), 4),
                     "prior_per_photo_over_singles": round(float(np.mean(
                         np.array(per_photo[n]) / np.array(singles[n]))), 4)}
            for n in sizes}
    print(f"\n4. Image sets from the mean face, {DEFAULT_STEPS} steps, {args.people} people "
          f"(mean face's identity error {np.mean(mean_face):.3f} mm): identity error, mm")
    print(f"{'photos':<8}{'shared (MAP)':>14}{'singles, mean':>15}{'ratio':>8}"
          f"{'prior per photo':>17}{'ratio':>8}")
    for n, row in rows.items():
        print(f"{n:<8}{row['shared_mm']:>14.3f}{row['singles_mm']:>15.3f}"
              f"{row['shared_over_singles']:>8.3f}{row['prior_per_photo_mm']:>17.3f}"
              f"{row['prior_per_photo_over_singles']:>8.3f}")
    return {"sets": rows, "sets_mean_face_identity_mm": round(float(np.mean(mean_face)), 4)}


def moving_video(face, lm3d, path, truth, background, rng):
    """Writes a video of faces `truth` [T, 257]; returns the first pass's `FrameResults`
    made from the truth (the network's coefficients: the truth plus noise)."""
    from extraction.video import FrameResults
    from preparation.frame import Alignment
    from tests.synthetic_faces import render_faces
    from tests.synthetic_video import five_from_68 as lm5_from_lm68
    from tests.synthetic_video import make_video

    n = len(truth)
    rendered = render_faces(face, truth, background)
    frames = [np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
              for rgb in rendered["rgb"]]
    make_video(path, frames, codec="ffv1")
    lm68 = rendered["lm68"].astype(np.float32)
    lm5 = np.stack([lm5_from_lm68(points) for points in lm68])
    params = np.stack([Alignment(frame, five, lm3d).trans_params
                       for frame, five in zip(frames, lm5)])
    return FrameResults(
        frame_index=np.arange(n), time=np.arange(n) / 25.0, valid=np.ones(n, bool),
        coeff=noisy(rng, truth), lm68=lm68, lm68_detected=lm68, lm5=lm5,
        transform_params=params, fps=25.0, rotation=0, damage=None, detector_calls=n,
        seconds={})


def part_video(args, face, faces, lm3d, work, backgrounds, rng):
    from facemodel.coefficients import BLOCKS
    from fitting.optimize import Fitter
    from fitting.video_fit import fit_sample, refine_video
    from tests.synthetic_faces import identity_error_mm

    ids = BLOCKS["identity"]
    n = args.video_frames
    person = draw(rng, 1)[0]
    truth = np.repeat(person[None], n, axis=0)
    phase = np.linspace(0, 2 * np.pi, n)
    expressions = draw(rng, 3)[:, BLOCKS["expression"]]
    truth[:, BLOCKS["expression"]] = (np.cos(phase)[:, None] * expressions[0]
                                      + np.sin(phase)[:, None] * expressions[1]
                                      + 0.5 * np.sin(2 * phase)[:, None] * expressions[2])
    truth[:, BLOCKS["angles"].start + 1] = MAX_YAW * np.sin(phase)
    truth[:, BLOCKS["angles"].start] = 0.1 * np.cos(phase)
    results = moving_video(face, lm3d, work / "moving.mkv", truth, backgrounds[0], rng)
    fitter = Fitter(face, temporal_weight=1.0)
    log(f"[video] identity over {args.video_sample} of {n} frames, and each frame alone ...")
    runs = {}
    for label, shared in (("video", ("identity", "albedo")), ("frames", ())):
        sample, fitted = fit_sample(work / "moving.mkv", results, fitter, lm3d, DEFAULT_STEPS,
                                    sample_size=args.video_sample, shared=shared)
        runs[label] = identity_error_mm(faces.front, fitted.coeff[:, ids], person[ids])
    network = identity_error_mm(faces.front, results.coeff[sample][:, ids], person[ids])
    mean_face = identity_error_mm(faces.front, np.zeros(80), person[ids])[0]
    moving = {"video_mm": round(float(runs["video"][0]), 4),
              "frames_best_mm": round(float(runs["frames"].min()), 4),
              "frames_mean_mm": round(float(runs["frames"].mean()), 4),
              "frames_worst_mm": round(float(runs["frames"].max()), 4),
              "network_mean_mm": round(float(network.mean()), 4),
              "mean_face_mm": round(float(mean_face), 4)}
    print(f"\n5. A video of a known face, {n} frames, expression and yaw (+-20 degrees) "
          f"changing; identity error, mm ({DEFAULT_STEPS} steps)")
    print(f"   mean face {moving['mean_face_mm']:.3f}; the network's starts, mean "
          f"{moving['network_mean_mm']:.3f}; each of {len(sample)} frames alone: best "
          f"{moving['frames_best_mm']:.3f}, mean {moving['frames_mean_mm']:.3f}, worst "
          f"{moving['frames_worst_mm']:.3f}; the video's identity (extract.py --refine) "
          f"{moving['video_mm']:.3f}")

    still_truth = np.repeat(draw(rng, 1), args.video_frames, axis=0)
    still = moving_video(face, lm3d, work / "still.mkv", still_truth, backgrounds[0], rng)
    columns = {name: np.arange(BLOCKS[name].start, BLOCKS[name].stop)
               for name in ("expression", "angles", "translation")}

    def spread(coeff):
        return {name: round(float(np.abs(np.diff(coeff[:, c], axis=0)).mean()), 6)
                for name, c in columns.items()}

    rows = {"network": spread(still.coeff)}
    for label, weight in (("fit, no temporal term", 0.0), ("fit, temporal term", 1.0)):
        log(f"[video] a still head, {label} ...")
        coeff, _, _ = refine_video(work / "still.mkv", still, Fitter(face, temporal_weight=weight),
                                   lm3d, args.video_steps, batch_size=8, sample_size=8)
        rows[label] = spread(coeff)
    print(f"   A still head, {n} frames: mean frame-to-frame change ({args.video_steps} steps "
          "a batch)")
    print(f"   {'':<26}{'expression':>12}{'angles rad':>12}{'translation dm':>16}")
    for label, row in rows.items():
        print(f"   {label:<26}{row['expression']:>12.4f}{row['angles']:>12.5f}"
              f"{row['translation']:>16.5f}")
    return {"video_identity": moving, "video_still": rows}


def part_cost(args, fitter, faces, rng):
    from facemodel.coefficients import LENGTH
    from fitting.optimize import plan

    rows, first = {}, {}
    for size in (1, 8):
        batch = faces.make(draw(rng, size))
        start = np.zeros((size, LENGTH), np.float32)
        clock = time.perf_counter()
        fitter.fit(start, batch, plan(args.cost_steps), per_photo_terms=False)
        first[size] = time.perf_counter() - clock       # traces, compiles, then steps
        clock = time.perf_counter()
        fitter.fit(start, batch, plan(args.cost_steps), per_photo_terms=False)
        rows[size] = 1000.0 * (time.perf_counter() - clock) / args.cost_steps / size
    per_photo = rows[8] * DEFAULT_STEPS / 1000.0
    print(f"\n6. Cost, once compiled: ms per photo per step: {rows[1]:.0f} at batch 1, "
          f"{rows[8]:.0f} at batch 8; {per_photo:.1f} s per photo for {DEFAULT_STEPS} steps "
          f"at batch 8. The first {args.cost_steps} steps of a new batch size (tracing and "
          f"the renderer's compiles) took {first[1]:.0f} s at batch 1, {first[8]:.0f} s at "
          "batch 8")
    return {"cost": {"ms_per_photo_step_batch1": round(rows[1], 1),
                     "ms_per_photo_step_batch8": round(rows[8], 1),
                     "s_per_photo_default_steps_batch8": round(per_photo, 2),
                     "first_steps_s": {str(k): round(v, 1) for k, v in first.items()}}}


def targets(report):
    """Issue 34's targets: (label, measured, goal, met) for what this run measured."""
    checks = []
    single = report.get("steps", {}).get(f"{DEFAULT_STEPS} steps")
    if single:
        for name in ("shape", "identity"):
            value = single[f"{name}_x"]
            goal = TARGETS[f"single_{name}"]
            checks.append((f"single photos, {name} error / mean face's", value,
                           f"<= {goal}", value <= goal))
    sets = report.get("sets")
    if sets:
        value = sets["4"]["shared_over_singles"]
        goal = TARGETS["set4_over_singles"]
        checks.append(("set of 4, identity error / singles'", value, f"<= {goal}",
                       value <= goal))
        checks.append(("set of 8, identity error (mm)", sets["8"]["shared_mm"],
                       f"< set of 4 ({sets['4']['shared_mm']})",
                       sets["8"]["shared_mm"] < sets["4"]["shared_mm"]))
    video = report.get("video_identity")
    if video:
        checks.append(("video identity error (mm)", video["video_mm"],
                       f"< best single frame ({video['frames_best_mm']})",
                       video["video_mm"] < video["frames_best_mm"]))
    return checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=8, help="faces per experiment (8)")
    parser.add_argument("--steps", default="25,50,100,200",
                        help="step counts from the mean face (25,50,100,200)")
    parser.add_argument("--people", type=int, default=2, help="people of the set part (2)")
    parser.add_argument("--video-frames", type=int, default=24, help="frames of the videos")
    parser.add_argument("--video-sample", type=int, default=16,
                        help="frames of the video's identity fit (16, extract.py's)")
    parser.add_argument("--video-steps", type=int, default=50,
                        help="steps a batch, still head (50)")
    parser.add_argument("--cost-steps", type=int, default=30, help="steps timed for the cost")
    parser.add_argument("--seed", type=int, default=0)
    for part in ("steps", "changes", "noisy", "sets", "video", "cost", "speed"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args(argv)
    args.steps = sorted(int(s) for s in args.steps.split(","))

    import tensorflow as tf

    import load_data
    from face_decoder import Face3D
    from fitting.optimize import Fitter
    from tests.synthetic_faces import background

    bfm_dir = smooth_bfm(log, scale="bfm09")
    front_path = bfm_dir / "BFM_model_front.mat"
    face = Face3D(front_path)
    front = load_data.load_front_model(front_path)
    lm3d = load_data.load_lm3d(bfm_dir)
    photos = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    backgrounds = [background(p) for p in photos] or [background(None, seed=s)
                                                      for s in range(4)]
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "tensorflow": tf.__version__, "faces": args.faces}
    print(f"machine: {report['machine']}, TensorFlow {report['tensorflow']}; full-size "
          f"synthetic model at BFM09's scale; backgrounds: {len(photos) or 'noise'} shared "
          "photos")
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    fitter = Fitter(face)
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as tmp:
        work = pathlib.Path(tmp)
        faces = Faces(face, front, lm3d, work, backgrounds)
        if not args.skip_steps:
            part, single = part_steps(args, fitter, faces, rng)
            report.update(part)
            if not args.skip_changes:
                report.update(part_changes(args, face, faces, single))
        if not args.skip_noisy:
            report.update(part_noisy(args, fitter, faces, rng))
        if not args.skip_sets:
            report.update(part_sets(args, fitter, faces, rng))
        if not args.skip_video:
            report.update(part_video(args, face, faces, lm3d, work, backgrounds, rng))
        if not args.skip_cost:
            report.update(part_cost(args, fitter, faces, rng))
    if not args.skip_speed:
        from bench.fit_speed import measure, print_report

        report["speed"] = measure(log=log)
        print("\n7. Speed, the code before issue 35 against this one (child processes):")
        print_report(report["speed"])
    checks = targets(report)
    print("\nTargets (issue 34), from this run:")
    for label, value, goal, met in checks:
        print(f"  {'met    ' if met else 'NOT MET'}  {label}: {value} ({goal})")
    report["targets"] = {label: {"value": value, "goal": goal, "met": bool(met)}
                         for label, value, goal, met in checks}
    report["bench_s"] = round(time.perf_counter() - start, 1)
    print(f"\nbench time: {report['bench_s']:.0f} s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
