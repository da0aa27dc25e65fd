"""The face model's UV layout, and where each texel of a texture lies on the mesh.

`BFM/BFM_UV.mat` gives one (u, v) in [0, 1] per BFM09 vertex; the front
model's vertices are the (1-based) `select_id` of `select_vertex_id.mat`, in
the front model's vertex order, so its coordinates are `UV[select_id - 1]`
(docs/textures.md). A texture of S x S texels has texel (row, col) at
u = (col + 0.5) / S, v = 1 - (row + 0.5) / S: row 0 at the top, as images
are stored, with v up, as OBJ's `vt` lines expect.

`TexelMap` is computed once per size, by the renderer's own rasterizer run
in UV space (the coverage rule of every render): the texels inside the UV
triangles, each with its triangle's three vertices and barycentric weights.
With it:
- `mirror`: the texel on the other side of the face. The layout is
  symmetric about u = 0.5, as the face is about its middle, so texel
  (row, col) mirrors (row, S - 1 - col);
- `nearest`: for every texel of the image, the nearest covered texel. A
  finished texture copies it into every uncovered texel, so that islands
  are padded to the image's edges and a viewer's filtering at a seam never
  mixes in a background colour.
"""
import pathlib
import threading

import numpy as np
import scipy.sparse

from assets.catalog import SELECT_ID_NAME, SOURCE_INDEX, SOURCE_UV, UV_NAME, AssetError
from assets.checks import expect_finite, expect_index, load_mat

DEFAULT_SIZE = 1024          # texels a side: the tools' default texture
SIZES = (16, 4096)           # the sides the tools accept (4096: 4 GB while its map is made)


def load_uv(bfm_dir, n_front=None):
    """The front model's UV coordinates.

    Args:
      bfm_dir: the face model's folder (BFM_UV.mat, select_vertex_id.mat).
      n_front: the front model's vertex count, or None (not checked).

    Returns:
      [n_front, 2] float64 (u, v) in [0, 1].

    Raises:
      AssetError: a file is missing or malformed, or does not fit the
        front model (one line naming the file).
    """
    bfm_dir = pathlib.Path(bfm_dir)
    path = bfm_dir / UV_NAME
    uv = load_mat(path, ["UV"], SOURCE_UV)["UV"]
    if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] == 0:
        raise AssetError.about(path, f"variable 'UV' has shape {uv.shape}, expected (V, 2): "
                               "one (u, v) per BFM09 vertex", SOURCE_UV)
    expect_finite(path, "UV", uv, SOURCE_UV)
    if uv.min() < 0.0 or uv.max() > 1.0:
        raise AssetError.about(path, "variable 'UV' holds coordinates outside [0, 1]", SOURCE_UV)
    select_path = bfm_dir / SELECT_ID_NAME
    select = load_mat(select_path, ["select_id"], SOURCE_INDEX)["select_id"]
    expect_index(select_path, "select_id", select, uv.shape[0], SOURCE_INDEX)
    select = select.ravel().astype(np.int64) - 1
    if n_front is not None and select.size != n_front:
        raise AssetError.about(select_path, f"variable 'select_id' has {select.size} vertices, "
                               f"the front model {n_front}", SOURCE_INDEX)
    return uv[select].astype(np.float64)


def uv_problem(bfm_dir):
    """One line saying why the UV layout of `bfm_dir` cannot be used, or None.

    What the entry points check before their first photo, so that a missing
    or broken BFM_UV.mat costs the uv outputs only, said once.
    """
    try:
        load_uv(bfm_dir)
    except AssetError as error:
        return str(error)
    return None


