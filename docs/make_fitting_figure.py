"""Draws docs/images/fitting.png from the JSON line `bench/fit.py` printed.

    python bench/fit.py | tee fit.txt
    python docs/make_fitting_figure.py fit.txt

Left: single photos from the mean face, each error (shape, identity,
expression) as a ratio to the mean face's, against the number of Adam steps,
with issue 34's target. Right: image sets, the shared identity's error
against the number of photos, with the shared prior counted once (MAP) and
once per photo, beside the single-photo fits of the same photos.
"""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "docs" / "images" / "fitting.png"


def read_report(path):
    """The last line of the file that parses as a JSON object."""
    for line in reversed(pathlib.Path(path).read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"{path}: no JSON line from bench/fit.py")


def main(argv):
    if len(argv) != 1:
        raise SystemExit(__doc__)
    report = read_report(argv[0])
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = {int(label.split()[0]): row for label, row in report["steps"].items()
             if label.endswith(" steps")}
    counts = [0] + sorted(steps)
    rows = [report["steps"]["landmark stages only"]] + [steps[n] for n in sorted(steps)]
    for name, style in (("shape", "o-"), ("identity", "s-"), ("expression", "^-")):
        left.plot(counts, [row[f"{name}_x"] for row in rows], style, label=name)
    left.axhline(0.35, color="grey", linestyle=":", label="target 0.35")
    left.set_xlabel("Adam steps (0: the Newton landmark stages alone)")
    left.set_ylabel("error / mean face's")
    left.set_title("single photos from the mean face")
    left.set_ylim(0, 1.3)
    left.legend(fontsize=8)

    sets = report["sets"]
    sizes = sorted(int(n) for n in sets)
    right.plot(sizes, [sets[str(n)]["shared_mm"] for n in sizes], "o-",
               label="shared identity, prior once (MAP)")
    right.plot(sizes, [sets[str(n)]["prior_per_photo_mm"] for n in sizes], "s--",
               label="shared identity, prior per photo")
    right.plot(sizes, [sets[str(n)]["singles_mm"] for n in sizes], "^:",
               label="single-photo fits (mean)")
    right.set_xscale("log", base=2)
    right.set_xticks(sizes, [str(n) for n in sizes])
    right.set_xlabel("photos of the person")
    right.set_ylabel("identity error, mm")
    right.set_title("image sets")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(OUT, dpi=100)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
