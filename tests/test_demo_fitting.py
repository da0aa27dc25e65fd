"""`python demo.py --refine`, `--model none` and `--identity set`, as a user runs them.

Photos: faces rendered by the small synthetic model from known coefficients
over a textured background, with their true 5-point and 68-point files
(tests/synthetic_faces.py); people are subfolders of photos sharing one
identity and albedo.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import loadmat

from tests.conftest import REPO_ROOT, our_lines
from tests.synthetic_faces import background, draw_coefficients, render_faces, write_photos
from tests.synthetic_network import write_tiny_rnet

LOSS_KEYS = {"loss_photo", "loss_landmark", "loss_regularization", "loss_reflectance",
             "loss_gamma", "loss_total"}


def run_demo(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(REPO_ROOT / "demo.py"), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)



@pytest.fixture(scope="module")
def layout(tmp_path_factory, converted_bfm):
    from face_decoder import Face3D

    root = tmp_path_factory.mktemp("demo_fit")
    face = Face3D(converted_bfm / "BFM_model_front.mat")
    rng = np.random.default_rng(5)
    people = {}
    for person in ("ann", "bob"):
        truth = draw_coefficients(rng, 2, person=draw_coefficients(rng, 1)[0])
        faces = render_faces(face, truth, background(None, seed=len(people)))
        write_photos(root / "people" / person, [f"{person}{i}" for i in range(2)], faces)
        people[person] = truth
    single = draw_coefficients(rng, 2)
    faces = render_faces(face, single, background(None, seed=7))
    write_photos(root / "photos", ["one", "two"], faces, lm68_files=False)
    np.savetxt(root / "photos" / "one_lm68.txt", faces["lm68"][0])
    (root / "photos" / "broken.png").write_bytes(b"not a png")
    return {"root": root, "bfm": converted_bfm, "people": people,
            "model": write_tiny_rnet(root / "tiny.pb", seed=2)}


def assets(layout, model=None):
    return ["--bfm-dir", layout["bfm"], "--model", model or layout["model"]]


def test_refine_writes_the_fitted_coefficients_and_the_networks(layout, tmp_path):
    result = run_demo("--input", layout["root"] / "photos", "--output", tmp_path,
                      *assets(layout), "--refine", 4, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]          # broken.png
    assert "2 done, 0 skipped, 1 failed" in result.stdout
    lines = our_lines(result.stderr)
    assert len(lines) == 1 and "broken.png" in lines[0], lines
    for name in ("one", "two"):
        data = loadmat(tmp_path / f"{name}.mat")
        assert LOSS_KEYS <= set(data)
        assert data["coeff"].shape == data["coeff_network"].shape == (1, 257)
        assert not np.array_equal(data["coeff"], data["coeff_network"])
        # The files are those of the fitted coefficients.
        from load_data import load_front_model
        from reconstruct_mesh import reconstruct

        ours = reconstruct(data["coeff"][0],
                           load_front_model(layout["bfm"] / "BFM_model_front.mat"))
        np.testing.assert_allclose(data["lm_68p"], ours["lm_68p"], atol=1e-2)
        assert data["loss_total"].shape == (1, 1) and np.isfinite(data["loss_total"]).all()


def test_model_none_fits_from_the_mean_face_without_a_network(layout, tmp_path):
    result = run_demo("--input", layout["root"] / "people" / "ann", "--output", tmp_path,
                      *assets(layout, "none"), "--refine", 6, "--outputs", "mat",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = loadmat(tmp_path / "ann0.mat")
    assert "coeff_network" not in data and LOSS_KEYS <= set(data)
    assert np.abs(data["coeff"][0, 224:257]).max() > 0           # the pose moved
    usage = run_demo("--input", layout["root"] / "photos", "--output", tmp_path / "x",
                     *assets(layout, "none"), cwd=tmp_path)
    assert usage.returncode == 2 and "--model none needs --refine" in usage.stderr


@pytest.mark.parametrize("refine", [0, 3])
def test_identity_set_gives_one_identity_per_subfolder(layout, tmp_path, refine):
    args = ["--refine", refine] if refine else []
    result = run_demo("--input", layout["root"] / "people", "--output", tmp_path,
                      *assets(layout), "--identity", "set", "--outputs", "mat", *args,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 done, 0 skipped, 0 failed" in result.stdout
    for person in ("ann", "bob"):
        shared = loadmat(tmp_path / f"{person}_set.mat")
        assert shared["id_coeff"].shape == shared["tex_coeff"].shape == (1, 80)
        names = sorted(str(n[0][0]) for n in shared["photos"])
        assert names == [f"{person}0", f"{person}1"]
        coeffs = np.stack([loadmat(tmp_path / person / f"{n}.mat")["coeff"][0] for n in names])
        if refine:         # fitted jointly: every photo holds the shared values
            for c in coeffs:
                np.testing.assert_array_equal(c[:80], shared["id_coeff"][0])
                np.testing.assert_array_equal(c[144:224], shared["tex_coeff"][0])
        else:              # the network's own, and their mean
            np.testing.assert_allclose(shared["id_coeff"][0], coeffs[:, :80].mean(0),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(shared["tex_coeff"][0], coeffs[:, 144:224].mean(0),
                                       rtol=1e-5, atol=1e-6)
    rerun = run_demo("--input", layout["root"] / "people", "--output", tmp_path,
                     *assets(layout), "--identity", "set", "--outputs", "mat", *args,
                     cwd=tmp_path)
    assert "0 done, 4 skipped, 0 failed" in rerun.stdout


def test_a_set_file_that_clashes_with_a_photos_output_stops_the_run(layout, tmp_path):
    import shutil

    people = tmp_path / "people"
    shutil.copytree(layout["root"] / "people", people)
    shutil.copy(people / "ann" / "ann0.png", people / "ann_set.png")
    shutil.copy(people / "ann" / "ann0.txt", people / "ann_set.txt")
    result = run_demo("--input", people, "--output", tmp_path / "out", *assets(layout),
                      "--identity", "set", "--outputs", "mat", cwd=tmp_path)
    assert result.returncode == 2
    lines = our_lines(result.stderr)
    assert len(lines) == 1 and "ann_set.mat" in lines[0] and "ann_set.png" in lines[0], lines
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    flat = run_demo("--input", layout["root"] / "photos", "--output", tmp_path / "flat",
                    *assets(layout), "--identity", "set", cwd=tmp_path)
    assert flat.returncode == 2 and "needs subfolders" in flat.stderr


def test_a_photo_whose_fit_is_not_finite_gets_a_line_and_no_files(layout, tmp_path):
    """PhotoRefiner with a fitter whose result is not finite for one photo."""
    import functools

    from fitting.optimize import FitResult
    from fitting.photo_fit import PhotoRefiner
    from landmarks.sources import PhotoLandmarks
    from load_data import load_graph, load_lm3d
    from networks.reconstructor import Reconstructor
    from photos.outputs import write_outputs
    from preparation.photo import prepare_photo
    from reconstruction.pipeline import run_folder

    class HalfBroken:
        def fit(self, initial, batch, stages, shared=(), progress=None):
            terms = [{"photo": 0.1, "total": 0.2}, {"photo": np.nan, "total": np.nan}]
            return FitResult(initial.copy(), terms[:len(initial)],
                             np.array([True, False][:len(initial)]), np.zeros(1), 0)

    reconstructor = Reconstructor(load_graph(layout["model"]),
                                  layout["bfm"] / "BFM_model_front.mat")
    lines = []
    try:
        refiner = PhotoRefiner(reconstructor, HalfBroken(), 1)
        align = functools.partial(prepare_photo, landmarks=PhotoLandmarks("file", None),
                                  lm3d=load_lm3d(layout["bfm"]), targets=True)
        write = functools.partial(write_outputs, output_dir=tmp_path, triangles=None,
                                  outputs=("mat",))
        photos = sorted((layout["root"] / "people" / "ann").glob("*.png"))
        done, failed = run_folder(photos, tmp_path, refiner, align, write, batch_size=2,
                                  log=lines.append)
    finally:
        reconstructor.close()
    assert done == ["ann0"] and [name for name, _ in failed] == ["ann1"]
    assert lines == ["ann1: the fit gave non-finite values; nothing written"]
    assert (tmp_path / "ann0.mat").exists() and not (tmp_path / "ann1.mat").exists()


def _write_unless_bad(photo, result, folder):
    """A picklable writer for the process pool: refuses photos named bad*."""
    if photo.name.startswith("bad"):
        raise OSError(28, "No space left on device")
    assert photo.crop_bgr is None and photo.crop_rgb is not None
    (folder / f"{photo.name}.txt").write_text(f"{result['coeff'][0]:.6f}\n")


def test_writer_processes_report_a_failed_write_and_go_on(tmp_path):
    import functools

    from preparation.photo import PreparedPhoto
    from reconstruction.pipeline import run_folder

    names = ["a", "bad", "c", "d", "e"]

    def align(path):
        crop = np.full((224, 224, 3), float(len(path)), np.float32)
        return PreparedPhoto(path, crop, crop.astype(np.uint8), None, None, None, None,
                             None, None)

    def reconstruct(batch):
        return {"coeff": np.array([[float(i)] for i in range(len(batch))])}, {}

    lines = []
    done, failed = run_folder(names, tmp_path, reconstruct, align,
                              functools.partial(_write_unless_bad, folder=tmp_path),
                              batch_size=2, log=lines.append, writers=2)
    assert done == ["a", "c", "d", "e"]
    assert [name for name, _ in failed] == ["bad"]
    assert lines == [f"{tmp_path / 'bad'}: cannot write outputs "
                     "(OSError: [Errno 28] No space left on device)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.txt", "d.txt", "e.txt"]
    # Each photo got its own row of its batch's results ([a, bad], [c, d], [e]).
    assert [(tmp_path / f"{n}.txt").read_text() for n in ("c", "d", "e")] == \
        ["0.000000\n", "1.000000\n", "0.000000\n"]
