"""Items made in a background thread and handed over through a bounded queue.

Two producers run ahead of their consumer: a video's frames are decoded in
a thread (`fileio.video.FrameReader`), and extraction tracks and crops a
batch of frames while the network works on the one before
(`extraction.video`). Both need the same four things, written once here:

- a bounded queue, so that the producer is at most `size` items ahead and
  memory stays that of `size` items;
- a stop: when the consumer ends early (an error, a `break`, `close()`),
  the producer is told, ends at its next hand-over, and its thread is
  joined, never left running;
- the producer's error, raised in the consumer where the stream broke
  (the items made before it are delivered first);
- the end of the stream.
"""
import queue
import threading

_END = object()


class _Raised:
    """The producer's error, carried through the queue (an item may itself be an exception)."""

    def __init__(self, error):
        self.error = error


class Background:
    """Iterates over `items` in a thread, at most `size` items ahead of the consumer.

    Use as a context manager (or call `close()`) so that the thread stops
    when the consumer stops early; iterate over it once.

    Args:
      items: an iterable, iterated in the new thread (usually a generator).
      size: items that may wait for the consumer, at least 1.
      on_start: optional callable run first in the new thread (to lower its
        priority, say).
    """

    def __init__(self, items, size=1, on_start=None):
        self._queue = queue.Queue(maxsize=max(1, int(size)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items, on_start),
                                        daemon=True)
        self._thread.start()

    def _put(self, item):
        """Hands one item over; False when the consumer has stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items, on_start):
        try:
            if on_start is not None:
                on_start()
            for item in items:
                if not self._put(item):
                    getattr(items, "close", lambda: None)()   # a generator ends here
                    return
        except BaseException as error:  # Handed to the consumer, who raises it.
            self._put(_Raised(error))
            return
        self._put(_END)

    def __iter__(self):
        """Yields the items in order; raises the producer's error where it happened."""
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item

    def close(self):
        """Stops the producer (at its next hand-over) and waits for its thread."""
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
