"""MICC Florence: RMSE of the face against each subject's neutral scan, as Deng et al. measured it.

What the paper's first author described (the release's issue #23): scaled
ICP ("SICP") for each reconstructed mesh, so that each gets its own scale;
the ground truth's vertices within 95 mm of its nose tip; the
point-to-plane distance after ICP; one RMSE over those vertices per mesh;
the mean and standard deviation over meshes.

What is not published, and what we chose:
- which frames were reconstructed: here `--frames K` (default 5) frames
  spread evenly over each subject's "Indoor-Cooperative" video, each one a
  mesh of its own (an image the face detector misses is skipped);
- how the ground truth's nose tip was found: the scans carry no
  landmarks; here it is the scan's vertex closest to the predicted nose
  tip (BFM keypoint of iBUG point 30) once the mesh is placed, starting
  from the scan's point that stands out most toward +z from its
  surroundings (the scans look along +z, y up, in mm; `protruding_point`),
  and placing again with the new crop until the tip moves by less than 1
  mm (at most 8 times);
- the forehead cut the paper mentions is not specified: not applied.

Data: `subject_XX/Model/frontal1/obj/*.obj` (the neutral scan, mm) and
`subject_XX/Video/Indoor-Cooperative.*` (a video FFmpeg reads). A
prediction is a mesh per frame, `<subject_XX>/<frame>.obj` (mm, any
topology; ours also writes `<frame>.npy` with its nose tip, [3], which
scoring uses when present, and the mesh's centroid otherwise).
"""
import pathlib

import numpy as np

from evaluation import formats, geometry, report
from evaluation.benchmark import Option, Scores
from evaluation.meshes import EXPRESSION, MeshBenchmark
from facemodel.keypoints import NOSE_TIP

RADIUS_MM = 95.0
PAPER = {"Genova et al. 2018": (1.77, 0.53), "Deng et al. 2019": (1.67, 0.50),
         "Deng et al. (PyTorch version)": (1.53, 0.45)}
FIT_POINTS = 10000
TIP_ROUNDS = 8             # crop, ICP, new nose tip: until the tip moves less than 1 mm


def list_subjects(data_dir):
    """[(subject, scan path, video path or None)] of the dataset, sorted."""
    found = []
    for folder in sorted(pathlib.Path(data_dir).glob("subject_*")):
        scans = sorted((folder / "Model" / "frontal1" / "obj").glob("*.obj"))
        if not scans:
            continue
        videos = sorted((folder / "Video").glob("Indoor-Cooperative.*"))
        found.append((folder.name, scans[0], videos[0] if videos else None))
    return found


def sample_frames(path, count):
    """`count` frames spread evenly over a video, as displayed: [(frame number, RGB uint8)].

X
    display rotation, damaged files), one to count the frames and one to keep
    the chosen ones, so that only those are ever held in memory.

    Raises:
      InputError: the video cannot be read or has no frames (one line).
    """
    from fileio.errors import InputError
    from fileio.video import FrameReader

    with FrameReader(path) as reader:
        total = sum(1 for _ in reader)
    if not total:
        raise InputError(f"{path}: no frames")
    chosen = set(np.round(np.linspace(0, total - 1, count)).astype(int).tolist())
    with FrameReader(path) as reader:
        return [(index, rgb) for index, _, rgb in reader if index in chosen]


def protruding_point(vertices, radius=30.0, samples=20000):
    """The scan's nose tip, roughly: the point that stands out most toward +z from
    the points around it (within `radius` mm), among up to `samples` points.

    Robust to a head turned or tilted by some degrees, where the scan's most
    forward point may be the forehead or a cheek."""
    from scipy.spatial import cKDTree

    points = vertices
    if len(points) > samples:
        points = points[np.random.default_rng(0).choice(len(points), samples, replace=False)]
    tree = cKDTree(points)
    neighbours = tree.query_ball_point(points, radius)
    around = np.array([points[ids, 2].mean() for ids in neighbours])
    return points[np.argmax(points[:, 2] - around)]


def score_one(mesh_vertices, triangles, nose_tip, scan_vertices, scan_tip=None):
    """One mesh's RMSE (mm) against a scan, and the number of scan points used.

    `scan_tip`: the scan's `protruding_point`, when the caller scores several
    meshes against one scan (computed here otherwise)."""
    surface = geometry.mesh(mesh_vertices, triangles)
    # Start: the mesh's nose tip on the scan's protruding point, no turn, scale 1.
    tip = protruding_point(scan_vertices) if scan_tip is None else scan_tip
    transform = (1.0, np.eye(3), tip - nose_tip)
    for _ in range(TIP_ROUNDS):
        cropped = scan_vertices[np.linalg.norm(scan_vertices - tip, axis=1) <= RADIUS_MM]
        sample = cropped
        if len(cropped) > FIT_POINTS:
            sample = cropped[np.random.default_rng(0).choice(len(cropped), FIT_POINTS,
                                                             replace=False)]
        transform, _, _ = geometry.refine_similarity(surface, sample, transform)
        placed_tip = geometry.apply(transform, nose_tip[None])[0]
        previous, tip = tip, scan_vertices[np.argmin(np.linalg.norm(scan_vertices - placed_tip,
                                                                    axis=1))]
        if np.linalg.norm(tip - previous) < 1.0:      # the crop no longer moves
            break
    cropped = scan_vertices[np.linalg.norm(scan_vertices - tip, axis=1) <= RADIUS_MM]
    distances = geometry.point_to_plane(surface, transform, cropped)
    return float(np.sqrt(np.mean(distances ** 2))), int(len(cropped))


