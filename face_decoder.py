"""From 3DMM coefficients to a posed, lit, rendered face (TensorFlow).

This is the decoder of Deng et al. 2019 ("Accurate 3D Face Reconstruction
with Weakly-Supervised Learning"), following the authors' TensorFlow release.
One coefficient vector per image (docs/model.md#coefficients) becomes:

  shape     S   = idBase.alpha + exBase.beta + meanshape, re-centred
  albedo    T   = texBase.delta + meantex
  pose      S_t = S.R^T + t,   R = Rz.Ry.Rx
  normals   per-triangle normals averaged over each vertex's ring, then rotated
  colour    spherical-harmonics lighting (9 bands per channel) times albedo
  landmarks pinhole projection (focal 1015, centre 112) of 68 keypoints
  image     rasterized with `mesh_renderer`, 224x224 RGBA, clipped to [0, 255]

Everything is float32. `Face3D.Reconstruction_Block` builds the whole chain
and works in eager mode, inside `tf.function`, in a `tf.Graph` with a session
and in TF1-style programs; the batch size may be unknown until run time.
The NumPy twin of this module is `reconstruct_mesh.py`.
"""
import math
import os
import weakref

import numpy as np
import tensorflow as tf

import load_data
from assets import catalog
from facemodel import camera
from facemodel.coefficients import (
    ACCEPTED_LENGTHS,
    AMBIENT_LIGHT,
    SH_BANDS,
    WHITE_LENGTH,
    blocks,
)

# Spherical-harmonics constants (docs/model.md#decoder).
_A0, _A1, _A2 = math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0)
_C0 = 1.0 / math.sqrt(4.0 * math.pi)
_C1 = math.sqrt(3.0) / math.sqrt(4.0 * math.pi)
_C2 = 3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi)


def default_model_path():
    """Returns `BFM/BFM_model_front.mat` inside the repository (never the CWD)."""
    return os.path.join(str(catalog.BFM_DIR), catalog.FRONT_MODEL_NAME)


class BFM:
    """The front-face morphable model (`BFM_model_front.mat`) as NumPy arrays.

    Attribute names and layouts are the release's; values are NumPy arrays
    (not tensors) so that one model can serve eager code, `tf.function`s and
    any number of graphs. Indices stay 1-based, as in the file.

    Attributes:
      model_path: the file the model was read from.
      meanshape: [1, 3N] float32, mean shape, decimetres, XYZ interleaved.
      idBase: [3N, 80] float32 identity basis. exBase: [3N, 64] expression
        basis. texBase: [3N, 80] albedo basis (0-255 units).
      meantex: [1, 3N] float32 mean albedo, RGB 0-255.
      face_buf: [F, 3] int32 triangles (1-based). point_buf: [N, 8] int32
        triangles around each vertex (1-based, padded with F + 1).
      keypoints: [68] int32 landmark vertices (1-based).
      mask_face_buf: [F', 3] int32 (1-based), `tri_mask2`.
      front_mask_render: [M] int32 (1-based), `frontmask2_idx`.
      skin_mask: [N] float32, `skinmask`.
      n_vertices: N.
    """

    def __init__(self, model_path=None):
        """Reads the model.

        Args:
          model_path: path of `BFM_model_front.mat`; default
            `BFM/BFM_model_front.mat` in the repository.

        Raises:
          assets.catalog.AssetError: the file is missing or malformed.
        """
        self.model_path = str(model_path) if model_path is not None else default_model_path()
        model = load_data.load_front_model(self.model_path)

        def floats(key):
            return np.asarray(model[key], dtype=np.float32)

        def ints(key):
            return np.asarray(model[key]).astype(np.int32)

        self.meanshape = floats("meanshape").reshape(1, -1)
        self.idBase = floats("idBase")
        self.exBase = floats("exBase")
        self.meantex = floats("meantex").reshape(1, -1)
        self.texBase = floats("texBase")
        self.face_buf = ints("tri")
        self.point_buf = ints("point_buf")
        self.keypoints = ints("keypoints").reshape(-1)
        self.mask_face_buf = ints("tri_mask2")
        self.front_mask_render = ints("frontmask2_idx").reshape(-1)
        self.skin_mask = floats("skinmask").reshape(-1)
        self.n_vertices = self.meanshape.shape[1] // 3


