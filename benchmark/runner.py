"""The Ray Tune runner: one Optuna search per (task, model), then one evaluation of the best on test.

This is the only module that imports Ray. Layout of a run directory::

    runs/<name>/run.json                       command, versions, hardware, spec (every invocation)
    runs/<name>/<task>/<model>/optuna.db       the Optuna study (optuna-dashboard), written when the search stops
                              /tune/           Ray Tune's experiment state (what --resume restores)
                              /trials.json     every trial: config, per-epoch curve, status, time, node
                              /result.json     best config, validation metric, test metrics (+ repeats)
                              /roc.npz         test labels, scores and aux variables of the best config (first seed)
                              /recon.npz       VAEs: a few test images and their reconstructions
                              /latent.npz      VAEs: the test set's posterior means and labels

With ``--storage`` Tune's experiment state goes there instead of ``tune/`` (a shared path or a cloud URI
for a cluster); every other file is written on the driver. Trial results reach the driver through Ray, so
a cluster needs no shared filesystem; trials keep their best weights in memory and write no checkpoints.
A trial whose node dies is retried from its start (``TRIAL_RETRIES`` times) on a node that is alive.

Trials read the prepared, memory-mapped splits from the node's data directory (``prepare`` reuses the
cache, and builds it once on a node that lacks it), so data is shared by the page cache, not copied.
The best trial is retrained with its config and seed (bit-identical on CPU) and K-1 more seeds for
``--repeats``, in a Ray task with the trial's resources: the test split is touched only there.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import platform
import re
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import data
from benchmark.errors import BenchError

METRIC = "best_val_auc"  # running maximum of val_auc: the models keep their best-epoch weights
# Retries of a failed trial (Tune's FailureConfig.max_failures), for lost nodes and actors. A config that
# fails by itself (diverged loss, out of memory) ends its trial as failed at once (see _trial); any other
# exception in a trial looks like a lost node to Tune and runs 1 + TRIAL_RETRIES times.
TRIAL_RETRIES = 2
CONNECT_TIMEOUT_S = 10  # ray.init retries an unreachable head for minutes: a plain TCP connect first


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A typed ``bench run``: built from the command line in ``benchmark.cli``, trusted here."""

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    trials: int = 20
    sampler: str = "tpe"
    scheduler: str = "asha"
    max_epochs: int = 10
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    source: str = "auto"
    n_samples: int | None = None
    seed: int = 0
    name: str = ""
    resume: bool = False
    repeats: int = 1
    address: str | None = None
    storage: str | None = None  # Tune's storage_path (a shared path or URI); None: the study dir on the driver
    data_root: Path = Path(".")
    runs_dir: Path = Path("runs")
    leaderboard_dir: Path = Path("leaderboard")
    spaces: Mapping[str, str] = dataclasses.field(default_factory=dict)
    verbose: bool = False
    argv: tuple[str, ...] = ()


def make_sampler(name: str, seed: int):
    import optuna

    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
                "gp": lambda: optuna.samplers.GPSampler(seed=seed),
                "qmc": lambda: optuna.samplers.QMCSampler(seed=seed)}
    return samplers[name]()


def resolve_source(task, spec: RunSpec) -> data.Source:
    if spec.source == "real":
        return data.Source.REAL
    if spec.source == "auto" and data.locate_real(task, spec.data_root) is not None:
        return data.Source.REAL
    if spec.source == "auto":
        print(f"NOTE {task.name}: no real files in {data.raw_dir(task, spec.data_root)}: using SYNTHETIC data "
              f"(`bench data fetch {task.name}` or --source real for the real set)", file=sys.stderr)
    return data.Source.SYNTHETIC


