"""How far a task's synthetic data is from real data: ``bench data compare TASK --real PATH``.

Every image is compared in its raw units but on scale-free quantities, each energy channel of a crop
divided by that channel's total (the *energy-normalised* crop): a real file's units (GeV, ADC counts,
or a scaled copy) then do not matter. Per class and channel:

* **shape statistics**, the median over the samples, real beside synthetic: the largest cell's share of
  the channel's energy, the share of the 3x3 window around it, the energy-weighted widths (rows and
  columns) over the 5x5 window around it, and the lit cells (non-zero) per sample;
* **a classifier two-sample test** (C2ST, the CaloChallenge way of scoring a shower generator): gradient
  boosting (scikit-learn's ``HistGradientBoostingClassifier``) trained to tell real from synthetic samples
  of one class, 5-fold; the AUC of its out-of-fold scores, with a bootstrap 95 % interval. 0.5: the
  classifier cannot tell them apart; 1: it always can. Its inputs: the normalised 10 x 10 cells around
  the crop's centre (or, for an image larger than 32 cells, its normalised energy summed on a 10 x 10
  grid), the lit-cell count and the largest cell's share, per channel; its most important inputs
  (permutation importance on the last fold) say what gives the synthetic samples away.

``--real`` is a folder holding the task's own real files (as ``bench data fetch`` leaves them), or for
``ee_gamma`` also a ``.npz`` in the layout of the public 200-crop ML4SCI sample (``x_train``,
``y_train``, ``x_test``, ``y_test``: the energy channel only, 32 x 32).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from benchmark.errors import DataError
from benchmark.tasks.base import TaskSpec

#: Real samples read per class at most (the files are streamed until both classes have this many).
MAX_REAL = 5000
STATS = ("max_share", "e3x3_share", "width_rows_5x5", "width_cols_5x5", "lit")
FOLDS, BOOTSTRAP, GRID = 5, 1000, 10


@dataclasses.dataclass(frozen=True)
class Sample:
    """Images ``(n, C, H, W)`` of the compared channels, labels, and the channel names."""

    X: np.ndarray
    y: np.ndarray
    channels: tuple[str, ...]


def energy_channels(task: TaskSpec) -> tuple[int, ...]:
    """The channels compared: all but hit times."""
    return tuple(i for i, name in enumerate(task.channel_names) if name != "time")


def read_real(task: TaskSpec, path: Path, limit: int = MAX_REAL) -> Sample:
    """Up to ``limit`` real samples per class from ``path`` (see the module's text)."""
    from benchmark.data import locate_in

    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return _ml4sci_npz(task, path)
    if not path.is_dir():
        raise DataError(f"--real {path}: no such folder (pass the folder with {task.name}'s real files"
                        + (", or an .npz of the ML4SCI 200-crop layout)" if task.name == "ee_gamma" else ")"))
    located = locate_in(task, path) or locate_in(task, path / task.name)
    if located is None:
        names = "; or ".join(", ".join(f.name for f in s.files) for s in task.file_sets)
        raise DataError(f"--real {path}: none of {task.name}'s real file sets is there ({names})")
    reader = task.open_real(*located)
    y_all, keep, chunks, seen = np.asarray(reader.y), [0, 0], [], 0
    channels = energy_channels(task)
    for batch in reader.batches(4096):
        y = y_all[seen:seen + len(batch.X)]
        seen += len(batch.X)
        take = np.zeros(len(y), bool)
        for label in (0, 1):
            idx = np.flatnonzero(y == label)[: max(0, limit - keep[label])]
            take[idx] = True
            keep[label] += len(idx)
        if take.any():
            chunks.append((batch.X[take][:, channels], y[take]))
        if min(keep) >= limit:
            break
    X = np.concatenate([c[0] for c in chunks])
    return Sample(X.astype(np.float64), np.concatenate([c[1] for c in chunks]),
                  tuple(task.channel_names[i] for i in channels))


def _ml4sci_npz(task: TaskSpec, path: Path) -> Sample:
    if task.name != "ee_gamma":
        raise DataError(f"--real {path}: an .npz sample is read for ee_gamma only; pass the folder with "
                        f"{task.name}'s real files")
    try:
        with np.load(path) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(f"--real {path}: no {', '.join(missing)} (expected the ML4SCI 200-crop layout: "
                                "x_train, y_train, x_test, y_test)")
            X = np.concatenate([z["x_train"], z["x_test"]]).astype(np.float64)
            y = np.concatenate([z["y_train"], z["y_test"]])
    except (OSError, ValueError) as e:
        raise DataError(f"--real {path}: unreadable ({e})") from None
    if X.ndim != 3 or X.shape[1:] != task.image_shape[1:] or len(y) != len(X):
        raise DataError(f"--real {path}: x has shape {X.shape}, expected (N, 32, 32) with one label each")
    if not np.isfinite(X).all() or not np.isin(y, (0, 1)).all():
        raise DataError(f"--real {path}: non-finite pixels or labels other than 0 and 1")
    return Sample(X[:, None], y.astype(np.int8), ("energy",))


def synthetic(task: TaskSpec, n: int, channels: Sequence[str], seed: int = 0) -> Sample:
    """``n`` synthetic samples of ``task`` (half of each class), the named channels."""
    y = (np.arange(n) % 2).astype(np.int8)
    batch = task.generate(y, np.random.default_rng([seed, 0xC2]))
    index = [task.channel_names.index(c) for c in channels]
    return Sample(batch.X[:, index].astype(np.float64), y, tuple(channels))


def normalised(E: np.ndarray) -> np.ndarray:
    """Each image ``(n, H, W)`` over its total (zero images stay zero)."""
    total = E.sum(axis=(1, 2), keepdims=True)
    return np.divide(E, total, out=np.zeros_like(E), where=total > 0)


def _window(E: np.ndarray, half: int) -> np.ndarray:
    """The (2 half + 1)^2 cells around each image's largest, zero-padded at the edge."""
    r, c = np.divmod(np.argmax(E.reshape(len(E), -1), axis=1), E.shape[2])
    padded = np.pad(E, ((0, 0), (half, half), (half, half)))
    offs = np.arange(2 * half + 1)
    return padded[np.arange(len(E))[:, None, None], (r[:, None] + offs)[:, :, None], (c[:, None] + offs)[:, None, :]]


def shape_stats(E: np.ndarray) -> dict[str, np.ndarray]:
    """Per image of ``E`` ``(n, H, W)`` (raw units): the scale-free statistics of :data:`STATS`."""
    E = np.maximum(E, 0.0)
    w = normalised(E)
    w5 = _window(w, 2)
    share5 = w5.sum(axis=(1, 2))
    p = w5 / np.maximum(share5, 1e-12)[:, None, None]
    idx = np.arange(5.0)
    widths = []
    for marginal in (p.sum(axis=2), p.sum(axis=1)):
        mean = (marginal * idx).sum(axis=1)
        widths.append(np.sqrt(np.maximum((marginal * idx ** 2).sum(axis=1) - mean ** 2, 0.0)))
    return {"max_share": w5[:, 2, 2], "e3x3_share": w5[:, 1:4, 1:4].sum(axis=(1, 2)), "width_rows_5x5": widths[0],
            "width_cols_5x5": widths[1], "lit": (E > 0).sum(axis=(1, 2)).astype(float)}


def c2st_inputs(X: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The two-sample classifier's inputs of images ``(n, C, H, W)`` and their names (module text)."""
    cols, names = [], []
    for c in range(X.shape[1]):
        E = np.maximum(X[:, c], 0.0)
        w = normalised(E)
        H, W = w.shape[1:]
        if max(H, W) <= 32:
            r0, c0 = H // 2 - GRID // 2, W // 2 - GRID // 2
            core = w[:, r0:r0 + GRID, c0:c0 + GRID]
        else:  # energy summed on a GRID x GRID grid
            rows, colsplit = np.array_split(np.arange(H), GRID), np.array_split(np.arange(W), GRID)
            core = np.stack([np.stack([w[:, r][:, :, k].sum(axis=(1, 2)) for k in colsplit], axis=1)
                             for r in rows], axis=1)
        cols += [core.reshape(len(w), -1), (E > 0).sum(axis=(1, 2))[:, None], w.reshape(len(w), -1).max(axis=1)[:, None]]
        names += [f"c{c}.cell{i // GRID}_{i % GRID}" for i in range(GRID * GRID)] + [f"c{c}.lit", f"c{c}.max_share"]
    return np.concatenate(cols, axis=1), names


def c2st(real: np.ndarray, fake: np.ndarray, *, seed: int = 0) -> dict:
    """The two-sample test of images ``real`` vs ``fake`` (module text): AUC, its 95 % bootstrap interval,
    and the most important inputs."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import StratifiedKFold

    from benchmark.metrics import roc_auc

    xr, names = c2st_inputs(real)
    xf, _ = c2st_inputs(fake)
    x, label = np.concatenate([xr, xf]), np.r_[np.ones(len(xr)), np.zeros(len(xf))].astype(int)
    score = np.empty(len(x))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(x, label):
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed).fit(x[train], label[train])
        score[test] = clf.predict_proba(x[test])[:, 1]
    auc = roc_auc(label, score)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(BOOTSTRAP):
        i = np.concatenate([rng.choice(np.flatnonzero(label == k), (label == k).sum()) for k in (0, 1)])
        boots.append(roc_auc(label[i], score[i]))
    imp = permutation_importance(clf, x[test], label[test], scoring="roc_auc", n_repeats=5, random_state=seed)
    top = np.argsort(imp.importances_mean)[::-1][:5]
    return {"auc": auc, "low": float(np.quantile(boots, 0.025)), "high": float(np.quantile(boots, 0.975)),
            "real": len(xr), "synthetic": len(xf),
            "top_inputs": [(names[j], float(imp.importances_mean[j])) for j in top]}


@dataclasses.dataclass(frozen=True)
class Comparison:
    task: str
    real_path: str
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    stats: Mapping[tuple[str, str, str], tuple[float, float]]  # (class, channel, stat) -> (real, synthetic) medians
    tests: Mapping[str, dict]                                  # class -> c2st result
    generator_version: str


def compare(task: TaskSpec, real_path: Path, *, n_synthetic: int = 2000, seed: int = 0,
            limit: int = MAX_REAL) -> Comparison:
    """Shape statistics and the two-sample test, per class, of ``task``'s real samples at ``real_path``
    against ``n_synthetic`` of its synthetic ones."""
    real = read_real(task, real_path, limit)
    fake = synthetic(task, n_synthetic, real.channels, seed)
    stats, tests = {}, {}
    for label, name in enumerate(task.class_names):
        r, f = real.X[real.y == label], fake.X[fake.y == label]
        if len(r) < 2 * FOLDS:
            raise DataError(f"--real {real_path}: {len(r)} real {name} sample(s); the test needs at least {2 * FOLDS}")
        for c, channel in enumerate(real.channels):
            sr, sf = shape_stats(r[:, c]), shape_stats(f[:, c])
            for s in STATS:
                stats[name, channel, s] = (float(np.median(sr[s])), float(np.median(sf[s])))
        tests[name] = c2st(r, f, seed=seed)
    return Comparison(task.name, str(real_path), tuple(task.class_names), real.channels, stats, tests,
                      task.generator_version)


def markdown(cmp: Comparison) -> str:
    """The comparison as a Markdown section: the statistics table, then the two-sample tests."""
    from benchmark.text import markdown as table

    rows = [["class", "channel", "statistic", "real (median)", "synthetic (median)", "synthetic / real"]]
    for (cls, channel, stat), (r, f) in cmp.stats.items():
        rows.append([cls, channel, stat, f"{r:.4g}", f"{f:.4g}", f"{f / r:.3f}" if r else "-"])
    tests = [["class", "real", "synthetic", "two-sample AUC", "95 % interval", "most telling inputs"]]
    for cls, t in cmp.tests.items():
        tests.append([cls, t["real"], t["synthetic"], f"{t['auc']:.3f}", f"[{t['low']:.3f}, {t['high']:.3f}]",
                      ", ".join(f"{n} ({v:.3f})" for n, v in t["top_inputs"][:3])])
    return "\n".join([f"## {cmp.task}: synthetic ({cmp.generator_version}) against {cmp.real_path}\n",
                      "Medians over each class's samples of scale-free statistics of the energy-normalised images "
                      "(`benchmark/realism.py`):\n", table(rows), "",
                      "Classifier two-sample test (gradient boosting, 5-fold, out-of-fold AUC; 0.5 = "
                      "indistinguishable), with the permutation importance of its most telling inputs:\n",
                      table(tests), ""])
