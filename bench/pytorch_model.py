"""The PyTorch release's R-Net run here, against the 2019 R-Net and against PyTorch itself.

    python bench/make_assets.py                          # once: the 2019-layout R-Net
    pip install torch==2.13.0                            # for the PyTorch column (CPU build)
    python bench/pytorch_model.py --release Deep3DFaceRecon_pytorch

Three networks on the same aligned crops (the shared photos, or
input/astronaut.png), at each --batch-sizes, in one process, each warmed
up first and then timed --repeat times in turn (the best of each is kept):

- `epoch_20.pth` here: the PyTorch release's R-Net (torchvision ResNet-50,
  seven heads) built in TensorFlow from its weights, run by the
  `Reconstructor` as every tool runs it (`Reconstructor.network_only`);
  random weights of the right shapes unless --pth names the real file;
- the 2019 release's R-Net: bench/make_assets.py's frozen slim ResNet-50
  (random weights, the release's tensor names), the same way;
- PyTorch's own forward pass of the PyTorch release's network definition
  (`models/networks.py` of the checkout --release names) on the same weights,
  eval mode, `torch.no_grad()`, with PyTorch's default CPU threads. Skipped,
  with a line saying why, without PyTorch or --release.

Prints ms per image and the ratio of each to PyTorch's, then one JSON line.
"""
import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import DEFAULT_ASSETS, INDEX_DIR, SHARED_IMAGES  # noqa: E402


def crops(count):
    """[count, 224, 224, 3] float32 BGR 0-255 aligned crops of real photos."""
    import load_data
    from fileio.images import read_image
    from landmarks.files import read_landmarks
    from preprocess_img import Preprocess

    photos = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    photos = photos or [REPO_ROOT / "input" / "astronaut.png"]
    lm3d = load_data.load_lm3d(INDEX_DIR)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        image = read_image(photo)
        crop, _, _ = Preprocess(image, read_landmarks(photo.with_suffix(".txt")), lm3d)
        out.append(np.asarray(crop, np.float32)[0])
    return np.stack(out)


def best_ms(run, images, batch_size, repeat):
    """The best of `repeat` passes over the images, ms per image."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            run(images[i:i + batch_size])
        times.append((time.perf_counter() - start) / len(images) * 1000.0)
    return min(times)


def torch_runner(release, state):
    """PyTorch's forward of the release's own network on `state`, or (None, reason)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed (pip install torch==2.13.0, the CPU build)"
    if release is None:
        return None, "no --release (a checkout of sicxu/Deep3DFaceRecon_pytorch)"
    from tests.record_pytorch_reference import release_network

    network = release_network(release)("resnet50", use_last_fc=False)
    network.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()})
    network.eval()

    def run(batch):
        rgb = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2)) / 255.0
        with torch.no_grad():
            return network(torch.from_numpy(rgb.astype(np.float32))).numpy()
    return run, f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS,
                        help="folder written by bench/make_assets.py")
    parser.add_argument("--pth", type=pathlib.Path, default=None,
                        help="the PyTorch release's epoch_20.pth (default: random weights)")
    parser.add_argument("--release", type=pathlib.Path, default=None,
                        help="a checkout of sicxu/Deep3DFaceRecon_pytorch, for PyTorch's own "
                             "forward pass")
    parser.add_argument("--images", type=int, default=32, help="crops per pass (32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per network (3)")
    args = parser.parse_args(argv)
    release_pb = args.assets / "network" / "FaceReconModel.pb"
    if not release_pb.exists():
        parser.error(f"{release_pb} not found: run `python bench/make_assets.py` first")

    import tensorflow as tf

    import load_data
    from networks.files import load_network
    from networks.reconstructor import Reconstructor
    from tests.synthetic_pytorch import random_state_dict, write_pth

    images = crops(args.images)
    front = args.assets / "BFM" / "BFM_model_front.mat"
    load_data.transferBFM09(args.assets / "BFM")
    with tempfile.TemporaryDirectory() as work:
        if args.pth is None:
            state = random_state_dict(0)
            pth = write_pth(pathlib.Path(work) / "epoch_20.pth", {"net_recon": state})
        else:
            from networks import checkpoint
            pth = args.pth
            state = checkpoint.arrays(pth, checkpoint.state_dict(pth))
        networks = {
            "pytorch release, here": Reconstructor(load_network(pth), front, render=False),
            "2019 release, here": Reconstructor(load_data.load_graph(release_pb), front,
                                                render=False),
        }
        runners = {name: r.network_only for name, r in networks.items()}
        torch_run, torch_note = torch_runner(args.release, state)
        if torch_run is not None:
            runners["pytorch release, PyTorch"] = torch_run
        report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                  "tensorflow": tf.__version__, "pytorch": torch_note, "images": args.images}
        for batch_size in args.batch_sizes:
            for run in runners.values():                        # warm up (first runs compile)
                run(images[:batch_size])
            times = {name: [] for name in runners}
            for _ in range(args.repeat):                         # in turn, so that a slow
                for name, run in runners.items():               # spell hits every network
                    times[name].append(best_ms(run, images, batch_size, 1))
            report[f"batch_{batch_size}"] = {name: round(min(t), 2) for name, t in times.items()}
        if torch_run is not None:
            here = runners["pytorch release, here"](images[:4])
            torch_out = torch_run(images[:4])
            report["max_difference_over_scale"] = float(
                np.abs(here - torch_out).max() / np.abs(torch_out).max())
        for reconstructor in networks.values():
            reconstructor.close()
    print(f"machine: {report['machine']}, TensorFlow {report['tensorflow']}; "
          f"{report['pytorch']}; {args.images} crops")
    names = list(runners)
    print(f"{'ms per image':<30}" + "".join(f"{'batch ' + str(b):>12}" for b in args.batch_sizes))
    for name in names:
        print(f"{name:<30}" + "".join(f"{report[f'batch_{b}'][name]:>12.2f}"
                                       for b in args.batch_sizes))
    if "pytorch release, PyTorch" in names:
        reference = "pytorch release, PyTorch"
        for name in names[:2]:
            ratios = [report[f"batch_{b}"][name] / report[f"batch_{b}"][reference]
                      for b in args.batch_sizes]
            print(f"{name + ' / PyTorch':<30}" + "".join(f"{r:>12.2f}" for r in ratios))
        print(f"largest difference from PyTorch's coefficients, over their scale: "
              f"{report['max_difference_over_scale']:.2e}")
    else:
        print(f"PyTorch column skipped: {torch_note}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
