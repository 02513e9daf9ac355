"""The peer of ``bench perf``'s runner cost (2) and memory (4): the short Ray Tune + ``OptunaSearch``
script a user of this stack would write instead of ``bench run``.

A function trainable that builds the suite's model from its config, trains it and reports every epoch
with ``tune.report``; the data handed to every trial once through ``tune.with_parameters`` (Ray's object
store); TPE through ``OptunaSearch``; ``reuse_actors=True``. No journal, no records, no trial log, no
progress line: what ``bench run`` adds on top of this is what rows 2 and 4 price.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from benchmark.devices import DevicePlan


class _Received(tune.Callback):
    """The driver's clock when each result arrives (what ``bench run`` logs as ``reported_at``)."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.at.append(time.time())


def _train(config, *, model_name, task, train, val, fixed, plan) -> None:
    from benchmark.models import create_model

    model = create_model(model_name, task, {**fixed, **config}, seed=0, plan=plan)
    model.fit(train, val, report=lambda epoch, metrics: tune.report({**metrics, "epoch": epoch}))


@dataclasses.dataclass(frozen=True)
class Ran:
    wall_s: float  # the whole tuner.fit()
    received: tuple[float, ...]  # sorted arrival times of every result
    best_val_auc: float

    @property
    def span_s(self) -> float:
        return self.received[-1] - self.received[0]


def tune_script(model_name: str, task, train, val, *, space: Mapping[str, object], fixed: Mapping[str, object],
                trials: int, concurrency: int, cpus_per_trial: float, storage: Path, name: str) -> Ran:
    """``trials`` trials of ``model_name`` searched by TPE (seed 0) over ``space`` (Tune's domains), at
    most ``concurrency`` at a time, each on ``cpus_per_trial`` CPUs of the running Ray instance."""
    received = _Received()
    plan = DevicePlan.from_resources({"CPU": cpus_per_trial}, has_gpu=False)
    trainable = tune.with_resources(
        tune.with_parameters(_train, model_name=model_name, task=task, train=train, val=val, fixed=dict(fixed),
                             plan=plan), {"cpu": cpus_per_trial})
    search = OptunaSearch(dict(space), metric="val_auc", mode="max", sampler=optuna.samplers.TPESampler(seed=0))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=search, num_samples=trials, max_concurrent_trials=concurrency,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0, callbacks=[received]))
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    best = results.get_best_result(metric="val_auc", mode="max", scope="all").metrics["val_auc"]
    return Ran(wall, tuple(sorted(received.at)), float(best))
