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

import load_data

REPO_ROOT = pathlib.Path(__file__).resolve().parent
BENCHMARKS = ("aflw2000", "now", "florence")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Reproduce the paper's accuracy tables: AFLW2000-3D (68-point NME by "
                    "yaw), NoW (scan-to-mesh error), MICC Florence (RMSE per mesh).")
    parser.add_argument("benchmark", choices=BENCHMARKS)
    parser.add_argument("--data", required=True, help="the benchmark's folder, as distributed.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=str(load_data.MODEL_PATH),
                        help="frozen R-Net that reconstructs the images (default: "
                             "network/FaceReconModel.pb), or none (needs --refine).")
    source.add_argument("--predictions", default=None,
                        help="score these predictions instead (the benchmark's format: "
                             "see evaluation/).")
    parser.add_argument("--output", default=str(REPO_ROOT / "output" / "evaluation"),
                        help="folder for the results (default: output/evaluation/).")
    parser.add_argument("--bfm-dir", default=str(load_data.BFM_DIR),
                        help="face model folder (default: BFM/).")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network run (8).")
    parser.add_argument("--refine", type=int, nargs="?", const=100, default=0, metavar="N",
                        help="as demo.py --refine: N Adam steps on each batch's coefficients.")
    parser.add_argument("--id-net", default=None, help="as demo.py --id-net, with --refine.")
    parser.add_argument("--align", choices=("mtcnn", "gt"), default="mtcnn",
                        help="aflw2000: the 5 alignment points from MTCNN (default) or from "
                             "the ground truth's 68 (not what the paper's authors did).")
    parser.add_argument("--expression", choices=("keep", "neutral"), default="keep",
                        help="now, florence: the predicted mesh keeps the expression "
                             "(default, the PyTorch version's authors' choice) or not.")
    parser.add_argument("--frames", type=int, default=5,
                        help="florence: frames reconstructed per subject's Indoor-Cooperative "
                             "video (5).")
    parser.add_argument("--overwrite", action="store_true",
                        help="reconstruct images whose prediction exists (default: skip).")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.frames < 1 or args.refine < 0:
        parser.error("--batch-size and --frames must be at least 1, --refine 0 or more")
    args.network = None if args.model.lower() == "none" else args.model
    if args.predictions is None and args.network is None and not args.refine:
        parser.error("--model none needs --refine N")
    return args


def main(argv=None):
    args = parse_args(argv)
    from image_io import InputError
    from startup import output_folder_problem

    data, output = pathlib.Path(args.data), pathlib.Path(args.output)
    if not data.is_dir():
        print(f"{data}: data folder not found", file=sys.stderr)
        return 2
    problem = output_folder_problem(output)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        output.mkdir(parents=True, exist_ok=True)
        if args.predictions is None:
            from startup import ready_to_start

            if not ready_to_start(data, output, args.bfm_dir, args.network, "evaluated"):
                return 2
            predictions = output / "predictions" / args.benchmark
            failed = predict(args, data, predictions)
        else:
            predictions, failed = pathlib.Path(args.predictions), []
            if not predictions.is_dir():
                print(f"{predictions}: predictions folder not found", file=sys.stderr)
                return 2
        summary, missing = score(args, data, predictions, output)
    except (InputError, load_data.AssetError, ValueError, OSError) as error:
        print(f"{error}", file=sys.stderr)
        return 2
    print(f"results in {output / (args.benchmark + '.json')}")
    return 1 if missing or failed else 0


