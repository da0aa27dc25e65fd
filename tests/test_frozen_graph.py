"""Model files are programs: a frozen graph that can touch the machine is refused before it runs.

The graphs are made here, each with the interface a tool expects and one
extra op that writes, prints or reads a file (or one TensorFlow does not
know); the honest synthetic graphs of the other tests, and our own exports,
load as before.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from assets import frozen_graph
from assets.catalog import AssetError
from tests.conftest import REPO_ROOT, one_line

# Op types of the real graphs the tools load, which the check must accept:
# the release's R-Net (slim resnet_v1_50 and 1x1 heads, frozen by TF 1.12),
# FaceNet 20170512-110547 (batch norm under tf.cond with `phase_train`,
# dropout, the training input queue it was frozen with, L2 normalisation);
# evidence from the release's and FaceNet's code and issues (FaceNet's
# FIFOQueueV2, Switch, SquaredDifference, Reciprocal are reported there).
RELEASE_RNET_OPS = ("Placeholder", "Const", "Identity", "Pad", "Conv2D", "BiasAdd",
                    "FusedBatchNorm", "FusedBatchNormV3", "Relu", "MaxPool", "Add", "AddV2",
                    "Mean", "Squeeze", "ConcatV2", "Reshape")
FACENET_OPS = ("Placeholder", "Const", "Identity", "FIFOQueueV2", "QueueDequeueUpToV2",
               "Switch", "Merge", "RandomUniform", "Floor", "RealDiv", "Mul", "Add", "Sub",
               "Mean", "StopGradient", "SquaredDifference", "Sum", "Reciprocal", "Square",
               "Rsqrt", "Maximum", "Reshape", "Shape", "Gather", "Prod", "Cast", "Conv2D",
               "BiasAdd", "Relu", "MaxPool", "AvgPool", "ConcatV2", "MatMul", "StridedSlice",
               "Pack", "Squeeze")
REFUSED_OPS = ("WriteFile", "ReadFile", "MatchingFiles", "ImmutableConst", "Print", "PrintV2",
               "PyFunc", "EagerPyFunc", "SaveV2", "RestoreV2", "TFRecordDatasetV2",
               "TextLineReaderV2", "DebugIdentity", "DebugIdentityV2", "VarHandleOp",
               "StatefulPartitionedCall", "InitializeTableFromTextFileV2", "NotAnOpAnywhere")


def test_the_real_graphs_ops_are_accepted_and_the_machines_refused():
    for op in set(RELEASE_RNET_OPS + FACENET_OPS):
        assert frozen_graph.dangerous_op(op) is None, op
    for op in REFUSED_OPS:
        assert frozen_graph.dangerous_op(op), op


def rnet_graph(extra=None):
    """An R-Net-interface GraphDef (input_imgs -> coeff [B, 257]); `extra(graph, coeff)`
    adds ops and returns the output to name coeff."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        coeff = tf.matmul(tf.reduce_mean(images, axis=[1, 2]),
                          tf.constant(np.full((3, 257), 1e-3, np.float32)))
        if extra is not None:
            coeff = extra(coeff)
        tf.identity(coeff, name="coeff")
    return graph.as_graph_def()


def write_graph(path, graph_def):
    path.write_bytes(graph_def.SerializeToString())
    return path


def writing(target):
    """A WriteFile whose result the output waits for (a control dependency)."""
    import tensorflow as tf

    def extra(coeff):
        write = tf.io.write_file(str(target), "written by a model file")
        with tf.control_dependencies([write]):
            return tf.identity(coeff)
    return extra


def printing(target):
    import tensorflow as tf

    def extra(coeff):
        printed = tf.print("hello", output_stream=f"file://{target}")
        with tf.control_dependencies([printed]):
            return tf.identity(coeff)
    return extra


def reading(source):
    """ReadFile's bytes turned into numbers added to the coefficients."""
    import tensorflow as tf

    def extra(coeff):
        length = tf.cast(tf.strings.length(tf.io.read_file(str(source))), tf.float32)
        return coeff + 0.0 * length
    return extra


