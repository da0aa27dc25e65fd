"""`python demo.py --outputs ...,uv` and `extract.py --uv`, as a user runs them.

The files are checked as a viewer reads them (trimesh opens the textured
OBJ with its MTL and texture) and against independent computations: the
albedo texture against the albedo interpolated by barycentric coordinates
computed here, an image set's neutral mesh against the model's formula.
How well a texture matches the face is measured in tests/test_textures.py.
"""
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from tests.conftest import our_lines, run_tool
from tests.synthetic_faces import background, draw_coefficients, render_faces, write_photos
from tests.synthetic_network import write_tiny_rnet

SIZE = 128
PHOTO_FILES = ("_uv.png", "_uv_mask.png", "_albedo_uv.png", "_uv.mtl", "_uv.obj")
SET_FILES = ("_set_uv.png", "_set_uv_mask.png", "_set_uv.mtl", "_set_uv.obj")




@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    import load_data
    from face_decoder import Face3D
    from tests.synthetic_assets import write_bfm09, write_uv

    root = tmp_path_factory.mktemp("demo_uv")
    bfm = root / "BFM"
    bfm.mkdir()
    write_uv(bfm, write_bfm09(bfm, seed=3))
    load_data.transferBFM09(bfm)
    face = Face3D(bfm / "BFM_model_front.mat")
    rng = np.random.default_rng(11)
    truth = draw_coefficients(rng, 2, person=draw_coefficients(rng, 1)[0])
    write_photos(root / "people" / "ann", ["ann0", "ann1"],
                 render_faces(face, truth, background(None, seed=1)))
    write_photos(root / "people", ["solo"],
                 render_faces(face, draw_coefficients(rng, 1), background(None, seed=2)))
    return {"root": root, "bfm": bfm, "model": write_tiny_rnet(root / "tiny.pb", seed=2),
            "front": load_data.load_front_model(bfm / "BFM_model_front.mat")}


def assets(layout, bfm=None):
    return ["--bfm-dir", bfm or layout["bfm"], "--model", layout["model"]]


@pytest.fixture(scope="module")
def set_run(layout, tmp_path_factory):
    output = tmp_path_factory.mktemp("uv_out")
    result = run_tool("demo.py", "--input", layout["root"] / "people", "--output", output,
                      *assets(layout), "--identity", "set", "--outputs", "mat,uv",
                      "--uv-size", SIZE, cwd=layout["root"])
    return {"result": result, "output": output}


def texel_barycentrics(uv, triangles, size, texels):
    """For texels (row, col) of an S x S texture: the triangle of the UV layout holding
    each texel's centre and its barycentric weights there (None where no triangle does)."""
    row, col = texels[:, 0], texels[:, 1]
    point = np.stack([(col + 0.5) / size, 1.0 - (row + 0.5) / size], axis=1)
    a, b, c = (uv[triangles[:, k]] for k in range(3))
    found = []
    for p in point:
        v0, v1, v2 = b - a, c - a, p - a
        det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
            w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
        inside = np.flatnonzero((w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1) & (det != 0))
        found.append(None if inside.size == 0 else
                     (inside[0], np.array([1 - w1[inside[0]] - w2[inside[0]], w1[inside[0]],
                                           w2[inside[0]]])))
    return found


def test_photo_textures_open_in_a_viewer_with_the_model_albedo(layout, set_run):
    import trimesh

    result, output = set_run["result"], set_run["output"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 done, 0 skipped, 0 failed" in result.stdout
    n_vertices = layout["front"]["meanshape"].size // 3
    triangles = np.asarray(layout["front"]["tri"], np.int64) - 1
    for folder, name in ((output / "ann", "ann0"), (output / "ann", "ann1"), (output, "solo")):
        names = sorted(p.name for p in folder.glob(f"{name}*"))
        assert names == sorted([f"{name}.mat"] + [name + s for s in PHOTO_FILES]), names
        mesh = trimesh.load(folder / f"{name}_uv.obj", process=False)
        assert mesh.vertices.shape == (n_vertices, 3) and len(mesh.faces) == len(triangles)
        assert mesh.visual.uv.shape == (n_vertices, 2)
        assert mesh.visual.material.image.size == (SIZE, SIZE)
        data = loadmat(folder / f"{name}.mat")
        np.testing.assert_allclose(mesh.vertices, data["face_shape"], atol=1e-5)
        texture = np.asarray(Image.open(folder / f"{name}_uv.png"))
        mask = np.asarray(Image.open(folder / f"{name}_uv_mask.png"))
        assert texture.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE)
        assert set(np.unique(mask)) <= {0, 128, 255} and (mask == 255).any()
        # The albedo texture is the model's albedo, interpolated over the UV layout.
        albedo = np.asarray(Image.open(folder / f"{name}_albedo_uv.png")).astype(np.float64)
        rng = np.random.default_rng(0)
        texels = rng.integers(0, SIZE, (300, 2))
        checked = 0
        for (row, col), hit in zip(texels, texel_barycentrics(mesh.visual.uv, triangles, SIZE,
                                                              texels)):
            if hit is None:
                continue
            triangle, weights = hit
            expected = weights @ data["face_texture"][triangles[triangle]]
            np.testing.assert_allclose(albedo[row, col], np.clip(expected, 0, 255), atol=1.01)
            checked += 1
        assert checked > 50


