"""The release's loaders: the face model, its conversion from BFM09, photos, the network.

`transferBFM09` turns the Basel Face Model 2009 and Guo et al.'s expression
basis into the release's front-face model (docs/model.md#front-model);
`load_front_model`, `LoadExpBasis` and `load_lm3d` read the model files;
`load_img` reads a photo with its 5 landmarks; `save_obj` writes a mesh;
`load_graph` reads the frozen R-Net. Names and signatures are the release's.

Paths default to the repository's `BFM/` and `network/` folders (see
`assets.catalog`). Every asset problem raises `AssetError` with one line naming the
file, what is wrong and where to get it.
"""
import pathlib

import numpy as np
import scipy.io

from assets.catalog import (
    BFM09_KEYS,
    BFM09_NAME,
    BFM_DIR,
    EXP_IDX_NAME,
    EXP_PCA_NAME,
    FRONT_IDX_NAME,
    FRONT_MODEL_KEYS,
    FRONT_MODEL_NAME,
    INFO_KEYS,
    INFO_NAME,
    LM3D_NAME,
    MICROMETRES_PER_DECIMETRE,
    MODEL_PATH,
    SOURCE_BFM09,
    SOURCE_EXP_PCA,
    SOURCE_FRONT_MODEL,
    SOURCE_INDEX,
    SOURCE_NETWORK,
    STD_EXP_NAME,
    AssetError,
)
from assets.checks import (
    expect_finite,
    expect_index,
    expect_shape,
    inspect_bfm09,
    inspect_exp_pca,
    load_mat,
    require_file,
    validate_front_model,
)
from assets.frozen_graph import read_graph_def
from facemodel.coefficients import N_ALBEDO, N_EXPRESSION, N_IDENTITY
from facemodel.keypoints import EYE_CORNER_FIVE, N_LANDMARKS, five_points
from fileio.images import read_image
from fileio.result_files import save_obj, write_atomically  # noqa: F401  (save_obj: the release's name)
from landmarks.files import read_landmarks

# ------------------------------------------------------------------ front model


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
    model = load_mat(path, FRONT_MODEL_KEYS, SOURCE_FRONT_MODEL)
    validate_front_model(model, path)
    return model


