"""The release's 68-landmark detector: a frozen graph that sees the aligned crop.

The detector (`network/landmark68_detector.pb`, an optional user asset) is a
frozen graph that takes aligned 224x224 crops on `input_imgs`
([B,224,224,3], BGR, 0-255, as the release feeds it) and gives `landmark`
([B,136]): for each of the 68 points its row then its column, in pixels of
the crop. The release turns each pair into (x = column, y = 223 - row); we
keep y down, as every other landmark of this project.

The release prepared its training data with it; `train.py prepare` uses it
when it is there (`landmarks.sources`), dlib's predictor otherwise. Both
give the iBUG 68-point order.
"""
import numpy as np

from assets.catalog import SOURCE_LM68


class Landmark68Detector:
    """Runs the frozen 68-landmark detector on aligned crops.

    Args:
      pb_path: the frozen GraphDef.

    Raises:
      AssetError: the file is missing, does not parse, or lacks the nodes
        `input_imgs` and `landmark`.
    """

    def __init__(self, pb_path):
        import tensorflow as tf

        from assets.frozen_graph import importing, read_graph_def

        graph_def = read_graph_def(pb_path, ("input_imgs", "landmark"), SOURCE_LM68,
                                   "the 68-landmark detector")
        nodes = {node.name: node for node in graph_def.node}
        dtype = nodes["input_imgs"].attr["dtype"].type
        self.input_dtype = tf.dtypes.as_dtype(dtype).as_numpy_dtype if dtype else np.float32
        self.graph = tf.Graph()
        with self.graph.as_default(), importing(pb_path, SOURCE_LM68, "the 68-landmark detector"):
            tf.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.path = pb_path

    def __call__(self, crops_bgr):
        """Detects the 68 landmarks of aligned crops.

        Args:
          crops_bgr: [B,224,224,3] BGR 0-255 (uint8 or float).

        Returns:
          [B,68,2] float64 landmarks, crop pixels, x right, y down.
        """
        crops = np.asarray(crops_bgr)
        if np.issubdtype(self.input_dtype, np.integer):
            crops = np.clip(np.rint(crops), 0, 255)
        output = self.session.run("landmark:0", {"input_imgs:0": crops.astype(self.input_dtype)})
        rows_cols = np.asarray(output, np.float64).reshape(len(crops), 68, 2)
        return rows_cols[:, :, ::-1].copy()

    def close(self):
        self.session.close()
