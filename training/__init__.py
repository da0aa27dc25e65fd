"""Training of the R-Net as in the release (Deng et al. 2019), driven by `train.py`.

- `prepare`: photos to the release's training layout (crop, 68 landmarks,
  skin mask), through `preparation.photo`.
- `data`: that layout on disk, and batches back from it in a reproducible order.
- `rnet`: the R-Net in Keras, its initialisations and its export as a
  frozen graph.
- `model`: the R-Net in front of the release's loss (`losses.hybrid`).
- `loop`: Adam steps, checkpoints, exact resume; `summaries`: TensorBoard.

The losses and the skin classifier are not here: fitting uses them too
(`losses`, `preparation.skin`).
"""
