"""`train.py prepare`: photos -> aligned crops, 68 landmarks and skin masks.

Each photo goes through the one preparation path every tool takes
(`preparation.photo.prepare_photo`: its 5 landmarks from NAME.txt or MTCNN,
the demo's alignment, its 68 landmarks from NAME_lm68.txt or a 68-point
source, the skin mask of the crop) and is written in the release's training
layout (`training.data`). A photo without 68 landmarks cannot train: it
gets one line and is skipped, as is any bad photo; a rerun skips what is
done.
"""
import pathlib

from fileio.errors import InputError
from fileio.images import unique_names
from training.data import sample_paths, write_sample


def prepare_one(path, output_root, lm3d, landmarks):
    """Prepares one photo.

    Args:
      path: the photo.
      output_root: the prepared folder.
      lm3d: [5,3] standard landmarks of the mean face.
      landmarks: a `landmarks.sources.PhotoLandmarks` (its 68-point source
        serves photos without NAME_lm68.txt).

    Raises:
      InputError: the photo, a landmark file or the face cannot be used, or
        the photo has no 68 landmarks.
    """
    from preparation.photo import prepare_photo

    path = pathlib.Path(path)
    prepared = prepare_photo(path, landmarks, lm3d, targets=True)
    if prepared.lm68_crop is None:
        raise InputError(f"{path}: no {path.stem}_lm68.txt beside it and no 68-landmark source "
                         "(network/landmark68_detector.pb, or dlib's predictor: "
                         "pip install dlib-bin face-recognition-models)")
    write_sample(output_root, path.stem, prepared.crop_bgr, prepared.lm68_crop,
                 prepared.skin_mask)


def prepare_folder(photos, output_root, lm3d, landmarks, overwrite=False, log=print):
    """Prepares photos, skipping those already done; one line per bad photo.

    Returns:
      (done, skipped, failed): counts, and failed as a list of (path, reason).
    """
    output_root = pathlib.Path(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    chosen, clashes = unique_names(photos)
    done, skipped, failed = 0, 0, []
    for path, first in clashes:
        reason = f"{path}: same name as {first.name}; skipped"
        failed.append((str(path), reason))
        log(reason)
    for path in chosen:
        if not overwrite and sample_paths(output_root, path.stem)["image"].exists():
            skipped += 1
            continue
        try:
            prepare_one(path, output_root, lm3d, landmarks)
            done += 1
        except InputError as error:
            failed.append((str(path), str(error)))
            log(str(error))
        except Exception as error:  # One odd photo must never stop the folder.
            failed.append((str(path), f"{path}: {type(error).__name__}: {error}"))
            log(f"{path}: {type(error).__name__}: {error}")
    return done, skipped, failed
