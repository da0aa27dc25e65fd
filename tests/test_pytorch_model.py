"""The PyTorch release's R-Net (`epoch_20.pth`) without PyTorch: reading, refusing, equivalence.

The equivalence is measured against PyTorch itself running the PyTorch
release's own network definition: tests/record_pytorch_reference.py ran it
on `random_state_dict(SEED)` and the repository's photos and recorded the
coefficients in tests/data/pytorch_reference.npz; here the same weights are
drawn again, written in torch.save's format without PyTorch
(tests/synthetic_pytorch.py), read by `networks.checkpoint` and run by
`networks.pytorch_rnet` in TensorFlow. With PyTorch installed (a test-only
dependency), one more test reads a file that torch.save itself wrote.
"""

import numpy as np
import pytest
from scipy.io import loadmat

from assets.catalog import AssetError
from networks import checkpoint
from networks.pytorch_rnet import EXPECTED_SHAPES, PyTorchRNet
from tests.conftest import REPO_ROOT, one_line, run_tool
from tests.record_pytorch_reference import (
    REFERENCE,
    digest,
    reference_crops,
    weights_digest,
)
from tests.synthetic_pytorch import (
    hostile_pickle,
    random_state_dict,
    write_archive,
    write_pth,
    write_safetensors,
)


@pytest.fixture(scope="module")
def reference():
    data = np.load(REFERENCE)
    state = random_state_dict(int(data["seed"]))
    assert weights_digest(state) == str(data["weights_sha256"]), \
        "the weights are no longer those recorded: rerun tests/record_pytorch_reference.py"
    return {"coeff": data["coeff"], "state": state}


@pytest.fixture(scope="module")
def checkpoint_file(reference, tmp_path_factory):
    """The reference weights as the PyTorch release saves them: net_recon, optimizer, scheduler."""
    path = tmp_path_factory.mktemp("pth") / "epoch_20.pth"
    first = EXPECTED_SHAPES["backbone.conv1.weight"]
    optimizer = {"state": {0: {"step": np.array(20.0, np.float32),
                               "exp_avg": np.zeros(first, np.float32)}},
                 "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                                   "amsgrad": False, "params": [0]}]}
    return write_pth(path, {"net_recon": reference["state"], "opt_00": optimizer,
                            "sched_00": {"last_epoch": 20, "base_lrs": [1e-4]}},
                     archive="epoch_20")


def test_the_state_dict_is_read_as_written(reference, checkpoint_file, tmp_path):
    tensors = checkpoint.state_dict(checkpoint_file)
    assert set(tensors) == set(EXPECTED_SHAPES)            # net_recon's, without the optimizer's
    arrays = checkpoint.arrays(checkpoint_file, tensors)
    for key, value in reference["state"].items():
        assert arrays[key].dtype == value.dtype and arrays[key].shape == value.shape, key
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)
    # A bare state dict, and the same weights as .safetensors, give the same arrays.
    some = {key: reference["state"][key] for key in list(EXPECTED_SHAPES)[:12]}
    bare = write_pth(tmp_path / "bare.pth", some)
    safe = write_safetensors(tmp_path / "w.safetensors", some, {"format": "pt"})
    for path in (bare, safe):
        read = checkpoint.arrays(path, checkpoint.state_dict(path))
        assert set(read) == set(some)
        for key in some:
            np.testing.assert_array_equal(read[key], some[key])


def test_tensorflow_gives_what_pytorch_gave(reference, checkpoint_file, converted_bfm):
    """Coefficients within 1e-4 of their scale; the decoded 68 landmarks within 0.01 px."""
    import tensorflow as tf

    from face_decoder import Face3D

    crops = reference_crops()
    assert digest([crops]) == str(np.load(REFERENCE)["crops_sha256"]), \
        "the crops are no longer those recorded: rerun tests/record_pytorch_reference.py"
    ours = PyTorchRNet.from_file(checkpoint_file)(tf.constant(crops)).numpy()
    torch_coeff = reference["coeff"]
    scale = np.abs(torch_coeff).max()
    assert 0.3 < scale < 10.0                              # faces, not noise or zeros
    assert np.abs(ours - torch_coeff).max() <= 1e-4 * scale, np.abs(ours - torch_coeff).max()
    face = Face3D(converted_bfm / "BFM_model_front.mat")
    ours_lm = face.landmarks(ours).numpy()
    torch_lm = face.landmarks(torch_coeff).numpy()
    assert np.abs(ours_lm - torch_lm).max() <= 0.01


def test_a_file_torch_save_wrote_is_read(reference, tmp_path):
    torch = pytest.importorskip("torch")
    state = {key: torch.from_numpy(value.copy()) for key, value in reference["state"].items()}
    network = torch.nn.Conv2d(3, 4, 3)
    optimizer = torch.optim.Adam(network.parameters())
    network(torch.zeros(1, 3, 8, 8)).sum().backward()
    optimizer.step()
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": state, "opt_00": optimizer.state_dict(),
                "sched_00": torch.optim.lr_scheduler.StepLR(optimizer, 5).state_dict()}, path)
    arrays = checkpoint.arrays(path, checkpoint.state_dict(path))
    for key, value in reference["state"].items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)
    half = tmp_path / "half.pth"
    torch.save({key: value.half() for key, value in list(state.items())[:3]}, half)
    for key, value in checkpoint.arrays(half, checkpoint.state_dict(half)).items():
        np.testing.assert_array_equal(value, reference["state"][key].astype(np.float16))


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"),
                                          ("torch", "load"), ("subprocess", "call")])
