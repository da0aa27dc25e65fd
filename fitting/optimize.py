"""Newton and Adam steps on coefficients, in stages, with the release's loss.

A fit is a list of `Stage`s, each a number of steps that move some
coefficient blocks against some loss terms. Two plans cover the tools:

- from a start that already has the face (the network's coefficients):
  damped Newton steps on the pose alone against the landmark terms, so that
  the face lies on the photo before the pixels are compared (an identity
  that moves fast must not be left to explain a misplaced face), then Adam
  steps on every block against every term;
- from the mean face (`demo.py --model none`): the same, with Newton steps
  on the pose, identity and expression together after the pose's, so that
  the shape is what the landmarks say before the render is compared with
  the pixels.

(A video's frames after the first batch start from the frame before and
take Adam steps alone: `fitting.video_fit`.)

Why Newton there: the landmark and prior terms of one photo are a smooth
function of 150 numbers that needs only the 68 landmark vertices, so their
exact gradient and Hessian cost milliseconds, and about ten steps reach
their minimum, where a hundred Adam steps did not (docs/fitting.md). The
photometric term needs the render, whose Hessian is out of reach; Adam stays
there. Its step sizes are per block (`LEARNING_RATE`): identity and expression
coefficients are in standard deviations and must travel units, angles
(radians), translation (decimetres), lighting and albedo only hundredths;
one rate of 0.01 for all, as before, left the shape a hundred steps from
where the loss wanted it.

The weights are the release's (`losses.terms.LOSS_WEIGHTS`); a `Fitter` can
be given others, and docs/fitting.md shows why the default stays: a weaker
prior helps with exact landmarks and hurts with a detector's.

Adam is written out here (TensorFlow 1's constants, as the release's
training: beta 0.9 and 0.999, epsilon 1e-8) on the moments that
`fitting.parameters.Coefficients` keeps beside its variables, because the
variables have a free batch dimension (Keras' optimisers make their slots
from fixed shapes). A step whose loss or gradient is not finite is not
applied (a Newton step: the stage ends); a fit whose every step was refused,
or whose result is not finite, reports the photos concerned as failed.

The traced step of each stage is kept and reused by every later batch,
whatever its size (the batch dimension of its signature is free): tracing
the renderer and its gradient takes seconds, a step a fraction of one. Only
the renderer's XLA kernels compile again for a batch size they have not
seen (docs/performance.md#one-compile-per-process).
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf

from facemodel.camera import IMAGE_SIZE
from facemodel.coefficients import BLOCKS, LENGTH
from fitting.objective import LANDMARK_TERMS, N_POINTS, FitBatch, FitLoss
from fitting.parameters import Coefficients
from losses.hybrid import HybridLoss

POSE = ("angles", "translation")
SHAPE = ("identity", "expression")
NEWTON_STEPS = 10
EVERYTHING = tuple(BLOCKS)
LEARNING_RATE = {"identity": 0.1, "expression": 0.1, "albedo": 0.01, "angles": 0.01,
                 "lighting": 0.01, "translation": 0.01}
_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-8


@dataclasses.dataclass(frozen=True)
class Stage:
    """Steps that move some blocks against some loss terms.

    Attributes:
      steps: how many.
      moving: names of the blocks that move (`fitting.parameters.BLOCKS`).
      terms: names of the loss terms in the total, or None for all.
      method: "adam" (first-order steps) or "newton" (damped Newton steps,
        for `objective.LANDMARK_TERMS` only: see `Fitter._newton`).
      learning_rate: Adam's step size for every moving block, in place of
        the fitter's (None: the fitter's); e.g. small steps from a warm start.
    """
    steps: int
    moving: tuple = EVERYTHING
    terms: tuple = None
    method: str = "adam"
    learning_rate: float = None


def plan(steps, from_mean_face=False, moving=EVERYTHING):
    """The stages of a fit of `steps` Adam steps (see the module docstring).

    Args:
      steps: Adam steps, at least 1.
      from_mean_face: after the Newton steps on the pose (every plan starts
        with them), Newton steps on the pose with identity and expression.
      moving: the blocks the Adam stage moves.

    Returns:
      A list of `Stage`s.
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"a fit needs at least one step, got {steps}")
    stages = [Stage(NEWTON_STEPS, POSE, LANDMARK_TERMS, "newton")]
    if from_mean_face:
        stages.append(Stage(NEWTON_STEPS, POSE + SHAPE, LANDMARK_TERMS, "newton"))
    return stages + [Stage(steps, tuple(moving))]


