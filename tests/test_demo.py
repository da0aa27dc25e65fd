"""End to end: `python demo.py` as a user runs it, on synthetic assets.

The layout is a temporary copy of the project's folders: a synthetic BFM09
model in the exact file formats, tiny frozen R-Nets with the release's tensor
names, generated photos with landmark files, and real photos from
`../shared` when present. Results are checked against independent
computations: the tiny network recomputed with NumPy on the stored crop, and
the decoder's NumPy twin.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from tests.conftest import LICENSED_ASSETS, REPO_ROOT, SHARED_DIR
from tests.synthetic_assets import write_bfm09
from tests.synthetic_network import tiny_rnet_numpy, write_tiny_rnet

OUTPUT_SUFFIXES = (".mat", "_mesh.obj", "_lm5.txt", "_vis.png")
# Plausible 5 points for a 200x240 generated photo (eyes, nose, mouth corners).
GENERATED_LANDMARKS = np.array([[75, 100], [125, 100], [100, 130], [80, 160], [120, 160]], float)


def run_demo(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(REPO_ROOT / "demo.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def demo_on_layout(layout, output, *extra):
    """demo.py over the layout's photos with its model, batch 2, and `extra` flags."""
    return run_demo("--input", layout["input"], "--output", output, "--bfm-dir", layout["bfm"],
                    "--model", layout["network"] / "FaceReconModel.pb", "--batch-size", 2,
                    *extra, cwd=layout["root"])


def _write_photo(folder, name, pixels, mode=None, landmarks=GENERATED_LANDMARKS, **save):
    image = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels).convert(mode)
    image.save(folder / name, **save)
    if landmarks is not None:
        np.savetxt(folder / (pathlib.Path(name).stem + ".txt"), landmarks, fmt="%.2f")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    bfm_dir, network_dir, input_dir = root / "BFM", root / "network", root / "input"
    for folder in (bfm_dir, network_dir, input_dir):
        folder.mkdir()
    write_bfm09(bfm_dir, seed=3)
    write_tiny_rnet(network_dir / "FaceReconModel.pb", n_out=257, seed=1)
    write_tiny_rnet(network_dir / "white_2020_6.pb", n_out=258, seed=2)

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (240, 200, 3), dtype=np.uint8)
    _write_photo(input_dir, "colour.jpg", colour, quality=95)
    _write_photo(input_dir, "grey.png", colour[:, :, 0])
    _write_photo(input_dir, "print.jpg", colour, mode="CMYK", quality=95)
    shared_photos = sorted((SHARED_DIR / "data" / "images").glob("*.jpg"))[:2]
    for photo in shared_photos:
        shutil.copy(photo, input_dir / photo.name)
        shutil.copy(photo.with_suffix(".txt"), input_dir / photo.with_suffix(".txt").name)
    good = ["colour", "grey", "print"] + [p.stem for p in shared_photos]
    return {"root": root, "bfm": bfm_dir, "network": network_dir, "input": input_dir,
            "good": good}


@pytest.fixture(scope="module")
def first_run(layout):
    before = sorted(p.name for p in layout["input"].iterdir())
    output = layout["root"] / "output"
    result = run_demo("--input", layout["input"], "--output", output,
                      "--bfm-dir", layout["bfm"],
                      "--model", layout["network"] / "FaceReconModel.pb",
                      "--batch-size", 2, cwd=layout["root"])
    after = sorted(p.name for p in layout["input"].iterdir())
    return {"result": result, "output": output, "input_before": before, "input_after": after}


def test_first_run_reconstructs_every_photo(layout, first_run):
    result = first_run["result"]
    assert result.returncode == 0, result.stderr
    assert f"{len(layout['good'])} done, 0 skipped" in result.stdout
    names = sorted(p.name for p in first_run["output"].iterdir())
    expected = sorted(stem + suffix for stem in layout["good"] for suffix in OUTPUT_SUFFIXES)
    assert names == expected            # No temporary or partial file is left.
    assert first_run["input_before"] == first_run["input_after"]  # Nothing written into input/.
    assert (layout["bfm"] / "BFM_model_front.mat").exists()       # Converted on first use.


