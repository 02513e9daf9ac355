from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import baselines
from baselines.classical import _design_matrix, _pool_images
from benchmark.data import SplitData
from benchmark.devices import DevicePlan
from benchmark.errors import ConfigError
from benchmark.metrics import roc_auc
from benchmark.models._registry import create_model, get_model_class
from conftest import make_tiny_task

CLASSICAL = ["logreg", "svm", "naive_bayes", "xgboost"]
FAST = {"xgboost": {"n_estimators": 60}, "svm": {"n_components": 50}}  # keep the suite quick


def _task(shape=(2, 32, 32), n_features=5):
    return make_tiny_task(image_shape=shape, channel_names=tuple(f"c{i}" for i in range(shape[0])),
                          feature_names=tuple(f"f{i}" for i in range(n_features)))


def _split(n: int, seed: int, shape=(2, 32, 32), n_features=5) -> SplitData:
    """Balanced labels; feature 0 and a bright 8x8 corner in channel 0 carry the signal."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2).astype(np.int8)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    X[:, 0, :8, :8] += 0.5 * y[:, None, None]
    features = rng.normal(size=(n, n_features)).astype(np.float32)
    features[:, 0] += 1.5 * y
    return SplitData(X, y, np.zeros((n, 1), np.float32), features)


def _fit(name, config=None, *, seed=0, shape=(2, 32, 32)):
    model = create_model(name, _task(shape), {**FAST.get(name, {}), **(config or {})}, seed=seed,
                         plan=DevicePlan(threads=1))
    calls = []
    model.fit(_split(400, 1, shape), _split(200, 2, shape),
              report=lambda step, metrics: calls.append((step, dict(metrics))))
    return model, calls


@pytest.mark.parametrize("name", CLASSICAL)
def test_fits_reports_once_and_separates_easy_data(name):
    model, calls = _fit(name)
    assert model.kind == "classical" and model.name == name
    assert len(calls) == 1 and calls[0][0] == 1 and set(calls[0][1]) == {"val_auc"}
    assert 0.8 < calls[0][1]["val_auc"] <= 1.0
    test = _split(300, 3)
    scores = model.score(test)
    assert scores.shape == (300,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    assert roc_auc(test.y, scores) > 0.8
    assert model.n_parameters() > 0


@pytest.mark.parametrize("name", CLASSICAL)
def test_same_seed_same_scores(name):
    config = {"kernel": "rbf_approx"} if name == "svm" else None  # the seeded path of the svm
    test = _split(100, 4)
    a, _ = _fit(name, config, seed=7)
    b, _ = _fit(name, config, seed=7)
    np.testing.assert_array_equal(a.score(test), b.score(test))


def test_svm_rbf_approx_fits():
    model, calls = _fit("svm", {"kernel": "rbf_approx", "gamma": 0.5, "n_components": 80})
    assert calls[0][1]["val_auc"] > 0.8
    assert model.n_parameters() == 81  # one weight per Nystroem feature + intercept


@pytest.mark.parametrize("name", CLASSICAL)
def test_unknown_or_invalid_config_is_refused(name):
    with pytest.raises(ConfigError, match="unknown config key"):
        create_model(name, _task(), {"no_such_key": 1})
    with pytest.raises(ConfigError, match="pool"):
        create_model(name, _task(), {"pool": -1})
    with pytest.raises(ConfigError, match="pool"):
        create_model(name, _task(), {"pool": 2.5})
    with pytest.raises(ConfigError, match="summary features only"):
        create_model(name, _task(n_features=0), {"pool": 0})


@pytest.mark.parametrize("name, config, key", [
    ("logreg", {"C": 0}, "C"), ("svm", {"kernel": "poly"}, "kernel"), ("svm", {"alpha": -1.0}, "alpha"),
    ("svm", {"n_components": 0}, "n_components"), ("naive_bayes", {"var_smoothing": "big"}, "var_smoothing"),
    ("xgboost", {"subsample": 1.5}, "subsample"), ("xgboost", {"max_depth": 0}, "max_depth"),
    ("xgboost", {"n_estimators": True}, "n_estimators"),
])
def test_bad_values_are_refused_with_the_key(name, config, key):
    with pytest.raises(ConfigError, match=key):
        create_model(name, _task(), config)


def test_default_configs_are_the_tunable_keys():
    assert {k for k in get_model_class("xgboost").default_config} == {
        "n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight",
        "reg_lambda", "pool"}
    for name in CLASSICAL:
        assert "pool" in get_model_class(name).default_config


@pytest.mark.parametrize("shape, pool, pixels", [
    ((2, 32, 32), 4, 2 * 8 * 8), ((6, 32, 16), 4, 6 * 8 * 4), ((2, 32, 32), 1, 2 * 32 * 32),
    ((6, 32, 16), 3, 6 * 11 * 6), ((2, 32, 32), 64, 2), ((2, 32, 32), 0, 0),
])
def test_design_matrix_shapes(shape, pool, pixels):
    data = _split(10, 0, shape, n_features=3)
    M = _design_matrix(data, pool)
    assert M.shape == (10, 3 + pixels) and M.dtype == np.float32
    np.testing.assert_array_equal(M[:, :3], data.features)


def test_pooling_averages_blocks_and_partial_edges():
    X = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    pooled = _pool_images(X, 2).reshape(2, 3, 3, 2)
    np.testing.assert_allclose(pooled[:, :, :2, :], X[:, :, :4].reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5)))
    np.testing.assert_allclose(pooled[:, :, 2, :], X[:, :, 4].reshape(2, 3, 2, 2).mean(axis=3))  # last row: 1 x 2
    np.testing.assert_allclose(_pool_images(X, 1), X.reshape(2, -1))
    np.testing.assert_allclose(_pool_images(X, 8), X.mean(axis=(2, 3)), rtol=1e-6)  # one partial window


def test_design_matrix_reads_memmaps_in_chunks(tmp_path, monkeypatch):
    import baselines.classical as classical

    data = _split(50, 0, (6, 32, 16))
    path = tmp_path / "X.npy"
    np.save(path, data.X)
    mapped = SplitData(np.load(path, mmap_mode="r"), data.y, data.aux, data.features)
    monkeypatch.setattr(classical, "_CHUNK", 7)
    np.testing.assert_array_equal(_design_matrix(mapped, 4), _design_matrix(data, 4))


def test_fits_on_a_six_channel_non_square_image():
    model, calls = _fit("logreg", {"pool": 4}, shape=(6, 32, 16))
    assert calls[0][1]["val_auc"] > 0.8
    assert model.n_parameters() == 5 + 6 * 8 * 4 + 1


def test_score_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted"):
        create_model("logreg", _task()).score(_split(10, 0))


def test_every_module_in_baselines_is_imported_by_the_package():
    folder = Path(baselines.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    tree = ast.parse((folder / "__init__.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "baselines"
                for alias in node.names}
    assert modules <= imported
