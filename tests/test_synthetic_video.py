"""Tests of the synthetic video fixtures and the marker oracle R-Net (tests/synthetic_video.py).

The videos are checked after a real encode and decode (frame count, rate,
marker colours at the true points, covered faces, MTCNN on a few frames,
streaming of the long writer). The oracle is checked on markers drawn
straight into crops, then through the whole chain of the video extraction:
decoded frame -> preprocess_img.Preprocess with slightly wrong 5 points ->
the frozen graph, loaded by the project's Reconstructor -> Face3D's 68
landmarks -> their 5 points -> preprocess_img.map_to_original, against the
true points. Everything uses the repository's input/astronaut.png, so
nothing skips without ../shared.
"""
import tracemalloc

import av
import numpy as np
import pytest
from PIL import Image

import load_data
import preprocess_img
import reconstruct_mesh
from networks.reconstructor import Reconstructor
from tests import synthetic_video as sv
from tests.synthetic_assets import write_bfm09

N_FRAMES = 40
COVERED = (10, 11, 25)


@pytest.fixture(scope="module")
def bfm_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bfm")
    write_bfm09(folder, seed=3)
    load_data.transferBFM09(folder)
    return folder


@pytest.fixture(scope="module")
def front_model(bfm_dir):
    return load_data.load_front_model(bfm_dir / load_data.FRONT_MODEL_NAME)


@pytest.fixture(scope="module")
def oracle_path(bfm_dir, tmp_path_factory):
    return sv.write_marker_rnet(tmp_path_factory.mktemp("net") / "oracle.pb", bfm_dir)


@pytest.fixture(scope="module")
def oracle(oracle_path):
    """Runs the frozen graph: crops [B,224,224,3] BGR -> (coeff, marker_points, fit residual)."""
    import tensorflow as tf
    graph_def = load_data.load_graph(oracle_path)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3])
        tf.import_graph_def(graph_def, name="oracle", input_map={"input_imgs:0": images})
    fetches = [graph.get_tensor_by_name(f"oracle/{name}:0")
               for name in ("coeff", "marker_points", "marker_fit_residual")]
    session = tf.compat.v1.Session(graph=graph)
    yield lambda crops: session.run(fetches, {images: np.asarray(crops, np.float32)})
    session.close()


@pytest.fixture(scope="module")
def marker_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "face.mp4"
    info = sv.make_moving_face_video(path, n_frames=N_FRAMES, covered=COVERED)
    info["frames"] = list(sv.read_video(path))
    return info


@pytest.fixture(scope="module")
def mtcnn():
    from mtcnn import MTCNN
    return MTCNN()


def five_points(coeff, model):
    return sv.five_from_68(reconstruct_mesh.reconstruct(coeff, model)["lm_68p"])


def eye_distance(points):
    return np.linalg.norm(points[..., 1, :] - points[..., 0, :], axis=-1)


# ---------------------------------------------------------------------------- helpers


def test_five_from_68_matches_load_lm3d(bfm_dir):
    import scipy.io
    lm68 = scipy.io.loadmat(str(bfm_dir / "similarity_Lm3D_all.mat"))["lm"]
    np.testing.assert_allclose(sv.five_from_68(lm68[:, :2]), load_data.load_lm3d(bfm_dir)[:, :2],
                               rtol=0, atol=1e-6)
    assert sv.five_from_68(np.zeros((3, 68, 2))).shape == (3, 5, 2)


def test_default_path_keeps_the_face_in_view_and_large():
    size = (320, 240)
    landmarks = np.loadtxt(sv.DEFAULT_LANDMARKS)
    points, frames = [], []
    for frame, frame_points, covered in sv.iter_moving_face_frames(n_frames=N_FRAMES, size=size,
                                                                  markers=False):
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and not covered
        points.append(frame_points)
        frames.append(frame)
    points = np.array(points)
    distances = eye_distance(points)
    base = sv.EYE_DISTANCE_FRACTION * min(size)
    assert distances.min() >= 35
    np.testing.assert_allclose([distances.min() / base, distances.max() / base], [0.9, 1.1],
                               atol=0.01)
    eyes = points[:, 1] - points[:, 0]
    rolls = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0])
                       - np.arctan2(*(landmarks[1] - landmarks[0])[::-1]))
    assert np.abs(rolls).max() <= 10.01 and np.ptp(rolls) > 15
    centres = points.mean(axis=1)
    np.testing.assert_allclose(np.ptp(centres, axis=0), [0.3 * 320, 0.3 * 240], rtol=0.05)
    for frame_points in points:             # the whole face (the cover box) is inside
        lo, hi = sv.face_box(frame_points)
        assert np.all(lo >= 0) and hi[0] < 320 and hi[1] < 240
    # Motion is smooth: a few pixels per frame.
    assert np.abs(np.diff(points, axis=0)).max() < 12