def test_mat_keys_shapes_and_values(layout, first_run):
    from reconstruct_mesh import reconstruct

    front_model = loadmat(layout["bfm"] / "BFM_model_front.mat")
    n_vertices = front_model["meanshape"].size // 3
    for stem in layout["good"]:
        mat = loadmat(first_run["output"] / f"{stem}.mat")
        shapes = {key: mat[key].shape for key in
                  ("cropped_img", "recon_img", "coeff", "face_shape", "face_texture",
                   "face_color", "lm_68p", "lm_5p")}
        assert shapes == {"cropped_img": (224, 224, 3), "recon_img": (224, 224, 4),
                          "coeff": (1, 257), "face_shape": (n_vertices, 3),
                          "face_texture": (n_vertices, 3), "face_color": (n_vertices, 3),
                          "lm_68p": (68, 2), "lm_5p": (5, 2)}
        assert mat["cropped_img"].dtype == np.uint8 and mat["recon_img"].dtype == np.float32
        assert mat["coeff"].dtype == np.float32
        # The network's coefficients on the stored crop, recomputed with NumPy.
        crop_bgr = mat["cropped_img"][:, :, ::-1].astype(np.float32)[None]
        expected_coeff = tiny_rnet_numpy(crop_bgr, n_out=257, seed=1)
        np.testing.assert_allclose(mat["coeff"], expected_coeff, rtol=1e-4, atol=1e-6)
        # ... pushed through the decoder's NumPy twin.
        twin = reconstruct(expected_coeff[0], front_model)
        np.testing.assert_allclose(mat["face_shape"], twin["face_shape"], atol=1e-4)
        np.testing.assert_allclose(mat["face_texture"], twin["face_texture"], atol=1e-2)
        np.testing.assert_allclose(mat["face_color"], twin["face_color"], atol=1e-2)
        np.testing.assert_allclose(mat["lm_68p"], twin["lm_68p"], atol=1e-2)
        recon = mat["recon_img"]
        assert recon.min() >= 0 and recon.max() <= 255
        assert 0.02 < (recon[..., 3] > 0.5).mean() < 0.98   # The face covers part of the crop.


def test_obj_landmarks_and_preview(layout, first_run):
    front_model = loadmat(layout["bfm"] / "BFM_model_front.mat")
    n_vertices, n_triangles = front_model["meanshape"].size // 3, front_model["tri"].shape[0]
    stem = layout["good"][0]
    mat = loadmat(first_run["output"] / f"{stem}.mat")
    lines = (first_run["output"] / f"{stem}_mesh.obj").read_text().split("\n")
    vertex_rows = np.array([r.split()[1:] for r in lines if r.startswith("v ")], float)
    face_rows = np.array([r.split()[1:] for r in lines if r.startswith("f ")], int)
    assert vertex_rows.shape == (n_vertices, 6) and face_rows.shape == (n_triangles, 3)
    np.testing.assert_allclose(vertex_rows[:, :3], mat["face_shape"], atol=1e-5)
    np.testing.assert_allclose(vertex_rows[:, 3:], np.clip(mat["face_color"], 0, 255) / 255,
                               atol=1e-5)
    np.testing.assert_array_equal(face_rows, front_model["tri"].astype(int))
    written = np.loadtxt(first_run["output"] / f"{stem}_lm5.txt")
    np.testing.assert_allclose(written, np.loadtxt(layout["input"] / f"{stem}.txt"), atol=1e-3)
    # The .mat's alignment maps its crop points back onto the photo's own.
    from preprocess_img import map_to_original

    assert mat["trans_params"].shape == (1, 5)
    np.testing.assert_allclose(map_to_original(mat["lm_5p"], mat["trans_params"][0]),
                               np.loadtxt(layout["input"] / f"{stem}.txt"), atol=1e-3)
    preview = np.asarray(Image.open(first_run["output"] / f"{stem}_vis.png"))
    assert preview.shape == (224, 672, 3)
    np.testing.assert_array_equal(preview[:, :224], mat["cropped_img"])