def _shape_center(facemodel):
    """[3] float32: the mean over vertices of the mean shape (the re-centring constant)."""
    mean = facemodel.meanshape.reshape(-1, 3)
    return mean.mean(axis=0, dtype=np.float64).astype(np.float32)


class _KeypointTensors:
    """The shape constants of the 68 landmark vertices only, for `compute_shape`.

    Their columns of meanshape, idBase and exBase ([1, 204], [80, 204],
    [64, 204]); the re-centring constant stays that of the whole mean shape.
    """

    def __init__(self, facemodel):
        columns = (3 * (facemodel.keypoints.astype(np.int64) - 1)[:, None]
                   + np.arange(3)).reshape(-1)
        self.meanshape = tf.constant(facemodel.meanshape[:, columns])
        self.shape_center = tf.constant(_shape_center(facemodel))
        self.id_basis = tf.constant(np.ascontiguousarray(facemodel.idBase[columns].T))
        self.ex_basis = tf.constant(np.ascontiguousarray(facemodel.exBase[columns].T))


class _ModelTensors:
    """The model's constants as tensors, laid out for the decoder (0-based)."""

    def __init__(self, facemodel):
        self.meanshape = tf.constant(facemodel.meanshape)                     # [1, 3N]
        self.shape_center = tf.constant(_shape_center(facemodel))             # [3]
        self.id_basis = tf.constant(np.ascontiguousarray(facemodel.idBase.T))   # [80, 3N]
        self.ex_basis = tf.constant(np.ascontiguousarray(facemodel.exBase.T))   # [64, 3N]
        self.meantex = tf.constant(facemodel.meantex)                         # [1, 3N]
        self.tex_basis = tf.constant(np.ascontiguousarray(facemodel.texBase.T)) # [80, 3N]
        self.triangles = tf.constant(facemodel.face_buf - 1)                  # [F, 3] int32
        self.point_buf = tf.constant(facemodel.point_buf - 1)                 # [N, 8] int32
        self.keypoints = tf.constant(facemodel.keypoints - 1)                 # [68] int32
        self.keypoint_shape = _KeypointTensors(facemodel)


# ---------------------------------------------------------------------------
# The pipeline, one small function per step.


def split_coeff(coeff):
    """Splits coefficient vectors into their parts (docs/model.md#coefficients).

    Args:
      coeff: [B, L] float32 tensor, L = 257 (RGB light), 258 (2020.6 release;
        the last value is ignored) or 239 (white light: 9 SH values shared by
        R, G and B). L must be known when the graph is built.

    Returns:
      (id_coeff [B,80], ex_coeff [B,64], tex_coeff [B,80], angles [B,3]
      radians, gamma [B,27] SH lighting as R, G, B blocks of 9 (for L = 239
      the 9 values repeated three times), translation [B,3] decimetres).

    Raises:
      ValueError: the rank is not 2, or L is unknown or not an accepted length.
    """
    shape = coeff.shape
    if shape.rank is not None and shape.rank != 2:
        raise ValueError(f"coeff must have shape [batch, length], got shape {shape}")
    length = tf.compat.dimension_value(shape[-1]) if shape.rank is not None else None
    if length not in ACCEPTED_LENGTHS:
        raise ValueError(
            "coeff length must be 257 (RGB light), 258 (2020.6 release, first 257 used) "
            f"or 239 (white light), and known when the graph is built (static last "
            f"dimension); got {length}")
    layout = blocks(length)
    sizes = [part.stop - part.start for part in layout.values()]
    id_coeff, ex_coeff, tex_coeff, angles, gamma, translation = tf.split(
        coeff[:, :sum(sizes)], sizes, axis=1)
    if length == WHITE_LENGTH:
        gamma = tf.tile(gamma, [1, 3])
    return id_coeff, ex_coeff, tex_coeff, angles, gamma, translation


def compute_shape(id_coeff, ex_coeff, model):
    """Unposed face shape: mean plus identity and expression offsets.

    Args:
      id_coeff: [B, 80] identity coefficients.
      ex_coeff: [B, 64] expression coefficients.
      model: `_ModelTensors`.

    Returns:
      [B, N, 3] vertices in decimetres, re-centred by the mean over vertices
      of the mean shape (a constant, not the mean of this shape).
    """
    flat = (tf.matmul(id_coeff, model.id_basis) + tf.matmul(ex_coeff, model.ex_basis)
            + model.meanshape)
    return tf.reshape(flat, [tf.shape(flat)[0], -1, 3]) - model.shape_center


