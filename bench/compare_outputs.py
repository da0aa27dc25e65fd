"""Every tool's output files, byte for byte, from two checkouts on the same synthetic inputs.

    python bench/compare_outputs.py --work /tmp/compare                 # this checkout alone
    python bench/compare_outputs.py --work /tmp/compare --against OLD   # this one and OLD

A change that should not change behaviour (a refactoring) is checked with it:
OLD is a checkout of the code before the change (`git worktree add OLD
REV`). The inputs are made once, by this checkout, into WORK/inputs (a
small synthetic BFM09 model in the release's formats, a tiny frozen R-Net
with the release's tensor names, faces rendered from known coefficients with
their 5- and 68-point files, image sets, a synthetic video, and small
AFLW2000-3D, NoW and Florence folders); then each checkout runs the same
commands (`cases`: demo.py with each --outputs, --refine, --model none,
--identity set, MTCNN; extract.py with .mat and .npz, tracking and detection,
smoothing, a per-video identity, previews and --refine; evaluate.py on the
three benchmarks with a network; train.py prepare) in the same folder
(moved to WORK/LABEL/CASE/ afterwards), and every file written is hashed
(SHA-256).

Two kinds of file carry the moment they were written, not what was
computed, and are hashed without it: a .mat file's 116-byte text header
("Created on: ..."), which is left out, and a .npz archive's member dates,
for which the members' names and bytes are hashed instead. Everything else
is hashed as it is.

Prints, per case, whether both checkouts wrote the same set of files with
the same hashes and the same exit status, and a last JSON line
{"cases": ..., "identical": ..., "different": [...]}. Exit status 0 when
every case is identical (or when there is nothing to compare against).
"""
import argparse
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import zipfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

MAT_HEADER_TEXT = 116          # bytes of a .mat file's descriptive text (with its date)


