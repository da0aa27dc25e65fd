"""Tests of the release's loss terms (`losses.terms`) and the skin classifier (`preparation.skin`).

References are independent of the code under test: each loss is written again in NumPy
with explicit loops or einsum, gradients are checked against float64 central finite
differences, and the skin posterior against mixtures built from
`scipy.stats.multivariate_normal` with covariance inv(Sinv).
"""
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal

from losses import terms as losses
from preparation import skin

# --------------------------------------------------------------------------------------------
# NumPy references (explicit loops / einsum, float64)


def photo_reference(images, render, mask):
    mask = np.asarray(mask, np.float64)
    if mask.ndim == 4:
        mask = mask[..., 0]
    batch, height, width, _ = images.shape
    numerator = 0.0
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                diff = images[b, y, x].astype(np.float64) - render[b, y, x]
                numerator += mask[b, y, x] * np.sqrt(np.sum(diff * diff)) / 255.0
    return numerator / max(mask.sum(), 1.0)


def landmark_weights_reference():
    weights = []
    for k in range(68):
        weights.append(20.0 if k in (28, 29, 30) or 60 <= k <= 67 else 1.0)
    return np.array(weights)


def landmark_reference(predicted, target):
    weights = landmark_weights_reference()
    batch = predicted.shape[0]
    total = 0.0
    for b in range(batch):
        for k in range(68):
            dx, dy = predicted[b, k] - target[b, k]
            total += weights[k] * (dx * dx + dy * dy)
    return total / (68.0 * batch)


def identity_reference(features_render, features_photo):
    total = 0.0
    for f, g in zip(features_render, features_photo):
        f = f / max(np.linalg.norm(f), 1e-6)
        g = g / max(np.linalg.norm(g), 1e-6)
        total += max(0.0, 1.0 - float(np.dot(f, g)))
    return total / len(features_render)


def regularization_reference(coeff):
    return (np.einsum("bi,bi->", coeff[:, :80], coeff[:, :80])
            + 0.8 * np.einsum("bi,bi->", coeff[:, 80:144], coeff[:, 80:144])
            + 0.017 * np.einsum("bi,bi->", coeff[:, 144:224], coeff[:, 144:224])) / len(coeff)


def reflectance_reference(texture, weights):
    batch, count, _ = texture.shape
    total_weight = weights.sum()
    total = 0.0
    for b in range(batch):
        for c in range(3):
            mean = sum(texture[b, v, c] * weights[v] for v in range(count)) / total_weight
            for v in range(count):
                total += ((texture[b, v, c] - mean) * weights[v] / 255.0) ** 2
    return total / (batch * total_weight)


def gamma_reference(gamma):
    g = gamma.reshape(-1, 3, 9)
    total = 0.0
    for b in range(g.shape[0]):
        for k in range(9):
            mean = (g[b, 0, k] + g[b, 1, k] + g[b, 2, k]) / 3.0
            for c in range(3):
                total += (g[b, c, k] - mean) ** 2
    return total / g.size


# --------------------------------------------------------------------------------------------
# Finite differences


def gradient_check(fn, x, count=24, step=1e-5, seed=0, rtol=1e-5, atol=1e-9):
    """Autodiff gradient of the scalar fn(x) against central differences on a few coordinates."""
    x = np.asarray(x, np.float64)
    variable = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = fn(variable)
    gradient = tape.gradient(value, variable).numpy()
    assert np.all(np.isfinite(gradient))
    rng = np.random.default_rng(seed)
    flat = rng.choice(x.size, size=min(count, x.size), replace=False)
    for index in flat:
        plus, minus = x.copy(), x.copy()
        plus.flat[index] += step
        minus.flat[index] -= step
        numeric = (float(fn(tf.constant(plus))) - float(fn(tf.constant(minus)))) / (2 * step)
        np.testing.assert_allclose(gradient.flat[index], numeric, rtol=rtol, atol=atol)
    return gradient


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------------------------
# Photometric loss


def photo_inputs(rng, batch=2, height=8, width=8):
    images = rng.integers(0, 256, size=(batch, height, width, 3)).astype(np.float64)
    render = rng.uniform(0, 255, size=(batch, height, width, 3))
    mask = rng.uniform(0, 255, size=(batch, height, width, 1))
    mask[0, :2] = 0.0
    return images, render, mask