def run(spec: RunSpec) -> Path:
    """Run every (task, model) search of ``spec``; returns the run directory."""
    from benchmark.models import get_model_class
    from benchmark.search_space import load_space
    from benchmark.tasks import get_task

    run_dir = (spec.runs_dir / spec.name).resolve()
    if spec.resume and not (run_dir / "run.json").is_file():
        raise BenchError(f"--resume: no run named {spec.name!r} in {spec.runs_dir}")
    if not spec.resume and run_dir.exists():
        raise BenchError(f"run directory {run_dir} exists: pass --resume to continue it, or another --name")
    # validate everything before starting Ray, so bad input fails in a second, not after start-up
    tasks = [get_task(t) for t in spec.tasks]
    spaces = {m: load_space(m, spec.spaces.get(m), known_keys=get_model_class(m).default_config) for m in spec.models}
    data.make_dir(spec.data_root / "prepared")  # unwritable directories fail here, before Ray starts
    data.make_dir(spec.runs_dir, fix="pass a writable --runs-dir")
    _init_ray(spec)  # before the run directory exists: an unreachable cluster leaves nothing behind
    data.make_dir(run_dir, fix="pass a writable --runs-dir")
    _record_invocation(run_dir, spec)
    failed: list[str] = []
    for task in tasks:
        source = resolve_source(task, spec)
        prep = dict(task_name=task.name, source=source.value, root=str(spec.data_root), seed=spec.seed,
                    n_samples=spec.n_samples)
        prepared = _prepare(**prep, progress=True)
        prep["path"] = str(prepared.path)  # trials on this node open it directly (no re-hashing)
        for model in spec.models:
            study_dir = run_dir / task.name / model.replace(":", "_")
            if (study_dir / "result.json").is_file():
                print(f"{task.name} / {model}: already finished, kept", file=sys.stderr)
                continue
            try:
                _search(spec, task, model, spaces[model], prepared, prep, study_dir)
            except SearchFailed as e:  # the other searches go on; the run fails at the end
                print(f"bench: warning: {e}; going on with the other searches", file=sys.stderr)
                failed.append(str(e))
    from benchmark import leaderboard  # merged with the board, under a file lock

    try:
        leaderboard.update(spec.runs_dir, spec.leaderboard_dir)
    except OSError as e:  # the results are saved; only the board could not be written
        print(f"bench: warning: leaderboard not updated ({e}); run `bench leaderboard --rebuild` later",
              file=sys.stderr)
    if failed:
        raise SearchFailed("; ".join(failed))
    return run_dir


class SearchFailed(BenchError):
    """Every trial of a search failed: a clear message and exit code 2, after the other searches."""


def _prepare(*, task_name: str, source: str, root: str, seed: int, n_samples: int | None, progress: bool = False,
             path: str | None = None):
    """The prepared splits: opened at ``path`` when this node has them (the per-trial fast path),
    else prepared here once, a file lock keeping concurrent trials of the node from racing."""
    from filelock import FileLock

    from benchmark.tasks import get_task

    if path and (prepared := data.load_prepared(get_task(task_name), Path(path))) is not None:
        return prepared
    root_path = Path(root)
    lock_dir = root_path / "prepared"
    data.make_dir(lock_dir)
    with FileLock(str(lock_dir / f".{task_name}.lock")):
        return data.prepare(get_task(task_name), source=data.Source(source), root=root_path, seed=seed,
                            n_samples=n_samples, progress=progress)


