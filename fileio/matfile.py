"""MATLAB v5 .mat files (uncompressed), written as scipy.io.savemat writes them, with fewer copies.

The demo writes one .mat a photo, about 2 MB, mostly five float arrays
(the render, the mesh's shape, albedo and colour). `scipy.io.savemat`
copies each array into Fortran order, then into its stream, and the stream
is copied once more into the file. Here a numeric array is transposed once
into Fortran order and handed to the file as it is, beside small header
buffers (`encode`): the same bytes, a fraction of the time
(docs/performance.md#photos-benchpipelinepy). Every other kind of value (strings,
object arrays, booleans...) is encoded by scipy itself, one variable at a
time, so a file holds exactly what savemat would write.

The layout (MathWorks' "MAT-File Format", level 5): a 128-byte header,
then per variable a miMATRIX element holding the array flags, the
dimensions, the name and the real part, each a tagged element padded to 8
bytes (elements of at most 4 bytes packed into their tag).
"""
import io
import os
import time

import numpy as np

_MI_INT8, _MI_UINT32, _MI_INT32, _MI_MATRIX = 1, 6, 5, 14
# dtype -> (the data's element type, the array's class), as savemat maps them.
_NUMERIC = {
    np.dtype(np.float64): (9, 6), np.dtype(np.float32): (7, 7),
    np.dtype(np.int8): (1, 8), np.dtype(np.uint8): (2, 9),
    np.dtype(np.int16): (3, 10), np.dtype(np.uint16): (4, 11),
    np.dtype(np.int32): (5, 12), np.dtype(np.uint32): (6, 13),
    np.dtype(np.int64): (12, 14), np.dtype(np.uint64): (13, 15),
}


def header():
    """The 128-byte file header, as savemat writes it (its text names the time)."""
    text = f"MATLAB 5.0 MAT-file Platform: {os.name}, Created on: {time.asctime()}"
    return (text.encode("latin1")[:116].ljust(116, b"\0") + bytes(8)
            + np.uint16(0x0100).tobytes() + np.uint16(0x4D49).tobytes())


def encode(variables):
    """A .mat file's bytes, as a list of buffers to write one after the other.

    Args:
      variables: dict of name -> value, as `scipy.io.savemat` takes it
        (1-D arrays are written as rows, as savemat's default).

    Returns:
      A list of bytes-like objects whose concatenation is the file
      (savemat's bytes, `do_compression=False`, byte for byte after the
      header's time).
    """
    buffers = [header()]
    for name, value in variables.items():
        if name.startswith("_"):
            continue                        # savemat skips these too (with a warning)
        array = value if isinstance(value, np.ndarray) else None
        if (array is not None and array.dtype in _NUMERIC and array.dtype.isnative
                and array.size * array.itemsize > 4):
            buffers += _numeric(name, array)
        else:
            buffers.append(_scipy_variable(name, value))
    return buffers


def _numeric(name, array):
    data_type, array_class = _NUMERIC[array.dtype]
    dims = array.shape if array.ndim >= 2 else ((1, 1) if array.ndim == 0 else (1, array.size))
    if array.ndim == 1 and array.size == 0:
        dims = (0, 0)
    # Column-major data: the transpose, made contiguous (one copy; none for a vector).
    data = np.ascontiguousarray(array.T) if array.ndim >= 2 else np.ascontiguousarray(array)
    data_bytes = data.size * data.itemsize
    flags = np.array([_MI_UINT32, 8, array_class, 0], "<u4").tobytes()
    parts = [flags, _element(_MI_INT32, np.asarray(dims, "<i4").tobytes()),
             _element(_MI_INT8, name.encode("latin1")),
             np.array([data_type, data_bytes], "<u4").tobytes()]
    padding = b"\0" * (-data_bytes % 8)
    size = sum(len(p) for p in parts) + data_bytes + len(padding)
    return [np.array([_MI_MATRIX, size], "<u4").tobytes(), *parts,
            memoryview(data).cast("B"), padding]


def _element(data_type, payload):
    """A tagged element: packed into its tag when it holds at most 4 bytes."""
    if len(payload) <= 4:
        return np.array([(len(payload) << 16) + data_type], "<u4").tobytes() + \
            payload.ljust(4, b"\0")
    return (np.array([data_type, len(payload)], "<u4").tobytes() + payload
            + b"\0" * (-len(payload) % 8))


def _scipy_variable(name, value):
    """One variable's bytes as savemat writes them (after its header)."""
    from scipy.io import savemat

    stream = io.BytesIO()
    savemat(stream, {name: value}, do_compression=False)
    return stream.getvalue()[128:]