@pytest.mark.parametrize("height,width", [(8, 8), (5, 7)])
def test_photo_loss_value(rng, height, width):
    images, render, mask = photo_inputs(rng, height=height, width=width)
    expected = photo_reference(images, render, mask)
    value = losses.photo_loss(images.astype(np.float32), render.astype(np.float32),
                              mask.astype(np.float32))
    assert value.dtype == tf.float32
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    # Rank-3 mask, float64, and uint8 photos all give the same.
    np.testing.assert_allclose(float(losses.photo_loss(images, render, mask[..., 0])), expected,
                               rtol=1e-12)
    np.testing.assert_allclose(
        float(losses.photo_loss(images.astype(np.uint8), render.astype(np.float32), mask)),
        expected, rtol=1e-5)


def test_photo_loss_mask_channel_zero_scale_and_guard(rng):
    images, render, mask = photo_inputs(rng)
    three = np.concatenate([mask, rng.uniform(0, 255, size=mask.shape[:3] + (2,))], axis=-1)
    expected = photo_reference(images, render, mask)
    np.testing.assert_allclose(float(losses.photo_loss(images, render, three)), expected,
                               rtol=1e-12)
    # The mask's scale cancels while its sum is >= 1 ...
    np.testing.assert_allclose(float(losses.photo_loss(images, render, mask / 255.0)), expected,
                               rtol=1e-12)
    # ... and below 1 the sum is replaced by 1.
    tiny = mask / mask.sum() * 0.25
    guarded = photo_reference(images, render, tiny)
    np.testing.assert_allclose(float(losses.photo_loss(images, render, tiny)), guarded,
                               rtol=1e-12)
    np.testing.assert_allclose(guarded, 0.25 * expected, rtol=1e-12)
    assert float(losses.photo_loss(images, render, np.zeros_like(mask))) == 0.0


def test_photo_loss_gradient(rng):
    images, render, mask = photo_inputs(rng)
    gradient_check(lambda r: losses.photo_loss(images, r, mask), render, count=40)


def test_photo_loss_mask_gets_no_gradient(rng):
    images, render, mask = photo_inputs(rng)
    mask_tensor = tf.constant(mask)
    with tf.GradientTape() as tape:
        tape.watch(mask_tensor)
        value = losses.photo_loss(images, render, mask_tensor)
    assert tape.gradient(value, mask_tensor) is None


def test_photo_loss_safe_sqrt_where_render_equals_image(rng):
    images, render, mask = photo_inputs(rng)
    equal = rng.uniform(size=images.shape[:3]) < 0.4
    render[equal] = images[equal]
    expected = photo_reference(images, render, mask)
    for dtype in (np.float32, np.float64):
        variable = tf.constant(render.astype(dtype))
        with tf.GradientTape() as tape:
            tape.watch(variable)
            value = losses.photo_loss(images.astype(dtype), variable, mask.astype(dtype))
        gradient = tape.gradient(value, variable).numpy()
        np.testing.assert_allclose(float(value), expected, rtol=1e-5)
        assert np.all(np.isfinite(gradient))
        assert np.all(gradient[equal] == 0.0)
    # Away from the equal pixels the gradient is still the true one.
    gradient_check(lambda r: losses.photo_loss(images, r, mask), render, count=40, seed=3)


# --------------------------------------------------------------------------------------------
# Landmark loss


def test_landmark_weights_exact():
    weights = np.asarray(losses.LANDMARK_WEIGHTS)
    assert weights.shape == (68,)
    assert weights.dtype == np.float32
    heavy = [28, 29, 30, 60, 61, 62, 63, 64, 65, 66, 67]
    for k in range(68):
        assert weights[k] == (20.0 if k in heavy else 1.0)
    assert weights.sum() == 57 + 20 * 11
    np.testing.assert_array_equal(weights, landmark_weights_reference())


