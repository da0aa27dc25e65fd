"""The training loop: batches in, Adam steps, checkpoints and TensorBoard logs out.

Resuming is exact: the checkpoint holds the R-Net (with its batch-norm
statistics), Adam's state and the step, and the data order is a function of
the seed and the step (`training.data.TrainingSet`), so a resumed run takes
the same batches a run without interruption would have taken.

The same loop runs on one device and under a `tf.distribute` strategy
(`training.replicas`): each replica computes its share of the global
batch's loss, and only the chief writes checkpoints, logs and the run's files.
"""
import dataclasses
import json
import pathlib
import time

import tensorflow as tf

from assets.catalog import AssetError
from training import summaries


@dataclasses.dataclass
class TrainConfig:
    """What a training run needs (the flags of `python train.py`).

    Attributes:
      data: prepared folders.
      log_dir: where checkpoints and TensorBoard logs go.
      bfm_dir: the face model's folder.
      init: ("none",), ("imagenet", CKPT), ("release", PB) or ("pytorch", PTH):
        the last trains the PyTorch release's torchvision ResNet-50
        (`training.torchvision_rnet`), the others slim's (`training.rnet`).
      id_net: the identity network's frozen graph, or None (no identity term).
      steps: the last step (200k as the release).
      batch_size: photos per step (16).
      learning_rate, lr_drop_step, lr_after_drop: Adam's step size, 1e-4 up to
        step `lr_drop_step` (100k) and 2e-5 after, as the release.
      save_every: steps between checkpoints.
      summary_every, image_every: steps between scalar and image summaries.
      seed: the data order's seed.
      resume: continue from the latest checkpoint of `log_dir`.
      bn_decay: the batch-norm moving-average decay (0.997 as the release).
      strategy: "one", "mirrored" or "multiworker" (`training.replicas`).
      cpu_devices: for "mirrored" without GPUs, the logical CPU devices to use.
      cluster_timeout: seconds a worker of "multiworker" waits for the others.
      augment: random shifts, scalings and rotations of the samples (`training.augment`).
    """
    data: list
    log_dir: str
    bfm_dir: str
    init: tuple = ("none",)
    id_net: object = None
    steps: int = 200_000
    batch_size: int = 16
    learning_rate: float = 1e-4
    lr_drop_step: int = 100_000
    lr_after_drop: float = 2e-5
    save_every: int = 10_000
    summary_every: int = 50
    image_every: int = 500
    seed: int = 0
    resume: bool = False
    bn_decay: float = 0.997
    strategy: str = "one"
    cpu_devices: object = None
    cluster_timeout: float = 60.0
    augment: bool = False


class TrainingError(RuntimeError):
    """A run that cannot start or go on; the message is one line."""


SLIM, TORCHVISION = "slim", "torchvision"      # the two R-Net layouts a run can train
LAYOUT_FILE = "network.json"


def run_layout(log_dir):
    """The layout a run trains ("slim" or "torchvision"), from its folder; None for a new run.

    A run's folder says which network its checkpoints hold, so that
    `--resume` and `export` build that one (runs from before the file was
    written trained slim's).
    """
    path = pathlib.Path(log_dir) / LAYOUT_FILE
    if not path.is_file():
        return SLIM if (pathlib.Path(log_dir) / "checkpoints").is_dir() else None
    layout = json.loads(path.read_text()).get("layout")
    if layout not in (SLIM, TORCHVISION):
        raise TrainingError(f"{path}: names an unknown network layout {layout!r}")
    return layout


def build_network(layout):
    """A fresh R-Net of the layout: slim's (`training.rnet`) or torchvision's."""
    if layout == TORCHVISION:
        from training.torchvision_rnet import build_torchvision_rnet
        return build_torchvision_rnet()
    from training import rnet
    return rnet.build_rnet()


