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

Also `make_video` (any frames, for bad-input cases), `make_long_video` (a
long clip, streamed frame by frame, for memory benchmarks), `read_video` and
`five_from_68`.

Accuracy (checked by tests/test_synthetic_video.py): on decoded frames
aligned by preprocess_img.Preprocess with 5 points off by up to 4 pixels,
5% and 5 degrees, the oracle's 68 landmarks, reduced to 5 points and mapped
back with map_to_original, land within 0.04 eye distance of the true points
when alignment uses a 3D template with real depth (`release_depth_lm3d`).
With write_bfm09's own, nearly flat template (load_data.load_lm3d) the face
shrinks to about 24 pixels between the eyes in the crop, and the misses grow
to 0.09 eye distance: the crop's integer offset (up to one crop pixel, which
the release's mapping ignores) is then 0.04 eye distance by itself.

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
        from landmarks.files import read_landmarks
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


def accelerating_path(n_frames, size, peak_speed=0.08):
    """A head that starts still and speeds up steadily along a diagonal.

    The face centre moves along the direction (2, 1) with a constant
    acceleration, from rest on frame 0 to `peak_speed` eye distances per
    frame on the last frame, centred on the frame's centre over the whole
    path; meanwhile the scale grows from 1 to 1.05 and the roll from 0 to 8
    degrees. With the default eye distance (`EYE_DISTANCE_FRACTION` of the
    frame's smaller side) the face stays in view for `peak_speed` up to
    about 0.08 over 60 frames.

    Args:
      n_frames: number of frames (at least 2).
      size: (width, height) of the frame, pixels.
      peak_speed: the speed of the last frame, eye distances per frame (at
        scale 1).

    Returns:
      A function t -> (scale, angle_degrees, tx, ty); see `face_transform`.
    """
    width, height = size
    last = max(int(n_frames) - 1, 1)
    acceleration = peak_speed * EYE_DISTANCE_FRACTION * min(width, height) / last
    direction = np.array([2.0, 1.0]) / np.sqrt(5.0)
    total = 0.5 * acceleration * last ** 2

    def path(t):
        centre = np.array([width, height]) / 2.0 + direction * (0.5 * acceleration * t * t
                                                                 - total / 2.0)
        return 1.0 + 0.05 * t / last, 8.0 * t / last, centre[0], centre[1]

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