class TexelMap:
    """Where each texel of an S x S texture lies on the mesh (see the module docstring).

    Attributes:
      size: S.
      texels: [T] int32 flat indices (row * S + col) of the covered texels.
      vertices: [T, 3] int32 the vertices of each texel's triangle.
      weights: [T, 3] float32 its barycentric weights there.
      mirror: [T] int32 the position in `texels` of each texel's mirror
        image, or the texel's own when that one is not covered.
      nearest: [S * S] int32 for every texel of the image, the position in
        `texels` of the nearest covered texel.
    """

    def __init__(self, uv, triangles, size):
        import tensorflow as tf
        from scipy.ndimage import distance_transform_edt

        from mesh_renderer.rasterize_triangles import rasterize_clip_space

        size = int(size)
        triangles = np.asarray(triangles, np.int64)
        count = len(triangles)
        corners = np.asarray(uv, np.float64)[triangles.reshape(-1)]      # [3F, 2], unshared
        clip = np.concatenate([2.0 * corners - 1.0, np.zeros((3 * count, 1)),
                               np.ones((3 * count, 1))], axis=1).astype(np.float32)
        attributes = np.zeros((3 * count, 4), np.float32)
        attributes[:, 0] = np.repeat(np.arange(count), 3)               # the triangle's id
        attributes[np.arange(3 * count), 1 + np.tile(np.arange(3), count)] = 1.0
        with tf.device("/cpu:0"):
            raster = rasterize_clip_space(
                clip[None], attributes[None], np.arange(3 * count, dtype=np.int32).reshape(-1, 3),
                size, size, [-1.0, 0.0, 0.0, 0.0]).numpy()[0]
        raster = raster[::-1]                                # row 0 at the top (v = 1)
        covered = raster[..., 0] >= -0.5
        self.size = size
        self.texels = np.flatnonzero(covered).astype(np.int32)
        rows = raster.reshape(-1, 4)[self.texels]
        triangle = np.rint(rows[:, 0]).astype(np.int64)
        self.vertices = triangles[triangle].astype(np.int32)
        weights = np.clip(rows[:, 1:], 0.0, None)
        self.weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
        position = np.full(size * size, -1, np.int32)
        position[self.texels] = np.arange(self.texels.size)
        row, col = np.divmod(self.texels, size)
        mirror = position[row * size + (size - 1 - col)]
        self.mirror = np.where(mirror >= 0, mirror, np.arange(self.texels.size, dtype=np.int32))
        _, (near_row, near_col) = distance_transform_edt(~covered, return_indices=True)
        self.nearest = position[(near_row * size + near_col).reshape(-1)]
        self._matrix = scipy.sparse.csr_matrix(
            (self.weights.reshape(-1), self.vertices.reshape(-1),
             np.arange(0, 3 * self.texels.size + 1, 3)), shape=(self.texels.size, len(uv)))

    def __len__(self):
        return self.texels.size

    def interpolate(self, values):
        """Per-vertex values at the texels: [N, C] -> [T, C] float32.

        One sparse product (three weights a row) for every column at once,
        returned column-major: each column contiguous, so that the per-texel
        arithmetic that follows runs at memory speed (OpenCV's transpose is
        the fastest here).
        """
        import cv2

        rows = self._matrix @ np.asarray(values, np.float32)
        return cv2.transpose(rows).T if rows.shape[1] > 1 else rows

    def image(self, values):
        """An S x S image of per-texel values, every uncovered texel its nearest covered one's.

        Args:
          values: [T, C] per covered texel.

        Returns:
          [S, S, C] array of `values`' dtype.
        """
        values = np.asarray(values)
        shape = (self.size, self.size, *values.shape[1:])
        if values.dtype == np.uint8 and values.ndim == 2 and values.shape[1] <= 4:
            # One 4-byte word per texel: a quarter of the gathers of a byte at a time.
            words = np.zeros((len(values), 4), np.uint8)
            words[:, :values.shape[1]] = values
            gathered = words.view(np.uint32)[:, 0][self.nearest]
            return gathered.view(np.uint8).reshape(self.size, self.size, 4)[..., :shape[2]]
        return values[self.nearest].reshape(shape)

    def texel_uv(self):
        """[T, 2] the (u, v) of each covered texel's centre."""
        row, col = np.divmod(self.texels, self.size)
        return np.stack([(col + 0.5) / self.size, 1.0 - (row + 0.5) / self.size], axis=1)


class Atlas:
    """The front model's UV layout, with its texel maps made on first use per size.

    Args:
      uv: [N, 2] the front vertices' (u, v) (`load_uv`).
      triangles: [F, 3] 0-based triangles of the front model.
    """

    def __init__(self, uv, triangles):
        self.uv = np.asarray(uv, np.float64)
        self.triangles = np.asarray(triangles, np.int64)
        self._maps = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, bfm_dir, front_model):
        """The atlas of a front model dict (`load_data.load_front_model`) and its folder."""
        n_front = np.asarray(front_model["meanshape"]).shape[1] // 3
        triangles = np.asarray(front_model["tri"], np.int64) - 1
        return cls(load_uv(bfm_dir, n_front), triangles)

    def texel_map(self, size):
        """The `TexelMap` of an S x S texture (made once per size, thread-safely)."""
        with self._lock:
            if size not in self._maps:
                self._maps[size] = TexelMap(self.uv, self.triangles, size)
            return self._maps[size]
