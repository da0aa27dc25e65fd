"""The demo's reconstruction step with a fit: network (or mean face), Adam steps, decoder.

`PhotoRefiner` is a reconstruction step of `photos.pipeline.run_folder`: for
a batch of aligned photos it takes the network's coefficients (or the mean
face's, without a network), fits them to the photos with the release's loss
(`fitting.optimize`), and decodes the fitted coefficients with the same
graph that decodes the network's (`Reconstructor.decode`), so the files are
those of the demo, from the fitted coefficients. With `shared` blocks, the
batch is one image set: one identity and one albedo for all its photos.
"""
import numpy as np

from facemodel.coefficients import LENGTH, widen
from fitting.objective import FitBatch, landmark_target
from fitting.optimize import plan


def check_refinable(reconstructor):
    """Raises ValueError, naming the network's file, when its coefficients cannot be fitted.

    The fit works on the 257 coefficients (258 with the 2020.6 network's
    dropped value); a white-light network's 239 have no per-channel light.
    """
    if reconstructor.network_coeff is not None and reconstructor.coeff_length != LENGTH:
        raise ValueError(f"{reconstructor.model_name}: refining needs a network with 257 or "
                         f"258 coefficients, this one gives {reconstructor.coeff_length}")


class PhotoRefiner:
    """A reconstruction step that fits each batch.

    Args:
      reconstructor: a `reconstructor.Reconstructor` (with or without a
        network; with one, its coefficients must be 257 or 258 long).
      fitter: a `fitting.optimize.Fitter`.
      steps: Adam steps per batch.
      shared: blocks shared by the whole batch (("identity", "albedo") for
        image sets), or ().
      progress: optional callable(batch size) -> callable(steps done, steps in
        all, total loss), made per batch (a progress bar).
    """

    def __init__(self, reconstructor, fitter, steps, shared=(), progress=None):
        check_refinable(reconstructor)
        self.reconstructor = reconstructor
        self.fitter = fitter
        self.steps = int(steps)
        self.shared = tuple(shared)
        self.progress = progress

    def __call__(self, batch):
        """Fits and decodes a batch of `preparation.photo.PreparedPhoto`s.

        Returns:
          (results, failed): the decoder's dict for the fitted coefficients,
          with "coeff_network" (when a network ran) and "loss_NAME" [B] for
          each loss term; failed {index: one-line reason} for photos whose
          fit is not finite (their rows are not written).
        """
        images = np.stack([aligned.crop_bgr for aligned in batch])
        network = None
        if self.reconstructor.network_coeff is not None:
            network = np.asarray(self.reconstructor.network_only(images))
            initial = widen(network)
        else:
            initial = np.zeros((len(batch), LENGTH), np.float32)
        fit_batch = FitBatch.stack(
            images, [landmark_target(a.lm68_crop, a.lm5_crop) for a in batch],
            [a.skin_mask for a in batch])
        stages = plan(self.steps, from_mean_face=network is None)
        report = self.progress(len(batch)) if self.progress is not None else None
        result = self.fitter.fit(initial, fit_batch, stages, shared=self.shared,
                                 progress=report)
        coeff = np.where(result.finite[:, None], result.coeff, initial)
        decoded = dict(self.reconstructor.decode(coeff))
        if network is not None:
            decoded["coeff_network"] = network
        for name in result.terms[0] or {}:
            decoded[f"loss_{name}"] = np.array([terms[name] for terms in result.terms])
        failed = {i: f"{aligned.name}: the fit gave non-finite values; nothing written"
                  for i, aligned in enumerate(batch) if not result.finite[i]}
        return decoded, failed
