"""The points that align each frame of a video, found on the frame itself.

Every frame is aligned from its own pixels: a 68-point landmark predictor
(`landmarks.dlib68`, dlib's regression trees, about 1 ms a face) gives the
frame's 68 points, and their 5 points (eye centres, nose tip, mouth
corners) align it. The predictor needs a box around the face; in a video
the previous frame's 68 points give it (`box_from_points`), so a face that
moves between frames is found again from where it was, and nothing is
extrapolated. The network is not part of this loop: a batch's frames are
aligned from their own pixels before it runs, and alignment can run ahead of
it in another thread (`video.reconstruct_video`).

MTCNN (`landmarks.mtcnn`), which costs 25-240 ms a call against the
predictor's 1, runs
- on the first frame, and whenever the track is judged lost; then its 5
  points place the predictor's box;
- every `redetect_every` frames as a check, on the region around the track:
  if the face it finds lies where the track is (its 5 points within
  `max_drift` eye distances of the predictor's), the track goes on;
  otherwise the track starts again from MTCNN's face; if it finds no face
  there, the track goes on.

The track is judged lost by two checks, because each misses what the other
sees:
- geometry, the predictor's points against their box: given a box on
  anything, the predictor returns a face-shaped set of points in it, but
  when a face is there the points' own box (by the same rule) lies on the
  box they came from; when it lies more than `max_box_shift` of the box's
  side away, or is more than 1.4 times larger or smaller, the predictor
  did not find a face there (a face that moved away, a cut);
- appearance: the grey 32x32 thumbnail of the face region (the square
  twice the extent of the 5 points, read from the frame) is compared with
  the previous frame's by normalised cross-correlation; below
  `min_similarity` the face is gone (a hand or an object over it, a cut):
  a flat cover compares as nothing, and a cut to another scene rarely
  correlates.

MTCNN first searches a region around the face's last known place, scaled
down (when larger) so that the face's box is about 72 pixels, which makes
its image pyramid smaller (on a 2-core CPU a region call of the shared
photos took 23 ms, against 70-240 ms for a whole frame at full size; its
points differ from a full-size detection by 5% of the eye distance on
average). Without a known place, or when the region holds no face, it
searches the whole frame scaled down to 400 pixels (long side), then the
region of the face found there; then the whole frame at full size. A frame
on which it finds no face has no alignment (`None`), and it is tried again
on each following frame until a face is found.

With `always_detect` (`--landmarks detect`), MTCNN searches every whole
frame at full size, as demo.py does, and its 5 points align the frame; the
predictor still gives the frame's 68 points, from MTCNN's box, for
`lm68_detected`.
"""

import numpy as np

from facemodel.keypoints import five_points
from fileio.errors import InputError
from landmarks.dlib68 import box_from_points, box_shift

_THUMB_SPAN = 2.0                  # appearance region side / extent of the 5 points
_THUMB_SIZE = 32                   # pixels a side of the compared thumbnails
_REGION_SCALE = 4.0                # detection region side / size of the 5 points
_REGION_MIN = 96                   # pixels
_FACE_BOX = 2.5                    # MTCNN's face box side / size of the 5 points, about
_REGION_FACE = 72                  # pixels: a region is scaled down so the face box is this big
_COARSE_SIDE = 400                 # pixels: long side of a whole frame searched scaled down
_MAX_BOX_RATIO = 1.4               # geometry check: largest side ratio of the two boxes


def _scaled_region(region, scale):
    """(region scaled by min(scale, 1) with Pillow's bilinear filter, [2] x and y scales)."""
    from PIL import Image

    height, width = region.shape[:2]
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    if scale >= 1.0 or min(size) < 32:
        return np.ascontiguousarray(region), np.ones(2)
    scaled = Image.fromarray(np.ascontiguousarray(region)).resize(size, Image.BILINEAR)
    # The scales actually applied (rounding makes them differ a little).
    return np.asarray(scaled), np.array([size[0] / width, size[1] / height])


def eye_distance(lm5):
    """Distance between the two eye points of [5, 2] points (pixels)."""
    lm5 = np.asarray(lm5, dtype=np.float64)
    return float(np.linalg.norm(lm5[1] - lm5[0]))


