"""Tests of the pure-TensorFlow mesh_renderer package (renderer.md).

Independent references: the reference library's golden images, a NumPy
re-implementation of the rasterization rules of renderer.md (float64),
NumPy camera formulas, and central finite differences.
"""
import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import mesh_renderer
from mesh_renderer import camera_utils, rasterize_triangles
from tests.conftest import REPO_ROOT, shared_path
from tests.renderer_reference import (
    CUBE,
    CUBE_TRIANGLES,
    assert_matches_reference,
    colored_cube,
    compare_with_golden,
    numpy_camera,
    numpy_rasterize,
    numpy_rotation,
    render_ids,
    simple_triangle,
)

# ----------------------------------------------------------------------------
# 1. Public API
# ----------------------------------------------------------------------------

def test_public_api():
    from mesh_renderer import camera_utils as cu
    from mesh_renderer import rasterize_triangles as rt
    assert inspect.isfunction(mesh_renderer.mesh_renderer)
    def params(f):
        return [(p.name, p.default)
                for p in inspect.signature(f).parameters.values()]
    e = inspect.Parameter.empty
    assert params(mesh_renderer.mesh_renderer) == [
        ('vertices', e), ('triangles', e), ('normals', e),
        ('diffuse_colors', e), ('camera_position', e), ('camera_lookat', e),
        ('camera_up', e), ('light_positions', e), ('light_intensities', e),
        ('image_width', e), ('image_height', e), ('specular_colors', None),
        ('shininess_coefficients', None), ('ambient_color', None),
        ('fov_y', 40.0), ('near_clip', 0.01), ('far_clip', 10.0)]
    assert params(mesh_renderer.phong_shader) == [
        ('normals', e), ('alphas', e), ('pixel_positions', e),
        ('light_positions', e), ('light_intensities', e),
        ('diffuse_colors', None), ('camera_position', None),
        ('specular_colors', None), ('shininess_coefficients', None),
        ('ambient_color', None)]
    assert params(mesh_renderer.tone_mapper) == [('image', e), ('gamma', e)]
    assert [p for p, _ in params(rt.rasterize)] == [
        'world_space_vertices', 'attributes', 'triangles', 'camera_matrices',
        'image_width', 'image_height', 'background_value']
    assert [p for p, _ in params(rt.rasterize_clip_space)] == [
        'clip_space_vertices', 'attributes', 'triangles', 'image_width',
        'image_height', 'background_value']
    assert [p for p, _ in params(cu.perspective)] == [
        'aspect_ratio', 'fov_y', 'near_clip', 'far_clip']
    assert [p for p, _ in params(cu.look_at)] == ['eye', 'center', 'world_up']
    assert [p for p, _ in params(cu.euler_matrices)] == ['angles']
    assert [p for p, _ in params(cu.transform_homogeneous)] == [
        'matrices', 'vertices']
    assert mesh_renderer.camera_utils is cu
    assert mesh_renderer.rasterize_triangles is rt


def test_camera_utils_match_numpy():
    eye = np.array([[2.0, 3.0, 6.0], [0.0, 0.2, 18.0]], np.float32)
    center = np.array([[0.0, 0.0, 0.0], [0.1, -0.1, 0.1]], np.float32)
    up = np.array([[0.0, 1.0, 0.0], [0.1, 1.0, 0.15]], np.float32)
    fov, near, far = [40.0, 13.3], [0.01, 0.1], [10.0, 25.0]
    ours = tf.matmul(camera_utils.perspective(4 / 3, fov, near, far),
                     camera_utils.look_at(eye, center, up)).numpy()
    for b in range(2):
        ref = numpy_camera(eye[b], center[b], up[b], fov[b], near[b], far[b],
                           4 / 3)
        np.testing.assert_allclose(ours[b], ref, rtol=1e-5, atol=1e-5)
    angles = np.array([[-20.0, 0.0, 60.0], [0.3, -0.7, 1.1]], np.float32)
    rot = camera_utils.euler_matrices(angles).numpy()
    for b in range(2):
        np.testing.assert_allclose(rot[b, :3, :3], numpy_rotation(angles[b]),
                                   atol=1e-6)
        np.testing.assert_allclose(rot[b, 3], [0, 0, 0, 1])
    points = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    out = camera_utils.transform_homogeneous(rot, points).numpy()
    np.testing.assert_allclose(out[..., :3],
                               np.einsum('bij,bnj->bni', rot[:, :3, :3],
                                         points), atol=1e-5)
    np.testing.assert_allclose(out[..., 3], 1.0)


