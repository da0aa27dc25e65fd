"""Camera matrices for the mesh renderer: view, projection and rotations.

All functions build float32 TensorFlow tensors and work eagerly, inside
`tf.function` and in TF1-style graphs; the batch size may be unknown when the
graph is built.
"""

import math

import tensorflow as tf


def _as_float(value, name):
  return tf.convert_to_tensor(value, dtype=tf.float32, name=name)


def perspective(aspect_ratio, fov_y, near_clip, far_clip):
  """Computes OpenGL perspective projection matrices (as gluPerspective).

  The projection maps right-handed eye space, camera looking down -z, to
  left-handed clip space: view-space z in [-near_clip, -far_clip] maps to NDC
  z in [-1, 1] and the clip-space w is -z_view.

  Args:
    aspect_ratio: python float or scalar tensor, image width / height.
    fov_y: [batch_size] float32 tensor (a scalar is also accepted), the
      vertical field of view in degrees.
    near_clip: [batch_size] float32 tensor (or scalar), near plane distance,
      > 0.
    far_clip: [batch_size] float32 tensor (or scalar), far plane distance,
      > near_clip.

  Returns:
    A [batch_size, 4, 4] float32 tensor of projection matrices, batch_size
    being the broadcast length of fov_y, near_clip and far_clip (1 when all
    three are scalars).

  Raises:
    ValueError: if fov_y, near_clip or far_clip has rank above 1.
  """
  fov_y = _as_float(fov_y, 'fov_y')
  near_clip = _as_float(near_clip, 'near_clip')
  far_clip = _as_float(far_clip, 'far_clip')
  for tensor, name in ((fov_y, 'fov_y'), (near_clip, 'near_clip'),
                       (far_clip, 'far_clip')):
    if tensor.shape.rank is not None and tensor.shape.rank > 1:
      raise ValueError('%s must be a scalar or have shape [batch_size], got '
                       'shape %s.' % (name, tensor.shape))
  fov_y = tf.reshape(fov_y, [-1])
  near_clip = tf.reshape(near_clip, [-1])
  far_clip = tf.reshape(far_clip, [-1])
  # The multiplication by pi/360 converts degrees to radians and halves.
  focal_y = 1.0 / tf.tan(fov_y * (math.pi / 360.0))
  depth_range = far_clip - near_clip
  p22 = -(far_clip + near_clip) / depth_range
  p23 = -2.0 * (far_clip * near_clip / depth_range)
  aspect_ratio = tf.cast(aspect_ratio, tf.float32)
  focal_x = focal_y / aspect_ratio
  focal_x, focal_y, p22, p23 = [
      t + tf.zeros_like(focal_y + p22) for t in (focal_x, focal_y, p22, p23)]
  zeros = tf.zeros_like(p22)
  ones = tf.ones_like(p22)
  rows = [
      tf.stack([focal_x, zeros, zeros, zeros], axis=1),
      tf.stack([zeros, focal_y, zeros, zeros], axis=1),
      tf.stack([zeros, zeros, p22, p23], axis=1),
      tf.stack([zeros, zeros, -ones, zeros], axis=1),
  ]
  return tf.stack(rows, axis=1)


