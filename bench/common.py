"""What the bench scripts share: where their inputs live, and a process's peak memory.

Each script still inserts the repository into `sys.path` itself (it must,
before it can import this).
"""
import pathlib

from assets import catalog

# Written by bench/make_assets.py, read by the others: never in the repository.
DEFAULT_ASSETS = pathlib.Path.home() / ".cache" / "deep3dface-bench"
# The shared photos with hand-marked 5-point files, beside the repository.
SHARED_IMAGES = catalog.REPO_ROOT.parent / "shared" / "data" / "images"
# The release's public index files, shipped in the repository.
INDEX_DIR = catalog.BFM_DIR


def high_water_mb(pid):
    """VmHWM (peak resident memory) of a running process in MB, or None once it has exited.

    Args:
      pid: a process id, or "self".
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None
