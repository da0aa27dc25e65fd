"""The face model's conventions, defined once: coefficients, camera, landmarks.

Plain constants and NumPy, no TensorFlow and no other module of the project,
so that every layer can import them (`docs/architecture.md`):

- `coefficients`: the layout of a coefficient vector (257 values, the
  white-light 239 and the 2020.6 release's 258), its blocks by name.
- `camera`: the release's pinhole camera and the render's settings.
- `keypoints`: the 68 landmarks' order and the points the tools name in it.

The formulas these numbers belong to are in `docs/model.md`.
"""
