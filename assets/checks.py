"""Whether an asset file is valid, checked without loading more of it than needed.

.mat containers are walked for truncation before anything reads them, their
variables and shapes checked; Exp_Pca.bin's size is checked against its
header; BFM09's variables are read from its headers only (the file is 1.2
GB); the front model is validated against the shapes of docs/model.md
(#front-model). Every problem raises `assets.catalog.AssetError` with the
catalog's wording: the file, what is wrong, where to get it.
"""
import os
import pathlib
import struct
import zlib

import numpy as np
import scipy.io

from assets.catalog import (
    BFM09_KEYS,
    BFM_DIR,
    FRONT_MODEL_KEYS,
    FRONT_MODEL_NAME,
    SOURCE_BFM09,
    SOURCE_EXP_PCA,
    SOURCE_FRONT_MODEL,
    AssetError,
)
from facemodel.coefficients import N_ALBEDO, N_EXPRESSION, N_IDENTITY
from facemodel.keypoints import N_LANDMARKS


def require_file(path, source):
    """Returns `path` when it is a readable regular file; raises AssetError otherwise."""
    path = pathlib.Path(path)
    if not path.exists():
        raise AssetError.about(path, "missing", source)
    if not path.is_file():
        raise AssetError.about(path, "is not a regular file", source)
    if not os.access(path, os.R_OK):
        raise AssetError.about(path, "is not readable (permissions)", source)
    return path


def check_mat_container(path, source):
    """Checks that `path` is a complete MATLAB v5 file, without reading its data.

    Walks the top-level data elements (8-byte tag: type, byte count) and
    checks that each one ends inside the file, which catches truncation even
    where `scipy.io.whosmat` would not look.

    Raises:
      AssetError: missing, unreadable, not a v5 .mat file, v7.3 (HDF5) or truncated.
    """
    path = require_file(path, source)
    size = path.stat().st_size
    try:
        with open(path, "rb") as stream:
            header = stream.read(128)
            if len(header) < 128:
                raise AssetError.about(path, f"truncated: {size} bytes, shorter than a .mat header",
                                       source)
            text = header[:116].decode("latin-1")
            if text.startswith("MATLAB 7.3"):
                raise AssetError.about(path, "is a MATLAB v7.3 (HDF5) file; re-save it in MATLAB "
                                       "with save(..., '-v7')", source)
            endian_mark = header[126:128]
            if not text.startswith("MATLAB") or endian_mark not in (b"IM", b"MI"):
                raise AssetError.about(path, "is not a MATLAB v5 .mat file", source)
            order = "<" if endian_mark == b"IM" else ">"
            position = 128
            n_elements = 0
            while position < size:
                stream.seek(position)
                tag = stream.read(8)
                if len(tag) < 8:
                    raise AssetError.about(path, f"truncated: data element at byte {position} "
                                           f"has an incomplete tag ({size} bytes in all)", source)
                element_type, byte_count = struct.unpack(order + "II", tag)
                if element_type >> 16:      # small data element: 4 bytes of data in the tag
                    position += 8
                else:
                    end = position + 8 + byte_count
                    if end > size:
                        raise AssetError.about(
                            path, f"truncated: a data element needs {end} bytes, the file has "
                            f"{size}", source)
                    position = end
                    if element_type == 14:      # miMATRIX is padded to 8 bytes
                        position += (-byte_count) % 8
                n_elements += 1
            if n_elements == 0:
                raise AssetError.about(path, "holds no variables", source)
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               source) from error
    return path


def load_mat(path, names, source):
    """Loads the named variables of a v5 .mat file, checking each is present.

    Returns:
      The dict `scipy.io.loadmat` returns (with only `names` loaded).

    Raises:
      AssetError: the file is missing, unreadable, truncated or lacks a variable.
    """
    path = check_mat_container(path, source)
    try:
        data = scipy.io.loadmat(str(path), variable_names=list(names))
    except (ValueError, TypeError, OSError, EOFError, zlib.error, NotImplementedError,
            scipy.io.matlab.MatReadError) as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise AssetError.about(path, f"cannot be read as a .mat file ({type(error).__name__}: "
                               f"{first_line})", source) from error
    for name in names:
        if name not in data:
            raise AssetError.about(path, f"variable '{name}' is missing", source)
        if not isinstance(data[name], np.ndarray) or data[name].dtype.kind not in "biuf":
            raise AssetError.about(path, f"variable '{name}' is not a numeric array", source)
    return data


