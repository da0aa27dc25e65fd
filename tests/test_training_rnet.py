"""training.rnet against an independent construction of the release's frozen R-Net.

The reference is slim's resnet_v1_50 (as `networks.R_Net` builds it, inference
mode) plus the seven 1x1 heads, written here with raw `tf.compat.v1` ops in a
`tf.Graph`, its random weights held as Const nodes named by the exact slim
variable names, and saved as a frozen .pb with `input_imgs` and `coeff`, like
the authors' FaceReconModel.pb. (`tf_slim` is not installed, so slim itself is
not used.) The same weights also go into a slim-named TF 1.x checkpoint, like
slim's ImageNet `resnet_v1_50.ckpt`.
"""
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import one_line

SCOPE = "resnet_v1_50"
BLOCKS = [(3, 64, 2), (4, 128, 2), (6, 256, 2), (3, 512, 1)]   # units, bottleneck, last stride
HEADS = [("id", 80), ("ex", 64), ("tex", 80), ("angles", 3), ("gamma", 27), ("XY", 2), ("Z", 1)]
BN = ("beta", "gamma", "moving_mean", "moving_variance")
BACKBONE_TRAINABLE = 23_508_032     # slim resnet_v1_50, no logits: conv weights, BN beta and gamma
HEADS_TRAINABLE = 2048 * 257 + 257


def release_variables():
    """[(slim name, shape, fan_in, role)] of the release's R-Net, from slim's layer list."""
    variables = []

    def conv(scope, k, c_in, c_out, role="conv"):
        variables.append((f"{scope}/weights", (k, k, c_in, c_out), k * k * c_in, role))
        variables.extend((f"{scope}/BatchNorm/{v}", (c_out,), None, role) for v in BN)

    conv(f"{SCOPE}/conv1", 7, 3, 64, role="root")
    c_in = 64
    for b, (units, depth, _) in enumerate(BLOCKS, start=1):
        for u in range(1, units + 1):
            scope = f"{SCOPE}/block{b}/unit_{u}/bottleneck_v1"
            if u == 1:
                conv(f"{scope}/shortcut", 1, c_in, 4 * depth)
            conv(f"{scope}/conv1", 1, c_in, depth)
            conv(f"{scope}/conv2", 3, depth, depth)
            conv(f"{scope}/conv3", 1, depth, 4 * depth, role="residual_out")
            c_in = 4 * depth
    for head, size in HEADS:
        variables.append((f"fc-{head}/weights", (1, 1, 2048, size), 2048, "head"))
        variables.append((f"fc-{head}/biases", (size,), None, "head"))
    return variables


