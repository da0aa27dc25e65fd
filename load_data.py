"""Loading, checking and converting the assets the reconstruction needs.

The licensed assets (the Basel Face Model 2009, Guo et al.'s expression basis
and the authors' frozen network) are never shipped: a user brings them. This
module finds them (paths resolved from this file, never from the working
directory), checks them, converts BFM09 into the release's front-face model
(pipeline.md section 2) and reads images, landmarks and the network graph.

Every problem with an asset raises `AssetError` with a one-line message that
names the file, says what is wrong and where a user gets the file; the same
wording is used by `check_assets`, whose report backs `python demo.py --check`.
"""
import dataclasses
import hashlib
import os
import pathlib
import struct
import warnings
import zlib

import numpy as np
import scipy.io

from image_io import read_image, read_landmarks, write_atomically

REPO_ROOT = pathlib.Path(__file__).resolve().parent
BFM_DIR = REPO_ROOT / "BFM"
MODEL_PATH = REPO_ROOT / "network" / "FaceReconModel.pb"

FRONT_MODEL_NAME = "BFM_model_front.mat"
BFM09_NAME = "01_MorphableModel.mat"
EXP_PCA_NAME = "Exp_Pca.bin"
STD_EXP_NAME = "std_exp.txt"
EXP_IDX_NAME = "BFM_exp_idx.mat"
FRONT_IDX_NAME = "BFM_front_idx.mat"
INFO_NAME = "facemodel_info.mat"
LM3D_NAME = "similarity_Lm3D_all.mat"
SELECT_ID_NAME = "select_vertex_id.mat"

# Numbers of basis columns kept by the release (pipeline.md section 2).
N_ID = 80
N_EXP = 64
N_TEX = 80
N_LANDMARKS = 68
# Raw BFM09 positions are micrometres; the front model works in decimetres.
MICROMETRES_PER_DECIMETRE = 1e5

SOURCE_BFM09 = ("the University of Basel's Basel Face Model 2009 registration page, "
                "https://faces.dmi.unibas.ch/bfm/main.php?nav=1-1-0&id=details")
SOURCE_EXP_PCA = ("the CoarseData download of Guo et al.'s 3DFace repository "
                  "(https://github.com/Juyong/3DFace; Guo et al., \"CNN-based Real-time Dense "
                  "Face Reconstruction with Inverse-rendered Photo-realistic Face Images\")")
SOURCE_INDEX = ("the release's repository, https://github.com/microsoft/Deep3DFaceReconstruction "
                "(folder BFM/)")
SOURCE_NETWORK = ("the FaceReconModel.pb link in the README of "
                  "https://github.com/microsoft/Deep3DFaceReconstruction (put it in network/)")
SOURCE_FRONT_MODEL = ("load_data.transferBFM09(), which builds it from 01_MorphableModel.mat, "
                      "Exp_Pca.bin and the index files")

# SHA-256 of the public index files as the release ships them. A mismatch is
# reported as a warning (`AssetEntry.verified` is False), never as a blocking
# problem: the files are checked for format and shape anyway, and tests use
# synthetic index files of their own.
KNOWN_SHA256 = {
    EXP_IDX_NAME: "62752a2cab3eea148569fb07e367e03535b4ee04aa71ea1a9aed36486d26c612",
    FRONT_IDX_NAME: "7d285dd018563113496127df9c364800183172adb4d3e802f726085dab66b087",
    INFO_NAME: "529398f76619ae7e22f43c25dd60a2473bcc2bcc8c894fd9c613c68624ce1c04",
    SELECT_ID_NAME: "6877a7d634330f25bf1e81bc062b6507ee53ea183838e471fa21b613048fa36b",
    LM3D_NAME: "53b83ce6e35c50ddc3e97603650cef4970320c157e75c241c844f29c1dcba65a",
    STD_EXP_NAME: "4abc20f1cad2471272637d366b511f1a44c2befeeb1353b7fff392ef72ed1203",
}

FRONT_MODEL_KEYS = ("meanshape", "meantex", "idBase", "exBase", "texBase", "tri", "point_buf",
                    "tri_mask2", "keypoints", "frontmask2_idx", "skinmask")
INFO_KEYS = ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx", "skinmask")
BFM09_KEYS = ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV")


# --------------------------------------------------------------------------- errors


def display_path(path):
    """Returns `path` relative to the repository root when it lies inside it, else absolute."""
    path = pathlib.Path(path)
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def format_problem(path, problem, source=None):
    """Formats one asset problem as the single line used everywhere.

    Args:
      path: the asset's path.
      problem: what is wrong, e.g. "missing" or "variable 'idBase' has shape ...".
      source: where a user gets the file, or None.

    Returns:
      "PATH: problem (get it from: SOURCE)" (without the parenthesis when
      `source` is None).
    """
    line = f"{display_path(path)}: {problem}"
    if source:
        line += f" (get it from: {source})"
    return line


class AssetError(RuntimeError):
    """An asset is missing, unreadable or has the wrong content.

    The message is one line: the file, what is wrong, and where to get it.
    Attributes `path`, `problem` and `source` hold the parts (None when the
    error summarises several problems).
    """

    def __init__(self, message, path=None, problem=None, source=None):
        super().__init__(message)
        self.path = None if path is None else pathlib.Path(path)
        self.problem = problem
        self.source = source

    @classmethod
    def about(cls, path, problem, source=None):
        """Builds the error for one file with the standard wording."""
        return cls(format_problem(path, problem, source), path=path, problem=problem,
                   source=source)


