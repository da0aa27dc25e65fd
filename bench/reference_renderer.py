"""The reference renderer, tf_mesh_renderer as published (mesh_renderer==1.4), built here.

    from bench.reference_renderer import load_reference
    reference = load_reference()        # a module with mesh_renderer(...), as ours
    python bench/reference_renderer.py  # builds (or finds) it and renders one triangle

Nothing of the reference is part of this repository. On first use this module
fetches the reference's own source distribution from the package index
(`pip download --no-deps --no-binary :all: mesh_renderer==1.4`), compiles its
three C++ kernel files with the system C++ compiler and TensorFlow's own compile
and link flags (`tf.sysconfig`), and keeps the shared library and the three
Python files in a cache folder outside the repository:
$DEEP3DFACE_CACHE (default ~/.cache/deep3dface)/reference-mesh_renderer-1.4/tf-VERSION/.

Its Python files are written for TensorFlow 1.x. They are loaded as they are,
with these compatibility substitutions applied to their text at load time (each
must match, or loading fails naming it):
- `import tensorflow as tf` -> `tensorflow.compat.v1` (tf.cross, l2_normalize's
  `dim=`, tf.assert_greater);
- TF1 `Dimension.value` reads -> the plain ints (or None) TF2 shapes hold;
- the extension's file name from distutils (gone in Python 3.12) -> the library
  built here; `import camera_utils` -> the sibling module loaded here.
"""
import hashlib
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

VERSION = "1.4"
KERNELS = ("rasterize_triangles_op.cc", "rasterize_triangles_impl.cc",
           "rasterize_triangles_grad.cc")
PYTHON_FILES = ("camera_utils.py", "rasterize_triangles.py", "mesh_renderer.py")
LIBRARY = "mesh_renderer_lib.so"

# (file, text in the published source, replacement).
SHIMS = (
    ("camera_utils.py", "import tensorflow as tf", "import tensorflow.compat.v1 as tf"),
    ("camera_utils.py", "center.shape[0].value", "center.shape[0]"),
    ("rasterize_triangles.py", "import tensorflow as tf", "import tensorflow.compat.v1 as tf"),
    ("rasterize_triangles.py", "import camera_utils", "camera_utils = _REFERENCE['camera_utils']"),
    ("rasterize_triangles.py", "get_ext_filename('mesh_renderer_lib')", "'../' + " + repr(LIBRARY)),
    ("rasterize_triangles.py", "tensor.get_shape()[dim].value", "tensor.get_shape()[dim]"),
    ("mesh_renderer.py", "import tensorflow as tf", "import tensorflow.compat.v1 as tf"),
    ("mesh_renderer.py", "import camera_utils", "camera_utils = _REFERENCE['camera_utils']"),
    ("mesh_renderer.py", "import rasterize_triangles",
     "rasterize_triangles = _REFERENCE['rasterize_triangles']"),
    ("mesh_renderer.py", "[s.value for s in normals.shape[:-1]]",
     "[s for s in normals.shape[:-1]]"),
    ("mesh_renderer.py", "light_positions.shape[1].value", "light_positions.shape[1]"),
    ("mesh_renderer.py", "image.shape[0].value", "image.shape[0]"),
    ("mesh_renderer.py", "vertices.shape[0].value", "vertices.shape[0]"),
    ("mesh_renderer.py", "vertex_attributes.shape[2].value", "vertex_attributes.shape[2]"),
)

_LOADED = {}


def cache_dir():
    """The cache folder for this TensorFlow version (outside the repository)."""
    import tensorflow as tf

    root = pathlib.Path(os.environ.get("DEEP3DFACE_CACHE",
                                       pathlib.Path.home() / ".cache" / "deep3dface"))
    return root / f"reference-mesh_renderer-{VERSION}" / f"tf-{tf.__version__}"


