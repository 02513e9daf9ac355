"""Classical baselines (sklearn / xgboost) behind the same Model interface as the neural models.

Importing this package registers them: ``logreg``, ``svm``, ``naive_bayes``, ``xgboost``.
"""
from __future__ import annotations

# Registering import, explicit on purpose (tests check that every module here is listed).
from baselines import classical  # noqa: F401

__all__ = ["classical"]
