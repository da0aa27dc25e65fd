"""Short op stack traces for this package's XLA kernels.

Every TensorFlow op records the Python stack that created it. XLA copies
each op's whole stack into C++ strings when it compiles the op's function
and keeps them as long as the function lives: for this package's kernels,
traced under a deep caller (a training loop, a test runner), tens of MiB.
Ops created under `package_frames_only()` keep only this package's frames,
all that an error message about a kernel needs.

It uses TensorFlow's own stack-trace filters (tf_stack.StackTraceFilter),
which drop the frames of the files named in a set. Where that module is
missing or does not behave as this relies on, nothing is filtered.
"""

import contextlib
import functools
import os
import sys

import tensorflow as tf

try:
  from tensorflow.python.util import tf_stack  # pylint: disable=g-direct-tensorflow-import
except ImportError:  # pragma: no cover
  tf_stack = None

_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep
# TensorFlow drops the innermost three frames of an op's trace (its own op
# creation, in this file) after filtering: they must survive the filter, or
# the trace of an op could end up empty.
_OP_CREATION_FILE = getattr(sys.modules[tf.Operation.__module__], "__file__",
                            None)


def package_frames_only():
  """A context manager: ops created in it record only this package's frames.

  Returns:
    A context manager; a no-op one where TensorFlow's filters are missing or
    would leave no frame of this package.
  """
  if not _filter_keeps_package_frames():
    return contextlib.nullcontext()
  return _PackageFramesOnly()


@functools.lru_cache(maxsize=None)
def _filter_keeps_package_frames():
  """Whether an op created here under the filter keeps a frame of this file."""
  if tf_stack is None or _OP_CREATION_FILE is None:
    return False
  try:
    with tf.Graph().as_default():
      with _PackageFramesOnly():
        op = tf.constant(0).op
      frames = list(op.traceback)
  except Exception:  # pylint: disable=broad-except
    return False
  return any(frame.filename == __file__ for frame in frames)


_Filter = tf_stack.StackTraceFilter if tf_stack is not None else object


class _PackageFramesOnly(_Filter):
  """Drops from op stack traces every frame outside this package.

  One set of file names, only ever growing, is shared by every trace (each
  op keeps a pointer to it): the files of all loaded modules and of every
  frame on the stack when a filter is entered, except this package's files
  and TensorFlow's op-creation file.
  """

  _names = set()
  _shared_set = None

  def __init__(self):  # pylint: disable=super-init-not-called
    if _PackageFramesOnly._shared_set is None:
      _PackageFramesOnly._shared_set = tf_stack._tf_stack.PyBindFileSet()  # pylint: disable=protected-access
    self.internal_set = _PackageFramesOnly._shared_set

  def get_filtered_filenames(self):
    return _PackageFramesOnly._names

  def update(self):
    names = {getattr(module, "__file__", None)
             for module in list(sys.modules.values())}
    frame = sys._getframe()  # pylint: disable=protected-access
    while frame is not None:
      names.add(frame.f_code.co_filename)
      frame = frame.f_back
    names = {name for name in names
             if isinstance(name, str) and name != _OP_CREATION_FILE and
             not name.startswith(_PACKAGE_DIRECTORY)}
    if not names <= _PackageFramesOnly._names:
      _PackageFramesOnly._names |= names
      self.internal_set.update_to(set(_PackageFramesOnly._names))
