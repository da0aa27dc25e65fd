"""The release's loss, written once for training and fitting.

- `terms`: each term (photometric, landmark, identity, coefficient prior,
  reflectance, lighting) and the weighted total, with the release's weights.
- `hybrid`: `HybridLoss`, coefficients -> decoder -> renderer -> every term.
"""