def test_rerun_skips_and_overwrite_redoes(layout, first_run, tmp_path):
    # On a copy: the reruns below redo photos at other batch sizes (8, and 1), whose
    # float32 sums run in another order, and later tests compare against first_run's
    # files as made at batch size 2.
    output = tmp_path / "output"
    shutil.copytree(first_run["output"], output)
    stamps = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    args = ["--input", layout["input"], "--output", output, "--bfm-dir", layout["bfm"],
            "--model", layout["network"] / "FaceReconModel.pb"]
    again = run_demo(*args, cwd=layout["root"])
    assert again.returncode == 0, again.stderr
    assert f"0 done, {len(layout['good'])} skipped" in again.stdout
    assert stamps == {p.name: p.stat().st_mtime_ns for p in output.iterdir()}

    # A photo with an incomplete set of outputs is redone; --overwrite redoes all.
    stem = layout["good"][0]
    (output / f"{stem}_vis.png").unlink()
    partial = run_demo(*args, cwd=layout["root"])
    assert f"1 done, {len(layout['good']) - 1} skipped" in partial.stdout
    overwrite = run_demo(*args, "--overwrite", cwd=layout["root"])
    assert f"{len(layout['good'])} done, 0 skipped" in overwrite.stdout


def test_258_output_network_uses_the_first_257(layout):
    output = layout["root"] / "output258"
    result = run_demo("--input", layout["input"], "--output", output, "--bfm-dir", layout["bfm"],
                      "--model", layout["network"] / "white_2020_6.pb", cwd=layout["root"])
    assert result.returncode == 0, result.stderr
    stem = layout["good"][0]
    mat = loadmat(output / f"{stem}.mat")
    crop_bgr = mat["cropped_img"][:, :, ::-1].astype(np.float32)[None]
    expected = tiny_rnet_numpy(crop_bgr, n_out=258, seed=2)[:, :257]
    np.testing.assert_allclose(mat["coeff"], expected, rtol=1e-4, atol=1e-6)


