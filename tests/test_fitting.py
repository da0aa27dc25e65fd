"""The fitting package against NumPy, finite differences and synthetic faces of known truth."""
import numpy as np
import pytest
import tensorflow as tf

from facemodel.coefficients import BLOCKS, widen
from fitting import objective
from fitting.objective import LANDMARK_TERMS, FitBatch, landmark_target, temporal_loss
from fitting.optimize import NEWTON_STEPS, POSE, Fitter, Stage, plan
from fitting.parameters import Coefficients
from tests.synthetic_faces import background, draw_coefficients, render_faces, shape_error_mm


def numpy_temporal(coeff, previous=None):
    frames = np.concatenate([previous, coeff]) if previous is not None else coeff
    total = 0.0
    for t in range(1, len(frames)):
        step = frames[t] - frames[t - 1]
        total += (1.0 * np.sum(step[80:144] ** 2) + 100.0 * np.sum(step[224:227] ** 2)
                  + 100.0 * np.sum(step[254:257] ** 2))
    return total / max(len(frames) - 1, 1)


def test_temporal_loss_against_numpy_and_finite_differences():
    rng = np.random.default_rng(0)
    coeff = rng.normal(size=(5, 257))
    previous = rng.normal(size=(1, 257))
    for prev in (None, previous):
        value = float(temporal_loss(coeff.astype(np.float32), prev))
        np.testing.assert_allclose(value, numpy_temporal(coeff, prev), rtol=1e-5)
    assert float(temporal_loss(coeff[:1].astype(np.float32))) == 0.0       # one frame
    variable = tf.Variable(coeff)
    with tf.GradientTape() as tape:
        value = temporal_loss(tf.cast(variable, tf.float32), previous)
    gradient = tape.gradient(value, variable).numpy()
    for frame, column in [(0, 90), (2, 225), (4, 255), (3, 10)]:
        step = np.zeros_like(coeff)
        step[frame, column] = 1e-3
        numeric = (numpy_temporal(coeff + step, previous)
                   - numpy_temporal(coeff - step, previous)) / 2e-3
        np.testing.assert_allclose(gradient[frame, column], numeric, rtol=1e-3, atol=1e-6)


def test_a_shared_block_gets_the_sum_of_the_photos_gradients():
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(3, 257)).astype(np.float32)
    weights = rng.normal(size=(3, 257))

    def loss(coeff):                   # any function of the batch's coefficients
        return tf.reduce_sum(tf.constant(weights, tf.float32) * tf.square(coeff))

    shared = Coefficients(shared=("identity", "albedo"))
    shared.load(initial)
    together = shared.numpy()
    np.testing.assert_allclose(together[:, :80], np.tile(initial[:, :80].mean(0), (3, 1)),
                               rtol=1e-6)
    np.testing.assert_array_equal(together[:, 80:144], initial[:, 80:144])
    with tf.GradientTape() as tape:
        value = loss(shared())
    identity_gradient = tape.gradient(value, shared.variables["identity"]).numpy()
    # d/d(shared) = sum over photos of 2 w c, each photo's row being the shared value.
    expected = (2 * weights[:, :80] * together[:, :80]).sum(axis=0, keepdims=True)
    np.testing.assert_allclose(identity_gradient, expected, rtol=1e-5)
    base = shared.variables["identity"].numpy()
    for column in (0, 41, 79):
        shifted = []
        for sign in (1, -1):
            step = np.zeros_like(base)
            step[0, column] = sign * 1e-2
            shared.variables["identity"].assign(base + step)
            shifted.append(float(loss(shared())))
        shared.variables["identity"].assign(base)
        np.testing.assert_allclose(identity_gradient[0, column],
                                   (shifted[0] - shifted[1]) / 2e-2, rtol=2e-3)


def test_five_point_targets_weigh_as_the_release_normalises():
    rng = np.random.default_rng(2)
    lm68 = rng.uniform(50, 170, (2, 68, 2)).astype(np.float32)
    target68 = rng.uniform(50, 170, (68, 2))
    target5 = rng.uniform(50, 170, (5, 2))
    points, weights = zip(landmark_target(lm68=target68), landmark_target(lm5=target5))
    from losses.terms import LANDMARK_WEIGHTS, landmark_loss

    value = float(landmark_loss(objective.with_five_points(tf.constant(lm68)),
                                np.stack(points), np.stack(weights)))
    five = np.stack([lm68[1, [36, 39]].mean(0), lm68[1, [42, 45]].mean(0), lm68[1, 30],
                     lm68[1, 48], lm68[1, 54]])
    first = (LANDMARK_WEIGHTS * ((lm68[0] - target68) ** 2).sum(1)).sum() / 68
    second = (np.array([1, 1, 20, 1, 1]) * ((five - target5) ** 2).sum(1)).sum() / 5
    np.testing.assert_allclose(value, (first + second) / 2, rtol=1e-5)
    with pytest.raises(ValueError):
        landmark_target()


