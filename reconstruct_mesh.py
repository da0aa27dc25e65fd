"""NumPy twin of the TensorFlow face decoder (no TensorFlow needed).

`reconstruct(coeff, facemodel)` turns one coefficient vector into the posed
mesh, its albedo, lit colour, normals and 68 landmarks, with the formulas of
docs/model.md#decoder in float32 arithmetic, so its numbers agree with
`face_decoder.Face3D` to float32 precision. Useful to inspect a result
without a TensorFlow session, and as an independent cross-check.
"""
import numpy as np

from facemodel import camera
from facemodel.coefficients import ACCEPTED_LENGTHS, AMBIENT_LIGHT, WHITE_LIGHTING_SIZE, blocks

# The release's names of the blocks (its `Split_coeff`), by this project's names.
_NAMES = {"identity": "id", "expression": "ex", "albedo": "tex", "angles": "angles",
          "lighting": "gamma", "translation": "trans"}


def split_coeff(coeff):
    """Splits one coefficient vector.

    Args:
      coeff: [257], [258] (last value unused) or [239] (white light), or the
        same with a leading dimension of 1.

    Returns:
      A dict of arrays: id [80], ex [64], tex [80], angles [3] (radians),
      gamma [3, 9] (rows R, G, B; white light repeated), trans [3].

    Raises:
      ValueError: wrong length, or more than one vector.
    """
    coeff = np.asarray(coeff)
    if coeff.ndim == 2 and coeff.shape[0] == 1:
        coeff = coeff[0]
    if coeff.ndim != 1 or coeff.shape[0] not in ACCEPTED_LENGTHS:
        raise ValueError("coeff must be one vector of length 257, 258 (first 257 used) or "
                         f"239 (white light), optionally as [1, L]; got shape {coeff.shape}")
    parts = {_NAMES[name]: coeff[part] for name, part in blocks(coeff.shape[0]).items()}
    gamma = parts["gamma"]
    parts["gamma"] = (np.tile(gamma, (3, 1)) if gamma.shape[0] == WHITE_LIGHTING_SIZE
                      else gamma.reshape(3, WHITE_LIGHTING_SIZE))
    return parts


def shape_formation(id_coeff, ex_coeff, facemodel, dtype=np.float32):
    """Unposed shape [N, 3]: mean + bases, minus the centroid of the mean shape."""
    meanshape = np.asarray(facemodel["meanshape"], dtype).reshape(-1)
    id_base = np.asarray(facemodel["idBase"], dtype)
    ex_base = np.asarray(facemodel["exBase"], dtype)
    shape = (id_base @ id_coeff + ex_base @ ex_coeff + meanshape).reshape(-1, 3)
    centroid = meanshape.reshape(-1, 3).astype(np.float64).mean(axis=0).astype(dtype)
    return shape - centroid


def texture_formation(tex_coeff, facemodel, dtype=np.float32):
    """Albedo [N, 3], RGB 0-255."""
    meantex = np.asarray(facemodel["meantex"], dtype).reshape(-1)
    tex_base = np.asarray(facemodel["texBase"], dtype)
    return (tex_base @ tex_coeff + meantex).reshape(-1, 3)


def rotation_matrix(angles):
    """R = Rz @ Ry @ Rx for angles (x, y, z) in radians; points map to p @ R.T."""
    ax, ay, az = angles
    one, zero = np.ones((), angles.dtype), np.zeros((), angles.dtype)
    rx = np.array([[one, zero, zero],
                   [zero, np.cos(ax), -np.sin(ax)],
                   [zero, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), zero, np.sin(ay)],
                   [zero, one, zero],
                   [-np.sin(ay), zero, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), zero],
                   [np.sin(az), np.cos(az), zero],
                   [zero, zero, one]])
    return rz @ ry @ rx


def _normalize(vectors):
    """Unit vectors along the last axis; zero vectors stay zero."""
    squared = np.sum(vectors * vectors, axis=-1, keepdims=True)
    return vectors / np.sqrt(np.maximum(squared, vectors.dtype.type(1e-12)))


