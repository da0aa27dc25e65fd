"""Reading PyTorch weights without PyTorch, and without running anything the file holds.

A `.pth` written by `torch.save` is a zip archive: `ARCHIVE/data.pkl`, a
pickle of the saved object (here a state dict, or a dict holding one), and
one file `ARCHIVE/data/KEY` per storage, its raw little-endian bytes. A
pickle is a program: unpickling it may call any function it names. So this
reader unpickles with an allow-list, the same rule as the frozen-graph check
(`assets.frozen_graph`): the only globals a state dict needs are
`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the typed
storage classes (`torch.FloatStorage`...), and each is answered here by a
function of this module (PyTorch is never imported). Any other global is
refused before it is called: one `AssetError` line naming the file and the
global. Tensors are read lazily (`StoredTensor`): a checkpoint that also
holds optimizer state costs only the arrays asked for.

`.safetensors` files (a little-endian header length, a JSON header of
names, dtypes, shapes and byte ranges, then the bytes) hold no code and are
read directly.

Returns, either way, a flat {name: `StoredTensor`} dict; `state_dict`
picks the R-Net's from a training checkpoint ({'net_recon': ..., 'opt_00':
..., 'sched_00': ...}, as the PyTorch release's `save_networks` writes it)
or takes a bare state dict.
"""
import collections
import json
import pathlib
import pickle
import struct
import zipfile

import numpy as np

from assets.catalog import SOURCE_PYTORCH_MODEL, AssetError

# The typed storages torch.save names, by the dtype of their elements.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": "bfloat16",
                      "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
                      "U8": np.uint8, "BOOL": np.bool_}
MODEL_KEY = "net_recon"            # the R-Net's state dict in the PyTorch release's checkpoints


class StoredTensor:
    """A tensor of the file, read into an array only when asked.

    Attributes:
      dtype: its NumPy dtype, or "bfloat16".
      shape: its shape (tuple).
    """

    def __init__(self, read, dtype, shape, offset=0, strides=None):
        self._read = read                 # callable() -> the storage's bytes
        self.dtype = dtype
        self.shape = tuple(int(n) for n in shape)
        self.offset = int(offset)         # elements
        self.strides = strides            # elements, None for contiguous

    def numpy(self):
        """The tensor as a new NumPy array (bfloat16 widened to float32).

        Raises:
          ValueError: the storage is shorter than the tensor needs.
        """
        raw = self._read()
        wide = self.dtype == "bfloat16"
        dtype = np.dtype(np.uint16 if wide else self.dtype)
        if len(raw) % dtype.itemsize:
            raise ValueError("a storage's size is not a whole number of elements")
        flat = np.frombuffer(raw, dtype.newbyteorder("<"))
        strides = self.strides or tuple(
            int(np.prod(self.shape[i + 1:], dtype=np.int64)) for i in range(len(self.shape)))
        if any(n < 0 for n in self.shape) or any(s < 0 for s in strides):
            raise ValueError("negative sizes or strides")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, strides)) \
            if all(self.shape) else self.offset - 1
        if self.offset < 0 or last >= flat.size:
            raise ValueError(f"a tensor of shape {self.shape} reaches past its storage "
                             f"({flat.size} elements)")
        array = np.lib.stride_tricks.as_strided(
            flat[self.offset:], self.shape, [s * dtype.itemsize for s in strides],
            writeable=False).astype(dtype.newbyteorder("="), order="C")
        if wide:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


