"""Photos: which files of a folder are photos, and reading one whatever a camera gives.

Every problem with one photo becomes an `InputError` whose message is one
line naming the file and the reason, so a caller working through a folder can
report it and go on with the next image.
"""
import pathlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fileio.errors import InputError

# The extensions (any case) of the photos a folder's listing takes: what
# Pillow reads.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .tif .tiff .webp .gif .ppm .pgm .pnm".split())


def is_photo(path):
    """True when the file name has a photo extension (any case)."""
    return pathlib.PurePath(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(folder):
    """Lists the photos of a folder (by extension, any case), sorted by name."""
    return sorted(p for p in pathlib.Path(folder).iterdir() if p.is_file() and is_photo(p))


def unique_names(paths):
    """Splits photos into those kept and those whose name (without extension) came before.

    Two photos a.jpg and a.png would write the same outputs; the first (in
    the order given) is kept.

    Args:
      paths: photo paths, in order.

    Returns:
      (kept, clashes): kept the paths whose name is new; clashes a list of
      (path, the earlier path with the same name).
    """
    kept, clashes, seen = [], [], {}
    for path in map(pathlib.Path, paths):
        if path.stem in seen:
            clashes.append((path, seen[path.stem]))
            continue
        seen[path.stem] = path
        kept.append(path)
    return kept, clashes


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
