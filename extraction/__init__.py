"""Coefficients for every frame of every video of a dataset (`extract.py`).

The modules, in the order the data flows through them:

- `inputs`: the videos and photos of a folder tree, their output paths, shards.
- `frames`: decoding a video in a thread, frame by frame (PyAV).
- `tracking`: 5 alignment points per frame, from the previous reconstruction
  (MTCNN only at the start, every N frames, and when the track is lost).
- `video`: one video through alignment and the network, in batches.
- `postprocess`: frames without a face, smoothing, one identity per video.
- `outputs`: the .mat / .npz file and the preview video, written atomically.
- `extractor`: `Extractor`, loaded once and called on a batch of videos; the
  unit both engines run.
- `engines`: the local loop and the Ray cluster engine.
"""
