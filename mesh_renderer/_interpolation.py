"""Interpolation pass of the rasterizer: attributes of the visible triangles.

This module is private. Given the triangle seen at each pixel (from
`_visibility.visible_triangles`), it computes the perspective-correct
barycentrics at the pixel centre and interpolates the vertex attributes,
differentiably with respect to the clip-space vertices, the attributes and
the background value (not the choice of triangle).

Each pixel gathers its triangle's three clip-space vertices, recomputes the
2D-homogeneous edge values e_i at its centre and takes b_i = e_i / sum(e).
Uncovered pixels have barycentrics (0, 0, 0) and take the background through
alpha = clip(2 (b_0 + b_1 + b_2), 0, 1): the result is
alpha * attribute + (1 - alpha) * background. alpha is exactly 1 on covered
pixels and 0 elsewhere, so the forward selects rather than blends (identical
values, fewer operations per element).

Both passes are XLA kernels. The forward kernel works on every pixel. The
gradient is written out rather than left to automatic differentiation (XLA's
own gradient of the forward runs three to four times slower on CPU, mostly in
the tiny minor dimensions of the [B, P, 3, 3] corner tensors). It reuses
the forward's barycentrics (so the gradient is that of the very values the
forward computed) and works on the covered pixels only, compacted (padded
to a length that takes few values, so the kernel compiles for few shapes):
an uncovered pixel only passes its upstream gradient to the background.
The per-corner gradients of a pixel are accumulated into the vertices by
two scatter-adds, of 4-wide clip-space rows and of A-wide attribute rows.
"""

import functools

import numpy as np
import tensorflow as tf

from mesh_renderer import _compiled, _edges

# Compacted pixel lists are padded to at least this length, eight lengths
# per octave (coverage changes slowly, so few compiles; an eighth of padding
# at most).
_MIN_PIXELS = 1 << 10


def _pixel_centres(size):
  """NDC coordinates of the pixel centres along one axis, as the reference."""
  return ((np.arange(size, dtype=np.float64) + 0.5) / (0.5 * size) -
          1.0).astype(np.float32)


def _edge_values(x, y, w, px, py):
  """Edge values e_i = det[v_j, v_k, p] of the corners at pixel centres.

  Args:
    x, y, w: lists of 3 float32 tensors of one shape, the corners' clip-space
      x, y and w.
    px, py: float32 tensors of that shape (or broadcastable), the pixel
      centre in NDC.

  Returns:
    A list of 3 float32 tensors, e_0, e_1, e_2.
  """

  def _edge(j, k):
    # (v_j x v_k) . (px, py, 1) over the (x, y, w) coordinates.
    return ((y[j] * w[k] - w[j] * y[k]) * px +
            (w[j] * x[k] - x[j] * w[k]) * py +
            (x[j] * y[k] - y[j] * x[k]))

  return [_edge(1, 2), _edge(2, 0), _edge(0, 1)]


def _barycentrics(clip_space_vertices, flat_ids, covered, px, py):
  """The corners and the barycentrics of covered pixels.

  Args:
    clip_space_vertices: [B, V, 4] float32.
    flat_ids: [N * 3] int32 flat vertex rows (b*V + v) of the pixels'
      triangles' corners, N the number of elements of covered.
    covered: bool tensor of any shape, the pixels to compute; the others
      read a harmless placeholder triangle instead of their corners, so that
      non-finite vertices elsewhere cannot leak NaNs into the results.
    px, py: float32 pixel centres in NDC, broadcastable to covered.

  Returns:
    x, y, w: lists of 3 float32 tensors of covered's shape, the corners'
      clip-space x, y and w.
    total: float32, e_0 + e_1 + e_2 (1 where not covered).
    barycentrics: list of 3 float32 tensors, b_i = e_i / total (0 where not
      covered).
  """
  # (x, y, w) of the corners; z is not needed. Gathering rows of three
  # rather than four values makes the gathered copy (which XLA keeps in
  # memory for the three barycentrics) a quarter smaller.
  placeholder = tf.constant([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0],
                             [0.0, 1.0, 1.0]])
  rows = tf.reshape(tf.gather(clip_space_vertices, [0, 1, 3], axis=2),
                    [-1, 3])
  corners = tf.reshape(tf.gather(rows, flat_ids),
                       tf.concat([tf.shape(covered), [3, 3]], 0))
  corners = tf.where(covered[..., None, None], corners, placeholder)
  x, y, w = _edges.corner_values(corners)
  edges = _edge_values(x, y, w, px, py)
  total = tf.where(covered, edges[0] + edges[1] + edges[2], 1.0)
  zero = tf.zeros_like(total)
  return x, y, w, total, [tf.where(covered, e / total, zero) for e in edges]


