"""Writing result files: every file is written whole or not at all.

`write_atomically` is the one way the project writes a file (a temporary
file in the same folder, then a rename). On top of it: landmark text files,
OBJ meshes (byte-identical to the release's "%f" text, formatted with NumPy),
.mat files (scipy's bytes, `fileio.matfile`) and PNG images.
"""
import io
import os
import threading

import numpy as np

_WRITE_CHUNK = 1 << 18


def write_atomically(path, data):
    """Writes a file through a temporary file in the same folder and a rename.

    A reader never sees a partial file: either the old content (or nothing)
    or the complete new one. The file gets the usual permissions (umask);
    missing parent folders are made.

    Args:
      path: destination path.
      data: bytes, or a callable that writes to a binary file object.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as stream:
            if callable(data):
                data(stream)
            else:
                # In chunks: one multi-megabyte write() measured about four
                # times slower here than the same bytes in 256 KiB pieces.
                view = memoryview(data).cast("B")
                for start in range(0, len(view), _WRITE_CHUNK):
                    stream.write(view[start:start + _WRITE_CHUNK])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_landmarks(path, points):
    """Writes [K, 2] points in the landmark file format, atomically.

    Args:
      path: destination text file.
      points: [K, 2] array of x, y pixel coordinates.
    """
    text = "".join(f"{x:.3f}\t{y:.3f}\n" for x, y in np.asarray(points, dtype=np.float64))
    write_atomically(path, text.encode("ascii"))


def save_obj(path, v, f, c):
    """Writes a coloured triangle mesh as OBJ (docs/model.md#demo-files).

    One "v x y z r g b" line per vertex ('%f' formatting, as the release),
    a blank line, then one "f i j k" line per triangle. The file is built as a
    single formatted string (no Python loop per line) and written atomically.

    Args:
      path: output file.
      v: [N,3] vertex positions.
      f: [F,3] triangles, 1-based vertex indices (as the model's `tri`).
      c: [N,3] vertex colours, written as given (the demo passes
        clip(face_color, 0, 255) / 255).

    Raises:
      ValueError: wrong shapes, non-integer or out-of-range indices.
    """
    v = np.asarray(v)
    c = np.asarray(c)
    f = np.asarray(f)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"v must be [N,3], got {v.shape}")
    if c.shape != v.shape:
        raise ValueError(f"c must be [N,3] like v {v.shape}, got {c.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"f must be [F,3], got {f.shape}")
    if f.size:
        if f.dtype.kind == "f" and not np.all(f == np.round(f)):
            raise ValueError("f must hold integer vertex indices")
        if f.min() < 1 or f.max() > v.shape[0]:
            raise ValueError(f"f must hold 1-based indices in [1, {v.shape[0]}], got "
                             f"[{f.min()}, {f.max()}]")
    vertex_lines = format_float_rows("v", np.concatenate([v, c], axis=1))
    write_atomically(path, vertex_lines + b"\n" + _face_lines(f.astype(np.int64)))


def write_plain_obj(path, v, f):
    """Writes an uncoloured triangle mesh as OBJ: "v x y z" ('%f') lines, then "f i j k".

    For tools that read OBJ files strictly (NoW's loader fails on vertex
    colours). Written atomically, with `save_obj`'s formatting.

    Args:
      path: output file.
      v: [N,3] vertex positions.
      f: [F,3] triangles, 1-based vertex indices.
    """
    write_atomically(path, format_float_rows("v", np.asarray(v))
                     + _face_lines(np.asarray(f, np.int64)))


_DIGIT_PLANES = np.array([list(f"{i:03d}") for i in range(1000)], "S1").view(np.uint8).T.copy()


def format_float_rows(prefix, values):
    """Formats [R,K] numbers as R lines "prefix x1 ... xK", each as "%f" would.

    Byte for byte the text of `("prefix" + " %f" * K + "\n") % row` for every
    row, built with NumPy instead of one Python format per number (about
    three times faster for a 35k-vertex mesh): each value becomes a fixed-width
    field of bytes (separator, sign, integer digits, point, 6 decimals, with
    zeros where "%f" prints nothing), and the zeros are dropped at the end
    (`bytes.translate`, which deletes them 35% faster than a NumPy mask).

    Args:
      prefix: one character starting each line ("v").
      values: [R, K] numbers. Non-finite values or magnitudes of 1e9 or more
        are formatted by Python instead.

    Returns:
      bytes: R lines, each ending with a newline.
    """
    # A float32 value times 1e6 is exact in float64 (24 + 14 significant
    # bits), so rint then rounds exactly as printf does (ties to even).
    exact_product = np.asarray(values).dtype in (np.float32, np.float16)
    values = np.asarray(values, dtype=np.float64)
    rows, cols = values.shape
    magnitude = np.abs(values)
    if rows == 0 or not np.all(magnitude < 1e9):  # Also false for NaN and infinities.
        line = prefix + " %f" * cols + "\n"
        return ((line * rows) % tuple(values.ravel().tolist())).encode("ascii")
    scaled = magnitude * 1e6
    micro = np.rint(scaled)
    # Where the product is too close to a half for its rounding error, ask
    # printf itself (correct rounding of the exact binary value).
    if not exact_product:
        near_half = np.abs(scaled - micro) >= 0.5 - 5e-16 * scaled   # 5e-16: over 2 ulps.
        for i in np.flatnonzero(near_half):
            micro.flat[i] = int(("%f" % magnitude.flat[i]).replace(".", ""))
    micro = micro.astype(np.int64)
    whole = micro // 1000000
    fraction = (micro - whole * 1000000).astype(np.int32)
    fraction_high = fraction // 1000
    n_int = len(str(int(whole.max())))
    # Byte planes, one per position of a field: [separator, prefix space, sign,
    # n_int digits, ".", 6 decimals, newline]; a zero byte means "nothing".
    planes = np.zeros((n_int + 11, rows, cols), np.uint8)
    planes[0, :, 0] = ord(prefix)
    planes[0, :, 1:] = ord(" ")
    planes[1, :, 0] = ord(" ")
    planes[2] = np.signbit(values) * np.uint8(ord("-"))
    rest = whole
    for place in range(n_int - 1, -1, -1):
        digit = (rest % 10).astype(np.uint8) + np.uint8(ord("0"))
        leading = whole < 10 ** (n_int - 1 - place)
        planes[3 + place] = digit if place == n_int - 1 else np.where(leading, 0, digit)
        rest = rest // 10
    planes[3 + n_int] = ord(".")
    planes[4 + n_int:7 + n_int] = np.take(_DIGIT_PLANES, fraction_high, axis=1)
    planes[7 + n_int:10 + n_int] = np.take(_DIGIT_PLANES, fraction - fraction_high * 1000, axis=1)
    planes[10 + n_int, :, -1] = ord("\n")
    text = np.ascontiguousarray(planes.transpose(1, 2, 0)).ravel()
    return text.tobytes().translate(None, b"\0")


_face_cache = {}


def _face_lines(faces, textured=False):
    """The "f i j k" block ("f i/i j/j k/k" with texture coordinates, one per vertex).

    A folder's meshes share one topology: format it once. The last topology
    of each kind is kept with a copy of its indices; a call with equal
    indices (one comparison, no hashing) reuses its text.
    """
    cached = _face_cache.get(textured)   # (indices, text), replaced as one.
    if cached is None or not np.array_equal(cached[0], faces):
        line, values = ("f %d %d %d\n", faces.ravel()) if not textured else \
            ("f %d/%d %d/%d %d/%d\n", np.repeat(faces.ravel(), 2))
        text = ((line * faces.shape[0]) % tuple(values.tolist())).encode("ascii")
        cached = _face_cache[textured] = (faces.copy(), text)
    return cached[1]


def write_textured_obj(path, v, f, uv, material_library, material):
    """Writes a mesh with one texture coordinate per vertex, and its material, as OBJ.

    `mtllib` and `usemtl` name the material; "v x y z" and "vt u v" lines
    ('%f'); faces "f i/i j/j k/k" (the vertex's own texture coordinate).
    Written atomically.

    Args:
      path: output file.
      v: [N,3] vertex positions.
      f: [F,3] triangles, 1-based vertex indices.
      uv: [N,2] texture coordinates (u right, v up, in [0, 1]).
      material_library: the .mtl file's name, beside the OBJ.
      material: the material's name in it.
    """
    v, uv = np.asarray(v), np.asarray(uv)
    if uv.shape != (v.shape[0], 2):
        raise ValueError(f"uv must be [N,2] like v's {v.shape[0]} vertices, got {uv.shape}")
    header = f"mtllib {material_library}\nusemtl {material}\n".encode("utf-8")
    # One-character prefix "t", then "vt": numbers never hold a "t".
    coordinates = format_float_rows("t", uv).replace(b"t ", b"vt ")
    write_atomically(path, header + format_float_rows("v", v) + coordinates
                     + _face_lines(np.asarray(f, np.int64), textured=True))


def write_material(path, material, texture):
    """Writes a .mtl file: one material, white, its diffuse colour from an image file."""
    write_atomically(path, (f"newmtl {material}\nKa 1.000000 1.000000 1.000000\n"
                            f"Kd 1.000000 1.000000 1.000000\nKs 0.000000 0.000000 0.000000\n"
                            f"d 1.0\nillum 1\nmap_Kd {texture}\n").encode("utf-8"))


def write_mat(path, variables):
    """Writes a MATLAB v5 .mat file (uncompressed), atomically.

    The bytes are `scipy.io.savemat`'s (`fileio.matfile`), written without
    its copies.

    Args:
      path: destination file.
      variables: dict of name -> array, as `scipy.io.savemat` takes it.
    """
    from fileio import matfile

    buffers = matfile.encode(variables)

    def write(stream):
        for buffer in buffers:
            stream.write(buffer)

    write_atomically(path, write)


def encode_png(rgb):
    """Encodes [H, W, 3] uint8 RGB (or [H, W] grey) as PNG bytes (zlib level 1, "Sub" filter).

    Level 1 takes a third of the default level's time for a few percent more
    bytes; the "Sub" filter on every row, in place of libpng's choice per
    row among all five, takes about 40% less time again for 2% more bytes
    on a demo preview (docs/performance.md#photos-benchpipelinepy). The
    pixels are the same whichever the filter: any PNG reader decodes them
    exactly.

    Raises:
      RuntimeError: OpenCV could not encode the image.
    """
    import cv2

    pixels = rgb if rgb.ndim == 2 else rgb[:, :, ::-1]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1,
                             cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def write_png(path, rgb):
    """Writes [H, W, 3] uint8 RGB (or [H, W] grey) as a PNG file, atomically (`encode_png`)."""
    write_atomically(path, encode_png(rgb))


def write_npy(path, array):
    """Writes an array as a .npy file (no pickles), atomically."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    write_atomically(path, buffer.getvalue())
