"""The release's loss terms (its `losses.py`) in TensorFlow 2, for training and fitting.

All functions are batch-first, differentiable, and run eagerly or inside `tf.function`
(the batch size may be dynamic). They compute in the dtype of their floating inputs
(float32 in training; float64 works too, for gradient checks); integer inputs are cast to
float32. Each returns a scalar.

The total loss of the release is

    L = 1.92 L_photo + 1.6e-3 L_lm + 0.2 L_id + 3e-4 L_reg + 5 L_ref + 10 L_gamma

(`LOSS_WEIGHTS`, `total_loss`). Where a formula departs from the release, the function's
docstring says so; the values are the release's everywhere, only the photometric loss's
gradient at a zero colour difference differs (finite here, NaN in the release).
"""
import numpy as np
import tensorflow as tf

from facemodel.coefficients import BLOCKS
from facemodel.keypoints import INNER_LIPS, N_LANDMARKS, NOSE_RIDGE_AND_TIP

# Weights of the terms in the total loss (the release's `options.py`).
LOSS_WEIGHTS = {
    "photo": 1.92,
    "landmark": 1.6e-3,
    "identity": 0.2,
    "regularization": 3e-4,
    "reflectance": 5.0,
    "gamma": 10.0,
}

# Weights inside the coefficient regularisation (identity 1, expression w_ex, texture w_tex).
EXPRESSION_REG_WEIGHT = 0.8
TEXTURE_REG_WEIGHT = 1.7e-2

# Per-landmark weights of the landmark loss, 0-based iBUG-68 order: 20 on the lower nose ridge
# and nose tip (28, 29, 30) and on the inner lip contour (60..67), 1 elsewhere.
LANDMARK_WEIGHTS = np.ones(N_LANDMARKS, dtype=np.float32)
LANDMARK_WEIGHTS[list(NOSE_RIDGE_AND_TIP)] = 20.0
LANDMARK_WEIGHTS[list(INNER_LIPS)] = 20.0
LANDMARK_WEIGHTS.setflags(write=False)


def _float(x, dtype=None):
    """x as a floating tensor: cast to `dtype` when given, else kept if floating, else float32."""
    x = tf.convert_to_tensor(x)
    if dtype is None:
        dtype = x.dtype if x.dtype.is_floating else tf.float32
    return tf.cast(x, dtype)


def _batch_size(x):
    return tf.cast(tf.shape(x)[0], x.dtype)


def _safe_norm(squared):
    """sqrt(squared) with value exactly 0 and gradient 0 where squared == 0 (squared >= 0)."""
    positive = squared > 0
    safe = tf.where(positive, squared, tf.ones_like(squared))
    return tf.where(positive, tf.sqrt(safe), tf.zeros_like(squared))


def photo_loss(images_bgr, render_bgr, mask, mask_total=None):
    """Skin-attention-weighted photometric loss (the release's `Photo_loss`).

    Args:
      images_bgr: [B,H,W,3] input photos, BGR, 0..255 (uint8 or float).
      render_bgr: [B,H,W,3] renders, BGR, 0..255 units (not clipped; background 0).
      mask: [B,H,W] or [B,H,W,C] non-negative weights (C >= 1; channel 0 is used, as in the
        release). Any scale: the release passes the face-region alpha (0..1) times the skin
        mask PNG (0..255). Wrapped in `tf.stop_gradient`.
      mask_total: optional scalar, the sum of the mask over the whole batch when this
        batch is one replica's part of it (default: this mask's own sum). Each part's
        value is then its share of the whole batch's, and the shares add up to it.

    Returns:
      Scalar
        d_bp = ||I_bp - R_bp||_2 (Euclidean distance over the 3 colour channels, 0..255 units)
        L = sum_{b,p} M_bp d_bp / 255 / max(sum_{b,p} M_bp, 1)
      one weighted mean over the whole batch (not per image). The 1 of the guard is in the
      mask's own units.

    Differs from the release only in the gradient where d_bp == 0 exactly: the release takes
    tf.sqrt of the sum of squares with no epsilon, whose gradient there is 0 * inf = NaN; here
    the square root is taken only where the sum is positive (`tf.where`), so the value is
    unchanged everywhere (exactly 0 at d = 0) and the gradient there is 0 (a subgradient).
    """
    render = _float(render_bgr)
    images = _float(images_bgr, render.dtype)
    mask = _float(mask, render.dtype)
    if mask.shape.rank == 4:
        mask = mask[..., 0]
    elif mask.shape.rank != 3:
        raise ValueError(f"mask must be [B,H,W] or [B,H,W,C], got shape {mask.shape}")
    mask = tf.stop_gradient(mask)
    distance = _safe_norm(tf.reduce_sum(tf.square(images - render), axis=-1))
    total = tf.reduce_sum(mask) if mask_total is None else tf.stop_gradient(
        tf.cast(mask_total, mask.dtype))
    return tf.reduce_sum(mask * distance / 255.0) / tf.maximum(total, 1.0)


