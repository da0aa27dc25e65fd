"""The layout's rule: no entry point imports another, not even through a module below it."""
import ast

import pytest

from tests.conftest import REPO_ROOT

ENTRY_POINTS = ("demo", "extract", "train", "evaluate")


def imported_modules(path):
    """The top-level names of the modules a file imports (any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
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
        stack.extend(imported_modules(path))
    return seen - {entry_point}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_no_entry_point_imports_another(entry_point):
    others = reachable(entry_point) & set(ENTRY_POINTS)
    assert not others, f"{entry_point}.py reaches {sorted(others)}"
    assert "startup" in reachable(entry_point) or entry_point == "train"


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
