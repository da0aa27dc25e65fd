"""Five alignment points for every frame, with the landmark detector on few of them.

A video starts with MTCNN on its first frame. The next frames are aligned
with points predicted from the reconstruction of earlier frames: the 68
reconstructed landmarks are mapped back to the frame
(`preprocess_img.map_to_original`) and give the 5 points (eye centres, nose
tip, mouth corners), extrapolated to the new frame by their recent velocity.
The network runs on batches, so a frame is aligned before the frames just
before it have been reconstructed: the prediction bridges that gap.

The detector runs again
- every `redetect_every` frames;
- when the track is judged lost, by either of two checks:
  - appearance: the aligned face no longer looks like the previous one (the
    normalised cross-correlation of grey 32x32 thumbnails of the square twice
    the size of the 5 points falls below `min_similarity`; a covered face, a
    cut or a face that moved away);
  - geometry: the 5 points reconstructed on a frame are further than
    `max_drift` eye distances from the points that aligned it.
The detector first searches a region around the face's last known place,
scaled down (when larger) so that the face's box is about 72 pixels, which
makes MTCNN's image pyramid smaller (on a 2-core CPU a region call of the
shared photos took 23 ms, 29 at 120 pixels, against 70-240 ms for a whole
frame at full size; MTCNN's last stage sees a face at 48 pixels anyway: the
points differ from a full-size detection by 5% of the eye distance on
average and 18% at most, at 72 pixels as at 120). Without a known place,
or when the region holds no face, it searches the whole frame scaled down to
400 pixels (long side), then the region of the face found there; then the
whole frame at full size. A periodic check's region search is started early
(`detect_ahead`), in the background while the network runs on the frames
before it. With
`always_detect` (`--landmarks detect`) every frame is searched whole at full
size, as demo.py does. When a periodic check finds no face while the track
looks right, the tracked alignment is kept. Otherwise a frame on which the
detector finds no face has no alignment (`None`), and the detector is tried
again on each following frame until a face is found.
"""
import threading

import numpy as np

from extraction.alignment import Alignment
from image_io import InputError

# The release's 5 points from its 68 (as load_data.load_lm3d): eye corners
# 36/39 and 42/45 averaged, nose tip 30, mouth corners 48 and 54.
_EYE_A, _EYE_B, _NOSE, _MOUTH_A, _MOUTH_B = (36, 39), (42, 45), 30, 48, 54
_THUMB_SPAN = 2.0                  # appearance region side / extent of the 5 points
_THUMB_SIZE = 32                   # pixels a side of the compared thumbnails
_HISTORY = 8                       # reconstructed frames the velocity is fitted on
_SHORT_TRACK = 16                  # a track lost sooner than this many frames is short
_REGION_SCALE = 4.0                # detection region side / size of the 5 points
_REGION_MIN = 96                   # pixels
_FACE_BOX = 2.5                    # MTCNN's face box side / size of the 5 points, about
_REGION_FACE = 72                  # pixels: a region is scaled down so the face box is this big
_COARSE_SIDE = 400                 # pixels: long side of a whole frame searched scaled down


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


def lm5_from_lm68(lm68):
    """The release's 5 points from 68 landmarks.

    Args:
      lm68: [..., 68, 2] landmarks.

    Returns:
      [..., 5, 2]: eye A (mean of 36, 39), eye B (mean of 42, 45), nose tip
      (30), mouth corners (48, 54), in the landmark file's order.
    """
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[..., _EYE_A, :].mean(axis=-2), lm68[..., _EYE_B, :].mean(axis=-2),
                     lm68[..., _NOSE, :], lm68[..., _MOUTH_A, :], lm68[..., _MOUTH_B, :]],
                    axis=-2)


def eye_distance(lm5):
    """Distance between the two eye points of [5, 2] points (pixels)."""
    lm5 = np.asarray(lm5, dtype=np.float64)
    return float(np.linalg.norm(lm5[1] - lm5[0]))


def face_thumbnail(crop_bgr, lm5_crop):
    """A zero-mean, unit-norm grey 32x32 vector of the face in a crop.

    The region is the square around the 5 points, `_THUMB_SPAN` times their
    extent (the face and a little around it, whatever its size in the crop).

    Args:
      crop_bgr: [224, 224, 3] aligned crop, BGR 0-255.
      lm5_crop: [5, 2] the alignment points in the crop (pixels).

    Returns:
      [1024] float64, or zeros when the region is flat (nothing to compare).
    """
    import cv2

    centre = np.asarray(lm5_crop, np.float64).mean(axis=0)
    half = max(_THUMB_SPAN * float(np.ptp(lm5_crop, axis=0).max()) / 2, 4.0)
    x0, y0 = (int(np.clip(c - half, 0, 223)) for c in centre)
    x1, y1 = (int(np.clip(c + half, x + 1, 224)) for c, x in zip(centre, (x0, y0)))
    grey = np.asarray(crop_bgr, np.float32)[y0:y1, x0:x1] @ np.array([0.114, 0.587, 0.299],
                                                                      np.float32)
    small = cv2.resize(grey, (_THUMB_SIZE, _THUMB_SIZE), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float64).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 1e-6 * small.size else np.zeros_like(small)