def test_path_fn_overrides_the_path():
    landmarks = np.loadtxt(sv.DEFAULT_LANDMARKS)

    def path(t):
        return 1.0, 0.0, 100.0 + t, 120.0

    got = [p for _, p, _ in sv.iter_moving_face_frames(n_frames=3, path_fn=path, markers=False)]
    for t, points in enumerate(got):
        np.testing.assert_allclose(points.mean(axis=0), [100.0 + t, 120.0], atol=1e-9)
        assert eye_distance(points) == pytest.approx(0.18 * 240)
        # The same shape as the photo's landmarks, only scaled and moved.
        scale = 0.18 * 240 / eye_distance(landmarks)
        np.testing.assert_allclose(points - points.mean(0), scale * (landmarks - landmarks.mean(0)),
                                   atol=1e-9)


# ---------------------------------------------------------------------------- videos


def test_marker_video_round_trip(marker_video):
    frames, points = marker_video["frames"], marker_video["points"]
    covered = marker_video["covered"]
    assert len(frames) == N_FRAMES and points.shape == (N_FRAMES, 5, 2)
    assert covered.tolist() == [t in COVERED for t in range(N_FRAMES)]
    assert marker_video["fps"] == 25 and marker_video["size"] == (320, 240)
    with av.open(str(marker_video["path"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (320, 240, 25)
    colours = np.array(sv.MARKER_COLORS, dtype=np.int32)
    for frame, frame_points, is_covered in zip(frames, points, covered):
        assert frame.shape == (240, 320, 3)
        for point, colour in zip(frame_points, colours):
            x, y = np.round(point).astype(int)
            patch = frame[y - 1:y + 2, x - 1:x + 2].astype(np.int32).reshape(-1, 3)
            miss = np.abs(patch - colour).max(axis=1).min()
            if is_covered:
                assert np.abs(patch - 128).max() <= 8      # the grey cover, no marker
            else:
                assert miss <= 80, (point, patch)          # the colour survives the codec


def test_marker_colours_are_found_by_the_oracles_masks(marker_video):
    import tensorflow as tf
    frames = np.array(marker_video["frames"][:4])[..., ::-1].astype(np.float32)   # BGR
    magenta, cyan = (np.asarray(m) for m in sv.marker_weights(tf.constant(frames)))
    ys, xs = np.mgrid[:240, :320]
    for t in range(4):
        near = [(xs - p[0]) ** 2 + (ys - p[1]) ** 2 <= 16 for p in marker_video["points"][t]]
        for mask, weights in zip(near, [magenta[t]] * 2 + [cyan[t]] * 3):
            assert weights[mask].sum() > 3
        assert magenta[t][~(near[0] | near[1])].sum() < 0.5
        assert cyan[t][~(near[2] | near[3] | near[4])].sum() < 0.5


@pytest.mark.parametrize("codec,suffix", [("mpeg4", ".avi"), ("mpeg4", ".mkv"),
                                          ("libx264", ".mp4"), ("libx264", ".mkv")])
def test_encoders_and_containers(tmp_path, codec, suffix):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = tmp_path / f"face{suffix}"
    info = sv.make_moving_face_video(path, n_frames=6, codec=codec)
    frames = list(sv.read_video(path))
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    x, y = np.round(info["points"][3, 0]).astype(int)
    patch = frames[3][y - 1:y + 2, x - 1:x + 2].astype(np.int32).reshape(-1, 3)
    assert np.abs(patch - np.array(sv.MAGENTA)).max(axis=1).min() <= 80


def test_make_video_writes_any_frames_and_rejects_bad_ones(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    assert sv.make_video(tmp_path / "noise.mp4", iter(frames), fps=10) == 3
    decoded = list(sv.read_video(tmp_path / "noise.mp4"))
    assert len(decoded) == 3 and decoded[0].shape == (48, 64, 3)
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert sv.make_video(tmp_path / "flat.avi", [flat] * 2, fps=29.97) == 2
    decoded = list(sv.read_video(tmp_path / "flat.avi"))
    assert len(decoded) == 2 and np.abs(decoded[1].astype(int) - 77).max() <= 2
    with pytest.raises(ValueError, match="uint8"):
        sv.make_video(tmp_path / "bad.mp4", [np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(ValueError, match="first"):
        sv.make_video(tmp_path / "sizes.mp4", [flat, np.zeros((32, 34, 3), np.uint8)])
    assert sv.make_video(tmp_path / "empty.avi", []) == 0
    assert list(sv.read_video(tmp_path / "empty.avi")) == []


def test_long_video_is_streamed(tmp_path):
    path = tmp_path / "long.mp4"
    tracemalloc.start()
    try:
        info = sv.make_long_video(path, 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frame_bytes = 1280 * 720 * 3
    assert info["n_frames"] == 50 and info["points"].shape == (50, 5, 2)
    assert peak < 12 * frame_bytes, f"peak {peak / 1e6:.0f} MB: frames are being kept"
    count = 0
    for frame in sv.read_video(path):
        assert frame.shape == (720, 1280, 3)
        count += 1
    assert count == 50
    assert eye_distance(info["points"]).min() >= 0.9 * 0.18 * 720 - 0.5


def test_mtcnn_finds_uncovered_faces_only(marker_video, mtcnn):
    for t in (0, 10, 20, 25, 33):
        faces = [f for f in mtcnn.detect_faces(marker_video["frames"][t])
                 if f["confidence"] >= 0.9]
        if t in COVERED:
            assert faces == [], t
            continue
        assert len(faces) == 1, t
        keys = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        found = np.array([faces[0]["keypoints"][k] for k in keys], dtype=np.float64)
        true = marker_video["points"][t]
        assert np.linalg.norm(found - true, axis=1).max() < 0.3 * eye_distance(true), t


# ---------------------------------------------------------------------------- the oracle


def drawn_crops(shape, poses):
    """Grey 224x224 BGR crops with markers (radius 3) at similarity transforms of `shape`."""
    crops, targets = [], []
    for scale, angle, shift in poses:
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        points = (shape - shape.mean(0)) @ (scale * np.array([[c, s], [-s, c]])) + 112 + shift
        crop = np.full((224, 224, 3), 150, np.uint8)
        sv.draw_markers(crop, points, radius=3.0)
        crops.append(crop[..., ::-1].astype(np.float32))
        targets.append(points)
    return np.array(crops), np.array(targets)


def test_oracle_graph_interface(oracle_path):
    graph_def = load_data.load_graph(oracle_path)
    ops = {node.op for node in graph_def.node}
    assert not ops & {"VariableV2", "VarHandleOp", "ReadVariableOp", "Variable"}
    placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
    assert [n.name for n in placeholders] == ["input_imgs"]
    dims = [d.size for d in placeholders[0].attr["shape"].shape.dim]
    assert dims == [-1, 224, 224, 3]
    assert "coeff" in {n.name for n in graph_def.node}


def test_oracle_puts_the_landmarks_on_drawn_markers(oracle, front_model):
    shape = np.loadtxt(sv.DEFAULT_LANDMARKS) * 1.5
    poses = [(1.0, 0, (0, 0)), (0.7, 12, (5, -4)), (1.3, -15, (-8, 6)), (0.45, 5, (3, 3)),
             (1.0, 0, (20, -15))]
    crops, targets = drawn_crops(shape, poses)
    crops = np.concatenate([crops, np.full((1, 224, 224, 3), 150, np.float32)])
    coeff, markers, residual = oracle(crops)
    assert coeff.shape == (6, 257) and coeff.dtype == np.float32
    np.testing.assert_allclose(markers[:5], targets, atol=0.25)        # marker centroids
    assert residual[:5].max() < 0.01                                    # the fit converged
    for c, target in zip(coeff[:5], targets):
        np.testing.assert_allclose(five_points(c, front_model), target, atol=0.3)
        assert np.all(c[:80] == 0) and np.all(c[144:226] == 0) and np.all(c[227:254] == 0)
    assert np.all(coeff[5] == 0)                                        # no markers: canonical
    # Roll follows the markers (a turn clockwise on screen is a negative roll).
    rolls = np.degrees(coeff[:5, 226])
    np.testing.assert_allclose(rolls - rolls[0], [-(p[1] - poses[0][1]) for p in poses], atol=1.0)


@pytest.mark.parametrize("n_out", [239, 258])
def test_oracle_other_lengths_and_pose_only(bfm_dir, front_model, tmp_path, n_out):
    import tensorflow as tf
    path = sv.write_marker_rnet(tmp_path / "oracle.pb", bfm_dir, n_out=n_out,
                                fit_shape=n_out == 239)
    shape = np.loadtxt(sv.DEFAULT_LANDMARKS) * 1.5
    crops, targets = drawn_crops(shape, [(0.9, 8, (4, -2))])
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(load_data.load_graph(path), name="")
        session = tf.compat.v1.Session(graph=graph)
        coeff = session.run("coeff:0", {"input_imgs:0": crops})
    assert coeff.shape == (1, n_out)
    found = five_points(coeff[0], front_model)
    if n_out == 239:
        np.testing.assert_allclose(found, targets[0], atol=0.3)
    else:                  # pose only: the model's proportions, the markers' place and size
        assert np.all(coeff[0, 80:144] == 0)
        np.testing.assert_allclose(found.mean(0), targets[0].mean(0), atol=0.5)
        assert eye_distance(found) == pytest.approx(eye_distance(targets[0]), rel=0.1)
        assert np.linalg.norm(found - targets[0], axis=1).max() > 0.05 * eye_distance(found)


def perturbed(points, rng):
    """The 5 points shifted by up to 4 pixels, scaled by up to 5%, turned by up to 5 degrees."""
    scale = 1 + rng.uniform(-0.05, 0.05)
    angle = np.radians(rng.uniform(-5, 5))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(axis=0)
    return centre + scale * (points - centre) @ rotation.T + rng.uniform(-4, 4, 2)


def round_trip_errors(frames, truths, lm3d, run, rng, per_frame=3):
    """Preprocess with wrong points, run, map back; the misses over the eye distance."""
    crops, params, true_points = [], [], []
    for frame, true in zip(frames, truths):
        for _ in range(per_frame):
            crop, _, trans = preprocess_img.Preprocess(Image.fromarray(frame),
                                                       perturbed(true, rng), lm3d)
            crops.append(crop[0])
            params.append(trans)
            true_points.append(true)
    lm68 = run(np.array(crops))
    errors = []
    for landmarks, trans, true in zip(lm68, params, true_points):
        found = preprocess_img.map_to_original(sv.five_from_68(landmarks), trans)
        errors.append(np.linalg.norm(found - true, axis=1).max() / eye_distance(true))
    return np.array(errors)


def test_oracle_through_the_extraction_chain(marker_video, oracle_path, bfm_dir, front_model):
    """The property the tracking tests rely on: landmarks mapped back land on the true points."""
    reconstructor = Reconstructor(load_data.load_graph(oracle_path),
                                  bfm_dir / load_data.FRONT_MODEL_NAME, render=False)
    uncovered = [t for t in range(N_FRAMES) if t not in COVERED][::2]
    frames = [marker_video["frames"][t] for t in uncovered]
    truths = marker_video["points"][uncovered]

    def run(crops):
        result = reconstructor(crops)
        # Face3D (TensorFlow) and reconstruct_mesh (NumPy) agree on the landmarks.
        np.testing.assert_allclose(result["lm_68p"][0],
                                   reconstruct_mesh.reconstruct(result["coeff"][0],
                                                                front_model)["lm_68p"], atol=1e-3)
        return result["lm_68p"]

    rng = np.random.default_rng(1)
    # Alignment as with the real model (a deep lm3d): within 5% of the eye distance.
    errors = round_trip_errors(frames, truths, sv.release_depth_lm3d(bfm_dir), run, rng)
    assert errors.max() < 0.05, errors.max()
    # write_bfm09's own, nearly flat lm3d shrinks the face to ~24 pixels between
    # the eyes in the crop: the crop's 1-pixel truncation alone is then 0.04.
    errors = round_trip_errors(frames, truths, load_data.load_lm3d(bfm_dir), run, rng)
    assert errors.max() < 0.12, errors.max()


def test_oracle_without_markers_gives_the_canonical_face(tmp_path, oracle, bfm_dir):
    path = tmp_path / "plain.mp4"
    info = sv.make_moving_face_video(path, n_frames=2, markers=False)
    frame = next(sv.read_video(path))
    crop, _, _ = preprocess_img.Preprocess(Image.fromarray(frame), info["points"][0],
                                           sv.release_depth_lm3d(bfm_dir))
    coeff, _, residual = oracle(crop)
    assert np.all(coeff == 0) and residual[0] == 0
