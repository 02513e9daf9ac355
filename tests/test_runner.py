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

from benchmark import records
from benchmark.publish import leaderboard
from benchmark.search import studies
from conftest import result_json, trials_json

pytestmark = pytest.mark.slow

TINY_RESNET = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
batch_size: {type: fixed, value: 64}
width: {type: fixed, value: 8}
blocks: {type: fixed, value: 1}
dropout: {type: float, low: 0.0, high: 0.3}
epochs: {type: fixed, value: 30}
"""


TINY_VAE = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
batch_size: {type: fixed, value: 64}
width: {type: fixed, value: 8}
latent_dim: {type: int, low: 2, high: 4}
epochs: {type: fixed, value: 30}
"""


def bench(args, tmp_path, **kwargs):
    env = {**os.environ, "BENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "benchmark.cli", *args, "--runs-dir", str(tmp_path / "runs"),
           "--leaderboard-dir", str(tmp_path / "leaderboard")]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_bench_run_end_to_end(tmp_path):
    (tmp_path / "tiny_resnet.yaml").write_text(TINY_RESNET)
    (tmp_path / "tiny_vae.yaml").write_text(TINY_VAE)
    proc = bench(["run", "--task", "hcal_dqm", "--model", "naive_bayes", "resnet15", "vae", "--trials", "3",
                  "--max-epochs", "2", "--n-train", "210", "--n-val", "45", "--n-test", "45", "--name", "e2e", "--precision", "fp32",
                  "--recipe", "e2e-resnet15", "--space", f"resnet15={tmp_path / 'tiny_resnet.yaml'}", "--space", f"vae={tmp_path / 'tiny_vae.yaml'}"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    run_dir = tmp_path / "runs" / "e2e"
    assert f"results: {run_dir}" in out
    assert "hcal_dqm / resnet15: 3/3 trials" in out  # the live progress line
    record = records.read_run(run_dir).invocations[0]
    assert record.spec["trials"] == 3 and record.versions["ray"] and record.hardware["cpus"]

    for model, neural in (("naive_bayes", False), ("resnet15", True)):
        study_dir = run_dir / "hcal_dqm" / model
        trials = trials_json(study_dir)
        assert len(trials) == 3 and all(t["status"] in ("completed", "pruned") for t in trials)
        for t in trials:
            assert t["node_id"] and t["wall_s"] > 0 and 0 <= t["best_val_auc"] <= 1
            steps = [c["epoch"] for c in t["curve"]]
            # one record per step trained, in order: at most --max-epochs of them for a neural model, which
            # reports its losses each epoch; one step for a classical model
            assert steps == list(range(1, t["epochs"] + 1)) and 1 <= t["epochs"] <= (2 if neural else 1)
            assert all(c["time_this_iter_s"] > 0 and c["reported_at"] for c in t["curve"])
            if neural:
                assert all("train_loss" in c and "val_loss" in c for c in t["curve"])
                assert t["config"]["epochs"] == 2 and t["config"]["width"] == 8  # --max-epochs, --space
                assert t["config"]["precision"] == t["precision"] == "fp32"  # --precision, as computed
            else:
                assert t["precision"] == "native"
        study = studies.load(study_dir)  # the journal, written as the search ran
        assert study.study_name == f"hcal_dqm-{model}" and len(study.trials) == 3 and not (study_dir / "optuna.db").exists()
        # one trial store: each Optuna trial names the Tune trial it was
        assert sorted(t.user_attrs[records.TUNE_ID] for t in study.trials) == sorted(t["trial_id"] for t in trials)
        result = result_json(study_dir)
        assert result["source"] == "synthetic" and result["data"]["n_train"] == 210
        assert result["device"] == "cpu" and result["precision"] == ("fp32" if neural else "native")
        assert result["best_config"] == max(trials, key=lambda t: t["best_val_auc"])["config"]
        test = result["test"]
        assert test["auc_low"] <= test["auc"] <= test["auc_high"] and test["auc"] > 0.5
        roc = np.load(study_dir / "roc.npz")
        assert roc["y"].shape == roc["score"].shape == (result["data"]["split_sizes"]["test"],)
        if neural:  # the retraining's convergence is recorded with each seed's test run
            assert test["epochs"] <= 2 and test["stop"] in ("patience", "plateau", "max_epochs")
            assert test["converged"] == (test["stop"] != "max_epochs")
    assert -1 <= result_json(run_dir / "hcal_dqm" / "vae")["test"]["recon_corr"] <= 1

    # the reference recipe: its fixed values, epochs capped by --max-epochs, trained once (no search) and
    # tested with the run's seed, marked; its one trial is that training's curve
    recipe_dir = run_dir / "hcal_dqm" / "resnet15@e2e-resnet15"
    recipe = result_json(recipe_dir)
    assert recipe["recipe"] == "e2e-resnet15" and recipe["model"] == "resnet15" and recipe["trials"]["completed"] == 1
    assert recipe["best_config"]["lr"] == 1e-3 and recipe["best_config"]["epochs"] == 2
    assert recipe["best_config"]["lr_schedule"] == "constant" and recipe["scheduler"] == recipe["sampler"] == "none"
    [trial] = trials_json(recipe_dir)
    assert trial["config"] == recipe["best_config"] and trial["best_val_auc"] == recipe["val_auc"]
    assert [c["epoch"] for c in trial["curve"]] == list(range(1, recipe["test"]["epochs"] + 1))
    assert all("train_loss" in c and c["time_this_iter_s"] > 0 for c in trial["curve"])
    assert not (recipe_dir / "tune").exists() and len(recipe["test"]["repeats"]) == 1
    assert recipe["resources_per_trial"]["cpu"] == os.cpu_count()  # alone: the whole (local) node
    board = leaderboard.load(tmp_path / "leaderboard")
    assert {(r.model, r.recipe) for r in board} >= {("resnet15", ""), ("resnet15", "e2e-resnet15")}
    assert all(r.n_train == 210 for r in board)

    latent = np.load(run_dir / "hcal_dqm" / "vae" / "latent.npz")
    assert latent["mu"].shape[0] == latent["y"].shape[0] == result["data"]["split_sizes"]["test"]

    # the run's HPO report, from the run directory (the hold-out retrains the best model thrice)
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli", "report", str(run_dir)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "BENCH_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr
    report = run_dir / "report"
    pictures = ["hpo_hcal_dqm_naive_bayes.png", "hpo_hcal_dqm_resnet15.png", "hpo_hcal_dqm_vae.png",
                "latent_hcal_dqm_vae.png", "robustness_hcal_dqm.png", "holdout_hcal_dqm.png"]
    for name in pictures:
        assert (report / name).stat().st_size > 10_000 and (report / name).read_bytes()[:4] == b"\x89PNG", name
    md = (report / "report.md").read_text()
    assert all(f"]({name})" in md for name in pictures)
    assert "test AUC per lumisection bin" in md and "Held-out lumisections" in md
    holdout = [line for line in md.splitlines() if line.startswith("| ") and "–" in line.split("|")[1]]
    assert len(holdout) >= 3  # lumisection ranges, each with a measured AUC


def _started_sweep(args, tmp_path, name):
    """``bench args`` in a session of its own, once its trial log holds two lines: (process, trial log)."""
    proc = bench(args, tmp_path, start_new_session=True)
    curves = tmp_path / "runs" / name / "ee_gamma" / "naive_bayes" / "trials.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not curves.is_file() or len(curves.read_text().splitlines()) < 2):
        time.sleep(0.5)
    assert curves.is_file(), proc.communicate()[0]
    return proc, curves


def test_interrupted_run_resumes_to_exactly_the_requested_trials(tmp_path):
    args = ["run", "--task", "ee_gamma", "--model", "naive_bayes", "--trials", "30", "--concurrency", "1",
            "--n-train", "1050", "--n-val", "225", "--n-test", "225", "--name", "r"]
    proc, curves = _started_sweep(args, tmp_path, "r")
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out
    assert "--resume" in out and not (curves.parent / "result.json").exists()
    assert len({json.loads(line)["trial_id"] for line in curves.read_text().splitlines()}) < 30  # stopped mid-way

    proc = bench(args + ["--resume"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    trials = trials_json(curves.parent)
    assert len(trials) == 30 and all(t["status"] == "completed" for t in trials)
    study = studies.load(curves.parent)
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 30
    assert len(json.loads((tmp_path / "runs" / "r" / "run.json").read_text())["invocations"]) == 2


def test_sigterm_stops_as_cleanly_as_ctrl_c_and_resumes(tmp_path):
    """SIGTERM to the driver (how Kubernetes and SLURM preempt a job): the same resume line as Ctrl-C, exit
    code 143, none of Ray's native stack noise; then --resume to exactly the requested trials."""
    args = ["run", "--task", "ee_gamma", "--model", "naive_bayes", "--trials", "30", "--concurrency", "1",
            "--n-train", "1050", "--n-val", "225", "--n-test", "225", "--name", "t"]
    proc, curves = _started_sweep(args, tmp_path, "t")
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out
    assert "terminated (SIGTERM)" in out and "--resume" in out and "SIGTERM received" not in out, out
    assert not (curves.parent / "result.json").exists()
    proc = bench(args + ["--resume"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    trials = trials_json(curves.parent)
    assert len(trials) == 30 and all(t["status"] == "completed" for t in trials)


def test_a_killed_driver_resumes_to_exactly_the_requested_trials(tmp_path):
    """SIGKILL (no chance to clean up) in the middle of a sweep, then --resume."""
    args = ["run", "--task", "ee_gamma", "--model", "naive_bayes", "--trials", "30", "--concurrency", "1",
            "--n-train", "1050", "--n-val", "225", "--n-test", "225", "--name", "k"]
    proc = bench(args, tmp_path, start_new_session=True)
    study_dir = tmp_path / "runs" / "k" / "ee_gamma" / "naive_bayes"
    curves = study_dir / "trials.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not curves.is_file() or len(curves.read_text().splitlines()) < 12):
        time.sleep(0.2)
    assert curves.is_file(), proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    proc.wait(timeout=60)
    assert not (study_dir / "result.json").exists()
    # the journal is there, as it was at the kill: Optuna (and so optuna-dashboard) opens it
    finished = {json.loads(line)["trial_id"] for line in curves.read_text().splitlines()}
    killed = studies.load(study_dir)
    done = [t for t in killed.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) - 2 <= len(done) <= len(finished)  # the searcher is told a result after the log has it
    with open(study_dir / studies.JOURNAL, "ab") as f:  # and a line cut by a kill mid-write does no harm
        f.write(b'{"op_code":')

    proc = bench(args + ["--resume"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    trials = trials_json(study_dir)
    assert len(trials) == 30 and all(t["status"] == "completed" for t in trials)
    assert len({t["trial_id"] for t in trials}) == 30
    # resume continued the same journal: every Tune trial completed in it, nothing left running
    study = studies.load(study_dir)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs[records.TUNE_ID] for t in complete) == sorted(t["trial_id"] for t in trials)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    result = result_json(study_dir)
    assert result["trials"] == {"completed": 30, "pruned": 0, "failed": 0}
    assert result["best_config"] == max(trials, key=lambda t: t["best_val_auc"])["config"]
    with open(tmp_path / "leaderboard" / "leaderboard.csv") as f:
        rows = [line for line in f.read().splitlines()[1:] if line]
    assert len(rows) == 1 and ",k," in rows[0]  # one row: not lost, not duplicated


FAILING_RESNET = """
lr: {type: categorical, choices: [3.0e-3, 1.0e+30]}     # 1e30: the loss diverges (NaN / inf); 3e-3: the default, tried first
width: {type: categorical, choices: [8, 1000000]}       # 10^6 channels: out of memory when built
grad_clip: {type: fixed, value: 0.0}
batch_size: {type: fixed, value: 64}
blocks: {type: fixed, value: 1}
epochs: {type: fixed, value: 30}
"""


def test_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "space.yaml").write_text(FAILING_RESNET)
    proc = bench(["run", "--task", "hcal_dqm", "--model", "resnet15", "--trials", "8", "--sampler", "random",
                  "--seed", "3", "--max-epochs", "2", "--n-train", "210", "--n-val", "45", "--n-test", "45", "--name", "f",
                  "--space", f"resnet15={tmp_path / 'space.yaml'}"], tmp_path)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    study_dir = tmp_path / "runs" / "f" / "hcal_dqm" / "resnet15"
    trials = trials_json(study_dir)
    assert len(trials) == 8
    for t in trials:
        ok = t["config"]["lr"] == 3e-3 and t["config"]["width"] == 8
        assert (t["status"] != "failed") == ok, t
        if not ok:  # the reason, and no retry of a config that can only fail again
            assert t["best_val_auc"] is None and t["retries"] == 0
            expected = "can't allocate memory" if t["config"]["width"] > 8 else "DivergedError"
            assert expected in t["error"], t["error"]
    kinds = {("oom" if t["config"]["width"] > 8 else "nan") for t in trials if t["status"] == "failed"}
    assert kinds == {"oom", "nan"} and any(t["status"] != "failed" for t in trials)  # this seed draws all three
    result = result_json(study_dir)
    assert result["trials"]["failed"] == sum(t["status"] == "failed" for t in trials)
    assert result["best_config"]["lr"] == 3e-3 and result["best_config"]["width"] == 8


def test_a_search_where_every_trial_fails_exits_non_zero_after_the_others(tmp_path):
    (tmp_path / "space.yaml").write_text(FAILING_RESNET.replace("choices: [3.0e-3, 1.0e+30]", "choices: [1.0e+30]")
                                         .replace("choices: [8, 1000000]", "choices: [8]"))
    proc = bench(["run", "--task", "hcal_dqm", "--model", "resnet15", "naive_bayes", "--trials", "2", "--max-epochs", "2",
                  "--n-train", "210", "--n-val", "45", "--n-test", "45", "--name", "all-fail", "--space", f"resnet15={tmp_path / 'space.yaml'}"],
                 tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 2, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("bench: error: hcal_dqm / resnet15: every trial failed (DivergedError") and "trials.json" in last
    assert not (tmp_path / "runs" / "all-fail" / "hcal_dqm" / "resnet15" / "result.json").exists()
    assert (tmp_path / "runs" / "all-fail" / "hcal_dqm" / "naive_bayes" / "result.json").is_file()  # went on
    assert ",naive_bayes," in (tmp_path / "leaderboard" / "leaderboard.csv").read_text()


def test_a_protocol_fixes_its_settings_and_runs_one_task(capsys):
    from benchmark import protocol
    from benchmark.cli import main
    from benchmark.recipes import RECIPES

    for argv, message in ((["--trials", "3"], "--protocol board fixes --trials"),
                          (["--n-train=50"], "--protocol board fixes --n-train"), ([], None)):
        task = "all" if message is None else "ee_gamma"
        assert main(["run", "--task", task, "--protocol", "board", *argv]) == 2
        err = capsys.readouterr().err
        assert (message or "one task per command") in err, err
    preset = protocol.preset("board", "quark_gluon")
    assert preset.repeats == 3 and set(preset.recipes) <= set(RECIPES)
    assert "bench run --protocol board --task hcal_dqm" in protocol.describe("board")


@pytest.mark.parametrize("cpus, slots, repeats, gpus, expected", [
    (1.0, 2, 3, 0.0, 2 / 3),   # three seeds on two 1-CPU slots: all three at once, one thread each
    (1.0, 2, 2, 0.0, 1.0),     # as many seeds as slots: a trial's CPUs
    (1.0, 4, 3, 0.0, 1.0),
    (2.0, 1, 3, 0.0, 2.0),     # a share of 2/3 CPU would train with 1 thread, not the search's 2
    (4.0, 2, 3, 0.0, 4.0),     # 8/3 CPUs: 2 threads, not 4
    (1.0, 2, 3, 0.5, 1.0),     # GPU runs keep a trial's resources
])
def test_seeds_share_the_slots_only_when_each_keeps_a_trials_threads(monkeypatch, cpus, slots, repeats, gpus, expected):
    from benchmark.search import final, session
    from benchmark.search.spec import RunSpec

    monkeypatch.setattr(session, "trial_slots", lambda spec: slots)
    spec = RunSpec(tasks=("ee_gamma",), models=("resnet15",), cpus_per_trial=cpus, gpus_per_trial=gpus, repeats=repeats)
    assert final.seed_cpus(spec) == pytest.approx(expected)
