"""Tests of the training loop: it learns, resumes exactly, stops on NaN, logs, exports.

Data: the repository's two public-domain photos prepared with synthetic 68
landmarks, a small synthetic face model, random initial weights.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.synthetic_network import write_tiny_identity_net
from tests.synthetic_training import prepare_training_data


@pytest.fixture(scope="module")
def setup(tmp_path_factory, converted_bfm):
    root = tmp_path_factory.mktemp("train")
    data = prepare_training_data(root, converted_bfm)
    return {"root": root, "bfm": converted_bfm, "data": data}


def config(setup, name, steps, **options):
    from training.loop import TrainConfig

    values = dict(data=[str(setup["data"])], log_dir=str(setup["root"] / name),
                  bfm_dir=str(setup["bfm"]), steps=steps, batch_size=2, summary_every=1,
                  image_every=4, save_every=100)
    values.update(options)
    return TrainConfig(**values)


def rnet_weights(log_dir):
    import tensorflow as tf

    from training.rnet import build_rnet

    rnet = build_rnet()
    tf.train.Checkpoint(rnet=rnet).restore(
        tf.train.latest_checkpoint(str(pathlib.Path(log_dir) / "checkpoints"))).expect_partial()
    return [w.numpy() for w in rnet.weights]


@pytest.fixture(scope="module")
def straight(setup):
    from training.loop import train

    totals = []
    assert train(config(setup, "straight", 12), log=lambda line: None,
                 progress=lambda step, terms: totals.append(float(terms["total"]))) == 12
    return totals


def test_a_short_run_lowers_the_loss(straight):
    assert len(straight) == 12
    assert np.mean(straight[-3:]) < 0.8 * np.mean(straight[:3]), straight


def test_resume_continues_the_same_run(setup, straight):
    from training.loop import train

    lines = []
    train(config(setup, "resumed", 6), log=lines.append)
    train(config(setup, "resumed", 12, resume=True), log=lines.append)
    assert any("Resumed from" in line and "at step 6" in line for line in lines), lines
    ours, reference = rnet_weights(setup["root"] / "resumed"), \
        rnet_weights(setup["root"] / "straight")
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_existing_run_needs_resume(setup, straight):
    from training.loop import TrainingError, train

    with pytest.raises(TrainingError, match="--resume"):
        train(config(setup, "straight", 14), log=lambda line: None)


def test_ctrl_c_saves_and_stops(setup):
    from training.loop import train

    def interrupt(step, terms):
        if step == 3:
            raise KeyboardInterrupt

    assert train(config(setup, "interrupted", 10), log=lambda line: None,
                 progress=interrupt) == 3
    checkpoint = setup["root"] / "interrupted" / "checkpoints" / "ckpt-3"
    assert checkpoint.with_suffix(".index").exists()
    # The saved step agrees with the number of updates in the saved optimizer.
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint))
    names = reader.get_variable_to_shape_map()
    iterations = next(n for n in names if n.startswith("optimizer/") and "iteration" in n)
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert reader.get_tensor(iterations) == 3


def test_nan_stops_with_step_term_and_files(setup, tmp_path):
    from training.loop import TrainingError, train

    bad = tmp_path / "data"
    shutil.copytree(setup["data"], bad)
    for path in (bad / "lm_bin").glob("*.bin"):
        values = np.fromfile(path, np.float64)
        values[5] = np.nan
        values.tofile(path)
    with pytest.raises(TrainingError) as error:
        train(config(setup, "nan", 3, data=[str(bad)], log_dir=str(tmp_path / "run")),
              log=lambda line: None)
    message = str(error.value)
    assert "\n" not in message and message.startswith("step 0: loss term 'landmark'")
    assert "astronaut" in message and "none (no checkpoint saved yet)" in message
    assert not (tmp_path / "run" / "checkpoints").exists() or \
        not list((tmp_path / "run" / "checkpoints").glob("*.index"))


def test_identity_term_and_tensorboard_logs(setup, tmp_path):
    import tensorflow as tf

    from training.loop import train

    id_net = write_tiny_identity_net(tmp_path / "facenet.pb", size=160)
    seen = []
    train(config(setup, "identity", 4, id_net=str(id_net), log_dir=str(tmp_path / "run")),
          log=lambda line: None, progress=lambda step, terms: seen.append(terms))
    assert all(np.isfinite(float(terms["identity"])) for terms in seen)
    tags = set()
    for events in (tmp_path / "run" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    for tag in ("loss/photo", "loss/landmark", "loss/identity", "loss/regularization",
                "loss/reflectance", "loss/gamma", "loss/total", "learning_rate",
                "steps_per_second", "photo", "render_over_photo", "landmarks"):
        assert tag in tags, (tag, tags)


def test_export_runs_in_demo(setup, straight, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    model = tmp_path / "MyModel.pb"
    export = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "export",
                             "--log-dir", str(setup["root"] / "straight"), "--output",
                             str(model)], env=env, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-2000:]
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in (REPO_ROOT / "input").glob("astronaut.*"):
        shutil.copy(path, photos / path.name)
    demo = subprocess.run([sys.executable, str(REPO_ROOT / "demo.py"), "--input", str(photos),
                           "--output", str(tmp_path / "out"), "--bfm-dir", str(setup["bfm"]),
                           "--model", str(model)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "out" / "astronaut.mat").is_file()


def test_command_line_errors(setup, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    def run(*args):
        return subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *map(str, args)],
                              env=env, capture_output=True, text=True, timeout=600)

    assert run("--data", setup["data"]).returncode == 2                  # no --log-dir
    assert run("--data", setup["data"], "--log-dir", tmp_path, "--init", "imagenet"
               ).returncode == 2
    missing = run("--data", tmp_path / "nothing", "--log-dir", tmp_path / "r",
                  "--bfm-dir", setup["bfm"])
    assert missing.returncode == 2 and "no prepared samples" in missing.stderr
    # A frozen graph that is not the release's architecture: one line, exit 2.
    from tests.synthetic_network import write_tiny_rnet

    other = write_tiny_rnet(tmp_path / "other.pb")
    wrong = run("--data", setup["data"], "--log-dir", tmp_path / "w", "--bfm-dir", setup["bfm"],
                "--init", "release", other, "--steps", 1)
    lines = [line for line in wrong.stderr.splitlines() if "other.pb" in line]
    assert wrong.returncode == 2 and len(lines) == 1, wrong.stderr[-2000:]
    assert "no tensor named resnet_v1_50/" in lines[0] and "Traceback" not in wrong.stderr
    check = run("--check", "--bfm-dir", tmp_path)
    assert check.returncode == 2 and "landmark68_detector.pb" in check.stdout
    assert "get it from" in check.stdout