def compute_texture(tex_coeff, model):
    """Albedo per vertex.

    Args:
      tex_coeff: [B, 80] albedo coefficients.
      model: `_ModelTensors`.

    Returns:
      [B, N, 3] RGB albedo, nominally 0-255 (not clipped).
    """
    flat = tf.matmul(tex_coeff, model.tex_basis) + model.meantex
    return tf.reshape(flat, [tf.shape(flat)[0], -1, 3])


def compute_rotation(angles):
    """Rotation matrices R = Rz.Ry.Rx from Euler angles.

    Args:
      angles: [B, 3] rotations about x, y and z, radians.

    Returns:
      [B, 3, 3] matrices R; a row-vector point p rotates to p.R^T.
    """
    cos, sin = tf.cos(angles), tf.sin(angles)
    cx, cy, cz = cos[:, 0], cos[:, 1], cos[:, 2]
    sx, sy, sz = sin[:, 0], sin[:, 1], sin[:, 2]
    one, zero = tf.ones_like(cx), tf.zeros_like(cx)

    def matrix(*rows):  # 9 [B] tensors, row-major -> [B, 3, 3]
        return tf.reshape(tf.stack(rows, axis=1), [-1, 3, 3])

    rot_x = matrix(one, zero, zero, zero, cx, -sx, zero, sx, cx)
    rot_y = matrix(cy, zero, sy, zero, one, zero, -sy, zero, cy)
    rot_z = matrix(cz, -sz, zero, sz, cz, zero, zero, zero, one)
    return tf.matmul(tf.matmul(rot_z, rot_y), rot_x)


def _cross(a, b):
    """Cross product along axis 1 of [K, 3, B] tensors."""
    ax, ay, az = tf.unstack(a, axis=1)
    bx, by, bz = tf.unstack(b, axis=1)
    return tf.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=1)


def compute_normals(shape, model):
    """Vertex normals: the normalized sum of the unit normals of their triangles.

    Triangle (v1, v2, v3) has the normal normalize(cross(v1 - v2, v2 - v3)).
    The work is done vertex-major ([N, 3, B]) so that every gather moves whole
    rows (several times faster than gathering 3-float slices per image).

    Args:
      shape: [B, N, 3] vertices.
      model: `_ModelTensors` (`triangles` [F,3] and `point_buf` [N,8], 0-based;
        `point_buf` entries equal to F point at an appended zero normal).

    Returns:
      [B, N, 3] unit normals (zero for a vertex without triangles).
    """
    rows = tf.transpose(shape, [1, 2, 0])                                    # [N, 3, B]
    v1, v2, v3 = (tf.gather(rows, model.triangles[:, i]) for i in range(3))  # [F, 3, B]
    face_normals = tf.math.l2_normalize(_cross(v1 - v2, v2 - v3), axis=1)
    padding = tf.zeros_like(face_normals[:1])                      # triangle F: zero normal
    face_normals = tf.concat([face_normals, padding], axis=0)      # [F+1, 3, B]
    ring_sum = tf.reduce_sum(tf.gather(face_normals, model.point_buf), axis=1)  # [N, 3, B]
    return tf.transpose(tf.math.l2_normalize(ring_sum, axis=1), [2, 0, 1])


def rotate(points, rotation):
    """Rotates row vectors: p.R^T.

    Args:
      points: [B, N, 3] points or directions.
      rotation: [B, 3, 3] from `compute_rotation`.

    Returns:
      [B, N, 3] rotated points.
    """
    return tf.matmul(points, rotation, transpose_b=True)


def project_points(points):
    """Pinhole projection into the 224x224 image of the release's camera.

    Args:
      points: [B, K, 3] posed points in decimetres (camera at z = 10).

    Returns:
      [B, K, 2] image coordinates (u, 223 - v), pixels, x right and y down,
      with u = 1015 x / (10 - z) + 112 and v = 1015 y / (10 - z) + 112.
    """
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    depth = camera.CAMERA_DISTANCE - z
    u = camera.FOCAL * x / depth + camera.CENTER
    v = camera.FOCAL * y / depth + camera.CENTER
    return tf.stack([u, camera.LAST_ROW - v], axis=-1)


