"""Train the R-Net with the paper's hybrid weak supervision, on photos alone.

    python train.py prepare --input photos/ --output data/train      # crops, 68 landmarks, skin
    python train.py --data data/train --log-dir runs/first --id-net network/facenet.pb \\
        --init imagenet weights/resnet_v1_50.ckpt
    python train.py --data data/train --log-dir runs/first --resume    # after a stop
    python train.py export --log-dir runs/first --output network/MyModel.pb
    python demo.py --model network/MyModel.pb
    python train.py --check                                            # which assets are here

The loss is the release's: skin-weighted photometric, 68-landmark, identity
(perceptual), coefficient, reflectance and lighting terms with its weights;
Adam at 1e-4, then 2e-5 after step 100k, 200k steps of 16 photos. Logs and
checkpoints go to --log-dir (TensorBoard: `tensorboard --logdir runs`).

Exit status: 0 on success (and after Ctrl-C, which saves a checkpoint), 1
when some photo failed to prepare or training stopped on a NaN, 2 for missing
assets or a wrong command line.
"""
import argparse
import pathlib
import sys

import load_data

REPO_ROOT = pathlib.Path(__file__).resolve().parent
LM68_PATH = REPO_ROOT / "network" / "landmark68_detector.pb"


def parse_prepare(argv):
    parser = argparse.ArgumentParser(
        prog="train.py prepare",
        description="Turn photos into the release's training layout: aligned 224x224 crops, "
                    "68 landmarks and skin masks.")
    parser.add_argument("--input", required=True,
                        help="folder of photos; NAME.txt (5 points) and NAME_lm68.txt (68 "
                             "points, photo pixels) beside a photo are used when present.")
    parser.add_argument("--output", required=True, help="the prepared folder.")
    parser.add_argument("--bfm-dir", default=str(load_data.BFM_DIR),
                        help="face model folder (default: BFM/).")
    parser.add_argument("--lm68-detector", default=None,
                        help="the release's 68-landmark detector graph, used for photos "
                             "without NAME_lm68.txt (default: network/landmark68_detector.pb "
                             "when it exists, else dlib's 68-point predictor).")
    parser.add_argument("--overwrite", action="store_true", help="redo prepared photos.")
    return parser.parse_args(argv)


def parse_export(argv):
    parser = argparse.ArgumentParser(
        prog="train.py export",
        description="Write a run's latest checkpoint as a frozen FaceReconModel.pb.")
    parser.add_argument("--log-dir", required=True, help="the run's folder.")
    parser.add_argument("--output", required=True, help="the .pb to write.")
    return parser.parse_args(argv)


