"""Unit tests of the extraction package's pure parts, against direct computations."""
import numpy as np
import pytest
from scipy.signal import savgol_filter

from extraction import inputs, postprocess, tracking
from fileio.errors import InputError
from tests.synthetic_assets import random_coefficients


def test_face_thumbnail_similarity_separates_a_face_from_a_cover():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    face = gaussian_filter(rng.uniform(0, 255, (224, 224, 3)), (2, 2, 0))
    shifted = (np.roll(face, 1, axis=1) * 0.9 + 10).astype(np.uint8)   # Motion, exposure.
    covered = face.astype(np.uint8)
    covered[20:204, 20:204] = 128
    face = face.astype(np.uint8)
    lm5 = np.array([[80, 90], [144, 90], [112, 125], [88, 160], [136, 160]], float)
    a, b, c = (tracking.face_thumbnail(x, lm5) for x in (face, shifted, covered))
    assert abs(np.linalg.norm(a) - 1) < 1e-9
    assert a @ b > 0.5 and a @ c == 0.0                 # A flat region compares as nothing.


def test_hold_last_valid_matches_a_loop():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(9, 4))
    valid = np.array([0, 0, 1, 0, 1, 1, 0, 0, 1], bool)
    expected = values.copy()
    first = np.flatnonzero(valid)[0]
    last = first
    for i in range(9):
        if valid[i]:
            last = i
        expected[i] = values[last]
    np.testing.assert_array_equal(postprocess.hold_last_valid(values, valid), expected)


def test_smooth_motion_filters_only_pose_translation_expression():
    coeff = random_coefficients(3, 40, 257)
    smoothed = postprocess.smooth_motion(coeff, 8)        # Even: rounded up to 9.
    moving = np.r_[80:144, 224:227, 254:257]
    still = np.setdiff1d(np.arange(257), moving)
    np.testing.assert_array_equal(smoothed[:, still], coeff[:, still])
    for column in (80, 143, 224, 226, 254, 256):
        expected = savgol_filter(coeff[:, column].astype(np.float64), 9, 2, mode="interp")
        np.testing.assert_allclose(smoothed[:, column], expected, rtol=1e-5, atol=1e-5)
    assert np.abs(np.diff(smoothed[:, moving], 2, axis=0)).mean() < \
        np.abs(np.diff(coeff[:, moving], 2, axis=0)).mean()
    short = random_coefficients(4, 2, 257)
    np.testing.assert_array_equal(postprocess.smooth_motion(short, 9), short)