@dataclasses.dataclass
class FitResult:
    """What a fit gave.

    Attributes:
      coeff: [B, 257] float32 the fitted coefficients.
      terms: per photo, {term name: final value} (None when not evaluated).
      finite: [B] bool, the photo's start, coefficients and final terms are
        finite and at least one step was applied. (A photo whose start is not
        finite is fitted from zeros, so that it does not stop the others.)
      history: [steps] the total loss at each step (NaN where refused).
      refused: how many steps were not applied (a non-finite loss or
        gradient).
    """
    coeff: np.ndarray
    terms: list
    finite: np.ndarray
    history: np.ndarray
    refused: int


class Fitter:
    """Fits coefficients to photos with the release's loss (and a temporal term).

    Args:
      face: a `face_decoder.Face3D`.
      identity_net: an identity network for the identity term, or None.
      temporal_weight: the weight of `objective.temporal_loss` (videos).
      learning_rate: Adam's step size (units of each block per step, about):
        one number for every block, or {block name: rate} (`LEARNING_RATE`).
      weights: weights of the release's terms for the fit, over
        `losses.terms.LOSS_WEIGHTS` (default: the release's).
    """

    def __init__(self, face, identity_net=None, temporal_weight=0.0,
                 learning_rate=LEARNING_RATE, weights=None):
        self.loss = FitLoss(HybridLoss(face, identity_net), temporal_weight, weights)
        self.learning_rate = learning_rate
        self._parameters = {}         # shared blocks -> Coefficients
        self._steps = {}              # (shared, moving, terms, ...) -> compiled functions
        self._evaluate = None

    def parameters(self, shared=()):
        key = tuple(shared)
        if key not in self._parameters:
            self._parameters[key] = Coefficients(shared)
        return self._parameters[key]

    def fit(self, initial, batch, stages, shared=(), previous=None, per_photo_terms=True,
            progress=None):
        """Runs the stages on one batch.

        Args:
          initial: [B, 257] starting coefficients.
          batch: a `FitBatch` of B photos.
          stages: a list of `Stage`s (`plan`).
          shared: blocks with one value for the whole batch (image sets).
          previous: [1, 257] the frame before the batch (temporal term), or None.
          per_photo_terms: evaluate each photo's final terms (one forward pass
            per photo).
          progress: optional callable(steps done, steps in all, total loss).

        Returns:
          A `FitResult`.
        """
        parameters = self.parameters(shared)
        initial = np.asarray(initial, np.float32)
        usable = np.all(np.isfinite(initial), axis=1)    # a broken start must not poison
        parameters.load(np.where(usable[:, None], initial, 0.0))   # the batch's other photos
        tensors = _tensors(batch)
        previous = None if previous is None else tf.constant(np.asarray(previous, np.float32))
        total_steps = sum(stage.steps for stage in stages)
        history, refused, done = [], 0, 0
        for stage in stages:
            if stage.method == "newton":
                losses = self._newton(parameters, stage, tensors, previous)
                history.extend(losses)
                done += stage.steps
                if progress is not None:
                    progress(done, total_steps, losses[-1])
                continue
            step = self._step(parameters, stage, previous is not None)
            for moment_pair in parameters.moments.values():
                for moment in moment_pair:
                    moment.assign(tf.zeros_like(moment))
            for count in range(1, stage.steps + 1):
                total, applied = step(*tensors, previous if previous is not None else 0.0,
                                      tf.constant(float(count)))
                total = float(total)
                history.append(total if bool(applied) else math.nan)
                refused += not bool(applied)
                done += 1
                if progress is not None:
                    progress(done, total_steps, total)
        coeff = parameters.numpy()
        adam_steps = sum(stage.steps for stage in stages if stage.method == "adam")
        applied = refused < adam_steps if adam_steps else np.isfinite(history[-1])
        finite = np.all(np.isfinite(coeff), axis=1) & applied & usable
        terms = [None] * len(batch)
        if per_photo_terms:
            terms = [self.evaluate(coeff[i:i + 1], batch.slice(i, i + 1))
                     for i in range(len(batch))]
            finite &= np.array([all(np.isfinite(v) for v in t.values()) for t in terms])
        return FitResult(coeff, terms, finite, np.array(history), refused)

    def _newton(self, parameters, stage, tensors, previous):
        """Damped Newton steps on the moving blocks against landmark-only terms.

        The landmark and prior terms of a few hundred coefficients are cheap
        (68 vertices, no render), so their exact gradient and Hessian are:
        each step solves (H + lambda diag(H)) d = -g, keeps d when the loss
        falls (and lowers lambda), else raises lambda (Levenberg-Marquardt's
        rule). Returns the loss after each step.
        """
        names = [name for name in BLOCKS if name in stage.moving]
        pieces, value = self._newton_functions(parameters, stage, previous is not None)
        theta = tf.concat([tf.reshape(parameters.variables[n], [-1]) for n in names], 0)
        rows = [tf.shape(parameters.variables[n])[0] for n in names]
        extra = (previous if previous is not None else tf.constant(0.0),)
        damping, losses = 1e-3, []
        for _ in range(stage.steps):
            loss, gradient, hessian = (t.numpy().astype(np.float64)
                                       for t in pieces(theta, *tensors, *extra))
            if hessian.ndim == 3:        # per photo: place the blocks in theta's order
                hessian = _block_diagonal(hessian, [BLOCKS[n].stop - BLOCKS[n].start
                                                    for n in names])
            if not (np.isfinite(loss) and np.all(np.isfinite(gradient))
                    and np.all(np.isfinite(hessian))):
                losses.append(math.nan)
                break
            diagonal = np.maximum(np.abs(np.diag(hessian)), 1e-9)
            improved = False
            for _ in range(8):
                try:
                    delta = np.linalg.solve(hessian + damping * np.diag(diagonal), -gradient)
                except np.linalg.LinAlgError:
                    damping *= 10.0
                    continue
                trial = theta + tf.constant(delta, tf.float32)
                trial_loss = float(value(trial, *tensors, *extra))
                if np.isfinite(trial_loss) and trial_loss <= loss:
                    theta, loss, improved = trial, trial_loss, True
                    damping = max(damping / 10.0, 1e-7)
                    break
                damping *= 10.0
            losses.append(float(loss))
            if not improved:
                break
        losses += [losses[-1]] * (stage.steps - len(losses))
        start = 0
        for name, count in zip(names, rows):
            variable = parameters.variables[name]
            size = int(count) * variable.shape[1]
            variable.assign(tf.reshape(theta[start:start + size], [int(count), -1]))
            start += size
        return losses

    def _newton_functions(self, parameters, stage, with_previous):
        key = ("newton", parameters.shared, stage.moving, stage.terms, with_previous,
               self.loss.shared_prior_once)
        if key in self._steps:
            return self._steps[key]
        names = [name for name in BLOCKS if name in stage.moving]
        widths = [BLOCKS[name].stop - BLOCKS[name].start for name in names]

        def blocks_of(theta):          # theta (block after block) -> {name: [rows, width]}
            size = parameters.batch
            rows = [1 if name in parameters.shared else size for name in names]
            parts = tf.split(theta, tf.stack([r * w for r, w in zip(rows, widths)]))
            return {name: tf.reshape(part, [r, w])
                    for name, part, r, w in zip(names, parts, rows, widths)}

        def loss_of(values, images, landmarks, weights, masks, previous):
            batch = FitBatch(images, landmarks, weights, masks)
            terms, _ = self.loss(parameters(values), batch,
                                 previous if with_previous else None, stage.terms,
                                 shared=parameters.shared)
            return terms["total"]

        def objective(theta, images, landmarks, weights, masks, previous):
            return loss_of(blocks_of(theta), images, landmarks, weights, masks, previous)

        theta_spec = (tf.TensorSpec([None]),)

        # Photos whose moving blocks are all their own have independent landmark
        # terms: their Hessian is block diagonal, one [P, P] block a photo, and
        # the batch's blocks come from P backward passes, not B P.
        per_photo = not any(name in parameters.shared for name in names)

        @tf.function(input_signature=theta_spec + _signature(with_previous))
        def pieces(theta, images, landmarks, weights, masks, previous):
            data = (images, landmarks, weights, masks, previous)
            # Per photo, the variable is [B, P], a photo a row.
            variable = tf.concat(list(blocks_of(theta).values()), 1) if per_photo else theta
            with tf.GradientTape() as outer:
                outer.watch(variable)
                with tf.GradientTape() as inner:
                    inner.watch(variable)
                    loss = loss_of(dict(zip(names, tf.split(variable, widths, 1))), *data) \
                        if per_photo else objective(variable, *data)
                gradient = inner.gradient(loss, variable)
            # A while loop over the gradient's entries: TensorFlow 2.21's vectorised
            # jacobian (pfor) crashed the process (a segmentation fault) for a batch of 1.
            if per_photo:
                flat = tf.concat([tf.reshape(g, [-1]) for g in tf.split(gradient, widths, 1)], 0)
                return loss, flat, outer.batch_jacobian(gradient, variable,
                                                        experimental_use_pfor=False)
            return loss, gradient, outer.jacobian(gradient, variable, experimental_use_pfor=False)

        value = tf.function(objective, input_signature=theta_spec + _signature(with_previous))
        self._steps[key] = (pieces, value)
        return self._steps[key]

    def evaluate(self, coeff, batch):
        """The loss terms of coefficients against a batch, as floats."""
        if self._evaluate is None:
            self._evaluate = tf.function(
                lambda coeff, images, landmarks, weights, masks: self.loss(
                    coeff, FitBatch(images, landmarks, weights, masks))[0],
                input_signature=(tf.TensorSpec([None, LENGTH]),) + _signature(None)[:4])
        values = self._evaluate(tf.constant(np.asarray(coeff, np.float32)), *_tensors(batch))
        return {name: float(value) for name, value in values.items()
                if name != "temporal"}

    def _step(self, parameters, stage, with_previous):
        key = (parameters.shared, stage.moving, stage.terms, stage.learning_rate, with_previous,
               self.loss.shared_prior_once)
        if key in self._steps:
            return self._steps[key]
        names = [name for name in BLOCKS if name in stage.moving]
        variables = [parameters.variables[name] for name in names]
        moments = [parameters.moments[name] for name in names]
        rates = self.learning_rate if stage.learning_rate is None else stage.learning_rate
        if not isinstance(rates, dict):
            rates = {name: float(rates) for name in BLOCKS}
        rates = [float(rates[name]) for name in names]

        @tf.function(input_signature=_signature(with_previous) + (tf.TensorSpec([]),))
        def step(images, landmarks, weights, masks, previous, count):
            batch = FitBatch(images, landmarks, weights, masks)
            with tf.GradientTape() as tape:
                values, _ = self.loss(parameters(), batch,
                                      previous if with_previous else None, stage.terms,
                                      shared=parameters.shared)
                total = values["total"]
            gradients = tape.gradient(total, variables)
            finite = tf.math.is_finite(total)
            for gradient in gradients:
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(gradient)))
            scale = tf.sqrt(1.0 - _BETA2 ** count) / (1.0 - _BETA1 ** count)

            def apply():
                for variable, (first, second), gradient, rate in zip(variables, moments,
                                                                     gradients, rates):
                    first.assign(_BETA1 * first + (1.0 - _BETA1) * gradient)
                    second.assign(_BETA2 * second + (1.0 - _BETA2) * tf.square(gradient))
                    variable.assign_sub(rate * scale * first / (tf.sqrt(second) + _EPSILON))
                return tf.constant(True)

            applied = tf.cond(finite, apply, lambda: tf.constant(False))
            return total, applied

        self._steps[key] = step
        return step


