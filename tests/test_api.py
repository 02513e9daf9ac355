"""The recorded tables as benchmarks (benchmark.tables.api): names, spaces, exact answers from the table,
flagged surrogate answers, seed noise, bad input, and an Optuna study with a pruner against a blackbox."""
from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
from test_tabular import space_config, trial, write_run, write_study

from benchmark.errors import BenchError
from benchmark.tables import api, tabular

NAME = "atlas_topo/mlp"  # a committed table's blackbox


@pytest.fixture(scope="module")
def bench():
    return api.load(NAME)


def test_names_and_load_with_close_matches():
    assert NAME in api.names() and "hcal_dqm/xgboost" in api.names()
    with pytest.raises(BenchError, match="did you mean 'atlas_topo/mlp'"):
        api.load("atlas_topo/mpl")
    with pytest.raises(BenchError, match="no tables folder"):
        api.names("no/such/folder")


def test_a_recorded_configuration_answers_exactly_what_the_table_holds(bench):
    frame, _ = tabular.load(bench.path)
    config = bench.configs[5]
    fixed = {p.name: p.value for p in bench.space.params if p.type == "fixed"}
    rows = tabular.lookup(frame[frame.study == "mlp"], {**fixed, **config})
    assert rows.trial_id.nunique() == 1
    for epoch in (1, 4, 8):
        a = bench(config, epoch)
        row = rows[rows.epoch == epoch].iloc[0]
        assert a.recorded and a.surrogate is None and a.epoch == epoch and a.seed == 0
        assert a.metrics["val_auc"] == row.val_auc and a.metrics["val_loss"] == row.val_loss
        assert a.metrics["best_val_auc"] == rows[rows.epoch <= epoch].val_auc.max()
        assert a.metrics["cum_wall_s"] == pytest.approx(rows[rows.epoch <= epoch].wall_s.sum())
    assert set(bench.objectives) >= {"val_auc", "train_loss", "val_loss", "wall_s", "cum_wall_s"}
    assert bench.objectives["val_auc"] == "max" and bench.objectives["val_loss"] == "min"


def test_any_other_configuration_is_the_surrogates_flagged_and_the_same_every_time(bench):
    config = {**bench.configs[0], "lr": 0.00123}
    a, b = bench(config), bench(config)
    assert not a.recorded and a.surrogate in ("knn", "forest") and a == b
    assert 0.5 < a.metrics["val_auc"] <= 1 and a.metrics["cum_wall_s"] > 0


@pytest.mark.parametrize("config, epoch, message", [
    ({"learning_rate": 1e-3}, 8, "'learning_rate' is not a parameter"),
    ({"lr": 5.0}, 8, "lr=5.0 is outside the space"),
    (None, 0, "epoch 0 is outside the fidelity range 1..8"),
    (None, 9, "outside the fidelity range"),
    ([1, 2], 8, "a configuration is a mapping"),
])
def test_bad_input_says_what_is_outside(bench, config, epoch, message):
    config = bench.configs[0] if config is None else config if not isinstance(config, dict) else {**bench.configs[0], **config}
    with pytest.raises(BenchError, match=message):
        bench(config, epoch)


def test_the_spaces_as_optuna_distributions_and_configspace(bench):
    dist = bench.distributions()
    declared = bench.space.declared()
    assert set(dist) == {k for k, v in declared.items() if v["type"] != "fixed"}
    assert dist["lr"].log and dist["lr"].low == declared["lr"]["low"]
    CS = pytest.importorskip("ConfigSpace")
    cs = bench.configspace()
    assert set(cs) == set(dist) and cs["lr"].log
    sample = dict(cs.sample_configuration())
    assert bench(sample).metrics["val_auc"] > 0.5  # a ConfigSpace sample is a configuration of the blackbox


def test_seed_none_draws_the_recorded_seeds_with_the_callers_random_state(tmp_path):
    configs = [space_config("resnet15", lr=10 ** -(2 + i / 20)) for i in range(12)]
    base = [trial(f"t{i:02d}", c, [0.6 + 0.01 * i, 0.62 + 0.01 * i, 0.63 + 0.01 * i]) for i, c in enumerate(configs)]
    again = [trial(f"s{i:02d}", c, [0.5, 0.5, 0.5 + 0.01 * i], seed=1) for i, c in enumerate(configs[:3])]
    for name, trials in (("table", base), ("table-seed1", again)):
        write_run(tmp_path / name, ("resnet15",))
        write_study(tmp_path / name, "resnet15", trials)
    tabular.export([tmp_path / "table", tmp_path / "table-seed1"], tmp_path / "tables" / "t.parquet")
    bench = api.load("hcal_dqm/resnet15", tables=tmp_path / "tables")
    searched = {k: v for k, v in configs[1].items() if k in bench.distributions()}
    assert bench.recorded_seeds(searched) == [0, 1]
    assert bench(searched, seed=1).metrics["val_auc"] == pytest.approx(0.51)
    drawn = {bench(searched, seed=None, rng=np.random.default_rng(k)).seed for k in range(20)}
    assert drawn == {0, 1}
    same = [bench(searched, seed=None, rng=np.random.default_rng(3)) for _ in range(2)]
    assert same[0] == same[1]
    with pytest.raises(BenchError, match="seed 2 is not recorded"):
        bench(searched, seed=2)
    with pytest.raises(BenchError, match="pass rng"):
        bench(searched, seed=None)


