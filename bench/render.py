"""Renderer benchmark: ours, and with --reference the published tf_mesh_renderer, side by side.

    python bench/render.py                 # ours only
    python bench/render.py --reference     # ours and the reference, same scenes, same run

Scenes (the same arrays are given to both renderers):
  procedural  a procedural face grid (35,721 vertices, 70,688 triangles) at small
              random poses;
  bfm         the BFM front mesh's topology (35,709 vertices, 70,789 triangles):
              a full-size synthetic model with smooth components (as a real
              morphable model's; tests.synthetic_assets.write_bfm09(bases="smooth"))
              written with the release's index files, once, into
              ~/.cache/deep3dface-bench/BFM-smooth (from the repository's BFM/), decoded
              by face_decoder.Face3D from random coefficients (the pipeline's
              posed vertices, rotated normals and lit colours), scaled about the
              face's centre so the face covers about 45% of the 224x224 crop.
Every call renders a new batch of faces from a pool of 16 per scene, with the
pipeline's camera (eye at (0, 0, 10), the release's field of view, near 0.01,
far 50, ambient light only).

Modes: `function` (a tf.function per pass, called eagerly) and `session` (a
TF1-style tf.compat.v1 graph with placeholders, run by a Session with a feed).
Passes: forward, and forward+backward (gradients of a random weighting of the
image with respect to the vertices and the colours). Batch 1 and 8.

Each (renderer, scene, mode, batch size) runs in a child process of its own, one
after the other, so that each has its own peak resident memory (VmHWM of the
child: TensorFlow, the scene pool and the renderer, run at that batch size only;
peak_rss_mib_by_batch in the JSON). Figures are the median of
--repeats timed calls after a warm-up (one call, then every face of the pool once,
untimed: ours compiles its kernels for a few data-dependent list lengths, see
warmup_s in the JSON), in milliseconds per image ("pool"); then calls on faces no
call has seen (pool faces moved a little, the same for both renderers), as in a
training run or an extraction: "first new", the median of the first --repeats of
them, right after the pool (ours still meets new list lengths there, and
compiles for them), and "new faces", the median of --repeats calls after 30 of
them (the start-up over; new_faces_warmup_s in the JSON says what those 30
took). With --reference the table gives ours / reference for every cell. The
last line is one JSON object with every figure.

With --xla-baseline the reference also runs in children that first compile
and run one trivial XLA kernel (x * 2 + 1 on 8 values): their peak memory is the
reference's plus what XLA's compiler alone costs a process (its library pages,
its threads, its heap), the floor for any renderer compiled at run time. It is
reported with the peak memory only.

The reference is built on first use by bench/reference_renderer.py (its own
source distribution, compiled here into a cache folder outside the repository).
"""
import argparse
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import high_water_mb, smooth_bfm  # noqa: E402

POOL = 16
TARGET_COVERAGE = 0.45
SIZE = 224
PASSES = ("forward", "forward+backward")
XLA_BASELINE = "reference+xla"
NEW_FACES_WARMUP = 30


# ---------------------------------------------------------------------------
# Scenes: arrays written once by the parent, read by every child.

def _normals(vertices, triangles):
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def procedural_scene(seed=0):
    """The procedural face grid at POOL small random poses and colours."""
    from tests.synthetic_assets import procedural_face

    face = procedural_face(189, 189)
    vertices = face["vertices"].astype(np.float64)
    triangles = face["triangles"].astype(np.int32)
    normals = _normals(vertices, triangles)
    rng = np.random.default_rng(seed)
    all_vertices, all_normals = [], []
    for _ in range(POOL):
        cx, cy, cz = np.cos(rng.uniform(-0.2, 0.2, 3))
        sx, sy, sz = np.sin(rng.uniform(-0.2, 0.2, 3))
        rotation = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
                    @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
                    @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
        all_vertices.append(vertices @ rotation.T + rng.uniform(-0.1, 0.1, 3))
        all_normals.append(normals @ rotation.T)
    colors = rng.uniform(100.0, 230.0, (POOL,) + vertices.shape)
    return {"vertices": np.stack(all_vertices).astype(np.float32), "triangles": triangles,
            "normals": np.stack(all_normals).astype(np.float32),
            "colors": colors.astype(np.float32)}


