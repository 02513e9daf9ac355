"""The comparisons of ``bench perf`` that go through ``bench run``'s own machinery (``runner.search``,
without publishing to a board): runner cost (2) and memory (4). See :mod:`benchmark.perf`."""
from __future__ import annotations

import gc
import math
import os
import sys
import time
from pathlib import Path


from benchmark import records
from benchmark.perf.common import log, prepared_splits
from benchmark.perf.report import Comparison
from benchmark.tasks import Sizes

MiB = 2**20


def _run_search(spec) -> tuple[records.SearchResult, tuple[records.TrialRecord, ...]]:
    """``runner.search(spec)`` for its one (task, model): the search's result and its trials."""
    from benchmark.search import runner

    result = runner.search(spec)
    return result, records.StudyDir.of(spec.runs_dir / spec.name, result.task, result.model).read_trials()


def _spec(root: Path, name: str, **kwargs):
    from benchmark.search import runner

    return runner.RunSpec(source="synthetic", name=name, data_root=root / "data", runs_dir=root / "runs",
                          argv=("bench", "perf"), **kwargs)


def runner_cost(*, trials: int, n: int, root: Path, rounds: int = 2) -> Comparison:
    """N trials of naive_bayes on summary features (milliseconds each): bench run vs the hand-written Ray
    Tune + OptunaSearch script (:mod:`benchmark.perf.peer`), 1 and all CPUs' worth at a time, alternating;
    plain Optuna beside them (the cost of Ray Tune itself)."""
    import optuna
    from ray import tune

    from benchmark.devices import DevicePlan
    from benchmark.models import create_model, get_model_class
    from benchmark.perf.peer import tune_script
    from benchmark.search import session
    from benchmark.search_space import load_space

    model_name, task_name = "naive_bayes", "ee_gamma"
    task, train, val = prepared_splits(task_name, n, root / "data")
    space_file = root / "naive_bayes_features.yaml"
    space_file.write_text("var_smoothing: {type: float, low: 1.0e-12, high: 1.0e-3, log: true}\n"
                          "pool: {type: fixed, value: 0}\n")
    space = load_space(model_name, space_file, known_keys=get_model_class(model_name).default_config)

    def objective(trial):
        config = {**space.suggest(trial), **trial.params}
        model = create_model(model_name, task, config, seed=0, plan=DevicePlan(threads=1))
        aucs = []
        model.fit(train, val, report=lambda step, m: aucs.append(m["val_auc"]))
        return max(aucs)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log(f"runner: {trials} trials under plain optuna")
    optuna.create_study(direction="maximize").optimize(objective, n_trials=1)  # imports, first calls: start-up
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - t0
    done = sorted(t.datetime_complete for t in study.trials)
    per_optuna = (done[-1] - done[0]).total_seconds() / (trials - 1)
    optuna_row = {"setup": "plain optuna study.optimize (1 process, reference)", "concurrent": 1, "round": 1,
                  "wall_s": wall, "first_to_last_s": per_optuna * (trials - 1), "per_trial_ms": per_optuna * 1e3,
                  "best_val_auc": study.best_value}

    def bench(concurrency: int, r: int, default: bool) -> dict:
        result, recorded = _run_search(_spec(
            root, f"cost-{concurrency}-{r}", tasks=(task_name,), models=(model_name,), trials=trials,
            sizes=Sizes.total(n), seed=0, concurrency=None if default else concurrency,
            spaces={model_name: str(space_file)}))
        reported = sorted(c.reported_at for t in recorded for c in t.curve)
        return {"setup": f"bench run, {concurrency} at a time{' (default)' if default else ''}", "wall_s": result.search_wall_s,
                "first_to_last_s": reported[-1] - reported[0], "best_val_auc": result.val_auc}

    def script(concurrency: int, r: int, default: bool) -> dict:
        ran = tune_script(model_name, task, train, val, space={"var_smoothing": tune.loguniform(1e-12, 1e-3)},
                          fixed={"pool": 0}, trials=trials, concurrency=concurrency, cpus_per_trial=1.0,
                          storage=root / "peer", name=f"peer-{concurrency}-{r}")
        return {"setup": f"Ray Tune + OptunaSearch script, {concurrency} at a time", "wall_s": ran.wall_s, "first_to_last_s": ran.span_s,
                "best_val_auc": ran.best_val_auc}

    default = os.cpu_count() or 1  # what `bench run` picks on a local Ray with 1 CPU per trial
    session.init_ray(_spec(root, "cost", tasks=(task_name,), models=(model_name,)))  # both sides share it
    # this process already holds the earlier rows' objects; a user's driver does not: keep them out of the
    # garbage collector's passes, which both sides' per-trial allocations trigger
    gc.collect()
    gc.freeze()
    rows, best = [optuna_row], {}
    for concurrency in sorted({1, default}):
        for r in range(rounds):
            for side in ((script, bench) if r % 2 == 0 else (bench, script)):  # alternating: drift hits both
                log(f"runner: {trials} trials, {concurrency} at a time, {side.__name__} (round {r + 1}/{rounds})")
                row = side(concurrency, r, concurrency == default)
                row = {"setup": row.pop("setup"), "concurrent": concurrency, "round": r + 1, **row,
                       "per_trial_ms": row["first_to_last_s"] / (trials - 1) * 1e3}
                rows.append(row)
                key = (side.__name__, concurrency)
                best[key] = min(best.get(key, math.inf), row["per_trial_ms"])
    ratios = {c: best["bench", c] / best["script", c] for c in sorted({1, default})}
    for row in rows[1:]:
        row["vs_script_best"] = row["per_trial_ms"] / best["script", row["concurrent"]]
        row["vs_plain_optuna"] = row["per_trial_ms"] / (per_optuna * 1e3)
    worst = max(ratios.values())
    return Comparison(
        "runner", f"2. Runner cost: {trials} near-instant trials, bench run vs a Ray Tune + OptunaSearch script",
        tuple(rows), "; ".join(f"{c} at a time: {best['bench', c]:.0f} vs {best['script', c]:.0f} ms per trial = "
                               f"{ratios[c]:.2f}x" for c in ratios)
        + f" (plain Optuna, no Ray: {per_optuna * 1e3:.0f} ms)",
        "bench run at most 1.15x the script's time per trial, 1 and 2 at a time", worst <= 1.15,
        "Both sides run the same near-instant trials (naive_bayes on ee_gamma summary features, one epoch, "
        "TPE seed 0, 1 CPU per trial) on the same Ray instance. The script (`benchmark/perf/peer.py`) is what a "
        "user would otherwise write: a function trainable that builds the model and reports every epoch with "
        "`tune.report`, the data passed once by `tune.with_parameters`, `OptunaSearch`, `reuse_actors=True`. "
        "bench run adds its journal (every suggest and tell written to `optuna.journal`), trial log, progress "
        "line and records. Start-up is excluded on both sides by timing from the first result's arrival at the "
        "driver to the last one's: per trial = first_to_last_s / (N - 1); wall_s is the whole `tuner.fit()` "
        f"(Ray's actor start-up included). The objects this process made before (the earlier rows) are frozen "
        "out of the garbage collector's way first (`gc.freeze`), as a fresh driver has none. "
        f"{rounds} round(s) per side and concurrency, alternating which side goes "
        "first; the verdict takes each side's fastest round. vs_script_best: a row's time per trial over the "
        "script's fastest at the same concurrency. Plain Optuna (`study.optimize` in this process, study in "
        "memory) is the reference line: what Ray Tune itself costs per trial.")


