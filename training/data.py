"""Training data: photos to the release's training layout, and batches back from it.

One prepared folder holds, for each photo NAME (the release's layout, so
folders prepared by the release's own script can be used too):

    NAME.png          the aligned 224x224 crop, RGB
    lm/NAME.txt       68 landmarks of the crop, "x y" per line, y UP (y = 223 - row)
    lm_bin/NAME.bin   the same 136 float64 values, raw
    mask/NAME.png     the skin probability, round(255 p), 3 equal channels

`NAME.png` is written last: a crop present means its sample is complete.
"""
import concurrent.futures
import pathlib

import numpy as np

from fileio.errors import InputError

CROP = 224


def sample_paths(root, name):
    """The four files of sample `name` in prepared folder `root`."""
    root = pathlib.Path(root)
    return {"image": root / f"{name}.png", "lm": root / "lm" / f"{name}.txt",
            "lm_bin": root / "lm_bin" / f"{name}.bin", "mask": root / "mask" / f"{name}.png"}


def landmarks_y_up(lm68):
    """Crop landmarks, y down -> the release's files' y up (and back: it is its own inverse)."""
    lm68 = np.array(lm68, np.float64)
    lm68[:, 1] = CROP - 1 - lm68[:, 1]
    return lm68


def write_sample(root, name, crop_bgr, lm68, skin_mask):
    """Writes one sample atomically, the crop last.

    Args:
      root: the prepared folder.
      name: the sample's name.
      crop_bgr: [224,224,3] BGR 0-255 (float or uint8).
      lm68: [68,2] landmarks, crop pixels, y down.
      skin_mask: [224,224] skin probability in whole levels 0-255
        (`preparation.photo.skin_mask`), written as the release's 3 equal
        channels.
    """
    import io

    from PIL import Image

    from fileio import result_files

    paths = sample_paths(root, name)
    for key in ("lm", "lm_bin", "mask"):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
    up = landmarks_y_up(lm68)
    text = io.StringIO()
    np.savetxt(text, up)
    result_files.write_atomically(paths["lm"], text.getvalue().encode("ascii"))
    result_files.write_atomically(paths["lm_bin"], up.astype(np.float64).tobytes())
    levels = np.asarray(skin_mask, np.uint8)
    result_files.write_png(paths["mask"], np.repeat(levels[..., None], 3, axis=-1))
    rgb = np.clip(np.rint(np.asarray(crop_bgr, np.float64)[:, :, ::-1]), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    result_files.write_atomically(paths["image"], buffer.getvalue())


def read_sample(root, name):
    """Reads one prepared sample.

    Returns:
      (image_bgr [224,224,3] float32 0-255, lm68 [68,2] float32 crop pixels
      y down, mask [224,224] float32 0-255).

    Raises:
      InputError: a file is missing or malformed (the message names it).
    """
    from PIL import Image

    paths = sample_paths(root, name)
    try:
        image = np.asarray(Image.open(paths["image"]).convert("RGB"), np.float32)[:, :, ::-1]
        if paths["lm_bin"].exists():
            up = np.fromfile(paths["lm_bin"], dtype=np.float64)
        else:
            up = np.loadtxt(paths["lm"], dtype=np.float64)
        up = up.reshape(68, 2)
        mask = np.asarray(Image.open(paths["mask"]).convert("RGB"), np.float32)[:, :, 0]
    except (OSError, ValueError) as error:
        raise InputError(f"{paths['image']}: sample cannot be read "
                         f"({type(error).__name__}: {error})") from None
    if image.shape != (CROP, CROP, 3) or mask.shape != (CROP, CROP):
        raise InputError(f"{paths['image']}: crop and mask must be {CROP}x{CROP}")
    return np.ascontiguousarray(image), landmarks_y_up(up).astype(np.float32), mask


def _crop_name(sample):
    """The crop file of a (root, name) sample, as messages name it."""
    root, name = sample
    return str(pathlib.Path(root) / f"{name}.png")


class TrainingSet:
    """The samples of one or more prepared folders, in a reproducible order.

    The order is a fixed function of the seed: epoch e visits the samples in
    the permutation drawn by `numpy.random.default_rng([seed, e])`, and step
    k takes the samples at positions [k*B, (k+1)*B) of the concatenated
    epochs. Resuming at step k therefore continues the same sequence.

    When a batch is shared over several machines, each loads only its own
    rows of it (`batch`'s `rows`): the machines' rows partition every batch,
    so each epoch's samples are read once in all, none twice and none
    missed, and the batches are those of one machine with the same seed.

    Args:
      roots: prepared folders.
      seed: the order's seed (and the augmentation's).
      augment: move each sample by a random shift, scale and rotation
        (`training.augment`), drawn for its step and row of the global batch.

    Raises:
      InputError: a folder has no samples.
    """

    def __init__(self, roots, seed=0, augment=False):
        self.samples = []
        for root in roots:
            root = pathlib.Path(root)
            names = sorted(p.stem for p in root.glob("*.png") if p.is_file())
            if not names:
                raise InputError(f"{root}: no prepared samples (NAME.png with lm/ and mask/; "
                                 "run `python train.py prepare` first)")
            self.samples += [(root, name) for name in names]
        self.seed = seed
        self.augment = augment
        self._order = {}

    def __len__(self):
        return len(self.samples)

    def indices(self, step, batch_size):
        """The sample indices of batch `step` ([batch_size] ints)."""
        n = len(self.samples)
        positions = np.arange(step * batch_size, (step + 1) * batch_size)
        out = []
        for position in positions:
            epoch, offset = divmod(int(position), n)
            if epoch not in self._order:
                self._order = {epoch: np.random.default_rng([self.seed, epoch]).permutation(n)}
            out.append(int(self._order[epoch][offset]))
        return out

    def names(self, step, batch_size):
        """The files of batch `step`'s photos ([batch_size] str, for messages)."""
        return [_crop_name(self.samples[i]) for i in self.indices(step, batch_size)]

    def batch(self, step, batch_size, pool=None, rows=None):
        """Loads batch `step`, or some of its rows.

        Args:
          step: the step.
          batch_size: the global batch.
          pool: an executor whose `map` reads the samples, or None.
          rows: (first, count): only rows [first, first + count) of the batch
            (one machine's part of a batch shared over several; default all).

        Returns:
          dict: images [N,224,224,3] float32 BGR 0-255, landmarks [N,68,2]
          float32 (y down), masks [N,224,224] float32 0-255, names [N] str,
          N the rows loaded.
        """
        first, count = rows if rows is not None else (0, batch_size)
        indices = self.indices(step, batch_size)[first:first + count]
        chosen = [self.samples[i] for i in indices]

        def load_row(row, sample):
            loaded = read_sample(*sample)
            if self.augment:
                from training.augment import augment_sample

                loaded = augment_sample(loaded, self.seed, step, row)
            return loaded

        load = pool.map if pool is not None else map
        images, landmarks, masks = zip(*load(load_row, range(first, first + count), chosen))
        return {"images": np.stack(images), "landmarks": np.stack(landmarks),
                "masks": np.stack(masks),
                "names": [_crop_name(sample) for sample in chosen]}

    def batches(self, start_step, batch_size, workers=2, rows=None):
        """Yields (step, batch) from `start_step` on, loading one batch ahead (`batch`'s rows)."""
        with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
                concurrent.futures.ThreadPoolExecutor(1) as ahead:
            step = start_step
            pending = ahead.submit(self.batch, step, batch_size, pool, rows)
            while True:
                batch = pending.result()
                pending = ahead.submit(self.batch, step + 1, batch_size, pool, rows)
                yield step, batch
                step += 1
