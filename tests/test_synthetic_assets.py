"""The synthetic morphable model's two kinds of bases (the training experiment's data)."""
import numpy as np
import pytest
import scipy.io

from tests.synthetic_assets import smooth_components, write_bfm09


def neighbour_correlation(basis, positions, count=200):
    """Mean correlation, over components, of the displacements of each vertex and its
    nearest neighbour (vertex pairs chosen at random)."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(positions), size=count, replace=False)
    distance = np.linalg.norm(positions[chosen, None] - positions[None], axis=-1)
    distance[np.arange(count), chosen] = np.inf
    nearest = distance.argmin(axis=1)
    fields = basis.reshape(len(positions), 3, -1)
    a = fields[chosen].reshape(-1, fields.shape[-1])
    b = fields[nearest].reshape(-1, fields.shape[-1])
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return float(np.mean((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))))


def test_smooth_components_have_unit_scale_and_move_neighbours_together():
    rng = np.random.default_rng(1)
    positions = rng.uniform(-1.0, 1.0, (800, 3)) * [0.9, 1.1, 0.3]
    basis = smooth_components(rng, positions, 20)
    assert basis.shape == (2400, 20) and basis.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(basis, axis=0), np.sqrt(3.0), rtol=1e-5)
    assert neighbour_correlation(basis, positions) > 0.9
    noise = rng.standard_normal((2400, 20))
    assert abs(neighbour_correlation(noise, positions)) < 0.2


@pytest.mark.parametrize("bases", ["noise", "smooth"])
def test_write_bfm09_bases(tmp_path, bases):
    written = write_bfm09(tmp_path, seed=3, bases=bases)
    model = scipy.io.loadmat(str(written["bfm09"]))
    trim = scipy.io.loadmat(str(tmp_path / "BFM_exp_idx.mat"))["trimIndex"].ravel()
    front = scipy.io.loadmat(str(tmp_path / "BFM_front_idx.mat"))["idx"].ravel()
    front_vertices = trim.astype(np.int64)[front.astype(np.int64) - 1] - 1
    positions = model["shapeMU"].reshape(-1, 3)[front_vertices] / 1e5        # dm
    # The 80 identity components the decoder uses, on the face's own vertices.
    shape_pc = model["shapePC"].reshape(-1, 3, model["shapePC"].shape[1])
    used = shape_pc[front_vertices, :, :80].reshape(-1, 80)
    correlation = neighbour_correlation(used, positions)
    if bases == "smooth":
        assert correlation > 0.8
    else:
        assert abs(correlation) < 0.2
    # The same size of deformation either way (noise columns have norm about sqrt(3)).
    np.testing.assert_allclose(np.linalg.norm(model["shapePC"], axis=0).mean(), np.sqrt(3.0),
                               rtol=0.05)


def test_write_bfm09_rejects_unknown_bases(tmp_path):
    with pytest.raises(ValueError, match="bases"):
        write_bfm09(tmp_path, bases="wavy")