def make_inputs(folder):
    """Writes the synthetic inputs every case reads (once; kept between runs)."""
    import numpy as np
    from PIL import Image

    done = folder / "done"
    if done.exists():
        return
    if folder.exists():
        shutil.rmtree(folder)
    from scipy.io import savemat

    from evaluation import formats
    from face_decoder import Face3D
    from load_data import load_front_model, transferBFM09
    from tests.synthetic_assets import write_bfm09
    from tests.synthetic_faces import background, draw_coefficients, render_faces, write_photos
    from tests.synthetic_network import write_tiny_rnet
    from tests.synthetic_video import DEFAULT_LANDMARKS, DEFAULT_PHOTO, make_moving_face_video

    bfm = folder / "BFM"
    bfm.mkdir(parents=True)
    write_bfm09(bfm, seed=3)
    transferBFM09(bfm)
    (folder / "network").mkdir()
    write_tiny_rnet(folder / "network" / "tiny.pb", seed=1)
    face = Face3D(bfm / "BFM_model_front.mat")
    rng = np.random.default_rng(11)

    faces = render_faces(face, draw_coefficients(rng, 3), background(None, seed=1))
    write_photos(folder / "photos", ["one", "two", "three"], faces, lm68_files=False)
    for i in (0, 1):      # "three" has no 68-point file: dlib's predictor (or 5 points) fits it
        np.savetxt(folder / "photos" / f"{('one', 'two')[i]}_lm68.txt", faces["lm68"][i],
                   fmt="%.4f")
    shutil.copy(DEFAULT_PHOTO, folder / "photos" / "astronaut.png")
    shutil.copy(DEFAULT_LANDMARKS, folder / "photos" / "astronaut.txt")
    for person in ("ann", "bob"):
        truth = draw_coefficients(rng, 2, person=draw_coefficients(rng, 1)[0])
        write_photos(folder / "people" / person, [f"{person}{i}" for i in range(2)],
                     render_faces(face, truth, background(None, seed=len(person))))
    (folder / "detect").mkdir()
    shutil.copy(DEFAULT_PHOTO, folder / "detect" / "astronaut.png")

    videos = folder / "videos"
    videos.mkdir()
    make_moving_face_video(videos / "talk.mp4", n_frames=10, markers=False)
    shutil.copy(DEFAULT_PHOTO, videos / "photo.png")
    shutil.copy(DEFAULT_LANDMARKS, videos / "photo.txt")

    # AFLW2000-3D: the astronaut at 450x450 with plausible 68 points and yaws.
    aflw = folder / "aflw"
    aflw.mkdir()
    with Image.open(DEFAULT_PHOTO) as image:
        rgb = image.convert("RGB").resize((450, 450))
    for i, yaw in enumerate((10.0, -45.0)):
        rgb.save(aflw / f"image{i:05d}.jpg")
        points = rng.uniform(150, 300, (68, 2))
        savemat(aflw / f"image{i:05d}.mat", {
            "pt3d_68": np.vstack([points.T, np.zeros((1, 68))]),
            "Pose_Para": np.array([[0.1, np.radians(yaw), -0.05, 0, 0, 0, 1.0]])})

    # NoW and Florence: the mean face (mm) as the scan, the astronaut as the photos.
    model = load_front_model(bfm / "BFM_model_front.mat")
    vertices = np.asarray(model["meanshape"], np.float64).reshape(-1, 3) * 100.0
    keypoints = np.asarray(model["keypoints"], np.int64).reshape(-1) - 1
    triangles = np.asarray(model["tri"], np.int64) - 1
    nose = vertices[keypoints[30], :2]
    vertices[:, 2] += 30.0 * np.exp(-((vertices[:, :2] - nose) ** 2).sum(1) / (2 * 20.0 ** 2))
    now, subject = folder / "now", "FaMoS_subject_01"
    names = [f"{subject}/multiview_neutral/IMG_0001", f"{subject}/selfie/IMG_0002"]
    now.mkdir()
    (now / "imagepathsvalidation.txt").write_text("\n".join(n + ".jpg" for n in names) + "\n")
    formats.write_obj(now / "scans" / subject / "scan.obj", vertices, triangles)
    formats.write_pp(now / "scans_lmks_onlypp" / subject / "scan_picked_points.pp",
                     vertices[keypoints[[36, 39, 42, 45, 33, 48, 54]]])
    for i, name in enumerate(names):
        photo = now / "iphone_pictures" / f"{name}.jpg"
        photo.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEFAULT_PHOTO, photo)
        if i == 0:
            box = now / "detected_face" / f"{name}.npy"
            box.parent.mkdir(parents=True, exist_ok=True)
            np.save(box, {"left": 150.0, "top": 60.0, "right": 290.0, "bottom": 250.0})
    micc = folder / "micc" / "subject_01"
    formats.write_obj(micc / "Model" / "frontal1" / "obj" / "scan.obj", vertices, triangles)
    (micc / "Video").mkdir()
    make_moving_face_video(micc / "Video" / "Indoor-Cooperative.avi", n_frames=6, markers=False)
    done.write_text("ok\n")


def cases(inputs):
    """{case name: (tool, arguments after the tool, output argument or None)}."""
    bfm = ["--bfm-dir", inputs / "BFM"]
    model = ["--model", inputs / "network" / "tiny.pb"]
    photos = ["--input", inputs / "photos"]
    people = ["--input", inputs / "people"]
    videos = ["--input", inputs / "videos"]
    demo = [*bfm, *model, "--batch-size", 2]
    extract = [*videos, *bfm, *model, "--batch-size", 4]
    return {
        "demo_all": ("demo.py", [*photos, *demo]),
        "demo_mat": ("demo.py", [*photos, *demo, "--outputs", "mat"]),
        "demo_obj_lm5": ("demo.py", [*photos, *demo, "--outputs", "obj,lm5"]),
        "demo_vis": ("demo.py", [*photos, *demo, "--outputs", "vis"]),
        "demo_refine": ("demo.py", [*photos, *demo, "--refine", 3]),
        "demo_model_none": ("demo.py", [*photos, *bfm, "--model", "none", "--refine", 4,
                                        "--batch-size", 3]),
        "demo_set": ("demo.py", [*people, *demo, "--identity", "set"]),
        "demo_set_refine": ("demo.py", [*people, *demo, "--identity", "set", "--refine", 3]),
        "demo_detect": ("demo.py", ["--input", inputs / "detect", *demo]),
        "extract_mat": ("extract.py", extract),
        "extract_npz_detect": ("extract.py", [*extract, "--format", "npz",
                                              "--landmarks", "detect"]),
        "extract_smooth_identity_preview": ("extract.py", [*extract, "--smooth", 5,
                                                           "--identity", "video", "--preview"]),
        "extract_refine": ("extract.py", [*extract, "--refine", 2]),
        "evaluate_aflw2000": ("evaluate.py", ["aflw2000", "--data", inputs / "aflw", *bfm,
                                              *model]),
        "evaluate_now": ("evaluate.py", ["now", "--data", inputs / "now", *bfm, *model]),
        "evaluate_florence": ("evaluate.py", ["florence", "--data", inputs / "micc", *bfm,
                                              *model, "--frames", 2]),
        "train_prepare": ("train.py", ["prepare", *photos, *bfm]),
    }


