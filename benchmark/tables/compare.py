"""Ranking optimisers by replaying recorded tables (``bench compare``): every sampler x scheduler, many
seeds, on every study of every table (:mod:`benchmark.tables.replay`).

Per blackbox, the **normalised regret** of an incumbent value ``y`` is ``(hi - y) / (hi - lo)``, with
``hi`` and ``lo`` the best and worst full-budget values the table recorded (0: the table's best found;
1: no better than its worst; before a method's first result it is 1). It is read against the number of
ended trials and against simulated wall time (evenly spaced up to the time budget: the median time
random search without early stopping needs for its trials; a method that ended its trials earlier
keeps its incumbent, and the tables give the regret at a quarter of that budget, where speed shows). Across seeds, curves are aggregated by their **interquartile mean** with a bootstrap
95 % interval over seeds (syne-tune's default aggregation). The **average rank** ranks the methods at
each point per (blackbox, seed), lower regret first, ties shared, then averages. **Significance**: per
blackbox, the final regrets of every pair of methods are compared with a two-sided Mann-Whitney U
test, the p-values Holm-corrected over all pairs (as Optuna's bayesmark report does); overall, the
same on the regrets pooled over blackboxes.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from benchmark.errors import BenchError
from benchmark.tables.replay import Blackbox, Surrogate, Trace, replay
from benchmark.strategies import SAMPLERS, SCHEDULERS

ALPHA = 0.05
BOOTSTRAP = 1000
TIME_POINTS = 40
QUARTER = TIME_POINTS // 4 - 1  # the time grid's point at a quarter of the time budget


@dataclasses.dataclass(frozen=True)
class Method:
    sampler: str
    scheduler: str

    @property
    def label(self) -> str:
        return f"{self.sampler} + {self.scheduler}" if self.scheduler != "none" else self.sampler


def methods(samplers: Sequence[str] = SAMPLERS, schedulers: Sequence[str] = SCHEDULERS) -> list[Method]:
    return [Method(s, c) for s, c in itertools.product(samplers, schedulers)]


# --- arithmetic ----------------------------------------------------------------------------------

def normalised_regret(best: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(hi - best) / (hi - lo)``; a missing incumbent (NaN) counts as 1."""
    r = (hi - np.asarray(best, dtype=float)) / (hi - lo)
    return np.where(np.isnan(r), 1.0, r)


def iqm(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean: the mean of the middle half (25 % cut at each end)."""
    from scipy.stats import trim_mean

    return trim_mean(x, 0.25, axis=axis)


def bootstrap_iqm(x: np.ndarray, *, seed: int = 0, n: int = BOOTSTRAP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over axis 0 (seeds) and its bootstrap 95 % interval (resampling seeds)."""
    x = np.asarray(x, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n, len(x)))
    boots = iqm(x[idx], axis=1)
    return iqm(x), np.percentile(boots, 2.5, axis=0), np.percentile(boots, 97.5, axis=0)


def ranks(regret: np.ndarray) -> np.ndarray:
    """``regret[method, ...]`` -> the methods' ranks at every other index (1 = least regret; ties share
    the mean of their ranks)."""
    from scipy.stats import rankdata

    return rankdata(regret, axis=0, method="average")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of ``pvalues`` (family-wise error)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        adjusted[i] = running
    return adjusted


def pairwise(final: Mapping[str, np.ndarray], alpha: float = ALPHA) -> list[tuple[str, str, float]]:
    """The significant pairs ``(better, worse, Holm-adjusted p)`` among methods' final regrets (lower is
    better), by two-sided Mann-Whitney U tests."""
    from scipy.stats import mannwhitneyu

    pairs = list(itertools.combinations(final, 2))
    if not pairs:
        return []
    p = []
    for a, b in pairs:
        if np.array_equal(np.sort(final[a]), np.sort(final[b])):
            p.append(1.0)
        else:
            p.append(float(mannwhitneyu(final[a], final[b], alternative="two-sided").pvalue))
    out = []
    for (a, b), q in zip(pairs, holm(p)):
        if q < alpha:
            better, worse = (a, b) if np.median(final[a]) < np.median(final[b]) or (
                np.median(final[a]) == np.median(final[b]) and final[a].mean() < final[b].mean()) else (b, a)
            out.append((better, worse, float(q)))
    return sorted(out, key=lambda t: t[2])


# --- running the grid ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Jobs:
    """What every replay of a grid shares (sent to the pool's workers with their keys)."""

    boxes: list
    surrogates: list
    trials: int
    workers: int
    cache: Path | None
    seed_noise: bool = False  # answer with a recorded seed drawn per replay seed (surrogates.SeedNoise)


