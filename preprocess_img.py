"""Aligning a photo for the network (docs/model.md#alignment) and mapping results back.

The 5 detected landmarks are fitted to the mean face's 5 standard landmarks
with a least-squares affine camera (`POS`); its scale s and translation t give
a resize (by 102/s) and a 224x224 crop that puts the face where the network
expects it. `map_to_original` undoes the landmark mapping, so landmarks
predicted on the crop can be drawn on the user's own photo.

Results are those of the authors' release; only the way scalars are handled
differs (the release called float()/int() on 1-element arrays, which NumPy 2
rejects): every intermediate is a Python float and the release's
`.astype(np.int32)` casts are `int()`, which also truncates toward zero.
"""
import numpy as np
from PIL import Image

from facemodel.camera import IMAGE_SIZE

# The release's constants: the face is scaled so that one model unit
# (decimetre) spans 102 pixels of the 224x224 crop, the camera's image.
CROP_SIZE = IMAGE_SIZE
PIXELS_PER_UNIT = 102.0


def POS(xp, x):
    """Fits an affine camera to point pairs by least squares (8 unknowns).

    Each of the n points gives two rows, [X,Y,Z,1,0,0,0,0] -> x' and
    [0,0,0,0,X,Y,Z,1] -> y'. The scale is the mean norm of the two 3-vectors
    of the solution k, the translation (k[3], k[7]).

    Args:
      xp: [2,n] 2D points (pixels, y up), n >= 4.
      x: [3,n] the matching 3D points (model units).

    Returns:
      t: [2,1] float64 translation (pixels).
      s: float, scale (pixels per model unit).
    """
    xp = np.asarray(xp, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if xp.ndim != 2 or xp.shape[0] != 2 or x.shape != (3, xp.shape[1]):
        raise ValueError(f"POS needs xp [2,n] and x [3,n], got {xp.shape} and {x.shape}")
    n_points = xp.shape[1]
    system = np.zeros([2 * n_points, 8])
    system[0::2, 0:3] = x.T
    system[0::2, 3] = 1.0
    system[1::2, 4:7] = x.T
    system[1::2, 7] = 1.0
    target = xp.T.reshape(2 * n_points, 1)
    k, _, _, _ = np.linalg.lstsq(system, target, rcond=None)
    k = k.ravel()
    s = float((np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2)
    t = np.array([[k[3]], [k[7]]])
    return t, s


def _resized_size(w0, h0, s):
    """Size of the resized image, truncated toward zero as the release's int32 cast."""
    return int(w0 / s * PIXELS_PER_UNIT), int(h0 / s * PIXELS_PER_UNIT)


def process_img(img, lm, t, s, target_size=224.):
    """Resizes and crops an image given the fitted scale and translation.

    Args:
      img: RGB PIL image, size (w0, h0).
      lm: [n,2] landmarks in image coordinates flipped to y up (y' = h0 - 1 - y).
      t: [2] or [2,1] translation from `POS` (pixels, y up).
      s: scale from `POS`.
      target_size: crop size, pixels.

    Returns:
      img: [1,target_size,target_size,3] float32 crop, BGR, 0-255; pixels
        outside the resized image are 0.
      lm: [n,2] float64 landmarks in crop coordinates, still y up.

    Raises:
      ValueError: the scale gives an empty or absurdly large resized image.
    """
    w0, h0 = img.size
    t0, t1, s, w, h, left, up = crop_geometry(w0, h0, t, s, target_size)
    resized = img.resize((w, h), resample=Image.BICUBIC)
    size = int(round(target_size))
    crop = resized.crop((left, up, left + size, up + size))
    crop = np.asarray(crop)[:, :, ::-1].astype(np.float32)[np.newaxis]
    return crop, landmarks_in_crop(lm, w0, h0, t0, t1, s, target_size)


def crop_geometry(w0, h0, t, s, target_size=224.):
    """Where `process_img` puts the crop: the resized size and the crop's offset.

    Args:
      w0, h0: the image size, pixels.
      t: [2] or [2,1] translation from `POS`; s: its scale.
      target_size: crop size, pixels.

    Returns:
      (t0, t1, s, w, h, left, up): the translation and scale as floats, the
      resized size (truncated, as the release) and the crop's top-left corner
      in the resized image (truncated toward zero).

    Raises:
      ValueError: the scale gives an empty or absurdly large resized image.
    """
    t0, t1 = (float(v) for v in np.asarray(t, dtype=np.float64).reshape(-1)[:2])
    s = float(s)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"scale must be positive and finite, got {s}")
    w, h = _resized_size(w0, h0, s)
    if w < 1 or h < 1 or w * h > 400_000_000:
        raise ValueError(f"the landmarks give a resized image of {w}x{h} pixels: they are too "
                         "far apart or too close together")
    half = target_size / 2
    left = int(w / 2 - half + (t0 - w0 / 2) * PIXELS_PER_UNIT / s)
    up = int(h / 2 - half + (h0 / 2 - t1) * PIXELS_PER_UNIT / s)
    return t0, t1, s, w, h, left, up


def landmarks_in_crop(lm, w0, h0, t0, t1, s, target_size=224.):
    """Step 7 of docs/model.md#alignment: y-up image points -> y-up crop points.

    Args:
      lm: [n,2] points, image pixels, y up (y' = h0 - 1 - y).
      w0, h0, t0, t1, s: as `crop_geometry` gives them.

    Returns:
      [n,2] float64 points in the crop, y up.
    """
    w, h = _resized_size(w0, h0, s)
    half = target_size / 2
    lm = np.asarray(lm, dtype=np.float64)
    lm = np.stack([lm[:, 0] - t0 + w0 / 2, lm[:, 1] - t1 + h0 / 2], axis=1) / s * PIXELS_PER_UNIT
    return lm - np.array([[w / 2 - half, h / 2 - half]])


def _check_landmarks(lm, name="lm", n_points=5, n_dims=2):
    lm = np.asarray(lm)
    if lm.shape != (n_points, n_dims):
        raise ValueError(f"{name} must be [{n_points},{n_dims}], got shape {lm.shape}")
    if lm.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {lm.dtype}")
    lm = lm.astype(np.float64)
    if not np.all(np.isfinite(lm)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return lm


def Preprocess(img, lm, lm3D):
    """Aligns a photo for the network (docs/model.md#alignment).

    Args:
      img: PIL image of any mode (converted to RGB), size (w0, h0).
      lm: [5,2] landmarks, pixels, x right, y down: left eye, right eye, nose
        tip, left mouth corner, right mouth corner.
      lm3D: [5,3] standard 3D landmarks (`load_data.load_lm3d`).

    Returns:
      input_img: [1,224,224,3] float32, BGR, 0-255.
      lm_new: [5,2] float64, the landmarks in crop coordinates (y down).
      trans_params: [5] float64, [w0, h0, 102/s, t0, t1], what
        `map_to_original` needs.

    Raises:
      ValueError: lm is not [5,2] finite, lm3D not [5,3] finite, or the
        landmarks are degenerate.
    """
    lm = _check_landmarks(lm)
    lm3D = _check_landmarks(lm3D, "lm3D", 5, 3)
    if img.mode != "RGB":
        img = img.convert("RGB")
    w0, h0 = img.size
    # Image plane (y down) -> y up, as the 3D model's X-Y plane.
    lm = np.stack([lm[:, 0], h0 - 1 - lm[:, 1]], axis=1)
    t, s = POS(lm.T, lm3D.T)
    input_img, lm_new = process_img(img, lm, t, s)
    lm_new = np.stack([lm_new[:, 0], CROP_SIZE - 1 - lm_new[:, 1]], axis=1)
    trans_params = np.array([w0, h0, PIXELS_PER_UNIT / s, float(t[0, 0]), float(t[1, 0])])
    return input_img, lm_new, trans_params


def _check_mapping(points, trans_params):
    """Validates [K,2] points and trans_params; returns (points, (w0, h0, s, t0, t1))."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be [K,2], got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("points hold NaN or infinite values")
    params = np.asarray(trans_params, dtype=np.float64).reshape(-1)
    if params.shape != (5,) or not np.all(np.isfinite(params)) or params[2] <= 0 \
            or params[0] < 1 or params[1] < 1:
        raise ValueError(f"trans_params must be [w0, h0, 102/s, t0, t1] with positive sizes, "
                         f"got {trans_params}")
    w0, h0, scale, t0, t1 = (float(v) for v in params)
    return points, (int(round(w0)), int(round(h0)), PIXELS_PER_UNIT / scale, t0, t1)


def map_to_original(points, trans_params):
    """Maps points from crop coordinates back to the original image.

    The exact inverse of step 7 of docs/model.md#alignment:
      forward: x_c = (x' - t0 + w0/2) * 102/s - (w/2 - 112),
               y_c = 223 - [(y' - t1 + h0/2) * 102/s - (h/2 - 112)],  y' = h0 - 1 - y,
      inverse: x = (x_c + w/2 - 112) * s/102 + t0 - w0/2,
               y = h0 - 1 - [(223 - y_c + h/2 - 112) * s/102 + t1 - h0/2],
    where w = int(w0/s*102), h = int(h0/s*102) are the truncated sizes of the
    resized image, recomputed here with the same truncation (s = 102 /
    trans_params[2]). The fractional parts lost by that truncation (up to half
    a pixel of the crop) are therefore accounted for exactly. The crop's pixel
    grid itself starts at int(left) (a second truncation, step 5), which step 7
    does not use: as in the release, crop landmarks refer to the untruncated
    offset, and so does this inverse.

    Only when w0*102/s lies within a few float64 ulps of an integer can
    recovering s from 102/s flip that truncation by one (a 0.5*s/102 pixel
    shift); that happens with probability around 1e-13.

    Args:
      points: [K,2] points in crop coordinates (pixels of the 224x224 crop,
        x right, y down), e.g. `lm_new` or the 68 predicted landmarks.
      trans_params: [5] from `Preprocess`.

    Returns:
      [K,2] float64 points in the original image (pixels, x right, y down).

    Raises:
      ValueError: wrong shapes or non-finite values.
    """
    points, (w0, h0, s, t0, t1) = _check_mapping(points, trans_params)
    w, h = _resized_size(w0, h0, s)
    half = CROP_SIZE / 2
    x_up = (points[:, 0] + (w / 2 - half)) * s / PIXELS_PER_UNIT + t0 - w0 / 2
    y_up = ((CROP_SIZE - 1 - points[:, 1]) + (h / 2 - half)) * s / PIXELS_PER_UNIT + t1 - h0 / 2
    return np.stack([x_up, h0 - 1 - y_up], axis=1)


def map_to_crop(points, trans_params):
    """Maps points from the original image into the aligned crop (`Preprocess`'s own mapping).

    The forward map of `map_to_original` (step 7 of docs/model.md#alignment):
      x_c = (x' - t0 + w0/2) * 102/s - (w/2 - 112),
      y_c = 223 - [(y' - t1 + h0/2) * 102/s - (h/2 - 112)],  y' = h0 - 1 - y,
    with the truncated resized size w = int(w0/s*102), h = int(h0/s*102).
    Applied to the 5 input landmarks it gives `Preprocess`'s `lm_new`.

    Args:
      points: [K,2] points in the original image (pixels, x right, y down),
        e.g. 68 annotated landmarks.
      trans_params: [5] from `Preprocess`.

    Returns:
      [K,2] float64 points in crop coordinates (pixels of the 224x224 crop,
      x right, y down).

    Raises:
      ValueError: wrong shapes or non-finite values.
    """
    points, (w0, h0, s, t0, t1) = _check_mapping(points, trans_params)
    w, h = _resized_size(w0, h0, s)
    half = CROP_SIZE / 2
    y_up = h0 - 1 - points[:, 1]
    x_c = (points[:, 0] - t0 + w0 / 2) * PIXELS_PER_UNIT / s - (w / 2 - half)
    y_c = (y_up - t1 + h0 / 2) * PIXELS_PER_UNIT / s - (h / 2 - half)
    return np.stack([x_c, CROP_SIZE - 1 - y_c], axis=1)