def _fetch_source(work):
    """Downloads and unpacks the sdist into `work`; returns its top folder."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(work),
               f"mesh_renderer=={VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True)
    archives = list(pathlib.Path(work).glob("mesh_renderer-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise RuntimeError(f"could not fetch mesh_renderer=={VERSION}'s source: "
                           f"{' '.join(command)}: {result.stderr.strip()[-400:]}")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(work, filter="data")
    return pathlib.Path(work) / f"mesh_renderer-{VERSION}"


def build(log=print):
    """Fetches and compiles the reference into cache_dir() unless it is there; returns it."""
    import tensorflow as tf

    target = cache_dir()
    if (target / LIBRARY).exists() and all((target / name).exists() for name in PYTHON_FILES):
        return target
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++ or $CXX) to build the reference renderer")
    with tempfile.TemporaryDirectory() as work:
        source = _fetch_source(work)
        staging = pathlib.Path(work) / "build"
        staging.mkdir()
        kernels = [str(source / "mesh_renderer" / "kernels" / name) for name in KERNELS]
        # -O3 -DNDEBUG -fwrapv: the optimisation flags pip's build of the sdist uses
        # (Python's own CFLAGS); -w: the TF headers' deprecation warnings.
        command = ([compiler, "-shared", "-fPIC", "-O3", "-DNDEBUG", "-fwrapv", "-w"]
                   + tf.sysconfig.get_compile_flags() + kernels
                   + ["-o", str(staging / LIBRARY)] + tf.sysconfig.get_link_flags())
        log(f"building the reference renderer (mesh_renderer=={VERSION}) with {compiler}")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling the reference renderer failed:\n"
                               f"{result.stderr[-2000:]}")
        for name in PYTHON_FILES:
            shutil.copyfile(source / name, staging / name)
        digest = hashlib.sha256((source.parent / f"mesh_renderer-{VERSION}.tar.gz")
                                .read_bytes()).hexdigest()
        (staging / "SOURCE.txt").write_text(
            f"mesh_renderer=={VERSION} sdist sha256 {digest}\n{' '.join(command)}\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(staging, target)
    return target


def load_reference(log=print):
    """Builds if needed and loads the reference; returns its mesh_renderer module.

    The module's `mesh_renderer(...)` and `rasterize_triangles.rasterize(...)` take
    the same arguments as ours (`mesh_renderer.mesh_renderer`).
    """
    if "mesh_renderer" in _LOADED:
        return _LOADED["mesh_renderer"]
    folder = build(log)
    for name in PYTHON_FILES:
        text = (folder / name).read_text()
        for file_name, old, new in SHIMS:
            if file_name != name:
                continue
            if old not in text:
                raise RuntimeError(f"reference {name}: expected text {old!r} not found; "
                                   "the shims in bench/reference_renderer.py do not fit it")
            text = text.replace(old, new)
        # The shimmed text goes to a file of its own: autograph (tf.map_fn's function)
        # reads a function's source back from its file.
        shimmed = folder / "shimmed" / name
        shimmed.parent.mkdir(exist_ok=True)
        if not shimmed.exists() or shimmed.read_text() != text:
            shimmed.write_text(text)
        module_name = "_reference_" + name[:-3]
        spec = importlib.util.spec_from_loader(module_name, loader=None)
        module = importlib.util.module_from_spec(spec)
        module.__file__ = str(shimmed)
        module._REFERENCE = _LOADED
        exec(compile(text, str(shimmed), "exec"), module.__dict__)  # noqa: S102
        sys.modules[module_name] = module
        _LOADED[name[:-3]] = module
    return _LOADED["mesh_renderer"]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    reference = load_reference()
    print(f"reference renderer in {cache_dir()}")
    vertices = tf.constant([[[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]]])
    image = reference.mesh_renderer(
        vertices, tf.constant([[0, 1, 2]]), tf.constant([[[0.0, 0.0, 1.0]] * 3]),
        tf.ones([1, 3, 3]), tf.constant([[0.0, 0.0, 3.0]]), tf.zeros([1, 3]),
        tf.constant([[0.0, 1.0, 0.0]]), tf.constant([[[0.0, 0.0, 3.0]]]), tf.zeros([1, 1, 3]),
        32, 32, ambient_color=tf.ones([1, 3]))
    print(f"one triangle, 32x32: coverage {float(np.mean(image.numpy()[..., 3])):.3f}")