def _one(jobs: _Jobs, key: tuple[int, str, str, int]) -> tuple[tuple[int, str, str, int], Trace, float, bool]:
    """One replay, or its cached copy (with the seconds the replay took when it ran)."""
    from benchmark.tables.surrogates import SeedNoise

    b, sampler, scheduler, seed = key
    boxes, surrogate, trials, workers, cache = jobs.boxes, jobs.surrogates[b], jobs.trials, jobs.workers, jobs.cache
    if jobs.seed_noise:
        surrogate = SeedNoise(surrogate, np.random.default_rng([seed, 1]))
    path = None
    if cache is not None:
        path = Path(cache) / sampler / f"{_fingerprint(boxes[b], surrogate_key(surrogate), sampler, scheduler, seed, trials, workers)}.npz"
        if path.is_file():
            with np.load(path) as z:
                return key, Trace(*(z[f.name] for f in dataclasses.fields(Trace))), float(z["seconds"]), True
    t0 = time.perf_counter()
    trace = replay(boxes[b], sampler, scheduler, seed, trials=trials, workers=workers, surrogate=surrogate)
    seconds = time.perf_counter() - t0
    if path is not None:
        from benchmark.files import atomic_savez

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_savez(path, seconds=seconds, **dataclasses.asdict(trace))
    return key, trace, seconds, False


def surrogate_key(surrogate) -> int | str:
    """What names a surrogate in a replay's fingerprint: the nearest-neighbour one's ``k`` (as the replays
    cached before other surrogates existed), any other's ``key``."""
    return surrogate.k if isinstance(surrogate, Surrogate) else surrogate.key


def _one_thread() -> None:
    """A pool worker's torch (which Optuna's GP sampler computes with) on one thread: ``jobs`` workers share
    the CPUs (a GP replay of 100 trials on the atlas_topo mlp table: 48 s on one thread, 60-76 s on two)."""
    import torch

    torch.set_num_threads(1)


@functools.cache
def _code_digest(sampler: str) -> bytes:
    """The code a replay's result depends on, read once per process: the simulation, the surrogate and the
    encoding (``benchmark.tables.replay``), the objective and ASHA's settings, and the sampler's own entry
    of the registry (``benchmark.strategies``). A replay made by other code is another; moving or
    re-importing that code, or adding a sampler, keeps the replays already made."""
    import hashlib
    import inspect

    from benchmark import strategies
    from benchmark.tables import replay as r

    code = [inspect.getsource(o) for o in (r.Blackbox.encode, r._encode, r._same_choice, r.Surrogate, r.Rungs,
                                           r.Trace, r.Proposer, r.optuna_proposer, r.replay, strategies.Asha,
                                           strategies.Sampler.make, strategies.REGISTRY[sampler].build)]
    code += [repr(v) for v in (r.K_CHOICES, r._MISSING, strategies.OBJECTIVE, strategies.ASHA)]
    return hashlib.sha256("\n".join(code).encode()).digest()


