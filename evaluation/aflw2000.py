"""AFLW2000-3D: 68-point alignment error by yaw, as 3DDFA, PRNet and Deng et al. report it.

The protocol (3DDFA's benchmark script, which the later papers follow):
- each image's NME is the mean over the 68 points of the 2D distance between
  predicted and ground-truth points (`pt3d_68`'s x and y), divided by
  sqrt(w h) of the ground-truth points' bounding box, times 100;
- images are binned by |yaw| from `Pose_Para` (radians): [0, 30], (30, 60],
  (60, 90] degrees (a few annotations pass 90: they go to the last bin);
- "overall" is the mean of the three bins' means, which balances the bins
  (the paper's 3.37 is this mean of 2.56, 3.11 and 4.45).

The 5 points that align an image for the network: MTCNN's by default;
`--align gt` takes them from the ground truth's 68 (eye contour means, nose
tip, mouth corners). The release's authors used an in-house detector
(their issue #99), so neither is exactly what they did, and ground-truth
alignment flatters the result. An image on which MTCNN finds no face has
no prediction and is counted as missing, not scored.
"""
import pathlib

import numpy as np

from evaluation import formats, report
from evaluation.benchmark import Benchmark, Option, Scores

BINS = (("0-30", 0.0, 30.0), ("30-60", 30.0, 60.0), ("60-90", 60.0, np.inf))
PAPER = {"Deng et al. 2019": (2.56, 3.11, 4.45, 3.37), "3DDFA 2016": (3.78, 4.54, 7.93, 5.42),
         "PRN 2018": (2.75, 3.51, 4.61, 3.62), "Bulat et al. 2017": (2.47, 3.01, 4.31, 3.26)}


def list_images(data_dir):
    """The benchmark's images: [(name, image path, annotation path)], sorted."""
    data_dir = pathlib.Path(data_dir)
    found = []
    for mat in sorted(data_dir.glob("*.mat")):
        image = next((mat.with_suffix(s) for s in (".jpg", ".png", ".jpeg")
                      if mat.with_suffix(s).exists()), None)
        if image is not None:
            found.append((mat.stem, image, mat))
    return found


def prediction_path(predictions_dir, name):
    return pathlib.Path(predictions_dir) / f"{name}_lm68.txt"


def nme(predicted, truth):
    """The normalised mean error of one image (percent).

    Args:
      predicted, truth: [68, 2] points, image pixels.
    """
    truth = np.asarray(truth, np.float64)
    size = np.sqrt(np.prod(truth.max(axis=0) - truth.min(axis=0)))
    return float(np.linalg.norm(np.asarray(predicted) - truth, axis=1).mean() / size * 100.0)


def yaw_bin(yaw_degrees):
    """The bin name of a yaw (degrees, either sign)."""
    yaw = abs(yaw_degrees)
    return next(name for name, low, high in BINS if yaw <= high and (yaw > low or low == 0))


def summarise(records):
    """The table: each bin's mean NME and the mean of the bins' means (of the bins
    that hold images: on the whole dataset, all three)."""
    summary = {}
    for name, _, _ in BINS:
        values = [r["nme"] for r in records if r["bin"] == name]
        summary[name] = float(np.mean(values)) if values else float("nan")
    present = [summary[name] for name, _, _ in BINS if np.isfinite(summary[name])]
    summary["overall"] = float(np.mean(present)) if present else float("nan")
    return summary


def score(data_dir, predictions_dir):
    """Scores the predictions of every image.

    Returns:
      `Scores`: records one dict per image (name, yaw, bin, nme, or missing:
      true when the image has no prediction); values the NMEs.
    """
    from PIL import Image

    from landmarks.files import read_lm68_file

    records = []
    for name, image, annotation in list_images(data_dir):
        truth, yaw = formats.read_aflw_mat(annotation)
        record = {"name": name, "yaw": round(yaw, 3), "bin": yaw_bin(yaw)}
        path = prediction_path(predictions_dir, name)
        if not path.exists():
            record["missing"] = True
        else:
            with Image.open(image) as opened:
                size = opened.size
            record["nme"] = round(nme(read_lm68_file(path, size), truth), 5)
        records.append(record)
    scored = [r for r in records if "nme" in r]
    summary = summarise(scored)
    summary["images"] = len(scored)
    summary["missing"] = len(records) - len(scored)
    return Scores(summary, records, [r["nme"] for r in scored])


def show(scores, output_dir):
    """Prints the paper's table with ours, and draws the cumulative NME curve."""
    summary = scores.summary
    columns = ("0-30", "30-60", "60-90", "overall")
    rows = [(label, [float(v) for v in values]) for label, values in PAPER.items()]
    rows.append(("ours", [summary[c] for c in columns]))
    report.print_table(f"AFLW2000-3D, 68-point NME (%) by yaw; {summary['images']} images"
                       f" ({summary['missing']} without a prediction)", columns, rows)
    report.cumulative_curve(pathlib.Path(output_dir) / "aflw2000_curve.png",
                            {"ours": scores.values},
                            "NME (%)", 10.0, "AFLW2000-3D, 68 points")


def gt_five_points(annotation):
    """The 5 alignment points from an annotation's 68 (for `--align gt`)."""
    from facemodel.keypoints import five_points

    truth, _ = formats.read_aflw_mat(annotation)
    return five_points(truth)


ALIGN = Option("--align", dict(
    choices=("mtcnn", "gt"), default="mtcnn",
    help="aflw2000: the 5 alignment points from MTCNN (default) or from the ground truth's 68 "
         "(not what the paper's authors did)."))


class AFLW2000(Benchmark):
    """AFLW2000-3D's 68-point NME by yaw (see the module docstring)."""
    name = "aflw2000"
    options = (ALIGN,)

    def images(self, args, data, work, detector, log):
        return [(name, image, gt_five_points(annotation) if args.align == "gt" else None)
                for name, image, annotation in list_images(data)]

    def predicted(self, predictions, name):
        return prediction_path(predictions, name).exists()

    def writer(self, args, tools, predictions):
        from preprocess_img import map_to_original

        def write(name, prepared, result):
            formats.write_lm68(prediction_path(predictions, name),
                               map_to_original(result["lm_68p"], prepared.trans_params))
        return write

    def score(self, data, predictions):
        return score(data, predictions)

    def show(self, scores, output_dir):
        show(scores, output_dir)


BENCHMARK = AFLW2000()