def landmark_loss(predicted, target, weights=None):
    """Weighted squared landmark distance (the release's `Landmark_loss`).

    Args:
      predicted: [B,K,2] landmarks of the reconstruction, crop pixels (K = 68
        for the release's loss).
      target: [B,K,2] detected landmarks in the same frame (the release uses y up; any
        convention works as long as both agree).
      weights: [K] per-landmark weights, or [B,K] per photo; default `LANDMARK_WEIGHTS`
        (K = 68).

    Returns:
      Scalar L = sum_{b,k} w_k ||p_bk - q_bk||^2 / (K B): squared pixels, divided by
      the number of landmarks (68 for the release, not sum w) and by the batch size.
    """
    predicted = _float(predicted)
    target = _float(target, predicted.dtype)
    weights = _float(LANDMARK_WEIGHTS if weights is None else weights, predicted.dtype)
    count = int(weights.shape[-1])
    if not predicted.shape.is_compatible_with([None, count, 2]):
        raise ValueError(f"landmarks must be [B,{count},2], got shape {predicted.shape}")
    squared = tf.reduce_sum(tf.square(predicted - target), axis=2)  # [B,K]
    return tf.reduce_sum(squared * weights) / (float(count) * _batch_size(predicted))


def identity_loss(features_render, features_photo):
    """Cosine distance of face-recognition features (the release's `Perceptual_loss`).

    Args:
      features_render: [B,C] features of the renders (FaceNet's 128-d bottleneck).
      features_photo: [B,C] features of the input photos.

    Returns:
      Scalar L = sum_b max(0, 1 - <f_b, g_b>) / B, with f, g the l2-normalised rows.

    Normalisation is `tf.math.l2_normalize` (x / sqrt(max(||x||^2, 1e-12))), as in the
    release: a zero vector stays zero (cosine 0, loss 1 for that row) with a finite gradient.
    """
    f = _float(features_render)
    g = _float(features_photo, f.dtype)
    f = tf.math.l2_normalize(f, axis=1)
    g = tf.math.l2_normalize(g, axis=1)
    cosine = tf.reduce_sum(f * g, axis=1)
    return tf.reduce_sum(tf.maximum(tf.zeros_like(cosine), 1.0 - cosine)) / _batch_size(f)


def regularization_loss(coeff):
    """Coefficient prior (the release's `Regulation_loss`).

    Args:
      coeff: [B,257] R-Net coefficients (identity 0:80, expression 80:144, texture 144:224;
        the rest is ignored).

    Returns:
      Scalar L = (||alpha||^2 + 0.8 ||beta||^2 + 0.017 ||delta||^2) / B, squared norms summed
      over the batch (the release's 2 (l2_loss(alpha) + ...) / B).
    """
    coeff = _float(coeff)
    id_coeff = coeff[:, BLOCKS["identity"]]
    ex_coeff = coeff[:, BLOCKS["expression"]]
    tex_coeff = coeff[:, BLOCKS["albedo"]]
    total = (tf.reduce_sum(tf.square(id_coeff))
             + EXPRESSION_REG_WEIGHT * tf.reduce_sum(tf.square(ex_coeff))
             + TEXTURE_REG_WEIGHT * tf.reduce_sum(tf.square(tex_coeff)))
    return total / _batch_size(coeff)


def reflectance_loss(face_texture, skin_weights):
    """Albedo variance over the skin region (the release's `Reflectance_loss`).

    Args:
      face_texture: [B,N,3] per-vertex albedo, RGB, 0..255.
      skin_weights: [N] per-vertex weights m (the front model's `skinmask`, 0/1).

    Returns:
      Scalar, with S = sum_v m_v:
        mu_bc = sum_v T_bvc m_v / S
        L = sum_{b,v,c} ((T_bvc - mu_bc) m_v / 255)^2 / (B S)
      the skin albedo's variance in [0,1]^2 units, summed over the 3 channels. For non-binary
      weights m enters squared in the numerator, exactly as in the release. The weights get
      no gradient.
    """
    texture = _float(face_texture)
    weights = tf.stop_gradient(tf.reshape(_float(skin_weights, texture.dtype), [1, -1, 1]))
    total_weight = tf.reduce_sum(weights)
    mean = tf.reduce_sum(texture * weights, axis=1, keepdims=True) / total_weight  # [B,1,3]
    deviation = (texture - mean) * weights / 255.0
    return tf.reduce_sum(tf.square(deviation)) / (_batch_size(texture) * total_weight)


def gamma_loss(gamma):
    """Lighting colour regulariser (the release's `Gamma_loss`).

    Args:
      gamma: [B,27] SH lighting coefficients, read as [B,3,9] (colour R,G,B; 9 SH bands).

    Returns:
      Scalar L = mean_{b,c,k} (gamma_bck - mean_c' gamma_bc'k)^2 over all B*3*9 entries:
      pushes the light towards white.
    """
    gamma = tf.reshape(_float(gamma), [-1, 3, 9])
    mean = tf.reduce_mean(gamma, axis=1, keepdims=True)
    return tf.reduce_mean(tf.square(gamma - mean))


def total_loss(terms, weights=None):
    """Weighted sum of the loss terms present.

    Args:
      terms: dict name -> scalar loss, names from `LOSS_WEIGHTS` ("photo", "landmark",
        "identity", "regularization", "reflectance", "gamma"). A term that is absent (or None)
        is dropped, e.g. "identity" when no face-recognition network is used.
      weights: optional dict overriding `LOSS_WEIGHTS`.

    Returns:
      Scalar sum_name weights[name] * terms[name].

    Raises:
      ValueError: an unknown name, or no term at all.
    """
    weights = LOSS_WEIGHTS if weights is None else {**LOSS_WEIGHTS, **weights}
    present = {name: value for name, value in terms.items() if value is not None}
    unknown = sorted(set(present) - set(weights))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown}; known: {sorted(weights)}")
    if not present:
        raise ValueError("total_loss needs at least one term")
    values = [_float(value) for value in present.values()]
    dtype = values[0].dtype
    return tf.add_n([tf.constant(weights[name], dtype) * tf.cast(value, dtype)
                     for name, value in zip(present, values)])
