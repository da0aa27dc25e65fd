"""One photo prepared for the network, a fit or training: crop, points, skin mask.

The one path every tool takes from a photo file to what the network and the
losses read (demo.py, evaluate.py, train.py prepare; a fit reads what it
gives):

1. the photo, upright (`fileio.images.read_image`);
2. its 5 alignment points (NAME.txt beside it, or MTCNN: `landmarks.sources`);
3. the release's alignment to the 224x224 crop (`preprocess_img.Preprocess`,
   docs/model.md#alignment);
4. for a fit or training: its 68 landmarks in the crop (NAME_lm68.txt
   beside it, else the release's detector or dlib's predictor) and the skin
   mask of the crop (`preparation.skin`), the data the release's training
   held for each photo.
"""
import collections
import pathlib

import numpy as np

from fileio.images import read_image

PreparedPhoto = collections.namedtuple(
    "PreparedPhoto",
    "name crop_bgr crop_rgb lm5_crop lm5_image trans_params lm68_crop skin_mask photo_rgb",
    defaults=(None, None, None))
PreparedPhoto.__doc__ = """One prepared photo.

Attributes:
  name: the photo's file name without extension (or the name given).
  crop_bgr: [224, 224, 3] float32 network input, BGR 0-255.
  crop_rgb: [224, 224, 3] uint8.
  lm5_crop: [5, 2] the 5 landmarks in crop pixels (x right, y down).
  lm5_image: [5, 2] the 5 landmarks in photo pixels.
  trans_params: [5] the release's alignment, [w0, h0, 102/s, t0, t1].
  lm68_crop: [68, 2] 68 landmarks in crop pixels, or None (with
    `targets` only; None when no source has them).
  skin_mask: [224, 224] float32 skin probability 0-255, or None (with
    `targets` only).
  photo_rgb: [H, W, 3] uint8 the photo itself, or None (with `keep_photo`
    only: UV textures sample it).
"""


def prepare_photo(path, landmarks, lm3d, targets=False, points=None, name=None,
                  keep_photo=False):
    """Reads a photo, finds its 5 landmarks and makes the aligned crop (and its targets).

    Args:
      path: the photo.
      landmarks: a `landmarks.sources.PhotoLandmarks`.
      lm3d: [5,3] standard landmarks of the mean face (`load_data.load_lm3d`).
      targets: also find the photo's 68 landmarks and skin mask.
      points: optional [5, 2] landmarks (photo pixels) or callable(path,
        image) -> [5, 2], used instead of the file or the detector.
      name: the result's name (default the file name without extension; a
        benchmark's may hold folders, "subject/IMG_0041").
      keep_photo: keep the photo's pixels (`photo_rgb`).

    Returns:
      A `PreparedPhoto`.

    Raises:
      InputError: unreadable photo, bad or missing landmark file, no face,
        landmarks outside the photo.
    """
    from preprocess_img import Preprocess

    path = pathlib.Path(path)
    image = read_image(path)
    lm5 = landmarks.five(path, image, points)
    crop_bgr, lm5_crop, trans_params = Preprocess(image, lm5, lm3d)
    crop_bgr = np.asarray(crop_bgr, np.float32)[0]
    crop_rgb = np.clip(crop_bgr[:, :, ::-1], 0, 255).astype(np.uint8)
    prepared = PreparedPhoto(name or path.stem, crop_bgr, crop_rgb,
                             np.asarray(lm5_crop, np.float64), lm5,
                             np.asarray(trans_params, np.float64),
                             photo_rgb=np.asarray(image) if keep_photo else None)
    if not targets:
        return prepared
    return prepared._replace(
        lm68_crop=landmarks.sixty_eight(path, image, lm5, crop_bgr, prepared.trans_params),
        skin_mask=skin_mask(crop_bgr))


def skin_mask(crop_bgr):
    """The release's skin probability of a crop, [224, 224] float32 0-255 (whole levels)."""
    from preparation.skin import skin_mask_png

    crop = np.clip(np.rint(crop_bgr), 0, 255).astype(np.uint8)
    return skin_mask_png(crop)[..., 0].astype(np.float32)