# ----------------------------------------------------------------------------
# 2. Execution modes; 3. golden images
# ----------------------------------------------------------------------------

def test_simple_triangle_golden():
    compare_with_golden(simple_triangle().numpy()[0], 'Simple_Triangle.png')


def test_colored_cube_golden_eager_and_scalar_shininess():
    compare_with_golden(colored_cube().numpy()[0], 'Colored_Cube_0.png')
    compare_with_golden(colored_cube(shininess=6.0).numpy()[0],
                        'Colored_Cube_0.png')


def test_colored_cube_golden_tf_function():
    compare_with_golden(tf.function(colored_cube)().numpy()[0],
                        'Colored_Cube_0.png')


def test_graph_and_session_under_tf2_behaviour():
    shared_path('data', 'renderer_golden', 'Colored_Cube_0.png')
    graph = tf.Graph()
    with graph.as_default():
        image = colored_cube()
        graph_def = graph.as_graph_def()
        with tf.compat.v1.Session(graph=graph) as session:
            result = session.run(image)
    assert len(graph_def.SerializeToString()) > 0
    compare_with_golden(result[0], 'Colored_Cube_0.png')


TF1_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    tf.compat.v1.disable_v2_behavior()
    sys.path.insert(0, sys.argv[1])
    from tests import renderer_reference as T
    import mesh_renderer
    from mesh_renderer import camera_utils, rasterize_triangles
    vertices = tf.compat.v1.placeholder(tf.float32, [None, 8, 3])
    angles = tf.compat.v1.placeholder(tf.float32, [None, 3])
    rotation = camera_utils.euler_matrices(angles)[:, :3, :3]
    world = tf.matmul(vertices, rotation, transpose_b=True)
    normals = tf.matmul(tf.math.l2_normalize(vertices, axis=2), rotation,
                        transpose_b=True)
    batch = tf.shape(vertices)[0]
    render = mesh_renderer.mesh_renderer(
        world, T.CUBE_TRIANGLES, normals, tf.tile(T.DIFFUSE[None], [batch, 1, 1]),
        [0.0, 0.0, 6.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0],
        tf.tile([[[0.0, 0.0, 6.0], [1.0, 2.0, 6.0]]], [batch, 1, 1]),
        tf.ones([batch, 2, 3]), 640, 480,
        tf.tile(T.SPECULAR[None], [batch, 1, 1]), 6.0 * tf.ones([batch, 8]),
        tf.zeros([batch, 3]), 40.0, 0.1, 25.0)
    image = tf.concat([mesh_renderer.tone_mapper(render[..., :3], 0.7),
                       render[..., 3:]], axis=3)
    grads = tf.gradients(tf.reduce_sum(render), [vertices, angles])
    clip = tf.compat.v1.placeholder(tf.float32, [None, 3, 4])
    triangle = rasterize_triangles.rasterize_clip_space(
        clip, tf.eye(3)[None], [[0, 1, 2]], 640, 480, [0.0, 0.0, 0.0])
    graph_def = tf.compat.v1.get_default_graph().as_graph_def()
    assert len(graph_def.SerializeToString()) > 0
    with tf.compat.v1.Session() as session:
        result, grad_values = session.run(
            [image, grads], {vertices: np.stack([T.CUBE, T.CUBE]),
                             angles: [[-20.0, 0.0, 60.0], [-20.0, 0.0, 60.0]]})
        tri = session.run(triangle, {clip: [[[-0.5, -0.5, 0.8, 1.0],
                                             [0.0, 0.5, 0.3, 1.0],
                                             [0.5, -0.5, 0.3, 1.0]]]})
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in grad_values)
    for b in range(2):
        T.compare_with_golden(result[b], 'Colored_Cube_0.png')
    T.compare_with_golden(np.concatenate([tri[0], np.ones((480, 640, 1))], 2),
                          'Simple_Triangle.png')
    print('TF1 OK')
