"""The paper's accuracy tables, one command per benchmark.

    python evaluate.py aflw2000 --data AFLW2000/                 # the demo's network
    python evaluate.py aflw2000 --data AFLW2000/ --align gt
    python evaluate.py now --data NoW_Dataset/final_release_version/ --refine 100
    python evaluate.py florence --data MICC/ --model none --refine 200
    python evaluate.py now --data NoW/ --predictions other_tool_output/

With --model (default the demo's network; `none` with --refine), the
benchmark's images are reconstructed as demo.py reconstructs photos and
written in the benchmark's prediction format under OUTPUT/predictions/
BENCHMARK/; with --predictions, the files someone else produced are scored.
Either way the table is printed in the paper's layout beside the paper's
figures, and OUTPUT/BENCHMARK.json (a `summary` and one record per image,
scan or mesh) and OUTPUT/BENCHMARK_curve.png (the cumulative error curve)
are written. The protocols, and what each leaves unpublished, are in
the modules of `evaluation/`.

Exit status: 0 when every image was scored, 1 when some had no prediction,
2 when the data, the assets or the command line are wrong.
"""
import argparse
import pathlib
import sys

from assets.catalog import BFM_DIR, MODEL_PATH, REPO_ROOT
from evaluation import benchmarks


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Reproduce the paper's accuracy tables: AFLW2000-3D (68-point NME by "
                    "yaw), NoW (scan-to-mesh error), MICC Florence (RMSE per mesh).")
    known = benchmarks()
    parser.add_argument("benchmark", choices=tuple(known))
    parser.add_argument("--data", required=True, help="the benchmark's folder, as distributed.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=str(MODEL_PATH),
                        help="the R-Net that reconstructs the images: a frozen graph (default: "
                             "network/FaceReconModel.pb), the PyTorch release's epoch_20.pth "
                             "(or .safetensors), or none (needs --refine).")
    source.add_argument("--predictions", default=None,
                        help="score these predictions instead (the benchmark's format: "
                             "see evaluation/).")
    parser.add_argument("--output", default=str(REPO_ROOT / "output" / "evaluation"),
                        help="folder for the results (default: output/evaluation/).")
    parser.add_argument("--bfm-dir", default=str(BFM_DIR),
                        help="face model folder (default: BFM/).")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network run (8).")
    parser.add_argument("--refine", type=int, nargs="?", const=100, default=0, metavar="N",
                        help="as demo.py --refine: N Adam steps on each batch's coefficients.")
    parser.add_argument("--id-net", default=None, help="as demo.py --id-net, with --refine.")
    options = _options(known.values())
    for option in options:
        parser.add_argument(option.flag, **option.settings)
    parser.add_argument("--overwrite", action="store_true",
                        help="reconstruct images whose prediction exists (default: skip).")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.refine < 0:
        parser.error("--batch-size must be at least 1, --refine 0 or more")
    for option in options:
        value = getattr(args, _dest(option))
        if option.minimum is not None and value < option.minimum:
            parser.error(f"{option.flag} must be at least {option.minimum}")
    args.network = None if args.model.lower() == "none" else args.model
    if args.predictions is None and args.network is None and not args.refine:
        parser.error("--model none needs --refine N")
    args.options = [_dest(option) for option in options]
    return args


def _options(known):
    """Every benchmark's options, each once, in the order the benchmarks list them."""
    options = []
    for benchmark in known:
        options += [option for option in benchmark.options if option not in options]
    return options


def _dest(option):
    return option.flag.lstrip("-").replace("-", "_")


def main(argv=None):
    args = parse_args(argv)
    from assets.catalog import AssetError
    from cli.startup import output_folder_problem
    from fileio.errors import InputError

    benchmark = benchmarks()[args.benchmark]
    data, output = pathlib.Path(args.data), pathlib.Path(args.output)
    if not data.is_dir():
        print(f"{data}: data folder not found", file=sys.stderr)
        return 2
    problem = output_folder_problem(output)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        if args.predictions is None:
            from cli.startup import ready_to_start

            if not ready_to_start(data, output, args.bfm_dir, args.network, "evaluated"):
                return 2
            output.mkdir(parents=True, exist_ok=True)
            predictions = output / "predictions" / args.benchmark
            failed = predict(args, benchmark, data, predictions)
        else:
            predictions, failed = pathlib.Path(args.predictions), []
            if not predictions.is_dir():
                print(f"{predictions}: predictions folder not found", file=sys.stderr)
                return 2
            output.mkdir(parents=True, exist_ok=True)
        missing = score(args, benchmark, data, predictions, output)
    except (InputError, AssetError, ValueError, OSError) as error:
        print(f"{error}", file=sys.stderr)
        return 2
    print(f"results in {output / (args.benchmark + '.json')}")
    return 1 if missing or failed else 0


def predict(args, benchmark, data, predictions):
    """Reconstructs the benchmark's images into prediction files; returns the failures."""
    from cli.progress import log_line
    from evaluation.predict import Predictor
    from reconstruction.tools import load_tools

    tools = load_tools(args.bfm_dir, args.network, render=False, mesh=False, refine=args.refine,
                       id_net=args.id_net, five="detect",
                       on_no_predictor=lambda error: log_line(
                           f"{error}; photos without NAME_lm68.txt are fitted on their 5 points"))
    try:
        predictor = Predictor(tools, args.refine, args.batch_size, log_line)
        items = benchmark.images(args, data, predictions.parent, tools.landmarks.detector,
                                 log_line)
        todo = [item for item in items
                if args.overwrite or not benchmark.predicted(predictions, item[0])]
        log_line(f"{len(items) - len(todo)} of {len(items)} images already predicted; "
                 f"reconstructing {len(todo)}")
        write = benchmark.writer(args, tools, predictions)
        _, failed = predictor.run(todo, write) if todo else ([], [])
        return failed
    finally:
        tools.close()


def score(args, benchmark, data, predictions, output):
    """Scores the predictions, prints the table, writes the JSON and the curve.

    Returns:
      How many images (scans, subjects) had no prediction.
    """
    from evaluation import report
    from fileio.errors import InputError

    scores = benchmark.score(data, predictions)
    if not scores.records:
        raise InputError(f"{data}: nothing of {args.benchmark} found in it (see "
                         f"`python evaluate.py --help` and docs/evaluation.md for the layout)")
    benchmark.show(scores, output)
    from networks.files import model_record

    model = {"model": None, "model_kind": None} if args.predictions else \
        model_record(args.network)
    settings = {"predictions": str(predictions), **model, "refine": args.refine,
                **{name: getattr(args, name) for name in args.options}}
    report.write_json(output / f"{args.benchmark}.json", args.benchmark, scores.summary,
                      scores.records, settings)
    return scores.summary.get("missing", 0)


if __name__ == "__main__":
    sys.exit(main())
