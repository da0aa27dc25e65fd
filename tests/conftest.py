"""Shared test configuration: quiet TensorFlow and locate `../shared`."""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def shared_path(*parts):
    """Returns a path under `../shared`, or skips the calling test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (the shared data sits beside the repository in CI)")
    return path


@pytest.fixture
def shared_dir():
    return shared_path()
