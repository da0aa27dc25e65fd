"""Per-triangle arithmetic of the visibility pass (see _visibility.py).

This module is private: the 2D-homogeneous edge functions of a triangle, its
candidate pixel range, the test of a candidate pixel and the depth-test key
of a surviving fragment. `_visibility` runs these on many triangles at once
inside its XLA kernels.

Edge functions and bit-exact shared edges
-----------------------------------------
For clip-space vertices v_k = (x_k, y_k, w_k) the edge function of vertex i is
row i of the adjugate of [[x0,x1,x2],[y0,y1,y2],[w0,w1,w2]], i.e. the cross
product of the other two vertices, multiplied by the sign of the determinant.
Each cross product is evaluated with its two vertices in a canonical order
(lexicographic on (x, y, w)) and negated when the order was swapped, so two
triangles sharing an edge obtain exactly opposite coefficients whatever the
compiler does with fused multiply-adds. The edge values at a pixel are then
evaluated with the pixel's integer coordinates, e = A*ix + B*iy + C, where
(A, B, C) are the NDC coefficients rescaled to pixel units by one sign-
symmetric formula, so shared edges give bit-identical (negated) values in both
neighbours: there are no cracks, and a pixel exactly on a shared edge is
covered by both triangles and the depth test decides.

Conventions (see renderer.md): pixel (ix, iy) has its centre at NDC
((ix + 0.5) / (W/2) - 1, (iy + 0.5) / (H/2) - 1); a pixel is covered when its
three edge values are >= 0 and not all zero; triangles with all w < 0 are
skipped; the bounding box is used when all w > 0, the whole image otherwise;
depth z = (b.z)/(b.w) with perspective-correct barycentrics b; fragments with
z outside [-1, 1] are dropped. A triangle with any non-finite clip
coordinate, or whose edge functions overflow float32, is not drawn.
"""

import tensorflow as tf

# Widening of the candidate range, in pixels: absolute, and relative to the
# projected coordinate (float32 rounds it by 6e-8 of its value).
BOX_MARGIN = 1e-3
BOX_MARGIN_RELATIVE = 2e-6
# The low 32 bits of an int64.
LOW_32 = (1 << 32) - 1


def canonical_cross(p, q):
  """Cross product p x q of (x, y, w) triples, order-independent up to sign.

  The two operands are put in lexicographic order before the products are
  formed, so cross(p, q) and cross(q, p) are computed from the same
  floating-point operations and are exact negations of each other.

  Args:
    p: tuple (x, y, w) of float32 tensors of one shape.
    q: tuple (x, y, w) of float32 tensors of the same shape.

  Returns:
    A tuple of three float32 tensors, the components of p x q.
  """
  px, py, pw = p
  qx, qy, qw = q
  in_order = (px < qx) | (tf.equal(px, qx) & (
      (py < qy) | (tf.equal(py, qy) & (pw <= qw))))
  lx = tf.where(in_order, px, qx)
  ly = tf.where(in_order, py, qy)
  lw = tf.where(in_order, pw, qw)
  rx = tf.where(in_order, qx, px)
  ry = tf.where(in_order, qy, py)
  rw = tf.where(in_order, qw, pw)
  cx = ly * rw - lw * ry
  cy = lw * rx - lx * rw
  cw = lx * ry - ly * rx
  sign = tf.where(in_order, 1.0, -1.0)
  return cx * sign, cy * sign, cw * sign


