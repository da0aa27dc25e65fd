"""`train.py prepare`: photos -> aligned crops, 68 landmarks and skin masks.

For each photo: its 5 landmarks (NAME.txt beside it, or MTCNN), the demo's
alignment (`preprocess_img.Preprocess`), 68 landmarks of the crop (from
NAME_lm68.txt beside the photo, photo pixels, mapped into the crop; else a
68-landmark source, `training.landmarks68`: the release's detector graph on
the crop, or dlib's predictor on the photo) and the skin mask of the crop
(`training.skin`). Bad photos get one line and are skipped; a rerun skips
what is done.
"""
import pathlib

import numpy as np

from image_io import InputError, read_image, read_landmarks, read_lm68_file
from training.data import sample_paths, write_sample


def prepare_photo(path, output_root, lm3d, detect5, detect68):
    """Prepares one photo.

    Args:
      path: the photo.
      output_root: the prepared folder.
      lm3d: [5,3] standard landmarks of the mean face.
      detect5: callable(rgb [H,W,3] uint8, name) -> [5,2] (MTCNN), used when
        NAME.txt is absent.
      detect68: callable(rgb [H,W,3] uint8, lm5 [5,2], crop_bgr [224,224,3],
        trans_params [5]) -> [68,2] crop landmarks y down
        (`training.landmarks68`), or None; used when NAME_lm68.txt is absent.

    Raises:
      InputError: the photo, a landmark file or the face cannot be used.
    """
    from preprocess_img import Preprocess, map_to_crop
    from training.skin import skin_mask_png

    path = pathlib.Path(path)
    image = read_image(path)
    lm5_path = path.with_suffix(".txt")
    if lm5_path.exists():
        lm5 = read_landmarks(lm5_path, image.size)
    else:
        lm5 = detect5(np.asarray(image), name=str(path))
    crop, _, trans_params = Preprocess(image, lm5, lm3d)
    crop_bgr = np.asarray(crop, np.float32)[0]
    lm68_path = path.with_name(path.stem + "_lm68.txt")
    if lm68_path.exists():
        lm68 = map_to_crop(read_lm68_file(lm68_path, image.size), trans_params)
    elif detect68 is not None:
        lm68 = detect68(np.asarray(image), lm5, crop_bgr, trans_params)
    else:
        raise InputError(f"{path}: no {lm68_path.name} beside it and no 68-landmark source "
                         "(network/landmark68_detector.pb, or dlib's predictor: "
                         "pip install dlib-bin face-recognition-models)")
    crop_uint8 = np.clip(np.rint(crop_bgr), 0, 255).astype(np.uint8)
    write_sample(output_root, path.stem, crop_bgr, lm68, skin_mask_png(crop_uint8))


def prepare_folder(photos, output_root, lm3d, detect5, detect68, overwrite=False, log=print):
    """Prepares photos, skipping those already done; one line per bad photo.

    Returns:
      (done, skipped, failed): counts, and failed as a list of (path, reason).
    """
    output_root = pathlib.Path(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    done, skipped, failed, seen = 0, 0, [], {}
    for path in photos:
        path = pathlib.Path(path)
        if path.stem in seen:
            reason = f"{path}: same name as {seen[path.stem].name}; skipped"
            failed.append((str(path), reason))
            log(reason)
            continue
        seen[path.stem] = path
        if not overwrite and sample_paths(output_root, path.stem)["image"].exists():
            skipped += 1
            continue
        try:
            prepare_photo(path, output_root, lm3d, detect5, detect68)
            done += 1
        except InputError as error:
            failed.append((str(path), str(error)))
            log(str(error))
        except Exception as error:  # One odd photo must never stop the folder.
            failed.append((str(path), f"{path}: {type(error).__name__}: {error}"))
            log(f"{path}: {type(error).__name__}: {error}")
    return done, skipped, failed
