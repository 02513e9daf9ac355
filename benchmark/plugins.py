"""Tasks and models from outside the package: the modules named in ``$HEPBENCH_PLUGINS`` (comma
separated, importable from ``sys.path``) are imported before a registry is first read, so their
``register_task`` / ``register_model`` calls count in ``bench run`` and in every Ray worker, which
inherits the variable. A module that cannot be imported is a one-line error."""
from __future__ import annotations

import importlib
import os

from benchmark.errors import BenchError, one_line

ENV = "HEPBENCH_PLUGINS"
_done: set[str] = set()


def load() -> None:
    for name in filter(None, (part.strip() for part in os.environ.get(ENV, "").split(","))):
        if name in _done:
            continue
        _done.add(name)  # before the import: a plugin reads the registries it registers into
        try:
            importlib.import_module(name)
        except Exception as e:
            _done.discard(name)
            raise BenchError(f"${ENV}: cannot import {name!r} ({one_line(e, typed=True)})") from None
