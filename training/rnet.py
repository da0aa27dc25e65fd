"""The release's R-Net as a trainable Keras model, with slim's variable names.

`build_rnet` rebuilds `networks.R_Net` of the release: slim's `resnet_v1_50`
(TF 1.x contrib, default `resnet_arg_scope`, `global_pool=True`, no logits)
followed by seven 1x1 "fc-*" heads initialised to zero, concatenated to the
257 coefficients. Every Keras weight corresponds to one variable of the release
(`slim_variable_names`), which is how the initial weights are read:
`load_imagenet_checkpoint` (slim's ImageNet `resnet_v1_50.ckpt`, the release's
starting point) and `load_release_graph` (a frozen R-Net such as the authors'
`FaceReconModel.pb`, or one of ours). `export_frozen_graph` writes the model
back as a frozen graph that `demo.py` and `networks.reconstructor.Reconstructor` run
unchanged.

Keras 3 layer names cannot contain '/', so slim scopes are spelled with '_':
`resnet_v1_50/block2/unit_3/bottleneck_v1/conv2` is the layer
`block2_unit_3_conv2` and its batch norm `block2_unit_3_conv2_bn`; the root is
`conv1`/`conv1_bn`, the heads `fc-id` ... `fc-Z`.
"""
import collections
import os

import keras
import numpy as np
import tensorflow as tf

from assets.catalog import AssetError
from facemodel.coefficients import BLOCK_SIZES
from fileio import result_files
from training.batch_norm import GlobalBatchNormalization

SCOPE = "resnet_v1_50"
# (units, bottleneck depth, stride of the last unit) of blocks 1-4; output depth = 4 * bottleneck.
BLOCKS = ((3, 64, 2), (4, 128, 2), (6, 256, 2), (3, 512, 1))
# The seven heads in the order of the coefficient vector, by the release's
# variable names (fc-id, ...): one per block, the translation's split into x-y and z.
_HEAD_NAMES = {"identity": "id", "expression": "ex", "albedo": "tex", "angles": "angles",
               "lighting": "gamma"}
HEADS = tuple((_HEAD_NAMES[name], size) for name, size in BLOCK_SIZES
              if name != "translation") + (("XY", 2), ("Z", 1))
FEATURE_SIZE = 2048
COEFF_SIZE = sum(size for _, size in HEADS)    # 257
BN_DECAY = 0.997
BN_EPSILON = 1e-5
INPUT_NAME = "input_imgs"
OUTPUT_NAME = "coeff"
SOURCE_IMAGENET = ("slim's ImageNet checkpoint resnet_v1_50_2016_08_28 "
                   "(http://download.tensorflow.org/models/resnet_v1_50_2016_08_28.tar.gz)")
_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")

SlimVariable = collections.namedtuple("SlimVariable", ["name", "shape"])
SlimVariable.__doc__ = "A release variable: its slim name and shape (a tuple of ints)."


def _conv_scopes():
    """Yields (Keras layer name, slim scope) of every convolution, in network order."""
    yield "conv1", f"{SCOPE}/conv1"
    for b, (units, _, _) in enumerate(BLOCKS, start=1):
        for u in range(1, units + 1):
            for conv in (("shortcut",) if u == 1 else ()) + ("conv1", "conv2", "conv3"):
                yield f"block{b}_unit_{u}_{conv}", f"{SCOPE}/block{b}/unit_{u}/bottleneck_v1/{conv}"