def test_landmark_loss_value_and_gradient(rng):
    predicted = rng.uniform(0, 224, size=(2, 68, 2))
    target = rng.uniform(0, 224, size=(2, 68, 2))
    expected = landmark_reference(predicted, target)
    np.testing.assert_allclose(
        float(losses.landmark_loss(predicted.astype(np.float32), target.astype(np.float32))),
        expected, rtol=1e-5)
    np.testing.assert_allclose(float(losses.landmark_loss(predicted, target)), expected,
                               rtol=1e-12)
    # Quadratic: central differences are exact, so a large step avoids rounding noise.
    gradient_check(lambda p: losses.landmark_loss(p, target), predicted, step=1e-2)
    # Closed form: d/dp = 2 w_k (p - q) / (68 B).
    variable = tf.constant(predicted)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = losses.landmark_loss(variable, target)
    closed = 2 * landmark_weights_reference()[None, :, None] * (predicted - target) / (68 * 2)
    np.testing.assert_allclose(tape.gradient(value, variable).numpy(), closed, rtol=1e-12)


def test_landmark_loss_rejects_other_counts():
    with pytest.raises(ValueError):
        losses.landmark_loss(np.zeros((1, 5, 2)), np.zeros((1, 5, 2)))


# --------------------------------------------------------------------------------------------
# Identity loss


def test_identity_loss_value_and_gradient(rng):
    f = rng.normal(size=(3, 16))
    g = rng.normal(size=(3, 16))
    g[1] = 2.5 * f[1]  # cosine 1 -> 0 for that row
    expected = identity_reference(f, g)
    np.testing.assert_allclose(
        float(losses.identity_loss(f.astype(np.float32), g.astype(np.float32))), expected,
        rtol=1e-5)
    np.testing.assert_allclose(float(losses.identity_loss(f, g)), expected, rtol=1e-12)
    g[1] = rng.normal(size=16)  # away from the hinge for the finite differences
    gradient_check(lambda x: losses.identity_loss(x, g), f, count=30)
    gradient_check(lambda x: losses.identity_loss(f, x), g, count=30, seed=1)


def test_identity_loss_zero_vector_is_safe(rng):
    f = rng.normal(size=(2, 8))
    g = rng.normal(size=(2, 8))
    f[0] = 0.0
    variable = tf.constant(f)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = losses.identity_loss(variable, g)
    gradient = tape.gradient(value, variable).numpy()
    np.testing.assert_allclose(float(value), identity_reference(f, g), rtol=1e-12)
    assert np.all(np.isfinite(gradient))


# --------------------------------------------------------------------------------------------
# Regularisation, reflectance, gamma


