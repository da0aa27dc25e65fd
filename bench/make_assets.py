"""Writes full-size synthetic assets for the benchmarks, outside the repository.

    python bench/make_assets.py [--out DIR]

Into DIR (default: ~/.cache/deep3dface-bench, never committed):
  BFM/       a BFM09-format model (53,490 vertices, 199 PCs), an Exp_Pca.bin
             (53,215 vertices, 79 PCs) and the release's public index files
             from the repository's BFM/, in the release's file formats;
  network/FaceReconModel.pb
             a frozen ResNet-50 v1 R-Net with random weights and the release's
             tensor names (input_imgs [B,224,224,3] -> coeff [B,257]).
Existing files are kept unless --force.
"""
import argparse
import pathlib
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import DEFAULT_ASSETS as DEFAULT_DIR  # noqa: E402
from bench.common import INDEX_DIR  # noqa: E402
from tests.synthetic_assets import write_bfm09  # noqa: E402
from tests.synthetic_network import write_resnet50_rnet  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_DIR)
    parser.add_argument("--index-dir", type=pathlib.Path, default=INDEX_DIR,
                        help="the release's public index files (default: the repository's BFM/)")
    parser.add_argument("--force", action="store_true", help="rewrite existing files")
    args = parser.parse_args(argv)
    if not args.index_dir.is_dir():
        parser.error(f"{args.index_dir}: index files not found (the release's BFM/ folder)")
    bfm_dir, network_dir = args.out / "BFM", args.out / "network"
    bfm_dir.mkdir(parents=True, exist_ok=True)
    network_dir.mkdir(parents=True, exist_ok=True)

    if args.force or not (bfm_dir / "01_MorphableModel.mat").exists():
        start = time.perf_counter()
        write_bfm09(bfm_dir, seed=0, index_dir=args.index_dir)
        print(f"{bfm_dir}: full-size BFM09-format model written in "
              f"{time.perf_counter() - start:.1f} s")
    model_path = network_dir / "FaceReconModel.pb"
    if args.force or not model_path.exists():
        start = time.perf_counter()
        write_resnet50_rnet(model_path)
        print(f"{model_path}: ResNet-50 R-Net written in {time.perf_counter() - start:.1f} s")
    print(f"assets in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
