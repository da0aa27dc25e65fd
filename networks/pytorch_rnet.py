"""The PyTorch release's R-Net (its `epoch_20.pth`), built in TensorFlow from its weights.

The authors' PyTorch release (sicxu/Deep3DFaceRecon_pytorch) trains
torchvision's ResNet-50 with seven 1x1 heads (identity 80, expression 64,
albedo 80, angles 3, lighting 27, x-y translation 2, z translation 1),
concatenated in that order into the 257 coefficients of
`facemodel.coefficients`. torchvision's ResNet-50 is not slim's (the 2019
release's, `training.rnet`), and every difference matters for the numbers:

- each stage's first bottleneck strides on its 3x3 convolution, not on its
  first 1x1 convolution;
- padding is symmetric and explicit: the 7x7 stem pads 3 pixels a side, the
  3x3 convolutions 1, the max pool 1 (with -inf), where TensorFlow's "SAME"
  would pad more on the bottom and right;
- batch norm's epsilon is 1e-5, with the running statistics at inference;
- the input is the aligned crop in RGB divided by 255 (the 2019 network
  takes BGR 0-255): the same alignment and crop as the release, converted
  inside the graph, so that every tool feeds it what it feeds the 2019 one.

The weights keep the state dict's own names (`backbone.layer1.0.conv1.weight`,
`final_layers.0.bias`...; `EXPECTED_SHAPES`). Each batch norm is folded
into the convolution before it (scale into the kernel, shift into a bias),
which changes the result by float32 rounding only. Runs on any CPU;
PyTorch is never imported (`networks.checkpoint` reads the file).
"""
import numpy as np

from assets.catalog import SOURCE_PYTORCH_MODEL, AssetError
from facemodel.coefficients import BLOCK_SIZES

BN_EPSILON = 1e-5
STAGES = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))  # blocks, width, first stride
EXPANSION = 4
FEATURES = 512 * EXPANSION
# The heads, in the coefficient vector's order: every block, the translation's split in two.
HEAD_SIZES = tuple(size for name, size in BLOCK_SIZES if name != "translation") + (2, 1)
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _expected_shapes():
    shapes = {"backbone.conv1.weight": (64, 3, 7, 7)}
    shapes.update({f"backbone.bn1.{key}": (64,) for key in _BN[:4]})
    shapes["backbone.bn1.num_batches_tracked"] = ()
    inputs = 64
    for stage, (blocks, width, _) in enumerate(STAGES, start=1):
        for block in range(blocks):
            name = f"backbone.layer{stage}.{block}"
            convs = [("conv1", (width, inputs, 1, 1)), ("conv2", (width, width, 3, 3)),
                     ("conv3", (width * EXPANSION, width, 1, 1))]
            if block == 0:
                convs.append(("downsample.0", (width * EXPANSION, inputs, 1, 1)))
            for conv, shape in convs:
                shapes[f"{name}.{conv}.weight"] = shape
                norm = f"{name}.{conv.replace('conv', 'bn')}" if conv.startswith("conv") \
                    else f"{name}.downsample.1"
                shapes.update({f"{norm}.{key}": (shape[0],) for key in _BN[:4]})
                shapes[f"{norm}.num_batches_tracked"] = ()
            inputs = width * EXPANSION
    for head, size in enumerate(HEAD_SIZES):
        shapes[f"final_layers.{head}.weight"] = (size, FEATURES, 1, 1)
        shapes[f"final_layers.{head}.bias"] = (size,)
    return shapes


EXPECTED_SHAPES = _expected_shapes()
_FLOATS = (np.float32, np.float64, np.float16, "bfloat16")


def check_architecture(path, tensors):
    """Checks a state dict's keys, shapes and dtypes against the PyTorch release's R-Net.

    Args:
      path: its file, for messages.
      tensors: {key: `networks.checkpoint.StoredTensor`}.

    Raises:
      AssetError: one line: missing or extra keys (another architecture),
        a wrong shape or dtype.
    """
    missing = [key for key in EXPECTED_SHAPES if key not in tensors]
    extra = [key for key in tensors if key not in EXPECTED_SHAPES]
    if missing or extra:
        what = []
        if missing:
            what.append(f"{len(missing)} of its keys missing (first: '{missing[0]}')")
        if extra:
            what.append(f"{len(extra)} unknown keys (first: '{extra[0]}')")
        raise AssetError.about(path, "is not the PyTorch release's ResNet-50 R-Net: "
                               + ", ".join(what), SOURCE_PYTORCH_MODEL)
    for key, shape in EXPECTED_SHAPES.items():
        tensor = tensors[key]
        if tensor.shape != shape:
            raise AssetError.about(path, f"'{key}' has shape {tensor.shape}, the PyTorch "
                                   f"release's R-Net has {shape}", SOURCE_PYTORCH_MODEL)
        counter = key.endswith("num_batches_tracked")
        fits = tensor.dtype is np.int64 if counter else \
            any(tensor.dtype is dtype for dtype in _FLOATS)
        if not fits:
            name = tensor.dtype if tensor.dtype == "bfloat16" else np.dtype(tensor.dtype).name
            raise AssetError.about(path, f"'{key}' holds {name} values, not "
                                   + ("int64" if counter else "floats"), SOURCE_PYTORCH_MODEL)


