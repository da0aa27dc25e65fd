"""Differentiable triangle rasterizer written with TensorFlow ops only.

A drop-in replacement for tf_mesh_renderer's `rasterize_triangles` module,
whose C++ op no longer builds. Rendering is split in two passes:

1. Visibility (no gradient, `_visibility.visible_triangles`): for each pixel,
   the index of the triangle that survives the depth test, found by testing
   every triangle against the pixel centres of its screen bounding box with
   2D-homogeneous edge functions and resolving depth with one segment
   reduction of 64-bit (depth, triangle) keys. XLA kernels test every
   triangle with at most two candidate pixels (most of a face mesh's), then
   those with up to six; larger ones are enumerated fragment by fragment
   in fixed-size chunks, so memory stays bounded (nothing of size
   pixels x triangles is ever built). See `_visibility.py` for details.
2. Interpolation (differentiable, `_interpolation.interpolate`): each
   covered pixel gathers its triangle's three clip-space vertices,
   recomputes the edge functions at its centre and the perspective-correct
   barycentrics b_i = e_i / (e_0 + e_1 + e_2), and interpolates the vertex
   attributes. Gradients flow to the clip-space vertices through the
   barycentrics (and from there through the camera matrices to world space)
   and to the attributes; none flow through the choice of visible triangle.

The kernels see some data-dependent lengths (the compacted lists of
first-pass fragments, of larger triangles and of covered pixels), all padded
to a few values per octave: XLA compiles a kernel once per length, so the
first renders of new kinds of scene compile (up to half a second each) and
later ones reuse them; no kernel sees a length that changes with every scene.

Uncovered pixels have triangle id 0 and barycentrics (0, 0, 0); they take
the background value through alpha = clip(2 (b_0 + b_1 + b_2), 0, 1) and
alpha * attribute + (1 - alpha) * background. Output row 0 is the bottom of
the image (NDC y = -1).

Triangles whose clip-space coordinates are not all finite (or so large that
their edge functions overflow float32) are not drawn; a non-finite vertex
only affects the triangles that use it.

Batches: an image's result does not depend on the other images of its batch,
up to float32 rounding, and is not promised to be bit-identical. XLA compiles
the kernels for each batch shape and vectorises them differently (how many
values share a vector register, whether a multiply and an add fuse into one
FMA depends on the CPU's vector width), so an image rendered alone and the
same image inside a batch may differ by a few units in the last place of the
interpolated values; a pixel centre lying within rounding distance of an edge
may fall to either of the two triangles that share it.
"""

import numpy as np
import tensorflow as tf

from mesh_renderer import _interpolation, _visibility, camera_utils


def _check_image_size(image_width, image_height):
  for value, name in ((image_width, 'image_width'),
                      (image_height, 'image_height')):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)):
      raise ValueError('%s must be a python int, got %r.' % (name, value))
    if value <= 0:
      raise ValueError('%s must be > 0, got %d.' % (name, value))
  if int(image_width) * int(image_height) > (1 << 26):
    raise ValueError('image_width * image_height must be at most 2^26, got '
                     '%d x %d.' % (image_width, image_height))
  return int(image_width), int(image_height)


def _check_shape(tensor, name, rank, last=None, shape_text='',
                 batch_size=None):
  """Raises ValueError naming `name` unless the static shape fits.

  Checks the rank, the last dimension (when `last` is given) and the first
  dimension (when `batch_size` is given); unknown dimensions pass.
  """
  shape = tensor.shape
  if shape.rank is None:
    return
  bad = shape.rank != rank
  if not bad and last is not None and shape[-1] is not None:
    bad = shape[-1] != last
  if not bad and batch_size is not None and shape[0] is not None:
    bad = shape[0] != batch_size
  if bad:
    raise ValueError('%s must have shape %s, got shape %s.' %
                     (name, shape_text, shape))


def rasterize(world_space_vertices, attributes, triangles, camera_matrices,
              image_width, image_height, background_value):
  """Rasterizes a mesh and computes interpolated vertex attributes.

  Applies the camera matrices, then calls `rasterize_clip_space`.

  Args:
    world_space_vertices: [batch_size, vertex_count, 3] float32 tensor of xyz
      positions.
    attributes: [batch_size, vertex_count, attribute_count] float32 tensor of
      per-vertex attributes, interpolated across each triangle with
      perspective-correct barycentric coordinates.
    triangles: [triangle_count, 3] int32 tensor of vertex indices, shared by
      the whole batch. Both windings are drawn. No gradient.
    camera_matrices: [batch_size, 4, 4] float32 tensor of model-view-
      projection matrices, one per image.
    image_width: python int > 0, output width in pixels.
    image_height: python int > 0, output height in pixels.
    background_value: [attribute_count] float32 tensor (or list), the value
      of pixels that no triangle covers.

  Returns:
    A [batch_size, image_height, image_width, attribute_count] float32
    tensor of interpolated attributes; row 0 is the bottom of the image.

  Raises:
    ValueError: if an argument has an invalid shape or value.
  """
  world_space_vertices = tf.convert_to_tensor(
      world_space_vertices, dtype=tf.float32, name='world_space_vertices')
  camera_matrices = tf.convert_to_tensor(
      camera_matrices, dtype=tf.float32, name='camera_matrices')
  _check_shape(world_space_vertices, 'world_space_vertices', 3, 3,
               '[batch_size, vertex_count, 3]')
  _check_shape(camera_matrices, 'camera_matrices', 3, 4, '[batch_size, 4, 4]')
  if (camera_matrices.shape.rank == 3 and
      not camera_matrices.shape[1:].is_compatible_with([4, 4])):
    raise ValueError('camera_matrices must have shape [batch_size, 4, 4], '
                     'got shape %s.' % camera_matrices.shape)
  clip_space_vertices = camera_utils.transform_homogeneous(
      camera_matrices, world_space_vertices)
  return rasterize_clip_space(clip_space_vertices, attributes, triangles,
                              image_width, image_height, background_value)