def file_digest(path):
    """SHA-256 of a file, leaving out what records when it was written (see the docstring)."""
    data = path.read_bytes()
    if path.suffix == ".mat":
        data = data[MAT_HEADER_TEXT:]
    elif path.suffix == ".npz":
        digest = hashlib.sha256()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in sorted(archive.namelist()):
                digest.update(name.encode() + b"\0" + archive.read(name))
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()


def run_checkout(repo, inputs, work, folder, chosen):
    """Runs the cases with one checkout's tools; returns {case: {rc, seconds, files}}.

    Every checkout runs a case in the same folder (WORK/run/CASE: some files
    record where they were written), which is then moved to FOLDER/CASE.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    results = {}
    for name, (tool, arguments) in cases(inputs).items():
        if chosen and name not in chosen:
            continue
        output = work / "run" / name
        for stale in (output, folder / name):
            if stale.exists():
                shutil.rmtree(stale)
        output.mkdir(parents=True)
        command = [sys.executable, str(repo / tool), *map(str, arguments), "--output",
                   str(output / ("prepared" if tool == "train.py" else "out"))]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=output, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        (output / "stderr.txt").write_text(done.stderr)
        files = {path.relative_to(output).as_posix(): file_digest(path)
                 for path in sorted(output.rglob("*"))
                 if path.is_file() and path.name != "stderr.txt"}
        results[name] = {"rc": done.returncode, "seconds": round(seconds, 1), "files": files}
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(output, folder / name)
        print(f"  {repo.name}/{tool} {name}: exit {done.returncode}, {len(files)} files, "
              f"{seconds:.0f} s", flush=True)
    return results


def compare(new, old):
    """Lines saying where two checkouts' results differ; [] when they do not."""
    lines = []
    if new["rc"] != old["rc"]:
        lines.append(f"exit status {old['rc']} -> {new['rc']}")
    for path in sorted(set(new["files"]) | set(old["files"])):
        if path not in old["files"]:
            lines.append(f"{path}: only in the new checkout")
        elif path not in new["files"]:
            lines.append(f"{path}: only in the old checkout")
        elif new["files"][path] != old["files"][path]:
            lines.append(f"{path}: differs")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=pathlib.Path, required=True,
                        help="folder for the inputs and every checkout's outputs")
    parser.add_argument("--against", type=pathlib.Path, default=None,
                        help="another checkout (the code before a change) to compare with")
    parser.add_argument("--cases", default="",
                        help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    chosen = {c for c in args.cases.split(",") if c}
    inputs = args.work / "inputs"
    make_inputs(inputs)
    unknown = chosen - set(cases(inputs))
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {sorted(cases(inputs))}")
    checkouts = {"new": REPO_ROOT}
    if args.against is not None:
        checkouts["old"] = args.against.resolve()
    results = {}
    for label, repo in checkouts.items():
        print(f"{label}: {repo}", flush=True)
        results[label] = run_checkout(repo, inputs, args.work, args.work / label, chosen)
        (args.work / f"{label}.json").write_text(json.dumps(results[label], indent=1) + "\n")
    if "old" not in results:
        print(json.dumps({"cases": len(results["new"]), "compared": False}))
        return 0
    different = []
    for name in results["new"]:
        lines = compare(results["new"][name], results["old"][name])
        count = len(results["new"][name]["files"])
        print(f"{name}: " + ("identical" if not lines else "DIFFERENT") +
              f" ({count} files, exit {results['new'][name]['rc']})")
        for line in lines:
            print(f"    {line}")
        if lines:
            different.append(name)
    print(json.dumps({"cases": len(results["new"]), "identical": len(results["new"])
                      - len(different), "different": different}))
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