def globbing(coeff):
    import tensorflow as tf

    return coeff + 0.0 * tf.cast(tf.size(tf.io.matching_files("/*")), tf.float32)


def unknown_op(graph_def):
    graph_def.node.add(name="custom", op="NotAnOpAnywhere")
    graph_def.node[-2].input.append("^custom")          # under a control dependency
    return graph_def


def in_function_library(graph_def):
    """A function holding a WriteFile, called by a stateless PartitionedCall."""
    function = graph_def.library.function.add()
    function.signature.name = "innocent_looking"
    node = function.node_def.add(name="write", op="WriteFile")
    node.input.extend(["filename", "contents"])
    call = graph_def.node.add(name="call", op="PartitionedCall")
    call.attr["f"].func.name = "innocent_looking"
    return graph_def


@pytest.mark.parametrize("case", ["write", "print", "read", "glob", "unknown", "library"])
def test_each_kind_of_graph_is_refused_with_one_line_naming_file_node_and_op(tmp_path, case):
    target = tmp_path / "side_effect.txt"
    build = {"write": lambda: rnet_graph(writing(target)),
             "print": lambda: rnet_graph(printing(target)),
             "read": lambda: rnet_graph(reading(REPO_ROOT / "README.md")),
             "glob": lambda: rnet_graph(globbing),
             "unknown": lambda: unknown_op(rnet_graph()),
             "library": lambda: in_function_library(rnet_graph())}[case]
    path = write_graph(tmp_path / "evil.pb", build())
    import load_data

    with pytest.raises(AssetError) as error:
        load_data.load_graph(path)
    message = one_line(error)
    assert str(path.name) in message and "refused" in message and "' op (" in message
    assert not target.exists()


def test_every_loader_refuses(tmp_path):
    import load_data
    from cli import asset_report
    from landmarks.release68 import Landmark68Detector
    from networks.identity import IdentityNetwork
    from training import rnet

    target = tmp_path / "side_effect.txt"
    evil = write_graph(tmp_path / "evil.pb", rnet_graph(writing(target)))
    with pytest.raises(AssetError, match="WriteFile"):
        rnet.load_release_graph(rnet.build_rnet(), evil)
    for loader in (Landmark68Detector, IdentityNetwork):
        with pytest.raises(AssetError, match="WriteFile"):
            loader(evil)
    report = asset_report.check_assets(tmp_path, evil)
    assert any("WriteFile" in problem for problem in report.problems)
    assert not target.exists()
    honest = write_graph(tmp_path / "honest.pb", rnet_graph())
    assert len(load_data.load_graph(honest).node) > 3


def run(tool, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO_ROOT / tool), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def one_photo(folder):
    """A folder with the example photo and its 5-point file."""
    import shutil

    folder.mkdir()
    for name in ("astronaut.png", "astronaut.txt"):
        shutil.copy(REPO_ROOT / "input" / name, folder / name)
    return folder


def test_the_tools_exit_2_and_nothing_runs(tmp_path, small_bfm):
    target = tmp_path / "side_effect.txt"
    evil = write_graph(tmp_path / "evil.pb", rnet_graph(writing(target)))
    photos = one_photo(tmp_path / "photos")
    runs = {
        "demo.py": run("demo.py", "--input", photos, "--output", tmp_path / "d", "--bfm-dir",
                       small_bfm, "--model", evil, cwd=tmp_path),
        "extract.py": run("extract.py", "--input", photos, "--output", tmp_path / "e",
                          "--bfm-dir", small_bfm, "--model", evil, cwd=tmp_path),
        "train.py prepare": run("train.py", "prepare", "--input", photos, "--output",
                                tmp_path / "t", "--bfm-dir", small_bfm, "--lm68-detector", evil,
                                cwd=tmp_path),
        "evaluate.py": run("evaluate.py", "aflw2000", "--data", photos, "--output",
                           tmp_path / "v", "--bfm-dir", small_bfm, "--model", evil,
                           cwd=tmp_path),
    }
    for tool, result in runs.items():
        assert result.returncode == 2, (tool, result.stderr[-2000:])
        assert "WriteFile" in result.stderr and "evil.pb" in result.stderr, tool
        assert "Traceback" not in result.stderr, tool
    assert not target.exists()