def rasterize_clip_space(clip_space_vertices, attributes, triangles,
                         image_width, image_height, background_value):
  """Rasterizes a mesh given in clip space and interpolates its attributes.

  A pixel centre is covered by a triangle when its three 2D-homogeneous edge
  values are all >= 0 and not all zero; the nearest covered triangle (NDC z
  in [-1, 1], smallest z wins, later triangle on an exact tie) is the one
  seen. Triangles with all w < 0 are skipped; triangles crossing w = 0 are
  rasterized by the homogeneous test without clipping.

  Args:
    clip_space_vertices: [batch_size, vertex_count, 4] float32 tensor of
      homogeneous clip-space vertices (x, y, z, w).
    attributes: [batch_size, vertex_count, attribute_count] float32 tensor of
      per-vertex attributes.
    triangles: [triangle_count, 3] int32 tensor of vertex indices (values in
      [0, vertex_count)), shared by the batch. No gradient.
    image_width: python int > 0, output width in pixels.
    image_height: python int > 0, output height in pixels.
    background_value: [attribute_count] float32 tensor (or list) for pixels
      that no triangle covers.

  Returns:
    A [batch_size, image_height, image_width, attribute_count] float32
    tensor of interpolated attributes; row 0 is the bottom of the image
    (NDC y = -1).

  Raises:
    ValueError: if an argument has an invalid shape or value.
  """
  image_width, image_height = _check_image_size(image_width, image_height)
  clip_space_vertices = tf.convert_to_tensor(
      clip_space_vertices, dtype=tf.float32, name='clip_space_vertices')
  attributes = tf.convert_to_tensor(attributes, dtype=tf.float32,
                                    name='attributes')
  triangles = tf.convert_to_tensor(triangles, name='triangles')
  if not triangles.dtype.is_integer:
    raise ValueError('triangles must be an integer tensor, got %s.' %
                     triangles.dtype)
  triangles = tf.cast(triangles, tf.int32)
  background_value = tf.convert_to_tensor(
      background_value, dtype=tf.float32, name='background_value')
  _check_shape(clip_space_vertices, 'clip_space_vertices', 3, 4,
               '[batch_size, vertex_count, 4]')
  _check_shape(attributes, 'attributes', 3, None,
               '[batch_size, vertex_count, attribute_count]')
  _check_shape(triangles, 'triangles', 2, 3, '[triangle_count, 3]')
  _check_shape(background_value, 'background_value', 1, None,
               '[attribute_count]')
  if not clip_space_vertices.shape[:2].is_compatible_with(
      attributes.shape[:2]):
    raise ValueError('attributes must have shape [batch_size, vertex_count, '
                     'attribute_count] matching clip_space_vertices %s, got '
                     'shape %s.' % (clip_space_vertices.shape,
                                    attributes.shape))
  if not attributes.shape[2:].is_compatible_with(background_value.shape):
    raise ValueError('background_value must have shape [attribute_count] = '
                     '%s, got shape %s.' % (attributes.shape[2:],
                                            background_value.shape))

  return _rasterize_parts(clip_space_vertices, [attributes], triangles,
                          image_width, image_height, background_value)


def _rasterize_parts(clip_space_vertices, attribute_parts, triangles,
                     image_width, image_height, background_value,
                     background_gradient=True):
  """rasterize_clip_space of checked tensors, the attributes in parts.

  The parts ([B, V, A_i] float32 tensors) are interpolated as their
  concatenation along the last axis, which is formed inside the compiled
  kernels (a concatenation of narrow rows is slow as a separate op). With
  background_gradient False the background value gets no gradient.
  """
  triangle_ids = _visibility.visible_triangles(
      clip_space_vertices, triangles, image_width, image_height)
  return _interpolation.interpolate(clip_space_vertices, attribute_parts,
                                    background_value, triangles, triangle_ids,
                                    image_width, image_height,
                                    background_gradient)
