"""What evaluate.py costs per image and per scan, on synthetic data of the benchmarks' sizes.

    python bench/make_assets.py            # once: the full-size model and ResNet-50 R-Net
    python bench/evaluate.py               # about 3 minutes on 2 cores

1. AFLW2000-3D with --model: `python evaluate.py aflw2000` as a child process
   on --images 450x450 images (the shared photos, resized; their hand-marked
   points stand in for the ground truth, which only the score uses), with
   bench/make_assets.py's ResNet-50 and full-size model: seconds per image
   end to end (MTCNN, the network, the files, the score), the process's
   start-up included and shown apart.
2. Scoring a NoW scan and a Florence mesh: a scan of --scan-points points
   drawn on the full-size model's mean face (about the vertex count of a
   NoW scan) under a random similarity, 0.3 mm of noise along the normals,
   against the mean face's mesh (35,709 vertices): seconds per scan for
   NoW's crop, landmark similarity, scaled ICP and distances, and for
   Florence's ICP and point-to-plane RMSE.
Prints the figures, then one JSON line.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench.common import DEFAULT_ASSETS, SHARED_IMAGES  # noqa: E402


def aflw_images(folder, count):
    """AFLW2000-3D-format images from the shared photos (hand-marked 68 stand-ins)."""
    from PIL import Image
    from scipy.io import savemat

    from landmarks.dlib68 import Landmark68Predictor
    from landmarks.files import read_landmarks

    photos = sorted(SHARED_IMAGES.glob("*.jpg"))
    predictor = Landmark68Predictor()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        with Image.open(photo) as image:
            rgb = image.convert("RGB")
            scale = np.array([450 / rgb.width, 450 / rgb.height])
            rgb = rgb.resize((450, 450))
        points, _ = predictor.from_points(np.asarray(rgb),
                                          read_landmarks(photo.with_suffix(".txt")) * scale)
        rgb.save(folder / f"image{i:05d}.jpg")
        savemat(folder / f"image{i:05d}.mat",
                {"pt3d_68": np.vstack([points.T, np.zeros((1, 68))]),
                 "Pose_Para": np.array([[0, np.radians(10.0 * (i % 9)), 0, 0, 0, 0, 1]])})


def part_aflw(args, work):
    data = work / "aflw"
    aflw_images(data, args.images)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, str(REPO_ROOT / "evaluate.py"), "aflw2000", "--data", str(data),
               "--model", str(args.assets / "network" / "FaceReconModel.pb"), "--bfm-dir",
               str(args.assets / "BFM"), "--output", str(work / "out")]
    start = time.perf_counter()
    subprocess.run(command[:2] + ["--help"], env=env, capture_output=True, check=True)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr[-3000:])
    summary = json.loads((work / "out" / "aflw2000.json").read_text())["summary"]
    match = re.search(r"(\d+) of (\d+) images", result.stderr)
    per_image = seconds / args.images
    print(f"\n1. AFLW2000-3D with --model: {args.images} images in {seconds:.1f} s, "
          f"{per_image:.2f} s per image (process start {startup:.1f} s); "
          f"{summary['images']} scored, {summary['missing']} without a face. "
          f"At this rate the 2,000 images take {2000 * per_image / 60:.0f} minutes.")
    return {"aflw_images": args.images, "aflw_seconds": round(seconds, 1),
            "aflw_s_per_image": round(per_image, 3), "aflw_scored": summary["images"],
            "aflw_reported": match.group(0) if match else None}


def part_scans(args):
    import point_cloud_utils
    from scipy.spatial.transform import Rotation

    import load_data
    from evaluation import florence, geometry, now
    from facemodel.keypoints import NOSE_TIP, NOW_SEVEN

    model = load_data.load_front_model(args.assets / "BFM" / "BFM_model_front.mat")
    vertices = np.asarray(model["meanshape"], np.float64).reshape(-1, 3) * 100.0
    triangles = np.asarray(model["tri"], np.int64) - 1
    keypoints = np.asarray(model["keypoints"], np.int64).reshape(-1) - 1
    rng = np.random.default_rng(0)
    faces, barycentric = point_cloud_utils.sample_mesh_random(vertices, triangles,
                                                              args.scan_points)
    points = np.einsum("nk,nkd->nd", barycentric, vertices[triangles[faces]])
    normals = geometry.mesh(vertices, triangles).face_normals[faces]
    points += normals * rng.choice([-0.3, 0.3], (len(points), 1))
    transform = (1.1, Rotation.from_euler("xyz", [5, -8, 3], degrees=True).as_matrix(),
                 np.array([10.0, -20.0, 30.0]))
    scan = geometry.apply(transform, points)
    landmarks = geometry.apply(transform, vertices[keypoints[list(NOW_SEVEN)]])
    start = time.perf_counter()
    errors = now.score_one(vertices, triangles, vertices[keypoints[list(NOW_SEVEN)]],
                           scan, landmarks)
    now_seconds = time.perf_counter() - start
    start = time.perf_counter()
    rmse, kept = florence.score_one(vertices, triangles,
                                    vertices[keypoints[NOSE_TIP]], scan)
    florence_seconds = time.perf_counter() - start
    print(f"\n2. Scoring a scan of {args.scan_points} points against the {len(vertices)}-vertex "
          f"mesh: NoW {now_seconds:.2f} s ({errors.size} points kept, median "
          f"{np.median(errors):.3f} mm for 0.33 mm of noise); Florence {florence_seconds:.2f} s"
          f" ({kept} points within 95 mm, RMSE {rmse:.3f} mm)")
    return {"scan_points": args.scan_points, "now_s_per_scan": round(now_seconds, 2),
            "now_points_kept": int(errors.size), "now_median_mm": round(float(
                np.median(errors)), 4), "florence_s_per_mesh": round(florence_seconds, 2),
            "florence_points_kept": kept, "florence_rmse_mm": round(rmse, 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=pathlib.Path, default=DEFAULT_ASSETS)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--scan-points", type=int, default=120000)
    parser.add_argument("--skip-aflw", action="store_true")
    args = parser.parse_args(argv)
    if not (args.assets / "network" / "FaceReconModel.pb").exists():
        parser.error(f"{args.assets}: run `python bench/make_assets.py` first")
    import load_data
    load_data.transferBFM09(args.assets / "BFM")
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    print(f"machine: {report['machine']}")
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        if not args.skip_aflw and SHARED_IMAGES.is_dir():
            report.update(part_aflw(args, pathlib.Path(tmp)))
        report.update(part_scans(args))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
