"""``bench perf``'s search efficiency (3), answered by replaying the recorded tables (``leaderboard/tables``,
:mod:`benchmark.tables.replay`): TPE + ASHA against random search without early stopping, many seeds each."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.perf.common import log
from benchmark.perf.report import Comparison
from benchmark.strategies import ASHA

TABLES = Path(__file__).resolve().parents[2] / "leaderboard" / "tables"
FAST, SLOW = ("TPE + ASHA", "tpe", "asha"), ("random, no early stopping", "random", "none")


def passed(epochs, rungs: list[int]) -> str:
    """How many of the trials that reached each rung went on past it, e.g. ``1: 9/16, 3: 6/9``."""
    return ", ".join(f"{r}: {sum(e > r for e in epochs)}/{sum(e >= r for e in epochs)}" for r in rungs)


def search_efficiency(*, trials: int, seeds: int, tables: Path = TABLES) -> Comparison:
    """On every recorded table's model with a fidelity: the simulated time and the epochs TPE + ASHA needs
    to reach random search's final best validation AUC (IQM over ``seeds`` seeds), beside random's own."""
    from benchmark.tables import compare
    from benchmark.tables.replay import Surrogate, blackboxes

    title = "3. Search efficiency: TPE + ASHA vs random search, replayed on the recorded tables"
    boxes = [b for path in sorted(Path(tables).glob("*.parquet")) for b in blackboxes(path) if b.max_epochs > 1]
    if not boxes:
        return Comparison("search", title, (), f"no recorded table with a fidelity in {tables}",
                          "TPE + ASHA reaches random search's final best in at most 40 % of its simulated time", None,
                          "Record the tables first (`make table TASK=...`).")
    methods = [compare.Method(s, c) for _, s, c in (FAST, SLOW)]
    log(f"search: {len(boxes)} tables x 2 methods x {seeds} seeds, {trials} trials each (replayed)")
    grid = compare.run_grid(boxes, methods, seeds=seeds, trials=trials, surrogates=[Surrogate.fit(b) for b in boxes])
    rows, ratios = [], []
    for e, (b, box) in zip(compare.efficiency(grid, *methods), enumerate(grid.boxes)):
        for (label, *_), key, m in ((FAST, "fast", methods[0]), (SLOW, "slow", methods[1])):
            reached, t, epochs = e[key]
            traces = grid.traces[b, m]
            rows.append({"search": label, "blackbox": box.name, "target_val_auc": f"{e['target']:.4f}",
                         "seeds_reaching": f"{reached}/{seeds}", "simulated_s_to_reach": t, "epochs_to_reach": epochs,
                         "epochs_in_all": float(np.median([tr.trial_epochs.sum() for tr in traces])),
                         "went_on_past_rung": passed(np.concatenate([tr.trial_epochs for tr in traces]),
                                                     ASHA.rungs(box.max_epochs)) if m.scheduler == "asha" else "-"})
        fast_t, slow_t = e["fast"][1], e["slow"][1]
        ratios.append(fast_t / slow_t if fast_t and slow_t else float("inf"))
    worst = max(ratios)
    return Comparison(
        "search", title, tuple(rows),
        f"TPE + ASHA reaches random's final best in {min(ratios):.0%} to {worst:.0%} of random's simulated time "
        f"(median over seeds; {len(ratios)} tables)",
        "TPE + ASHA reaches random search's final best in at most 40 % of its simulated time", worst <= 0.4,
        f"Each side: {seeds} seeded replays of {trials} trials, 2 at a time, on every recorded table's model with "
        "a fidelity (`benchmark.tables.replay`, k-nearest-neighbour surrogate). Target: random search's final best "
        "validation AUC, the interquartile mean over its seeds. simulated_s_to_reach and epochs_to_reach: "
        "median over the seeds that reach it, in simulated seconds (the recorded epoch times) and epochs "
        "trained by all trials up to then; epochs_in_all: all epochs a replay trained (median). "
        "went_on_past_rung: per ASHA rung, the trials that went on out of those that reached it (all seeds).")
