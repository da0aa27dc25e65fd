"""Random shifts, scalings and rotations of training samples (`train.py --augment`).

The PyTorch release trains with this augmentation (its defaults: a shift of
up to 10 whole pixels on each axis, a scale within 1 +- 0.1 and a rotation
within +-10 degrees, about the crop's centre, no flip); the TensorFlow
release trains without, as `train.py` does unless asked.

Why each sample draws from a generator of its own, seeded by (the run's
seed, the step, the sample's row in the global batch): a run split over
several machines then draws, on each machine, what one machine would have
drawn for the same rows. No two rows, and so no two workers, share a draw;
the draws do not depend on how many workers there are; and a resumed run
draws again what it drew before the stop.
"""
import numpy as np

SHIFT_PIXELS = 10
SCALE_DELTA = 0.1
ROTATION_DEGREES = 10.0
_STREAM = 0x5EED        # keeps these draws apart from any other use of the run's seed


def draw(seed, step, row):
    """The transform of one sample: (shift_x, shift_y) whole pixels, scale, angle in degrees."""
    rng = np.random.default_rng([_STREAM, seed, step, row])
    shift = rng.integers(-SHIFT_PIXELS, SHIFT_PIXELS + 1, size=2)
    scale = 1.0 + SCALE_DELTA * rng.uniform(-1.0, 1.0)
    angle = ROTATION_DEGREES * rng.uniform(-1.0, 1.0)
    return float(shift[0]), float(shift[1]), float(scale), float(angle)


def matrix(shift_x, shift_y, scale, angle, size):
    """[2,3] the map of crop pixels (x right, y down) to augmented ones.

    A rotation by `angle` degrees (counter-clockwise as seen on the screen)
    and a scaling about the crop's centre, then the shift.
    """
    centre = size / 2.0
    theta = np.deg2rad(angle)
    c, s = scale * np.cos(theta), scale * np.sin(theta)
    linear = np.array([[c, s], [-s, c]])          # y down: screen counter-clockwise
    offset = np.array([centre + shift_x, centre + shift_y]) - linear @ [centre, centre]
    return np.concatenate([linear, offset[:, None]], axis=1)


def apply(image, landmarks, mask, transform):
    """Moves a sample by `transform` ([2,3] from `matrix`).

    Args:
      image: [H,W,3] float32 crop, 0-255.
      landmarks: [68,2] float32 crop pixels, y down.
      mask: [H,W] float32 skin mask, 0-255.

    Returns:
      (image, landmarks, mask) moved; pixels from outside the crop are 0
      (black, and outside the skin), interpolated bilinearly.
    """
    import cv2

    size = (image.shape[1], image.shape[0])
    warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    moved_image = cv2.warpAffine(image, transform, size, **warp)
    moved_mask = cv2.warpAffine(mask, transform, size, **warp)
    moved = landmarks @ transform[:, :2].T + transform[:, 2]
    return (moved_image.astype(np.float32), moved.astype(np.float32),
            moved_mask.astype(np.float32))


def augment_sample(sample, seed, step, row):
    """`apply` of the draw of (seed, step, row) to a (image, landmarks, mask) sample."""
    image, landmarks, mask = sample
    return apply(image, landmarks, mask, matrix(*draw(seed, step, row), size=image.shape[1]))
