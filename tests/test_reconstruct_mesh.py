"""Tests of the NumPy decoder `reconstruct_mesh.reconstruct`.

Every expectation is computed independently here (closed forms, hand-built
matrices, scipy's rotations, float64 recomputations), never by the code under
test. The helpers that craft special models are reused by test_face_decoder.py.
"""
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import reconstruct_mesh
from tests.conftest import REPO_ROOT
from tests.synthetic_assets import make_front_model, procedural_face, random_coefficients

N_ROWS, N_COLS = 28, 24


# ---------------------------------------------------------------------------
# Model and coefficient helpers (shared with test_face_decoder.py).


def grid_xy(n_rows=N_ROWS, n_cols=N_COLS):
    """The x, y of the procedural grid's vertices, [N, 2], decimetres."""
    return procedural_face(n_rows, n_cols)["vertices"][:, :2]


def model_with(mean_vertices=None, albedo=None, seed=0, n_rows=N_ROWS, n_cols=N_COLS,
               zero_bases=False):
    """The synthetic front model, optionally with a given mean shape / constant albedo.

    Args:
      mean_vertices: [N, 3] mean shape on the procedural grid's topology.
      albedo: 3 numbers: a constant mean albedo.
      zero_bases: zero identity, expression and albedo bases.
    """
    model = make_front_model(seed, n_rows, n_cols)
    if mean_vertices is not None:
        model["meanshape"] = np.asarray(mean_vertices, np.float32).reshape(1, -1)
    if albedo is not None:
        n = model["meantex"].shape[1] // 3
        model["meantex"] = np.tile(np.asarray(albedo, np.float32), n).reshape(1, -1)
    if zero_bases:
        for key in ("idBase", "exBase", "texBase"):
            model[key] = np.zeros_like(model[key])
    return model


def flat_vertices(z=0.3):
    """The grid flattened onto the plane z = const."""
    xy = grid_xy()
    return np.column_stack([xy, np.full(len(xy), z)])


SPHERE_RADIUS = 3.0
SPHERE_CENTER = np.array([0.1, -0.2, -2.0])


def sphere_vertices():
    """The grid lifted onto a sphere (radius 3 dm) facing +z."""
    xy = grid_xy()
    z = np.sqrt(SPHERE_RADIUS ** 2 - (xy ** 2).sum(1))
    return np.column_stack([xy, z]) + SPHERE_CENTER


def coefficients(length=257, angles=(0, 0, 0), translation=(0, 0, 0), gamma=None,
                 id_coeff=None, ex_coeff=None, tex_coeff=None):
    """One coefficient vector [length] assembled part by part (zeros by default)."""
    n_light = 9 if length == 239 else 27
    parts = [np.zeros(80) if id_coeff is None else id_coeff,
             np.zeros(64) if ex_coeff is None else ex_coeff,
             np.zeros(80) if tex_coeff is None else tex_coeff,
             np.asarray(angles, float),
             np.zeros(n_light) if gamma is None else np.asarray(gamma, float),
             np.asarray(translation, float)]
    if length == 258:
        parts.append([7.0])
    return np.concatenate(parts).astype(np.float32)


def white_to_rgb(coeff239):
    """The 257-vector equivalent to a white-light 239-vector (9 values x 3 channels)."""
    c = np.asarray(coeff239)
    return np.concatenate([c[..., :227], np.tile(c[..., 227:236], 3), c[..., 236:239]], axis=-1)


def rotation_rz_ry_rx(ax, ay, az):
    """R = Rz @ Ry @ Rx built by hand (docs/model.md#decoder), float64."""
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def sh_irradiance(normal, gamma_row):
    """SH irradiance for one unit normal and one channel's 9 values (+0.8), float64.

    Written from the closed forms: a0 c0 = sqrt(pi)/2, a1 c1 = sqrt(pi),
    a2 c2 = sqrt(15 pi / 8).
    """
    nx, ny, nz = normal
    k0, k1, k2 = math.sqrt(math.pi) / 2, math.sqrt(math.pi), math.sqrt(15 * math.pi / 8)
    y = [k0, -k1 * ny, k1 * nz, -k1 * nx, k2 * nx * ny, -k2 * ny * nz,
         k2 / (2 * math.sqrt(3)) * (3 * nz * nz - 1), -k2 * nx * nz, k2 / 2 * (nx * nx - ny * ny)]
    g = np.array(gamma_row, float) + np.eye(9)[0] * 0.8
    return float(np.dot(y, g))


