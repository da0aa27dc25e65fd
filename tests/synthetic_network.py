"""Synthetic frozen R-Net graphs with the release's exact interface.

The authors' `FaceReconModel.pb` is a frozen TF 1.x GraphDef whose input is the
placeholder `input_imgs` (float32 [B,224,224,3], BGR, 0-255) and whose output
is the tensor `coeff` (float32 [B,257], or [B,258] for the 2020.6 release).
These writers make graphs with the same names, shapes and dtypes from random
constant weights, so the project's real loading code (`import_graph_def` with
an `input_map`) runs unchanged:

- `write_tiny_rnet`: a few cheap ops, for unit and end-to-end tests. Its
  coefficients depend on the image, stay small (a face in view) and can be
  recomputed independently with NumPy (`tiny_rnet_numpy`).
- `write_resnet50_rnet`: a ResNet-50 v1 body (bottleneck blocks 3-4-6-3,
  batch normalization, global average pooling) and a dense head, for
  benchmarks that need the network's real cost.
"""
import os

import numpy as np

INPUT_NAME = "input_imgs"
OUTPUT_NAME = "coeff"


def _tiny_weights(n_out, seed):
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((7 * 7 * 3, n_out)) * 0.02).astype(np.float32)
    bias = np.zeros(n_out, dtype=np.float32)
    return weights, bias


def tiny_rnet_numpy(images, n_out=257, seed=0):
    """The tiny R-Net's output, computed with NumPy (an independent reference).

    Args:
      images: [B,224,224,3] float32, BGR, 0-255.
      n_out: number of outputs (239, 257 or 258).
      seed: the seed the graph was written with.

    Returns:
      [B, n_out] float32.
    """
    weights, bias = _tiny_weights(n_out, seed)
    x = images.astype(np.float32) / 255.0 - 0.5
    pooled = x.reshape(-1, 7, 32, 7, 32, 3).mean(axis=(2, 4))      # [B,7,7,3]
    return pooled.reshape(len(images), -1) @ weights + bias


def write_tiny_rnet(path, n_out=257, seed=0):
    """Writes a tiny frozen R-Net: 32x32 average pooling and one dense layer.

    Args:
      path: output .pb path.
      n_out: number of outputs (257, 258 or 239).
      seed: random seed of the weights.

    Returns:
      `path`.
    """
    import tensorflow as tf

    weights, bias = _tiny_weights(n_out, seed)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name=INPUT_NAME)
        x = images / 255.0 - 0.5
        pooled = tf.nn.avg_pool2d(x, ksize=32, strides=32, padding="VALID")
        flat = tf.reshape(pooled, [-1, 7 * 7 * 3])
        tf.identity(tf.matmul(flat, weights) + bias, name=OUTPUT_NAME)
    _write_graph_def(graph.as_graph_def(), path)
    return path


def write_resnet50_rnet(path, n_out=257, seed=0):
    """Writes a frozen ResNet-50 v1 R-Net with random weights.

    Args:
      path: output .pb path.
      n_out: number of outputs.
      seed: random seed of the weights.

    Returns:
      `path`.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def conv_bn(x, k, c_out, stride, relu=True):
        c_in = int(x.shape[-1])
        w = rng.standard_normal((k, k, c_in, c_out)).astype(np.float32)
        w *= np.sqrt(2.0 / (k * k * c_in))
        y = tf.nn.conv2d(x, w, strides=stride, padding="SAME")
        scale = np.full(c_out, 0.5 if not relu else 1.0, np.float32)
        offset = np.zeros(c_out, np.float32)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            y, scale, offset, mean=np.zeros(c_out, np.float32),
            variance=np.ones(c_out, np.float32), is_training=False)
        return tf.nn.relu(y) if relu else y

    def bottleneck(x, width, stride):
        c_out = 4 * width
        shortcut = x
        if stride != 1 or int(x.shape[-1]) != c_out:
            shortcut = conv_bn(x, 1, c_out, stride, relu=False)
        y = conv_bn(x, 1, width, stride)
        y = conv_bn(y, 3, width, 1)
        y = conv_bn(y, 1, c_out, 1, relu=False)
        return tf.nn.relu(y + shortcut)

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name=INPUT_NAME)
        x = images / 127.5 - 1.0
        x = conv_bn(x, 7, 64, 2)
        x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
            for block in range(blocks):
                x = bottleneck(x, width, stride if block == 0 else 1)
        features = tf.reduce_mean(x, axis=[1, 2])
        w = (rng.standard_normal((2048, n_out)) * 1e-3).astype(np.float32)
        tf.identity(tf.matmul(features, w), name=OUTPUT_NAME)
    _write_graph_def(graph.as_graph_def(), path)
    return path


def _write_graph_def(graph_def, path):
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(graph_def.SerializeToString())
    os.replace(tmp, path)


def write_tiny_identity_net(path, size=None, seed=0):
    """Writes a small FaceNet-shaped frozen graph (for tests and benchmarks).

    Args:
      path: output .pb.
      size: the input's fixed spatial size, or None for any size.
      seed: random weights' seed.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        side = size if size else None
        x = tf.compat.v1.placeholder(tf.float32, [None, side, side, 3], name="input")
        train = tf.compat.v1.placeholder(tf.bool, [], name="phase_train")
        w1 = tf.constant(rng.normal(0, 0.3, (5, 5, 3, 8)).astype(np.float32))
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 4, "SAME"))
        y = tf.cond(train, lambda: y * 1.0, lambda: y)
        y = tf.reduce_mean(y, axis=[1, 2])
        w2 = tf.constant(rng.normal(0, 0.5, (8, 16)).astype(np.float32))
        tf.math.l2_normalize(tf.matmul(y, w2) + 0.1, axis=1, name="embeddings")
    _write_graph_def(graph.as_graph_def(), path)
    return path
