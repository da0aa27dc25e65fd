"""The paper's benchmarks (`evaluate.py`), each a module behind one interface.

- `benchmark`: what a benchmark provides (`Benchmark`, `Option`, `Scores`).
- `aflw2000`, `now`, `florence`: the three benchmarks, their protocols and
  what each leaves unpublished.
- `meshes`: what the two mesh benchmarks share (the predicted mesh, mm).
- `predict`: their images reconstructed as demo.py reconstructs photos.
- `geometry`, `formats`, `report`: alignment and distances, the datasets'
  file formats, the JSON, tables and curves.
"""


def benchmarks():
    """{name: `Benchmark`}, in the order the command line lists them."""
    from evaluation import aflw2000, florence, now

    return {module.BENCHMARK.name: module.BENCHMARK for module in (aflw2000, now, florence)}
