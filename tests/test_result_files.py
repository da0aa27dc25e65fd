"""fileio.result_files: atomic writes, landmark text, OBJ text against printf, .mat, PNG."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from fileio import result_files
from landmarks.files import read_landmarks
from tests.synthetic_assets import make_front_model


def parse_obj(path):
    vertices, faces, blank = [], [], 0
    for line in path.read_text().splitlines():
        if not line:
            blank += 1
            continue
        kind, *values = line.split()
        if kind == "v":
            vertices.append([float(x) for x in values])
        else:
            assert kind == "f"
            faces.append([int(x) for x in values])
    return np.array(vertices), np.array(faces), blank


def test_save_obj_format(tmp_path):
    rng = np.random.default_rng(2)
    v = rng.normal(size=(7, 3)).astype(np.float32)
    c = rng.uniform(0, 1, (7, 3)).astype(np.float32)
    f = np.array([[1, 2, 3], [3, 4, 7], [5, 6, 7]], dtype=np.float32)
    path = tmp_path / "mesh.obj"
    result_files.save_obj(path, v, f, c)
    lines = path.read_text().split("\n")
    for i in range(7):
        expected = "v " + " ".join("%f" % float(x) for x in (*v[i], *c[i]))
        assert lines[i] == expected
    assert lines[7] == ""
    assert lines[8:11] == ["f 1 2 3", "f 3 4 7", "f 5 6 7"]
    assert lines[11:] == [""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.obj"]


def test_save_obj_full_size_mesh(tmp_path):
    face = make_front_model(n_rows=200, n_cols=180)
    v = face["meanshape"].reshape(-1, 3)
    c = face["meantex"].reshape(-1, 3) / 255.0
    f = face["tri"]
    path = tmp_path / "mesh.obj"
    result_files.save_obj(path, v, f, c)
    vertices, faces, blank = parse_obj(path)
    assert vertices.shape == (36000, 6) and faces.shape == (f.shape[0], 3) and blank == 1
    np.testing.assert_allclose(vertices[:, :3], v, atol=5e-7)
    np.testing.assert_allclose(vertices[:, 3:], c, atol=5e-7)
    np.testing.assert_array_equal(faces, f)


@pytest.mark.parametrize("v_shape, f_value, c_shape", [
    ((5, 2), 1, (5, 3)), ((5, 3), 0, (5, 3)), ((5, 3), 6, (5, 3)), ((5, 3), 1.5, (5, 3)),
    ((5, 3), 1, (4, 3)),
])
def test_save_obj_rejects_bad_input(tmp_path, v_shape, f_value, c_shape):
    f = np.array([[1, 2, 3], [2, 3, f_value]])
    with pytest.raises(ValueError):
        result_files.save_obj(tmp_path / "m.obj", np.zeros(v_shape), f, np.zeros(c_shape))
    assert not list(tmp_path.iterdir())


def test_save_obj_face_block_follows_each_topology(tmp_path):
    v = np.zeros((4, 3), np.float32)
    faces = np.array([[1, 2, 3], [2, 3, 4]])
    for step in range(3):
        result_files.save_obj(tmp_path / "m.obj", v, faces, v)
        text = (tmp_path / "m.obj").read_text()
        assert text.endswith("".join("f %d %d %d\n" % tuple(row) for row in faces))
        faces[step % 2] = faces[step % 2][::-1]   # Same array, new content.


@pytest.mark.parametrize("scale", [1e-7, 1.0, 300.0, 1e6])
def test_format_float_rows_matches_printf(scale):
    rng = np.random.default_rng(int(scale * 7) % 1000)
    values = rng.standard_normal((500, 6)) * scale
    values[0] = [-0.0, 0.0, 1e-9, -1e-9, 0.9999996, -5e-7]   # Signs and rounding edges.
    values[1] = [999999.9999996, 1e8, -123456.5, 0.5, -0.0000005, 2.5e-6]
    expected = "".join("v" + " %f" * 6 % tuple(row) + "\n" for row in values.tolist())
    assert result_files.format_float_rows("v", values).decode("ascii") == expected


def test_format_float_rows_float32_ties_round_like_printf():
    # Float32 values whose micro-units end in exactly .5 (k / 2**7 and
    # k / 2**8 with odd k): printf rounds these ties to even.
    ties = np.array([k / 2.0 ** 7 for k in range(1, 67, 2)] +
                    [-k / 2.0 ** 8 for k in range(1, 67, 2)], np.float32)
    rng = np.random.default_rng(3)
    values = np.concatenate([ties, rng.standard_normal(300).astype(np.float32) * 50.0,
                             rng.uniform(0.0, 1.0, 300).astype(np.float32)]).reshape(-1, 6)
    expected = "".join("v" + " %f" * 6 % tuple(row) + "\n" for row in values.tolist())
    assert result_files.format_float_rows("v", values).decode("ascii") == expected
    assert "0.007812 " in expected   # 7812.5 micro-units, a tie rounded to even.


def test_format_float_rows_falls_back_for_odd_values():
    values = np.array([[np.nan, 1.0, -np.inf], [1e12, -2.0, 3.0]])
    expected = "".join("v" + " %f" * 3 % tuple(row) + "\n" for row in values.tolist())
    assert result_files.format_float_rows("v", values).decode("ascii") == expected


def test_write_landmarks_round_trip_and_atomic(tmp_path):
    points = np.array([[1.25, 2.5], [3, 4], [5, 6], [7, 8], [9.125, 10]])
    path = tmp_path / "out.txt"
    result_files.write_landmarks(path, points)
    np.testing.assert_allclose(read_landmarks(path), points)
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_mat_round_trip_and_atomic(tmp_path):
    variables = {"coeff": np.arange(257, dtype=np.float32)[None],
                 "cropped_img": np.full((4, 5, 3), 7, np.uint8)}
    path = tmp_path / "out.mat"
    result_files.write_mat(path, variables)
    loaded = scipy.io.loadmat(path)
    for name, value in variables.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mat"]


def _savemat_bytes(variables):
    import io

    stream = io.BytesIO()
    scipy.io.savemat(stream, variables, do_compression=False)
    return stream.getvalue()


def test_write_mat_bytes_equal_savemats(tmp_path):
    """Every kind of value the tools write, in the layouts they have: scipy's bytes."""
    from fileio import matfile

    rng = np.random.default_rng(0)
    variables = {
        "recon_img": rng.random((6, 5, 3), dtype=np.float32),
        "cropped_img": rng.integers(0, 255, (6, 5, 3), dtype=np.uint8),
        "coeff": rng.random((1, 257), dtype=np.float32),
        "face_shape": rng.random((7, 3), dtype=np.float32)[::-1],   # not contiguous
        "lm_5p": rng.random((5, 2)),
        "trans_params": rng.random((1, 5)),
        "row": np.arange(9, dtype=np.int32),                        # 1-D: a row
        "tiny": np.array([3], np.int16),                            # packed into its tag
        "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
        "empty": np.zeros((0, 3), np.float32),
        "loss_photo": np.float64(0.25),
        "model": "FaceReconModel.pb",
        "model_kind": "",
        "photos": np.array(["a.jpg", "b.jpg"], dtype=object).reshape(-1, 1),
        "flags": np.array([True, False]),
        "a_much_longer_variable_name": np.ones((2, 2), np.float32),
    }
    encoded = b"".join(bytes(b) for b in matfile.encode(variables))
    expected = _savemat_bytes(variables)
    assert encoded[:19] == b"MATLAB 5.0 MAT-file"
    assert encoded[116:] == expected[116:]        # all but the header's time
    path = tmp_path / "out.mat"
    result_files.write_mat(path, variables)
    assert path.read_bytes()[116:] == expected[116:]
    loaded = scipy.io.loadmat(path)
    np.testing.assert_array_equal(loaded["face_shape"], variables["face_shape"])
    np.testing.assert_array_equal(loaded["recon_img"], variables["recon_img"])


def test_write_png_round_trip_keeps_rgb_order(tmp_path):
    rgb = np.zeros((6, 9, 3), np.uint8)
    rgb[..., 0] = 200                       # pure red: a BGR mix-up would show blue
    rgb[2, 3] = (10, 20, 30)
    path = tmp_path / "out.png"
    result_files.write_png(path, rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    grey = np.arange(54, dtype=np.uint8).reshape(6, 9)       # a mask: one channel
    result_files.write_png(tmp_path / "grey.png", grey)
    with Image.open(tmp_path / "grey.png") as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), grey)


def test_write_atomically_leaves_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "result.bin"
    path.write_bytes(b"old")

    def failing(stream):
        stream.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        result_files.write_atomically(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.bin"]
