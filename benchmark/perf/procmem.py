"""Resident memory of a group of processes, read from Linux's ``/proc``: how ``bench perf`` compares one
trial with several concurrent ones.

Each process's memory is split in two (``/proc/<pid>/smaps_rollup``):

* **anonymous** pages: the process's own heap, i.e. the Python / torch runtime, the model, its
  gradients and optimiser state, activations, batch copies. Data copied into a trial would land here.
* **file-backed** pages: shared libraries and memory-mapped files such as the prepared splits. The
  page cache holds such a page once however many processes map it, so summing them over processes
  (as a sum of RSS does) counts shared data once per process.

A group's memory is therefore the sum of its processes' anonymous pages plus the shared files it
reads, counted once (see ``benchmark.perf.runs.memory``). Reading ``smaps_rollup`` costs about a
millisecond per process, so sampling every 0.1 s barely disturbs what it measures.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")


def available() -> bool:
    """Whether this system exposes ``/proc/<pid>/smaps_rollup`` (Linux 4.14+)."""
    return (PROC / str(os.getpid()) / "smaps_rollup").is_file()


def rollup(pid: int) -> dict[str, int] | None:
    """``smaps_rollup`` of ``pid`` in bytes (Rss, Pss, Anonymous, ...), or None once it has exited."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    out = {}
    for line in text.splitlines()[1:]:
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
    return out


def title(pid: int) -> str:
    """The process's command line as ``ps`` shows it (Ray sets it to e.g. ``ray::ImplicitFunc.train``)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def descendants(root: int) -> set[int]:
    """Every process below ``root`` in the process tree (Ray's workers are children of its raylet,
    which is a child of the driver), so other Ray clusters on the machine are never counted."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name field may hold spaces or parentheses
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclasses.dataclass(frozen=True)
class GroupPeak:
    """The moment the group's anonymous memory peaked: its sum, each process's rollup then, and the
    most processes of the group seen at once."""

    anonymous: int
    rss: int
    pss: int
    per_process: tuple[dict[str, int], ...]
    max_processes: int
    samples: int


class GroupSampler:
    """Samples, every ``interval`` seconds in a thread, the processes below this one whose command
    line satisfies ``match``, and keeps the peak of their summed anonymous memory.

    Example:
        >>> with GroupSampler(lambda t: t.startswith("ray::ImplicitFunc")) as sampler:  # doctest: +SKIP
        ...     run_trials()
        >>> sampler.peak.anonymous  # doctest: +SKIP
    """

    def __init__(self, match: Callable[[str], bool], *, interval: float = 0.1, root: int | None = None) -> None:
        self.match, self.interval, self.root = match, interval, os.getpid() if root is None else root
        self.peak = GroupPeak(0, 0, 0, (), 0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="GroupSampler", daemon=True)

    def __enter__(self) -> GroupSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        members: dict[int, bool] = {}  # pid -> matches (a Ray worker's title changes when it becomes an actor)
        samples, max_processes, last_scan = 0, 0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_scan > 0.5:  # new processes: a /proc scan costs a few ms, a rollup less than one
                pids = descendants(self.root)
                last_scan = now
            rollups = []
            for pid in sorted(pids):
                if not members.get(pid):
                    members[pid] = self.match(title(pid))
                if members[pid] and (r := rollup(pid)) is not None:
                    rollups.append(r)
            samples += 1
            max_processes = max(max_processes, len(rollups))
            anonymous = sum(r.get("Anonymous", 0) for r in rollups)
            if anonymous > self.peak.anonymous:
                self.peak = GroupPeak(anonymous, sum(r.get("Rss", 0) for r in rollups),
                                      sum(r.get("Pss", 0) for r in rollups), tuple(rollups), max_processes, samples)
            self.peak = dataclasses.replace(self.peak, max_processes=max_processes, samples=samples)
            self._stop.wait(self.interval)