def test_plans_and_widening():
    assert plan(10) == [Stage(NEWTON_STEPS, POSE, LANDMARK_TERMS, "newton"), Stage(10)]
    assert plan(10, from_mean_face=True) == [
        Stage(NEWTON_STEPS, POSE, LANDMARK_TERMS, "newton"),
        Stage(NEWTON_STEPS, POSE + ("identity", "expression"), LANDMARK_TERMS, "newton"),
        Stage(10)]
    with pytest.raises(ValueError):
        plan(0)
    white = np.arange(239, dtype=np.float32)[None]
    wide = widen(white)
    np.testing.assert_array_equal(wide[0, 227:254], np.tile(white[0, 227:236], 3))
    np.testing.assert_array_equal(wide[0, 254:], white[0, 236:])
    np.testing.assert_array_equal(widen(np.ones((2, 258)))[:, :], np.ones((2, 257)))


@pytest.fixture(scope="module")
def faces(converted_bfm):
    from face_decoder import Face3D

    face = Face3D(converted_bfm / "BFM_model_front.mat")
    rng = np.random.default_rng(3)
    person = draw_coefficients(rng, 1)[0]
    truth = draw_coefficients(rng, 2, person=person)
    rendered = render_faces(face, truth, background(None))
    crops = rendered["rgb"][..., ::-1].astype(np.float32)
    batch = FitBatch.stack(crops, [landmark_target(lm68=lm) for lm in rendered["lm68"]],
                           [np.full((224, 224), 255.0, np.float32)] * 2)
    return {"face": face, "fitter": Fitter(face), "truth": truth, "rendered": rendered,
            "batch": batch, "rng": rng}


def test_a_short_fit_lowers_every_term_and_the_shape_error(faces):
    fitter, truth, batch = faces["fitter"], faces["truth"], faces["batch"]
    noise = np.zeros_like(truth)
    for name, scale in (("identity", 0.5), ("expression", 0.3), ("albedo", 0.5),
                        ("angles", 0.05), ("lighting", 0.05), ("translation", 0.05)):
        part = BLOCKS[name]
        noise[:, part] = faces["rng"].normal(0, scale, (2, part.stop - part.start))
    start = truth + noise
    before = [fitter.evaluate(start[i:i + 1], batch.slice(i, i + 1)) for i in range(2)]
    result = fitter.fit(start, batch, plan(20))
    assert result.finite.all() and result.refused == 0
    for old, new in zip(before, result.terms):
        for name in old:
            assert new[name] < old[name], (name, old[name], new[name])
    error = shape_error_mm(faces["face"], result.coeff, faces["rendered"]["shape"])
    start_error = shape_error_mm(faces["face"], start, faces["rendered"]["shape"])
    assert np.all(error < 0.8 * start_error), (error, start_error)


def test_an_image_set_shares_one_identity_and_albedo(faces):
    fitter, truth, batch = faces["fitter"], faces["truth"], faces["batch"]
    start = truth + faces["rng"].normal(0, 0.3, truth.shape).astype(np.float32)
    result = fitter.fit(start, batch, plan(5), shared=("identity", "albedo"))
    assert result.finite.all()
    for name in ("identity", "albedo"):
        part = BLOCKS[name]
        np.testing.assert_array_equal(result.coeff[0, part], result.coeff[1, part])
    assert not np.array_equal(result.coeff[0, BLOCKS["expression"]],
                              result.coeff[1, BLOCKS["expression"]])


def test_non_finite_starts_and_losses_are_reported_photo_by_photo(faces):
    # A network that gave NaN for one photo: that photo fails, the other is fitted.
    start = faces["truth"].copy()
    start[0, 90] = np.nan
    result = faces["fitter"].fit(start, faces["batch"], plan(3))
    assert result.refused == 0 and result.finite.tolist() == [False, True]
    # A loss that cannot be computed (a crop of NaN): no step is applied.
    broken = faces["batch"].slice(0, 2)
    broken.images = np.full_like(broken.images, np.nan)
    result = faces["fitter"].fit(faces["truth"], broken, plan(3))
    assert result.refused == 3 and not result.finite.any()
    # The Newton steps on the landmarks need no pixels; every Adam step was refused.
    assert np.isfinite(result.history[:NEWTON_STEPS]).all()
    assert np.isnan(result.history[NEWTON_STEPS:]).all()


