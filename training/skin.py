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
import math

import numpy as np

# BT.601 studio-range RGB -> [Y, Cb, Cr] (R, G, B in 0..255): x = RGB2YCBCR @ rgb / 255 + offset.
RGB2YCBCR = np.array([[65.481, 128.553, 24.966],
                      [-37.797, -74.203, 112.0],
                      [112.0, -93.786, -18.214]])
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])

# The GMM parameters below are the release's published figures (its `skin.py`), copied as
# numbers: feature order [Y, Cb, Cr]; only the covariance determinants and inverse covariances
# are published (not the covariances themselves). They are mutually consistent:
# 1 / det(inverse) agrees with the determinant to ~1e-7 relative.
SKIN_WEIGHTS = np.array([0.24063933, 0.16365987, 0.26034665, 0.33535415])
SKIN_MEANS = np.array([[113.71862, 103.39613, 164.08226],
                       [150.19858, 105.18467, 155.51428],
                       [183.92976, 107.62468, 152.71820],
                       [114.90524, 113.59782, 151.38217]])
SKIN_COV_DETS = np.array([5692842.5, 5851930.5, 2329131.0, 1585971.0])
SKIN_COV_INVS = np.array([
    [[0.0019472069, 0.0020450759, -0.00060243998],
     [0.0020450759, 0.017700525, 0.0051420014],
     [-0.00060243998, 0.0051420014, 0.0081308950]],
    [[0.0027110141, 0.0011036990, 0.0023122299],
     [0.0011036990, 0.010707724, 0.010742856],
     [0.0023122299, 0.010742856, 0.017481629]],
    [[0.0048026871, 0.00022935172, 0.0077668377],
     [0.00022935172, 0.011729696, 0.0081661865],
     [0.0077668377, 0.0081661865, 0.025374353]],
    [[0.0011989699, 0.0022453172, -0.0010748957],
     [0.0022453172, 0.047758564, 0.020332102],
     [-0.0010748957, 0.020332102, 0.024502251]],
])

NONSKIN_WEIGHTS = np.array([0.12791070, 0.31130761, 0.34245777, 0.21832393])
NONSKIN_MEANS = np.array([[99.200851, 112.07533, 140.20602],
                          [110.91392, 125.52969, 130.19237],
                          [129.75864, 129.96107, 126.96808],
                          [112.29587, 128.85121, 129.05431]])
NONSKIN_COV_DETS = np.array([458703648.0, 6466488.0, 90611376.0, 133097.63])
NONSKIN_COV_INVS = np.array([
    [[0.00085371657, 0.00071197288, 0.00023958916],
     [0.00071197288, 0.0025935620, 0.00076557708],
     [0.00023958916, 0.00076557708, 0.0015042332]],
    [[0.00024650150, 0.00045542428, 0.00015019422],
     [0.00045542428, 0.026412144, 0.018419769],
     [0.00015019422, 0.018419769, 0.037497383]],
    [[0.00037054974, 0.00038146760, 0.00040408765],
     [0.00038146760, 0.0085505722, 0.0079136286],
     [0.00040408765, 0.0079136286, 0.010982352]],
    [[0.00013709733, 0.00051228428, 0.00012777430],
     [0.00051228428, 0.28237113, 0.10528370],
     [0.00012777430, 0.10528370, 0.23468947]],
])

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