def _forward(clip_space_vertices, attribute_parts, background_value,
             triangles, triangle_ids, image_width, image_height):
  """Interpolated attributes [B, H, W, A] of every pixel (see module doc).

  Also returns the barycentrics (3 [B, P] float32, kept in memory by XLA
  anyway), which the gradient reuses rather than recomputes.
  """
  attributes = tf.concat(attribute_parts, axis=2)
  batch = tf.shape(clip_space_vertices)[0]
  vertex_count = tf.shape(clip_space_vertices)[1]
  attribute_count = tf.shape(attributes)[2]

  covered = triangle_ids >= 0                                   # [B, P]
  flat_ids = tf.reshape(tf.where(
      covered[:, :, None],
      _edges.corner_vertex_rows(triangles, tf.maximum(triangle_ids, 0),
                                vertex_count), 0), [-1])
  # Pixel centres of the flat pixels, broadcast from one row and one column
  # (an [H*W] constant would be copied into every graph and kernel).
  px = tf.reshape(tf.broadcast_to(_pixel_centres(image_width)[None, :],
                                  [image_height, image_width]), [1, -1])
  py = tf.reshape(tf.broadcast_to(_pixel_centres(image_height)[:, None],
                                  [image_height, image_width]), [1, -1])
  _, _, _, _, barycentrics = _barycentrics(clip_space_vertices, flat_ids,
                                           covered, px, py)

  corner_attributes = tf.reshape(
      tf.gather(tf.reshape(attributes, [-1, attribute_count]), flat_ids),
      [batch, -1, 3, attribute_count])
  corner_attributes = tf.where(covered[:, :, None, None], corner_attributes,
                               0.0)
  interpolated = (barycentrics[0][:, :, None] * corner_attributes[:, :, 0] +
                  barycentrics[1][:, :, None] * corner_attributes[:, :, 1] +
                  barycentrics[2][:, :, None] * corner_attributes[:, :, 2])
  # alpha is 1 where covered (the barycentrics sum to 1, doubled and
  # clipped) and 0 elsewhere: the blend is a selection.
  result = tf.where(covered[:, :, None], interpolated, background_value)
  return (tf.reshape(result,
                     [batch, image_height, image_width, attribute_count]),
          barycentrics)


