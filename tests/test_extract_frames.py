"""Videos as phones and datasets store them: rotation, variable frame rates, damage.

The videos are written here with PyAV, with what the test needs known in
advance: frames stored turned by a known angle with a display matrix saying
how to turn them back, known presentation times, a known place where the
file breaks off.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import loadmat

from tests.conftest import REPO_ROOT, our_lines
from tests.synthetic_assets import write_bfm09
from tests.synthetic_network import write_tiny_rnet
from tests.synthetic_video import (
    DEFAULT_LANDMARKS,
    DEFAULT_PHOTO,
    default_path,
    iter_moving_face_frames,
    make_video,
)

av = pytest.importorskip("av")


def read_all(path, **options):
    from fileio.video import FrameReader

    with FrameReader(path, **options) as reader:
        frames = list(reader)
    return reader, frames


def textured(height, width, seed=0):
    """A grey frame whose every pixel differs from its neighbours (any turn shows).

    Grey, so that the encoder's colour subsampling leaves it as it is (to
    within the colour conversion's rounding)."""
    grey = np.random.default_rng(seed).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return np.repeat(grey, 3, axis=2)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_frames_come_turned_as_the_display_matrix_says(tmp_path, rotation):
    # np.rot90 turns counterclockwise, the direction of FFmpeg's display
    # rotation (av_display_rotation_get); a player shows rot90(stored, k).
    stored = [textured(48, 64, seed) for seed in range(3)]
    path = tmp_path / "turned.mkv"
    make_video(path, stored, codec="ffv1", rotation=rotation)
    reader, frames = read_all(path)
    assert reader.rotation == rotation and reader.damage is None
    for (_, _, frame), original in zip(frames, stored):
        expected = np.rot90(original, rotation // 90)
        assert frame.shape == expected.shape
        assert np.abs(frame.astype(int) - expected).max() <= 3


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames_assets")
    write_bfm09(root / "BFM", seed=3)
    return {"root": root, "bfm": root / "BFM",
            "model": write_tiny_rnet(root / "FaceReconModel.pb", seed=1)}


def run_extract(assets, input_dir, output_dir, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO_ROOT / "extract.py"), "--input",
                           str(input_dir), "--output", str(output_dir), "--bfm-dir",
                           str(assets["bfm"]), "--model", str(assets["model"]), *map(str, args)],
                          cwd=assets["root"], env=env, capture_output=True, text=True,
                          timeout=600)



def test_a_phones_portrait_video_is_aligned_as_displayed(assets, tmp_path):
    """The face of a portrait video stored sideways (display rotation -90, as
    phones write it) and one stored upside down (180) is found on every frame,
    with every frame-pixel output in displayed pixels."""
    size = (240, 320)                                   # displayed: portrait
    displayed, truth = [], []
    for frame, points, _ in iter_moving_face_frames(DEFAULT_PHOTO, DEFAULT_LANDMARKS, 12, size,
                                                    default_path(200, size), markers=False):
        displayed.append(frame)
        truth.append(points)
    truth = np.array(truth)
    videos = tmp_path / "in"
    videos.mkdir()
    for rotation in (-90, 180):
        # Stored so that turning by `rotation` shows the upright frames.
        make_video(videos / f"turned{rotation}.mp4",
                   [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in displayed],
                   rotation=rotation)
    result = run_extract(assets, videos, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
    for rotation in (-90, 180):
        data = loadmat(tmp_path / "out" / f"turned{rotation}.mat")
        assert data["valid"].all()
        assert np.all(data["transform_params"][:, :2] == size)
        error = np.linalg.norm(data["lm5"] - truth, axis=2).max(axis=1) / eye
        assert error.max() < 0.15, (rotation, np.round(error, 3))
        error = np.linalg.norm(data["lm68_detected"][:, [30, 48, 54]] - truth[:, 2:], axis=2)
        assert (error.max(axis=1) / eye).max() < 0.2
        assert json.loads(str(data["options"][0]))["rotation"] == rotation


def test_time_is_each_frames_presentation_time(tmp_path):
    times = [0.0, 0.04, 0.1, 0.13, 0.3, 0.31, 0.5, 0.9, 0.933, 1.5]    # irregular
    for suffix in (".mp4", ".mkv"):
        path = tmp_path / f"vfr{suffix}"
        make_video(path, [textured(48, 64, i) for i in range(len(times))], times=times)
        reader, frames = read_all(path)
        np.testing.assert_allclose([t for _, t, _ in frames], times, atol=1e-6)
        assert reader.damage is None
        reader, frames = read_all(path, every=3)
        np.testing.assert_allclose([t for _, t, _ in frames], times[::3], atol=1e-6)


def test_a_truncated_video_keeps_its_frames_and_says_where_it_broke_off(assets, tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    frames = [f for f, _, _ in iter_moving_face_frames(DEFAULT_PHOTO, DEFAULT_LANDMARKS, 50,
                                                       markers=False)]
    whole = tmp_path / "whole.mkv"
    make_video(whole, frames)
    data = whole.read_bytes()
    (videos / "cut.mkv").write_bytes(data[:len(data) // 2])
    make_video(videos / "fine.mkv", frames[:10])
    reader, decoded = read_all(videos / "cut.mkv")
    assert 10 < len(decoded) < 40
    assert f"after {len(decoded)} frames" in reader.damage and "2.00 s" in reader.damage

    result = run_extract(assets, videos, tmp_path / "out")
    assert result.returncode == 1, result.stderr[-3000:]
    lines = our_lines(result.stderr)
    assert len(lines) == 1 and "cut.mkv" in lines[0] and "damaged" in lines[0], lines
    assert f"after {len(decoded)} frames" in lines[0]
    assert "2 done (1 broke off" in result.stdout and "0 failed" in result.stdout
    cut = loadmat(tmp_path / "out" / "cut.mat")
    assert cut["coeff"].shape == (len(decoded), 257)
    assert "breaks off" in json.loads(str(cut["options"][0]))["damaged"]
    fine = loadmat(tmp_path / "out" / "fine.mat")
    assert "damaged" not in json.loads(str(fine["options"][0]))


class _FailingContainer:
    """A real container whose decoding raises after `good` frames."""

    def __init__(self, container, good):
        self._container, self._good = container, good

    def __getattr__(self, name):
        return getattr(self._container, name)

    def decode(self, *args, **kwargs):
        for count, frame in enumerate(self._container.decode(*args, **kwargs)):
            if count == self._good:
                raise av.error.InvalidDataError(1094995529, "Invalid data found")
            yield frame


@pytest.mark.parametrize("good", [0, 4])
def test_an_error_while_decoding_keeps_the_frames_before(tmp_path, monkeypatch, good):
    from fileio.errors import InputError

    path = tmp_path / "v.mkv"
    make_video(path, [textured(48, 64, i) for i in range(10)])
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: _FailingContainer(real_open(*a, **k), good))
    if good == 0:
        with pytest.raises(InputError, match="decoding failed on its first frame"):
            read_all(path)
        return
    reader, frames = read_all(path)
    assert len(frames) == good
    assert reader.damage.startswith(f"decoding stopped after {good} frames (InvalidDataError")


def test_a_complete_video_with_a_longer_audio_track_is_not_damaged(tmp_path):
    path = tmp_path / "talk.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        for i in range(25):                            # 1 s of video
            frame = av.VideoFrame.from_ndarray(textured(48, 64, i), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = np.zeros((1, 1024), np.float32)
        for i in range(16000 * 3 // 1024):             # 3 s of audio
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, i * 1024
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    reader, frames = read_all(path)
    assert len(frames) == 25 and reader.damage is None
