"""Engines: the same `Extractor` over a list of videos, here or on a Ray cluster.

Both yield one result row (a dict, see `Extractor.__call__`) per video as
videos finish. Videos are the units of work; each worker writes its videos'
outputs itself, atomically, to the shared output folder.
"""
import dataclasses
import os
import pathlib

from extraction.extractor import Extractor

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rows(result):
    keys = list(result)
    for i in range(len(result[keys[0]]) if keys else 0):
        yield {key: result[key][i].item() for key in keys}


def run_local(videos, options, on_frames=None, on_refined=None):
    """Processes videos one after the other in this process (Ray is not imported).

    Args:
      videos: relative paths.
      options: an `ExtractOptions`.
      on_frames: optional callable(n) told of every n frames finished.
      on_refined: optional callable(n, loss) told of every n frames fitted.

    Yields:
      One result row per video.
    """
    extractor = Extractor(options)
    try:
        for relative in videos:
            yield from _rows(extractor({"path": [relative]}, on_frames=on_frames,
                                       on_refined=on_refined))
    finally:
        extractor.close()


def run_ray(videos, options, address=None, workers=None, gpus_per_worker=0.0):
    """Processes videos on a Ray cluster, one `Extractor` actor per worker.

    With no address a local Ray instance is started (`ray.init()`). On a
    cluster, every node must see this repository and the input and output
    folders at the same paths (a shared file system): the actors import the
    project from this repository's path and write where the driver says.

    Args:
      videos: relative paths.
      options: an `ExtractOptions`.
      address: the cluster's address ("auto", "ray://host:10001", ...), or
        None for a local instance.
      workers: number of actors (None: one per 2 CPUs of the cluster, at
        least 1, at most the number of videos).
      gpus_per_worker: GPUs reserved by each actor (0 for CPU only).

    Yields:
      One result row per video, in the order they finish.
    """
    import ray
    from ray.util import ActorPool

    started_here = not ray.is_initialized()
    if started_here:
        env_vars = {"PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                if p])}
        for name in ("TF_CPP_MIN_LOG_LEVEL",):
            if name in os.environ:
                env_vars[name] = os.environ[name]
        ray.init(address=address, runtime_env={"env_vars": env_vars},
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        if workers is None:
            workers = max(1, cpus // 2)
        workers = max(1, min(int(workers), len(videos)))
        cpus_per_worker = max(1, cpus // workers)
        threads = options.threads or cpus_per_worker
        worker_options = dataclasses.replace(options, threads=threads)
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(_RayExtractor)
        pool = ActorPool([actor.remote(worker_options) for _ in range(workers)])
        for result in pool.map_unordered(lambda a, video: a.run.remote({"path": [video]}),
                                         list(videos)):
            yield from _rows(result)
    finally:
        if started_here:
            ray.shutdown()


class _RayExtractor:
    """An `Extractor` as a Ray actor (remote methods need a name; `run` is the call)."""

    def __init__(self, options):
        self.extractor = Extractor(options)

    def run(self, batch):
        return self.extractor(batch)
