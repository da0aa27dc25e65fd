"""extract.py aligns every frame of a moving face as well as a detector would.

Videos of real photos moving along known paths (tests/synthetic_video.py):
the truth is each photo's own 5-point file moved with the photo, which
neither MTCNN nor dlib's predictor produced (the shared photos' files are
hand-marked; the repository's astronaut files came from MTCNN, so the
accuracy comparison uses the shared photos only). The network does not
steer the alignment any more: the tiny synthetic R-Net stands in for it,
except in the last tests, where the marker oracle (an R-Net that sees the
face) checks the whole chain from frames to reconstructed landmarks.
"""
import numpy as np
import pytest

from tests.conftest import shared_path
from tests.synthetic_video import (
    DEFAULT_LANDMARKS,
    DEFAULT_PHOTO,
    REPO_ROOT,
    accelerating_path,
    default_path,
    iter_moving_face_frames,
    make_moving_face_video,
    make_video,
    release_depth_lm3d,
    write_marker_rnet,
)

pytest.importorskip("av")
pytest.importorskip("mtcnn")
pytest.importorskip("dlib")

SIZE = (384, 384)


def point_error(found, truth):
    """Mean distance of the 5 points to the truth per frame, in eye distances."""
    eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
    return np.linalg.norm(found - truth, axis=2).mean(axis=1) / eye


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, converted_bfm):
    """The tiny R-Net, the small model, MTCNN and dlib's predictor, loaded once."""
    import load_data
    from landmarks.dlib68 import Landmark68Predictor
    from landmarks.mtcnn import FivePointDetector
    from networks.reconstructor import Reconstructor
    from tests.synthetic_network import write_tiny_rnet

    root = tmp_path_factory.mktemp("tracking")
    reconstructor = Reconstructor(load_data.load_graph(write_tiny_rnet(root / "tiny.pb")),
                                  converted_bfm / "BFM_model_front.mat", render=False)
    yield {"root": root, "reconstructor": reconstructor, "detector": FivePointDetector(),
           "predictor": Landmark68Predictor(), "lm3d": release_depth_lm3d(converted_bfm)}
    reconstructor.close()


def extract(pipeline, path, **options):
    from extraction.video import reconstruct_video

    return reconstruct_video(path, pipeline["reconstructor"], pipeline["lm3d"],
                             pipeline["detector"], pipeline["predictor"].from_points,
                             batch_size=8, **options)


def test_a_moving_head_is_aligned_as_well_as_by_detecting_every_frame(pipeline):
    # Every shared photo (17 people, each with its own bias for either
    # method: per photo, the ratio of the two errors ranges from about 0.5 to
    # 1.6), 16 frames each, speeding up to 8% of the eye distance a frame,
    # rolling to 8 degrees.
    photos = sorted(shared_path("data", "images").glob("*.jpg"))
    track, detect = [], []
    for photo in photos:
        video = make_moving_face_video(
            pipeline["root"] / f"{photo.stem}.mp4", photo, photo.with_suffix(".txt"),
            n_frames=16, size=SIZE, path_fn=accelerating_path(16, SIZE), markers=False)
        tracked = extract(pipeline, video["path"])
        assert tracked.valid.all() and tracked.detector_calls == 1, photo.name
        detected = extract(pipeline, video["path"], always_detect=True)
        both = detected.valid                  # MTCNN misses a face now and then
        track.append(point_error(tracked.lm5, video["points"])[both])
        detect.append(point_error(detected.lm5, video["points"])[both])
    track, detect = np.concatenate(track), np.concatenate(detect)
    print(f"aligning points' error, eye distances: track mean {track.mean():.4f} max "
          f"{track.max():.4f}; detect mean {detect.mean():.4f} max {detect.max():.4f}")
    assert track.mean() <= 1.3 * detect.mean(), (track.mean(), detect.mean())
    assert track.max() <= 0.2, track.max()


def _cut_video(path):
    """Frames 0-23: the astronaut moving slowly, covered on 10-12; then a cut to
    the mirrored astronaut, smaller and elsewhere, for frames 24-39."""
    mirrored = REPO_ROOT / "input" / "astronaut_mirrored.jpg"
    first = iter_moving_face_frames(DEFAULT_PHOTO, DEFAULT_LANDMARKS, 24, SIZE,
                                    default_path(200, SIZE), covered=(10, 11, 12),
                                    markers=False)

    def elsewhere(t):
        return 0.8, -5.0, 120.0 + 0.5 * t, 250.0 - 0.3 * t

    second = iter_moving_face_frames(mirrored, mirrored.with_suffix(".txt"), 16, SIZE,
                                     elsewhere, markers=False)
    frames, truth = [], []
    for frame, points, _ in list(first) + list(second):
        frames.append(frame)
        truth.append(points)
    make_video(path, frames)
    return np.array(truth)


def test_covered_frames_and_a_cut_lose_the_track_and_the_detector_finds_the_face(pipeline):
    path = pipeline["root"] / "cut.mp4"
    truth = _cut_video(path)
    results = extract(pipeline, path)
    np.testing.assert_array_equal(np.flatnonzero(~results.valid), [10, 11, 12])
    error = point_error(results.lm5, truth)
    assert error[results.valid].max() < 0.2, np.round(error, 3)
    # MTCNN: frame 0, each covered frame (its region, then the whole frame),
    # frame 13, the cut (region, then whole frame), the check on frame 13 + 30.
    assert results.detector_calls <= 12, results.detector_calls
    np.testing.assert_allclose(results.time, np.arange(40) / 25.0)


@pytest.fixture(scope="module")
def oracle(pipeline, converted_bfm):
    import load_data
    from networks.reconstructor import Reconstructor

    model = write_marker_rnet(pipeline["root"] / "oracle.pb", converted_bfm)
    reconstructor = Reconstructor(load_data.load_graph(model),
                                  converted_bfm / "BFM_model_front.mat", render=False)
    yield dict(pipeline, reconstructor=reconstructor)
    reconstructor.close()


@pytest.mark.parametrize("period", [200, 60])
def test_the_reconstruction_follows_the_true_path(oracle, period):
    # A head moving as in a talk (round the ellipse in 8 s at 25 fps, about
    # 0.035 eye distances a frame), and four times faster.
    from tests.synthetic_video import five_from_68 as lm5_from_lm68

    video = make_moving_face_video(oracle["root"] / f"talk{period}.mp4", n_frames=48,
                                   path_fn=default_path(period, (320, 240)))
    results = extract(oracle, video["path"])
    assert results.valid.all()
    error = point_error(lm5_from_lm68(results.lm68), video["points"])
    assert error.max() < 0.1, np.round(error, 3)
