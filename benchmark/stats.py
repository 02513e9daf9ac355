"""Summary statistics of raw task data, for ``bench data info`` and the calibration tests."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from benchmark.text import aligned
from benchmark.tasks.base import RawBatch, TaskSpec


def describe(task: TaskSpec, batch: RawBatch, y: np.ndarray) -> dict[str, float]:
    """Flat ``{name: value}`` statistics in raw units: class balance, then per channel the zero
    fraction, min, max, mean, std and mean active (non-zero) pixels per sample, then the task's own."""
    X = batch.X
    out: dict[str, float] = {"n": float(len(y)), "fraction_label1": float(np.mean(y == 1))}
    for c, name in enumerate(task.channel_names):
        x = X[:, c].reshape(len(X), -1)
        nonzero = x != 0
        out[f"{name}.zero_fraction"] = float(1.0 - nonzero.mean())
        out[f"{name}.min"] = float(x.min())
        out[f"{name}.max"] = float(x.max())
        out[f"{name}.mean"] = float(x.mean())
        out[f"{name}.std"] = float(x.std())
        out[f"{name}.active_pixels"] = float(nonzero.sum(axis=1).mean())
    active = (X.reshape(len(X), -1) != 0).sum(axis=1)
    out["active_pixels.mean"] = float(active.mean())
    out["active_pixels.p01"] = float(np.percentile(active, 1))
    out["active_pixels.p99"] = float(np.percentile(active, 99))
    if task.extra_stats is not None:
        out.update(task.extra_stats(batch, y))
    return out


def format_stats(stats: Mapping[str, float], reference: Mapping[str, str]) -> str:
    """Columns statistic, measured value and reference value (docs/datasets.md) where the task gives one;
    references with no measured statistic come last. Measured values are right-aligned."""
    rows = [(key, f"{value:.5g}", reference.get(key, "")) for key, value in stats.items()]
    rows += [(key, "-", text) for key, text in reference.items() if key not in stats]
    width = max([len("measured"), *(len(row[1]) for row in rows)])
    return aligned([("statistic", "measured".rjust(width), "reference (docs/datasets.md)"),
                    *((key, value.rjust(width), text) for key, value, text in rows)])
