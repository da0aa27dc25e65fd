"""The 68 landmarks' order and the points the tools name in it (docs/model.md#landmarks).

Every 68-point set in the project, the model's `keypoints`, the release's
detector, dlib's predictor and the files a user brings, follows the iBUG
300-W order (0-based here): jaw 0-16, brows 17-26, nose ridge 27-30,
nostrils 31-35, eyes 36-41 and 42-47 (the subject's right eye first, the
smaller x in a frontal photo), outer lips 48-59, inner lips 60-67.

Five points align a photo, in the landmark files' order: left eye, right
eye, nose tip, left mouth corner, right mouth corner ("left" is the smaller
x in a frontal photo). Two rules make them from 68 points:

- `EYE_CORNER_FIVE`: each eye as the mean of its two corners (36 and 39, 42
  and 45). The release builds the mean face's 5 points this way
  (`load_data.load_lm3d`), and a fit compares a reconstruction's 5 points
  with a photo's by the same rule.
- `EYE_CONTOUR_FIVE`: each eye as the mean of its six contour points. From
  points a predictor found on a photo this is closest to hand-marked eye
  centres (`landmarks.dlib68`).
"""
import numpy as np

N_LANDMARKS = 68
N_ALIGNMENT = 5

NOSE_TIP = 30
NOSE_BOTTOM = 33
MOUTH_CORNERS = (48, 54)
# The nose ridge's lower part with the tip, and the inner lips: the points
# the release's landmark loss weighs 20 times.
NOSE_RIDGE_AND_TIP = (28, 29, 30)
INNER_LIPS = tuple(range(60, 68))

# Each of the 5 alignment points as the mean of these of the 68.
EYE_CORNER_FIVE = ((36, 39), (42, 45), (NOSE_TIP,), (MOUTH_CORNERS[0],), (MOUTH_CORNERS[1],))
EYE_CONTOUR_FIVE = (tuple(range(36, 42)), tuple(range(42, 48)), (NOSE_TIP,),
                    (MOUTH_CORNERS[0],), (MOUTH_CORNERS[1],))
# NoW's 7 points: the eyes' outer and inner corners, the nose bottom, the
# mouth corners.
NOW_SEVEN = (36, 39, 42, 45, NOSE_BOTTOM, *MOUTH_CORNERS)


def five_points(lm68, rule=EYE_CONTOUR_FIVE):
    """The 5 alignment points of 68 landmarks.

    Args:
      lm68: [..., 68, D] landmarks in the iBUG order (D = 2 or 3).
      rule: `EYE_CONTOUR_FIVE` (default) or `EYE_CORNER_FIVE`.

    Returns:
      [..., 5, D] in the landmark files' order, in the dtype of `lm68` when
      it is floating (the means are taken in it), else float64.
    """
    lm68 = np.asarray(lm68)
    if lm68.dtype.kind != "f":
        lm68 = lm68.astype(np.float64)
    return np.stack([lm68[..., list(rows), :].mean(axis=-2) for rows in rule], axis=-2)
