"""Visibility pass of the rasterizer: which triangle is seen at each pixel.

This module is private. It answers one question, without gradients: for every
pixel of every image, which triangle (if any) survives the depth test. The
differentiable part of rasterization (barycentrics and attribute
interpolation) lives in `rasterize_triangles.py` and only consumes the
triangle ids computed here.

Algorithm
---------
The scene is treated as a flat list of B*T triangles (every image of the
batch draws the same T triangles with its own vertices). A triangle is
tested only against the pixel centres that lie in its screen bounding box,
widened by a thousandth of a pixel (far more than the rounding of the
projected corners, so no centre that the edge functions accept is left out).
The reference tests every pixel whose square meets the box; for a face
mesh's pixel-sized triangles that is about twice the candidates, and six
times the fragments of the large-triangle path below, for the same coverage.
The tests are generated in two ways:

1. Setup and small triangles (one XLA-compiled kernel). For every triangle it
   computes the 2D-homogeneous edge functions (Olano and Greer), the depth
   plane, the candidate pixel range and whether the triangle is drawn at all.
   Triangles with at most 2x3 or 3x2 candidate centres (over 90% of a face
   mesh's at 224x224) are tested right away against a fixed tile of 6
   candidate pixels anchored at the range's corner, so the candidate set is a dense
   [B*T, 6] array: no enumeration, no gathers, no pixels x triangles tensor.
2. Larger triangles are compacted and their candidate fragments
   (triangle, pixel-in-box) are enumerated with a cumulative count and a
   binary search, in chunks of at most 2^19 fragments (fewer, rounded up
   to a power of two, for scenes with fewer) inside a `tf.while_loop`.
   Memory therefore stays bounded whatever the triangle sizes (one
   triangle covering a 1024x1024 image is just 2^20 fragments, processed a
   chunk at a time). The chunk kernel sees only shapes fixed by the batch
   size, the triangle count and the chunk size, so XLA compiles it at most
   once per chunk size, not once per scene.

Surviving fragments (inside the triangle, depth in [-1, 1]) are compacted and
merged into a per-pixel depth buffer and id buffer with two segment
reductions: the minimum depth per pixel, then the largest triangle index
among the fragments at that minimum depth. That is exactly the outcome of
drawing the triangles in list order with a "z <= stored z" test starting from
a depth buffer of 1: the smallest depth wins and an exact tie goes to the
later triangle.

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

import functools

import tensorflow as tf
from tensorflow.python.ops import while_v2  # pylint: disable=g-direct-tensorflow-import

# Candidate pixels per small triangle: a 2-wide, 3-tall tile, or a 3-wide,
# 2-tall tile when the bounding box is 3 pixels wide.
_TILE = 6
# Fragments per chunk of the large-triangle path (bounds its memory). A scene
# with fewer fragments uses the smallest power of two >= their count, at
# least _MIN_CHUNK, so the chunk kernel is compiled for a few sizes only.
_CHUNK = 1 << 19
_MIN_CHUNK = 1 << 12
# Widening of the candidate range, in pixels: absolute, and relative to the
# projected coordinate (float32 rounds it by 6e-8 of its value).
_BOX_MARGIN = 1e-3
_BOX_MARGIN_RELATIVE = 2e-6
# Depth value that marks a rejected candidate (any value > 1 would do).
_REJECTED = 3.0


def _canonical_cross(p, q):
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
  in_order = (px < qx) | ((px == qx) & ((py < qy) | ((py == qy) & (pw <= qw))))
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


def _corner_values(corners):
  """Splits gathered corners [N, 3, 4] into x, y, z, w lists of 3 [N] tensors."""
  return [[corners[:, k, c] for k in range(3)] for c in range(4)]


def _triangle_setup(corners, image_width, image_height):
  """Per-triangle edge functions and bounding box.

  Args:
    corners: [N, 3, 4] float32 clip-space corners of N triangles.
    image_width: python int.
    image_height: python int.

  Returns:
    coefs: [9, N] float32, for each edge i the pixel-unit coefficients
      (A_i, B_i, C_i) with e_i(ix, iy) = A_i*ix + B_i*iy + C_i before the sign
      correction.
    sign: [N] float32, the sign of the determinant (+1 or -1).
    box: [4, N] int32: left, bottom, width, height of the candidate pixels
      (those whose centres lie in the widened bounding box; width or height 0
      when there is none or the triangle is not drawn).
  """
  width = float(image_width)
  height = float(image_height)
  x, y, _, w = _corner_values(corners)
  verts = [(x[k], y[k], w[k]) for k in range(3)]
  rows = [_canonical_cross(verts[1], verts[2]),
          _canonical_cross(verts[2], verts[0]),
          _canonical_cross(verts[0], verts[1])]
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
  def _pixel_range(coords, size):
    half = 0.5 * size
    safe_w = [tf.where(all_positive_w, wk, 1.0) for wk in w]
    proj = [(ck / wk + 1.0) * half for ck, wk in zip(coords, safe_w)]
    lo = tf.minimum(tf.minimum(proj[0], proj[1]), proj[2])
    hi = tf.maximum(tf.maximum(proj[0], proj[1]), proj[2])
    lo -= _BOX_MARGIN + _BOX_MARGIN_RELATIVE * tf.abs(lo)
    hi += _BOX_MARGIN + _BOX_MARGIN_RELATIVE * tf.abs(hi)
    # Clamp before rounding so that huge values cannot overflow the cast.
    first = tf.clip_by_value(
        tf.math.ceil(tf.clip_by_value(lo, -1.0, size + 1.0) - 0.5), 0.0, size)
    end = tf.clip_by_value(
        tf.floor(tf.clip_by_value(hi, -1.0, size + 1.0) - 0.5) + 1.0, 0.0,
        size)
    first = tf.where(all_positive_w & (first == first), first, 0.0)
    end = tf.where(all_positive_w & (end == end), end, size)
    return first, tf.maximum(end, first)

  left, right = _pixel_range(x, width)
  bottom, top = _pixel_range(y, height)

  # A triangle is drawn when its clip coordinates are finite and not all of
  # its w are negative. (Overflowing edge functions are rejected per pixel.)
  finite = tf.reduce_all(
      tf.math.is_finite(tf.reshape(corners, [-1, 12])), axis=1)
  drawn = finite & tf.logical_not(all_negative_w)
  box = tf.stack([tf.where(drawn, left, 0.0), tf.where(drawn, bottom, 0.0),
                  tf.where(drawn, right - left, 0.0),
                  tf.where(drawn, top - bottom, 0.0)])
  return tf.stack(coefs), sign, tf.cast(box, tf.int32)


def _test_candidates(coefs, sign, z, w, left, bottom, dx, dy, valid,
                     batch_index, image_width, image_height):
  """Coverage and depth of candidate pixels; shared by both kernels.

  All arguments are tensors of one shape (or broadcastable to it), except
  coefs (a list of 9), z and w (lists of 3) and the python ints.

  Args:
    coefs: the 9 raw pixel-unit edge coefficients (see _triangle_setup).
    sign: the determinant's sign.
    z, w: clip-space z and w of the three corners.
    left, bottom: int32 box corner.
    dx, dy: int32 offsets of the candidate pixels from the box corner.
    valid: bool, candidates inside the box.
    batch_index: int32 image index.
    image_width, image_height: python ints.

  Returns:
    depth: float32, the candidate's NDC depth, or _REJECTED.
    pixel: int32 flat pixel index b*H*W + iy*W + ix (0 where rejected).
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
  depth = ((e[0] * z[0] + e[1] * z[1] + e[2] * z[2]) /
           (e[0] * w[0] + e[1] * w[1] + e[2] * w[2]))
  keep = (valid & inside & (total < float('inf')) & (depth >= -1.0) &
          (depth <= 1.0))
  depth = tf.where(keep, depth, _REJECTED)
  pixel = batch_index * (image_width * image_height) + iy * image_width + ix
  pixel = tf.where(keep, pixel, 0)
  return depth, pixel


