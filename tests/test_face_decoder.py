"""Tests of the TensorFlow decoder `face_decoder.Face3D`.

References are independent of the code under test: the NumPy twin
(`reconstruct_mesh`, written separately), closed forms, hand-built or scipy
rotation matrices, a float64 finite-difference Jacobian, and a NumPy
point-in-triangle rasterization of the projected mesh for the render checks.
The render checks need the project's `mesh_renderer` and skip until it exists.
"""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
from scipy import ndimage
from scipy.spatial.transform import Rotation

import face_decoder
import load_data
import reconstruct_mesh
from tests.conftest import REPO_ROOT
from tests.synthetic_assets import make_front_model, random_coefficients
from tests.test_reconstruct_mesh import (
    SPHERE_CENTER,
    SPHERE_RADIUS,
    coefficients,
    flat_vertices,
    model_with,
    pinhole,
    sh_irradiance,
    sphere_vertices,
    white_to_rgb,
)

LENGTHS = (257, 258, 239)
OUTPUTS = {"face_shape_t": "face_shape", "face_texture": "face_texture",
           "face_color": "face_color", "face_norm": "face_norm", "landmark_p": "lm_68p"}
# Agreement expected between two float32 computations, relative to the largest
# value. Normals (and the colours lit with them) come from differences of
# nearby vertices (edges ~0.08 dm at positions ~1 dm), which costs float32 a
# few bits: both decoders sit ~1e-5 from a float64 computation there.
TOLERANCE = {"face_shape_t": 1e-5, "face_texture": 1e-5, "landmark_p": 1e-5,
             "face_norm": 5e-5, "face_color": 5e-5}


def save_model(directory, model, name="BFM_model_front.mat"):
    path = os.path.join(str(directory), name)
    scipy.io.savemat(path, model)
    return path


@pytest.fixture(scope="module")
def model():
    return make_front_model(seed=2)


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("bfm"), model)


@pytest.fixture(scope="module")
def face(model_path):
    return face_decoder.Face3D(model_path)


@pytest.fixture
def make_face(tmp_path):
    """Face3D for a crafted model dict."""
    counter = iter(range(100))

    def make(model_dict):
        return face_decoder.Face3D(save_model(tmp_path, model_dict, f"m{next(counter)}.mat"))
    return make


def assert_matches_twin(decoded, coeff, model):
    """decoded: dict attribute -> [B, ...] arrays; compared per image with the twin."""
    for b in range(coeff.shape[0]):
        twin = reconstruct_mesh.reconstruct(coeff[b], model)
        for attr, key in OUTPUTS.items():
            got, ref = np.asarray(decoded[attr][b]), twin[key]
            assert got.shape == ref.shape and got.dtype == np.float32, attr
            scale = max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(got, ref, rtol=0, atol=TOLERANCE[attr] * scale,
                                       err_msg=f"{attr}, image {b}")


def fetch(face):
    return {attr: getattr(face, attr) for attr in OUTPUTS}


# ---------------------------------------------------------------------------
# Agreement with the NumPy twin in the three TensorFlow styles.


@pytest.mark.parametrize("length", LENGTHS)
def test_eager_matches_numpy_twin(face, model, length):
    coeff = random_coefficients(10 + length, 3, length)
    face.Reconstruction_Block(coeff, 3, render_images=False)
    assert_matches_twin({k: v.numpy() for k, v in fetch(face).items()}, coeff, model)
    n = model["meanshape"].shape[1] // 3
    shapes = {"id_coeff": (3, 80), "ex_coeff": (3, 64), "tex_coeff": (3, 80), "angles": (3, 3),
              "gamma": (3, 27), "translation": (3, 3), "face_shape": (3, n, 3),
              "face_shape_t": (3, n, 3), "face_texture": (3, n, 3), "face_color": (3, n, 3),
              "face_norm": (3, n, 3), "landmark_p": (3, 68, 2)}
    for attr, shape in shapes.items():
        value = getattr(face, attr)
        assert tuple(value.shape) == shape and value.dtype == tf.float32, attr
    assert face.render_imgs is None
    assert isinstance(face.facemodel, face_decoder.BFM)


