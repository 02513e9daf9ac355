"""End to end through Ray Tune and Optuna: ``bench run`` in a subprocess, as a user runs it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

pytestmark = pytest.mark.slow

TINY_RESNET = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
batch_size: {type: fixed, value: 64}
width: {type: fixed, value: 8}
blocks: {type: fixed, value: 1}
dropout: {type: float, low: 0.0, high: 0.3}
epochs: {type: fixed, value: 30}
"""


def bench(args, tmp_path, **kwargs):
    env = {**os.environ, "BENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "benchmark.cli", *args, "--runs-dir", str(tmp_path / "runs"),
           "--leaderboard-dir", str(tmp_path / "leaderboard")]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_bench_run_end_to_end(tmp_path):
    space = tmp_path / "tiny_resnet.yaml"
    space.write_text(TINY_RESNET)
    proc = bench(["run", "--task", "hcal_dqm", "--model", "naive_bayes", "resnet15", "--trials", "3",
                  "--max-epochs", "2", "--n-samples", "300", "--name", "e2e", "--space", f"resnet15={space}"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    run_dir = tmp_path / "runs" / "e2e"
    assert f"results: {run_dir}" in out
    assert "hcal_dqm / resnet15: 3/3 trials" in out  # the live progress line
    record = json.loads((run_dir / "run.json").read_text())["invocations"][0]
    assert record["spec"]["trials"] == 3 and record["versions"]["ray"] and record["hardware"]["cpus"]

    for model, neural in (("naive_bayes", False), ("resnet15", True)):
        study_dir = run_dir / "hcal_dqm" / model
        trials = json.loads((study_dir / "trials.json").read_text())
        assert len(trials) == 3 and all(t["status"] in ("completed", "pruned") for t in trials)
        for t in trials:
            assert t["node_id"] and t["wall_s"] > 0 and 0 <= t["best_val_auc"] <= 1
            assert len(t["curve"]) == t["epochs"] == (len(t["curve"]) if neural else 1)
            if neural:
                assert t["config"]["epochs"] == 2 and t["config"]["width"] == 8  # --max-epochs, --space
        study = optuna.load_study(study_name=f"hcal_dqm-{model}", storage=f"sqlite:///{study_dir / 'optuna.db'}")
        assert len(study.trials) == 3
        result = json.loads((study_dir / "result.json").read_text())
        assert result["source"] == "synthetic" and result["data"]["n_samples"] == 300
        assert result["best_config"] == max(trials, key=lambda t: t["best_val_auc"])["config"]
        test = result["test"]
        assert test["auc_low"] <= test["auc"] <= test["auc_high"] and test["auc"] > 0.5
        roc = np.load(study_dir / "roc.npz")
        assert roc["y"].shape == roc["score"].shape == (result["data"]["split_sizes"]["test"],)


def test_interrupted_run_resumes_to_exactly_the_requested_trials(tmp_path):
    args = ["run", "--task", "ee_gamma", "--model", "naive_bayes", "--trials", "30", "--concurrency", "1",
            "--n-samples", "1500", "--name", "r"]
    proc = bench(args, tmp_path, start_new_session=True)
    curves = tmp_path / "runs" / "r" / "ee_gamma" / "naive_bayes" / "curves.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not curves.is_file() or len(curves.read_text().splitlines()) < 2):
        time.sleep(0.5)
    assert curves.is_file(), proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out
    assert "--resume" in out and not (curves.parent / "result.json").exists()
    assert len({json.loads(line)["trial_id"] for line in curves.read_text().splitlines()}) < 30  # stopped mid-way

    proc = bench(args + ["--resume"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    trials = json.loads((curves.parent / "trials.json").read_text())
    assert len(trials) == 30 and all(t["status"] == "completed" for t in trials)
    study = optuna.load_study(study_name="ee_gamma-naive_bayes", storage=f"sqlite:///{curves.parent / 'optuna.db'}")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 30
    assert len(json.loads((tmp_path / "runs" / "r" / "run.json").read_text())["invocations"]) == 2
