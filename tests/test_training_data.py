"""Tests of `train.py prepare` and of the training data order (training/data.py)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT

DETECTOR_OFFSET = 37.0


def write_fake_lm68_detector(path):
    """A frozen graph with the detector's interface: landmark = (row, col) pairs.

    Point k is at row 40 + 2k, column DETECTOR_OFFSET + mean(input)/255 (so
    the output depends on the image).
    """
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=False)[:, None] / 255.0
        rows = tf.constant(40.0 + 2.0 * np.arange(68), tf.float32)[None] + 0.0 * mean
        cols = DETECTOR_OFFSET + mean + 0.0 * rows
        tf.reshape(tf.stack([rows, cols], axis=2), [-1, 136], name="landmark")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def run_train(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, converted_bfm):
    root = tmp_path_factory.mktemp("prepare")
    bfm = converted_bfm
    folder = root / "photos"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "input" / "astronaut.png", folder / "annotated.png")
    lm5 = np.loadtxt(REPO_ROOT / "input" / "astronaut.txt")
    np.savetxt(folder / "annotated.txt", lm5)
    rng = np.random.default_rng(0)
    lm68 = lm5.mean(0) + rng.uniform(-60, 60, (68, 2))
    np.savetxt(folder / "annotated_lm68.txt", lm68)
    shutil.copy(REPO_ROOT / "input" / "astronaut.png", folder / "detected.png")
    np.savetxt(folder / "detected.txt", lm5)
    (folder / "broken.png").write_bytes(b"not a png")
    detector = write_fake_lm68_detector(root / "lm68.pb")
    output = root / "data"
    result = run_train("prepare", "--input", folder, "--output", output, "--bfm-dir", bfm,
                       "--lm68-detector", detector, cwd=root)
    return {"root": root, "bfm": bfm, "folder": folder, "output": output, "lm5": lm5,
            "lm68": lm68, "detector": detector, "result": result}


def test_prepare_writes_the_release_layout(photos):
    result, output = photos["result"], photos["output"]
    assert result.returncode == 1, result.stderr[-2000:]           # broken.png failed
    assert "2 prepared, 0 skipped, 1 failed" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "broken.png" in line]
    assert len(lines) == 1
    for name in ("annotated", "detected"):
        assert (output / f"{name}.png").is_file()
        crop = np.asarray(Image.open(output / f"{name}.png"))
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
        mask = np.asarray(Image.open(output / "mask" / f"{name}.png"))
        assert mask.shape == (224, 224, 3) and np.all(mask[..., 0] == mask[..., 2])
        up_text = np.loadtxt(output / "lm" / f"{name}.txt")
        up_bin = np.fromfile(output / "lm_bin" / f"{name}.bin", np.float64).reshape(68, 2)
        np.testing.assert_array_equal(up_text, up_bin)


def test_annotated_landmarks_are_mapped_into_the_crop(photos):
    import load_data
    from preprocess_img import Preprocess, map_to_original

    image = Image.open(photos["folder"] / "annotated.png").convert("RGB")
    _, _, trans_params = Preprocess(image, photos["lm5"], load_data.load_lm3d(photos["bfm"]))
    up = np.loadtxt(photos["output"] / "lm" / "annotated.txt")
    crop_points = np.column_stack([up[:, 0], 223 - up[:, 1]])       # The file is y up.
    np.testing.assert_allclose(map_to_original(crop_points, trans_params), photos["lm68"],
                               atol=1e-6)


def test_detected_landmarks_follow_the_release_convention(photos):
    crop = np.asarray(Image.open(photos["output"] / "detected.png"), np.float64)
    up = np.loadtxt(photos["output"] / "lm" / "detected.txt")
    # (row, col) from the detector -> x = col, y_up = 223 - row, as the release.
    np.testing.assert_allclose(up[:, 1], 223 - (40.0 + 2.0 * np.arange(68)), atol=1e-5)
    np.testing.assert_allclose(up[:, 0], DETECTOR_OFFSET + crop.mean() / 255.0, atol=2e-3)


def test_skin_mask_is_the_classifier_on_the_crop(photos):
    from preparation.skin import skin_mask_png

    crop_rgb = np.asarray(Image.open(photos["output"] / "annotated.png"))
    mask = np.asarray(Image.open(photos["output"] / "mask" / "annotated.png"))
    np.testing.assert_array_equal(mask, skin_mask_png(crop_rgb[:, :, ::-1]))


def test_prepare_is_resumable(photos):
    stamp = (photos["output"] / "annotated.png").stat().st_mtime_ns
    result = run_train("prepare", "--input", photos["folder"], "--output", photos["output"],
                       "--bfm-dir", photos["bfm"], "--lm68-detector", photos["detector"],
                       cwd=photos["root"])
    assert "0 prepared, 2 skipped, 1 failed" in result.stdout
    assert (photos["output"] / "annotated.png").stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def without_detector(tmp_path_factory, converted_bfm):
    """train.py prepare with neither NAME_lm68.txt nor the release's detector."""
    import train

    if train.LM68_PATH.exists():
        pytest.skip(f"{train.LM68_PATH} exists: prepare would use it")
    pytest.importorskip("dlib")
    root = tmp_path_factory.mktemp("prepare_dlib")
    folder = root / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "astronaut.txt", "astronaut_mirrored.jpg",
                 "astronaut_mirrored.txt"):
        shutil.copy(REPO_ROOT / "input" / name, folder / name)
    result = run_train("prepare", "--input", folder, "--output", root / "data", "--bfm-dir",
                       converted_bfm, cwd=root)
    return {"root": root, "folder": folder, "output": root / "data", "bfm": converted_bfm,
            "result": result}


