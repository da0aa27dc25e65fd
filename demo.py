"""Reconstruct a 3D face from every photo of a folder.

    python demo.py                      # input/ -> output/, as the release does
    python demo.py --input photos --output results --batch-size 16
    python demo.py --refine 100         # then 100 Adam steps on each batch's coefficients
    python demo.py --model none --refine 200          # no network: fitted from the mean face
    python demo.py --input people --identity set      # one identity per subfolder
    python demo.py --check              # which assets are present, and where to get the rest

For each photo NAME.ext the demo writes, into the output folder:
NAME.mat (the release's keys), NAME_mesh.obj (coloured mesh), NAME_lm5.txt
(the 5 landmarks used, in the photo's coordinates) and NAME_vis.png (the
aligned crop, the render over it, the 68 landmarks). With --identity set,
each subfolder of the input is one person: its photos' files go to the
output's subfolder, and SUBFOLDER_set.mat holds the identity and albedo
they share.

The data flows one way: photo -> 5 landmarks (file or MTCNN) -> aligned crop
-> R-Net coefficients (-> fit) -> face decoder -> render -> files. Reading and
aligning the next photos overlaps the network on the current batch, and
writing overlaps the next batch; memory stays flat however large the folder.

Exit status: 0 when every photo was reconstructed (or already was),
1 when some photo failed, 2 when assets are missing or the command line is wrong.
"""
import argparse
import functools
import pathlib
import sys

from assets.catalog import BFM_DIR, MODEL_PATH, REPO_ROOT, AssetError
from cli import asset_report
from cli.progress import fit_progress, log_line, photo_progress
from cli.startup import ready_to_start
from fileio.images import find_images, unique_names
from landmarks.sources import FIVE_SOURCES
from photos.inputs import (
    DEFAULT_OUTPUTS,
    find_sets,
    output_paths,
    parse_outputs,
    set_path,
    set_uv_paths,
)
from texture.atlas import DEFAULT_SIZE as DEFAULT_UV_SIZE
from texture.atlas import SIZES as UV_SIZES
from texture.atlas import uv_problem

DEFAULT_REFINE_STEPS = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Reconstruct a 3D face (BFM09 mesh, albedo, lighting, pose) from "
                    "every photo of a folder, as the release's demo.py does.")
    parser.add_argument("--input", default=str(REPO_ROOT / "input"),
                        help="folder of photos (default: input/ of the repository). "
                             "NAME.txt beside NAME.jpg holds its 5 landmarks.")
    parser.add_argument("--output", default=str(REPO_ROOT / "output"),
                        help="folder for the results (default: output/ of the repository); "
                             "created if missing. Nothing is ever written into --input.")
    parser.add_argument("--bfm-dir", default=str(BFM_DIR),
                        help="folder of the face model assets (default: BFM/). "
                             "BFM_model_front.mat is made there from BFM09 on first use.")
    parser.add_argument("--model", default=str(MODEL_PATH),
                        help="the R-Net: a frozen graph (default: network/FaceReconModel.pb), "
                             "the PyTorch release's epoch_20.pth (or .safetensors), or none: no "
                             "network, the coefficients are fitted from the mean face "
                             "(needs --refine).")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="photos per network run (default: 8).")
    parser.add_argument("--landmarks", choices=FIVE_SOURCES, default="auto",
                        help="auto: NAME.txt beside the photo when present, else detect with "
                             "MTCNN; file: NAME.txt is required; detect: always detect "
                             "(landmark files are ignored). Default: auto.")
    parser.add_argument("--refine", type=int, nargs="?", const=DEFAULT_REFINE_STEPS, default=0,
                        metavar="N",
                        help="after the network, N Adam steps on each batch's coefficients "
                             "against the photos, with the release's training loss (default "
                             f"N: {DEFAULT_REFINE_STEPS}). The 68 landmarks come from "
                             "NAME_lm68.txt beside the photo, else dlib's predictor.")
    parser.add_argument("--identity", choices=("photo", "set"), default="photo",
                        help="photo (default): one identity per photo; set: each subfolder of "
                             "--input is one person, whose photos share one identity and "
                             "albedo (fitted jointly with --refine, else the mean of the "
                             "network's), written to OUTPUT/SUBFOLDER_set.mat.")
    parser.add_argument("--id-net", default=None,
                        help="with --refine: a frozen face-recognition graph (FaceNet "
                             "20170512-110547's .pb) for the release's identity loss term; "
                             "without it that term is left out.")
    parser.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS),
                        help="which files to write, a comma-separated subset of mat (NAME.mat), "
                             "obj (NAME_mesh.obj), lm5 (NAME_lm5.txt), vis (NAME_vis.png), uv "
                             "(the UV texture NAME_uv.png with its mask, the albedo "
                             "NAME_albedo_uv.png, the textured mesh NAME_uv.obj and .mtl; with "
                             "--identity set also one texture per set); default the first four. "
                             "Without mat, vis and uv nothing is rendered.")
    parser.add_argument("--uv-size", type=int, default=None, metavar="S",
                        help=f"with --outputs ...,uv: the textures' side in texels (default "
                             f"{DEFAULT_UV_SIZE}, {UV_SIZES[0]} to {UV_SIZES[1]}).")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes that write the files beside the network (default "
                             "a quarter of the cores, at most 4; 0, the default below 4 "
                             "cores: a thread of this process). "
                             "Image sets and --outputs ...,uv write in a thread.")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo photos whose outputs already exist (default: skip them).")
    parser.add_argument("--check", action="store_true",
                        help="print the asset report (present, missing, where to get each) "
                        "and exit.")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.refine < 0:
        parser.error("--refine must be 0 or more")
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be 0 or more")
    args.network = None if args.model.lower() == "none" else args.model
    if args.network is None and not args.refine:
        parser.error("--model none needs --refine N: without a network the coefficients are "
                     "fitted from the mean face")
    if args.id_net and not args.refine:
        parser.error("--id-net is used by --refine only")
    try:
        args.outputs = parse_outputs(args.outputs)
    except ValueError as error:
        parser.error(str(error))
    if args.uv_size is not None and "uv" not in args.outputs:
        parser.error("--uv-size sets the size of the uv outputs: add uv to --outputs")
    if args.uv_size is not None and not UV_SIZES[0] <= args.uv_size <= UV_SIZES[1]:
        parser.error(f"--uv-size must be between {UV_SIZES[0]} and {UV_SIZES[1]} texels")
    args.uv_size = args.uv_size or DEFAULT_UV_SIZE
    return args


