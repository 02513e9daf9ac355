"""The recorded tables as benchmarks an HPO library runs: one object per blackbox with its
configuration space, its fidelity, its objectives, and one call that answers a configuration.

    >>> from benchmark.tables import api
    >>> "atlas_topo/mlp" in api.names()
    True
    >>> bench = api.load("atlas_topo/mlp")
    >>> bench.fidelity
    Fidelity(name='epoch', low=1, high=8)
    >>> bench.objectives["val_auc"]
    'max'
    >>> config = bench.configs[0]                # a recorded configuration: answered from the table
    >>> answer = bench(config, epoch=8)
    >>> answer.recorded, round(answer.metrics["val_auc"], 4) == round(bench.table_value(config, 8), 4)
    (True, True)
    >>> bench({**config, "lr": 0.00123}).recorded  # any other: from the surrogate, flagged
    False

A blackbox is named ``<task>/<study>`` (``atlas_topo/mlp``, ``atlas_topo/resnet15``), one study of one
table of ``leaderboard/tables`` (or of the folder ``tables=`` names). :meth:`Benchmark.__call__` answers
``config`` at ``epoch`` (default: the full budget) with every metric the table records at that epoch
(validation AUC, the best so far, losses, background rejection, the epoch's and the cumulative wall
time), the configuration's costs where recorded, and whether the table answered (a recorded
configuration, exactly) or the surrogate the report card chose (``benchmark.tables.surrogates``).
``seed``: which recorded training seed answers (0: the first); ``seed=None`` draws one of the recorded
seeds with ``rng``, so an optimiser sees the seed-to-seed spread it would see live. The same call with
the same seed gives the same answer.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import BenchError
from benchmark.search_space import SearchSpace
from benchmark.tables.replay import plain_value

TABLES = Path(__file__).resolve().parents[2] / "leaderboard" / "tables"
#: The answer's metrics besides the table's own metric columns, and their directions.
DIRECTIONS = {"val_auc": "max", "best_val_auc": "max", "val_rej_at_eff30": "max", "val_rej_at_eff50": "max",
              "train_loss": "min", "val_loss": "min", "wall_s": "min", "cum_wall_s": "min"}


@dataclasses.dataclass(frozen=True)
class Fidelity:
    name: str
    low: int
    high: int


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a blackbox answers: ``metrics`` at ``epoch`` (every recorded metric, ``cum_wall_s`` the
    simulated cost of training this far), ``costs`` (``cost.*`` of the configuration, recorded or the
    nearest recorded one's), ``recorded`` (from the table, exactly) or not (``surrogate`` says which)."""

    config: Mapping[str, Any]
    epoch: int
    seed: int
    metrics: Mapping[str, float]
    costs: Mapping[str, Any]
    recorded: bool
    surrogate: str | None = None


def _tables(tables: Path | None) -> Path:
    folder = Path(tables) if tables is not None else TABLES
    if not folder.is_dir():
        raise BenchError(f"no tables folder {folder}: pass tables= the folder with the recorded tables "
                         "(a checkout's leaderboard/tables)")
    return folder


@functools.cache
def _index(folder: Path) -> dict[str, tuple[Path, str]]:
    """``<task>/<study>`` -> (table file, study) over the folder's tables (recipes left out)."""
    out = {}
    for path in sorted(folder.glob("*.parquet")):
        meta_path = path.with_name(path.name + ".meta.json")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise BenchError(f"{meta_path}: missing or unreadable ({e}): the table has no metadata") from None
        for study, info in meta.get("studies", {}).items():
            if info.get("recipe") is None:
                out[f"{meta['task']}/{study}"] = (path, study)
    return out


def names(tables: Path | None = None) -> list[str]:
    """Every blackbox of the tables folder, as ``<task>/<study>``."""
    return sorted(_index(_tables(tables)))