def random_release_weights(seed=0):
    """Random weights that keep activations O(1) on BGR 0-255 input, with non-trivial BN."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape, fan_in, role in release_variables():
        leaf = name.rsplit("/", 1)[1]
        if leaf == "weights":
            std = 0.02 if role == "head" else np.sqrt(2.0 / fan_in)   # He for convolutions
            if role == "root":
                std /= 255.0                            # the input is 0-255
            value = rng.standard_normal(shape) * std
        elif leaf == "biases":
            value = rng.standard_normal(shape) * 0.1
        elif leaf == "gamma":
            # Small on the residual's last BN, so that 16 units do not blow up the scale.
            low, high = (0.1, 0.3) if role == "residual_out" else (0.5, 1.5)
            value = rng.uniform(low, high, shape)
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        else:                                           # beta, moving_mean
            value = rng.standard_normal(shape) * 0.1
        weights[name] = value.astype(np.float32)
    return weights


def build_release_graph(weights):
    """slim resnet_v1_50 + heads in inference mode, with raw TF ops; returns the tf.Graph."""
    graph = tf.Graph()
    with graph.as_default():
        const = {}
        for name, value in weights.items():
            const[name] = tf.constant(value, name=name)
            assert const[name].op.name == name

        def conv_bn(x, scope, stride, relu):
            w = const[f"{scope}/weights"]
            k = int(w.shape[0])
            if stride == 1:
                y = tf.nn.conv2d(x, w, 1, "SAME")
            else:                                       # resnet_utils.conv2d_same
                pad_beg = (k - 1) // 2
                pad_end = k - 1 - pad_beg
                x = tf.pad(x, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]])
                y = tf.nn.conv2d(x, w, stride, "VALID")
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                y, const[f"{scope}/BatchNorm/gamma"], const[f"{scope}/BatchNorm/beta"],
                mean=const[f"{scope}/BatchNorm/moving_mean"],
                variance=const[f"{scope}/BatchNorm/moving_variance"],
                epsilon=1e-5, is_training=False)
            return tf.nn.relu(y) if relu else y

        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        net = conv_bn(images, f"{SCOPE}/conv1", 2, relu=True)
        net = tf.nn.max_pool2d(net, 3, 2, "SAME")
        for b, (units, depth, last_stride) in enumerate(BLOCKS, start=1):
            for u in range(1, units + 1):
                scope = f"{SCOPE}/block{b}/unit_{u}/bottleneck_v1"
                stride = last_stride if u == units else 1
                if int(net.shape[-1]) == 4 * depth:
                    shortcut = net if stride == 1 else tf.nn.max_pool2d(net, 1, stride, "SAME")
                else:
                    shortcut = conv_bn(net, f"{scope}/shortcut", stride, relu=False)
                residual = conv_bn(net, f"{scope}/conv1", 1, relu=True)
                residual = conv_bn(residual, f"{scope}/conv2", stride, relu=True)
                residual = conv_bn(residual, f"{scope}/conv3", 1, relu=False)
                net = tf.nn.relu(shortcut + residual)
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name=f"{SCOPE}/pool5")
        outputs = []
        for head, _ in HEADS:
            y = tf.nn.conv2d(net, const[f"fc-{head}/weights"], 1, "VALID")
            y = tf.nn.bias_add(y, const[f"fc-{head}/biases"])
            outputs.append(tf.squeeze(y, [1, 2], name=f"fc-{head}/squeezed"))
        tf.identity(tf.concat(outputs, axis=1), name="coeff")
    return graph


def write_release_checkpoint(weights, prefix):
    """The weights as a slim-named TF 1.x checkpoint, with ImageNet logits and a global step."""
    rng = np.random.default_rng(1)
    extra = {f"{SCOPE}/logits/weights": rng.standard_normal((1, 1, 2048, 1000)),
             f"{SCOPE}/logits/biases": rng.standard_normal(1000)}
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(value.astype(np.float32), name=name)
                     for name, value in {**weights, **extra}.items()]
        variables.append(tf.compat.v1.Variable(np.int64(12345), name="global_step"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(prefix))


def write_graph_def(graph_def, path):
    path.write_bytes(graph_def.SerializeToString())
    return path


def relative_error(value, reference):
    return float(np.abs(value - reference).max() / np.abs(reference).max())


def keras_features(model, images):
    import keras
    return keras.Model(model.input, model.get_layer("pool5").output)(images, training=False)


class Release:
    """The reference: weights (slim name -> array), graph_def, pb path, images, coeff, features."""

    def __init__(self, **parts):
        self.__dict__.update(parts)

    def __repr__(self):     # not the 100 MB GraphDef in a failure report
        return f"Release({self.pb})"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The random release weights, their frozen graph, and its outputs on 2 random photos."""
    folder = tmp_path_factory.mktemp("release")
    weights = random_release_weights()
    graph = build_release_graph(weights)
    graph_def = graph.as_graph_def()
    images = np.random.default_rng(2).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    with tf.compat.v1.Session(graph=graph) as session:
        coeff, features = session.run(["coeff:0", f"{SCOPE}/pool5:0"], {"input_imgs:0": images})
    return Release(weights=weights, graph_def=graph_def, images=images, coeff=coeff,
                   features=features.reshape(2, 2048),
                   pb=write_graph_def(graph_def, folder / "FaceReconModel.pb"))


@pytest.fixture(scope="module")
def loaded(release):
    from training import rnet
    model = rnet.build_rnet()
    rnet.load_release_graph(model, release.pb)
    return model


def test_variable_names_are_slims(loaded):
    from training import rnet
    names = rnet.slim_variable_names(loaded)
    expected = {name: shape for name, shape, _, _ in release_variables()}
    assert {slim.name: slim.shape for slim in names.values()} == expected
    assert len(names) == len(expected) == len(loaded.weights)
    assert names["conv1/kernel"] == ("resnet_v1_50/conv1/weights", (7, 7, 3, 64))
    assert names["block2_unit_3_conv2/kernel"].name == (
        "resnet_v1_50/block2/unit_3/bottleneck_v1/conv2/weights")
    assert names["fc-id/kernel"] == ("fc-id/weights", (1, 1, 2048, 80))


