"""Tests of preprocess_img against independent computations (docs/model.md#alignment).

The least-squares fit is redone with closed-form normal equations and with
scipy.optimize.lsq_linear; the crop is rebuilt from a bicubic resize with NumPy
slicing; the landmark mapping is checked through the fitted projection of the
mean face and through the inverse.
"""
import numpy as np
import pytest
import scipy.optimize
from PIL import Image

import load_data
import preprocess_img
from tests.conftest import REPO_ROOT, SHARED_DIR, shared_path

PHOTO_NAMES = sorted(p.stem for p in (SHARED_DIR / "data" / "images").glob("*.jpg")
                     if p.with_suffix(".txt").exists()) or ["(no shared photos)"]


def design_matrix(points3d):
    """The 10x8 system of docs/model.md#alignment (step 3), built row by row."""
    rows = []
    for X, Y, Z in points3d:
        rows.append([X, Y, Z, 1, 0, 0, 0, 0])
        rows.append([0, 0, 0, 0, X, Y, Z, 1])
    return np.array(rows, dtype=np.float64)


def normal_equation_fit(points2d_up, points3d):
    """k from (A^T A) k = A^T b, plus the per-point residual b - A k as [n,2]."""
    a = design_matrix(points3d)
    b = np.asarray(points2d_up, dtype=np.float64).reshape(-1)      # x0, y0, x1, y1, ...
    k = np.linalg.solve(a.T @ a, a.T @ b)
    return k, (b - a @ k).reshape(-1, 2)


def expected_setup(image, lm, lm3d):
    """Independent scale, translation, resized size and crop offset for a photo."""
    w0, h0 = image.size
    lm_up = np.column_stack([lm[:, 0], h0 - 1 - lm[:, 1]])
    k, residual = normal_equation_fit(lm_up, lm3d.astype(np.float64))
    s = (np.sqrt(np.sum(k[0:3] ** 2)) + np.sqrt(np.sum(k[4:7] ** 2))) / 2
    t0, t1 = k[3], k[7]
    w, h = int(np.trunc(w0 / s * 102)), int(np.trunc(h0 / s * 102))
    left = int(np.trunc(w / 2 - 112 + (t0 - w0 / 2) * 102 / s))
    up = int(np.trunc(h / 2 - 112 + (h0 / 2 - t1) * 102 / s))
    return dict(k=k, residual=residual, s=s, t0=t0, t1=t1, w=w, h=h, left=left, up=up,
                w0=w0, h0=h0)


def expected_crop(image, setup):
    """The crop rebuilt from PIL's bicubic resize with NumPy slicing, black outside, BGR."""
    resized = np.asarray(image.resize((setup["w"], setup["h"]), Image.BICUBIC))
    out = np.zeros((224, 224, 3), dtype=np.uint8)
    left, up = setup["left"], setup["up"]
    x0, y0 = max(left, 0), max(up, 0)
    x1, y1 = min(left + 224, setup["w"]), min(up + 224, setup["h"])
    if x1 > x0 and y1 > y0:
        out[y0 - up:y1 - up, x0 - left:x1 - left] = resized[y0:y1, x0:x1]
    return out[:, :, ::-1].astype(np.float32)


@pytest.fixture(scope="module")
def lm3d():
    return load_data.load_lm3d(REPO_ROOT / "BFM")      # the release's index files, shipped


@pytest.fixture(params=PHOTO_NAMES)
def photo(request):
    folder = shared_path("data", "images")
    if not (folder / f"{request.param}.jpg").exists():
        pytest.skip("no shared photos")
    return load_data.load_img(folder / f"{request.param}.jpg", folder / f"{request.param}.txt")


# ----------------------------------------------------------------------- POS


def test_pos_matches_normal_equations_and_lsq_linear():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x3 = rng.normal(size=(3, 5))
        xp = rng.uniform(0, 500, size=(2, 5))
        t, s = preprocess_img.POS(xp, x3)
        assert t.shape == (2, 1) and isinstance(s, float)
        k, _ = normal_equation_fit(xp.T, x3.T)
        bounded = scipy.optimize.lsq_linear(design_matrix(x3.T), xp.T.reshape(-1), tol=1e-14)
        for reference in (k, bounded.x):
            expected_s = (np.linalg.norm(reference[0:3]) + np.linalg.norm(reference[4:7])) / 2
            assert s == pytest.approx(expected_s, rel=1e-7)
            np.testing.assert_allclose(t.ravel(), reference[[3, 7]], rtol=1e-7, atol=1e-6)


