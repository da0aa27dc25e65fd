"""Tests of cli.asset_report: the report behind `python demo.py --check`."""
import os
import pathlib
import shutil

import numpy as np
import pytest
import scipy.io

import load_data
from assets import catalog
from assets.catalog import AssetError
from cli import asset_report
from tests.conftest import LICENSED_ASSETS, one_line
from tests.synthetic_assets import make_front_model


def entry(report, name):
    (found,) = [e for e in report.entries if e.name == name]
    return found


def test_check_assets_empty_folder_names_every_source(tmp_path):
    report = asset_report.check_assets(tmp_path / "BFM", tmp_path / "network" / "x.pb")
    assert not report.ok and not report
    text = "\n".join(report.problems)
    expected = [
        ("01_MorphableModel.mat", "https://faces.dmi.unibas.ch/bfm/main.php?nav=1-1-0&id=details"),
        ("Exp_Pca.bin", "3DFace"),
        ("BFM_exp_idx.mat", "github.com/microsoft/Deep3DFaceReconstruction"),
        ("BFM_front_idx.mat", "folder BFM/"),
        ("facemodel_info.mat", "folder BFM/"),
        ("std_exp.txt", "folder BFM/"),
        ("similarity_Lm3D_all.mat", "folder BFM/"),
        ("x.pb", "README"),
    ]
    for name, where in expected:
        (line,) = [p for p in report.problems if f"{name}: " in p]
        assert where in line, line
        assert ": missing" in line
    assert len(report.problems) == len(expected), report.problems
    index_line = next(p for p in report.problems if "BFM_front_idx.mat: " in p)
    assert "ships it in BFM/ (MIT, BFM/LICENSE-index-files.txt)" in index_line
    assert "git checkout -- BFM/" in index_line
    assert "select_vertex_id.mat" not in text        # optional: the uv outputs only
    assert "BFM_UV.mat" not in text
    assert "uv outputs" in entry(report, "BFM_UV.mat").note
    # Built, never fetched: its missing inputs above are the problems, not the model itself.
    front = entry(report, "BFM_model_front.mat")
    assert not front.blocking and "BFM_model_front.mat" not in text
    assert "transferBFM09" in front.note and "once the files below are in place" in front.note
    assert all(not e.present and e.size is None for e in report.entries)
    with pytest.raises(AssetError) as error:
        report.raise_if_failed()
    assert one_line(error).startswith(report.problems[0])
    table = str(report)
    assert "missing" in table and "01_MorphableModel.mat" in table and "problem(s)" in table


def test_check_assets_before_and_after_conversion(bfm_copy, graph_file):
    report = asset_report.check_assets(bfm_copy, graph_file)
    assert report.ok and report.needs_conversion, report.problems
    front = entry(report, "BFM_model_front.mat")
    assert not front.present and front.problem is None and "transferBFM09" in front.note
    assert entry(report, "01_MorphableModel.mat").role == "conversion"
    report.raise_if_failed()

    load_data.transferBFM09(bfm_copy)
    report = asset_report.check_assets(bfm_copy, graph_file)
    assert report.ok and not report.needs_conversion
    front = entry(report, "BFM_model_front.mat")
    assert front.present and front.ok and front.size == (bfm_copy / front.name).stat().st_size
    assert entry(report, "01_MorphableModel.mat").role == "optional"
    assert entry(report, "Exp_Pca.bin").role == "optional"

    # Raw files gone, or broken, once converted: still fine (warnings only).
    (bfm_copy / "01_MorphableModel.mat").unlink()
    exp = bfm_copy / "Exp_Pca.bin"
    exp.write_bytes(exp.read_bytes()[:100])
    report = asset_report.check_assets(bfm_copy, graph_file)
    assert report.ok, report.problems
    assert any("Exp_Pca.bin" in w and "truncated" in w for w in report.warnings)


def test_check_assets_stale_front_model_needs_valid_inputs(bfm_copy, graph_file):
    out = load_data.transferBFM09(bfm_copy)
    os.utime(out, ns=(10**18, 10**18))        # older than its inputs: will be rebuilt
    report = asset_report.check_assets(bfm_copy, graph_file)
    assert report.ok and report.needs_conversion
    assert "rebuild" in entry(report, "BFM_model_front.mat").note
    exp = bfm_copy / "Exp_Pca.bin"
    exp.write_bytes(exp.read_bytes()[:-8])
    report = asset_report.check_assets(bfm_copy, graph_file)
    assert not report.ok
    assert any(p.startswith(f"{exp}: truncated") for p in report.problems)
    with pytest.raises(AssetError, match="Exp_Pca.bin: truncated"):
        load_data.transferBFM09(bfm_copy)


def test_check_assets_synthetic_index_files_are_not_verified(bfm_copy, graph_file):
    report = asset_report.check_assets(bfm_copy, graph_file)
    for name in ("BFM_exp_idx.mat", "BFM_front_idx.mat", "facemodel_info.mat", "std_exp.txt",
                 "similarity_Lm3D_all.mat", "select_vertex_id.mat"):
        assert entry(report, name).verified is False
        assert any(name in w and "SHA-256" in w for w in report.warnings)
    assert entry(report, "01_MorphableModel.mat").verified is None
    assert report.ok
    assert "DIFFERS" in str(report)


