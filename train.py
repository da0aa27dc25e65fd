"""Train the R-Net with the paper's hybrid weak supervision, on photos alone.

    python train.py prepare --input photos/ --output data/train      # crops, 68 landmarks, skin
    python train.py --data data/train --log-dir runs/first --id-net network/facenet.pb \\
        --init imagenet weights/resnet_v1_50.ckpt
    python train.py --data data/train --log-dir runs/first --resume    # after a stop
    python train.py export --log-dir runs/first --output network/MyModel.pb
    python demo.py --model network/MyModel.pb
    python train.py --check                                            # which assets are here
    python train.py ... --strategy mirrored --batch-size 32            # the GPUs of one machine
    TF_CONFIG=... python train.py ... --strategy multiworker           # on every machine

The loss is the release's: skin-weighted photometric, 68-landmark, identity
(perceptual), coefficient, reflectance and lighting terms with its weights;
Adam at 1e-4, then 2e-5 after step 100k, 200k steps of 16 photos. Logs and
checkpoints go to --log-dir (TensorBoard: `tensorboard --logdir runs`).

Exit status: 0 on success (and after Ctrl-C, which saves a checkpoint), 1
when some photo failed to prepare, training stopped on a NaN or a worker of
the cluster stopped, 2 for missing assets, a wrong command line or a cluster
that cannot start (a malformed TF_CONFIG, workers not reached in time).
"""
import argparse
import pathlib
import sys

from assets.catalog import BFM_DIR, LM68_PATH
from cli.progress import log_line

INIT_KINDS = ("none", "imagenet", "release", "pytorch")


