"""``bench perf``'s blackbox row (5): how fast ``benchmark.tables.api`` answers, and what a 100-trial TPE
study against a blackbox costs beside TPE's own cost (the same study with every value known beforehand)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmark.perf.common import log
from benchmark.perf.report import Comparison


def blackbox_speed(*, trials: int, name: str = "atlas_topo/mlp", tables: Path | None = None,
                   repeats: int = 2000) -> Comparison:
    """Answer latency from the table and from the surrogate; ``trials`` of TPE through
    ``api.optuna_objective`` vs TPE's ask and tell alone, told the same values."""
    import optuna

    from benchmark.errors import BenchError
    from benchmark.tables import api

    title = "5. Blackbox answers: benchmark.tables.api, and a TPE study against it vs TPE alone"
    target = "a recorded answer in at most 1 ms; a TPE study against a blackbox at most 2x TPE's own cost"
    try:
        bench = api.load(name, tables)
    except BenchError as e:
        return Comparison("blackbox", title, (), f"not measured: {e}", target, None)
    config = bench.configs[0]
    t0 = time.perf_counter()
    for _ in range(repeats):
        bench(config)
    table_us = (time.perf_counter() - t0) / repeats * 1e6
    floats = [p for p in bench.space.params if p.type == "float" and p.name in config]
    others = [{**config, **{p.name: p.low + (p.high - p.low) * (i + 0.5) / 51 for p in floats}} for i in range(51)]
    bench(others.pop())  # the surrogate is fitted on first use
    times = []
    for other in others:  # each asked once: not from the per-configuration cache
        t0 = time.perf_counter()
        bench(other)
        times.append(time.perf_counter() - t0)
    surrogate_ms = statistics.median(times) * 1e3
    log(f"blackbox: {trials} TPE trials against {name}, then TPE alone told the same values")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(api.optuna_objective(bench), n_trials=trials)
    with_blackbox = time.perf_counter() - t0
    values = [t.value for t in study.trials]
    alone = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    for value in values:  # the same suggestions (same seed, same told values): the sampler's own cost
        trial = alone.ask()
        bench.space.suggest(trial)
        alone.tell(trial, value)
    tpe_alone = time.perf_counter() - t0
    ratio = with_blackbox / tpe_alone
    rows = ({"what": f"answer a recorded configuration ({name})", "median_or_mean": "mean", "time_us": table_us},
            {"what": f"answer another configuration (surrogate: {bench.surrogate_name})", "median_or_mean": "median",
             "time_us": surrogate_ms * 1e3},
            {"what": f"{trials} TPE trials through api.optuna_objective", "seconds": with_blackbox,
             "best_val_auc": study.best_value},
            {"what": f"{trials} TPE ask/tell alone, the same values told", "seconds": tpe_alone,
             "best_val_auc": max(values)})
    return Comparison(
        "blackbox", title, rows,
        f"recorded answer {table_us:.0f} us, surrogate answer {surrogate_ms:.1f} ms; TPE study {with_blackbox:.1f} s "
        f"vs TPE alone {tpe_alone:.1f} s = {ratio:.2f}x",
        target, table_us <= 1000 and ratio <= 2.0,
        f"`api.load({name!r})`; a recorded answer: the mean over {repeats} calls of `bench(config)` (every metric "
        "at the full budget); another configuration's: the median over 50 "
        "configurations never asked before (the surrogate fitted first; a configuration's curve is kept for its "
        "next epochs). "
        f"The study: Optuna's TPE (seed 0), {trials} trials, each walking the epochs through `bench(config, epoch)` "
        "(no pruner). TPE alone: a fresh TPE study of the same seed asked and told the values the first one saw, "
        "which suggests the same configurations: what the sampler itself costs.")
