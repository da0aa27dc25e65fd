"""The coefficients a fit optimises, and Adam's state for them.

A coefficient vector is six blocks (`facemodel.coefficients.BLOCKS`:
identity, expression, albedo, Euler angles, lighting, translation). Each
block is a variable, either one row per photo
([B, n]) or one row for the whole batch ([1, n]: an image set's identity and
albedo, the same for every photo). The batch's [B, 257] coefficients are
assembled from the blocks at every evaluation, so the gradient of a shared
block is the sum over the photos that use it: that is all "sharing" means
here (tests/test_fitting.py checks it against finite differences). Which
blocks move is decided step by step by the optimiser (`fitting.optimize`);
the others keep their values.

The variables have a free batch dimension and are loaded with new values
for each batch, so that the optimiser's compiled steps (the renderer and its
gradient take seconds to trace) serve every batch of the same size.

Everything works in the 257-value layout (RGB light). A 239-value vector
(white light) is widened first by repeating its 9 lighting values for R, G
and B (`facemodel.coefficients.widen`), which decodes to the same face.
"""
import numpy as np
import tensorflow as tf

from facemodel.coefficients import BLOCKS, LENGTH


class Coefficients:
    """The coefficients of a batch of photos as variables, with Adam's moments.

    Args:
      shared: names of the blocks (`BLOCKS`) that hold one row for the whole
        batch; the others hold one row per photo.

    Attributes:
      variables: {block name: tf.Variable [B or 1, n]}.
      moments: {block name: (first, second)} Adam's moment estimates, the
        same shapes.
    """

    def __init__(self, shared=()):
        unknown = sorted(set(shared) - set(BLOCKS))
        if unknown:
            raise ValueError(f"unknown blocks {unknown}; known: {sorted(BLOCKS)}")
        self.shared = tuple(shared)
        self.batch = tf.Variable(0, dtype=tf.int32, trainable=False)
        self.variables, self.moments = {}, {}
        for name, part in BLOCKS.items():
            width = part.stop - part.start
            rows = 1 if name in self.shared else None

            def free(rows=rows, width=width):
                return tf.Variable(np.zeros((1, width), np.float32),
                                   shape=tf.TensorShape([rows, width]))
            self.variables[name] = free()
            self.moments[name] = (free(), free())

    def load(self, initial):
        """Starts a fit: sets the blocks from [B, 257] values (shared blocks:
        their mean over the batch) and clears Adam's moments."""
        initial = np.asarray(initial, np.float32)
        if initial.ndim != 2 or initial.shape[1] != LENGTH:
            raise ValueError(f"coefficients must be [B, {LENGTH}], got {initial.shape}")
        self.batch.assign(initial.shape[0])
        for name, part in BLOCKS.items():
            values = initial[:, part]
            if name in self.shared:
                values = values.mean(axis=0, keepdims=True)
            self.variables[name].assign(values)
            for moment in self.moments[name]:
                moment.assign(np.zeros_like(values))

    def __call__(self, values=None):
        """The batch's coefficients, [B, 257] float32 (a tensor).

        Args:
          values: optional {block name: tensor [B or 1, n]} used in place of
            those blocks' variables (a Newton step's trial values).
        """
        parts = []
        for name in BLOCKS:
            value = (values or {}).get(name, self.variables[name])
            if name in self.shared:
                value = tf.tile(value, tf.stack([self.batch, 1]))
            parts.append(value)
        return tf.concat(parts, axis=1)

    def numpy(self):
        """The current coefficients, [B, 257] float32."""
        return self().numpy()
