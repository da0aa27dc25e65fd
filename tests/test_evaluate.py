"""evaluate.py on synthetic datasets in each benchmark's exact file formats.

Every expected figure is known before the run: predictions equal to the
ground truth score 0; points moved by a known amount give that NME; a scan
made from the predicted mesh under a random similarity, with every vertex
pushed a known distance along its normal, gives that distance after
alignment; the yaw bins, the balanced mean and NoW's crop are computed by
hand here.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat

from evaluation import aflw2000, florence, formats, geometry, now
from facemodel.keypoints import NOSE_TIP, NOW_SEVEN
from tests.conftest import REPO_ROOT

pytest.importorskip("point_cloud_utils")


def run_evaluate(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


# ------------------------------------------------------------------ AFLW2000-3D

def write_aflw(folder, landmarks, yaws, photo=REPO_ROOT / "input" / "astronaut.png"):
    """NAME.jpg and NAME.mat (pt3d_68 [3,68], Pose_Para [1,7]) per image."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as image:
        rgb = image.convert("RGB").resize((450, 450))
    names = []
    for i, (points, yaw) in enumerate(zip(landmarks, yaws)):
        name = f"image{i:05d}"
        rgb.save(folder / f"{name}.jpg")
        pt3d = np.vstack([np.asarray(points).T, np.zeros((1, 68))])
        pose = np.array([[0.1, np.radians(yaw), -0.05, 0, 0, 0, 1.0]])
        savemat(folder / f"{name}.mat", {"pt3d_68": pt3d, "Pose_Para": pose})
        names.append(name)
    return names


def random_faces(rng, count):
    centre = rng.uniform(180, 270, (count, 1, 2))
    return centre + rng.uniform(-80, 80, (count, 68, 2))


def test_aflw_nme_bins_and_the_balanced_mean_by_hand(tmp_path):
    rng = np.random.default_rng(0)
    truth = random_faces(rng, 6)
    yaws = [5.0, -25.0, 40.0, -59.0, 75.0, -91.0]        # two per bin; -91 goes to 60-90
    names = write_aflw(tmp_path / "data", truth, yaws)
    shift = np.array([3.0, 4.0])                          # 5 pixels for every point
    exact, moved = tmp_path / "exact", tmp_path / "moved"
    for name, points in zip(names, truth):
        formats.write_lm68(aflw2000.prediction_path(exact, name), points)
        formats.write_lm68(aflw2000.prediction_path(moved, name), points + shift)
    summary, records, _ = aflw2000.score(tmp_path / "data", exact)   # files hold 4 decimals
    np.testing.assert_allclose([r["nme"] for r in records], 0.0, atol=1e-3)
    np.testing.assert_allclose(summary["overall"], 0.0, atol=1e-3)
    summary, records, _ = aflw2000.score(tmp_path / "data", moved)
    expected = [5.0 / np.sqrt(np.prod(t.max(0) - t.min(0))) * 100 for t in truth]
    np.testing.assert_allclose([r["nme"] for r in records], expected, atol=1e-3)
    assert [r["bin"] for r in records] == ["0-30", "0-30", "30-60", "30-60", "60-90", "60-90"]
    bins = [np.mean(expected[0:2]), np.mean(expected[2:4]), np.mean(expected[4:6])]
    for name, value in zip(("0-30", "30-60", "60-90"), bins):
        np.testing.assert_allclose(summary[name], value, atol=1e-3)
    np.testing.assert_allclose(summary["overall"], np.mean(bins), atol=1e-3)


