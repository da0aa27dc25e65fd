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
mesh's pixel-sized triangles that is about twice the candidates for the same
coverage. At 224x224 a face mesh's triangle has at most one candidate centre
in over 90% of cases (a third have none), so the work is split in passes:

1. One XLA-compiled kernel over all triangles gathers each triangle's
   corners, computes its 2D-homogeneous edge functions (Olano and Greer)
   and its candidate pixel range and, when that range holds at most two
   pixel centres, tests them. Its only output is one int64 per triangle:
   the surviving fragment (pixel index and depth, packed) when exactly one
   survives, "nothing" when none does, and otherwise "more" with the
   triangle's candidate count. A single output matters on CPU: XLA computes
   each output of a kernel in a loop of its own, and every loop would redo
   the triangle setup. Of a face mesh's triangles with two candidates, over
   nine in ten cover at most one of them, so few are sent on.
2. The triangles sent on are compacted, padded to one of a few lengths (so
   the kernels compile for few shapes), and all their candidates are tested
   again when they have at most six (row-major in the range), one output
   element per candidate.
3. Triangles with still more candidates are set up again by a small kernel,
   and their candidate fragments (triangle, pixel-in-box) are enumerated
   with a cumulative count and a binary search, in chunks of at most 2^19
   fragments (fewer, rounded up to a power of two, for scenes with fewer)
   inside a `tf.while_loop`. Memory therefore stays bounded whatever the
   triangle sizes (one triangle covering a 1024x1024 image is just 2^20
   fragments, processed a chunk at a time).

Each pass recomputes a triangle's setup and sends on every triangle with
more candidates than it tests, so no candidate is lost even if two kernels
were to round a candidate range differently.

The depth test is a minimum per pixel: one segment reduction over the first
pass's fragments (compacted into a list padded to one of eight lengths per
octave) and the tile pass's whole output (pixel -1, which the reduction
drops, where nothing survived), then each chunk of enumerated fragments
scattered in with a minimum. Each surviving fragment carries a
64-bit key: its depth, mapped to an integer of the same order, in the high
32 bits, and (2^32 - 1 - triangle index) in the low 32 bits. The minimum key
per pixel is the fragment with the smallest depth and, among fragments at
exactly that depth, the largest triangle index. That is exactly the outcome
of drawing the triangles in list order with a "z <= stored z" test starting
from a depth buffer of 1: the smallest depth wins and an exact tie goes to
the later triangle.