def bfm_scene(seed=0, log=print):
    """POOL faces of a full-size synthetic BFM decoded as the pipeline does."""
    import load_data
    from face_decoder import Face3D
    from facemodel.coefficients import BLOCKS, LENGTH, SIZES

    bfm_dir = smooth_bfm(log)
    face = Face3D(bfm_dir / load_data.FRONT_MODEL_NAME)
    rng = np.random.default_rng(seed)
    coeff = np.zeros((POOL, LENGTH), np.float32)
    for name, scale in (("identity", 0.5), ("expression", 0.3), ("albedo", 0.5)):
        coeff[:, BLOCKS[name]] = scale * rng.standard_normal((POOL, SIZES[name]))
    coeff[:, BLOCKS["angles"]] = rng.uniform(-0.25, 0.25, (POOL, SIZES["angles"]))
    coeff[:, BLOCKS["lighting"]] = 0.1 * rng.standard_normal((POOL, SIZES["lighting"]))
    x_y = BLOCKS["translation"].start
    coeff[:, x_y:x_y + 2] = rng.uniform(-0.1, 0.1, (POOL, 2))
    face.Reconstruction_Block(coeff, POOL, render_images=True)
    coverage = float(np.mean(face.render_imgs.numpy()[..., 3] > 0.5))
    vertices = face.face_shape_t.numpy()
    # Scale each face about its centre (in the camera's x-y plane) so that the
    # average coverage is TARGET_COVERAGE; coverage goes with the square of the size.
    centre = vertices.mean(axis=1, keepdims=True) * np.array([1.0, 1.0, 0.0])
    vertices = centre + (vertices - centre) * math.sqrt(TARGET_COVERAGE / coverage)
    return {"vertices": vertices.astype(np.float32),
            "triangles": face.facemodel.face_buf.astype(np.int32) - 1,
            "normals": face.face_norm.numpy().astype(np.float32),
            "colors": np.clip(face.face_color.numpy(), 0.0, 255.0).astype(np.float32)}


# ---------------------------------------------------------------------------
# One (renderer, scene, mode) in a child process.

def _render_fn(module):
    """render(vertices, triangles, normals, colors) with `module` and the pipeline's
    camera (face_decoder.render, unclipped, as in training)."""
    import face_decoder

    def render(vertices, triangles, normals, colors):
        return face_decoder.render(vertices, normals, colors, triangles, clip=False,
                                   renderer=module)

    return render


def _batches(scene, batch, calls):
    """`calls` batches of `batch` faces from the pool, each a different selection."""
    for call in range(calls):
        chosen = [(call * batch + i) % POOL for i in range(batch)]
        yield (scene["vertices"][chosen], scene["normals"][chosen], scene["colors"][chosen])


def _new_faces(scene, batch, calls, seed):
    """`calls` batches of pool faces each moved a little (scaled by 0.95-1.05 about
    its centre, shifted by up to about 5 pixels): faces no call has seen before, as
    in real use, where the lengths of our data-dependent lists change with every
    batch. The same seed gives both renderers the same faces."""
    rng = np.random.default_rng(seed)
    for _ in range(calls):
        chosen = rng.integers(0, POOL, batch)
        vertices = scene["vertices"][chosen].astype(np.float64)
        centre = vertices.mean(axis=1, keepdims=True) * np.array([1.0, 1.0, 0.0])
        scale = rng.uniform(0.95, 1.05, (batch, 1, 1))
        shift = np.concatenate([rng.uniform(-0.05, 0.05, (batch, 1, 2)),
                                np.zeros((batch, 1, 1))], axis=2)
        vertices = centre + (vertices - centre) * scale + shift
        yield (vertices.astype(np.float32), scene["normals"][chosen],
               scene["colors"][chosen])


def _call_times(run, batches):
    """Seconds of run(arrays) for each batch of arrays, one call each."""
    times = []
    for arrays in batches:
        start = time.perf_counter()
        run(arrays)
        times.append(time.perf_counter() - start)
    return times


def make_runners(render, scene, batch, mode, weights):
    """The two passes for one batch size in one mode: ({pass: run(arrays)}, close)."""
    import tensorflow as tf

    triangles = scene["triangles"]
    if mode == "function":
        @tf.function
        def forward(vertices, normals, colors):
            return render(vertices, tf.constant(triangles), normals, colors)

        @tf.function
        def forward_backward(vertices, normals, colors):
            with tf.GradientTape() as tape:
                tape.watch([vertices, colors])
                image = render(vertices, tf.constant(triangles), normals, colors)
                loss = tf.reduce_sum(image * weights)
            return image, tape.gradient(loss, [vertices, colors])

        def runner(fn):
            def run(arrays):
                return tf.nest.map_structure(lambda t: t.numpy(),
                                             fn(*[tf.constant(a) for a in arrays]))
            return run

        return {"forward": runner(forward),
                "forward+backward": runner(forward_backward)}, (lambda: None)

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        inputs = [v1.placeholder(tf.float32, [batch] + list(scene[name].shape[1:]))
                  for name in ("vertices", "normals", "colors")]
        image = render(inputs[0], tf.constant(triangles), inputs[1], inputs[2])
        gradients = tf.gradients(tf.reduce_sum(image * weights), [inputs[0], inputs[2]])
    session = v1.Session(graph=graph)

    def session_runner(fetches):
        def run(arrays):
            return session.run(fetches, dict(zip(inputs, arrays, strict=True)))
        return run

    return {"forward": session_runner(image),
            "forward+backward": session_runner([image] + gradients)}, session.close