def test_pos_recovers_an_exact_similarity():
    rng = np.random.default_rng(1)
    x3 = rng.normal(size=(3, 5))
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0]])
    xp = 250.0 * rotation @ x3 + np.array([[120.0], [-40.0]])
    t, s = preprocess_img.POS(xp, x3)
    assert s == pytest.approx(250.0, rel=1e-12)
    np.testing.assert_allclose(t.ravel(), [120.0, -40.0], atol=1e-9)


# -------------------------------------------------------------- real photos


def test_preprocess_outputs(photo, lm3d):
    image, lm = photo
    input_img, lm_new, trans_params = preprocess_img.Preprocess(image, lm, lm3d)
    assert input_img.shape == (1, 224, 224, 3) and input_img.dtype == np.float32
    assert 0 <= input_img.min() and input_img.max() <= 255
    assert lm_new.shape == (5, 2) and trans_params.shape == (5,)
    setup = expected_setup(image, lm, lm3d)
    np.testing.assert_allclose(trans_params, [setup["w0"], setup["h0"], 102 / setup["s"],
                                              setup["t0"], setup["t1"]], rtol=1e-9)
    # The five aligned points lie in the crop.
    assert np.all((lm_new > 0) & (lm_new < 223))


def test_mean_face_lands_on_aligned_points_within_residual(photo, lm3d):
    image, lm = photo
    _, lm_new, _ = preprocess_img.Preprocess(image, lm, lm3d)
    setup = expected_setup(image, lm, lm3d)
    k, residual, s = setup["k"], setup["residual"], setup["s"]
    scale = 102 / s
    points = lm3d.astype(np.float64)
    # The mean face's landmarks projected by the fitted camera, in crop pixels (y up,
    # then y down): the translation cancels, only the resize truncation remains.
    u = (points @ k[0:3] + setup["w0"] / 2) * scale - (setup["w"] / 2 - 112)
    v_up = (points @ k[4:7] + setup["h0"] / 2) * scale - (setup["h"] / 2 - 112)
    projected = np.column_stack([u, 223 - v_up])
    # They differ from the aligned detections by exactly the scaled residual ...
    np.testing.assert_allclose(lm_new - projected,
                               residual * scale * np.array([1.0, -1.0]), atol=1e-8)
    # ... which is small: the fit is good, in crop pixels.
    assert np.sqrt(np.mean(np.sum((lm_new - projected) ** 2, axis=1))) < 8.0


def test_map_to_original_returns_the_detected_landmarks(photo, lm3d):
    image, lm = photo
    _, lm_new, trans_params = preprocess_img.Preprocess(image, lm, lm3d)
    np.testing.assert_allclose(preprocess_img.map_to_original(lm_new, trans_params), lm,
                               atol=1e-3)


def test_crop_equals_resized_image_at_expected_offset(photo, lm3d):
    image, lm = photo
    input_img, _, _ = preprocess_img.Preprocess(image, lm, lm3d)
    setup = expected_setup(image, lm, lm3d)
    np.testing.assert_array_equal(input_img[0], expected_crop(image, setup))


# ------------------------------------------------------- synthetic images


