"""What ``bench perf`` prints and writes: one :class:`Comparison` per measured pair, the hardware it
ran on (:mod:`benchmark.environment`), a terminal table and a Markdown page (``leaderboard/perf.md``)."""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.text import aligned, markdown


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


def aligned_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return aligned(_grid(rows), rule=False).splitlines()


def summary_rows(report: Report) -> list[dict[str, str]]:
    return [{"comparison": c.title, "measured": c.measured, "target": c.target, "verdict": c.verdict}
            for c in report.comparisons]


def format_terminal(report: Report) -> str:
    import textwrap

    out = []
    for c in report.comparisons:
        out += [f"== {c.title}", *aligned_rows(c.rows), f"-> {c.measured}  | target: {c.target}  | {c.verdict}"]
        out += [*textwrap.wrap(c.notes, 110, initial_indent="   ", subsequent_indent="   "), ""]
    out += ["== summary", *aligned_rows(summary_rows(report))]
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
    lines += [f"- CPU: {hw.get('cpu')} ({hw.get('cpus')} logical cores, {hw.get('usable_cores')} usable)",
              f"- memory: {cell(hw.get('memory_gib'))} GiB; GPU: {hw.get('gpu_names')}",
              f"- {hw.get('platform')}, Python {hw.get('python')}",
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