def parse_prepare(argv):
    parser = argparse.ArgumentParser(
        prog="train.py prepare",
        description="Turn photos into the release's training layout: aligned 224x224 crops, "
                    "68 landmarks and skin masks.")
    parser.add_argument("--input", required=True,
                        help="folder of photos; NAME.txt (5 points) and NAME_lm68.txt (68 "
                             "points, photo pixels) beside a photo are used when present.")
    parser.add_argument("--output", required=True, help="the prepared folder.")
    parser.add_argument("--bfm-dir", default=str(BFM_DIR),
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
    parser.add_argument("--bfm-dir", default=str(BFM_DIR),
                        help="face model folder (default: BFM/).")
    parser.add_argument("--init", nargs="+", default=["none"], metavar="KIND",
                        help="none (default); imagenet CKPT (slim's resnet_v1_50.ckpt); "
                             "release PB (fine-tune the authors' FaceReconModel.pb); pytorch PTH "
                             "(fine-tune the PyTorch release's epoch_20.pth: trains its "
                             "torchvision ResNet-50).")
    parser.add_argument("--id-net", default=None,
                        help="frozen face-recognition graph for the identity loss (FaceNet "
                             "20170512-110547's .pb); without it that term is dropped.")
    parser.add_argument("--steps", type=int, default=200_000, help="last step (200000).")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="photos per step over all replicas (16); each replica takes "
                             "its share.")
    parser.add_argument("--lr-drop-step", type=int, default=100_000,
                        help="step after which the learning rate is 2e-5 (100000).")
    parser.add_argument("--save-every", type=int, default=10_000,
                        help="steps between checkpoints (10000; one is also saved at the end).")
    parser.add_argument("--summary-every", type=int, default=50,
                        help="steps between TensorBoard scalars (50).")
    parser.add_argument("--image-every", type=int, default=500,
                        help="steps between TensorBoard image panels (500).")
    parser.add_argument("--bn-decay", type=float, default=0.997,
                        help="batch-norm moving-average decay (0.997 as the release; a run of "
                             "a few hundred steps needs less, e.g. 0.99, for its inference "
                             "statistics to settle).")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data order and of --augment (0).")
    parser.add_argument("--augment", action="store_true",
                        help="move each sample by a random shift (up to 10 px), scale (1 +- "
                             "0.1) and rotation (up to 10 degrees), as the PyTorch release's "
                             "training; off as in the TensorFlow release's.")
    parser.add_argument("--strategy", choices=("one", "mirrored", "multiworker"),
                        default="one",
                        help="one device (default); mirrored: the GPUs of this machine (or "
                             "--cpu-devices logical CPUs); multiworker: several machines, "
                             "from TF_CONFIG or a Slurm job step (implies --resume).")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="with --strategy mirrored on a machine without GPUs: split the "
                             "CPU into this many logical devices (to try the strategy; no "
                             "faster).")
    parser.add_argument("--cluster-timeout", type=float, default=60.0,
                        help="seconds a worker waits for the others to answer, at the start "
                             "and during the run, before it stops with a line naming them "
                             "(60).")
    parser.add_argument("--check", action="store_true",
                        help="report the training assets and where to get the missing ones.")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --log-dir from its latest checkpoint.")
    args = parser.parse_args(argv)
    if args.check:
        return args
    if not args.data or not args.log_dir:
        parser.error("--data and --log-dir are required (or use prepare, export, --check)")
    kind = args.init[0]
    if kind not in INIT_KINDS or len(args.init) != (1 if kind == "none"
                                                                          else 2):
        parser.error("--init takes: none | imagenet CKPT | release PB | pytorch PTH")
    for name in ("steps", "batch_size", "save_every", "summary_every", "image_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 < args.bn_decay < 1.0:
        parser.error("--bn-decay must be in (0, 1)")
    if args.cpu_devices is not None and (args.cpu_devices < 1 or args.strategy != "mirrored"):
        parser.error("--cpu-devices takes a count of at least 1, with --strategy mirrored")
    if not args.cluster_timeout > 0:
        parser.error("--cluster-timeout must be positive")
    return args


def check(args):
    """Prints the training assets: present or not, and where to get each."""
    from cli import training_assets

    report = training_assets.report(args.bfm_dir, LM68_PATH, args.id_net,
                                     args.init[1] if len(args.init) > 1 else None,
                                     args.init[0] if len(args.init) > 1 else "imagenet")
    print(report.text)
    return 0 if report.ok else 2


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in ("prepare", "export") else "train"
    from assets.catalog import AssetError
    from fileio.errors import InputError
    from training.cluster import ClusterError
    from training.loop import TrainingError

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
    except (AssetError, InputError, ClusterError) as error:
        log_line(str(error))
        return 2
    except TrainingError as error:
        log_line(str(error))
        return 1


def run_prepare(args):
    import load_data
    from fileio.images import find_images
    from landmarks import sources
    from landmarks.files import lm68_path
    from training.prepare import prepare_folder

    input_dir = pathlib.Path(args.input)
    if not input_dir.is_dir():
        log_line(f"{input_dir}: input folder not found")
        return 2
    photos = find_images(input_dir)
    load_data.transferBFM09(args.bfm_dir)
    lm3d = load_data.load_lm3d(args.bfm_dir)
    # The release's detector when its graph is given or sits at its default
    # place (the release prepared its training data with it), else dlib's
    # predictor; loaded only when some photo has no NAME_lm68.txt.
    needs_68 = any(not lm68_path(p).exists() for p in photos)
    landmarks = sources.build("auto", ("release", "dlib") if needs_68 else (),
                              release_graph=args.lm68_detector,
                              on_unavailable=lambda error: log_line(str(error)))
    try:
        done, skipped, failed = prepare_folder(photos, args.output, lm3d, landmarks,
                                               overwrite=args.overwrite, log=log_line)
    finally:
        landmarks.close()
    print(f"{done} prepared, {skipped} skipped, {len(failed)} failed "
          f"(skipped: already prepared; data in {args.output})")
    return 1 if failed else 0


def run_train(args):
    from cli.progress import Bar
    from training.loop import TrainConfig, train

    config = TrainConfig(
        data=args.data, log_dir=args.log_dir, bfm_dir=args.bfm_dir, init=tuple(args.init),
        id_net=args.id_net, steps=args.steps, batch_size=args.batch_size,
        lr_drop_step=args.lr_drop_step, save_every=args.save_every,
        summary_every=args.summary_every, image_every=args.image_every, seed=args.seed,
        resume=args.resume, bn_decay=args.bn_decay, strategy=args.strategy,
        cpu_devices=args.cpu_devices, cluster_timeout=args.cluster_timeout,
        augment=args.augment)
    bar = Bar(args.steps, "step")
    progress = None
    if bar.interactive:       # else the loop writes a line every --summary-every steps
        def progress(done, terms):
            bar.show(done, loss=f"{float(terms['total']):.4g}")
    try:
        train(config, log=bar.log, progress=progress)
    finally:
        bar.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
