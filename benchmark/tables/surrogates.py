"""The replay's surrogates beside the nearest-neighbour one (:class:`benchmark.tables.replay.Surrogate`), their
report card, and seed noise.

* :class:`ForestSurrogate`: random forests (scikit-learn, 300 trees) over the encoded configuration, one
  predicting the whole curve, one the log of each epoch's time (multi-output regressors: the epoch is an
  output, not a feature; two forests so that the times' spread does not steer the splits that rank the
  curves), trained on every recorded seed. Model-based surrogates of this kind
  are what YAHPO Gym, JAHS-Bench-201 and PD1 ship; a recorded configuration answers its own curve.
* :func:`report_card`: for each surrogate, held out by configuration (5 folds; a configuration's seed
  repeats are held out with it), the Spearman and Kendall correlations, the mean absolute error and R^2
  of the final best validation AUC, and the Spearman, MAE and R^2 of every (configuration, epoch) value
  of the curve; beside them the blackbox's noise ceiling (:meth:`Blackbox.noise_ceiling`).
  :func:`choose` takes the surrogate with the higher held-out Spearman of the final value.
* :class:`SeedNoise`: a surrogate whose answers carry the seed-to-seed spread the table recorded. A
  recorded configuration with seed repeats answers one of its recorded seeds, drawn by the caller's
  random state; any other configuration answers the surrogate's prediction plus one seed's deviation
  from the seed mean of the nearest configuration recorded with repeats.

Every surrogate here has ``predict(config) -> (curve, epoch times)`` and a ``key`` that names it in a
replay's cache fingerprint (``benchmark.tables.compare``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark.tables.replay import Blackbox, Surrogate

FOLDS, TREES = 5, 300


def _subset(box: Blackbox, rows: np.ndarray) -> Blackbox:
    """``box`` with only the configurations ``rows`` (and their seed repeats)."""
    rows = [int(r) for r in rows]
    return dataclasses.replace(box, configs=tuple(box.configs[r] for r in rows), curves=box.curves[rows],
                               times=box.times[rows],
                               repeats={j: box.repeats[r] for j, r in enumerate(rows) if r in box.repeats})


class _Forest:
    """A fitted scikit-learn random forest whose trees' node arrays lie side by side, so that one row walks
    all trees at once in numpy (scikit-learn's own predict loops over the trees in Python: ~10 ms a call
    for 300 trees); the same values as its ``predict``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, trees: int, seed: int) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.forest = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1, min_samples_leaf=2).fit(
            x, y[:, 0] if y.shape[1] == 1 else y)  # one output: the 1-d target scikit-learn expects
        fitted = [e.tree_ for e in self.forest.estimators_]
        n, t = max(tr.node_count for tr in fitted), len(fitted)
        self.feature = np.full((t, n), -2, dtype=np.int64)
        self.threshold = np.zeros((t, n))
        self.children = np.zeros((2, t, n), dtype=np.int64)
        self.value = np.zeros((t, n, y.shape[1]))
        for i, tr in enumerate(fitted):
            c = tr.node_count
            self.feature[i, :c], self.threshold[i, :c] = tr.feature, tr.threshold
            self.children[0, i, :c], self.children[1, i, :c] = tr.children_left, tr.children_right
            self.value[i, :c] = tr.value[:, :, 0]
        self.depth = max(tr.max_depth for tr in fitted)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """One row ``x``, compared in float32 as scikit-learn's trees compare it."""
        x = x.astype(np.float32).astype(np.float64)
        rows = np.arange(len(self.feature))
        node = np.zeros(len(rows), dtype=np.int64)
        for _ in range(self.depth):
            f = self.feature[rows, node]
            inner = f >= 0
            right = x[np.where(inner, f, 0)] > self.threshold[rows, node]
            node = np.where(inner, self.children[right.astype(int), rows, node], node)
        return self.value[rows, node].mean(axis=0)