def parse_train(argv):
    parser = argparse.ArgumentParser(
        description="Train the R-Net (subcommands: prepare, export; see the module help).")
    parser.add_argument("--data", action="append", default=[],
                        help="a prepared folder (repeat for several).")
    parser.add_argument("--log-dir", help="folder for checkpoints and TensorBoard logs.")
    parser.add_argument("--bfm-dir", default=str(load_data.BFM_DIR),
                        help="face model folder (default: BFM/).")
    parser.add_argument("--init", nargs="+", default=["none"], metavar="KIND",
                        help="none (default); imagenet CKPT (slim's resnet_v1_50.ckpt); "
                             "release PB (fine-tune the authors' FaceReconModel.pb).")
    parser.add_argument("--id-net", default=None,
                        help="frozen face-recognition graph for the identity loss (FaceNet "
                             "20170512-110547's .pb); without it that term is dropped.")
    parser.add_argument("--steps", type=int, default=200_000, help="last step (200000).")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per step (16).")
    parser.add_argument("--lr-drop-step", type=int, default=100_000,
                        help="step after which the learning rate is 2e-5 (100000).")
    parser.add_argument("--save-every", type=int, default=10_000,
                        help="steps between checkpoints (10000; one is also saved at the end).")
    parser.add_argument("--summary-every", type=int, default=50,
                        help="steps between TensorBoard scalars (50).")
    parser.add_argument("--image-every", type=int, default=500,
                        help="steps between TensorBoard image panels (500).")
    parser.add_argument("--seed", type=int, default=0, help="data order seed (0).")
    parser.add_argument("--bn-decay", type=float, default=0.997,
                        help="batch-norm moving-average decay (0.997 as the release; a run of "
                             "a few hundred steps needs less, e.g. 0.99, for its inference "
                             "statistics to settle).")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --log-dir from its latest checkpoint.")
    parser.add_argument("--check", action="store_true",
                        help="report the training assets and where to get the missing ones.")
    args = parser.parse_args(argv)
    if args.check:
        return args
    if not args.data or not args.log_dir:
        parser.error("--data and --log-dir are required (or use prepare, export, --check)")
    kind = args.init[0]
    if kind not in ("none", "imagenet", "release") or len(args.init) != (1 if kind == "none"
                                                                          else 2):
        parser.error("--init takes: none | imagenet CKPT | release PB")
    for name in ("steps", "batch_size", "save_every", "summary_every", "image_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 < args.bn_decay < 1.0:
        parser.error("--bn-decay must be in (0, 1)")
    return args


def check(args):
    """Prints the training assets: present or not, and where to get each."""
    from training import assets as training_assets

    report = training_assets.report(args.bfm_dir, LM68_PATH, args.id_net,
                                     args.init[1] if len(args.init) > 1 else None)
    print(report.text)
    return 0 if report.ok else 2


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in ("prepare", "export") else "train"
    from assets import AssetError
    from image_io import InputError
    from training.loop import TrainingError, stderr_log

    try:
        if command == "prepare":
            return run_prepare(parse_prepare(argv[1:]))
        if command == "export":
            args = parse_export(argv[1:])
            from training.loop import export
            export(args.log_dir, args.output, log=print)
            return 0
        args = parse_train(argv)
        if args.check:
            return check(args)
        return run_train(args)
    except (AssetError, InputError) as error:
        stderr_log(str(error))
        return 2
    except TrainingError as error:
        stderr_log(str(error))
        return 1


def lm68_source(detector_path, log):
    """The 68-landmark source for photos without NAME_lm68.txt.

    The release's detector when its graph is given or sits at its default
    place (the release prepared its training data with it), else dlib's
    predictor; None when neither is available (then each such photo gets
    its own line).

    Raises:
      AssetError: a detector graph was named and is missing or broken.
    """
    from landmark_predictor import Landmark68Predictor, PredictorUnavailable
    from training.landmarks68 import Landmark68Detector, predictor_landmarks

    if detector_path is not None or LM68_PATH.exists():
        return Landmark68Detector(detector_path or LM68_PATH).crop_landmarks
    predictor = Landmark68Predictor()
    try:
        predictor.load()
    except PredictorUnavailable as error:
        log(str(error))
        return None
    return predictor_landmarks(predictor)


def run_prepare(args):
    from landmark_detector import LandmarkDetector
    from photos.inputs import find_images
    from training.loop import stderr_log
    from training.prepare import prepare_folder

    input_dir = pathlib.Path(args.input)
    if not input_dir.is_dir():
        stderr_log(f"{input_dir}: input folder not found")
        return 2
    photos = find_images(input_dir)
    load_data.transferBFM09(args.bfm_dir)
    lm3d = load_data.load_lm3d(args.bfm_dir)
    needs_detector = any(not p.with_name(p.stem + "_lm68.txt").exists() for p in photos)
    detector68 = lm68_source(args.lm68_detector, stderr_log) if needs_detector else None
    detector5 = LandmarkDetector()
    done, skipped, failed = prepare_folder(photos, args.output, lm3d, detector5, detector68,
                                           overwrite=args.overwrite, log=stderr_log)
    print(f"{done} prepared, {skipped} skipped, {len(failed)} failed "
          f"(skipped: already prepared; data in {args.output})")
    return 1 if failed else 0


def run_train(args):
    from training.loop import TrainConfig, stderr_log, train

    config = TrainConfig(
        data=args.data, log_dir=args.log_dir, bfm_dir=args.bfm_dir, init=tuple(args.init),
        id_net=args.id_net, steps=args.steps, batch_size=args.batch_size,
        lr_drop_step=args.lr_drop_step, save_every=args.save_every,
        summary_every=args.summary_every, image_every=args.image_every, seed=args.seed,
        resume=args.resume, bn_decay=args.bn_decay)
    progress = None
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=args.steps, unit="step")

        def progress(done, terms):
            bar.n = done
            bar.set_postfix(loss=f"{float(terms['total']):.4g}", refresh=False)
            bar.refresh()
    try:
        train(config, log=bar.write if bar else stderr_log, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