def pinhole(points):
    """Image coordinates of [K, 3] points, float64, written out by hand."""
    p = np.asarray(points, float)
    u = 1015.0 * p[:, 0] / (10.0 - p[:, 2]) + 112.0
    v = 1015.0 * p[:, 1] / (10.0 - p[:, 2]) + 112.0
    return np.column_stack([u, 223.0 - v])


def mean_vertices_of(model):
    return np.asarray(model["meanshape"], float).reshape(-1, 3)


# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return make_front_model(seed=1)


def test_outputs_have_expected_shapes_and_float32(model):
    n = model["meanshape"].shape[1] // 3
    out = reconstruct_mesh.reconstruct(random_coefficients(0, 1, 257)[0], model)
    assert set(out) == {"face_shape", "face_texture", "face_color", "face_norm", "lm_68p"}
    for key in ("face_shape", "face_texture", "face_color", "face_norm"):
        assert out[key].shape == (n, 3) and out[key].dtype == np.float32, key
    assert out["lm_68p"].shape == (68, 2) and out["lm_68p"].dtype == np.float32


def test_batch_of_one_equals_vector(model):
    c = random_coefficients(2, 1, 257)
    a = reconstruct_mesh.reconstruct(c, model)
    b = reconstruct_mesh.reconstruct(c[0], model)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_matches_float64_recomputation_of_every_formula(model):
    """Full pipeline recomputed in float64 here, step by step, from the spec."""
    c = random_coefficients(3, 1, 257)[0].astype(float)
    alpha, beta, delta = c[:80], c[80:144], c[144:224]
    angles, gamma, t = c[224:227], c[227:254].reshape(3, 9), c[254:257]
    ms = np.asarray(model["meanshape"], float).reshape(-1)
    shape = (np.asarray(model["idBase"], float) @ alpha + np.asarray(model["exBase"], float) @ beta
             + ms).reshape(-1, 3) - ms.reshape(-1, 3).mean(0)
    tex = (np.asarray(model["texBase"], float) @ delta
           + np.asarray(model["meantex"], float).reshape(-1)).reshape(-1, 3)
    rot = rotation_rz_ry_rx(*angles)
    tri = model["tri"].astype(int) - 1
    normals = np.zeros_like(shape)
    face_n = np.cross(shape[tri[:, 0]] - shape[tri[:, 1]], shape[tri[:, 1]] - shape[tri[:, 2]])
    face_n /= np.linalg.norm(face_n, axis=1, keepdims=True)
    for v, ids in enumerate(model["point_buf"].astype(int)):
        for f in ids:
            if f <= len(tri):  # F + 1 is the zero-normal padding
                normals[v] += face_n[f - 1]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals_r = normals @ rot.T
    posed = shape @ rot.T + t
    color = np.array([[sh_irradiance(n, gamma[ch]) * tex[i, ch] for ch in range(3)]
                      for i, n in enumerate(normals_r)])
    lm = pinhole(posed[model["keypoints"].astype(int).reshape(-1) - 1])

    out = reconstruct_mesh.reconstruct(c.astype(np.float32), model)
    np.testing.assert_allclose(out["face_shape"], posed, atol=2e-6)
    np.testing.assert_allclose(out["face_texture"], tex, atol=2e-4)
    np.testing.assert_allclose(out["face_norm"], normals_r, atol=2e-5)
    np.testing.assert_allclose(out["face_color"], color, atol=2e-3)
    np.testing.assert_allclose(out["lm_68p"], lm, atol=2e-4)


