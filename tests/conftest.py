"""Shared test configuration: quiet TensorFlow, locate `../shared`, synthetic asset fixtures."""
import os
import pathlib
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.synthetic_assets import write_bfm09  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


# What a user brings or demo.py builds: never in the repository, so a fresh
# checkout has none of them (the release's index files ship in BFM/).
LICENSED_ASSETS = ("network/FaceReconModel.pb", "BFM/01_MorphableModel.mat", "BFM/Exp_Pca.bin")
USER_ASSETS = LICENSED_ASSETS + ("BFM/BFM_model_front.mat",)


@pytest.fixture
def bare_checkout():
    """The repository root, as a fresh clone has it: skips where a user's assets are in place.

    A developer's working tree may hold the licensed files (or the front model
    built from them); the repository itself never does, and CI runs without them.
    """
    present = [name for name in USER_ASSETS if (REPO_ROOT / name).exists()]
    if present:
        pytest.skip(f"{', '.join(present)}: a user's assets are in this working tree")
    return REPO_ROOT


def shared_path(*parts):
    """Returns a path under `../shared`, or skips the calling test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (the shared data sits beside the repository in CI)")
    return path


@pytest.fixture
def shared_dir():
    return shared_path()


def one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


def run_tool(tool, *args, cwd, timeout=900):
    """Runs one of the entry points (e.g. "demo.py") as a user does, in a child process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(REPO_ROOT / tool), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def our_lines(stderr):
    """A tool's stderr without TensorFlow's and absl's own log lines, nor progress lines."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("WARNING: All log", "I0000", "W0000",
                                                     "E0000", "To enable", "["))]


@pytest.fixture(scope="module")
def small_bfm(tmp_path_factory):
    """A small synthetic BFM09 folder (raw files only), written once; copy before changing."""
    folder = tmp_path_factory.mktemp("small_bfm")
    write_bfm09(folder, seed=3)
    return folder


@pytest.fixture(scope="module")
def converted_bfm(small_bfm, tmp_path_factory):
    """A copy of the small synthetic BFM folder for this module, with BFM_model_front.mat built."""
    import load_data

    folder = tmp_path_factory.mktemp("converted") / "BFM"
    shutil.copytree(small_bfm, folder)
    load_data.transferBFM09(folder)
    return folder


@pytest.fixture
def bfm_copy(small_bfm, tmp_path):
    folder = tmp_path / "BFM"
    shutil.copytree(small_bfm, folder)
    return folder


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    """A tiny frozen graph with nodes 'input_imgs' and 'coeff', like the R-Net's interface."""
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        pooled = tf.reduce_mean(images, axis=[1, 2])
        weights = tf.constant(np.ones((3, 257), np.float32))
        tf.identity(tf.matmul(pooled, weights), name="coeff")
    path = tmp_path_factory.mktemp("network") / "FaceReconModel.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path
