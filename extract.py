"""Coefficients for every frame of every video of a folder tree.

    python extract.py --input videos/ --output coeffs/
    python extract.py --input videos/ --output coeffs/ --smooth 5 --identity video --preview
    python extract.py --input videos/ --output coeffs/ --uv       # + each video's UV texture
    python extract.py --input videos/ --output coeffs/ --engine ray --address auto
    python extract.py --input videos/ --output coeffs/ --shard 3/16      # a Slurm array task

For each video (mp4, mov, avi, mkv, webm) or photo, NAME.mat (or .npz) in
the output folder, mirroring the input tree, holds `coeff` [N,257] and
`transform_params` [N,5] (the keys PIRenderer-style loaders read), `lm68`,
`lm68_detected`, `lm5`, `frame_index`, `time`, `fps`, `valid` and the
options used. The data flows as in demo.py, frame after frame: decode (as
displayed) -> 68 landmarks (MTCNN on the first frame, then dlib's predictor
from frame to frame) -> their 5 points -> aligned crop -> R-Net -> landmarks.
A finished video is never redone; a killed job resumes where it stopped.

Exit status: 0 when every video was processed (or already was), 1 when some
video failed or broke off (its frames before the damage are written) or the
--uv texture could not be made (BFM_UV.mat missing or broken), 2
when assets are missing or the command line is wrong.
"""
import argparse
import pathlib
import sys
import time

