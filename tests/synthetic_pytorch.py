"""PyTorch checkpoints made without PyTorch, in the exact formats, for the tests.

`write_pth` writes what `torch.save` writes (PyTorch 1.6 and later): a zip
archive holding `ARCHIVE/data.pkl`, a protocol-2 pickle whose tensors are
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, OrderedDict())` calls and whose storages are persistent ids
('storage', torch.FloatStorage, key, 'cpu', numel), and one
`ARCHIVE/data/KEY` file of raw little-endian bytes per storage. The pickle
is assembled opcode by opcode (`PickleWriter`), so that the tests need no
PyTorch and can also write the hostile pickles a reader must refuse.
`write_safetensors` writes the safetensors format.

`random_state_dict` draws the PyTorch release's R-Net's weights (every key
and shape of `networks.pytorch_rnet.EXPECTED_SHAPES`) from a seed, with
batch-norm statistics far from the identity, so that a reader or a network
that ignores them is caught. tests/record_pytorch_reference.py runs the
PyTorch release's own network on these weights with PyTorch, and records
its output.
"""
import io
import json
import pickle
import struct
import zipfile

import numpy as np

STORAGES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
            np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
            np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage"}
SAFETENSORS = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
               np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}


def random_state_dict(seed=0, head_scale=0.002):
    """The R-Net's weights drawn from `seed`: {state dict key: array} (float32, int64 counters).

    Convolutions: He-normal; batch norm: weight in [0.5, 1.5], bias, running
    mean and variance in ranges that move every activation; heads scaled by
    `head_scale` so that the coefficients are those of a face in view.
    """
    from networks.pytorch_rnet import EXPECTED_SHAPES

    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in EXPECTED_SHAPES.items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(int(rng.integers(1, 10000)), np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif key.endswith("running_mean"):
            state[key] = rng.normal(0.0, 0.2, shape).astype(np.float32)
        elif key.startswith("final_layers"):
            scale = head_scale / np.sqrt(shape[1]) if key.endswith("weight") else head_scale
            state[key] = (scale * rng.standard_normal(shape)).astype(np.float32)
        elif key.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = (np.sqrt(2.0 / fan_in) * rng.standard_normal(shape)).astype(np.float32)
        elif key.endswith(".weight"):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:                                                   # batch norm bias
            state[key] = rng.normal(0.0, 0.1, shape).astype(np.float32)
    return state


class PickleWriter:
    """Assembles a protocol-2 pickle opcode by opcode (see `pickle`'s opcode table)."""

    def __init__(self):
        self.out = io.BytesIO()
        self.out.write(pickle.PROTO + b"\x02")

    def op(self, code):
        self.out.write(code)

    def global_(self, module, name):
        self.out.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))

    def value(self, value):
        """Writes a plain value: None, bool, int, float, str, tuple, list or dict."""
        if value is None:
            self.op(pickle.NONE)
        elif value is True or value is False:
            self.op(pickle.NEWTRUE if value else pickle.NEWFALSE)
        elif isinstance(value, int):
            self.out.write(pickle.LONG1 + _long_bytes(value))
        elif isinstance(value, float):
            self.out.write(pickle.BINFLOAT + struct.pack(">d", value))
        elif isinstance(value, str):
            data = value.encode("utf-8")
            self.out.write(pickle.BINUNICODE + struct.pack("<I", len(data)) + data)
        elif isinstance(value, tuple):
            self.op(pickle.MARK)
            for item in value:
                self.value(item)
            self.op(pickle.TUPLE)
        elif isinstance(value, list):
            self.op(pickle.EMPTY_LIST)
            if value:
                self.op(pickle.MARK)
                for item in value:
                    self.value(item)
                self.op(pickle.APPENDS)
        elif isinstance(value, dict):
            self.op(pickle.EMPTY_DICT)
            if value:
                self.op(pickle.MARK)
                for key, item in value.items():
                    self.value(key)
                    self.value(item)
                self.op(pickle.SETITEMS)
        elif callable(value):            # a hook that writes something itself
            value(self)
        else:
            raise TypeError(f"cannot write {type(value).__name__}")

    def bytes(self):
        return self.out.getvalue() + pickle.STOP


def _long_bytes(value):
    data = value.to_bytes((value.bit_length() + 8) // 8 or 1, "little", signed=True)
    return bytes([len(data)]) + data


def write_pth(path, content, archive="archive"):
    """Writes `content` as torch.save does.

    Args:
      path: the .pth file.
      content: nested dicts (written as collections.OrderedDict) of arrays
        (written as tensors) and plain values.
      archive: the zip's top folder (torch.save uses the file's stem).
    """
    storages = []

    def tensor(array):
        array = np.asarray(array, order="C")        # (ascontiguousarray makes 0-d 1-d)
        key = str(len(storages))
        storages.append(array.astype(array.dtype.newbyteorder("<")).tobytes())

        def write(w):
            w.global_("torch._utils", "_rebuild_tensor_v2")
            w.op(pickle.MARK)
            w.op(pickle.MARK)                                         # the persistent id
            w.value("storage")
            w.global_("torch", STORAGES[array.dtype])
            w.value(key)
            w.value("cpu")
            w.value(int(array.size))
            w.op(pickle.TUPLE)
            w.op(pickle.BINPERSID)
            w.value(0)
            w.value(tuple(int(n) for n in array.shape))
            w.value(tuple(int(s // array.itemsize) for s in array.strides))
            w.value(False)
            w.global_("collections", "OrderedDict")
            w.op(pickle.EMPTY_TUPLE)
            w.op(pickle.REDUCE)
            w.op(pickle.TUPLE)
            w.op(pickle.REDUCE)
        return write

    def ordered(mapping):
        def write(w):
            w.global_("collections", "OrderedDict")
            w.op(pickle.EMPTY_TUPLE)
            w.op(pickle.REDUCE)
            if mapping:
                w.op(pickle.MARK)
                for key, item in mapping.items():
                    w.value(key)
                    w.value(convert(item))
                w.op(pickle.SETITEMS)
        return write

    def convert(value):
        if isinstance(value, np.ndarray):
            return tensor(value)
        if isinstance(value, dict):
            return ordered(value)
        return value

    writer = PickleWriter()
    writer.value(convert(content))
    write_archive(path, writer.bytes(), storages, archive)
    return path


def write_archive(path, data_pkl, storages=(), archive="archive"):
    """The zip of torch.save around a data.pkl and its storages."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zipped:
        zipped.writestr(f"{archive}/data.pkl", data_pkl)
        zipped.writestr(f"{archive}/byteorder", "little")
        for key, data in enumerate(storages):
            zipped.writestr(f"{archive}/data/{key}", data)
        zipped.writestr(f"{archive}/version", "3\n")
    return path


def hostile_pickle(module, name, argument):
    """A data.pkl that calls module.name(argument) when unpickled by a trusting reader."""
    writer = PickleWriter()
    writer.global_(module, name)
    writer.value((argument,))
    writer.op(pickle.REDUCE)
    return writer.bytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: array} in the safetensors format."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.asarray(array, order="C").astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": SAFETENSORS[np.dtype(array.dtype)],
                        "shape": list(np.shape(array)), "data_offsets": [offset,
                                                                         offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode("utf-8")
    with open(path, "wb") as stream:
        stream.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    return path
