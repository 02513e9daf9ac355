"""The sampler contract, over every entry of ``benchmark.strategies.REGISTRY`` (a sampler added there is
tested here with no test edited), in the spirit of Optuna's own sampler tests: a seeded sampler repeats
exactly; every suggestion lies inside the declared space (log, step, categorical and conditional
parameters); and each runs in the replay and under Ray Tune in ``bench run``. Schedulers: each name of
``SCHEDULERS`` runs in both too."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from benchmark import strategies
from benchmark.search_space import parse_space
from benchmark.tables.replay import replay

SAMPLERS = strategies.SAMPLERS
SPACE = parse_space({
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "width": {"type": "int", "low": 8, "high": 64, "step": 8},
    "depth": {"type": "int", "low": 1, "high": 16, "log": True},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}},
    "epochs": {"type": "fixed", "value": 3},
}, "contract.yaml")


def _objective(config: dict) -> float:
    return -abs(math.log10(config["lr"]) + 2.5) - 0.01 * config["width"] / 8 + 0.1 * (config["optimizer"] == "adam")


def _study(sampler: str, seed: int, n: int = 12) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental samplers say so
        study = optuna.create_study(direction=strategies.OBJECTIVE.direction,
                                    sampler=strategies.make_sampler(sampler, seed))
        configs = []
        for _ in range(n):
            trial = study.ask()
            fixed = SPACE.suggest(trial)  # Ray's convention: the fixed values; the sampled ones are the params
            config = {**trial.params, **fixed}
            configs.append(config)
            study.tell(trial, _objective(config))
    return configs


def _inside(config: dict) -> list[str]:
    """What is wrong with ``config`` against ``SPACE`` (empty: nothing)."""
    wrong = []
    for p in SPACE.params:
        active = all(config.get(k) in v for k, v in p.when.items())
        if not active:
            if p.name in config:
                wrong.append(f"{p.name} present though its condition is false")
            continue
        if p.name not in config:
            wrong.append(f"{p.name} missing")
            continue
        v = config[p.name]
        if p.type == "fixed":
            wrong += [] if v == p.value else [f"{p.name}={v} not the fixed {p.value}"]
        elif p.type == "categorical":
            wrong += [] if v in p.choices else [f"{p.name}={v!r} not a choice"]
        else:
            if not p.low - 1e-12 <= v <= p.high + 1e-12:
                wrong.append(f"{p.name}={v} outside [{p.low}, {p.high}]")
            if p.type == "int" and v != int(v):
                wrong.append(f"{p.name}={v} not an integer")
            if p.step and not math.isclose((v - p.low) / p.step, round((v - p.low) / p.step), abs_tol=1e-9):
                wrong.append(f"{p.name}={v} off the step {p.step}")
    return wrong


def test_the_registry_is_what_the_cli_offers():
    assert set(SAMPLERS) == set(strategies.REGISTRY) and len(SAMPLERS) >= 5
    assert all(s.description for s in strategies.REGISTRY.values())
    assert strategies.OBJECTIVE.mode == "max" and strategies.METRIC == strategies.OBJECTIVE.running


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_seeded_sampler_repeats_exactly_and_another_seed_differs(sampler):
    a, b, c = _study(sampler, 3), _study(sampler, 3), _study(sampler, 4)
    assert a == b
    assert a != c


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_suggestion_lies_inside_the_declared_space(sampler):
    configs = _study(sampler, 0, n=16)
    problems = {i: _inside(c) for i, c in enumerate(configs) if _inside(c)}
    assert not problems, problems
    assert {c["optimizer"] for c in configs} == {"adam", "sgd"}  # both branches of the condition visited


@pytest.mark.parametrize("scheduler", strategies.SCHEDULERS)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_and_scheduler_runs_in_the_replay(sampler, scheduler):
    from test_replay import known_box

    box = known_box()
    a = replay(box, sampler, scheduler, 1, trials=12)
    assert len(a.trial_value) == 12 and np.all(np.isfinite(a.value))
    np.testing.assert_array_equal(a.value, replay(box, sampler, scheduler, 1, trials=12).value)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_under_ray_tune_in_bench_run(tmp_path, sampler):
    from conftest import trials_json

    from benchmark.cli import main

    scheduler = strategies.SCHEDULERS[SAMPLERS.index(sampler) % len(strategies.SCHEDULERS)]
    code = main(["run", "--task", "ee_gamma", "--model", "mlp", "--trials", "3", "--max-epochs", "2",
                 "--sampler", sampler, "--scheduler", scheduler, "--n-train", "400", "--n-val", "150",
                 "--n-test", "150", "--name", "s", "--runs-dir", str(tmp_path / "runs"), "--source", "synthetic"])
    assert code == 0
    trials = trials_json(tmp_path / "runs" / "s" / "ee_gamma" / "mlp")
    assert len(trials) == 3 and all(t["status"] in ("completed", "pruned") for t in trials)
