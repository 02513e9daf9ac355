"""One interface for every model, neural or classical.

A model is built from a task and a config whose keys match its search space
(``benchmark/spaces/<name>.yaml``), trains with ``fit(train, val, report=...)`` and scores with
``score(data) -> (n,)`` float array, higher = more like label 1 (the signal class).

``score`` takes a :class:`benchmark.data.SplitData` rather than bare images so that classical models
can use the summary features prepared once with the data instead of recomputing them every trial.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from benchmark.devices import DevicePlan

if TYPE_CHECKING:
    from benchmark.data import SplitData
    from benchmark.tasks import TaskSpec

#: ``report(step, metrics)``: called after every epoch (once for models without epochs). ``metrics``
#: always holds ``val_auc`` (the tuned metric); neural models add ``train_loss`` and ``val_loss``.
ReportFn = Callable[[int, Mapping[str, float]], None]


class Model(abc.ABC):
    """Base class of all models.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("logreg", get_task("ee_gamma"), {"C": 1.0})
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "neural" or "classical": for display; behaviour follows the capabilities below
    default_config: ClassVar[Mapping[str, Any]]

    # --- capabilities: what the runner, the board and the tests may rely on -----------------------
    #: The config key that is the model's fidelity (trained and reported step by step up to its value,
    #: so ASHA can stop it early and ``--max-epochs`` caps it), or None: one step, one report.
    fidelity: ClassVar[str | None] = None
    #: Per-step metrics ``fit`` reports besides ``val_auc`` (kept in every trial's curve).
    curve_keys: ClassVar[tuple[str, ...]] = ()
    #: Names of the extra arrays :meth:`artifacts` returns for the test split (e.g. ``recon``).
    artifact_names: ClassVar[tuple[str, ...]] = ()
    #: A config that trains in seconds on a hundred samples of any task (the contract tests').
    tiny_config: ClassVar[Mapping[str, Any]] = {}
    #: For a family of models (``timm:<member>``): the config key the member's name goes to.
    family_key: ClassVar[str | None] = None
    #: Whether ``bench run`` without ``--model`` (and so the board protocol) searches it.
    on_board: ClassVar[bool] = True

    def __init__(self, task: TaskSpec, config: Mapping[str, Any], *, seed: int = 0,
                 plan: DevicePlan | None = None) -> None:
        self.task = task
        self.config = dict(config)
        self.seed = seed
        self.plan = plan or DevicePlan()  # where it computes: device, threads, GPU share

    @abc.abstractmethod
    def fit(self, train: SplitData, val: SplitData, *, report: ReportFn | None = None) -> None:
        """Train on ``train``; evaluate on ``val`` after every epoch and call ``report``."""

    @abc.abstractmethod
    def score(self, data: SplitData) -> np.ndarray:
        """Return one float score per sample of ``data``, higher = more signal-like."""

    @property
    def precision(self) -> str:
        """The arithmetic it trains and scores in: ``native`` (the library's own) unless a model says."""
        return "native"

    @classmethod
    def has_precision(cls) -> bool:
        """Whether its config has the ``precision`` key (the neural models): ``bench run --precision``
        fixes it, and retraining uses the precision its search computed in."""
        return "precision" in cls.default_config

    @classmethod
    def as_computed(cls, config: Mapping[str, Any], precision: str | None) -> dict[str, Any]:
        """``config`` with the ``precision`` a trial resolved (``auto`` became ``fp32`` or ``bf16``) put back,
        so a retraining computes as the search did; unchanged for a model without the key or no precision."""
        config = dict(config)
        if precision is not None and cls.has_precision():
            config["precision"] = precision
        return config

    def training_summary(self) -> dict[str, Any]:
        """How the last ``fit`` ended, for models trained epoch by epoch: ``epochs``, ``converged``, ``stop``
        (see :func:`benchmark.models.training.convergence`); empty for the others."""
        return {}

    def test_metrics(self, test: SplitData) -> dict[str, float]:
        """Model-specific quality measures on ``test`` kept beside the AUC (VAEs: ``recon_corr``)."""
        return {}

    def artifacts(self, test: SplitData) -> dict[str, dict[str, np.ndarray]]:
        """Extra arrays of the fitted model on ``test``, one dict per name in ``artifact_names``."""
        return {}

    def n_parameters(self) -> int:
        """Number of trained parameters (0 when not meaningful)."""
        return 0