def build(config, log=print, replicas=None):
    """Builds the R-Net, decoder, identity network, optimizer and checkpoint.

    Args:
      config: the `TrainConfig`.
      log: where lines go.
      replicas: the `training.replicas.Replicas` to build under (default one device).

    Returns:
      (parts, manager): parts is a dict (rnet, model, optimizer, step,
      checkpoint), manager the `tf.train.CheckpointManager` of the run.
    """
    import keras

    import load_data
    from face_decoder import Face3D
    from networks.identity import IdentityNetwork
    from training import rnet as rnet_module
    from training.model import TrainingModel

    bfm_dir = pathlib.Path(config.bfm_dir)
    load_data.transferBFM09(bfm_dir)
    face = Face3D(bfm_dir / load_data.FRONT_MODEL_NAME)
    log_dir = pathlib.Path(config.log_dir)
    layout = run_layout(log_dir) if config.resume else None
    layout = layout or (TORCHVISION if config.init[0] == "pytorch" else SLIM)
    strategy = replicas.strategy if replicas is not None else tf.distribute.get_strategy()
    with strategy.scope():
        rnet = build_network(layout)
    rnet_module.set_bn_decay(rnet, config.bn_decay)
    identity_net = None
    if config.id_net:
        identity_net = IdentityNetwork(config.id_net)
    else:
        log("No --id-net: the identity (perceptual) loss term is dropped.")
    model = TrainingModel(rnet, face, identity_net)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [config.lr_drop_step], [config.learning_rate, config.lr_after_drop])
    # TensorFlow 1's Adam defaults, as the release (Keras' epsilon is 1e-7).
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999,
                                          epsilon=1e-8)
        optimizer.build(rnet.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(rnet=rnet, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(pathlib.Path(config.log_dir) /
                                                         "checkpoints"), max_to_keep=3)
    if manager.latest_checkpoint:
        if not config.resume:
            raise TrainingError(f"{config.log_dir}: holds checkpoints already; pass --resume "
                                "to continue that run, or choose another --log-dir")
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"Resumed from {manager.latest_checkpoint} at step {int(step.numpy())}.")
    else:
        kind = config.init[0]
        try:
            if kind == "imagenet":
                rnet_module.load_imagenet_checkpoint(rnet, config.init[1])
            elif kind == "release":
                rnet_module.load_release_graph(rnet, config.init[1])
            elif kind == "pytorch":
                from training.torchvision_rnet import load_pytorch_weights

                load_pytorch_weights(rnet, config.init[1])
        except ValueError as error:   # Not the release's architecture: the file is wrong.
            raise AssetError(str(error)) from None
        from fileio.result_files import write_atomically

        if replicas is None or replicas.is_chief:
            log_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(log_dir / LAYOUT_FILE, json.dumps({"layout": layout}).encode())
    parts = {"rnet": rnet, "model": model, "optimizer": optimizer, "step": step,
             "checkpoint": checkpoint}
    return parts, manager


def make_train_step(model, optimizer, step, strategy=None):
    """A compiled step: forward, losses, gradients, and an update when all are finite.

    Under a strategy, each replica computes its share of the loss and its
    gradients on its rows; the terms returned are the global batch's (the
    shares summed), and the update (Adam on the summed gradients) is taken
    by every replica, or by none when a term or a gradient of any replica is
    not finite. The update and the increment of `step` happen together
    inside the step, so an interrupt between steps always finds them in
    agreement.

    Args:
      model: the `TrainingModel`.
      optimizer, step: built under the strategy's scope.
      strategy: the `tf.distribute.Strategy` (default: the default strategy, one device).

    Returns:
      train_step(images, landmarks, masks) -> (terms, outputs, finite_terms,
      finite_gradients): terms global scalars, outputs per-replica values
      (plain tensors on one device), finite_terms {name: bool}, finite_gradients bool.
    """
    strategy = strategy or tf.distribute.get_strategy()
    variables = model.rnet.trainable_variables
    total = tf.distribute.ReduceOp.SUM

    def forward(images, landmarks, masks):
        with tf.GradientTape() as tape:
            terms, outputs = model(images, landmarks, masks, training=True)
        gradients = tape.gradient(terms["total"], variables)
        bad = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32))
                        for g in gradients])
        return terms, outputs, gradients, bad

    def update(gradients):
        optimizer.apply(gradients, variables)       # sums the replicas' gradients
        step.assign_add(1)

    @tf.function(reduce_retracing=True)
    def train_step(images, landmarks, masks):
        terms, outputs, gradients, bad = strategy.run(forward, args=(images, landmarks, masks))
        terms = {name: strategy.reduce(total, value, axis=None) for name, value in terms.items()}
        finite_terms = {name: tf.math.is_finite(value) for name, value in terms.items()}
        finite_gradients = tf.equal(strategy.reduce(total, bad, axis=None), 0.0)
        ok = tf.logical_and(tf.reduce_all(list(finite_terms.values())), finite_gradients)

        def apply():
            # In the cross-replica context: a synchronising update cannot sit in a
            # condition inside the replicas' function.
            strategy.run(update, args=(gradients,))
            return tf.constant(True)

        tf.cond(ok, apply, lambda: tf.constant(False))
        return terms, outputs, finite_terms, finite_gradients

    return train_step


