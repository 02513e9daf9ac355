"""The model registry: ``@register_model`` on a :class:`Model` subclass; duplicates are refused.

The modules that register the shipped models are imported on first use, the classical baselines
first: looking up ``logreg`` imports scikit-learn but not torch, so a classical trial's process never
pays for torch. A class with ``family_key`` set is a *family*: ``<name>:<member>`` builds the member
(``timm:resnet18`` sets the config key ``model_name`` to ``resnet18``). Models from outside the
package register through ``$HEPBENCH_PLUGINS`` (:mod:`benchmark.plugins`).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from benchmark import plugins
from benchmark.errors import BenchError, ConfigError
from benchmark.models.base import Model
from benchmark.tasks import TaskSpec
from benchmark.tasks._registry import suggest

#: The modules whose import registers the shipped models, in the order models are listed (tests check
#: that every model module is here). A lookup by name tries the torch-free ones (``LIGHT``) first.
MODULES = ("benchmark.models.resnet", "benchmark.models.vit", "benchmark.models.vae", "baselines.classical",
           "benchmark.models.mlp")
LIGHT = ("baselines.classical",)
_MODELS: dict[str, type[Model]] = {}
_loaded: set[str] = set()


def register_model(cls: type[Model]) -> type[Model]:
    if cls.name in _MODELS:
        raise ValueError(f"model {cls.name!r} is already registered")
    _MODELS[cls.name] = cls
    return cls


def _load(until: str | None = None) -> None:
    plugins.load()
    for module in (*LIGHT, *MODULES):
        if until is not None and until in _MODELS:
            return
        if module not in _loaded:
            importlib.import_module(module)
            _loaded.add(module)


def get_model_class(name: str) -> type[Model]:
    """The class of ``name``: a model, or a family for ``family:member`` (and for the bare family name)."""
    base, sep, member = name.partition(":")
    _load(until=base)
    cls = _MODELS.get(base)
    if cls is None or (sep and cls.family_key is None):
        families = ", ".join(f"{n}:<name>" for n, c in _MODELS.items() if c.family_key)
        raise BenchError(f"unknown model {name!r}{suggest(base, _MODELS)}; known: "
                         f"{', '.join(c.name for c in list_models())}; families: {families or 'none'}")
    if sep and not member.strip():
        raise BenchError(f"model {name!r}: name a member of the {base} family, as {base}:<name>")
    return cls


def list_models() -> list[type[Model]]:
    """Every registered model, families excluded."""
    _load()
    return [cls for cls in _ordered() if cls.family_key is None]


def list_families() -> list[type[Model]]:
    _load()
    return [cls for cls in _ordered() if cls.family_key is not None]


def _ordered() -> list[type[Model]]:
    """Registration order within a module, modules in ``MODULES`` order (others, e.g. a test's, last)."""
    rank = {m: i for i, m in enumerate(MODULES)}
    return sorted(_MODELS.values(), key=lambda c: rank.get(c.__module__, len(rank)))


def create_model(name: str, task: TaskSpec, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Model:
    """Build model ``name`` for ``task``: its defaults updated by ``config`` (unknown keys refused).

    ``family:<member>`` (e.g. ``timm:<model name>``) sets the family's ``family_key`` from the member.
    """
    cls = get_model_class(name)
    config = dict(config or {})
    if ":" in name:
        config[cls.family_key] = name.split(":", 1)[1]
    unknown = sorted(set(config) - set(cls.default_config))
    if unknown:
        raise ConfigError(f"model {cls.name!r}: unknown config key(s) {unknown}; known: {sorted(cls.default_config)}")
    return cls(task, {**cls.default_config, **config}, **kwargs)
