"""One frame's alignment, with the release's numbers and a crop that reads only the face.

`preprocess_img.Preprocess` resizes the whole photo (bicubic) and then cuts
the 224x224 crop out of it: for a 1280x720 video frame that is about 8 ms,
most of it spent on pixels the crop never uses. Here the scale, translation,
crop offset, crop landmarks and `trans_params` are computed exactly as
`Preprocess` does, and Pillow resamples only the part of the frame the crop
shows (`Image.resize(..., box=...)`, the same bicubic filter on the same
output grid): about 3 ms on a 720p frame (bench/extract.py). The crop
equals `Preprocess`'s to within 2 grey levels (Pillow computes the region's
filter positions with a different rounding, which moves some of its
fixed-point filter weights by one unit); everything else is identical.
"""
import numpy as np
from PIL import Image

from preprocess_img import (
    CROP_SIZE,
    PIXELS_PER_UNIT,
    POS,
    _check_landmarks,
    crop_geometry,
    landmarks_in_crop,
)


def align_frame(frame, points, lm3d):
    """Aligns a frame for the network as `Preprocess` does, reading only the crop's region.

    Args:
      frame: [H, W, 3] uint8 RGB.
      points: [5, 2] landmarks, frame pixels (x right, y down).
      lm3d: [5, 3] standard 3D landmarks of the mean face.

    Returns:
      crop_bgr [224, 224, 3] float32 BGR 0-255 (zero outside the frame),
      lm5_crop [5, 2] float64 crop pixels (y down), trans_params [5] float64
      [w0, h0, 102/s, t0, t1].

    Raises:
      ValueError: points or lm3d not finite, or degenerate landmarks.
    """
    lm = _check_landmarks(points)
    lm3d = _check_landmarks(lm3d, "lm3D", 5, 3)
    h0, w0 = frame.shape[:2]
    lm_up = np.stack([lm[:, 0], h0 - 1 - lm[:, 1]], axis=1)
    t, s = POS(lm_up.T, lm3d.T)
    t0, t1, s, w, h, left, up = crop_geometry(w0, h0, t, s, CROP_SIZE)
    crop = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
    x0, y0 = max(left, 0), max(up, 0)
    x1, y1 = min(left + CROP_SIZE, w), min(up + CROP_SIZE, h)
    if x1 > x0 and y1 > y0:
        sx, sy = w0 / w, h0 / h
        box = np.array([x0 * sx, y0 * sy, x1 * sx, y1 * sy])
        # Only the frame's pixels under the filter (bicubic: 2 source pixels
        # a side, times the reduction) go to Pillow; the box moves with them.
        reach = 2.0 * max(sx, sy, 1.0) + 2.0
        wx0, wy0 = (max(int(v - reach), 0) for v in box[:2])
        wx1, wy1 = min(int(box[2] + reach) + 1, w0), min(int(box[3] + reach) + 1, h0)
        window = Image.fromarray(np.ascontiguousarray(frame[wy0:wy1, wx0:wx1]))
        part = window.resize((x1 - x0, y1 - y0), Image.BICUBIC,
                             box=tuple(box - [wx0, wy0, wx0, wy0]))
        crop[y0 - up:y1 - up, x0 - left:x1 - left] = np.asarray(part)
    lm_crop = landmarks_in_crop(lm_up, w0, h0, t0, t1, s, CROP_SIZE)
    lm_crop = np.stack([lm_crop[:, 0], CROP_SIZE - 1 - lm_crop[:, 1]], axis=1)
    trans_params = np.array([w0, h0, PIXELS_PER_UNIT / s, t0, t1])
    return crop[:, :, ::-1].astype(np.float32), lm_crop, trans_params


class Alignment:
    """One frame's alignment.

    Attributes:
      crop_bgr: [224, 224, 3] float32 network input, BGR 0-255.
      lm5: [5, 2] the points used, frame pixels.
      lm5_crop: [5, 2] the same points in crop pixels.
      trans_params: [5] the release's [w0, h0, 102/s, t0, t1].
      frame: [H, W, 3] uint8 the frame itself with `keep_frame`, else None
        (UV textures sample it).
    """

    __slots__ = ("crop_bgr", "lm5", "lm5_crop", "trans_params", "frame")

    def __init__(self, frame, points, lm3d, keep_frame=False):
        self.crop_bgr, self.lm5_crop, self.trans_params = align_frame(frame, points, lm3d)
        self.lm5 = np.asarray(points, np.float64)
        self.frame = frame if keep_frame else None
