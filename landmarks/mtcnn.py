"""Automatic 5-point landmarks with MTCNN (the `mtcnn` package ships its weights).

The points come back in the release's order: left eye, right eye, nose tip,
left mouth corner, right mouth corner, where "left" is the smaller x in the
image, which is what MTCNN calls `left_eye` and `mouth_left`.
"""
import threading

import numpy as np

from fileio.errors import InputError

_KEYPOINT_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class FivePointDetector:
    """Finds the largest face of a photo and returns its 5 landmarks.

    The MTCNN networks are loaded on first use, so constructing a detector
    costs nothing when every photo has its landmark file. Calls are
    serialized, so one detector can be shared by several threads.

    Args:
      min_confidence: faces MTCNN scores below this are ignored, in [0, 1].
    """

    def __init__(self, min_confidence=0.9):
        self.min_confidence = min_confidence
        self._mtcnn = None
        self._lock = threading.Lock()

    def __call__(self, image, name="image"):
        """Detects the 5 landmarks of the largest face.

        Args:
          image: [H, W, 3] uint8 RGB array (or a PIL RGB image).
          name: the file to name in an error message.

        Returns:
          [5, 2] float64 array of x, y pixel coordinates (x right, y down).

        Raises:
          InputError: no face found.
        """
        pixels = np.asarray(image, dtype=np.uint8)
        with self._lock:
            if self._mtcnn is None:
                from mtcnn import MTCNN  # Imported here: it loads Keras and its weights.
                self._mtcnn = _with_graph_networks(MTCNN())
            faces = self._mtcnn.detect_faces(pixels)
        faces = [f for f in faces if f.get("confidence", 0.0) >= self.min_confidence]
        if not faces:
            raise InputError(f"{name}: no face found by the landmark detector")
        largest = max(faces, key=lambda f: abs(f["box"][2] * f["box"][3]))
        return np.array([largest["keypoints"][k] for k in _KEYPOINT_ORDER], dtype=np.float64)


def _with_graph_networks(mtcnn):
    """Runs MTCNN's three networks as TensorFlow graphs instead of op by op.

    mtcnn 1.0.0 calls its Keras networks eagerly, once per pyramid level and
    stage, and most of a call's time goes to dispatching single operations
    (on a 2-core CPU about 100 ms for a 190-pixel region and 170 ms for a
    600x400 photo, against 26 and 71 ms as graphs, each timed alone). Each
    stage's network is wrapped in a `tf.function` that takes any batch and
    image size, so it is traced once. The networks and their weights are
    unchanged: the results are the same (tests/test_landmark_detector.py).
    A stage without the expected attribute (another mtcnn version) is left
    as it is.
    """
    import tensorflow as tf

    images = tf.TensorSpec([None, None, None, 3], tf.float32)
    for stage in getattr(mtcnn, "stages", ()):
        network = getattr(stage, "_model", None)
        if callable(network) and not isinstance(network, tf.types.experimental.GenericFunction):
            stage._model = tf.function(network, input_signature=[images])
    return mtcnn
