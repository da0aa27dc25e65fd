"""Tracking in extract.py follows a moving face, with the detector on few frames.

The R-Net here is an oracle (tests/synthetic_video.py): it reads coloured
markers drawn at the true 5 points of a moving-face video and outputs the
coefficients that put the decoder's landmarks there, so the reconstruction
"sees" the face as a trained network would. References: MTCNN run on every
frame, and the known path of the face.
"""
import numpy as np
import pytest

from tests.synthetic_video import (
    default_path,
    make_moving_face_video,
    read_video,
    release_depth_lm3d,
    write_marker_rnet,
)

pytest.importorskip("av")
pytest.importorskip("mtcnn")

# The 5 tracked points stay within this fraction of the eye distance of
# MTCNN's points on the same frame (MTCNN itself differs from hand-placed
# points by about 0.06 on the shared photos).
TRACKING_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def oracle(tmp_path_factory, converted_bfm):
    root = tmp_path_factory.mktemp("tracking")
    bfm = converted_bfm
    return {"root": root, "bfm": bfm, "model": write_marker_rnet(root / "oracle.pb", bfm)}


def track(oracle, name, **video_options):
    """Extracts a marker video with tracking, and runs MTCNN on its every frame."""
    import load_data
    from extraction.video import reconstruct_video
    from landmark_detector import LandmarkDetector
    from reconstructor import Reconstructor

    bfm = oracle["bfm"]
    video = make_moving_face_video(oracle["root"] / name, **video_options)
    reconstructor = Reconstructor(load_data.load_graph(oracle["model"]),
                                  bfm / "BFM_model_front.mat", render=False)
    detector = LandmarkDetector()
    calls = []

    def detect(frame):
        calls.append(1)
        return detector(frame)

    try:
        # The small synthetic model's 5 points are nearly flat; alignment
        # uses them with the release's depths (see release_depth_lm3d).
        results = reconstruct_video(video["path"], reconstructor, release_depth_lm3d(bfm),
                                    detect, batch_size=4)
    finally:
        reconstructor.close()
    detections = []
    for frame in read_video(video["path"]):
        try:
            detections.append(detector(frame))
        except ValueError:
            detections.append(np.full((5, 2), np.nan))
    return {"results": results, "video": video, "detections": np.array(detections),
            "calls": len(calls)}


@pytest.fixture(scope="module")
def tracked(oracle):
    # A head moving as in a talk: once round the ellipse in 8 s at 25 fps,
    # about 1.5 pixels (0.035 eye distances) a frame; a hand over the face
    # on frames 30-32.
    return track(oracle, "talk.mp4", n_frames=60, covered=(30, 31, 32),
                 path_fn=default_path(200, (320, 240)))


def test_tracked_points_follow_the_detector_on_every_frame(tracked):
    results, detections = tracked["results"], tracked["detections"]
    valid = results.valid
    eye = np.linalg.norm(detections[:, 1] - detections[:, 0], axis=1)
    error = np.linalg.norm(results.lm5 - detections, axis=2).max(axis=1) / eye
    assert np.all(error[valid] < TRACKING_TOLERANCE), np.round(error, 3)


def test_reconstructed_landmarks_follow_the_true_path(tracked):
    from extraction.tracking import lm5_from_lm68

    results, truth = tracked["results"], tracked["video"]["points"]
    eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
    error = np.linalg.norm(lm5_from_lm68(results.lm68) - truth, axis=2).max(axis=1) / eye
    assert np.all(error[results.valid] < 0.1), np.round(error, 3)


def test_covered_frames_are_flagged_and_the_detector_runs_on_few_frames(tracked):
    results = tracked["results"]
    np.testing.assert_array_equal(np.flatnonzero(~results.valid), [30, 31, 32])
    assert results.detector_calls == tracked["calls"]
    # The first frame, every 30 frames, and each covered frame plus the
    # first one after it.
    assert results.detector_calls <= 0.2 * results.valid.size, results.detector_calls


def test_fast_motion_is_followed_by_the_reconstruction(oracle):
    # Round the ellipse in 2.4 s: 0.1-0.15 eye distances a frame, faster than
    # batches can be aligned from the past; the reconstruction still finds
    # the face in each crop, and re-detection keeps the track.
    from extraction.tracking import lm5_from_lm68

    fast = track(oracle, "fast.mp4", n_frames=60)
    results, truth = fast["results"], fast["video"]["points"]
    assert results.valid.all()
    eye = np.linalg.norm(truth[:, 1] - truth[:, 0], axis=1)
    error = np.linalg.norm(lm5_from_lm68(results.lm68) - truth, axis=2).max(axis=1) / eye
    assert np.all(error < 0.1), np.round(error, 3)
