"""Classical baselines: logistic regression, a linear / kernel-approximated SVM, Gaussian naive Bayes
and XGBoost, behind the same :class:`~benchmark.models.base.Model` interface as the neural models.

Inputs. Every model sees one design matrix, built by :func:`_design_matrix`: the split's summary
``features`` ``(n, F)`` followed by its images average-pooled ``pool x pool`` and flattened
(``pool = 0``: features only; ``pool = 1``: every pixel). Pooling runs chunk by chunk on the
memory-mapped images, so only the float32 result is held: ``n x (F + C * ceil(H/pool) * ceil(W/pool))
x 4`` bytes, e.g. 500k x (40 + 2 * 8 * 8) x 4 B = 0.34 GB for ee_gamma at pool 4 (but 4 GB at pool 1).

Scores are log-odds or margins (``decision_function``, the naive-Bayes log-likelihood ratio, the
XGBoost margin) rather than ``predict_proba``: monotone in the probability, so the AUC is the same,
but they do not saturate to exactly 0 or 1 and so create no artificial ties. The accuracy threshold
is chosen on validation (:func:`benchmark.metrics.threshold_at_best_accuracy`), whatever the scale.

How each scales with ``n`` samples and ``d`` inputs (all keep float32; sklearn's pipelines add one
standardised copy of the matrix):

- ``logreg``: L-BFGS, at most 200 iterations of O(n d) each.
- ``svm``: SGD on the hinge loss, at most 50 epochs of O(n d). ``kernel="rbf_approx"`` first maps
  the inputs to ``n_components`` (m) Nystroem features: O(n m (d + m)) time, n m float32 memory
  (500k x 1000 x 4 B = 2 GB), so keep m <= 1000 for large n. Exact RBF SVMs (O(n^2)) are not offered.
- ``naive_bayes``: one pass, O(n d).
- ``xgboost``: histogram trees (``tree_method="hist"``) on a quantised copy (~1 byte per cell),
  O(rounds n d), on the GPU when the device plan is ``cuda``; early stopping on validation.

Every model reports ``val_auc`` once, after fitting, at step 1 (no epochs to prune on), and is
deterministic for a given seed and thread count.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from benchmark.devices import DevicePlan
from benchmark.errors import ConfigError
from benchmark.metrics import roc_auc
from benchmark.models._registry import register_model
from benchmark.models.base import Model, ReportFn

if TYPE_CHECKING:
    from benchmark.data import SplitData
    from benchmark.tasks import TaskSpec

_CHUNK = 8192  # images pooled per step: bounds the float32 temporaries to a few MB
_LOGREG_MAX_ITER = 200
_SGD_MAX_EPOCHS = 50
_XGB_PATIENCE = 20  # boosting rounds without validation improvement before stopping


# --- inputs -----------------------------------------------------------------------------------------

def _pooled_shape(image_shape: tuple[int, int, int], pool: int) -> tuple[int, int, int]:
    c, h, w = image_shape
    return c, -(-h // pool), -(-w // pool)


@functools.lru_cache(maxsize=32)
def _pool_matrix(size: int, pool: int) -> np.ndarray:
    """``(size, ceil(size / pool))``: column q averages pixels ``q * pool ...`` (fewer in a partial last window)."""
    window = np.arange(size) // pool
    P = np.zeros((size, window[-1] + 1), dtype=np.float32)
    P[np.arange(size), window] = 1.0
    P /= P.sum(axis=0)
    P.flags.writeable = False
    return P


def _pool_images(X: np.ndarray, pool: int) -> np.ndarray:
    """Average-pool ``(m, C, H, W)`` images over ``pool x pool`` windows, flattened to ``(m, ...)``.

    When ``pool`` does not divide H or W the last window of a row / column is partial and is averaged
    over the pixels it holds (ceil mode), so no pixel is dropped. Two matrix products (along W, then
    H) instead of a strided reduction: BLAS makes this several times faster.
    """
    m, c, h, w = X.shape
    rows = (X.reshape(-1, w) @ _pool_matrix(w, pool)).reshape(m * c, h, -1)  # (m C, H, W')
    return np.matmul(_pool_matrix(h, pool).T, rows).reshape(m, -1)  # (m C, H', W') -> (m, C H' W')


def _design_matrix(data: SplitData, pool: int) -> np.ndarray:
    """``(n, F + pooled pixels)`` float32: summary features, then pooled pixels when ``pool > 0``."""
    features = np.asarray(data.features, dtype=np.float32)
    if pool == 0:
        return np.array(features, dtype=np.float32, order="C")  # a private copy, never the memmap
    n, n_features = features.shape
    c, hp, wp = _pooled_shape(data.X.shape[1:], pool)
    out = np.empty((n, n_features + c * hp * wp), dtype=np.float32)
    out[:, :n_features] = features
    for start in range(0, n, _CHUNK):
        chunk = np.asarray(data.X[start:start + _CHUNK], dtype=np.float32)
        out[start:start + len(chunk), n_features:] = _pool_images(chunk, pool)
    return out


# --- config checks (create_model already refused unknown keys) --------------------------------------

def _number(config: Mapping[str, Any], key: str, model: str, *, low: float, high: float = math.inf,
            integer: bool = False, low_inclusive: bool = False) -> None:
    value = config[key]
    types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if (isinstance(value, bool) or not isinstance(value, types) or not math.isfinite(value)
            or not (value >= low if low_inclusive else value > low) or value > high):
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and <= {high}" if high < math.inf else "")
        raise ConfigError(f"model {model!r}: {key} must be {'an integer' if integer else 'a number'} "
                          f"{bound}, got {value!r}")


def _choice(config: Mapping[str, Any], key: str, model: str, options: tuple[str, ...]) -> None:
    if config[key] not in options:
        raise ConfigError(f"model {model!r}: {key} must be one of {list(options)}, got {config[key]!r}")


# --- the shared wrapper -----------------------------------------------------------------------------

class _ClassicalModel(Model):
    """Fit an estimator on the design matrix, score with a real-valued decision function."""

    kind: ClassVar[str] = "classical"
    tiny_config: ClassVar[Mapping[str, Any]] = {"pool": 8}

    def __init__(self, task: TaskSpec, config: Mapping[str, Any], *, seed: int = 0,
                 plan: DevicePlan | None = None) -> None:
        super().__init__(task, config, seed=seed, plan=plan)
        _number(self.config, "pool", self.name, low=0, integer=True, low_inclusive=True)
        if self.config["pool"] == 0 and not task.feature_names:
            raise ConfigError(f"model {self.name!r}: pool = 0 uses summary features only, "
                              f"but task {task.name!r} has none")
        self._check_config()
        self._estimator: Any = None
        self.val_auc: float | None = None  # set by fit()

    def fit(self, train: SplitData, val: SplitData, *, report: ReportFn | None = None) -> None:
        pool = self.config["pool"]
        y_train, y_val = np.asarray(train.y), np.asarray(val.y)
        with self._thread_limit():  # pooling multiplies matrices too: BLAS threads are capped for it
            X_train, X_val = _design_matrix(train, pool), _design_matrix(val, pool)
            self._estimator = self._fit(X_train, y_train, X_val, y_val)
            val_scores = self._decision(X_val)
        self.val_auc = roc_auc(y_val, val_scores)
        if report is not None:
            report(1, {"val_auc": self.val_auc})

    def score(self, data: SplitData) -> np.ndarray:
        if self._estimator is None:
            raise RuntimeError(f"model {self.name!r} is not fitted: call fit() first")
        with self._thread_limit():
            return self._decision(_design_matrix(data, self.config["pool"])).astype(np.float64, copy=False)

    def _thread_limit(self) -> contextlib.AbstractContextManager:
        """Cap BLAS / OpenMP threads at ``threads`` (a Ray trial's CPU share)."""
        if self.plan.threads is None:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.plan.threads)

    # subclasses
    def _check_config(self) -> None:
        raise NotImplementedError

    def _fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> Any:
        raise NotImplementedError

    def _decision(self, X: np.ndarray) -> np.ndarray:
        return self._estimator.decision_function(X)


