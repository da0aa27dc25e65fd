"""Phong-shaded rendering of triangle meshes (tf_mesh_renderer's API).

`mesh_renderer` rasterizes normals, world positions and colours with
`rasterize_triangles.rasterize` and shades them with `phong_shader`;
`tone_mapper` applies the reference's gamma tone mapping. Conventions,
including the reference's quirks that its golden images depend on, follow
`shared/spec/renderer.md`.
"""

import functools
import numbers

import tensorflow as tf

from mesh_renderer import _compiled, camera_utils, rasterize_triangles


def _tensor(value, name):
  return tf.convert_to_tensor(value, dtype=tf.float32, name=name)


def _batch_of(tensor):
  """Static batch size of a tensor, or None."""
  if tensor.shape.rank is None or tensor.shape.rank == 0:
    return None
  return tensor.shape[0]


# Shape checks shared with the rasterizer (ValueError naming the argument).
_require = rasterize_triangles._check_shape  # pylint: disable=protected-access


def phong_shader(normals,
                 alphas,
                 pixel_positions,
                 light_positions,
                 light_intensities,
                 diffuse_colors=None,
                 camera_position=None,
                 specular_colors=None,
                 shininess_coefficients=None,
                 ambient_color=None):
  """Computes per-pixel Phong lighting from rasterized buffers.

  For each pixel and light, with l the normalized pixel-to-light direction
  and nl = clip(n . l, 0, 1), the diffuse term is kd * I * nl. When a camera
  position is given, the specular term uses r = normalize(2 nl n - l),
  v = normalize(camera - pixel) and d = r . v; as in the reference (whose
  golden images depend on it), d is l2-normalized across all pixels of the
  image for that light, clipped to [0, 1] and zeroed where nl == 0, and the
  term is ks * I * d^shininess. An ambient colour adds ambient * kd.

  Args:
    normals: [batch_size, image_height, image_width, 3] float32 tensor of
      unit world-space normals.
    alphas: [batch_size, image_height, image_width] float32 tensor of
      coverage in [0, 1].
    pixel_positions: [batch_size, image_height, image_width, 3] float32
      tensor of world-space positions.
    light_positions: [batch_size, light_count, 3] float32 tensor.
    light_intensities: [batch_size, light_count, 3] float32 tensor of RGB
      intensities (may exceed 1).
    diffuse_colors: [batch_size, image_height, image_width, 3] float32 tensor
      of diffuse RGB reflectances.
    camera_position: optional [batch_size, 3] float32 tensor; when given,
      specular reflections are computed.
    specular_colors: [batch_size, image_height, image_width, 3] float32 tensor
      of specular RGB reflectances; required with camera_position.
    shininess_coefficients: float32 tensor broadcastable to [batch_size,
      image_height, image_width] (e.g. [batch_size, 1, 1] or [1, 1, 1]);
      required with camera_position.
    ambient_color: optional [batch_size, 3] float32 tensor.

  Returns:
    A [batch_size, image_height, image_width, 4] float32 RGBA tensor,
    flipped vertically so that row 0 is the top of the image. RGB is 0 where
    alpha <= 0.5; A is `alphas`.

  Raises:
    ValueError: if an argument has an invalid shape, or specular inputs are
      missing.
  """
  normals = _tensor(normals, 'normals')
  alphas = _tensor(alphas, 'alphas')
  pixel_positions = _tensor(pixel_positions, 'pixel_positions')
  light_positions = _tensor(light_positions, 'light_positions')
  light_intensities = _tensor(light_intensities, 'light_intensities')
  _require(normals, 'normals', 4, 3,
           '[batch_size, image_height, image_width, 3]')
  _require(alphas, 'alphas', 3, None,
           '[batch_size, image_height, image_width]')
  _require(pixel_positions, 'pixel_positions', 4, 3,
           '[batch_size, image_height, image_width, 3]')
  _require(light_positions, 'light_positions', 3, 3,
           '[batch_size, light_count, 3]')
  _require(light_intensities, 'light_intensities', 3, 3,
           '[batch_size, light_count, 3]')
  if diffuse_colors is None:
    raise ValueError('diffuse_colors must be given.')
  diffuse_colors = _tensor(diffuse_colors, 'diffuse_colors')
  _require(diffuse_colors, 'diffuse_colors', 4, 3,
           '[batch_size, image_height, image_width, 3]')
  if camera_position is not None:
    if specular_colors is None or shininess_coefficients is None:
      raise ValueError('camera_position requires specular_colors and '
                       'shininess_coefficients.')
    camera_position = _tensor(camera_position, 'camera_position')
    _require(camera_position, 'camera_position', 2, 3, '[batch_size, 3]')
    specular_colors = _tensor(specular_colors, 'specular_colors')
    _require(specular_colors, 'specular_colors', 4, 3,
             '[batch_size, image_height, image_width, 3]')
    shininess_coefficients = _tensor(shininess_coefficients,
                                     'shininess_coefficients')
    if shininess_coefficients.shape.rank == 0:
      shininess_coefficients = tf.reshape(shininess_coefficients, [1, 1, 1])
    _require(shininess_coefficients, 'shininess_coefficients', 3, None,
             'broadcastable to [batch_size, image_height, image_width]')
  if ambient_color is not None:
    ambient_color = _tensor(ambient_color, 'ambient_color')
    _require(ambient_color, 'ambient_color', 2, 3, '[batch_size, 3]')

  shape = tf.shape(normals)
  batch, height, width = shape[0], shape[1], shape[2]
  normals = tf.reshape(normals, [batch, -1, 3])
  pixel_positions = tf.reshape(pixel_positions, [batch, -1, 3])
  diffuse_colors = tf.reshape(diffuse_colors, [batch, -1, 3])

  output = tf.zeros_like(diffuse_colors)
  if ambient_color is not None:
    output += ambient_color[:, None, :] * diffuse_colors

  # [batch, light, pixel, 3]
  to_lights = tf.math.l2_normalize(
      light_positions[:, :, None, :] - pixel_positions[:, None, :, :], axis=3)
  normals_dot_lights = tf.clip_by_value(
      tf.reduce_sum(normals[:, None, :, :] * to_lights, axis=3), 0.0, 1.0)
  output += tf.reduce_sum(
      diffuse_colors[:, None, :, :] * normals_dot_lights[:, :, :, None] *
      light_intensities[:, :, None, :], axis=1)

  if camera_position is not None:
    specular_colors = tf.reshape(specular_colors, [batch, -1, 3])
    reflections = tf.math.l2_normalize(
        2.0 * normals_dot_lights[:, :, :, None] * normals[:, None, :, :] -
        to_lights, axis=3)
    to_camera = tf.math.l2_normalize(
        camera_position[:, None, :] - pixel_positions, axis=2)
    cosines = tf.reduce_sum(to_camera[:, None, :, :] * reflections, axis=3)
    # The reference normalizes these cosines across the whole image.
    cosines = tf.clip_by_value(tf.math.l2_normalize(cosines, axis=2), 0.0,
                               1.0)
    cosines = tf.where(tf.not_equal(normals_dot_lights, 0.0), cosines,
                       tf.zeros_like(cosines))
    cosines = tf.reshape(cosines, [batch, -1, height, width])
    specularity = tf.pow(cosines, shininess_coefficients[:, None])
    specularity = tf.reshape(specularity, [batch, tf.shape(cosines)[1], -1,
                                           1])
    output += tf.reduce_sum(
        specular_colors[:, None, :, :] * specularity *
        light_intensities[:, :, None, :], axis=1)

  rgb = tf.reshape(output, [batch, height, width, 3])
  alphas = tf.reshape(alphas, [batch, height, width, 1])
  rgb = tf.where(alphas > 0.5, rgb, tf.zeros_like(rgb))
  return tf.reverse(tf.concat([rgb, alphas], axis=3), axis=[1])


