"""Where each asset lives, where a user gets it, and the one-line error that names it.

The licensed assets (the Basel Face Model 2009, Guo et al.'s expression basis
and the authors' frozen network) are never shipped: a user brings them. The
release's public index files (BFM_exp_idx.mat, BFM_front_idx.mat,
facemodel_info.mat, similarity_Lm3D_all.mat, select_vertex_id.mat,
std_exp.txt) ship with this repository in BFM/, byte for byte as the release
has them, under its MIT licence (BFM/LICENSE-index-files.txt). The training
assets (the release's 68-landmark detector, FaceNet, slim's ResNet-50) are
optional. This module names them all (paths resolved from the repository,
never from the working directory) and says where each comes from; the
format checks that read a file are in `assets.checks`.

Every problem with an asset raises `AssetError` with a one-line message that
names the file, says what is wrong and where a user gets the file. The
readers of `load_data`, the frozen-graph check and the asset reports use the
same wording.
"""
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
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
UV_NAME = "BFM_UV.mat"

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

# The UV coordinates of every BFM09 vertex (Apache-2.0), shipped in BFM/ for the UV textures.
SOURCE_UV = ("this repository, which ships it in BFM/ (Apache-2.0, BFM/LICENSE-BFM_UV.txt): "
             "restore it with `git checkout -- BFM/`, or take util/BFM_UV.mat of "
             "https://github.com/anilbas/3DMMasSTN")

# The training assets, all optional (`python train.py --check`).
LM68_PATH = REPO_ROOT / "network" / "landmark68_detector.pb"
FACENET_PATH = REPO_ROOT / "network" / "20170512-110547.pb"
RESNET_PATH = REPO_ROOT / "network" / "resnet_v1_50.ckpt"
SOURCE_LM68 = ("the 68-landmark detector link in the README of "
               "https://github.com/microsoft/Deep3DFaceReconstruction (put it in network/)")
SOURCE_ID_NET = ("FaceNet's 20170512-110547 model (https://github.com/davidsandberg/facenet, "
                 "the frozen .pb of that release)")
SOURCE_RESNET = ("slim's ImageNet checkpoint resnet_v1_50_2016_08_28.tar.gz from the TensorFlow "
                 "models repository (research/slim, 'Pre-trained Models'); unpack "
                 "resnet_v1_50.ckpt")

# The authors' PyTorch release (sicxu/Deep3DFaceRecon_pytorch): its R-Net, epoch_20.pth.
SOURCE_PYTORCH_MODEL = ("the epoch_20.pth link in the README of "
                        "https://github.com/sicxu/Deep3DFaceRecon_pytorch (its 'Prepare "
                        "prerequisite models' section, checkpoints/<name>/epoch_20.pth)")

FRONT_MODEL_KEYS = ("meanshape", "meantex", "idBase", "exBase", "texBase", "tri", "point_buf",
                    "tri_mask2", "keypoints", "frontmask2_idx", "skinmask")
INFO_KEYS = ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx", "skinmask")
BFM09_KEYS = ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV")




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