The arithmetic of one triangle (edge functions, candidate range, candidate
test, depth key) and the conventions it follows are in `_edges.py`.
"""

import functools

import tensorflow as tf
from tensorflow.python.ops import while_v2  # pylint: disable=g-direct-tensorflow-import

from mesh_renderer import _compiled, _edges

# Candidate pixels per triangle tested by the first pass (every triangle)
# and by the tile pass after it (the triangles sent on); triangles with more
# than that take the enumerated path.
_FIRST_SLOTS = 2
_TILE_SLOTS = 6
# Compacted triangle lists are padded to at least this length.
_MIN_BUCKET = 1 << 10
# Fragments per chunk of the large-triangle path (bounds its memory). A scene
# with fewer fragments uses the smallest power of two >= their count, at
# least _MIN_CHUNK, so the chunk kernel is compiled for a few sizes only.
_CHUNK = 1 << 19
_MIN_CHUNK = 1 << 12
# Packed first-pass value of a triangle without a surviving fragment.
_NOTHING = -1
# Tile-pass pixel of a triangle with more candidates than slots.
_LARGE = -2
# Depth-test key of a pixel that no fragment reached.
_EMPTY_KEY = (1 << 63) - 1


# The kernels' input signatures: lengths that vary with the scene are left
# unknown, so a kernel is traced once; XLA still compiles it for each
# concrete shape (a traced function per shape would also be retraced per
# shape, which TensorFlow warns about when it happens often).
_TRIANGLE_KERNEL_SIGNATURE = (
    tf.TensorSpec([None, None, 4], tf.float32),   # clip-space vertices
    tf.TensorSpec([None, 3], tf.int32),           # triangles
    tf.TensorSpec([None], tf.int64))              # flat triangle indices
_CHUNK_KERNEL_SIGNATURE = (
    tf.TensorSpec([None], tf.int64),              # fragment
    tf.TensorSpec([None], tf.int64),              # start
    tf.TensorSpec([None], tf.int32),              # owner
    tf.TensorSpec([None], tf.int64),              # ids
    tf.TensorSpec([None, 3, 4], tf.float32),      # corners
    tf.TensorSpec([9, None], tf.float32),         # coefs
    tf.TensorSpec([None], tf.float32),            # sign
    tf.TensorSpec([4, None], tf.int32),           # box
    tf.TensorSpec([], tf.int32),                  # triangles per image
    tf.TensorSpec([], tf.int64))                  # total


def _gather_corners(clip_space_vertices, triangles, ids, image_width,
                    image_height):
  """Corners of triangles: clip-space [P, 3, 4], screen [P, 3, 2], image [P].

  The screen coordinates are the clip coordinates projected to pixel units
  (_edges.project; meaningful only where w > 0).

  ids: None for all B*T triangles in order, else [P] int64 flat triangle
  indices b*T + t, where negative ones (padding) read triangle 0.
  """
  batch = tf.shape(clip_space_vertices)[0]
  vertex_count = tf.shape(clip_space_vertices)[1]
  triangle_count = tf.maximum(tf.shape(triangles)[0], 1)
  if ids is None:
    vertex_ids = (triangles[None] +
                  (tf.range(batch) * vertex_count)[:, None, None])
    # A broadcast, not range // T: XLA vectorizes no integer division.
    batch_index = tf.reshape(tf.broadcast_to(
        tf.range(batch)[:, None], [batch, tf.shape(triangles)[0]]), [-1])
  else:
    ids = tf.cast(tf.maximum(ids, 0), tf.int32)
    batch_index = ids // triangle_count
    vertex_ids = _edges.corner_vertex_rows(triangles, ids, vertex_count)
  vertex_ids = tf.reshape(vertex_ids, [-1])
  rows = tf.reshape(clip_space_vertices, [-1, 4])
  # A gather of whole rows: XLA keeps it as a single copy, where one gather
  # per coordinate would be one copy each. The screen coordinates are
  # projected from it (a gather of per-vertex projections would be a second
  # copy to write and read).
  corners = tf.reshape(tf.gather(rows, vertex_ids), [-1, 3, 4])
  screen = tf.stack(
      [_edges.project(corners[:, :, 0], corners[:, :, 3], image_width),
       _edges.project(corners[:, :, 1], corners[:, :, 3], image_height)],
      axis=2)
  return corners, screen, batch_index


def _slot_offsets(slot, box_w, slots):
  """Column and row (dx, dy) of candidate `slot` in row-major box order.

  Computed without an integer division (which would keep XLA from
  vectorizing the loop): dy counts the whole box rows before the slot.

  Args:
    slot: int32 tensor, or a python int, in [0, slots).
    box_w: int32 tensor, the box widths (broadcastable with slot).
    slots: python int, the number of slots of the pass.
  """
  dy = tf.zeros_like(box_w * slot)
  for full_rows in range(1, slots):
    dy += tf.cast(slot >= full_rows * box_w, tf.int32)
  return slot - dy * box_w, dy


def _pack(pixel, order):
  """Packed fragment (pixel << 32) | depth order (in the low 32 bits)."""
  return (tf.bitwise.left_shift(tf.cast(pixel, tf.int64), 32) |
          (tf.cast(order, tf.int64) & _edges.LOW_32))


@functools.lru_cache(maxsize=None)
def _first_pass_kernel(image_width, image_height, slots):
  """Returns the XLA kernel of the first pass, over every triangle.

  The kernel maps (clip [B,V,4], triangles [T,3]) to [B*T] int64, one value
  per triangle in order. A triangle with at most `slots` candidate pixels
  tests them all, within its own element of the output; if just one
  survives, the value is that fragment, packed (_pack); if none, _NOTHING.
  A triangle with more candidates, or with more than one surviving, gets
  -1 - count (< -1): the tile pass tests all of its candidates again. (Most
  of a face mesh's triangles with two candidates cover at most one.)
  """

  @_compiled.kernel(input_signature=_TRIANGLE_KERNEL_SIGNATURE[:2])
  def kernel(clip_space_vertices, triangles):
    corners, screen, batch_index = _gather_corners(
        clip_space_vertices, triangles, None, image_width, image_height)
    _, _, z, w = _edges.corner_values(corners)
    coefs, sign, (left, bottom, box_w, box_h) = _edges.triangle_setup(
        corners, screen, image_width, image_height)
    count = box_w * box_h
    survivors = tf.zeros_like(count)
    fragment = tf.fill(tf.shape(count), tf.constant(_NOTHING, tf.int64))
    for slot in range(slots):
      dx, dy = _slot_offsets(slot, box_w, slots)
      kept, order, pixel = _edges.candidate_fragments(
          coefs, sign, z, w, left, bottom, dx, dy,
          (slot < count) & (count <= slots), batch_index, image_width,
          image_height)
      survivors += tf.cast(kept, tf.int32)
      fragment = tf.where(kept, _pack(pixel, order), fragment)
    return tf.where((survivors > 1) | (count > slots),
                    -1 - tf.cast(count, tf.int64), fragment)

  return kernel


@functools.lru_cache(maxsize=None)
def _tile_kernel(image_width, image_height, slots):
  """Returns the XLA kernel testing triangles with at most `slots` candidates.

  The kernel maps (clip [B,V,4], triangles [T,3], ids [P] int64 flat triangle
  indices, negative for padding, never drawn) to depth-test keys [slots, P]
  int64 and flat pixel indices [slots, P] int32: entry j of a triangle with
  at most `slots` candidate pixels tests its j-th candidate in row-major
  order within its candidate range, and holds the fragment's key and pixel
  where it survives, pixel -1 otherwise (unsorted_segment_min drops it); a
  triangle with more candidates gets pixel _LARGE (also dropped) in row 0.

  XLA computes each element of the output on its own, so the setup of a
  triangle is computed once per slot: this pass is meant for the few
  triangles that need it.
  """

  @_compiled.kernel(input_signature=_TRIANGLE_KERNEL_SIGNATURE)
  def kernel(clip_space_vertices, triangles, ids):
    corners, screen, batch_index = _gather_corners(
        clip_space_vertices, triangles, ids, image_width, image_height)
    _, _, z, w = _edges.corner_values(corners)
    coefs, sign, (left, bottom, box_w, box_h) = _edges.triangle_setup(
        corners, screen, image_width, image_height)
    count = tf.where(ids >= 0, box_w * box_h, 0)
    slot = tf.range(slots)[:, None]
    dx, dy = _slot_offsets(slot, box_w[None], slots)
    row = lambda value: tf.expand_dims(value, 0)  # noqa: E731
    kept, order, pixel = _edges.candidate_fragments(
        [row(c) for c in coefs], row(sign), [row(c) for c in z],
        [row(c) for c in w], row(left), row(bottom), dx, dy,
        (slot < count[None]) & (count <= slots)[None], row(batch_index),
        image_width, image_height)
    large = (count > slots)[None] & tf.equal(slot, 0)
    return (_edges.depth_key(order, row(ids)),
            tf.where(kept, pixel, tf.where(large, _LARGE, -1)))

  return kernel


@functools.lru_cache(maxsize=None)
def _large_setup_kernel(image_width, image_height):
  """Returns the XLA kernel setting up the (padded) large triangles.

  Maps (clip [B,V,4], triangles [T,3], ids [P] int64 flat triangle indices,
  negative for padding) to corners [P,3,4], coefs [9,P], sign [P] and box
  [4,P] (zero boxes for padding).
  """

  @_compiled.kernel(input_signature=_TRIANGLE_KERNEL_SIGNATURE)
  def kernel(clip_space_vertices, triangles, ids):
    corners, screen, _ = _gather_corners(clip_space_vertices, triangles, ids,
                                         image_width, image_height)
    coefs, sign, box = _edges.triangle_setup(corners, screen, image_width,
                                             image_height)
    box = [tf.where(ids >= 0, value, 0) for value in box]
    return corners, tf.stack(coefs), sign, tf.stack(box)

  return kernel


@functools.lru_cache(maxsize=None)
def _large_kernel(image_width, image_height):
  """Returns the XLA kernel testing one chunk of large-triangle fragments.

  Every argument has a shape fixed by the padded large-triangle count (one
  of a few lengths) and the chunk size (a power of two), so new scenes
  mostly reuse compiled kernels. Each fragment carries the index of its
  (padded) large triangle and the first fragment id of that triangle.
  Returns the depth-test key of every fragment (_EMPTY_KEY where rejected)
  and its flat pixel index.
  """

  @_compiled.kernel(input_signature=_CHUNK_KERNEL_SIGNATURE)
  def kernel(fragment, start, owner, ids, corners, coefs, sign, box,
             triangles_per_image, total):
    # fragment, start: [K] int64 global fragment ids and the first id of
    # their triangle; owner: [K] int32 index into ids [P] (flat triangle
    # indices), corners [P, 3, 4], coefs [9, P], sign [P], box [4, P].
    _, _, z, w = _edges.corner_values(tf.gather(corners, owner))
    coefs = tf.unstack(tf.gather(coefs, owner, axis=1))
    sign = tf.gather(sign, owner)
    left, bottom, box_w, _ = tf.unstack(tf.gather(box, owner, axis=1))
    triangle = tf.gather(ids, owner)
    batch_index = tf.cast(triangle // tf.cast(
        tf.maximum(triangles_per_image, 1), tf.int64), tf.int32)
    local = tf.cast(fragment - start, tf.int32)
    box_w = tf.maximum(box_w, 1)
    dx = local % box_w
    dy = local // box_w
    valid = fragment < total
    kept, order, pixel = _edges.candidate_fragments(
        coefs, sign, z, w, left, bottom, dx, dy, valid, batch_index,
        image_width, image_height)
    return (tf.where(kept, _edges.depth_key(order, triangle), _EMPTY_KEY),
            tf.where(kept, pixel, 0))

  return kernel


@_compiled.kernel(input_signature=(tf.TensorSpec([None], tf.int64),
                                   tf.TensorSpec([None], tf.int64)))
def _first_pass_fragments(packed, kept):
  """Depth-test keys [F] int64 and flat pixels [F] int32 of first-pass fragments.

  Args (as the kernel's): packed [B*T] int64, the first pass's output;
  kept [F] int64, the positions (flat triangle indices) in it of its
  fragments, then -1s padding F to one of few lengths, whose pixel is -1
  (unsorted_segment_min drops it). A packed value's low 32 bits, cast to
  int32, are its depth order again, sign and all. (As TensorFlow ops, these
  few elementwise steps took a pass over memory each.)
  """
  position = tf.maximum(kept, 0)
  fragments = tf.gather(packed, position)
  keys = _edges.depth_key(tf.cast(fragments, tf.int32), position)
  pixels = tf.cast(tf.bitwise.right_shift(fragments, 32), tf.int32)
  return keys, tf.where(kept >= 0, pixels, -1)


def _fragment_positions(packed):
  """Positions [F'] int64 of packed's fragments (values >= 0), -1 padded.

  Padded to one of eight lengths per octave, so that the fragment kernel
  compiles for few lengths, not once per scene.
  """
  return _compiled.padded(tf.reshape(tf.where(packed >= 0), [-1]),
                          _MIN_BUCKET, 8)


@_compiled.kernel(input_signature=(
    tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.int32)))
def _triangle_ids(key_buffer, offset):
  """Flat triangle indices [N] int32 of depth-test keys plus offset, or -1.

  The offset is the flat index of the first triangle of the batch's first
  image (non-zero for the second half of a split batch).
  """
  return tf.where(tf.equal(key_buffer, _EMPTY_KEY), -1,
                  tf.cast(_edges.LOW_32 - (key_buffer & _edges.LOW_32),
                          tf.int32) + offset)


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

  In a graph (tf.function or TF1-style) with a known batch size of at least
  two, the two halves of the batch are computed separately, side by side.
  """
  clip_space_vertices = tf.stop_gradient(clip_space_vertices)
  # (A Dimension, not an int, under TF1 behaviour.)
  batch = tf.compat.dimension_value(clip_space_vertices.shape[0])
  if tf.executing_eagerly() or batch is None or batch < 2:
    return _visible_triangles(clip_space_vertices, triangles, image_width,
                              image_height)
  # In a graph, two halves of the batch: TensorFlow runs their passes side
  # by side, so the TensorFlow ops between the XLA kernels (compactions,
  # segment reductions), which take one thread each, overlap.
  half = batch // 2
  return tf.concat([
      _visible_triangles(clip_space_vertices[:half], triangles, image_width,
                         image_height),
      _visible_triangles(clip_space_vertices[half:], triangles, image_width,
                         image_height, half * tf.shape(triangles)[0])], 0)


def _visible_triangles(clip_space_vertices, triangles, image_width,
                       image_height, offset=0):
  """visible_triangles, with no gradient stop and no split of the batch.

  The ids returned are offset by `offset` (an int32 scalar).
  """
  batch = tf.shape(clip_space_vertices)[0]
  num_triangles = tf.shape(triangles)[0]
  num_pixels = batch * (image_width * image_height)

  # The first pass: every triangle on its few candidate pixels. Then the
  # triangles it sent on, compacted, on more.
  packed = _first_pass_kernel(image_width, image_height, _FIRST_SLOTS)(
      clip_space_vertices, triangles)
  first_keys, first_pixels = _first_pass_fragments(
      packed, _fragment_positions(packed))
  ids = _compiled.padded(tf.reshape(tf.where(packed < _NOTHING), [-1]),
                         _MIN_BUCKET)
  keys, pixels = _tile_kernel(image_width, image_height, _TILE_SLOTS)(
      clip_space_vertices, triangles, ids)
  key_buffer = tf.math.unsorted_segment_min(
      tf.concat([first_keys, tf.reshape(keys, [-1])], 0),
      tf.concat([first_pixels, tf.reshape(pixels, [-1])], 0), num_pixels)
  ids = _compiled.padded(
      tf.gather(ids, tf.reshape(tf.where(tf.equal(pixels[0], _LARGE)), [-1])),
      _MIN_BUCKET)

  # Larger triangles: set up again, then their candidate pixels enumerated
  # chunk by chunk.
  corners, coefs, sign, box = _large_setup_kernel(image_width, image_height)(
      clip_space_vertices, triangles, ids)
  counts = tf.cast(box[2], tf.int64) * tf.cast(box[3], tf.int64)
  ends = tf.cumsum(counts)
  total = ends[-1]
  starts = ends - counts
  chunk_kernel = _large_kernel(image_width, image_height)
  # The smallest power of two >= total, within [_MIN_CHUNK, _CHUNK].
  chunk = tf.minimum(_compiled.padded_length(total, _MIN_CHUNK, 1), _CHUNK)

  # Everything the loop body reads is passed as a loop variable, so that
  # the loop also builds under TF1 control flow (tf.compat.v1 graphs).
  def _body(base, key_buffer, loop_inputs):
    (ends, starts, ids, corners, coefs, sign, box, num_triangles, chunk,
     total) = loop_inputs
    fragment = base + tf.range(chunk, dtype=tf.int64)
    owner = tf.searchsorted(ends, fragment, side='right', out_type=tf.int32)
    owner = tf.minimum(owner, tf.size(ends, out_type=tf.int32) - 1)
    key, pixel = chunk_kernel(fragment, tf.gather(starts, owner), owner, ids,
                              corners, coefs, sign, box, num_triangles, total)
    key_buffer = tf.tensor_scatter_nd_min(key_buffer, pixel[:, None], key)
    return base + chunk, key_buffer, loop_inputs

  loop_inputs = (ends, starts, ids, corners, coefs, sign, box, num_triangles,
                 chunk, total)
  # In graphs, always build a functional (v2) while loop: it holds the XLA
  # kernel calls correctly even when TF1 control flow is enabled.
  loop = tf.while_loop if tf.executing_eagerly() else while_v2.while_loop
  _, key_buffer, _ = loop(
      lambda base, key_buffer, loop_inputs: base < loop_inputs[-1],
      _body, [tf.constant(0, tf.int64), key_buffer, loop_inputs],
      parallel_iterations=1)
  return tf.reshape(_triangle_ids(key_buffer, offset),
                    [batch, image_width * image_height])