def plan_photos(args, input_dir, output_dir):
    """Decides what to do with each photo, before anything runs.

    Returns:
      (jobs, failed, skipped, problem): jobs a list of (set name or None,
      photos, output folder); failed (path, reason) of photos refused; the
      number skipped; problem one line when the run cannot start (None).
    """
    jobs, failed, skipped = [], [], 0
    groups = [(None, find_images(input_dir), output_dir)]
    if args.identity == "set":
        sets = find_sets(input_dir)
        if not sets:
            return [], [], 0, (f"{input_dir}: --identity set needs subfolders of photos "
                               "(one per person)")
        groups += [(name, photos, output_dir / name) for name, photos in sets.items()]
        clash = _set_file_clash(groups, output_dir, args.outputs)
        if clash:
            return [], [], 0, clash
    for set_name, photos, folder in groups:
        chosen, clashes = unique_names(photos)
        failed += [(str(path), f"same name as {first.name}; outputs would overwrite each other")
                   for path, first in clashes]
        done = [p for p in chosen
                if all(o.exists() for o in output_paths(folder, p.stem, args.outputs))]
        if set_name is not None and all(p.exists() for p in _set_files(output_dir, set_name,
                                                                       args.outputs)) \
                and len(done) == len(chosen) and not args.overwrite:
            skipped += len(chosen)
            continue
        if set_name is None and not args.overwrite:
            skipped += len(done)
            chosen = [p for p in chosen if p not in done]
        if chosen:
            jobs.append((set_name, chosen, folder))
    return jobs, failed, skipped, None


def _set_files(output_dir, set_name, outputs):
    """An image set's own files: SET_set.mat, and with "uv" its texture's."""
    return [set_path(output_dir, set_name)] + (
        set_uv_paths(output_dir, set_name) if "uv" in outputs else [])


def _set_file_clash(groups, output_dir, outputs):
    """One line when a set's file would be another output (a photo a_set.jpg beside set a)."""
    taken = {}
    for _, photos, folder in groups:
        for path in photos:
            for output in output_paths(folder, path.stem, outputs):
                taken[output] = path
    for set_name, _, _ in groups[1:]:
        for target in _set_files(output_dir, set_name, outputs):
            if target in taken:
                return (f"{target}: the file of image set {set_name} is also the output of "
                        f"{taken[target]}; rename one of them")
    return None