class _Refused(Exception):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """What torch._utils._rebuild_tensor_v2 rebuilds, kept as a `StoredTensor`."""
    if not isinstance(storage, StoredTensor):
        raise ValueError("a tensor without a storage")
    return StoredTensor(storage._read, storage.dtype, size, storage_offset, tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles only what a state dict needs; refuses any other global before it is called."""

    def __init__(self, stream, archive, prefix):
        super().__init__(stream)
        self._archive = archive
        self._prefix = prefix
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError("an unknown persistent id (not a torch storage)")
        _, dtype, key, _location, _numel = pid
        if not any(dtype is value for value in STORAGE_DTYPES.values()):
            raise ValueError("a storage of an unknown type")
        member = f"{self._prefix}data/{key}"
        if member not in self._archive.NameToInfo:
            raise ValueError(f"storage {key} is missing from the archive")
        if member not in self._storages:        # read once, when a tensor of it is asked for
            self._storages[member] = _read_once(self._archive, member)
        return StoredTensor(self._storages[member], dtype, ())


def read_pth(path):
    """The tensors of a `torch.save` zip file, by name, without running the pickle's code.

    Args:
      path: the .pth file.

    Returns:
      {dotted name: `StoredTensor`}, the nested dicts of the file flattened
      ("net_recon.backbone.conv1.weight"); values that are not tensors
      (epochs, learning rates) are left out.

    Raises:
      AssetError: not a zip, truncated, not a torch.save archive, or a pickle
        that asks for a global outside the allow-list (one line, nothing run).
    """
    path = pathlib.Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise AssetError.about(path, "is not a PyTorch checkpoint: not a zip archive, or "
                               "truncated (torch.save's zip format, PyTorch 1.6 and later, is "
                               "read)", SOURCE_PYTORCH_MODEL) from None
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               SOURCE_PYTORCH_MODEL) from None
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise AssetError.about(path, "is a zip archive but not a torch.save checkpoint (no "
                               "data.pkl)", SOURCE_PYTORCH_MODEL)
    prefix = pickles[0][:-len("data.pkl")]
    try:
        with archive.open(pickles[0]) as stream:
            content = _StateDictUnpickler(stream, archive, prefix).load()
        tensors = _flatten(content)
    except _Refused as refused:
        raise AssetError.about(path, f"refused, nothing was run: its pickle asks for the global "
                               f"'{refused.name}', which a state dict does not need") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            EOFError, zipfile.BadZipFile, OSError, RecursionError) as error:
        raise AssetError.about(path, f"is not a readable PyTorch checkpoint (truncated or "
                               f"damaged: {type(error).__name__}: {_first_line(error)})",
                               SOURCE_PYTORCH_MODEL) from None
    return tensors


def _read_once(archive, member):
    cache = []

    def read():
        if not cache:
            cache.append(archive.read(member))
        return cache[0]
    return read


def read_safetensors(path):
    """The tensors of a .safetensors file, by name.

    Raises:
      AssetError: a header that is not the format's, or byte ranges outside the file.
    """
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AssetError.about(path, f"cannot be read ({error.strerror or error})",
                               SOURCE_PYTORCH_MODEL) from None
    try:
        if len(data) < 8:
            raise ValueError("shorter than its header")
        (length,) = struct.unpack("<Q", data[:8])
        if length > len(data) - 8:
            raise ValueError("its header runs past the end of the file")
        header = json.loads(data[8:8 + length].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        body = memoryview(data)[8 + length:]
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            begin, end = (int(v) for v in entry["data_offsets"])
            if not 0 <= begin <= end <= len(body):
                raise ValueError(f"tensor {name}'s bytes lie outside the file")
            chunk = bytes(body[begin:end])
            tensors[name] = StoredTensor(lambda chunk=chunk: chunk, dtype, entry["shape"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise AssetError.about(path, f"is not a readable .safetensors file ({_first_line(error)})",
                               SOURCE_PYTORCH_MODEL) from None
    return tensors


def state_dict(path):
    """The R-Net's state dict of a .pth or .safetensors file.

    A training checkpoint's `net_recon` entry when it has one (the PyTorch
    release's `epoch_20.pth`), else the whole file as a bare state dict.

    Returns:
      {key: `StoredTensor`}, keys as the PyTorch release names them
      ("backbone.conv1.weight", "final_layers.0.bias"...).

    Raises:
      AssetError: as `read_pth` and `read_safetensors`.
    """
    path = pathlib.Path(path)
    tensors = read_safetensors(path) if path.suffix == ".safetensors" else read_pth(path)
    inner = {name[len(MODEL_KEY) + 1:]: value for name, value in tensors.items()
             if name.startswith(MODEL_KEY + ".")}
    return inner or tensors


def arrays(path, tensors):
    """Reads tensors of the file `path` into NumPy arrays.

    Args:
      path: the file they come from (for messages).
      tensors: {name: `StoredTensor`}.

    Returns:
      {name: array}.

    Raises:
      AssetError: a storage that is damaged, or shorter than its tensor.
    """
    try:
        return {name: tensor.numpy() for name, tensor in tensors.items()}
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise AssetError.about(path, f"is not a readable PyTorch checkpoint (truncated or "
                               f"damaged: {_first_line(error)})", SOURCE_PYTORCH_MODEL) from None


def _flatten(value, prefix=""):
    """{dotted name: StoredTensor} of nested dicts; other values are dropped."""
    if isinstance(value, StoredTensor):
        return {prefix: value}
    found = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return found


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"
