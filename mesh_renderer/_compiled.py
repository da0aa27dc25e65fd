"""XLA compilation of differentiable sub-graphs, forward and backward.

TensorFlow differentiates a `tf.function(jit_compile=True)` with gradient
ops that are not themselves compiled; on CPU the scatter-adds that gathers
turn into are then several times slower than XLA's. `compiled` wraps a
function so that its forward pass is one XLA kernel and its gradient is a
second XLA kernel that recomputes the forward pass under a gradient tape.
It works eagerly, inside `tf.function` and in TF1-style graphs.
"""

import functools

import tensorflow as tf

from mesh_renderer import _op_traces


def kernel(**function_options):
  """Decorator: tf.function(jit_compile=True, autograph=False, ...) of fn.

  Ops the kernel's python function creates record only this package's
  stack frames (see _op_traces).

  Args:
    **function_options: further tf.function arguments (input_signature,
      reduce_retracing).

  Returns:
    A decorator turning a python function into an XLA-compiled tf.function.
  """
  def decorate(fn):
    @functools.wraps(fn)
    def traced(*args, **kwargs):
      with _op_traces.package_frames_only():
        return fn(*args, **kwargs)
    return tf.function(traced, jit_compile=True, autograph=False,
                       **function_options)
  return decorate


def compiled(fn):
  """Returns fn compiled with XLA, with an XLA-compiled gradient.

  Create the wrapper once (e.g. per image size) and reuse it: each wrapper
  owns its compiled kernels.

  Args:
    fn: a python function fn(differentiable, constants) of two lists of
      tensors returning one float32 tensor or a list of them; only the
      float32 tensors of the first list receive gradients.

  Returns:
    A function call(differentiable, constants) with the same meaning.
  """

  @kernel(reduce_retracing=True)
  def forward(differentiable, constants):
    return fn(differentiable, constants)

  @kernel(reduce_retracing=True)
  def backward(upstream, differentiable, constants):
    differentiable = list(differentiable)
    with tf.GradientTape() as tape:
      tape.watch(differentiable)
      result = fn(differentiable, constants)
    gradients = tape.gradient(result, differentiable,
                              output_gradients=upstream)
    return [tf.zeros_like(a) if g is None else g
            for a, g in zip(differentiable, gradients)]

  def call(differentiable, constants):
    differentiable = [tf.convert_to_tensor(a, dtype=tf.float32)
                      for a in differentiable]
    constants = list(constants)

    @tf.custom_gradient
    def _op(*inputs):
      def _gradient(*upstream):
        return backward(upstream[0] if len(upstream) == 1 else list(upstream),
                        list(inputs), constants)
      return forward(list(inputs), constants), _gradient

    return _op(*differentiable)

  return call


def padded_length(count, smallest, per_octave=2):
  """A length >= count (an int64 scalar tensor) that takes few values.

  Kernels compile once per input shape (a few tenths of a second each on
  CPU); data-dependent lengths padded to these compile for few shapes: at
  least `smallest`, above it the next multiple of 2^k / per_octave for a
  count in the octave [2^k, 2^(k+1)): per_octave lengths per octave, and
  padding of at most 1 / per_octave of the count. Scenes alike give the
  same lengths, so a training run compiles each kernel a few times, not once
  per batch.

  Args:
    count: int64 scalar tensor >= 0.
    smallest: python int, a power of two.
    per_octave: python int, a power of two.

  Returns:
    An int64 scalar tensor.
  """
  count = tf.maximum(count, smallest)
  bits = tf.cast(tf.math.floor(tf.math.log(tf.cast(count, tf.float64)) /
                               tf.math.log(tf.constant(2.0, tf.float64))),
                 tf.int64) + 1
  shift = per_octave.bit_length()
  step = tf.bitwise.left_shift(tf.constant(1, tf.int64),
                               tf.maximum(bits - shift, 0))
  return (count + step - 1) // step * step


def padded(values, smallest, per_octave=2):
  """values [L] (an integer tensor) padded with -1 to padded_length(L).

  The kernels that take such lists compile once per length, so for few
  lengths.

  Args:
    values: 1-D integer tensor.
    smallest, per_octave: as for padded_length.

  Returns:
    A 1-D tensor of values' dtype: values, then -1s.
  """
  count = tf.size(values, out_type=tf.int64)
  length = padded_length(count, smallest, per_octave)
  return tf.concat([values, -tf.ones([length - count], values.dtype)], 0)