def test_check_assets_release_index_files_are_verified(tmp_path):
    for name in asset_report.KNOWN_SHA256:        # the copies this repository ships
        shutil.copyfile(catalog.BFM_DIR / name, tmp_path / name)
    report = asset_report.check_assets(tmp_path, tmp_path / "none.pb")
    for name in asset_report.KNOWN_SHA256:
        assert entry(report, name).verified is True and entry(report, name).ok, name
    assert not report.warnings
    blocking = {pathlib.Path(p.split(":")[0]).name for p in report.problems}
    assert blocking == {"01_MorphableModel.mat", "Exp_Pca.bin", "none.pb"}
    # One of them modified: a warning naming it, which says how to restore it.
    (tmp_path / "std_exp.txt").write_text((tmp_path / "std_exp.txt").read_text() + "\n1.0\n")
    report = asset_report.check_assets(tmp_path, tmp_path / "none.pb")
    assert entry(report, "std_exp.txt").verified is False
    (warning,) = report.warnings
    assert warning.startswith(f"{tmp_path / 'std_exp.txt'}: SHA-256 differs")
    assert "git checkout -- BFM/" in warning and "github.com/microsoft/Deep3DFaceReconstruction" \
        in warning


def test_repository_ships_the_release_index_files():
    shipped = {name: catalog.BFM_DIR / name for name in asset_report.KNOWN_SHA256}
    assert sorted(shipped) == sorted([
        "BFM_exp_idx.mat", "BFM_front_idx.mat", "facemodel_info.mat", "similarity_Lm3D_all.mat",
        "select_vertex_id.mat", "std_exp.txt", "BFM_UV.mat"])
    for name, path in shipped.items():
        assert path.is_file(), f"{path}: missing from the repository"
        assert asset_report._sha256(path) == asset_report.KNOWN_SHA256[name], \
            f"{path}: SHA-256 differs from the release's"
    licence = (catalog.BFM_DIR / "LICENSE-index-files.txt").read_text()
    assert "MIT License" in licence and "Copyright (c) Microsoft Corporation" in licence
    assert "Permission is hereby granted, free of charge" in licence


def test_default_report_of_the_repository_names_only_the_licensed_files(bare_checkout):
    report = asset_report.check_assets()        # the repository's BFM/ and network/
    assert not report.ok
    named = sorted(catalog.display_path(p.split(": ")[0]) for p in report.problems)
    assert named == sorted(LICENSED_ASSETS), report.problems
    assert all(": missing (get it from: " in p for p in report.problems)
    for name in asset_report.KNOWN_SHA256:
        shipped = entry(report, name)
        assert shipped.present and shipped.ok and shipped.verified is True, name
    assert not report.warnings
    front = entry(report, "BFM_model_front.mat")
    assert not front.present and not front.blocking


@pytest.mark.parametrize("damage, file_name, expected", [
    ("truncate", "Exp_Pca.bin", "truncated"),
    ("truncate", "01_MorphableModel.mat", "truncated"),
    ("truncate", "facemodel_info.mat", "truncated"),
    ("garbage", "FaceReconModel.pb", "does not parse"),
    ("lm_shape", "similarity_Lm3D_all.mat", "variable 'lm' has shape"),
    ("front_shape", "BFM_model_front.mat", "variable 'exBase' has shape"),
])
def test_check_assets_reports_bad_files(bfm_copy, graph_file, tmp_path, damage, file_name,
                                        expected):
    model_path = tmp_path / "FaceReconModel.pb"
    shutil.copyfile(graph_file, model_path)
    if file_name == "BFM_model_front.mat":
        model = make_front_model()
        model["exBase"] = model["exBase"][:, :10]
        scipy.io.savemat(str(bfm_copy / file_name), model)
    path = model_path if file_name.endswith(".pb") else bfm_copy / file_name
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "garbage":
        path.write_bytes(b"\xff" * 64)
    elif damage == "lm_shape":
        scipy.io.savemat(str(path), {"lm": np.zeros((68, 2), np.float32)})
    report = asset_report.check_assets(bfm_copy, model_path)
    assert not report.ok
    (line,) = [p for p in report.problems if p.startswith(f"{path}: ")]
    assert expected in line and "(get it from: " in line
    bad = entry(report, file_name)
    assert bad.present and not bad.ok and expected in bad.problem
    with pytest.raises(AssetError) as error:
        report.raise_if_failed()
    assert one_line(error).startswith(report.problems[0])


def test_repository_ships_the_uv_layout_with_its_licence():
    licence = (catalog.BFM_DIR / "LICENSE-BFM_UV.txt").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    notice = (catalog.BFM_DIR / "NOTICE-BFM_UV.txt").read_text()
    assert "anilbas/3DMMasSTN" in notice and "LICENSE-BFM_UV.txt" in notice
    # What the texture code reads of it: one (u, v) per BFM09 vertex, in [0, 1].
    uv = scipy.io.loadmat(str(catalog.BFM_DIR / "BFM_UV.mat"))["UV"]
    assert uv.shape == (53490, 2) and 0.0 <= uv.min() and uv.max() <= 1.0


def test_check_assets_uv_layout_is_optional(tmp_path):
    for name in asset_report.KNOWN_SHA256:
        shutil.copyfile(catalog.BFM_DIR / name, tmp_path / name)
    uv = entry(asset_report.check_assets(tmp_path, tmp_path / "none.pb"), "BFM_UV.mat")
    assert uv.ok and uv.verified is True and uv.role == "optional"
    # Broken: a warning naming the file, never a blocking problem.
    scipy.io.savemat(str(tmp_path / "BFM_UV.mat"), {"UV": np.full((53490, 3), 0.5)})
    report = asset_report.check_assets(tmp_path, tmp_path / "none.pb")
    uv = entry(report, "BFM_UV.mat")
    assert not uv.ok and not uv.blocking and uv.verified is False
    assert not any("BFM_UV.mat" in p for p in report.problems)
    assert any(w.startswith(f"{tmp_path / 'BFM_UV.mat'}: variable 'UV' has shape (53490, 3)")
               and "not needed now" in w for w in report.warnings), report.warnings
