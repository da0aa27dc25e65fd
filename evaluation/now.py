"""NoW (validation set): scan-to-mesh error of neutral-scan faces, by NoW's published protocol.

Data (as NoW distributes it): `imagepathsvalidation.txt` (one
`subject/challenge/IMG.jpg` per line), the photos under `iphone_pictures/`,
face boxes under `detected_face/` (a pickled dict `left, top, right,
bottom` per photo, optional here), one scan per subject under
`scans/<subject>/*.obj` (millimetres) and its 7 landmarks under
`scans_lmks_onlypp/<subject>/*.pp`.

A prediction is a mesh and its 7 landmarks (right eye outer and inner
corners, left eye inner and outer, nose bottom, right and left mouth
corners), in NoW's submission layout `<subject>/<challenge>/<IMG>.obj` plus
`<IMG>.npy` [7, 3], so the files `--model` writes can be sent to NoW's test
server too. Ours: the unposed mesh of the front model (35,709 vertices) in
millimetres, without colours; the 7 landmarks are the mesh's vertices at
the BFM keypoints of iBUG points 36, 39, 42, 45, 33, 48 and 54. Expression
is kept by default (the PyTorch version's authors' choice, their issue
#21); `--expression neutral` sets it to zero (NoW's authors' advice for
BFM models).

Scoring, for each photo (NoW's `compute_error` steps):
1. the scan is cropped around c = n + 0.3 (b - n) (n the nose bottom, b
   the mean of the inner eye corners) with radius 1.4 (|l0 - l3| +
   |b - n|) / 2 (l0, l3 the outer eye corners), on its own landmarks;
2. the predicted mesh is placed on the scan by the similarity (scale,
   rotation, translation) of its 7 landmarks onto the scan's, then by the
   similarity that lowers the squared distance from the cropped scan to the
   mesh's surface (`geometry.refine_similarity`; NoW lowers the same
   distance with chumpy's solver);
3. the error is each cropped scan vertex's distance to the closest point
   on the mesh's surface (point to triangle), in mm.
The summary is the median, mean and standard deviation over all vertices
of all photos, as NoW's tables give them.
"""
import pathlib

import numpy as np

from evaluation import formats, geometry, report
from evaluation.benchmark import Scores
from evaluation.meshes import EXPRESSION, MeshBenchmark
from facemodel.keypoints import NOW_SEVEN

CHALLENGES = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
PAPER = {"Deng et al. 2019 (TensorFlow)": (1.23, 1.54, 1.29),
         "Deng et al. (PyTorch version)": (1.11, 1.41, 1.21)}
# The ICP rounds lower the distance of at most this many cropped scan points
# (drawn once per photo, fixed seed); the errors use every cropped point.
FIT_POINTS = 10000


def list_images(data_dir):
    """[(name "subject/challenge/IMG", photo path)] from imagepathsvalidation.txt."""
    data_dir = pathlib.Path(data_dir)
    listing = data_dir / "imagepathsvalidation.txt"
    if not listing.exists():
        from fileio.errors import InputError
        raise InputError(f"{listing}: not found (the NoW validation set's image list)")
    images = []
    for line in listing.read_text().splitlines():
        parts = line.strip().split("/")
        if len(parts) >= 3:
            relative = "/".join(parts[-3:])
            images.append((relative.rsplit(".", 1)[0], data_dir / "iphone_pictures" / relative))
    return images


def face_box(data_dir, name):
    """The dataset's face box of a photo, (left, top, right, bottom), or None."""
    path = pathlib.Path(data_dir) / "detected_face" / f"{name}.npy"
    if not path.exists():
        return None
    from fileio.errors import InputError

    try:   # NoW ships each box as a pickled dict: the one file read with pickles allowed.
        box = np.load(path, allow_pickle=True, encoding="latin1").item()
        return tuple(float(box[key]) for key in ("left", "top", "right", "bottom"))
    except Exception as error:    # unpickling can raise anything
        raise InputError(f"{path}: not a NoW face box, a dict with left, top, right, bottom "
                         f"({type(error).__name__})") from None


def scan(data_dir, subject):
    """A subject's scan: (vertices [N, 3] mm, landmarks [7, 3] mm)."""
    from fileio.errors import InputError

    data_dir = pathlib.Path(data_dir)
    meshes = sorted((data_dir / "scans" / subject).glob("*.obj"))
    points = sorted((data_dir / "scans_lmks_onlypp" / subject).glob("*.pp"))
    if not meshes or not points:
        raise InputError(f"{data_dir / 'scans' / subject}: no scan (.obj) or no landmarks "
                         "(.pp under scans_lmks_onlypp)")
    vertices, _ = formats.read_obj(meshes[0])
    landmarks = formats.read_pp(points[0])
    if landmarks.shape != (7, 3):
        raise InputError(f"{points[0]}: holds {len(landmarks)} points, NoW's scans have 7")
    kept = int(crop_mask(vertices, landmarks).sum())
    if kept < 3:
        raise InputError(f"{points[0]}: {kept} of {meshes[0].name}'s points lie in the crop "
                         "around these landmarks: they are not this scan's")
    return vertices, landmarks


def crop_mask(vertices, landmarks):
    """The scan vertices NoW keeps: within the radius around the face's centre (see above)."""
    nose, bridge = landmarks[4], landmarks[1:3].mean(axis=0)
    centre = nose + 0.3 * (bridge - nose)
    radius = 1.4 * (np.linalg.norm(landmarks[0] - landmarks[3])
                    + np.linalg.norm(bridge - nose)) / 2.0
    return np.linalg.norm(vertices - centre, axis=1) <= radius