# ---------------------------------------------------------------- file utilities


def _require_file(path, source):
    path = pathlib.Path(path)
    if not path.exists():
        raise AssetError.about(path, "missing", source)
    if not path.is_file():
        raise AssetError.about(path, "is not a regular file", source)
    if not os.access(path, os.R_OK):
        raise AssetError.about(path, "is not readable (permissions)", source)
    return path


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_mat_container(path, source):
    """Checks that `path` is a complete MATLAB v5 file, without reading its data.

    Walks the top-level data elements (8-byte tag: type, byte count) and
    checks that each one ends inside the file, which catches truncation even
    where `scipy.io.whosmat` would not look.

    Raises:
      AssetError: missing, unreadable, not a v5 .mat file, v7.3 (HDF5) or truncated.
    """
    path = _require_file(path, source)
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
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})", source)
    return path


def _load_mat(path, names, source):
    """Loads the named variables of a v5 .mat file, checking each is present.

    Returns:
      The dict `scipy.io.loadmat` returns (with only `names` loaded).

    Raises:
      AssetError: the file is missing, unreadable, truncated or lacks a variable.
    """
    path = _check_mat_container(path, source)
    try:
        data = scipy.io.loadmat(str(path), variable_names=list(names))
    except (ValueError, TypeError, OSError, EOFError, zlib.error, NotImplementedError,
            scipy.io.matlab.MatReadError) as error:
        raise AssetError.about(path, f"cannot be read as a .mat file ({type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else ''})", source)
    for name in names:
        if name not in data:
            raise AssetError.about(path, f"variable '{name}' is missing", source)
        if not isinstance(data[name], np.ndarray) or data[name].dtype.kind not in "biuf":
            raise AssetError.about(path, f"variable '{name}' is not a numeric array", source)
    return data


def _expect_shape(path, name, array, expected, source):
    if tuple(array.shape) != tuple(expected):
        raise AssetError.about(path, f"variable '{name}' has shape {tuple(array.shape)}, "
                               f"expected {tuple(expected)}", source)


def _expect_finite(path, name, array, source):
    if not np.all(np.isfinite(array)):
        raise AssetError.about(path, f"variable '{name}' holds NaN or infinite values", source)


