"""bench/reference_renderer.py's load-time shims: each must match the published text."""
import pytest

from bench import reference_renderer


def fake_cache(tmp_path, monkeypatch, camera_utils_text):
    """A cache folder holding the three Python files and a stand-in library."""
    monkeypatch.setenv("DEEP3DFACE_CACHE", str(tmp_path))
    monkeypatch.setattr(reference_renderer, "_LOADED", {})
    folder = reference_renderer.cache_dir()
    folder.mkdir(parents=True)
    (folder / reference_renderer.LIBRARY).write_bytes(b"")
    (folder / "camera_utils.py").write_text(camera_utils_text)
    for name in ("rasterize_triangles.py", "mesh_renderer.py"):
        (folder / name).write_text("# not the published file\n")
    return folder


def test_a_shim_that_does_not_match_names_the_file_and_text(tmp_path, monkeypatch):
    fake_cache(tmp_path, monkeypatch, "import tensorflow as tf\nbatch_size = 3\n")
    with pytest.raises(RuntimeError, match=r"camera_utils\.py.*center\.shape\[0\]\.value"):
        reference_renderer.load_reference(log=lambda line: None)


def test_shims_are_applied_to_the_text_and_written_beside_it(tmp_path, monkeypatch):
    text = ("import tensorflow as tf\n"
            "def batch_of(center):\n"
            "    return center.shape[0].value\n")
    folder = fake_cache(tmp_path, monkeypatch, text)
    # camera_utils.py loads; the next file, not the published one, is refused.
    with pytest.raises(RuntimeError, match=r"rasterize_triangles\.py"):
        reference_renderer.load_reference(log=lambda line: None)
    shimmed = (folder / "shimmed" / "camera_utils.py").read_text()
    assert "import tensorflow.compat.v1 as tf" in shimmed
    assert "return center.shape[0]\n" in shimmed
    module = reference_renderer._LOADED["camera_utils"]
    assert module.tf.__name__.endswith("compat.v1")
    assert module.batch_of(type("T", (), {"shape": (4, 3)})()) == 4