def test_video_identity_is_the_mean_over_valid_frames():
    coeff = random_coefficients(5, 6, 257)
    valid = np.array([1, 0, 1, 1, 0, 1], bool)
    identity, texture = postprocess.video_identity(coeff, valid)
    exact = coeff.astype(np.float64)
    np.testing.assert_allclose(identity, exact[valid, :80].mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(texture, exact[valid, 144:224].mean(axis=0), rtol=1e-6,
                               atol=1e-7)


def test_shards_cover_every_input_exactly_once():
    names = [f"speaker{i % 7}/clip{i:04d}.mp4" for i in range(500)]
    for count in (1, 3, 16):
        owners = [[i for i in range(count) if inputs.in_shard(n, i, count)] for n in names]
        assert all(len(o) == 1 for o in owners)
        if count > 1:
            assert len({o[0] for o in owners}) == count       # Every shard gets work.


@pytest.mark.parametrize("text", ["3", "3/3", "-1/4", "a/b", "1/0"])
def test_bad_shards_are_refused(text):
    with pytest.raises(ValueError, match="--shard"):
        inputs.parse_shard(text)


def test_listing_mirrors_the_tree_and_finds_collisions(tmp_path):
    for name in ("a/x.mp4", "a/x.MOV", "b/c/y.webm", "z.jpg", "notes.txt", ".hidden/v.mp4",
                 "a/.v.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = inputs.list_inputs(tmp_path)
    assert found == ["a/x.MOV", "a/x.mp4", "b/c/y.webm", "z.jpg"]
    assert inputs.output_path("/out", "b/c/y.webm").as_posix() == "/out/b/c/y.mat"
    assert inputs.output_path("/out", "z.jpg", "npz").as_posix() == "/out/z.npz"
    assert inputs.preview_path("/out", "b/c/y.webm").as_posix() == "/out/b/c/y_preview.mp4"
    assert inputs.output_collisions(found) == {"a/x.mp4": "a/x.MOV"}


def test_align_frame_is_preprocess_reading_only_the_crop():
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    from preparation.frame import align_frame
    from preprocess_img import Preprocess

    rng = np.random.default_rng(4)
    frame = gaussian_filter(rng.uniform(0, 255, (360, 640, 3)), (2, 2, 0)).astype(np.uint8)
    lm3d = np.array([[-0.31, 0.29, 0.13], [0.31, 0.29, 0.13], [0.0, -0.02, 0.55],
                     [-0.25, -0.36, 0.2], [0.25, -0.36, 0.2]])
    base = np.array([[300, 150], [350, 150], [325, 180], [305, 205], [345, 205]], float)
    worst = 0
    for _ in range(30):
        # Faces of many sizes and places, some partly outside the frame.
        points = (base - 325) * rng.uniform(0.5, 2.5) + rng.uniform([0, 0], [640, 360])
        points += rng.normal(0, 2, (5, 2))
        crop, lm5_crop, params = align_frame(frame, points, lm3d)
        ref_crop, ref_lm5, ref_params = Preprocess(Image.fromarray(frame), points, lm3d)
        np.testing.assert_array_equal(params, ref_params)
        np.testing.assert_allclose(lm5_crop, ref_lm5, rtol=0, atol=1e-9)
        worst = max(worst, np.abs(crop - ref_crop[0]).max())
    assert worst <= 2, worst


def test_region_detection_maps_scaled_points_back_to_the_frame():
    # A bright disc on a dark 720p frame; the "detector" returns its centroid
    # (pixel-centre coordinates) five times, and counts the sizes it was given.
    frame = np.zeros((720, 1280, 3), np.uint8)
    yy, xx = np.mgrid[:720, :1280]
    centre = np.array([701.3, 402.7])
    frame[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 60 ** 2] = 255
    seen = []

    def detect(image):
        seen.append(image.shape[:2])
        weight = image[..., 0].astype(np.float64)
        ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
        point = [(xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()]
        return np.tile(point, (5, 1))

    tracker = tracking.FaceTracker(detect, predict=None)
    # 5 points spread over 200 pixels: the region is 800 pixels a side,
    # scaled by 72 / (2.5 * 200) = 0.144 before detection.
    near = centre + np.array([[-100, -60], [100, -60], [0, 0], [-80, 100], [80, 100]])
    found = tracker._detect_near(frame, near)
    assert tracker.detector_calls == 1 and len(seen) == 1
    assert max(seen[0]) < 0.2 * 800
    np.testing.assert_allclose(found, np.tile(centre, (5, 1)), atol=0.25)


def test_whole_frame_search_goes_scaled_frame_then_region_then_full_size():
    # The same disc; a "detector" that finds it only when it is at least 20
    # pixels across (as MTCNN's smallest face), and returns its centroid.
    frame = np.zeros((720, 1280, 3), np.uint8)
    yy, xx = np.mgrid[:720, :1280]
    seen = []

    def detect(image):
        seen.append(image.shape[:2])
        weight = image[..., 0].astype(np.float64)
        if (weight > 127).sum() < np.pi * 10 ** 2:
            raise InputError("no face")
        ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
        point = [(xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()]
        spread = np.sqrt(weight.sum() / 255 / np.pi) * np.array([[-1, -1], [1, -1], [0, 0],
                                                                [-1, 1], [1, 1]])
        return point + 0.5 * spread

    # A 160-pixel disc: found in the 400x225 frame (50 pixels there), then
    # refined in its region; the points are those of the full-size frame.
    centre = np.array([701.3, 402.7])
    frame[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 80 ** 2] = 255
    tracker = tracking.FaceTracker(detect, predict=None)
    found = tracker._detect_near(frame, None)
    assert seen[0] == (225, 400) and max(seen[1]) < 400 and len(seen) == 2
    assert tracker.detector_calls == 2
    np.testing.assert_allclose(found[2], centre, atol=0.25)
    np.testing.assert_allclose(found[1] - found[0], [80, 0], atol=2.5)

    # A 40-pixel disc is 12 pixels in the small frame: the full-size frame finds it.
    frame[:] = 0
    frame[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 20 ** 2] = 255
    seen.clear()
    tracker = tracking.FaceTracker(detect, predict=None)
    found = tracker._detect_near(frame, None)
    assert seen == [(225, 400), (720, 1280)] and tracker.detector_calls == 2
    np.testing.assert_allclose(found[2], centre, atol=0.25)

    # --landmarks detect: the full-size frame only, as demo.py.
    seen.clear()
    tracker = tracking.FaceTracker(detect, predict=None, always_detect=True)
    tracker._detect_near(frame, None)
    assert seen == [(720, 1280)]


