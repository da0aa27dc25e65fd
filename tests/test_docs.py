"""The README and docs/ against the tools: every flag they name exists, every flag is documented.

The tools' and the benchmark scripts' flags are read from their own
`--help` (run as a user runs it, so flags built in loops count too), so a
flag renamed in a parser and not in the docs, or added to a parser and
never documented, fails here. Links between the pages must resolve.
"""
import functools
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# Each tool (script, subcommand) and the page that documents every one of its flags.
TOOL_PAGES = {
    ("demo.py",): "docs/photos.md",
    ("extract.py",): "docs/videos.md",
    ("evaluate.py",): "docs/evaluation.md",
    ("train.py",): "docs/training.md",
    ("train.py", "prepare"): "docs/training.md",
    ("train.py", "export"): "docs/training.md",
}
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


@functools.cache
def help_flags(tool):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, *tool, "--help"], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return frozenset(FLAG.findall(result.stdout))


def bench_flags(script):
    """A bench script's flags, from its `--help` (none for a module without a command line)."""
    if "ArgumentParser" not in (REPO_ROOT / script).read_text():
        return frozenset()
    return help_flags((script,))


def commands(text):
    """Each `python SCRIPT ...` command of the text's code blocks: (tool key, its flags)."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            words = line.split()
            if len(words) < 2 or words[0] != "python" or not words[1].endswith(".py"):
                continue
            key = (words[1],)
            if words[1] == "train.py" and len(words) > 2 and words[2] in ("prepare", "export"):
                key = ("train.py", words[2])
            found.append((key, {word.split("=")[0] for word in words if word.startswith("--")}))
    return found


def prose(text):
    """The text without its code blocks and without inline commands of other programs."""
    return re.sub(r"`(pip|tensorboard|ray) [^`]*`", "", FENCE.sub("", text))


def known_flags():
    flags = set()
    for tool in TOOL_PAGES:
        flags |= help_flags(tool)
    for script in (REPO_ROOT / "bench").glob("*.py"):
        flags |= bench_flags(script.relative_to(REPO_ROOT).as_posix())
    return flags


def test_every_documented_command_uses_flags_the_tool_has():
    checked = 0
    for page in DOCS:
        for key, flags in commands(page.read_text()):
            if key[0].startswith("bench/"):
                tool_flags = bench_flags(key[0])
            elif key in TOOL_PAGES:
                tool_flags = help_flags(key)
            else:
                assert (REPO_ROOT / key[0]).is_file(), f"{page.name}: no script {key[0]}"
                continue
            assert flags <= tool_flags, f"{page.name}: {' '.join(key)} has no {flags - tool_flags}"
            checked += 1
    assert checked >= 15       # The README and the pages do show the tools' commands.


def test_every_flag_the_docs_name_exists():
    flags = known_flags()
    for page in DOCS:
        named = set(FLAG.findall(prose(page.read_text())))
        assert named <= flags, f"{page.relative_to(REPO_ROOT)} names {sorted(named - flags)}"


@pytest.mark.parametrize("tool", list(TOOL_PAGES), ids=" ".join)
def test_every_flag_of_a_tool_is_on_its_page(tool):
    page = REPO_ROOT / TOOL_PAGES[tool]
    documented = set(FLAG.findall(page.read_text()))
    missing = help_flags(tool) - documented - {"--help"}
    assert not missing, f"{TOOL_PAGES[tool]} does not document {' '.join(tool)} {sorted(missing)}"


def test_links_between_pages_resolve():
    for page in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(REPO_ROOT)}: {target}"


def test_the_readme_stays_short_and_every_page_is_linked():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.encode()) < 10_000
    index = (REPO_ROOT / "docs" / "README.md").read_text()
    for page in DOCS[1:]:
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not link {page.name}"
