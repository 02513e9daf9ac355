"""``bench export`` and its loader (benchmark.tables.tabular), from hand-written run directories (no Ray, no
training): the records are written with benchmark.records, so their schema is the runner's."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_cli import run_cli

from benchmark import records
from benchmark.tables import tabular
from benchmark.tables.page import tables_page
from benchmark.recipes import RECIPES
from benchmark.search_space import SPACES_DIR, load_space

TASK = "hcal_dqm"
MAX_EPOCHS = 3


def space_config(model: str, **values) -> dict:
    """A config the model's own search space could have sampled: each parameter's low end, first choice
    or fixed value (the fidelity at ``MAX_EPOCHS``, as ``bench run --max-epochs`` fixes it), then ``values``."""
    config: dict = {}
    for p in load_space(model).params:
        if all(config.get(k) in allowed for k, allowed in p.when.items()):
            config[p.name] = (p.value if p.type == "fixed" else p.choices[0] if p.type == "categorical"
                              else int(p.low) if p.type == "int" else p.low)
    if "epochs" in config:
        config["epochs"] = MAX_EPOCHS
    return {**config, **values}


def trial(trial_id: str, config: dict, aucs: list[float], *, status: str = "completed", neural: bool = True,
          error: str | None = None, seed: int = 0) -> records.TrialRecord:
    curve = tuple(records.Epoch(epoch=i + 1, val_auc=auc, wall_s=10.0 + i, reported_at=1.8e9 + 60 * i,
                                metrics={"train_loss": 1.0 / (i + 1), "val_loss": 2.0 / (i + 1)} if neural else {})
                  for i, auc in enumerate(aucs))
    return records.TrialRecord(trial_id=trial_id, status=status, config=config, seed=seed,
                               best_val_auc=max(aucs) if aucs else None, epochs=len(aucs) or None,
                               wall_s=sum(e.wall_s for e in curve) if curve else None,
                               precision="fp32" if neural else "native", error=error, curve=curve)


def write_run(run_dir: Path, models: tuple[str, ...], *, spaces: dict | None = None, **spec) -> None:
    run_dir.mkdir(parents=True)
    records.append_invocation(run_dir, records.Invocation(
        argv=("bench", "run", "--task", TASK, "--model", *models, "--name", run_dir.name),
        time="2026-12-01T10:00:00+0000", versions={"hepbench": "0.1.0", "numpy": "2.4.6"},
        hardware={"cpu": "test CPU", "cpus": 2, "gpus": 0},
        spec={"tasks": [TASK], "models": list(models), "max_epochs": MAX_EPOCHS, "precision": "auto",
              "spaces": spaces or {}, "seed": 0, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, **spec}))


def write_study(run_dir: Path, model: str, trials: list[records.TrialRecord], *, data_seed: int = 0,
                recipe: str | None = None, finished: bool = True, space: bool = True) -> Path:
    """One study directory as the runner leaves it: space.yaml (``space``), trials.json, then (``finished``)
    result.json."""
    study = run_dir / TASK / (model if recipe is None else f"{model}@{recipe}")
    study.mkdir(parents=True, exist_ok=True)
    if recipe is None and space:  # the space searched, as the runner keeps it (the fidelity fixed by --max-epochs)
        searched = load_space(model)
        searched.with_fixed(**({"epochs": MAX_EPOCHS} if "epochs" in searched.names() else {})).dump(study / records.SPACE)
    records.write_trials(study, trials)
    if not finished:
        return study
    done = [t for t in trials if t.best_val_auc is not None]
    best = max(done, key=lambda t: t.best_val_auc)
    test = records.TestMetrics((records.TestRun(seed=0, train_s=1.0, auc=0.8, auc_low=0.78, auc_high=0.82,
                                                accuracy=0.7, rej_at_eff50=10.0, rej_at_eff30=20.0),))
    records.write_result(study, records.SearchResult(
        task=TASK, model=model, source="synthetic",
        data={"files": None, "generator_version": f"{TASK}-1", "n_train": 560, "n_val": 120, "n_test": 120,
              "seed": data_seed, "split_sizes": {"train": 560, "val": 120, "test": 120}},
        sampler="tpe", scheduler="asha", seed=0,
        trials={s: sum(t.status == s for t in trials) for s in records.STATUSES}, best_trial=best.trial_id,
        best_config=best.config, val_auc=best.best_val_auc, test=test, n_parameters=100, search_wall_s=60.0,
        trial_time_s=sum(t.wall_s or 0 for t in trials), epochs_trained=sum(t.epochs or 0 for t in trials),
        resources_per_trial={"cpu": 1.0, "gpu": 0.0}, device="cpu", precision="fp32",
        finished="2026-12-01T11:00:00+0000", recipe=recipe))
    return study


def resnet_trials() -> list[records.TrialRecord]:
    return [trial("a", space_config("resnet15", lr=1e-3), [0.6, 0.7, 0.8]),
            trial("b", space_config("resnet15", lr=3e-3), [0.55], status="pruned"),
            trial("c", space_config("resnet15", lr=5e-3), [], status="failed", error="DivergedError: loss is nan")]


@pytest.fixture
def run1(tmp_path) -> Path:
    """resnet15 (3 epochs, 1 pruned after one, 1 failed before any), logreg (2 one-step trials), a reference
    recipe (2 epochs) and two unfinished searches: 9 rows of 6 trials."""
    run = tmp_path / "runs" / "r1"
    write_run(run, ("resnet15", "logreg", "svm", "vit"))
    write_study(run, "resnet15", resnet_trials())
    write_study(run, "logreg", [trial("l1", {"C": 1.0, "pool": 0}, [0.9], neural=False),
                                trial("l2", {"C": 0.1, "pool": 4}, [0.85], neural=False)])
    recipe = {**RECIPES["e2e-resnet15"].config, "epochs": 2, "patience": 2}
    write_study(run, "resnet15", [trial("recipe", recipe, [0.7, 0.75])], recipe="e2e-resnet15")
    write_study(run, "svm", [trial("s1", space_config("svm"), [0.8], neural=False)], finished=False)
    records.TrialLog(run / TASK / "vit").path.parent.mkdir(parents=True)
    records.TrialLog(run / TASK / "vit").step("v1", records.Epoch(epoch=1, val_auc=0.6))
    return run


def test_one_row_per_trial_and_epoch_with_config_columns_and_cumulative_time(run1, tmp_path, capsys):
    ((table, path),) = tabular.export([run1], tmp_path / "t.parquet")
    df, meta = tabular.load(path)
    assert path == tmp_path / "t.parquet" and len(df) == 9 and meta["trials"] == 6 and meta["rows"] == 9
    per_trial = df.groupby(list(tabular.TRIAL)).size().to_dict()
    assert per_trial == {("r1", "resnet15", "a"): 3, ("r1", "resnet15", "b"): 1, ("r1", "resnet15", "c"): 1,
                         ("r1", "logreg", "l1"): 1, ("r1", "logreg", "l2"): 1,
                         ("r1", "resnet15@e2e-resnet15", "recipe"): 2}
    a = df[df.trial_id == "a"]
    assert a.epoch.tolist() == [1, 2, 3] and a.val_auc.tolist() == [0.6, 0.7, 0.8]
    assert a.wall_s.tolist() == [10.0, 11.0, 12.0] and a.cum_wall_s.tolist() == [10.0, 21.0, 33.0]
    assert a.train_loss.tolist() == [1.0, 0.5, 1 / 3] and (a["config.lr"] == 1e-3).all()
    assert (a["config.epochs"] == MAX_EPOCHS).all() and a["config.C"].isna().all()
    failed = df[df.trial_id == "c"].iloc[0]
    assert failed.status == "failed" and pd.isna(failed.epoch) and pd.isna(failed.val_auc)
    assert failed.error == "DivergedError: loss is nan" and failed["config.lr"] == 5e-3
    logreg = df[df.study == "logreg"]
    assert logreg.epoch.tolist() == [1, 1] and logreg["config.C"].tolist() == [1.0, 0.1]
    assert logreg["config.pool"].tolist() == [0, 4] and logreg.train_loss.isna().all()
    assert (logreg.precision == "native").all() and logreg["config.lr"].isna().all()
    recipe = df[df.recipe == "e2e-resnet15"]
    assert set(recipe.model) == {"resnet15"} and set(recipe["config.lr_schedule"]) == {"constant"}
    assert df[df.study != "resnet15@e2e-resnet15"].recipe.isna().all()
    # the board's keys: its data hash, its training rows
    result = records.read_result(run1 / TASK / "resnet15")
    assert (df.data_hash == records.data_hash(result.data)).all() and (df.n_train == 560).all()
    columns = df.columns.tolist()  # who and what, then the config, the fidelity, the objective, metrics, times
    assert columns[:3] == ["run", "task", "study"] and columns[-3:] == ["wall_s", "cum_wall_s", "reported_at"]
    assert columns.index("error") < columns.index("config.lr") < columns.index("epoch") < columns.index("val_auc") \
        < columns.index("train_loss")
    assert tabular.metric_columns(df) == ["train_loss", "val_loss"] == meta["metric_columns"]
    assert tabular.config_columns(logreg) == ["config.C", "config.pool"]
    err = capsys.readouterr().err
    assert "skipping" in err and str(run1 / TASK / "svm") in err and str(run1 / TASK / "vit") in err


def test_metadata_has_the_space_as_declared_the_fidelity_versions_and_hardware(run1, tmp_path):
    ((_, path),) = tabular.export([run1], tmp_path / "t.parquet")
    meta = json.loads(tabular.metadata_path(path).read_text())
    assert meta == tabular.load(path)[1] and tabular.metadata_path(path).name == "t.parquet.meta.json"
    assert meta["schema_version"] == tabular.SCHEMA_VERSION and meta["format"] == "parquet"
    assert meta["objective"] == {"column": "val_auc", "mode": "max"} and meta["fidelity_column"] == "epoch"
    assert (meta["task"], meta["source"], meta["n_train"]) == (TASK, "synthetic", [560])
    assert set(meta["studies"]) == {"resnet15", "logreg", "resnet15@e2e-resnet15"}
    res = meta["studies"]["resnet15"]
    assert res["fidelity"] == {"name": "epochs", "column": "epoch", "config_column": "config.epochs", "min": 1,
                               "max": MAX_EPOCHS}
    (space,) = res["spaces"]
    assert space["runs"] == ["r1"]
    declared = yaml.safe_load((SPACES_DIR / "resnet15.yaml").read_text())
    assert list(space["params"]) == list(declared)
    for name, spec in declared.items():  # every field of the YAML, numbers parsed; log written out when false
        if name == "epochs":  # as the run fixed it
            assert space["params"][name] == {"type": "fixed", "value": MAX_EPOCHS}
            continue
        assert {k: v for k, v in space["params"][name].items() if not (k == "log" and v is False)} == \
               {k: float(v) if k in ("low", "high") else v for k, v in spec.items()}
    assert meta["studies"]["logreg"]["fidelity"]["name"] is None and meta["studies"]["logreg"]["fidelity"]["max"] == 1
    recipe = meta["studies"]["resnet15@e2e-resnet15"]
    assert recipe["recipe"] == "e2e-resnet15" and recipe["spaces"][0]["params"] is None
    (inv,) = meta["runs"]["r1"]["invocations"]
    assert inv["versions"]["hepbench"] == "0.1.0" and inv["hardware"]["cpus"] == 2 and inv["spec"]["max_epochs"] == 3
    assert meta["columns"]["epoch"] == "Int64" and meta["columns"]["config.lr"] == "float64"


def test_a_study_that_kept_no_space_says_so(tmp_path):
    run = tmp_path / "r1"
    write_run(run, ("logreg",))
    write_study(run, "logreg", [trial("l1", {"C": 1.0, "pool": 0}, [0.9], neural=False)], space=False)
    ((table, _),) = tabular.export([run], tmp_path / "t.parquet")
    (space,) = table.metadata["studies"]["logreg"]["spaces"]
    assert space["params"] is None and "not recorded" in space["note"]


def test_runs_of_the_same_data_merge_and_different_data_never_do(run1, tmp_path, capsys):
    same = tmp_path / "runs" / "r2"
    write_run(same, ("resnet15",))
    write_study(same, "resnet15", [trial("a", space_config("resnet15", lr=1e-3), [0.65, 0.75], seed=1)])
    other = tmp_path / "runs" / "r3"
    write_run(other, ("resnet15",))
    write_study(other, "resnet15", [trial("x", space_config("resnet15"), [0.5])], data_seed=1)

    ((table, path),) = tabular.export([run1, same], tmp_path / "merged.parquet")
    df, meta = tabular.load(path)
    assert sorted(df.run.unique()) == ["r1", "r2"] and len(df) == 9 + 2 and meta["trials"] == 7
    assert meta["studies"]["resnet15"]["runs"] == ["r1", "r2"] and len(meta["studies"]["resnet15"]["spaces"]) == 1
    assert set(meta["runs"]) == {"r1", "r2"}
    # one config, two runs with their own seeds: lookup gives both curves
    curve = tabular.lookup(df, space_config("resnet15", lr=1e-3))
    assert curve.run.tolist() == ["r1"] * 3 + ["r2"] * 2 and curve.seed.tolist() == [0, 0, 0, 1, 1]

    written = tabular.export([run1, same, other], tmp_path / "all.parquet")
    assert len(written) == 2 and not (tmp_path / "all.parquet").exists()
    hashes = {t.data_hash for t, _ in written}
    assert {p.name for _, p in written} == {f"all-{TASK}-{h[:12]}.parquet" for h in hashes}
    for t, p in written:
        df, meta = tabular.load(p)
        assert df.data_hash.unique().tolist() == [t.data_hash] == [meta["data_hash"]]
        assert sorted(df.run.unique()) == (["r3"] if meta["trials"] == 1 else ["r1", "r2"])


def test_csv_keeps_the_types_and_mixed_kind_values_round_trip(run1, tmp_path):
    write_study(run1, "xgboost", [trial("x1", {"pool": 0, "max_depth": 3}, [0.7], neural=False),
                                  trial("x2", {"pool": "auto", "max_depth": 4}, [0.8], neural=False)])
    ((_, parquet),) = tabular.export([run1], tmp_path / "t.parquet")
    ((table, csv),) = tabular.export([run1], tmp_path / "t.csv")
    assert table.metadata["json_columns"] == ["config.pool"]
    from_csv, meta = tabular.load(csv)
    from_parquet, _ = tabular.load(parquet)
    assert meta["format"] == "csv" and csv.read_text().startswith("run,task,study,")
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_csv[from_csv.study == "xgboost"]["config.pool"].tolist() == [0, "auto"]
    assert tabular.lookup(from_csv, {"pool": "auto", "max_depth": 4}).trial_id.tolist() == ["x2"]


def test_lookup_is_the_tabular_benchmarks_objective(run1, tmp_path):
    ((_, path),) = tabular.export([run1], tmp_path / "t.parquet")
    df, _ = tabular.load(path)
    res = df[df.study == "resnet15"]
    row = res[res.trial_id == "a"].iloc[0]
    curve = tabular.lookup(res, row[tabular.config_columns(res)])
    assert curve.set_index("epoch")[tabular.OBJECTIVE].to_dict() == {1: 0.6, 2: 0.7, 3: 0.8}
    assert tabular.lookup(df, {"C": 0.1, "pool": 4}).trial_id.tolist() == ["l2"]
    assert tabular.lookup(df, {"C": 0.1}).empty  # pool is not empty in that row
    assert res.groupby("epoch")[tabular.OBJECTIVE].max().to_dict() == {1: 0.6, 2: 0.7, 3: 0.8}
    with pytest.raises(KeyError, match="config.nope"):
        tabular.lookup(df, {"nope": 1})


def test_cli_export_writes_the_table_and_says_what(run1, tmp_path, capsys):
    out = tmp_path / "exports" / "hcal.csv"
    code, stdout, err = run_cli(capsys, "export", str(run1), "--out", str(out))
    assert code == 0 and out.is_file() and tabular.metadata_path(out).is_file()
    assert stdout.startswith(f"{out}: 9 rows, 6 trials of 3 studies from 1 run(s); {TASK}, synthetic data")
    assert "note: skipping" in err
    assert tabular.load(out)[1]["format"] == "csv"  # from the suffix
    code, _, _ = run_cli(capsys, "export", str(run1), "--out", str(tmp_path / "t.data"), "--format", "parquet")
    assert code == 0 and tabular.load(tmp_path / "t.data")[1]["format"] == "parquet"


@pytest.mark.parametrize("case, message", [
    ("missing", "no run directory"),
    ("empty", "nothing to export"),
    ("out_is_dir", "is a directory"),
    ("same_name", "two run directories named 'r1'"),
])
def test_cli_export_errors_are_one_line(run1, tmp_path, capsys, case, message):
    argv = {"missing": [str(tmp_path / "nope")], "empty": [str(tmp_path)],
            "same_name": [str(run1), str(tmp_path / "elsewhere" / "r1")]}.get(case, [str(run1)])
    (tmp_path / "elsewhere" / "r1").mkdir(parents=True)
    out = tmp_path if case == "out_is_dir" else tmp_path / "t.parquet"
    code, _, err = run_cli(capsys, "export", *argv, "--out", str(out))
    assert code == 2 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_syne_tune_replays_the_table_as_a_blackbox(tmp_path, monkeypatch):
    """The export as syne-tune's offline blackbox (HPOBench's objective(config, fidelity, seed)): every
    recorded value comes back; over the fully trained configs, a nearest-neighbour surrogate and syne-tune's
    simulator replay an ASHA search from the table alone."""
    pytest.importorskip("syne_tune.blackbox_repository")
    import numpy as np
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune import config_space as cs
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import BlackboxOffline, UserBlackboxBackend, add_surrogate
    from syne_tune.optimizer.baselines import ASHA

    run = tmp_path / "runs" / "r1"
    write_run(run, ("resnet15",))
    curves = {"a": (1e-3, [0.6, 0.7, 0.8]), "d": (2e-3, [0.5, 0.65, 0.9]), "b": (3e-3, [0.55])}
    write_study(run, "resnet15", [trial(t, space_config("resnet15", lr=lr), aucs, status="completed" if len(aucs) == 3
                                        else "pruned") for t, (lr, aucs) in curves.items()])
    ((_, path),) = tabular.export([run], tmp_path / "t.parquet")
    df, meta = tabular.load(path)
    (space,) = meta["studies"]["resnet15"]["spaces"]
    fidelity = meta["studies"]["resnet15"]["fidelity"]
    domains = {"float": lambda p: (cs.loguniform if p["log"] else cs.uniform)(p["low"], p["high"]),
               "int": lambda p: (cs.lograndint if p["log"] else cs.randint)(int(p["low"]), int(p["high"])),
               "categorical": lambda p: cs.choice(p["choices"]), "fixed": lambda p: p["value"]}
    config_space = {k: domains[p["type"]](p) for k, p in space["params"].items()}  # fixed values included
    epochs = np.arange(fidelity["min"], fidelity["max"] + 1)

    class Offline(BlackboxOffline):  # with the fidelities the simulator walks through
        fidelity_values = property(lambda self: epochs)

    def blackbox(rows: pd.DataFrame) -> Offline:
        table = rows.rename(columns=lambda c: c.removeprefix(tabular.CONFIG))
        table = table.astype({k: "int64" for k in config_space if table[k].dtype == "Int64"} | {"epoch": "int64"})
        return Offline(table[[*config_space, "epoch", "seed", "val_auc", "cum_wall_s"]], config_space,
                       fidelity_space={"epoch": cs.randint(fidelity["min"], fidelity["max"])},
                       objectives_names=["val_auc", "cum_wall_s"], seed_col="seed")

    every = blackbox(df)
    config = space_config("resnet15", lr=3e-3)  # trial b's (syne-tune adds the seed to the dict it is given)
    assert every.objective_function(dict(config), fidelity={"epoch": 1}, seed=0) == {"val_auc": 0.55,
                                                                                      "cum_wall_s": 10.0}
    full = df[df.groupby(list(tabular.TRIAL)).epoch.transform("max") == fidelity["max"]]  # a grid: no stopped trials
    surrogate = add_surrogate(blackbox(full))
    lr_a = space_config("resnet15", lr=1e-3)
    assert surrogate.objective_function(lr_a, fidelity={"epoch": 3}, seed=0)["val_auc"] == pytest.approx(0.8)

    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))
    tuner = Tuner(trial_backend=UserBlackboxBackend(blackbox=surrogate, elapsed_time_attr="cum_wall_s"),
                  scheduler=ASHA(config_space, metric="val_auc", do_minimize=False, time_attr="epoch",
                                 max_t=fidelity["max"], random_seed=0),
                  stop_criterion=StoppingCriterion(max_num_trials_started=6), n_workers=2, sleep_time=0,
                  callbacks=[SimulatorCallback()], save_tuner=False, print_update_interval=1e9)
    tuner.run()
    replayed = pd.read_csv(Path(tuner.tuner_path) / "results.csv.zip")
    def points(rows: pd.DataFrame) -> set:
        return {(int(e), round(v, 9)) for e, v in zip(rows.epoch, rows.val_auc)}

    assert replayed.trial_id.nunique() == 6 and points(replayed) <= points(full)  # every value a recorded one


def test_the_tables_page_is_written_from_the_tables_and_their_metadata(tmp_path):
    run = tmp_path / "runs" / "rec"
    write_run(run, ("resnet15", "logreg"))
    write_study(run, "resnet15", [trial("a", space_config("resnet15", lr=1e-3), [0.6, 0.7, 0.8]),
                                  trial("b", space_config("resnet15", lr=3e-3), [0.5, 0.6, 0.55]),
                                  trial("c", space_config("resnet15", lr=5e-3), [], status="failed")])
    write_study(run, "logreg", [trial("l1", {"C": 1.0, "pool": 0}, [0.9], neural=False),
                                trial("l2", {"C": 0.1, "pool": 4}, [0.85], neural=False)])
    ((_, path),) = tabular.export([run], tmp_path / "tables" / "t.parquet")
    meta = json.loads(tabular.metadata_path(path).read_text())
    assert meta["studies"]["resnet15"]["searches"] == [{"run": "rec", "search_wall_s": 60.0, "val_auc": 0.8, "test_auc": 0.8}]
    page = tables_page(tmp_path / "tables")
    assert " ".join(meta["runs"]["rec"]["invocations"][0]["argv"]) in page  # the command that recorded it
    assert "Live searches" not in page
    tabular.export([run], tmp_path / "tables" / "live" / "l.parquet")  # a live search: its own section
    live = tables_page(tmp_path / "tables").split("## Live searches")[1]
    assert "| l.parquet | resnet15 | rec | 1.0 min | 0.8000 | 0.8000 |" in live and "bench run --task" in live
    rows = {line.split(" | ")[1]: line.split(" | ")[2:10] for line in page.splitlines() if line.startswith("| t.parquet |")}
    # training rows, configs with full curves, failed, epochs, best and median final val AUC, search wall time
    assert rows == {"resnet15": ["560", "2", "1", "3", "0.8000", "0.7000", "1.0 min", rows["resnet15"][7]],
                    "logreg": ["560", "2", "0", "1", "0.9000", "0.8750", "1.0 min", rows["logreg"][7]]}