def look_at(eye, center, world_up):
  """Computes camera view matrices (as gluLookAt).

  Args:
    eye: [batch_size, 3] float32 tensor, the camera position in world space.
    center: [batch_size, 3] float32 tensor, a point the camera looks at.
    world_up: [batch_size, 3] float32 tensor, the world's up direction; the
      camera has no roll with respect to it.

  Returns:
    A [batch_size, 4, 4] float32 tensor of right-handed view matrices mapping
    world space to eye space (camera at the origin looking down -z, y up).

  Raises:
    ValueError: if an argument does not have shape [batch_size, 3].
  """
  eye = _as_float(eye, 'eye')
  center = _as_float(center, 'center')
  world_up = _as_float(world_up, 'world_up')
  for tensor, name in ((eye, 'eye'), (center, 'center'),
                       (world_up, 'world_up')):
    if tensor.shape.rank is not None and (
        tensor.shape.rank != 2 or tensor.shape[1] not in (None, 3)):
      raise ValueError('%s must have shape [batch_size, 3], got shape %s.' %
                       (name, tensor.shape))
  # A degenerate camera (eye == center, or up parallel to the gaze) gives
  # non-finite matrices.
  forward = center - eye
  forward = forward / tf.norm(forward, axis=1, keepdims=True)
  to_side = tf.linalg.cross(forward, world_up)
  to_side = to_side / tf.norm(to_side, axis=1, keepdims=True)
  cam_up = tf.linalg.cross(to_side, forward)
  back = -forward
  translation = [
      -tf.reduce_sum(axis * eye, axis=1) for axis in (to_side, cam_up, back)]
  zeros = tf.zeros_like(translation[0])
  ones = tf.ones_like(translation[0])
  rows = [
      tf.concat([to_side, translation[0][:, None]], axis=1),
      tf.concat([cam_up, translation[1][:, None]], axis=1),
      tf.concat([back, translation[2][:, None]], axis=1),
      tf.stack([zeros, zeros, zeros, ones], axis=1),
  ]
  return tf.stack(rows, axis=1)


def euler_matrices(angles):
  """Computes XYZ Tait-Bryan rotation matrices, R = Rz * Ry * Rx.

  Args:
    angles: [batch_size, 3] float32 tensor of rotation angles about the x, y
      and z axes, in radians.

  Returns:
    A [batch_size, 4, 4] float32 tensor of homogeneous rotation matrices
    (column-vector convention: a point p maps to R p).

  Raises:
    ValueError: if angles does not have shape [batch_size, 3].
  """
  angles = _as_float(angles, 'angles')
  if angles.shape.rank is not None and (
      angles.shape.rank != 2 or angles.shape[1] not in (None, 3)):
    raise ValueError('angles must have shape [batch_size, 3], got shape %s.' %
                     angles.shape)
  s = tf.sin(angles)
  c = tf.cos(angles)
  c0, c1, c2 = c[:, 0], c[:, 1], c[:, 2]
  s0, s1, s2 = s[:, 0], s[:, 1], s[:, 2]
  zeros = tf.zeros_like(s0)
  ones = tf.ones_like(s0)
  rows = [
      tf.stack([c2 * c1, c2 * s1 * s0 - c0 * s2, s2 * s0 + c2 * c0 * s1,
                zeros], axis=1),
      tf.stack([c1 * s2, c2 * c0 + s2 * s1 * s0, c0 * s2 * s1 - c2 * s0,
                zeros], axis=1),
      tf.stack([-s1, c1 * s0, c1 * c0, zeros], axis=1),
      tf.stack([zeros, zeros, zeros, ones], axis=1),
  ]
  return tf.stack(rows, axis=1)


def transform_homogeneous(matrices, vertices):
  """Applies batched 4x4 transformations to 3-D points.

  Points are extended to (x, y, z, 1) and multiplied as column vectors:
  the result is (M v^T)^T for each image.

  Args:
    matrices: [batch_size, 4, 4] float32 tensor.
    vertices: [batch_size, vertex_count, 3] float32 tensor.

  Returns:
    A [batch_size, vertex_count, 4] float32 tensor of homogeneous points.

  Raises:
    ValueError: if matrices or vertices has the wrong shape.
  """
  matrices = _as_float(matrices, 'matrices')
  vertices = _as_float(vertices, 'vertices')
  if matrices.shape.rank is not None and (
      matrices.shape.rank != 3 or
      not matrices.shape[1:].is_compatible_with([4, 4])):
    raise ValueError('matrices must have shape [batch_size, 4, 4], got shape '
                     '%s.' % matrices.shape)
  if vertices.shape.rank is not None and (
      vertices.shape.rank != 3 or vertices.shape[2] not in (None, 3)):
    raise ValueError('vertices must have shape [batch_size, vertex_count, 3],'
                     ' got shape %s.' % vertices.shape)
  # M (x, y, z, 1)^T without forming (x, y, z, 1): a concatenation of
  # narrow rows is slow.
  return (tf.matmul(vertices, matrices[:, :, :3], transpose_b=True) +
          matrices[:, None, :, 3])
