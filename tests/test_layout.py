"""The layout's rules (docs/architecture.md), checked on the source itself.

- Every package and top-level module sits in one layer, and an import goes
  only down the layers (or within its own package): nothing below can reach
  what is built on it, so that a change in one place stays there.
- No entry point imports another, not even through a module below it, and
  none loads TensorFlow when it is imported (`--help` answers at once).
- The coefficient layout is written once, in `facemodel/coefficients.py`:
  no literal slice of a coefficient vector, nor its length, anywhere else in
  the project's code and bench scripts (tests may write them out, as
  independent references).
"""
import ast

import pytest

from tests.conftest import REPO_ROOT

ENTRY_POINTS = ("demo", "extract", "train", "evaluate")
# Bottom to top. A unit (a package, or a top-level module) may import from the
# layers below its own, and from itself.
LAYERS = (
    ("facemodel",),                                          # conventions, NumPy only
    ("fileio", "mesh_renderer"),                             # files in and out; the rasterizer
    ("assets", "preprocess_img", "reconstruct_mesh"),        # asset checks; release's NumPy code
    ("landmarks",),                                          # the points of a photo
    ("load_data",),                                          # the release's loaders
    ("face_decoder",),                                       # the release's decoder
    ("networks", "losses", "preparation", "texture"),        # model layer
    ("fitting", "training"),
    ("reconstruction",),                                     # what reconstructing tools share
    ("photos", "extraction", "evaluation"),                  # each tool's own package
    ("cli",),                                                # what the tools' front ends share
    ENTRY_POINTS,
)
LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}
NOT_PRODUCTION = {"tests", "bench", "docs"}
# A coefficient vector's block boundaries and lengths (257, 239 and 258).
LAYOUT_NUMBERS = {80, 144, 224, 227, 236, 239, 254, 257, 258}


def python_files(folders=None):
    """The project's .py files (relative paths), production code unless `folders` says."""
    found = []
    for path in sorted(REPO_ROOT.rglob("*.py")):
        relative = path.relative_to(REPO_ROOT)
        if any(part.startswith(".") for part in relative.parts):
            continue
        top = relative.parts[0]
        if folders is None and top in NOT_PRODUCTION:
            continue
        if folders is not None and top not in folders and len(relative.parts) > 1:
            continue
        found.append(relative)
    return found


def unit_of(relative):
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_modules(path):
    """The dotted names a file imports (any depth of the file), with their line numbers."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.module, node.lineno))
            names += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return names


def module_file(name):
    """The project's file for a dotted module name, or None for a library."""
    path = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reachable(entry_point):
    """Every project module the entry point imports, directly or through others."""
    seen, stack = set(), [entry_point]
    while stack:
        name = stack.pop()
        path = module_file(name)
        if path is None or name in seen:
            continue
        seen.add(name)
        stack.extend(module for module, _ in imported_modules(path))
    return seen - {entry_point}


def test_every_package_and_top_level_module_has_a_layer():
    units = {unit_of(relative) for relative in python_files()}
    assert units - set(LAYER) == set(), "place new units in tests/test_layout.py's LAYERS " \
                                        "and docs/architecture.md"
    assert set(LAYER) - units == set(), "LAYERS names units that do not exist"


def test_imports_only_go_down_the_layers():
    wrong = []
    for relative in python_files():
        unit = unit_of(relative)
        for name, line in imported_modules(REPO_ROOT / relative):
            target = name.split(".")[0]
            if target == unit or target not in LAYER or module_file(name) is None:
                continue
            if LAYER[target] >= LAYER[unit]:
                wrong.append(f"{relative}:{line} imports {name} (layer {LAYER[target]}, "
                             f"from layer {LAYER[unit]})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_no_entry_point_imports_another(entry_point):
    others = reachable(entry_point) & set(ENTRY_POINTS)
    assert not others, f"{entry_point}.py reaches {sorted(others)}"
    assert "cli.startup" in reachable(entry_point) or entry_point == "train"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_an_entry_point_starts_without_tensorflow(entry_point):
    """`--help` and a bad flag answer at once: TensorFlow loads only when work starts."""
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import {entry_point}; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def layout_literals(source):
    """The places in `source` that write the coefficient layout out: [(line, text)]."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        bounds = []
        if isinstance(node, ast.Slice):
            bounds = [node.lower, node.upper]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "slice":
            bounds = node.args
        elif isinstance(node, ast.Constant) and type(node.value) is int \
                and node.value in (239, 257, 258):
            found.setdefault(node.lineno, str(node.value))
        if any(isinstance(bound, ast.Constant) and type(bound.value) is int
               and bound.value in LAYOUT_NUMBERS for bound in bounds):
            found[node.lineno] = ast.unparse(node)
    return sorted(found.items())


def test_the_layout_detector_finds_what_it_should():
    source = ("a = coeff[:, 80:144]\nb = coeff[:, BLOCKS['albedo']]\nc = slice(254, 257)\n"
              "d = np.zeros((2, 257))\ne = image[:, 10:20]\nf = x[:3]\n")
    assert [line for line, _ in layout_literals(source)] == [1, 3, 4]


def test_the_coefficient_layout_is_written_once():
    owner = "facemodel/coefficients.py"
    found = [f"{relative}:{line}: {text}"
             for relative in python_files(folders={"bench"} | set(LAYER))
             if relative.as_posix() != owner
             for line, text in layout_literals((REPO_ROOT / relative).read_text())]
    assert not found, "use facemodel.coefficients (BLOCKS, LENGTH...):\n" + "\n".join(found)
