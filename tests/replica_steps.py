"""Trains a few steps on one device and on mirrored logical CPUs, from the same start; saves both.

    python -m tests.replica_steps BFM_DIR DATA_DIR OUT.npz [--steps N] [--batch-size B]

Run in a process of its own: the CPU is split into 2 logical devices before
TensorFlow starts. Both runs start from the same random R-Net, whose zero
output heads are replaced by small random ones (seeded), so that the first
step's gradients reach the whole network; both take the same global
batches. The file holds, for each run ("one", "mirrored"): the loss terms of
every step, the weights after the last step, and Adam's first moments after
the first step (1 - beta_1 times the gradient: the gradients themselves).
"""
import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

NUDGE = 1e-3        # gray levels added to every photo of the "nudged" one-device run


def run(replicas, args, log_dir, photo_offset=0.0):
    import keras

    from training.data import TrainingSet
    from training.loop import TrainConfig, build, make_train_step

    config = TrainConfig(data=[args.data], log_dir=str(log_dir), bfm_dir=args.bfm,
                         batch_size=args.batch_size, steps=args.steps)
    keras.utils.set_random_seed(0)
    parts, _ = build(config, log=lambda line: None, replicas=replicas)
    rnet, optimizer = parts["rnet"], parts["optimizer"]
    rng = np.random.default_rng(1)
    for layer in rnet.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.kernel.assign(rng.normal(0, 1e-3, layer.kernel.shape).astype(np.float32))
    out = {"initial": np.concatenate([np.ravel(w.numpy()) for w in rnet.trainable_weights])}
    step = make_train_step(parts["model"], optimizer, parts["step"], replicas.strategy)
    data = TrainingSet([args.data])
    rows = replicas.worker_rows(args.batch_size)
    terms_per_step = []
    for k in range(args.steps):
        batch = data.batch(k, args.batch_size, rows=rows)
        batch["images"] = batch["images"] + np.float32(photo_offset)
        inputs = [replicas.distribute(batch[key], args.batch_size)
                  for key in ("images", "landmarks", "masks")]
        terms = step(*inputs)[0]
        terms_per_step.append([float(terms[name]) for name in sorted(terms)])
        if k == 0:
            moments = [v for v in optimizer.variables if "momentum" in v.path]
            out["first_moments"] = np.concatenate([np.ravel(v.numpy()) for v in moments])
    out["terms"] = np.array(terms_per_step)
    out["trainable"] = np.concatenate([np.ravel(w.numpy()) for w in rnet.trainable_weights])
    out["statistics"] = np.concatenate([np.ravel(w.numpy()) for w in rnet.non_trainable_weights])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bfm")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    import tensorflow as tf

    from training import replicas as replicas_module

    mirrored = replicas_module.make("mirrored", cpu_devices=2)
    one = replicas_module.Replicas("one", tf.distribute.get_strategy())
    assert mirrored.num_replicas == 2
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, replicas, offset in (("one", one, 0.0), ("mirrored", mirrored, 0.0),
                                       ("nudged", one, NUDGE)):
            for key, value in run(replicas, args, pathlib.Path(folder) / name, offset).items():
                results[f"{name}_{key}"] = value
    np.savez(args.out, **results)


if __name__ == "__main__":
    main()
