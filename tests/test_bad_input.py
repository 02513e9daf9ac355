"""Every bad input through the command line: one line on stderr that says what is wrong and what to do,
exit code 2, no traceback (unless --debug), and nothing half-written in the data or runs directory.

The readers' own cases (every key, shape, dtype and damage of every format) are in the task tests;
here each kind of bad input goes end to end through ``bench``, as a user meets it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_task_atlas_topo import _corrupt
from test_task_ee_gamma import ELECTRON_FILE, PHOTON_FILE, _crops, _write
from test_task_quark_gluon import _jets, _write_parquet

from benchmark.cli import main
from benchmark.tasks.quark_gluon import PARQUET_FILES

HCAL_FILES = ("Run355456_Dataset.npy", "Run357479_Dataset.npy")


def _hcal(folder: Path, bad: str, rows: int = 20) -> None:  # 20 rows a run: both classes in every split
    for name in HCAL_FILES:
        np.save(folder / name, np.ones((rows, 64, 72)))
    target = folder / HCAL_FILES[1]
    if bad == "truncated":
        target.write_bytes(target.read_bytes()[:300])
    elif bad == "shape":
        np.save(target, np.ones((rows, 64, 71)))
    elif bad == "inf":
        a = np.ones((rows, 64, 72))
        a[2, 3, 4] = np.inf
        np.save(target, a)


def _ee_gamma(folder: Path, bad: str) -> None:
    _write(folder / ELECTRON_FILE, _crops(3, 1), np.ones(3))
    X, y, extra = _crops(3, 5), np.zeros(3), {}
    if bad == "nan":
        X[1, 2, 3, 0] = np.nan
    elif bad == "labels":
        y = np.array([0, 2, 0])
    elif bad == "missing key":
        y = None
    elif bad == "dtype":
        X = np.full((3, 32, 32, 2), b"a", dtype="S1")
    _write(folder / PHOTON_FILE, X, y, **extra)


def _quark_gluon(folder: Path) -> None:
    for k, name in enumerate(PARQUET_FILES):
        _write_parquet(folder / name, _jets(2, 10 * k), 2 * k)
    (folder / PARQUET_FILES[1]).write_bytes(b"PAR1 not really" * 30)


DATA_CASES = [
    ("hcal_dqm", lambda d: _hcal(d, "truncated"), "unreadable .npy file"),
    ("hcal_dqm", lambda d: _hcal(d, "shape"), "shape"),
    ("hcal_dqm", lambda d: _hcal(d, "inf"), "inf"),
    ("hcal_dqm", lambda d: _hcal(d, "none", rows=4), "the test split has one class only"),  # too few rows
    ("ee_gamma", lambda d: _ee_gamma(d, "nan"), "NaN"),
    ("ee_gamma", lambda d: _ee_gamma(d, "labels"), "not binary"),
    ("ee_gamma", lambda d: _ee_gamma(d, "missing key"), "missing key"),
    ("ee_gamma", lambda d: _ee_gamma(d, "dtype"), "dtype"),
    ("atlas_topo", lambda d: _corrupt(d, "non-binary labels"), "binary"),
    ("atlas_topo", lambda d: _corrupt(d, "truncated"), "atlas_topo.npz"),
    ("atlas_topo", lambda d: _corrupt(d, "missing key"), "cluster_sumCellE"),
    ("quark_gluon", _quark_gluon, "cannot read parquet"),
    ("quark_gluon", lambda d: None, "`--source synthetic` works without them"),  # no files at all
]


def bench(capsys, *argv) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, err


def assert_one_clean_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]


def assert_nothing_half_written(data_dir: Path) -> None:
    prepared = data_dir / "prepared"
    leftovers = [p for p in prepared.rglob("*") if p.is_file() and not p.name.startswith(".") or
                 p.is_dir() and p.name.startswith(".") and p.parent != prepared] if prepared.exists() else []
    assert not leftovers, leftovers


@pytest.mark.parametrize("task, make, message", DATA_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(DATA_CASES)])
def test_bad_data_files(capsys, tmp_path, monkeypatch, task, make, message):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("BENCH_DATA_DIR", str(data_dir))
    folder = data_dir / task
    folder.mkdir(parents=True)
    make(folder)
    code, err = bench(capsys, "data", "prepare", task, "--source", "real")
    assert_one_clean_line(code, err, message)
    if "--source synthetic" not in message:
        assert str(folder) in err  # names the file
    assert_nothing_half_written(data_dir)


def test_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "hcal_dqm").mkdir(parents=True)
    _hcal(tmp_path / "data" / "hcal_dqm", "truncated")
    from benchmark.errors import DataError

    with pytest.raises(DataError, match="unreadable .npy"):
        main(["data", "prepare", "hcal_dqm", "--source", "real", "--debug"])


SPACES = [
    ("lr: {type: float, low: 1e-3, high: [1\n", "YAML syntax error at line"),
    ("lr: {type: float, low: 1.0, high: 0.1}\n", "lr: low (1.0) is greater than high (0.1)"),
    ("lr: {type: float, low: 0, high: 1, log: true}\n", "log scale needs low > 0"),
    ("lr: {type: float, low: 1e-4, high: 1e-2}\nlearning_rate: {type: fixed, value: 1}\n", "learning_rate: unknown key"),
    ("- just\n- a list\n", "expected a mapping"),
]


@pytest.mark.parametrize("text, message", SPACES)
def test_bad_search_space_files(capsys, tmp_path, monkeypatch, text, message):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    space = tmp_path / "space.yaml"
    space.write_text(text)
    code, err = bench(capsys, "run", "--task", "ee_gamma", "--model", "resnet15", "--space", f"resnet15={space}",
                      "--runs-dir", str(tmp_path / "runs"), "--leaderboard-dir", str(tmp_path / "board"))
    assert_one_clean_line(code, err, message)
    assert str(space) in err
    assert not (tmp_path / "runs").exists()  # refused before anything was written


@pytest.mark.parametrize("argv, message", [
    (("run", "--task", "ee_gamma", "--trials", "-3"), "must be"),
    (("run", "--task", "ee_gamma", "--repeats", "0"), "must be"),
    (("run", "--task", "ee_gamma", "--max-epochs", "0"), "must be"),
    (("run", "--task", "ee_gamma", "--cpus-per-trial", "0"), "must be"),
    (("run", "--task", "ee_gamma", "--sampler", "bayes"), "invalid choice"),
    (("run", "--task", "ee_gamm"), "did you mean 'ee_gamma'"),
    (("run", "--task", "ee_gamma", "--model", "xgb"), "did you mean 'xgboost'"),
    (("data", "prepare", "ee_gamma", "--n-train", "5"), "too small"),
])
def test_bad_command_line_values(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    code, err = bench(capsys, *argv)
    assert_one_clean_line(code, err, message)


@pytest.mark.parametrize("which", ["data", "runs"])
def test_unwritable_directories(capsys, tmp_path, monkeypatch, which):
    """A file where a directory should be (a read-only directory is no obstacle to root, who runs CI)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    data_dir = blocker if which == "data" else tmp_path / "data"
    monkeypatch.setenv("BENCH_DATA_DIR", str(data_dir))
    runs = blocker / "runs" if which == "runs" else tmp_path / "runs"
    code, err = bench(capsys, "run", "--task", "hcal_dqm", "--model", "logreg", "--runs-dir", str(runs))
    assert_one_clean_line(code, err, "cannot create the directory")
    assert ("--runs-dir" if which == "runs" else "--data-dir") in err
    if which == "data":
        code, err = bench(capsys, "data", "generate", "hcal_dqm", "--n-train", "100", "--n-val", "20", "--n-test", "20")
        assert_one_clean_line(code, err, "--data-dir")