def test_image_set_texture_merges_its_photos_on_its_neutral_identity(layout, set_run):
    import trimesh

    output = set_run["output"]
    assert sorted(p.name for p in output.glob("ann_set*")) == sorted(
        ["ann_set.mat"] + ["ann" + s for s in SET_FILES])
    shared = loadmat(output / "ann_set.mat")
    front = layout["front"]
    neutral = (front["meanshape"].reshape(-1) + front["idBase"] @ shared["id_coeff"][0])
    neutral = neutral.reshape(-1, 3) - front["meanshape"].reshape(-1, 3).mean(axis=0)
    mesh = trimesh.load(output / "ann_set_uv.obj", process=False)
    np.testing.assert_allclose(mesh.vertices, neutral, atol=1e-4)
    assert mesh.visual.material.image.size == (SIZE, SIZE)
    seen = {name: np.asarray(Image.open(output / "ann" / f"{name}_uv_mask.png")) == 255
            for name in ("ann0", "ann1")}
    merged = np.asarray(Image.open(output / "ann_set_uv_mask.png")) == 255
    np.testing.assert_array_equal(merged, seen["ann0"] | seen["ann1"])
    # The folder's own photo is no set: it has no set files.
    assert not list(output.glob("solo_set*")) and not list(output.glob("people_set*"))
    rerun = run_tool("demo.py", "--input", layout["root"] / "people", "--output", output,
                     *assets(layout), "--identity", "set", "--outputs", "mat,uv",
                     "--uv-size", SIZE, cwd=layout["root"])
    assert "0 done, 3 skipped, 0 failed" in rerun.stdout, rerun.stderr[-2000:]


def test_missing_uv_layout_costs_the_uv_outputs_only(layout, tmp_path):
    bfm = tmp_path / "BFM"
    shutil.copytree(layout["bfm"], bfm)
    (bfm / "BFM_UV.mat").unlink()
    result = run_tool("demo.py", "--input", layout["root"] / "people" / "ann", "--output",
                      tmp_path / "out", *assets(layout, bfm), "--outputs", "mat,uv",
                      cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = our_lines(result.stderr)
    assert len(lines) == 1 and "BFM_UV.mat: missing" in lines[0] \
        and "the uv outputs are not written" in lines[0], lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ann0.mat", "ann1.mat"]
    usage = run_tool("demo.py", "--input", layout["root"], "--output", tmp_path / "x",
                     "--uv-size", 256, cwd=tmp_path)
    assert usage.returncode == 2 and "add uv to --outputs" in usage.stderr


def test_extract_uv_merges_a_videos_frames(layout, tmp_path):
    import trimesh

    from extraction.inputs import texture_paths

    videos = tmp_path / "videos"
    shutil.copytree(layout["root"] / "people" / "ann", videos)
    result = run_tool("extract.py", "--input", videos, "--output", tmp_path / "out",
                      *assets(layout), "--uv", "--uv-size", SIZE, "--identity", "video",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("ann0", "ann1"):
        texture, mask, material, obj = texture_paths(tmp_path / "out", f"{name}.png")
        assert all(p.exists() for p in (texture, mask, material, obj))
        data = loadmat(tmp_path / "out" / f"{name}.mat")
        assert json.loads(str(data["options"][0]))["uv"] == SIZE
        mesh = trimesh.load(obj, process=False)
        assert mesh.visual.material.image.size == (SIZE, SIZE)
        front = layout["front"]
        neutral = front["meanshape"].reshape(-1) + front["idBase"] @ data["video_id_coeff"][0]
        neutral = neutral.reshape(-1, 3) - front["meanshape"].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(mesh.vertices, neutral, atol=1e-4)
        assert (np.asarray(Image.open(mask)) == 255).any()
    # Done is done: a rerun skips; without BFM_UV.mat, one line and the rest still written.
    rerun = run_tool("extract.py", "--input", videos, "--output", tmp_path / "out",
                     *assets(layout), "--uv", "--uv-size", SIZE, cwd=tmp_path)
    assert rerun.returncode == 0 and "0 done, 2 skipped" in rerun.stdout, rerun.stderr[-2000:]
    bfm = tmp_path / "BFM"
    shutil.copytree(layout["bfm"], bfm)
    (bfm / "BFM_UV.mat").write_bytes(b"not a mat file")
    broken = run_tool("extract.py", "--input", videos, "--output", tmp_path / "out2",
                      *assets(layout, bfm), "--uv", cwd=tmp_path)
    assert broken.returncode == 1, broken.stderr[-3000:]
    lines = our_lines(broken.stderr)
    assert len(lines) == 1 and "BFM_UV.mat" in lines[0] and "not written" in lines[0], lines
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["ann0.mat", "ann1.mat"]
