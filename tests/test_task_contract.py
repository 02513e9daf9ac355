"""What every registered task guarantees, checked over the registry (one test per task)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.tasks import list_tasks


@pytest.mark.parametrize("task", list_tasks(), ids=lambda t: t.name)
def test_generator_is_deterministic_seed_dependent_and_shaped(task):
    y = np.array([0, 1, 1, 0, 1, 0], dtype=np.int8)
    a = task.generate(y, np.random.default_rng(3))
    b = task.generate(y, np.random.default_rng(3))
    c = task.generate(y, np.random.default_rng(4))
    assert a.X.shape == (len(y), *task.image_shape) and a.X.dtype == np.float32
    assert a.aux.shape == (len(y), len(task.aux_names)) and a.aux.dtype == np.float32
    assert a.X.tobytes() == b.X.tobytes() and a.aux.tobytes() == b.aux.tobytes()  # same seed, same bytes
    assert a.X.tobytes() != c.X.tobytes()
    assert np.isfinite(a.X).all()


@pytest.mark.parametrize("task", list_tasks(), ids=lambda t: t.name)
def test_preprocess_and_features_keep_shapes(task):
    batch = task.generate(np.array([0, 1, 0, 1], dtype=np.int8), np.random.default_rng(0))
    X = task.preprocess(batch.X)
    assert X.shape == batch.X.shape and X.dtype == np.float32 and np.isfinite(X).all()
    F = task.features(batch)
    assert F.shape == (4, len(task.feature_names)) and F.dtype == np.float32 and np.isfinite(F).all()