def test_aflw_from_other_predictions_writes_the_json_and_the_curve(tmp_path):
    rng = np.random.default_rng(1)
    truth = random_faces(rng, 3)
    names = write_aflw(tmp_path / "data", truth, [10.0, 45.0, 80.0])
    predictions = tmp_path / "predictions"
    for name, points in zip(names[:2], truth[:2]):          # the third has none
        formats.write_lm68(aflw2000.prediction_path(predictions, name), points + 1.0)
    result = run_evaluate("aflw2000", "--data", tmp_path / "data", "--predictions", predictions,
                          "--output", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]          # one image unpredicted
    document = json.loads((tmp_path / "out" / "aflw2000.json").read_text())
    assert set(document["summary"]) >= {"0-30", "30-60", "60-90", "overall"}
    assert document["summary"]["images"] == 2 and document["summary"]["missing"] == 1
    assert [r["name"] for r in document["records"]] == names
    assert document["records"][2]["missing"] is True
    assert (tmp_path / "out" / "aflw2000_curve.png").stat().st_size > 1000
    assert "Deng et al. 2019" in result.stdout and "ours" in result.stdout
    # The table is printed once (it was printed twice), for every benchmark alike.
    assert result.stdout.count("AFLW2000-3D, 68-point NME") == 1
    assert result.stdout.count("\nours ") == 1