def vertex_normals(shape, facemodel):
    """Vertex normals [N, 3] of an (unrotated) shape [N, 3].

    Each triangle's normal is normalize(cross(v1 - v2, v2 - v3)); a vertex
    normal is the normalized sum over its `point_buf` triangles, where the
    padding id F + 1 stands for a zero normal.
    """
    tri = np.asarray(facemodel["tri"]).astype(np.int64) - 1
    point_buf = np.asarray(facemodel["point_buf"]).astype(np.int64) - 1
    v1, v2, v3 = shape[tri[:, 0]], shape[tri[:, 1]], shape[tri[:, 2]]
    tri_normals = _normalize(np.cross(v1 - v2, v2 - v3))
    tri_normals = np.vstack([tri_normals, np.zeros((1, 3), shape.dtype)])
    return _normalize(tri_normals[point_buf].sum(axis=1))


def project(points):
    """Image coordinates [K, 2] (x right, y down) of posed points [K, 3]."""
    depth = camera.CAMERA_DISTANCE - points[:, 2]
    u = camera.FOCAL * points[:, 0] / depth + camera.CENTER
    v = camera.FOCAL * points[:, 1] / depth + camera.CENTER
    return np.stack([u, camera.LAST_ROW - v], axis=1)


def sh_lighting(texture, normals, gamma):
    """Lit colour [N, 3] = per channel (Y(n) . gamma_c) * albedo_c.

    Args:
      texture: [N, 3] albedo. normals: [N, 3] rotated unit normals.
      gamma: [3, 9] SH coefficients per channel (0.8 is added to the first).
    """
    dtype = texture.dtype.type
    pi = np.pi
    a0, a1, a2 = pi, 2 * pi / np.sqrt(3.0), 2 * pi / np.sqrt(8.0)
    c0 = 1 / np.sqrt(4 * pi)
    c1 = np.sqrt(3.0) / np.sqrt(4 * pi)
    c2 = 3 * np.sqrt(5.0) / np.sqrt(12 * pi)
    k0, k1, k2 = dtype(a0 * c0), dtype(a1 * c1), dtype(a2 * c2)
    nx, ny, nz = normals[:, 0], normals[:, 1], normals[:, 2]
    basis = np.stack([
        np.full_like(nx, k0),
        -k1 * ny,
        k1 * nz,
        -k1 * nx,
        k2 * nx * ny,
        -k2 * ny * nz,
        k2 * dtype(0.5 / np.sqrt(3.0)) * (3 * nz ** 2 - 1),
        -k2 * nx * nz,
        k2 * dtype(0.5) * (nx ** 2 - ny ** 2),
    ], axis=1)                                              # [N, 9]
    gamma = gamma.copy()
    gamma[:, 0] += dtype(AMBIENT_LIGHT)
    return (basis @ gamma.T) * texture


def reconstruct(coeff, facemodel, dtype=np.float32):
    """Decodes one coefficient vector with NumPy.

    Args:
      coeff: [257], [1, 257], [258] / [1, 258] (first 257 used) or
        [239] / [1, 239] (white light).
      facemodel: dict as `scipy.io.loadmat` returns for BFM_model_front.mat
        (meanshape, idBase, exBase, meantex, texBase, tri, point_buf,
        keypoints; indices 1-based).
      dtype: arithmetic type; float32 reproduces the TensorFlow decoder,
        float64 serves as a precise reference (e.g. finite differences).

    Returns:
      A dict of dtype arrays: face_shape [N, 3] posed vertices (decimetres),
      face_texture [N, 3] albedo, face_color [N, 3] lit colour (not clipped),
      face_norm [N, 3] rotated unit normals, lm_68p [68, 2] landmarks in the
      224x224 crop (x right, y down).

    Raises:
      ValueError: coeff has an unsupported length or shape.
    """
    parts = {k: np.asarray(v, dtype) for k, v in split_coeff(coeff).items()}
    shape = shape_formation(parts["id"], parts["ex"], facemodel, dtype)
    texture = texture_formation(parts["tex"], facemodel, dtype)
    rot = rotation_matrix(parts["angles"]).astype(dtype)
    normals = vertex_normals(shape, facemodel) @ rot.T
    posed = shape @ rot.T + parts["trans"]
    keypoints = np.asarray(facemodel["keypoints"]).astype(np.int64).reshape(-1) - 1
    return {
        "face_shape": posed,
        "face_texture": texture,
        "face_color": sh_lighting(texture, normals, parts["gamma"]),
        "face_norm": normals,
        "lm_68p": project(posed[keypoints]),
    }
