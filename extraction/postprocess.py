"""After the network: frames without a face, smoothing, one identity per video.

The blocks are read by name (`facemodel.coefficients.BLOCKS`): smoothing
moves expression, angles and translation; a video's identity and albedo are
the means over its frames (`facemodel.coefficients.mean_identity`).
"""
import numpy as np

from facemodel.coefficients import BLOCKS, mean_identity

# What moves from frame to frame with the face (identity, albedo and light do not).
MOTION_BLOCKS = ("expression", "angles", "translation")


def hold_last_valid(values, valid):
    """Gives each invalid frame the values of the last valid frame before it.

    Frames before the first valid one take the first valid frame's values.

    Args:
      values: [N, ...] per-frame values.
      valid: [N] bool, at least one True.

    Returns:
      [N, ...] a copy with the invalid rows filled.
    """
    valid = np.asarray(valid, bool)
    positions = np.where(valid, np.arange(valid.size), -1)
    source = np.maximum.accumulate(positions)
    source[source < 0] = np.flatnonzero(valid)[0]
    return np.asarray(values)[source]


def smooth_motion(coeff, window, polyorder=2):
    """Savitzky-Golay smoothing of pose, translation and expression over time.

    Identity, albedo and lighting are left as they are.

    Args:
      coeff: [N, L] coefficients (L >= 257), frames in order.
      window: the window in frames; made odd (rounded up) and at most N (or
        N - 1 when N is even); a window of 3 frames or fewer, or a video
        shorter than `polyorder + 2` frames, is left unsmoothed.
      polyorder: the polynomial order of the filter.

    Returns:
      [N, L] float32 smoothed coefficients.
    """
    from scipy.signal import savgol_filter

    coeff = np.array(coeff, dtype=np.float32)
    n = coeff.shape[0]
    window = int(window) | 1
    if window > n:
        window = n if n % 2 else n - 1
    if window <= polyorder or window < 3:
        return coeff
    for name in MOTION_BLOCKS:
        part = BLOCKS[name]
        coeff[:, part] = savgol_filter(coeff[:, part], window, polyorder, axis=0,
                                       mode="interp")
    return coeff


def video_identity(coeff, valid):
    """One identity and one albedo per video: the means over the valid frames.

    Args:
      coeff: [N, L] coefficients.
      valid: [N] bool.

    Returns:
      (id_coeff [80], tex_coeff [80]) float32 (`facemodel.coefficients.mean_identity`).
    """
    return mean_identity(np.asarray(coeff)[np.asarray(valid, bool)])