def test_aflw_with_a_network_end_to_end(tmp_path, converted_bfm):
    from landmarks.dlib68 import Landmark68Predictor
    from tests.synthetic_network import write_tiny_rnet

    pytest.importorskip("dlib")
    # The "ground truth": dlib's 68 points of the photo, for the gt alignment.
    from PIL import Image
    rgb = np.asarray(Image.open(REPO_ROOT / "input" / "astronaut.png").convert("RGB")
                     .resize((450, 450)))
    lm5 = np.loadtxt(REPO_ROOT / "input" / "astronaut.txt") * 450 / 512
    points, _ = Landmark68Predictor().from_points(rgb, lm5)
    write_aflw(tmp_path / "data", [points, points], [3.0, 33.0])
    model = write_tiny_rnet(tmp_path / "tiny.pb")
    for align in ("gt", "mtcnn"):
        output = tmp_path / f"out_{align}"
        result = run_evaluate("aflw2000", "--data", tmp_path / "data", "--model", model,
                              "--bfm-dir", converted_bfm, "--align", align, "--output", output,
                              cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        document = json.loads((output / "aflw2000.json").read_text())
        summary = document["summary"]
        assert summary["images"] == 2 and np.isfinite(summary["overall"])
        assert (document["settings"]["model"], document["settings"]["model_kind"]) == \
            ("tiny.pb", "tensorflow")
        assert len(list((output / "predictions" / "aflw2000").glob("*_lm68.txt"))) == 2
    rerun = run_evaluate("aflw2000", "--data", tmp_path / "data", "--model", model,
                         "--bfm-dir", converted_bfm, "--output", tmp_path / "out_mtcnn",
                         cwd=tmp_path)
    assert "2 of 2 images already predicted" in rerun.stderr


# ------------------------------------------------------------------ shapes

@pytest.fixture(scope="module")
def face_mesh(converted_bfm):
    """The small synthetic model's mean face in mm, with a nose: (vertices, triangles, keypoints).

    The small model is a shallow cap (its nose keypoint barely in front of
    the eyes); a 30 mm bump at the nose keypoint makes it the face's most
    forward point, as a real face's nose tip is (Florence's start uses it).
    """
    import load_data

    model = load_data.load_front_model(converted_bfm / "BFM_model_front.mat")
    vertices = np.asarray(model["meanshape"], np.float64).reshape(-1, 3) * 100.0
    keypoints = np.asarray(model["keypoints"], np.int64).reshape(-1) - 1
    nose = vertices[keypoints[30], :2]
    vertices[:, 2] += 30.0 * np.exp(-((vertices[:, :2] - nose) ** 2).sum(1) / (2 * 20.0 ** 2))
    return vertices, np.asarray(model["tri"], np.int64) - 1, keypoints


def pushed_scan(vertices, triangles, offset, rng):
    """The vertices pushed `offset` mm along their normals, each with a random sign."""
    import point_cloud_utils

    normals = point_cloud_utils.estimate_mesh_vertex_normals(vertices, triangles)
    return vertices + normals * offset * rng.choice([-1.0, 1.0], (len(vertices), 1))


def random_similarity(rng, turn_degrees):
    from scipy.spatial.transform import Rotation

    rotation = Rotation.from_rotvec(np.radians(turn_degrees) * rng.normal(size=3)
                                    / np.sqrt(3)).as_matrix()
    return float(rng.uniform(0.8, 1.2)), rotation, rng.uniform(-50, 50, 3)


def test_the_scan_crop_by_hand():
    landmarks = np.array([[-40, 0, 0], [-15, 0, 0], [15, 0, 0], [40, 0, 0], [0, -50, 10],
                          [-25, -80, 0], [25, -80, 0]], float)
    # n = (0, -50, 10), b = (0, 0, 0): centre (0, -35, 7); radius 1.4 (80 + |b - n|) / 2.
    radius = 1.4 * (80.0 + np.sqrt(50 ** 2 + 10 ** 2)) / 2.0
    centre = np.array([0.0, -35.0, 7.0])
    points = centre + np.array([[radius - 0.01, 0, 0], [radius + 0.01, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(now.crop_mask(points, landmarks), [True, False, True])


def test_closest_points_are_point_to_triangle():
    vertices = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], float)
    surface = geometry.mesh(vertices, [[0, 1, 2]])
    points = np.array([[2, 2, 3], [20, 0, 0], [-1, -1, 0], [6, 6, 1]], float)
    closest, distance, _ = geometry.closest_points(surface, points)
    np.testing.assert_allclose(closest, [[2, 2, 0], [10, 0, 0], [0, 0, 0], [5, 5, 0]],
                               atol=1e-9)
    np.testing.assert_allclose(distance, [3, 10, np.sqrt(2), np.sqrt(3)], atol=1e-9)


def write_now(root, mesh, scan, subject="FaMoS_subject_01"):
    vertices, triangles, keypoints = mesh
    seven = keypoints[list(NOW_SEVEN)]
    names = [f"{subject}/multiview_neutral/IMG_0001", f"{subject}/selfie/IMG_0002"]
    (root / "imagepathsvalidation.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "imagepathsvalidation.txt").write_text("\n".join(n + ".jpg" for n in names) + "\n")
    formats.write_obj(root / "scans" / subject / "natural_head_rotation.000001.obj", scan,
                      triangles)
    formats.write_pp(root / "scans_lmks_onlypp" / subject /
                     "natural_head_rotation.000001_picked_points.pp", scan[seven])
    return names


def test_now_recovers_a_known_surface_offset_under_any_similarity(tmp_path, face_mesh):
    rng = np.random.default_rng(2)
    vertices, triangles, keypoints = face_mesh
    offset = 0.3
    transform = random_similarity(rng, 40.0)
    scan = geometry.apply(transform, pushed_scan(vertices, triangles, offset, rng))
    names = write_now(tmp_path / "now", face_mesh, scan)
    predictions = tmp_path / "predictions"
    for name in names:
        mesh_path, landmark_path = now.prediction_paths(predictions, name)
        formats.write_obj(mesh_path, *now.prediction(vertices, triangles, keypoints)[:2])
        landmark_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(landmark_path, now.prediction(vertices, triangles, keypoints)[2])
    summary, records, values = now.score(tmp_path / "now", predictions)
    # The truth: each kept scan point's distance to the clean mesh, in the
    # mesh's own frame (no alignment), times the similarity's scale.
    pushed = geometry.invert(transform, scan)
    kept = now.crop_mask(scan, scan[keypoints[list(NOW_SEVEN)]])
    _, truth, _ = geometry.closest_points(geometry.mesh(vertices, triangles), pushed[kept])
    truth = np.tile(truth * transform[0], 2)                      # two photos
    assert summary["images"] == 2 and summary["missing"] == 0 and values.size == truth.size
    # Scaled ICP lowers the squared distances below the true placement's a
    # little (7 degrees of freedom absorb some of the random signs), never much.
    root_mean_square = np.sqrt(np.mean(values ** 2))
    assert 0.85 * np.sqrt(np.mean(truth ** 2)) < root_mean_square <= np.sqrt(
        np.mean(truth ** 2)) * 1.001
    # The spread grows by what the fit absorbs of the random signs on this
    # coarse scan (about 380 points a photo): 0.04 mm of 0.25, measured.
    for name, statistic in (("median", np.median), ("mean", np.mean), ("std", np.std)):
        np.testing.assert_allclose(summary[name], statistic(truth), rtol=0,
                                   atol=0.2 * truth.mean(), err_msg=name)
    # The same files through the command line.
    result = run_evaluate("now", "--data", tmp_path / "now", "--predictions", predictions,
                          "--output", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((tmp_path / "out" / "now.json").read_text())
    np.testing.assert_allclose(document["summary"]["median"], summary["median"])
    assert (tmp_path / "out" / "now_curve.png").exists()


def test_florence_recovers_a_known_surface_offset(tmp_path, face_mesh):
    rng = np.random.default_rng(3)
    vertices, triangles, keypoints = face_mesh
    offset = 0.3
    scale, rotation, shift = random_similarity(rng, 6.0)
    scan = geometry.apply((1.0, rotation, shift), pushed_scan(vertices, triangles, offset, rng))
    subject = tmp_path / "micc" / "subject_01"
    formats.write_obj(subject / "Model" / "frontal1" / "obj" / "110920150452.obj", scan,
                      triangles)
    predictions = tmp_path / "predictions"
    # The prediction at another scale: scaled ICP takes it back.
    formats.write_obj(predictions / "subject_01" / "frame00000.obj", vertices * scale, triangles)
    np.save(predictions / "subject_01" / "frame00000.npy",
            vertices[keypoints[NOSE_TIP]] * scale)
    summary, records, values = florence.score(tmp_path / "micc", predictions)
    assert summary["meshes"] == 1 and summary["subjects"] == 1
    # The truth: the point-to-plane distances of the pushed points to the clean mesh.
    surface = geometry.mesh(vertices, triangles)
    pushed = geometry.invert((1.0, rotation, shift), scan)
    tip = scan[keypoints[NOSE_TIP]]
    kept = np.linalg.norm(scan - tip, axis=1) <= florence.RADIUS_MM
    truth = geometry.point_to_plane(surface, (1.0, np.eye(3), np.zeros(3)), pushed[kept])
    assert abs(records[0]["points"] - kept.sum()) <= 0.05 * kept.sum() < len(scan)
    expected = np.sqrt(np.mean(truth ** 2))
    assert 0.85 * expected < summary["mean"] <= 1.1 * expected, (summary["mean"], expected)


def test_now_and_florence_with_a_network_end_to_end(tmp_path, face_mesh, converted_bfm):
    """--model writes meshes and landmarks in each benchmark's layout, then scores them."""
    import shutil

    from tests.synthetic_network import write_tiny_rnet
    from tests.synthetic_video import make_moving_face_video

    rng = np.random.default_rng(4)
    vertices, triangles, keypoints = face_mesh
    scan = geometry.apply(random_similarity(rng, 10.0), vertices)
    names = write_now(tmp_path / "now", face_mesh, scan)
    for i, name in enumerate(names):
        photo = tmp_path / "now" / "iphone_pictures" / f"{name}.jpg"
        photo.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "input" / "astronaut.png", photo)
        if i == 0:           # the dataset's face box for one of them, MTCNN for the other
            box = tmp_path / "now" / "detected_face" / f"{name}.npy"
            box.parent.mkdir(parents=True, exist_ok=True)
            np.save(box, {"left": 150.0, "top": 60.0, "right": 290.0, "bottom": 250.0})
    subject = tmp_path / "micc" / "subject_01"
    formats.write_obj(subject / "Model" / "frontal1" / "obj" / "scan.obj", scan, triangles)
    (subject / "Video").mkdir()
    make_moving_face_video(subject / "Video" / "Indoor-Cooperative.avi", n_frames=6,
                           markers=False)
    model = write_tiny_rnet(tmp_path / "tiny.pb")
    for benchmark, data in (("now", tmp_path / "now"), ("florence", tmp_path / "micc")):
        output = tmp_path / f"out_{benchmark}"
        result = run_evaluate(benchmark, "--data", data, "--model", model, "--bfm-dir",
                              converted_bfm, "--output", output, "--frames", 2, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads((output / f"{benchmark}.json").read_text())["summary"]
        assert np.isfinite(summary["mean"]), summary
        meshes = sorted((output / "predictions" / benchmark).rglob("*.obj"))
        assert len(meshes) == 2
        with open(meshes[0]) as handle:                  # no vertex colours (NoW's loader)
            assert len(handle.readline().split()) == 4
        assert all(np.load(m.with_suffix(".npy")).size == (21 if benchmark == "now" else 3)
                   for m in meshes)


def test_bad_benchmark_files_get_one_line_naming_the_file(tmp_path, face_mesh):
    from scipy.io import savemat as save

    rng = np.random.default_rng(5)
    cases = {}
    # AFLW2000-3D: a .mat that is not one, and a pose that is not finite.
    garbage = tmp_path / "garbage"
    write_aflw(garbage, random_faces(rng, 1), [10.0])
    (garbage / "image00000.mat").write_bytes(b"not a mat file at all" * 10)
    cases["garbage.mat"] = ("aflw2000", garbage, garbage / "image00000.mat")
    nan_pose = tmp_path / "nan_pose"
    write_aflw(nan_pose, random_faces(rng, 1), [10.0])
    save(nan_pose / "image00000.mat", {"pt3d_68": np.ones((3, 68)),
                                        "Pose_Para": np.full((1, 7), np.nan)})
    cases["nan pose"] = ("aflw2000", nan_pose, nan_pose / "image00000.mat")
    for folder in (garbage, nan_pose):
        (tmp_path / f"{folder.name}_predictions").mkdir()
    # NoW: 7 landmarks of the wrong shape.
    vertices, triangles, keypoints = face_mesh
    names = write_now(tmp_path / "now", face_mesh, vertices)
    now_predictions = tmp_path / "now_predictions"
    for name in names:
        mesh_path, landmark_path = now.prediction_paths(now_predictions, name)
        formats.write_obj(mesh_path, vertices, triangles)
        landmark_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(landmark_path, np.zeros((6, 3)))
    cases["npy shape"] = ("now", tmp_path / "now", landmark_path.parent.parent)
    for label, (benchmark, data, named) in cases.items():
        predictions = tmp_path / f"{data.name}_predictions"
        result = run_evaluate(benchmark, "--data", data, "--predictions", predictions,
                              "--output", tmp_path / "out", cwd=tmp_path)
        assert result.returncode == 2, (label, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, label
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(str(named)), (label, lines)


def test_an_empty_data_folder_or_an_output_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "predictions").mkdir()
    empty = run_evaluate("aflw2000", "--data", tmp_path / "empty", "--predictions",
                         tmp_path / "predictions", "--output", tmp_path / "out", cwd=tmp_path)
    assert empty.returncode == 2 and "nothing of aflw2000 found" in empty.stderr
    assert not (tmp_path / "out" / "aflw2000.json").exists()
    (tmp_path / "a_file").write_text("x")
    on_file = run_evaluate("aflw2000", "--data", tmp_path / "empty", "--predictions",
                           tmp_path / "predictions", "--output", tmp_path / "a_file",
                           cwd=tmp_path)
    assert on_file.returncode == 2 and "a_file: exists and is not a folder" in on_file.stderr
    assert "Errno" not in on_file.stderr


def test_florence_samples_evenly_spread_frames_as_decoded(tmp_path):
    import av

    from tests.synthetic_video import make_moving_face_video

    video = tmp_path / "Indoor-Cooperative.avi"
    make_moving_face_video(video, n_frames=7, size=(96, 96))
    with av.open(str(video)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    sampled = florence.sample_frames(video, 3)
    assert [number for number, _ in sampled] == [0, 3, 6]
    for number, rgb in sampled:
        np.testing.assert_array_equal(rgb, decoded[number])