def load_lm3d(bfm_dir=BFM_DIR):
    """Loads the 5 standard 3D landmarks of the mean face (docs/model.md#landmarks).

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
    lm = load_mat(path, ["lm"], SOURCE_INDEX)["lm"]
    expect_shape(path, "lm", lm, (N_LANDMARKS, 3), SOURCE_INDEX)
    expect_finite(path, "lm", lm, SOURCE_INDEX)
    return five_points(lm.astype(np.float32, copy=False), EYE_CORNER_FIVE)

# ----------------------------------------------------------------- index files


def read_index_files(bfm_dir):
    """Reads and cross-checks BFM_exp_idx.mat, BFM_front_idx.mat and facemodel_info.mat.

    Returns:
      (trim_index, front_index, info): 0-based int64 arrays [V_exp] (expression
      vertex -> BFM09 vertex) and [N] (front vertex -> expression vertex), and
      the facemodel_info dict (variables as stored).
    """
    bfm_dir = pathlib.Path(bfm_dir)
    exp_idx_path = bfm_dir / EXP_IDX_NAME
    trim = load_mat(exp_idx_path, ["trimIndex"], SOURCE_INDEX)["trimIndex"]
    if trim.ndim != 2 or trim.shape[1] != 1:
        raise AssetError.about(exp_idx_path, f"variable 'trimIndex' has shape {trim.shape}, "
                               "expected (V_exp, 1)", SOURCE_INDEX)
    expect_index(exp_idx_path, "trimIndex", trim, np.iinfo(np.int64).max, SOURCE_INDEX)
    trim_index = trim.ravel().astype(np.int64) - 1

    front_idx_path = bfm_dir / FRONT_IDX_NAME
    idx = load_mat(front_idx_path, ["idx"], SOURCE_INDEX)["idx"]
    if idx.ndim != 2 or idx.shape[1] != 1:
        raise AssetError.about(front_idx_path, f"variable 'idx' has shape {idx.shape}, "
                               "expected (N, 1)", SOURCE_INDEX)
    expect_index(front_idx_path, "idx", idx, trim_index.size, SOURCE_INDEX)
    front_index = idx.ravel().astype(np.int64) - 1

    info_path = bfm_dir / INFO_NAME
    info = load_mat(info_path, INFO_KEYS, SOURCE_INDEX)
    n = front_index.size
    expect_shape(info_path, "point_buf", info["point_buf"], (n, 8), SOURCE_INDEX)
    expect_shape(info_path, "keypoints", info["keypoints"], (1, N_LANDMARKS), SOURCE_INDEX)
    expect_shape(info_path, "skinmask", info["skinmask"], (1, n), SOURCE_INDEX)
    for name in ("tri", "tri_mask2"):
        if info[name].ndim != 2 or info[name].shape[1] != 3:
            raise AssetError.about(info_path, f"variable '{name}' has shape {info[name].shape}, "
                                   "expected (F, 3)", SOURCE_INDEX)
    if info["frontmask2_idx"].ndim != 2 or info["frontmask2_idx"].shape[1] != 1:
        raise AssetError.about(info_path, "variable 'frontmask2_idx' has shape "
                               f"{info['frontmask2_idx'].shape}, expected (M, 1)", SOURCE_INDEX)
    expect_index(info_path, "tri", info["tri"], n, SOURCE_INDEX)
    # tri_mask2 indexes the frontmask2_idx vertices (the release renders that subset).
    expect_index(info_path, "tri_mask2", info["tri_mask2"], info["frontmask2_idx"].shape[0],
                 SOURCE_INDEX)
    expect_index(info_path, "frontmask2_idx", info["frontmask2_idx"], n, SOURCE_INDEX)
    expect_index(info_path, "keypoints", info["keypoints"], n, SOURCE_INDEX)
    expect_index(info_path, "point_buf", info["point_buf"], info["tri"].shape[0] + 1,
                  SOURCE_INDEX)
    return trim_index, front_index, info


def read_std_exp(path):
    """Reads std_exp.txt: whitespace-separated expression standard deviations.

    Returns:
      [K] float64.
    """
    path = require_file(path, SOURCE_INDEX)
    try:
        with open(path, "r", encoding="ascii") as stream:
            values = np.array(stream.read().split(), dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as error:
        raise AssetError.about(path, f"is not a list of numbers ({type(error).__name__})",
                               SOURCE_INDEX) from error
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               SOURCE_INDEX) from error
    if values.size < N_EXPRESSION:
        raise AssetError.about(path, f"holds {values.size} standard deviations, expected at "
                               f"least {N_EXPRESSION}", SOURCE_INDEX)
    if not np.all(np.isfinite(values)):
        raise AssetError.about(path, "holds NaN or infinite values", SOURCE_INDEX)
    return values

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
    n_exp, n_vertices = inspect_exp_pca(path)
    exp_pc = _read_exp_bases(path, n_exp, n_vertices, n_exp)
    std_path = bfm_dir / STD_EXP_NAME
    exp_ev = read_std_exp(std_path)
    if exp_ev.size != n_exp:
        raise AssetError.about(std_path, f"holds {exp_ev.size} standard deviations, but "
                               f"{EXP_PCA_NAME} has {n_exp} bases", SOURCE_INDEX)
    return exp_pc, exp_ev

# --------------------------------------------------------------- BFM09 model


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

    Implements docs/model.md#front-model: identity and albedo bases are the PCA
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

    trim_index, front_index, info = read_index_files(bfm_dir)
    n_bfm, n_shape, n_tex = inspect_bfm09(bfm_dir / BFM09_NAME)
    bfm_path = bfm_dir / BFM09_NAME
    if trim_index.max() >= n_bfm:
        raise AssetError.about(bfm_dir / EXP_IDX_NAME, f"variable 'trimIndex' refers to vertex "
                               f"{trim_index.max() + 1}, but {BFM09_NAME} has {n_bfm} vertices",
                               SOURCE_INDEX)
    exp_path = bfm_dir / EXP_PCA_NAME
    n_exp, n_exp_vertices = inspect_exp_pca(exp_path, n_vertices=trim_index.size)
    std_path = bfm_dir / STD_EXP_NAME
    std_exp = read_std_exp(std_path)
    if std_exp.size != n_exp:
        raise AssetError.about(std_path, f"holds {std_exp.size} standard deviations, but "
                               f"{EXP_PCA_NAME} has {n_exp} bases", SOURCE_INDEX)

    shape_vertices = trim_index[front_index]      # front vertex -> BFM09 vertex
    shape_rows = _vertex_rows(shape_vertices)
    exp_rows = _vertex_rows(front_index)

    # Expression: basis after basis on disk; read the first 64, keep the front rows.
    ex_base = _read_exp_bases(exp_path, n_exp, n_exp_vertices, N_EXPRESSION, exp_rows)
    ex_base = ((ex_base * std_exp[:N_EXPRESSION]) / MICROMETRES_PER_DECIMETRE).astype(np.float32)

    raw = load_mat(bfm_path, BFM09_KEYS, SOURCE_BFM09)
    shape_ev = raw["shapeEV"].ravel()[:N_IDENTITY]
    tex_ev = raw["texEV"].ravel()[:N_ALBEDO]
    id_base = raw["shapePC"][shape_rows, :N_IDENTITY]
    id_base = ((id_base * shape_ev) / MICROMETRES_PER_DECIMETRE).astype(np.float32)
    tex_base = (raw["texPC"][shape_rows, :N_ALBEDO] * tex_ev).astype(np.float32)
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
      img_path: any image file Pillow reads (see `fileio.images.read_image`).
      lm_path: text file of 5 lines "x y" (pixels, x right, y down), in the
        order left eye, right eye, nose tip, left mouth corner, right mouth corner.

    Returns:
      (image, landmarks): an RGB `PIL.Image.Image` and [5,2] float64.

    Raises:
      fileio.errors.InputError (a ValueError): a missing or unreadable file, or a
        landmark file that is not 5 rows of 2 finite numbers.
    """
    return read_image(img_path), read_landmarks(lm_path)


# --------------------------------------------------------------------- network


def load_graph(model_path=MODEL_PATH):
    """Reads the frozen R-Net graph.

    Args:
      model_path: the frozen GraphDef (.pb).

    Returns:
      A `tf.compat.v1.GraphDef` with nodes `input_imgs` (the input placeholder,
      [B,224,224,3] BGR 0-255) and `coeff` (the [B,257] or [B,258] output).

    Raises:
      AssetError: the file is missing, does not parse, lacks those nodes, or
        holds an op a model file may not run (`frozen_graph`).
    """
    return read_graph_def(model_path, ("input_imgs", "coeff"), SOURCE_NETWORK, "the R-Net graph")