@pytest.mark.parametrize("length", LENGTHS)
def test_tf_function_with_unknown_batch_matches_numpy_twin(face, model, length):
    @tf.function(input_signature=[tf.TensorSpec([None, length], tf.float32)])
    def decode(coeff):
        face.Reconstruction_Block(coeff, tf.shape(coeff)[0], render_images=False)
        return fetch(face)

    for batch in (1, 4):
        coeff = random_coefficients(20 + batch, batch, length)
        assert_matches_twin({k: v.numpy() for k, v in decode(coeff).items()}, coeff, model)


@pytest.mark.parametrize("length", LENGTHS)
def test_graph_and_session_under_tf2_matches_numpy_twin(face, model, length):
    graph = tf.Graph()
    with graph.as_default():
        coeff_ph = tf.compat.v1.placeholder(tf.float32, [None, length])
        face.Reconstruction_Block(coeff_ph, None, render_images=False)
        fetches = fetch(face)
        # Every tensor belongs to this graph (no eager constant leaked in).
        assert all(t.graph is graph for t in fetches.values())
    with tf.compat.v1.Session(graph=graph) as sess:
        for batch in (2, 5):
            coeff = random_coefficients(30 + batch, batch, length)
            assert_matches_twin(sess.run(fetches, {coeff_ph: coeff}), coeff, model)
    # The same instance still works eagerly afterwards.
    coeff = random_coefficients(40, 1, length)
    face.Reconstruction_Block(coeff, 1, render_images=False)
    assert_matches_twin({k: v.numpy() for k, v in fetch(face).items()}, coeff, model)


TF1_PROGRAM = textwrap.dedent("""
    import sys
    import numpy as np
    import scipy.io
    import tensorflow as tf
    tf.compat.v1.disable_v2_behavior()
    import face_decoder, reconstruct_mesh
    from tests.synthetic_assets import make_front_model, random_coefficients

    path, render = sys.argv[1], sys.argv[2] == "render"
    model = make_front_model(seed=4)
    scipy.io.savemat(path, model)
    face = face_decoder.Face3D(path)
    runs = []
    for length in (257, 258, 239):
        ph = tf.compat.v1.placeholder(tf.float32, [None, length])
        face.Reconstruction_Block(ph, None, render_images=render)
        fetches = dict(face_shape=face.face_shape_t, face_texture=face.face_texture,
                       face_color=face.face_color, face_norm=face.face_norm,
                       lm_68p=face.landmark_p)
        if render:
            fetches["render"] = face.render_imgs
        runs.append((length, ph, fetches))
    worst = 0.0
    with tf.compat.v1.Session() as sess:
        for length, ph, fetches in runs:
            coeff = random_coefficients(length, 3, length)
            out = sess.run(fetches, {ph: coeff})
            for b in range(3):
                twin = reconstruct_mesh.reconstruct(coeff[b], model)
                for key, ref in twin.items():
                    scale = max(1.0, float(np.abs(ref).max()))
                    if key in ("face_norm", "face_color"):
                        scale *= 5.0  # float32 conditioning, see TOLERANCE
                    worst = max(worst, float(np.abs(out[key][b] - ref).max()) / scale)
            if render:
                assert out["render"].shape == (3, 224, 224, 4), out["render"].shape
                assert set(np.unique(out["render"][..., 3])) <= {0.0, 1.0}
                assert out["render"][..., 3].sum() > 1000
    assert worst < 1e-5, worst
    print("TF1 OK", worst)
""")


def renderer_available():
    try:
        import mesh_renderer
    except ImportError:
        return False
    return callable(getattr(mesh_renderer, "mesh_renderer", None))