def main(argv=None):
    args = parse_args(argv)
    if args.check:
        report = asset_report.check_assets(args.bfm_dir, args.network)
        print(report)
        return 0 if report.ok else 2
    input_dir, output_dir = pathlib.Path(args.input), pathlib.Path(args.output)
    if not ready_to_start(input_dir, output_dir, args.bfm_dir, args.network, "reconstructed"):
        return 2
    uv_refused = "uv" in args.outputs and _refuse_uv(args, uv_problem(args.bfm_dir))
    if not args.outputs:
        return 2
    jobs, failed, skipped, problem = plan_photos(args, input_dir, output_dir)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    for path, reason in failed:
        print(f"{path}: {reason.split(';')[0]}, skipped", file=sys.stderr)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"{output_dir}: cannot create the output folder ({error.strerror or error})",
              file=sys.stderr)
        return 2

    done = []
    if jobs:
        from reconstruction.tools import load_tools

        try:
            tools = load_tools(
                args.bfm_dir, args.network, render="mat" in args.outputs or "vis" in args.outputs,
                mesh="mat" in args.outputs or "obj" in args.outputs, refine=args.refine,
                id_net=args.id_net, five=args.landmarks, texture="uv" in args.outputs,
                on_no_predictor=lambda error: log_line(
                    f"{error}; photos without NAME_lm68.txt are fitted on their 5 points"))
        except (AssetError, ValueError) as error:
            print(f"{error}", file=sys.stderr)
            return 2
        if "uv" in args.outputs:
            try:
                _ = tools.atlas.uv    # read now: a problem is one line before any photo
            except AssetError as error:     # a UV file that does not fit the front model
                uv_refused = _refuse_uv(args, str(error))
        try:
            for set_name, photos, folder in jobs:
                ok, bad = run_job(args, tools, set_name, photos, folder, output_dir)
                done += ok
                failed += bad
        finally:
            tools.close()
    print(f"{len(done)} done, {skipped} skipped, {len(failed)} failed "
          f"(skipped: outputs already complete; results in {output_dir})")
    return 1 if failed or uv_refused else 0


def _refuse_uv(args, problem):
    """Drops the uv outputs, with one line, when there is a problem; True when dropped."""
    if problem is None:
        return False
    print(f"{problem}; the uv outputs are not written", file=sys.stderr)
    args.outputs = tuple(kind for kind in args.outputs if kind != "uv")
    return True


def run_job(args, tools, set_name, photos, folder, output_dir):
    """Reconstructs one group of photos (the top folder's, or one image set).

    Returns:
      (done, failed) as `reconstruction.pipeline.run_folder`.
    """
    from facemodel.coefficients import mean_identity
    from photos.outputs import TextureWriter, write_outputs, write_set
    from preparation.photo import prepare_photo
    from reconstruction.pipeline import default_writers, run_folder
    from reconstruction.tools import reconstruction_step

    folder.mkdir(parents=True, exist_ok=True)
    is_set = set_name is not None
    refine = args.refine > 0
    uv = "uv" in args.outputs
    align = functools.partial(prepare_photo, landmarks=tools.landmarks, lm3d=tools.lm3d,
                              targets=refine, keep_photo=uv)
    triangles = tools.triangles if "obj" in args.outputs else None
    textures = TextureWriter(tools.atlas, args.uv_size, tools.front_model, merge=is_set) \
        if uv else None
    write = functools.partial(write_outputs, output_dir=folder, triangles=triangles,
                              outputs=args.outputs, model=tools.model, textures=textures)
    reconstruct = reconstruction_step(tools, args.refine,
                                      shared=("identity", "albedo") if is_set else (),
                                      progress=fit_progress(args.refine))
    collected = []

    def keep(batch):
        results, failed = reconstruct(batch)
        if is_set:
            collected.extend((a.name, results["coeff"][i]) for i, a in enumerate(batch)
                             if i not in failed)
        return results, failed

    log, progress, close = photo_progress(len(photos), set_name)
    try:
        # Sets keep their photos' textures in this process; a set is a few photos.
        writers = 0 if is_set or uv else (
            default_writers() if args.workers is None else args.workers)
        done, failed = run_folder(photos, folder, keep, align, write,
                                  batch_size=len(photos) if is_set else args.batch_size,
                                  log=log, progress=progress, writers=writers)
    finally:
        close()
    if is_set and collected:
        coeffs = [coeff for _, coeff in collected]
        if uv:
            textures.write_set(set_uv_paths(output_dir, set_name), mean_identity(coeffs)[0])
        # Written last: its presence (with the photos') marks the set as done.
        write_set(set_path(output_dir, set_name), coeffs, [name for name, _ in collected],
                  refine)
    return done, failed


if __name__ == "__main__":
    sys.exit(main())