''')


def test_tf1_style_program_golden_and_gradients():
    shared_path('data', 'renderer_golden', 'Colored_Cube_0.png')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run([sys.executable, '-c', TF1_SCRIPT, str(REPO_ROOT)],
                          capture_output=True, text=True, cwd=str(REPO_ROOT),
                          env=env, timeout=300)
    assert proc.returncode == 0 and 'TF1 OK' in proc.stdout, proc.stderr[-3000:]


# ----------------------------------------------------------------------------
# Rasterization rules against the NumPy reference
# ----------------------------------------------------------------------------

@pytest.mark.parametrize('session', [False, True], ids=['eager', 'session'])
def test_random_scene_matches_numpy_reference(session):
    # In a TF1-style session too: there `==` between tensors is identity, not
    # an elementwise comparison, so the rasterizer must not rely on it.
    rng = np.random.default_rng(3)
    count = 40
    clip = rng.uniform(-1.2, 1.2, size=(2, 3 * count, 4)).astype(np.float32)
    clip[..., 2] = rng.uniform(-1.1, 1.1, size=(2, 3 * count))
    clip[..., 3] = rng.uniform(0.6, 1.6, size=(2, 3 * count))
    # Small triangles (tile path) and large ones (enumeration path).
    centres = rng.uniform(-1, 1, size=(2, count, 1, 2))
    scale = np.where(np.arange(count) % 2 == 0, 0.03, 0.6)[None, :, None, None]
    offsets = clip[..., :2].reshape(2, count, 3, 2) * scale + centres
    clip[..., :2] = (offsets.reshape(2, 3 * count, 2) *
                     clip[..., 3:4]).astype(np.float32)
    triangles = np.arange(3 * count, dtype=np.int32).reshape(-1, 3)
    assert_matches_reference(clip, triangles, 37, 29, session)


def test_small_triangles_of_every_pass_match_numpy_reference():
    # Triangles of 0.3 to 4 pixels at random depths. The rasterizer draws a
    # triangle in its first pass when at most two pixel centres lie in its
    # box and at most one is covered, in its tile pass when two are covered
    # or three to six lie in its box, and by enumeration otherwise; the scene
    # has triangles of each kind, and all must match the reference.
    rng = np.random.default_rng(7)
    width, height, count = 40, 32, 300
    centres = rng.uniform(-0.9, 0.9, (count, 1, 2))
    sizes = rng.uniform(0.3, 4.0, (count, 1, 1)) * (2.0 / width)
    corners = centres + rng.uniform(-1.0, 1.0, (count, 3, 2)) * sizes
    w = rng.uniform(0.8, 1.5, (count, 3, 1))
    z = (rng.uniform(-0.9, 0.9, (count, 1, 1)) +
         rng.uniform(-0.05, 0.05, (count, 3, 1)))
    clip = np.concatenate([corners * w, z * w, w], axis=2).reshape(
        1, 3 * count, 4).astype(np.float32)
    triangles = np.arange(3 * count, dtype=np.int32).reshape(-1, 3)

    kinds = set()
    for triangle in triangles:
        corner = clip[0, triangle].astype(np.float64)
        box = 1
        for axis, size in ((0, width), (1, height)):
            screen = (corner[:, axis] / corner[:, 3] + 1.0) * size / 2
            box *= max(0, int(np.floor(screen.max() - 0.5)) -
                       int(np.ceil(screen.min() - 0.5)) + 1)
        covered = np.sum(numpy_rasterize(corner, [[0, 1, 2]], width,
                                         height)[0] >= 0)
        if box <= 2 and covered == 1:
            kinds.add('first pass')
        elif (box == 2 and covered == 2) or (3 <= box <= 6 and covered):
            kinds.add('tile pass')
        elif box > 6 and covered:
            kinds.add('enumeration')
    assert kinds == {'first pass', 'tile pass', 'enumeration'}
    assert_matches_reference(clip, triangles, width, height)


@pytest.mark.parametrize('session', [False, True], ids=['eager', 'session'])
def test_shared_edges_have_no_cracks_and_tie_goes_to_later_triangle(session):
    # A 12x12 grid of quads in the z = 0.5 plane; diagonal edges pass through
    # pixel centres exactly. Every pixel inside must be covered.
    n = 12
    coords = (np.arange(n + 1) - n / 2) * (1.6 / n)
    gx, gy = np.meshgrid(coords, coords)
    verts = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, 0.5),
                      np.ones(gx.size)], axis=1).astype(np.float32)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    triangles = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3),
                                np.stack([a, d, c], -1).reshape(-1, 3)])
    for size in (24, 250):   # one-candidate path and enumeration path
        out = render_ids(verts[None], triangles.astype(np.int32), size, size,
                         session)[0][0] + 1
        centres = (np.arange(size) + 0.5) / (size / 2) - 1
        inside = np.abs(centres) < 0.8 - 1e-6
        assert np.all(out[np.ix_(inside, inside)] > 0), size
    # Two identical overlapping triangles: the later one wins exact ties.
    clip = np.array([[[-0.9, -0.9, 0.2, 1], [0.9, -0.9, 0.2, 1],
                      [0.0, 0.9, 0.2, 1]] * 2], np.float32)
    ids, _ = render_ids(clip, np.array([[0, 1, 2], [3, 4, 5]]), 16, 16,
                        session)
    assert np.all(ids[0][ids[0] >= 0] == 1) and np.sum(ids[0] >= 0) > 50


# ----------------------------------------------------------------------------
# 4. Gradients
# ----------------------------------------------------------------------------

def _full_render(vertices, normals, colors, width=28, height=21):
    """The reference's full-render gradient scene, one image per batch row."""
    batch = tf.shape(vertices)[0]
    eye = tf.constant([0.0, 0.0, 6.0])
    return mesh_renderer.mesh_renderer(
        vertices, CUBE_TRIANGLES, normals, colors, eye, [0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0], tf.tile(eye[None, None], [batch, 1, 1]),
        tf.ones([batch, 1, 3]), width, height)


def _outlier_fraction(theoretical, numerical, threshold=0.01):
    err = np.abs(numerical - theoretical)
    outlier = err > threshold * np.abs(numerical)
    # Entries that are zero (to float32 noise) in both do not count.
    outlier &= ~((np.abs(numerical) < 1e-5) & (np.abs(theoretical) < 1e-5))
    return outlier.mean()


def test_full_render_jacobian_matches_finite_differences():
    rotations = camera_utils.euler_matrices(
        [[-20.0, 0.0, 60.0], [45.0, 60.0, 0.0]])[:, :3, :3].numpy()
    normals0 = CUBE / np.linalg.norm(CUBE, axis=1, keepdims=True)
    colors0 = np.tile(np.array([[0.9, 0.6, 0.3]], np.float32), (8, 1))
    delta = 1e-3
    outputs = 21 * 28 * 4
    fractions = []
    for image in range(2):
        rot = rotations[image]
        # Inputs: cube positions (before rotation), world normals, colours.
        base = [CUBE, normals0 @ rot.T, colors0]

        def render_many(stacks, rot=rot):
            verts, norms, cols = stacks
            world = np.einsum('ij,bnj->bni', rot, verts).astype(np.float32)
            return _full_render(world, norms.astype(np.float32),
                                cols.astype(np.float32))

        for which in range(3):
            n_in = 24
            # Numerical Jacobian: all 2*24 perturbed renders in one batch.
            stacks = [np.repeat(b[None], 2 * n_in, 0).astype(np.float32)
                      for b in base]
            for k in range(n_in):
                stacks[which][2 * k].reshape(-1)[k] += delta
                stacks[which][2 * k + 1].reshape(-1)[k] -= delta
            out = render_many(stacks).numpy().reshape(n_in, 2, -1)
            numerical = (out[:, 0] - out[:, 1]) / (2 * delta)   # [24, out]
            # Theoretical Jacobian: one vector-Jacobian product per output,
            # each on its own copy of the scene, in batches.
            rows = []
            for start in range(0, outputs, 1176):
                count = min(1176, outputs - start)
                copies = [tf.constant(np.repeat(b[None], count, 0),
                                      tf.float32) for b in base]
                upstream = np.zeros((count, outputs), np.float32)
                upstream[np.arange(count), start + np.arange(count)] = 1
                with tf.GradientTape() as tape:
                    tape.watch(copies[which])
                    world = tf.einsum('ij,bnj->bni', rot, copies[0])
                    render = _full_render(world, copies[1], copies[2])
                grad = tape.gradient(
                    render, copies[which],
                    output_gradients=upstream.reshape(count, 21, 28, 4))
                rows.append(grad.numpy().reshape(count, -1))
            theoretical = np.concatenate(rows).T                 # [24, out]
            assert np.abs(numerical).max() > 0.1
            fractions.append(_outlier_fraction(theoretical, numerical))
    assert max(fractions) <= 0.01, fractions


def test_single_pixel_barycentric_jacobian_is_exact():
    clip0 = np.array([[-0.5, -0.5, 0.8, 1.0], [0.0, 0.5, 0.3, 1.0],
                      [0.5, -0.5, 0.3, 1.0]], np.float32)
    clip0[:, :2] *= 1.3      # a non-trivial w to exercise perspective
    clip0[:, :] *= np.array([[1.0], [1.6], [0.8]], np.float32)
    px, py = 325, 245

    def bary(clips):
        out = rasterize_triangles.rasterize_clip_space(
            clips, tf.tile(tf.eye(3)[None], [tf.shape(clips)[0], 1, 1]),
            [[0, 1, 2]], 640, 480, [0.0, 0.0, 0.0])
        return out[:, py, px, :]

    delta = 1e-3
    stack = np.repeat(clip0[None], 24, 0)
    for k in range(12):
        stack[2 * k].reshape(-1)[k] += delta
        stack[2 * k + 1].reshape(-1)[k] -= delta
    out = bary(tf.constant(stack)).numpy().reshape(12, 2, 3)
    numerical = (out[:, 0] - out[:, 1]) / (2 * delta)
    # Analytic reference: b = e / sum(e), e_i = (v_j x v_k) . p in float64.
    p = np.array([(px + 0.5) / 320 - 1, (py + 0.5) / 240 - 1, 1.0])

    def exact(c):
        m = c[:, [0, 1, 3]]
        e = np.array([np.cross(m[1], m[2]) @ p, np.cross(m[2], m[0]) @ p,
                      np.cross(m[0], m[1]) @ p])
        return e / e.sum()

    analytic = np.zeros((12, 3))
    c64 = clip0.astype(np.float64)
    for k in range(12):
        hi, lo = c64.copy(), c64.copy()
        hi.reshape(-1)[k] += 1e-6
        lo.reshape(-1)[k] -= 1e-6
        analytic[k] = (exact(hi) - exact(lo)) / 2e-6
    clips = tf.constant(clip0[None])
    rows = []
    for i in range(3):
        with tf.GradientTape() as tape:
            tape.watch(clips)
            value = bary(clips)[0, i]
        rows.append(tape.gradient(value, clips).numpy().reshape(-1))
    theoretical = np.stack(rows, 1)       # [12, 3]
    assert np.all(bary(clips).numpy() > 0.05)
    np.testing.assert_allclose(theoretical, analytic, rtol=0.01, atol=1e-6)
    np.testing.assert_allclose(numerical, analytic, rtol=0.01, atol=2e-3)
    assert np.all(theoretical[2::4] == 0)   # no dependence on clip z


def test_cube_rotation_is_recovered_by_sgd():
    width, height = 160, 120
    eye = tf.constant([[0.0, 0.0, 6.0]])
    normals = CUBE / np.linalg.norm(CUBE, axis=1, keepdims=True)

    def render(angles):
        rotation = camera_utils.euler_matrices(angles)[0, :3, :3]
        vertices = tf.matmul(CUBE, rotation, transpose_b=True)[None]
        world_normals = tf.matmul(normals, rotation, transpose_b=True)[None]
        return mesh_renderer.mesh_renderer(
            vertices, CUBE_TRIANGLES, world_normals, tf.ones_like(vertices),
            eye, [[0.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], eye[None],
            tf.ones([1, 1, 3]), width, height)[0]

    desired = render(tf.constant([[-20.0, 0.0, 60.0]]))
    angles = tf.Variable([[0.0, 0.0, 0.0]])
    velocity = tf.Variable(tf.zeros([1, 3]))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(render(angles) - desired))
        grad = tape.gradient(loss, angles)
        grad, _ = tf.clip_by_global_norm([grad], 1.0)
        # Momentum SGD as tf.compat.v1.train.MomentumOptimizer.
        velocity.assign(0.1 * velocity + grad[0])
        angles.assign_sub(0.7 * velocity)
        return loss

    for _ in range(35):
        step()
    final = render(angles).numpy()
    outliers = np.any(np.abs(np.clip(final, 0, 1) -
                             np.clip(desired.numpy(), 0, 1)) > 0.04, axis=2)
    assert outliers.mean() <= 0.01, outliers.mean()


# ----------------------------------------------------------------------------
# 5. Batches with unknown size and per-image cameras
# ----------------------------------------------------------------------------

def test_batch_of_unknown_size_with_per_image_cameras():
    eye = np.array([[0.0, 0.0, 6.0], [0.0, 0.2, 18.0]], np.float32)
    center = np.array([[0.0, 0.0, 0.0], [0.1, -0.1, 0.1]], np.float32)
    up = np.array([[0.0, 1.0, 0.0], [0.1, 1.0, 0.15]], np.float32)
    fov = np.array([40.0, 13.3], np.float32)
    near = np.array([0.1, 1.0], np.float32)
    far = np.array([25.0, 20.0], np.float32)
    rot = [numpy_rotation(a) for a in ([-20.0, 0.0, 60.0], [45.0, 60.0, 0.0])]
    world = np.stack([CUBE @ r.T for r in rot]).astype(np.float32)
    width, height = 48, 36

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 3], tf.float32)] +
                 [tf.TensorSpec([None, 3], tf.float32)] * 3 +
                 [tf.TensorSpec([None], tf.float32)] * 3)
    def render(world, eye, center, up, fov, near, far):
        attrs = tf.concat([world, tf.ones_like(world[..., :1])], axis=2)
        matrices = tf.matmul(camera_utils.perspective(width / height, fov,
                                                      near, far),
                             camera_utils.look_at(eye, center, up))
        return rasterize_triangles.rasterize(world, attrs, CUBE_TRIANGLES,
                                             matrices, width, height,
                                             [0.0, 0.0, 0.0, 0.0])

    out = render(world, eye, center, up, fov, near, far).numpy()
    for b in range(2):
        cam = numpy_camera(eye[b], center[b], up[b], fov[b], near[b], far[b],
                           width / height)
        clip = np.concatenate([world[b], np.ones((8, 1))], 1) @ cam.T
        ids, bary, margin = numpy_rasterize(clip, CUBE_TRIANGLES, width, height)
        robust = margin > 1e-3
        covered = ids >= 0
        assert np.all((out[b, ..., 3] > 0.5) == covered | ~robust)
        expected = np.einsum('hwk,hwkc->hwc', bary,
                             world[b][CUBE_TRIANGLES[np.maximum(ids, 0)]])
        np.testing.assert_allclose(out[b, ..., :3][covered & robust],
                                   expected[covered & robust], atol=2e-3)
    # The same images rendered one at a time: equal up to float32 rounding
    # (the module docstring's promise; XLA vectorises each batch shape
    # differently, so bit-identity would depend on the CPU's vector width).
    eps = np.finfo(np.float32).eps
    for b in range(2):
        single = render(*[x[b:b + 1] for x in (world, eye, center, up, fov,
                                                near, far)]).numpy()[0]
        cam = numpy_camera(eye[b], center[b], up[b], fov[b], near[b], far[b],
                           width / height)
        clip = np.concatenate([world[b], np.ones((8, 1))], 1) @ cam.T
        robust = numpy_rasterize(clip, CUBE_TRIANGLES, width, height)[2] > 1e-3
        np.testing.assert_array_equal((single[..., 3] > 0.5)[robust],
                                      (out[b, ..., 3] > 0.5)[robust])   # Same coverage.
        scale = np.abs(world[b]).max()       # Values interpolated from vertices.
        np.testing.assert_allclose(single[robust], out[b][robust], rtol=0,
                                   atol=16 * eps * scale)


# ----------------------------------------------------------------------------
# 6. Scale: a face-sized mesh at 224x224 and 1024x1024, bounded memory
# ----------------------------------------------------------------------------

SCALE_SCRIPT = textwrap.dedent('''
    import math, resource, sys
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, sys.argv[1])
    import mesh_renderer
    from tests.synthetic_assets import procedural_face
    face = procedural_face(189, 189)
    v = face['vertices'].astype(np.float32)[None]
    t = face['triangles'].astype(np.int32)
    fov = 2 * math.degrees(math.atan(112 / 1015))
    for size in (224, 1024):
        img = mesh_renderer.mesh_renderer(
            v, t, np.tile([[[0.0, 0.0, 1.0]]], (1, v.shape[1], 1)),
            np.full_like(v, 200.0), [0.0, 0.0, 10.0], [0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0], [[[0.0, 0.0, 1e5]]], np.zeros((1, 1, 3)),
            size, size, ambient_color=np.ones((1, 3), np.float32),
            fov_y=fov, near_clip=0.01, far_clip=50.0).numpy()
        print(size, img[..., 3].mean(), np.unique(img[..., 0]).tolist())
    print('PEAK_MIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
''')


def test_face_mesh_224_and_1024_in_bounded_memory():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    proc = subprocess.run([sys.executable, '-c', SCALE_SCRIPT, str(REPO_ROOT)],
                          capture_output=True, text=True, cwd=str(REPO_ROOT),
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    for line, size in zip(lines[:2], (224, 1024)):
        fields = line.split(' ', 2)
        assert int(fields[0]) == size
        # The face covers most of the view; ambient only: colour is exact.
        assert 0.6 < float(fields[1]) < 0.95
        values = np.array(eval(fields[2]))
        assert np.all((values == 0.0) | (np.abs(values - 200.0) < 0.01))
    peak = float(lines[-1].split()[1])
    # A pixels x triangles tensor at 1024x1024 would need > 280 GB.
    assert peak < 4096, peak


def _is_bucket_length(length, smallest):
    # At least `smallest`, and at most four significant bits: eight lengths
    # per octave.
    shift = max(length.bit_length() - 4, 0)
    return length >= smallest and (length >> shift) << shift == length


def test_fragment_kernel_sees_few_lengths_as_scenes_vary(monkeypatch):
    # XLA compiles a kernel once per input shape; a kernel fed the exact
    # fragment count of each scene would compile again for nearly every new
    # face. The first pass's fragment list must reach its kernel padded.
    from mesh_renderer import _visibility

    kernel = _visibility._first_pass_fragments
    seen = []

    def record(packed, kept):
        kept_values = kept.numpy()
        seen.append((kept_values.size, int(np.sum(kept_values >= 0))))
        return kernel(packed, kept)

    monkeypatch.setattr(_visibility, '_first_pass_fragments', record)
    from tests.synthetic_assets import procedural_face

    # Pixel-sized triangles, most drawn by the first pass, the face moved a
    # little from one scene to the next.
    face = procedural_face(150, 150)
    triangles = face['triangles'].astype(np.int32)
    rng = np.random.default_rng(5)
    coverage = []
    for _ in range(4):
        vertices = (face['vertices'] * rng.uniform(0.8, 1.0) +
                    rng.uniform(-0.1, 0.1, 3))[None].astype(np.float32)
        normals = np.tile([0.0, 0.0, 1.0], vertices.shape[:2] + (1,))
        image = render_face(vertices, triangles, normals.astype(np.float32),
                            np.full_like(vertices, 100.0)).numpy()
        coverage.append(np.mean(image[..., 3]))
    counts = {count for _, count in seen}
    # The faces differ in their fragment counts, not in their lengths beyond
    # the bucket sizes.
    assert len(counts) == 4 and min(coverage) > 0.05, (seen, coverage)
    for length, count in seen:
        assert count <= length and _is_bucket_length(length, 1024), seen
    assert len({length for length, _ in seen}) < len(counts)


def test_kernel_ops_record_only_the_package_frames():
    # XLA keeps a copy of the stack trace of every op it compiles for as
    # long as the kernel lives; traced under a deep caller, the package's
    # kernels record only the package's frames (and TensorFlow's own
    # op-creation file).
    from mesh_renderer import _visibility

    def deep_caller(depth):
        if depth:
            return deep_caller(depth - 1)
        # An image size no other test uses: a kernel traced here.
        return _visibility._first_pass_kernel(13, 11, 2).get_concrete_function()

    operations = deep_caller(60).graph.get_operations()
    package = os.path.dirname(mesh_renderer.__file__) + os.sep
    op_creation = sys.modules[tf.Operation.__module__].__file__
    short = [op for op in operations
             if all(frame.filename.startswith(package) or
                    frame.filename == op_creation for frame in op.traceback)]
    # All but the arguments and results, which TensorFlow creates outside the
    # kernel's python function.
    assert len(short) >= len(operations) - 8 and len(short) > 100
    assert all(any(frame.filename.startswith(package)
                   for frame in op.traceback) for op in short)
    assert max(len(op.traceback) for op in short) < 20


def test_kernels_are_traced_with_few_graph_nodes():
    # TensorFlow and XLA keep every node of a kernel's graph, in several
    # copies, per kernel and per compiled shape: in the renderer benchmark's
    # processes, cutting an eighth of the nodes (corners unstacked rather
    # than sliced value by value, pixel centres broadcast rather than stored)
    # lowered the retained heap by about 14 MiB. Here: 2649 nodes, 223 of
    # them slices, before that change; 2252 and 104 after it.
    vertices, triangles, normals, colors = face_batch(rows=6, cols=5, batch=2)

    @tf.function
    def forward_backward(vertices, colors):
        with tf.GradientTape() as tape:
            tape.watch([vertices, colors])
            image = render_face(vertices, triangles, normals, colors)
        return tape.gradient(tf.reduce_sum(image), [vertices, colors])

    graph = forward_backward.get_concrete_function(
        tf.constant(vertices), tf.constant(colors)).graph
    library = graph.as_graph_def().library.function
    nodes = sum(len(function.node_def) for function in library)
    slices = sum(node.op == 'StridedSlice' for function in library
                 for node in function.node_def)
    assert len(library) >= 8  # the kernels are in the library
    assert nodes < 2400 and slices < 150, (nodes, slices)


# ----------------------------------------------------------------------------


def face_batch(rows=40, cols=36, batch=8, seed=0):
  """A small procedural face at `batch` positions, its normals and colours."""
  from tests.synthetic_assets import procedural_face

  face = procedural_face(rows, cols)
  rng = np.random.default_rng(seed)
  vertices = np.stack([face['vertices'] * 1.5 + rng.uniform(-0.1, 0.1, 3)
                       for _ in range(batch)]).astype(np.float32)
  normals = np.tile([0.0, 0.0, 1.0], vertices.shape[:2] + (1,))
  colors = rng.uniform(50.0, 200.0, vertices.shape)
  return (vertices, face['triangles'].astype(np.int32),
          normals.astype(np.float32), colors.astype(np.float32))


def render_face(vertices, triangles, normals, colors):
  batch = vertices.shape[0]
  return mesh_renderer.mesh_renderer(
      vertices, triangles, normals, colors, [0.0, 0.0, 10.0], [0.0, 0.0, 0.0],
      [0.0, 1.0, 0.0], tf.tile([[[0.0, 0.0, 1e5]]], [batch, 1, 1]),
      tf.zeros([batch, 1, 3]), 224, 224, ambient_color=tf.ones([batch, 3]),
      fov_y=12.6, near_clip=0.01, far_clip=50.0)


def test_session_gradients_of_a_face_equal_eager_ones():
  # A TF1-style graph run by a Session (TF2 behaviour left on), gradients
  # with respect to vertices and colours, batch 8 at 224x224: Grappler once
  # rewrote an AddN of the compiled gradient into a TemporaryVariable, which
  # XLA cannot compile (smaller batches and images did not trigger it).
  vertices, triangles, normals, colors = face_batch()
  weights = np.random.default_rng(1).uniform(
      size=(8, 224, 224, 4)).astype(np.float32)
  graph = tf.Graph()
  with graph.as_default():
    inputs = [tf.compat.v1.placeholder(tf.float32, a.shape)
              for a in (vertices, normals, colors)]
    image = render_face(inputs[0], triangles, inputs[1], inputs[2])
    gradients = tf.gradients(tf.reduce_sum(image * weights),
                             [inputs[0], inputs[2]])
    with tf.compat.v1.Session(graph=graph) as session:
      session_values = session.run(
          [image] + gradients, dict(zip(inputs, (vertices, normals, colors))))

  arrays = [tf.constant(a) for a in (vertices, normals, colors)]
  with tf.GradientTape() as tape:
    tape.watch([arrays[0], arrays[2]])
    eager_image = render_face(arrays[0], triangles, arrays[1], arrays[2])
    loss = tf.reduce_sum(eager_image * weights)
  eager_values = [eager_image] + tape.gradient(loss, [arrays[0], arrays[2]])
  # The graph computes the camera transform in other fused kernels than
  # eager mode, so a pixel centre within rounding of an edge may change
  # triangle (documented in rasterize_triangles): a few pixels and their
  # vertices' gradient terms may differ, no more.
  coverage = session_values[0][..., 3] > 0.5
  assert coverage.mean() > 0.02
  assert np.mean(coverage != (eager_values[0].numpy()[..., 3] > 0.5)) < 1e-4
  for got, want in zip(session_values, eager_values):
    want = want.numpy()
    assert np.all(np.isfinite(got)) and np.any(want != 0)
    assert np.linalg.norm(got - want) < 1e-2 * np.linalg.norm(want)