def sh_basis(normals):
    """The 9 spherical-harmonics basis values (with the Lambertian factors).

    Args:
      normals: [B, N, 3] unit normals (nx, ny, nz) in camera orientation.

    Returns:
      [B, 9, N] basis values Y (basis first: lighting is then one matmul).
    """
    nx, ny, nz = tf.unstack(normals, axis=-1)
    a1c1, a2c2 = _A1 * _C1, _A2 * _C2
    return tf.stack([
        tf.fill(tf.shape(nx), _A0 * _C0),
        -a1c1 * ny,
        a1c1 * nz,
        -a1c1 * nx,
        a2c2 * nx * ny,
        -a2c2 * ny * nz,
        a2c2 * 0.5 / math.sqrt(3.0) * (3.0 * nz * nz - 1.0),
        -a2c2 * nx * nz,
        a2c2 * 0.5 * (nx * nx - ny * ny),
    ], axis=1)


def illuminate(texture, normals, gamma):
    """Lit vertex colour: per channel c, (Y . gamma_c) * T_c.

    Args:
      texture: [B, N, 3] albedo T, 0-255.
      normals: [B, N, 3] rotated unit normals.
      gamma: [B, 27] SH coefficients, R, G, B blocks of 9; 0.8 is added to
        the first coefficient of every channel.

    Returns:
      [B, N, 3] colour, 0-255 nominally, not clipped.
    """
    gamma = tf.reshape(gamma, [-1, 3, SH_BANDS]) + tf.constant([AMBIENT_LIGHT] + [0.0] * 8)
    irradiance = tf.matmul(gamma, sh_basis(normals))             # [B, 3, N]
    return tf.transpose(irradiance, [0, 2, 1]) * texture


def render(shape, normals, colors, triangles, clip=True, renderer=None):
    """Rasterizes the lit face with the release's camera (mesh_renderer).

    Args:
      shape: [B, N, 3] posed vertices, decimetres.
      normals: [B, N, 3] rotated normals.
      colors: [B, N, 3] vertex colours, 0-255.
      triangles: [F, 3] int32, 0-based.
      clip: clip to [0, 255] (the release's inference; its training renders
        are not clipped, so that every pixel keeps its gradient).
      renderer: a module with tf_mesh_renderer's `mesh_renderer` function;
        None: this project's `mesh_renderer` (bench/render.py passes the
        published one, to time both on the same camera).

    Returns:
      [B, 224, 224, 4] RGBA float32 (clipped to [0, 255] when `clip`); row 0
      is the top, A is 1 where the face covers the pixel and 0 elsewhere.
    """
    if renderer is None:
        import mesh_renderer as renderer  # imported here: only rendering needs it

    batch = tf.shape(shape)[0]

    def per_image(vector, rank_one_shape):
        return tf.tile(tf.reshape(tf.constant(vector, tf.float32), rank_one_shape),
                       [batch] + [1] * (len(rank_one_shape) - 1))

    images = renderer.mesh_renderer(
        shape, triangles, normals, colors,
        camera_position=per_image([0.0, 0.0, camera.CAMERA_DISTANCE], [1, 3]),
        camera_lookat=per_image([0.0, 0.0, 0.0], [1, 3]),
        camera_up=per_image([0.0, 1.0, 0.0], [1, 3]),
        light_positions=per_image(camera.LIGHT_POSITION, [1, 1, 3]),
        light_intensities=per_image(camera.LIGHT_INTENSITY, [1, 1, 3]),
        image_width=camera.IMAGE_SIZE, image_height=camera.IMAGE_SIZE,
        ambient_color=per_image(camera.AMBIENT_COLOR, [1, 3]),
        fov_y=camera.FOV_Y, near_clip=camera.NEAR_CLIP, far_clip=camera.FAR_CLIP)
    return tf.clip_by_value(images, 0.0, 255.0) if clip else images


def _camera_matrices(batch):
    """[B, 4, 4] model-view-projection matrices of the release's camera (`render`'s)."""
    from mesh_renderer import camera_utils

    def per_image(vector):
        return tf.tile(tf.constant([vector], tf.float32), [batch, 1])

    view = camera_utils.look_at(per_image([0.0, 0.0, camera.CAMERA_DISTANCE]),
                                per_image([0.0, 0.0, 0.0]), per_image([0.0, 1.0, 0.0]))
    projection = camera_utils.perspective(
        1.0, tf.fill([batch], camera.FOV_Y),          # square images
        tf.fill([batch], camera.NEAR_CLIP), tf.fill([batch], camera.FAR_CLIP))
    return tf.matmul(projection, view)


