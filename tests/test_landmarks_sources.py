"""landmarks.sources: which source gives a photo's points, in the documented order."""
import numpy as np
import pytest
from PIL import Image

from fileio.errors import InputError
from landmarks.sources import PhotoLandmarks, build

FILE_POINTS = np.array([[70, 90], [130, 90], [100, 120], [75, 150], [125, 150]], float)
DETECTED = FILE_POINTS + 3.0
PARAMS = np.array([200.0, 240.0, 1.0, 100.0, 120.0])   # w0, h0, 102/s = 1, t0, t1


class FakeDetector:
    def __init__(self):
        self.calls = 0

    def __call__(self, rgb, name="image"):
        self.calls += 1
        return DETECTED.copy()


class FakePredictor:
    def from_points(self, rgb, points):
        return np.full((68, 2), 50.0), np.zeros(4)


class FakeCropDetector:
    def __call__(self, crops):
        return np.full((len(crops), 68, 2), 7.0)

    def close(self):
        pass


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.png"
    Image.new("RGB", (200, 240), (90, 90, 90)).save(path)
    return path


def test_five_points_file_first_in_auto_and_never_in_detect(photo):
    detector = FakeDetector()
    image = Image.open(photo).convert("RGB")
    auto, detect = PhotoLandmarks("auto", detector), PhotoLandmarks("detect", detector)
    np.testing.assert_array_equal(auto.five(photo, image), DETECTED)       # no file yet
    np.savetxt(photo.with_suffix(".txt"), FILE_POINTS)
    np.testing.assert_array_equal(auto.five(photo, image), FILE_POINTS)
    np.testing.assert_array_equal(detect.five(photo, image), DETECTED)
    assert detector.calls == 2
    given = FILE_POINTS - 1.0
    np.testing.assert_array_equal(detect.five(photo, image, given), given)
    with pytest.raises(InputError, match="outside"):
        detect.five(photo, image, FILE_POINTS + [0, 500])


def test_file_mode_needs_the_file(photo):
    with pytest.raises(InputError, match="landmark file not found"):
        PhotoLandmarks("file", None).five(photo, Image.open(photo).convert("RGB"))


def test_sixty_eight_points_file_then_release_detector_then_predictor(photo):
    from preprocess_img import map_to_crop

    image = Image.open(photo).convert("RGB")
    crop = np.zeros((224, 224, 3), np.float32)
    both = PhotoLandmarks("auto", None, FakePredictor(), FakeCropDetector())
    only_dlib = PhotoLandmarks("auto", None, FakePredictor())
    none = PhotoLandmarks("auto", None)
    np.testing.assert_array_equal(both.sixty_eight(photo, image, FILE_POINTS, crop, PARAMS), 7.0)
    np.testing.assert_allclose(only_dlib.sixty_eight(photo, image, FILE_POINTS, crop, PARAMS),
                               map_to_crop(np.full((68, 2), 50.0), PARAMS))
    assert none.sixty_eight(photo, image, FILE_POINTS, crop, PARAMS) is None
    in_photo = np.random.default_rng(0).uniform(40, 160, (68, 2))
    np.savetxt(photo.with_name("face_lm68.txt"), in_photo)
    for landmarks in (both, only_dlib, none):
        np.testing.assert_allclose(landmarks.sixty_eight(photo, image, FILE_POINTS, crop, PARAMS),
                                   map_to_crop(in_photo, PARAMS))


def test_build_reports_a_missing_predictor_or_raises(monkeypatch):
    from landmarks import dlib68

    def unavailable(self):
        raise dlib68.PredictorUnavailable("dlib is not installed")

    monkeypatch.setattr(dlib68.Landmark68Predictor, "load", unavailable)
    told = []
    landmarks = build("detect", ("dlib",), on_unavailable=told.append)
    assert landmarks.predictor is None and not landmarks.has_sixty_eight
    assert [str(error) for error in told] == ["dlib is not installed"]
    with pytest.raises(dlib68.PredictorUnavailable):
        build("detect", ("dlib",))
    with pytest.raises(ValueError, match="unknown"):
        build("auto", ("hog",))
