"""The points of a photo, wherever they come from: the one place that builds the detectors.

A photo's 5 alignment points come from NAME.txt beside it or from MTCNN
(`FIVE_SOURCES`: "auto" takes the file when there is one); its 68
landmarks, which a fit and training need, from NAME_lm68.txt beside it,
else from the first available of the sources a tool asks for: the
release's detector graph on the aligned crop ("release", an optional user
asset) or dlib's predictor on the photo in the box of its 5 points
("dlib"). Every tool gets its detectors from `build`, so that swapping one
is one change here:

    demo.py, evaluate.py   build(five, ("dlib",) with --refine)
    train.py prepare       build("auto", ("release", "dlib"))
    extract.py             build("detect", ("dlib",), required): the video
                           tracker calls `detector` and `predictor` itself

All points are pixels, x right, y down: the 5 in the photo, the 68 in the
aligned crop (`preprocess_img.map_to_crop`), in the orders of
`facemodel.keypoints`.
"""
import pathlib

import numpy as np

from assets.catalog import LM68_PATH
from landmarks.files import check_inside, five_point_path, lm68_path, read_landmarks, read_lm68_file

FIVE_SOURCES = ("auto", "file", "detect")
SIXTY_EIGHT_SOURCES = ("release", "dlib")


class PhotoLandmarks:
    """A photo's 5 alignment points and 68 landmarks (see the module docstring).

    Build it with `build`.

    Args:
      five: where the 5 points come from, one of `FIVE_SOURCES`.
      detector: the 5-point detector (`landmarks.mtcnn.FivePointDetector`).
      predictor: dlib's loaded predictor (`landmarks.dlib68`), or None.
      crop_detector: the release's detector (`landmarks.release68`), or None.

    Attributes:
      detector, predictor, crop_detector: as given; a tool that tracks a
        video calls the first two itself.
    """

    def __init__(self, five, detector, predictor=None, crop_detector=None):
        if five not in FIVE_SOURCES:
            raise ValueError(f"five must be one of {FIVE_SOURCES}, got {five!r}")
        self.five_source = five
        self.detector = detector
        self.predictor = predictor
        self.crop_detector = crop_detector

    @property
    def has_sixty_eight(self):
        """Whether a photo without NAME_lm68.txt can still get its 68 points."""
        return self.predictor is not None or self.crop_detector is not None

    def five(self, path, image, given=None):
        """A photo's 5 alignment points.

        Args:
          path: the photo (NAME.txt is looked for beside it).
          image: the photo, a PIL RGB image.
          given: optional [5, 2] points or callable(path, image) -> [5, 2],
            used instead of the file or the detector.

        Returns:
          [5, 2] float64, photo pixels.

        Raises:
          InputError: a bad or missing landmark file, no face found, or
            points outside the photo (the message names the file).
        """
        path = pathlib.Path(path)
        if given is not None:
            points = np.asarray(given(path, image) if callable(given) else given, np.float64)
            check_inside(points, image.size, f"{path} (given landmarks)")
            return points
        landmark_file = five_point_path(path)
        if self.five_source == "file" or (self.five_source == "auto" and landmark_file.exists()):
            return read_landmarks(landmark_file, image.size)
        points = self.detector(np.asarray(image), name=str(path))
        check_inside(points, image.size, f"{path} (detected landmarks)")
        return points

    def sixty_eight(self, path, image, lm5, crop_bgr, trans_params):
        """A photo's 68 landmarks in its aligned crop, or None when no source has them.

        NAME_lm68.txt beside the photo (photo pixels, mapped into the crop),
        else the release's detector on the crop, else dlib's predictor on the
        photo in the box of its 5 points.

        Args:
          path: the photo.
          image: the photo, a PIL RGB image.
          lm5: [5, 2] its alignment points, photo pixels.
          crop_bgr: [224, 224, 3] its aligned crop, BGR 0-255.
          trans_params: [5] its alignment (`preprocess_img.Preprocess`).

        Returns:
          [68, 2] float64 crop pixels, or None.

        Raises:
          InputError: NAME_lm68.txt exists but is not a 68-landmark file.
        """
        from preprocess_img import map_to_crop

        path = pathlib.Path(path)
        landmark_file = lm68_path(path)
        if landmark_file.exists():
            return map_to_crop(read_lm68_file(landmark_file, image.size), trans_params)
        if self.crop_detector is not None:
            return self.crop_detector(np.asarray(crop_bgr)[None])[0]
        if self.predictor is not None:
            lm68, _ = self.predictor.from_points(np.asarray(image), lm5)
            return map_to_crop(lm68, trans_params)
        return None

    def close(self):
        if self.crop_detector is not None:
            self.crop_detector.close()


def build(five="auto", sixty_eight=(), release_graph=None, on_unavailable=None):
    """Builds a tool's landmark sources.

    Args:
      five: where the 5 points come from, one of `FIVE_SOURCES`.
      sixty_eight: the 68-point sources for photos without NAME_lm68.txt,
        in order of preference, from `SIXTY_EIGHT_SOURCES`; the first
        available one is used. "release" is available when `release_graph`
        is given or the release's detector sits at its default place
        (network/landmark68_detector.pb); "dlib" when dlib and its weights
        are installed.
      release_graph: the release's detector graph, or None for its default
        place.
      on_unavailable: callable(error) told when "dlib" is asked for and not
        installed (the photos then have no 68-point source); None raises.

    Returns:
      A `PhotoLandmarks`.

    Raises:
      AssetError: a release detector graph that is missing or broken;
        `landmarks.dlib68.PredictorUnavailable` when dlib is needed and not
        installed, and `on_unavailable` is None.
    """
    from landmarks.mtcnn import FivePointDetector

    unknown = sorted(set(sixty_eight) - set(SIXTY_EIGHT_SOURCES))
    if unknown:
        raise ValueError(f"unknown 68-point sources {unknown}; known: {SIXTY_EIGHT_SOURCES}")
    predictor = crop_detector = None
    for source in sixty_eight:
        if source == "release" and (release_graph is not None or LM68_PATH.exists()):
            from landmarks.release68 import Landmark68Detector

            crop_detector = Landmark68Detector(release_graph or LM68_PATH)
            break
        if source == "dlib":
            from landmarks.dlib68 import Landmark68Predictor, PredictorUnavailable

            predictor = Landmark68Predictor()
            try:
                predictor.load()
            except PredictorUnavailable as error:
                if on_unavailable is None:
                    raise
                on_unavailable(error)
                predictor = None
            break
    return PhotoLandmarks(five, FivePointDetector(), predictor, crop_detector)
