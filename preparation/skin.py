"""The release's Bayes skin classifier (its `skin.py`), in NumPy.

Each pixel of an aligned BGR crop is converted to BT.601 studio-range YCbCr,
the feature vector x = [Y, Cb, Cr] is scored by two Gaussian mixtures (skin
and non-skin, 4 full-covariance components each), and Bayes' rule with a
prior P(skin) = 0.8 gives the posterior

    post = 0.8 Ls(x) / (0.8 Ls(x) + 0.2 Ln(x)),
    L(x) = sum_i w_i exp(-(x - mu_i)^T Sinv_i (x - mu_i) / 2) / ((2 pi)^(3/2) sqrt(det_i)).

The release runs it once, offline, on each training crop and saves
round(255 * post) as a 3-channel uint8 PNG (`skin_mask_png`); the photometric
loss is weighted by it. The mask is soft: no threshold, no blur.

Everything is computed in float64 with the direct formula above, as the
release does. One difference: where both likelihoods underflow to 0, the
release divides 0 by 0 and gets NaN (then an undefined uint8 cast); here the
posterior is 0 there. No 8-bit colour reaches that case in float64 (the
smallest denominator over all 2^24 colours is about 2.6e-17), so on uint8
crops the results are the release's; only out-of-range float input can hit
the guard.
"""
import json
import math
import pathlib

import numpy as np

# BT.601 studio-range RGB -> [Y, Cb, Cr] (R, G, B in 0..255): x = RGB2YCBCR @ rgb / 255 + offset.
RGB2YCBCR = np.array([[65.481, 128.553, 24.966],
                      [-37.797, -74.203, 112.0],
                      [112.0, -93.786, -18.214]])
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])

# The two mixtures' parameters are the release's published figures (its `skin.py`), kept as
# numbers in skin_gmm.json: feature order [Y, Cb, Cr]; only the covariance determinants and
# inverse covariances are published (not the covariances themselves). They are mutually
# consistent: 1 / det(inverse) agrees with the determinant to ~1e-7 relative.
with open(pathlib.Path(__file__).with_name("skin_gmm.json"), encoding="utf-8") as _stream:
    _GMM = json.load(_stream)
SKIN_WEIGHTS, SKIN_MEANS, SKIN_COV_DETS, SKIN_COV_INVS = (
    np.array(_GMM["skin"][key]) for key in ("weights", "means", "cov_dets", "cov_invs"))
NONSKIN_WEIGHTS, NONSKIN_MEANS, NONSKIN_COV_DETS, NONSKIN_COV_INVS = (
    np.array(_GMM["nonskin"][key]) for key in ("weights", "means", "cov_dets", "cov_invs"))
del _GMM, _stream

PRIOR_SKIN = 0.8
PRIOR_NONSKIN = 1.0 - PRIOR_SKIN

for _array in (RGB2YCBCR, YCBCR_OFFSET, SKIN_WEIGHTS, SKIN_MEANS, SKIN_COV_DETS, SKIN_COV_INVS,
               NONSKIN_WEIGHTS, NONSKIN_MEANS, NONSKIN_COV_DETS, NONSKIN_COV_INVS):
    _array.setflags(write=False)
del _array


def _check_image(image_bgr):
    image = np.asarray(image_bgr)
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"expected a [H,W,3] or [B,H,W,3] BGR image, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"expected an integer or float image, got dtype {image.dtype}")
    return image


def bgr_to_ycbcr(image_bgr):
    """[..., 3] BGR 0..255 -> [..., 3] float64 [Y, Cb, Cr], BT.601 studio range (Y 16..235)."""
    rgb = np.asarray(image_bgr, dtype=np.float64)[..., ::-1]
    return rgb @ (RGB2YCBCR.T / 255.0) + YCBCR_OFFSET


def gmm_likelihood(x, weights, means, cov_dets, cov_invs):
    """Density of a full-covariance Gaussian mixture at x [..., D] (float64) -> [...].

    sum_i w_i exp(-(x - mu_i)^T Sinv_i (x - mu_i) / 2) / ((2 pi)^(D/2) sqrt(det_i)).
    """
    x = np.asarray(x, dtype=np.float64)
    dim = x.shape[-1]
    total = np.zeros(x.shape[:-1])
    for w, mu, det, inv in zip(weights, means, cov_dets, cov_invs):
        diff = x - mu
        mahalanobis = np.einsum("...i,ij,...j->...", diff, inv, diff)
        total += w * np.exp(-0.5 * mahalanobis) / ((2.0 * math.pi) ** (dim / 2.0) * math.sqrt(det))
    return total


def _posterior64(image_bgr):
    ycbcr = bgr_to_ycbcr(_check_image(image_bgr))
    skin = PRIOR_SKIN * gmm_likelihood(ycbcr, SKIN_WEIGHTS, SKIN_MEANS, SKIN_COV_DETS,
                                       SKIN_COV_INVS)
    nonskin = PRIOR_NONSKIN * gmm_likelihood(ycbcr, NONSKIN_WEIGHTS, NONSKIN_MEANS,
                                             NONSKIN_COV_DETS, NONSKIN_COV_INVS)
    denominator = skin + nonskin
    # Guard (not in the release, which gives NaN there): both likelihoods underflowed -> 0.
    safe = np.where(denominator > 0.0, denominator, 1.0)
    return np.where(denominator > 0.0, skin / safe, 0.0)


def skin_probability(image_bgr):
    """Posterior probability of skin per pixel.

    Args:
      image_bgr: [H,W,3] or [B,H,W,3] BGR image, uint8 or float, values 0..255.

    Returns:
      float32 [H,W] or [B,H,W] in [0,1]: 0.8 Ls / (0.8 Ls + 0.2 Ln), computed in float64;
      0 where both likelihoods underflow (the release would give NaN there).
    """
    return _posterior64(image_bgr).astype(np.float32)


def skin_mask_png(image_bgr):
    """The release's saved mask: uint8 [H,W,3] (or [B,H,W,3]) = round(255 * posterior), tiled.

    The rounding is NumPy's (half to even) on the float64 posterior, as in the release; the
    three channels are equal.
    """
    levels = np.round(_posterior64(image_bgr) * 255.0).astype(np.uint8)
    return np.repeat(levels[..., None], 3, axis=-1)
