"""Reconstruct a 3D face from every photo of a folder.

    python demo.py                      # input/ -> output/, as the release does
    python demo.py --input photos --output results --batch-size 16
    python demo.py --check              # which assets are present, and where to get the rest

For each photo NAME.ext the demo writes, into the output folder:
NAME.mat (the release's keys), NAME_mesh.obj (coloured mesh), NAME_lm5.txt
(the 5 landmarks used, in the photo's coordinates) and NAME_vis.png (the
aligned crop, the render over it, the 68 landmarks).

The data flows one way: photo -> 5 landmarks (file or MTCNN) -> aligned crop
-> R-Net coefficients -> face decoder -> render -> files. Reading and
aligning the next photos overlaps the network on the current batch, and
writing overlaps the next batch; memory stays flat however large the folder.

Exit status: 0 when every photo was reconstructed (or already was),
1 when some photo failed, 2 when assets are missing or the command line is wrong.
"""
import argparse
import collections
import concurrent.futures
import pathlib
import sys
import time

import numpy as np

import asset_report
import image_io
import load_data
import result_files
from image_io import InputError

REPO_ROOT = pathlib.Path(__file__).resolve().parent
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .tif .tiff .webp .gif .ppm .pgm .pnm".split())
OUTPUT_SUFFIXES = (".mat", "_mesh.obj", "_lm5.txt", "_vis.png")
OUTPUT_KINDS = ("mat", "obj", "lm5", "vis")         # --outputs names, in OUTPUT_SUFFIXES order
LANDMARK_MODES = ("auto", "file", "detect")

Aligned = collections.namedtuple(
    "Aligned", "name crop_bgr crop_rgb lm5_crop lm5_image trans_params")


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
    parser.add_argument("--bfm-dir", default=str(load_data.BFM_DIR),
                        help="folder of the face model assets (default: BFM/). "
                             "BFM_model_front.mat is made there from BFM09 on first use.")
    parser.add_argument("--model", default=str(load_data.MODEL_PATH),
                        help="frozen R-Net (default: network/FaceReconModel.pb).")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="photos per network run (default: 8).")
    parser.add_argument("--landmarks", choices=LANDMARK_MODES, default="auto",
                        help="auto: NAME.txt beside the photo when present, else detect with "
                             "MTCNN; file: NAME.txt is required; detect: always detect "
                             "(landmark files are ignored). Default: auto.")
    parser.add_argument("--outputs", default=",".join(OUTPUT_KINDS),
                        help="which files to write, a comma-separated subset of mat (NAME.mat), "
                             "obj (NAME_mesh.obj), lm5 (NAME_lm5.txt), vis (NAME_vis.png); "
                             "default all four. Without mat and vis nothing is rendered.")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo photos whose outputs already exist (default: skip them).")
    parser.add_argument("--check", action="store_true",
                        help="print the asset report (present, missing, where to get each) "
                        "and exit.")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        args.outputs = parse_outputs(args.outputs)
    except ValueError as error:
        parser.error(str(error))
    return args


def output_folder_problem(output_dir):
    """Says, in one line, why `output_dir` cannot be (made into) a folder, or returns None.

    Checks without creating anything: the folder itself, or its nearest
    existing parent, must be a folder.
    """
    path = pathlib.Path(output_dir)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if candidate.is_dir():
                return None
            if candidate == path:
                return f"{path}: exists and is not a folder"
            return f"{path}: cannot be made a folder ({candidate} is a file)"
    return None