def test_regularization_loss_value_and_gradient(rng):
    coeff = rng.normal(size=(2, 257))
    expected = regularization_reference(coeff)
    np.testing.assert_allclose(float(losses.regularization_loss(coeff.astype(np.float32))),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(float(losses.regularization_loss(coeff)), expected, rtol=1e-12)
    gradient = gradient_check(losses.regularization_loss, coeff, count=60)
    # Angles, lighting and translation are not regularised.
    assert np.all(gradient[:, 224:] == 0.0)


def test_reflectance_loss_value_and_gradient(rng):
    texture = rng.uniform(0, 255, size=(2, 12, 3))
    binary = (rng.uniform(size=12) < 0.6).astype(np.float64)
    binary[:2] = 1.0
    soft = rng.uniform(0, 1, size=12)
    for weights in (binary, soft):
        expected = reflectance_reference(texture, weights)
        np.testing.assert_allclose(
            float(losses.reflectance_loss(texture.astype(np.float32), weights.astype(np.float32))),
            expected, rtol=1e-5)
        np.testing.assert_allclose(float(losses.reflectance_loss(texture, weights)), expected,
                                   rtol=1e-12)
        gradient = gradient_check(lambda t, w=weights: losses.reflectance_loss(t, w), texture,
                                  count=40)
        assert np.all(gradient[:, weights == 0] == 0.0)
    # A uniform skin albedo costs nothing.
    uniform = np.broadcast_to(np.array([200.0, 150.0, 120.0]), (2, 12, 3))
    np.testing.assert_allclose(float(losses.reflectance_loss(uniform, binary)), 0.0, atol=1e-20)


def test_gamma_loss_value_and_gradient(rng):
    gamma = rng.normal(size=(2, 27))
    expected = gamma_reference(gamma)
    np.testing.assert_allclose(float(losses.gamma_loss(gamma.astype(np.float32))), expected,
                               rtol=1e-5)
    np.testing.assert_allclose(float(losses.gamma_loss(gamma)), expected, rtol=1e-12)
    gradient_check(losses.gamma_loss, gamma, count=54)
    # White light (equal channels) costs nothing; the layout is [B, colour, SH].
    white = np.tile(rng.normal(size=(2, 1, 9)), (1, 3, 1)).reshape(2, 27)
    assert float(losses.gamma_loss(white)) == pytest.approx(0.0, abs=1e-24)


# --------------------------------------------------------------------------------------------
# tf.function, total


def test_losses_in_tf_function_with_dynamic_batch(rng):
    images, render, mask = photo_inputs(rng)
    lm_p, lm_t = rng.uniform(0, 224, size=(2, 2, 68, 2)).astype(np.float32)
    f, g = rng.normal(size=(2, 2, 16)).astype(np.float32)
    coeff = rng.normal(size=(2, 257)).astype(np.float32)
    texture = rng.uniform(0, 255, size=(2, 12, 3)).astype(np.float32)
    skin_weights = (rng.uniform(size=12) < 0.5).astype(np.float32)
    skin_weights[0] = 1.0
    cases = [
        (losses.photo_loss, (images.astype(np.float32), render.astype(np.float32),
                             mask.astype(np.float32)), [[None, None, None, 3]] * 2
         + [[None, None, None, 1]]),
        (losses.landmark_loss, (lm_p, lm_t), [[None, 68, 2]] * 2),
        (losses.identity_loss, (f, g), [[None, 16]] * 2),
        (losses.regularization_loss, (coeff,), [[None, 257]]),
        (losses.reflectance_loss, (texture, skin_weights), [[None, 12, 3], [12]]),
        (losses.gamma_loss, (coeff[:, 227:254],), [[None, 27]]),
    ]
    for fn, args, shapes in cases:
        signature = [tf.TensorSpec(shape, tf.float32) for shape in shapes]
        graph_fn = tf.function(fn, input_signature=signature)
        np.testing.assert_allclose(float(graph_fn(*args)), float(fn(*args)), rtol=1e-6)


def test_loss_weights():
    assert losses.LOSS_WEIGHTS == {"photo": 1.92, "landmark": 1.6e-3, "identity": 0.2,
                                   "regularization": 3e-4, "reflectance": 5.0, "gamma": 10.0}


def test_total_loss_with_and_without_identity():
    terms = {"photo": tf.constant(0.5), "landmark": tf.constant(30.0),
             "identity": tf.constant(0.25), "regularization": tf.constant(100.0),
             "reflectance": tf.constant(0.01), "gamma": tf.constant(0.002)}
    with_identity = 1.92 * 0.5 + 1.6e-3 * 30 + 0.2 * 0.25 + 3e-4 * 100 + 5 * 0.01 + 10 * 0.002
    np.testing.assert_allclose(float(losses.total_loss(terms)), with_identity, rtol=1e-6)
    without = dict(terms)
    del without["identity"]
    np.testing.assert_allclose(float(losses.total_loss(without)), with_identity - 0.2 * 0.25,
                               rtol=1e-6)
    np.testing.assert_allclose(float(losses.total_loss({**terms, "identity": None})),
                               with_identity - 0.2 * 0.25, rtol=1e-6)
    with pytest.raises(ValueError):
        losses.total_loss({"photometric": tf.constant(1.0)})
    with pytest.raises(ValueError):
        losses.total_loss({})


def test_total_loss_gradient_flows_to_each_term():
    x = tf.constant(2.0, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = losses.total_loss({"photo": x, "gamma": x * x})
    np.testing.assert_allclose(float(tape.gradient(total, x)), 1.92 + 10.0 * 2 * 2.0, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Skin classifier

SKIN_MODEL = (skin.SKIN_WEIGHTS, skin.SKIN_MEANS, skin.SKIN_COV_DETS, skin.SKIN_COV_INVS)
NONSKIN_MODEL = (skin.NONSKIN_WEIGHTS, skin.NONSKIN_MEANS, skin.NONSKIN_COV_DETS,
                 skin.NONSKIN_COV_INVS)


def ycbcr_reference(rgb):
    r, g, b = (np.asarray(rgb, np.float64)[..., i] for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.stack([y, cb, cr], axis=-1)


def mixture_reference(x, model):
    weights, means, _, cov_invs = model
    return sum(w * multivariate_normal(mean=mu, cov=np.linalg.inv(inv)).pdf(x)
               for w, mu, inv in zip(weights, means, cov_invs))


def posterior_reference(image_bgr):
    x = ycbcr_reference(np.asarray(image_bgr)[..., ::-1]).reshape(-1, 3)
    s = 0.8 * mixture_reference(x, SKIN_MODEL)
    n = 0.2 * mixture_reference(x, NONSKIN_MODEL)
    with np.errstate(invalid="ignore"):
        return (s / (s + n)).reshape(np.shape(image_bgr)[:-1])


def test_published_determinants_match_inverse_covariances():
    for _, _, dets, invs in (SKIN_MODEL, NONSKIN_MODEL):
        assert len(dets) == len(invs) == 4
        for det, inv in zip(dets, invs):
            np.testing.assert_allclose(inv, inv.T, rtol=0, atol=0)
            assert np.all(np.linalg.eigvalsh(inv) > 0)
            np.testing.assert_allclose(np.linalg.det(np.linalg.inv(inv)), det, rtol=1e-3)
    for weights in (skin.SKIN_WEIGHTS, skin.NONSKIN_WEIGHTS):
        np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-6)


def test_ycbcr_conversion():
    rgb = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 90]], np.float64)
    np.testing.assert_allclose(skin.bgr_to_ycbcr(rgb[:, ::-1]), ycbcr_reference(rgb),
                               rtol=1e-12)
    np.testing.assert_allclose(skin.bgr_to_ycbcr(np.array([255, 255, 255])), [235, 128, 128],
                               atol=1e-9)


