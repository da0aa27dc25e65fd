"""Training of the R-Net as in the release (Deng et al. 2019), driven by `train.py`.

- `prepare`: photos to the release's training layout (crop, 68 landmarks,
  skin mask), through `preparation.photo`.
- `data`: that layout on disk, and batches back from it in a reproducible order.
- `rnet`: the R-Net in Keras, its initialisations and its export as a
  frozen graph.
- `model`: the R-Net in front of the release's loss (`losses.hybrid`).
- `augment`: the optional random shift, scale and rotation of samples.
- `loop`: Adam steps, checkpoints, exact resume; `summaries`: TensorBoard.
- `replicas`: the tf.distribute strategies a step runs under (one device,
  mirrored GPUs, several machines); `cluster`: a multi-worker run's
  machines, checked before TensorFlow's server starts; `batch_norm`: batch
  norm over the global batch.

The losses and the skin classifier are not here: fitting uses them too
(`losses`, `preparation.skin`).
"""
