"""Coefficients for every frame of every video of a dataset (`extract.py`).

The modules, in the order the data flows through them:

- `inputs`: the videos and photos of a folder tree, their output paths, shards.
- `tracking`: each frame's 68 landmarks, found on the frame itself by dlib's
  predictor from the previous frame's (MTCNN only at the start, every N
  frames, and when the track is lost), and the 5 that align it.
- `video`: one video through decoding (`fileio.video`), tracking, alignment
  (`preparation.frame`; a batch ahead, in a thread) and the network, in
  batches.
- `postprocess`: frames without a face, smoothing, one identity per video.
- `outputs`: the .mat / .npz file and the preview video, written atomically.
- `extractor`: `Extractor`, loaded once and called on a batch of videos; the
  unit both engines run.
- `engines`: the local loop and the Ray cluster engine.
"""
