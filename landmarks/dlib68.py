"""68 facial landmarks from dlib's shape predictor, given where the face is.

The predictor is dlib's ensemble of regression trees (Kazemi and Sullivan,
2014) with the weights `shape_predictor_68_face_landmarks.dat`, which the
`face-recognition-models` package ships (dlib itself comes from the prebuilt
`dlib-bin` wheel): nothing is downloaded at run time. Its 68 points follow
the iBUG 300-W order, the release's 68-point order and that of the BFM
keypoints. It takes about 1 ms a face on one core, but it needs a box around
the face, and it was trained on the boxes of dlib's HOG face detector: it is
most accurate from a box placed as that detector places it.

We never run the HOG detector (it misses turned faces that MTCNN finds, and
costs tens of milliseconds a frame). Boxes come from points already known: 5
points (MTCNN's, or a landmark file's) or 68 points (the previous frame's),
each by a fixed rule, `box_from_points`: a square centred at the points'
centroid moved by a fixed offset, with a side proportional to the points'
RMS spread. The constants were measured on the shared photos
(`../shared/data/images`, 17 people, and input/astronaut.png), as the mean
over the photos of the HOG detector's box against the hand-marked 5 points
and against the predictor's 68 points in that box;
tests/test_landmark_predictor.py checks that the rule's boxes overlap the
HOG detector's on those photos.

The 5 alignment points of a prediction are taken with
`facemodel.keypoints.EYE_CONTOUR_FIVE`: the eye contours' means (36-41 and
42-47), rather than the corners' (36, 39 and 42, 45, which the mean face's
use), are closest to hand-marked eye centres: on the shared photos the
predictor's 5 points miss the hand-marked ones by 0.053 eye distances on
average with the contours, 0.057 with the corners.
"""
import pathlib
import threading

import numpy as np

from assets.catalog import AssetError

# Box rules (see the module docstring): the offset of the box centre from the
# points' centroid and the side of the box, both in units of the points' RMS
# distance from their centroid.
BOX_FROM_68 = {"offset": (-0.021, -0.167), "side": 2.82}
BOX_FROM_5 = {"offset": (-0.052, -0.070), "side": 3.81}

INSTALL_HINT = "pip install dlib-bin face-recognition-models"


class PredictorUnavailable(AssetError):
    """dlib or its 68-point weights are not installed; the message says how to get them."""


def model_path():
    """The path of `shape_predictor_68_face_landmarks.dat` in face-recognition-models.

    The package is found without being imported: its `__init__` imports
    setuptools' `pkg_resources`, which setuptools 81 removed (and which
    earlier versions warn about on stderr); the file lies in its `models/`.

    Raises:
      PredictorUnavailable: the package is not installed or lacks the file.
    """
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise PredictorUnavailable("dlib's 68-point shape predictor is not installed "
                                   f"({INSTALL_HINT})")
    folder = pathlib.Path(next(iter(spec.submodule_search_locations)))
    path = folder / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise PredictorUnavailable(f"{path}: missing from face-recognition-models "
                                   f"(reinstall: {INSTALL_HINT})")
    return path


def box_from_points(points):
    """The box the predictor expects for a face, from its 5 or 68 points.

    Args:
      points: [5, 2] (the release's 5 points) or [68, 2] (iBUG order),
        pixels, x right, y down.

    Returns:
      [4] float64 (left, top, right, bottom), pixels: a square.

    Raises:
      ValueError: not 5 or 68 points.
    """
    points = np.asarray(points, np.float64)
    if points.shape not in ((5, 2), (68, 2)):
        raise ValueError(f"expected [5,2] or [68,2] points, got shape {points.shape}")
    rule = BOX_FROM_5 if len(points) == 5 else BOX_FROM_68
    centroid = points.mean(axis=0)
    spread = float(np.sqrt(((points - centroid) ** 2).sum(axis=1).mean()))
    centre = centroid + np.asarray(rule["offset"]) * spread
    half = rule["side"] * spread / 2.0
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def box_shift(box, other):
    """How far two boxes are apart: (centre distance / side of `box`, side ratio).

    Args:
      box, other: [4] (left, top, right, bottom).

    Returns:
      (shift, ratio): the distance between the centres in units of `box`'s
      side, and `other`'s side over `box`'s.
    """
    box, other = np.asarray(box, np.float64), np.asarray(other, np.float64)
    side = max(box[2] - box[0], 1e-9)
    centres = (box[:2] + box[2:]) / 2, (other[:2] + other[2:]) / 2
    return float(np.linalg.norm(centres[1] - centres[0]) / side), \
        float((other[2] - other[0]) / side)


class Landmark68Predictor:
    """dlib's 68-point shape predictor, loaded on first use (about 1 s, 100 MB).

    Calls are serialized, so one predictor can be shared by threads.

    Args:
      path: the .dat weights (default: face-recognition-models' file).
    """

    def __init__(self, path=None):
        self.path = path
        self._predictor = None
        self._dlib = None
        self._lock = threading.Lock()

    def load(self):
        """Loads the weights now (else on first use).

        Raises:
          PredictorUnavailable: dlib or the weights are missing.
        """
        with self._lock:
            if self._predictor is None:
                self._load()

    def _load(self):
        try:
            import dlib
        except ImportError:
            raise PredictorUnavailable("dlib is not installed, which the 68-point predictor "
                                       f"needs ({INSTALL_HINT})") from None
        path = pathlib.Path(self.path) if self.path is not None else model_path()
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as error:
            raise PredictorUnavailable(f"{path}: not a dlib shape predictor ({error})") from None
        self._dlib = dlib

    def __call__(self, image, box):
        """Predicts the 68 landmarks of the face in a box.

        Args:
          image: [H, W, 3] uint8 RGB or [H, W] uint8 grey.
          box: [4] (left, top, right, bottom), pixels (rounded to whole
            pixels, as dlib's boxes are); it may reach outside the image.

        Returns:
          [68, 2] float64 landmarks, pixels, x right, y down (whole pixels:
          dlib rounds them), iBUG order.

        Raises:
          PredictorUnavailable: dlib or the weights are missing.
        """
        pixels = np.ascontiguousarray(image, dtype=np.uint8)
        left, top, right, bottom = (int(round(v)) for v in box)
        with self._lock:
            if self._predictor is None:
                self._load()
            rectangle = self._dlib.rectangle(left, top, max(right, left + 1),
                                             max(bottom, top + 1))
            shape = self._predictor(pixels, rectangle)
            return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)],
                            np.float64)

    def from_points(self, image, points, refine=True):
        """Predicts the 68 landmarks of the face whose 5 or 68 points are known roughly.

        Args:
          image: [H, W, 3] uint8 RGB or [H, W] grey.
          points: [5, 2] or [68, 2] pixels.
          refine: predict a second time, from the box of the first
            prediction's 68 points (the predictor's own box rule; it
            corrects a first box placed from 5 points or from a face that
            has moved since).

        Returns:
          ([68, 2] float64 landmarks, [4] the box of the last prediction).
        """
        box = box_from_points(points)
        lm68 = self(image, box)
        if refine:
            box = box_from_points(lm68)
            lm68 = self(image, box)
        return lm68, box
