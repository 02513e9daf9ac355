"""``bench perf``: the suite measured side by side with what users would otherwise run.

Modules: :mod:`~benchmark.perf.suite` (input sizes, ``run_all``), :mod:`~benchmark.perf.throughput`
(1), :mod:`~benchmark.perf.runs` (2-4, through ``bench run``'s machinery), :mod:`~benchmark.perf.report`
(the page), :mod:`~benchmark.perf.procmem` (process memory); ``python -m benchmark.perf`` runs one.
"""
from __future__ import annotations

from benchmark.perf.suite import COMPARISONS, FULL, QUICK, PerfSizes, run_all

__all__ = ["COMPARISONS", "FULL", "QUICK", "PerfSizes", "run_all"]