def load(name: str, tables: Path | None = None) -> Benchmark:
    """The blackbox ``name`` (``<task>/<study>``, see :func:`names`)."""
    index = _index(_tables(tables))
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=3, cutoff=0.5)
        raise BenchError(f"no blackbox {name!r}" + (f"; did you mean {', '.join(map(repr, close))}?" if close
                                                     else f" (known: {', '.join(sorted(index))})"))
    return Benchmark(name, *index[name])


class Benchmark:
    """One recorded blackbox (see the module's text)."""

    def __init__(self, name: str, path: Path, study: str) -> None:
        from benchmark.tables import tabular
        from benchmark.tables.replay import blackboxes

        self.name, self.path, self.study = name, Path(path), study
        (self.blackbox,) = blackboxes(path, [study])
        frame, meta = tabular.load(path)
        self.meta = meta
        rows = frame[(frame.study == study) & (frame.status == "completed")]
        self._searched = [p for p in self.space.params if p.type != "fixed"]
        self.metric_columns = [c for c in tabular.metric_columns(rows) if rows[c].notna().any()]
        self.cost_columns = list(meta.get("cost_columns", ()))
        self._rows: dict[tuple[str, int], _Trial] = {}
        for (_, _, _), trial in rows.groupby(list(tabular.TRIAL), sort=True):
            trial = trial.sort_values(tabular.FIDELITY)
            first = trial.iloc[0]
            config = {p.name: plain_value(first.get(tabular.CONFIG + p.name)) for p in self._searched}
            self._rows.setdefault((_key(config), int(first.seed)), _Trial(
                {k: v for k, v in config.items() if v is not None},
                {c: trial[c].to_numpy(dtype=float) for c in ("val_auc", "wall_s", *self.metric_columns)},
                {c: plain_value(first[c]) for c in self.cost_columns}))
        self._seeds: dict[str, list[int]] = {}
        for k, seed in sorted(self._rows):
            self._seeds.setdefault(k, []).append(seed)

    @functools.cached_property
    def _chosen(self):
        """The surrogate the report card chooses (fitted on first use: it takes seconds) and its name."""
        from benchmark.tables import surrogates

        card = surrogates.report_card(self.blackbox)
        return surrogates.choose(self.blackbox, card), "knn" if card is None else card["chosen"]

    @property
    def surrogate(self):
        return self._chosen[0]

    @property
    def surrogate_name(self) -> str:
        return self._chosen[1]

    # --- the spaces -------------------------------------------------------------------------------

    @property
    def space(self) -> SearchSpace:
        return self.blackbox.space

    @property
    def configs(self) -> list[dict]:
        """The recorded configurations (searched parameters only), in the table's order."""
        return [dict(c) for c in self.blackbox.configs]

    @property
    def fidelity(self) -> Fidelity:
        return Fidelity("epoch", 1, self.blackbox.max_epochs)

    @property
    def objectives(self) -> dict[str, str]:
        """Every metric an answer carries and whether it is maximised or minimised: per epoch (``metrics``)
        and per configuration (``costs``: parameters, FLOPs, latencies, all minimised)."""
        cols = ["val_auc", "best_val_auc", *self.metric_columns, "wall_s", "cum_wall_s"]
        out = {c: DIRECTIONS.get(c, "min" if "loss" in c else "max") for c in dict.fromkeys(cols)}
        return {**out, **{c: "min" for c in self.cost_columns if c != "cost.device"}}

    def distributions(self) -> dict[str, Any]:
        """The searched parameters as Optuna distributions (conditional ones included, unconditioned)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out = {}
        for p in self._searched:
            if p.type == "float":
                out[p.name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                out[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
            else:
                out[p.name] = CategoricalDistribution(list(p.choices))
        return out

    def configspace(self):
        """The searched parameters as a ``ConfigSpace.ConfigurationSpace`` (needs the ``hpo`` extra), with
        the space's conditions."""
        import ConfigSpace as CS

        cs = CS.ConfigurationSpace(name=self.name, seed=0)
        hps = {}
        for p in self._searched:
            if p.type == "float":
                hp = CS.Float(p.name, (p.low, p.high), log=p.log)
            elif p.type == "int":
                hp = CS.Integer(p.name, (int(p.low), int(p.high)), log=p.log)
            else:
                hp = CS.Categorical(p.name, list(p.choices))
            hps[p.name] = hp
        cs.add(list(hps.values()))
        for p in self._searched:
            for parent, allowed in p.when.items():
                if parent in hps:
                    cs.add(CS.InCondition(hps[p.name], hps[parent], list(allowed)))
        return cs

    # --- answering --------------------------------------------------------------------------------

    def check(self, config: Mapping[str, Any], epoch: int | None = None) -> tuple[dict, int]:
        """``config``'s searched parameters and the epoch, or a one-line error saying what is outside."""
        if not isinstance(config, Mapping):
            raise BenchError(f"{self.name}: a configuration is a mapping of parameter to value, got {type(config).__name__}")
        known = {p.name for p in self.space.params}
        if unknown := sorted(set(config) - known):
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            raise BenchError(f"{self.name}: {unknown[0]!r} is not a parameter of this blackbox"
                             + (f"; did you mean {close[0]!r}?" if close else f" ({', '.join(p.name for p in self._searched)})"))
        active = {p.name for p in self._searched if all(config.get(k) in v for k, v in p.when.items())}
        values = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in config.items() if k in active}
        taken = self.space.point(values)
        for p in self._searched:
            if p.name in active and p.name not in taken:
                what = f"{p.name}={values[p.name]!r} is outside the space" if p.name in values else f"it has no {p.name}"
                raise BenchError(f"{self.name}: {what} ({self.space.declared()[p.name]})")
        epoch = self.fidelity.high if epoch is None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not 1 <= epoch <= self.fidelity.high:
            raise BenchError(f"{self.name}: epoch {epoch!r} is outside the fidelity range 1..{self.fidelity.high}")
        return {k: taken[k] for k in (p.name for p in self._searched) if k in taken}, int(epoch)

    def recorded_seeds(self, config: Mapping[str, Any]) -> list[int]:
        """The training seeds the table holds for ``config`` (empty: not recorded)."""
        return list(self._seeds.get(_key(self.check(config)[0]), []))

    def table_value(self, config: Mapping[str, Any], epoch: int, seed: int | None = None) -> float:
        """The recorded validation AUC of ``config`` at ``epoch`` (its first seed unless ``seed``)."""
        config, epoch = self.check(config, epoch)
        seeds = self._seeds.get(_key(config))
        if not seeds:
            raise BenchError(f"{self.name}: configuration not recorded")
        return float(self._rows[_key(config), seeds[0] if seed is None else seed].at("val_auc", epoch))

    def __call__(self, config: Mapping[str, Any], epoch: int | None = None, *, seed: int | None = 0,
                 rng: np.random.Generator | None = None) -> Answer:
        config, epoch = self.check(config, epoch)
        key = _key(config)
        seeds = self._seeds.get(key, [])
        if seed is None:
            if rng is None:
                raise BenchError(f"{self.name}: seed=None draws a recorded seed with rng: pass rng=np.random.default_rng(...)")
            seed = seeds[int(rng.integers(len(seeds)))] if seeds else int(rng.integers(3))
        if (key, seed) in self._rows:
            t = self._rows[key, seed]
            metrics = {"val_auc": t.at("val_auc", epoch), "best_val_auc": float(t.upto("val_auc", epoch).max()),
                       **{c: v for c in self.metric_columns if math.isfinite(v := t.at(c, epoch)) or v == math.inf},
                       "wall_s": t.at("wall_s", epoch), "cum_wall_s": float(np.nansum(t.upto("wall_s", epoch)))}
            return Answer(config, epoch, seed, metrics, dict(t.costs), True)
        if seeds:
            raise BenchError(f"{self.name}: seed {seed} is not recorded for this configuration (recorded: {seeds})")
        curve, times = self._predicted(key, config)
        if seed:  # another seed of an unrecorded config: the nearest repeated config's deviation of that seed
            curve = _seed_shift(self.blackbox, config, curve, seed)
        metrics = {"val_auc": float(curve[epoch - 1]), "best_val_auc": float(curve[:epoch].max()),
                   "wall_s": float(times[epoch - 1]), "cum_wall_s": float(times[:epoch].sum())}
        costs = dict(self._rows[self._nearest(config)].costs)
        return Answer(config, epoch, seed, metrics, costs, False, self.surrogate_name)

    def _predicted(self, key: str, config: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The surrogate's curve and epoch times of ``config``, kept for the next epoch's call (bounded)."""
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            if len(cache) >= 10_000:
                cache.clear()
            cache[key] = self.surrogate.predict(config)
        return cache[key]

    @functools.cached_property
    def _encoded(self) -> np.ndarray:
        return self.blackbox.encode(self.blackbox.configs)

    def _nearest(self, config: Mapping[str, Any]) -> tuple[str, int]:
        box = self.blackbox
        d = np.abs(self._encoded - box.encode([config])).sum(axis=1)
        near = box.configs[int(np.argmin(d))]
        key = _key({k: near.get(k) for k in (p.name for p in self._searched) if near.get(k) is not None})
        return key, self._seeds[key][0]

    def syne_tune(self, *, surrogate: bool = True):
        """The blackbox in syne-tune's blackbox repository (needs the ``hpo`` extra): a ``BlackboxOffline``
        of every recorded (configuration, seed, epoch) with ``val_auc`` and ``cum_wall_s`` (the simulated
        time, for ``UserBlackboxBackend(elapsed_time_attr="cum_wall_s")``), wrapped by syne-tune's own
        surrogate (``add_surrogate``) unless ``surrogate=False``."""
        import pandas as pd
        from syne_tune import config_space as cs
        from syne_tune.blackbox_repository import BlackboxOffline, add_surrogate

        domains = {"float": lambda p: (cs.loguniform if p.log else cs.uniform)(p.low, p.high),
                   "int": lambda p: (cs.lograndint if p.log else cs.randint)(int(p.low), int(p.high)),
                   "categorical": lambda p: cs.choice(list(p.choices)), "fixed": lambda p: p.value}
        config_space = {p.name: domains[p.type](p) for p in self.space.params}
        fixed = {p.name: p.value for p in self.space.params if p.type == "fixed"}
        epochs = np.arange(1, self.fidelity.high + 1)
        rows = []
        for (_, seed), t in self._rows.items():
            full = {**fixed, **t.config}
            walls = np.cumsum(np.nan_to_num(t.columns["wall_s"]))
            for e in epochs:
                i = min(e, len(walls)) - 1
                rows.append({**full, "epoch": int(e), "seed": seed, "val_auc": t.columns["val_auc"][i],
                             "cum_wall_s": float(walls[i])})

        class Offline(BlackboxOffline):  # with the fidelities syne-tune's simulator walks through
            fidelity_values = property(lambda _: epochs)

        box = Offline(pd.DataFrame(rows), config_space, fidelity_space={"epoch": cs.randint(1, self.fidelity.high)},
                      objectives_names=["val_auc", "cum_wall_s"], seed_col="seed")
        return add_surrogate(box) if surrogate else box

    def __repr__(self) -> str:
        return (f"Benchmark({self.name!r}: {len(self.blackbox.configs)} configs, {len(self._searched)} parameters, "
                f"epochs 1..{self.fidelity.high}, surrogate {self.surrogate_name})")


def _seed_shift(box, config, curve, seed: int) -> np.ndarray:
    repeated = sorted(i for i, r in box.repeats.items() if len(r[0]) >= seed)
    if not repeated:
        return curve
    x = box.encode(box.configs)
    i = repeated[int(np.argmin(np.abs(x[repeated] - box.encode([config])).sum(axis=1)))]
    seeds = box.seed_curves(i)[0]
    return np.clip(curve + seeds[min(seed, len(seeds) - 1)] - seeds[0], 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class _Trial:
    """One recorded trial: its configuration, each metric by epoch (index 0 = epoch 1) and its costs."""

    config: Mapping[str, Any]
    columns: Mapping[str, np.ndarray]
    costs: Mapping[str, Any]

    def at(self, column: str, epoch: int) -> float:
        values = self.columns[column]
        return float(values[min(epoch, len(values)) - 1])  # a curve stopped by its patience holds its last value

    def upto(self, column: str, epoch: int) -> np.ndarray:
        return self.columns[column][:epoch]


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps({k: plain_value(v) for k, v in sorted(config.items()) if plain_value(v) is not None}, sort_keys=True,
                      default=str)


# --- adapters ---------------------------------------------------------------------------------------

def optuna_objective(bench: Benchmark, *, seed: int | None = 0, rng: np.random.Generator | None = None):
    """An Optuna objective that trains ``bench`` epoch by epoch in simulation: it reports every epoch's
    validation AUC (a pruner may stop it), returns the best so far, and keeps the simulated cost in the
    trial's user attribute ``cum_wall_s``. Runs with any Optuna sampler and pruner, no Ray::

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                    pruner=optuna.pruners.SuccessiveHalvingPruner())
        study.optimize(api.optuna_objective(api.load("atlas_topo/mlp")), n_trials=50)
    """
    import optuna

    def objective(trial: optuna.Trial) -> float:
        config = {**bench.space.suggest(trial), **trial.params}  # the space's own define-by-run function
        config = {k: v for k, v in config.items() if k in trial.params}
        best, cost = -math.inf, 0.0
        for epoch in range(1, bench.fidelity.high + 1):
            a = bench(config, epoch, seed=seed, rng=rng)
            best, cost = max(best, a.metrics["val_auc"]), a.metrics["cum_wall_s"]
            trial.report(a.metrics["val_auc"], epoch)
            trial.set_user_attr("cum_wall_s", cost)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    return objective


def carps_task(bench: Benchmark, *, n_trials: int, multi_fidelity: bool = True, seed: int = 0):
    """``bench`` as a carps ``Task`` (needs the ``carps`` extra): its objective function a carps
    ``ObjectiveFunction`` over ``bench.configspace()`` whose cost is 1 - the best validation AUC up to
    the trial's budget (epochs; the full budget when the optimizer gives none) and whose virtual time is
    the recorded training time, so carps' own optimizers run on a hepbench blackbox::

        from carps.optimizers.random_search import RandomSearchOptimizer
        RandomSearchOptimizer(api.carps_task(api.load("atlas_topo/mlp"), n_trials=50)).run()
    """
    from carps.objective_functions.objective_function import ObjectiveFunction
    from carps.utils.task import FidelitySpace, InputSpace, OptimizationResources, OutputSpace, Task, TaskMetadata
    from carps.utils.trials import TrialValue

    class Objective(ObjectiveFunction):
        def __init__(self) -> None:
            super().__init__()
            self._space = bench.configspace()

        @property
        def configspace(self):
            return self._space

        def _evaluate(self, trial_info) -> TrialValue:
            epoch = bench.fidelity.high if trial_info.budget is None else int(round(trial_info.budget))
            a = bench({k: v for k, v in dict(trial_info.config).items() if v is not None}, epoch, seed=0)
            return TrialValue(cost=1.0 - a.metrics["best_val_auc"], virtual_time=a.metrics["cum_wall_s"],
                              additional_info={**a.metrics, "recorded": a.recorded})

    objective = Objective()
    fidelity = FidelitySpace(True, "epochs", 1, bench.fidelity.high) if multi_fidelity and bench.fidelity.high > 1 \
        else FidelitySpace()
    return Task(name=f"hepbench/{bench.name}", objective_function=objective,
                input_space=InputSpace(objective.configspace, fidelity),
                output_space=OutputSpace(1, ("1-val_auc",)),
                optimization_resources=OptimizationResources(n_trials=n_trials),
                metadata=TaskMetadata(domain="HEP", objective_function_approximation="tabular", has_virtual_time=True,
                                      deterministic=True, dimensions=len(bench.distributions())),
                seed=seed)


__all__ = ["Answer", "Benchmark", "Fidelity", "carps_task", "load", "names", "optuna_objective"]
