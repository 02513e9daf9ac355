"""The test evaluation of a search's best configuration: retrained with each seed (``--repeats``) as Ray
tasks with a trial's resources, then scored once on the test split, the only place the test split is
touched. The first seed keeps the arrays the board draws (ROC scores, the model's artifacts).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import numpy as np

from benchmark import data, records
from benchmark.search import session
from benchmark.search.spec import RunSpec
from benchmark.strategies import OBJECTIVE


@dataclasses.dataclass(frozen=True)
class Final:
    """The test evaluation of the best config, as it comes back from its Ray task."""

    test: records.TestMetrics
    roc: dict            # y, score, aux of the first seed
    artifacts: dict      # the model's artifact_names -> arrays
    n_parameters: int
    device: str
    precision: str
    curve: tuple = ()    # the first seed's training curve (records.Epoch), when asked for



def final_evaluation(spec: RunSpec, model: str, config: Mapping, prep: dict, curve: bool = False) -> Final:
    """One Ray task per seed, each with a trial's resources, so the seeds retrain side by side where
    there is room (each seed's result does not depend on what runs beside it). With more seeds than
    trial slots on CPU, the slots' CPUs are shared among all seeds when each still gets a trial's
    threads (three seeds on two cores: all three at once, no core idle while the last one trains)."""
    import ray

    seeds = [spec.trial_seed + i for i in range(spec.repeats)]  # the first: the seed the trials trained with
    task_fn = ray.remote(num_cpus=seed_cpus(spec), num_gpus=spec.gpus_per_trial)(evaluate_on_test)
    done = ray.get([task_fn.remote(model, dict(config), prep, seed, seed == seeds[0], curve) for seed in seeds])
    runs = tuple(run for run, _ in done)
    return Final(test=records.TestMetrics(runs), **done[0][1])


def seed_cpus(spec: RunSpec) -> float:
    """The CPUs of one seed's retraining task (see :func:`final_evaluation`)."""
    slots = session.trial_slots(spec)
    if spec.gpus_per_trial > 0 or not 0 < slots < spec.repeats:
        return spec.cpus_per_trial
    shared = spec.cpus_per_trial * slots / spec.repeats
    same_threads = max(1, int(shared)) == max(1, int(spec.cpus_per_trial))  # as DevicePlan.from_resources counts
    return shared if same_threads else spec.cpus_per_trial


def evaluate_on_test(model_name: str, config: dict, prep: dict, seed: int, first: bool,
                      curve: bool = False) -> tuple[records.TestRun, dict]:
    """Retrain ``config`` with ``seed`` on train (val for early stopping) and score the test split once;
    for the ``first`` seed also the arrays the board draws (ROC, the model's artifacts) and, with
    ``curve``, its training curve."""
    from benchmark import metrics
    from benchmark.models import create_model

    prepared = data.prepare_shared(**prep)
    train, val, test = (prepared.split(s) for s in data.Split)
    plan = session.trial_plan()
    t0 = last = time.perf_counter()
    model = create_model(model_name, prepared.task, config, seed=seed, plan=plan)
    epochs: list[records.Epoch] = []

    def report(epoch: int, m: Mapping[str, float]) -> None:
        nonlocal last
        now = time.perf_counter()
        epochs.append(records.Epoch(epoch, float(m[OBJECTIVE.name]), wall_s=now - last, reported_at=time.time(),
                                    metrics={k: float(v) for k, v in m.items() if k != OBJECTIVE.name}))
        last = now

    model.fit(train, val, report=report)
    threshold = metrics.threshold_at_best_accuracy(np.asarray(val.y), model.score(val))
    scores = model.score(test)
    m = metrics.evaluate(np.asarray(test.y), scores, seed=seed, threshold=threshold)
    run = records.TestRun(seed=seed, train_s=time.perf_counter() - t0, **m, **model.training_summary(),
                          **model.test_metrics(test))
    extras = {}
    if first:
        extras = dict(roc={"y": np.asarray(test.y), "score": scores.astype(np.float32), "aux": np.asarray(test.aux)},
                      artifacts=model.artifacts(test), n_parameters=model.n_parameters(), precision=model.precision,
                      device=plan.kind, curve=tuple(epochs) if curve else ())
    return run, extras