def ready_to_start(input_dir, output_dir, bfm_dir, model_path, verb):
    """Checks the folders (creating nothing) and the assets before a run.

    Prints each problem on stderr, one line each (the asset problems under a
    heading saying nothing was `verb`).

    Returns:
      True when the run can start.
    """
    input_dir, output_dir = pathlib.Path(input_dir), pathlib.Path(output_dir)
    if not input_dir.is_dir():
        print(f"{input_dir}: input folder not found", file=sys.stderr)
        return False
    if input_dir.resolve() == output_dir.resolve():
        print(f"{output_dir}: the output folder must differ from the input folder", file=sys.stderr)
        return False
    problem = output_folder_problem(output_dir)
    if problem:
        print(problem, file=sys.stderr)
        return False
    report = asset_report.check_assets(bfm_dir, model_path)
    if not report.ok:
        print(f"Missing or broken assets; nothing was {verb}:", file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Run `python demo.py --check` for the full report.", file=sys.stderr)
        return False
    return True


def find_images(input_dir):
    """Lists the photos of a folder (by extension, any case), sorted by name."""
    return sorted(p for p in pathlib.Path(input_dir).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def output_paths(output_dir, name, outputs=OUTPUT_KINDS):
    """The output files of photo `name` (its file name without extension).

    Args:
      output_dir: the output folder.
      name: the photo's name without extension.
      outputs: the kinds written, a subset of OUTPUT_KINDS.

    Returns:
      The paths, in the order of OUTPUT_SUFFIXES (.mat first).
    """
    return [pathlib.Path(output_dir) / (name + suffix)
            for kind, suffix in zip(OUTPUT_KINDS, OUTPUT_SUFFIXES) if kind in outputs]


def parse_outputs(text):
    """Parses --outputs "mat,obj,lm5,vis" (any non-empty subset, any order).

    Raises:
      ValueError: an unknown or empty name.
    """
    kinds = [kind.strip() for kind in text.split(",")]
    unknown = [kind for kind in kinds if kind not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"--outputs takes a comma-separated subset of {','.join(OUTPUT_KINDS)}"
                         f", got {text!r}")
    return tuple(kind for kind in OUTPUT_KINDS if kind in kinds)


def align_photo(path, landmark_mode, detector, lm3d):
    """Reads a photo, finds its 5 landmarks and makes the aligned network input.

    Args:
      path: the photo.
      landmark_mode: "auto", "file" or "detect" (see --landmarks).
      detector: a `landmark_detector.LandmarkDetector`, used when detecting.
      lm3d: [5,3] standard landmarks of the mean face (`load_data.load_lm3d`).

    Returns:
      An `Aligned` tuple: crop_bgr [224,224,3] float32 (network input),
      crop_rgb [224,224,3] uint8, lm5_crop [5,2] (crop pixels), lm5_image [5,2]
      (photo pixels), trans_params [5].

    Raises:
      InputError: unreadable photo, bad or missing landmark file, no face,
        landmarks outside the photo.
    """
    from preprocess_img import Preprocess

    path = pathlib.Path(path)
    image = image_io.read_image(path)
    lm_path = path.with_suffix(".txt")
    if landmark_mode == "file" or (landmark_mode == "auto" and lm_path.exists()):
        lm5 = image_io.read_landmarks(lm_path, image.size)
    else:
        lm5 = detector(np.asarray(image), name=str(path))
        image_io.check_inside(lm5, image.size, f"{path} (detected landmarks)")
    crop_bgr, lm5_crop, trans_params = Preprocess(image, lm5, lm3d)
    crop_bgr = np.asarray(crop_bgr, np.float32)[0]
    crop_rgb = np.clip(crop_bgr[:, :, ::-1], 0, 255).astype(np.uint8)
    return Aligned(path.stem, crop_bgr, crop_rgb, np.asarray(lm5_crop, np.float64),
                   lm5, np.asarray(trans_params, np.float64))


def write_outputs(aligned, result, output_dir, triangles, outputs=OUTPUT_KINDS):
    """Writes the chosen files of one photo, each atomically.

    Args:
      aligned: the photo's `Aligned` tuple.
      result: the photo's slice of `Reconstructor.__call__`'s dict.
      output_dir: the output folder.
      triangles: [F,3] 1-based triangles of the front face model.
      outputs: the kinds to write, a subset of OUTPUT_KINDS.
    """
    paths = dict(zip(OUTPUT_KINDS, output_paths(output_dir, aligned.name)))
    if "obj" in outputs:
        write_mesh(paths["obj"], result, triangles)
    if "lm5" in outputs:
        result_files.write_landmarks(paths["lm5"], aligned.lm5_image)
    if "vis" in outputs:
        write_preview(paths["vis"], aligned, result)
    if "mat" in outputs:
        # Written last: its presence with the others marks the photo as done.
        write_mat(paths["mat"], aligned, result)


def write_mesh(path, result, triangles):
    """NAME_mesh.obj: posed vertices with clip(face_color, 0, 255)/255 colours."""
    result_files.save_obj(path, result["face_shape"], triangles,
                          np.clip(result["face_color"], 0, 255) / 255.0)


def write_mat(path, aligned, result):
    """NAME.mat with the release's keys (pipeline.md section 6)."""
    result_files.write_mat(path, {
        "cropped_img": aligned.crop_rgb,
        "recon_img": result["recon_img"].astype(np.float32),
        "coeff": result["coeff"][None].astype(np.float32),
        "face_shape": result["face_shape"],
        "face_texture": result["face_texture"],
        "face_color": result["face_color"],
        "lm_68p": result["lm_68p"],
        "lm_5p": aligned.lm5_crop,
    })


def write_preview(path, aligned, result):
    """NAME_vis.png: see `preview`."""
    result_files.write_png(path, preview(aligned, result))


def preview(aligned, result):
    """NAME_vis.png's picture: see `preview.side_by_side`."""
    from preview import side_by_side

    return side_by_side(aligned.crop_rgb, result["recon_img"], result["lm_68p"], aligned.lm5_crop)


class StageTimer:
    """Accumulates seconds per pipeline stage (thread-safe enough for sums)."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.counts = collections.defaultdict(int)

    def add(self, stage, seconds, count=1):
        self.seconds[stage] += seconds
        self.counts[stage] += count


def _timed(timer, stage, fn, *args):
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        timer.add(stage, time.perf_counter() - start)


def run_folder(photos, output_dir, reconstructor, triangles, lm3d, landmark_mode="auto",
               batch_size=8, detector=None, log=print, progress=None, timer=None,
               workers=2, outputs=OUTPUT_KINDS):
    """Reconstructs photos in batches, streaming: the I/O overlaps the network.

    Reading and alignment of the next photos run in a thread pool while the
    network works on the current batch; writing runs in another thread. At
    most two batches are read ahead and two are waiting to be written, so
    memory does not grow with the number of photos.

    Args:
      photos: list of photo paths.
      output_dir: where to write.
      reconstructor: a `reconstructor.Reconstructor`.
      triangles: [F,3] 1-based triangles (for the OBJ files).
      lm3d: [5,3] mean-face landmarks.
      landmark_mode: "auto", "file" or "detect".
      batch_size: photos per network run.
      detector: a LandmarkDetector (made on demand when None).
      log: callable taking one line of text.
      progress: optional callable taking the number of photos just finished.
      timer: optional StageTimer collecting per-stage seconds.
      workers: threads that read and align photos.
      outputs: the kinds of file to write (see --outputs).

    Returns:
      (done, failed): names reconstructed, and (path, reason) of the failures.
    """
    if detector is None:
        from landmark_detector import LandmarkDetector
        detector = LandmarkDetector()
    timer = timer or StageTimer()
    progress = progress or (lambda n: None)
    done, failed = [], []
    lookahead = 2 * batch_size

    def align(path):
        return _timed(timer, "read+align", align_photo, path, landmark_mode, detector, lm3d)

    def write_batch(batch, results):
        for i, aligned in enumerate(batch):
            one = {key: value[i] for key, value in results.items()}
            try:
                _timed(timer, "write", write_outputs, aligned, one, output_dir, triangles,
                       outputs)
                done.append(aligned.name)
            except Exception as error:  # A full disk must not lose the other photos.
                reason = f"cannot write outputs ({type(error).__name__}: {error})"
                failed.append((aligned.name, reason))
                log(f"{pathlib.Path(output_dir) / aligned.name}: {reason}")
            progress(1)

    with concurrent.futures.ThreadPoolExecutor(workers) as readers, \
            concurrent.futures.ThreadPoolExecutor(1) as writer:
        pending_reads = collections.deque()
        pending_writes = collections.deque()
        photo_iter = iter(photos)
        batch = []

        def flush(batch):
            images = np.stack([a.crop_bgr for a in batch])
            start = time.perf_counter()
            results = reconstructor(images)
            timer.add("network+decoder+render", time.perf_counter() - start, len(batch))
            while len(pending_writes) >= 2:
                pending_writes.popleft().result()
            pending_writes.append(writer.submit(write_batch, batch, results))

        for path in photo_iter:
            pending_reads.append((path, readers.submit(align, path)))
            if len(pending_reads) < lookahead:
                continue
            batch = _collect(pending_reads.popleft(), batch, failed, log, progress)
            if len(batch) == batch_size:
                flush(batch)
                batch = []
        while pending_reads:
            batch = _collect(pending_reads.popleft(), batch, failed, log, progress)
            if len(batch) == batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        for future in pending_writes:
            future.result()
    return done, failed


def _collect(pending, batch, failed, log, progress):
    path, future = pending
    try:
        batch.append(future.result())
    except InputError as error:
        failed.append((str(path), str(error)))
        log(str(error))
        progress(1)
    except Exception as error:  # One odd photo must never stop the folder.
        failed.append((str(path), f"{type(error).__name__}: {error}"))
        log(f"{path}: {type(error).__name__}: {error}")
        progress(1)
    return batch


def main(argv=None):
    args = parse_args(argv)
    if args.check:
        report = asset_report.check_assets(args.bfm_dir, args.model)
        print(report)
        return 0 if report.ok else 2
    input_dir, output_dir = pathlib.Path(args.input), pathlib.Path(args.output)
    if not ready_to_start(input_dir, output_dir, args.bfm_dir, args.model, "reconstructed"):
        return 2
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"{output_dir}: cannot create the output folder ({error.strerror or error})",
              file=sys.stderr)
        return 2

    photos, failed_names, skipped = [], [], 0
    seen = {}
    for path in find_images(input_dir):
        if path.stem in seen:
            failed_names.append((str(path), f"same name as {seen[path.stem].name}; "
                                            "outputs would overwrite each other"))
            print(f"{path}: same name as {seen[path.stem].name}, skipped", file=sys.stderr)
            continue
        seen[path.stem] = path
        if not args.overwrite and all(p.exists() for p in output_paths(output_dir, path.stem,
                                                                        args.outputs)):
            skipped += 1
            continue
        photos.append(path)

    done, failed = [], []
    if photos:
        try:
            reconstructor, triangles, lm3d = load_models(args.bfm_dir, args.model,
                                                         args.outputs)
        except (load_data.AssetError, ValueError) as error:
            print(f"{error}", file=sys.stderr)
            return 2
        try:
            done, failed = _run_with_progress(args, photos, output_dir, reconstructor,
                                              triangles, lm3d)
        finally:
            reconstructor.close()
    failed = failed_names + failed
    print(f"{len(done)} done, {skipped} skipped, {len(failed)} failed "
          f"(skipped: outputs already complete; results in {output_dir})")
    return 1 if failed else 0


def load_models(bfm_dir, model_path, outputs=OUTPUT_KINDS):
    """Loads what reconstruction needs, converting BFM09 on first use.

    The render runs only when the outputs need it (.mat holds it, the preview
    shows it), and the mesh is fetched only for .mat and OBJ files.

    Returns:
      (reconstructor, triangles [F,3] 1-based int64, lm3d [5,3]).

    Raises:
      load_data.AssetError: an asset is missing or broken.
      ValueError: the network's output length is not 239, 257 or 258.
    """
    from reconstructor import Reconstructor

    front_model_path = pathlib.Path(bfm_dir) / "BFM_model_front.mat"
    load_data.transferBFM09(bfm_dir)  # Skipped when BFM_model_front.mat is up to date.
    triangles = load_data.load_front_model(front_model_path)["tri"].astype(np.int64)
    reconstructor = Reconstructor(load_data.load_graph(model_path), front_model_path,
                                  model_name=str(model_path),
                                  render="mat" in outputs or "vis" in outputs,
                                  mesh="mat" in outputs or "obj" in outputs)
    return reconstructor, triangles, load_data.load_lm3d(bfm_dir)


def _run_with_progress(args, photos, output_dir, reconstructor, triangles, lm3d):
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    bar = tqdm(total=len(photos), unit="photo", disable=not interactive)
    log = bar.write if interactive else (lambda line: print(line, file=sys.stderr, flush=True))
    finished = [0]

    def progress(n):
        bar.update(n)
        finished[0] += n
        if not interactive and (finished[0] % max(1, args.batch_size) == 0
                                or finished[0] == len(photos)):
            print(f"[{finished[0]}/{len(photos)}] photos processed", file=sys.stderr, flush=True)

    try:
        return run_folder(photos, output_dir, reconstructor, triangles, lm3d,
                          landmark_mode=args.landmarks, batch_size=args.batch_size,
                          log=log, progress=progress, outputs=args.outputs)
    finally:
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
