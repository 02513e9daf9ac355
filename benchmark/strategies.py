"""The search strategies ``bench run`` offers, in one place for the CLI, the runner and ``bench perf``:
Optuna samplers by name, and the schedulers that stop trials early over a model's fidelity.

Every task is tuned on the same metric: the validation ROC AUC, maximised (``METRIC`` / ``MODE``).
The runner tunes its running maximum over the epochs (the models keep their best epoch's weights).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

METRIC = "best_val_auc"  # what Tune and Optuna see: the running maximum of val_auc over a trial's steps
MODE = "max"


#: Seeded Optuna samplers by name (``optuna`` is passed in: it is imported only when one is built).
_SAMPLERS: dict[str, Callable] = {
    "tpe": lambda optuna, seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda optuna, seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda optuna, seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "gp": lambda optuna, seed: optuna.samplers.GPSampler(seed=seed),
    # scrambled: an unscrambled Sobol sequence is the same whatever the seed
    "qmc": lambda optuna, seed: optuna.samplers.QMCSampler(seed=seed, scramble=True),
}
SAMPLERS: tuple[str, ...] = tuple(_SAMPLERS)
SCHEDULERS: tuple[str, ...] = ("asha", "none")


def make_sampler(name: str, seed: int):
    """A seeded Optuna sampler by name (one of ``SAMPLERS``)."""
    import optuna

    return _SAMPLERS[name](optuna, seed)


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


def scheduler_class(name: str, *, has_fidelity: bool, max_t: int) -> tuple[type, dict]:
    """The Ray Tune scheduler class and its arguments: ``asha`` for a model with a fidelity, FIFO
    (every trial runs its full budget) otherwise."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if name == "asha" and has_fidelity:
        return ASHAScheduler, {"time_attr": "training_iteration", "metric": METRIC, "mode": MODE, "max_t": max_t,
                               "grace_period": ASHA.grace_period, "reduction_factor": ASHA.reduction_factor}
    return FIFOScheduler, {}