def corner_vertex_rows(triangles, triangle_ids, vertex_count):
  """Flat vertex rows [..., 3] (b*V + v) of flat triangle ids (b*T + t).

  Args:
    triangles: [T, 3] int32 vertex indices.
    triangle_ids: int32 tensor of any shape, flat triangle indices >= 0.
    vertex_count: V, int32 scalar.
  """
  triangle_count = tf.maximum(tf.shape(triangles)[0], 1)
  return (tf.gather(triangles, triangle_ids % triangle_count) +
          (triangle_ids // triangle_count * vertex_count)[..., None])


def corner_values(corners):
  """Splits corners [..., 3, C] into C lists of 3 [...] tensors, one per
  coordinate (x, y, z, w of clip-space corners [N, 3, 4]).

  (Unstacking takes a few graph nodes where twelve slices take forty-eight;
  TensorFlow and XLA keep every node, per kernel and per compiled shape.)
  """
  return [tf.unstack(coordinate, axis=-1)
          for coordinate in tf.unstack(corners, axis=-1)]


def project(coordinate, w, size):
  """Pixel-unit screen coordinate (c / w + 1) * size / 2 of clip coord c."""
  return (coordinate / w + 1.0) * (0.5 * size)


def triangle_setup(corners, screen, image_width, image_height):
  """Per-triangle edge functions and candidate pixel range.

  Args:
    corners: [N, 3, 4] float32 clip-space corners of N triangles.
    screen: [N, 3, 2] float32, the corners projected to pixel units
      (project; used only where all three w are > 0).
    image_width: python int.
    image_height: python int.

  Returns:
    coefs: list of 9 [N] float32, for each edge i the pixel-unit coefficients
      (A_i, B_i, C_i) with e_i(ix, iy) = A_i*ix + B_i*iy + C_i before the sign
      correction.
    sign: [N] float32, the sign of the determinant (+1 or -1).
    box: list of 4 [N] int32: left, bottom, width, height of the candidate
      pixels (those whose centres lie in the widened bounding box; width or
      height 0 when there is none or the triangle is not drawn).
  """
  width = float(image_width)
  height = float(image_height)
  x, y, _, w = corner_values(corners)
  verts = [(x[k], y[k], w[k]) for k in range(3)]
  rows = [canonical_cross(verts[1], verts[2]),
          canonical_cross(verts[2], verts[0]),
          canonical_cross(verts[0], verts[1])]
  det = x[0] * rows[0][0] + x[1] * rows[1][0] + x[2] * rows[2][0]
  sign = tf.where(det < 0.0, -1.0, 1.0)

  # Pixel-unit coefficients. With px = ix * (2/W) + (1/W - 1):
  # a*px + b*py + c = A*ix + B*iy + C. The same formula is applied to every
  # row, and it commutes exactly with negation, so shared edges stay exact.
  kx, cx = 2.0 / width, 1.0 / width - 1.0
  ky, cy = 2.0 / height, 1.0 / height - 1.0
  coefs = []
  for a, b, c in rows:
    coefs += [a * kx, b * ky, c + a * cx + b * cy]

  all_positive_w = (w[0] > 0.0) & (w[1] > 0.0) & (w[2] > 0.0)
  all_negative_w = (w[0] < 0.0) & (w[1] < 0.0) & (w[2] < 0.0)

  # Candidate pixels i have their centre i + 0.5 in [lo - m, hi + m], where
  # lo, hi are the min and max of the projected corners in pixel units and m
  # the margin; the whole image unless all w > 0.
  def _pixel_range(proj, size):
    lo = tf.minimum(tf.minimum(proj[0], proj[1]), proj[2])
    hi = tf.maximum(tf.maximum(proj[0], proj[1]), proj[2])
    lo -= BOX_MARGIN + BOX_MARGIN_RELATIVE * tf.abs(lo)
    hi += BOX_MARGIN + BOX_MARGIN_RELATIVE * tf.abs(hi)
    # Clamp before rounding so that huge values cannot overflow the cast.
    first = tf.clip_by_value(
        tf.math.ceil(tf.clip_by_value(lo, -1.0, size + 1.0) - 0.5), 0.0, size)
    end = tf.clip_by_value(
        tf.floor(tf.clip_by_value(hi, -1.0, size + 1.0) - 0.5) + 1.0, 0.0,
        size)
    first = tf.where(all_positive_w & tf.logical_not(tf.math.is_nan(first)),
                     first, 0.0)
    end = tf.where(all_positive_w & tf.logical_not(tf.math.is_nan(end)), end,
                   size)
    return first, tf.maximum(end, first)

  screen_x, screen_y = corner_values(screen)
  left, right = _pixel_range(screen_x, width)
  bottom, top = _pixel_range(screen_y, height)

  # A triangle is drawn when its clip coordinates are finite and not all of
  # its w are negative. (Overflowing edge functions are rejected per pixel.)
  drawn = tf.logical_not(all_negative_w)
  for k in range(3):
    for c in range(4):
      drawn &= tf.math.is_finite(corners[:, k, c])
  box = [tf.cast(tf.where(drawn, value, 0.0), tf.int32)
         for value in (left, bottom, right - left, top - bottom)]
  return coefs, sign, box


def candidate_fragments(coefs, sign, z, w, left, bottom, dx, dy, valid,
                        batch_index, image_width, image_height):
  """Coverage and depth of candidate pixels; shared by the kernels.

  All arguments are tensors of one shape (or broadcastable to it), except
  coefs (a list of 9), z and w (lists of 3) and the python ints.

  The depth z = n / d (n = e.z, d = e.w) is in [-1, 1] exactly when
  |n| <= |d| with d != 0 (and n finite), so the range is tested without the
  quotient. The quotient then has a single use, the depth order: on CPU,
  XLA gives a division with several uses a loop of its own, which would
  redo the whole triangle setup.

  Args:
    coefs: the 9 raw pixel-unit edge coefficients (see triangle_setup).
    sign: the determinant's sign.
    z, w: clip-space z and w of the three corners.
    left, bottom: int32 box corner.
    dx, dy: int32 offsets of the candidate pixels from the box corner.
    valid: bool, candidates inside the box.
    batch_index: int32 image index.
    image_width, image_height: python ints.

  Returns:
    kept: bool, whether the candidate is covered and its depth in [-1, 1].
    order: int32, depth_order of the candidate's NDC depth (meaningful only
      where kept).
    pixel: int32 flat pixel index b*H*W + iy*W + ix of the candidate
      (meaningful only where kept).
  """
  ix = left + dx
  iy = bottom + dy
  fx = tf.cast(ix, tf.float32)
  fy = tf.cast(iy, tf.float32)
  e = [(coefs[3 * i] * fx + coefs[3 * i + 1] * fy + coefs[3 * i + 2]) * sign
       for i in range(3)]
  total = e[0] + e[1] + e[2]
  inside = (e[0] >= 0.0) & (e[1] >= 0.0) & (e[2] >= 0.0) & (total > 0.0)
  # z = (b . z) / (b . w) with b = e / sum(e); the normalization cancels.
  numerator = e[0] * z[0] + e[1] * z[1] + e[2] * z[2]
  denominator = e[0] * w[0] + e[1] * w[1] + e[2] * w[2]
  magnitude = tf.abs(numerator)
  kept = (valid & inside & (total < float('inf')) &
          (magnitude <= tf.abs(denominator)) &
          (magnitude < float('inf')) & tf.not_equal(denominator, 0.0))
  order = depth_order(numerator / denominator)
  pixel = batch_index * (image_width * image_height) + iy * image_width + ix
  return kept, order, pixel


def depth_order(depth):
  """int32 values ordered as the float32 depths (-0 and +0 equal).

  Args:
    depth: float32 tensor, not NaN.

  Returns:
    An int32 tensor of depth's shape: the bits of a non-negative depth, the
    bits of a negative one with the 31 value bits flipped, and 0 for -0
    (whose bits would give -1). Only integer operations follow the single
    bitcast of depth.
  """
  bits = tf.bitcast(depth, tf.int32)
  order = tf.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
  return order + tf.cast(tf.equal(order, -1), tf.int32)


def depth_key(order, triangle):
  """The depth test's int64 key: depth order high, later triangle lower.

  Args:
    order: int32 tensor, depth_order of the fragments' depths.
    triangle: integer tensor of order's shape, flat triangle indices.
  """
  return (tf.bitwise.left_shift(tf.cast(order, tf.int64), 32) |
          (LOW_32 - tf.cast(triangle, tf.int64)))
