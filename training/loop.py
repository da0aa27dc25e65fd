"""The training loop: batches in, Adam steps, checkpoints and TensorBoard logs out.

Resuming is exact: the checkpoint holds the R-Net (with its batch-norm
statistics), Adam's state and the step, and the data order is a function of
the seed and the step (`training.data.TrainingSet`), so a resumed run takes
the same batches a run without interruption would have taken.
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


def build(config, log=print):
    """Builds the R-Net, decoder, identity network, optimizer and checkpoint.

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

        write_atomically(log_dir / LAYOUT_FILE, json.dumps({"layout": layout}).encode())
    parts = {"rnet": rnet, "model": model, "optimizer": optimizer, "step": step,
             "checkpoint": checkpoint}
    return parts, manager


def make_train_step(model, optimizer, step):
    """A compiled step: forward, losses, gradients, and an update when all are finite.

    The update and the increment of `step` happen together inside the step,
    so an interrupt between steps always finds them in agreement.
    """
    variables = model.rnet.trainable_variables

    @tf.function(reduce_retracing=True)
    def train_step(images, landmarks, masks):
        with tf.GradientTape() as tape:
            terms, outputs = model(images, landmarks, masks, training=True)
        gradients = tape.gradient(terms["total"], variables)
        finite_terms = {name: tf.reduce_all(tf.math.is_finite(value))
                        for name, value in terms.items()}
        finite_gradients = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                                          for g in gradients])
        ok = tf.logical_and(tf.reduce_all(list(finite_terms.values())), finite_gradients)

        def apply():
            optimizer.apply(gradients, variables)
            step.assign_add(1)
            return tf.constant(True)

        tf.cond(ok, apply, lambda: tf.constant(False))
        return terms, outputs, finite_terms, finite_gradients

    return train_step


def train(config, log=print, progress=None):
    """Runs (or resumes) training to `config.steps`.

    Returns:
      The last step reached.

    Raises:
      TrainingError: a non-finite loss or gradient (the message names the
        step, the term and the batch's files; the last good checkpoint is
        kept), or a run that cannot start.
    """
    import keras

    from training.data import TrainingSet

    keras.utils.set_random_seed(config.seed)      # The R-Net's initial weights.
    data = TrainingSet(config.data, seed=config.seed)
    parts, manager = build(config, log)
    model, optimizer, step = parts["model"], parts["optimizer"], parts["step"]
    train_step = make_train_step(model, optimizer, step)
    writer = tf.summary.create_file_writer(str(pathlib.Path(config.log_dir) / "train"))
    start_step = int(step.numpy())
    log(f"Training on {len(data)} samples from step {start_step} to {config.steps}, "
        f"batch {config.batch_size}.")
    last_time, last_step = time.perf_counter(), start_step
    batches = data.batches(start_step, config.batch_size)
    try:
        for current, batch in batches:
            if current >= config.steps:
                break
            terms, outputs, finite_terms, finite_gradients = train_step(
                batch["images"], batch["landmarks"], batch["masks"])
            bad = [name for name, ok in finite_terms.items() if not bool(ok)]
            if bad or not bool(finite_gradients):
                what = f"loss term '{bad[0]}'" if bad else "a gradient"
                raise TrainingError(
                    f"step {current}: {what} is NaN or infinite; batch: "
                    f"{', '.join(batch['names'])}; the last good checkpoint is "
                    f"{manager.latest_checkpoint or 'none (no checkpoint saved yet)'}")
            done = current + 1          # train_step advanced `step` with the update.
            if done % config.summary_every == 0 or done == config.steps:
                now = time.perf_counter()
                rate = (done - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, done
                lr = float(optimizer.learning_rate.numpy()) \
                    if hasattr(optimizer.learning_rate, "numpy") else config.learning_rate
                summaries.write_scalars(writer, done, terms, lr, rate)
                if progress is None:
                    log(f"step {done}: " + ", ".join(
                        f"{k} {float(v):.4g}" for k, v in terms.items()) + f", {rate:.2f} steps/s")
            if done % config.image_every == 0 or done == config.steps:
                summaries.write_images(writer, done, batch, outputs)
            if done % config.save_every == 0:
                manager.save(checkpoint_number=done)
            if progress is not None:
                progress(done, terms)
    except KeyboardInterrupt:
        manager.save(checkpoint_number=int(step.numpy()))
        log(f"Interrupted: saved step {int(step.numpy())} in {manager.latest_checkpoint}; "
            "resume with --resume.")
        batches.close()
        return int(step.numpy())
    finally:
        writer.flush()
    batches.close()
    if int(step.numpy()) != _latest_step(manager):
        manager.save(checkpoint_number=int(step.numpy()))
    log(f"Saved step {int(step.numpy())} in {manager.latest_checkpoint}.")
    return int(step.numpy())


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
