"""The contract every model keeps on every task: builds, fits, reports per epoch, scores, deterministic."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.data import Sizes, Source, Split, prepare
from benchmark.devices import DevicePlan
from benchmark.models import create_model, list_models
from benchmark.tasks import get_task, list_tasks

MODELS = {cls.name: cls for cls in list_models()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {t.name: prepare(t, source=Source.SYNTHETIC, root=root, seed=0, sizes=Sizes.total(120)) for t in list_tasks()}


def test_every_registered_model_declares_a_tiny_config_of_its_own_keys():
    for cls in MODELS.values():
        assert cls.tiny_config and set(cls.tiny_config) <= set(cls.default_config), cls.name
        assert (cls.fidelity is None) == ("epochs" not in cls.default_config), cls.name


@pytest.mark.parametrize("task_name", [t.name for t in list_tasks()])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_model_contract(prepared, task_name, model_name):
    task = get_task(task_name)
    train, val, test = (prepared[task_name].split(s) for s in Split)
    scores = []
    for _ in range(2):
        tiny = MODELS[model_name].tiny_config
        model = create_model(model_name, task, tiny, seed=3, plan=DevicePlan(threads=1))
        reports = []
        model.fit(train, val, report=lambda step, m: reports.append((step, dict(m))))
        steps = [s for s, _ in reports]
        assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= tiny.get("epochs", 1)
        assert all(0.0 <= m["val_auc"] <= 1.0 for _, m in reports)
        assert all(set(MODELS[model_name].curve_keys) <= set(m) for _, m in reports)  # what the runner records
        s = model.score(test)
        assert s.shape == (len(test),) and np.isfinite(s).all()
        scores.append(s)
        artifacts = model.artifacts(test)
        assert set(artifacts) == set(MODELS[model_name].artifact_names)
        assert all(len(a) and all(np.isfinite(v).all() for v in a.values()) for a in artifacts.values())
    np.testing.assert_array_equal(scores[0], scores[1])  # same seed, same scores
