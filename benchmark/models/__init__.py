"""Models: one interface (:class:`Model`) for the neural models here and the classical baselines.

Example:
    >>> from benchmark.models import create_model, list_models
    >>> [cls.name for cls in list_models()]  # doctest: +SKIP
    ['resnet15', 'vit', 'vae', 'beta_vae', 'logreg', ...]

Importing this package imports torch (the neural models); ``benchmark.tasks`` and ``benchmark.data``
do not.
"""
from __future__ import annotations

from benchmark.models._registry import create_model, get_model_class, list_models, register_model
from benchmark.models.base import Model, ReportFn
from benchmark.models.training import DivergedError

# Registering imports, explicit on purpose (tests check that every module here is listed).
from benchmark.models import resnet, vit, vae  # noqa: E402,F401  isort: skip
import baselines  # noqa: E402,F401  registers the classical models

__all__ = ["DivergedError", "Model", "ReportFn", "create_model", "get_model_class", "list_models", "register_model"]