def run_tf1_program(tmp_path, mode):
    """disable_v2_behavior is process-wide, so TF1 programs run in their own interpreter."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", TF1_PROGRAM, str(tmp_path / "m.mat"), mode],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TF1 OK" in result.stdout


def test_tf1_style_program_matches_numpy_twin(tmp_path):
    run_tf1_program(tmp_path, "geometry")


def test_tf1_style_program_renders(tmp_path):
    if not renderer_available():
        pytest.skip("mesh_renderer.mesh_renderer() is not available yet (renderer.md API)")
    run_tf1_program(tmp_path, "render")


# ---------------------------------------------------------------------------
# Formula checks against independent computations.


@pytest.mark.parametrize("angles", [(0.3, -0.5, 0.8), (-1.2, 0.4, 2.0), (math.pi / 2, 0.0, 0.0)])
def test_rotation_is_rz_ry_rx(angles):
    got = face_decoder.compute_rotation(tf.constant([angles], tf.float32)).numpy()[0]
    np.testing.assert_allclose(got, Rotation.from_euler("xyz", angles).as_matrix(), atol=1e-6)


def test_quarter_turn_about_x_maps_y_to_z():
    rot = face_decoder.compute_rotation(tf.constant([[math.pi / 2, 0.0, 0.0]]))
    point = face_decoder.rotate(tf.constant([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]), rot).numpy()
    np.testing.assert_allclose(point[0], [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], atol=1e-6)


def test_pose_rotates_then_translates(make_face, model):
    face = make_face(model)
    angles, t = (0.4, -0.3, 0.2), (0.1, -0.2, 0.5)
    coeff = random_coefficients(50, 1, 257)
    coeff[0, 224:227], coeff[0, 254:257] = angles, t
    face.Reconstruction_Block(coeff, 1, render_images=False)
    rest, posed = face.face_shape.numpy()[0], face.face_shape_t.numpy()[0]
    expected = rest.astype(float) @ Rotation.from_euler("xyz", angles).as_matrix().T + t
    np.testing.assert_allclose(posed, expected, atol=2e-6)


def test_projection_of_known_points():
    points = tf.constant([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 5.0],
                           [-0.5, 0.25, -10.0]]])
    expected = [[112.0, 111.0], [213.5, 111.0], [112.0, -92.0], [86.625, 98.3125]]
    np.testing.assert_allclose(face_decoder.project_points(points).numpy()[0], expected, atol=1e-4)


def test_landmarks_are_the_projected_keypoints(face, model):
    coeff = random_coefficients(51, 2, 257)
    face.Reconstruction_Block(coeff, 2, render_images=False)
    kp = model["keypoints"].astype(int).reshape(-1) - 1
    for b in range(2):
        np.testing.assert_allclose(face.landmark_p.numpy()[b],
                                   pinhole(face.face_shape_t.numpy()[b][kp]), atol=2e-4)


@pytest.mark.parametrize("length", LENGTHS)
def test_landmarks_alone_match_numpy_twin(face, model, length):
    coeff = random_coefficients(60 + length, 3, length)
    landmarks = face.landmarks(coeff).numpy()
    assert landmarks.shape == (3, 68, 2) and landmarks.dtype == np.float32
    for b in range(3):
        twin = reconstruct_mesh.reconstruct(coeff[b], model)["lm_68p"]
        np.testing.assert_allclose(landmarks[b], twin, rtol=0,
                                   atol=TOLERANCE["landmark_p"] * np.abs(twin).max())


def test_landmarks_alone_in_a_session_with_unknown_batch(face, model):
    graph = tf.Graph()
    with graph.as_default():
        coeff_ph = tf.compat.v1.placeholder(tf.float32, [None, 257])
        landmarks = face.landmarks(coeff_ph)
    needed = tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(),
                                                       [landmarks.op.name])
    largest = max(tf.make_ndarray(node.attr["value"].tensor).size
                  for node in needed.node if node.op == "Const")
    # Nothing of the size of the whole mesh is computed: the largest constant
    # the landmarks need is the identity basis of the 68 vertices.
    assert largest == 68 * 3 * 80 < model["idBase"].size
    coeff = random_coefficients(71, 5, 257)
    with tf.compat.v1.Session(graph=graph) as session:
        got = session.run(landmarks, {coeff_ph: coeff})
    for b in range(5):
        twin = reconstruct_mesh.reconstruct(coeff[b], model)["lm_68p"]
        np.testing.assert_allclose(got[b], twin, rtol=0,
                                   atol=TOLERANCE["landmark_p"] * np.abs(twin).max())


@pytest.mark.parametrize("normal", [(0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.36, 0.48, 0.8)])
def test_sh_lighting_at_known_normals(normal):
    rng = np.random.default_rng(3)
    gamma = rng.uniform(-0.5, 0.5, (1, 27)).astype(np.float32)
    albedo = np.array([[[180.0, 120.0, 60.0]]], np.float32)
    got = face_decoder.illuminate(albedo, tf.constant([[normal]], tf.float32), gamma).numpy()
    expected = [sh_irradiance(normal, gamma[0, 9 * c:9 * c + 9]) * albedo[0, 0, c]
                for c in range(3)]
    np.testing.assert_allclose(got[0, 0], expected, rtol=1e-5, atol=1e-3)


def test_flat_face_constant_albedo_closed_form_colour(make_face):
    face = make_face(model_with(mean_vertices=flat_vertices(), albedo=(200, 100, 50),
                                zero_bases=True))
    g = np.zeros((3, 9))
    g[:, 0], g[:, 2], g[:, 6] = [0.1, -0.2, 0.3], [0.05, 0.1, -0.1], [0.2, 0.0, -0.3]
    face.Reconstruction_Block(coefficients(gamma=g.reshape(-1))[None], 1, render_images=False)
    k = ((g[:, 0] + 0.8) * math.sqrt(math.pi) / 2 + g[:, 2] * math.sqrt(math.pi)
         + g[:, 6] * math.sqrt(5 * math.pi / 8))
    colour = face.face_color.numpy()[0]
    np.testing.assert_allclose(colour, np.tile([200.0, 100.0, 50.0] * k, (len(colour), 1)),
                               rtol=1e-5)


def test_flat_patch_normals_are_plus_z_and_rotate(make_face):
    face = make_face(model_with(mean_vertices=flat_vertices(), zero_bases=True))
    face.Reconstruction_Block(np.stack([coefficients(), coefficients(angles=(0, math.pi / 2, 0))]),
                              2, render_images=False)
    normals = face.face_norm.numpy()
    np.testing.assert_allclose(normals[0], np.tile([0.0, 0.0, 1.0], (normals.shape[1], 1)),
                               atol=1e-6)
    np.testing.assert_allclose(normals[1], np.tile([1.0, 0.0, 0.0], (normals.shape[1], 1)),
                               atol=1e-6)


def test_spherical_patch_normals_are_radial(make_face):
    verts = sphere_vertices()
    face = make_face(model_with(mean_vertices=verts, zero_bases=True))
    face.Reconstruction_Block(coefficients()[None], 1, render_images=False)
    normals = face.face_norm.numpy()[0]
    dots = np.sum(normals * (verts - SPHERE_CENTER) / SPHERE_RADIUS, axis=1)
    assert dots.min() > 0.995
    assert np.median(dots) > 0.9999


def test_recentred_by_the_mean_of_meanshape(face, model):
    rng = np.random.default_rng(6)
    alpha, beta = rng.standard_normal(80) * 3, rng.standard_normal(64) * 3
    face.Reconstruction_Block(coefficients(id_coeff=alpha, ex_coeff=beta)[None], 1,
                              render_images=False)
    ms = model["meanshape"].astype(float).reshape(-1)
    raw = (model["idBase"].astype(float) @ alpha + model["exBase"].astype(float) @ beta
           + ms).reshape(-1, 3)
    np.testing.assert_allclose(face.face_shape.numpy()[0], raw - ms.reshape(-1, 3).mean(0),
                               atol=2e-6)


def test_white_light_equals_rgb_light_with_values_repeated(face):
    c239 = random_coefficients(60, 2, 239)
    face.Reconstruction_Block(c239, 2, render_images=False)
    white = {k: v.numpy() for k, v in fetch(face).items()}
    np.testing.assert_array_equal(face.gamma.numpy(), np.tile(c239[:, 227:236], 3))
    face.Reconstruction_Block(white_to_rgb(c239), 2, render_images=False)
    for attr, value in fetch(face).items():
        np.testing.assert_allclose(white[attr], value.numpy(), rtol=1e-6, atol=1e-5, err_msg=attr)


def test_258_ignores_the_last_value(face):
    c258 = random_coefficients(61, 2, 258)
    face.Reconstruction_Block(c258, 2, render_images=False)
    a = {k: v.numpy() for k, v in fetch(face).items()}
    face.Reconstruction_Block(c258[:, :257], 2, render_images=False)
    for attr, value in fetch(face).items():
        np.testing.assert_array_equal(a[attr], value.numpy(), err_msg=attr)


@pytest.mark.parametrize("length", [256, 240, 300, 27])
def test_bad_length_raises_naming_accepted_lengths(face, length):
    with pytest.raises(ValueError, match=r"257.*258.*239"):
        face.Reconstruction_Block(np.zeros((2, length), np.float32), 2)


def test_unknown_length_raises_asking_for_static_dimension(face):
    with tf.Graph().as_default():
        ph = tf.compat.v1.placeholder(tf.float32, [None, None])
        with pytest.raises(ValueError, match="static"):
            face.Reconstruction_Block(ph, None)


def test_model_path_default_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert face_decoder.default_model_path() == str(REPO_ROOT / "BFM" / "BFM_model_front.mat")
    missing = tmp_path / "nowhere.mat"
    with pytest.raises(load_data.AssetError, match="nowhere.mat"):
        face_decoder.Face3D(str(missing))


# ---------------------------------------------------------------------------
# Gradients.


def test_landmark_jacobian_matches_float64_finite_differences(face, model):
    coeff = random_coefficients(70, 2, 257)
    x = tf.constant(coeff)
    with tf.GradientTape() as tape:
        tape.watch(x)
        face.Reconstruction_Block(x, 2, render_images=False)
        lm = face.landmark_p
    jac = tape.batch_jacobian(lm, x).numpy()            # [B, 68, 2, 257]
    step = 1e-4
    for b in range(2):
        c64 = coeff[b].astype(np.float64)
        fd = np.empty((68, 2, 257))
        for i in range(257):
            plus, minus = c64.copy(), c64.copy()
            plus[i] += step
            minus[i] -= step
            fd[..., i] = (reconstruct_mesh.reconstruct(plus, model, dtype=np.float64)["lm_68p"]
                          - reconstruct_mesh.reconstruct(minus, model, dtype=np.float64)["lm_68p"]
                          ) / (2 * step)
        scale = np.abs(fd).max()
        np.testing.assert_allclose(jac[b], fd, rtol=0, atol=1e-4 * scale)
        # Landmarks depend on shape, expression and pose, not on albedo or light.
        assert np.abs(jac[b][..., :144]).max() > 0 and np.abs(jac[b][..., 224:227]).max() > 0
        assert np.all(jac[b][..., 144:224] == 0) and np.all(jac[b][..., 227:254] == 0)


def test_colour_gradient_is_finite_and_reaches_light_and_albedo(face):
    x = tf.constant(random_coefficients(71, 2, 257))
    with tf.GradientTape() as tape:
        tape.watch(x)
        face.Reconstruction_Block(x, 2, render_images=False)
        loss = tf.reduce_mean(face.face_color)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(grad))
    assert np.abs(grad[:, 144:224]).max() > 0 and np.abs(grad[:, 227:254]).max() > 0


# ---------------------------------------------------------------------------
# Rendering (needs the project's mesh_renderer).


@pytest.fixture
def renderer():
    if not renderer_available():
        pytest.skip("mesh_renderer.mesh_renderer() is not available yet (renderer.md API)")


def reference_coverage(posed, triangles, size=224):
    """Pixels whose centres lie inside a projected triangle, by NumPy edge tests.

    Pixel (row r, column c) has its centre at image coordinates
    (x, y) = (c + 0.5, r - 0.5) in the landmark convention (u, 223 - v).
    """
    uv = pinhole(posed)
    mask = np.zeros((size, size), bool)
    for tri in triangles:
        p = uv[tri]
        c0 = max(int(np.ceil(p[:, 0].min() - 0.5)), 0)
        c1 = min(int(np.floor(p[:, 0].max() - 0.5)), size - 1)
        r0 = max(int(np.ceil(p[:, 1].min() + 0.5)), 0)
        r1 = min(int(np.floor(p[:, 1].max() + 0.5)), size - 1)
        if c0 > c1 or r0 > r1:
            continue
        xs, ys = np.meshgrid(np.arange(c0, c1 + 1) + 0.5, np.arange(r0, r1 + 1) - 0.5)
        edges = []
        for i in range(3):
            a, b = p[i], p[(i + 1) % 3]
            edges.append((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0]))
        edges = np.stack(edges)
        inside = np.all(edges >= 0, axis=0) | np.all(edges <= 0, axis=0)
        mask[r0:r1 + 1, c0:c1 + 1] |= inside
    return mask


def test_render_coverage_matches_projected_mesh(renderer, face, model):
    coeff = random_coefficients(80, 2, 257, scale=0.5)
    face.Reconstruction_Block(coeff, 2)
    images = face.render_imgs.numpy()
    assert images.shape == (2, 224, 224, 4) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0
    triangles = model["tri"].astype(int) - 1
    for b in range(2):
        alpha = images[b, ..., 3]
        assert set(np.unique(alpha)) <= {0.0, 1.0}
        twin = reconstruct_mesh.reconstruct(coeff[b], model)
        ref = reference_coverage(twin["face_shape"], triangles)
        assert alpha[ndimage.binary_erosion(ref)].min() == 1.0
        assert alpha[~ndimage.binary_dilation(ref)].max() == 0.0
        # Interior landmarks (nose, eyes, mouth) are covered; the corners are not.
        for x, y in face.landmark_p.numpy()[b][27:68]:
            assert alpha[int(round(y + 0.5)), int(round(x - 0.5))] == 1.0
        for r, c in [(0, 0), (0, 223), (223, 0), (223, 223)]:
            assert alpha[r, c] == 0.0 and np.all(images[b, r, c, :3] == 0.0)
        # RGB is zero wherever alpha is zero.
        assert np.all(images[b][alpha == 0][:, :3] == 0.0)


def test_render_of_constant_colour_face_is_that_colour_and_clipped(renderer, make_face):
    # Zero coefficients and zero light: colour = 0.8 sqrt(pi)/2 * albedo everywhere;
    # red (400 * 0.709 = 283.6) must come out clipped to 255.
    albedo = np.array([400.0, 200.0, 100.0])
    face = make_face(model_with(albedo=albedo, zero_bases=True))
    face.Reconstruction_Block(np.stack([coefficients(), coefficients(angles=(0.1, -0.2, 0.1))]), 2)
    colour = albedo * 0.8 * math.sqrt(math.pi) / 2
    assert face.face_color.numpy()[..., 0].min() > 255.0   # not clipped before rendering
    images = face.render_imgs.numpy()
    for b in range(2):
        covered = images[b, ..., 3] == 1.0
        assert covered.sum() > 5000
        rgb = images[b][covered][:, :3]
        np.testing.assert_allclose(rgb, np.tile([255.0, colour[1], colour[2]], (len(rgb), 1)),
                                   rtol=1e-4)


def test_render_with_unknown_batch_in_a_graph(renderer, model_path):
    face = face_decoder.Face3D(model_path)
    graph = tf.Graph()
    with graph.as_default():
        ph = tf.compat.v1.placeholder(tf.float32, [None, 257])
        face.Reconstruction_Block(ph, tf.shape(ph)[0])
        images = face.render_imgs
    with tf.compat.v1.Session(graph=graph) as sess:
        for batch in (1, 3):
            out = sess.run(images, {ph: random_coefficients(81, batch, 257, scale=0.5)})
            assert out.shape == (batch, 224, 224, 4)
            assert out[..., 3].sum(axis=(1, 2)).min() > 5000


def test_render_gradient_reaches_coefficients(renderer, face):
    x = tf.constant(random_coefficients(82, 2, 257, scale=0.5))
    with tf.GradientTape() as tape:
        tape.watch(x)
        face.Reconstruction_Block(x, 2)
        loss = tf.reduce_mean(face.render_imgs)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    assert np.abs(grad[:, 144:224]).max() > 0     # through the colours
    assert np.abs(grad[:, 224:227]).max() > 0     # through the geometry


def test_colour_and_coverage_renders_equal_the_full_render(renderer, face, model):
    """The losses' cheaper renders give the full render's values and gradients.

    The full render interpolates normals, positions and colours and shades
    them; with the release's zero light and white ambient colour the shading
    leaves the colour, so rasterizing the colours alone must agree exactly,
    and the coverage of an all-ones mesh is the full render's alpha.
    """
    coeff = tf.constant(random_coefficients(82, 2, 257, scale=0.5))
    triangles = tf.constant(model["tri"].astype(np.int32) - 1)
    upstream = tf.constant(np.random.default_rng(5).normal(size=(2, 224, 224, 4)), tf.float32)

    def outputs(cheap):
        with tf.GradientTape() as tape:
            tape.watch(coeff)
            face.Reconstruction_Block(coeff, render_images=False)
            if cheap:
                rgb, alpha = face_decoder.render_colors(face.face_shape_t, face.face_color,
                                                        triangles)
                image = tf.concat([rgb, alpha[..., None]], axis=-1)
                region = face_decoder.render_coverage(face.face_shape_t, triangles)
            else:
                image = face_decoder.render(face.face_shape_t, face.face_norm, face.face_color,
                                            triangles, clip=False)
                region = face_decoder.render(face.face_shape_t, face.face_norm,
                                             tf.ones_like(face.face_color), triangles,
                                             clip=False)[..., 3]
            total = tf.reduce_sum(image * upstream)
        return image.numpy(), region.numpy(), tape.gradient(total, coeff).numpy()

    image, region, gradient = outputs(cheap=True)
    full_image, full_region, full_gradient = outputs(cheap=False)
    assert image.shape == (2, 224, 224, 4) and region.shape == (2, 224, 224)
    assert 5000 < region.sum() < 2 * 224 * 224
    np.testing.assert_array_equal(image, full_image)
    np.testing.assert_array_equal(region, full_region)
    np.testing.assert_allclose(gradient, full_gradient, rtol=1e-5, atol=1e-6 * np.abs(
        full_gradient).max())
    assert np.abs(gradient).max() > 0


def test_xla_normals_equal_the_default_normals_and_gradients(face, model):
    coeff = tf.constant(random_coefficients(83, 3, 257, scale=0.5))
    weights = tf.constant(np.random.default_rng(6).normal(size=(3, model["meanshape"].size // 3,
                                                                3)), tf.float32)

    def normals(xla):
        with tf.GradientTape() as tape:
            tape.watch(coeff)
            face.Reconstruction_Block(coeff, render_images=False, xla_normals=xla)
            total = tf.reduce_sum(face.face_norm * weights)
        return face.face_norm.numpy(), tape.gradient(total, coeff).numpy()

    xla_normals, xla_gradient = normals(True)
    default_normals, default_gradient = normals(False)
    np.testing.assert_allclose(np.linalg.norm(xla_normals, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(xla_normals, default_normals, atol=2e-6)
    assert np.abs(default_gradient[:, :80]).max() > 0         # the identity moves normals
    np.testing.assert_allclose(xla_gradient, default_gradient, rtol=1e-4,
                               atol=1e-5 * np.abs(default_gradient).max())