from assets.catalog import BFM_DIR, MODEL_PATH
from cli.progress import Bar, log_line
from extraction import inputs
from extraction.extractor import ExtractOptions
from texture.atlas import DEFAULT_SIZE as DEFAULT_UV_SIZE
from texture.atlas import SIZES as UV_SIZES
from texture.atlas import uv_problem


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Reconstruct every frame of every video (and photo) of a folder tree: "
                    "per video, the R-Net's coefficients and the alignment of each frame.")
    parser.add_argument("--input", required=True,
                        help="folder of videos and photos, searched recursively.")
    parser.add_argument("--output", required=True,
                        help="folder for the results (the input tree is mirrored).")
    parser.add_argument("--bfm-dir", default=str(BFM_DIR),
                        help="folder of the face model assets (default: BFM/).")
    parser.add_argument("--model", default=str(MODEL_PATH),
                        help="the R-Net: a frozen graph (default: network/FaceReconModel.pb) "
                             "or the PyTorch release's epoch_20.pth (or .safetensors).")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="frames per network run (default: 8).")
    parser.add_argument("--landmarks", choices=("track", "detect"), default="track",
                        help="track (default): MTCNN on the first frame, then dlib's 68-point "
                             "predictor from each frame's landmarks to the next's; detect: "
                             "MTCNN on every frame.")
    parser.add_argument("--redetect-every", type=int, default=30,
                        help="with track, check the track with MTCNN at least every N frames "
                             "(default: 30).")
    parser.add_argument("--smooth", type=int, default=0, metavar="W",
                        help="Savitzky-Golay smoothing of pose, translation and expression "
                             "over W frames (default: 0, none).")
    parser.add_argument("--identity", choices=("frame", "video"), default="frame",
                        help="video: also write one identity and albedo per video, the mean "
                             "over its frames with a face (video_id_coeff, video_tex_coeff).")
    parser.add_argument("--refine", type=int, nargs="?", const=100, default=0, metavar="N",
                        help="after the network, fit each video: one identity and albedo over "
                             "a sample of its frames, then every frame's expression, pose, "
                             "light and translation, N Adam steps a batch, with a temporal "
                             "term (default N: 100). Writes coeff_network and fit_loss too.")
    parser.add_argument("--every", type=int, default=1, metavar="K",
                        help="process every K-th frame (default: 1, all).")
    parser.add_argument("--preview", action="store_true",
                        help="also write NAME_preview.mp4: the crop, the render over it and "
                             "the landmarks, side by side.")
    parser.add_argument("--uv", action="store_true",
                        help="also write each video's UV texture, merged over its frames: "
                             "NAME_uv.png with NAME_uv_mask.png, and the textured mesh of its "
                             "identity NAME_uv.obj with NAME_uv.mtl (needs BFM/BFM_UV.mat).")
    parser.add_argument("--uv-size", type=int, default=None, metavar="S",
                        help=f"with --uv, the texture's side in texels (default "
                             f"{DEFAULT_UV_SIZE}, {UV_SIZES[0]} to {UV_SIZES[1]}).")
    parser.add_argument("--format", choices=inputs.OUTPUT_FORMATS, default="mat",
                        help="output file format (default: mat).")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local (default): this process; ray: a Ray cluster.")
    parser.add_argument("--address", default=None,
                        help="with --engine ray, the cluster's address (default: start Ray "
                             "on this machine).")
    parser.add_argument("--workers", type=int, default=None,
                        help="with --engine ray, reconstruction actors (default: one per 2 "
                             "CPUs of the cluster).")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="with --engine ray, GPUs reserved by each actor (default: 0).")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="process only shard I of N (0-based; the shards cover every "
                             "video exactly once), for schedulers such as Slurm arrays.")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo videos whose output exists (default: skip them).")
    args = parser.parse_args(argv)
    for name in ("batch_size", "redetect_every", "every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.smooth < 0:
        parser.error("--smooth must be 0 or more")
    if args.refine < 0:
        parser.error("--refine must be 0 or more")
    if args.uv_size is not None and not args.uv:
        parser.error("--uv-size sets the size of the --uv texture: add --uv")
    if args.uv_size is not None and not UV_SIZES[0] <= args.uv_size <= UV_SIZES[1]:
        parser.error(f"--uv-size must be between {UV_SIZES[0]} and {UV_SIZES[1]} texels")
    args.uv_size = (args.uv_size or DEFAULT_UV_SIZE) if args.uv else 0
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.shard is not None:
        try:
            args.shard = inputs.parse_shard(args.shard)
        except ValueError as error:
            parser.error(str(error))
    return args


def plan(args, log):
    """Lists the inputs and decides what to do with each.

    Returns:
      (todo, skipped, failed): relative paths to process, the number already
      done, and (path, reason) of inputs refused before starting.
    """
    relatives = inputs.list_inputs(args.input)
    if args.shard is not None:
        relatives = [r for r in relatives if inputs.in_shard(r, *args.shard)]
    clashes = inputs.output_collisions(relatives, args.format)
    todo, skipped, failed = [], 0, []
    for relative in relatives:
        if relative in clashes:
            reason = (f"{pathlib.Path(args.input) / relative}: same output as {clashes[relative]}"
                      "; skipped")
            failed.append((relative, reason))
            log(reason)
        elif not args.overwrite and inputs.is_done(args.output, relative, args.format,
                                                   bool(args.uv_size)):
            skipped += 1
        else:
            todo.append(relative)
    return todo, skipped, failed


def main(argv=None):
    args = parse_args(argv)
    from cli.startup import ready_to_start

    input_dir, output_dir = pathlib.Path(args.input), pathlib.Path(args.output)
    if not ready_to_start(input_dir, output_dir, args.bfm_dir, args.model, "extracted"):
        return 2
    uv_refused = False
    if args.uv_size and (problem := uv_problem(args.bfm_dir)):
        print(f"{problem}; the uv outputs are not written", file=sys.stderr)
        args.uv_size, uv_refused = 0, True
    output_dir.mkdir(parents=True, exist_ok=True)

    log = log_line
    todo, skipped, failed = plan(args, log)
    options = ExtractOptions(
        input_root=str(input_dir), output_root=str(output_dir), bfm_dir=str(args.bfm_dir),
        model_path=str(args.model), batch_size=args.batch_size, landmarks=args.landmarks,
        redetect_every=args.redetect_every, smooth=args.smooth, identity=args.identity,
        every=args.every, preview=args.preview, output_format=args.format,
        overwrite=args.overwrite, refine=args.refine, uv=args.uv_size)
    done, frames, detector_calls, damaged = 0, 0, 0, 0
    start = time.perf_counter()
    if todo:
        from assets.catalog import AssetError

        bar = Bar(len(todo), "video")
        counts = {"frames": 0}
        log = bar.log

        def on_frames(n, key="frames"):
            counts[key] = counts.get(key, 0) + n
            bar.postfix(**counts)

        def on_refined(n, loss):
            counts["loss"] = f"{loss:.4g}"
            on_frames(n, "refined")

        try:
            rows = _run(args, todo, options, on_frames, on_refined)
            for row in rows:
                bar.advance(1)
                if row["status"] == "failed":
                    failed.append((row["path"], row["message"]))
                    log(row["message"])
                    continue
                if row["status"] == "skipped":
                    skipped += 1
                    continue
                done += 1
                if row["status"] == "damaged":
                    damaged += 1
                    log(row["message"])
                frames += row["frames"]
                detector_calls += row["detector_calls"]
                if not bar.interactive:
                    log(f"[{done + len(failed)}/{len(todo)}] {row['path']}: {row['frames']} "
                        f"frames ({row['valid_frames']} with a face), "
                        f"{row['frames'] / max(row['seconds'], 1e-9):.1f} frames/s")
        except KeyboardInterrupt:
            bar.close()
            print("Interrupted; finished videos are kept, rerun to resume.", file=sys.stderr)
            return 1
        except (AssetError, ValueError) as error:
            bar.close()
            print(f"{error}", file=sys.stderr)
            return 2
        bar.close()
    seconds = time.perf_counter() - start
    rate = f", {frames / seconds:.1f} frames/s" if frames else ""
    calls = f", {100.0 * detector_calls / frames:.1f} detector calls per 100 frames" \
        if frames else ""
    broke = f" ({damaged} broke off: their frames before the damage are kept)" \
        if damaged else ""
    print(f"{done} done{broke}, {skipped} skipped, {len(failed)} failed; {frames} frames"
          f"{rate}{calls} (skipped: output already complete; results in {output_dir})")
    return 1 if failed or damaged or uv_refused else 0


def _run(args, todo, options, on_frames, on_refined):
    from extraction import engines

    if args.engine == "ray":
        return engines.run_ray(todo, options, address=args.address, workers=args.workers,
                               gpus_per_worker=args.gpus_per_worker)
    return engines.run_local(todo, options, on_frames=on_frames, on_refined=on_refined)


if __name__ == "__main__":
    sys.exit(main())
