"""Tests of load_data: asset loading, validation and the BFM09 conversion.

Expected values are computed here independently of load_data: raw arrays are
read straight from the synthetic files (struct / scipy.io) and the conversion
of docs/model.md#front-model is redone with explicit per-vertex loops.
"""
import os
import pathlib
import struct

import numpy as np
import pytest
import scipy.io
from PIL import Image

import load_data
from assets import catalog
from load_data import AssetError
from tests.conftest import REPO_ROOT, one_line
from tests.synthetic_assets import make_front_model, write_bfm09

# ------------------------------------------------------------------ helpers


def read_exp_pca_independently(path):
    """Parses Exp_Pca.bin with struct: (n_exp, expMU [3V], stored bases [n_exp, 3V])."""
    data = pathlib.Path(path).read_bytes()
    (n_exp,) = struct.unpack("<i", data[:4])
    floats = np.frombuffer(data, dtype="<f4", offset=4)
    n3 = floats.size // (n_exp + 1)
    return n_exp, floats[:n3], floats[n3:].reshape(n_exp, n3)


# -------------------------------------------------------------------- paths


def test_default_paths_come_from_the_module_location(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert catalog.BFM_DIR == REPO_ROOT / "BFM"
    assert catalog.MODEL_PATH == REPO_ROOT / "network" / "FaceReconModel.pb"
    assert catalog.BFM_DIR.is_absolute()


# -------------------------------------------------------------- front model


def save_front(path, model):
    scipy.io.savemat(str(path), model)
    return path


def test_load_front_model_returns_what_was_saved(tmp_path):
    model = make_front_model(seed=1)
    loaded = load_data.load_front_model(save_front(tmp_path / "front.mat", model))
    for name, value in model.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype


def test_load_front_model_wrong_shape_message(tmp_path):
    model = make_front_model()
    n3 = model["meanshape"].shape[1]
    model["idBase"] = model["idBase"][:10]
    with pytest.raises(AssetError) as error:
        load_data.load_front_model(save_front(tmp_path / "front.mat", model))
    assert one_line(error).startswith(
        f"{tmp_path / 'front.mat'}: variable 'idBase' has shape (10, 80), expected ({n3}, 80)")


def test_load_front_model_default_path_is_shown_relative(tmp_path, monkeypatch):
    missing = catalog.BFM_DIR / "no_such_model_front.mat"
    with pytest.raises(AssetError) as error:
        load_data.load_front_model(missing)
    assert one_line(error).startswith("BFM/no_such_model_front.mat: missing")
    assert "transferBFM09" in str(error.value)


@pytest.mark.parametrize("damage, expected", [
    ("drop_texBase", "variable 'texBase' is missing"),
    ("exBase_63", "variable 'exBase' has shape"),
    ("point_buf_7", "variable 'point_buf' has shape"),
    ("keypoints_67", "variable 'keypoints' has shape"),
    ("tri_out_of_range", "variable 'tri' has 1-based indices"),
    ("tri_zero_based", "variable 'tri' has 1-based indices"),
    ("nan_meanshape", "variable 'meanshape' holds NaN"),
    ("truncated", "truncated"),
    ("garbage", "not a MATLAB v5"),
    ("empty", "truncated"),
])
def test_load_front_model_rejects_bad_files(tmp_path, damage, expected):
    model = make_front_model()
    path = tmp_path / "front.mat"
    if damage == "drop_texBase":
        del model["texBase"]
    elif damage == "exBase_63":
        model["exBase"] = model["exBase"][:, :63]
    elif damage == "point_buf_7":
        model["point_buf"] = model["point_buf"][:, :7]
    elif damage == "keypoints_67":
        model["keypoints"] = model["keypoints"][:, :67]
    elif damage == "tri_out_of_range":
        model["tri"] = model["tri"].copy()
        model["tri"][5, 1] = model["meanshape"].shape[1] // 3 + 1
    elif damage == "tri_zero_based":
        model["tri"] = model["tri"] - 1
    elif damage == "nan_meanshape":
        model["meanshape"] = model["meanshape"].copy()
        model["meanshape"][0, 7] = np.nan
    save_front(path, model)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    elif damage == "garbage":
        path.write_bytes(b"not a mat file" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    with pytest.raises(AssetError) as error:
        load_data.load_front_model(path)
    message = one_line(error)
    assert message.startswith(f"{path}: ")
    assert expected in message


# ------------------------------------------------------------ 3D landmarks


def test_load_lm3d_release_file():
    bfm_index = REPO_ROOT / "BFM"        # the release's index files, shipped
    lm = scipy.io.loadmat(str(bfm_index / "similarity_Lm3D_all.mat"))["lm"].astype(np.float64)
    got = load_data.load_lm3d(bfm_index)
    assert got.shape == (5, 3)
    expected = [[(lm[36, d] + lm[39, d]) / 2 for d in range(3)],
                [(lm[42, d] + lm[45, d]) / 2 for d in range(3)],
                list(lm[30]), list(lm[48]), list(lm[54])]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    # Order: eye A left of eye B, both above the nose, which is above the mouth.
    assert got[0, 0] < got[1, 0] and got[3, 0] < got[4, 0]
    assert got[0, 1] > got[2, 1] > got[3, 1]


def test_load_lm3d_errors(tmp_path):
    with pytest.raises(AssetError) as error:
        load_data.load_lm3d(tmp_path)
    assert "similarity_Lm3D_all.mat: missing" in one_line(error)
    assert "Deep3DFaceReconstruction" in str(error.value)
    scipy.io.savemat(str(tmp_path / "similarity_Lm3D_all.mat"), {"lm": np.zeros((5, 3))})
    with pytest.raises(AssetError, match=r"variable 'lm' has shape \(5, 3\), expected \(68, 3\)"):
        load_data.load_lm3d(tmp_path)


# ------------------------------------------------------- BFM09 conversion


def expected_front_rows(bfm_dir, front_vertices, columns):
    """Redoes docs/model.md#front-model for a few vertices with explicit loops over raw arrays."""
    raw = scipy.io.loadmat(str(bfm_dir / "01_MorphableModel.mat"))
    trim = scipy.io.loadmat(str(bfm_dir / "BFM_exp_idx.mat"))["trimIndex"]
    idx = scipy.io.loadmat(str(bfm_dir / "BFM_front_idx.mat"))["idx"]
    n_exp, _, exp_stored = read_exp_pca_independently(bfm_dir / "Exp_Pca.bin")
    std_exp = [float(x) for x in (bfm_dir / "std_exp.txt").read_text().split()]
    expected = {name: {} for name in ("idBase", "exBase", "texBase", "meanshape", "meantex")}
    for i in front_vertices:
        exp_vertex = int(idx[i, 0]) - 1            # 1-based -> 0-based
        bfm_vertex = int(trim[exp_vertex, 0]) - 1
        for d in range(3):
            row, bfm_row, exp_row = 3 * i + d, 3 * bfm_vertex + d, 3 * exp_vertex + d
            expected["meanshape"][row] = float(raw["shapeMU"][bfm_row, 0]) / 1e5
            expected["meantex"][row] = float(raw["texMU"][bfm_row, 0])
            for j in columns:
                if j < 80:
                    expected["idBase"][row, j] = (float(raw["shapePC"][bfm_row, j])
                                                  * float(raw["shapeEV"][j, 0]) / 1e5)
                    expected["texBase"][row, j] = (float(raw["texPC"][bfm_row, j])
                                                   * float(raw["texEV"][j, 0]))
                if j < 64:
                    expected["exBase"][row, j] = (float(exp_stored[j, exp_row])
                                                  * std_exp[j] / 1e5)
    return expected


def check_against_expected(model, expected):
    for name, values in expected.items():
        for key, value in values.items():
            got = model[name][0, key] if name in ("meanshape", "meantex") else model[name][key]
            assert got == pytest.approx(value, rel=2e-6, abs=1e-9), (name, key)


def test_transfer_small_model_matches_independent_computation(bfm_copy):
    out = load_data.transferBFM09(bfm_copy)
    assert out == bfm_copy / "BFM_model_front.mat"
    model = scipy.io.loadmat(str(out))
    n = scipy.io.loadmat(str(bfm_copy / "BFM_front_idx.mat"))["idx"].shape[0]
    shapes = {"meanshape": (1, 3 * n), "meantex": (1, 3 * n), "idBase": (3 * n, 80),
              "exBase": (3 * n, 64), "texBase": (3 * n, 80)}
    for name, shape in shapes.items():
        assert model[name].shape == shape
        assert model[name].dtype == np.float32
    rng = np.random.default_rng(0)
    vertices = [0, 1, n - 1] + list(rng.choice(n, 5, replace=False))
    columns = [0, 1, 37, 63, 64, 79]
    check_against_expected(model, expected_front_rows(bfm_copy, vertices, columns))
    info = scipy.io.loadmat(str(bfm_copy / "facemodel_info.mat"))
    for name in ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx", "skinmask"):
        np.testing.assert_array_equal(model[name], info[name])
    # The index chain is not the identity: the test would catch a wrong order.
    idx = scipy.io.loadmat(str(bfm_copy / "BFM_front_idx.mat"))["idx"].ravel()
    assert not np.array_equal(idx, np.arange(1, n + 1))


def test_transfer_accepts_more_components_and_double_precision(bfm_copy):
    write_bfm09(bfm_copy, seed=5, n_shape_pc=120, n_tex_pc=90, n_exp_pc=70,
                bfm_dtype=np.float64)
    model = scipy.io.loadmat(str(load_data.transferBFM09(bfm_copy, force=True)))
    assert model["idBase"].shape[1] == 80 and model["texBase"].shape[1] == 80
    assert model["exBase"].shape[1] == 64
    check_against_expected(model, expected_front_rows(bfm_copy, [0, 9, 200], [0, 63, 79]))


def test_load_exp_basis_matches_stored_layout(small_bfm):
    exp_pc, exp_ev = load_data.LoadExpBasis(small_bfm)
    n_exp, _, stored = read_exp_pca_independently(small_bfm / "Exp_Pca.bin")
    assert exp_pc.shape == (stored.shape[1], n_exp) and exp_pc.dtype == np.float32
    for j in (0, 5, n_exp - 1):
        np.testing.assert_array_equal(exp_pc[:, j], stored[j])
    std_exp = [float(x) for x in (small_bfm / "std_exp.txt").read_text().split()]
    np.testing.assert_allclose(exp_ev, std_exp, rtol=0)


def test_transfer_full_size_through_release_index_files(tmp_path):
    bfm_index = REPO_ROOT / "BFM"        # the release's index files, shipped
    written = write_bfm09(tmp_path, seed=1, index_dir=bfm_index)
    assert written["n_bfm_vertices"] == 53490 and written["n_exp_vertices"] == 53215
    model = scipy.io.loadmat(str(load_data.transferBFM09(tmp_path)))
    assert model["meanshape"].shape == (1, 107127)
    assert model["idBase"].shape == (107127, 80)
    assert model["exBase"].shape == (107127, 64)
    assert model["texBase"].shape == (107127, 80)
    # The front mean shape is where the writer placed the front vertices.
    np.testing.assert_allclose(model["meanshape"].reshape(-1, 3), written["front_positions"],
                               rtol=0, atol=1e-6)
    check_against_expected(model, expected_front_rows(
        tmp_path, [0, 17, 20000, 35708], [0, 40, 63, 79]))
    # select_vertex_id.mat (the release's own list of front vertices in BFM09)
    # agrees with the chain trimIndex[idx].
    select_id = scipy.io.loadmat(str(tmp_path / "select_vertex_id.mat"))["select_id"].ravel()
    shape_mu = scipy.io.loadmat(str(tmp_path / "01_MorphableModel.mat"),
                                variable_names=["shapeMU"])["shapeMU"].ravel()
    for i in (0, 123, 35708):
        b = int(select_id[i]) - 1
        assert model["meanshape"][0, 3 * i:3 * i + 3] == pytest.approx(
            shape_mu[3 * b:3 * b + 3] / 1e5, rel=1e-6)
    # The front mesh has face-like proportions (decimetres).
    extent = np.ptp(model["meanshape"].reshape(-1, 3), axis=0)
    assert 1.5 < extent[0] < 2.1 and 1.9 < extent[1] < 2.5


def test_transfer_skips_when_output_is_newer(bfm_copy):
    out = load_data.transferBFM09(bfm_copy)
    inputs = [bfm_copy / n for n in ("01_MorphableModel.mat", "Exp_Pca.bin", "std_exp.txt",
                                     "BFM_exp_idx.mat", "BFM_front_idx.mat",
                                     "facemodel_info.mat")]
    for p in inputs:
        os.utime(p, ns=(10**18, 10**18))
    os.utime(out, ns=(15 * 10**17, 15 * 10**17))
    before = out.stat().st_mtime_ns
    load_data.transferBFM09(bfm_copy)
    assert out.stat().st_mtime_ns == before
    # Raw files removed after converting: nothing to do either, even when an
    # index file is replaced by a newer copy.
    (bfm_copy / "01_MorphableModel.mat").unlink()
    os.utime(bfm_copy / "BFM_front_idx.mat", ns=(2 * 10**18, 2 * 10**18))
    assert load_data.transferBFM09(bfm_copy) == out
    assert out.stat().st_mtime_ns == before


def test_transfer_redoes_when_an_input_is_newer(bfm_copy):
    out = load_data.transferBFM09(bfm_copy)
    os.utime(out, ns=(10**18, 10**18))
    os.utime(bfm_copy / "Exp_Pca.bin", ns=(15 * 10**17, 15 * 10**17))
    load_data.transferBFM09(bfm_copy)
    assert out.stat().st_mtime_ns > 15 * 10**17


def test_transfer_writes_atomically(bfm_copy, monkeypatch):
    out = load_data.transferBFM09(bfm_copy)
    original = out.read_bytes()

    def failing_savemat(stream, *args, **kwargs):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(load_data.scipy.io, "savemat", failing_savemat)
    with pytest.raises(OSError, match="disk full"):
        load_data.transferBFM09(bfm_copy, force=True)
    assert out.read_bytes() == original
    assert sorted(p.name for p in bfm_copy.iterdir()) == sorted(
        ["01_MorphableModel.mat", "Exp_Pca.bin", "std_exp.txt", "BFM_exp_idx.mat",
         "BFM_front_idx.mat", "facemodel_info.mat", "similarity_Lm3D_all.mat",
         "select_vertex_id.mat", "BFM_model_front.mat"])


def _rewrite_bfm09(folder, change):
    path = folder / "01_MorphableModel.mat"
    raw = scipy.io.loadmat(str(path))
    raw = {k: v for k, v in raw.items() if not k.startswith("__")}
    change(raw)
    scipy.io.savemat(str(path), raw)


@pytest.mark.parametrize("damage, file_name, expected", [
    ("missing_bfm09", "01_MorphableModel.mat", "missing (get it from: the University of Basel"),
    ("truncated_bfm09", "01_MorphableModel.mat", "truncated"),
    ("renamed_shapePC", "01_MorphableModel.mat", "variable 'shapePC' is missing"),
    ("short_shapeMU", "01_MorphableModel.mat", "variable 'shapePC' has shape"),
    ("ev_mismatch", "01_MorphableModel.mat", "variable 'shapeEV' has shape (198, 1)"),
    ("few_shape_pcs", "01_MorphableModel.mat", "'shapePC' has 60 components, at least 80"),
    ("few_tex_pcs", "01_MorphableModel.mat", "'texPC' has 79 components, at least 80"),
    ("missing_exp", "Exp_Pca.bin", "missing (get it from: the CoarseData download"),
    ("truncated_exp", "Exp_Pca.bin", "truncated"),
    ("few_exp_pcs", "Exp_Pca.bin", "declares 50 expression bases, expected at least 64"),
    ("std_exp_count", "std_exp.txt", "holds 78 standard deviations, but Exp_Pca.bin has 79"),
    ("std_exp_text", "std_exp.txt", "is not a list of numbers"),
    ("missing_front_idx", "BFM_front_idx.mat", "missing (get it from: this repository, which "
                                               "ships it in BFM/"),
    ("wrong_variable_idx", "BFM_front_idx.mat", "variable 'idx' is missing"),
    ("idx_out_of_range", "BFM_front_idx.mat", "variable 'idx' has 1-based indices"),
    ("point_buf_rows", "facemodel_info.mat", "variable 'point_buf' has shape"),
])
def test_transfer_rejects_bad_assets(bfm_copy, damage, file_name, expected):
    path = bfm_copy / file_name
    if damage == "missing_bfm09" or damage == "missing_exp" or damage == "missing_front_idx":
        path.unlink()
    elif damage == "truncated_bfm09" or damage == "truncated_exp":
        path.write_bytes(path.read_bytes()[:-1000])
    elif damage == "renamed_shapePC":
        _rewrite_bfm09(bfm_copy, lambda raw: raw.update(shapePCx=raw.pop("shapePC")))
    elif damage == "short_shapeMU":
        _rewrite_bfm09(bfm_copy, lambda raw: raw.update(shapeMU=raw["shapeMU"][:-3]))
    elif damage == "ev_mismatch":
        _rewrite_bfm09(bfm_copy, lambda raw: raw.update(shapeEV=raw["shapeEV"][:-1]))
    elif damage == "few_shape_pcs":
        write_bfm09(bfm_copy, seed=3, n_shape_pc=60)
    elif damage == "few_tex_pcs":
        write_bfm09(bfm_copy, seed=3, n_tex_pc=79)
    elif damage == "few_exp_pcs":
        write_bfm09(bfm_copy, seed=3, n_exp_pc=50)
    elif damage == "std_exp_count":
        values = path.read_text().split()
        path.write_text(" ".join(values[:-1]))
    elif damage == "std_exp_text":
        path.write_text("1.0 2.0 three")
    elif damage == "wrong_variable_idx":
        scipy.io.savemat(str(path), {"index": np.arange(1, 10, dtype=np.float32)[:, None]})
    elif damage == "idx_out_of_range":
        idx = scipy.io.loadmat(str(path))["idx"]
        idx[3, 0] = 10**6
        scipy.io.savemat(str(path), {"idx": idx})
    elif damage == "point_buf_rows":
        info = scipy.io.loadmat(str(path))
        info = {k: v for k, v in info.items() if not k.startswith("__")}
        info["point_buf"] = info["point_buf"][:-1]
        scipy.io.savemat(str(path), info)
    with pytest.raises(AssetError) as error:
        load_data.transferBFM09(bfm_copy)
    message = one_line(error)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert not (bfm_copy / "BFM_model_front.mat").exists()


def test_load_exp_basis_rejects_truncated_file(bfm_copy):
    path = bfm_copy / "Exp_Pca.bin"
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(AssetError, match="Exp_Pca.bin: has .* bytes, which is not"):
        load_data.LoadExpBasis(bfm_copy)


# ---------------------------------------------------------- images and OBJ


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_load_img_converts_to_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    image = rgb.convert(mode) if mode != "I;16" else rgb.convert("L").convert("I;16")
    image.save(tmp_path / "face.png")
    landmarks = rng.uniform(0, 20, (5, 2))
    np.savetxt(tmp_path / "face.txt", landmarks)
    got_image, got_landmarks = load_data.load_img(tmp_path / "face.png", tmp_path / "face.txt")
    assert got_image.mode == "RGB" and got_image.size == (30, 20)
    assert got_landmarks.shape == (5, 2)
    np.testing.assert_allclose(got_landmarks, landmarks, rtol=1e-15)
    if mode == "RGB":
        np.testing.assert_array_equal(np.asarray(got_image), np.asarray(rgb))


@pytest.mark.parametrize("text", ["1 2\n3 4\n5 6\n7 8\n", "1 2 3\n" * 5, "1 2\n" * 4 + "nan 2\n",
                                  "a b\n" * 5, ""])
def test_load_img_rejects_bad_landmark_files(tmp_path, text):
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    (tmp_path / "face.txt").write_text(text)
    with pytest.raises(ValueError, match="face.txt"):
        load_data.load_img(tmp_path / "face.png", tmp_path / "face.txt")


# ----------------------------------------------------------------- network


def test_load_graph_valid(graph_file):
    graph_def = load_data.load_graph(graph_file)
    names = {node.name for node in graph_def.node}
    assert {"input_imgs", "coeff"} <= names


def test_load_graph_errors(graph_file, tmp_path):
    with pytest.raises(AssetError) as error:
        load_data.load_graph(tmp_path / "FaceReconModel.pb")
    assert "FaceReconModel.pb: missing (get it from:" in one_line(error)
    assert "Deep3DFaceReconstruction" in str(error.value)
    bad = tmp_path / "garbage.pb"
    bad.write_bytes(b"\xff" * 300)
    with pytest.raises(AssetError, match="garbage.pb: does not parse"):
        load_data.load_graph(bad)
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(graph_file.read_bytes()[:-7])
    with pytest.raises(AssetError, match="truncated.pb: "):
        load_data.load_graph(truncated)
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.placeholder(tf.float32, [None, 3], name="input_imgs")
    other = tmp_path / "other.pb"
    other.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(AssetError, match="other.pb: has no node named 'coeff'"):
        load_data.load_graph(other)


def test_small_synthetic_landmarks_are_sensible(small_bfm):
    lm5 = load_data.load_lm3d(small_bfm)
    eye_a, eye_b, nose, mouth_a, mouth_b = lm5
    assert eye_a[0] < nose[0] < eye_b[0] and mouth_a[0] < nose[0] < mouth_b[0]
    assert min(eye_a[1], eye_b[1]) > nose[1] > max(mouth_a[1], mouth_b[1])
    assert nose[2] > max(eye_a[2], eye_b[2])          # the nose tip points to the camera
