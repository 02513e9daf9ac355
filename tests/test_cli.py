from __future__ import annotations

import pkgutil

import h5py
import numpy as np
import pytest

import baselines
import benchmark.models
import benchmark.tasks
from benchmark.cli import main
from benchmark.models import list_families, list_models
from benchmark.models._registry import MODULES
from benchmark.tasks import list_tasks


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_every_module_in_the_registry_folders_is_registered():
    task_modules = {m.name for m in pkgutil.iter_modules(benchmark.tasks.__path__) if m.name not in ("base", "_registry")}
    assert task_modules == {t.name for t in list_tasks()} == {"ee_gamma", "quark_gluon", "hcal_dqm", "atlas_topo"}
    model_modules = {f"benchmark.models.{m.name}" for m in pkgutil.iter_modules(benchmark.models.__path__)}
    model_modules |= {f"baselines.{m.name}" for m in pkgutil.iter_modules(baselines.__path__)}
    model_modules -= {"benchmark.models.base", "benchmark.models._registry", "benchmark.models.training"}
    assert model_modules == set(MODULES)  # a model module that the registry would never import fails here
    assert {cls.__module__ for cls in list_models() + list_families()} == set(MODULES)
    assert len([m for m in list_models() if m.on_board]) == 8 and [f.name for f in list_families()] == ["timm"]
    assert [m.name for m in list_models() if not m.on_board] == ["mlp"]  # a reference recipe's model


def test_tasks_and_models_tables(capsys):
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0 and all(t in out for t in ("ee_gamma", "quark_gluon", "hcal_dqm", "atlas_topo"))
    assert "photon / electron" in out
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "resnet15" in out and "classical" in out and "timm:<name>" in out


@pytest.mark.parametrize("task", ["ee_gamma", "hcal_dqm", "atlas_topo"])
def test_data_info_sets_statistics_beside_the_reference(capsys, task):
    code, out, _ = run_cli(capsys, "data", "info", task, "--n", "300")
    assert code == 0
    assert "reference (docs/datasets.md)" in out and "zero_fraction" in out and "source: synthetic" in out


def test_data_generate_prepares_splits(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "data", "generate", "hcal_dqm", "--n-train", "140", "--n-val", "30", "--n-test", "30",
                                  "--seed", "1")
    assert code == 0 and "'train': 140" in out
    assert list((tmp_path / "data" / "prepared" / "hcal_dqm").glob("synthetic-*/manifest.json"))


@pytest.mark.parametrize("argv, message", [
    (("data", "info", "ee_gama"), "unknown task 'ee_gama' (did you mean 'ee_gamma'?)"),
    (("run", "--task", "ee_gamma", "--model", "resnet51"), "unknown model 'resnet51' (did you mean 'resnet15'?)"),
    (("data", "info", "ee_gamma", "--source", "real"), "bench data fetch ee_gamma"),
    (("data", "fetch", "atlas_topo"), "no publicly downloadable files"),
    (("run", "--task", "ee_gamma", "--resume"), "--resume needs the --name"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [("run", "--task", "ee_gamma", "--trials", "0"),
                                  ("run", "--task", "ee_gamma", "--concurrency", "0"),
                                  ("run", "--task", "ee_gamma", "--gpus-per-trial", "-1"),
                                  ("data", "generate", "ee_gamma", "--n-train", "-5")])
def test_bad_numbers_are_refused_by_the_parser(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "must be" in err


def test_a_corrupt_real_file_names_the_file(capsys, tmp_path):
    folder = tmp_path / "data" / "ee_gamma"
    folder.mkdir(parents=True)
    for name, label in (("SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5", 1), ("SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5", 0)):
        with h5py.File(folder / name, "w") as f:
            f["X"] = np.ones((20, 32, 32, 2), np.float32)
            f["y"] = np.full(20, label, np.float32)
    bad = folder / "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated download
    code, _, err = run_cli(capsys, "data", "info", "ee_gamma", "--source", "real")
    assert code == 2 and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "data" / "prepared").exists() or not any((tmp_path / "data" / "prepared").rglob("manifest.json"))