def expect_shape(path, name, array, expected, source):
    if tuple(array.shape) != tuple(expected):
        raise AssetError.about(path, f"variable '{name}' has shape {tuple(array.shape)}, "
                               f"expected {tuple(expected)}", source)


def expect_finite(path, name, array, source):
    if not np.all(np.isfinite(array)):
        raise AssetError.about(path, f"variable '{name}' holds NaN or infinite values", source)


def expect_index(path, name, array, upper, source):
    """Checks 1-based integer-valued indices in [1, upper]."""
    values = np.asarray(array)
    if values.size == 0:
        raise AssetError.about(path, f"variable '{name}' is empty", source)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        raise AssetError.about(path, f"variable '{name}' holds non-integer indices", source)
    low, high = values.min(), values.max()
    if low < 1 or high > upper:
        raise AssetError.about(path, f"variable '{name}' has 1-based indices in [{low:g}, "
                               f"{high:g}], expected within [1, {upper}]", source)

# ------------------------------------------------------------------ front model


def validate_front_model(model, path=BFM_DIR / FRONT_MODEL_NAME):
    """Checks a front-face model dict against docs/model.md (#front-model).

    The vertex count N is taken from `meanshape` ([1, 3N]); every other
    variable must agree with it.

    Args:
      model: dict as `scipy.io.loadmat` returns it.
      path: the file it came from, for messages.

    Raises:
      AssetError: a variable is missing or has the wrong shape or values.
    """
    source = SOURCE_FRONT_MODEL
    for name in FRONT_MODEL_KEYS:
        if name not in model:
            raise AssetError.about(path, f"variable '{name}' is missing", source)
        value = model[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise AssetError.about(path, f"variable '{name}' is not a numeric array", source)
    meanshape = model["meanshape"]
    if meanshape.ndim != 2 or meanshape.shape[0] != 1 or meanshape.shape[1] % 3 or \
            meanshape.shape[1] == 0:
        raise AssetError.about(path, f"variable 'meanshape' has shape {meanshape.shape}, "
                               "expected (1, 3N) with N vertices", source)
    n3 = meanshape.shape[1]
    n = n3 // 3
    n_tri = model["tri"].shape[0] if model["tri"].ndim == 2 else -1
    expected = {
        "meantex": (1, n3), "idBase": (n3, N_IDENTITY), "exBase": (n3, N_EXPRESSION),
        "texBase": (n3, N_ALBEDO),
        "point_buf": (n, 8), "keypoints": (1, N_LANDMARKS), "skinmask": (1, n),
    }
    for name, shape in expected.items():
        expect_shape(path, name, model[name], shape, source)
    for name in ("tri", "tri_mask2"):
        value = model[name]
        if value.ndim != 2 or value.shape[1] != 3 or value.shape[0] == 0:
            raise AssetError.about(path, f"variable '{name}' has shape {value.shape}, "
                                   "expected (F, 3)", source)
    frontmask = model["frontmask2_idx"]
    if frontmask.ndim != 2 or frontmask.shape[1] != 1 or frontmask.shape[0] == 0:
        raise AssetError.about(path, f"variable 'frontmask2_idx' has shape {frontmask.shape}, "
                               "expected (M, 1)", source)
    for name in ("meanshape", "meantex", "idBase", "exBase", "texBase"):
        expect_finite(path, name, model[name], source)
    for name in ("tri", "keypoints", "frontmask2_idx"):
        expect_index(path, name, model[name], n, source)
    # tri_mask2 indexes the frontmask2_idx vertices (the release renders that subset).
    expect_index(path, "tri_mask2", model["tri_mask2"], frontmask.shape[0], source)
    expect_index(path, "point_buf", model["point_buf"], n_tri + 1, source)

# ------------------------------------------------------------ raw model files


def inspect_exp_pca(path, n_vertices=None):
    """Reads the header of Exp_Pca.bin and checks the file size against it.

    Args:
      path: the file.
      n_vertices: expected number of expression vertices (len(trimIndex)), or
        None to infer it from the size.

    Returns:
      (n_exp, n_vertices).
    """
    path = require_file(path, SOURCE_EXP_PCA)
    size = path.stat().st_size
    if size < 4:
        raise AssetError.about(path, f"truncated: {size} bytes", SOURCE_EXP_PCA)
    try:
        n_exp = int(np.fromfile(path, dtype="<i4", count=1)[0])
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               SOURCE_EXP_PCA) from error
    if n_exp < N_EXPRESSION or n_exp > 100000:
        raise AssetError.about(path, f"declares {n_exp} expression bases, expected at least "
                               f"{N_EXPRESSION}", SOURCE_EXP_PCA)
    payload = size - 4
    per_vertex = 3 * 4 * (1 + n_exp)     # XYZ float32 of the mean and of each basis
    if n_vertices is None:
        if payload % per_vertex or payload == 0:
            raise AssetError.about(path, f"has {size} bytes, which is not 4 + 12*V*(1+{n_exp}) "
                                   "for any vertex count V (truncated?)", SOURCE_EXP_PCA)
        n_vertices = payload // per_vertex
    elif payload != per_vertex * n_vertices:
        expected = 4 + per_vertex * n_vertices
        if payload < per_vertex * n_vertices:
            what = "truncated"
        else:
            what = "too long"
        raise AssetError.about(path, f"{what}: {size} bytes, expected {expected} for {n_exp} "
                               f"bases of {n_vertices} vertices (BFM_exp_idx.mat)", SOURCE_EXP_PCA)
    return n_exp, int(n_vertices)

