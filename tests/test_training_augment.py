"""Tests of `train.py --augment`: landmarks follow the pixels, each row draws its own move."""
import numpy as np
import pytest

from training import augment
from training.data import TrainingSet


def test_the_matrix_moves_points_as_described():
    centre = 112.0
    np.testing.assert_allclose(augment.matrix(0, 0, 1.0, 0.0, 224), [[1, 0, 0], [0, 1, 0]])

    def move(transform, x, y):
        return transform[:, :2] @ [x, y] + transform[:, 2]

    # 90 degrees counter-clockwise on the screen (y down): right of the centre goes up.
    np.testing.assert_allclose(move(augment.matrix(0, 0, 1.0, 90.0, 224), centre + 10, centre),
                               [centre, centre - 10], atol=1e-9)
    np.testing.assert_allclose(move(augment.matrix(3, -4, 2.0, 0.0, 224), centre + 10, centre),
                               [centre + 23, centre - 4], atol=1e-9)


def test_landmarks_follow_the_pixels():
    """Bright dots drawn at landmarks land, after the move, where the moved landmarks are."""
    import cv2

    points = np.array([[80.0, 90.0], [150.0, 85.0], [112.0, 130.0], [95.0, 160.0],
                       [135.0, 158.0]], np.float32)
    image = np.zeros((224, 224, 3), np.float32)
    for x, y in points:
        cv2.circle(image, (int(x), int(y)), 3, (255, 255, 255), -1)
    mask = image[..., 0].copy()
    transform = augment.matrix(7, -9, 1.08, -8.5, 224)
    moved_image, moved_points, moved_mask = augment.apply(image, points, mask, transform)
    count, labels = cv2.connectedComponents((moved_image[..., 0] > 40).astype(np.uint8))
    assert count - 1 == len(points)
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        weights = moved_image[ys, xs, 0]
        centroid = [np.average(xs, weights=weights), np.average(ys, weights=weights)]
        nearest = np.min(np.linalg.norm(moved_points - centroid, axis=1))
        assert nearest < 0.3, (centroid, moved_points)
    np.testing.assert_array_equal(moved_mask, moved_image[..., 0])   # the mask moves alike


def test_draws_stay_in_range_and_belong_to_their_row():
    draws = np.array([augment.draw(0, step, row) for step in range(40) for row in range(8)])
    assert np.all(np.abs(draws[:, :2]) <= augment.SHIFT_PIXELS)
    assert np.all(draws[:, :2] == np.round(draws[:, :2]))
    assert np.all(np.abs(draws[:, 2] - 1) <= augment.SCALE_DELTA)
    assert np.all(np.abs(draws[:, 3]) <= augment.ROTATION_DEGREES)
    assert len({tuple(d) for d in draws}) == len(draws)               # no two rows alike
    assert augment.draw(0, 5, 3) == augment.draw(0, 5, 3)
    assert augment.draw(1, 5, 3) != augment.draw(0, 5, 3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, converted_bfm):
    from tests.synthetic_training import prepare_training_data

    return prepare_training_data(tmp_path_factory.mktemp("augment"), converted_bfm, copies=2)


def test_each_worker_draws_for_its_own_rows_what_one_machine_draws(prepared):
    data = TrainingSet([prepared], seed=3, augment=True)
    whole = data.batch(2, 4)
    plain = TrainingSet([prepared], seed=3).batch(2, 4)
    for first in (0, 2):                      # two workers, two rows each
        part = data.batch(2, 4, rows=(first, 2))
        for key in ("images", "landmarks", "masks"):
            np.testing.assert_array_equal(part[key], whole[key][first:first + 2])
    assert whole["names"] == plain["names"]
    assert np.abs(whole["images"] - plain["images"]).mean() > 1.0          # moved
    assert np.all(np.abs(whole["landmarks"] - plain["landmarks"]).max(axis=(1, 2)) > 0.5)
    # Another step, the same samples in other rows: other moves.
    again = data.batch(3, 4)
    assert not np.array_equal(again["landmarks"], whole["landmarks"])
