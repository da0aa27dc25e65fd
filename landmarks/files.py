"""Landmark files a user puts beside a photo: NAME.txt (5 points) and NAME_lm68.txt (68).

NAME.txt holds the 5 alignment points, one "x y" line each (pixels, x right,
y down), in the release's order: left eye, right eye, nose tip, left mouth
corner, right mouth corner ("left" = smaller x in a frontal image).
NAME_lm68.txt holds 68 such lines in the iBUG order (`facemodel.keypoints`).
Every problem becomes an `InputError` naming the file.
"""
import numpy as np

from facemodel.keypoints import N_ALIGNMENT, N_LANDMARKS
from fileio.errors import InputError


def five_point_path(photo):
    """Where a photo's 5-point file is: NAME.txt beside it."""
    return photo.with_suffix(".txt")


def lm68_path(photo):
    """Where a photo's 68-point file is: NAME_lm68.txt beside it."""
    return photo.with_name(photo.stem + "_lm68.txt")


def read_landmarks(path, image_size=None):
    """Reads a 5-point landmark file: 5 lines of two numbers, x right, y down.

    Args:
      path: the text file.
      image_size: optional (width, height) of the photo; when given, every
        point must lie inside it.

    Returns:
      [5, 2] float64 array, in the release's order (left eye, right eye, nose,
      left mouth corner, right mouth corner).

    Raises:
      InputError: missing or unreadable file, a line that is not two numbers,
        not exactly 5 points, non-finite values, or points outside the image.
    """
    try:
        with open(path, "r", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: landmark file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: unreadable landmark file ({error})") from None
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise InputError(f"{path}: line {line_no} has {len(fields)} values, expected 2 (x y)")
        try:
            rows.append([float(fields[0]), float(fields[1])])
        except ValueError:
            raise InputError(f"{path}: line {line_no} is not two numbers: "
                             f"{line.strip()!r}") from None
    if len(rows) != N_ALIGNMENT:
        raise InputError(f"{path}: {len(rows)} points, expected {N_ALIGNMENT} "
                         "(left eye, right eye, nose, left and right mouth corners)")
    points = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(points)):
        raise InputError(f"{path}: landmarks contain non-finite values")
    if image_size is not None:
        check_inside(points, image_size, path)
    return points


def read_lm68_file(path, image_size):
    """Reads NAME_lm68.txt: 68 lines "x y", photo pixels (the iBUG 68-point order).

    Raises:
      InputError: not 68 rows of 2 finite numbers, or points outside the photo.
    """
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise InputError(f"{path}: not a 68-landmark file ({error})") from None
    except OSError as error:
        raise InputError(f"{path}: unreadable 68-landmark file ({error})") from None
    if points.shape != (N_LANDMARKS, 2) or not np.all(np.isfinite(points)):
        raise InputError(f"{path}: must hold 68 lines of 2 numbers, got shape {points.shape}")
    size = np.array(image_size, np.float64)
    if np.any(points < -0.5 * size) or np.any(points > 1.5 * size):   # Far outside.
        width, height = image_size
        raise InputError(f"{path}: landmarks lie far outside the {width}x{height} photo")
    return points


def check_inside(points, image_size, name):
    """Raises InputError unless every [x, y] point lies inside the image.

    Args:
      points: [K, 2] array, pixel coordinates (x right, y down).
      image_size: (width, height) in pixels.
      name: the file to name in the message.
    """
    width, height = image_size
    outside = ((points[:, 0] < 0) | (points[:, 0] > width - 1)
               | (points[:, 1] < 0) | (points[:, 1] > height - 1))
    if outside.any():
        first = points[np.argmax(outside)]
        raise InputError(f"{name}: landmark ({first[0]:g}, {first[1]:g}) lies outside "
                         f"the {width}x{height} image")
