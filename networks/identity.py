"""The frozen face-recognition network of the identity (perceptual) loss.

A user asset such as FaceNet 20170512-110547's frozen graph: input `input`
([B,H,W,3] images), `phase_train` (bool, fed False) and output `embeddings`
([B,D]). Following the release, the network sees the 224x224 crops in BGR,
scaled as (x - 127.5) / 128; when the graph's input has a fixed other size
(160 for FaceNet's usual export) the crops are resized to it (bilinear).
"""
import tensorflow as tf

from assets.catalog import SOURCE_ID_NET


class IdentityNetwork:
    """A frozen GraphDef wrapped as a differentiable TensorFlow function.

    Args:
      pb_path: the frozen GraphDef.

    Raises:
      AssetError: missing, unparsable, or without the nodes `input`,
        `phase_train` and `embeddings`.
    """

    def __init__(self, pb_path):
        from assets.frozen_graph import importing, read_graph_def

        graph_def = read_graph_def(pb_path, ("input", "phase_train", "embeddings"),
                                   SOURCE_ID_NET, "a FaceNet-style frozen graph")
        nodes = {node.name: node for node in graph_def.node}
        shape = [d.size for d in nodes["input"].attr["shape"].shape.dim]
        self.input_size = (shape[1], shape[2]) if len(shape) == 4 and shape[1] > 0 else None

        def imported():
            tf.compat.v1.import_graph_def(
                graph_def, name="", input_map={"phase_train:0": tf.constant(False)})

        with importing(pb_path, SOURCE_ID_NET, "a FaceNet-style frozen graph"):
            wrapped = tf.compat.v1.wrap_function(imported, [])
            self._embed = wrapped.prune(
                feeds=[wrapped.graph.get_tensor_by_name("input:0")],
                fetches=[wrapped.graph.get_tensor_by_name("embeddings:0")])
        self.path = pb_path

    def __call__(self, images_bgr):
        """Embeddings of [B,224,224,3] BGR 0-255 images: [B, D] float32 (differentiable)."""
        x = (tf.clip_by_value(tf.cast(images_bgr, tf.float32), 0.0, 255.0) - 127.5) / 128.0
        if self.input_size is not None and tuple(self.input_size) != (224, 224):
            x = tf.image.resize(x, self.input_size, method="bilinear")
        return self._embed(x)