def tone_mapper(image, gamma):
  """Applies gamma tone mapping, normalized per image.

  Computes image ** gamma, divides each image by its maximum over all pixels
  and channels, and clips to [0, 1].

  Args:
    image: [batch_size, image_height, image_width, channel_count] float32
      tensor.
    gamma: float or scalar float32 tensor, >= 0.

  Returns:
    A float32 tensor of the shape of `image`, in [0, 1].

  Raises:
    ValueError: if image is not 4-D.
  """
  image = _tensor(image, 'image')
  _require(image, 'image', 4, None,
           '[batch_size, image_height, image_width, channel_count]')
  corrected = tf.pow(image, gamma)
  image_max = tf.reduce_max(corrected, axis=[1, 2, 3], keepdims=True)
  return tf.clip_by_value(corrected / image_max, 0.0, 1.0)


def _per_image(value, name, batch):
  """fov/near/far: a float, a scalar tensor or a [batch_size] tensor."""
  if isinstance(value, numbers.Real) and not isinstance(value, bool):
    return tf.fill([batch], tf.constant(float(value), tf.float32))
  value = _tensor(value, name)
  if value.shape.rank is None:
    return tf.broadcast_to(value, [batch])
  if value.shape.rank == 0:
    return tf.fill([batch], value)
  if value.shape.rank != 1:
    raise ValueError('%s must be a float, a 0-D tensor or a 1-D tensor with '
                     'shape [batch_size], got shape %s.' % (name, value.shape))
  return value