def predict(args, data, predictions):
    """Reconstructs the benchmark's images into prediction files; returns the failures."""
    from evaluation import aflw2000, florence, formats, now
    from evaluation.predict import Predictor, image_landmarks, region_points
    from photos.tools import load_tools

    log = _stderr
    tools = load_tools(args.bfm_dir, args.network, outputs=(), refine=args.refine,
                       id_net=args.id_net, log=log)
    try:
        predictor = Predictor(tools, args.refine, args.batch_size, args.expression, log)
        if args.benchmark == "aflw2000":
            items = [(name, image, aflw2000.gt_five_points(annotation)
                      if args.align == "gt" else None)
                     for name, image, annotation in aflw2000.list_images(data)]

            def done(name):
                return aflw2000.prediction_path(predictions, name).exists()

            def write(name, aligned, result):
                formats.write_lm68(aflw2000.prediction_path(predictions, name),
                                   image_landmarks(aligned, result))
        else:
            if args.benchmark == "now":
                items = []
                for name, path in now.list_images(data):
                    box = now.face_box(data, name)
                    items.append((name, path, None if box is None
                                  else region_points(predictor.detector, box)))
            else:
                items = florence_frames(args, data, predictions.parent / "florence_frames", log)

            def done(name):
                return all(path.exists() for path in formats.mesh_paths(predictions, name))

            def write(name, aligned, result):
                mesh_path, extra_path = formats.mesh_paths(predictions, name)
                shape = predictor.shape_mm(result["coeff"])
                formats.write_obj(mesh_path, shape, predictor.triangles)
                if args.benchmark == "now":
                    _, _, landmarks = now.prediction(shape, predictor.triangles,
                                                     predictor.keypoints)
                else:
                    landmarks = shape[predictor.keypoints[florence.NOSE_TIP_IBUG]]
                _save_npy(extra_path, landmarks)

        todo = [item for item in items if args.overwrite or not done(item[0])]
        log(f"{len(items) - len(todo)} of {len(items)} images already predicted; "
            f"reconstructing {len(todo)}")
        _, failed = predictor.run(todo, write) if todo else ([], [])
        return failed
    finally:
        tools["reconstructor"].close()


def florence_frames(args, data, folder, log):
    """Samples each subject's frames into PNG files; returns the items to reconstruct."""
    import result_files
    from evaluation import florence
    from image_io import InputError

    items = []
    for subject, _, video in florence.list_subjects(data):
        if video is None:
            log(f"{data / subject}: no Video/Indoor-Cooperative.*; skipped")
            continue
        written = sorted((folder / subject).glob("frame*.png"))
        if len(written) == args.frames:     # sampled by an earlier run: not decoded again
            items += [(f"{subject}/{path.stem}", path, None) for path in written]
            continue
        try:
            frames = florence.sample_frames(video, args.frames)
        except InputError as error:
            log(str(error))
            continue
        for number, rgb in frames:
            path = folder / subject / f"frame{number:05d}.png"
            if not path.exists():
                result_files.write_png(path, rgb)
            items.append((f"{subject}/frame{number:05d}", path, None))
    return items


def score(args, data, predictions, output):
    """Scores the predictions, prints the table, writes the JSON and the curve."""
    from evaluation import aflw2000, florence, now, report
    from image_io import InputError

    module = {"aflw2000": aflw2000, "now": now, "florence": florence}[args.benchmark]
    if args.benchmark == "aflw2000":
        summary, records = module.score(data, predictions)
        module.show(summary, records, output)
    else:
        summary, records, values = module.score(data, predictions)
    if not records:
        raise InputError(f"{data}: nothing of {args.benchmark} found in it (see "
                         f"`python evaluate.py --help` and docs/evaluation.md for the layout)")
    if args.benchmark == "aflw2000":
        module.show(summary, records, output)
    else:
        module.show(summary, values, output)
    settings = {"predictions": str(predictions), "model": None if args.predictions else
                pathlib.Path(str(args.network)).name if args.network else "none",
                "refine": args.refine, "align": args.align, "expression": args.expression,
                "frames": args.frames}
    report.write_json(output / f"{args.benchmark}.json", args.benchmark, summary, records,
                      settings)
    return summary, summary.get("missing", 0)


def _save_npy(path, array):
    import io

    import numpy as np

    import result_files

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float64))
    result_files.write_atomically(path, buffer.getvalue())


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