class FaceTracker:
    """Chooses the 5 alignment points of each frame of one video, in order.

    Call `align` on every frame in order; after the network has run on a
    frame, call `update` with its reconstructed 68 landmarks (frame pixels).

    Args:
      detect: callable(frame [H,W,3] uint8 RGB) -> [5,2] points, raising
        `InputError` when it finds no face (a `LandmarkDetector`).
      lm3d: [5,3] standard landmarks of the mean face (`load_data.load_lm3d`).
      redetect_every: run the detector at least every this many frames
        (counted in frames processed, i.e. after `--every`).
      always_detect: run the detector on every frame (`--landmarks detect`).
      min_similarity: appearance check threshold, in [-1, 1].
      max_drift: geometry check threshold, in eye distances.

    Attributes:
      detector_calls: how many times `detect` was called (on a region or a
        whole frame).
    """

    def __init__(self, detect, lm3d, redetect_every=30, always_detect=False,
                 min_similarity=0.5, max_drift=0.25):
        self.detect = detect
        self.lm3d = lm3d
        self.redetect_every = max(1, int(redetect_every))
        self.always_detect = always_detect
        self.min_similarity = min_similarity
        self.max_drift = max_drift
        self.detector_calls = 0
        self._count_lock = threading.Lock()
        self._lost = True
        self._history = []            # (frame number, [5,2] points) reconstructed, this track
        self._anchor = None           # (frame number, [5,2] points) of the last detection
        self._since_detection = 0
        self._reference = None        # thumbnail of the last aligned crop
        self._track_start = None      # frame number where the current track began
        self._short_tracks = 0        # consecutive tracks lost within _SHORT_TRACK frames
        self._prepared = {}           # frame number -> (Alignment or None, thumbnail)
        self._prepared_for = None     # the (_anchor, _history) objects they come from
        self._early = None            # (frame number, Future of its periodic detection)

    def batch_limit(self, batch_size):
        """How many frames may wait for the network before the next frame is aligned.

        Right after a track starts there is no motion to extrapolate, so the
        first frames go to the network in batches of 1, 2, 4, ... up to
        `batch_size`: each batch's reconstruction then aligns the next ones.
        Full batches otherwise: when every frame is detected anyway, and when
        tracks keep failing within a few frames (a network whose landmarks do
        not follow the face), where small batches would only cost time.
        """
        if self.always_detect or self._short_tracks >= 2:
            return batch_size
        return min(batch_size, 2 ** len(self._history))

    def predicted_points(self, number):
        """The points predicted for frame `number`.

        The latest known points (a detection, or the latest reconstruction,
        whichever is newer), moved by the velocity of a least-squares line
        through the recent reconstructed points.
        """
        base_frame, base = self._anchor
        if self._history and self._history[-1][0] > base_frame:
            base_frame, base = self._history[-1]
        if len(self._history) < 2:
            return base
        frames = np.array([f for f, _ in self._history], np.float64)
        points = np.stack([p for _, p in self._history])
        centred = frames - frames.mean()
        velocity = np.tensordot(centred, points - points.mean(axis=0), axes=1) / (
            centred @ centred)
        return base + velocity * (number - base_frame)

    def align(self, frame, number):
        """Aligns frame `number` (frames must come in increasing order).

        Args:
          frame: [H, W, 3] uint8 RGB.
          number: the frame's position in the sequence processed.

        Returns:
          An `Alignment`, or None when the detector found no face.
        """
        tracked, scheduled, near = None, False, None
        if self._anchor is not None:
            near = self._anchor[1]
        if self._tracking():
            near = self.predicted_points(number)
            prepared = self._prepared.pop(number, None)
            basis = self._prepared_for
            if basis is None or basis[0] is not self._anchor or basis[1] is not self._history:
                prepared = None       # Predicted before a detection or an update.
            tracked, thumbnail = prepared or self._tracked_alignment(frame, near)
            if tracked is not None:
                if self._reference is None or thumbnail @ self._reference >= self.min_similarity:
                    self._reference = thumbnail
                    self._since_detection += 1
                    if self._since_detection < self.redetect_every:
                        return tracked
                    scheduled = True  # The track looks right: a periodic check.
                else:
                    tracked = None
        early, self._early = self._early, None
        try:
            if scheduled and early is not None and early[0] == number:
                points = self._early_points(frame, early[1])
            else:
                points = self._detect_near(frame, near if not self.always_detect else None)
            aligned = Alignment(frame, points, self.lm3d, True)
        except (InputError, ValueError):
            if scheduled:             # The check missed a face the track still holds.
                self._since_detection = 0
                return tracked
            self._end_track(number)
            return None
        if self._lost:
            self._history = []        # A new track: the old motion says nothing.
            self._track_start = number
        self._lost = False
        self._anchor = (number, aligned.lm5)
        self._since_detection = 0
        self._reference = face_thumbnail(aligned.crop_bgr, aligned.lm5_crop)
        return aligned

    def detect_ahead(self, frames, pool):
        """Starts the next periodic check's detection early, in the background.

        Called before the network runs on the frames aligned so far, with
        the frames that come next: when the track goes on as it is, the
        periodic check falls on the (`redetect_every` - frames since the
        last detection)-th of them. The detector then searches the region
        around the points predicted for that frame from the reconstructions
        known now (one batch older than `align` would use; the region is
        four times the size of the face), while the network runs. `align`
        uses the result if the check does fall on that frame, and searches
        the whole frame if the region holds no face.

        Args:
          frames: sequence of (number, frame) that follow the frames aligned
            so far, in order.
          pool: a `concurrent.futures.Executor` with a thread for it.
        """
        self._early = None
        if not self._tracking():
            return
        due = self.redetect_every - self._since_detection
        if 1 <= due <= len(frames):
            number, frame = frames[due - 1]
            self._early = (number, pool.submit(self._detect_region, frame,
                                               self.predicted_points(number)))

    def _early_points(self, frame, future):
        """The points of an early region detection, else of the whole frame."""
        try:
            return future.result()
        except InputError:
            return self._detect_near(frame, None)

    def _count_call(self):
        with self._count_lock:        # Early detections count from their own thread.
            self.detector_calls += 1

    def _tracking(self):
        """Whether the next frame is aligned with predicted points."""
        return not (self.always_detect or self._lost or self._anchor is None)

    def _tracked_alignment(self, frame, points):
        """(`Alignment` with the predicted points or None when they are degenerate, its
        thumbnail or None)."""
        try:
            tracked = Alignment(frame, points, self.lm3d, False)
        except ValueError:            # Degenerate points: the track is lost.
            return None, None
        return tracked, face_thumbnail(tracked.crop_bgr, tracked.lm5_crop)

    def prepare(self, frames, pool):
        """Computes the tracked crops of the coming frames at once, in parallel.

        Only a speed-up: `align` uses a prepared crop when nothing it was
        predicted from has changed since (no detection, no `update`), and
        computes it again otherwise, so that the results are those of
        aligning one frame after the other. The crops are the bulk of the
        alignment's time (Pillow's resampling releases the GIL).

        Args:
          frames: sequence of (number, frame) about to be aligned, in order.
          pool: a `concurrent.futures.Executor` with threads.
        """
        self._prepared = {}
        if not self._tracking() or len(frames) < 2:
            return
        self._prepared_for = (self._anchor, self._history)   # both replaced, never changed
        work = pool.map(lambda item: (item[0], self._tracked_alignment(
            item[1], self.predicted_points(item[0]))), frames)
        self._prepared = dict(work)

    def _end_track(self, number):
        if not self._lost and self._track_start is not None:
            short = number - self._track_start < _SHORT_TRACK
            self._short_tracks = self._short_tracks + 1 if short else 0
        self._lost = True
        self._reference = None

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
        self._count_call()
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
        self._count_call()
        scaled, scales = _scaled_region(image, scale)
        # Pixel centres: Pillow maps x in the scaled image to (x + 0.5) / scale
        # - 0.5 in the original.
        return (self.detect(scaled) + 0.5) / scales - 0.5

    def update(self, number, aligned, lm68):
        """Takes the reconstruction of frame `number`.

        Args:
          number: the frame's position in the sequence.
          aligned: the `Alignment` the frame was reconstructed with.
          lm68: [68, 2] its reconstructed landmarks, frame pixels.
        """
        if self._anchor is None or self._lost:
            return
        points = lm5_from_lm68(lm68)
        drift = np.linalg.norm(points - aligned.lm5, axis=1).max()
        if drift > self.max_drift * max(eye_distance(aligned.lm5), 1.0):
            self._end_track(number)
            return
        self._history = (self._history + [(number, points)])[-_HISTORY:]
