"""What the two mesh benchmarks (NoW, Florence) share: the predicted mesh and its files.

A prediction is the reconstruction's unposed mesh of the front model
(35,709 vertices for the real model), in millimetres, with the expression
kept (the PyTorch version's authors' choice) or set to zero (`--expression
neutral`, NoW's authors' advice for BFM models), written as an OBJ without
colours (NoW's loader reads OBJ files strictly) and, beside it, a .npy of
the landmarks the benchmark's scoring reads.
"""
import numpy as np

from evaluation import formats
from evaluation.benchmark import Benchmark, Option

EXPRESSION = Option("--expression", dict(
    choices=("keep", "neutral"), default="keep",
    help="now, florence: the predicted mesh keeps the expression (default, the PyTorch "
         "version's authors' choice) or not."))
MM_PER_DECIMETRE = 100.0


class MeshModel:
    """The front model's geometry for meshes in mm.

    Args:
      front_model_path: BFM_model_front.mat.
      expression: "keep" or "neutral".

    Attributes:
      triangles: [F, 3] 0-based.
      keypoints: [68] 0-based vertex ids of the 68 landmarks (iBUG order).
    """

    def __init__(self, front_model_path, expression="keep"):
        import load_data

        self.model = load_data.load_front_model(front_model_path)
        self.expression = expression
        self.triangles = np.asarray(self.model["tri"], np.int64) - 1
        self.keypoints = np.asarray(self.model["keypoints"], np.int64).reshape(-1) - 1

    def shape_mm(self, coeff):
        """[N, 3] float64: the unposed mesh of [257] coefficients, mm (expression as chosen)."""
        from facemodel.coefficients import BLOCKS, N_EXPRESSION
        from reconstruct_mesh import shape_formation

        expression = coeff[BLOCKS["expression"]] if self.expression == "keep" \
            else np.zeros(N_EXPRESSION, np.float32)
        return shape_formation(coeff[BLOCKS["identity"]], expression, self.model,
                               np.float64) * MM_PER_DECIMETRE


class MeshBenchmark(Benchmark):
    """A benchmark whose prediction is a mesh (mm) and a .npy of its `landmarks`."""

    def landmarks(self, shape_mm, model):
        """The array written beside the mesh: what scoring reads of it."""
        raise NotImplementedError

    def predicted(self, predictions, name):
        return all(path.exists() for path in formats.mesh_paths(predictions, name))

    def writer(self, args, tools, predictions):
        from fileio.result_files import write_npy

        model = MeshModel(tools.front_model_path, args.expression)

        def write(name, prepared, result):
            mesh_path, extra_path = formats.mesh_paths(predictions, name)
            shape = model.shape_mm(result["coeff"])
            formats.write_obj(mesh_path, shape, model.triangles)
            write_npy(extra_path, self.landmarks(shape, model))
        return write