def inspect_bfm09(path):
    """Checks 01_MorphableModel.mat's variables and shapes without loading its data.

    Returns:
      (n_vertices, n_shape_bases, n_texture_bases).
    """
    path = check_mat_container(path, SOURCE_BFM09)
    try:
        listing = scipy.io.whosmat(str(path))
    except (ValueError, TypeError, OSError, EOFError, zlib.error,
            scipy.io.matlab.MatReadError) as error:
        raise AssetError.about(path, f"cannot be read as a .mat file ({type(error).__name__})",
                               SOURCE_BFM09) from error
    shapes = {name: tuple(shape) for name, shape, _ in listing}
    for name in BFM09_KEYS:
        if name not in shapes:
            raise AssetError.about(path, f"variable '{name}' is missing", SOURCE_BFM09)

    def vector_length(name):
        shape = shapes[name]
        if len(shape) != 2 or min(shape) != 1:
            raise AssetError.about(path, f"variable '{name}' has shape {shape}, expected a "
                                   "column vector", SOURCE_BFM09)
        return max(shape)

    n3 = vector_length("shapeMU")
    if n3 % 3 or n3 == 0:
        raise AssetError.about(path, f"variable 'shapeMU' has {n3} values, not 3 per vertex",
                               SOURCE_BFM09)
    counts = {}
    for kind, minimum in (("shape", N_IDENTITY), ("tex", N_ALBEDO)):
        pc_name, ev_name, mu_name = f"{kind}PC", f"{kind}EV", f"{kind}MU"
        if vector_length(mu_name) != n3:
            raise AssetError.about(path, f"variable '{mu_name}' has shape {shapes[mu_name]}, "
                                   f"expected ({n3}, 1)", SOURCE_BFM09)
        pc_shape = shapes[pc_name]
        if len(pc_shape) != 2 or pc_shape[0] != n3:
            raise AssetError.about(path, f"variable '{pc_name}' has shape {pc_shape}, expected "
                                   f"({n3}, K)", SOURCE_BFM09)
        if pc_shape[1] < minimum:
            raise AssetError.about(path, f"variable '{pc_name}' has {pc_shape[1]} components, "
                                   f"at least {minimum} are needed", SOURCE_BFM09)
        if vector_length(ev_name) != pc_shape[1]:
            raise AssetError.about(path, f"variable '{ev_name}' has shape {shapes[ev_name]}, "
                                   f"expected ({pc_shape[1]}, 1) to match '{pc_name}'",
                                   SOURCE_BFM09)
        counts[kind] = pc_shape[1]
    return n3 // 3, counts["shape"], counts["tex"]
