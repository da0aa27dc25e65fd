"""Training of the R-Net as in the release (Deng et al. 2019): the losses of the release's
`losses.py` in TensorFlow (`training.losses`), the offline Bayes skin classifier whose soft
masks weight the photometric loss (`training.skin`), and, over them, the data pipeline and
the training loop that the top-level `train.py` drives. Everything here follows the release's
training code; the places where a formula departs from it are named in each function's
docstring.
"""