def test_bad_inputs_fail_alone_with_one_line_each(layout, tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (240, 200, 3), dtype=np.uint8)
    _write_photo(input_dir, "good.png", pixels)
    (input_dir / "garbage.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    (input_dir / "notes.png").write_text("a text file with an image name")
    _write_photo(input_dir, "blank.png", np.full((120, 160, 3), 90, np.uint8), landmarks=None)
    _write_photo(input_dir, "four.png", pixels, landmarks=GENERATED_LANDMARKS[:4])
    _write_photo(input_dir, "words.png", pixels, landmarks=None)
    (input_dir / "words.txt").write_text("left eye\n1 2\n3 4\n5 6\n7 8\n")
    outside = GENERATED_LANDMARKS.copy()
    outside[2] = (100, 900)
    _write_photo(input_dir, "outside.png", pixels, landmarks=outside)
    output = tmp_path / "output"
    result = run_demo("--input", input_dir, "--output", output, "--bfm-dir", layout["bfm"],
                      "--model", layout["network"] / "FaceReconModel.pb", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "1 done, 0 skipped, 6 failed" in result.stdout
    expected_reasons = {
        "garbage.jpg": "not an image", "notes.png": "not an image",
        "blank.png": "no face found", "four.txt": "4 points, expected 5",
        "words.txt": "line 1 is not two numbers", "outside.txt": "outside the 200x240 image",
    }
    lines = result.stderr.strip().splitlines()
    for name, reason in expected_reasons.items():
        matching = [line for line in lines if name in line]
        assert len(matching) == 1 and reason in matching[0], (name, lines)
    assert sorted(p.name for p in output.iterdir()) == sorted(
        "good" + suffix for suffix in OUTPUT_SUFFIXES)


def test_missing_assets_exit_2_and_say_where_to_get_them(tmp_path, layout):
    empty_bfm = tmp_path / "BFM"
    empty_bfm.mkdir()
    result = run_demo("--input", layout["input"], "--output", tmp_path / "out",
                      "--bfm-dir", empty_bfm, "--model", tmp_path / "network" / "FaceReconModel.pb",
                      cwd=tmp_path)
    assert result.returncode == 2
    for name in ("01_MorphableModel.mat", "Exp_Pca.bin", "FaceReconModel.pb"):
        assert name in result.stderr
    assert "Basel" in result.stderr and "3DFace" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    check = run_demo("--check", "--bfm-dir", empty_bfm,
                     "--model", tmp_path / "network" / "FaceReconModel.pb", cwd=tmp_path)
    assert check.returncode == 2 and "01_MorphableModel.mat" in check.stdout
    check_ok = run_demo("--check", "--bfm-dir", layout["bfm"],
                        "--model", layout["network"] / "FaceReconModel.pb", cwd=tmp_path)
    assert check_ok.returncode == 0, check_ok.stdout + check_ok.stderr


def test_fresh_checkout_asks_only_for_the_licensed_files(tmp_path, bare_checkout):
    # Defaults throughout: the repository's input/, output/, BFM/ and network/.
    result = run_demo(cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    listed = [line[len("  - "):] for line in result.stderr.splitlines()
              if line.startswith("  - ")]
    assert sorted(line.split(": ")[0] for line in listed) == sorted(LICENSED_ASSETS), listed
    assert all(": missing (get it from: " in line for line in listed)
    assert result.stdout == ""

    check = run_demo("--check", cwd=tmp_path)
    assert check.returncode == 2
    rows = {line.split()[2]: line.split() for line in check.stdout.splitlines()
            if line.startswith(("ok ", "missing ", "absent "))}
    for name in ("BFM_exp_idx.mat", "BFM_front_idx.mat", "facemodel_info.mat",
                 "similarity_Lm3D_all.mat", "select_vertex_id.mat", "std_exp.txt"):
        row = rows[f"BFM/{name}"]
        assert row[0] == "ok" and "verified" in row, row
    for name in LICENSED_ASSETS:
        assert rows[name][0] == "missing", rows[name]
    assert "3 problem(s):" in check.stdout


def test_help_explains_every_flag(tmp_path):
    result = run_demo("--help", cwd=tmp_path)
    assert result.returncode == 0
    for flag in ("--input", "--output", "--bfm-dir", "--model", "--batch-size",
                 "--landmarks", "--overwrite", "--check"):
        assert flag in result.stdout


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_output_that_is_a_file_is_a_usage_error(tmp_path, layout, where):
    existing = tmp_path / "results.txt"
    existing.write_text("not a folder")
    output = existing if where == "file" else existing / "sub"
    result = run_demo("--input", layout["input"], "--output", output,
                      "--bfm-dir", layout["bfm"],
                      "--model", layout["network"] / "FaceReconModel.pb", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(output) in lines[0] and "Traceback" not in result.stderr
    assert existing.read_text() == "not a folder"


def test_outputs_subset_writes_only_those_files(layout, first_run, tmp_path):
    output = tmp_path / "out"
    result = demo_on_layout(layout, output, "--outputs", "lm5,mat")
    assert result.returncode == first_run["result"].returncode, result.stderr[-2000:]
    for name in layout["good"]:
        assert sorted(p.name for p in output.glob(f"{name}.*")) + \
            sorted(p.name for p in output.glob(f"{name}_*")) == [f"{name}.mat",
                                                                 f"{name}_lm5.txt"]
        # The same results as with all four outputs (.mat headers hold a date).
        assert (output / f"{name}_lm5.txt").read_bytes() == \
            (first_run["output"] / f"{name}_lm5.txt").read_bytes()
        ours, full = loadmat(output / f"{name}.mat"), loadmat(first_run["output"] / f"{name}.mat")
        np.testing.assert_array_equal(ours["cropped_img"], full["cropped_img"])
        for key in ("coeff", "recon_img", "face_shape", "lm_68p"):   # Float32 rounding apart.
            np.testing.assert_allclose(ours[key], full[key], rtol=1e-5, atol=1e-4,
                                       err_msg=f"{name} {key}")
    bad = run_demo("--outputs", "mat,png", cwd=tmp_path)
    assert bad.returncode == 2 and "--outputs" in bad.stderr


def test_writer_processes_write_the_same_files_as_a_thread(layout, first_run, tmp_path):
    """The first run wrote with --workers' default; here 2 processes write (0: a thread)."""
    output = tmp_path / "processes"
    result = demo_on_layout(layout, output, "--workers", "2")
    assert result.returncode == first_run["result"].returncode, result.stderr[-2000:]
    for name in layout["good"]:
        for suffix in ("_mesh.obj", "_lm5.txt", "_vis.png"):
            assert (output / f"{name}{suffix}").read_bytes() == \
                (first_run["output"] / f"{name}{suffix}").read_bytes(), name + suffix
        # .mat files: the same bytes after the header's time.
        assert (output / f"{name}.mat").read_bytes()[116:] == \
            (first_run["output"] / f"{name}.mat").read_bytes()[116:], name
    bad = run_demo("--workers", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--workers" in bad.stderr
