"""What every ``bench perf`` comparison shares: timestamped progress lines and prepared splits."""
from __future__ import annotations

import sys
import time
from pathlib import Path

_T0 = [time.perf_counter()]  # when the run started: progress lines show the elapsed time


def start_clock() -> None:
    _T0[0] = time.perf_counter()


def log(message: str) -> None:
    elapsed = int(time.perf_counter() - _T0[0])
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def prepared_splits(task_name: str, n: int, root: Path, seed: int = 0):
    """``(task, train, val)`` of ``n`` synthetic samples of ``task_name``, prepared under ``root``."""
    from benchmark.data import Sizes, Source, Split, prepare
    from benchmark.tasks import get_task

    p = prepare(get_task(task_name), source=Source.SYNTHETIC, root=root, seed=seed, sizes=Sizes.total(n))
    return p.task, p.split(Split.TRAIN), p.split(Split.VAL)