def test_without_the_release_detector_dlibs_predictor_gives_the_68_points(without_detector):
    import load_data
    from facemodel.keypoints import five_points
    from landmarks.dlib68 import Landmark68Predictor
    from preprocess_img import Preprocess, map_to_original

    result = without_detector["result"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 prepared, 0 skipped, 0 failed" in result.stdout
    predictor = Landmark68Predictor()
    for name in ("astronaut", "astronaut_mirrored"):
        photo = next(without_detector["folder"].glob(name + ".[jp]*"))
        image = Image.open(photo).convert("RGB")
        lm5 = np.loadtxt(photo.with_suffix(".txt"))
        _, _, trans_params = Preprocess(image, lm5, load_data.load_lm3d(without_detector["bfm"]))
        up = np.loadtxt(without_detector["output"] / "lm" / f"{name}.txt")
        in_photo = map_to_original(np.column_stack([up[:, 0], 223 - up[:, 1]]), trans_params)
        # The predictor on the photo itself, from the box of its 5 points.
        expected, _ = predictor.from_points(np.asarray(image), lm5)
        np.testing.assert_allclose(in_photo, expected, atol=1e-3)
        eye = np.linalg.norm(lm5[1] - lm5[0])
        assert np.linalg.norm(five_points(in_photo) - lm5, axis=1).max() < 0.15 * eye


def test_photos_that_get_no_68_points_each_get_a_line(without_detector, monkeypatch, capsys):
    import train
    from landmarks import dlib68

    def unavailable(self):
        raise dlib68.PredictorUnavailable("dlib is not installed (pip install ...)")

    monkeypatch.setattr(dlib68.Landmark68Predictor, "load", unavailable)
    folder = without_detector["folder"]
    np.savetxt(folder / "astronaut_lm68.txt", np.loadtxt(folder / "astronaut.txt").mean(0)
               + np.random.default_rng(0).uniform(-50, 50, (68, 2)))
    try:
        status = train.main(["prepare", "--input", str(folder), "--output",
                             str(without_detector["root"] / "partial"), "--bfm-dir",
                             str(without_detector["bfm"])])
    finally:
        (folder / "astronaut_lm68.txt").unlink()
    captured = capsys.readouterr()
    assert status == 1 and "1 prepared, 0 skipped, 1 failed" in captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines[0] == "dlib is not installed (pip install ...)"
    assert len(lines) == 2 and "astronaut_mirrored.jpg: no astronaut_mirrored_lm68.txt" in lines[1]


def test_read_sample_round_trip(photos):
    from training.data import read_sample

    image, lm68, mask = read_sample(photos["output"], "annotated")
    crop_rgb = np.asarray(Image.open(photos["output"] / "annotated.png"), np.float32)
    np.testing.assert_array_equal(image, crop_rgb[:, :, ::-1])       # BGR, 0-255
    up = np.loadtxt(photos["output"] / "lm" / "annotated.txt")
    np.testing.assert_allclose(lm68, np.column_stack([up[:, 0], 223 - up[:, 1]]), atol=1e-4)
    assert mask.shape == (224, 224) and mask.max() <= 255


def test_data_order_is_a_function_of_seed_and_step(tmp_path):
    from training.data import TrainingSet

    for i in range(7):
        (tmp_path / f"s{i}.png").write_bytes(b"")
    data = TrainingSet([tmp_path], seed=5)
    stream = [data.indices(step, 3) for step in range(10)]
    flat = np.concatenate(stream)
    for epoch in range(4):                    # Each epoch visits every sample once.
        chunk = flat[epoch * 7:(epoch + 1) * 7]
        assert sorted(chunk) == list(range(7))
    fresh = TrainingSet([tmp_path], seed=5)
    assert [fresh.indices(step, 3) for step in range(6, 10)] == stream[6:]   # Resume.
    other = TrainingSet([tmp_path], seed=6)
    assert [other.indices(step, 3) for step in range(3)] != stream[:3]
