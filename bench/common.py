"""What the bench scripts share: where their inputs live, and a process's peak memory.

Each script still inserts the repository into `sys.path` itself (it must,
before it can import this).
"""
import pathlib
import shutil

from assets import catalog

# Written by bench/make_assets.py, read by the others: never in the repository.
DEFAULT_ASSETS = pathlib.Path.home() / ".cache" / "deep3dface-bench"
# The shared photos with hand-marked 5-point files, beside the repository.
SHARED_IMAGES = catalog.REPO_ROOT.parent / "shared" / "data" / "images"
# The release's public index files, shipped in the repository.
INDEX_DIR = catalog.BFM_DIR


def smooth_bfm(log=print, scale="synthetic"):
    """A full-size synthetic face model with smooth components, written once.

    The release's front mesh (its index files) with bases that vary smoothly
    over the face, as a real morphable model's do
    (`tests.synthetic_assets.write_bfm09(bases="smooth")`), converted, with
    the UV layout the repository ships.

    Args:
      log: where to say that it is being written.
      scale: "synthetic" (DEFAULT_ASSETS/BFM-smooth: speed and formats) or
        "bfm09" (DEFAULT_ASSETS/BFM09-scale: identity components that move
        vertices by BFM09's millimetres, for fitting's accuracy).

    Returns:
      The folder.
    """
    bfm_dir = DEFAULT_ASSETS / ("BFM-smooth" if scale == "synthetic" else "BFM09-scale")
    if not (bfm_dir / catalog.FRONT_MODEL_NAME).exists():
        import load_data
        from tests.synthetic_assets import write_bfm09

        log(f"writing a full-size synthetic face model ({scale} scale) into {bfm_dir} (once)")
        write_bfm09(bfm_dir, seed=0, index_dir=INDEX_DIR, bases="smooth", scale=scale)
        load_data.transferBFM09(bfm_dir)
    if not (bfm_dir / catalog.UV_NAME).exists():
        shutil.copyfile(INDEX_DIR / catalog.UV_NAME, bfm_dir / catalog.UV_NAME)
    return bfm_dir


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