def _search(spec: RunSpec, task, model: str, space, prepared, prep: dict, study_dir: Path) -> None:
    import functools

    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from benchmark.models import get_model_class

    neural = get_model_class(model).kind == "neural"
    if neural and "epochs" in space.names():
        space = space.with_fixed(epochs=spec.max_epochs)
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.INFO if spec.verbose else optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA's rung of only failed trials
    if not spec.verbose:  # Ray times every define-by-run call and warns about slow ones
        warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space` argument")
        # a retried trial reports its epochs to the Optuna trial again: Optuna keeps the first value
        warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    scheduler = _PruneTracker.make(study_dir, spec, neural)
    trainable = tune.with_resources(
        functools.partial(_trial, model_name=model, prep=prep, seed=spec.seed),
        {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})
    progress = _Progress(f"{task.name} / {model}", spec.trials, scheduler, study_dir / "curves.jsonl")
    if spec.storage is None:
        storage_path, experiment = str(study_dir), "tune"
    else:  # one experiment per (run, task, model) under the shared location
        storage_path, experiment = spec.storage, f"{spec.name}-{study_dir.parent.name}-{study_dir.name}"
    tune_dir = f"{storage_path.rstrip('/')}/{experiment}"
    if spec.resume and tune.Tuner.can_restore(tune_dir):
        tuner = tune.Tuner.restore(tune_dir, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
        tuner._local_tuner._run_config.callbacks = [progress]  # Ray restores pickled callbacks with stale state
    else:
        searcher = OptunaSearch(space=space.suggest, metric=METRIC, mode="max", sampler=make_sampler(spec.sampler, spec.seed),
                                study_name=f"{task.name}-{model}")  # in memory: see _save_study
        concurrency = spec.concurrency or max(1, _trial_slots(spec))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.trials,
                                        max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=tune.RunConfig(name=experiment, storage_path=storage_path, verbose=1 if spec.verbose else 0,
                                      callbacks=[progress], failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    t_fit = time.perf_counter()
    with _InterruptWatch() as interrupt:
        results = tuner.fit()
    t_fit = time.perf_counter() - t_fit
    progress.close()
    study_saved = _in_thread(_save_study, tuner, study_dir / "optuna.db")  # overlaps the test evaluation
    if interrupt.happened:  # Ray returns normally after Ctrl-C, with the unfinished trials marked stopped
        study_saved.result()  # the trials so far
        raise KeyboardInterrupt(f"{task.name} / {model} interrupted")
    trials = _trial_records(results, scheduler.pruned_ids(), *_read_curves(study_dir / "curves.jsonl"))
    _write_json(study_dir / "trials.json", trials)
    done = [t for t in trials if t["status"] in ("completed", "pruned") and t["best_val_auc"] is not None]
    if not done:
        study_saved.result()
        reasons = {t["error"] for t in trials if t["error"]}
        raise SearchFailed(f"{task.name} / {model}: every trial failed ({'; '.join(sorted(reasons))[:500]}); "
                           f"see {study_dir / 'trials.json'}")
    best = max(done, key=lambda t: t["best_val_auc"])
    print(f"{task.name} / {model}: best val AUC {best['best_val_auc']:.4f} ({len(done)} trials); "
          f"evaluating on test ({spec.repeats} seed(s))", file=sys.stderr)
    final = _final_evaluation(spec, model, best["config"], prep)
    data.atomic_savez(study_dir / "roc.npz", **final.pop("roc"))
    for name in ("recon", "latent"):
        if name in final:
            data.atomic_savez(study_dir / f"{name}.npz", **final.pop(name))
    counts = {s: sum(t["status"] == s for t in trials) for s in ("completed", "pruned", "failed")}
    result = {"task": task.name, "model": model, "source": prepared.manifest["source"],
              "data": {k: prepared.manifest.get(k) for k in ("files", "generator_version", "n_samples", "seed",
                                                              "split_sizes")},
              "sampler": spec.sampler, "scheduler": spec.scheduler if neural else "none", "seed": spec.seed,
              "trials": counts, "best_trial": best["trial_id"], "best_config": best["config"],
              "val_auc": best["best_val_auc"],
              "search_wall_s": t_fit, "trial_time_s": sum(t["wall_s"] or 0 for t in trials),
              "resources_per_trial": {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **final}
    study_saved.result()
    _write_json(study_dir / "result.json", result)


def _save_study(tuner, path: Path) -> None:
    """Write the search's Optuna study to the sqlite file ``path`` (replaced atomically).

    The study lives in memory while Tune runs: an sqlite study costs the driver ~0.1 s of CPU per trial
    (ORM queries and a commit for every suggest, report and tell), more than a near-instant trial. Tune
    checkpoints the in-memory study with the searcher and, on ``--resume``, restores it into the searcher
    object given to the Tuner (``search_alg``), which is where it is read here. The copy goes to a
    temporary file without a sync per commit (one fsync at the end), then replaces ``path``."""
    import sqlite3

    import optuna

    study = tuner._local_tuner._tune_config.search_alg._ot_study
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)

    def connect():
        connection = sqlite3.connect(tmp, check_same_thread=False)
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA journal_mode=MEMORY")
        return connection

    target = optuna.storages.RDBStorage(f"sqlite:///{tmp}", engine_kwargs={"creator": connect})
    optuna.copy_study(from_study_name=study.study_name, from_storage=study._storage, to_storage=target)
    target.engine.dispose()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _in_thread(fn, *args) -> concurrent.futures.Future:
    """``fn(*args)`` in a thread of its own; the interpreter waits for it before exiting."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def _trial(config: dict, *, model_name: str, prep: dict, seed: int) -> None:
    """One Tune trial: build the model from its config, train, report every epoch."""
    import ray
    from ray import tune

    from benchmark.models import create_model

    prepared = _prepare(**prep)
    train, val = prepared.split(data.Split.TRAIN), prepared.split(data.Split.VAL)
    resources = tune.get_context().get_trial_resources().required_resources
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    node = ray.get_runtime_context().get_node_id()
    best, last_epoch = -math.inf, 0

    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        nonlocal best, last_epoch
        best, last_epoch = max(best, float(metrics["val_auc"])), epoch
        tune.report({**metrics, "epoch": epoch, METRIC: best, "node_id": node})

    try:
        model = create_model(model_name, prepared.task, config, seed=seed, device=device,
                             threads=max(1, int(resources.get("CPU", 1))))
        model.fit(train, val, report=report)
    except Exception as e:
        reason = _config_failure(e)
        if reason is None:
            raise  # Tune retries it: a lost node or actor looks the same from here
        # the same config would fail the same way again: one last result says so, and the trial ends
        tune.report({METRIC: math.nan, "failed": reason, "epoch": last_epoch, "node_id": node})


def _config_failure(e: BaseException) -> str | None:
    """One line if ``e`` is a failure of the configuration itself (diverged loss, out of memory),
    which a retry would only repeat; None for anything else."""
    from benchmark.models import DivergedError

    text = str(e).lower()
    out_of_memory = isinstance(e, MemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))
    if isinstance(e, DivergedError) or out_of_memory:
        return _one_line(e)
    return None


def _final_evaluation(spec: RunSpec, model: str, config: dict, prep: dict) -> dict:
    import ray

    task_fn = ray.remote(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial)(_evaluate_on_test)
    return ray.get(task_fn.remote(model, config, prep, [spec.seed + i for i in range(spec.repeats)]))


def _evaluate_on_test(model_name: str, config: dict, prep: dict, seeds: list[int]) -> dict:
    """Retrain ``config`` with each seed on train (val for early stopping) and score the test split once."""
    import ray

    from benchmark import metrics
    from benchmark.models import create_model

    prepared = _prepare(**prep)
    train, val, test = (prepared.split(s) for s in data.Split)
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    runs, out = [], {}
    for i, seed in enumerate(seeds):
        t0 = time.perf_counter()
        model = create_model(model_name, prepared.task, config, seed=seed, device=device, threads=threads)
        model.fit(train, val)
        threshold = metrics.threshold_at_best_accuracy(np.asarray(val.y), model.score(val))
        scores = model.score(test)
        m = metrics.evaluate(np.asarray(test.y), scores, seed=seed, threshold=threshold)
        runs.append({"seed": seed, "train_s": time.perf_counter() - t0, **m})
        if i == 0:
            out["roc"] = {"y": np.asarray(test.y), "score": scores.astype(np.float32), "aux": np.asarray(test.aux)}
            out["n_parameters"] = model.n_parameters()
            if hasattr(model, "reconstruct"):
                pick = np.concatenate([np.flatnonzero(test.y == c)[:4] for c in (0, 1)])
                images = np.asarray(test.X[np.sort(pick)])
                out["recon"] = {"original": images, "reconstructed": model.reconstruct(images),
                                "y": np.asarray(test.y[np.sort(pick)])}
            if hasattr(model, "encode"):  # the test set's posterior means, for the report's latent map
                out["latent"] = {"mu": model.encode(test.X).astype(np.float32), "y": np.asarray(test.y)}
    aucs = np.array([r["auc"] for r in runs])
    out["test"] = {**runs[0], "auc_mean": float(aucs.mean()), "auc_std": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
                   "repeats": runs}
    return out


_CURVE_KEYS = ("epoch", "val_auc", "train_loss", "val_loss", "val_recon", "val_kl", "time_this_iter_s", "node_id")


def _read_curves(path: Path) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Each trial's per-epoch records, and how many times it was retried (its curve restarts then)."""
    curves: dict[str, dict[int, dict]] = {}
    retries: dict[str, int] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: the epoch is reported again on resume
                continue
            trial_id = rec.pop("trial_id")
            if rec.get("retry"):  # the trial starts over from epoch 1 (see _Progress.on_trial_recover)
                curves[trial_id] = {}
                retries[trial_id] = retries.get(trial_id, 0) + 1
                continue
            curves.setdefault(trial_id, {})[rec["epoch"]] = rec  # a re-run epoch replaces the old
    return {t: [c[e] for e in sorted(c)] for t, c in curves.items()}, retries


def _trial_records(results, pruned: set[str], curves: dict[str, list[dict]], retries: dict[str, int]) -> list[dict]:
    trials = []
    for r in results:
        m = r.metrics or {}
        trial_id = m.get("trial_id") or Path(r.path).name
        curve = curves.get(trial_id, [])
        failed = r.error is not None or "failed" in m
        status = "failed" if failed else ("pruned" if trial_id in pruned else "completed")
        trials.append({"trial_id": trial_id, "status": status, "config": r.config,
                       "best_val_auc": None if failed else m.get(METRIC), "epochs": len(curve) or m.get("training_iteration"),
                       "wall_s": m.get("time_total_s"), "node_id": m.get("node_id"), "hostname": m.get("hostname"),
                       "retries": retries.get(trial_id, 0),
                       "error": _one_line(r.error) if r.error else m.get("failed"), "curve": curve})
    return sorted(trials, key=lambda t: t["trial_id"])


def _one_line(error: BaseException) -> str:
    cause = error
    while getattr(cause, "cause", None) is not None:  # Ray wraps the trial's own exception
        cause = cause.cause
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1].strip() if text else ''}"[:300]


class _InterruptWatch:
    """Tells whether Ctrl-C stopped ``tuner.fit()``. Tune's SIGINT handler ends the run gracefully and,
    on the first Ctrl-C only, puts back the handler that was installed before ``fit``: we install a
    sentinel there (which behaves like Python's default) and look for it afterwards."""

    def __enter__(self):
        self.happened = False
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._sentinel)
        return self

    @staticmethod
    def _sentinel(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.active:
            self.happened = signal.getsignal(signal.SIGINT) is self._sentinel
            signal.signal(signal.SIGINT, self.previous)
        return False


class _PruneTracker:
    """ASHA for neural models (FIFO otherwise) that remembers which trials it stopped early."""

    @staticmethod
    def make(study_dir: Path, spec: RunSpec, neural: bool):
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        base = ASHAScheduler if neural and spec.scheduler == "asha" else FIFOScheduler
        path = study_dir / "pruned.json"

        pruned: set[str] = set(json.loads(path.read_text())) if path.is_file() else set()  # a resume

        class Tracker(base):
            def on_trial_result(self, tune_controller, trial, result):
                decision = super().on_trial_result(tune_controller, trial, result)
                if decision == "STOP" and result.get("epoch", 0) < spec.max_epochs:
                    pruned.add(trial.trial_id)
                    _write_json(path, sorted(pruned))  # survives a kill of the driver
                return decision

            def pruned_ids(self) -> set[str]:
                return set(pruned)

        if base is ASHAScheduler:
            return Tracker(time_attr="training_iteration", metric=METRIC, mode="max", max_t=spec.max_epochs,
                           grace_period=1, reduction_factor=3)
        return Tracker()


class _Progress:
    """A live status line instead of Ray's tables: trials done / total, running, pruned, failed, best, ETA."""

    def __new__(cls, label: str, total: int, scheduler, curves_path: Path):
        from ray.tune import Callback

        class Progress(Callback):
            def __init__(self):
                self.t0, self.last_print, self.tty = time.time(), 0.0, sys.stderr.isatty()
                self.done: set[str] = set()  # Ray calls on_trial_complete before it sets the status
                self.failed: set[str] = set()

            def _show(self, trials, force=False):
                now = time.time()
                if not force and not self.tty and now - self.last_print < 15:
                    return
                self.last_print = now
                failed_ids = self.failed | {t.trial_id for t in trials if t.status == "ERROR"}
                done = len((self.done | {t.trial_id for t in trials if t.status == "TERMINATED"}) - failed_ids)
                failed = len(failed_ids)
                running = sum(t.status == "RUNNING" and t.trial_id not in self.done | self.failed for t in trials)
                pruned = len(scheduler.pruned_ids())
                best = max((t.last_result[METRIC] for t in trials
                            if math.isfinite((t.last_result or {}).get(METRIC, math.nan))), default=None)
                elapsed = now - self.t0
                finished = done + failed
                eta = elapsed / finished * (total - finished) if finished else float("nan")
                line = (f"{label}: {finished}/{total} trials | running {running} | pruned {pruned} | failed {failed} "
                        f"| best val AUC {'-' if best is None else f'{best:.4f}'} | {_hms(elapsed)} elapsed, ETA {_hms(eta)}")
                print(("\r" + line.ljust(120)) if self.tty else line, end="" if self.tty else "\n",
                      file=sys.stderr, flush=True)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if "failed" in result:  # the trial's config failed (see _trial): no epoch to record
                    self.failed.add(trial.trial_id)
                    return
                record = {"trial_id": trial.trial_id, **{k: result[k] for k in _CURVE_KEYS if k in result},
                          "reported_at": time.time()}  # the driver's clock: `bench perf` times trials by it
                with open(curves_path, "a") as f:  # one short line per epoch: append is enough
                    f.write(json.dumps(record) + "\n")
                self._show(trials)

            def on_trial_complete(self, iteration, trials, trial, **info):
                self.done.add(trial.trial_id)
                self._show(trials, force=True)

            def on_trial_error(self, iteration, trials, trial, **info):
                self.failed.add(trial.trial_id)
                print(f"\n{label}: trial {trial.trial_id} failed ({_last_error(trial)})", file=sys.stderr)
                self._show(trials, force=True)

            def on_trial_recover(self, iteration, trials, trial, **info):  # Tune retries it from the start
                with open(curves_path, "a") as f:
                    f.write(json.dumps({"trial_id": trial.trial_id, "retry": True}) + "\n")
                print(f"\n{label}: trial {trial.trial_id} failed ({_last_error(trial)}); retrying it from the start "
                      f"({trial.num_failures}/{TRIAL_RETRIES})", file=sys.stderr, flush=True)

            def close(self):
                if self.tty:
                    print(file=sys.stderr)

        return Progress()


def _last_error(trial) -> str:
    """The trial's latest exception as one line (Tune's own traceback is printed only with --verbose)."""
    try:
        error = trial.get_pickled_error() or trial.get_error()  # Tune's record of its own trial
        return _one_line(error) if error else "see trials.json"
    except Exception:  # best effort, for the message only
        return "see trials.json"


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _trial_slots(spec: RunSpec) -> int:
    """How many trials fit at once: per alive node, its CPUs over --cpus-per-trial, capped by its GPUs
    over --gpus-per-trial (a trial cannot span nodes)."""
    import ray

    slots = 0
    for node in ray.nodes():
        if node.get("Alive"):
            res = node.get("Resources", {})
            fit = math.floor(res.get("CPU", 0) / spec.cpus_per_trial + 1e-9)
            if spec.gpus_per_trial > 0:
                fit = min(fit, math.floor(res.get("GPU", 0) / spec.gpus_per_trial + 1e-9))
            slots += fit
    return slots


def _check_resources(spec: RunSpec) -> None:
    """Refuse a trial no node can host, instead of Tune waiting for it forever."""
    import ray

    if _trial_slots(spec) > 0:
        return
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = ", ".join(f"{r.get('CPU', 0):g} CPUs / {r.get('GPU', 0):g} GPUs" for r in nodes) or "none alive"
    raise BenchError(f"no node can run a trial with --cpus-per-trial {spec.cpus_per_trial:g} and --gpus-per-trial "
                     f"{spec.gpus_per_trial:g} (nodes: {largest}); ask for less, or add a node that has it")


def _init_ray(spec: RunSpec) -> None:
    import logging

    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our own records replace Ray's loggers
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "1" if spec.verbose else "0")  # _Progress prints one line
    if not ray.is_initialized():
        quiet = logging.INFO if spec.verbose else logging.ERROR
        if spec.address or os.environ.get("RAY_ADDRESS"):  # `ray job submit` sets RAY_ADDRESS for its driver
            _connect(spec.address or os.environ["RAY_ADDRESS"], "--address" if spec.address else "RAY_ADDRESS",
                     logging_level=quiet, log_to_driver=spec.verbose)
        else:  # "local": a new instance, even when a cluster started by `ray start` runs on this machine
            ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=_local_gpus(), include_dashboard=False,
                     logging_level=quiet, log_to_driver=spec.verbose, configure_logging=True)
    _check_resources(spec)


def _connect(address: str, label: str, **init_kwargs) -> None:
    """``ray.init(address=...)``, failing in seconds with one line (Ray retries an unreachable head for
    minutes, then raises a multi-line error)."""
    import ray

    how = "start one with `ray start --head` and pass the address it prints, or check host, port and firewall"
    if address.startswith("ray://"):  # Tune would run its driver on the head, away from the run directory
        raise BenchError(f"{label} {address}: Ray Client (ray://) runs Tune's driver on the head node, where this "
                         f"machine's run directory is not; run `bench run --address HOST:6379` on a machine of the "
                         f"cluster, or `ray job submit -- bench run ...` (README: Scaling out)")
    if address != "auto":
        parsed = re.fullmatch(r"(\[[^]]+\]|[^:/\[\]]+):(\d+)", address)
        if parsed is None:
            raise BenchError(f"{label} {address!r}: expected auto or HOST:PORT (the head's GCS port, 6379 by default)")
        host, port = parsed[1].strip("[]"), int(parsed[2])
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise BenchError(f"{label} {address}: no Ray cluster reachable at {host}:{port} "
                             f"({e.strerror or type(e).__name__}); {how}") from None
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:  # e.g. `auto` finds no cluster on this machine
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"{label} {address}: cannot connect ({message}); {how}") from None


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no usable CUDA runtime: a CPU machine
        return 0


def _record_invocation(run_dir: Path, spec: RunSpec) -> None:
    import importlib.metadata as md

    from benchmark import __version__

    path = run_dir / "run.json"
    record = json.loads(path.read_text()) if path.is_file() else {"name": spec.name, "invocations": []}
    versions = {"hepbench": __version__}
    for pkg in ("numpy", "torch", "timm", "ray", "optuna", "scikit-learn", "xgboost"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    spec_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()}
    record["invocations"].append({
        "argv": list(spec.argv), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "spec": spec_dict,
        "versions": versions, "python": sys.version.split()[0],
        "hardware": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
                     "gpus": _local_gpus(), "platform": platform.platform()}})
    _write_json(path, record)


def _write_json(path: Path, obj: Any) -> None:
    data.atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
