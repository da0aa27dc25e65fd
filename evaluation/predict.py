"""`evaluate.py --model`: a benchmark's images reconstructed as the demo reconstructs photos.

The images go through the demo's own pipeline (`reconstruction.pipeline.run_folder`
with `reconstruction.tools`' step, fitting included with `--refine`), and
each result is written in the benchmark's prediction format (its
`Benchmark.writer`), in a folder that `--predictions` would take: scoring
then reads the same files whoever made them. A rerun skips images whose
prediction exists (unless --overwrite).
"""


class Predictor:
    """Reconstructs images into prediction files.

    Args:
      tools: `reconstruction.tools.load_tools`' (no render or mesh needed).
      refine: Adam steps of a fit (0: none).
      batch_size: images per reconstruction step.
      log: callable(line).
    """

    def __init__(self, tools, refine=0, batch_size=8, log=print):
        from reconstruction.tools import reconstruction_step

        self.tools = tools
        self.refine = refine
        self.batch_size = batch_size
        self.log = log
        self.step = reconstruction_step(tools, refine)

    def run(self, items, write):
        """Reconstructs images and writes each one's prediction.

        Args:
          items: list of (name, image path, points): points None (MTCNN), a
            [5, 2] array or callable(path, PIL image) -> [5, 2].
          write: callable(name, prepared photo, result) writing one prediction.

        Returns:
          (done names, failed [(path, reason)]).
        """
        from preparation.photo import prepare_photo
        from reconstruction.pipeline import run_folder

        by_path = {str(path): (name, points) for name, path, points in items}

        def prepare(path):
            name, points = by_path[str(path)]
            return prepare_photo(path, self.tools.landmarks, self.tools.lm3d,
                                 targets=self.refine > 0, points=points, name=name)

        def write_one(prepared, result):
            write(prepared.name, prepared, result)

        return run_folder([path for _, path, _ in items], None, self.step, prepare, write_one,
                          batch_size=self.batch_size, log=self.log)
