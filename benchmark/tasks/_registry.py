"""The task registry. Task modules call :func:`register_task`; duplicate names are refused. Tasks
from outside the package register through ``$HEPBENCH_PLUGINS`` (:mod:`benchmark.plugins`)."""
from __future__ import annotations

import difflib

from benchmark import plugins
from benchmark.errors import BenchError
from benchmark.tasks.base import TaskSpec

_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    plugins.load()
    try:
        return _TASKS[name]
    except KeyError:
        raise BenchError(f"unknown task {name!r}{suggest(name, _TASKS)}; known: {', '.join(_TASKS)}") from None


def find_task(name: str) -> TaskSpec | None:
    """The task ``name``, or None for one this version does not know (a result from another version)."""
    plugins.load()
    return _TASKS.get(name)


def list_tasks() -> list[TaskSpec]:
    plugins.load()
    return list(_TASKS.values())


def suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