def synthetic_photo(width, height, lm, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(1, 255, size=(height, width, 3), dtype=np.uint8)   # no zeros
    return Image.fromarray(pixels), np.asarray(lm, dtype=np.float64)


def synthetic_lm3d():
    return np.array([[-0.31, 0.29, 0.13], [0.31, 0.29, 0.13], [0.0, -0.05, 0.55],
                     [-0.25, -0.38, 0.22], [0.25, -0.38, 0.22]], dtype=np.float32)


def test_crop_outside_the_image_is_black_and_offsets_truncate_toward_zero():
    # A small face near the top-left corner: the crop starts at negative,
    # non-integer offsets, which the release truncates toward zero (not floor).
    lm = [[21.3, 30.2], [48.9, 29.4], [35.7, 45.1], [24.2, 58.8], [46.6, 58.1]]
    image, lm = synthetic_photo(160, 120, lm)
    lm3d = synthetic_lm3d()
    input_img, lm_new, trans_params = preprocess_img.Preprocess(image, lm, lm3d)
    setup = expected_setup(image, lm, lm3d)
    left_exact = setup["w"] / 2 - 112 + (setup["t0"] - setup["w0"] / 2) * 102 / setup["s"]
    up_exact = setup["h"] / 2 - 112 + (setup["h0"] / 2 - setup["t1"]) * 102 / setup["s"]
    assert left_exact < 0 and up_exact < 0
    assert left_exact != np.floor(left_exact) and up_exact != np.floor(up_exact)
    np.testing.assert_array_equal(input_img[0], expected_crop(image, setup))
    assert np.all(input_img[0, :-setup["up"] - 1, :] == 0)     # rows above the image
    assert np.all(input_img[0, :, :-setup["left"] - 1] == 0)   # columns left of it
    np.testing.assert_allclose(preprocess_img.map_to_original(lm_new, trans_params), lm,
                               atol=1e-9)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_image_mode_is_converted_to_rgb(mode):
    lm = [[100.0, 110.0], [160.0, 108.0], [131.0, 150.0], [106.0, 180.0], [155.0, 181.0]]
    image, lm = synthetic_photo(260, 300, lm, seed=4)
    converted = image.convert(mode)
    got = preprocess_img.Preprocess(converted, lm, synthetic_lm3d())
    expected = preprocess_img.Preprocess(converted.convert("RGB"), lm, synthetic_lm3d())
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_map_to_original_inverts_the_forward_formula():
    rng = np.random.default_rng(7)
    for _ in range(50):
        w0, h0 = int(rng.integers(100, 2000)), int(rng.integers(100, 2000))
        s = float(rng.uniform(30, 900))
        t0, t1 = float(rng.uniform(0, w0)), float(rng.uniform(0, h0))
        w, h = int(w0 / s * 102), int(h0 / s * 102)
        original = rng.uniform(0, [w0, h0], size=(68, 2))
        # Step 7, written out here from the spec.
        x_up, y_up = original[:, 0], h0 - 1 - original[:, 1]
        x_c = (x_up - t0 + w0 / 2) * 102 / s - (w / 2 - 112)
        y_c = 223 - ((y_up - t1 + h0 / 2) * 102 / s - (h / 2 - 112))
        trans_params = np.array([w0, h0, 102 / s, t0, t1])
        back = preprocess_img.map_to_original(np.column_stack([x_c, y_c]), trans_params)
        np.testing.assert_allclose(back, original, atol=1e-7)


def test_map_to_original_uses_the_truncated_resize():
    # w0*102/s = 250.9: ignoring the truncation to 250 would shift x by 0.45*s/102.
    w0, h0, s = 251, 300, 102.0 * 251 / 250.9
    trans_params = np.array([w0, h0, 102 / s, 120.0, 150.0])
    w = int(w0 / s * 102)
    assert w == 250
    crop_point = np.array([[112.0, 111.0]])
    back = preprocess_img.map_to_original(crop_point, trans_params)
    x_expected = (112.0 + w / 2 - 112) * s / 102 + 120.0 - w0 / 2
    assert back[0, 0] == pytest.approx(x_expected, abs=1e-9)
    assert abs(back[0, 0] - ((112.0 + w0 * 102 / s / 2 - 112) * s / 102 + 120.0 - w0 / 2)) > 0.4


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.zeros((5, 3)), np.zeros(10),
                                 np.array([[1.0, 2.0]] * 4 + [[np.nan, 1.0]]),
                                 np.array([[1.0, np.inf]] * 5), np.array([["a", "b"]] * 5)])
def test_preprocess_rejects_bad_landmarks(bad):
    image = Image.new("RGB", (100, 100))
    with pytest.raises(ValueError):
        preprocess_img.Preprocess(image, bad, synthetic_lm3d())


def test_preprocess_rejects_degenerate_landmarks():
    image = Image.new("RGB", (100, 100))
    with pytest.raises(ValueError):
        preprocess_img.Preprocess(image, np.full((5, 2), 50.0), synthetic_lm3d())


@pytest.mark.parametrize("points, params", [
    (np.zeros((3, 3)), [100, 100, 1.0, 50, 50]),
    (np.array([[np.nan, 1.0]]), [100, 100, 1.0, 50, 50]),
    (np.zeros((3, 2)), [100, 100, 0.0, 50, 50]),
    (np.zeros((3, 2)), [100, 100, 1.0, 50]),
])
def test_map_to_original_rejects_bad_input(points, params):
    with pytest.raises(ValueError):
        preprocess_img.map_to_original(points, params)


def test_map_to_crop_gives_the_crop_landmarks_and_inverts_map_to_original(photo, lm3d):
    image, lm = photo
    _, lm_new, trans_params = preprocess_img.Preprocess(image, lm, lm3d)
    np.testing.assert_allclose(preprocess_img.map_to_crop(lm, trans_params), lm_new, atol=1e-9)
    rng = np.random.default_rng(11)
    points = rng.uniform(0, image.size, size=(68, 2))
    there = preprocess_img.map_to_crop(points, trans_params)
    np.testing.assert_allclose(preprocess_img.map_to_original(there, trans_params), points,
                               atol=1e-7)
