"""The README's promises: its example runs, its commands are the ones CI and users run."""
import re

import pytest
from scipy.io import savemat

from assets import catalog
from tests.conftest import REPO_ROOT
from tests.synthetic_assets import make_front_model

README = (REPO_ROOT / "README.md").read_text()


def _code_block_after(heading, language):
    section = README.split(heading, 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    return match.group(1)


def test_face3d_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mesh_renderer")
    savemat(tmp_path / "BFM_model_front.mat", make_front_model(seed=5))
    # Face3D() reads BFM_DIR/BFM_model_front.mat.
    monkeypatch.setattr(catalog, "BFM_DIR", tmp_path)
    code = _code_block_after("## Use the decoder in your own TensorFlow code", "python")
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert tuple(namespace["gradient"].shape) == (2, 257)
    assert tuple(namespace["face"].render_imgs.shape) == (2, 224, 224, 4)
    assert float(abs(namespace["gradient"]).numpy().max()) > 0  # Gradients reach the coefficients.
    assert "(2, 224, 224, 4)" in capsys.readouterr().out


def test_setup_commands():
    install = _code_block_after("## Install", "bash").strip()
    run = _code_block_after("## Run", "bash").strip()
    test = _code_block_after("## Tests and benchmarks", "bash").strip()
    assert install == "pip install -r requirements.txt"
    assert run == "python demo.py"
    assert test == "python -m pytest -q"
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test  # CI runs exactly the README's test command, last.
    assert "python -m ruff check ." in ci[:-1]  # The linter runs before the tests.
    assert any("pip install" in line and "requirements.txt" in line for line in ci)


def test_requirements_are_pinned():
    lines = [line.strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    names = {line.split("==")[0].lower() for line in lines}
    assert all("==" in line for line in lines), lines
    assert {"tensorflow", "numpy", "scipy", "pillow", "opencv-python-headless", "mtcnn",
            "tqdm"} <= names
    tensorflow = next(line for line in lines if line.lower().startswith("tensorflow=="))
    assert tensorflow.split("==")[1].startswith("2.")
