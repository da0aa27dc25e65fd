"""`extract.py --refine`: one identity per video, then the frames with a temporal term.

`fitting.video_fit.refine_video` on a video of synthetic faces of one person
(known coefficients, rendered by the small model, a still head with camera
noise), with the first pass's results made from the truth; and `extract.py
--refine` end to end on a real face.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import loadmat

from facemodel.coefficients import BLOCKS
from tests.conftest import REPO_ROOT
from tests.synthetic_faces import background, draw_coefficients, render_faces
from tests.synthetic_video import make_moving_face_video, make_video

pytest.importorskip("av")

N_FRAMES = 10


@pytest.fixture(scope="module")
def still_video(tmp_path_factory, converted_bfm):
    """A still head with noise, and the first pass's results made from its truth."""
    import load_data
    from extraction.video import FrameResults
    from face_decoder import Face3D
    from preparation.frame import Alignment
    from preprocess_img import map_to_original
    from tests.synthetic_video import five_from_68 as lm5_from_lm68

    root = tmp_path_factory.mktemp("video_fit")
    face = Face3D(converted_bfm / "BFM_model_front.mat")
    rng = np.random.default_rng(8)
    truth = draw_coefficients(rng, 1)
    rendered = render_faces(face, truth, background(None, seed=3))
    frames = [np.clip(rendered["rgb"][0] + rng.normal(0, 3, (224, 224, 3)), 0, 255)
              .astype(np.uint8) for _ in range(N_FRAMES)]
    path = root / "still.mkv"
    make_video(path, frames, codec="ffv1")
    lm3d = load_data.load_lm3d(converted_bfm)
    lm5 = lm5_from_lm68(rendered["lm68"][0])
    params = Alignment(frames[0], lm5, lm3d).trans_params
    # The network's pass: the truth plus per-frame noise in every block.
    network = np.tile(truth, (N_FRAMES, 1)) + rng.normal(0, 0.05, (N_FRAMES, 257)).astype(
        np.float32)
    results = FrameResults(
        frame_index=np.arange(N_FRAMES), time=np.arange(N_FRAMES) / 25.0,
        valid=np.ones(N_FRAMES, bool), coeff=network,
        lm68=np.tile(rendered["lm68"], (N_FRAMES, 1, 1)),
        lm68_detected=np.tile(map_to_original(rendered["lm68"][0], params), (N_FRAMES, 1, 1)),
        lm5=np.tile(lm5, (N_FRAMES, 1, 1)), transform_params=np.tile(params, (N_FRAMES, 1)),
        fps=25.0, rotation=0, damage=None, detector_calls=1, seconds={})
    return {"path": path, "results": results, "face": face, "lm3d": lm3d, "truth": truth}


def spread(coeff, names=("expression", "angles", "translation")):
    """Mean frame-to-frame change of the named blocks."""
    columns = np.concatenate([np.arange(BLOCKS[n].start, BLOCKS[n].stop) for n in names])
    return float(np.abs(np.diff(coeff[:, columns], axis=0)).mean())


def test_one_identity_per_video_and_the_temporal_term_stills_the_coefficients(still_video):
    from fitting.optimize import Fitter
    from fitting.video_fit import refine_video

    runs = {}
    for weight in (0.0, 1.0):
        fitter = Fitter(still_video["face"], temporal_weight=weight)
        done = []
        coeff, identity, loss = refine_video(
            still_video["path"], still_video["results"], fitter, still_video["lm3d"], 6,
            batch_size=4, sample_size=4, progress=lambda n, total, loss, done=done: done.append(
                (n, total)))
        assert sum(n for n, _ in done) == N_FRAMES and done[0][1] == N_FRAMES
        assert coeff.shape == (N_FRAMES, 257) and np.isfinite(coeff).all()
        assert np.isfinite(loss).all()
        for name, value in zip(("identity", "albedo"), identity):
            np.testing.assert_array_equal(coeff[:, BLOCKS[name]], np.tile(value, (N_FRAMES, 1)))
        runs[weight] = coeff
    network = still_video["results"].coeff
    assert spread(runs[1.0]) < 0.5 * spread(network), (spread(runs[1.0]), spread(network))
    assert spread(runs[1.0]) < spread(runs[0.0])


def test_the_identity_fit_has_no_temporal_term_between_its_frames(still_video):
    from fitting.optimize import Fitter
    from fitting.video_fit import fit_sample

    fits = [fit_sample(still_video["path"], still_video["results"],
                       Fitter(still_video["face"], temporal_weight=weight), still_video["lm3d"],
                       4, sample_size=4)[1].coeff for weight in (0.0, 1.0)]
    np.testing.assert_allclose(fits[0], fits[1], rtol=1e-5, atol=1e-6)


def test_extract_refine_end_to_end(tmp_path, converted_bfm):
    from tests.synthetic_network import write_tiny_rnet

    pytest.importorskip("dlib")
    videos = tmp_path / "in"
    videos.mkdir()
    make_moving_face_video(videos / "talk.mp4", n_frames=10, markers=False)
    model = write_tiny_rnet(tmp_path / "tiny.pb", seed=1)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "extract.py"), "--input", str(videos), "--output",
         str(tmp_path / "out"), "--bfm-dir", str(converted_bfm), "--model", str(model),
         "--refine", "2", "--batch-size", "4", "--identity", "video"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = loadmat(tmp_path / "out" / "talk.mat")
    assert data["coeff"].shape == data["coeff_network"].shape == (10, 257)
    assert data["fit_loss"].shape == (10, 1) and np.isfinite(data["fit_loss"]).all()
    assert not np.array_equal(data["coeff"], data["coeff_network"])
    identity = data["coeff"][:, :80]
    np.testing.assert_array_equal(identity, np.tile(identity[0], (10, 1)))
    np.testing.assert_allclose(data["video_id_coeff"][0], identity[0], rtol=1e-6)
    assert json.loads(str(data["options"][0]))["refine"] == 2
