"""Prepared training data for the tests: the repository's photos, synthetic 68 landmarks.

`prepare_training_data(root, bfm, copies)` copies the two public-domain
astronaut photos of input/ `copies` times each under new names, gives each
copy its own random 68 landmarks (around its 5 points), and prepares the
folder with `training.prepare.prepare_folder`, as `train.py prepare` does.
Each further copy is also darker and lower in contrast, so that no two
samples have the same pixels (and a batch's statistics depend on which
samples it holds).
"""
import shutil

import numpy as np
from PIL import Image

from tests.conftest import REPO_ROOT


def prepare_training_data(root, bfm, copies=1, seed=0):
    """Writes photos and prepares them; returns the prepared folder (2 * copies samples)."""
    import load_data
    from landmarks import sources
    from training.prepare import prepare_folder

    photos = root / "photos"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for source in sorted((REPO_ROOT / "input").glob("astronaut*.txt")):
        image = next(p for p in source.parent.glob(source.stem + ".*") if p.suffix != ".txt")
        lm5 = np.loadtxt(source)
        for copy in range(copies):
            stem = source.stem if copy == 0 else f"{source.stem}_{copy}"
            if copy == 0:
                shutil.copy(image, photos / f"{stem}{image.suffix}")
            else:
                pixels = np.asarray(Image.open(image).convert("RGB"), np.float32)
                changed = pixels * (1.0 - 0.3 * copy / copies) + 10.0 * copy
                Image.fromarray(np.clip(changed, 0, 255).astype(np.uint8)).save(
                    photos / f"{stem}.png")
            np.savetxt(photos / f"{stem}.txt", lm5)
            np.savetxt(photos / f"{stem}_lm68.txt", lm5.mean(0) + rng.uniform(-50, 50, (68, 2)))
    data = root / "data"
    done, _, failed = prepare_folder(sorted(p for p in photos.iterdir() if p.suffix != ".txt"),
                                     data, load_data.load_lm3d(bfm), sources.build())
    assert done == 2 * copies and not failed
    return data
