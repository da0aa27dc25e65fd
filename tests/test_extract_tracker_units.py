"""The tracker's decisions and the video pipeline, on a world of discs.

A bright disc on a textured background stands for a face. The "detector"
returns 5 points from the disc's pixels; the "predictor" finds the disc's
pixels inside the box it is given and places a fixed 68-point pattern on
them, or, like dlib, places the pattern in the box when no disc is there.
Every expected value comes from the disc's known position, not from the
tracker.
"""
import threading

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from extraction import tracking, video
from facemodel.keypoints import five_points
from fileio.errors import InputError
from landmarks.dlib68 import box_from_points

# The 68-point pattern, in units of the disc's radius around its centre; its
# 5 points are the detector's (the disc's centre +- half its radius).
PATTERN = np.random.default_rng(11).uniform(-0.8, 0.8, (68, 2))
PATTERN[36:42] += [-0.5, -0.5] - PATTERN[36:42].mean(axis=0)
PATTERN[42:48] += [0.5, -0.5] - PATTERN[42:48].mean(axis=0)
PATTERN[[30, 48, 54]] = [[0, 0], [-0.5, 0.5], [0.5, 0.5]]
LM3D = np.array([[-0.31, 0.29, 0.13], [0.31, 0.29, 0.13], [0.0, -0.02, 0.55],
                 [-0.25, -0.36, 0.2], [0.25, -0.36, 0.2]])
RADIUS = 28
BACKGROUND = gaussian_filter(np.random.default_rng(7).uniform(0, 150, (240, 320, 3)),
                             (3, 3, 0))


def disc_frame(centre, radius=RADIUS):
    """A frame with the disc at `centre` (None: no disc)."""
    frame = BACKGROUND.copy()
    if centre is not None:
        yy, xx = np.mgrid[:240, :320]
        frame[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < radius ** 2] = 230
    return frame.astype(np.uint8)


def centre_of(t):
    """The disc's path: 1.5 pixels a frame to the right, a little down."""
    return np.array([100 + 1.5 * t, 100 + 0.8 * t])


def disc_points(image):
    """5 points of the disc: its centre, and the centre +- half its radius."""
    inside = np.asarray(image, np.float64).mean(axis=2) > 200
    if inside.sum() < 30:
        raise InputError("no face")
    ys, xs = np.nonzero(inside)
    half = 0.5 * np.sqrt(inside.sum() / np.pi)
    return np.array([xs.mean(), ys.mean()]) + half * np.array(
        [[-1, -1], [1, -1], [0, 0], [-1, 1], [1, 1]])


class DiscPredictor:
    """The pattern on the disc pixels near the box (the box grown by half its side on
    every side), else in the box; records calls."""

    def __init__(self):
        self.calls = []
        self.refined = []

    def __call__(self, frame, points, refine):
        self.calls.append(np.array(points))
        self.refined.append(refine)
        box = box_from_points(points)
        side = box[2] - box[0]
        x0, y0 = np.maximum(np.floor(box[:2] - side / 2).astype(int), 0)
        x1, y1 = np.ceil(box[2:] + side / 2).astype(int)
        inside = np.asarray(frame[y0:y1, x0:x1], np.float64).mean(axis=2) > 200
        if inside.sum() >= 30:
            ys, xs = np.nonzero(inside)
            centre = np.array([xs.mean() + x0, ys.mean() + y0])
            radius = np.sqrt(inside.sum() / np.pi)
        else:
            centre, radius = (box[:2] + box[2:]) / 2, (box[2] - box[0]) / 3
        return centre + radius * PATTERN, box


def expected_lm5(t):
    return five_points(centre_of(t) + RADIUS * PATTERN)


def run(frames, **options):
    predictor = DiscPredictor()
    calls = []

    def detect(frame):
        calls.append(1)
        return disc_points(frame)

    tracker = tracking.FaceTracker(detect, predictor, **options)
    return [tracker.track(frame) for frame in frames], tracker, predictor, len(calls)


def test_first_frame_detected_then_the_predictor_follows_the_face():
    frames = [disc_frame(centre_of(t)) for t in range(20)]
    points, tracker, predictor, calls = run(frames, redetect_every=100)
    assert calls == tracker.detector_calls == 1 and tracker.lost == 0
    assert points[0].detected and not any(p.detected for p in points[1:])
    for t, found in enumerate(points):
        np.testing.assert_allclose(found.lm5, expected_lm5(t), atol=0.3)
        np.testing.assert_allclose(found.lm68, centre_of(t) + RADIUS * PATTERN, atol=0.3)
    # The first frame: from the detector's 5 points, refined; every later
    # frame: one prediction from the previous frame's 68 points.
    assert predictor.calls[0].shape == (5, 2) and predictor.refined == [True] + [False] * 19
    for previous, call in zip(points, predictor.calls[1:]):
        np.testing.assert_array_equal(call, previous.lm68)


def test_periodic_checks_keep_a_track_they_confirm_and_restart_one_they_do_not():
    frames = [disc_frame(centre_of(t)) for t in range(21)]
    points, tracker, predictor, calls = run(frames, redetect_every=5)
    assert calls == 5                     # frame 0, then frames 5, 10, 15, 20
    assert [t for t, p in enumerate(points) if p.detected] == [0]   # confirmed: kept
    assert len(predictor.calls) == 21

    # A detector whose face lies an eye distance (28 pixels) to the right at
    # the first check (its second call).
    seen = []

    def detect(frame):
        seen.append(1)
        return disc_points(frame) + ([30.0, 0.0] if len(seen) == 2 else 0.0)

    predictor = DiscPredictor()
    tracker = tracking.FaceTracker(detect, predictor, redetect_every=5)
    points = [tracker.track(frame) for frame in frames[:7]]
    assert [t for t, p in enumerate(points) if p.detected] == [0, 5]   # restarted on 5
    # Frame 5: followed (call 5), then predicted again from the detector's face.
    np.testing.assert_allclose(predictor.calls[6], disc_points(frames[5]) + [30, 0])
    assert predictor.refined[6] and len(predictor.calls) == 8


