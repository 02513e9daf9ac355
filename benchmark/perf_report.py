"""What ``bench perf`` prints and writes: one :class:`Comparison` per measured pair, the hardware it
ran on, a terminal table and a Markdown page (``leaderboard/perf.md``)."""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.tables import aligned, markdown


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One side-by-side comparison: its measured rows, the headline ratio, the target and the verdict.

    ``met`` is None when the target cannot be judged from this run (e.g. a too small input).
    """

    key: str
    title: str
    rows: tuple[Mapping[str, Any], ...]
    measured: str
    target: str
    met: bool | None
    notes: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not judged"}[self.met]


@dataclasses.dataclass(frozen=True)
class Report:
    command: str
    hardware: Mapping[str, Any]
    comparisons: tuple[Comparison, ...]
    sizes: Mapping[str, Any]
    preset: str  # "full", "quick" or "custom" input sizes
    wall_s: float
    load_before: tuple[float, float, float] | None
    load_after: tuple[float, float, float] | None


def hardware() -> dict[str, Any]:
    """CPU model, cores, memory, GPUs and the versions of the libraries that set the speed."""
    import importlib.metadata as md

    info: dict[str, Any] = {"cpu": _cpu_model(), "logical_cores": os.cpu_count(),
                            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                            "memory_gib": _total_memory() / 2**30 if _total_memory() else None,
                            "gpus": _gpus(), "os": platform.platform(), "python": sys.version.split()[0]}
    for pkg in ("torch", "ray", "optuna", "timm", "numpy", "scikit-learn"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # no usable CUDA runtime
        pass
    return "none"


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


# --- formatting ------------------------------------------------------------------------------------

def cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _grid(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Dict rows as a header (every key, in order of appearance) and cells ("-" where a row lacks a key)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [keys, *([cell(r.get(k)) for k in keys] for r in rows)]


def _aligned(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return aligned(_grid(rows), rule=False).splitlines()


def summary_rows(report: Report) -> list[dict[str, str]]:
    return [{"comparison": c.title, "measured": c.measured, "target": c.target, "verdict": c.verdict}
            for c in report.comparisons]


def format_terminal(report: Report) -> str:
    import textwrap

    out = []
    for c in report.comparisons:
        out += [f"== {c.title}", *_aligned(c.rows), f"-> {c.measured}  | target: {c.target}  | {c.verdict}"]
        out += [*textwrap.wrap(c.notes, 110, initial_indent="   ", subsequent_indent="   "), ""]
    out += ["== summary", *_aligned(summary_rows(report))]
    return "\n".join(out)


def format_markdown(report: Report) -> str:
    hw = report.hardware
    lines = ["# Performance: hepbench side by side with what users would otherwise run", "",
             f"Written by `{report.command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} in "
             f"{report.wall_s / 60:.1f} min. Every number below was measured in that one run, both sides of "
             "each comparison on the same data and the same machine; none is typed in by hand. "
             "Regenerate with the same command.", ""]
    if report.preset != "full":
        lines += [f"**These are {report.preset} input sizes, not the full run's** (`bench perf` without size flags): "
                  "a check that everything runs, not measurements to quote.", ""]
    lines += ["## Hardware", ""]
    lines += [f"- CPU: {hw.get('cpu')} ({hw.get('logical_cores')} logical cores, {hw.get('usable_cores')} usable)",
              f"- memory: {cell(hw.get('memory_gib'))} GiB; GPU: {hw.get('gpus')}",
              f"- {hw.get('os')}, Python {hw.get('python')}",
              "- " + ", ".join(f"{k} {hw.get(k)}" for k in ("torch", "ray", "optuna", "timm", "numpy", "scikit-learn")),
              f"- load average (1, 5, 15 min) before: {_load(report.load_before)}; after: {_load(report.load_after)}"
              " (a busy machine slows whichever side runs during the disturbance)", "",
              "## Summary", ""]
    lines.append(markdown(_grid(summary_rows(report))))
    for c in report.comparisons:
        lines += ["", f"## {c.title}", "", markdown(_grid(c.rows)), "",
                  f"**Measured:** {c.measured}. **Target:** {c.target}. **Verdict:** {c.verdict}."]
        if c.notes:
            lines += ["", c.notes]
    lines += ["", "## Input sizes", "", ", ".join(f"`{k}={v}`" for k, v in report.sizes.items()), ""]
    return "\n".join(lines)


def _load(load: tuple[float, float, float] | None) -> str:
    return "-" if load is None else ", ".join(f"{x:.2f}" for x in load)
