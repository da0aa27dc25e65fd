"""Fitting: refine coefficients against photos with the paper's own losses.

The optimisation of Deng et al.'s coefficients directly, without training
a network: the R-Net's prediction (or the mean face) is the start, and Adam
steps lower the release's training loss (`losses.hybrid.HybridLoss`: the
skin-weighted photometric term over the render's face region, 68 or 5
landmarks, the coefficient prior, reflectance and lighting terms, and the
identity term when a face-recognition network is given), with the release's
weights. One image set (several photos of one person) shares one identity
and albedo; a video shares one per video and adds a temporal term.

- `parameters`: the coefficient blocks as variables, per photo or shared.
- `objective`: landmark targets, the temporal term, the fit's total.
- `optimize`: Adam in stages (`plan`), `Fitter`.
- `photo_fit`: the step of `demo.py --refine` and `--identity set`.
- `video_fit`: `extract.py --refine`: one identity per video, then frames.
"""


class FitFailed(RuntimeError):
    """A fit gave non-finite values; the message is one line (without the file).

    Here, without TensorFlow, so that a tool can catch it without importing
    the fitting code at start-up."""