def test_points_off_their_box_lose_the_track():
    frames = [disc_frame(centre_of(t)) for t in range(8)]
    predictor = DiscPredictor()

    def jumping(frame, points, refine):
        lm68, box = predictor(frame, points, refine)
        if len(predictor.calls) == 4:          # frame 3: half a box to the right
            lm68 = lm68 + [(box[2] - box[0]) / 2, 0]
        return lm68, box

    tracker = tracking.FaceTracker(disc_points, jumping, redetect_every=100)
    points = [tracker.track(frame) for frame in frames]
    assert tracker.lost == 1 and points[3].detected
    np.testing.assert_allclose(points[3].lm5, expected_lm5(3), atol=0.3)


def test_a_covered_face_is_lost_then_found_again():
    centres = [None if t in (6, 7) else centre_of(t) for t in range(12)]
    points, tracker, _, calls = run([disc_frame(c) for c in centres], redetect_every=100)
    assert points[6] is None and points[7] is None      # appearance: the disc is gone
    assert tracker.lost == 1 and points[8].detected
    assert calls == 1 + 2 * 2 + 1      # frame 0; region then whole frame on 6 and 7; 8
    for t in (5, 8, 11):
        np.testing.assert_allclose(points[t].lm5, expected_lm5(t), atol=0.3)


def test_detect_mode_aligns_with_the_detector_and_predicts_from_its_box():
    frames = [disc_frame(centre_of(t)) for t in range(4)]
    points, tracker, predictor, calls = run(frames, always_detect=True)
    assert calls == 4 and all(p.detected for p in points)
    for frame, found, call in zip(frames, points, predictor.calls):
        np.testing.assert_array_equal(found.lm5, disc_points(frame))
        np.testing.assert_array_equal(call, disc_points(frame))


def _disc_video(tmp_path, gone=(17, 18), n=40):
    from tests.synthetic_video import make_video

    path = tmp_path / "disc.mp4"
    make_video(path, [disc_frame(None if t in gone else centre_of(t)) for t in range(n)],
               codec="ffv1")
    return path


def _disc_reconstructor(crops):
    """The disc's 5 points as reconstructed landmarks (crop pixels)."""
    lm68 = np.zeros((len(crops), 68, 2), np.float32)
    for lm, crop in zip(lm68, crops):
        five = disc_points(crop[:, :, ::-1])
        lm[[36, 39]], lm[[42, 45]], lm[30], lm[48], lm[54] = five[0], five[1], five[2], \
            five[3], five[4]
    return {"coeff": lm68.reshape(len(crops), -1)[:, :257].copy(), "lm_68p": lm68}


def test_alignment_ahead_of_the_network_gives_the_results_of_one_thread(tmp_path, monkeypatch):
    """Alignment runs in a thread one batch ahead of the network; the arrays
    are those of doing both in turn, and the reconstruction lands on the disc."""
    path = _disc_video(tmp_path)
    on_main = []

    def reconstructor(crops):
        on_main.append(threading.current_thread() is threading.main_thread())
        return _disc_reconstructor(crops)

    def run():
        return video.reconstruct_video(path, reconstructor, LM3D, disc_points, DiscPredictor(),
                                       batch_size=8, redetect_every=100)

    class InTurn:
        """`Background`'s interface, run in the caller's thread."""

        def __init__(self, items, *args, **kwargs):
            self.items = items

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __iter__(self):
            return iter(self.items)

    ahead = run()
    monkeypatch.setattr(video, "Background", InTurn)
    in_turn = run()
    assert all(on_main) and len(on_main) == 10
    for key in ("frame_index", "time", "valid", "coeff", "lm68", "lm68_detected", "lm5",
                "transform_params"):
        np.testing.assert_array_equal(getattr(ahead, key), getattr(in_turn, key), key)
    valid = ahead.valid
    assert not valid[17:19].any() and valid[:17].all() and valid[19:].all()
    np.testing.assert_allclose(ahead.time, np.arange(40) / 25.0)
    truth = np.array([disc_points(disc_frame(centre_of(t))) for t in np.flatnonzero(valid)])
    from tests.synthetic_video import five_from_68 as corners_five

    found = corners_five(ahead.lm68[valid])
    assert np.abs(found - truth).max() < 1.0
    np.testing.assert_allclose(ahead.lm68_detected[valid],
                               [centre_of(t) + RADIUS * PATTERN for t in np.flatnonzero(valid)],
                               atol=0.3)


def test_a_failing_network_stops_the_alignment_thread(tmp_path):
    path = _disc_video(tmp_path)
    before = threading.active_count()
    batches = []

    def failing(crops):
        batches.append(len(crops))
        if len(batches) == 2:
            raise RuntimeError("network failed")
        return _disc_reconstructor(crops)

    with pytest.raises(RuntimeError, match="network failed"):
        video.reconstruct_video(path, failing, LM3D, disc_points, DiscPredictor(), batch_size=4)
    assert threading.active_count() == before
