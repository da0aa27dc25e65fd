"""Synthetic videos of a moving face, and an oracle R-Net that reads their markers.

Fixtures for the video extraction (`extract.py`), which tracks a face across
frames: the 5 alignment points of frame t come from the landmarks that the
R-Net reconstructed on an earlier frame. Testing that needs

- videos of a real face moving along a known path (`make_moving_face_video`):
  a photo warped by a similarity transform per frame, the true 5 points of
  every frame returned, optionally some frames with the face covered and
  small coloured markers on the 5 points (eyes magenta, nose and mouth
  corners cyan);
- a network that actually sees where the face is in the aligned crop
  (`write_marker_rnet`): a frozen graph, with the R-Net's interface, that
  finds the markers in the crop and outputs coefficients whose decoded
  landmarks (face_decoder.Face3D / reconstruct_mesh) lie on the markers.

Also `make_video` (any frames, for bad-input cases) and `make_long_video`
(a long clip, streamed frame by frame, for memory benchmarks).

The default photo is the repository's public-domain `input/astronaut.png`
with its landmark file, so nothing here needs `../shared`; any photo with a
5-point landmark file (e.g. `../shared/data/images/000002.jpg`) works too.

Coordinates are pixels, x right, y down; the 5 points are in the release's
order: left eye, right eye, nose tip, left mouth corner, right mouth corner
("left" = smaller x in the image).
"""
import os
import pathlib
from fractions import Fraction

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO_ROOT / "input" / "astronaut.png"
DEFAULT_LANDMARKS = REPO_ROOT / "input" / "astronaut.txt"

# Marker colours, RGB: eyes magenta, nose and mouth corners cyan.
MAGENTA = (255, 0, 255)
CYAN = (0, 255, 255)
MARKER_COLORS = (MAGENTA, MAGENTA, CYAN, CYAN, CYAN)
MARKER_RADIUS = 2.0
COVER_GREY = (128, 128, 128)

# Eye distance at scale 1 of the default path, as a fraction of min(width, height).
EYE_DISTANCE_FRACTION = 0.18

# The 68-landmark rows that give the 5 points (load_data.load_lm3d's convention).
FIVE_POINT_ROWS = ((36, 39), (42, 45), (30,), (48,), (54,))

# High-quality settings per encoder (the markers' colours must survive).
# mpeg4: fixed quantizer 2 (global_quality = 2 * FF_QP2LAMBDA).
_ENCODER_OPTIONS = {
    "mpeg4": {"flags": "+qscale", "global_quality": str(2 * 118)},
    "libx264": {"crf": "10", "preset": "veryfast"},
    "h264": {"crf": "10", "preset": "veryfast"},
    "libvpx-vp9": {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"},
    "mjpeg": {"flags": "+qscale", "global_quality": str(2 * 118)},
    "ffv1": {},
}
_PIXEL_FORMATS = {"mjpeg": "yuvj420p"}


def five_from_68(lm68):
    """The 5 alignment points from 68 landmarks (eye centres, nose tip, mouth corners).

    Args:
      lm68: [..., 68, 2] landmarks.

    Returns:
      [..., 5, 2] float64: mean(36, 39), mean(42, 45), 30, 48, 54.
    """
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[..., list(rows), :].mean(axis=-2) for rows in FIVE_POINT_ROWS],
                    axis=-2)


def _read_landmarks(landmarks):
    if isinstance(landmarks, (str, os.PathLike)):
        from image_io import read_landmarks
        return read_landmarks(landmarks)
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"landmarks must be [5,2] finite, got shape {points.shape}")
    return points


def _read_photo(photo_path):
    from PIL import Image
    with Image.open(photo_path) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def default_path(n_frames, size):
    """The default motion: a slow ellipse, a breathing scale and a gentle roll.

    Over `n_frames` frames (one period) the face centre (the mean of the 5
    points) goes once round an ellipse centred in the frame with semi-axes
    15% of the width and height, the scale follows 1 + 0.1 sin(2 phase) and
    the roll 10 cos(phase) degrees.

    Args:
      n_frames: the period, frames.
      size: (width, height) of the frame, pixels.

    Returns:
      A function t -> (scale, angle_degrees, tx, ty); see `face_transform`.
    """
    width, height = size
    period = max(int(n_frames), 1)

    def path(t):
        phase = 2.0 * np.pi * t / period
        return (1.0 + 0.1 * np.sin(2.0 * phase), 10.0 * np.cos(phase),
                width / 2.0 + 0.15 * width * np.sin(phase),
                height / 2.0 + 0.15 * height * np.cos(phase))

    return path


