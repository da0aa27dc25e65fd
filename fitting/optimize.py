"""Adam steps on coefficients, in stages, with the release's loss.

A fit is a list of `Stage`s, each a number of Adam steps that move some
coefficient blocks against some loss terms. Two plans cover the tools:

- from a start that already has the face (the network's coefficients, or
  the previous video frame's): every moving block against every term;
- from the mean face (`demo.py --model none`): first the pose alone
  (angles and translation) against the landmarks alone, a third of the
  steps, so that the face lies on the photo before its shape, albedo and
  light are asked to explain the pixels; then everything against every
  term.

Adam is written out here (TensorFlow 1's constants, as the release's
training: beta 0.9 and 0.999, epsilon 1e-8) on the moments that
`fitting.parameters.Coefficients` keeps beside its variables, because the
variables have a free batch dimension (Keras' optimisers make their slots
from fixed shapes). A step whose loss or gradient is not finite is not
applied; a fit whose every step was refused, or whose result is not finite,
reports the photos concerned as failed.

The compiled step of each (stage, batch size) is kept and reused by every
later batch: tracing the renderer and its gradient takes seconds, a step a
fraction of one.
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf

from facemodel.coefficients import BLOCKS
from fitting.objective import FitBatch, FitLoss
from fitting.parameters import Coefficients
from losses.hybrid import HybridLoss

POSE = ("angles", "translation")
EVERYTHING = tuple(BLOCKS)
LEARNING_RATE = 0.01
_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-8


@dataclasses.dataclass(frozen=True)
class Stage:
    """Adam steps that move some blocks against some loss terms.

    Attributes:
      steps: how many.
      moving: names of the blocks that move (`fitting.parameters.BLOCKS`).
      terms: names of the loss terms in the total, or None for all.
    """
    steps: int
    moving: tuple = EVERYTHING
    terms: tuple = None


def plan(steps, from_mean_face=False, moving=EVERYTHING):
    """The stages of a fit of `steps` Adam steps (see the module docstring).

    Args:
      steps: total number of steps, at least 1.
      from_mean_face: start with the pose against the landmarks.
      moving: the blocks the main stage moves.

    Returns:
      A list of `Stage`s whose steps add up to `steps`.
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"a fit needs at least one step, got {steps}")
    if not from_mean_face or steps < 3:
        return [Stage(steps, tuple(moving))]
    pose = max(1, round(steps / 3))
    return [Stage(pose, POSE, ("landmark",)), Stage(steps - pose, tuple(moving))]


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
      learning_rate: Adam's step size (coefficient units per step, about).
    """

    def __init__(self, face, identity_net=None, temporal_weight=0.0,
                 learning_rate=LEARNING_RATE):
        self.loss = FitLoss(HybridLoss(face, identity_net), temporal_weight)
        self.learning_rate = float(learning_rate)
        self._parameters = {}         # shared blocks -> Coefficients
        self._steps = {}              # (shared, moving, terms, previous?) -> tf.function
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
        finite = np.all(np.isfinite(coeff), axis=1) & (refused < total_steps) & usable
        terms = [None] * len(batch)
        if per_photo_terms:
            terms = [self.evaluate(coeff[i:i + 1], batch.slice(i, i + 1))
                     for i in range(len(batch))]
            finite &= np.array([all(np.isfinite(v) for v in t.values()) for t in terms])
        return FitResult(coeff, terms, finite, np.array(history), refused)

    def evaluate(self, coeff, batch):
        """The loss terms of coefficients against a batch, as floats."""
        if self._evaluate is None:
            self._evaluate = tf.function(
                lambda coeff, images, landmarks, weights, masks: self.loss(
                    coeff, FitBatch(images, landmarks, weights, masks))[0])
        values = self._evaluate(tf.constant(np.asarray(coeff, np.float32)), *_tensors(batch))
        return {name: float(value) for name, value in values.items()
                if name != "temporal"}

    def _step(self, parameters, stage, with_previous):
        key = (parameters.shared, stage.moving, stage.terms, with_previous)
        if key in self._steps:
            return self._steps[key]
        names = [name for name in BLOCKS if name in stage.moving]
        variables = [parameters.variables[name] for name in names]
        moments = [parameters.moments[name] for name in names]
        rate = self.learning_rate

        @tf.function
        def step(images, landmarks, weights, masks, previous, count):
            batch = FitBatch(images, landmarks, weights, masks)
            with tf.GradientTape() as tape:
                values, _ = self.loss(parameters(), batch,
                                      previous if with_previous else None, stage.terms)
                total = values["total"]
            gradients = tape.gradient(total, variables)
            finite = tf.math.is_finite(total)
            for gradient in gradients:
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(gradient)))
            scale = rate * tf.sqrt(1.0 - _BETA2 ** count) / (1.0 - _BETA1 ** count)

            def apply():
                for variable, (first, second), gradient in zip(variables, moments, gradients):
                    first.assign(_BETA1 * first + (1.0 - _BETA1) * gradient)
                    second.assign(_BETA2 * second + (1.0 - _BETA2) * tf.square(gradient))
                    variable.assign_sub(scale * first / (tf.sqrt(second) + _EPSILON))
                return tf.constant(True)

            applied = tf.cond(finite, apply, lambda: tf.constant(False))
            return total, applied

        self._steps[key] = step
        return step


def _tensors(batch):
    return (tf.constant(batch.images), tf.constant(batch.landmarks),
            tf.constant(batch.landmark_weights), tf.constant(batch.masks))
