"""Models: one interface (:class:`Model`) for the neural models here and the classical baselines.

Example:
    >>> from benchmark.models import create_model, list_models
    >>> [cls.name for cls in list_models()]  # doctest: +SKIP
    ['logreg', 'svm', 'naive_bayes', 'xgboost', 'resnet15', 'vit', 'vae', 'beta_vae']

Importing this package imports neither torch nor scikit-learn: the registering modules
(``_registry.MODULES``) are imported when a model is first looked up, the classical ones first.
"""
from __future__ import annotations

from benchmark.errors import DivergedError
from benchmark.models._registry import create_model, get_model_class, list_families, list_models, register_model
from benchmark.models.base import Model, ReportFn

__all__ = ["DivergedError", "Model", "ReportFn", "create_model", "get_model_class", "list_families", "list_models",
           "register_model"]
