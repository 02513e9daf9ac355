"""What the recorded tables carry beyond the objective: per-epoch background rejection, every trial's
measured costs (``bench run --costs``), and the options that record them (``--points``, ``--train-seed``,
``--fix``): checked on the units here, end to end through ``bench run`` and ``bench export`` (slow)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_bad_input import assert_one_clean_line, bench

from benchmark import metrics
from benchmark.data import Sizes, Source, Split, prepare
from benchmark.devices import DevicePlan
from benchmark.models import create_model
from benchmark import costs as cost_module
from benchmark.tasks import get_task


def test_rejections_are_the_background_rejection_at_each_efficiency():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y
    got = metrics.rejections(y, s, "val_")
    assert set(got) == {f"val_{k}" for k in metrics.REJECTION_EFFICIENCIES}
    for key, eff in metrics.REJECTION_EFFICIENCIES.items():
        assert got[f"val_{key}"] == pytest.approx(metrics.background_rejection(y, s, eff))
    assert got["val_rej_at_eff30"] > got["val_rej_at_eff50"] > 1  # a looser cut lets more background in
    perfect = metrics.rejections(y, y.astype(float))
    assert all(math.isinf(v) for v in perfect.values())  # no background passes: too few rows to measure it


def _splits(tmp_path, task="atlas_topo", n=200):
    p = prepare(get_task(task), source=Source.SYNTHETIC, root=tmp_path, seed=0, sizes=Sizes.total(n))
    return p.task, p.split(Split.TRAIN), p.split(Split.VAL)


def test_every_epoch_of_a_neural_model_reports_its_rejection_on_validation(tmp_path):
    task, train, val = _splits(tmp_path)
    model = create_model("mlp", task, {"hidden": "16", "epochs": 1, "batch_size": 32}, plan=DevicePlan(threads=1))
    seen = []
    model.fit(train, val, report=lambda epoch, m: seen.append(m))
    assert len(seen) == 1 and set(model.curve_keys) <= set(seen[0])
    expected = metrics.rejections(np.asarray(val.y), model.score(val), "val_")
    for key, value in expected.items():
        assert seen[0][key] == pytest.approx(value, rel=1e-5)


def test_costs_count_what_the_network_computes_and_time_it(tmp_path):
    task = get_task("atlas_topo")
    plan = DevicePlan(threads=1)
    narrow = cost_module.measure(create_model("resnet15", task, {"width": 8, "blocks": 1}, plan=plan))
    wide = cost_module.measure(create_model("resnet15", task, {"width": 16, "blocks": 1}, plan=plan))
    assert set(narrow) == set(cost_module.KEYS)
    model = create_model("resnet15", task, {"width": 8, "blocks": 1})
    assert narrow["cost.parameters"] == sum(p.numel() for p in model.build_net().parameters())
    # convolutions dominate: twice the width is about four times the multiply-adds, forward and backward
    assert 3 < wide["cost.train_flops_per_sample"] / narrow["cost.train_flops_per_sample"] < 4.5
    assert all(narrow[f"cost.latency_b{b}_s"] > 0 for b in cost_module.BATCHES)
    assert "(1 thread)" in narrow["cost.device"]
    # an MLP's forward is its matrix products: 2 x in x out per layer and sample; training adds the backward
    mlp = create_model("mlp", task, {"hidden": "16"}, plan=plan)
    forward = 2 * (int(np.prod(mlp.input_shape)) * 16 + 16 * 1)
    flops = cost_module.measure(mlp)["cost.train_flops_per_sample"]
    assert 2 * forward <= flops <= 3 * forward
    assert cost_module.measure(create_model("logreg", task, {})) == {}  # no network to time


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    return ["--runs-dir", str(tmp_path / "runs"), "--leaderboard-dir", str(tmp_path / "board")]


@pytest.mark.parametrize("points, extra, message", [
    ([{"lr": 1e-3, "colour": 1}], (), "'colour', not a searched parameter"),
    ([{"lr": 5.0}], (), "lr=5.0 is outside the space"),
    ([{"dropout": 0.1}], (), "it has no lr"),
    ([{"lr": 1e-3}] * 3, ("--trials", "2"), "pass --trials 3 or more"),
    ([{"lr": 1e-3}], ("--model", "logreg"), "configs of one model"),
    ({"lr": 1e-3}, (), "non-empty JSON list"),
])
def test_bad_points_are_one_line(capsys, tmp_path, env, points, extra, message):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
                     "dropout: {type: float, low: 0.0, high: 0.5}\n")
    path = tmp_path / "points.json"
    path.write_text(json.dumps(points))
    code, err = bench(capsys, "run", "--task", "atlas_topo", "--model", "mlp", *extra, "--space", f"mlp={space}",
                      "--points", str(path), *env)
    assert_one_clean_line(code, err, message)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (("--fix", "patience"), "write KEY=VALUE"),
    (("--fix", "colour=3"), "no model of this run has a config key 'colour'"),
    (("--fix", "patience=0"), "patience"),
    (("--train-seed", "-1"), "must be an integer from 0"),
    (("--points", "no-such-file.json"), "cannot read it"),
])
def test_bad_recording_options_are_one_line(capsys, env, argv, message):
    code, err = bench(capsys, "run", "--task", "atlas_topo", "--model", "mlp", *argv, *env)
    assert_one_clean_line(code, err, message)


@pytest.mark.slow
def test_a_recording_run_keeps_its_points_seed_fixed_values_and_costs(tmp_path, env):
    import subprocess
    import sys

    from benchmark import records
    from benchmark.tables import tabular

    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\nbatch_size: {type: fixed, value: 64}\n"
                     "width: {type: int, low: 8, high: 16, step: 8}\nblocks: {type: fixed, value: 1}\n"
                     "patience: {type: fixed, value: 1}\nepochs: {type: fixed, value: 30}\n")
    points = [{"lr": 2e-3, "width": 8}, {"lr": 5e-3, "width": 16}]
    (tmp_path / "points.json").write_text(json.dumps(points))
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--task", "atlas_topo", "--model", "resnet15", "--trials", "2",
           "--max-epochs", "3", "--scheduler", "none", "--n-train", "140", "--n-val", "60", "--n-test", "60",
           "--space", f"resnet15={space}", "--points", str(tmp_path / "points.json"), "--train-seed", "7",
           "--fix", "patience=3", "--costs", "--name", "rec", *env]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    study = records.StudyDir.of(tmp_path / "runs" / "rec", "atlas_topo", "resnet15")
    trials = sorted(study.read_trials(), key=lambda t: t.trial_id)
    tried = sorted(({k: t.config[k] for k in ("lr", "width")} for t in trials), key=lambda c: c["lr"])
    assert tried == points  # --points: each config once (Optuna pops its queue in an order of its own)
    assert all(t.seed == 7 for t in trials)  # --train-seed; the data keep --seed's
    assert all(t.config["patience"] == 3 and t.epochs == 3 for t in trials)  # --fix: no early stop in 3 epochs
    assert all(set(t.costs) == set(cost_module.KEYS) for t in trials)
    by_width = {t.config["width"]: t.costs for t in trials}
    assert by_width[16]["cost.parameters"] > by_width[8]["cost.parameters"]
    assert all(set(c.metrics) >= {"val_rej_at_eff30", "val_rej_at_eff50"} for t in trials for c in t.curve)
    tabular.export([tmp_path / "runs" / "rec"], tmp_path / "t.parquet")
    frame, meta = tabular.load(tmp_path / "t.parquet")
    assert meta["cost_columns"] == list(cost_module.KEYS) and meta["schema_version"] == tabular.SCHEMA_VERSION
    assert "val_rej_at_eff50" in meta["metric_columns"] and not set(meta["cost_columns"]) & set(meta["metric_columns"])
    assert len(frame) == 6 and (frame.seed == 7).all()
    per_trial = frame.groupby("trial_id")["cost.parameters"].nunique()
    assert (per_trial == 1).all()  # one value per trial, on each of its rows


def test_the_repeated_points_are_the_first_completed_configs_of_the_table_search(tmp_path):
    from test_tabular import TASK, space_config, trial, write_run, write_study

    from benchmark.errors import BenchError
    from benchmark.tables import record

    run = tmp_path / "table-x"
    write_run(run, ("resnet15",))
    trials = [trial(f"t{i}", space_config("resnet15", lr=1e-3 * (1 + i)), [0.6, 0.7, 0.8]) for i in range(5)]
    trials[1] = trial("t1", space_config("resnet15", lr=9e-3), [], status="failed", error="DivergedError: nan")
    write_study(run, "resnet15", trials)
    points = record.first_points(run, TASK, "resnet15", 3)
    assert [p["lr"] for p in points] == [1e-3, 3e-3, 4e-3]  # t0, t2, t3: the failed t1 is not repeated
    assert "epochs" not in points[0] and "lr" in points[0]  # the searched parameters only
    with pytest.raises(BenchError, match="4 completed trials, fewer than the 5"):
        record.first_points(run, TASK, "resnet15", 5)
