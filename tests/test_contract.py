"""The contract every model keeps on every task: builds, fits, reports per epoch, scores, deterministic."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.data import Source, Split, prepare
from benchmark.models import create_model, list_models
from benchmark.tasks import get_task, list_tasks

TINY = {  # small enough for a few seconds per (model, task) on one CPU core
    "resnet15": {"width": 4, "blocks": 1, "epochs": 2, "batch_size": 32},
    "vit": {"embed_dim": 16, "depth": 1, "num_heads": 2, "patch_size": 8, "epochs": 2, "batch_size": 32},
    "vae": {"width": 4, "latent_dim": 2, "epochs": 2, "batch_size": 32},
    "beta_vae": {"width": 4, "latent_dim": 2, "epochs": 2, "batch_size": 32},
    "logreg": {"pool": 8}, "svm": {"pool": 8}, "naive_bayes": {"pool": 8},
    "xgboost": {"n_estimators": 20, "max_depth": 3, "pool": 8},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {t.name: prepare(t, source=Source.SYNTHETIC, root=root, seed=0, n_samples=120) for t in list_tasks()}


def test_tiny_configs_cover_every_registered_model():
    assert set(TINY) == {m.name for m in list_models()}


@pytest.mark.parametrize("task_name", [t.name for t in list_tasks()])
@pytest.mark.parametrize("model_name", sorted(TINY))
def test_model_contract(prepared, task_name, model_name):
    task = get_task(task_name)
    train, val, test = (prepared[task_name].split(s) for s in Split)
    scores = []
    for _ in range(2):
        model = create_model(model_name, task, TINY[model_name], seed=3, threads=1)
        reports = []
        model.fit(train, val, report=lambda step, m: reports.append((step, dict(m))))
        steps = [s for s, _ in reports]
        assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= TINY[model_name].get("epochs", 1)
        assert all(0.0 <= m["val_auc"] <= 1.0 for _, m in reports)
        s = model.score(test)
        assert s.shape == (len(test),) and np.isfinite(s).all()
        scores.append(s)
    np.testing.assert_array_equal(scores[0], scores[1])  # same seed, same scores
