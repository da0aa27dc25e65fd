"""From a photo or a video frame to what the network and the losses read.

- `photo`: one photo's crop, 5 and 68 points and skin mask, the one path of
  demo.py, evaluate.py, train.py prepare and the fits.
- `frame`: one video frame's crop, reading only the face's region.
- `skin`: the release's Bayes skin classifier.
"""
