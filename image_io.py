"""Reading photos and 5-point landmark files, whatever a camera or a phone gives.

Every problem with one input becomes an `InputError` whose message is one
line naming the file and the reason, so a caller working through a folder can
report it and go on with the next image.
"""
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Landmark order of the release: left eye, right eye, nose tip, left mouth
# corner, right mouth corner ("left" = smaller x in a frontal image).
NUM_LANDMARKS = 5


class InputError(ValueError):
    """A photo or landmark file that cannot be used; the message names the file."""


def read_image(path):
    """Reads a photo as 8-bit RGB, upright as a viewer would show it.

    JPEG EXIF orientation is applied. Alpha (RGBA, LA, palette transparency)
    is composited over black, the colour the aligned crop uses outside the
    photo. 16-bit and 32-bit grey levels are scaled to 0-255; CMYK, palette
    and grey images are converted to RGB.

    Args:
      path: path of any image file Pillow can decode.

    Returns:
      A PIL image in mode "RGB".

    Raises:
      InputError: the file is missing, unreadable, not an image, or empty.
    """
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: unreadable image ({error})") from None
    if image.width < 1 or image.height < 1:
        raise InputError(f"{path}: empty image ({image.width}x{image.height})")
    return _to_rgb(image)


def _to_rgb(image):
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        levels = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or levels.max() > 255:
            levels = levels / 257.0
        image = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        levels = np.asarray(image, dtype=np.float64)
        if np.nanmax(levels) <= 1.0:
            levels = levels * 255.0
        grey = np.clip(np.rint(np.nan_to_num(levels)), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, "L")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")


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
    if len(rows) != NUM_LANDMARKS:
        raise InputError(f"{path}: {len(rows)} points, expected {NUM_LANDMARKS} "
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
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
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