MEMORY_SPACE = """\
# bench perf, memory: the same fixed trial, once alone and four times at once
lr:         {{type: fixed, value: 1.0e-3}}
batch_size: {{type: fixed, value: 128}}
width:      {{type: fixed, value: 8}}
blocks:     {{type: fixed, value: 1}}
patience:   {{type: fixed, value: {epochs}}}
epochs:     {{type: fixed, value: {epochs}}}
"""


def _runtime_footprint() -> int:
    """Anonymous memory of a fresh Python process once it has imported Ray Tune and the suite's models
    (torch), as every trial process does before it sees any data."""
    import subprocess

    code = ("import ray, ray.tune, benchmark.models.resnet; from benchmark.perf import procmem; import os; "
            "print(procmem.rollup(os.getpid())['Anonymous'])")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def memory(*, n: int, epochs: int, root: Path, concurrent: int = 4) -> Comparison:
    """Peak memory of 1 vs ``concurrent`` identical resnet15 trials on the same prepared hcal_dqm data,
    under bench run and under the hand-written Ray Tune + OptunaSearch script (:mod:`benchmark.perf.peer`)."""
    from ray import tune

    from benchmark import data
    from benchmark.perf import procmem
    from benchmark.perf.peer import tune_script
    from benchmark.models import create_model, get_model_class
    from benchmark.search_space import load_space
    from benchmark.tasks import get_task

    title = f"4. Memory: 1 vs {concurrent} concurrent trials on the same data, bench run vs a Ray Tune script"
    target = f"bench run's {concurrent} concurrent trials use at most 1.15x the memory of the script's"
    if not procmem.available():
        return Comparison("memory", title, (), "not measured: no /proc/<pid>/smaps_rollup on this system", target, None)
    task_name, model = "hcal_dqm", "resnet15"
    space_file = root / "resnet15_memory.yaml"
    space_file.write_text(MEMORY_SPACE.format(epochs=epochs))
    prepared = data.prepare(get_task(task_name), source=data.Source.SYNTHETIC, root=root / "data", seed=0, sizes=Sizes.total(n))
    shared = sum((prepared.path / s.value / f"{k}.npy").stat().st_size
                 for s in (data.Split.TRAIN, data.Split.VAL) for k in ("X", "y"))  # what a trial reads
    space = load_space(model, space_file, known_keys=get_model_class(model).default_config)
    config = {p.name: p.value for p in space.params}
    n_params = create_model(model, prepared.task, config).n_parameters()
    state = n_params * 4 * 4  # float32 weights, gradients and AdamW's two moments
    cpus = os.cpu_count() or 1
    cpus_per_trial = min(1.0, cpus / concurrent)  # room for all of them at once on this machine

    def bench(k: int) -> None:
        _run_search(_spec(root, f"memory-{k}", tasks=(task_name,), models=(model,), trials=k, concurrency=k,
                          cpus_per_trial=cpus_per_trial, max_epochs=epochs, sizes=Sizes.total(n), seed=0,
                          spaces={model: str(space_file)}))

    def script(k: int) -> None:  # the same fixed config: a one-value choice keeps OptunaSearch in the loop
        tune_script(model, prepared.task, prepared.split(data.Split.TRAIN), prepared.split(data.Split.VAL),
                    space={"lr": tune.choice([config["lr"]])}, fixed=config, trials=k, concurrency=k,
                    cpus_per_trial=cpus_per_trial, storage=root / "peer", name=f"memory-{k}")

    rows, memories = [], {}
    for k in (1, concurrent):
        for side, label in ((bench, "bench run"), (script, "Ray Tune + OptunaSearch script")):
            log(f"memory: {k} concurrent trial(s), {label}")
            with procmem.GroupSampler(lambda t: t.startswith("ray::ImplicitFunc")) as sampler:
                side(k)
            peak = sampler.peak
            memories[side.__name__, k] = peak.anonymous + shared
            per = [r.get("Anonymous", 0) for r in peak.per_process]
            rows.append({"setup": label, "trials_at_once": k, "processes_seen": peak.max_processes,
                         "anonymous_MiB": peak.anonymous / MiB,
                         "per_trial_anonymous_MiB": " / ".join(f"{a / MiB:.0f}" for a in per),
                         "shared_data_MiB": shared / MiB, "memory_MiB": memories[side.__name__, k] / MiB,
                         "sum_rss_MiB": peak.rss / MiB, "sum_pss_MiB": peak.pss / MiB})
    runtime = _runtime_footprint()
    one, many = memories["bench", 1], memories["bench", concurrent]
    peer = memories["script", concurrent]
    ratio = many / peer
    anon = {k: memories["bench", k] - shared for k in (1, concurrent)}
    limit = 1.5 * one + concurrent * state  # the earlier target, kept as a reference line
    # M_k = A_k + D: A_4 + D <= 1.5 (A_1 + D) + 4 S holds once D >= 2 (A_4 - 1.5 A_1 - 4 S)
    break_even = max(0.0, 2 * (anon[concurrent] - 1.5 * anon[1] - concurrent * state))
    working = anon[1] - runtime - state
    return Comparison(
        "memory", title, tuple(rows),
        f"{concurrent} at a time: {many / MiB:.0f} vs {peer / MiB:.0f} MiB = {ratio:.2f}x "
        f"(1 at a time: {one / MiB:.0f} vs {memories['script', 1] / MiB:.0f} MiB)",
        target, ratio <= 1.15,
        f"Each trial: resnet15 (width 8, 1 block, batch 128, {n_params} parameters) for {epochs} epoch(s) on the "
        f"same prepared hcal_dqm splits ({n} synthetic samples; the train + validation images and labels a trial "
        f"reads are {shared / MiB:.0f} MiB), {cpus_per_trial:g} CPU per trial. bench run's trials open the "
        "prepared arrays with `np.load(mmap_mode='r')` (file-backed pages, shared); the script "
        "(`benchmark/perf/peer.py`) hands them to every trial through `tune.with_parameters`, i.e. Ray's "
        "shared-memory object store (shared too). Memory = the peak over time of the trial processes' summed "
        "anonymous memory (their heaps: runtime, model, optimiser, activations, batches, and any copy of the "
        "data) + the shared data counted once. A sum of RSS (sum_rss_MiB) counts the shared data and libraries "
        "once per process; PSS splits shared pages between the processes mapping them. Reference line, the "
        f"earlier target: {concurrent} trials within 1.5x one trial plus their model states "
        f"(16 bytes x {n_params} parameters = {state / MiB:.2f} MiB each): limit {limit / MiB:.0f} MiB, "
        f"{'met' if many <= limit else 'missed'} ({many / MiB:.0f} MiB). Where one trial's memory goes: a Python "
        f"process that has imported Ray Tune and the suite's models (torch) holds {runtime / MiB:.0f} MiB of "
        f"anonymous memory before it sees any data; bench run's trial process holds {working / MiB:.0f} MiB more "
        "than that plus its model state (the Ray worker's machinery, training's working memory). Every "
        "concurrent trial, on either side, is its own Ray worker process and pays the runtime and working memory "
        f"again, so the reference target holds only once the shared data outweighs them: from about "
        f"{break_even / 2**30:.1f} GiB of data shared by the trials, with these measurements.")
