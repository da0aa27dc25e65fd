"""Frames of a video (or a photo), decoded in a thread, never a whole video in memory.

PyAV (FFmpeg in its wheel) decodes in a background thread into a bounded
queue; the caller takes frames as it needs them. The frame count is what was
decoded, not what the container claims.
"""
import os
import pathlib
import queue
import threading

import numpy as np

from extraction.inputs import is_video
from image_io import InputError, read_image

_END = object()


class FrameReader:
    """Iterates over (frame_index, rgb) of a video or a photo.

    Use as a context manager, or call `close()`, so that the decoding thread
    stops when the caller stops early.

    Args:
      path: a video (any container and codec FFmpeg reads) or a photo.
      every: keep every `every`-th decoded frame (frame indices 0, K, 2K, ...).
      queue_size: decoded frames held ahead of the caller at most.

    Attributes:
      fps: frames per second the container declares (0.0 for a photo or
        when unknown).
      is_video: False for a photo (one frame, index 0).
      decoded: frames decoded so far (all of them, before `every`).

    Raises:
      InputError: the file cannot be opened or has no video stream (raised by
        the constructor), or decoding fails midway (raised while iterating).
        The message names the file.
    """

    def __init__(self, path, every=1, queue_size=32):
        self.path = pathlib.Path(path)
        self.every = int(every)
        self.is_video = is_video(self.path)
        self.decoded = 0
        self.fps = 0.0
        self._queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = None
        self._container = None
        if self.is_video:
            self._open_video()

    def _open_video(self):
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
        self._thread = threading.Thread(target=self._decode, args=(stream,), daemon=True)
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self, stream):
        lower_thread_priority()
        try:
            for frame in self._container.decode(stream):
                index = self.decoded
                self.decoded += 1
                if index % self.every:
                    continue
                if not self._put((index, frame.to_ndarray(format="rgb24"))):
                    return
        except Exception as error:  # Reported to the caller, who names the file.
            self._put(InputError(f"{self.path}: decoding failed after {self.decoded} frames "
                                 f"({type(error).__name__}: {_first_line(error)})"))
            return
        self._put(_END)

    def __iter__(self):
        if not self.is_video:
            self.decoded = 1
            yield 0, np.asarray(read_image(self.path))
            return
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self):
        """Stops decoding and releases the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _first_line(error):
    """FFmpeg's own words for an error (PyAV's errors also repeat the file name)."""
    text = getattr(error, "strerror", None) or str(error).strip()
    return text.splitlines()[0] if text else "no message"


def lower_thread_priority():
    """Gives the calling thread a lower CPU priority (Linux; elsewhere nothing).

    For background work that should take the cores the network and the
    alignment leave idle rather than share them: decoding needs a few percent
    of a core, an early detection a fraction of a second every second or so.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
