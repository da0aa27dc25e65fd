"""`train.py --init pytorch PTH`: fine-tuning the PyTorch release's R-Net, and exporting it.

References: `networks.pytorch_rnet` on the same weights (itself checked
against PyTorch in tests/test_pytorch_model.py); the exported graph run by
`Reconstructor`, as demo.py runs it.
"""
import pathlib

import numpy as np
import pytest

from tests.synthetic_pytorch import random_state_dict, write_pth


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_pth(tmp_path_factory.mktemp("init") / "epoch_20.pth",
                     {"net_recon": random_state_dict(20), "epoch": 20})


def test_the_keras_network_with_the_pth_computes_what_inference_computes(weights):
    import tensorflow as tf

    from networks.pytorch_rnet import PyTorchRNet
    from training.torchvision_rnet import build_torchvision_rnet, load_pytorch_weights

    model = build_torchvision_rnet()
    load_pytorch_weights(model, weights)
    crops = np.random.default_rng(3).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    ours = model(crops, training=False).numpy()
    reference = PyTorchRNet.from_file(weights)(tf.constant(crops)).numpy()
    assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()


def test_a_run_from_the_pth_trains_resumes_and_exports_what_demo_runs(weights, tmp_path,
                                                                      converted_bfm):
    import shutil

    import load_data
    from landmarks.sources import PhotoLandmarks
    from networks.reconstructor import Reconstructor
    from tests.conftest import REPO_ROOT
    from training.loop import TORCHVISION, TrainConfig, export, run_layout, train
    from training.prepare import prepare_folder
    from training.torchvision_rnet import build_torchvision_rnet

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("astronaut.png", "astronaut_mirrored.jpg"):
        shutil.copy(REPO_ROOT / "input" / name, photos / name)
        lm5 = np.loadtxt(REPO_ROOT / "input" / (pathlib.Path(name).stem + ".txt"))
        np.savetxt(photos / (pathlib.Path(name).stem + ".txt"), lm5)
        np.savetxt(photos / (pathlib.Path(name).stem + "_lm68.txt"),
                   lm5.mean(0) + rng.uniform(-50, 50, (68, 2)))
    data = tmp_path / "data"
    done, _, failed = prepare_folder(sorted(photos.glob("*.[jp][pn]g")), data,
                                     load_data.load_lm3d(converted_bfm),
                                     PhotoLandmarks("file", None))
    assert done == 2 and not failed
    run = tmp_path / "run"

    def config(steps, **options):
        return TrainConfig(data=[str(data)], log_dir=str(run), bfm_dir=str(converted_bfm),
                           init=("pytorch", str(weights)), steps=steps, batch_size=2,
                           summary_every=1, image_every=10, save_every=100, **options)

    totals, lines = [], []
    train(config(2), log=lines.append,
          progress=lambda step, terms: totals.append(float(terms["total"])))
    assert run_layout(run) == TORCHVISION and len(totals) == 2 and np.all(np.isfinite(totals))
    train(config(3, resume=True), log=lines.append)
    assert any("Resumed from" in line and "at step 2" in line for line in lines), lines
    exported = export(run, tmp_path / "tuned.pb", log=lines.append)

    import tensorflow as tf

    model = build_torchvision_rnet()
    tf.train.Checkpoint(rnet=model).restore(
        tf.train.latest_checkpoint(str(run / "checkpoints"))).expect_partial()
    crops = np.random.default_rng(4).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    expected = model(crops, training=False).numpy()
    reconstructor = Reconstructor(load_data.load_graph(exported),
                                  converted_bfm / "BFM_model_front.mat", render=False)
    try:
        got = reconstructor.network_only(crops)
    finally:
        reconstructor.close()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # Training moved the weights away from the file's.
    from networks.pytorch_rnet import PyTorchRNet

    start = PyTorchRNet.from_file(weights)(tf.constant(crops)).numpy()
    assert np.abs(got - start).max() > 1e-6
