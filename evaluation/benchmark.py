"""What each benchmark provides, so that `evaluate.py` only dispatches.

A benchmark is a module of this package with a `BENCHMARK`, an instance of
a `Benchmark` subclass, listed in `evaluation.BENCHMARKS`. It says:

- `options`: the flags it reads besides the common ones (`Option`s; a flag
  that several benchmarks read is the same object in each, added once);
- `images`: which images to reconstruct, named as its predictions are, with
  the 5 alignment points it gives them (or None: MTCNN finds them);
- `predicted` and `writer`: where one image's prediction goes, in the
  benchmark's own submission format, so that `--predictions` reads the
  same files whoever wrote them;
- `score`: the predictions against the ground truth, as its protocol says;
- `show`: the table beside the paper's figures, and the cumulative curve.

Adding a benchmark is a module and one line in `evaluation/__init__.py`.
"""
import collections

Option = collections.namedtuple("Option", "flag settings minimum", defaults=(None,))
Option.__doc__ = """A command-line flag of one or more benchmarks.

Attributes:
  flag: "--name".
  settings: the keyword arguments of `argparse.ArgumentParser.add_argument`.
  minimum: the smallest value accepted, or None.
"""

Scores = collections.namedtuple("Scores", "summary records values")
Scores.__doc__ = """A benchmark's scores.

Attributes:
  summary: {column: number} the table's figures, with "missing" (images,
    scans or subjects without a prediction).
  records: one dict per image, scan or mesh (written to the JSON).
  values: [K] the errors of the cumulative curve.
"""


class Benchmark:
    """The interface of a benchmark (see the module docstring).

    Attributes:
      name: the command-line name ("aflw2000").
      options: its `Option`s.
    """
    name = None
    options = ()

    def images(self, args, data, work, detector, log):
        """The images to reconstruct.

        Args:
          args: the command line (its options included).
          data: the benchmark's folder.
          work: a folder for intermediate files (frames sampled from videos).
          detector: the 5-point detector (`landmarks.mtcnn.FivePointDetector`).
          log: callable(line) for a skipped item.

        Returns:
          [(name, image path, points)]: points None (the detector finds
          them), [5, 2] photo pixels, or callable(path, image) -> [5, 2].
        """
        raise NotImplementedError

    def predicted(self, predictions, name):
        """Whether image `name` has its prediction in folder `predictions`."""
        raise NotImplementedError

    def writer(self, args, tools, predictions):
        """callable(name, prepared photo, result) writing one image's prediction.

        Args:
          args: the command line.
          tools: the run's `reconstruction.tools.Tools`.
          predictions: the folder.
        """
        raise NotImplementedError

    def score(self, data, predictions):
        """Scores the predictions: a `Scores`."""
        raise NotImplementedError

    def show(self, scores, output_dir):
        """Prints the table beside the paper's, and draws the curve into `output_dir`."""
        raise NotImplementedError
