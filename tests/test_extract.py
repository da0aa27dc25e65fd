"""End-to-end tests of extract.py on synthetic videos, with synthetic assets.

The network is the tiny synthetic R-Net and the face model a small synthetic
BFM; the videos are the repository's public-domain photo moving along a
known path (tests/synthetic_video.py). Independent references: demo.py on the
same decoded frames, the local engine for the Ray engine, the file listing
for shards.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from tests.conftest import REPO_ROOT, our_lines
from tests.synthetic_assets import write_bfm09
from tests.synthetic_network import write_tiny_rnet
from tests.synthetic_video import (
    DEFAULT_LANDMARKS,
    DEFAULT_PHOTO,
    make_moving_face_video,
    make_video,
    read_video,
)

pytest.importorskip("av")

KEYS = {"coeff", "transform_params", "lm68", "lm68_detected", "lm5", "frame_index", "time",
        "fps", "valid", "options"}


def run_extract(*args, cwd, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(REPO_ROOT / "extract.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)



@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    bfm, network, videos = root / "BFM", root / "network", root / "videos"
    for folder in (bfm, network, videos / "a", videos / "b" / "c", videos / "bad"):
        folder.mkdir(parents=True)
    write_bfm09(bfm, seed=3)
    write_tiny_rnet(network / "FaceReconModel.pb", seed=1)
    talk = make_moving_face_video(videos / "a" / "talk.mp4", n_frames=20, covered=(8, 9),
                                  markers=False)
    make_moving_face_video(videos / "b" / "c" / "other.avi", n_frames=12, markers=False)
    shutil.copy(DEFAULT_PHOTO, videos / "photo.png")
    shutil.copy(DEFAULT_LANDMARKS, videos / "photo.txt")
    (videos / "bad" / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\xff" * 500)
    make_video(videos / "bad" / "blank.mkv", [np.full((240, 320, 3), 90, np.uint8)] * 6)
    make_video(videos / "bad" / "three.mkv", [np.full((240, 320, 3), 90, np.uint8)] * 3)
    _cut_before_first_frame(videos / "bad" / "three.mkv", videos / "bad" / "empty.mkv")
    return {"root": root, "bfm": bfm, "model": network / "FaceReconModel.pb",
            "videos": videos, "talk": talk,
            "good": ["a/talk", "b/c/other", "photo"],
            "bad": {"bad/garbage.mp4": "cannot be read as a video",
                    "bad/blank.mkv": "no face found in any of its 6 frames",
                    "bad/empty.mkv": "no frames"}}


def _cut_before_first_frame(source, target):
    """A Matroska file whose header declares a video stream but holds no frame."""
    data = source.read_bytes()
    cluster = data.find(bytes.fromhex("1F43B675"))       # The first Cluster element.
    assert cluster > 0
    target.write_bytes(data[:cluster + 4])
    source.unlink()


def assets(layout):
    return ["--bfm-dir", layout["bfm"], "--model", layout["model"]]


@pytest.fixture(scope="module")
def first_run(layout):
    output = layout["root"] / "out"
    result = run_extract("--input", layout["videos"], "--output", output, *assets(layout),
                         "--batch-size", 4, cwd=layout["root"])
    return {"result": result, "output": output}


def load(output, name, fmt="mat"):
    path = output / f"{name}.{fmt}"
    if fmt == "npz":
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    return {k: v for k, v in loadmat(path).items() if not k.startswith("__")}


def test_every_good_input_gets_its_file_and_every_bad_one_a_line(layout, first_run):
    result, output = first_run["result"], first_run["output"]
    assert result.returncode == 1, result.stderr[-3000:]
    for name in layout["good"]:
        assert (output / f"{name}.mat").is_file(), name
    lines = our_lines(result.stderr)
    for name, reason in layout["bad"].items():
        matching = [line for line in lines if name in line]
        assert len(matching) == 1 and reason in matching[0], (name, lines)
    assert len(lines) == len(layout["bad"]), lines       # Nothing else on stderr.
    assert "3 done, 0 skipped, 3 failed" in result.stdout
    assert not list((output / "bad").glob("*.mat")) if (output / "bad").exists() else True


def test_video_keys_shapes_and_alignment(layout, first_run):
    data = load(first_run["output"], "a/talk")
    assert KEYS <= set(data)
    n = 20
    assert data["coeff"].shape == (n, 257) and data["coeff"].dtype == np.float32
    assert data["transform_params"].shape == (n, 5)
    assert data["lm68"].shape == (n, 68, 2) and data["lm5"].shape == (n, 5, 2)
    assert data["lm68_detected"].shape == (n, 68, 2)
    np.testing.assert_array_equal(data["frame_index"].ravel(), np.arange(n))
    assert data["time"].shape == (n, 1) and data["time"].dtype == np.float64
    np.testing.assert_allclose(data["time"].ravel(), np.arange(n) / 25.0)
    assert data["fps"].item() == 25.0
    valid = data["valid"].ravel().astype(bool)
    assert not valid[8] and not valid[9]                 # The covered frames.
    assert valid.sum() >= n - 4
    # Invalid frames carry the last good alignment and coefficients.
    np.testing.assert_array_equal(data["transform_params"][8], data["transform_params"][7])
    np.testing.assert_array_equal(data["coeff"][9], data["coeff"][7])
    # transform_params are the release's [w0, h0, 102/s, t0, t1] of the frame.
    assert np.all(data["transform_params"][:, :2] == [320, 240])
    # Every frame with a face is aligned on the true face, by the predictor's
    # points (test_extract_tracking.py measures how well), whatever the tiny
    # network reconstructs; lm5 are the predictor's eye centres, nose tip and
    # mouth corners.
    from facemodel.keypoints import five_points

    truth = layout["talk"]["points"]
    eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
    error = np.linalg.norm(data["lm5"] - truth, axis=2).max(axis=1) / eye
    assert error[valid].max() < 0.15, np.round(error, 3)
    np.testing.assert_allclose(data["lm5"][valid], five_points(data["lm68_detected"][valid]),
                               atol=1e-3)


def test_photo_gives_the_same_keys_with_one_frame(layout, first_run):
    data = load(first_run["output"], "photo")
    assert KEYS <= set(data) and data["coeff"].shape == (1, 257)
    # A photo's landmark file aligns it, as in demo.py.
    np.testing.assert_allclose(data["lm5"][0], np.loadtxt(DEFAULT_LANDMARKS), atol=1e-3)
    assert data["time"].item() == 0.0


def test_rerun_skips_finished_videos(layout, first_run):
    output = first_run["output"]
    stamps = {name: (output / f"{name}.mat").stat().st_mtime_ns for name in layout["good"]}
    result = run_extract("--input", layout["videos"], "--output", output, *assets(layout),
                         cwd=layout["root"])
    assert "0 done, 3 skipped, 3 failed" in result.stdout, result.stdout
    for name, stamp in stamps.items():
        assert (output / f"{name}.mat").stat().st_mtime_ns == stamp


def test_npz_detect_mode_and_options(layout, first_run, tmp_path):
    """--format npz holds the same arrays; --landmarks detect equals demo.py frame by frame."""
    only = tmp_path / "in"
    only.mkdir()
    shutil.copy(layout["videos"] / "a" / "talk.mp4", only / "talk.mp4")
    result = run_extract("--input", only, "--output", tmp_path / "npz", *assets(layout),
                         "--format", "npz", "--landmarks", "detect", "--identity", "video",
                         "--batch-size", 3, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = load(tmp_path / "npz", "talk", "npz")
    assert KEYS | {"video_id_coeff", "video_tex_coeff"} <= set(data)
    assert data["valid"].dtype == bool and data["frame_index"].shape == (20,)
    assert '"landmarks": "detect"' in str(data["options"])
    valid = data["valid"]
    np.testing.assert_allclose(data["video_id_coeff"], data["coeff"][valid, :80].mean(0),
                               rtol=1e-5, atol=1e-6)
    # demo.py on the same decoded frames, saved losslessly, with MTCNN on each.
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for i, frame in enumerate(read_video(only / "talk.mp4")):
        Image.fromarray(frame).save(frames_dir / f"f{i:03d}.png")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    demo = subprocess.run([sys.executable, str(REPO_ROOT / "demo.py"), "--input", frames_dir,
                           "--output", tmp_path / "demo", *map(str, assets(layout)),
                           "--landmarks", "detect"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 1, demo.stderr[-2000:]          # The two covered frames fail.
    compared = 0
    for i in np.flatnonzero(valid):
        mat = loadmat(tmp_path / "demo" / f"f{i:03d}.mat")
        np.testing.assert_allclose(data["coeff"][i], mat["coeff"][0], rtol=1e-4, atol=1e-4)
        compared += 1
    assert compared >= 16
    for i in np.flatnonzero(~valid):
        assert not (tmp_path / "demo" / f"f{i:03d}.mat").exists()


def test_every_and_smooth_and_preview(layout, tmp_path):
    only = tmp_path / "in"
    only.mkdir()
    shutil.copy(layout["videos"] / "b" / "c" / "other.avi", only / "other.avi")
    result = run_extract("--input", only, "--output", tmp_path / "out", *assets(layout),
                         "--every", 3, "--smooth", 3, "--preview", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = load(tmp_path / "out", "other")
    np.testing.assert_array_equal(data["frame_index"].ravel(), [0, 3, 6, 9])
    preview = list(read_video(tmp_path / "out" / "other_preview.mp4"))
    assert len(preview) == 4 and preview[0].shape == (224, 672, 3)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_shards_cover_every_video_once(layout, tmp_path):
    output = tmp_path / "out"
    written = []
    for shard in ("0/2", "1/2"):
        result = run_extract("--input", layout["videos"], "--output", output, *assets(layout),
                             "--shard", shard, cwd=tmp_path)
        assert result.returncode in (0, 1), result.stderr[-3000:]
        done = int(result.stdout.split(" done")[0].split()[-1])
        written.append(done)
    assert sum(written) == len(layout["good"])
    for name in layout["good"]:
        assert (output / f"{name}.mat").is_file()


def test_killed_job_resumes_without_redoing_finished_videos(layout, tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    for i in range(4):
        shutil.copy(layout["videos"] / "a" / "talk.mp4", videos / f"v{i}.mp4")
    output = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "extract.py"), "--input",
                                str(videos), "--output", str(output),
                                *map(str, assets(layout))], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(output.glob("*.mat")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in output.glob("*.mat")}
    assert 1 <= len(finished) < 4
    for path in output.glob("*.mat"):
        loadmat(path)                                    # Complete files only.
    result = run_extract("--input", videos, "--output", output, *assets(layout), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{4 - len(finished)} done, {len(finished)} skipped, 0 failed" in result.stdout
    for name, stamp in finished.items():
        assert (output / name).stat().st_mtime_ns == stamp


def test_ray_engine_gives_the_local_arrays(layout, first_run, tmp_path):
    pytest.importorskip("ray")
    output = tmp_path / "ray"
    result = run_extract("--input", layout["videos"], "--output", output, *assets(layout),
                         "--batch-size", 4, "--engine", "ray", "--workers", 2, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "3 done, 0 skipped, 3 failed" in result.stdout
    for name in layout["good"]:
        ours, local = load(output, name), load(first_run["output"], name)
        for key in ("coeff", "lm68", "lm5", "transform_params", "valid", "frame_index"):
            np.testing.assert_allclose(ours[key], local[key], rtol=1e-4, atol=1e-4,
                                       err_msg=f"{name} {key}")


@pytest.mark.parametrize("args, message", [
    (["--shard", "2/2"], "--shard"),
    (["--every", "0"], "--every"),
])
def test_usage_errors_exit_2(layout, tmp_path, args, message):
    result = run_extract("--input", layout["videos"], "--output", tmp_path / "o",
                         *assets(layout), *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr


def test_output_file_and_missing_assets_exit_2_with_one_line(layout, tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    result = run_extract("--input", layout["videos"], "--output", existing, *assets(layout),
                         cwd=tmp_path)
    assert result.returncode == 2
    assert our_lines(result.stderr) == [f"{existing}: exists and is not a folder"]
    missing = run_extract("--input", layout["videos"], "--output", tmp_path / "o",
                          "--bfm-dir", tmp_path, "--model", tmp_path / "none.pb", cwd=tmp_path)
    assert missing.returncode == 2 and "none.pb" in missing.stderr
    assert not pathlib.Path(tmp_path / "o").exists()