prediction_paths = formats.mesh_paths    # <subject>/<challenge>/<image>.obj and .npy


def score_one(mesh_vertices, triangles, mesh_landmarks, scan_vertices, scan_landmarks):
    """One photo's errors: [K] distances (mm) of the cropped scan's vertices."""
    cropped = scan_vertices[crop_mask(scan_vertices, scan_landmarks)]
    surface = geometry.mesh(mesh_vertices, triangles)
    start = geometry.similarity(mesh_landmarks, scan_landmarks)
    sample = cropped
    if len(cropped) > FIT_POINTS:
        sample = cropped[np.random.default_rng(0).choice(len(cropped), FIT_POINTS,
                                                         replace=False)]
    transform, _, _ = geometry.refine_similarity(surface, sample, start)
    return geometry.distances(surface, transform, cropped)


def score(data_dir, predictions_dir):
    """Scores every photo of the validation list.

    Returns:
      `Scores`: summary median, mean, std (mm) over every cropped scan vertex
      of every scored photo, images, missing; values all those distances.
    """
    scans, records, everything = {}, [], []
    for name, _ in list_images(data_dir):
        subject = name.split("/")[0]
        mesh_path, landmark_path = prediction_paths(predictions_dir, name)
        record = {"name": name, "challenge": name.split("/")[1]}
        if not mesh_path.exists() or not landmark_path.exists():
            record["missing"] = True
            records.append(record)
            continue
        if subject not in scans:
            scans[subject] = scan(data_dir, subject)
        vertices, triangles = formats.read_obj(mesh_path)
        landmarks = formats.read_npy(landmark_path, (7, 3))
        errors = score_one(vertices, triangles, landmarks, *scans[subject])
        record.update(points=int(errors.size), median=round(float(np.median(errors)), 5),
                      mean=round(float(errors.mean()), 5))
        records.append(record)
        everything.append(errors)
    values = np.concatenate(everything) if everything else np.zeros(0)
    summary = {"median": float(np.median(values)) if values.size else float("nan"),
               "mean": float(values.mean()) if values.size else float("nan"),
               "std": float(values.std()) if values.size else float("nan"),
               "images": len(everything), "missing": len(records) - len(everything)}
    return Scores(summary, records, values)


def show(scores, output_dir):
    """Prints NoW's table with ours, and draws the cumulative distance curve."""
    summary, values = scores.summary, scores.values
    columns = ("median", "mean", "std")
    rows = [(label, list(v)) for label, v in PAPER.items()]
    rows.append(("ours", [summary[c] for c in columns]))
    report.print_table(f"NoW validation, scan-to-mesh error (mm); {summary['images']} photos "
                       f"({summary['missing']} without a prediction)", columns, rows)
    report.cumulative_curve(pathlib.Path(output_dir) / "now_curve.png", {"ours": values},
                            "scan-to-mesh distance (mm)", 8.0, "NoW validation")


def prediction(shape_mm, triangles, keypoints):
    """A mesh and its 7 NoW landmarks from an unposed shape.

    Args:
      shape_mm: [N, 3] vertices, mm.
      triangles: [F, 3] 0-based.
      keypoints: [68] 0-based vertex ids of the iBUG 68 points.

    Returns:
      (vertices, triangles, landmarks [7, 3]).
    """
    return shape_mm, triangles, shape_mm[np.asarray(keypoints)[list(NOW_SEVEN)]]


def region_points(detector, box, grow=0.25, side=400):
    """A photo's 5 points: MTCNN on the region of the dataset's face box, scaled down.

    Args:
      detector: a `landmarks.mtcnn.FivePointDetector`.
      box: (left, top, right, bottom) pixels.
      grow: margin added on each side, in box sides.
      side: the region's long side after scaling, at most.

    Returns:
      callable(path, PIL image) -> [5, 2] photo pixels.
    """
    def points(path, image):
        from PIL import Image

        left, top, right, bottom = box
        margin = grow * max(right - left, bottom - top)
        x0, y0 = max(int(left - margin), 0), max(int(top - margin), 0)
        x1, y1 = min(int(right + margin), image.width), min(int(bottom + margin), image.height)
        region = image.crop((x0, y0, x1, y1))
        scale = min(1.0, side / max(region.size))
        if scale < 1.0:
            region = region.resize((max(round(region.width * scale), 1),
                                    max(round(region.height * scale), 1)), Image.BILINEAR)
        found = detector(np.asarray(region), name=str(path))
        return (found + 0.5) / scale - 0.5 + [x0, y0]
    return points


class NoW(MeshBenchmark):
    """NoW's validation set, scan-to-mesh error (see the module docstring)."""
    name = "now"
    options = (EXPRESSION,)

    def images(self, args, data, work, detector, log):
        items = []
        for name, path in list_images(data):
            box = face_box(data, name)
            items.append((name, path, None if box is None else region_points(detector, box)))
        return items

    def landmarks(self, shape_mm, model):
        return prediction(shape_mm, model.triangles, model.keypoints)[2]

    def score(self, data, predictions):
        return score(data, predictions)

    def show(self, scores, output_dir):
        show(scores, output_dir)


BENCHMARK = NoW()
