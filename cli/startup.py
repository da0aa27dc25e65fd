"""The checks every tool makes before it starts: folders and assets, one line each.

`demo.py` and `extract.py` both refuse to start, with one line per problem
and exit status 2, when the input folder is missing, the output folder is
the input or cannot be made, or an asset is missing or broken. The checks
live here, below both entry points, so that neither imports the other.
"""
import pathlib
import sys

from cli import asset_report


def output_folder_problem(output_dir):
    """Says, in one line, why `output_dir` cannot be (made into) a folder, or returns None.

    Checks without creating anything: the folder itself, or its nearest
    existing parent, must be a folder.
    """
    path = pathlib.Path(output_dir)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if candidate.is_dir():
                return None
            if candidate == path:
                return f"{path}: exists and is not a folder"
            return f"{path}: cannot be made a folder ({candidate} is a file)"
    return None


def ready_to_start(input_dir, output_dir, bfm_dir, model_path, verb):
    """Checks the folders (creating nothing) and the assets before a run.

    Prints each problem on stderr, one line each (the asset problems under a
    heading saying nothing was `verb`).

    Args:
      input_dir, output_dir: the run's folders.
      bfm_dir: the face model's folder.
      model_path: the frozen R-Net, or None when the run needs no network.
      verb: what the tool does to its inputs ("reconstructed", "extracted").

    Returns:
      True when the run can start.
    """
    input_dir, output_dir = pathlib.Path(input_dir), pathlib.Path(output_dir)
    if not input_dir.is_dir():
        print(f"{input_dir}: input folder not found", file=sys.stderr)
        return False
    if input_dir.resolve() == output_dir.resolve():
        print(f"{output_dir}: the output folder must differ from the input folder", file=sys.stderr)
        return False
    problem = output_folder_problem(output_dir)
    if problem:
        print(problem, file=sys.stderr)
        return False
    report = asset_report.check_assets(bfm_dir, model_path)
    if not report.ok:
        print(f"Missing or broken assets; nothing was {verb}:", file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Run `python demo.py --check` for the full report.", file=sys.stderr)
        return False
    return True