def test_a_shared_blocks_prior_counts_once_for_the_batch():
    from losses.terms import regularization_loss

    rng = np.random.default_rng(4)
    initial = rng.normal(size=(3, 257)).astype(np.float32)
    shared = Coefficients(shared=("identity", "albedo"))
    shared.load(initial)
    coeff = shared.numpy()
    value = float(regularization_loss(objective.prior_view(tf.constant(coeff),
                                                           ("identity", "albedo"))))
    # MAP over the batch, divided by its size: the shared identity's and albedo's squared
    # norms once, each photo's expression once.
    alpha, delta = coeff[0, :80], coeff[0, 144:224]
    expected = (np.sum(alpha ** 2) + 0.017 * np.sum(delta ** 2)
                + 0.8 * np.sum(coeff[:, 80:144] ** 2)) / 3
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    alone = float(regularization_loss(objective.prior_view(tf.constant(coeff), ())))
    np.testing.assert_allclose(alone, (np.sum(coeff[:, :80] ** 2)        # once per photo
                                       + 0.8 * np.sum(coeff[:, 80:144] ** 2)
                                       + 0.017 * np.sum(coeff[:, 144:224] ** 2)) / 3, rtol=1e-5)


def test_newton_stages_reach_the_landmark_terms_minimum(faces):
    from fitting.optimize import SHAPE

    fitter, batch = faces["fitter"], faces["batch"]
    zero = np.zeros_like(faces["truth"])
    newton = fitter.fit(zero, batch, plan(1, from_mean_face=True)[:-1], per_photo_terms=False)
    adam = Fitter(faces["face"], learning_rate=0.01).fit(
        zero, batch, [Stage(30, POSE, LANDMARK_TERMS), Stage(120, POSE + SHAPE, LANDMARK_TERMS)],
        per_photo_terms=False)
    assert np.isfinite(newton.history).all() and newton.refused == 0
    assert newton.history[-1] < 0.5 * adam.history[-1], (newton.history[-1], adam.history[-1])
    faces["face"].Reconstruction_Block(newton.coeff, 2, render_images=False)
    landmark_px = np.linalg.norm(faces["face"].landmark_p.numpy() - faces["rendered"]["lm68"],
                                 axis=2).mean()
    faces["face"].Reconstruction_Block(zero, 2, render_images=False)
    start_px = np.linalg.norm(faces["face"].landmark_p.numpy() - faces["rendered"]["lm68"],
                              axis=2).mean()
    assert landmark_px < 0.1 * start_px, (landmark_px, start_px)


@pytest.fixture(scope="module")
def bfm09_scale_face(tmp_path_factory):
    """A small synthetic model whose components move vertices by BFM09's millimetres."""
    import load_data
    from face_decoder import Face3D
    from tests.synthetic_assets import write_bfm09

    folder = tmp_path_factory.mktemp("bfm09_scale")
    write_bfm09(folder, seed=3, scale="bfm09")
    load_data.transferBFM09(folder)
    front = folder / "BFM_model_front.mat"
    return Face3D(front), load_data.load_front_model(front)


def test_an_image_set_recovers_the_identity_better_than_its_single_photos(bfm09_scale_face):
    from tests.synthetic_faces import identity_error_mm

    face, front = bfm09_scale_face
    rng = np.random.default_rng(2)
    person = draw_coefficients(rng, 1)[0]
    truth = draw_coefficients(rng, 4, person=person)        # own expressions, light, pose
    truth[:, BLOCKS["angles"].start + 1] = np.radians([-20, -7, 7, 20])
    rendered = render_faces(face, truth, background(None, seed=2))
    batch = FitBatch.stack(rendered["rgb"][..., ::-1].astype(np.float32),
                           [landmark_target(lm68=lm) for lm in rendered["lm68"]],
                           [np.full((224, 224), 255.0, np.float32)] * 4)
    zero = np.zeros_like(truth)
    ids = BLOCKS["identity"]
    fitter = Fitter(face)
    singles = fitter.fit(zero, batch, plan(40, from_mean_face=True), per_photo_terms=False)
    single_errors = identity_error_mm(front, singles.coeff[:, ids], person[ids])
    shared = {}
    for once in (True, False):
        fitter.loss.shared_prior_once = once
        result = fitter.fit(zero, batch, plan(40, from_mean_face=True),
                            shared=("identity", "albedo"), per_photo_terms=False)
        assert result.finite.all()
        shared[once] = identity_error_mm(front, result.coeff[0, ids], person[ids])[0]
    mean_face = identity_error_mm(front, zero[0, ids], person[ids])[0]
    assert single_errors.max() < 0.8 * mean_face, (single_errors, mean_face)
    # The set's one identity beats its photos' own, and counting its prior once (MAP)
    # beats counting it once per photo.
    assert shared[True] < 0.8 * single_errors.mean(), (shared, single_errors)
    assert shared[True] < shared[False], shared


def test_a_single_photo_fits_from_the_mean_face(faces):
    # One photo: the Newton stages' Hessian once crashed TensorFlow's vectorised jacobian.
    result = faces["fitter"].fit(np.zeros((1, 257), np.float32), faces["batch"].slice(0, 1),
                                 plan(2, from_mean_face=True))
    assert result.finite.all() and np.isfinite(result.history).all()
