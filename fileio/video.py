"""Frames of a video (or a photo) as they are displayed, decoded in a thread.

PyAV (FFmpeg in its wheel) decodes in a background thread into a bounded
queue; the caller takes frames as it needs them, never a whole video in
memory. The frame count is what was decoded, not what the container claims.

What phones and datasets store, handled here:
- Rotation. A phone stores a portrait video as landscape frames plus a
  display matrix saying how to turn them (FFmpeg's side data, PyAV's
  `VideoFrame.rotation`: the angle by which the frame is turned
  counterclockwise to be shown, 90, -90 or 180). Frames are turned here, so
  every later coordinate is in displayed pixels. Angles that are not a
  multiple of 90 are rounded to the nearest one, as FFmpeg's own player
  does for its transpose filters.
- Time. Each frame comes with its presentation time in seconds, the
  container's pts times its time base, unchanged (not re-based to start at
  0), so that a variable frame rate and the audio track line up.
- Damage. A video that breaks off keeps the frames decoded before: when
  FFmpeg raises in the middle, or when the video ends more than half a
  second (and two frames) before the duration its container declares (a
  truncated file usually just ends early), `damage` says so in one line and
  iteration ends normally. A video whose first frame cannot be decoded
  raises `InputError`.
"""
import os
import pathlib
import threading

import numpy as np

from fileio.background import Background
from fileio.errors import InputError
from fileio.images import read_image

VIDEO_EXTENSIONS = frozenset(".mp4 .mov .avi .mkv .webm".split())
_SHORTFALL_SECONDS = 0.5          # an early end shorter than this (and 2 frames) is not damage


def is_video(path):
    """True when the file name has a video extension (any case)."""
    return pathlib.PurePath(path).suffix.lower() in VIDEO_EXTENSIONS


class FrameReader:
    """Iterates over (frame_index, time, rgb) of a video or a photo.

    Use as a context manager, or call `close()`, so that the decoding thread
    stops when the caller stops early.

    Args:
      path: a video (any container and codec FFmpeg reads) or a photo.
      every: keep every `every`-th decoded frame (frame indices 0, K, 2K, ...).
      queue_size: decoded frames held ahead of the caller at most.

    Attributes:
      fps: frames per second the container declares (0.0 for a photo or
        when unknown).
      is_video: False for a photo (one frame, index 0, time 0.0).
      decoded: frames decoded so far (all of them, before `every`).
      rotation: the display rotation of the first frame, degrees
        counterclockwise (0, 90, 180 or -90), as applied.
      damage: None, or one line (without the file name) saying where and why
        the video broke off; set when iteration has ended.

    Raises:
      InputError: the file cannot be opened or has no video stream (raised by
        the constructor), or its first frame cannot be decoded (raised while
        iterating). The message names the file.
    """

    def __init__(self, path, every=1, queue_size=32):
        self.path = pathlib.Path(path)
        self.every = int(every)
        self.is_video = is_video(self.path)
        self.decoded = 0
        self.fps = 0.0
        self.rotation = 0
        self.damage = None
        self._declared_end = None
        self._last_time = None
        self._frames = None
        self._container = None
        if self.is_video:
            self._open_video(queue_size)

    def _open_video(self, queue_size):
        import av

        try:
            self._container = av.open(str(self.path))
        except Exception as error:  # PyAV raises many FFmpeg error types.
            raise InputError(f"{self.path}: cannot be read as a video "
                             f"({type(error).__name__}: {_first_line(error)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{self.path}: has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self._declared_end = _declared_end(self._container, stream)
        self._frames = Background(self._decode(stream), queue_size,
                                  on_start=lower_thread_priority)

    def _decode(self, stream):
        """Yields (index, time, rgb) as displayed; runs in the decoding thread."""
        try:
            for frame in self._container.decode(stream):
                index = self.decoded
                self.decoded += 1
                time = frame.time
                if time is None:
                    time = index / self.fps if self.fps else float("nan")
                self._last_time = time
                if index % self.every:
                    continue
                turns = round((frame.rotation or 0) / 90.0) % 4
                if index == 0:
                    self.rotation = (0, 90, 180, -90)[turns]
                rgb = frame.to_ndarray(format="rgb24")
                if turns:             # np.rot90 turns counterclockwise, as the matrix says.
                    rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                yield index, float(time), rgb
        except Exception as error:  # Reported to the caller, who names the file.
            reason = f"{type(error).__name__}: {_first_line(error)}"
            if self.decoded == 0:
                raise InputError(f"{self.path}: decoding failed on its first frame "
                                 f"({reason})") from None
            self.damage = (f"decoding stopped after {self.decoded} frames ({reason}); "
                           "the frames before are kept")
        else:
            self.damage = self._early_end()

    def _early_end(self):
        """One line when the video ended well before its declared duration, else None."""
        if self._declared_end is None or self._last_time is None or \
                not np.isfinite(self._last_time):
            return None
        frame_time = 1.0 / self.fps if self.fps else 0.0
        reached = self._last_time + frame_time
        if self._declared_end - reached <= max(_SHORTFALL_SECONDS, 2 * frame_time):
            return None
        return (f"the video breaks off after {self.decoded} frames, at {reached:.2f} s of the "
                f"{self._declared_end:.2f} s its container declares; the frames before are kept")

    def __iter__(self):
        if not self.is_video:
            self.decoded = 1
            yield 0, 0.0, np.asarray(read_image(self.path))
            return
        yield from self._frames

    def close(self):
        """Stops decoding and releases the file."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _declared_end(container, stream):
    """Where the container says the video ends, seconds; None when it does not say.

    The video stream's own start and duration when it declares them; else
    the container's duration, but only for a file with no other stream (a
    container's duration is that of its longest stream, often the audio).
    """
    if stream.duration is not None and stream.time_base is not None:
        start = stream.start_time or 0
        return float((start + stream.duration) * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        start = container.start_time or 0
        return (start + container.duration) / 1e6     # AV_TIME_BASE: microseconds
    return None


def _first_line(error):
    """FFmpeg's own words for an error (PyAV's errors also repeat the file name)."""
    text = getattr(error, "strerror", None) or str(error).strip()
    return text.splitlines()[0] if text else "no message"


def lower_thread_priority():
    """Gives the calling thread a lower CPU priority (Linux; elsewhere nothing).

    For background work that should take the cores the network and the
    alignment leave idle rather than share them: decoding needs a few percent
    of a core.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