def _expect_index(path, name, array, upper, source):
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
    """Checks a front-face model dict against pipeline.md section 2.6.

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
        "meantex": (1, n3), "idBase": (n3, N_ID), "exBase": (n3, N_EXP), "texBase": (n3, N_TEX),
        "point_buf": (n, 8), "keypoints": (1, N_LANDMARKS), "skinmask": (1, n),
    }
    for name, shape in expected.items():
        _expect_shape(path, name, model[name], shape, source)
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
        _expect_finite(path, name, model[name], source)
    for name in ("tri", "tri_mask2", "keypoints", "frontmask2_idx"):
        _expect_index(path, name, model[name], n, source)
    _expect_index(path, "point_buf", model["point_buf"], n_tri + 1, source)


def load_front_model(path=BFM_DIR / FRONT_MODEL_NAME):
    """Loads and validates the front-face model `BFM_model_front.mat`.

    Args:
      path: the .mat file written by `transferBFM09`.

    Returns:
      The dict `scipy.io.loadmat` returns, with (N vertices, F triangles)
        meanshape [1,3N] (decimetres), meantex [1,3N] (RGB 0-255),
        idBase [3N,80], exBase [3N,64], texBase [3N,80], tri [F,3] (1-based),
        point_buf [N,8] (1-based triangle ids, F+1 = padding), tri_mask2 [F',3],
        keypoints [1,68] (1-based), frontmask2_idx [M,1], skinmask [1,N].

    Raises:
      AssetError: the file is missing, unreadable, or a variable is missing or
        has the wrong shape.
    """
    path = pathlib.Path(path)
    model = _load_mat(path, FRONT_MODEL_KEYS, SOURCE_FRONT_MODEL)
    validate_front_model(model, path)
    return model


def load_lm3d(bfm_dir=BFM_DIR):
    """Loads the 5 standard 3D landmarks of the mean face (pipeline.md 5.1).

    Args:
      bfm_dir: folder holding `similarity_Lm3D_all.mat`.

    Returns:
      [5,3] float32: eye A (mean of rows 36, 39), eye B (mean of rows 42, 45),
      nose tip (row 30), mouth corner A (row 48), mouth corner B (row 54) of the
      68 mean-face landmarks, decimetres.

    Raises:
      AssetError: the file is missing, unreadable or `lm` is not [68,3] finite.
    """
    path = pathlib.Path(bfm_dir) / LM3D_NAME
    lm = _load_mat(path, ["lm"], SOURCE_INDEX)["lm"]
    _expect_shape(path, "lm", lm, (N_LANDMARKS, 3), SOURCE_INDEX)
    _expect_finite(path, "lm", lm, SOURCE_INDEX)
    lm = lm.astype(np.float32, copy=False)
    return np.stack([
        np.mean(lm[[36, 39]], axis=0),
        np.mean(lm[[42, 45]], axis=0),
        lm[30],
        lm[48],
        lm[54],
    ], axis=0)


# ----------------------------------------------------------------- index files


def _read_index_files(bfm_dir):
    """Reads and cross-checks BFM_exp_idx.mat, BFM_front_idx.mat and facemodel_info.mat.

    Returns:
      (trim_index, front_index, info): 0-based int64 arrays [V_exp] (expression
      vertex -> BFM09 vertex) and [N] (front vertex -> expression vertex), and
      the facemodel_info dict (variables as stored).
    """
    bfm_dir = pathlib.Path(bfm_dir)
    exp_idx_path = bfm_dir / EXP_IDX_NAME
    trim = _load_mat(exp_idx_path, ["trimIndex"], SOURCE_INDEX)["trimIndex"]
    if trim.ndim != 2 or trim.shape[1] != 1:
        raise AssetError.about(exp_idx_path, f"variable 'trimIndex' has shape {trim.shape}, "
                               "expected (V_exp, 1)", SOURCE_INDEX)
    _expect_index(exp_idx_path, "trimIndex", trim, np.iinfo(np.int64).max, SOURCE_INDEX)
    trim_index = trim.ravel().astype(np.int64) - 1

    front_idx_path = bfm_dir / FRONT_IDX_NAME
    idx = _load_mat(front_idx_path, ["idx"], SOURCE_INDEX)["idx"]
    if idx.ndim != 2 or idx.shape[1] != 1:
        raise AssetError.about(front_idx_path, f"variable 'idx' has shape {idx.shape}, "
                               "expected (N, 1)", SOURCE_INDEX)
    _expect_index(front_idx_path, "idx", idx, trim_index.size, SOURCE_INDEX)
    front_index = idx.ravel().astype(np.int64) - 1

    info_path = bfm_dir / INFO_NAME
    info = _load_mat(info_path, INFO_KEYS, SOURCE_INDEX)
    n = front_index.size
    _expect_shape(info_path, "point_buf", info["point_buf"], (n, 8), SOURCE_INDEX)
    _expect_shape(info_path, "keypoints", info["keypoints"], (1, N_LANDMARKS), SOURCE_INDEX)
    _expect_shape(info_path, "skinmask", info["skinmask"], (1, n), SOURCE_INDEX)
    for name in ("tri", "tri_mask2"):
        if info[name].ndim != 2 or info[name].shape[1] != 3:
            raise AssetError.about(info_path, f"variable '{name}' has shape {info[name].shape}, "
                                   "expected (F, 3)", SOURCE_INDEX)
        _expect_index(info_path, name, info[name], n, SOURCE_INDEX)
    if info["frontmask2_idx"].ndim != 2 or info["frontmask2_idx"].shape[1] != 1:
        raise AssetError.about(info_path, "variable 'frontmask2_idx' has shape "
                               f"{info['frontmask2_idx'].shape}, expected (M, 1)", SOURCE_INDEX)
    _expect_index(info_path, "frontmask2_idx", info["frontmask2_idx"], n, SOURCE_INDEX)
    _expect_index(info_path, "keypoints", info["keypoints"], n, SOURCE_INDEX)
    _expect_index(info_path, "point_buf", info["point_buf"], info["tri"].shape[0] + 1,
                  SOURCE_INDEX)
    return trim_index, front_index, info


def _read_std_exp(path):
    """Reads std_exp.txt: whitespace-separated expression standard deviations.

    Returns:
      [K] float64.
    """
    path = _require_file(path, SOURCE_INDEX)
    try:
        with open(path, "r", encoding="ascii") as stream:
            values = np.array(stream.read().split(), dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as error:
        raise AssetError.about(path, f"is not a list of numbers ({type(error).__name__})",
                               SOURCE_INDEX)
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})", SOURCE_INDEX)
    if values.size < N_EXP:
        raise AssetError.about(path, f"holds {values.size} standard deviations, expected at "
                               f"least {N_EXP}", SOURCE_INDEX)
    if not np.all(np.isfinite(values)):
        raise AssetError.about(path, "holds NaN or infinite values", SOURCE_INDEX)
    return values


def _inspect_exp_pca(path, n_vertices=None):
    """Reads the header of Exp_Pca.bin and checks the file size against it.

    Args:
      path: the file.
      n_vertices: expected number of expression vertices (len(trimIndex)), or
        None to infer it from the size.

    Returns:
      (n_exp, n_vertices).
    """
    path = _require_file(path, SOURCE_EXP_PCA)
    size = path.stat().st_size
    if size < 4:
        raise AssetError.about(path, f"truncated: {size} bytes", SOURCE_EXP_PCA)
    try:
        n_exp = int(np.fromfile(path, dtype="<i4", count=1)[0])
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               SOURCE_EXP_PCA)
    if n_exp < N_EXP or n_exp > 100000:
        raise AssetError.about(path, f"declares {n_exp} expression bases, expected at least "
                               f"{N_EXP}", SOURCE_EXP_PCA)
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


def _read_exp_bases(path, n_exp, n_vertices, n_bases, rows=None):
    """Reads the first `n_bases` stored expression bases, optionally only some rows.

    Returns:
      [len(rows) or 3V, n_bases] float32 (basis j in column j).
    """
    offset = 4 + 4 * 3 * n_vertices     # skip n_exp and expMU
    flat = np.fromfile(path, dtype="<f4", count=n_bases * 3 * n_vertices, offset=offset)
    if flat.size != n_bases * 3 * n_vertices:
        raise AssetError.about(path, "truncated while reading the expression bases",
                               SOURCE_EXP_PCA)
    stored = flat.reshape(n_bases, 3 * n_vertices)
    if rows is not None:
        stored = stored[:, rows]
    return stored.T


def LoadExpBasis(bfm_dir=BFM_DIR):
    """Loads Guo et al.'s expression basis and its standard deviations.

    Reads `Exp_Pca.bin` (int32 n_exp, float32 expMU [3V], float32 expPC stored
    basis after basis; expMU is read past and not returned, as in the release)
    and `std_exp.txt`.

    Args:
      bfm_dir: folder holding both files.

    Returns:
      expPC: [3V, n_exp] float32, one basis per column, XYZ interleaved per
        vertex, micrometres (V = 53215 for the real file, taken from its size).
      expEV: [n_exp] float64, the standard deviation of each basis.

    Raises:
      AssetError: a file is missing, truncated or the counts disagree.
    """
    bfm_dir = pathlib.Path(bfm_dir)
    path = bfm_dir / EXP_PCA_NAME
    n_exp, n_vertices = _inspect_exp_pca(path)
    exp_pc = _read_exp_bases(path, n_exp, n_vertices, n_exp)
    std_path = bfm_dir / STD_EXP_NAME
    exp_ev = _read_std_exp(std_path)
    if exp_ev.size != n_exp:
        raise AssetError.about(std_path, f"holds {exp_ev.size} standard deviations, but "
                               f"{EXP_PCA_NAME} has {n_exp} bases", SOURCE_INDEX)
    return exp_pc, exp_ev


# --------------------------------------------------------------- BFM09 model


def _inspect_bfm09(path):
    """Checks 01_MorphableModel.mat's variables and shapes without loading its data.

    Returns:
      (n_vertices, n_shape_bases, n_texture_bases).
    """
    path = _check_mat_container(path, SOURCE_BFM09)
    try:
        listing = scipy.io.whosmat(str(path))
    except (ValueError, TypeError, OSError, EOFError, zlib.error,
            scipy.io.matlab.MatReadError) as error:
        raise AssetError.about(path, f"cannot be read as a .mat file ({type(error).__name__})",
                               SOURCE_BFM09)
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
    for kind, minimum in (("shape", N_ID), ("tex", N_TEX)):
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


def _vertex_rows(vertex_ids):
    """Rows (XYZ interleaved) of the given 0-based vertices: [3 len(vertex_ids)]."""
    return (3 * np.asarray(vertex_ids, dtype=np.int64)[:, None] + np.arange(3)).ravel()


def _conversion_inputs(bfm_dir):
    bfm_dir = pathlib.Path(bfm_dir)
    return [bfm_dir / name for name in (BFM09_NAME, EXP_PCA_NAME, STD_EXP_NAME, EXP_IDX_NAME,
                                        FRONT_IDX_NAME, INFO_NAME)]


def front_model_is_current(bfm_dir=BFM_DIR):
    """Whether transferBFM09 has nothing to do.

    True when BFM_model_front.mat exists and either is newer than every
    conversion input, or some input is missing (it cannot be rebuilt, e.g. the
    raw BFM09 files were removed after converting; the existing file is kept).
    """
    output = pathlib.Path(bfm_dir) / FRONT_MODEL_NAME
    if not output.is_file():
        return False
    inputs = _conversion_inputs(bfm_dir)
    if not all(p.exists() for p in inputs):
        return True
    out_time = output.stat().st_mtime_ns
    return all(out_time > p.stat().st_mtime_ns for p in inputs)


def transferBFM09(bfm_dir=BFM_DIR, force=False):
    """Converts BFM09 and the expression basis into the front-face model.

    Implements pipeline.md section 2: identity and albedo bases are the PCA
    components scaled by their standard deviations (a per-column scale), the
    expression basis likewise with std_exp.txt; positions go from micrometres
    to decimetres; the rows of the 35709 front vertices (for the real files)
    are kept. Rows are selected before scaling, which gives the same numbers
    as the release (elementwise products) at a fraction of the cost. Vertex and
    component counts come from the files and are checked against each other.

    The output is written atomically (a temporary file in `bfm_dir`, then
    renamed) and the conversion is skipped when the output exists and is newer
    than every input, or when some input is missing (the raw files may be
    removed after converting); see `front_model_is_current`.

    Args:
      bfm_dir: folder with 01_MorphableModel.mat, Exp_Pca.bin, std_exp.txt,
        BFM_exp_idx.mat, BFM_front_idx.mat and facemodel_info.mat; the output
        BFM_model_front.mat is written there.
      force: convert even when the output is up to date.

    Returns:
      The path of BFM_model_front.mat.

    Raises:
      AssetError: an input is missing, unreadable, truncated, or its shapes do
        not match the other inputs.
    """
    bfm_dir = pathlib.Path(bfm_dir)
    output = bfm_dir / FRONT_MODEL_NAME
    if not force and front_model_is_current(bfm_dir):
        return output

    trim_index, front_index, info = _read_index_files(bfm_dir)
    n_bfm, n_shape, n_tex = _inspect_bfm09(bfm_dir / BFM09_NAME)
    bfm_path = bfm_dir / BFM09_NAME
    if trim_index.max() >= n_bfm:
        raise AssetError.about(bfm_dir / EXP_IDX_NAME, f"variable 'trimIndex' refers to vertex "
                               f"{trim_index.max() + 1}, but {BFM09_NAME} has {n_bfm} vertices",
                               SOURCE_INDEX)
    exp_path = bfm_dir / EXP_PCA_NAME
    n_exp, n_exp_vertices = _inspect_exp_pca(exp_path, n_vertices=trim_index.size)
    std_path = bfm_dir / STD_EXP_NAME
    std_exp = _read_std_exp(std_path)
    if std_exp.size != n_exp:
        raise AssetError.about(std_path, f"holds {std_exp.size} standard deviations, but "
                               f"{EXP_PCA_NAME} has {n_exp} bases", SOURCE_INDEX)

    shape_vertices = trim_index[front_index]      # front vertex -> BFM09 vertex
    shape_rows = _vertex_rows(shape_vertices)
    exp_rows = _vertex_rows(front_index)

    # Expression: basis after basis on disk; read the first 64, keep the front rows.
    ex_base = _read_exp_bases(exp_path, n_exp, n_exp_vertices, N_EXP, exp_rows)
    ex_base = ((ex_base * std_exp[:N_EXP]) / MICROMETRES_PER_DECIMETRE).astype(np.float32)

    raw = _load_mat(bfm_path, BFM09_KEYS, SOURCE_BFM09)
    shape_ev = raw["shapeEV"].ravel()[:N_ID]
    tex_ev = raw["texEV"].ravel()[:N_TEX]
    id_base = raw["shapePC"][shape_rows, :N_ID]
    id_base = ((id_base * shape_ev) / MICROMETRES_PER_DECIMETRE).astype(np.float32)
    tex_base = (raw["texPC"][shape_rows, :N_TEX] * tex_ev).astype(np.float32)
    meanshape = (raw["shapeMU"].ravel()[shape_rows] / MICROMETRES_PER_DECIMETRE)
    meantex = raw["texMU"].ravel()[shape_rows]
    del raw
    for name, value in (("idBase", id_base), ("texBase", tex_base), ("exBase", ex_base),
                        ("meanshape", meanshape), ("meantex", meantex)):
        if not np.all(np.isfinite(value)):
            source_path = exp_path if name == "exBase" else bfm_path
            raise AssetError.about(source_path, f"gives NaN or infinite values in '{name}'",
                                   SOURCE_EXP_PCA if name == "exBase" else SOURCE_BFM09)

    model = {
        "meanshape": meanshape.reshape(1, -1).astype(np.float32),
        "meantex": meantex.reshape(1, -1).astype(np.float32),
        "idBase": id_base,
        "exBase": ex_base,
        "texBase": tex_base,
    }
    for name in INFO_KEYS:
        model[name] = info[name]
    validate_front_model(model, output)
    write_atomically(output, lambda stream: scipy.io.savemat(stream, model))
    return output


# ------------------------------------------------------------- images, meshes


def load_img(img_path, lm_path):
    """Loads an image and its 5 landmarks (the release's signature).

    Args:
      img_path: any image file Pillow reads (see `image_io.read_image`).
      lm_path: text file of 5 lines "x y" (pixels, x right, y down), in the
        order left eye, right eye, nose tip, left mouth corner, right mouth corner.

    Returns:
      (image, landmarks): an RGB `PIL.Image.Image` and [5,2] float64.

    Raises:
      image_io.InputError (a ValueError): a missing or unreadable file, or a
        landmark file that is not 5 rows of 2 finite numbers.
    """
    return read_image(img_path), read_landmarks(lm_path)


def save_obj(path, v, f, c):
    """Writes a coloured triangle mesh as OBJ (pipeline.md section 6).

    One "v x y z r g b" line per vertex ('%f' formatting, as the release),
    a blank line, then one "f i j k" line per triangle. The file is built as a
    single formatted string (no Python loop per line) and written atomically.

    Args:
      path: output file.
      v: [N,3] vertex positions.
      f: [F,3] triangles, 1-based vertex indices (as the model's `tri`).
      c: [N,3] vertex colours, written as given (the demo passes
        clip(face_color, 0, 255) / 255).

    Raises:
      ValueError: wrong shapes, non-integer or out-of-range indices.
    """
    v = np.asarray(v)
    c = np.asarray(c)
    f = np.asarray(f)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"v must be [N,3], got {v.shape}")
    if c.shape != v.shape:
        raise ValueError(f"c must be [N,3] like v {v.shape}, got {c.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"f must be [F,3], got {f.shape}")
    if f.size:
        if f.dtype.kind == "f" and not np.all(f == np.round(f)):
            raise ValueError("f must hold integer vertex indices")
        if f.min() < 1 or f.max() > v.shape[0]:
            raise ValueError(f"f must hold 1-based indices in [1, {v.shape[0]}], got "
                             f"[{f.min()}, {f.max()}]")
    vertex_lines = format_float_rows("v", np.concatenate([v, c], axis=1))
    write_atomically(path, vertex_lines + b"\n" + _face_lines(f.astype(np.int64)))


_DIGIT_PLANES = np.array([list(f"{i:03d}") for i in range(1000)], "S1").view(np.uint8).T.copy()


def format_float_rows(prefix, values):
    """Formats [R,K] numbers as R lines "prefix x1 ... xK", each as "%f" would.

    Byte for byte the text of `("prefix" + " %f" * K + "\n") % row` for every
    row, built with NumPy instead of one Python format per number (about
    three times faster for a 35k-vertex mesh): each value becomes a fixed-width
    field of bytes (separator, sign, integer digits, point, 6 decimals, with
    zeros where "%f" prints nothing), and the zeros are dropped at the end.

    Args:
      prefix: one character starting each line ("v").
      values: [R, K] numbers. Non-finite values or magnitudes of 1e9 or more
        are formatted by Python instead.

    Returns:
      bytes: R lines, each ending with a newline.
    """
    # A float32 value times 1e6 is exact in float64 (24 + 14 significant
    # bits), so rint then rounds exactly as printf does (ties to even).
    exact_product = np.asarray(values).dtype in (np.float32, np.float16)
    values = np.asarray(values, dtype=np.float64)
    rows, cols = values.shape
    magnitude = np.abs(values)
    if rows == 0 or not np.all(magnitude < 1e9):  # Also false for NaN and infinities.
        line = prefix + " %f" * cols + "\n"
        return ((line * rows) % tuple(values.ravel().tolist())).encode("ascii")
    scaled = magnitude * 1e6
    micro = np.rint(scaled)
    # Where the product is too close to a half for its rounding error, ask
    # printf itself (correct rounding of the exact binary value).
    if not exact_product:
        near_half = np.abs(scaled - micro) >= 0.5 - 5e-16 * scaled   # 5e-16: over 2 ulps.
        for i in np.flatnonzero(near_half):
            micro.flat[i] = int(("%f" % magnitude.flat[i]).replace(".", ""))
    micro = micro.astype(np.int64)
    whole = micro // 1000000
    fraction = (micro - whole * 1000000).astype(np.int32)
    fraction_high = fraction // 1000
    n_int = len(str(int(whole.max())))
    # Byte planes, one per position of a field: [separator, prefix space, sign,
    # n_int digits, ".", 6 decimals, newline]; a zero byte means "nothing".
    planes = np.zeros((n_int + 11, rows, cols), np.uint8)
    planes[0, :, 0] = ord(prefix)
    planes[0, :, 1:] = ord(" ")
    planes[1, :, 0] = ord(" ")
    planes[2] = np.signbit(values) * np.uint8(ord("-"))
    rest = whole
    for place in range(n_int - 1, -1, -1):
        digit = (rest % 10).astype(np.uint8) + np.uint8(ord("0"))
        leading = whole < 10 ** (n_int - 1 - place)
        planes[3 + place] = digit if place == n_int - 1 else np.where(leading, 0, digit)
        rest = rest // 10
    planes[3 + n_int] = ord(".")
    planes[4 + n_int:7 + n_int] = np.take(_DIGIT_PLANES, fraction_high, axis=1)
    planes[7 + n_int:10 + n_int] = np.take(_DIGIT_PLANES, fraction - fraction_high * 1000, axis=1)
    planes[10 + n_int, :, -1] = ord("\n")
    text = np.ascontiguousarray(planes.transpose(1, 2, 0)).ravel()
    return text[text != 0].tobytes()


_face_cache = {}


def _face_lines(faces):
    """The "f i j k" block. A folder's meshes share one topology: format it once.

    The last topology is kept with a copy of its indices; a call with equal
    indices (one comparison, no hashing) reuses its text.
    """
    cached = _face_cache.get("last")   # (indices, text), replaced as one.
    if cached is None or not np.array_equal(cached[0], faces):
        text = (("f %d %d %d\n" * faces.shape[0]) % tuple(faces.ravel().tolist())).encode("ascii")
        cached = _face_cache["last"] = (faces.copy(), text)
    return cached[1]


# --------------------------------------------------------------------- network


def load_graph(model_path=MODEL_PATH):
    """Reads the frozen R-Net graph.

    Args:
      model_path: the frozen GraphDef (.pb).

    Returns:
      A `tf.compat.v1.GraphDef` with nodes `input_imgs` (the input placeholder,
      [B,224,224,3] BGR 0-255) and `coeff` (the [B,257] or [B,258] output).

    Raises:
      AssetError: the file is missing, does not parse, or lacks those nodes.
    """
    path = _require_file(model_path, SOURCE_NETWORK)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               SOURCE_NETWORK)
    if not data:
        raise AssetError.about(path, "is empty", SOURCE_NETWORK)
    import tensorflow as tf     # lazily: importing TensorFlow takes seconds
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:      # protobuf's DecodeError (its module varies by backend)
        raise AssetError.about(path, f"does not parse as a TensorFlow GraphDef, truncated or "
                               f"not a frozen .pb ({type(error).__name__})", SOURCE_NETWORK)
    names = {node.name for node in graph_def.node}
    for needed in ("input_imgs", "coeff"):
        if needed not in names:
            raise AssetError.about(path, f"has no node named '{needed}' (not the R-Net graph, "
                                   "or truncated)", SOURCE_NETWORK)
    return graph_def


# ---------------------------------------------------------------- asset report


@dataclasses.dataclass
class AssetEntry:
    """One asset in a `check_assets` report.

    Attributes:
      name: file name, e.g. "Exp_Pca.bin".
      path: where it is looked for.
      role: "runtime" (needed to run), "conversion" (needed to build
        BFM_model_front.mat) or "optional" (not needed now).
      present: the file exists.
      ok: it exists and passed the format and shape checks.
      problem: what is wrong (None when ok, or when missing but not needed).
      size: bytes, None when missing.
      source: where a user gets it.
      verified: True when its SHA-256 matches the release's, False when it
        differs (a warning, not a problem), None when there is no known hash
        or it could not be hashed.
      note: extra information (e.g. "will be built by transferBFM09()").
    """
    name: str
    path: pathlib.Path
    role: str
    present: bool
    ok: bool
    problem: object
    size: object
    source: str
    verified: object = None
    note: object = None

    @property
    def blocking(self):
        """True when this entry stops the pipeline from running."""
        return self.role != "optional" and not self.ok and self.problem is not None


class AssetReport:
    """The result of `check_assets`.

    Attributes:
      entries: list of `AssetEntry`, one per asset.
      ok: True when everything needed to run is present and valid (the front
        model may still have to be built by `transferBFM09`, see
        `needs_conversion`).
      needs_conversion: BFM_model_front.mat is missing or older than its inputs
        and will be built from the raw files.
      problems: blocking problems, one line each: "PATH: what is wrong (get it
        from: WHERE)".
      warnings: non-blocking notes (hash mismatches, broken optional files).
    """

    def __init__(self, entries, needs_conversion):
        self.entries = list(entries)
        self.needs_conversion = needs_conversion
        self.problems = [format_problem(e.path, e.problem, e.source)
                         for e in self.entries if e.blocking]
        self.warnings = []
        for e in self.entries:
            if e.verified is False:
                self.warnings.append(format_problem(
                    e.path, "SHA-256 differs from the release's copy (a modified or "
                    "synthetic file; its format checks passed)", e.source))
            if e.role == "optional" and e.present and not e.ok and e.problem:
                self.warnings.append(format_problem(e.path, f"{e.problem} (not needed now)",
                                                    e.source))
        self.ok = not self.problems

    def raise_if_failed(self):
        """Raises AssetError with the first problem (and a count of the others) unless ok."""
        if self.ok:
            return
        message = self.problems[0]
        if len(self.problems) > 1:
            message += f" (and {len(self.problems) - 1} more asset problem(s); run " \
                       "`python demo.py --check`)"
        first = next(e for e in self.entries if e.blocking)
        raise AssetError(message, path=first.path, problem=first.problem, source=first.source)

    def __bool__(self):
        return self.ok

    def __str__(self):
        rows = []
        for e in self.entries:
            if e.ok:
                status = "ok"
            elif not e.present:
                status = "missing" if e.blocking else "absent"
            else:
                status = "BAD" if e.blocking else "bad"
            size = "-" if e.size is None else _human_size(e.size)
            sha = {True: "verified", False: "DIFFERS", None: ""}[e.verified]
            detail = e.problem if e.problem else (e.note or "")
            rows.append((status, e.role, display_path(e.path), size, sha, detail))
        header = ("status", "role", "file", "size", "sha256", "detail")
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
        lines = ["  ".join(str(r[i]).ljust(widths[i]) for i in range(5)) + "  " + r[5]
                 for r in [header] + rows]
        lines.insert(1, "-" * (sum(widths) + 2 * 5 + 6))
        if self.problems:
            lines.append("")
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems]
        if self.warnings:
            lines.append("")
            lines.append("Warnings:")
            lines += [f"  {w}" for w in self.warnings]
        lines.append("")
        if self.ok:
            lines.append("All assets needed to run are present and valid" +
                         (" (BFM_model_front.mat will be built by transferBFM09())."
                          if self.needs_conversion else "."))
        else:
            lines.append("Assets are missing or invalid: see the problems above.")
        return "\n".join(lines)


def _human_size(n_bytes):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024.0


def _probe(path, check):
    """Runs `check()`; returns (present, ok, problem, size)."""
    path = pathlib.Path(path)
    present = path.exists()
    size = path.stat().st_size if present and path.is_file() else None
    try:
        check()
    except AssetError as error:
        return present, False, error.problem, size
    return present, True, None, size


def check_assets(bfm_dir=BFM_DIR, model_path=MODEL_PATH):
    """Checks every asset the pipeline uses and says where to get what is missing.

    Checks: presence; .mat container integrity (truncation), variables and
    shapes; Exp_Pca.bin size against its header and BFM_exp_idx.mat;
    std_exp.txt's count; the front model's full validation; the network graph
    (parses, has `input_imgs` and `coeff`: this imports TensorFlow when the
    file exists); SHA-256 of the public index files against the release's
    (a mismatch is a warning, `AssetEntry.verified` False). The 1.2 GB BFM09
    file is checked from its headers only, without loading its data.

    Roles: the network and similarity_Lm3D_all.mat are always needed. When
    BFM_model_front.mat is valid and up to date (`front_model_is_current`),
    the raw BFM09 files and the conversion index files are optional; otherwise
    they are needed to build it (and a missing front model is not itself a
    problem when they are all valid).
    select_vertex_id.mat is optional (the pipeline does not use it).

    Args:
      bfm_dir: the BFM folder.
      model_path: the frozen network.

    Returns:
      An `AssetReport`.
    """
    bfm_dir = pathlib.Path(bfm_dir)
    model_path = pathlib.Path(model_path)

    def hash_state(path, name):
        if name not in KNOWN_SHA256 or not path.is_file():
            return None
        try:
            return _sha256(path) == KNOWN_SHA256[name]
        except OSError:
            return None

    index_state = {}
    trim_holder = {}

    def check_index_trio():
        trim_holder["value"] = _read_index_files(bfm_dir)

    # Index files: check each on its own for a precise message, then together.
    index_checks = {
        EXP_IDX_NAME: lambda: _load_mat(bfm_dir / EXP_IDX_NAME, ["trimIndex"], SOURCE_INDEX),
        FRONT_IDX_NAME: lambda: _load_mat(bfm_dir / FRONT_IDX_NAME, ["idx"], SOURCE_INDEX),
        INFO_NAME: lambda: _load_mat(bfm_dir / INFO_NAME, INFO_KEYS, SOURCE_INDEX),
    }
    for name, check in index_checks.items():
        index_state[name] = _probe(bfm_dir / name, check)
    if all(state[1] for state in index_state.values()):
        # Cross-checks; a failure is attributed to the file the error names.
        try:
            check_index_trio()
        except AssetError as error:
            culprit = error.path.name if error.path is not None else INFO_NAME
            present, _, _, size = index_state[culprit]
            index_state[culprit] = (present, False, error.problem, size)
    trim = trim_holder.get("value")

    std_state = _probe(bfm_dir / STD_EXP_NAME, lambda: _read_std_exp(bfm_dir / STD_EXP_NAME))
    exp_info = {}

    def check_exp():
        n_vertices = trim[0].size if trim is not None else None
        exp_info["value"] = _inspect_exp_pca(bfm_dir / EXP_PCA_NAME, n_vertices)

    exp_state = _probe(bfm_dir / EXP_PCA_NAME, check_exp)
    if exp_state[1] and std_state[1]:
        n_std = _read_std_exp(bfm_dir / STD_EXP_NAME).size
        if n_std != exp_info["value"][0]:
            std_state = (std_state[0], False, f"holds {n_std} standard deviations, but "
                         f"{EXP_PCA_NAME} has {exp_info['value'][0]} bases", std_state[3])

    def check_bfm09():
        n_bfm, _, _ = _inspect_bfm09(bfm_dir / BFM09_NAME)
        if trim is not None and trim[0].max() >= n_bfm:
            raise AssetError.about(bfm_dir / BFM09_NAME, f"has {n_bfm} vertices, but "
                                   f"{EXP_IDX_NAME} refers to vertex {trim[0].max() + 1}",
                                   SOURCE_BFM09)

    bfm_state = _probe(bfm_dir / BFM09_NAME, check_bfm09)

    front_path = bfm_dir / FRONT_MODEL_NAME
    front_state = _probe(front_path, lambda: load_front_model(front_path))
    front_current = front_state[1] and front_model_is_current(bfm_dir)
    conversion_states = {
        BFM09_NAME: (bfm_state, SOURCE_BFM09),
        EXP_PCA_NAME: (exp_state, SOURCE_EXP_PCA),
        STD_EXP_NAME: (std_state, SOURCE_INDEX),
        EXP_IDX_NAME: (index_state[EXP_IDX_NAME], SOURCE_INDEX),
        FRONT_IDX_NAME: (index_state[FRONT_IDX_NAME], SOURCE_INDEX),
        INFO_NAME: (index_state[INFO_NAME], SOURCE_INDEX),
    }
    conversion_ok = all(state[1] for state, _ in conversion_states.values())
    # transferBFM09 runs unless the front model is current: then, and only then,
    # the conversion inputs are not needed.
    conversion_role = "optional" if front_current else "conversion"
    needs_conversion = not front_current and conversion_ok

    entries = []
    present, ok, problem, size = front_state
    note = None
    if ok and not front_current:
        note = "older than its inputs: transferBFM09() will rebuild it" if conversion_ok \
            else None
    if not present:
        if conversion_ok:
            problem, note = None, "missing: will be built by transferBFM09() from the files below"
        else:
            problem = "missing, and the files to build it are not all in place (see below)"
    elif not ok:
        problem = f"{problem}; delete it and rebuild it with load_data.transferBFM09()"
    entries.append(AssetEntry(FRONT_MODEL_NAME, front_path, "runtime", present, ok, problem,
                              size, SOURCE_FRONT_MODEL, None, note))

    lm_path = bfm_dir / LM3D_NAME
    present, ok, problem, size = _probe(lm_path, lambda: load_lm3d(bfm_dir))
    entries.append(AssetEntry(LM3D_NAME, lm_path, "runtime", present, ok, problem, size,
                              SOURCE_INDEX, hash_state(lm_path, LM3D_NAME)))

    present, ok, problem, size = _probe(model_path, lambda: load_graph(model_path))
    entries.append(AssetEntry(model_path.name, model_path, "runtime", present, ok, problem, size,
                              SOURCE_NETWORK))

    for name, ((present, ok, problem, size), source) in conversion_states.items():
        path = bfm_dir / name
        note = None
        if conversion_role == "optional" and not present:
            problem, note = None, "not needed: BFM_model_front.mat is built"
        entries.append(AssetEntry(name, path, conversion_role, present, ok, problem, size, source,
                                  hash_state(path, name), note))

    select_path = bfm_dir / SELECT_ID_NAME
    present, ok, problem, size = _probe(
        select_path, lambda: _load_mat(select_path, ["select_id"], SOURCE_INDEX))
    entries.append(AssetEntry(SELECT_ID_NAME, select_path, "optional", present, ok,
                              problem if present else None, size, SOURCE_INDEX,
                              hash_state(select_path, SELECT_ID_NAME),
                              None if present else "not used by the pipeline"))
    return AssetReport(entries, needs_conversion)