def face_thumbnail(image, lm5):
    """A zero-mean, unit-norm grey 32x32 vector of the face in an image.

    The region is the square around the 5 points, `_THUMB_SPAN` times their
    extent (the face and a little around it, whatever its size).

    Args:
      image: [H, W, 3] uint8 RGB (or BGR: the grey weights differ a little).
      lm5: [5, 2] the face's 5 points in the image (pixels).

    Returns:
      [1024] float64, or zeros when the region is flat or outside the image
      (nothing to compare).
    """
    import cv2

    height, width = image.shape[:2]
    lm5 = np.asarray(lm5, np.float64)
    centre = lm5.mean(axis=0)
    half = max(_THUMB_SPAN * float(np.ptp(lm5, axis=0).max()) / 2, 4.0)
    x0, y0 = (int(np.clip(c - half, 0, size - 1)) for c, size in zip(centre, (width, height)))
    x1, y1 = (int(np.clip(c + half, lo + 1, size))
              for c, lo, size in zip(centre, (x0, y0), (width, height)))
    region = np.ascontiguousarray(image[y0:y1, x0:x1], np.uint8)
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
    # Bilinear to 4 times the size, then 4x4 means: about the area average of
    # a direct INTER_AREA resize, at a tenth of its cost.
    grey = cv2.resize(grey, (4 * _THUMB_SIZE, 4 * _THUMB_SIZE), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(grey, (_THUMB_SIZE, _THUMB_SIZE), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float64).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 1e-6 * small.size else np.zeros_like(small)


class FacePoints:
    """The landmarks found on one frame.

    Attributes:
      lm5: [5, 2] float64 the points that align the frame, frame pixels.
      lm68: [68, 2] float64 the predictor's 68 points, frame pixels.
      detected: True when MTCNN ran on this frame and its face was used.
    """

    __slots__ = ("lm5", "lm68", "detected")

    def __init__(self, lm5, lm68, detected):
        self.lm5 = np.asarray(lm5, np.float64)
        self.lm68 = np.asarray(lm68, np.float64)
        self.detected = detected


class FaceTracker:
    """Finds the landmarks of each frame of one video, in order.

    Args:
      detect: callable(frame [H,W,3] uint8 RGB) -> [5,2] points, raising
        `InputError` when it finds no face (a `landmarks.mtcnn.FivePointDetector`).
      predict: callable(frame, points [5,2] or [68,2], refine) -> ([68,2],
        box [4]) (`Landmark68Predictor.from_points`).
      redetect_every: check the track with the detector at least every this
        many frames (counted in frames processed, i.e. after `--every`).
      always_detect: run the detector on every frame, whose 5 points then
        align it (`--landmarks detect`).
      min_similarity: appearance check threshold, in [-1, 1].
      max_box_shift: geometry check threshold, in box sides.
      max_drift: how far, in eye distances, the detector's points may lie
        from the track's for a periodic check to confirm the track.

    Attributes:
      detector_calls: how many times `detect` was called (on a region or a
        whole frame).
      lost: how many times the track was judged lost.
    """

    def __init__(self, detect, predict, redetect_every=30, always_detect=False,
                 min_similarity=0.5, max_box_shift=0.25, max_drift=0.25):
        self.detect = detect
        self.predict = predict
        self.redetect_every = max(1, int(redetect_every))
        self.always_detect = always_detect
        self.min_similarity = min_similarity
        self.max_box_shift = max_box_shift
        self.max_drift = max_drift
        self.detector_calls = 0
        self.lost = 0
        self._last = None             # FacePoints of the previous frame (None: no track)
        self._near = None             # [5,2] the face's last known place
        self._reference = None        # thumbnail of the previous frame's face
        self._since_detection = 0

    def track(self, frame):
        """Finds the landmarks of the next frame (frames must come in order).

        Args:
          frame: [H, W, 3] uint8 RGB.

        Returns:
          A `FacePoints`, or None when the detector found no face.
        """
        if self.always_detect:
            return self._from_detection(frame, None, use_detected_points=True)
        if self._last is not None:
            tracked = self._follow(frame)
            if tracked is not None:
                self._since_detection += 1
                if self._since_detection < self.redetect_every:
                    return self._keep(tracked)
                return self._check(frame, tracked)
            self.lost += 1
            self._last = self._reference = None
        return self._from_detection(frame, self._near)

    def _follow(self, frame):
        """The predictor from the previous frame's box; None when the checks fail."""
        lm68, box = self.predict(frame, self._last.lm68, False)
        shift, ratio = box_shift(box, box_from_points(lm68))
        if shift > self.max_box_shift or not 1 / _MAX_BOX_RATIO <= ratio <= _MAX_BOX_RATIO:
            return None
        points = FacePoints(five_points(lm68), lm68, False)
        thumbnail = face_thumbnail(frame, points.lm5)
        if self._reference is not None and thumbnail @ self._reference < self.min_similarity:
            return None
        self._reference = thumbnail
        return points

    def _keep(self, points):
        self._last = points
        self._near = points.lm5
        return points

    def _check(self, frame, tracked):
        """A periodic check: the detector on the track's region confirms or restarts it."""
        self._since_detection = 0
        try:
            found = self._detect_region(frame, tracked.lm5)
        except InputError:            # The check missed a face the track still holds.
            return self._keep(tracked)
        drift = np.linalg.norm(found - tracked.lm5, axis=1).max()
        if drift <= self.max_drift * max(eye_distance(tracked.lm5), 1.0):
            return self._keep(tracked)
        return self._start(frame, found)

    def _from_detection(self, frame, near, use_detected_points=False):
        """The detector's face, then the predictor in its box; None without a face."""
        try:
            found = self._detect_near(frame, near)
        except InputError:
            self._last = self._reference = None
            return None
        if use_detected_points:
            lm68, _ = self.predict(frame, found, True)
            return FacePoints(found, lm68, True)
        return self._start(frame, found)

    def _start(self, frame, found):
        """A new track from the detector's 5 points."""
        lm68, _ = self.predict(frame, found, True)
        points = FacePoints(five_points(lm68), lm68, True)
        self._reference = face_thumbnail(frame, points.lm5)
        self._since_detection = 0
        return self._keep(points)

    def _detect_near(self, frame, near):
        """Runs the detector around `near` ([5,2] or None), else on the whole frame.

        In order, until a face is found: the region around `near`; the whole
        frame scaled down (`--landmarks track` only), then the region of the
        face found there; the whole frame at full size.
        """
        if near is not None:
            try:
                return self._detect_region(frame, near)
            except InputError:
                pass
        if not self.always_detect:
            try:
                return self._detect_region(frame, self._detect_scaled_frame(frame))
            except InputError:
                pass
        self.detector_calls += 1
        return self.detect(frame)

    def _detect_region(self, frame, near):
        """The detector on the region around `near` [5,2]; raises `InputError` without a face.

        A region of `_REGION_SCALE` times the size of the 5 points (at least
        `_REGION_MIN` pixels a side), scaled so that the face's box is about
        `_REGION_FACE` pixels when it is larger, costs a fraction of the
        whole frame.
        """
        height, width = frame.shape[:2]
        centre = near.mean(axis=0)
        size = float(np.ptp(near, axis=0).max())
        half = max(_REGION_SCALE * size, _REGION_MIN) / 2
        x0, y0 = (max(int(c - half), 0) for c in centre)
        x1, y1 = min(int(centre[0] + half), width), min(int(centre[1] + half), height)
        if x1 - x0 < 32 or y1 - y0 < 32 or (x1 - x0) * (y1 - y0) >= width * height:
            raise InputError("no region smaller than the frame")
        return self._detect_scaled(frame[y0:y1, x0:x1],
                                   _REGION_FACE / (_FACE_BOX * max(size, 1.0))) + [x0, y0]

    def _detect_scaled_frame(self, frame):
        """The detector on the whole frame scaled to `_COARSE_SIDE` pixels (long side).

        MTCNN's pyramid on a 1280x720 frame took about 240 ms against 40 at
        400x225 (2-core CPU); the small frame finds faces from about 20 /
        scale pixels (64 in a 720p frame, 96 in a 1080p one), whose points
        are then refined on the face's region. Raises `InputError` when the
        frame is not much larger than that or holds no face found so.
        """
        scale = _COARSE_SIDE / max(frame.shape[:2])
        if scale > 0.5:
            raise InputError("the frame is small enough to search at full size")
        return self._detect_scaled(frame, scale)

    def _detect_scaled(self, image, scale):
        """The detector on `image` scaled by min(scale, 1); points in `image`'s pixels."""
        self.detector_calls += 1
        scaled, scales = _scaled_region(image, scale)
        # Pixel centres: Pillow maps x in the scaled image to (x + 0.5) / scale
        # - 0.5 in the original.
        return (self.detect(scaled) + 0.5) / scales - 0.5
