"""Shared fixtures: a tiny task spec, so data-layer tests do not depend on any real task module."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from benchmark.errors import DataError
from benchmark.tasks.base import FileSet, RawBatch, RealFile, Sizes, TaskSpec, check_labels


class _NpyReader:
    def __init__(self, path: Path):
        try:
            data = np.load(path, allow_pickle=False)
            self.X, self.y = data["X"], check_labels(data["y"], path)
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path}: unreadable ({e})") from None
        self.files = (path,)

    def batches(self, size):
        for start in range(0, len(self.y), size):
            X = self.X[start:start + size]
            yield RawBatch(X, X.sum(axis=(1, 2, 3))[:, None])


def _generate(y, rng):
    X = rng.normal(size=(len(y), 1, 4, 4)).astype(np.float32) + y[:, None, None, None]
    return RawBatch(X, X.sum(axis=(1, 2, 3))[:, None].astype(np.float32))


def make_tiny_task(**overrides) -> TaskSpec:
    """A 1x4x4 task whose label shifts every pixel by +1; real data is one ``tiny.npz`` (X, y)."""
    spec = TaskSpec(
        name="tiny", description="a tiny test task", image_shape=(1, 4, 4), channel_names=("e",),
        class_names=("bkg", "sig"), label_note="1 = sig", aux_names=("sum",), feature_names=("sum", "max"),
        file_sets=(FileSet("npz", (RealFile("tiny.npz", url="http://127.0.0.1:1/tiny.npz"),), "make it"),),
        references=(), reference_stats={"e.zero_fraction": "0"}, generator_version="tiny-1",
        open_real=lambda fs, paths: _NpyReader(paths["tiny.npz"]), generate=_generate,
        preprocess=lambda X: X * 2, features=lambda b: np.stack([b.X.sum((1, 2, 3)), b.X.max((1, 2, 3))], 1),
        synthetic_sizes=Sizes(140, 30, 30))
    return dataclasses.replace(spec, **overrides)


@pytest.fixture
def tiny_task() -> TaskSpec:
    return make_tiny_task()


def feature_auc(task: TaskSpec, batch: RawBatch, y: np.ndarray) -> float:
    """Test AUC of a logistic regression on the task's summary features (even rows train, odd rows
    test): the difficulty proxy the task tests bound from both sides."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    F = task.features(batch)
    assert F.shape == (len(y), len(task.feature_names)) and F.dtype == np.float32 and np.isfinite(F).all()
    train = np.arange(len(y)) % 2 == 0
    Z = (F - F[train].mean(0)) / (F[train].std(0) + 1e-9)
    clf = LogisticRegression(max_iter=2000).fit(Z[train], y[train])
    return float(roc_auc_score(y[~train], clf.decision_function(Z[~train])))


def trials_json(study_dir: Path) -> list[dict]:
    """A search's trials as their JSON records, read through ``benchmark.records`` (as the board reads them)."""
    from benchmark import records

    return [t.to_json() for t in records.read_trials(study_dir)]


def result_json(study_dir: Path) -> dict:
    from benchmark import records

    return records.read_result(study_dir).to_json()