@dataclasses.dataclass
class ForestSurrogate:
    """Random forests from the encoded configuration to the curve and to the log epoch times (module text):
    two forests, so that the times' spread does not steer the splits that rank the curves."""

    blackbox: Blackbox
    trees: int = TREES
    seed: int = 0

    def __post_init__(self) -> None:
        box = self.blackbox
        rows, curves, times = [], [], []
        for i in range(len(box.configs)):
            c, t = box.seed_curves(i)
            rows += [i] * len(c)
            curves.append(c)
            times.append(np.log(np.maximum(t, 1e-6)))
        self._x = box.encode(box.configs)
        self._curves, self._times = np.vstack(curves), np.vstack(times)
        self._curve = _Forest(self._x[rows], self._curves, trees=self.trees, seed=self.seed)
        self._time = _Forest(self._x[rows], self._times, trees=self.trees, seed=self.seed)

    @property
    def key(self) -> str:
        """The forests' code, settings and training data: what their answers depend on."""
        h = hashlib.sha256((inspect.getsource(ForestSurrogate) + inspect.getsource(_Forest)
                            + repr((self.trees, self.seed))).encode())
        for a in (self._x, self._curves, self._times):
            h.update(np.ascontiguousarray(a).tobytes())
        return "forest-" + h.hexdigest()[:16]

    def predict(self, config: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        x = self.blackbox.encode([config])
        hit = np.flatnonzero(np.abs(self._x - x).sum(axis=1) < 1e-12)
        if len(hit):  # a recorded configuration: its own (first) seed's curve
            return self.blackbox.curves[hit[0]], self.blackbox.times[hit[0]]
        return np.clip(self._curve.predict(x[0]), 0.0, 1.0), np.exp(self._time.predict(x[0]))


def knn_key(s: Surrogate) -> int:
    return s.k  # as the replays cached before the forest existed


def _fit(kind: str, box: Blackbox, k: int | None = None):
    return Surrogate(box, k) if kind == "knn" else ForestSurrogate(box)


#: The fewest configurations a report card cross-validates.
MIN_CONFIGS = 10


def report_card(box: Blackbox, *, k: int | None = None, folds: int = FOLDS, seed: int = 0) -> dict[str, Any] | None:
    """Held-out quality of both surrogates on ``box`` (see the module's text) and its noise ceiling; None
    for a blackbox of fewer than :data:`MIN_CONFIGS` configurations. ``k``: the nearest-neighbour
    surrogate's (default: :meth:`Surrogate.fit`'s choice on all of ``box``)."""
    from scipy.stats import kendalltau, spearmanr

    n = len(box.configs)
    if n < MIN_CONFIGS:
        return None
    k = k or Surrogate.fit(box).k
    order = np.random.default_rng(seed).permutation(n)
    card: dict[str, Any] = {"configs": n, "epochs": box.max_epochs, "k": k,
                            "repeated": sum(len(r[0]) > 0 for r in box.repeats.values())}
    true_curves = box.curves
    for kind in ("knn", "forest"):
        predicted = np.empty_like(true_curves)
        for f in range(folds):
            held = np.sort(order[f::folds])
            rest = np.setdiff1d(np.arange(n), held)
            model = _fit(kind, _subset(box, rest), min(k, len(rest) - 1))
            for i in held:
                predicted[i] = model.predict(box.configs[i])[0]
        pf, tf = predicted.max(axis=1), true_curves.max(axis=1)
        card[kind] = {
            "final": {"spearman": float(spearmanr(pf, tf).statistic), "kendall": float(kendalltau(pf, tf).statistic),
                      "mae": float(np.abs(pf - tf).mean()), "r2": _r2(pf, tf)},
            "curve": {"spearman": float(spearmanr(predicted.ravel(), true_curves.ravel()).statistic),
                      "mae": float(np.abs(predicted - true_curves).mean()), "r2": _r2(predicted.ravel(), true_curves.ravel())},
        }
    card["chosen"] = "forest" if card["forest"]["final"]["spearman"] > card["knn"]["final"]["spearman"] else "knn"
    card["noise_ceiling"] = box.noise_ceiling()
    return card


def _r2(predicted: np.ndarray, true: np.ndarray) -> float:
    ss = float(((true - true.mean()) ** 2).sum())
    return float(1 - ((true - predicted) ** 2).sum() / ss) if ss > 0 else float("nan")


def choose(box: Blackbox, card: Mapping[str, Any] | None = None):
    """The surrogate the report card chose for ``box`` (:func:`report_card`), fitted on all of it; the
    nearest-neighbour one where ``box`` is too small for a card."""
    card = card or report_card(box)
    return Surrogate.fit(box) if card is None else _fit(card["chosen"], box, card["k"])


@dataclasses.dataclass
class SeedNoise:
    """``surrogate``'s answers with the recorded seed-to-seed spread, drawn by ``rng`` (module text)."""

    surrogate: Any
    rng: np.random.Generator

    def __post_init__(self) -> None:
        box = self.surrogate.blackbox
        self._repeated = np.array(sorted(i for i, r in box.repeats.items() if len(r[0])), dtype=int)
        self._x = box.encode(box.configs)

    @property
    def blackbox(self) -> Blackbox:
        return self.surrogate.blackbox

    @property
    def key(self) -> str:
        base = self.surrogate.key if hasattr(self.surrogate, "key") else knn_key(self.surrogate)
        rep = self.blackbox.repeats
        h = hashlib.sha256(inspect.getsource(SeedNoise).encode())
        for i in sorted(rep):
            h.update(np.ascontiguousarray(rep[i][0], dtype=float).tobytes())
        return f"{base}+noise-{h.hexdigest()[:16]}"

    def predict(self, config: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        curve, times = self.surrogate.predict(config)
        if not len(self._repeated):
            return curve, times
        d = np.abs(self._x[self._repeated] - self.blackbox.encode([config])).sum(axis=1)
        near = int(self._repeated[int(np.argmin(d))])
        seeds, seed_times = self.blackbox.seed_curves(near)
        j = int(self.rng.integers(len(seeds)))
        if d.min() < 1e-12:  # a recorded configuration with repeats: one of its recorded seeds
            return seeds[j], seed_times[j]
        return np.clip(curve + seeds[j] - seeds.mean(axis=0), 0.0, 1.0), times
