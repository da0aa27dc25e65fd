"""Where a training step runs: one device, the GPUs of one machine, or several machines.

Why it is built this way: the step must compute what one device computes
on the same global batch, whatever the strategy (docs/training.md,
"Several GPUs and machines"). So:

- every replica takes its own rows of the global batch: replica r of R
  gets rows [r*B/R, (r+1)*B/R) of step k's batch (`TrainingSet`'s order),
  and each machine reads only the rows of its own replicas;
- each replica's loss is its share of the global batch's loss
  (`losses.hybrid.HybridLoss(across_replicas=True)`), and the replicas'
  gradients are summed;
- batch norm takes its statistics over the global batch
  (`training.batch_norm`), so that the normalisation and its moving
  averages are those of one device;
- the update is taken, or skipped for a non-finite loss or gradient, by
  every replica alike.

The strategies are TensorFlow's own: the default strategy ("one"),
`MirroredStrategy` ("mirrored": the local GPUs, or logical CPU devices) and
`MultiWorkerMirroredStrategy` ("multiworker"), whose cluster
`training.cluster` reads and checks first.
"""
import dataclasses
import hashlib
import os

import numpy as np

from training import cluster as cluster_module

STRATEGIES = ("one", "mirrored", "multiworker")


@dataclasses.dataclass
class Replicas:
    """A strategy and this process's place in it.

    Attributes:
      kind: "one", "mirrored" or "multiworker".
      strategy: the `tf.distribute.Strategy`.
      cluster: the `training.cluster.Cluster` of a multi-worker run, else None.
    """
    kind: str
    strategy: object
    cluster: object = None

    @property
    def num_replicas(self):
        return int(self.strategy.num_replicas_in_sync)

    @property
    def num_workers(self):
        return self.cluster.num_workers if self.cluster else 1

    @property
    def is_chief(self):
        """Whether this process writes checkpoints, logs and the run's files."""
        return self.cluster.is_chief if self.cluster else True

    @property
    def local_replicas(self):
        return self.num_replicas // self.num_workers

    @property
    def first_replica(self):
        """The global index of this process's first replica."""
        return (self.cluster.worker_rank if self.cluster else 0) * self.local_replicas

    def worker_rows(self, batch_size):
        """(first, count): this process's rows of a global batch of `batch_size`."""
        per_replica = batch_size // self.num_replicas
        return self.first_replica * per_replica, self.local_replicas * per_replica

    def distribute(self, arrays, batch_size):
        """This process's rows of the global batch as the step's input.

        Args:
          arrays: [count, ...] arrays, this process's rows (`worker_rows`).
          batch_size: the global batch.

        Returns:
          The arrays themselves on one device, else per-replica values, each
          replica's [batch_size / num_replicas, ...] rows.
        """
        if self.kind == "one":
            return arrays
        per_replica = batch_size // self.num_replicas

        def rows(context):
            local = context.replica_id_in_sync_group - self.first_replica
            if not 0 <= local < self.local_replicas:
                raise RuntimeError(f"replica {context.replica_id_in_sync_group} is not one of "
                                   f"this worker's (from {self.first_replica})")
            return arrays[local * per_replica:(local + 1) * per_replica]

        return self.strategy.experimental_distribute_values_from_function(rows)

    def local_results(self, value):
        """This process's rows of a per-replica output, concatenated ([count, ...] array)."""
        parts = self.strategy.experimental_local_results(value)
        return np.concatenate([np.asarray(part) for part in parts], axis=0)

    def describe(self):
        """One line: the strategy, its replicas and this process's part."""
        if self.kind == "one":
            return "one device"
        text = f"{self.kind}, {self.num_replicas} replicas"
        if self.cluster:
            me = cluster_module.describe(self.cluster.task_type, self.cluster.task_index,
                                         self.cluster.address)
            role = "the chief" if self.is_chief else "not the chief"
            text += f", {self.num_workers} workers; this is {me}, {role}"
        return text


def _logical_cpus(tf, count):
    """Splits the CPU into `count` logical devices (before TensorFlow starts)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise cluster_module.ClusterError(
            "--cpu-devices: TensorFlow has started already in this process") from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def make(kind, cpu_devices=None, cluster_timeout=60.0, environ=None):
    """Builds the strategy of `--strategy`.

    Args:
      kind: "one", "mirrored" or "multiworker".
      cpu_devices: for "mirrored" on a machine without GPUs, how many logical
        CPU devices to mirror over (None: the one CPU, or the GPUs when there are).
      cluster_timeout: seconds a worker waits for the others, at the start
        and (TensorFlow's heartbeats) during the run.
      environ: the environment holding TF_CONFIG or Slurm's variables (default
        os.environ); the cluster found is written to os.environ's TF_CONFIG,
        where TensorFlow reads it.

    Returns:
      A `Replicas`.

    Raises:
      ClusterError: a malformed cluster, a busy port, or workers not reached
        within `cluster_timeout` (one line, naming them).
    """
    environ = os.environ if environ is None else environ
    if kind not in STRATEGIES:
        raise cluster_module.ClusterError(f"--strategy must be one of {', '.join(STRATEGIES)}")
    if kind == "multiworker":
        cluster = cluster_module.from_environment(environ)
        # Checked before TensorFlow's server starts: it would wait, unstoppably, for a
        # worker that is not there.
        cluster_module.rendezvous(cluster, cluster_timeout)
        os.environ["TF_CONFIG"] = cluster.tf_config()      # what TensorFlow's resolver reads
    import tensorflow as tf

    if kind == "one":
        return Replicas(kind, tf.distribute.get_strategy())
    if kind == "mirrored":
        devices = None
        if not tf.config.list_physical_devices("GPU"):
            devices = _logical_cpus(tf, cpu_devices) if cpu_devices else ["/cpu:0"]
        return Replicas(kind, tf.distribute.MirroredStrategy(devices))
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    timeout_ms = int(cluster_timeout * 1000)
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:{}/replica:0/task:0".format(
            "chief" if "chief" in cluster.jobs else "worker"),
        cluster_register_timeout_in_ms=timeout_ms, heartbeat_timeout_in_ms=timeout_ms,
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(a))
                          for job, a in cluster.jobs.items()])
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return Replicas(kind, strategy, cluster)


def weights_digest(model):
    """A short hash of a model's weights (trainable and batch-norm statistics), in order.

    Workers log it at the end: equal digests mean bit-identical weights.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight.numpy(), np.float32)).tobytes())
    return digest.hexdigest()[:16]