def test_an_optuna_study_with_a_pruner_runs_against_a_blackbox_without_ray(bench):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.SuccessiveHalvingPruner())
    study.optimize(api.optuna_objective(bench), n_trials=30)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) > 0 and states.count(optuna.trial.TrialState.COMPLETE) > 0
    assert 0.5 < study.best_value <= bench.blackbox.finals.max() + 0.02
    assert all(t.user_attrs["cum_wall_s"] > 0 for t in study.trials)
    again = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.SuccessiveHalvingPruner())
    again.optimize(api.optuna_objective(bench), n_trials=30)
    assert [t.value for t in again.trials] == [t.value for t in study.trials]  # seeded: the same study


def test_the_modules_example_runs():
    import doctest

    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0


def test_syne_tunes_asha_runs_against_a_blackbox_in_its_simulator(bench, tmp_path, monkeypatch):
    pytest.importorskip("syne_tune.blackbox_repository")
    import pandas as pd
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend
    from syne_tune.optimizer.baselines import ASHA

    offline = bench.syne_tune(surrogate=False)
    config = {**{p.name: p.value for p in bench.space.params if p.type == "fixed"}, **bench.configs[3]}
    assert offline.objective_function(dict(config), fidelity={"epoch": 4}, seed=0)["val_auc"] == bench(config, 4).metrics["val_auc"]
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))
    box = bench.syne_tune()
    tuner = Tuner(trial_backend=UserBlackboxBackend(blackbox=box, elapsed_time_attr="cum_wall_s"),
                  scheduler=ASHA(box.configuration_space, metric="val_auc", do_minimize=False, time_attr="epoch",
                                 max_t=bench.fidelity.high, random_seed=0),
                  stop_criterion=StoppingCriterion(max_num_trials_started=12), n_workers=2, sleep_time=0,
                  callbacks=[SimulatorCallback()], save_tuner=False, print_update_interval=1e9)
    tuner.run()
    results = pd.read_csv(tmp_path.joinpath("syne-tune").glob("**/results.csv.zip").__next__())
    assert results.trial_id.nunique() >= 10 and results.epoch.max() == bench.fidelity.high  # the last may not report
    assert results.epoch.groupby(results.trial_id).max().min() < bench.fidelity.high  # ASHA stopped some early
    assert 0.5 < results.val_auc.max() <= 1.0


def test_carps_runs_its_own_optimizers_on_a_blackbox(bench):
    pytest.importorskip("carps")
    import types

    from carps.optimizers.optuna import OptunaOptimizer
    from carps.optimizers.random_search import RandomSearchOptimizer

    task = api.carps_task(bench, n_trials=15, multi_fidelity=False)
    random = RandomSearchOptimizer(task)
    incumbent = random.run()
    assert len(random.history) == 15
    costs = [value.cost for _, value in random.history]
    assert all(0 <= c < 0.5 for c in costs) and min(costs) == pytest.approx(1 - max(
        v.additional_info["best_val_auc"] for _, v in random.history))
    assert incumbent is not None
    tpe = OptunaOptimizer(api.carps_task(bench, n_trials=15, multi_fidelity=False),
                          types.SimpleNamespace(study={"sampler": optuna.samplers.TPESampler(seed=0)}))
    tpe.run()
    assert len(tpe.solver.trials) == 15 and 0 <= tpe.solver.best_value < 0.5


def test_a_table_without_its_metadata_or_of_another_schema_is_refused(tmp_path, bench):
    import json
    import shutil

    shutil.copy(bench.path, tmp_path / "t.parquet")
    with pytest.raises(BenchError, match="has no metadata"):
        api.names(tmp_path)
    meta = json.loads(bench.path.with_name(bench.path.name + ".meta.json").read_text())
    (tmp_path / "t.parquet.meta.json").write_text(json.dumps({**meta, "schema_version": 99}))
    api._index.cache_clear()
    with pytest.raises(BenchError, match="export schema 99"):
        api.load(NAME, tmp_path)