class PyTorchRNet:
    """The PyTorch release's R-Net as TensorFlow operations on constants.

    Args:
      weights: {state dict key: NumPy array}, keys and shapes `EXPECTED_SHAPES`.
      name: the file it came from.

    Attributes:
      name: the file.
      output_length: 257.
    """
    output_length = sum(HEAD_SIZES)

    def __init__(self, weights, name="network"):
        self.name = name
        self._layers = _folded(weights)
        self._tensors = {}

    @classmethod
    def from_file(cls, path):
        """Reads and checks a .pth or .safetensors file (see `networks.checkpoint`).

        Raises:
          AssetError: the file is unreadable, refused, or not this architecture.
        """
        from networks import checkpoint

        tensors = checkpoint.state_dict(path)
        check_architecture(path, tensors)
        return cls(checkpoint.arrays(path, tensors), name=str(path))

    def __call__(self, images_bgr):
        """The coefficients of aligned crops.

        Args:
          images_bgr: [B, 224, 224, 3] float32 tensor, BGR 0-255 (the 2019
            R-Net's input; converted here to the PyTorch release's RGB / 255).

        Returns:
          [B, 257] float32 tensor.
        """
        import tensorflow as tf

        constant = self._constants()
        x = tf.reverse(tf.cast(images_bgr, tf.float32), axis=[-1]) / 255.0
        x = tf.nn.relu(_conv(x, *constant["stem"], stride=2, pad=3))
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=-np.inf)
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        for stage, (blocks, _, stride) in enumerate(STAGES, start=1):
            for block in range(blocks):
                name = f"layer{stage}.{block}"
                step = stride if block == 0 else 1
                out = tf.nn.relu(_conv(x, *constant[f"{name}.conv1"], 1, 0))
                out = tf.nn.relu(_conv(out, *constant[f"{name}.conv2"], step, 1))
                out = _conv(out, *constant[f"{name}.conv3"], 1, 0)
                if block == 0:
                    x = _conv(x, *constant[f"{name}.downsample"], step, 0)
                x = tf.nn.relu(out + x)
        features = tf.reduce_mean(x, axis=[1, 2])                      # [B, 2048]
        kernel, bias = constant["heads"]
        return tf.matmul(features, kernel) + bias

    def _constants(self):
        """The folded weights as constants of the current graph (once per graph)."""
        import tensorflow as tf

        graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        if graph not in self._tensors:
            with tf.init_scope() if graph is None else tf.name_scope("pytorch_rnet"):
                self._tensors[graph] = {key: tuple(tf.constant(v) for v in values)
                                        for key, values in self._layers.items()}
        return self._tensors[graph]


def _conv(x, kernel, bias, stride, pad):
    import tensorflow as tf

    if pad:
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return tf.nn.conv2d(x, kernel, strides=stride, padding="VALID") + bias


def _folded(weights):
    """{layer: (kernel [kh, kw, in, out] float32, bias [out] float32)}, batch norm folded in."""
    def fold(conv, norm):
        w = np.asarray(weights[f"{conv}.weight"], np.float64)
        gamma, beta, mean, var = (np.asarray(weights[f"{norm}.{key}"], np.float64)
                                  for key in _BN[:4])
        scale = gamma / np.sqrt(var + BN_EPSILON)
        kernel = (w * scale[:, None, None, None]).transpose(2, 3, 1, 0)
        return kernel.astype(np.float32), (beta - mean * scale).astype(np.float32)

    layers = {"stem": fold("backbone.conv1", "backbone.bn1")}
    for stage, (blocks, _, _) in enumerate(STAGES, start=1):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            for i in (1, 2, 3):
                layers[f"{name}.conv{i}"] = fold(f"backbone.{name}.conv{i}",
                                                 f"backbone.{name}.bn{i}")
            if block == 0:
                layers[f"{name}.downsample"] = fold(f"backbone.{name}.downsample.0",
                                                    f"backbone.{name}.downsample.1")
    kernels = [np.asarray(weights[f"final_layers.{h}.weight"], np.float32)[:, :, 0, 0].T
               for h in range(len(HEAD_SIZES))]
    biases = [np.asarray(weights[f"final_layers.{h}.bias"], np.float32)
              for h in range(len(HEAD_SIZES))]
    layers["heads"] = (np.concatenate(kernels, axis=1), np.concatenate(biases))
    return layers