def test_a_pickle_that_asks_for_any_other_global_is_refused_unrun(tmp_path, module, name):
    target = tmp_path / "ran.txt"
    argument = f"touch {target}" if name in ("system", "call") else \
        f"open({str(target)!r}, 'w').write('x')"
    path = write_archive(tmp_path / "evil.pth", hostile_pickle(module, name, argument))
    with pytest.raises(AssetError) as error:
        checkpoint.state_dict(path)
    message = one_line(error)
    assert str(path) in message and f"'{module}.{name}'" in message and "nothing was run" in message
    assert not target.exists()


def _broken(reference, tmp_path, change):
    state = dict(reference["state"])
    change(state)
    return write_pth(tmp_path / "broken.pth", {"net_recon": state})


@pytest.mark.parametrize("change, words", [
    (lambda s: s.pop("backbone.layer4.2.conv3.weight"), "keys missing"),
    (lambda s: s.update({"backbone.fc.weight": np.zeros((257, 2048), np.float32)}),
     "unknown keys (first: 'backbone.fc.weight')"),
    (lambda s: s.update({"final_layers.4.bias": np.zeros(9, np.float32)}), "has shape (9,)"),
    (lambda s: s.update({"backbone.conv1.weight": np.zeros((64, 3, 7, 7), np.int32)}),
     "holds int32 values, not floats"),
    (lambda s: [s.pop(k) for k in list(s) if ".layer3.5." in k or ".layer3.4." in k],
     "keys missing"),                                     # a shallower ResNet
])
def test_another_architecture_or_a_wrong_tensor_is_one_line(reference, tmp_path, change, words):
    path = _broken(reference, tmp_path, change)
    with pytest.raises(AssetError) as error:
        PyTorchRNet.from_file(path)
    assert str(path) in one_line(error) and words in one_line(error)


def test_not_a_zip_truncated_or_damaged_files_are_one_line(checkpoint_file, tmp_path):
    data = checkpoint_file.read_bytes()
    cases = {"text.pth": b"not a checkpoint", "cut.pth": data[:len(data) // 2],
             "empty.safetensors": b"", "lying.safetensors": b"\xff" * 8 + b"{}"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(AssetError) as error:
            PyTorchRNet.from_file(path)
        assert str(path) in one_line(error), name
    # A storage shorter than its tensor.
    short = write_archive(tmp_path / "short.pth", _pickle_of(checkpoint_file), [b"\0" * 8])
    with pytest.raises(AssetError, match="short.pth"):
        PyTorchRNet.from_file(short)


def _pickle_of(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))



def test_demo_and_extract_run_the_pth_and_say_so(reference, checkpoint_file, converted_bfm,
                                                 tmp_path):
    import shutil

    import tensorflow as tf

    photos = tmp_path / "photos"
    photos.mkdir()
    for suffix in (".png", ".txt"):
        shutil.copy(REPO_ROOT / "input" / f"astronaut{suffix}", photos / f"astronaut{suffix}")
    demo = run_tool("demo.py", "--input", photos, "--output", tmp_path / "out", "--bfm-dir",
                    converted_bfm, "--model", checkpoint_file, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-2000:]
    mat = loadmat(tmp_path / "out" / "astronaut.mat")
    assert str(mat["model"][0]) == "epoch_20.pth" and str(mat["model_kind"][0]) == "pytorch"
    crop_bgr = mat["cropped_img"][:, :, ::-1].astype(np.float32)[None]
    expected = PyTorchRNet.from_file(checkpoint_file)(tf.constant(crop_bgr)).numpy()
    # NAME.mat keeps the crop in whole grey levels; the network saw it before rounding.
    np.testing.assert_allclose(mat["coeff"], expected, rtol=0, atol=1e-3)

    extract = run_tool("extract.py", "--input", photos, "--output", tmp_path / "coeffs",
                       "--bfm-dir", converted_bfm, "--model", checkpoint_file, cwd=tmp_path)
    assert extract.returncode == 0, extract.stderr[-2000:]
    result = loadmat(tmp_path / "coeffs" / "astronaut.mat")
    assert '"model_kind": "pytorch"' in str(result["options"])
    # extract.py crops the face's region alone: within 2 grey levels of the demo's crop.
    np.testing.assert_allclose(result["coeff"], mat["coeff"], rtol=0, atol=1e-3)

    report = run_tool("demo.py", "--check", "--bfm-dir", converted_bfm, "--model",
                      checkpoint_file, cwd=tmp_path)
    assert "epoch_20.pth" in report.stdout and "the PyTorch release's R-Net" in report.stdout


def test_the_tools_refuse_a_hostile_pth_with_one_line_and_write_nothing(converted_bfm,
                                                                        tmp_path):
    target = tmp_path / "ran.txt"
    evil = write_archive(tmp_path / "evil.pth", hostile_pickle("os", "system", f"touch {target}"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for tool, extra in (("demo.py", []), ("extract.py", []), ("evaluate.py", ["aflw2000"])):
        output = tmp_path / f"out_{tool}"
        args = [*extra, "--data" if tool == "evaluate.py" else "--input", photos, "--output",
                output, "--bfm-dir", converted_bfm, "--model", evil]
        result = run_tool(tool, *args, cwd=tmp_path)
        assert result.returncode == 2, (tool, result.stderr[-2000:])
        ours = [line for line in result.stderr.splitlines() if "evil.pth" in line]
        assert len(ours) == 1 and "'os.system'" in ours[0] and "Traceback" not in result.stderr
        assert not output.exists() or not any(output.rglob("*"))
    assert not target.exists()