def _per_image_vector(value, name, batch, batch_size):
  """Camera vectors: [3] (shared) or [batch_size, 3]."""
  value = _tensor(value, name)
  if value.shape.rank == 1:
    if value.shape[0] not in (None, 3):
      raise ValueError('%s must have shape [3] or [batch_size, 3], got shape '
                       '%s.' % (name, value.shape))
    return tf.tile(value[None, :], [batch, 1])
  _require(value, name, 2, 3, '[3] or [batch_size, 3]', batch_size)
  return value


def mesh_renderer(vertices,
                  triangles,
                  normals,
                  diffuse_colors,
                  camera_position,
                  camera_lookat,
                  camera_up,
                  light_positions,
                  light_intensities,
                  image_width,
                  image_height,
                  specular_colors=None,
                  shininess_coefficients=None,
                  ambient_color=None,
                  fov_y=40.0,
                  near_clip=0.01,
                  far_clip=10.0):
  """Renders a batch of meshes with Phong shading.

  Each image has its own camera, lights, field of view and clip planes; the
  triangle list is shared. Interpolated attributes are normals (re-
  normalized per pixel), world positions, diffuse colours and, when given,
  specular colours and per-vertex shininess; the background value is -1 and a
  pixel is covered when any interpolated diffuse channel is >= 0.

  Args:
    vertices: [batch_size, vertex_count, 3] float32 tensor of world-space
      positions.
    triangles: [triangle_count, 3] int32 tensor of vertex indices. Both
      windings are drawn. No gradient.
    normals: [batch_size, vertex_count, 3] float32 tensor of unit vertex
      normals.
    diffuse_colors: [batch_size, vertex_count, 3] float32 tensor of diffuse
      RGB reflectances.
    camera_position: [batch_size, 3] or [3] float32 tensor, the eye.
    camera_lookat: [batch_size, 3] or [3] float32 tensor, a point on the
      line of sight.
    camera_up: [batch_size, 3] or [3] float32 tensor, the up direction.
    light_positions: [batch_size, light_count, 3] float32 tensor.
    light_intensities: [batch_size, light_count, 3] float32 tensor of RGB
      intensities.
    image_width: python int > 0.
    image_height: python int > 0.
    specular_colors: optional [batch_size, vertex_count, 3] float32 tensor;
      requires shininess_coefficients.
    shininess_coefficients: float, 0-D, [batch_size] or [batch_size,
      vertex_count] float32 tensor; requires specular_colors.
    ambient_color: optional [batch_size, 3] float32 tensor.
    fov_y: float, 0-D or [batch_size] tensor, vertical field of view in
      degrees.
    near_clip: float, 0-D or [batch_size] tensor, near plane distance.
    far_clip: float, 0-D or [batch_size] tensor, far plane distance.

  Returns:
    A [batch_size, image_height, image_width, 4] float32 RGBA tensor with
    row 0 at the top of the image. RGB is linear radiance (not clipped, 0 on
    the background); A is 1 on the mesh and 0 elsewhere.

  Raises:
    ValueError: if an argument has an invalid shape or value.
  """
  image_width, image_height = rasterize_triangles._check_image_size(  # pylint: disable=protected-access
      image_width, image_height)
  vertices = _tensor(vertices, 'vertices')
  _require(vertices, 'vertices', 3, 3, '[batch_size, vertex_count, 3]')
  batch_size = _batch_of(vertices)
  batch = tf.shape(vertices)[0]
  normals = _tensor(normals, 'normals')
  _require(normals, 'normals', 3, 3, '[batch_size, vertex_count, 3]',
           batch_size)
  diffuse_colors = _tensor(diffuse_colors, 'diffuse_colors')
  _require(diffuse_colors, 'diffuse_colors', 3, 3,
           '[batch_size, vertex_count, 3]', batch_size)
  light_positions = _tensor(light_positions, 'light_positions')
  _require(light_positions, 'light_positions', 3, 3,
           '[batch_size, light_count, 3]', batch_size)
  light_intensities = _tensor(light_intensities, 'light_intensities')
  _require(light_intensities, 'light_intensities', 3, 3,
           '[batch_size, light_count, 3]', batch_size)
  triangles = tf.convert_to_tensor(triangles, name='triangles')
  if not triangles.dtype.is_integer:
    raise ValueError('triangles must be an integer tensor, got %s.' %
                     triangles.dtype)
  _require(triangles, 'triangles', 2, 3, '[triangle_count, 3]')
  if ambient_color is not None:
    ambient_color = _tensor(ambient_color, 'ambient_color')
    _require(ambient_color, 'ambient_color', 2, 3, '[batch_size, 3]',
             batch_size)
  camera_position = _per_image_vector(camera_position, 'camera_position',
                                      batch, batch_size)
  camera_lookat = _per_image_vector(camera_lookat, 'camera_lookat', batch,
                                    batch_size)
  camera_up = _per_image_vector(camera_up, 'camera_up', batch, batch_size)
  fov_y = _per_image(fov_y, 'fov_y', batch)
  near_clip = _per_image(near_clip, 'near_clip', batch)
  far_clip = _per_image(far_clip, 'far_clip', batch)

  if (specular_colors is None) != (shininess_coefficients is None):
    raise ValueError('specular_colors and shininess_coefficients must be '
                     'given together.')
  attributes = [normals, vertices, diffuse_colors]
  per_vertex_shininess = False
  if specular_colors is not None:
    specular_colors = _tensor(specular_colors, 'specular_colors')
    _require(specular_colors, 'specular_colors', 3, 3,
             '[batch_size, vertex_count, 3]', batch_size)
    shininess_coefficients = _tensor(shininess_coefficients,
                                     'shininess_coefficients')
    rank = shininess_coefficients.shape.rank
    if rank is None or rank > 2:
      raise ValueError('shininess_coefficients must have shape at most '
                       '[batch_size, vertex_count], got shape %s.' %
                       shininess_coefficients.shape)
    attributes.append(specular_colors)
    if rank == 2:
      per_vertex_shininess = True
      attributes.append(shininess_coefficients[:, :, None])
  camera_matrices = camera_utils.look_at(camera_position, camera_lookat,
                                         camera_up)
  projections = camera_utils.perspective(image_width / image_height, fov_y,
                                         near_clip, far_clip)
  clip_space_transforms = tf.matmul(projections, camera_matrices)

  attribute_count = 9 + (3 if specular_colors is not None else 0) + (
      1 if per_vertex_shininess else 0)
  # rasterize(vertices, concat(attributes), ...), the concatenation formed
  # inside the rasterizer's compiled kernels.
  pixel_attributes = rasterize_triangles._rasterize_parts(  # pylint: disable=protected-access
      camera_utils.transform_homogeneous(clip_space_transforms, vertices),
      attributes, tf.cast(triangles, tf.int32), image_width, image_height,
      -tf.ones([attribute_count]), background_gradient=False)

  has_specular = specular_colors is not None
  has_ambient = ambient_color is not None
  inputs = [pixel_attributes, light_positions, light_intensities]
  if has_specular:
    if not per_vertex_shininess:
      shininess_coefficients = tf.reshape(shininess_coefficients, [-1, 1, 1])
    inputs += [camera_position, shininess_coefficients]
  if has_ambient:
    inputs.append(ambient_color)
  return _shading(has_specular, per_vertex_shininess, has_ambient)(inputs, [])