def _fingerprint(box: Blackbox, k: int | str, *rest) -> str:
    """What a replay depends on: the blackbox's recorded arrays, configs and space, the surrogate (its key), the
    method, seed, trials and workers, the Optuna version, and the code the replay runs (:func:`_code_digest`)."""
    import hashlib
    import json

    import optuna

    h = hashlib.sha256(_code_digest(rest[0]))
    for a in (box.curves, box.times):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    h.update(json.dumps([list(box.configs), box.space.declared(), k, rest, optuna.__version__],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


@dataclasses.dataclass
class Grid:
    """Every replay of a comparison: ``traces[(blackbox index, method)]`` holds one trace per seed."""

    boxes: list[Blackbox]
    surrogates: list[Surrogate]
    methods: list[Method]
    seeds: int
    trials: int
    workers: int
    traces: dict[tuple[int, Method], list[Trace]]
    seconds: dict[Method, float]  # replay CPU time per method, summed over blackboxes and seeds
    cached: tuple[int, int] = (0, 0)  # replays read from the cache, of all replayed
    _regrets: dict = dataclasses.field(default_factory=dict, init=False, repr=False)  # (axis, blackbox) -> array, once

    def only(self, keep: Sequence[Method]) -> Grid:
        """The same replays, of the methods in ``keep`` alone."""
        mine = [m for m in self.methods if m in keep]
        return dataclasses.replace(self, methods=mine, traces={k: v for k, v in self.traces.items() if k[1] in mine},
                                   seconds={m: v for m, v in self.seconds.items() if m in mine})

    def regret_by_trials(self, b: int) -> np.ndarray:
        """``[method, seed, trial]``: normalised regret after each ended trial."""
        return self._regret("trials", b, lambda t: t.best_after_trials(self.trials))

    def time_grid(self, b: int) -> np.ndarray:
        """Evenly spaced up to the time budget: random search's median time for its trials (without early
        stopping), else the median over every method's replays."""
        baseline = Method("random", "none")
        ends = [t.time[-1] for t in self.traces.get((b, baseline), [])] or \
            [t.time[-1] for m in self.methods for t in self.traces[b, m]]
        return np.linspace(1, TIME_POINTS, TIME_POINTS) * float(np.median(ends)) / TIME_POINTS

    def regret_by_time(self, b: int) -> np.ndarray:
        """``[method, seed, time point]`` on :meth:`time_grid`."""
        grid = self.time_grid(b)
        return self._regret("time", b, lambda t: t.best_at(grid))

    def _regret(self, axis: str, b: int, incumbent) -> np.ndarray:
        if (axis, b) not in self._regrets:
            lo, hi = self.boxes[b].finals.min(), self.boxes[b].finals.max()
            self._regrets[axis, b] = np.array([[normalised_regret(incumbent(t), lo, hi) for t in self.traces[b, m]]
                                               for m in self.methods])
        return self._regrets[axis, b]


def run_grid(boxes: Sequence[Blackbox], method_list: Sequence[Method], *, seeds: int = 20, trials: int = 100,
             workers: int = 2, jobs: int = 1, surrogates: Sequence[Surrogate] | None = None,
             cache: Path | None = None, progress=None, seed_noise: bool = False) -> Grid:
    """Replay every method with seeds ``0 .. seeds-1`` on every blackbox (``jobs`` processes). A model
    without a fidelity has nothing for ASHA to stop: its ASHA replays are the same as without. With
    ``cache``, each replay is kept there and read back instead of replayed again (an interrupted
    comparison goes on where it stopped; a new table replays only its own)."""
    boxes = list(boxes)
    surrogates = list(surrogates) if surrogates is not None else [Surrogate.fit(b) for b in boxes]
    keys, copies = [], []
    for b, box in enumerate(boxes):
        for m in method_list:
            if m.scheduler != "none" and box.max_epochs == 1 and Method(m.sampler, "none") in method_list:
                copies.append((b, m))
                continue
            keys += [(b, m.sampler, m.scheduler, s) for s in range(seeds)]
    one = functools.partial(_one, _Jobs(boxes, surrogates, trials, workers, cache, seed_noise))
    out: dict[tuple[int, Method], list] = {}
    seconds: dict[Method, float] = {m: 0.0 for m in method_list}
    hits = 0
    if jobs > 1:
        gp = any(m.sampler == "gp" for m in method_list)  # the only one that computes with torch
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_one_thread if gp else None) as pool:
            results = pool.imap_unordered(one, keys, chunksize=4)
            for n, result in enumerate(results, 1):
                hits += _collect(out, seconds, *result)
                if progress:
                    progress(n, len(keys))
    else:
        for n, key in enumerate(keys, 1):
            hits += _collect(out, seconds, *one(key))
            if progress:
                progress(n, len(keys))
    traces = {k: [v[s] for s in range(seeds)] for k, v in out.items()}
    for b, m in copies:
        traces[b, m] = traces[b, Method(m.sampler, "none")]
    return Grid(boxes, surrogates, list(method_list), seeds, trials, workers, traces, seconds, (hits, len(keys)))


def _collect(out, seconds, key, trace, s, hit) -> int:
    b, sampler, scheduler, seed = key
    m = Method(sampler, scheduler)
    out.setdefault((b, m), {})[seed] = trace
    seconds[m] += s
    return int(hit)


# --- does the replay tell the truth? -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Live:
    """Live searches (real training) of one blackbox's study with one method: each run's incumbent
    after each ended trial, in the order the trials ended."""

    box: int
    method: Method
    runs: tuple[str, ...]
    curves: tuple[np.ndarray, ...]


def live_searches(sources: Sequence[Path], boxes: Sequence[Blackbox]) -> list[Live]:
    """The searches in ``sources`` (``bench run`` directories, or the tables ``bench export`` made of
    them) of a blackbox's task and study, grouped by the method their command used (``--sampler``,
    ``--scheduler``). A search on other data or another training size than its blackbox's is refused."""
    from benchmark.tables import tabular

    paths = [Path(s) for s in sources]
    files = [p for p in paths if p.is_file()]
    dirs = [p for p in paths if p not in files]
    tables = [tabular.load(f) for f in files] + ([(t.frame, t.metadata) for t in tabular.build(dirs)] if dirs else [])
    groups: dict[tuple[int, Method], list[tuple[str, np.ndarray]]] = {}
    for frame, meta in tables:
        for (run, study), trials in frame[frame.recipe.isna()].groupby(["run", "study"], sort=True):
            b = next((i for i, x in enumerate(boxes) if (x.task, x.study) == (meta["task"], study)), None)
            if b is None:
                continue
            n_train = int(trials.n_train.iloc[0])
            if n_train != boxes[b].n_train:
                raise BenchError(f"live run {run}: {n_train:,} training rows, but {boxes[b].name} was recorded "
                                 f"with {boxes[b].n_train:,}: a live check needs the table's training size")
            invocations = meta.get("runs", {}).get(run, {}).get("invocations")
            if not invocations:
                raise BenchError(f"live run {run}: its command is not recorded (run.json), so its method is unknown")
            spec = invocations[0]["spec"]
            ends = trials.groupby("trial_id").agg(end=("reported_at", "max"), value=(tabular.OBJECTIVE, "max"))
            ends = ends.dropna().sort_values("end")
            groups.setdefault((b, Method(spec["sampler"], spec["scheduler"])), []).append(
                (run, np.maximum.accumulate(ends["value"].to_numpy())))
    return [Live(b, m, tuple(r for r, _ in runs), tuple(c for _, c in runs)) for (b, m), runs in groups.items()]


def live_check(grid: Grid, live: Live) -> dict:
    """Where the live searches' incumbents lie against the replays of the same method: the share of
    (run, trial count) points inside the replays' range over seeds (min to max) and inside their 10-90 %
    band, and at the last trial count every live search shares, its values beside the replays'."""
    replays = np.array([t.best_after_trials(grid.trials) for t in grid.traces[live.box, live.method]])
    n = min(grid.trials, *(len(c) for c in live.curves))
    lo, hi = np.nanmin(replays[:, :n], axis=0), np.nanmax(replays[:, :n], axis=0)
    p10, p90 = np.nanpercentile(replays[:, :n], [10, 90], axis=0)
    pts = np.array([c[:n] for c in live.curves])
    return {"blackbox": grid.boxes[live.box].name, "method": live.method.label, "runs": live.runs, "trials": n,
            "inside_range": float(((pts >= lo - 1e-9) & (pts <= hi + 1e-9)).mean()),
            "inside_band": float(((pts >= p10 - 1e-9) & (pts <= p90 + 1e-9)).mean()),
            "live_final": [float(c[n - 1]) for c in live.curves],
            "replay_final": (float(lo[-1]), float(iqm(replays[:, n - 1])), float(hi[-1]))}


# --- the report ----------------------------------------------------------------------------------

def _ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def final_regrets(grid: Grid) -> tuple[dict[int, dict[str, np.ndarray]], dict[int, dict[str, np.ndarray]]]:
    """Per blackbox, per method label: every seed's regret after all trials, and at a quarter of the time
    budget (where the methods' speed shows; at the full budget most have ended their trials)."""
    by_trials, by_time = {}, {}
    for b in range(len(grid.boxes)):
        rt, rs = grid.regret_by_trials(b)[:, :, -1], grid.regret_by_time(b)[:, :, QUARTER]
        by_trials[b] = {m.label: rt[i] for i, m in enumerate(grid.methods)}
        by_time[b] = {m.label: rs[i] for i, m in enumerate(grid.methods)}
    return by_trials, by_time


def mean_ranks(grid: Grid, axis: str = "trials") -> np.ndarray:
    """``[method, point]``: ranks at each trial count (or time-grid point), averaged over blackboxes and seeds."""
    per_box = [ranks(grid.regret_by_trials(b) if axis == "trials" else grid.regret_by_time(b))
               for b in range(len(grid.boxes))]
    return np.concatenate(per_box, axis=1).mean(axis=1)


def time_to_reach(trace: Trace, target: float) -> tuple[float, int] | None:
    """The simulated time and epochs trained (over all trials) when the incumbent first reaches ``target``."""
    best = np.maximum.accumulate(trace.value)
    hit = np.flatnonzero(best >= target - 1e-12)
    return None if not len(hit) else (float(trace.time[hit[0]]), int(hit[0]) + 1)


def efficiency(grid: Grid, fast: Method = Method("tpe", "asha"), slow: Method = Method("random", "none")) -> list[dict]:
    """Per blackbox with a fidelity: ``slow``'s final incumbent (IQM over seeds), and the simulated time and
    epochs ``fast`` needs to reach it (median over the seeds that do) beside ``slow``'s own."""
    rows = []
    for b, box in enumerate(grid.boxes):
        if box.max_epochs == 1 or (b, fast) not in grid.traces or (b, slow) not in grid.traces:
            continue
        target = float(iqm(np.array([t.value.max() for t in grid.traces[b, slow]])))
        row = {"blackbox": box.name, "target": target}
        for name, m in (("fast", fast), ("slow", slow)):
            reached = [r for r in (time_to_reach(t, target) for t in grid.traces[b, m]) if r is not None]
            row[name] = (len(reached), float(np.median([r[0] for r in reached])) if reached else None,
                         float(np.median([r[1] for r in reached])) if reached else None)
        rows.append(row)
    return rows


def significant(grid: Grid) -> dict[int | None, set[tuple[str, str]]]:
    """The significant pairs ``(better, worse)`` at the last trial count, per blackbox, and pooled over
    blackboxes (key None)."""
    by_trials = final_regrets(grid)[0]
    out: dict[int | None, set[tuple[str, str]]] = {b: {(x, y) for x, y, _ in pairwise(f)} for b, f in by_trials.items()}
    pooled = {m.label: np.concatenate([f[m.label] for f in by_trials.values()]) for m in grid.methods}
    out[None] = {(x, y) for x, y, _ in pairwise(pooled)}
    return out


def agreement(a: Mapping[int | None, set], b: Mapping[int | None, set]) -> tuple[int, int, int]:
    """The significant pairwise differences per blackbox of one grid, ``a`` (:func:`significant`'s): how
    many there are, how many ``b`` (of the same replays with other surrogates) has the same way, and how
    many it has the other way."""
    boxes = [box for box in a if box is not None]
    return (sum(len(a[box]) for box in boxes), sum(len(a[box] & b[box]) for box in boxes),
            sum((y, x) in b[box] for box in boxes for x, y in a[box]))


def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def figures(grid: Grid, out_dir: Path, stem: str = "optimizers") -> list[Path]:
    """Regret (IQM, bootstrap band) against trials and against simulated time, one panel per blackbox,
    and the average rank against trials."""
    from benchmark.publish.plots import figure, save

    paths = []
    n = len(grid.boxes)
    cols = min(4, n)
    rows = -(-n // cols)
    for axis, label in (("trials", "trials ended"), ("time", "simulated wall time (s)")):
        fig = figure(figsize=(4.2 * cols, 3.4 * rows + 0.6))
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for b, box in enumerate(grid.boxes):
            ax = axes[b]
            regret = grid.regret_by_trials(b) if axis == "trials" else grid.regret_by_time(b)
            x = np.arange(1, grid.trials + 1) if axis == "trials" else grid.time_grid(b)
            for i, m in enumerate(grid.methods):
                mid, low, high = bootstrap_iqm(regret[i])
                style = dict(color=f"C{SAMPLERS.index(m.sampler) % 10}", ls="-" if m.scheduler == "none" else "--")
                ax.plot(x, mid, lw=1.4, label=m.label, **style)
                ax.fill_between(x, low, high, alpha=0.12, color=style["color"], lw=0)
            ax.set(title=f"{box.name} (n_train {box.n_train:,})", xlabel=label, ylabel="normalised regret (IQM)",
                   xscale="log" if axis == "trials" else "linear")
            ax.set_yscale("symlog", linthresh=0.01)
            ax.grid(alpha=0.3)
        for ax in axes[n:]:
            ax.set_visible(False)
        axes[0].legend(fontsize=7, ncol=2)
        paths.append(save(fig, out_dir / f"{stem}_regret_{axis}.png"))
    fig = figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    r = mean_ranks(grid)
    for i, m in enumerate(grid.methods):
        ax.plot(np.arange(1, grid.trials + 1), r[i], lw=1.4, label=m.label,
                color=f"C{SAMPLERS.index(m.sampler) % 10}", ls="-" if m.scheduler == "none" else "--")
    ax.set(xlabel="trials ended", ylabel="average rank (1 = best)", xscale="log",
           title=f"average rank over {len(grid.boxes)} blackboxes x {grid.seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    paths.append(save(fig, out_dir / f"{stem}_rank.png"))
    return paths


def markdown(grid: Grid, *, command: str, wall_s: float, holdouts: Sequence[Mapping], figure_paths: Sequence[Path],
             stability: str | None = None, sources: Mapping[str, str] | None = None,
             checks: Sequence[Mapping] = (), confirmed: Mapping[int | None, set[tuple[str, str]]] | None = None) -> str:
    """``leaderboard/optimizers.md``: blackboxes and surrogates, the overall ranking, each blackbox's
    final regrets and significant differences, the search-efficiency row, the stability check.
    ``confirmed``: the significant pairs (:func:`significant`) of the replays with the second surrogates;
    a difference found under both is marked as such."""
    def mark(box: int | None, better: str, worse: str) -> str:
        return " (both surrogates)" if confirmed is not None and (better, worse) in confirmed.get(box, ()) else ""

    from benchmark.text import markdown as table

    labels = [m.label for m in grid.methods]
    by_trials, by_time = final_regrets(grid)
    out = ["# Optimisers on particle-physics workloads\n",
           f"Every sampler x scheduler replayed against the recorded tables below, seeds 0-{grid.seeds - 1}, "
           f"{grid.trials} trials each, {grid.workers} trials at a time in simulated time (`benchmark/tables/replay.py`, "
           f"`benchmark/tables/compare.py`). Made by `{command}` in {wall_s:.0f} s on this machine"
           + (f", {grid.cached[0]} of its {grid.cached[1]} replays read from the cache" if grid.cached[0] else "")
           + " (each method's replay time from scratch, all blackboxes and seeds: "
           + ", ".join(f"{m.label} {s:.1f} s" for m, s in grid.seconds.items()) + ").\n",
           "Normalised regret: 0 is the table's best full-budget configuration, 1 its worst. IQM: interquartile "
           "mean over seeds, [bootstrap 95 % interval]. Ranks: per blackbox and seed, 1 = least regret.\n",
           "## Blackboxes and their surrogates\n"]
    rows = []
    for box, h in zip(grid.boxes, holdouts):
        rows.append([box.name, box.task, box.study, f"{box.n_train:,}", len(box.configs), box.failed, box.max_epochs,
                     f"{box.times.sum() / 3600:.2f}", (sources or {}).get(box.name, ""), h["k"], f"{h['mae']:.4f}",
                     f"{h['relative']:.2f}", f"{h['spearman']:.3f}"])
    out.append(table([["blackbox", "task", "study", "n_train", "configs", "failed", "epochs",
                               "recorded trial hours", "table", "surrogate", "held-out MAE", "MAE / std", "Spearman"],
                              *rows]))
    out.append("\nHeld-out: 5-fold cross-validation of the final best validation AUC by configuration "
               "(`Surrogate.holdout`; for the forest, `benchmark.tables.surrogates.report_card`).\n")
    # overall ranking
    r_trials, r_time = mean_ranks(grid)[:, -1], mean_ranks(grid, "time")[:, QUARTER]
    pooled = {lab: np.concatenate([by_trials[b][lab] for b in by_trials]) for lab in labels}
    signif = pairwise(pooled)
    rows = []
    for i, lab in enumerate(labels):
        mid, low, high = bootstrap_iqm(pooled[lab])
        beats = [w + mark(None, lab, w) for bt, w, _ in signif if bt == lab]
        rows.append([lab, f"{r_trials[i]:.2f}", f"{r_time[i]:.2f}", _ci(mid, low, high), ", ".join(beats) or "-"])
    rows.sort(key=lambda row: float(row[1]))
    out += [f"\n## Overall, after {grid.trials} trials\n",
            table([["method", f"average rank at {grid.trials} trials", "average rank at 1/4 of the time budget",
                            "IQM regret, pooled", "significantly better than (Holm-adjusted Mann-Whitney, pooled)"], *rows])]
    if stability:
        out.append(f"\nStability: {stability}\n")
    for path in figure_paths:
        out.append(f"\n![{path.stem}]({path.name})\n")
    out.append("\n## Per blackbox: final regret\n")
    for b, box in enumerate(grid.boxes):
        rows = []
        for lab in labels:
            rows.append([lab, _ci(*bootstrap_iqm(by_trials[b][lab])), _ci(*bootstrap_iqm(by_time[b][lab]))])
        out += [f"\n### {box.name}\n", table([["method", f"IQM regret at {grid.trials} trials",
                                                      "IQM regret at 1/4 of the time budget"], *rows])]
        sig = pairwise(by_trials[b])
        out.append("\nSignificant at " + f"{grid.trials} trials (Holm-adjusted p < {ALPHA}): "
                   + ("; ".join(f"{a} < {w} (p {p:.1e}){mark(b, a, w)}" for a, w, p in sig[:12]) or "none")
                   + (f"; and {len(sig) - 12} more" if len(sig) > 12 else "") + ".\n")
    if checks:
        rows = [[c["blackbox"], c["method"], len(c["runs"]), c["trials"], f"{c['inside_range']:.0%}",
                 f"{c['inside_band']:.0%}", ", ".join(f"{v:.4f}" for v in c["live_final"]),
                 "{:.4f} / {:.4f} / {:.4f}".format(*c["replay_final"])] for c in checks]
        out += ["\n## Does the replay tell the truth? Live searches against their replays\n",
                "Live: `bench run` searches with real training on the table's data and budget, one per sampler "
                "seed. Each one's incumbent (best validation AUC) after each ended trial, against the replays of "
                "the same method.\n",
                table([["blackbox", "method", "live runs", "trials", "points inside the replays' range",
                            "inside their 10-90 % band", "live incumbents at the end",
                            "replays at the end: min / IQM / max"], *rows])]
    eff = efficiency(grid)
    if eff:
        rows = []
        for e in eff:
            (nf, tf, ef), (ns, ts, es) = e["fast"], e["slow"]
            rows.append([e["blackbox"], f"{e['target']:.4f}", f"{nf}/{grid.seeds}", _num(tf), _num(ef),
                         f"{ns}/{grid.seeds}", _num(ts), _num(es), _num(ts / tf if tf and ts else None, 2)])
        out += ["\n## Search efficiency: TPE + ASHA against random search without early stopping\n",
                "Target: random search's final best validation AUC (IQM over seeds). Time and epochs: median over "
                "the seeds that reach it.\n",
                table([["blackbox", "target", "tpe + asha reach", "its time (s)", "its epochs", "random reach",
                                "its time (s)", "its epochs", "speed-up (time)"], *rows])]
    return "\n".join(out) + "\n"


def _order(rank: np.ndarray, method_list: Sequence[Method]) -> str:
    return ", ".join(m.label for _, m in sorted(zip(rank, method_list), key=lambda t: t[0]))


def _num(v, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _label(s) -> str:
    return f"knn k={s.k}" if isinstance(s, Surrogate) else "forest"


def _surrogates(boxes: Sequence[Blackbox], how: str):
    """Per blackbox the replays' surrogate, its held-out error (as :meth:`Surrogate.holdout` reports it,
    ``k`` naming the surrogate) and a function giving the second surrogates of the stability check."""
    from benchmark.tables import surrogates as more

    if how == "knn":
        chosen = [Surrogate.fit(b) for b in boxes]
        holdouts = [{**s.holdout(), "k": f"knn k={s.k}"} for s in chosen]
        return chosen, holdouts, lambda: [Surrogate.fit(b, place=1) for b in boxes]
    cards = [more.report_card(b) for b in boxes]
    chosen = [more.choose(b, c) for b, c in zip(boxes, cards)]
    holdouts = []
    for b, c, s in zip(boxes, cards, chosen):
        if c is None:
            holdouts.append({**s.holdout(), "k": _label(s)})
            continue
        f = c[c["chosen"]]["final"]
        holdouts.append({"k": _label(s), "mae": f["mae"], "relative": f["mae"] / float(b.finals.std() or 1.0),
                         "spearman": f["spearman"], "n": c["configs"]})

    def others():
        return [Surrogate.fit(b) if not isinstance(s, Surrogate) else more.ForestSurrogate(b)
                for b, s in zip(boxes, chosen)]

    return chosen, holdouts, others


def build(tables: Sequence[Path], out: Path, *, samplers: Sequence[str] = SAMPLERS,
          schedulers: Sequence[str] = SCHEDULERS, seeds: int = 20, trials: int = 100, workers: int = 2,
          jobs: int = 1, stability: bool = True, stability_samplers: Sequence[str] | None = None,
          live: Sequence[Path] = (), cache: Path | None = None, command: str = "bench compare", log=print,
          surrogate: str = "knn", seed_noise: bool = False) -> Path:
    """Replay every method on every searched study of ``tables``; write the page ``out`` and its figures
    beside it. With ``stability``, the grid (its methods of ``stability_samplers``, None: all) is replayed
    again with a second surrogate per blackbox (the ``k`` of the next-least held-out error), and the page
    marks the significant differences found with both and says how far the methods' average ranks moved
    (Kendall's tau of the two orders). ``surrogate``: ``knn`` (the nearest-neighbour surrogate, the second
    one its runner-up ``k``) or ``chosen`` (per blackbox the report card's choice, the second one the other
    kind: ``benchmark.tables.surrogates``); ``seed_noise``: answers drawn among the recorded seeds."""
    from benchmark.files import atomic_write_text
    from benchmark.tables.replay import blackboxes

    t0 = time.perf_counter()
    boxes, sources = [], {}
    for path in tables:
        for box in blackboxes(path):
            boxes.append(box)
            sources[box.name] = Path(path).name
    if surrogate not in ("knn", "chosen"):
        raise BenchError(f"--surrogate {surrogate!r}: knn or chosen")
    surrogates, holdouts, others = _surrogates(boxes, surrogate)
    for box, h in zip(boxes, holdouts):
        log(f"{box.name}: {len(box.configs)} configs x {box.max_epochs} epoch(s); surrogate {h['k']}, "
            f"held-out MAE {h['mae']:.4f} ({h['relative']:.2f} of the spread), Spearman {h['spearman']:.3f}")
    method_list = methods(samplers, schedulers)

    def progress(n, total):
        if n == total or n % max(1, total // 10) == 0:
            log(f"  {n}/{total} replays, {time.perf_counter() - t0:.0f} s")

    grid = run_grid(boxes, method_list, seeds=seeds, trials=trials, workers=workers, jobs=jobs,
                    surrogates=surrogates, cache=cache, progress=progress, seed_noise=seed_noise)
    check = confirmed = None
    if stability:
        other = others()
        log("stability: the same replays with a second surrogate per blackbox")
        again = [m for m in method_list if stability_samplers is None or m.sampler in stability_samplers]
        left_out = list(dict.fromkeys(m.sampler for m in method_list if m not in again))
        alt = run_grid(boxes, again, seeds=seeds, trials=trials, workers=workers, jobs=jobs, surrogates=other,
                       cache=cache, progress=progress, seed_noise=seed_noise)
        base = grid.only(again)
        a, b = mean_ranks(base)[:, -1], mean_ranks(alt)[:, -1]
        found, confirmed = significant(base), significant(alt)
        total, kept, flipped = agreement(found, confirmed)
        pooled = found[None]
        errors = ", ".join(f"{_label(s)} ({s.holdout()['mae'] if isinstance(s, Surrogate) else float('nan'):.4f})"
                           for s in other) if surrogate == "knn" else ", ".join(_label(s) for s in other)
        among = " among them" if left_out else ""
        check = (
            (f"the same replays with a second surrogate per blackbox, the k of the next-least held-out error "
             f"(k and its MAE, in the table's order: {errors})" if surrogate == "knn" else
             f"the same replays with the other surrogate per blackbox (in the table's order: {errors})")
            + (f", of every method but {', '.join(left_out)} (whose differences rest on the first surrogate alone; "
               f"the ranks below are among the others)" if left_out else "")
            + f". Of the {total} significant differences{among} per "
            f"blackbox above, {kept} are significant the same way with it and {flipped} the other way; "
            + (f"of the {len(pooled)} pooled ones{among}, {len(pooled & confirmed[None])} the same way and "
               f"{sum((y, x) in confirmed[None] for x, y in pooled)} the other way. " if pooled else
               f"no pooled difference{among} is significant. ")
            + "Only the differences marked "
            f"*(both surrogates)* are conclusions of this comparison; the others depend on how the table is "
            f"interpolated. The methods' average ranks at {trials} trials keep Kendall's tau = {kendall(a, b):.2f} "
            f"(1: the same order). Order here: {_order(a, again)}; with the second surrogate: "
            f"{_order(b, again)}.")
    checks = []
    for search in live_searches(live, boxes) if live else []:
        if (search.box, search.method) not in grid.traces:
            log(f"live runs {', '.join(search.runs)}: {search.method.label} is not among the methods compared")
            continue
        checks.append(live_check(grid, search))
        log(f"live {search.method.label} on {checks[-1]['blackbox']}: {checks[-1]['inside_range']:.0%} of the points "
            "inside the replays' range")
    paths = figures(grid, Path(out).parent, stem=Path(out).stem)
    page = markdown(grid, command=command, wall_s=time.perf_counter() - t0, holdouts=holdouts,
                    figure_paths=paths, stability=check, sources=sources, checks=checks, confirmed=confirmed)
    atomic_write_text(Path(out), page)
    return Path(out)