def _block_diagonal(blocks, widths):
    """The Hessian of theta (block after block) from its per-photo [B, P, P] blocks.

    Args:
      blocks: [B, P, P] each photo's Hessian, its P values in the order of
        the moving blocks.
      widths: each moving block's width (P in all); each block has B rows.

    Returns:
      [B P, B P] with zeros between photos.
    """
    batch = blocks.shape[0]
    starts = np.cumsum([0] + [batch * w for w in widths])[:-1]
    index = np.concatenate([start + np.arange(batch)[:, None] * w + np.arange(w)
                            for start, w in zip(starts, widths)], axis=1)   # [B, P]
    hessian = np.zeros((index.size, index.size))
    for photo in range(batch):
        hessian[np.ix_(index[photo], index[photo])] = blocks[photo]
    return hessian


def _signature(with_previous):
    """The input signature of a batch's tensors (`_tensors`) and the frame before it.

    The batch dimension is free, so that every batch size (an image set's, a
    video's remainder, a folder's last batch) runs the one traced function
    (docs/performance.md#one-compile-per-process).
    """
    return (tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3]),
            tf.TensorSpec([None, N_POINTS, 2]), tf.TensorSpec([None, N_POINTS]),
            tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE]),
            tf.TensorSpec([1, LENGTH] if with_previous else []))


def _tensors(batch):
    return (tf.constant(batch.images), tf.constant(batch.landmarks),
            tf.constant(batch.landmark_weights), tf.constant(batch.masks))
