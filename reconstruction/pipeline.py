"""Photos through a reconstruction step in batches, streaming: the I/O overlaps the work.

Reading and alignment of the next photos run in a thread pool while the
reconstruction works on the current batch; writing runs in another thread,
which hands each photo's files to a pool of writer processes when there is
one (`writers`): formatting a mesh and encoding a PNG hold the interpreter,
so on a machine whose network runs on a GPU, processes on the other cores
keep the writing off the network's path (docs/performance.md). At most two
batches are read ahead and two are waiting to be written, so memory does
not grow with the number of photos. The reconstruction step and
the writer are callables, so the same streaming serves the network alone,
the network and a fit, or a fit from the mean face, and writes the demo's
files (`photos.outputs`) or a benchmark's predictions (`evaluation`).
"""
import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import pathlib
import time

import numpy as np

from fileio.errors import InputError


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
      callable(batch of `PreparedPhoto`) -> (results dict of [B, ...] arrays, {}).
    """
    def reconstruct(batch):
        return reconstructor(np.stack([a.crop_bgr for a in batch])), {}
    return reconstruct


def default_writers():
    """Writer processes for this machine: a quarter of its cores, at most 4.

    None below 4 cores: there the network takes every core, and a process
    only adds the photos' copies to the work (bench/pipeline.py on 2 cores:
    the streamed demo 2.10x the network alone with the writing thread,
    2.57x with one process, 2.61x with two).
    """
    return min(4, (os.cpu_count() or 1) // 4)


def run_folder(photos, output_dir, reconstruct, align, write, batch_size=8, log=print,
               progress=None, timer=None, workers=2, writers=0):
    """Reconstructs photos in batches, streaming.

    Args:
      photos: list of photo paths.
      output_dir: where the files go, to name a photo whose files could not be
        written (None: the photo's name alone).
      reconstruct: callable(list of `PreparedPhoto`) -> (results, failed): results
        a dict of arrays whose first axis is the batch, with the keys of
        `Reconstructor.__call__` (and a fit's); failed a dict {index in the
        batch: one-line reason} of photos that got no result (their rows of
        `results` are ignored).
      align: callable(path) -> `preparation.photo.PreparedPhoto`, raising
        `InputError` for a bad photo.
      write: callable(prepared photo, its result: the slice of `results` of
        one photo) writing its files.
      batch_size: photos per reconstruction step.
      log: callable taking one line of text.
      progress: optional callable taking the number of photos just finished.
      timer: optional StageTimer collecting per-stage seconds.
      workers: threads that read and align photos.
      writers: processes that write the files (0: the writing thread writes
        them itself). With writers, `write` is sent to them once (pickled)
        and must need no state of this process; each photo reaches it
        without `crop_bgr` and `skin_mask` (None), which no file holds.

    Returns:
      (done, failed): names reconstructed, and (path, reason) of the failures.
    """
    timer = timer or StageTimer()
    progress = progress or (lambda n: None)
    done, failed = [], []
    lookahead = 2 * batch_size

    def write_batch(batch, results, refused):
        slices = [{key: value[i] for key, value in results.items()} for i in range(len(batch))]
        # With writer processes, the batch's photos are all handed out first, so
        # that they are written side by side. The network's input and the skin
        # mask stay here: the files need neither.
        written = [None if pool is None or i in refused else pool.submit(
            _write_one, prepared._replace(crop_bgr=None, skin_mask=None), slices[i])
            for i, prepared in enumerate(batch)]
        for i, prepared in enumerate(batch):
            if i in refused:
                failed.append((prepared.name, refused[i]))
                log(refused[i])
                progress(1)
                continue
            try:
                if written[i] is None:
                    _timed(timer, "write", write, prepared, slices[i])
                else:
                    timer.add("write", written[i].result())
                done.append(prepared.name)
            except Exception as error:  # A full disk must not lose the other photos.
                reason = f"cannot write outputs ({type(error).__name__}: {error})"
                failed.append((prepared.name, reason))
                where = prepared.name if output_dir is None else \
                    pathlib.Path(output_dir) / prepared.name
                log(f"{where}: {reason}")
            progress(1)

    pool = _writer_pool(writers, write)
    with concurrent.futures.ThreadPoolExecutor(workers) as readers, \
            concurrent.futures.ThreadPoolExecutor(1) as writer, (pool or contextlib.nullcontext()):
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


_write_in_process = None        # a writer process's `write`, set by its initializer


def _install_writer(write):
    global _write_in_process
    _write_in_process = write


def _write_one(prepared, result):
    """In a writer process: writes one photo's files; returns the seconds it took."""
    start = time.perf_counter()
    _write_in_process(prepared, result)
    return time.perf_counter() - start


def _writer_pool(writers, write):
    """A pool of `writers` processes that each hold `write`, or None for none.

    The processes are started by a fork server (a fork of this process,
    whose TensorFlow runs threads, could deadlock), once per folder; each
    photo's arrays are pickled to them.
    """
    if writers <= 0:
        return None
    context = multiprocessing.get_context("forkserver")
    return concurrent.futures.ProcessPoolExecutor(writers, mp_context=context,
                                                  initializer=_install_writer,
                                                  initargs=(write,))


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
