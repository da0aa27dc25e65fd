"""The code before a change, beside the code now, so that a bench compares both in one run.

A speed claim holds only between figures of the same run on the same work
(docs/performance.md). A bench that compares this checkout with an earlier
commit exports that commit's tree once (`git archive`, cached under
`~/.cache/deep3dface-bench/trees/`) and runs the same measuring script in a
child process per version, with that version's code first on `sys.path`
(`code_root`). The measuring script itself is this checkout's, so both
versions are measured by the same instructions; it must only use interfaces
that both versions have.
"""
import json
import os
import pathlib
import subprocess
import sys

from bench.common import DEFAULT_ASSETS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The variable a child reads to find the code it measures (default: this checkout).
CODE_ENV = "DEEP3DFACE_BENCH_CODE"
# The last commit before issue 35 (speed): the "before" of its benches.
BEFORE_SPEED = "4ca9c18"


def code_root():
    """The folder whose code a bench child imports: $DEEP3DFACE_BENCH_CODE or this checkout."""
    return pathlib.Path(os.environ.get(CODE_ENV) or REPO_ROOT)


def export_tree(revision, log=print):
    """This repository's tree at `revision`, exported once; returns its folder.

    Raises:
      RuntimeError: not a git checkout, or no such revision.
    """
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}").strip()
    folder = DEFAULT_ASSETS / "trees" / commit[:12]
    if not (folder / "demo.py").exists():
        log(f"exporting the code of {revision} ({commit[:12]}) into {folder} (once)")
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run_child(script, args, code=None, log=print):
    """Runs `python script args` with `code`'s modules first; returns its last line as JSON.

    Args:
      script: the measuring script (this checkout's).
      args: its arguments.
      code: the folder of the code to measure (`export_tree`), None for this
        checkout.
      log: where the child's standard error goes, line by line.

    Raises:
      RuntimeError: the child failed (its last lines of standard error).
    """
    env = dict(os.environ)
    env[CODE_ENV] = str(code or REPO_ROOT)
    process = subprocess.run([sys.executable, str(script), *args], env=env,
                             capture_output=True, text=True)
    errors = [line for line in process.stderr.splitlines()
              if line.startswith("[") or "Error" in line]
    for line in errors:
        log(f"  {line}")
    if process.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n"
                           + "\n".join(process.stderr.splitlines()[-15:]))
    return json.loads(process.stdout.strip().splitlines()[-1])


def run_alternated(script, versions, rounds=1, log=print):
    """Runs each version's child `rounds` times, the versions taking turns.

    Taking turns, a slow spell of the machine hits every version alike.

    Args:
      script: the measuring script (this checkout's).
      versions: {name: (code folder or None, the child's arguments)}.
      rounds: how many times each runs.
      log: as `run_child`'s.

    Returns:
      {name: [each round's JSON line]}.
    """
    results = {name: [] for name in versions}
    for round_number in range(rounds):
        for name, (code, args) in versions.items():
            log(f"[{pathlib.Path(script).stem}] round {round_number + 1} of {rounds}: "
                f"{name} ...")
            results[name].append(run_child(script, args, code, log))
    return results


def _git(*args):
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError(f"git {' '.join(args)} failed in {REPO_ROOT}: {error}") from error
