"""dlib's 68-point predictor and the boxes we give it, against independent references.

References: the shared photos' hand-marked 5 points, and the boxes of dlib's
own HOG face detector (built into dlib, no weights file), the boxes the
predictor was trained on.
"""
import numpy as np
import pytest
from PIL import Image

from facemodel.keypoints import five_points
from landmarks import dlib68 as lp
from landmarks.files import read_landmarks
from tests.conftest import one_line, shared_path

dlib = pytest.importorskip("dlib")


def test_box_rule_and_box_shift_by_hand():
    points = np.array([[0, 0], [2, 0], [1, 1], [0, 2], [2, 2]], float)
    # Centroid (1, 1), RMS spread sqrt((2+2+0+2+2)/5) = sqrt(1.6).
    spread = np.sqrt(1.6)
    centre = np.array([1, 1]) + np.array(lp.BOX_FROM_5["offset"]) * spread
    half = lp.BOX_FROM_5["side"] * spread / 2
    np.testing.assert_allclose(lp.box_from_points(points), np.r_[centre - half, centre + half])
    assert lp.box_shift([0, 0, 10, 10], [3, 4, 13, 14]) == (0.5, 1.0)
    assert lp.box_shift([0, 0, 10, 10], [0, 0, 20, 20]) == (np.sqrt(50) / 10, 2.0)
    with pytest.raises(ValueError, match="5,2"):
        lp.box_from_points(np.zeros((6, 2)))


def iou(a, b):
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


@pytest.fixture(scope="module")
def shared_faces():
    """(name, RGB photo, hand-marked 5 points, HOG detector's box) of each shared photo."""
    detector = dlib.get_frontal_face_detector()
    faces = []
    for path in sorted(shared_path("data", "images").glob("*.jpg")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = max(detector(rgb, 1), key=lambda r: r.area())
        box = np.array([found.left(), found.top(), found.right(), found.bottom()], float)
        faces.append((path.name, rgb, read_landmarks(path.with_suffix(".txt")), box))
    return faces


def test_boxes_from_points_lie_where_dlibs_detector_puts_its_boxes(shared_faces):
    predictor = lp.Landmark68Predictor()
    from_5, from_68 = [], []
    for _, rgb, lm5, hog in shared_faces:
        from_5.append(iou(lp.box_from_points(lm5), hog))
        from_68.append(iou(lp.box_from_points(predictor(rgb, hog)), hog))
    assert min(from_5) > 0.6 and np.mean(from_5) > 0.75, np.round(from_5, 2)
    assert min(from_68) > 0.7 and np.mean(from_68) > 0.8, np.round(from_68, 2)


def test_predicted_five_points_lie_near_the_hand_marked_ones(shared_faces):
    predictor = lp.Landmark68Predictor()
    errors = []
    for _, rgb, lm5, _ in shared_faces:
        lm68, box = predictor.from_points(rgb, lm5)
        assert lm68.shape == (68, 2) and box.shape == (4,)
        eye = np.linalg.norm(lm5[1] - lm5[0])
        errors.append(np.linalg.norm(five_points(lm68) - lm5, axis=1).mean() / eye)
    # Measured: 0.053 on average, 0.08 at most (eye distances).
    assert np.mean(errors) < 0.065 and max(errors) < 0.1, np.round(errors, 3)


def test_points_follow_the_face_when_the_box_is_off(shared_faces):
    # A box a tenth of its side off, as a face that moved between frames.
    predictor = lp.Landmark68Predictor()
    for name, rgb, lm5, _ in shared_faces[:6]:
        lm68, box = predictor.from_points(rgb, lm5)
        side = box[2] - box[0]
        moved = predictor(rgb, box + 0.1 * side * np.array([1, -1, 1, -1]))
        eye = np.linalg.norm(lm5[1] - lm5[0])
        shift = np.linalg.norm(five_points(moved) - five_points(lm68), axis=1).mean()
        assert shift < 0.05 * eye, (name, shift / eye)


def test_a_file_that_is_not_a_predictor_is_one_line(tmp_path):
    bad = tmp_path / "shape_predictor.dat"
    bad.write_bytes(b"not a model")
    with pytest.raises(lp.PredictorUnavailable) as error:
        lp.Landmark68Predictor(bad).load()
    assert str(bad) in one_line(error)