@pytest.mark.parametrize("angles", [(0.3, -0.5, 0.8), (-1.2, 0.4, 2.0), (0.0, 0.0, -0.7)])
def test_rotation_composition_matches_scipy(angles):
    # Extrinsic x, then y, then z about fixed axes is the matrix Rz Ry Rx.
    expected = Rotation.from_euler("xyz", angles).as_matrix()
    got = reconstruct_mesh.rotation_matrix(np.asarray(angles, np.float64))
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got, rotation_rz_ry_rx(*angles), atol=1e-12)
    # The other orders differ, so the test would catch a swapped composition.
    assert not np.allclose(got, Rotation.from_euler("zyx", angles).as_matrix(), atol=1e-3)


@pytest.mark.parametrize("axis, point, expected", [
    (0, (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),   # +90 deg about x: y -> z
    (1, (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),   # +90 deg about y: z -> x
    (2, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),   # +90 deg about z: x -> y
])
def test_quarter_turns_move_a_vertex_where_expected(axis, point, expected):
    # Place vertex 0 so that, after re-centring, it sits exactly at `point`:
    # v0 - (v0 + S) / N = point  <=>  v0 = (N point + S) / (N - 1), S = sum of the others.
    verts = mean_vertices_of(model_with())
    n = len(verts)
    verts[0] = (n * np.asarray(point) + verts[1:].sum(0)) / (n - 1)
    model = model_with(mean_vertices=verts, zero_bases=True)
    angles = [0.0, 0.0, 0.0]
    angles[axis] = math.pi / 2
    rest = reconstruct_mesh.reconstruct(coefficients(), model)["face_shape"][0]
    np.testing.assert_allclose(rest, point, atol=1e-6)
    posed = reconstruct_mesh.reconstruct(coefficients(angles=angles), model)["face_shape"][0]
    np.testing.assert_allclose(posed, expected, atol=1e-6)


def test_translation_is_added_after_rotation(model):
    c0 = coefficients(angles=(0.2, 0.3, -0.1))
    c1 = coefficients(angles=(0.2, 0.3, -0.1), translation=(0.5, -0.25, 1.0))
    a = reconstruct_mesh.reconstruct(c0, model)["face_shape"]
    b = reconstruct_mesh.reconstruct(c1, model)["face_shape"]
    np.testing.assert_allclose(b - a, np.tile([0.5, -0.25, 1.0], (len(a), 1)), atol=1e-6)


def test_recentred_by_mean_of_meanshape_not_of_shape(model):
    rng = np.random.default_rng(5)
    alpha, beta = rng.standard_normal(80) * 3, rng.standard_normal(64) * 3
    out = reconstruct_mesh.reconstruct(coefficients(id_coeff=alpha, ex_coeff=beta), model)
    ms = np.asarray(model["meanshape"], float).reshape(-1)
    raw = (model["idBase"].astype(float) @ alpha + model["exBase"].astype(float) @ beta
           + ms).reshape(-1, 3)
    expected = raw - ms.reshape(-1, 3).mean(0)
    np.testing.assert_allclose(out["face_shape"], expected, atol=2e-6)
    # The shape's own centroid is not what was subtracted.
    assert np.abs(raw.mean(0) - ms.reshape(-1, 3).mean(0)).max() > 1e-3


def test_projection_of_known_points():
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 5.0], [-0.5, 0.25, -10.0]],
                   np.float32)
    # u = 1015 x / (10 - z) + 112, y_img = 223 - (1015 y / (10 - z) + 112), by hand:
    expected = np.array([[112.0, 111.0], [213.5, 111.0], [112.0, -92.0],
                         [112.0 - 25.375, 111.0 - 12.6875]])
    np.testing.assert_allclose(reconstruct_mesh.project(pts), expected, atol=1e-4)


def test_landmarks_are_projected_keypoints(model):
    out = reconstruct_mesh.reconstruct(random_coefficients(4, 1, 257)[0], model)
    kp = model["keypoints"].astype(int).reshape(-1) - 1
    np.testing.assert_allclose(out["lm_68p"], pinhole(out["face_shape"][kp]), atol=1e-4)


def test_flat_patch_normals_all_plus_z_and_rotate_with_pose():
    model = model_with(mean_vertices=flat_vertices(), zero_bases=True)
    out = reconstruct_mesh.reconstruct(coefficients(), model)
    expected = np.tile([0.0, 0.0, 1.0], (len(out["face_norm"]), 1))
    np.testing.assert_allclose(out["face_norm"], expected, atol=1e-6)
    # Rotated 90 degrees about y, +z turns into +x.
    out = reconstruct_mesh.reconstruct(coefficients(angles=(0, math.pi / 2, 0)), model)
    expected = np.tile([1.0, 0.0, 0.0], (len(out["face_norm"]), 1))
    np.testing.assert_allclose(out["face_norm"], expected, atol=1e-6)


