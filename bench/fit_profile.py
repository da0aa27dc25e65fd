"""Where a fit's Adam step spends its time: decoder, normals, lighting, render, loss,
gradients, update.

    python bench/fit_profile.py                 # batch 8, the full-size BFM09-scale model
    python bench/fit_profile.py --batch 1 --repeats 20

Each row times a compiled function that does one more part of the step
than the row above, on the same coefficients and photos (synthetic faces
of the full-size model at BFM09's scale, `bench.common.smooth_bfm`), and
the part's cost is the difference from the row above:

1. shape and pose: identity and expression bases, rotation, translation;
2. normals (per triangle, summed per vertex, rotated; the losses' XLA kernel);
3. albedo, lighting and the 68 projected landmarks (the whole decoder);
4. the two renders of the loss (the face's colours, and the small face
   region's coverage: `face_decoder.render_colors`, `render_coverage`);
5. the loss terms (`fitting.objective.FitLoss`, the release's terms);
6. their gradient with respect to the coefficients;
7. a whole Adam step as `fitting.optimize.Fitter` runs it (the update, and
   the step's Python round trip), timed over a run of steps; its gradient is
   taken with respect to the block variables, not one [B, 257] tensor, so
   its difference from row 6 can fall within the timing noise ("noise").

Figures: ms a photo for each row and each part (median of --repeats, after
a warm-up call), then one JSON line.
"""
import argparse
import json
import os
import pathlib
import platform
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench.common import smooth_bfm  # noqa: E402


def median_ms(function, repeats):
    """Median wall time of `function()` in ms, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        function()
        times.append(1000.0 * (time.perf_counter() - clock))
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="photos a step (8)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls a row (10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import tensorflow as tf

    import face_decoder as fd
    from face_decoder import Face3D
    from fitting.objective import FitBatch, landmark_target
    from fitting.optimize import Fitter, Stage
    from tests.synthetic_faces import background, draw_coefficients, render_faces

    face = Face3D(smooth_bfm(scale="bfm09") / "BFM_model_front.mat")
    rng = np.random.default_rng(args.seed)
    truth = draw_coefficients(rng, args.batch)
    rendered = render_faces(face, truth, background(None, seed=args.seed))
    batch = FitBatch.stack(rendered["rgb"][..., ::-1].astype(np.float32),
                           [landmark_target(lm68=lm) for lm in rendered["lm68"]],
                           [np.full((224, 224), 255.0, np.float32)] * args.batch)
    start = (truth + rng.normal(0, 0.1, truth.shape)).astype(np.float32)
    coeff = tf.constant(start)
    tensors = [tf.constant(x) for x in (batch.images, batch.landmarks,
                                        batch.landmark_weights, batch.masks)]
    fitter = Fitter(face)
    model = face._model_tensors()

    def decoded(coeff, normals=True, colours=True):
        id_coeff, ex_coeff, tex_coeff, angles, gamma, translation = fd.split_coeff(coeff)
        shape = fd.compute_shape(id_coeff, ex_coeff, model)
        rotation = fd.compute_rotation(angles)
        posed = fd.rotate(shape, rotation) + translation[:, None, :]
        total = tf.reduce_sum(posed)
        if normals:      # the losses' XLA kernel (`Face3D.Reconstruction_Block(xla_normals=)`)
            normal = fd.rotate(face._xla_normals([shape], []), rotation)
            total += tf.reduce_sum(normal)
        if colours:
            colour = fd.illuminate(fd.compute_texture(tex_coeff, model), normal, gamma)
            landmarks = fd.project_points(tf.gather(posed, model.keypoints, axis=1))
            total += tf.reduce_sum(colour) + tf.reduce_sum(landmarks)
        return total

    hybrid = fitter.loss.hybrid

    def renders(coeff):          # as `losses.hybrid.HybridLoss` renders
        face.Reconstruction_Block(coeff, render_images=False, xla_normals=True)
        rgb, alpha = fd.render_colors(face.face_shape_t, face.face_color, hybrid.triangles)
        region = fd.render_coverage(tf.gather(face.face_shape_t, hybrid.region_vertices, axis=1),
                                    hybrid.region_triangles)
        return tf.reduce_sum(rgb) + tf.reduce_sum(alpha) + tf.reduce_sum(region)

    def loss(coeff, *data):
        return fitter.loss(coeff, FitBatch(*data))[0]["total"]

    def gradient(coeff, *data):
        with tf.GradientTape() as tape:
            tape.watch(coeff)
            total = loss(coeff, *data)
        return tape.gradient(total, coeff)

    rows = [
        ("shape and pose", tf.function(lambda c: decoded(c, normals=False, colours=False)),
         (coeff,)),
        ("+ normals", tf.function(lambda c: decoded(c, colours=False)), (coeff,)),
        ("+ albedo, lighting, landmarks", tf.function(decoded), (coeff,)),
        ("+ the two renders", tf.function(renders), (coeff,)),
        ("+ loss terms", tf.function(loss), (coeff, *tensors)),
        ("+ gradients", tf.function(gradient), (coeff, *tensors)),
    ]
    figures = {}
    for label, function, inputs in rows:
        figures[label] = median_ms(lambda f=function, i=inputs: f(*i).numpy(),
                                   args.repeats) / args.batch
    steps = max(args.repeats, 5)
    fitter.fit(start, batch, [Stage(2)], per_photo_terms=False)           # compiles
    clock = time.perf_counter()
    fitter.fit(start, batch, [Stage(steps)], per_photo_terms=False)
    figures["+ Adam update (a whole step)"] = (
        1000.0 * (time.perf_counter() - clock) / steps / args.batch)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TensorFlow "
          f"{tf.__version__}; batch {args.batch}, full-size model at BFM09's scale")
    print(f"{'':<34}{'ms a photo':>12}{'this part':>12}")
    previous = 0.0
    parts = {}
    for label, value in figures.items():
        parts[label] = value - previous
        part = f"{parts[label]:.2f}" if parts[label] > 0 else "noise"
        print(f"{label:<34}{value:>12.2f}{part:>12}")
        previous = value
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "tensorflow": tf.__version__, "batch": args.batch,
                      "cumulative_ms_per_photo": {k: round(v, 3) for k, v in figures.items()},
                      "part_ms_per_photo": {k: round(v, 3) for k, v in parts.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