def all_names_graph(coeff_length=257):
    """A graph with every name the loaders look for (R-Net, 68-point detector,
    FaceNet-style identity network), each output a float tensor."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
        pooled = tf.reduce_mean(images, axis=[1, 2])
        tf.identity(tf.matmul(pooled, tf.constant(np.full((3, coeff_length), 1e-3,
                                                           np.float32))), name="coeff")
        tf.identity(tf.matmul(pooled, tf.constant(np.ones((3, 136), np.float32))),
                    name="landmark")
        faces = tf.compat.v1.placeholder(tf.float32, [None, 160, 160, 3], name="input")
        tf.compat.v1.placeholder(tf.bool, [], name="phase_train")
        tf.identity(tf.reduce_mean(faces, axis=[1, 2]), name="embeddings")
    return graph.as_graph_def()


def dangling(graph_def):
    """Every output node also takes an input from a node that does not exist."""
    for node in graph_def.node:
        if node.name in ("coeff", "landmark", "embeddings"):
            node.input.append("no_such_node")
    return graph_def


def test_a_graph_that_passes_the_check_but_does_not_import_is_one_asset_error(tmp_path,
                                                                              converted_bfm):
    from landmarks.release68 import Landmark68Detector
    from networks.identity import IdentityNetwork
    from networks.reconstructor import Reconstructor

    broken = write_graph(tmp_path / "broken.pb", dangling(all_names_graph()))
    graph_def = frozen_graph.read_graph_def(broken, ("coeff",), "x", "an R-Net")  # passes
    front = converted_bfm / "BFM_model_front.mat"
    with pytest.raises(AssetError, match="broken.pb: does not import as an R-Net"):
        Reconstructor(graph_def, front, model_name=str(broken))
    for loader, kind in ((Landmark68Detector, "the 68-landmark detector"),
                         (IdentityNetwork, "a FaceNet-style frozen graph")):
        with pytest.raises(AssetError, match=f"broken.pb: does not import as {kind}"):
            loader(broken)
    # A 'coeff' that is an op with no output.
    no_output = all_names_graph()
    next(node for node in no_output.node if node.name == "coeff").op = "NoOp"
    del next(node for node in no_output.node if node.name == "coeff").input[:]
    with pytest.raises(AssetError, match="does not import as an R-Net"):
        Reconstructor(no_output, front, model_name="no_output.pb")


def test_the_tools_say_one_line_for_a_graph_that_does_not_import(tmp_path, small_bfm):
    broken = write_graph(tmp_path / "broken.pb", dangling(all_names_graph()))
    white_light = write_graph(tmp_path / "white_light.pb", all_names_graph(239))
    photos = one_photo(tmp_path / "photos")
    runs = {
        "demo.py": run("demo.py", "--input", photos, "--output", tmp_path / "d", "--bfm-dir",
                       small_bfm, "--model", broken, cwd=tmp_path),
        "train.py prepare": run("train.py", "prepare", "--input", photos, "--output",
                                tmp_path / "t", "--bfm-dir", small_bfm, "--lm68-detector",
                                broken, cwd=tmp_path),
        "demo.py --refine": run("demo.py", "--input", photos, "--output", tmp_path / "r",
                                "--bfm-dir", small_bfm, "--model", white_light, "--refine", 2,
                                cwd=tmp_path),
    }
    for tool, result in runs.items():
        assert result.returncode == 2, (tool, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, tool
    assert "broken.pb: does not import as an R-Net" in runs["demo.py"].stderr
    assert "broken.pb: does not import as the 68-landmark detector" in \
        runs["train.py prepare"].stderr
    assert "white_light.pb: refining needs a network with 257" in \
        runs["demo.py --refine"].stderr
    assert not list((tmp_path / "r").glob("*"))     # refused before any photo