@functools.lru_cache(maxsize=None)
def _shading(has_specular, per_vertex_shininess, has_ambient):
  """XLA-compiled shading of the rasterized attributes, with its gradient."""

  def _shade(inputs, unused_constants):
    pixel_attributes, light_positions, light_intensities = inputs[:3]
    rest = list(inputs[3:])
    camera_position = shininess = pixel_specular = ambient_color = None
    if has_specular:
      camera_position, shininess = rest[:2]
      rest = rest[2:]
      pixel_specular = pixel_attributes[:, :, :, 9:12]
      if per_vertex_shininess:
        shininess = pixel_attributes[:, :, :, 12]
    if has_ambient:
      ambient_color = rest[0]
    pixel_normals = tf.math.l2_normalize(pixel_attributes[:, :, :, 0:3],
                                         axis=3)
    pixel_positions = pixel_attributes[:, :, :, 3:6]
    pixel_diffuse = pixel_attributes[:, :, :, 6:9]
    pixel_mask = tf.cast(tf.reduce_any(pixel_diffuse >= 0.0, axis=3),
                         tf.float32)
    return phong_shader(
        normals=pixel_normals,
        alphas=pixel_mask,
        pixel_positions=pixel_positions,
        light_positions=light_positions,
        light_intensities=light_intensities,
        diffuse_colors=pixel_diffuse,
        camera_position=camera_position,
        specular_colors=pixel_specular,
        shininess_coefficients=shininess,
        ambient_color=ambient_color)

  return _compiled.compiled(_shade)
