"""Replaying an optimiser against a recorded table (``bench export``) instead of training: a tabular
benchmark in the manner of HPOBench, YAHPO Gym and syne-tune's blackbox repository.

A :class:`Blackbox` is one study of a table (one model's search space on one task and training size):
the recorded trials' configs, their validation-AUC curves over the epochs and each epoch's wall time.
An optimiser asks for configurations it chooses, which the table almost never holds exactly; a
:class:`Surrogate` answers them from the recorded trials.

**The surrogate** is a distance-weighted k-nearest-neighbour regressor over the encoded configs (each
number scaled to [0, 1], on a log scale where the space declares ``log``; each categorical one-hot),
predicting a trial's whole curve and epoch times at once (syne-tune's blackbox surrogates are
k-nearest-neighbour regressors too). Why this one: the tables are uniform random samples of a
low-dimensional space; a neighbour's curve is a curve a real model produced (monotone running maximum,
a real epoch-time profile), not a smoothed artefact; it is exact on recorded configs (distance 0) and
needs no fitting beyond choosing ``k``, which :meth:`Surrogate.fit` does by 5-fold cross-validation
from :data:`K_CHOICES` on the final best validation AUC. :meth:`Surrogate.holdout` reports that
held-out error (mean absolute error, and the Spearman correlation of predicted and recorded values).

**The simulation** (:func:`replay`) runs ``workers`` trials at once in simulated time: each trial
advances one recorded epoch at a time (its epoch times from the surrogate), events are taken in time
order, and a free worker asks the optimiser for the next config. The optimiser is an Optuna sampler
(``benchmark.strategies``), asked and told as Ray Tune's ``OptunaSearch`` does in ``bench run``: a
trial's value is its best validation AUC so far, told when it ends, stopped early or not. With
``scheduler="asha"`` a trial reaching a rung (``strategies.ASHA``: epochs 1, 3, 9, ...) goes on only
if its value is at least the ``1 - 1/rf`` quantile of the values recorded at that rung before it, as
Ray Tune's ``ASHAScheduler`` decides (:class:`Rungs`). A replay is seeded and deterministic.
"""
from __future__ import annotations

import dataclasses
import heapq
import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmark.errors import BenchError
from benchmark.search_space import Param, SearchSpace, parse_space
from benchmark.strategies import ASHA, OBJECTIVE, SAMPLERS, SCHEDULERS, Asha, make_sampler
from benchmark.tables import tabular

__all__ = ["K_CHOICES", "Blackbox", "Rungs", "Surrogate", "Trace", "blackboxes", "replay"]

K_CHOICES = (1, 2, 3, 5, 8, 13)
_MISSING = -1.0  # the encoding of a conditional parameter that a config does not have


