"""`python train.py --check`: the training assets, present or not, and where to get each.

Needed: the face model (as for the demo). Optional: the release's
68-landmark detector, which `prepare` prefers for photos without a
NAME_lm68.txt (without it, dlib's 68-point predictor from the requirements
gives their landmarks); a face-recognition network for the identity loss
(the term is dropped without it) and the file of `--init` (slim's ImageNet
ResNet-50 checkpoint, a frozen R-Net, or the PyTorch release's weights).
"""
import dataclasses
import pathlib

from assets.catalog import (
    FACENET_PATH,
    RESNET_PATH,
    SOURCE_ID_NET,
    SOURCE_LM68,
    SOURCE_NETWORK,
    SOURCE_PYTORCH_MODEL,
    SOURCE_RESNET,
    display_path,
)

INIT_SOURCES = {"imagenet": SOURCE_RESNET, "release": SOURCE_NETWORK,
                "pytorch": SOURCE_PYTORCH_MODEL}


@dataclasses.dataclass
class TrainingAssetReport:
    """ok: the needed assets are valid; text: the printed report."""
    ok: bool
    text: str


def report(bfm_dir, lm68_path, id_net=None, init_path=None, init_kind="imagenet"):
    """Checks the training assets.

    Args:
      bfm_dir: the face model folder.
      lm68_path: the 68-landmark detector graph.
      id_net: the identity network given with --id-net, or None (the default
        place is reported).
      init_path: the file given with --init, or None.
      init_kind: --init's kind ("imagenet", "release", "pytorch").

    Returns:
      A `TrainingAssetReport`.
    """
    from cli import asset_report

    face = asset_report.check_assets(bfm_dir, model_path=None)   # training needs no R-Net file
    lines = ["Face model (needed):"]
    face_ok = True
    for entry in face.entries:
        status = "ok" if entry.ok else ("missing" if not entry.present else "BAD")
        if entry.blocking:
            face_ok = False
        detail = f"  ({entry.problem or entry.note})" if (entry.problem or entry.note) else ""
        lines.append(f"  {status:8s}{display_path(entry.path)}{detail}")
    lines.append("Other training assets:")
    for path, role, source in (
            (lm68_path, "optional: prepare's landmarks for photos without NAME_lm68.txt, "
                        "else dlib's predictor", SOURCE_LM68),
            (id_net or FACENET_PATH, "optional: the identity loss (--id-net)", SOURCE_ID_NET),
            (init_path or RESNET_PATH, f"optional: --init {init_kind}",
             INIT_SOURCES.get(init_kind, SOURCE_RESNET))):
        path = pathlib.Path(path)
        present = path.exists() or pathlib.Path(str(path) + ".index").exists()
        where = "" if present else f"; get it from: {source}"
        lines.append(f"  {'ok' if present else 'missing':8s}{display_path(path)}  ({role}{where})")
    lines.append("")
    lines.append("The face model is ready." if face_ok else
                 "The face model is missing or broken: see above.")
    return TrainingAssetReport(face_ok, "\n".join(lines))
