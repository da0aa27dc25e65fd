"""The conventions defined once (`facemodel`), against the release's numbers written out here."""
import numpy as np
import pytest

from facemodel import camera, coefficients, keypoints


def test_the_layout_is_the_releases():
    # docs/model.md#coefficients: the release's slices, written out by hand.
    expected = {"identity": (0, 80), "expression": (80, 144), "albedo": (144, 224),
                "angles": (224, 227), "lighting": (227, 254), "translation": (254, 257)}
    assert {name: (part.start, part.stop) for name, part in coefficients.BLOCKS.items()} \
        == expected
    assert list(coefficients.BLOCKS) == list(expected)          # in this order
    white = {name: (part.start, part.stop) for name, part in coefficients.WHITE_BLOCKS.items()}
    assert white["lighting"] == (227, 236) and white["translation"] == (236, 239)
    assert (coefficients.LENGTH, coefficients.WHITE_LENGTH, coefficients.LENGTH_2020) \
        == (257, 239, 258)
    assert coefficients.blocks(258) is coefficients.BLOCKS
    with pytest.raises(ValueError, match="257, 258 or 239"):
        coefficients.blocks(256)


def test_widen_repeats_white_light_and_drops_the_258th_value():
    rng = np.random.default_rng(0)
    white = rng.normal(size=(3, 239)).astype(np.float32)
    wide = coefficients.widen(white)
    assert wide.shape == (3, 257)
    np.testing.assert_array_equal(wide[:, :227], white[:, :227])
    for channel in range(3):
        np.testing.assert_array_equal(wide[:, 227 + 9 * channel:236 + 9 * channel],
                                      white[:, 227:236])
    np.testing.assert_array_equal(wide[:, 254:], white[:, 236:])
    release_2020 = rng.normal(size=(2, 258))
    np.testing.assert_array_equal(coefficients.widen(release_2020),
                                  release_2020[:, :257].astype(np.float32))


def test_mean_identity_is_the_mean_of_the_identity_and_albedo_blocks():
    coeff = np.random.default_rng(1).normal(size=(4, 257)).astype(np.float32)
    identity, albedo = coefficients.mean_identity(coeff)
    assert identity.dtype == albedo.dtype == np.float32
    np.testing.assert_allclose(identity, coeff[:, :80].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(albedo, coeff[:, 144:224].astype(np.float64).mean(0), rtol=1e-6)


def test_the_camera_is_the_releases():
    assert (camera.FOCAL, camera.CENTER, camera.CAMERA_DISTANCE, camera.IMAGE_SIZE) == \
        (1015.0, 112.0, 10.0, 224)
    assert camera.FOV_Y == pytest.approx(12.5936, abs=1e-4)
    assert camera.LAST_ROW == 223.0


def test_five_points_by_both_rules_by_hand():
    lm68 = np.random.default_rng(2).uniform(0, 300, (2, 68, 2))
    contours = keypoints.five_points(lm68)
    corners = keypoints.five_points(lm68, keypoints.EYE_CORNER_FIVE)
    for b in range(2):
        tail = [lm68[b, 30], lm68[b, 48], lm68[b, 54]]
        np.testing.assert_allclose(contours[b], [lm68[b, 36:42].mean(0), lm68[b, 42:48].mean(0),
                                                 *tail])
        np.testing.assert_allclose(corners[b], [(lm68[b, 36] + lm68[b, 39]) / 2,
                                                (lm68[b, 42] + lm68[b, 45]) / 2, *tail])
    float32 = keypoints.five_points(lm68[0].astype(np.float32), keypoints.EYE_CORNER_FIVE)
    assert float32.dtype == np.float32          # the mean face's 5 points stay float32
    assert keypoints.five_points(np.zeros((68, 3), int)).dtype == np.float64
    assert keypoints.NOW_SEVEN == (36, 39, 42, 45, 33, 48, 54)