def run_child(renderer, scene_file, mode, batches, repeats):
    """Times one renderer on one scene in one mode; returns a dict of figures."""
    if renderer in ("reference", XLA_BASELINE):
        import tensorflow as tf

        from bench.reference_renderer import load_reference
        module = load_reference(log=lambda line: print(line, file=sys.stderr))
        if renderer == XLA_BASELINE:
            trivial = tf.function(lambda x: x * 2.0 + 1.0, jit_compile=True)
            trivial(tf.ones([8])).numpy()
    else:
        import mesh_renderer as module
    render = _render_fn(module)
    scene = dict(np.load(scene_file))
    rng = np.random.default_rng(1)
    figures = {}
    for batch in batches:
        weights = rng.uniform(size=(batch, SIZE, SIZE, 4)).astype(np.float32)
        runners, close = make_runners(render, scene, batch, mode, weights)
        for name in PASSES:
            arrays = list(_batches(scene, batch, repeats + 1))
            start = time.perf_counter()
            try:
                first = runners[name](arrays[0])
            except Exception as error:  # noqa: BLE001 (reported in the table)
                text = str(error).strip().splitlines()
                figures[f"{name} b{batch}"] = {
                    "failed": f"{type(error).__name__}: {(text or ['?'])[0][:300]}"}
                continue
            first_s = time.perf_counter() - start
            # Then every other face of the pool once, untimed: our kernels
            # compile once per input shape, and the compacted lists they take
            # have data-dependent lengths (padded to a few lengths per octave),
            # so the first renders of new scenes can compile a kernel. The
            # timed calls measure the steady state; warmup_s says what the
            # warm-up cost.
            start = time.perf_counter()
            for warm in _batches(scene, batch, math.ceil(POOL / batch)):
                runners[name](warm)
            warmup_s = time.perf_counter() - start
            times = _call_times(runners[name], arrays[1:])
            # Then faces never seen, what a training run or an extraction
            # meets: the first calls right after the pool (ours still meets
            # new list lengths there, and compiles), and the calls after
            # NEW_FACES_WARMUP of them, once that start-up is over.
            new_times = _call_times(runners[name], _new_faces(
                scene, batch, NEW_FACES_WARMUP + repeats,
                seed=10 * batch + PASSES.index(name)))
            image = first[0] if isinstance(first, list | tuple) else first
            figures[f"{name} b{batch}"] = {
                "ms_per_image": round(float(np.median(times)) * 1e3 / batch, 3),
                "new_faces_ms_per_image": round(
                    float(np.median(new_times[NEW_FACES_WARMUP:])) * 1e3 / batch, 3),
                "first_new_faces_ms_per_image": round(
                    float(np.median(new_times[:repeats])) * 1e3 / batch, 3),
                "new_faces_warmup_s": round(sum(new_times[:NEW_FACES_WARMUP]), 2),
                "best_ms_per_image": round(min(times) * 1e3 / batch, 3),
                "first_call_s": round(first_s, 2),
                "warmup_s": round(warmup_s, 2),
                "coverage": round(float(np.mean(image[..., 3] > 0.5)), 3)}
        close()
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def peak_rss_mib():
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's
    peak over the fork and exec that started it)."""

    peak = high_water_mb("self")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return round(peak, 1)


# ---------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true",
                        help="also time the published tf_mesh_renderer (built on first use)")
    parser.add_argument("--xla-baseline", action="store_true",
                        help="with --reference, also the reference's peak memory after one "
                             "trivial XLA kernel (what XLA's compiler alone costs)")
    parser.add_argument("--scenes", nargs="+", choices=("procedural", "bfm"),
                        default=["procedural", "bfm"])
    parser.add_argument("--modes", nargs="+", choices=("function", "session"),
                        default=["function", "session"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per cell (10)")
    parser.add_argument("--child", nargs=3, metavar=("RENDERER", "SCENE_FILE", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(*args.child, args.batches, args.repeats)))
        return 0

    def log(line):
        print(line, flush=True)

    renderers = ["ours"] + (["reference"] if args.reference else [])
    if args.reference:
        from bench.reference_renderer import build
        build(log)
    work = pathlib.Path(tempfile.mkdtemp(prefix="deep3dface-render-bench-"))
    scene_files, scene_info = {}, {}
    for name in args.scenes:
        scene = procedural_scene() if name == "procedural" else bfm_scene(log=log)
        scene_files[name] = work / f"{name}.npz"
        np.savez(scene_files[name], **scene)
        scene_info[name] = {"vertices": int(scene["vertices"].shape[1]),
                            "triangles": int(scene["triangles"].shape[0])}
    children = renderers + ([XLA_BASELINE] if args.reference and args.xla_baseline else [])
    results = {}
    for scene_name, scene_file in scene_files.items():
        for mode in args.modes:
            for renderer in children:
                result = results[f"{renderer} {scene_name} {mode}"] = {
                    "peak_rss_mib_by_batch": {}}
                for batch in args.batches:
                    log(f"timing {renderer} on {scene_name}, {mode}, batch {batch} ...")
                    command = [sys.executable, str(pathlib.Path(__file__).resolve()),
                               "--child", renderer, str(scene_file), mode,
                               "--repeats", str(args.repeats), "--batches", str(batch)]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode != 0:
                        errors = [line for line in done.stderr.splitlines()
                                  if "Error" in line or "failed" in line]
                        reason = (errors or done.stderr.strip().splitlines() or ["?"])[-1]
                        log(f"  the {renderer} renderer failed here: {reason[:300]}")
                        result.update({f"{name} b{batch}": {"failed": reason[:300]}
                                       for name in PASSES})
                        continue
                    figures = json.loads(done.stdout.strip().splitlines()[-1])
                    result["peak_rss_mib_by_batch"][str(batch)] = figures.pop("peak_rss_mib")
                    result.update(figures)
    report = {"machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} cores", "size": SIZE, "repeats": args.repeats,
              "scenes": scene_info, "results": results}
    print_table(report, renderers, children, args)
    print(json.dumps(report))
    return 0


def print_table(report, renderers, children, args):
    import tensorflow as tf

    print()
    print(f"mesh_renderer, {SIZE}x{SIZE}, median of {args.repeats} calls after a warm-up "
          f"over the pool, ms per image; {report['machine']}; TensorFlow {tf.__version__}")
    for name, info in report["scenes"].items():
        print(f"  scene {name}: {info['vertices']} vertices, {info['triangles']} triangles")
    print("  pool: faces of the warm-up again; new faces: each call's faces moved a "
          f"little, never seen before, after {NEW_FACES_WARMUP} such calls; first new: "
          "the first such calls")
    header = f"{'scene':<11}{'mode':<10}{'pass':<18}{'batch':>6}{'coverage':>10}"
    for figure in ("pool", "new faces", "first new"):
        header += "".join(f"{(figure + ' ' + r):>20}" for r in renderers)
        if "reference" in renderers:
            header += f"{'ours/ref':>10}"
    print(header)
    results = report["results"]
    ratios, new_face_ratios, first_new_ratios = {}, {}, {}
    for scene in report["scenes"]:
        for mode in args.modes:
            for batch in args.batches:
                for name in PASSES:
                    key = f"{name} b{batch}"
                    cells = [results[f"{r} {scene} {mode}"].get(key) for r in renderers]
                    cells = [c if c and "ms_per_image" in c else None for c in cells]
                    coverage = next((c["coverage"] for c in cells if c), float("nan"))
                    row = f"{scene:<11}{mode:<10}{name:<18}{batch:>6}{coverage:>10.3f}"
                    for figure, table in (
                            ("ms_per_image", ratios),
                            ("new_faces_ms_per_image", new_face_ratios),
                            ("first_new_faces_ms_per_image", first_new_ratios)):
                        for cell in cells:
                            row += (f"{cell[figure]:>20.2f}" if cell and figure in cell
                                    else f"{'failed':>20}")
                        if "reference" in renderers and all(
                                cell and figure in cell for cell in cells):
                            ratio = cells[0][figure] / cells[1][figure]
                            table[f"{scene} {mode} {key}"] = round(ratio, 3)
                            row += f"{ratio:>10.2f}"
                    print(row)
    print("peak resident memory, MiB (a child process per batch size: TensorFlow, the "
          "scene pool, the renderer" + ("; reference+xla: the reference after one trivial "
                                        "XLA kernel" if XLA_BASELINE in children else "")
          + "):")
    for scene in report["scenes"]:
        for mode in args.modes:
            for batch in args.batches:
                peaks = [results[f"{r} {scene} {mode}"]["peak_rss_mib_by_batch"].get(
                    str(batch)) for r in children]
                row = f"  {scene:<11}{mode:<10}b{batch:<5}" + "".join(
                    f"{r} {'failed' if peak is None else f'{peak:.0f}'}   "
                    for r, peak in zip(children, peaks, strict=True))
                if "reference" in children and None not in peaks[:2]:
                    row += f"ours - reference {peaks[0] - peaks[1]:+.0f}"
                print(row)
    report["ratios_ours_over_reference"] = ratios
    report["new_faces_ratios_ours_over_reference"] = new_face_ratios
    report["first_new_faces_ratios_ours_over_reference"] = first_new_ratios


if __name__ == "__main__":
    sys.exit(main())
