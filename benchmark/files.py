"""Writing files so that a reader never sees half of one, whatever kills the writer, and making the
directories they go into. Every module that writes results goes through here."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import DataError


def make_dir(path: Path, fix: str = "pass a writable --data-dir (or set BENCH_DATA_DIR)") -> Path:
    """``mkdir -p path``; a path that cannot be created (read-only, a file in the way) is a DataError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the directory {path}: {e.strerror or e}; {fix}") from None
    return path


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``: readers see the
    old or the new content, never half of it. The temporary file is removed if ``write`` fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem if suffix else path.name}.tmp{os.getpid()}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_savez(path: Path, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` written atomically (``np.savez`` appends ``.npz`` to other names)."""
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")


def write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
