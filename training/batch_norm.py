"""Batch norm whose statistics are those of the global batch when it is split over replicas.

Why not Keras' own `synchronized=True`: it sums each replica's sums and
sums of squares and takes the variance as E[x^2] - E[x]^2, which loses
digits where a channel's mean is large against its spread. On the R-Net at
its random start that was enough to move the first layer's gradient by 10%
against TensorFlow's two-pass moments on the same photos (measured on one
device, where both can be compared: docs/training.md). Here the replicas
first sum their sums to the global mean, then their squared deviations
from it: the two passes of `tf.nn.moments`, so that the replicas compute
what one device computes, up to the order of the sums.

On one device (or any strategy with one replica in sync) the layer is
Keras' `BatchNormalization` unchanged, so existing runs, checkpoints and
exported graphs are the same.
"""
import keras
import tensorflow as tf


class GlobalBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` over the global batch of a `tf.distribute` strategy.

    In training mode under a strategy with more than one replica in sync,
    the mean and variance are those of all replicas' rows together (two
    all-reduces a layer), and so are the moving averages each replica keeps.
    Otherwise, as Keras' layer. Same arguments and weights.
    """

    def _moments(self, inputs, mask):
        context = tf.distribute.get_replica_context()
        if mask is not None or context is None or context.num_replicas_in_sync == 1:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        x = tf.cast(inputs, tf.float32)
        count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float32)
        sums = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                  tf.concat([tf.reduce_sum(x, axes), count[None]], 0))
        total = sums[-1]
        mean = sums[:-1] / total
        # As tf.nn.moments: the deviations from a mean whose gradient is not taken
        # here (the deviations' sum is 0, so it would add nothing).
        squares = tf.reduce_sum(tf.square(x - tf.stop_gradient(mean)), axes)
        variance = context.all_reduce(tf.distribute.ReduceOp.SUM, squares) / total
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)