def test_release_graph_gives_the_release_coefficients(release, loaded):
    coeff = loaded(release.images, training=False).numpy()
    assert coeff.shape == (2, 257)
    assert np.abs(release.coeff).max() > 0.1            # a non-trivial output
    assert relative_error(coeff, release.coeff) <= 1e-4
    assert relative_error(keras_features(loaded, release.images).numpy(),
                          release.features) <= 1e-4


def test_release_graph_under_an_import_prefix(release, tmp_path):
    from training import rnet
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        tf.import_graph_def(release.graph_def, name="resnet",
                            input_map={"input_imgs:0": images})
        tf.identity(graph.get_tensor_by_name("resnet/coeff:0"), name="coeff")
    path = write_graph_def(graph.as_graph_def(), tmp_path / "prefixed.pb")
    model = rnet.build_rnet()
    rnet.load_release_graph(model, path)
    coeff = model(release.images, training=False).numpy()
    assert relative_error(coeff, release.coeff) <= 1e-4


def test_imagenet_checkpoint_gives_the_backbone(release, tmp_path):
    from training import rnet
    prefix = write_release_checkpoint(release.weights, tmp_path / "resnet_v1_50.ckpt")
    model = rnet.build_rnet()
    rnet.load_imagenet_checkpoint(model, prefix)
    by_path = {weight.path: weight for weight in model.weights}
    for path, slim in rnet.slim_variable_names(model).items():
        value = by_path[path].numpy()
        if slim.name.startswith("fc-"):
            assert not value.any(), f"{path}: a head was touched"
        else:
            np.testing.assert_array_equal(value.reshape(slim.shape), release.weights[slim.name])
    features = keras_features(model, release.images).numpy()
    assert relative_error(features, release.features) <= 1e-4
    assert not model(release.images, training=False).numpy().any()


def test_imagenet_checkpoint_missing_variable(release, tmp_path):
    from training import rnet
    missing = f"{SCOPE}/block4/unit_1/bottleneck_v1/shortcut/BatchNorm/moving_variance"
    partial = {name: value for name, value in release.weights.items() if name != missing}
    prefix = write_release_checkpoint(partial, tmp_path / "partial.ckpt")
    model = rnet.build_rnet()
    with pytest.raises(ValueError) as error:
        rnet.load_imagenet_checkpoint(model, prefix)
    message = one_line(error)
    assert message == f"{prefix}: no tensor named {missing}"


def test_export_runs_in_the_reconstructor(release, loaded, tmp_path):
    import scipy.io

    import load_data
    from networks.reconstructor import Reconstructor
    from tests.synthetic_assets import make_front_model
    from training import rnet

    path = tmp_path / "exported.pb"
    assert rnet.export_frozen_graph(loaded, path) == path
    graph_def = load_data.load_graph(path)
    assert [n.name for n in graph_def.node if n.op == "Placeholder"] == ["input_imgs"]
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    for name, shape, _, _ in release_variables():      # frozen weights carry the slim names
        assert tuple(tf.make_ndarray(consts[name].attr["value"].tensor).shape) == shape

    front = tmp_path / "BFM_model_front.mat"
    scipy.io.savemat(front, make_front_model())
    reconstructor = Reconstructor(graph_def, front, model_name=str(path), render=False)
    try:
        exported = reconstructor.network_only(release.images)
        assert reconstructor(release.images[:1])["coeff"].shape == (1, 257)
    finally:
        reconstructor.close()
    keras_coeff = loaded(release.images, training=False).numpy()
    assert relative_error(exported, keras_coeff) <= 1e-5

    fresh = rnet.build_rnet()
    rnet.load_release_graph(fresh, path)
    for original, reloaded in zip(loaded.weights, fresh.weights, strict=True):
        assert original.path == reloaded.path
        np.testing.assert_array_equal(original.numpy(), reloaded.numpy(), err_msg=original.path)


def _edited_graph(release, path, edit):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.CopyFrom(release.graph_def)
    edit(graph_def)
    return write_graph_def(graph_def, path)


def test_missing_tensor_names_variable_and_file(release, tmp_path):
    from training import rnet
    missing = f"{SCOPE}/block2/unit_3/bottleneck_v1/conv2/weights"

    def drop(graph_def):
        kept = [node for node in graph_def.node if node.name != missing]
        del graph_def.node[:]
        graph_def.node.extend(kept)

    path = _edited_graph(release, tmp_path / "missing.pb", drop)
    model = rnet.build_rnet()
    before = model.get_layer("conv1").kernel.numpy()
    with pytest.raises(ValueError) as error:
        rnet.load_release_graph(model, path)
    assert one_line(error) == f"{path}: no tensor named {missing}"
    # Nothing was assigned: conv1 (read before block2) is untouched.
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), before)


