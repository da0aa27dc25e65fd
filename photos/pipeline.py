"""Photos through a reconstruction step in batches, streaming: the I/O overlaps the work.

Reading and alignment of the next photos run in a thread pool while the
reconstruction works on the current batch; writing runs in another thread.
At most two batches are read ahead and two are waiting to be written, so
memory does not grow with the number of photos. The reconstruction step is
a callable, so the same streaming serves the network alone, the network and
a fit, or a fit from the mean face (`demo.py`).
"""
import collections
import concurrent.futures
import pathlib
import time

import numpy as np

from image_io import InputError
from photos.inputs import OUTPUT_KINDS
from photos.outputs import write_outputs


class StageTimer:
    """Accumulates seconds per pipeline stage (thread-safe enough for sums)."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.counts = collections.defaultdict(int)

    def add(self, stage, seconds, count=1):
        self.seconds[stage] += seconds
        self.counts[stage] += count


def _timed(timer, stage, fn, *args):
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        timer.add(stage, time.perf_counter() - start)


def network_step(reconstructor):
    """The plain reconstruction step: the network and the decoder on the batch's crops.

    Returns:
      callable(batch of `Aligned`) -> (results dict of [B, ...] arrays, {}).
    """
    def reconstruct(batch):
        return reconstructor(np.stack([a.crop_bgr for a in batch])), {}
    return reconstruct


def run_folder(photos, output_dir, reconstruct, triangles, align, batch_size=8, log=print,
               progress=None, timer=None, workers=2, outputs=OUTPUT_KINDS, write=None):
    """Reconstructs photos in batches, streaming.

    Args:
      photos: list of photo paths.
      output_dir: where to write.
      reconstruct: callable(list of `Aligned`) -> (results, failed): results
        a dict of arrays whose first axis is the batch, with the keys of
        `Reconstructor.__call__` (and a fit's); failed a dict {index in the
        batch: one-line reason} of photos that got no result (their rows of
        `results` are ignored).
      triangles: [F,3] 1-based triangles (for the OBJ files).
      align: callable(path) -> `Aligned`, raising `InputError` for a bad photo.
      batch_size: photos per reconstruction step.
      log: callable taking one line of text.
      progress: optional callable taking the number of photos just finished.
      timer: optional StageTimer collecting per-stage seconds.
      workers: threads that read and align photos.
      outputs: the kinds of file to write (see --outputs).
      write: callable(aligned, result) writing one photo's files instead of
        the demo's (`photos.outputs.write_outputs` into `output_dir`).

    Returns:
      (done, failed): names reconstructed, and (path, reason) of the failures.
    """
    timer = timer or StageTimer()
    progress = progress or (lambda n: None)
    if write is None:
        def write(aligned, result):
            write_outputs(aligned, result, output_dir, triangles, outputs)
    done, failed = [], []
    lookahead = 2 * batch_size

    def write_batch(batch, results, refused):
        for i, aligned in enumerate(batch):
            if i in refused:
                failed.append((aligned.name, refused[i]))
                log(refused[i])
                progress(1)
                continue
            one = {key: value[i] for key, value in results.items()}
            try:
                _timed(timer, "write", write, aligned, one)
                done.append(aligned.name)
            except Exception as error:  # A full disk must not lose the other photos.
                reason = f"cannot write outputs ({type(error).__name__}: {error})"
                failed.append((aligned.name, reason))
                where = aligned.name if output_dir is None else \
                    pathlib.Path(output_dir) / aligned.name
                log(f"{where}: {reason}")
            progress(1)

    with concurrent.futures.ThreadPoolExecutor(workers) as readers, \
            concurrent.futures.ThreadPoolExecutor(1) as writer:
        pending_reads = collections.deque()
        pending_writes = collections.deque()
        batch = []

        def flush(batch):
            start = time.perf_counter()
            results, refused = reconstruct(batch)
            timer.add("reconstruction", time.perf_counter() - start, len(batch))
            while len(pending_writes) >= 2:
                pending_writes.popleft().result()
            pending_writes.append(writer.submit(write_batch, batch, results, refused))

        def timed_align(path):
            return _timed(timer, "read+align", align, path)

        for path in photos:
            pending_reads.append((path, readers.submit(timed_align, path)))
            if len(pending_reads) < lookahead:
                continue
            batch = _collect(pending_reads.popleft(), batch, failed, log, progress)
            if len(batch) == batch_size:
                flush(batch)
                batch = []
        while pending_reads:
            batch = _collect(pending_reads.popleft(), batch, failed, log, progress)
            if len(batch) == batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        for future in pending_writes:
            future.result()
    return done, failed


def _collect(pending, batch, failed, log, progress):
    path, future = pending
    try:
        batch.append(future.result())
    except InputError as error:
        failed.append((str(path), str(error)))
        log(str(error))
        progress(1)
    except Exception as error:  # One odd photo must never stop the folder.
        failed.append((str(path), f"{type(error).__name__}: {error}"))
        log(f"{path}: {type(error).__name__}: {error}")
        progress(1)
    return batch