@dataclasses.dataclass(frozen=True)
class Blackbox:
    """One study of a table: ``curves[i, e]`` is trial ``i``'s validation AUC after epoch ``e + 1`` and
    ``times[i, e]`` that epoch's wall time (seconds); a model without a fidelity has one column. A trial
    that stopped itself early (its ``patience``) keeps its last value at zero cost to the end."""

    name: str                      # <table file stem>/<study>
    task: str
    study: str
    n_train: int
    space: SearchSpace             # as the run declared it (fixed values included)
    configs: tuple[dict, ...]      # the searched parameters of each recorded trial
    curves: np.ndarray
    times: np.ndarray
    failed: int = 0                # trials recorded as failed (not used: they have no curve)
    #: seed repeats: config index -> (curves, times) of its other recorded training seeds, one row each
    repeats: Mapping[int, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)

    @property
    def max_epochs(self) -> int:
        return self.curves.shape[1]

    @property
    def searched(self) -> tuple[Param, ...]:
        return tuple(p for p in self.space.params if p.type != "fixed")

    @property
    def finals(self) -> np.ndarray:
        """Each trial's best validation AUC over its full budget (what a full-budget search sees)."""
        return self.curves.max(axis=1)

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([_encode(self.searched, c) for c in configs], dtype=float).reshape(len(configs), -1)

    def seed_curves(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Every recorded seed's curves and epoch times of config ``i`` (the first row is ``curves[i]``)."""
        more_c, more_t = self.repeats.get(i, (np.empty((0, self.max_epochs)), np.empty((0, self.max_epochs))))
        return np.vstack([self.curves[i][None], more_c]), np.vstack([self.times[i][None], more_t])

    def noise_ceiling(self) -> dict[str, float] | None:
        """How well one training seed ranks the repeated configs as another does: the Spearman correlation
        of the final best validation AUC between the first two repeat seeds where every repeated config has
        two (between the first seed and its repeat where they have one), over the configs with repeats;
        None with fewer than 3 such configs."""
        from scipy.stats import spearmanr

        rows = [self.seed_curves(i)[0].max(axis=1) for i in sorted(self.repeats) if len(self.repeats[i][0])]
        if len(rows) < 3:
            return None
        width = min(len(r) for r in rows)
        finals = np.array([r[:width] for r in rows])
        a, b = (1, 2) if width >= 3 else (0, 1)
        return {"configs": len(rows), "seeds": width, "spearman": float(spearmanr(finals[:, a], finals[:, b]).statistic),
                "spearman_first": float(np.mean([spearmanr(finals[:, 0], finals[:, j]).statistic for j in range(1, width)])),
                "seed_sd": float(finals.std(axis=1, ddof=1).mean())}


def _encode(params: Sequence[Param], config: Mapping[str, Any]) -> list[float]:
    out: list[float] = []
    for p in params:
        v = config.get(p.name)
        if p.type == "categorical":
            out += [1.0 if v is not None and _same_choice(v, c) else 0.0 for c in p.choices]
        elif v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(_MISSING)
        elif p.high == p.low:
            out.append(0.0)
        elif p.log:
            out.append((math.log(float(v)) - math.log(p.low)) / (math.log(p.high) - math.log(p.low)))
        else:
            out.append((float(v) - p.low) / (p.high - p.low))
    return out


def _same_choice(v: Any, choice: Any) -> bool:
    if isinstance(v, (int, float, np.number)) and isinstance(choice, (int, float)) and not isinstance(v, bool):
        return float(v) == float(choice)
    return str(v) == str(choice)


def blackboxes(path: str | Path, studies: Sequence[str] | None = None) -> list[Blackbox]:
    """The searched studies of one exported table (``bench export``'s parquet or CSV file), each as a
    :class:`Blackbox`; reference recipes (one trial, nothing searched) are left out."""
    path = Path(path)
    frame, meta = tabular.load(path)
    names = [s for s, m in meta["studies"].items() if m.get("recipe") is None]
    if studies:
        unknown = sorted(set(studies) - set(names))
        if unknown:
            raise BenchError(f"{path}: no searched study {', '.join(unknown)} (it has {', '.join(names) or 'none'})")
        names = [s for s in names if s in studies]
    return [_blackbox(path, frame[frame.study == s], meta, s) for s in names]


def _blackbox(path: Path, frame, meta: Mapping[str, Any], study: str) -> Blackbox:
    info = meta["studies"][study]
    spaces = [s["params"] for s in info["spaces"] if s.get("params")]
    if len(spaces) != 1:
        raise BenchError(f"{path}: study {study} has {len(spaces)} recorded search spaces; a replay needs exactly "
                         "one (export one run's table)")
    space = parse_space(spaces[0], f"{path}:{study}")
    epochs = int(info["fidelity"].get("max") or 1)
    curves, times, configs, failed = [], [], [], 0
    index: dict[str, int] = {}  # a config's JSON -> its position: a second seed of it is a repeat
    repeats: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    searched = [p.name for p in space.params if p.type != "fixed"]
    for _, trial in frame.groupby(list(tabular.TRIAL), sort=True):
        trial = trial.sort_values(tabular.FIDELITY)
        values, wall = (trial[c].to_numpy(dtype=float) for c in (tabular.OBJECTIVE, "wall_s"))
        status = set(trial.status)
        if "failed" in status:
            failed += 1
            continue
        if status != {"completed"} or not 0 < len(values) <= epochs or np.isnan(values).any():
            continue  # stopped by a scheduler: the table has no full curve for it
        # a trial that ended by its own patience before its budget: its last value holds, at no more cost
        curve, wall = np.pad(values, (0, epochs - len(values)), mode="edge"), np.pad(wall, (0, epochs - len(wall)))
        first = trial.iloc[0]
        config = {k: plain_value(first[tabular.CONFIG + k]) for k in searched if tabular.CONFIG + k in trial}
        key = json.dumps(config, sort_keys=True, default=str)
        if key in index:
            repeats.setdefault(index[key], []).append((curve, wall))
            continue
        index[key] = len(configs)
        configs.append(config)
        curves.append(curve)
        times.append(wall)
    if len(curves) < 2:
        raise BenchError(f"{path}: study {study} has {len(curves)} trial(s) with a full {epochs}-epoch curve; a replay "
                         "needs a table recorded without early stopping (bench run --scheduler none)")
    return Blackbox(name=f"{path.stem}/{study}", task=str(frame.task.iloc[0]), study=study,
                    n_train=int(frame.n_train.iloc[0]), space=space, configs=tuple(configs),
                    curves=np.array(curves), times=np.array(times), failed=failed,
                    repeats={i: (np.array([c for c, _ in r]), np.array([t for _, t in r])) for i, r in repeats.items()})


def plain_value(v: Any) -> Any:
    """A table cell as plain Python: numpy scalars unwrapped, NaN (an empty cell) as None."""
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclasses.dataclass
class Surrogate:
    """Distance-weighted k-nearest neighbours over a blackbox's encoded configs (see the module's text)."""

    blackbox: Blackbox
    k: int = 1

    def __post_init__(self) -> None:
        self._x = self.blackbox.encode(self.blackbox.configs)

    @classmethod
    def fit(cls, blackbox: Blackbox, *, folds: int = 5, seed: int = 0, place: int = 0) -> Surrogate:
        """The surrogate with the ``k`` of :data:`K_CHOICES` whose cross-validated error is least
        (``place`` 1: the runner-up, a second surrogate of about the same error; fewer choices: the last)."""
        errors = {k: cls(blackbox, k).holdout(folds=folds, seed=seed)["mae"] for k in K_CHOICES if k < len(blackbox.configs)}
        ranked = sorted(errors, key=lambda k: (errors[k], k))
        return cls(blackbox, ranked[min(place, len(ranked) - 1)])

    def predict(self, config: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The curve and epoch times of ``config``."""
        return self._predict(self.blackbox.encode([config])[0], np.arange(len(self._x)))

    def _predict(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.sqrt(((self._x[rows] - x) ** 2).sum(axis=1))
        order = np.argsort(d, kind="stable")[: self.k]
        near, dn = rows[order], d[order]
        if dn[0] < 1e-12:  # a recorded config: its own curve
            near, w = near[:1], np.ones(1)
        else:
            w = 1.0 / dn
        w = w / w.sum()
        return w @ self.blackbox.curves[near], w @ self.blackbox.times[near]

    def holdout(self, *, folds: int = 5, seed: int = 0) -> dict[str, float]:
        """``folds``-fold cross-validated error of the final best validation AUC: mean absolute error,
        its ratio to the recorded values' standard deviation, and the Spearman rank correlation."""
        from scipy.stats import spearmanr

        n = len(self._x)
        order = np.random.default_rng(seed).permutation(n)
        predicted = np.empty(n)
        for f in range(folds):
            held = order[f::folds]
            rest = np.setdiff1d(order, held)
            for i in held:
                predicted[i] = self._predict(self._x[i], rest)[0].max()
        true = self.blackbox.finals
        mae = float(np.abs(predicted - true).mean())
        return {"k": self.k, "mae": mae, "relative": mae / float(true.std() or 1.0),
                "spearman": float(spearmanr(predicted, true).statistic), "n": n}


class Rungs:
    """Ray Tune's ASHA decisions (one bracket): at each rung a result below the ``1 - 1/rf`` quantile of
    the results recorded at that rung before it stops its trial; the first result at a rung goes on."""

    def __init__(self, max_t: int, asha: Asha = ASHA) -> None:
        self.rf = asha.reduction_factor
        self.recorded: dict[int, list[float]] = {r: [] for r in asha.rungs(max_t)}

    def stops(self, epoch: int, value: float) -> bool:
        if epoch not in self.recorded:
            return False
        seen = self.recorded[epoch]
        stop = bool(seen) and value < float(np.nanpercentile(seen, (1 - 1 / self.rf) * 100))
        seen.append(value)
        return stop


@dataclasses.dataclass(frozen=True)
class Trace:
    """What one replay saw: every reported epoch (simulated time, the trial's best so far) in time order,
    and every trial in the order it ended (end time, value told, epochs trained)."""

    time: np.ndarray
    value: np.ndarray
    trial_end: np.ndarray
    trial_value: np.ndarray
    trial_epochs: np.ndarray

    def best_after_trials(self, n: int) -> np.ndarray:
        """The incumbent after each of the first ``n`` ended trials (NaN past the last)."""
        best = np.maximum.accumulate(self.trial_value[:n])
        return np.concatenate([best, np.full(n - len(best), np.nan)])

    def best_at(self, times: np.ndarray) -> np.ndarray:
        """The incumbent (best value reported by any epoch) at each simulated time; NaN before the first."""
        best = np.maximum.accumulate(self.value)
        idx = np.searchsorted(self.time, times, side="right") - 1
        return np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan)


class Proposer(NamedTuple):
    """What the replay asks for configurations: ``ask()`` returns (handle, config) and ``tell(handle, value)``
    reports the trial's value (its best so far, as ``bench run``'s searcher is told)."""

    ask: Callable[[], tuple[Any, dict]]
    tell: Callable[[Any, float], None]


def optuna_proposer(space: SearchSpace, sampler: str, seed: int) -> Proposer:
    """Optuna's ask-and-tell with the space's define-by-run function, as ``bench run`` uses it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental samplers say so
        study = optuna.create_study(direction=OBJECTIVE.direction, sampler=make_sampler(sampler, seed))

    def ask():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask()
            space.suggest(trial)
        return trial, dict(trial.params)

    def tell(trial, value: float) -> None:
        study.tell(trial, value)

    return Proposer(ask, tell)


def replay(blackbox: Blackbox, sampler: str, scheduler: str, seed: int, *, trials: int = 100, workers: int = 2,
           surrogate: Surrogate | None = None, proposer: Proposer | None = None) -> Trace:
    """One seeded optimiser run of ``trials`` trials against ``blackbox`` (see the module's text)."""
    if sampler not in SAMPLERS:
        raise BenchError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
    if scheduler not in SCHEDULERS:
        raise BenchError(f"scheduler {scheduler!r}: one of {', '.join(SCHEDULERS)}")
    surrogate = surrogate or Surrogate(blackbox)
    ask, tell = proposer or optuna_proposer(blackbox.space, sampler, seed)
    rungs = Rungs(blackbox.max_epochs) if scheduler == "asha" and blackbox.max_epochs > 1 else None
    events: list[tuple[float, int, int]] = []       # (time its next epoch ends, start order, trial)
    running: dict[int, list] = {}                    # trial -> [handle, curve, times, epochs done, best]
    times, values, ends, told, epochs = [], [], [], [], []
    counter = iter(range(1 << 62))

    def start(now: float) -> None:
        handle, config = ask()
        curve, wall = surrogate.predict(config)
        i = next(counter)
        running[i] = [handle, curve, wall, 0, -math.inf]
        heapq.heappush(events, (now + float(wall[0]), i, i))

    for _ in range(min(workers, trials)):
        start(0.0)
    started = min(workers, trials)
    while events:
        now, _, i = heapq.heappop(events)
        state = running[i]
        handle, curve, wall, done, best = state
        best = max(best, float(curve[done]))
        done += 1
        state[3:] = [done, best]
        times.append(now)
        values.append(best)
        if done < blackbox.max_epochs and not (rungs and rungs.stops(done, best)):
            heapq.heappush(events, (now + float(wall[done]), i, i))
            continue
        tell(handle, best)
        del running[i]
        ends.append(now)
        told.append(best)
        epochs.append(done)
        if started < trials:
            start(now)
            started += 1
    return Trace(np.array(times), np.array(values), np.array(ends), np.array(told), np.array(epochs, dtype=int))


def list_proposer(configs: Iterator[dict] | Sequence[dict]) -> Proposer:
    """Configs in a given order, nothing learnt from the values (for tests and hand-made tables)."""
    it = iter(configs)
    return Proposer(lambda: (None, dict(next(it))), lambda handle, value: None)
