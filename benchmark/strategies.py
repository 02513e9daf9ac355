"""The search strategies ``bench run`` and the replays offer, in one place: the objective every search
tunes, the Optuna samplers by name, and the early-stopping schedulers over a model's fidelity.

Every task is tuned on the same objective, :data:`OBJECTIVE`: the validation ROC AUC, maximised. A
trial reports it every epoch as ``val_auc``; Tune and Optuna see its running maximum over the trial's
steps, ``best_val_auc`` (``METRIC``; the models keep their best epoch's weights).

A sampler is a :class:`Sampler` in :data:`REGISTRY`. Its contract, checked for every entry by
``tests/test_strategies.py`` with no test naming one: built with the same seed it proposes the same
configurations for the same results; every proposal lies inside the declared space (log, step,
categorical and conditional parameters); and it runs both under Ray Tune (``bench run``) and in the
replay (``bench replay``). A scheduler name is one of :data:`SCHEDULERS`; ``asha``'s settings are
:data:`ASHA`, which the runner gives Ray Tune's ``ASHAScheduler`` and the replay simulates.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Objective:
    """What every search optimises: ``name`` as each step reports it, in ``mode`` ("max" or "min"), and
    ``running``, the best value so far over a trial's steps, which the searcher and scheduler see."""

    name: str
    mode: str
    running: str

    @property
    def direction(self) -> str:
        """Optuna's word for ``mode``."""
        return "maximize" if self.mode == "max" else "minimize"

    def better(self, a: float, b: float) -> float:
        """The better of two values."""
        return max(a, b) if self.mode == "max" else min(a, b)


OBJECTIVE = Objective(name="val_auc", mode="max", running="best_val_auc")
METRIC, MODE = OBJECTIVE.running, OBJECTIVE.mode  # what Tune and Optuna see


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A seeded Optuna sampler: ``build(optuna, seed)`` makes it (``optuna`` passed in: it is imported
    only when one is built)."""

    name: str
    build: Callable
    description: str

    def make(self, seed: int):
        import optuna

        return self.build(optuna, seed)


REGISTRY: dict[str, Sampler] = {s.name: s for s in (
    Sampler("tpe", lambda optuna, seed: optuna.samplers.TPESampler(seed=seed), "tree-structured Parzen estimator"),
    Sampler("random", lambda optuna, seed: optuna.samplers.RandomSampler(seed=seed), "uniform random search"),
    Sampler("cmaes", lambda optuna, seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
            "CMA-ES (categorical parameters sampled independently)"),
    Sampler("gp", lambda optuna, seed: optuna.samplers.GPSampler(seed=seed), "Gaussian-process Bayesian optimisation"),
    # scrambled: an unscrambled Sobol sequence is the same whatever the seed
    Sampler("qmc", lambda optuna, seed: optuna.samplers.QMCSampler(seed=seed, scramble=True), "scrambled Sobol sequence"),
)}
SAMPLERS: tuple[str, ...] = tuple(REGISTRY)
SCHEDULERS: tuple[str, ...] = ("asha", "none")


def make_sampler(name: str, seed: int):
    """A seeded Optuna sampler by name (one of ``SAMPLERS``)."""
    return REGISTRY[name].make(seed)


@dataclasses.dataclass(frozen=True)
class Asha:
    """Asynchronous successive halving over a fidelity counted in steps (epochs) up to ``max_t``: at
    each rung ``grace_period * reduction_factor**k`` a trial goes on only if it is in the top
    ``1 / reduction_factor`` of the results recorded at that rung so far."""

    grace_period: int = 1
    reduction_factor: int = 3

    def rungs(self, max_t: int) -> list[int]:
        """The steps at which ASHA decides: ``grace * rf**k < max_t``."""
        return [self.grace_period * self.reduction_factor**k for k in range(max_t)
                if self.grace_period * self.reduction_factor**k < max_t]

    def limit_share(self, max_t: int) -> float:
        """The share of a full-budget search's steps ASHA uses when every rung holds many results (a
        ``1 / rf`` share of the trials goes on past each rung)."""
        marks = self.rungs(max_t) + [max_t]
        return sum((marks[k] - (marks[k - 1] if k else 0)) / self.reduction_factor**k
                   for k in range(len(marks))) / max_t


ASHA = Asha()

