"""The benchmarks' file formats: what their datasets hold and what predictions look like.

- AFLW2000-3D: `NAME.jpg` with `NAME.mat` holding `pt3d_68` [3, 68] (rows x,
  y, z; x and y in image pixels) and `Pose_Para` [1, 7] ([pitch, yaw, roll]
  in radians, then translation and scale).
- 68 landmarks of a prediction: `NAME_lm68.txt`, 68 lines `x y` in image
  pixels (the format `train.py prepare` reads, `landmarks.files.read_lm68_file`).
- Meshes: Wavefront OBJ, `v x y z` and `f i j k` (1-based) lines only. NoW's
  loader fails on vertex colours (`v x y z r g b`), so none are written.
- NoW's scan landmarks: MeshLab's PickedPoints XML (`.pp`), `<point x= y= z=
  name=/>` elements, 7 of them (outer and inner right eye corner, inner and
  outer left eye corner, nose bottom, right and left mouth corner). NoW's own
  loader reads fixed line numbers; here the XML is parsed.
- NoW's 7 predicted landmarks: `NAME.npy`, a [7, 3] float array, beside
  `NAME.obj`.

Every reader raises `InputError` with one line naming the file.
"""
import io
import pathlib
import xml.etree.ElementTree as ElementTree

import numpy as np

from fileio import result_files
from fileio.errors import InputError


def read_aflw_mat(path):
    """Reads an AFLW2000-3D annotation: ([68, 2] x, y pixels, yaw in degrees)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(str(path))
        points = np.asarray(data["pt3d_68"], np.float64)
        pose = np.asarray(data["Pose_Para"], np.float64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError, MatReadError) as error:
        raise InputError(f"{path}: not an AFLW2000-3D annotation ({type(error).__name__}: "
                         f"{error})") from None
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] != 68 or pose.size < 3:
        raise InputError(f"{path}: pt3d_68 must be [3, 68] and Pose_Para hold [pitch, yaw, "
                         f"roll, ...], got {points.shape} and {pose.size} values")
    if not (np.all(np.isfinite(points[:2])) and np.all(np.isfinite(pose[:3]))):
        raise InputError(f"{path}: pt3d_68 or Pose_Para holds values that are not finite")
    return points[:2].T.copy(), float(np.degrees(pose[1]))


def read_npy(path, shape):
    """Reads a NumPy array file holding `shape` finite numbers (no pickles).

    Returns:
      float64 array of `shape`.

    Raises:
      InputError: one line naming the file.
    """
    try:
        array = np.load(path, allow_pickle=False)
        array = np.asarray(array, np.float64).reshape(shape)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"{path}: not a NumPy array of shape {shape} ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if not np.all(np.isfinite(array)):
        raise InputError(f"{path}: holds values that are not finite")
    return array


def write_lm68(path, points):
    """Writes NAME_lm68.txt (68 lines `x y`), atomically."""
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(points, np.float64), fmt="%.4f")
    result_files.write_atomically(path, buffer.getvalue().encode())


def read_obj(path):
    """Reads the vertices and triangles of an OBJ file.

    Faces with more than 3 vertices are split into fans; texture and normal
    indices (`f 1/2/3 ...`) are ignored; colours after x y z are ignored.

    Returns:
      (vertices [N, 3] float64, triangles [F, 3] int64, 0-based).
    """
    vertices, triangles = [], []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("v "):
                    vertices.append([float(v) for v in line.split()[1:4]])
                elif line.startswith("f "):
                    ids = [int(part.split("/")[0]) for part in line.split()[1:]]
                    ids = [i - 1 if i > 0 else len(vertices) + i for i in ids]
                    triangles += [[ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1)]
    except (OSError, ValueError, IndexError) as error:
        raise InputError(f"{path}: not a readable OBJ mesh ({type(error).__name__}: "
                         f"{error})") from None
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    triangles = np.asarray(triangles, np.int64).reshape(-1, 3)
    if not len(vertices) or not len(triangles) or triangles.max() >= len(vertices) \
            or triangles.min() < 0:
        raise InputError(f"{path}: an OBJ mesh needs vertices and triangles that index them")
    return vertices, triangles


def write_obj(path, vertices, triangles):
    """Writes vertices and 0-based triangles as OBJ, no colours, atomically."""
    result_files.write_plain_obj(path, np.asarray(vertices, np.float64),
                                 np.asarray(triangles, np.int64) + 1)


def mesh_paths(folder, name):
    """A predicted mesh's files: (FOLDER/NAME.obj, FOLDER/NAME.npy, its landmarks)."""
    base = pathlib.Path(folder) / name
    return base.with_suffix(".obj"), base.with_suffix(".npy")


def read_pp(path):
    """Reads MeshLab picked points: [K, 3] float64, in file order."""
    try:
        root = ElementTree.parse(str(path)).getroot()
        points = [[float(p.get(axis)) for axis in ("x", "y", "z")] for p in root.iter("point")]
    except (OSError, ElementTree.ParseError, TypeError, ValueError) as error:
        raise InputError(f"{path}: not a MeshLab picked-points file ({type(error).__name__}: "
                         f"{error})") from None
    if not points:
        raise InputError(f"{path}: holds no <point> element")
    return np.asarray(points, np.float64)


def write_pp(path, points, names=None):
    """Writes MeshLab picked points (for tests and tools), atomically."""
    names = names or [f"point{i}" for i in range(len(points))]
    lines = ["<!DOCTYPE PickedPoints>", "<PickedPoints>", " <DocumentData>",
             '  <DataFileName name="scan.obj"/>', " </DocumentData>"]
    lines += [f' <point x="{x:.6f}" y="{y:.6f}" z="{z:.6f}" active="1" name="{name}"/>'
              for (x, y, z), name in zip(np.asarray(points, np.float64), names)]
    lines.append("</PickedPoints>")
    result_files.write_atomically(path, ("\n".join(lines) + "\n").encode())
