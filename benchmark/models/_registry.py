"""The model registry: ``@register_model`` on a :class:`Model` subclass; duplicates are refused."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmark.errors import BenchError, ConfigError
from benchmark.models.base import Model
from benchmark.tasks import TaskSpec
from benchmark.tasks._registry import suggest

_MODELS: dict[str, type[Model]] = {}


def register_model(cls: type[Model]) -> type[Model]:
    if cls.name in _MODELS:
        raise ValueError(f"model {cls.name!r} is already registered")
    _MODELS[cls.name] = cls
    return cls


def get_model_class(name: str) -> type[Model]:
    if name.startswith("timm:"):
        name = "timm"
    try:
        return _MODELS[name]
    except KeyError:
        raise BenchError(f"unknown model {name!r}{suggest(name, _MODELS)}; known: {', '.join(_MODELS)}") from None


def list_models() -> list[type[Model]]:
    return [cls for name, cls in _MODELS.items() if name != "timm"]


def create_model(name: str, task: TaskSpec, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Model:
    """Build model ``name`` for ``task``: its defaults updated by ``config`` (unknown keys refused).

    ``timm:<model name>`` builds any timm image classifier (config key ``model_name`` is set from it).
    """
    cls = get_model_class(name)
    config = dict(config or {})
    if name.startswith("timm:"):
        config["model_name"] = name.split(":", 1)[1]
    unknown = sorted(set(config) - set(cls.default_config))
    if unknown:
        raise ConfigError(f"model {cls.name!r}: unknown config key(s) {unknown}; known: {sorted(cls.default_config)}")
    return cls(task, {**cls.default_config, **config}, **kwargs)