def test_spherical_patch_normals_are_radial():
    verts = sphere_vertices()
    model = model_with(mean_vertices=verts, zero_bases=True)
    normals = reconstruct_mesh.reconstruct(coefficients(), model)["face_norm"]
    radial = (verts - SPHERE_CENTER) / SPHERE_RADIUS
    dots = np.sum(normals * radial, axis=1)
    interior = np.ones((N_ROWS, N_COLS), bool)
    interior[[0, -1], :] = interior[:, [0, -1]] = False
    assert dots[interior.reshape(-1)].min() > 0.9995
    assert dots.min() > 0.995
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("normal", [(0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, 0.6, 0.8)])
def test_sh_lighting_closed_form(normal):
    rng = np.random.default_rng(7)
    gamma = rng.uniform(-0.5, 0.5, (3, 9)).astype(np.float32)
    albedo = np.array([[180.0, 120.0, 60.0]], np.float32)
    got = reconstruct_mesh.sh_lighting(albedo, np.array([normal], np.float32), gamma)
    expected = [sh_irradiance(normal, gamma[ch]) * albedo[0, ch] for ch in range(3)]
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-3)


def test_plus_z_normal_constant_albedo_gives_closed_form_colour():
    # Flat face, constant albedo, light only in bands 0, 2 and 6:
    # colour = T * ((g0 + 0.8) sqrt(pi)/2 + g2 sqrt(pi) + g6 sqrt(5 pi / 8)).
    model = model_with(mean_vertices=flat_vertices(), albedo=(200, 100, 50), zero_bases=True)
    g = np.zeros((3, 9))
    g[:, 0], g[:, 2], g[:, 6] = [0.1, -0.2, 0.3], [0.05, 0.1, -0.1], [0.2, 0.0, -0.3]
    out = reconstruct_mesh.reconstruct(coefficients(gamma=g.reshape(-1)), model)
    k = ((g[:, 0] + 0.8) * math.sqrt(math.pi) / 2 + g[:, 2] * math.sqrt(math.pi)
         + g[:, 6] * math.sqrt(5 * math.pi / 8))
    expected = np.array([200.0, 100.0, 50.0]) * k
    np.testing.assert_allclose(out["face_color"], np.tile(expected, (len(out["face_color"]), 1)),
                               rtol=1e-5)


def test_white_light_equals_rgb_light_with_repeated_values(model):
    c239 = random_coefficients(8, 1, 239)[0]
    a = reconstruct_mesh.reconstruct(c239, model)
    b = reconstruct_mesh.reconstruct(white_to_rgb(c239), model)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_258_uses_first_257(model):
    c258 = random_coefficients(9, 1, 258)[0]
    a = reconstruct_mesh.reconstruct(c258, model)
    b = reconstruct_mesh.reconstruct(c258[:257], model)
    c258[257] += 100.0
    c = reconstruct_mesh.reconstruct(c258, model)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(a[key], c[key])


@pytest.mark.parametrize("shape", [(256,), (240,), (1, 300), (2, 257), (257, 1)])
def test_bad_coefficients_raise(model, shape):
    with pytest.raises(ValueError, match=r"257.*258.*239"):
        reconstruct_mesh.reconstruct(np.zeros(shape, np.float32), model)


def test_float64_mode_agrees_with_float32(model):
    c = random_coefficients(10, 1, 257)[0]
    a = reconstruct_mesh.reconstruct(c, model)
    b = reconstruct_mesh.reconstruct(c, model, dtype=np.float64)
    assert b["face_shape"].dtype == np.float64
    for key in a:
        scale = np.abs(b[key]).max()
        np.testing.assert_allclose(a[key], b[key], atol=3e-6 * scale, err_msg=key)


def test_module_does_not_import_tensorflow():
    code = ("import sys, reconstruct_mesh; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)
