"""Records what the PyTorch release's own R-Net computes, for tests that run without PyTorch.

    pip install torch==2.13.0     # the CPU build; a test-only dependency, never a runtime one
    git clone https://github.com/sicxu/Deep3DFaceRecon_pytorch
    python tests/record_pytorch_reference.py --release Deep3DFaceRecon_pytorch

It imports the release's `models/networks.py` (its `ReconNetWrapper`, which
builds torchvision's ResNet-50 and the seven heads; the face-recognition and
warping modules that file also imports are stubbed, the R-Net does not use
them), loads the weights of `tests.synthetic_pytorch.random_state_dict(SEED)`
into it, runs it in eval mode on `reference_crops()` (the repository's
input/ photos aligned as the demo aligns them, and two noise crops), with
the release's input convention (RGB / 255, NCHW), and writes
tests/data/pytorch_reference.npz: the coefficients [4, 257], the seed, and
SHA-256 digests of the weights and the crops, so that a test can tell when
it no longer rebuilds the same inputs.
"""
import argparse
import hashlib
import importlib.util
import pathlib
import sys
import types

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

SEED = 20
REFERENCE = REPO_ROOT / "tests" / "data" / "pytorch_reference.npz"


def reference_crops():
    """[4, 224, 224, 3] float32 BGR 0-255: input/'s two photos aligned, and two noise crops."""
    import load_data
    from fileio.images import read_image
    from landmarks.files import read_landmarks
    from preprocess_img import Preprocess

    lm3d = load_data.load_lm3d()
    crops = []
    for name in ("astronaut.png", "astronaut_mirrored.jpg"):
        photo = REPO_ROOT / "input" / name
        image = read_image(photo)
        crop, _, _ = Preprocess(image, read_landmarks(photo.with_suffix(".txt")), lm3d)
        crops.append(np.asarray(crop, np.float32)[0])
    rng = np.random.default_rng(SEED)
    crops += list(rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32))
    return np.stack(crops)


def digest(arrays):
    """SHA-256 of arrays' bytes, in order."""
    value = hashlib.sha256()
    for array in arrays:
        value.update(np.ascontiguousarray(array).tobytes())
    return value.hexdigest()


def weights_digest(state):
    return digest(state[key] for key in sorted(state))


def release_network(release):
    """The release's ReconNetWrapper class, from its checkout's models/networks.py."""
    models = pathlib.Path(release) / "models"
    package = types.ModuleType("release_models")
    package.__path__ = [str(models)]
    stubs = {"release_models": package,
             "release_models.arcface_torch": types.ModuleType("release_models.arcface_torch"),
             "release_models.arcface_torch.backbones":
                 types.ModuleType("release_models.arcface_torch.backbones"),
             "kornia": types.ModuleType("kornia"),
             "kornia.geometry": types.ModuleType("kornia.geometry")}
    stubs["release_models.arcface_torch"].__path__ = []
    stubs["release_models.arcface_torch.backbones"].get_model = None
    stubs["kornia.geometry"].warp_affine = None
    sys.modules.update(stubs)
    spec = importlib.util.spec_from_file_location("release_models.networks",
                                                  models / "networks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ReconNetWrapper


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, type=pathlib.Path,
                        help="a checkout of sicxu/Deep3DFaceRecon_pytorch")
    args = parser.parse_args(argv)
    import torch

    from tests.synthetic_pytorch import random_state_dict

    state = random_state_dict(SEED)
    network = release_network(args.release)("resnet50", use_last_fc=False)
    network.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()})
    network.eval()
    crops = reference_crops()
    rgb = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2)) / 255.0
    with torch.no_grad():
        coeff = network(torch.from_numpy(rgb.astype(np.float32))).numpy()
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(REFERENCE, coeff=coeff, seed=SEED, weights_sha256=weights_digest(state),
             crops_sha256=digest([crops]), torch_version=torch.__version__)
    print(f"{REFERENCE}: coefficients {coeff.shape}, scale {np.abs(coeff).max():.3f}, "
          f"PyTorch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
