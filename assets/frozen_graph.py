"""Reading a frozen TensorFlow graph, and refusing one that can touch the machine.

A frozen GraphDef is a program: importing and running it runs every node
its outputs depend on, and a node can be any op TensorFlow registers. The
R-Net, the 68-landmark detector and FaceNet come from download links that
break and are re-shared on mirrors, so every tool reads them through
`read_graph_def`, which refuses, before anything is imported or run, a
graph with a node (at the top level or in its function library, wherever
it hangs: an output's input, a control dependency, an unused branch) whose
op
- is stateful in TensorFlow's op registry: file writing (`WriteFile`),
  printing (`Print`, `PrintV2`, which can also write files), Python calls
  (`PyFunc`), checkpoint saving and restoring, datasets, debug ops,
  variables, stateful function calls;
- reaches files or the network without being marked stateful: `ReadFile`,
  `MatchingFiles`, `ImmutableConst` (a memory-mapped file), the debug ops
  (`DebugIdentity` and others write tensors to files or gRPC), any op whose
  name holds "Dataset" or "Reader", and a few more (`UNMARKED`);
- is not in the registry at all (a custom kernel could do anything);
except the stateful ops that stay inside the process (`HARMLESS_STATEFUL`):
random numbers (dropout's `RandomUniform`) and in-memory queues, which
FaceNet 20170512-110547's frozen graph holds (its input pipeline's
`FIFOQueueV2` and `QueueDequeueUpToV2`, its dropout under `phase_train`).
tests/test_frozen_graph.py lists the ops of the release's R-Net, of
FaceNet's graph and of this project's own graphs, which the check accepts.
"""
import contextlib
import pathlib

from assets.catalog import AssetError
from assets.checks import require_file

HARMLESS_STATEFUL = frozenset({
    # Random numbers (dropout, noise): no effect outside the process.
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "ParameterizedTruncatedNormal", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
    "RandomShuffle", "Multinomial",
    # In-memory queues of TF1 input pipelines, kept in frozen graphs (FaceNet's).
    "FIFOQueue", "FIFOQueueV2", "PaddingFIFOQueue", "PaddingFIFOQueueV2",
    "RandomShuffleQueue", "RandomShuffleQueueV2", "PriorityQueue", "PriorityQueueV2",
    "QueueDequeue", "QueueDequeueV2", "QueueDequeueMany", "QueueDequeueManyV2",
    "QueueDequeueUpTo", "QueueDequeueUpToV2", "QueueEnqueue", "QueueEnqueueV2",
    "QueueEnqueueMany", "QueueEnqueueManyV2", "QueueClose", "QueueCloseV2", "QueueSize",
    "QueueSizeV2", "QueueIsClosed", "QueueIsClosedV2",
    # Checks that raise an error at run time, nothing more.
    "Assert", "CheckNumerics", "CheckNumericsV2",
})
UNMARKED = frozenset({"ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
                      "LoadAndRemapMatrix", "DecodeProtoV2", "EncodeProto"})


def dangerous_op(op_name):
    """Why an op may not run in a model file, or None when it may.

    Args:
      op_name: a NodeDef's `op`.

    Returns:
      None, or a short reason ("stateful", "reaches files", "not a
      registered TensorFlow op").
    """
    from tensorflow.python.framework import op_def_registry

    if op_name in UNMARKED or "Dataset" in op_name or "Reader" in op_name \
            or op_name.startswith("Debug"):
        return "reaches files or the network"
    op_def = op_def_registry.get(op_name)
    if op_def is None:
        return "not a registered TensorFlow op"
    if op_def.is_stateful and op_name not in HARMLESS_STATEFUL:
        return "stateful: it can act outside the computation"
    return None


def refused_node(graph_def):
    """The first node a model file may not hold: (node name, op, reason), or None.

    Checks every node of the graph and of every function in its library.
    """
    nodes = [(node.name, node.op) for node in graph_def.node]
    for function in graph_def.library.function:
        nodes += [(f"{function.signature.name}/{node.name}", node.op)
                  for node in function.node_def]
    for name, op in nodes:
        reason = dangerous_op(op)
        if reason:
            return name, op, reason
    return None


def read_graph_def(path, needed_nodes, source, kind):
    """Reads a frozen GraphDef, checks its nodes, and refuses one that can touch the machine.

    Args:
      path: the .pb file.
      needed_nodes: node names it must have.
      source: where a user gets the file (for messages).
      kind: what the graph is, e.g. "the R-Net graph" (for messages).

    Returns:
      The `tf.compat.v1.GraphDef`.

    Raises:
      AssetError: the file is missing, empty, does not parse, lacks a node,
        or holds a node whose op it may not run (one line: the file, the
        node, the op and why).
    """
    path = require_file(pathlib.Path(path), source)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               source) from error
    if not data:
        raise AssetError.about(path, "is empty", source)
    import tensorflow as tf  # lazily: importing TensorFlow takes seconds
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:      # protobuf's DecodeError (its module varies by backend)
        raise AssetError.about(path, f"does not parse as a TensorFlow GraphDef, truncated or "
                               f"not a frozen .pb ({type(error).__name__})", source) from error
    refused = refused_node(graph_def)
    if refused:
        name, op, reason = refused
        raise AssetError.about(path, f"refused, nothing was run: node '{name}' is a '{op}' op "
                               f"({reason}); a frozen model does not need one")
    names = {node.name for node in graph_def.node}
    for needed in needed_nodes:
        if needed not in names:
            raise AssetError.about(path, f"has no node named '{needed}' (not {kind}, "
                                   "or truncated)", source)
    return graph_def


@contextlib.contextmanager
def importing(path, source, kind):
    """Turns TensorFlow's errors while importing a checked graph into one AssetError.

    A graph can hold the right node names and still not import: an input of
    the wrong type, a dangling input, a named tensor with no output. Wrap the
    `import_graph_def` (and the lookup of its tensors) in this.

    Args:
      path: the graph's file, for the message.
      source: where a user gets the right file.
      kind: what the file should be, e.g. "the 68-landmark detector".

    Raises:
      AssetError: one line naming the file and TensorFlow's first line.
    """
    try:
        yield
    except (KeyError, TypeError, ValueError) as error:
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise AssetError.about(path, f"does not import as {kind} ({reason})", source) from None