def _conv_bn(x, filters, kernel, stride, name, relu):
    """slim.conv2d (no bias) + batch norm (+ ReLU); `conv2d_same` padding when stride > 1."""
    padding = "same"
    if stride > 1:      # resnet_utils.conv2d_same: symmetric explicit padding, then VALID
        pad_beg = (kernel - 1) // 2
        pad_end = kernel - 1 - pad_beg
        x = keras.layers.ZeroPadding2D(((pad_beg, pad_end), (pad_beg, pad_end)),
                                       name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                            kernel_initializer="he_normal", name=name)(x)
    x = GlobalBatchNormalization(momentum=BN_DECAY, epsilon=BN_EPSILON, center=True,
                                        scale=True, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _bottleneck(x, depth, depth_bottleneck, stride, name):
    """slim's resnet_v1.bottleneck: 1x1, 3x3 (carries the stride), 1x1, plus the shortcut."""
    if x.shape[-1] == depth:
        shortcut = x
        if stride > 1:      # resnet_utils.subsample: 1x1 max pool
            shortcut = keras.layers.MaxPooling2D(1, strides=stride, padding="same",
                                                 name=f"{name}_shortcut_subsample")(x)
    else:
        shortcut = _conv_bn(x, depth, 1, 1, f"{name}_shortcut", relu=False)
        if stride > 1:      # not reached in resnet_v1_50: the depth changes only at stride 1
            raise ValueError("a projection shortcut with a stride is not slim's resnet_v1_50")
    residual = _conv_bn(x, depth_bottleneck, 1, 1, f"{name}_conv1", relu=True)
    residual = _conv_bn(residual, depth_bottleneck, 3, stride, f"{name}_conv2", relu=True)
    residual = _conv_bn(residual, depth, 1, 1, f"{name}_conv3", relu=False)
    output = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.ReLU(name=f"{name}_out")(output)


def build_rnet(name="rnet"):
    """Builds the release's R-Net (slim resnet_v1_50 + 7 zero-initialised heads).

    There is no preprocessing inside, as in the release: the network sees raw
    BGR 0-255 values. Convolutions have no bias and no weight decay (the
    release's L2 terms never reach its loss); batch norm uses decay 0.997 and
    epsilon 1e-5 with beta and gamma. Call with `training=True` for batch
    statistics (and moving-average updates), `training=False` for the moving
    statistics, like slim's `is_training`.

    Args:
      name: the Keras model name.

    Returns:
      A `keras.Model` from [B,224,224,3] float32 (aligned crops, BGR, 0-255)
      to [B,257] float32 coefficients (id 80, ex 64, tex 80, angles 3,
      gamma 27, XY 2, Z 1). The 2048-d pooled features are the output of its
      layer `pool5`. A fresh model outputs zeros.
    """
    images = keras.Input((224, 224, 3), dtype="float32", name=INPUT_NAME)
    x = _conv_bn(images, 64, 7, 2, "conv1", relu=True)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for b, (units, depth_bottleneck, last_stride) in enumerate(BLOCKS, start=1):
        for u in range(1, units + 1):
            stride = last_stride if u == units else 1
            x = _bottleneck(x, 4 * depth_bottleneck, depth_bottleneck, stride,
                            f"block{b}_unit_{u}")
    features = keras.layers.GlobalAveragePooling2D(name="pool5")(x)
    heads = [keras.layers.Dense(size, kernel_initializer="zeros", bias_initializer="zeros",
                                name=f"fc-{head}")(features) for head, size in HEADS]
    coeff = keras.layers.Concatenate(axis=1, name=OUTPUT_NAME)(heads)
    return keras.Model(images, coeff, name=name)


def set_bn_decay(model, decay):
    """Sets the moving-average decay (Keras momentum) of every batch norm of the model.

    The release's 0.997 suits its 200k steps; the moving statistics of a run
    of a few hundred steps still lean on their initial values, and inference
    (which uses them) suffers. A short run may use a smaller decay.

    Args:
      model: from `build_rnet`.
      decay: in (0, 1).
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the batch-norm decay must be in (0, 1), got {decay}")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(decay)


def slim_variable_names(model):
    """Maps every weight of `build_rnet`'s model to the release's variable.

    Convolution `L/kernel` -> `<scope>/weights`; batch norm `L_bn/{gamma,beta,
    moving_mean,moving_variance}` -> `<scope>/BatchNorm/<same>`; head
    `fc-h/kernel` [2048,k] -> `fc-h/weights` [1,1,2048,k] and `fc-h/bias` ->
    `fc-h/biases`. Scopes: `resnet_v1_50/conv1` and
    `resnet_v1_50/block{b}/unit_{u}/bottleneck_v1/{shortcut,conv1,conv2,conv3}`.

    Args:
      model: a model built by `build_rnet`.

    Returns:
      A dict, in `model.weights` order, from each Keras weight path (e.g.
      `block2_unit_3_conv2/kernel`) to a `SlimVariable(name, shape)`.

    Raises:
      ValueError: the model has a weight that is not one of the release's.
    """
    scopes = {}
    for layer, scope in _conv_scopes():
        scopes[f"{layer}/kernel"] = scope + "/weights"
        for variable in _BN_VARIABLES:
            scopes[f"{layer}_bn/{variable}"] = f"{scope}/BatchNorm/{variable}"
    for head, _ in HEADS:
        scopes[f"fc-{head}/kernel"] = f"fc-{head}/weights"
        scopes[f"fc-{head}/bias"] = f"fc-{head}/biases"
    names = {}
    for weight in model.weights:
        if weight.path not in scopes:
            raise ValueError(f"model '{model.name}': weight {weight.path} is not a variable of "
                             "the release's R-Net (not built by build_rnet?)")
        shape = tuple(int(d) for d in weight.shape)
        if weight.path.endswith("/kernel") and weight.path.startswith("fc-"):
            shape = (1, 1) + shape
        names[weight.path] = SlimVariable(scopes[weight.path], shape)
    if len(names) != len(scopes):
        raise ValueError(f"model '{model.name}' has {len(names)} of the release's "
                         f"{len(scopes)} variables (not built by build_rnet?)")
    return names


def _shape_text(shape):
    return "(" + ",".join(str(int(d)) for d in shape) + ")"


def _assign(model, read, file_name, include=lambda name: True):
    """Reads every included weight with `read(slim_name)` (None: absent), checks, assigns.

    Nothing is assigned unless every weight is present with the right shape.
    """
    values = []
    by_path = {weight.path: weight for weight in model.weights}
    for path, slim in slim_variable_names(model).items():
        if not include(slim.name):
            continue
        value = read(slim.name)
        if value is None:
            raise ValueError(f"{file_name}: no tensor named {slim.name}")
        value = np.asarray(value)
        if tuple(value.shape) != slim.shape:
            raise ValueError(f"{file_name}: {slim.name} has shape {_shape_text(value.shape)}, "
                             f"expected {_shape_text(slim.shape)}")
        weight = by_path[path]
        values.append((weight, value.reshape(tuple(weight.shape)).astype(np.float32)))
    for weight, value in values:
        weight.assign(value)


def load_imagenet_checkpoint(model, ckpt_path):
    """Initialises the backbone from slim's ImageNet `resnet_v1_50.ckpt`, as the release.

    Assigns every convolution kernel and batch-norm variable (gamma, beta and
    the moving statistics) by its slim name. The heads are not touched (zero
    in a fresh model, as the release's, which does not restore them); the
    checkpoint's `resnet_v1_50/logits/*`, `global_step` and other extra
    variables are ignored.

    Args:
      model: a model built by `build_rnet`.
      ckpt_path: the checkpoint (V1 file or V2 prefix), e.g. `resnet_v1_50.ckpt`.

    Raises:
      AssetError: the checkpoint cannot be read.
      ValueError: a backbone variable is absent or has the wrong shape (one
        line naming the checkpoint and the variable); nothing is assigned then.
    """
    file_name = os.fspath(ckpt_path)
    try:
        reader = tf.train.load_checkpoint(file_name)
    except (tf.errors.OpError, ValueError) as error:
        raise AssetError.about(file_name, "cannot be read as a TensorFlow checkpoint "
                               f"({type(error).__name__})", SOURCE_IMAGENET) from error

    def read(name):
        return reader.get_tensor(name) if reader.has_tensor(name) else None

    _assign(model, read, file_name, include=lambda name: name.startswith(SCOPE + "/"))


def load_release_graph(model, pb_path):
    """Assigns every weight, heads included, from a frozen R-Net graph.

    The weights are the graph's Const nodes named by the release's variable
    names (`slim_variable_names`), optionally under an import prefix: a node
    named `P/resnet_v1_50/conv1/weights` also matches. Head weights
    [1,1,2048,k] become the Dense kernels [2048,k]. Other nodes are ignored.
    Reads the authors' `FaceReconModel.pb` (if it kept the variable names) and
    the files of `export_frozen_graph`.

    Args:
      model: a model built by `build_rnet`.
      pb_path: the frozen GraphDef (.pb).

    Raises:
      AssetError: the file is missing, unreadable, or not a frozen R-Net
        (`load_data.load_graph`).
      ValueError: a variable has no Const node, several, or the wrong shape
        (one line naming the file and the variable); nothing is assigned then.
    """
    import load_data  # here: it imports SciPy and the BFM helpers

    graph_def = load_data.load_graph(pb_path)
    file_name = os.fspath(pb_path)
    by_suffix = collections.defaultdict(list)
    for node in graph_def.node:
        if node.op == "Const":
            parts = node.name.split("/")
            for start in range(len(parts)):
                by_suffix["/".join(parts[start:])].append(node)

    def read(name):
        nodes = by_suffix.get(name, [])
        if len(nodes) > 1:
            raise ValueError(f"{file_name}: several tensors named {name} "
                             f"({', '.join(node.name for node in nodes)})")
        return tf.make_ndarray(nodes[0].attr["value"].tensor) if nodes else None

    _assign(model, read, file_name)


def _rename_inputs(graph_def, renames):
    """Points every node input (`name`, `name:k`, `^name`) at the renamed nodes."""
    for node in graph_def.node:
        for i, source in enumerate(node.input):
            control = source.startswith("^")
            base, colon, port = source.lstrip("^").partition(":")
            if base in renames:
                node.input[i] = ("^" if control else "") + renames[base] + colon + port


def _add_node(graph_def, op, name, inputs=(), **types):
    node = graph_def.node.add(op=op, name=name, input=list(inputs))
    for key, dtype in types.items():
        node.attr[key].type = dtype.as_datatype_enum
    return node


def export_frozen_graph(model, path, slim_names=True):
    """Writes the model as a frozen inference graph, like the release's FaceReconModel.pb.

    The graph has one Placeholder `input_imgs` (float32 [None,224,224,3], BGR
    0-255) and the output node `coeff` ([None,257]); batch norm uses the moving
    statistics. Each weight is a Const node named by its release variable name
    (`resnet_v1_50/conv1/weights`, `fc-id/weights` [1,1,2048,80] followed by a
    Reshape `fc-id/weights/dense_kernel`, ...), so `load_release_graph` reads
    the file back. `demo.py --model path` runs it unchanged.

    Args:
      model: a model built by `build_rnet`, or (with `slim_names` False) any
        R-Net of the same input and output (`training.torchvision_rnet`).
      path: the .pb file to write (atomically).
      slim_names: name the weights' constants by slim's variables (False:
        the frozen constants keep their own names, and `load_release_graph`
        cannot read the file back).

    Returns:
      `path`.

    Raises:
      RuntimeError: the frozen graph does not have the expected nodes.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32,
                                                name=INPUT_NAME)])
    def serve(images):
        return model(images, training=False)

    concrete = serve.get_concrete_function()
    # Each variable enters the function as a captured resource placeholder, which
    # freezing turns into a Const node of the same name.
    captured = {id(external): internal.op.name
                for external, internal in concrete.graph.captures}
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    nodes = {node.name: node for node in graph_def.node}
    if not slim_names:
        if OUTPUT_NAME in nodes:
            raise RuntimeError(f"frozen graph already has a node named {OUTPUT_NAME}")
        return _finish_export(graph_def, frozen, path)
    slim_names = slim_variable_names(model)
    wanted = [slim.name for slim in slim_names.values()] + [OUTPUT_NAME]
    clashes = [name for name in wanted if name in nodes]
    if clashes:
        raise RuntimeError(f"frozen graph already has nodes named {clashes[:3]}")

    renames, reshapes = {}, []
    for weight in model.weights:
        slim = slim_names[weight.path]
        old = captured.get(id(weight.value.handle))
        const = nodes.get(old)
        if const is None or const.op != "Const":
            raise RuntimeError(f"no frozen constant found for weight {weight.path}")
        const.name = renames[old] = slim.name
        value = tf.make_ndarray(const.attr["value"].tensor)
        if value.shape != slim.shape:       # a head kernel: store slim's [1,1,2048,k]
            const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.reshape(slim.shape)))
            renames[old] = f"{slim.name}/dense_kernel"
            reshapes.append((slim.name, value.shape))
    for name, shape in reshapes:            # consumers read [2048,k] through a Reshape
        shape_node = _add_node(graph_def, "Const", f"{name}/dense_kernel/shape", dtype=tf.int32)
        shape_node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array(shape, np.int32)))
        _add_node(graph_def, "Reshape", f"{name}/dense_kernel", [name, shape_node.name],
                  T=tf.float32, Tshape=tf.int32)
    _rename_inputs(graph_def, renames)
    return _finish_export(graph_def, frozen, path)


def _finish_export(graph_def, frozen, path):
    """Adds the `coeff` output, checks the one `input_imgs` placeholder, writes the file."""
    output = frozen.outputs[0].name.split(":")[0]
    _add_node(graph_def, "Identity", OUTPUT_NAME, [output], T=tf.float32)

    placeholders = [node.name for node in graph_def.node if node.op == "Placeholder"]
    if placeholders != [INPUT_NAME]:
        raise RuntimeError(f"frozen graph has placeholders {placeholders}, expected "
                           f"['{INPUT_NAME}']")
    result_files.write_atomically(path, graph_def.SerializeToString())
    return path