def test_skin_probability_matches_scipy_mixtures(rng):
    image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    expected = posterior_reference(image)
    posterior = skin.skin_probability(image)
    assert posterior.shape == (16, 16)
    assert posterior.dtype == np.float32
    np.testing.assert_allclose(posterior, expected, rtol=1e-5, atol=1e-7)
    # Float input and a batch axis give the same.
    batch = np.stack([image, image[::-1]]).astype(np.float64)
    batched = skin.skin_probability(batch)
    assert batched.shape == (2, 16, 16)
    np.testing.assert_allclose(batched[0], posterior, rtol=0, atol=0)
    np.testing.assert_allclose(batched[1], posterior[::-1], rtol=0, atol=0)


def test_skin_probability_of_obvious_colours():
    def bgr(*rgb):
        return np.array(rgb[::-1], np.uint8).reshape(1, 1, 3)

    for tone in [(224, 172, 138), (198, 134, 66), (241, 194, 125), (141, 85, 36)]:
        assert skin.skin_probability(bgr(*tone))[0, 0] > 0.5, tone
    for colour in [(0, 0, 255), (0, 255, 0), (0, 128, 0), (30, 60, 200)]:
        assert skin.skin_probability(bgr(*colour))[0, 0] < 0.5, colour


def test_black_image_is_finite():
    posterior = skin.skin_probability(np.zeros((4, 5, 3), np.uint8))
    assert np.all(np.isfinite(posterior))
    assert np.all((posterior >= 0) & (posterior <= 1))
    np.testing.assert_allclose(posterior, posterior_reference(np.zeros((4, 5, 3))), atol=1e-7)


def test_underflow_guard_gives_zero_not_nan():
    far = np.array([[[1e4, -1e4, 1e4], [120.0, 160.0, 220.0]]])  # BGR, the first far outside
    with np.errstate(invalid="ignore"):
        assert np.isnan(posterior_reference(far)[0, 0])  # what the release's formula gives
    posterior = skin.skin_probability(far)
    assert posterior[0, 0] == 0.0
    np.testing.assert_allclose(posterior[0, 1], posterior_reference(far)[0, 1], rtol=1e-5)


def test_skin_mask_png(rng):
    image = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    png = skin.skin_mask_png(image)
    assert png.shape == (6, 7, 3)
    assert png.dtype == np.uint8
    assert np.all(png[..., 0] == png[..., 1]) and np.all(png[..., 0] == png[..., 2])
    expected = np.round(255 * posterior_reference(image))
    assert np.max(np.abs(png[..., 0].astype(np.float64) - expected)) <= 1
    assert np.mean(png[..., 0] == expected) > 0.95


def test_skin_rejects_bad_shapes():
    with pytest.raises(ValueError):
        skin.skin_probability(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        skin.skin_probability(np.zeros((4, 4, 4), np.uint8))
