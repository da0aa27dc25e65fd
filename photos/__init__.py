"""Photos through the reconstruction (`demo.py`), in the order the data flows.

- `inputs`: the photos of a folder (or of its subfolders, one person each,
  for image sets), the output files of each, the `--outputs` choice.
- `align`: one photo read, its 5 landmarks (file or MTCNN), the aligned crop;
  for a fit, also its 68 landmarks and skin mask.
- `pipeline`: batches through a reconstruction step, reading ahead and
  writing behind in threads, one bad photo never stopping the others.
- `outputs`: the release's files of one photo (and of an image set),
  written atomically.
"""