def _backward(upstream, clip_space_vertices, attribute_parts, triangles,
              triangle_ids, pixels, saved_barycentrics, image_width,
              image_height, background_gradient=True):
  """Gradients of _forward's result, given its upstream gradient.

  Args:
    upstream: [B, H, W, A] float32.
    clip_space_vertices, attribute_parts, triangles, triangle_ids: as for
      _forward.
    pixels: [K] int32 flat indices b*H*W + p of covered pixels, -1 for
      padding.
    saved_barycentrics: the 3 [B, P] barycentrics _forward returned.
    image_width, image_height: python ints.
    background_gradient: python bool; False skips the background's gradient
      (a sum over the whole upstream) and returns None for it.

  Returns:
    The gradients with respect to clip_space_vertices [B, V, 4], the
    background value [A] and each attribute part (a list).
  """
  attributes = tf.concat(attribute_parts, axis=2)
  vertex_count = tf.shape(clip_space_vertices)[1]
  vertex_rows = tf.shape(clip_space_vertices)[0] * vertex_count
  attribute_count = tf.shape(attributes)[2]
  flat_upstream = tf.reshape(upstream, [-1, attribute_count])

  # Covered pixels: alpha is 1 (2 * sum(b) = 2, clipped: no gradient), so
  # their upstream goes to the interpolated attributes only; every other
  # pixel's goes to the background.
  valid = pixels >= 0
  pixel = tf.maximum(pixels, 0)
  d_interpolated = tf.where(valid[:, None], tf.gather(flat_upstream, pixel),
                            0.0)                             # [K, A]
  d_background = None
  if background_gradient:
    d_background = (tf.reduce_sum(flat_upstream, axis=0) -
                    tf.reduce_sum(d_interpolated, axis=0))

  triangle = tf.maximum(tf.gather(tf.reshape(triangle_ids, [-1]), pixel), 0)
  vertex_ids = tf.where(
      valid[:, None],
      _edges.corner_vertex_rows(triangles, triangle, vertex_count),
      0)                                                     # [K, 3]
  flat_ids = tf.reshape(vertex_ids, [-1])
  local = pixel % (image_width * image_height)
  px = tf.gather(tf.constant(_pixel_centres(image_width)), local % image_width)
  py = tf.gather(tf.constant(_pixel_centres(image_height)),
                 local // image_width)
  x, y, w, total, _ = _barycentrics(clip_space_vertices, flat_ids, valid, px,
                                    py)
  zero = tf.zeros_like(total)
  barycentrics = [tf.where(valid, tf.gather(tf.reshape(b, [-1]), pixel), zero)
                  for b in saved_barycentrics]
  corner_attributes = tf.reshape(
      tf.gather(tf.reshape(attributes, [-1, attribute_count]), flat_ids),
      [-1, 3, attribute_count])

  # b_i = e_i / sum(e): d e_i = (d b_i - sum_k d b_k b_k) / sum(e).
  d_b = tf.unstack(tf.reduce_sum(d_interpolated[:, None] * corner_attributes,
                                 axis=2), axis=1)
  mean = (d_b[0] * barycentrics[0] + d_b[1] * barycentrics[1] +
          d_b[2] * barycentrics[2])
  # One division of the stacked values: XLA then keeps d_e in memory, where
  # three divisions would be recomputed inside the scatter rows below.
  d_e = tf.unstack(tf.where(valid[None], (tf.stack(d_b) - mean[None]) /
                            total[None], 0.0))
  # e_i = det[v_j, v_k, p] with p = (px, py, 1): d/dv_j = v_k x p and
  # d/dv_k = p x v_j, for (i, j, k) = (0, 1, 2), (1, 2, 0), (2, 0, 1).
  d_x, d_y, d_w = [zero] * 3, [zero] * 3, [zero] * 3
  for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    d_x[j] += d_e[i] * (y[k] - w[k] * py)
    d_y[j] += d_e[i] * (w[k] * px - x[k])
    d_w[j] += d_e[i] * (x[k] * py - y[k] * px)
    d_x[k] += d_e[i] * (w[j] * py - y[j])
    d_y[k] += d_e[i] * (x[j] - w[j] * px)
    d_w[k] += d_e[i] * (y[j] * px - x[j] * py)
  # Scatter-adds of the corners' rows: (d_x, d_y, 0, d_w) to the clip-space
  # vertices, b_k * d_interpolated to the attributes. (One scatter of
  # concatenated rows is slower: XLA builds the concatenation column by
  # column.)
  d_clip = tf.reshape(tf.math.unsorted_segment_sum(
      tf.reshape(tf.stack([tf.stack([d_x[k], d_y[k], zero, d_w[k]], axis=1)
                           for k in range(3)], axis=1), [-1, 4]),
      flat_ids, vertex_rows), tf.shape(clip_space_vertices))
  d_attributes = tf.math.unsorted_segment_sum(
      tf.reshape(tf.stack([barycentrics[k][:, None] * d_interpolated
                           for k in range(3)], axis=1),
                 [-1, attribute_count]), flat_ids, vertex_rows)
  d_parts = []
  start = 0
  for part in attribute_parts:
    size = tf.shape(part)[2]
    d_parts.append(tf.reshape(d_attributes[:, start:start + size],
                              tf.shape(part)))
    start += size
  return d_clip, d_background, d_parts


@functools.lru_cache(maxsize=None)
def _kernels(image_width, image_height, part_count, background_gradient):
  """The forward and backward XLA kernels for one image size.

  Their input signatures leave the batch, vertex, triangle and pixel counts
  unknown, so each kernel is traced once; XLA compiles it per shape.
  """
  clip_spec = tf.TensorSpec([None, None, 4], tf.float32)
  parts_spec = [tf.TensorSpec([None, None, None], tf.float32)] * part_count
  triangles_spec = tf.TensorSpec([None, 3], tf.int32)
  ids_spec = tf.TensorSpec([None, None], tf.int32)

  @_compiled.kernel(input_signature=(
      clip_spec, parts_spec, tf.TensorSpec([None], tf.float32),
      triangles_spec, ids_spec))
  def forward(clip_space_vertices, attribute_parts, background_value,
              triangles, triangle_ids):
    return _forward(clip_space_vertices, attribute_parts, background_value,
                    triangles, triangle_ids, image_width, image_height)

  @_compiled.kernel(input_signature=(
      tf.TensorSpec([None, None, None, None], tf.float32), clip_spec,
      parts_spec, triangles_spec, ids_spec, tf.TensorSpec([None], tf.int32),
      [tf.TensorSpec([None, None], tf.float32)] * 3))
  def backward(upstream, clip_space_vertices, attribute_parts, triangles,
               triangle_ids, pixels, saved_barycentrics):
    d_clip, d_background, d_parts = _backward(
        upstream, clip_space_vertices, attribute_parts, triangles,
        triangle_ids, pixels, saved_barycentrics, image_width, image_height,
        background_gradient)
    if d_background is None:
      return d_clip, d_parts
    return d_clip, d_background, d_parts

  return forward, backward


def interpolate(clip_space_vertices, attribute_parts, background_value,
                triangles, triangle_ids, image_width, image_height,
                background_gradient=True):
  """Differentiable barycentric interpolation at the visible triangles.

  Args:
    clip_space_vertices: [B, V, 4] float32 tensor.
    attribute_parts: list of [B, V, A_i] float32 tensors, interpolated as
      their concatenation along the last axis (A = sum of the A_i).
    background_value: [A] float32 tensor.
    triangles: [T, 3] int32 tensor.
    triangle_ids: [B, H*W] int32 tensor, b*T + t of the visible triangle or
      -1 (from _visibility.visible_triangles).
    image_width, image_height: python ints.
    background_gradient: python bool; False treats background_value as a
      constant (no gradient), which saves a pass over the upstream gradient.

  Returns:
    [B, H, W, A] float32 attributes blended with the background, row 0 at
    NDC y = -1. Gradients flow to clip_space_vertices, the attribute parts
    and (with background_gradient) background_value.
  """
  part_count = len(attribute_parts)
  forward, backward = _kernels(image_width, image_height, part_count,
                               background_gradient)

  def _pixels():
    """The covered pixels, compacted, padded with -1 to few lengths."""
    covered = tf.reshape(tf.where(tf.reshape(triangle_ids, [-1]) >= 0), [-1])
    return _compiled.padded(tf.cast(covered, tf.int32), _MIN_PIXELS, 8)

  # The background is an input of the gradient's op only when it gets one.
  inputs = [clip_space_vertices] + (
      [background_value] if background_gradient else []) + list(
          attribute_parts)

  @tf.custom_gradient
  def _interpolate(*inputs):
    clip_space_vertices = inputs[0]
    background = inputs[1] if background_gradient else background_value
    attribute_parts = list(inputs[-part_count:])
    result, saved = forward(clip_space_vertices, attribute_parts, background,
                            triangles, triangle_ids)

    def _gradient(upstream):
      # (d_clip, [d_background,] d_parts), flattened as the inputs.
      gradients = backward(upstream, clip_space_vertices, attribute_parts,
                           triangles, triangle_ids, _pixels(), saved)
      return [gradients[0]] + list(gradients[1:-1]) + list(gradients[-1])

    return result, _gradient

  return _interpolate(*inputs)