def score(data_dir, predictions_dir):
    """Scores every predicted mesh of every subject.

    Returns:
      `Scores`: summary mean, std, median (mm) over meshes, meshes,
      subjects, missing (subjects); values the RMSE of each mesh.
    """
    records = []
    for subject, scan_path, _ in list_subjects(data_dir):
        meshes = sorted((pathlib.Path(predictions_dir) / subject).glob("*.obj"))
        if not meshes:
            records.append({"name": subject, "missing": True})
            continue
        scan_vertices, _ = formats.read_obj(scan_path)
        scan_tip = protruding_point(scan_vertices)      # once per scan, not per mesh
        for mesh_path in meshes:
            vertices, triangles = formats.read_obj(mesh_path)
            tip_path = mesh_path.with_suffix(".npy")
            tip = formats.read_npy(tip_path, (3,)) if tip_path.exists() \
                else vertices.mean(axis=0)
            rmse, points = score_one(vertices, triangles, tip, scan_vertices, scan_tip)
            records.append({"name": f"{subject}/{mesh_path.stem}", "rmse": round(rmse, 5),
                            "points": points})
    values = np.array([r["rmse"] for r in records if "rmse" in r])
    summary = {"mean": float(values.mean()) if values.size else float("nan"),
               "std": float(values.std()) if values.size else float("nan"),
               "median": float(np.median(values)) if values.size else float("nan"),
               "meshes": int(values.size),
               "subjects": len({r["name"].split("/")[0] for r in records if "rmse" in r}),
               "missing": sum(1 for r in records if r.get("missing"))}
    return Scores(summary, records, values)


def show(scores, output_dir):
    """Prints the paper's table with ours, and draws the cumulative RMSE curve."""
    summary, values = scores.summary, scores.values
    columns = ("mean", "std")
    rows = [(label, list(v)) for label, v in PAPER.items()]
    rows.append(("ours", [summary["mean"], summary["std"]]))
    report.print_table(f"MICC Florence, RMSE (mm) per mesh; {summary['meshes']} meshes of "
                       f"{summary['subjects']} subjects ({summary['missing']} subjects "
                       "without a prediction)", columns, rows)
    report.cumulative_curve(pathlib.Path(output_dir) / "florence_curve.png", {"ours": values},
                            "RMSE per mesh (mm)", 5.0, "MICC Florence")


def sampled_frames(data, folder, count, log):
    """Each subject's `count` frames as PNG files in `folder`: the images to reconstruct.

    A subject whose frames an earlier run sampled is not decoded again; one
    without a video, or whose video cannot be read, gets one line.

    Returns:
      [(name "subject_XX/frameNNNNN", PNG path, None)].
    """
    from fileio import result_files
    from fileio.errors import InputError

    items = []
    for subject, _, video in list_subjects(data):
        if video is None:
            log(f"{data / subject}: no Video/Indoor-Cooperative.*; skipped")
            continue
        written = sorted((folder / subject).glob("frame*.png"))
        if len(written) == count:     # sampled by an earlier run: not decoded again
            items += [(f"{subject}/{path.stem}", path, None) for path in written]
            continue
        try:
            frames = sample_frames(video, count)
        except InputError as error:
            log(str(error))
            continue
        for number, rgb in frames:
            path = folder / subject / f"frame{number:05d}.png"
            if not path.exists():
                result_files.write_png(path, rgb)
            items.append((f"{subject}/frame{number:05d}", path, None))
    return items


FRAMES = Option("--frames", dict(
    type=int, default=5,
    help="florence: frames reconstructed per subject's Indoor-Cooperative video (5)."), minimum=1)


class Florence(MeshBenchmark):
    """MICC Florence, RMSE per mesh (see the module docstring)."""
    name = "florence"
    options = (EXPRESSION, FRAMES)

    def images(self, args, data, work, detector, log):
        return sampled_frames(pathlib.Path(data), pathlib.Path(work) / "florence_frames",
                              args.frames, log)

    def landmarks(self, shape_mm, model):
        return shape_mm[model.keypoints[NOSE_TIP]]

    def score(self, data, predictions):
        return score(data, predictions)

    def show(self, scores, output_dir):
        show(scores, output_dir)


BENCHMARK = Florence()
