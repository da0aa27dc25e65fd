"""The PyTorch release's R-Net as a trainable Keras model: `train.py --init pytorch`.

The training R-Net of `training.rnet` is slim's ResNet-50, the 2019
release's; the PyTorch release's `epoch_20.pth` holds torchvision's, which
differs in where each stage strides (its first block's 3x3 convolution, not
its first 1x1), in padding (symmetric: 3 for the 7x7 stem, 1 for the 3x3
convolutions and the max pool) and in its input (RGB divided by 255, not
BGR 0-255). Its weights cannot initialise slim's network without changing
what it computes, so training from them builds this network instead
(`networks.pytorch_rnet` documents the same architecture for inference):
the input conversion is its first layer, so it takes, like every R-Net of
this project, aligned crops in BGR 0-255, trains with the same loop and
losses, and `train.py export` freezes it into a graph that `demo.py` runs.

Layer names follow the state dict's keys with '_' for '.': `conv1`, `bn1`,
`layer2_0_conv2`, `layer2_0_bn2`, `layer2_0_downsample_0`,
`layer2_0_downsample_1`, and the heads `final_layers_0` ... `final_layers_6`.
The max pool pads with zeros, which equals PyTorch's -inf padding there: it
follows a ReLU, so no value it sees is negative.
"""
import keras
import numpy as np
import tensorflow as tf

from networks.pytorch_rnet import BN_EPSILON, EXPANSION, HEAD_SIZES, STAGES
from training.batch_norm import GlobalBatchNormalization
from training.rnet import BN_DECAY, INPUT_NAME, OUTPUT_NAME

LAYOUT = "torchvision"
_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
       "running_var": "moving_variance"}


def _conv(x, filters, kernel, stride, name, pad=0):
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid",
                               use_bias=False, kernel_initializer="he_normal", name=name)(x)


def _norm(x, name):
    return GlobalBatchNormalization(momentum=BN_DECAY, epsilon=BN_EPSILON, name=name)(x)


def build_torchvision_rnet(name="rnet"):
    """torchvision's ResNet-50 and the PyTorch release's seven heads, as a Keras model.

    Returns:
      A `keras.Model` from [B,224,224,3] float32 aligned crops, BGR 0-255,
      to [B,257] coefficients; its layer `pool5` gives the 2048-d features.
      A fresh model's heads are zero, as the PyTorch release's.
    """
    images = keras.Input((224, 224, 3), dtype="float32", name=INPUT_NAME)
    x = keras.layers.Lambda(lambda bgr: tf.reverse(bgr, axis=[-1]) / 255.0, name="to_rgb")(images)
    x = keras.layers.ReLU(name="relu")(_norm(_conv(x, 64, 7, 2, "conv1", pad=3), "bn1"))
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)
    for stage, (blocks, width, first_stride) in enumerate(STAGES, start=1):
        for block in range(blocks):
            name = f"layer{stage}_{block}"
            stride = first_stride if block == 0 else 1
            out = keras.layers.ReLU()(_norm(_conv(x, width, 1, 1, f"{name}_conv1"),
                                            f"{name}_bn1"))
            out = keras.layers.ReLU()(_norm(_conv(out, width, 3, stride, f"{name}_conv2", pad=1),
                                            f"{name}_bn2"))
            out = _norm(_conv(out, width * EXPANSION, 1, 1, f"{name}_conv3"), f"{name}_bn3")
            if block == 0:
                x = _norm(_conv(x, width * EXPANSION, 1, stride, f"{name}_downsample_0"),
                          f"{name}_downsample_1")
            x = keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add()([out, x]))
    features = keras.layers.GlobalAveragePooling2D(name="pool5")(x)
    heads = [keras.layers.Dense(size, kernel_initializer="zeros", bias_initializer="zeros",
                                name=f"final_layers_{i}")(features)
             for i, size in enumerate(HEAD_SIZES)]
    coeff = keras.layers.Concatenate(axis=1, name=OUTPUT_NAME)(heads)
    return keras.Model(images, coeff, name=name)


def state_dict_names(model):
    """{Keras weight path: (state dict key, transpose)} of `build_torchvision_rnet`'s weights.

    `transpose` turns the state dict's array into the Keras weight: a
    convolution's [out, in, kh, kw] into [kh, kw, in, out], a head's
    [out, 2048, 1, 1] into [2048, out].
    """
    names = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            names[f"{layer.name}/kernel"] = (f"backbone.{_key(layer.name)}.weight",
                                             lambda w: w.transpose(2, 3, 1, 0))
        elif isinstance(layer, keras.layers.BatchNormalization):
            for torch_name, keras_name in _BN.items():
                names[f"{layer.name}/{keras_name}"] = (
                    f"backbone.{_key(layer.name)}.{torch_name}", lambda w: w)
        elif isinstance(layer, keras.layers.Dense):
            head = layer.name.rsplit("_", 1)[1]
            names[f"{layer.name}/kernel"] = (f"final_layers.{head}.weight",
                                             lambda w: w[:, :, 0, 0].T)
            names[f"{layer.name}/bias"] = (f"final_layers.{head}.bias", lambda w: w)
    return names


def _key(layer_name):
    """"layer2_0_downsample_1" -> "layer2.0.downsample.1"; "conv1" -> "conv1"."""
    return layer_name.replace("_", ".")


def load_pytorch_weights(model, path):
    """Assigns every weight of `build_torchvision_rnet`'s model from the PyTorch release's file.

    Args:
      model: from `build_torchvision_rnet`.
      path: a .pth (a training checkpoint's `net_recon`, or a bare state
        dict) or .safetensors file of the PyTorch release's R-Net.

    Raises:
      AssetError: the file is unreadable, refused (`networks.checkpoint`), or
        not that architecture; nothing is assigned then.
    """
    from networks import checkpoint
    from networks.pytorch_rnet import check_architecture

    tensors = checkpoint.state_dict(path)
    check_architecture(path, tensors)
    arrays = checkpoint.arrays(path, tensors)
    names = state_dict_names(model)
    values = []
    for weight in model.weights:
        key, transpose = names[weight.path]
        value = np.asarray(transpose(arrays[key].astype(np.float32)))
        if tuple(value.shape) != tuple(weight.shape):
            raise ValueError(f"{path}: {key} gives shape {value.shape} for {weight.path}, "
                             f"expected {tuple(weight.shape)}")
        values.append((weight, value))
    for weight, value in values:
        weight.assign(value)
