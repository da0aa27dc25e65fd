"""Files in and out: photos, videos, and the result files every tool writes.

- `errors`: `InputError`, the one-line error of an input a user gave.
- `images`: which files are photos, reading one upright as 8-bit RGB, the
  rule that two photos may not share a name.
- `video`: a video's frames as displayed, decoded in a thread.
- `background`: a producer in a thread with a bounded queue (the decoding
  thread, and extraction's alignment one batch ahead).
- `result_files`: writing every file atomically (.mat, OBJ, PNG, .npy,
  landmark text).
- `preview`: the side-by-side picture of a reconstruction.

The landmark files a user brings are read by `landmarks.files`.
"""