def _rasterize(shape, attributes, triangles):
    """[B, 224, 224, A] interpolated attributes (background -1), row 0 the top."""
    from mesh_renderer import rasterize_triangles

    pixels = rasterize_triangles.rasterize(
        shape, attributes, triangles, _camera_matrices(tf.shape(shape)[0]),
        camera.IMAGE_SIZE, camera.IMAGE_SIZE, -tf.ones([attributes.shape[-1]]))
    return tf.reverse(pixels, axis=[1])


def render_colors(shape, colors, triangles):
    """`render(shape, normals, colors, triangles, clip=False)`, without the normals.

    The release's render call has one light of intensity 0 and a white
    ambient colour (`facemodel.camera`), so its Phong shading leaves each
    covered pixel's interpolated vertex colour: ambient 1 times the colour,
    plus exactly 0. This rasterizes the colours alone (3 attributes instead
    of `render`'s 9: normals, positions, colours) and gives the same values
    and gradients in less time; the losses use it
    (docs/performance.md#fitting-benchfitpy).

    Args:
      shape: [B, N, 3] posed vertices, decimetres.
      colors: [B, N, 3] vertex colours, 0-255.
      triangles: [F, 3] int32, 0-based.

    Returns:
      (rgb [B, 224, 224, 3], alpha [B, 224, 224]) float32, not clipped: the
      colour where alpha is 1 (a pixel is covered when a triangle is drawn
      there and one of its interpolated colour channels is >= 0, `render`'s
      rule), 0 elsewhere; `render`'s RGBA is their concatenation.
    """
    pixels = _rasterize(shape, colors, triangles)
    covered = tf.reduce_any(pixels >= 0.0, axis=3)
    return (tf.where(covered[..., None], pixels, tf.zeros_like(pixels)),
            tf.cast(covered, tf.float32))


def render_coverage(shape, triangles):
    """`render(...)[..., 3]` of a mesh whose colours are all 1: where it covers the image.

    Args:
      shape: [B, N, 3] posed vertices, decimetres.
      triangles: [F, 3] int32, 0-based.

    Returns:
      [B, 224, 224] float32, 1 where a triangle is drawn, 0 elsewhere; no
      gradient (a coverage mask has none, as `render`'s alpha).
    """
    shape = tf.stop_gradient(shape)
    pixels = _rasterize(shape, tf.ones_like(shape[..., :1]), triangles)
    return tf.cast(pixels[..., 0] >= 0.0, tf.float32)


# ---------------------------------------------------------------------------