def face_transform(landmarks, size, scale, angle_degrees, tx, ty):
    """The similarity transform that places the photo's face in a frame.

    Scale 1 makes the eye distance EYE_DISTANCE_FRACTION * min(width, height)
    pixels; the face centre (the mean of the 5 landmarks) goes to (tx, ty); a
    positive angle turns the face counter-clockwise on screen (cv2's
    convention).

    Args:
      landmarks: [5,2] the photo's 5 points, pixels.
      size: (width, height) of the frame.
      scale: relative size, 1 = default size.
      angle_degrees: roll, degrees, counter-clockwise on screen.
      tx, ty: where the face centre goes, frame pixels.

    Returns:
      [2,3] float64 matrix M: frame point = M[:, :2] @ photo point + M[:, 2].
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    eye_distance = np.linalg.norm(landmarks[1] - landmarks[0])
    s = scale * EYE_DISTANCE_FRACTION * min(size) / eye_distance
    angle = np.deg2rad(angle_degrees)
    a, b = s * np.cos(angle), s * np.sin(angle)
    linear = np.array([[a, b], [-b, a]])
    centre = landmarks.mean(axis=0)
    return np.column_stack([linear, np.array([tx, ty]) - linear @ centre])


def _cover_box(points):
    """Corners (x0, y0, x1, y1) of a rectangle hiding the whole face around its 5 points."""
    eye_distance = np.linalg.norm(points[1] - points[0])
    lo = points.min(axis=0) - np.array([1.0, 1.4]) * eye_distance
    hi = points.max(axis=0) + np.array([1.0, 1.4]) * eye_distance
    return lo, hi


def draw_markers(frame, points, radius=MARKER_RADIUS):
    """Draws filled discs at the 5 points, in place (eyes magenta, the rest cyan).

    Args:
      frame: [H,W,3] uint8 RGB, C-contiguous; modified.
      points: [5,2] pixels, sub-pixel positions honoured (1/16 pixel).
      radius: disc radius, pixels.

    Returns:
      `frame`.
    """
    import cv2
    shift = 4
    for point, color in zip(np.asarray(points, dtype=np.float64), MARKER_COLORS):
        centre = (int(round(point[0] * 16)), int(round(point[1] * 16)))
        cv2.circle(frame, centre, int(round(radius * 16)), color, thickness=-1,
                   lineType=cv2.LINE_8, shift=shift)
    return frame


def iter_moving_face_frames(photo_path=DEFAULT_PHOTO, landmarks=DEFAULT_LANDMARKS, n_frames=40,
                            size=(320, 240), path_fn=None, covered=(), markers=True,
                            period=None):
    """Generates the frames of a moving face one at a time (nothing is kept).

    Args:
      photo_path: the photo (any format PIL reads; converted to RGB).
      landmarks: its 5 points, [5,2] pixels, or the path of a landmark file.
      n_frames: number of frames.
      size: (width, height) of the frames, pixels.
      path_fn: t -> (scale, angle_degrees, tx, ty) for frame t (see
        `face_transform`); default `default_path(period, size)`.
      covered: frame indices whose face is hidden by an opaque grey
        rectangle (no markers are drawn there).
      markers: draw the 5 markers on the uncovered frames.
      period: period of the default path, frames (default n_frames).

    Yields:
      (frame [H,W,3] uint8 RGB, points [5,2] float64 true 5 points of the
      frame, is_covered bool).
    """
    import cv2

    photo = _read_photo(photo_path)
    landmarks = _read_landmarks(landmarks)
    width, height = int(size[0]), int(size[1])
    if path_fn is None:
        path_fn = default_path(period or n_frames, (width, height))
    covered = {int(t) for t in covered}
    for t in range(int(n_frames)):
        matrix = face_transform(landmarks, (width, height), *path_fn(t))
        frame = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=COVER_GREY)
        points = landmarks @ matrix[:, :2].T + matrix[:, 2]
        is_covered = t in covered
        if is_covered:
            lo, hi = _cover_box(points)
            x0, y0 = np.maximum(np.floor(lo), 0).astype(int)
            x1, y1 = np.ceil(hi).astype(int) + 1
            frame[y0:max(y1, y0), x0:max(x1, x0)] = COVER_GREY
        elif markers:
            draw_markers(frame, points)
        yield frame, points, is_covered


def _rate(fps):
    rate = Fraction(fps).limit_denominator(100000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


class _VideoWriter:
    """Encodes RGB frames with PyAV; the stream is set up from the first frame."""

    def __init__(self, path, fps, codec, options=None):
        import av
        self._av = av
        self.rate = _rate(fps)
        self.codec = codec
        self.options = dict(_ENCODER_OPTIONS.get(codec, {}) if options is None else options)
        self.container = av.open(os.fspath(path), "w")
        self.stream = None
        self.count = 0
        self.shape = None

    def _open(self, height, width):
        self.stream = self.container.add_stream(self.codec, rate=self.rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = _PIXEL_FORMATS.get(self.codec, "yuv420p")
        self.stream.options = self.options

    def write(self, frame):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be [H,W,3] uint8 RGB, got {frame.shape} {frame.dtype}")
        if self.stream is None:
            self.shape = frame.shape
            self._open(*frame.shape[:2])
        elif frame.shape != self.shape:
            raise ValueError(f"frame {self.count} is {frame.shape}, the first was {self.shape}")
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                       format="rgb24")
        video_frame.pts = self.count
        video_frame.time_base = 1 / self.rate
        self.container.mux(self.stream.encode(video_frame))
        self.count += 1

    def close(self, empty_size=(64, 48)):
        try:
            if self.stream is None:                  # no frames: an empty stream
                self._open(empty_size[1], empty_size[0])
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


def make_video(path, frames, fps=25, codec="mpeg4", options=None):
    """Writes RGB frames to a video file with PyAV (for bad-input and edge cases).

    Args:
      path: output file; the container follows the extension (.mp4, .avi, .mkv...).
      frames: iterable of [H,W,3] uint8 RGB arrays, all the same size (even
        width and height for yuv420p codecs); consumed one at a time. An
        empty iterable writes a stream with no frames.
      fps: frame rate (int, float or Fraction).
      codec: encoder name ("mpeg4", "libx264", "libvpx-vp9", "mjpeg", "ffv1"...).
      options: encoder options; default the high-quality settings of the codec.

    Returns:
      The number of frames written.

    Raises:
      ValueError: a frame is not [H,W,3] uint8 or differs in size from the first.
    """
    writer = _VideoWriter(path, fps, codec, options)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()
    return writer.count


def make_moving_face_video(path, photo_path=DEFAULT_PHOTO, landmarks=DEFAULT_LANDMARKS,
                           n_frames=40, size=(320, 240), fps=25, path_fn=None, covered=(),
                           markers=True, codec="mpeg4"):
    """Writes a video of a photo's face moving along a known path.

    Each frame is the photo warped by a similarity transform (`face_transform`)
    onto a grey canvas; by default (`default_path`) the face goes once round a
    slow ellipse (15% of the frame) while its scale stays in 0.9-1.1 and its
    roll within +-10 degrees, its eye distance 0.18 min(width, height) at
    scale 1 (39-48 pixels at 320x240), always fully in view.

    Args:
      path: output video file (.mp4, .avi, .mkv...).
      photo_path: the photo; default the repository's input/astronaut.png.
      landmarks: its 5 points, [5,2] pixels, or a landmark file path.
      n_frames: number of frames.
      size: (width, height) of the frames, pixels, even.
      fps: frame rate.
      path_fn: t -> (scale, angle_degrees, tx, ty) overriding the default path.
      covered: frame indices whose face is hidden by an opaque grey rectangle.
      markers: draw the markers (eyes magenta, nose and mouth corners cyan,
        discs of radius 2 pixels) at the true points of uncovered frames.
      codec: encoder ("mpeg4" or "libx264"; see `make_video`).

    Returns:
      A dict: points [n_frames,5,2] float64, the true 5 points of each frame
      (pixels, x right, y down, the landmark file's order); covered
      [n_frames] bool; fps; size (width, height); path.
    """
    writer = _VideoWriter(path, fps, codec)
    points, flags = [], []
    try:
        for frame, frame_points, is_covered in iter_moving_face_frames(
                photo_path, landmarks, n_frames, size, path_fn, covered, markers):
            writer.write(frame)
            points.append(frame_points)
            flags.append(is_covered)
    finally:
        writer.close()
    return {"points": np.asarray(points, dtype=np.float64).reshape(-1, 5, 2),
            "covered": np.asarray(flags, dtype=bool), "fps": fps,
            "size": (int(size[0]), int(size[1])), "path": pathlib.Path(path)}


def make_long_video(path, seconds, size=(1280, 720), fps=25, photo_path=DEFAULT_PHOTO,
                    landmarks=DEFAULT_LANDMARKS, codec="mpeg4", markers=True):
    """Writes a long moving-face video, generating and encoding one frame at a time.

    Memory stays that of a few frames whatever the length (for memory
    benchmarks of the extraction). The face loops round the default path
    every 10 seconds.

    Args:
      path: output video file.
      seconds: duration, seconds (n_frames = round(seconds * fps)).
      size: (width, height), pixels, even.
      fps: frame rate.
      photo_path, landmarks: the photo and its 5 points (default the astronaut).
      codec: encoder.
      markers: draw the markers.

    Returns:
      A dict: points [n_frames,5,2] float64 true points, n_frames, fps, size, path.
    """
    n_frames = int(round(seconds * float(fps)))
    period = max(int(round(10 * float(fps))), 1)
    writer = _VideoWriter(path, fps, codec)
    points = np.zeros((n_frames, 5, 2))
    try:
        for t, (frame, frame_points, _) in enumerate(iter_moving_face_frames(
                photo_path, landmarks, n_frames, size, markers=markers, period=period)):
            writer.write(frame)
            points[t] = frame_points
    finally:
        writer.close()
    return {"points": points, "n_frames": n_frames, "fps": fps,
            "size": (int(size[0]), int(size[1])), "path": pathlib.Path(path)}


def read_video(path):
    """Decodes every frame of a video's first video stream.

    Args:
      path: the video file.

    Yields:
      [H,W,3] uint8 RGB frames, in order.
    """
    import av
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
