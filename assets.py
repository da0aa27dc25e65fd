"""Where the assets live, where a user gets them, and whether a file is valid.

The licensed assets (the Basel Face Model 2009, Guo et al.'s expression basis
and the authors' frozen network) are never shipped: a user brings them. The
release's public index files (BFM_exp_idx.mat, BFM_front_idx.mat,
facemodel_info.mat, similarity_Lm3D_all.mat, select_vertex_id.mat,
std_exp.txt) ship with this repository in BFM/, byte for byte as the release
has them, under its MIT licence (BFM/LICENSE-index-files.txt). This module
names them (paths resolved from this file, never from the working
directory), says where each one comes from, and checks files without loading
their data: .mat containers walked for truncation, variables and shapes,
Exp_Pca.bin's size against its header, BFM09's variables from its headers.

Every problem with an asset raises `AssetError` with a one-line message that
names the file, says what is wrong and where a user gets the file. The
readers of `load_data` and the report of `asset_report` use the same wording.
"""
import os
import pathlib
import struct
import zlib

import numpy as np
import scipy.io

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
# The index files ship in BFM/; the source says how to restore one deleted or modified.
SOURCE_INDEX = ("this repository, which ships it in BFM/ (MIT, BFM/LICENSE-index-files.txt): "
                "restore it with `git checkout -- BFM/`, or from the release's repository, "
                "https://github.com/microsoft/Deep3DFaceReconstruction (folder BFM/)")
SOURCE_NETWORK = ("the FaceReconModel.pb link in the README of "
                  "https://github.com/microsoft/Deep3DFaceReconstruction (put it in network/)")
SOURCE_FRONT_MODEL = ("load_data.transferBFM09(), which builds it from 01_MorphableModel.mat, "
                      "Exp_Pca.bin and the index files")

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


def require_file(path, source):
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