@functools.lru_cache(maxsize=None)
def _setup_kernel(image_width, image_height):
  """Returns the XLA setup kernel: corners [N,3,4] -> coefs, sign, box."""

  @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
  def kernel(corners):
    return _triangle_setup(corners, image_width, image_height)

  return kernel


@functools.lru_cache(maxsize=None)
def _small_kernel(image_width, image_height):
  """Returns the XLA kernel testing the small triangles on a 6-pixel tile.

  The kernel maps (corners [N,3,4], coefs [9,N], sign [N], box [4,N],
  triangles_per_image) to depth [6, N] float32 (the candidate's depth or
  _REJECTED) and pixel [6, N] int32 (flat pixel index), and large [N] bool
  (drawn triangles whose box does not fit the tile).
  """

  @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
  def kernel(corners, coefs, sign, box, triangles_per_image):
    _, _, z, w = _corner_values(corners)
    coefs = tf.unstack(coefs)
    left, bottom, box_w, box_h = tf.unstack(box)
    small = ((box_w <= 2) & (box_h <= 3)) | ((box_w <= 3) & (box_h <= 2))
    wide = box_w > 2
    batch_index = (tf.range(tf.shape(left)[0], dtype=tf.int32) //
                   tf.maximum(triangles_per_image, 1))
    depths, pixels = [], []
    for j in range(_TILE):
      dx = tf.where(wide, j % 3, j % 2)
      dy = tf.where(wide, j // 3, j // 2)
      valid = small & (dx < box_w) & (dy < box_h)
      depth, pixel = _test_candidates(coefs, sign, z, w, left, bottom, dx, dy,
                                      valid, batch_index, image_width,
                                      image_height)
      depths.append(depth)
      pixels.append(pixel)
    large = tf.logical_not(small) & (box_w > 0) & (box_h > 0)
    return tf.stack(depths), tf.stack(pixels), large

  return kernel


@functools.lru_cache(maxsize=None)
def _large_kernel(image_width, image_height):
  """Returns the XLA kernel testing one chunk of large-triangle fragments.

  Every argument has a shape fixed by the batch size, the triangle count and
  the chunk size (one of 8 powers of two), never by which triangles are
  large, so new scenes reuse the compiled kernels: the per-triangle arrays
  are the full [N] ones (N = B*T) and each fragment carries the flat index
  of its triangle and the first fragment id of that triangle.
  """

  @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
  def kernel(fragment, start, triangle, corners, coefs, sign, box,
             triangles_per_image, total):
    # fragment, start: [K] int64 global fragment ids and the first id of
    # their triangle; triangle: [K] int32 flat triangle index into
    # corners [N, 3, 4], coefs [9, N], sign [N], box [4, N].
    _, _, z, w = _corner_values(tf.gather(corners, triangle))
    coefs = tf.unstack(tf.gather(coefs, triangle, axis=1))
    sign = tf.gather(sign, triangle)
    left, bottom, box_w, _ = tf.unstack(tf.gather(box, triangle, axis=1))
    batch_index = triangle // tf.maximum(triangles_per_image, 1)
    local = tf.cast(fragment - start, tf.int32)
    box_w = tf.maximum(box_w, 1)
    dx = local % box_w
    dy = local // box_w
    valid = fragment < total
    return _test_candidates(coefs, sign, z, w, left, bottom, dx, dy, valid,
                            batch_index, image_width, image_height)

  return kernel


def _merge(depth_buffer, id_buffer, depth, pixel, triangle, num_pixels):
  """Merges surviving fragments into the depth and id buffers.

  Args:
    depth_buffer: [N] float32 current minimum depth per pixel (> 1: empty).
    id_buffer: [N] int32 current winning triangle per pixel (-1: none).
    depth: [F] float32 depths of surviving fragments.
    pixel: [F] int32 their flat pixel indices.
    triangle: [F] int32 their flat triangle indices (b*T + t).
    num_pixels: scalar int32 N.

  Returns:
    The updated (depth_buffer, id_buffer).
  """
  chunk_min = tf.math.unsorted_segment_min(depth, pixel, num_pixels)
  new_depth = tf.minimum(depth_buffer, chunk_min)
  at_min = tf.equal(depth, tf.gather(new_depth, pixel))
  chunk_id = tf.math.unsorted_segment_max(
      tf.where(at_min, triangle, -1), pixel, num_pixels)
  kept = tf.where(tf.equal(depth_buffer, new_depth), id_buffer, -1)
  return new_depth, tf.maximum(kept, chunk_id)


def visible_triangles(clip_space_vertices, triangles, image_width,
                      image_height):
  """Computes the index of the visible triangle at every pixel.

  Args:
    clip_space_vertices: [B, V, 4] float32 tensor of clip-space vertices.
    triangles: [T, 3] int32 tensor of vertex indices.
    image_width: python int > 0.
    image_height: python int > 0.

  Returns:
    An int32 tensor [B, image_height * image_width] holding b*T + t for the
    triangle t of image b seen at each pixel (row-major, row 0 = NDC y = -1),
    or -1 where no triangle covers the pixel. No gradient flows through it.
  """
  clip_space_vertices = tf.stop_gradient(clip_space_vertices)
  batch = tf.shape(clip_space_vertices)[0]
  num_triangles = tf.shape(triangles)[0]
  num_pixels = batch * (image_width * image_height)

  corners = tf.reshape(tf.gather(clip_space_vertices, triangles, axis=1),
                       [-1, 3, 4])
  coefs, sign, box = _setup_kernel(image_width, image_height)(corners)
  depth, pixel, large = _small_kernel(image_width, image_height)(
      corners, coefs, sign, box, num_triangles)

  # Small triangles: compact the surviving candidates and merge them.
  depth = tf.reshape(depth, [-1])
  pixel = tf.reshape(pixel, [-1])
  kept = tf.reshape(tf.where(depth <= 1.0), [-1])
  fragment_triangle = tf.cast(kept % tf.cast(tf.size(large), tf.int64),
                              tf.int32)
  depth_buffer = tf.fill([num_pixels], _REJECTED)
  id_buffer = tf.fill([num_pixels], -1)
  depth_buffer, id_buffer = _merge(depth_buffer, id_buffer,
                                   tf.gather(depth, kept),
                                   tf.gather(pixel, kept), fragment_triangle,
                                   num_pixels)

  # Large triangles: enumerate their box pixels chunk by chunk. Only the
  # fragment enumeration below depends on how many triangles are large; the
  # compiled kernel sees shapes that do not (besides the chunk size).
  large_ids = tf.cast(tf.reshape(tf.where(large), [-1]), tf.int32)
  large_box = tf.gather(box, large_ids, axis=1)
  counts = (tf.cast(large_box[2], tf.int64) *
            tf.cast(large_box[3], tf.int64))
  ends = tf.cumsum(counts)
  total = tf.reduce_sum(counts)
  starts = ends - counts
  chunk_kernel = _large_kernel(image_width, image_height)
  bits = tf.math.ceil(tf.math.log(tf.cast(tf.maximum(total, 1), tf.float64)) /
                      tf.math.log(tf.constant(2.0, tf.float64)))
  chunk = tf.cast(2.0 ** tf.clip_by_value(bits, _MIN_CHUNK.bit_length() - 1,
                                          _CHUNK.bit_length() - 1), tf.int64)

  # Everything the loop body reads is passed as a loop variable, so that
  # the loop also builds under TF1 control flow (tf.compat.v1 graphs).
  def _body(base, depth_buffer, id_buffer, loop_inputs):
    (ends, starts, large_ids, corners, coefs, sign, box, num_triangles,
     chunk, total) = loop_inputs
    fragment = base + tf.range(chunk, dtype=tf.int64)
    owner = tf.searchsorted(ends, fragment, side='right', out_type=tf.int32)
    owner = tf.minimum(owner, tf.size(ends, out_type=tf.int32) - 1)
    triangle = tf.gather(large_ids, owner)
    frag_depth, frag_pixel = chunk_kernel(fragment, tf.gather(starts, owner),
                                          triangle, corners, coefs, sign, box,
                                          num_triangles, total)
    keep = tf.reshape(tf.where(frag_depth <= 1.0), [-1])
    depth_buffer, id_buffer = _merge(
        depth_buffer, id_buffer, tf.gather(frag_depth, keep),
        tf.gather(frag_pixel, keep), tf.gather(triangle, keep), num_pixels)
    return base + chunk, depth_buffer, id_buffer, loop_inputs

  loop_inputs = (ends, starts, large_ids, corners, coefs, sign, box,
                 num_triangles, chunk, total)
  # In graphs, always build a functional (v2) while loop: it holds the XLA
  # kernel calls correctly even when TF1 control flow is enabled.
  loop = tf.while_loop if tf.executing_eagerly() else while_v2.while_loop
  _, depth_buffer, id_buffer, _ = loop(
      lambda base, depth_buffer, id_buffer, loop_inputs: base < loop_inputs[-1],
      _body, [tf.constant(0, tf.int64), depth_buffer, id_buffer, loop_inputs],
      parallel_iterations=1)
  return tf.reshape(id_buffer, [batch, image_width * image_height])
