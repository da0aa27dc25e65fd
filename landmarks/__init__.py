"""The points of a photo: its 5 alignment points and its 68 landmarks, from one interface.

- `sources`: `build`, the one factory of a tool's detectors, and
  `PhotoLandmarks` ("the points of this photo": files first, then the
  detectors).
- `files`: the landmark files a user puts beside a photo (NAME.txt,
  NAME_lm68.txt).
- `mtcnn`: the 5 points from MTCNN.
- `dlib68`: the 68 points from dlib's shape predictor, given where the face is.
- `release68`: the 68 points from the release's detector graph, on the crop.

The orders of the points are `facemodel.keypoints`'.
"""
