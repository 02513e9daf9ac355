"""The leaderboard and its figures, from hand-written run directories (no Ray, no training)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import multiprocessing
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import records
from benchmark.publish import leaderboard, plots
from benchmark.cli import main
from benchmark.errors import BenchError
from benchmark.tasks import get_task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_study(runs: Path, run_id: str, task: str, model: str, *, val_auc: float, test_auc: float,
                source: str = "synthetic", data_seed: int = 0, repeats: int = 1, cpus: float = 2.0,
                trial_time_s: float = 7200.0, argv: tuple[str, ...] | None = None, recipe: str | None = None) -> Path:
    """One study directory as ``benchmark.search.runner`` leaves it (through ``benchmark.records``, as the
    runner writes it), plus (or extending) its run.json."""
    study = runs / run_id / task / (model if recipe is None else f"{model}@{recipe}")
    study.mkdir(parents=True, exist_ok=True)
    if source == "real":
        data = {"files": {"b.npy": {"path": "/d/b.npy", "sha256": "bb" * 32},
                          "a.npy": {"path": "/d/a.npy", "sha256": "aa" * 32}},
                "generator_version": None, "n_train": None, "n_val": None, "n_test": None, "seed": data_seed,
                "split_sizes": {"test": 120}}
    else:
        data = {"files": None, "generator_version": f"{task}-1", "n_train": 560, "n_val": 120, "n_test": 120,
                "seed": data_seed, "split_sizes": {"train": 560, "val": 120, "test": 120}}
    runs_ = tuple(records.TestRun(seed=i, train_s=1.0, auc=test_auc - 0.01 * i, auc_low=test_auc - 0.013 - 0.01 * i,
                                  auc_high=test_auc + 0.013 - 0.01 * i, accuracy=0.7, rej_at_eff50=12.5,
                                  rej_at_eff30=float("inf")) for i in range(repeats))
    result = records.SearchResult(
        task=task, model=model, source=source, data=data, sampler="tpe", scheduler="asha", seed=data_seed,
        trials={"completed": 3, "pruned": 1, "failed": 0}, best_trial="t1", best_config={"lr": 0.001, "width": 8},
        val_auc=val_auc, test=records.TestMetrics(runs_), n_parameters=1234, search_wall_s=60.0,
        trial_time_s=trial_time_s, epochs_trained=12, resources_per_trial={"cpu": cpus, "gpu": 0.0}, device="cpu",
        precision="fp32", finished="2026-11-22T16:10:00+0000", recipe=recipe)
    records.write_result(study, result)
    rng = np.random.default_rng(zlib.crc32(f"{run_id}{task}{model}".encode()))
    y = np.r_[np.zeros(60), np.ones(60)].astype(np.int8)
    np.savez(study / "roc.npz", y=y, score=(y * 1.5 + rng.normal(size=120)).astype(np.float32),
             aux=np.zeros((120, 1), np.float32))
    if model in ("vae", "beta_vae"):
        shape = (8, *get_task(task).image_shape)
        original = rng.random(shape, dtype=np.float32)
        np.savez(study / "recon.npz", original=original, reconstructed=original * 0.8,
                 y=np.array([0, 0, 0, 0, 1, 1, 1, 1], np.int8))
    records.append_invocation(runs / run_id, records.Invocation(
        argv=tuple(argv or ("/venv/bin/bench", "run", "--task", task, "--model", model, "--name", run_id)),
        time="2026-11-22T16:00:00+0000", versions={"hepbench": "0.1.0"}, hardware={"cpus": 2, "gpus": 0},
        spec={"tasks": [task], "models": [model], "cpus_per_trial": cpus, "gpus_per_trial": 0.0}))
    return study


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_schema_column_order_and_values(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r1", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.81, cpus=2.0, trial_time_s=7200.0)
    write_study(runs, "r1", "hcal_dqm", "logreg", val_auc=0.9, test_auc=0.95, source="real")
    leaderboard.update(runs, out)
    expected = ("schema_version", "task", "model", "recipe", "source", "data_hash", "n_train", "test_auc", "auc_low",
                "auc_high", "accuracy", "rej_at_eff50", "rej_at_eff30", "auc_mean", "auc_std", "auc_median", "auc_min",
                "auc_max", "repeats", "epochs", "converged", "recon_corr", "val_auc",
                "trials_completed", "trials_pruned", "trials_failed", "sampler", "scheduler", "search_wall_s",
                "cpu_hours", "gpu_hours", "device", "precision", "n_parameters", "best_config", "seed", "package_version", "date",
                "run_id", "command", "protocol")
    assert leaderboard.COLUMNS == expected and leaderboard.SCHEMA_VERSION == 3
    frame = pd.read_csv(out / "leaderboard.csv")
    assert tuple(frame.columns) == expected and (frame["schema_version"] == 3).all()
    eg, hcal = read_csv(out / "leaderboard.csv")
    assert (eg["task"], eg["model"], eg["source"], eg["run_id"]) == ("ee_gamma", "resnet15", "synthetic", "r1")
    assert eg["data_hash"] == hashlib.sha256(b"ee_gamma-1|val 120|test 120|0").hexdigest()  # not the training size
    assert (eg["n_train"], eg["converged"], eg["recipe"]) == ("560", "", "")
    assert hcal["data_hash"] == hashlib.sha256(("aa" * 32 + "bb" * 32 + "|0").encode()).hexdigest()  # by file name
    assert float(eg["cpu_hours"]) == pytest.approx(4.0) and float(eg["gpu_hours"]) == 0.0  # 2 h x 2 CPUs
    assert float(eg["rej_at_eff30"]) == float("inf") and json.loads(eg["best_config"]) == {"lr": 0.001, "width": 8}
    assert eg["command"] == "bench run --task ee_gamma --model resnet15 --name r1"
    assert (eg["package_version"], eg["date"], eg["repeats"]) == ("0.1.0", "2026-11-22", "1")
    assert (eg["device"], eg["precision"]) == ("cpu", "fp32")
    # the CSV round-trips (compared as text: NaN cells, such as a classical row's epochs, are not == themselves)
    assert leaderboard.format_csv(leaderboard.load(out)) == leaderboard.format_csv(leaderboard.collect(runs))
    assert "| cpu fp32 |" in (out / "leaderboard.md").read_text()


def test_a_schema_1_board_is_read_with_device_and_precision_derived(tmp_path):
    """The board published before the precision column: read, not discarded, when a run merges into it."""
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r1", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.81)
    write_study(runs, "r1", "ee_gamma", "logreg", val_auc=0.7, test_auc=0.75)
    leaderboard.update(runs, out)
    frame = pd.read_csv(out / "leaderboard.csv", dtype=str, keep_default_na=False)
    frame = frame.drop(columns=["device", "precision", *leaderboard._ADDED_IN_3]).assign(schema_version="1")
    frame.loc[frame["model"] == "resnet15", "gpu_hours"] = "0.5"  # it ran on a GPU
    frame.to_csv(out / "leaderboard.csv", index=False)
    rows = {r.model: r for r in leaderboard.load(out)}
    assert (rows["resnet15"].device, rows["resnet15"].precision) == ("cuda", "bf16")  # what schema 1's code did
    assert (rows["logreg"].device, rows["logreg"].precision) == ("cpu", "native")


def test_rows_follow_task_order_then_test_auc_descending(tmp_path):
    runs = tmp_path / "runs"
    for model, auc in (("logreg", 0.70), ("xgboost", 0.90), ("vit", 0.80)):
        write_study(runs, "a", "hcal_dqm", model, val_auc=0.5, test_auc=auc)
    write_study(runs, "b", "ee_gamma", "svm", val_auc=0.5, test_auc=0.60)
    rows = leaderboard.collect(runs)
    assert [(r.task, r.model) for r in rows] == [("ee_gamma", "svm"), ("hcal_dqm", "xgboost"),
                                                 ("hcal_dqm", "vit"), ("hcal_dqm", "logreg")]


def test_the_best_run_is_chosen_by_validation_auc_not_test_auc(tmp_path):
    runs = tmp_path / "runs"
    write_study(runs, "lucky", "ee_gamma", "svm", val_auc=0.70, test_auc=0.95)
    write_study(runs, "best-val", "ee_gamma", "svm", val_auc=0.80, test_auc=0.75)
    write_study(runs, "other-data", "ee_gamma", "svm", val_auc=0.60, test_auc=0.60, data_seed=1)
    rows = leaderboard.collect(runs)
    assert sorted(r.run_id for r in rows) == ["best-val", "other-data"]  # one row per data hash


def test_on_a_tie_the_row_with_more_seeds_wins(tmp_path):
    """A user's one-seed run that ties the published three-seed row's validation AUC does not replace it."""
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "published", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.80, repeats=3)
    leaderboard.update(runs, out)
    shutil.rmtree(runs)  # the published board's run directories are not shipped
    write_study(runs, "zz-newer", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.75, repeats=1)
    (row,) = leaderboard.update(runs, out)
    assert (row.run_id, row.repeats) == ("published", 3)
    write_study(runs, "zz-better", "ee_gamma", "resnet15", val_auc=0.81, test_auc=0.75, repeats=1)
    assert [r.run_id for r in leaderboard.update(runs, out)] == ["zz-better"]  # validation decides first


def test_an_update_naming_its_runs_merges_those_alone(tmp_path):
    """What ``bench run`` does: a board gets the rows of the run that names it, not of every run beside it."""
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "board-run", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.80, repeats=3)
    write_study(runs, "table-run", "ee_gamma", "xgboost", val_auc=0.9, test_auc=0.90)
    assert [r.run_id for r in leaderboard.update(runs, out, runs=["board-run"])] == ["board-run"]
    assert [r.run_id for r in leaderboard.update(runs, out, runs=[])] == ["board-run"]  # no run: the board as it was
    assert sorted(r.run_id for r in leaderboard.update(runs, out)) == ["board-run", "table-run"]


def test_markdown_marks_literature_and_shows_pictures_and_commands(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r1", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.812, repeats=3)
    write_study(runs, "r1", "ee_gamma", "vae", val_auc=0.6, test_auc=0.6)
    leaderboard.update(runs, out)
    md = (out / "leaderboard.md").read_text()
    assert "## ee_gamma" in md and "0.812 [0.799, 0.826]" in md  # interval rounded outwards
    assert "0.802 [0.792, 0.812] (3)" in md  # median [min, max] over the three seeds
    assert md.index("| 1 | resnet15") < md.index("| 2 | vae")
    literature = [line for line in md.splitlines() if "ResNet-15" in line]
    assert len(literature) == 1 and "(literature, not produced here)" in literature[0]
    assert "| 0.810 |" in literature[0] and "| 0.740 |" in literature[0]  # AUC and accuracy columns
    assert "![ROC](roc_ee_gamma.png)" in md and "![reconstructions](recon_ee_gamma.png)" in md
    assert "bench run --task ee_gamma --model resnet15 --name r1" in md


def test_markdown_names_the_rows_whose_interval_misses_the_boards_bar(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r1", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.812)  # +/- 0.013 (the helper's)
    write_study(runs, "r1", "hcal_dqm", "xgboost", val_auc=0.99, test_auc=0.995)  # as wide, but AUC >= 0.99
    leaderboard.update(runs, out)
    ee, hcal = (out / "leaderboard.md").read_text().split("## hcal_dqm")
    assert "Test AUC intervals wider than the board's ±0.01 (where AUC < 0.99): resnet15 ±0.0130." in ee
    assert "intervals wider" not in hcal
    assert "below its reference recipe" not in ee


def test_markdown_says_where_a_tuned_row_is_below_its_reference_recipe(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r1", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.75, repeats=3)  # median 0.74
    write_study(runs, "r1", "ee_gamma", "resnet15", val_auc=0.8, test_auc=0.76, recipe="e2e-resnet15")  # [0.747, 0.773]
    write_study(runs, "r1", "ee_gamma", "vae", val_auc=0.6, test_auc=0.6)
    write_study(runs, "r1", "ee_gamma", "vae", val_auc=0.6, test_auc=0.61, recipe="ae-vae-lr3e-4")  # 0.600 is inside
    leaderboard.update(runs, out)
    md = (out / "leaderboard.md").read_text()
    assert ("Tuned below its reference recipe (the median over seeds under the recipe's interval): resnet15 0.740 "
            "against resnet15 · recipe e2e-resnet15 (untuned) 0.760 [0.747, 0.773].") in md


def test_table_format_is_aligned_text(tmp_path):
    runs = tmp_path / "runs"
    write_study(runs, "r1", "hcal_dqm", "naive_bayes", val_auc=0.8, test_auc=0.9)
    text = leaderboard.format_table(leaderboard.collect(runs))
    lines = text.splitlines()
    assert lines[0].startswith("hcal_dqm: ") and "naive_bayes" in text
    assert "ViT (literature)" in text and "ViT (literature, not produced here): ML4Sci" in text
    assert set(lines[2]) <= {"-", " "}  # the rule under the header
    assert lines[1].index("test AUC") == lines[3].index("0.900 [")


def _concurrent_worker(runs: str, out: str, i: int, barrier) -> None:
    write_study(Path(runs), f"run{i}", "hcal_dqm", "logreg", val_auc=0.8, test_auc=0.8 + i / 100, data_seed=i)
    barrier.wait()  # all update at once: the lock must serialise them
    leaderboard.update(Path(runs), Path(out))


@pytest.mark.timeout(120)
def test_concurrent_updates_from_several_processes_lose_no_rows(tmp_path):
    runs, out, n = tmp_path / "runs", tmp_path / "board", 5
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_concurrent_worker, args=(str(runs), str(out), i, barrier)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=100)
    assert [p.exitcode for p in procs] == [0] * n
    rows = read_csv(out / "leaderboard.csv")
    assert sorted(r["run_id"] for r in rows) == [f"run{i}" for i in range(n)]  # none lost, none twice
    assert len(pd.read_csv(out / "leaderboard.csv")) == n
    assert sum("| logreg |" in line for line in (out / "leaderboard.md").read_text().splitlines()) == n
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # every write was replaced into place


def test_rebuild_starts_from_scratch(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "keep", "hcal_dqm", "svm", val_auc=0.8, test_auc=0.8)
    gone = write_study(runs, "gone", "ee_gamma", "svm", val_auc=0.8, test_auc=0.8)
    leaderboard.update(runs, out)
    assert (out / "roc_ee_gamma.png").is_file()
    for path in gone.parent.parent.rglob("*"):
        if path.is_file():
            path.unlink()
    leaderboard.update(runs, out)
    assert sorted(r["run_id"] for r in read_csv(out / "leaderboard.csv")) == ["gone", "keep"]  # an update merges
    assert (out / "roc_ee_gamma.png").is_file()  # redrawn from the board's own arrays
    leaderboard.rebuild(runs, out)
    assert [r["run_id"] for r in read_csv(out / "leaderboard.csv")] == ["keep"]
    assert sorted(p.name for p in out.glob("*.png")) == ["roc_hcal_dqm.png"]
    assert [p.parent.name for p in (out / "arrays").rglob("*.npz")] == ["hcal_dqm"]


def test_a_published_board_survives_local_runs(tmp_path):
    """The committed board has no run directories: local runs merge into it, key by key, by val AUC."""
    published, local, out = tmp_path / "published", tmp_path / "local", tmp_path / "board"
    write_study(published, "pub", "ee_gamma", "resnet15", val_auc=0.80, test_auc=0.80)
    write_study(published, "pub", "ee_gamma", "vae", val_auc=0.60, test_auc=0.60)
    leaderboard.update(published, out)
    write_study(local, "mine", "ee_gamma", "svm", val_auc=0.70, test_auc=0.70)          # a new key: added
    write_study(local, "mine", "ee_gamma", "resnet15", val_auc=0.75, test_auc=0.90)     # worse on val: ignored
    write_study(local, "mine", "ee_gamma", "vae", val_auc=0.65, test_auc=0.50)          # better on val: replaces
    rows = leaderboard.update(local, out)
    assert {(r.model, r.run_id) for r in rows} == {("resnet15", "pub"), ("svm", "mine"), ("vae", "mine")}
    assert leaderboard.format_csv(leaderboard.load(out)) == leaderboard.format_csv(rows)
    assert sorted(p.name for p in (out / "arrays" / "ee_gamma").iterdir()) == sorted(
        leaderboard.arrays_path(out, r).name for r in rows)
    with np.load(leaderboard.arrays_path(out, rows[0])) as a:
        with np.load(published / "pub" / "ee_gamma" / "resnet15" / "roc.npz") as roc:
            np.testing.assert_array_equal(a["score"], roc["score"])  # the published row's own curve
    assert _is_png(out / "roc_ee_gamma.png") and _is_png(out / "recon_ee_gamma.png")


def test_unfinished_and_malformed_results_are_skipped_with_one_line_warnings(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_study(runs, "ok", "hcal_dqm", "svm", val_auc=0.8, test_auc=0.8)
    (runs / "running" / "hcal_dqm" / "vit").mkdir(parents=True)  # no result.json yet: silently ignored
    bad_json = write_study(runs, "cut", "hcal_dqm", "logreg", val_auc=0.8, test_auc=0.8) / "result.json"
    bad_json.write_text(bad_json.read_text()[:40])
    no_key = write_study(runs, "old", "hcal_dqm", "xgboost", val_auc=0.8, test_auc=0.8) / "result.json"
    no_key.write_text(json.dumps({k: v for k, v in json.loads(no_key.read_text()).items() if k != "val_auc"}))
    rows = leaderboard.collect(runs)
    assert [r.run_id for r in rows] == ["ok"]
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("bench: warning: skipping ") for w in warnings)
    assert "cut" in warnings[0] and "JSONDecodeError" in warnings[0] and "'val_auc'" in warnings[1]


def test_unreadable_arrays_or_csv_never_crash_an_update(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "board"
    study = write_study(runs, "r", "hcal_dqm", "svm", val_auc=0.8, test_auc=0.8)
    leaderboard.update(runs, out)
    assert (out / "roc_hcal_dqm.png").is_file()
    (study / "roc.npz").write_bytes(b"not a zip")
    assert [r.model for r in leaderboard.update(runs, out)] == ["svm"]  # the row stays, its curve goes
    assert "ROC / reconstruction arrays unreadable" in capsys.readouterr().err
    assert not (out / "roc_hcal_dqm.png").exists() and "![ROC]" not in (out / "leaderboard.md").read_text()
    text = (out / "leaderboard.csv").read_text()
    (out / "leaderboard.csv").write_text(text.replace(",svm,", ",svm,extra,"))
    with pytest.raises(BenchError, match="--rebuild"):
        leaderboard.load(out)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_roc_and_reconstruction_figures_are_png_files(tmp_path):
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(100), np.ones(100)]
    curves = {"good": (y, 2 * y + rng.normal(size=200)), "perfect": (y, y.copy()), "random": (y, rng.random(200))}
    assert _is_png(plots.roc_figure(get_task("quark_gluon"), curves, tmp_path / "roc.png"))
    task = get_task("atlas_topo")
    images = rng.random((10, *task.image_shape), dtype=np.float32)
    labels = np.array([0] * 5 + [1] * 5)
    images[:, 3] = 0.0  # an empty layer
    means = {"mean_0": images[:5].mean(0), "mean_1": images[5:].mean(0)}
    recon = {"vae": {"original": images, "reconstructed": images * 0.5, "y": labels, **means},
             "beta_vae": {"original": images + 1, "reconstructed": images, "y": labels}}  # other originals
    assert _is_png(plots.recon_figure(task, recon, tmp_path / "recon.png"))
    rows, _, with_means = plots._recon_rows(recon, per_class=3)
    assert with_means and [len(images) for _, images in rows] == [8, 8, 8, 8]  # 3 + 3 examples, 2 class means
    np.testing.assert_allclose(rows[0][1][6], means["mean_0"])
    assert np.isnan(rows[1][1][6:]).all()  # the class means stand in the original row only
    assert not list(tmp_path.glob(".*tmp*"))
    # a VAE that saw the image 2x-pooled: its rows drawn on the finer grid, each pixel over 2x2 cells
    pooled = images.reshape(10, *task.image_shape[:2], task.image_shape[2] // 2, 2).mean(-1)[:, :, ::2]
    recon["pooled"] = {"original": pooled, "reconstructed": pooled, "y": labels}
    assert _is_png(plots.recon_figure(task, recon, tmp_path / "recon2.png"))
    rows, _, with_means = plots._recon_rows(recon, per_class=3)
    assert with_means and {images.shape for _, images in rows} == {(8, *task.image_shape)}
    np.testing.assert_array_equal(rows[-1][1][0, :, 2:4, 2:4], np.broadcast_to(pooled[0, :, 1:2, 1:2], (task.image_shape[0], 2, 2)))
    cells = np.arange(2 * 3 * 4 * 8, dtype=float).reshape(2, 3, 4, 8)  # rows, columns, H, W
    strips, centres = plots._strips(cells)
    assert strips.shape == (2, 4, 3 * 9 - 1) and np.isnan(strips[:, :, 8]).all()  # one NaN gap column
    assert strips[0, 0, 9] == cells[0, 1, 0, 0] and strips[1, 3, 16] == cells[1, 1, 3, 7]  # unscaled: one norm per channel
    assert list(centres) == [3.5, 12.5, 21.5]


def test_the_hep_view_passes_through_the_tabled_rejections():
    from benchmark.metrics import background_rejection, roc_curve

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(y + rng.normal(size=500), 1)  # ties: horizontal and vertical ROC runs
    eff = np.array([0.05, 0.3, 0.5, 0.77, 1.0])
    fpr, tpr, _ = roc_curve(y, s)
    expected = [background_rejection(y, s, e) for e in eff]
    assert np.allclose(plots._rejection(fpr, tpr, eff), np.where(np.isinf(expected), np.nan, expected), equal_nan=True)


def test_update_draws_every_task_picture(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r", "ee_gamma", "beta_vae", val_auc=0.6, test_auc=0.6)
    write_study(runs, "r", "ee_gamma", "xgboost", val_auc=0.6, test_auc=0.7)
    write_study(runs, "r", "hcal_dqm", "xgboost", val_auc=0.6, test_auc=0.7)
    leaderboard.update(runs, out)
    assert all(_is_png(out / name) for name in ("roc_ee_gamma.png", "recon_ee_gamma.png", "roc_hcal_dqm.png"))
    assert not (out / "recon_hcal_dqm.png").exists()


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_leaderboard_csv_and_task_filter(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "board"
    write_study(runs, "r", "ee_gamma", "svm", val_auc=0.6, test_auc=0.7)
    write_study(runs, "r", "hcal_dqm", "svm", val_auc=0.6, test_auc=0.7)
    code, stdout, _ = run_cli(capsys, "leaderboard", "--rebuild", "--runs-dir", str(runs), "--out", str(out),
                              "--format", "csv")
    assert code == 0 and stdout == (out / "leaderboard.csv").read_text()
    assert [r["task"] for r in csv.DictReader(io.StringIO(stdout))] == ["ee_gamma", "hcal_dqm"]
    code, stdout, _ = run_cli(capsys, "leaderboard", "--out", str(out), "--format", "csv", "--task", "hcal_dqm")
    assert code == 0 and [r["task"] for r in csv.DictReader(io.StringIO(stdout))] == ["hcal_dqm"]
    code, stdout, _ = run_cli(capsys, "leaderboard", "--out", str(out), "--format", "markdown")
    assert code == 0 and "![ROC](roc_hcal_dqm.png)" in stdout
    code, stdout, _ = run_cli(capsys, "leaderboard", "--out", str(out))
    assert code == 0 and "svm" in stdout


@pytest.mark.parametrize("argv, message", [
    (("--task", "hcal_dq"), "unknown task 'hcal_dq' (did you mean 'hcal_dqm'?)"),
    ((), "no leaderboard in"),
    (("--rebuild", "--runs-dir", "no-such-dir"), "--rebuild: no runs directory no-such-dir"),
])
def test_cli_leaderboard_errors_are_one_line(tmp_path, capsys, argv, message):
    code, _, err = run_cli(capsys, "leaderboard", "--out", str(tmp_path / "none"), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bench_run_publishes_to_the_leaderboard_dir_after_the_search(tmp_path, capsys, monkeypatch):
    import benchmark.search.runner

    seen = {}
    monkeypatch.setattr(benchmark.search.runner, "run", lambda spec: seen.setdefault("spec", spec) and benchmark.search.runner.Outcome(
        tmp_path / "runs" / spec.name, ()))
    monkeypatch.setattr(leaderboard, "update", lambda runs_dir, out_dir, runs: seen.setdefault("board", (runs_dir, out_dir, runs)))
    code, _, _ = run_cli(capsys, "run", "--task", "hcal_dqm", "--model", "svm", "--runs-dir", str(tmp_path / "runs"),
                         "--leaderboard-dir", str(tmp_path / "lb"), "--name", "mine")
    assert code == 0 and seen["spec"].runs_dir == tmp_path / "runs"
    assert seen["board"] == (tmp_path / "runs", tmp_path / "lb", ["mine"])  # this run's rows alone


# A study directory as the first release wrote it (schema 1: no schema_version, trials.json a bare list).
SCHEMA_1_RESULT = {
    "task": "hcal_dqm", "model": "resnet15", "source": "synthetic",
    "data": {"files": None, "generator_version": "hcal_dqm-1", "n_samples": 800, "seed": 0,
             "split_sizes": {"train": 560, "val": 120, "test": 120}},
    "sampler": "tpe", "scheduler": "asha", "seed": 0, "trials": {"completed": 2, "pruned": 1, "failed": 0},
    "best_trial": "a_1", "best_config": {"lr": 0.001}, "val_auc": 0.9, "search_wall_s": 60.0, "trial_time_s": 3600.0,
    "resources_per_trial": {"cpu": 1.0, "gpu": 0.0}, "finished": "2026-11-20T10:00:00+0000", "n_parameters": 99,
    "test": {"seed": 0, "train_s": 1.0, "auc": 0.8, "auc_low": 0.75, "auc_high": 0.85, "accuracy": 0.7,
             "rej_at_eff50": 10.0, "rej_at_eff30": 20.0, "auc_mean": 0.8, "auc_std": 0.0,
             "repeats": [{"seed": 0, "train_s": 1.0, "auc": 0.8, "auc_low": 0.75, "auc_high": 0.85, "accuracy": 0.7,
                          "rej_at_eff50": 10.0, "rej_at_eff30": 20.0}]}}
SCHEMA_1_TRIAL = {"trial_id": "a_1", "status": "completed", "config": {"lr": 0.001}, "best_val_auc": 0.9, "epochs": 2,
                  "wall_s": 3.0, "node_id": "n", "hostname": "h", "retries": 0, "error": None,
                  "curve": [{"epoch": 1, "val_auc": 0.8, "train_loss": 0.6, "val_loss": 0.7, "time_this_iter_s": 1.5,
                             "node_id": "n", "reported_at": 1.0}]}


def test_schema_1_run_directories_still_read_and_other_schemas_say_how_to_rebuild(tmp_path):
    study = tmp_path / "runs" / "old" / "hcal_dqm" / "resnet15"
    study.mkdir(parents=True)
    (study / "result.json").write_text(json.dumps(SCHEMA_1_RESULT))
    (study / "trials.json").write_text(json.dumps([SCHEMA_1_TRIAL]))
    (study.parents[1] / "run.json").write_text(json.dumps({"name": "old", "invocations": [
        {"argv": ["bench", "run", "--task", "hcal_dqm"], "time": "2026-11-20T09:00:00+0000",
         "spec": {"tasks": ["hcal_dqm"], "models": ["resnet15"], "cpus_per_trial": 1.0, "gpus_per_trial": 0.0},
         "versions": {"hepbench": "0.1.0"}, "python": "3.11.7", "hardware": {"cpus": 2}}]}))
    result = records.read_result(study)
    assert (result.device, result.precision, result.epochs_trained) == ("cpu", "fp32", None)  # as schema 1 ran
    assert result.test.first.auc == 0.8 and result.test.auc_std == 0.0
    (trial,) = records.read_trials(study, seed=0)
    assert trial.curve[0].metrics == {"train_loss": 0.6, "val_loss": 0.7} and trial.curve[0].wall_s == 1.5
    (row,) = leaderboard.collect(tmp_path / "runs")
    assert row.test_auc == 0.8 and row.cpu_hours == 1.0 and row.command == "bench run --task hcal_dqm"
    # written again by this version, it reads back the same
    records.write_result(study, result)
    assert records.read_result(study) == result and json.loads((study / "result.json").read_text())["schema_version"] == 3
    (study / "result.json").write_text(json.dumps({**SCHEMA_1_RESULT, "schema_version": 99}))
    with pytest.raises(BenchError, match="schema 99.*reads schemas 1 to 3.*bench run"):
        records.read_result(study)
