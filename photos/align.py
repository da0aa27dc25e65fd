"""One photo read and aligned for the network: its 5 landmarks, its crop, its fit targets.

The 5 landmarks come from NAME.txt beside the photo or from MTCNN
(`--landmarks`); the crop is `preprocess_img.Preprocess`'s, the release's
alignment. A fit (`demo.py --refine`) also needs what the release's
training data holds for each photo (`train.py prepare` makes the same):
68 landmarks in the crop, from NAME_lm68.txt beside the photo or else from
dlib's predictor on the photo, and the skin mask of the crop
(`training.skin`).
"""
import collections
import pathlib

import numpy as np

import image_io

Aligned = collections.namedtuple(
    "Aligned", "name crop_bgr crop_rgb lm5_crop lm5_image trans_params lm68_crop skin_mask",
    defaults=(None, None))
Aligned.__doc__ = """One aligned photo.

Attributes:
  name: the photo's file name without extension.
  crop_bgr: [224, 224, 3] float32 network input, BGR 0-255.
  crop_rgb: [224, 224, 3] uint8.
  lm5_crop: [5, 2] the 5 landmarks in crop pixels (x right, y down).
  lm5_image: [5, 2] the 5 landmarks in photo pixels.
  trans_params: [5] the release's alignment, [w0, h0, 102/s, t0, t1].
  lm68_crop: [68, 2] 68 landmarks in crop pixels, or None (fits only; None
    when neither a file nor the predictor gives them).
  skin_mask: [224, 224] float32 skin probability 0-255, or None (fits only).
"""


def align_photo(path, landmark_mode, detector, lm3d, fit=False, predictor=None, points=None,
                name=None):
    """Reads a photo, finds its 5 landmarks and makes the aligned network input.

    Args:
      path: the photo.
      landmark_mode: "auto", "file" or "detect" (see demo.py's --landmarks).
      detector: a `landmark_detector.LandmarkDetector`, used when detecting.
      lm3d: [5,3] standard landmarks of the mean face (`load_data.load_lm3d`).
      fit: also find the photo's 68 landmarks and skin mask.
      predictor: with `fit`, a `landmark_predictor.Landmark68Predictor` for
        photos without NAME_lm68.txt, or None (their 68 landmarks are then
        None).
      points: optional [5, 2] landmarks (photo pixels) or callable(path,
        image) -> [5, 2], used instead of `landmark_mode`'s.
      name: the name of the result (default the file name without
        extension; a benchmark's may hold folders, "subject/IMG_0041").

    Returns:
      An `Aligned` tuple.

    Raises:
      InputError: unreadable photo, bad or missing landmark file, no face,
        landmarks outside the photo.
    """
    from preprocess_img import Preprocess

    path = pathlib.Path(path)
    image = image_io.read_image(path)
    lm_path = path.with_suffix(".txt")
    if points is not None:
        lm5 = np.asarray(points(path, image) if callable(points) else points, np.float64)
        image_io.check_inside(lm5, image.size, f"{path} (given landmarks)")
    elif landmark_mode == "file" or (landmark_mode == "auto" and lm_path.exists()):
        lm5 = image_io.read_landmarks(lm_path, image.size)
    else:
        lm5 = detector(np.asarray(image), name=str(path))
        image_io.check_inside(lm5, image.size, f"{path} (detected landmarks)")
    crop_bgr, lm5_crop, trans_params = Preprocess(image, lm5, lm3d)
    crop_bgr = np.asarray(crop_bgr, np.float32)[0]
    crop_rgb = np.clip(crop_bgr[:, :, ::-1], 0, 255).astype(np.uint8)
    aligned = Aligned(name or path.stem, crop_bgr, crop_rgb, np.asarray(lm5_crop, np.float64),
                      lm5, np.asarray(trans_params, np.float64))
    if not fit:
        return aligned
    return aligned._replace(lm68_crop=landmarks68(path, image, lm5, aligned.trans_params,
                                                  predictor),
                            skin_mask=skin_mask(aligned.crop_bgr))


def landmarks68(path, image, lm5, trans_params, predictor=None):
    """A photo's 68 landmarks in its crop: NAME_lm68.txt, else dlib's predictor, else None.

    Args:
      path: the photo (NAME_lm68.txt is looked for beside it).
      image: the photo, a PIL RGB image.
      lm5: [5, 2] its 5 landmarks, photo pixels (the predictor's box).
      trans_params: [5] its alignment.
      predictor: a `landmark_predictor.Landmark68Predictor`, or None.

    Returns:
      [68, 2] float64 crop pixels (x right, y down), or None.

    Raises:
      InputError: NAME_lm68.txt exists but is not a 68-landmark file.
    """
    from preprocess_img import map_to_crop

    lm68_path = path.with_name(path.stem + "_lm68.txt")
    if lm68_path.exists():
        return map_to_crop(image_io.read_lm68_file(lm68_path, image.size), trans_params)
    if predictor is None:
        return None
    lm68, _ = predictor.from_points(np.asarray(image), lm5)
    return map_to_crop(lm68, trans_params)


def skin_mask(crop_bgr):
    """The release's skin probability of a crop, [224, 224] float32 0-255."""
    from training.skin import skin_mask_png

    crop = np.clip(np.rint(crop_bgr), 0, 255).astype(np.uint8)
    return skin_mask_png(crop)[..., 0].astype(np.float32)
