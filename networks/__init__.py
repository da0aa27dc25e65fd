"""The networks a run loads from a user's files.

- `reconstructor`: the frozen R-Net and the face decoder in one graph,
  crops in, coefficients and faces out.
- `identity`: the frozen face-recognition network of the identity loss.

The R-Net that training builds and exports is `training.rnet`; the
68-landmark detector graph is `landmarks.release68`.
"""