@contextlib.contextmanager
def _quiet_convergence() -> Iterator[None]:
    """The iteration budgets are bounded on purpose; a warning per trial would only be noise."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


class _LinearModel(_ClassicalModel):
    """A pipeline ending in a linear classifier: its parameters are the coefficients and intercept."""

    def n_parameters(self) -> int:
        if self._estimator is None:
            return 0
        linear = self._estimator[-1]
        return int(linear.coef_.size + linear.intercept_.size)


@register_model
class LogRegModel(_LinearModel):
    """L2-regularised logistic regression (L-BFGS) on standardised inputs.

    Config: ``C`` (inverse regularisation strength), ``pool`` (pixel pooling, 0 = features only).

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("logreg", get_task("ee_gamma"), {"C": 0.1, "pool": 4})
    """

    name: ClassVar[str] = "logreg"
    default_config: ClassVar[Mapping[str, Any]] = {"C": 1.0, "pool": 4}

    def _check_config(self) -> None:
        _number(self.config, "C", self.name, low=0)

    def _fit(self, X, y, X_val, y_val):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        estimator = make_pipeline(StandardScaler(), LogisticRegression(
            C=float(self.config["C"]), solver="lbfgs", max_iter=_LOGREG_MAX_ITER))
        with _quiet_convergence():
            return estimator.fit(X, y)


@register_model
class SVMModel(_LinearModel):
    """A soft-margin SVM trained by SGD on the hinge loss: linear, or on Nystroem RBF features.

    Config: ``alpha`` (L2 penalty, ~ 1 / (C n)), ``kernel`` (``"linear"`` | ``"rbf_approx"``),
    ``gamma`` (RBF width in units of 1 / n_inputs on standardised inputs, i.e. 1.0 is sklearn's
    ``gamma="scale"``; rbf_approx only), ``n_components`` (Nystroem landmarks; rbf_approx only),
    ``pool``.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("svm", get_task("ee_gamma"), {"kernel": "rbf_approx", "n_components": 500})
    """

    name: ClassVar[str] = "svm"
    default_config: ClassVar[Mapping[str, Any]] = {"alpha": 1e-4, "kernel": "linear", "gamma": 1.0,
                                                    "n_components": 300, "pool": 4}

    def _check_config(self) -> None:
        _number(self.config, "alpha", self.name, low=0)
        _choice(self.config, "kernel", self.name, ("linear", "rbf_approx"))
        _number(self.config, "gamma", self.name, low=0)
        _number(self.config, "n_components", self.name, low=1, integer=True, low_inclusive=True)

    def _fit(self, X, y, X_val, y_val):
        from sklearn.kernel_approximation import Nystroem
        from sklearn.linear_model import SGDClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        steps: list[Any] = [StandardScaler()]
        if self.config["kernel"] == "rbf_approx":
            steps.append(Nystroem(kernel="rbf", gamma=float(self.config["gamma"]) / X.shape[1],
                                  n_components=min(int(self.config["n_components"]), len(X)),
                                  random_state=self.seed))
        steps.append(SGDClassifier(loss="hinge", alpha=float(self.config["alpha"]), max_iter=_SGD_MAX_EPOCHS,
                                   tol=1e-4, random_state=self.seed))
        with _quiet_convergence():
            return make_pipeline(*steps).fit(X, y)


@register_model
class NaiveBayesModel(_ClassicalModel):
    """Gaussian naive Bayes on standardised inputs; scores are the log-likelihood ratio.

    Standardising does not change the model except through ``var_smoothing``, which adds
    ``var_smoothing x`` the largest input variance to every variance: on raw inputs one large-scale
    feature (an energy in GeV) would drown the pixel variances.

    Config: ``var_smoothing``, ``pool``.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("naive_bayes", get_task("ee_gamma"), {"var_smoothing": 1e-6})
    """

    name: ClassVar[str] = "naive_bayes"
    default_config: ClassVar[Mapping[str, Any]] = {"var_smoothing": 1e-9, "pool": 4}

    def _check_config(self) -> None:
        _number(self.config, "var_smoothing", self.name, low=0)

    def _fit(self, X, y, X_val, y_val):
        from sklearn.naive_bayes import GaussianNB
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), GaussianNB(var_smoothing=float(self.config["var_smoothing"]))).fit(X, y)

    def _decision(self, X):
        scaler, nb = self._estimator[:-1], self._estimator[-1]
        joint = nb.predict_joint_log_proba(scaler.transform(X))  # log P(x, class): no saturation at 0 / 1
        return joint[:, 1] - joint[:, 0]

    def n_parameters(self) -> int:
        if self._estimator is None:
            return 0
        nb = self._estimator[-1]
        return int(nb.theta_.size + nb.var_.size + nb.class_prior_.size)


@register_model
class XGBoostModel(_ClassicalModel):
    """Gradient-boosted trees (XGBoost, ``hist``), early-stopped on the validation log-loss.

    ``n_estimators`` is the most boosting rounds; training stops after 20 rounds without improvement
    and scores use the best round. Runs on the GPU when the model's device plan is ``cuda[:i]``, with the plan's
    ``threads`` CPU threads otherwise.

    Config: ``n_estimators``, ``max_depth``, ``learning_rate``, ``subsample``, ``colsample_bytree``,
    ``min_child_weight``, ``reg_lambda``, ``pool``.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("xgboost", get_task("ee_gamma"), {"max_depth": 4, "learning_rate": 0.05})
    """

    name: ClassVar[str] = "xgboost"
    default_config: ClassVar[Mapping[str, Any]] = {
        "n_estimators": 500, "max_depth": 6, "learning_rate": 0.1, "subsample": 0.8, "colsample_bytree": 0.8,
        "min_child_weight": 1.0, "reg_lambda": 1.0, "pool": 4}
    tiny_config: ClassVar[Mapping[str, Any]] = {"n_estimators": 20, "max_depth": 3, "pool": 8}

    def _check_config(self) -> None:
        c, n = self.config, self.name
        _number(c, "n_estimators", n, low=1, integer=True, low_inclusive=True)
        _number(c, "max_depth", n, low=1, integer=True, low_inclusive=True)
        _number(c, "learning_rate", n, low=0, high=1)
        _number(c, "subsample", n, low=0, high=1)
        _number(c, "colsample_bytree", n, low=0, high=1)
        _number(c, "min_child_weight", n, low=0, low_inclusive=True)
        _number(c, "reg_lambda", n, low=0, low_inclusive=True)

    def _fit(self, X, y, X_val, y_val):
        try:
            from xgboost import XGBClassifier
        except ImportError:
            raise ConfigError("model 'xgboost' needs the xgboost package: pip install xgboost") from None
        c = self.config
        estimator = XGBClassifier(
            n_estimators=int(c["n_estimators"]), max_depth=int(c["max_depth"]),
            learning_rate=float(c["learning_rate"]), subsample=float(c["subsample"]),
            colsample_bytree=float(c["colsample_bytree"]), min_child_weight=float(c["min_child_weight"]),
            reg_lambda=float(c["reg_lambda"]), tree_method="hist",
            device=self.plan.device, n_jobs=self.plan.threads, random_state=self.seed, eval_metric="logloss",
            early_stopping_rounds=_XGB_PATIENCE)
        return estimator.fit(X, y, eval_set=[(X_val, y_val)], verbose=False)

    def _decision(self, X):
        return self._estimator.predict(X, output_margin=True)  # best round (early stopping)

    def n_parameters(self) -> int:
        """Number of tree nodes (splits and leaves) up to the best round."""
        if self._estimator is None:
            return 0
        booster = self._estimator.get_booster()
        best = getattr(self._estimator, "best_iteration", None)
        if best is not None:
            booster = booster[: best + 1]
        return sum(len(tree.splitlines()) for tree in booster.get_dump(dump_format="text"))
