"""A benchmark's results: the JSON file, the cumulative error curve, the printed table.

`OUTPUT/BENCHMARK.json` holds a `summary` object (the table's numbers under
the column names in lower case) and one record per image or scan, written
atomically; `OUTPUT/BENCHMARK_curve.png` is the cumulative error
distribution papers show (the fraction of images, or of scan points, whose
error is at most x).
"""
import io
import json

import numpy as np

from fileio import result_files


def write_json(path, benchmark, summary, records, settings):
    """Writes OUTPUT/BENCHMARK.json atomically.

    Args:
      path: the file.
      benchmark: its name.
      summary: {column: number} the table's figures.
      records: list of dicts, one per image or scan.
      settings: the options that shaped the numbers.
    """
    # A figure with nothing to average (every prediction missing) is null:
    # strict JSON has no NaN.
    summary = {key: None if isinstance(value, float) and not np.isfinite(value) else value
               for key, value in summary.items()}
    document = {"benchmark": benchmark, "summary": summary, "settings": settings,
                "records": records}
    result_files.write_atomically(path, (json.dumps(document, indent=1, default=_plain)
                                         + "\n").encode())


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def cumulative_curve(path, curves, xlabel, xmax, title):
    """Draws cumulative error curves as a PNG, atomically.

    Args:
      path: the .png.
      curves: {label: [N] errors}.
      xlabel: the errors' unit, as the axis says it.
      xmax: the x axis' end.
      title: the plot's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
    for label, errors in curves.items():
        errors = np.sort(np.asarray(errors, np.float64))
        if errors.size:
            fraction = np.arange(1, errors.size + 1) / errors.size
            axes.plot(np.r_[0.0, errors], np.r_[0.0, fraction] * 100.0, label=label)
    axes.set_xlim(0, xmax)
    axes.set_ylim(0, 100)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("% at most x")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if len(curves) > 1:
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    result_files.write_atomically(path, buffer.getvalue())


def print_table(title, columns, rows):
    """Prints a table: a title, a header of `columns`, then rows of (label, numbers)."""
    print(title)
    print(f"{'':<22}" + "".join(f"{c:>12}" for c in columns))
    for label, values in rows:
        print(f"{label:<22}" + "".join(f"{v:>12.2f}" if isinstance(v, float) else f"{v:>12}"
                                       for v in values))
