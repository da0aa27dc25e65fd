"""Which R-Net a file holds, and loading it: one `--model` for both releases' networks.

- A frozen TensorFlow graph (`.pb`): the 2019 release's `FaceReconModel.pb`,
  or `train.py export`'s; read by `load_data.load_graph`, with the
  frozen-graph check.
- PyTorch weights (`.pth`, `.pt`, `.safetensors`): the PyTorch release's
  `epoch_20.pth`; read without PyTorch and without running the pickle
  (`networks.checkpoint`), built by `networks.pytorch_rnet`.

`model_record` is what every output file says about the network that made
it: {"model": file name, "model_kind": "tensorflow" | "pytorch" | "none"}.
"""
import pathlib

PYTORCH_SUFFIXES = (".pth", ".pt", ".safetensors")


def model_kind(path):
    """"pytorch" for PyTorch weights, "tensorflow" for a frozen graph, "none" without a network."""
    if path is None or str(path).lower() == "none":
        return "none"
    return "pytorch" if pathlib.Path(path).suffix.lower() in PYTORCH_SUFFIXES else "tensorflow"


def model_record(path):
    """{"model": the file's name (or "none"), "model_kind": `model_kind`}."""
    kind = model_kind(path)
    return {"model": "none" if kind == "none" else pathlib.Path(path).name, "model_kind": kind}


def load_network(path):
    """Reads an R-Net file.

    Returns:
      A `tf.compat.v1.GraphDef` (a frozen graph) or a
      `networks.pytorch_rnet.PyTorchRNet`; both are what
      `networks.reconstructor.Reconstructor` takes.

    Raises:
      AssetError: the file is missing, unreadable, refused by its check, or
        not an R-Net.
    """
    if model_kind(path) == "pytorch":
        from networks.pytorch_rnet import PyTorchRNet

        return PyTorchRNet.from_file(path)
    import load_data

    return load_data.load_graph(path)