def train(config, log=print, progress=None, environ=None):
    """Runs (or resumes) training to `config.steps`.

    Args:
      config: the `TrainConfig`.
      log: where lines go.
      progress: optional callable(step done, terms) after each step.
      environ: the environment holding TF_CONFIG or Slurm's variables, for
        the "multiworker" strategy (default os.environ).

    Returns:
      The last step reached.

    Raises:
      ClusterError: the strategy cannot start (a bad TF_CONFIG, workers not
        reached, a batch the replicas cannot share).
      TrainingError: a non-finite loss or gradient (the message names the
        step, the term and the batch's files; the last good checkpoint is
        kept), a worker that stopped (named), or a run that cannot start.
    """
    import keras

    from training import replicas as replicas_module
    from training.cluster import ClusterError
    from training.data import TrainingSet

    replicas = replicas_module.make(config.strategy, config.cpu_devices,
                                    config.cluster_timeout, environ)
    if config.batch_size % replicas.num_replicas:
        raise ClusterError(f"--batch-size {config.batch_size} cannot be shared by the "
                           f"{replicas.num_replicas} replicas: use a multiple of "
                           f"{replicas.num_replicas}")
    if replicas.kind == "multiworker" and not config.resume:
        # A cluster's scheduler reruns the same command after a failure: it resumes.
        config = dataclasses.replace(config, resume=True)
    keras.utils.set_random_seed(config.seed)      # The R-Net's initial weights.
    data = TrainingSet(config.data, seed=config.seed, augment=config.augment)
    parts, manager = build(config, log, replicas)
    model, optimizer, step = parts["model"], parts["optimizer"], parts["step"]
    train_step = make_train_step(model, optimizer, step, replicas.strategy)
    chief = replicas.is_chief
    writer = tf.summary.create_file_writer(str(pathlib.Path(config.log_dir) / "train")) \
        if chief else tf.summary.create_noop_writer()
    start_step = int(step.numpy())
    guard = _StoppedWorkers(replicas, manager)
    with guard(start_step):
        _check_workers_agree(replicas, {"step": start_step, "--batch-size": config.batch_size,
                                        "--steps": config.steps, "--seed": config.seed,
                                        "--augment": int(config.augment),
                                        "the number of samples": len(data)})
    log(f"Training on {len(data)} samples from step {start_step} to {config.steps}, "
        f"batch {config.batch_size} ({replicas.describe()}).")
    last_time, last_step = time.perf_counter(), start_step
    rows = replicas.worker_rows(config.batch_size)
    batches = data.batches(start_step, config.batch_size, rows=rows)
    try:
        for current, batch in batches:
            if current >= config.steps:
                break
            inputs = [replicas.distribute(batch[key], config.batch_size)
                      for key in ("images", "landmarks", "masks")]
            with guard(current):
                terms, outputs, finite_terms, finite_gradients = train_step(*inputs)
                bad = [name for name, ok in finite_terms.items() if not bool(ok)]
                finite = bool(finite_gradients)
            if bad or not finite:
                what = f"loss term '{bad[0]}'" if bad else "a gradient"
                raise TrainingError(
                    f"step {current}: {what} is NaN or infinite; batch: "
                    f"{', '.join(data.names(current, config.batch_size))}; the last good "
                    f"checkpoint is "
                    f"{manager.latest_checkpoint or 'none (no checkpoint saved yet)'}")
            done = current + 1          # train_step advanced `step` with the update.
            if done % config.summary_every == 0 or done == config.steps:
                now = time.perf_counter()
                rate = (done - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, done
                lr = float(optimizer.learning_rate.numpy()) \
                    if hasattr(optimizer.learning_rate, "numpy") else config.learning_rate
                if chief:
                    summaries.write_scalars(writer, done, terms, lr, rate)
                if progress is None:
                    log(f"step {done}: " + ", ".join(
                        f"{k} {float(v):.4g}" for k, v in terms.items()) + f", {rate:.2f} steps/s")
            if chief and (done % config.image_every == 0 or done == config.steps):
                local = {key: replicas.local_results(outputs[key])
                         for key in ("render", "landmarks")}
                summaries.write_images(writer, done, batch, local)
            if chief and done % config.save_every == 0:
                manager.save(checkpoint_number=done)
            if progress is not None:
                progress(done, terms)
    except KeyboardInterrupt:
        if chief:
            manager.save(checkpoint_number=int(step.numpy()))
            log(f"Interrupted: saved step {int(step.numpy())} in {manager.latest_checkpoint}; "
                "resume with --resume.")
        else:
            log(f"Interrupted at step {int(step.numpy())}; the chief saves the checkpoints.")
        batches.close()
        return int(step.numpy())
    finally:
        writer.flush()
    batches.close()
    digest = replicas_module.weights_digest(model.rnet)
    if not chief:
        log(f"Reached step {int(step.numpy())}; weights digest {digest} (the chief saves "
            "the checkpoint).")
        return int(step.numpy())
    if int(step.numpy()) != _latest_step(manager):
        manager.save(checkpoint_number=int(step.numpy()))
    log(f"Saved step {int(step.numpy())} in {manager.latest_checkpoint}; weights digest "
        f"{digest}.")
    return int(step.numpy())


class _StoppedWorkers:
    """Turns a collective's failure in a multi-worker run into one line naming the worker.

    `with guard(step): ...` around the calls that synchronise the workers.
    """

    def __init__(self, replicas, manager):
        self.replicas, self.manager = replicas, manager
        self.step = 0

    def __call__(self, step):
        self.step = step
        return self

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if self.replicas.cluster is None or not isinstance(error, tf.errors.OpError):
            return False
        from training.cluster import describe, stopped_tasks

        message = str(error.message if hasattr(error, "message") else error)
        stopped = stopped_tasks(message, self.replicas.cluster)
        latest = self.manager.latest_checkpoint if self.manager else None
        resume = (f"rerun the same command on every machine to resume from "
                  f"{latest or 'the start (no checkpoint saved yet)'}")
        if stopped:
            names = ", ".join(describe(*task) for task in stopped)
            raise TrainingError(f"step {self.step}: {names} stopped; {resume}") from None
        first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        raise TrainingError(f"step {self.step}: the cluster failed ({type(error).__name__}: "
                            f"{first}); {resume}") from None


def _check_workers_agree(replicas, values):
    """Checks that every worker starts from the same step with the same settings.

    A worker that cannot read the chief's checkpoints (a --log-dir that is
    not shared) or was started with other flags would train something else.

    Raises:
      TrainingError: a value differs between the workers (named).
    """
    if replicas.num_workers == 1:
        return
    strategy = replicas.strategy
    local = tf.constant([float(v) for v in values.values()], tf.float64)

    @tf.function
    def spread():
        def gather(x):
            context = tf.distribute.get_replica_context()
            return (context.all_reduce(tf.distribute.ReduceOp.SUM, x),
                    context.all_reduce(tf.distribute.ReduceOp.SUM, tf.square(x)))
        sums, squares = strategy.run(gather, args=(local,))
        return (strategy.experimental_local_results(sums)[0],
                strategy.experimental_local_results(squares)[0])

    sums, squares = (x.numpy() for x in spread())
    count = replicas.num_replicas
    for (name, value), total, square in zip(values.items(), sums, squares):
        if abs(square / count - (total / count) ** 2) > 1e-6 * max(1.0, square / count):
            raise TrainingError(
                f"the workers disagree on {name} (this one: {value}, mean of all: "
                f"{total / count:g}): run the same command with the same data on every "
                "machine, with --log-dir on a filesystem they all read")


def _latest_step(manager):
    latest = manager.latest_checkpoint
    return int(latest.rsplit("-", 1)[1]) if latest else -1


def export(log_dir, output, log=print):
    """Writes the latest checkpoint of a run as a frozen graph demo.py runs.

    Raises:
      TrainingError: the run has no checkpoint.
    """
    from training import rnet as rnet_module

    layout = run_layout(log_dir) or SLIM
    rnet = build_network(layout)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(rnet=rnet, step=step)
    latest = tf.train.latest_checkpoint(str(pathlib.Path(log_dir) / "checkpoints"))
    if latest is None:
        raise TrainingError(f"{log_dir}: no checkpoint to export (train first)")
    checkpoint.restore(latest).expect_partial()
    rnet_module.export_frozen_graph(rnet, output, slim_names=layout == SLIM)
    log(f"Exported step {int(step.numpy())} of {log_dir} to {output}.")
    return output
