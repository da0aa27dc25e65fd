"""The demo's photos (`demo.py`): which photos of a folder, and the files each one gets.

- `inputs`: the photos of a folder (or of its subfolders, one person each,
  for image sets), the output files of each, the `--outputs` choice.
- `outputs`: the release's files of one photo (and of an image set),
  written atomically.

Preparing a photo is `preparation.photo`'s; reconstructing batches of them,
`reconstruction`'s.
"""
