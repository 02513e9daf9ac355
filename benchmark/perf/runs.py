"""The comparisons of ``bench perf`` that go through ``bench run``'s own machinery (``runner.search``,
without publishing to a board): runner cost (2) and memory (4). See :mod:`benchmark.perf`."""
from __future__ import annotations

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


def runner_cost(*, trials: int, n: int, root: Path) -> Comparison:
    """N trials of naive_bayes on summary features (milliseconds each): bench run vs plain optuna."""
    import optuna

    from benchmark.devices import DevicePlan
    from benchmark.models import create_model, get_model_class
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
    span = (done[-1] - done[0]).total_seconds()
    per_optuna = span / (trials - 1)
    rows = [{"setup": "optuna study.optimize (1 process)", "trials": trials, "concurrent": 1, "wall_s": wall,
             "first_to_last_s": span, "per_trial_ms": per_optuna * 1e3, "ratio": 1.0,
             "best_val_auc": study.best_value}]
    default = os.cpu_count() or 1  # what `bench run` picks on a local Ray with 1 CPU per trial
    for concurrency in sorted({1, default}):
        log(f"runner: {trials} trials under bench run ({concurrency} at a time)")
        result, recorded = _run_search(_spec(
            root, f"cost-{concurrency}", tasks=(task_name,), models=(model_name,), trials=trials, sizes=Sizes.total(n),
            seed=0, concurrency=None if concurrency == default else concurrency, spaces={model_name: str(space_file)}))
        reported = sorted(c.reported_at for t in recorded for c in t.curve)
        span = reported[-1] - reported[0]
        rows.append({"setup": f"bench run, {concurrency} at a time{' (default)' if concurrency == default else ''}",
                     "trials": trials, "concurrent": concurrency, "wall_s": result.search_wall_s,
                     "first_to_last_s": span, "per_trial_ms": span / (trials - 1) * 1e3,
                     "ratio": span / (trials - 1) / per_optuna, "best_val_auc": result.val_auc})
    judged, one = rows[-1], rows[1]
    return Comparison(
        "runner", f"2. Runner cost: {trials} near-instant trials, bench run vs plain Optuna",
        tuple(rows), f"{judged['per_trial_ms']:.0f} vs {per_optuna * 1e3:.0f} ms per trial = {judged['ratio']:.2f}x "
        f"(bench run's default {judged['concurrent']} at a time; 1 at a time: {one['ratio']:.2f}x)",
        "at most 1.5x plain Optuna's wall time, Ray's start-up excluded", judged["ratio"] <= 1.5,
        "Both sides run naive_bayes on ee_gamma summary features with the same TPE sampler and seed; plain Optuna "
        "keeps its study in memory, as `study.optimize` does by default. Start-up is excluded on both sides by "
        "timing from the first trial's result to the last one's: per trial = first_to_last_s / (N - 1), where a "
        "result's time is when Optuna completes the trial or when bench run's driver receives it "
        "(the trial log's `reported_at`). What this leaves out on bench run's side is Ray's start-up (`ray.init`, the "
        "trial actors' processes and their imports) and the first trial; wall_s is the whole `tuner.fit()` "
        "(result.json `search_wall_s`), bench run's study written to its journal file as the trials run. "
        "With several trials at once, the span still includes the later actors' start-up, while "
        "the first actor already runs trials.")


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
    """Peak memory of 1 vs ``concurrent`` identical resnet15 trials on the same prepared hcal_dqm data."""
    from benchmark import data
    from benchmark.perf import procmem
    from benchmark.models import create_model, get_model_class
    from benchmark.search_space import load_space
    from benchmark.tasks import get_task

    title = f"4. Memory: 1 vs {concurrent} concurrent trials on the same data"
    target = f"{concurrent} concurrent trials use at most 1.5x the memory of one trial plus their model states"
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
    rows, memories = [], {}
    for k in (1, concurrent):
        log(f"memory: {k} concurrent trial(s)")
        spec = _spec(root, f"memory-{k}", tasks=(task_name,), models=(model,), trials=k, concurrency=k,
                     cpus_per_trial=cpus_per_trial, max_epochs=epochs, sizes=Sizes.total(n), seed=0,
                     spaces={model: str(space_file)})
        with procmem.GroupSampler(lambda t: t.startswith("ray::ImplicitFunc")) as sampler:
            _run_search(spec)
        peak = sampler.peak
        memories[k] = peak.anonymous + shared
        per = [r.get("Anonymous", 0) for r in peak.per_process]
        rows.append({"trials_at_once": k, "processes_seen": peak.max_processes,
                     "anonymous_MiB": peak.anonymous / MiB,
                     "per_trial_anonymous_MiB": " / ".join(f"{a / MiB:.0f}" for a in per),
                     "shared_data_MiB": shared / MiB, "memory_MiB": memories[k] / MiB,
                     "sum_rss_MiB": peak.rss / MiB, "sum_pss_MiB": peak.pss / MiB})
    runtime = _runtime_footprint()
    anon = {k: memories[k] - shared for k in memories}
    limit = 1.5 * memories[1] + concurrent * state
    ratio = memories[concurrent] / memories[1]
    # M_k = A_k + D: the target A_4 + D <= 1.5 (A_1 + D) + 4 S holds once D >= 2 (A_4 - 1.5 A_1 - 4 S)
    break_even = max(0.0, 2 * (anon[concurrent] - 1.5 * anon[1] - concurrent * state))
    working = anon[1] - runtime - state
    return Comparison(
        "memory", title, tuple(rows),
        f"{memories[concurrent] / MiB:.0f} vs {memories[1] / MiB:.0f} MiB = {ratio:.2f}x; limit 1.5 x "
        f"{memories[1] / MiB:.0f} + {concurrent} x {state / MiB:.1f} MiB of model state = {limit / MiB:.0f} MiB",
        target, memories[concurrent] <= limit,
        f"Each trial: resnet15 (width 8, 1 block, batch 128, {n_params} parameters) for {epochs} epoch(s) on the "
        f"same prepared hcal_dqm splits ({n} synthetic samples; the train + validation images and labels a trial "
        f"reads are {shared / MiB:.0f} MiB, memory-mapped read-only by every trial), {cpus_per_trial:g} CPU per "
        "trial, through `runner.run`. Memory = the peak over time of the trial processes' summed anonymous memory "
        "(their heaps: runtime, model, optimiser, activations, batches, and any copy of the data) + the shared "
        "data counted once, as the page cache holds it once. A sum of RSS (sum_rss_MiB) counts the shared data and "
        "libraries once per process; PSS splits shared pages between the processes mapping them. Model state = "
        f"weights + gradients + AdamW's two moments = 16 bytes x {n_params} parameters = {state / MiB:.2f} MiB per "
        "trial. Where one trial's memory goes: a Python process that has imported Ray Tune and the suite's models "
        f"(torch) holds {runtime / MiB:.0f} MiB of anonymous memory before it sees any "
        f"data; the trial process holds {working / MiB:.0f} MiB more than that plus its model state: the Ray "
        "worker's own machinery (core-worker threads, the Tune session) and training's working memory "
        "(activations of a 128-image batch, allocator caches). The prepared arrays are opened with "
        "`np.load(mmap_mode='r')`: their pages are file-backed and shared, not heap (only the batch being "
        "trained on is copied). Each "
        "concurrent trial is its own Ray worker process and pays the runtime and working memory "
        f"again, so the target holds only once the shared data outweighs them: from about "
        f"{break_even / 2**30:.1f} GiB of data shared by the trials, with these measurements.")