class Face3D:
    """The release's decoder object: build once, call `Reconstruction_Block`.

    After `Reconstruction_Block(coeff)` the instance holds (B = batch):
      id_coeff [B,80], ex_coeff [B,64], tex_coeff [B,80], angles [B,3],
      gamma [B,27], translation [B,3]: the coefficient parts;
      face_shape [B,N,3]: unposed shape; face_shape_t [B,N,3]: posed shape;
      face_texture [B,N,3]: albedo; face_norm [B,N,3]: rotated normals;
      face_color [B,N,3]: lit colour (not clipped); rotation [B,3,3];
      landmark_p [B,68,2]: projected landmarks (x right, y down, pixels);
      render_imgs [B,224,224,4]: RGBA 0-255 (None if render_images=False);
      facemodel: the `BFM`.
    """

    def __init__(self, model_path=None):
        """Loads the model (once per instance).

        Args:
          model_path: path of `BFM_model_front.mat`; default the repository's
            `BFM/BFM_model_front.mat`.

        Raises:
          assets.catalog.AssetError: the model file is missing or malformed.
        """
        from mesh_renderer._compiled import compiled

        self.facemodel = BFM(model_path)
        self._eager_tensors = None
        self._graph_tensors = weakref.WeakKeyDictionary()
        # `compute_normals` as an XLA kernel with an XLA gradient (`xla_normals`).
        # Made here, outside any function being traced: made during a trace,
        # TensorFlow 2.21 crashed when it ran (a segmentation fault).
        self._xla_normals = compiled(
            lambda shapes, _: compute_normals(shapes[0], self._model_tensors()))

    def _model_tensors(self):
        """The model's tensors for the current context, made once per context.

        Eager code and `tf.function`s share one set of eager constants (a
        function captures them); each `tf.Graph` gets its own constants.
        """
        with tf.init_scope():
            if tf.executing_eagerly():
                if self._eager_tensors is None:
                    self._eager_tensors = _ModelTensors(self.facemodel)
                return self._eager_tensors
            graph = tf.compat.v1.get_default_graph()
            if graph not in self._graph_tensors:
                self._graph_tensors[graph] = _ModelTensors(self.facemodel)
            return self._graph_tensors[graph]

    def Reconstruction_Block(self, coeff, batchsize=None, render_images=True,
                             xla_normals=False):
        """Decodes coefficients into shape, colour, landmarks and images.

        Args:
          coeff: [B, L] float32 tensor or array, L = 257, 258 or 239 (static);
            B may be unknown until run time.
          batchsize: ignored; kept for the release's signature (the batch size
            is read from `coeff` at run time).
          render_images: False skips rasterization (`render_imgs` is then None).
          xla_normals: compute the normals, and their gradient, with XLA
            kernels: the losses' choice (a tenth less time a fitting step;
            docs/performance.md#fitting-benchfitpy). The normals then differ
            from the default's by float32 rounding (a few 1e-7).

        Returns:
          None; the results are set as attributes (see the class docstring).

        Raises:
          ValueError: coeff is not [B, L] with an accepted static L.
        """
        del batchsize
        coeff = tf.cast(tf.convert_to_tensor(coeff), tf.float32)
        model = self._model_tensors()
        (self.id_coeff, self.ex_coeff, self.tex_coeff, self.angles, self.gamma,
         self.translation) = split_coeff(coeff)

        self.face_shape = compute_shape(self.id_coeff, self.ex_coeff, model)
        self.face_texture = compute_texture(self.tex_coeff, model)
        self.rotation = compute_rotation(self.angles)
        normals = self._padded_xla_normals(self.face_shape) if xla_normals else \
            compute_normals(self.face_shape, model)
        self.face_norm = rotate(normals, self.rotation)
        self.face_shape_t = rotate(self.face_shape, self.rotation) + self.translation[:, None, :]
        self.landmark_p = project_points(tf.gather(self.face_shape_t, model.keypoints, axis=1))
        self.face_color = illuminate(self.face_texture, self.face_norm, self.gamma)
        self.render_imgs = None
        if render_images:       # `render`'s values, without interpolating normals
            rgb, alpha = render_colors(self.face_shape_t, self.face_color, model.triangles)
            self.render_imgs = tf.clip_by_value(tf.concat([rgb, alpha[..., None]], axis=-1),
                                                0.0, 255.0)

    def _padded_xla_normals(self, shape):
        """The XLA normals of [B, N, 3] shapes, B padded with zeros to a multiple of 8.

        XLA compiles a kernel for each batch size it meets; padded, the
        batch sizes 2 to 8 share one compile (a folder's last batch, an
        image set, a video's remainder: docs/performance.md#one-compile-per-process).
        Each photo's normals are its own, so padding changes none of them.
        A batch of 1 is not padded: fits evaluate their photos one by one
        anyway.
        """
        batch = tf.shape(shape)[0]
        padded = tf.where(batch > 1, (batch + 7) // 8 * 8, batch)
        shape = tf.pad(shape, [[0, padded - batch], [0, 0], [0, 0]])
        return self._xla_normals([shape], [])[:batch]

    def landmarks(self, coeff):
        """The 68 projected landmarks alone, without the rest of the mesh.

        The same formulas as `Reconstruction_Block`'s `landmark_p` (shape,
        pose, projection), evaluated on the 68 landmark vertices only: about
        500 times less work than the whole mesh, for callers that need no
        mesh (video extraction). Sets no attributes.

        Args:
          coeff: [B, L] float32 tensor or array, L = 257, 258 or 239 (static).

        Returns:
          [B, 68, 2] float32 landmarks, pixels of the 224x224 crop (x right,
          y down).

        Raises:
          ValueError: coeff is not [B, L] with an accepted static L.
        """
        coeff = tf.cast(tf.convert_to_tensor(coeff), tf.float32)
        model = self._model_tensors()
        id_coeff, ex_coeff, _, angles, _, translation = split_coeff(coeff)
        shape = compute_shape(id_coeff, ex_coeff, model.keypoint_shape)
        posed = rotate(shape, compute_rotation(angles)) + translation[:, None, :]
        return project_points(posed)
