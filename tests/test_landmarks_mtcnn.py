"""MTCNN landmarks against the hand-made landmark files of the shared photos."""
import numpy as np
import pytest

from fileio.errors import InputError
from fileio.images import read_image
from landmarks.files import read_landmarks
from tests.conftest import shared_path

pytest.importorskip("mtcnn")


@pytest.fixture(scope="module")
def detector():
    from landmarks.mtcnn import FivePointDetector

    return FivePointDetector()


def test_detected_points_match_the_given_files(detector):
    photos = sorted(shared_path("data", "images").glob("*.jpg"))
    assert photos
    errors = []
    for photo in photos:
        given = read_landmarks(photo.with_suffix(".txt"))
        found = detector(np.asarray(read_image(photo)), name=str(photo))
        inter_ocular = np.linalg.norm(given[0] - given[1])
        errors.append(np.linalg.norm(found - given, axis=1).mean() / inter_ocular)
    # The release's order (left eye, right eye, nose, mouth corners) is respected:
    # a swapped pair would cost about one inter-ocular distance.
    assert np.mean(errors) < 0.06, errors
    assert max(errors) < 0.2, errors


def test_largest_face_is_chosen(detector):
    from PIL import Image

    photo = sorted(shared_path("data", "images").glob("*.jpg"))[0]
    image = read_image(photo)
    small = image.resize((image.width // 2, image.height // 2), Image.BICUBIC)
    canvas = Image.new("RGB", (image.width + small.width + 20, image.height))
    canvas.paste(image, (0, 0))
    canvas.paste(small, (image.width + 20, 0))
    found = detector(np.asarray(canvas))
    given = read_landmarks(photo.with_suffix(".txt"))
    inter_ocular = np.linalg.norm(given[0] - given[1])
    assert np.linalg.norm(found - given, axis=1).mean() < 0.1 * inter_ocular


def test_no_face_is_an_error_naming_the_file(detector):
    blank = np.full((120, 160, 3), 128, np.uint8)
    with pytest.raises(InputError, match="wall.png: no face found"):
        detector(blank, name="wall.png")


def test_graph_networks_give_the_eager_networks_points(detector):
    """The tf.function-wrapped networks change nothing but the speed."""
    import tensorflow as tf
    from mtcnn import MTCNN

    eager = MTCNN()
    photos = sorted(shared_path("data", "images").glob("*.jpg"))
    assert photos
    for photo in photos:
        pixels = np.asarray(read_image(photo))
        found = detector(pixels)
        faces = [f for f in eager.detect_faces(pixels) if f["confidence"] >= 0.9]
        largest = max(faces, key=lambda f: f["box"][2] * f["box"][3])
        expected = [largest["keypoints"][k] for k in
                    ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")]
        np.testing.assert_allclose(found, expected, atol=1e-3, err_msg=str(photo))
    for stage in detector._mtcnn.stages:   # every stage of the pinned mtcnn is wrapped
        assert isinstance(stage._model, tf.types.experimental.GenericFunction), stage.name
