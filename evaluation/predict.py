"""`evaluate.py --model`: a benchmark's images reconstructed as the demo reconstructs photos.

The images go through the demo's own pipeline (`photos.pipeline.run_folder`
with `photos.tools`' reconstruction step, fitting included with
`--refine`), and each result is written in the benchmark's prediction
format (`evaluation.formats`), in a folder that `--predictions` would take:
scoring then reads the same files whoever made them. A rerun skips images
whose prediction exists (unless --overwrite).
"""
import numpy as np


class Predictor:
    """Reconstructs images into prediction files.

    Args:
      tools: `photos.tools.load_tools`' dict (no render or mesh needed).
      refine: Adam steps of a fit (0: none).
      batch_size: images per reconstruction step.
      expression: "keep" or "neutral" (meshes only).
      log: callable(line).
    """

    def __init__(self, tools, refine=0, batch_size=8, expression="keep", log=print):
        import load_data
        from landmark_detector import LandmarkDetector
        from photos.tools import reconstruction_step

        self.tools = tools
        self.refine = refine
        self.batch_size = batch_size
        self.expression = expression
        self.log = log
        self.detector = LandmarkDetector()
        self.step = reconstruction_step(tools, refine)
        self.model = load_data.load_front_model(tools["front_model_path"])
        self.triangles = np.asarray(self.model["tri"], np.int64) - 1
        self.keypoints = np.asarray(self.model["keypoints"], np.int64).reshape(-1) - 1

    def shape_mm(self, coeff):
        """The unposed mesh of coefficients, mm (expression kept or zeroed)."""
        from reconstruct_mesh import shape_formation

        expression = coeff[80:144] if self.expression == "keep" else np.zeros(64, np.float32)
        return shape_formation(coeff[:80], expression, self.model, np.float64) * 100.0

    def run(self, items, write):
        """Reconstructs images and writes each one's prediction.

        Args:
          items: list of (name, image path, points): points None (MTCNN), a
            [5, 2] array or callable(path, PIL image) -> [5, 2].
          write: callable(name, aligned, result) writing one prediction.

        Returns:
          (done names, failed [(path, reason)]).
        """
        from photos.align import align_photo
        from photos.pipeline import run_folder

        by_path = {str(path): (name, points) for name, path, points in items}

        def align(path):
            name, points = by_path[str(path)]
            return align_photo(path, "detect", self.detector, self.tools["lm3d"],
                               fit=self.refine > 0, predictor=self.tools.get("predictor"),
                               points=points, name=name)

        def write_one(aligned, result):
            write(aligned.name, aligned, result)

        return run_folder([path for _, path, _ in items], None, self.step, None, align,
                          batch_size=self.batch_size, log=self.log,
                          write=write_one)


def image_landmarks(aligned, result):
    """The reconstruction's 68 landmarks in the image's pixels."""
    from preprocess_img import map_to_original

    return map_to_original(result["lm_68p"], aligned.trans_params)


def region_points(detector, box, grow=0.25, side=400):
    """A `points` callable: MTCNN on the region of a given face box, scaled down.

    Args:
      detector: a `LandmarkDetector`.
      box: (left, top, right, bottom) pixels.
      grow: margin added on each side, in box sides.
      side: the region's long side after scaling, at most.
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