def test_wrong_shape_names_variable_and_file(release, tmp_path):
    from training import rnet

    def shrink(graph_def):
        node = next(n for n in graph_def.node if n.name == f"{SCOPE}/conv1/weights")
        node.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(np.zeros((7, 7, 3, 32), np.float32)))

    path = _edited_graph(release, tmp_path / "shape.pb", shrink)
    with pytest.raises(ValueError) as error:
        rnet.load_release_graph(rnet.build_rnet(), path)
    assert one_line(error) == (f"{path}: {SCOPE}/conv1/weights has shape (7,7,3,32), "
                               "expected (7,7,3,64)")


def test_ambiguous_and_missing_files(release, tmp_path):
    import load_data
    from training import rnet

    def duplicate(graph_def):
        node = next(n for n in graph_def.node if n.name == "fc-Z/biases")
        copy = graph_def.node.add()
        copy.CopyFrom(node)
        copy.name = "other/fc-Z/biases"

    path = _edited_graph(release, tmp_path / "twice.pb", duplicate)
    with pytest.raises(ValueError, match="several tensors named fc-Z/biases"):
        rnet.load_release_graph(rnet.build_rnet(), path)
    with pytest.raises(load_data.AssetError, match="missing"):
        rnet.load_release_graph(rnet.build_rnet(), tmp_path / "absent.pb")
    with pytest.raises(load_data.AssetError, match="checkpoint"):
        rnet.load_imagenet_checkpoint(rnet.build_rnet(), tmp_path / "absent.ckpt")


def test_fresh_model_outputs_zeros_and_has_slims_parameters():
    from training import rnet
    model = rnet.build_rnet()
    images = np.random.default_rng(3).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    coeff = model(images, training=False).numpy()
    assert coeff.shape == (1, 257) and not coeff.any()

    variables = release_variables()
    moving = sum(int(np.prod(shape)) for name, shape, _, _ in variables if "/moving_" in name)
    backbone = sum(int(np.prod(shape)) for name, shape, _, _ in variables
                   if name.startswith(SCOPE) and "/moving_" not in name)
    heads = sum(int(np.prod(shape)) for name, shape, _, _ in variables if name.startswith("fc-"))
    assert (backbone, heads) == (BACKBONE_TRAINABLE, HEADS_TRAINABLE)

    def count(weights):
        return sum(int(np.prod(w.shape)) for w in weights)

    assert count(model.trainable_weights) == backbone + heads
    assert count(model.non_trainable_weights) == moving
    assert len(model.trainable_weights) == sum("/moving_" not in v[0] for v in variables)


def test_layer_shapes_follow_slim():
    """Spatial sizes of slim resnet_v1_50 on a 224 input: 112, 56, then 28, 14, 7, 7."""
    from training import rnet
    model = rnet.build_rnet()
    sizes = {"conv1_relu": (112, 64), "pool1": (56, 64), "block1_unit_3_out": (28, 256),
             "block2_unit_4_out": (14, 512), "block3_unit_6_out": (7, 1024),
             "block4_unit_3_out": (7, 2048), "block1_unit_2_out": (56, 256)}
    for layer, (size, depth) in sizes.items():
        assert tuple(model.get_layer(layer).output.shape) == (None, size, size, depth), layer
    # The stride sits on the 3x3 convolution of the last unit, after slim's explicit padding.
    conv2 = model.get_layer("block1_unit_3_conv2")
    assert conv2.strides == (2, 2) and conv2.padding == "valid"
    assert model.get_layer("block1_unit_3_conv2_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("block1_unit_1_conv2").strides == (1, 1)


def test_set_bn_decay_sets_the_moving_average_step():
    import keras

    from training.rnet import build_rnet, set_bn_decay

    model = build_rnet()
    set_bn_decay(model, 0.9)
    layer = model.get_layer("conv1_bn")
    conv = keras.Model(model.input, model.get_layer("conv1").output)
    images = np.random.default_rng(3).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    batch_mean = conv(images).numpy().mean(axis=(0, 1, 2))
    before = layer.moving_mean.numpy().copy()
    model(images, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.9 * before + 0.1 * batch_mean,
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="decay"):
        set_bn_decay(model, 1.0)