def face_box(points, grow=0.0):
    """A box around the whole face (brows to chin, cheek to cheek) from its 5 points.

    The default path keeps it inside the frame; covered frames hide it grown
    by 0.25 eye distance.

    Args:
      points: [5,2] the face's 5 points, pixels.
      grow: extra margin on every side, eye distances.

    Returns:
      (lo [2], hi [2]): the top-left and bottom-right corners, pixels: the
      points' bounding box grown by 0.9 eye distance to the sides, 1.1 up
      and 1.15 down (plus `grow`).
    """
    eye_distance = np.linalg.norm(points[1] - points[0])
    lo = points.min(axis=0) - (np.array([0.9, 1.1]) + grow) * eye_distance
    hi = points.max(axis=0) + (np.array([0.9, 1.15]) + grow) * eye_distance
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
    shift = 4                                   # fixed point: 1/16 pixel
    one = 1 << shift
    for point, color in zip(np.asarray(points, dtype=np.float64), MARKER_COLORS):
        centre = (int(round(point[0] * one)), int(round(point[1] * one)))
        cv2.circle(frame, centre, int(round(radius * one)), color, thickness=-1,
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
            lo, hi = face_box(points, grow=0.25)
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
    """Encodes RGB frames with PyAV; the stream is set up from the first frame.

    A context manager: leaving normally flushes the encoder and closes the
    file; leaving on an error only closes it (the error is not masked).
    """

    def __init__(self, path, fps, codec, options=None, rotation=0, times=None):
        import av
        self._av = av
        self.rate = _rate(fps)
        self.codec = codec
        self.options = dict(_ENCODER_OPTIONS.get(codec, {}) if options is None else options)
        self.rotation = rotation
        self.times = None if times is None else [Fraction(t).limit_denominator(1000)
                                                 for t in times]
        self.container = av.open(os.fspath(path), "w")
        self.stream = None
        self.count = 0
        self.shape = None

    def _open(self, height, width):
        self.stream = self.container.add_stream(self.codec, rate=self.rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = _PIXEL_FORMATS.get(self.codec, "yuv420p")
        self.stream.options = self.options
        if self.rotation:
            self.stream.set_display_rotation(self.rotation)
        if self.times is not None:            # millisecond timestamps
            self.stream.codec_context.time_base = Fraction(1, 1000)

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
        if self.times is None:
            video_frame.pts = self.count
            video_frame.time_base = 1 / self.rate
        else:
            video_frame.pts = int(self.times[self.count] * 1000)
            video_frame.time_base = Fraction(1, 1000)
        self.container.mux(self.stream.encode(video_frame))
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is not None:
            try:
                self.container.close()
            except Exception:       # the original error is the one to report
                pass
            return False
        try:
            if self.stream is None:                  # no frames: an empty stream
                self._open(48, 64)
                self.container.start_encoding()      # writes the header
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()
        return False


def make_video(path, frames, fps=25, codec="mpeg4", options=None, rotation=0, times=None):
    """Writes RGB frames to a video file with PyAV (for bad-input and edge cases).

    Args:
      path: output file; the container follows the extension (.mp4, .avi, .mkv...).
      frames: iterable of [H,W,3] uint8 RGB arrays, all the same size,
        consumed one at a time. mpeg4 takes odd sizes, libx264 only even
        ones (PyAV raises av.error.ExternalError). An empty iterable writes
        a header and no frames; what readers then see depends on the
        container (mp4: no video stream, avi: an empty 64x48 stream, mkv: a
        file PyAV cannot open).
      fps: frame rate (int, float or Fraction): the frames' spacing, and what
        the stream declares.
      codec: encoder name ("mpeg4", "libx264", "libvpx-vp9", "mjpeg", "ffv1"...).
      options: encoder options; default the high-quality settings of the codec.
      rotation: a display rotation for the stream (PyAV's
        `set_display_rotation`: the angle, in degrees counterclockwise, by
        which a player turns the stored frames to show them; 0: none).
      times: optional presentation time of each frame, seconds (rounded to
        milliseconds, increasing): a variable frame rate.

    Returns:
      The number of frames written.

    Raises:
      ValueError: a frame is not [H,W,3] uint8 or differs in size from the first.
    """
    with _VideoWriter(path, fps, codec, options, rotation, times) as writer:
        for frame in frames:
            writer.write(frame)
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
    points, flags = [], []
    with _VideoWriter(path, fps, codec) as writer:
        for frame, frame_points, is_covered in iter_moving_face_frames(
                photo_path, landmarks, n_frames, size, path_fn, covered, markers):
            writer.write(frame)
            points.append(frame_points)
            flags.append(is_covered)
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
    points = np.zeros((n_frames, 5, 2))
    with _VideoWriter(path, fps, codec) as writer:
        for t, (frame, frame_points, _) in enumerate(iter_moving_face_frames(
                photo_path, landmarks, n_frames, size, markers=markers, period=period)):
            writer.write(frame)
            points[t] = frame_points
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


# ----------------------------------------------------------------------------
# The marker oracle R-Net
# ----------------------------------------------------------------------------

# Keypoints of the 5 points, in the order used by the oracle's forward model.
_KEYPOINT_ROWS = (36, 39, 42, 45, 30, 48, 54)
_N_POSE = 4                      # roll (angles[2]), tx, ty, tz
_N_EXP = 64
_ITERATIONS = 4
_MIN_MASS = 0.5                 # marker weight (about pixels) below which a colour is absent
_STEP = 1e-5                     # finite-difference step of the fit


def _layout(n_out):
    """Where the angles, lighting and translation blocks start for a coefficient length."""
    if n_out not in (239, 257, 258):
        raise ValueError(f"n_out must be 239, 257 or 258, got {n_out}")
    n_light = 9 if n_out == 239 else 27
    return 224, 227, 227 + n_light


def _pose_coefficients(n_out, roll, translation):
    """One coefficient vector, zero but for the roll (angles[2]) and the translation."""
    angles_at, _, trans_at = _layout(n_out)
    coeff = np.zeros(n_out, dtype=np.float64)
    coeff[angles_at + 2] = roll
    coeff[trans_at:trans_at + 3] = translation
    return coeff


def marker_oracle_calibration(bfm_dir, n_out=257):
    """Calibrates the marker oracle for a face model, numerically (NumPy).

    The oracle's unknowns are the state [roll (angles[2], radians), tx, ty, tz
    (decimetres), 64 expression coefficients]. Decoding with
    `reconstruct_mesh.reconstruct` (float64) at the zero state gives the
    canonical 5 points, and central differences in each pose parameter the
    Jacobian from which the oracle's closed-form start is derived: how the
    image angle and the length of the eye-to-cyan vector (from the eyes'
    centre to the centre of nose and mouth corners) follow roll and tz, and
    how the centre of the 5 points follows tx, ty.

    Args:
      bfm_dir: folder of the face model (BFM_model_front.mat is made with
        `load_data.transferBFM09` when needed).
      n_out: coefficient length, 257, 258 or 239.

    Returns:
      A dict: five0 [5,2] canonical 5 points (crop pixels, x right, y down);
      pose_jacobian [5,2,4] (pixels per radian / decimetre of roll, tx, ty,
      tz); d_angle_d_roll (radians of image angle of the eye-to-cyan vector
      per radian of roll, -1 as the image's y points down); depth0
      (decimetres: the eye-to-cyan vector scales by depth0 / (depth0 - tz));
      d_centre_d_txy [2,2] (pixels per decimetre); base [7,3] and ex_basis
      [7,3,64] (unposed, re-centred keypoints 36, 39, 42, 45, 30, 48, 54 and
      their rows of the expression basis, decimetres); model (the front
      model's dict).
    """
    import load_data
    import reconstruct_mesh

    model = load_data.load_front_model(load_data.transferBFM09(bfm_dir))

    def five(pose):
        coeff = _pose_coefficients(n_out, pose[0], pose[1:4])
        return five_from_68(reconstruct_mesh.reconstruct(coeff, model, np.float64)["lm_68p"])

    five0 = five(np.zeros(_N_POSE))
    step = 1e-4
    jacobian = np.stack([(five(step * e) - five(-step * e)) / (2 * step)
                         for e in np.eye(_N_POSE)], axis=-1)                # [5,2,4]

    def eye_to_cyan(points):
        return points[2:5].mean(axis=0) - points[0:2].mean(axis=0)

    vector0 = eye_to_cyan(five0)
    d_vector = eye_to_cyan(jacobian)                                      # [2,4]
    d_angle_d_roll = (vector0[0] * d_vector[1, 0] - vector0[1] * d_vector[0, 0]) \
        / (vector0 @ vector0)
    d_length_d_tz = vector0 @ d_vector[:, 3] / np.linalg.norm(vector0)
    if not (vector0[1] > abs(vector0[0]) and d_length_d_tz > 0):
        raise ValueError(f"{bfm_dir}: the model's canonical face is not upright and in front "
                         "of the camera; cannot calibrate the marker oracle")

    shape = reconstruct_mesh.shape_formation(np.zeros(80), np.zeros(_N_EXP), model, np.float64)
    keypoints = np.asarray(model["keypoints"]).astype(np.int64).reshape(-1) - 1
    vertices = keypoints[list(_KEYPOINT_ROWS)]
    ex_base = np.asarray(model["exBase"], np.float64).reshape(-1, 3, _N_EXP)[vertices]
    return {"five0": five0, "pose_jacobian": jacobian,
            "d_angle_d_roll": float(d_angle_d_roll),
            "depth0": float(np.linalg.norm(vector0) / d_length_d_tz),
            "d_centre_d_txy": jacobian.mean(axis=0)[:, 1:3], "base": shape[vertices],
            "ex_basis": ex_base, "model": model}


# Depths (z, decimetres) of the 5 standard landmarks in the release's
# similarity_Lm3D_all.mat, rounded: the nose tip 0.42 in front of the eyes.
RELEASE_LM3D_DEPTHS = (0.13, 0.13, 0.55, 0.22, 0.22)


def release_depth_lm3d(bfm_dir):
    """The 5 standard 3D landmarks of a model with the release's depth profile.

    `tests.synthetic_assets.write_bfm09`'s small model is a shallow cap: its
    5 landmarks are nearly coplanar (the nose tip 0.03 dm in front of the
    eyes, against 0.42 in the release's file). preprocess_img.POS fits an
    affine camera with a free depth column, which then absorbs every
    difference between a photo's nose and the model's, inflating the scale:
    the face comes out at about 0.25-0.75 of its usual size in the crop (eye
    distance 14-49 pixels instead of about 64) and that size jumps by 20% for
    a 2-pixel landmark change. With this lm3d (x, y of the model, z of the
    release) alignment behaves as with the real model.

    Args:
      bfm_dir: folder with similarity_Lm3D_all.mat.

    Returns:
      [5,3] float32: load_data.load_lm3d(bfm_dir) with z = RELEASE_LM3D_DEPTHS.
    """
    import load_data
    lm3d = np.array(load_data.load_lm3d(bfm_dir), dtype=np.float32)
    lm3d[:, 2] = RELEASE_LM3D_DEPTHS
    return lm3d


def _ramp(x, zero_at, one_at):
    import tensorflow as tf
    return tf.clip_by_value((x - zero_at) / (one_at - zero_at), 0.0, 1.0)


def marker_weights(images):
    """Soft masks of the magenta and cyan markers in BGR images (TensorFlow).

    Args:
      images: [B,H,W,3] float32 tensor, BGR, 0-255.

    Returns:
      (magenta [B,H,W], cyan [B,H,W]) weights in [0, 1]: magenta needs R and
      B high (150 -> 210) and G low (110 -> 50); cyan G and B high, R low.
    """
    blue, green, red = images[..., 0], images[..., 1], images[..., 2]
    magenta = _ramp(red, 150.0, 210.0) * _ramp(blue, 150.0, 210.0) * _ramp(green, 110.0, 50.0)
    cyan = _ramp(green, 150.0, 210.0) * _ramp(blue, 150.0, 210.0) * _ramp(red, 110.0, 50.0)
    return magenta, cyan


def _marker_graph(images, calibration, n_out, fit_shape):
    """Builds the oracle: [B,224,224,3] BGR images -> [B,n_out] coefficients."""
    import tensorflow as tf

    import face_decoder

    five0 = calibration["five0"]
    eye0 = five0[0:2].mean(axis=0)
    cyan0 = five0[2:5].mean(axis=0)
    size = int(images.shape[1])
    coords = tf.range(size, dtype=tf.float32)
    xs, ys = coords[None, None, :], coords[None, :, None]

    def centroid(weights, fallback):
        mass = tf.reduce_sum(weights, axis=[1, 2])
        sums = tf.stack([tf.reduce_sum(weights * xs, axis=[1, 2]),
                         tf.reduce_sum(weights * ys, axis=[1, 2])], axis=1)
        return (sums + 1e-3 * fallback) / (mass + 1e-3)[:, None], mass

    def along(direction, origin):           # (pixel - origin) . direction, [B,H,W]
        return ((xs - origin[:, 0, None, None]) * direction[:, 0, None, None]
                + (ys - origin[:, 1, None, None]) * direction[:, 1, None, None])

    def squared_distance(point):
        return (xs - point[:, 0, None, None]) ** 2 + (ys - point[:, 1, None, None]) ** 2

    def below(a, b):
        return tf.cast(a < b, tf.float32)

    batch = tf.shape(images)[0]
    magenta, cyan = marker_weights(images)
    eye, magenta_mass = centroid(magenta, tf.tile(tf.constant(eye0[None], tf.float32),
                                                  [batch, 1]))
    mouth_nose, cyan_mass = centroid(cyan, tf.tile(tf.constant(cyan0[None], tf.float32),
                                                   [batch, 1]))
    # Eyes: the magenta pixels on either side of the face's vertical axis (from
    # the magenta to the cyan centre), then each pixel to the nearer eye.
    down = mouth_nose - eye
    down = down / tf.maximum(tf.norm(down, axis=1, keepdims=True), 1e-3)
    right = tf.stack([down[:, 1], -down[:, 0]], axis=1)
    left_eye_w = magenta * below(along(right, eye), 0.0)
    eyes = [centroid(left_eye_w, eye)[0], centroid(magenta - left_eye_w, eye)[0]]
    left_eye_w = magenta * below(squared_distance(eyes[0]), squared_distance(eyes[1]))
    eyes = [centroid(left_eye_w, eyes[0]), centroid(magenta - left_eye_w, eyes[1])]
    # Nose and mouth corners: where the canonical face puts them relative to the
    # eyes (in units of the eye axis), then two rounds of nearest-centre
    # assignment of the cyan pixels (k-means).
    axis = eyes[1][0] - eyes[0][0]                                      # [B,2]
    normal = tf.stack([-axis[:, 1], axis[:, 0]], axis=1)                # image "down"
    middle = 0.5 * (eyes[0][0] + eyes[1][0])
    axis0 = five0[1] - five0[0]
    normal0 = np.array([-axis0[1], axis0[0]])
    guesses = []
    for point in five0[2:5]:
        a, b = (np.array([axis0, normal0]) @ (point - eye0)) / (axis0 @ axis0)
        guesses.append(middle + a * axis + b * normal)
    for _ in range(2):
        dist = [squared_distance(p) for p in guesses]
        nose_w = cyan * below(dist[0], dist[1]) * below(dist[0], dist[2])
        left_mouth_w = (cyan - nose_w) * below(dist[1], dist[2])
        cyan_w = [nose_w, left_mouth_w, cyan - nose_w - left_mouth_w]
        centroids = [centroid(w, p) for w, p in zip(cyan_w, guesses)]
        guesses = [c for c, _ in centroids]
    centroids = eyes + centroids
    target = tf.stack([c for c, _ in centroids], axis=1)                # [B,5,2]
    masses = tf.stack([m for _, m in centroids], axis=1)                # [B,5]
    target = tf.identity(target, name="marker_points")
    valid = ((magenta_mass > _MIN_MASS) & (cyan_mass > _MIN_MASS)
             & tf.reduce_all(masses > 0.1 * _MIN_MASS, axis=1))

    # The fit runs in float64: the weighted normal equations are badly scaled.
    f64 = tf.float64
    target = tf.cast(target, f64)
    # Closed-form start from the eye and cyan centres: roll from the direction of
    # the eye-to-cyan vector, tz from its length, tx, ty from the centre.
    vector0 = cyan0 - eye0
    vector = tf.reduce_mean(target[:, 2:5], axis=1) - tf.reduce_mean(target[:, 0:2], axis=1)
    turn = tf.atan2(vector0[0] * vector[:, 1] - vector0[1] * vector[:, 0],
                    vector0[0] * vector[:, 0] + vector0[1] * vector[:, 1])
    roll = turn / calibration["d_angle_d_roll"]
    ratio = tf.maximum(tf.norm(vector, axis=1) / np.linalg.norm(vector0), 0.2)
    tz = calibration["depth0"] * (1.0 - 1.0 / ratio)
    shift = tf.reduce_mean(target, axis=1) - five0.mean(axis=0)
    txy = tf.matmul(shift, np.linalg.inv(calibration["d_centre_d_txy"]).T) / ratio[:, None]
    state = tf.concat([roll[:, None], txy, tz[:, None],
                       tf.zeros(tf.stack([batch, _N_EXP]), f64)], axis=1)

    base = tf.constant(calibration["base"])                                  # [7,3]
    ex_basis = tf.constant(calibration["ex_basis"].reshape(21, _N_EXP).T)    # [64,21]
    n_state = _N_POSE + _N_EXP
    weights = np.r_[np.full(_N_POSE, 1e4), np.full(_N_EXP, 1.0 if fit_shape else 0.0)]
    probes = tf.constant(np.concatenate([np.eye(n_state), -np.eye(n_state)]) * _STEP)

    def forward(state):                     # the decoder's 5 points, [K,10]
        shape = base + tf.reshape(tf.matmul(state[:, _N_POSE:], ex_basis), [-1, 7, 3])
        zeros = tf.zeros_like(state[:, 0])
        rotation = face_decoder.compute_rotation(tf.stack([zeros, zeros, state[:, 0]], axis=1))
        posed = face_decoder.rotate(shape, rotation) + state[:, None, 1:4]
        lm = face_decoder.project_points(posed)
        five = tf.stack([tf.reduce_mean(lm[:, 0:2], axis=1), tf.reduce_mean(lm[:, 2:4], axis=1),
                         lm[:, 4], lm[:, 5], lm[:, 6]], axis=1)
        return tf.reshape(five, [-1, 10])

    # Gauss-Newton with a weighted minimum-norm step (the system is
    # underdetermined): step = W J^T (J W J^T + lambda I)^-1 residual, with the
    # Jacobian J from central differences of the forward model.
    for _ in range(_ITERATIONS):
        residual = tf.reshape(target, [-1, 10]) - forward(state)           # [B,10]
        probed = forward(tf.reshape(state[:, None, :] + probes, [-1, n_state]))
        probed = tf.reshape(probed, [-1, 2, n_state, 10])
        jacobian = tf.transpose(probed[:, 0] - probed[:, 1], [0, 2, 1]) / (2 * _STEP)
        weighted = jacobian * weights                                       # [B,10,n]
        normal = tf.matmul(weighted, jacobian, transpose_b=True) + 1e-3 * np.eye(10)
        solved = tf.linalg.solve(normal, residual[:, :, None])
        state = state + tf.matmul(weighted, solved, transpose_a=True)[:, :, 0]
    miss = tf.reshape(target, [-1, 10]) - forward(state)
    miss = tf.cast(tf.reduce_max(tf.abs(miss), axis=1), tf.float32)
    tf.identity(tf.where(valid, miss, tf.zeros_like(miss)), name="marker_fit_residual")
    state = tf.cast(state, tf.float32)

    angles_at, light_at, trans_at = _layout(n_out)
    zeros = tf.zeros_like(state[:, :1])

    def block(n):
        return tf.zeros(tf.stack([batch, n]), tf.float32)

    coeff = tf.concat([block(80), state[:, _N_POSE:], block(80), zeros, zeros, state[:, :1],
                       block(trans_at - light_at), state[:, 1:4],
                       block(n_out - trans_at - 3)], axis=1)
    canonical = tf.zeros_like(coeff)
    return tf.where(valid[:, None], coeff, canonical)


def write_marker_rnet(path, bfm_dir, n_out=257, fit_shape=True):
    """Writes a frozen oracle R-Net that puts the landmarks on the markers.

    For crops of marker videos (`make_moving_face_video`), the graph finds
    the magenta (eyes) and cyan (nose, mouth corners) pixels with soft colour
    masks (`marker_weights`) and splits them into the 5 markers: the magenta
    pixels on either side of the axis from the magenta to the cyan centroid
    (the eyes), the cyan ones by nearest centre, starting where the model's
    canonical face has its nose and mouth corners relative to those eyes. The
    5 weighted centroids are the targets (tensor `marker_points`, [B,5,2]).

    Coefficients: a closed-form start (roll from the direction of the vector
    from the eyes' centre to the centre of the cyan markers, tz from its
    length, tx, ty from the centre offset; calibrated numerically for the
    model in `bfm_dir` by `marker_oracle_calibration`), then 4 Gauss-Newton
    steps in float64 on the decoder's 5 points (face_decoder's rotation and
    projection of the keypoints, a finite-difference Jacobian, the weighted
    minimum-norm step of an underdetermined system). The pose takes every
    similarity of the 5 points; with `fit_shape` the 64 expression
    coefficients take the rest (a photo's proportions differ from the
    model's), so the decoded 5 points land on the markers themselves (tensor
    `marker_fit_residual` [B]: the largest remaining miss, pixels).

    Outputs: identity, albedo and lighting zero (the decoder adds ambient 0.8),
    pitch and yaw zero; roll (angles[2]), translation and expression as
    fitted. Without markers (less than about half a pixel's weight of either
    colour, or one of the 5 markers empty) the output is all zeros: the
    canonical face. Other magenta or cyan things in the crop would bias it.

    The graph has the R-Net's interface (see tests/synthetic_network.py):
    placeholder `input_imgs` float32 [None,224,224,3] BGR 0-255, output
    `coeff` float32 [None,n_out]; constants only, no variables.

    Args:
      path: output .pb path.
      bfm_dir: the face model's folder (e.g. written by
        tests.synthetic_assets.write_bfm09; converted with transferBFM09).
      n_out: 257, 258 or 239.
      fit_shape: False fits the pose only (expression zero).

    Returns:
      `path`.
    """
    import tensorflow as tf

    from tests.synthetic_network import INPUT_NAME, OUTPUT_NAME, _write_graph_def

    calibration = marker_oracle_calibration(bfm_dir, n_out)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name=INPUT_NAME)
        tf.identity(_marker_graph(images, calibration, n_out, fit_shape), name=OUTPUT_NAME)
    _write_graph_def(graph.as_graph_def(), path)
    return path
