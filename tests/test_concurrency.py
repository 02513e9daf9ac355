"""Several ``bench`` processes at once on one machine, sharing the data cache and the leaderboard."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark import data
from benchmark.tasks import get_task


def _start(args: list[str], data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "BENCH_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(procs: list[subprocess.Popen], timeout: float) -> None:
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out


def _one_clean_cache(data_dir: Path, task: str) -> Path:
    folder = data_dir / "prepared" / task
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") or p.is_dir())
    assert len(entries) == 1 and entries[0].startswith("synthetic-"), entries  # no second copy, no temporary left
    prepared = data.load_prepared(get_task(task), folder / entries[0])
    assert prepared is not None
    return folder / entries[0]


def test_parallel_prepares_of_the_same_data_build_one_cache(tmp_path):
    data_dir = tmp_path / "data"
    procs = [_start(["data", "generate", "hcal_dqm", "--n-train", "420", "--n-val", "90", "--n-test", "90"], data_dir) for _ in range(4)]
    _finish(procs, timeout=300)
    path = _one_clean_cache(data_dir, "hcal_dqm")
    fresh = data.prepare(get_task("hcal_dqm"), source=data.Source.SYNTHETIC, root=tmp_path / "again", sizes=data.Sizes.total(600))
    for split in data.Split:  # identical to a preparation that had the machine to itself
        np.testing.assert_array_equal(np.load(path / split.value / "X.npy"), fresh.split(split).X)


@pytest.mark.slow
def test_parallel_bench_runs_share_cache_and_board(tmp_path):
    data_dir, runs, board = tmp_path / "data", tmp_path / "runs", tmp_path / "board"
    models = ["naive_bayes", "logreg", "xgboost"]
    procs = [_start(["run", "--task", "hcal_dqm", "--model", m, "--trials", "2", "--n-train", "210", "--n-val", "45", "--n-test", "45",
                     "--name", f"run-{m}", "--runs-dir", str(runs), "--leaderboard-dir", str(board)], data_dir)
             for m in models]
    _finish(procs, timeout=900)
    _one_clean_cache(data_dir, "hcal_dqm")
    with open(board / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["model"] for r in rows) == sorted(models)  # no row lost to a concurrent update
    assert sorted(r["run_id"] for r in rows) == sorted(f"run-{m}" for m in models)
    assert "hcal_dqm" in (board / "leaderboard.md").read_text() and (board / "roc_hcal_dqm.png").stat().st_size > 0
