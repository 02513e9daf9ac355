"""Side-by-side performance comparisons, measured in one process on the same data and hardware.

    bench perf [--quick] [--out leaderboard/perf.md]    # all four, a table and a Markdown page
    python -m benchmark.perf defaults                   # untuned defaults, every model x task

1. ``throughput``: (a) ``resnet15`` trained by the suite's loop (whole-array batches from the prepared
   arrays) vs the same network fed by a per-sample ``Dataset`` / ``DataLoader``, as the reference
   solutions do; (b) ``vit`` at the task's native resolution vs the reference's
   ``vit_tiny_patch16_224`` on 224 x 224 resized, 3-channel copies (hcal_dqm, the task the reference
   ViT solution used). Each side trains the same number of epochs on the same rows and reports its
   validation AUC, so speed is not bought with accuracy. (c, d) the suite's loop on each network and
   task shape in fp32 / bf16 x NCHW / channels-last: whether the device plan picks the fastest, and
   ``auto`` over fp32 NCHW; (e) fp32 vs bf16 through ``fit``, samples/s and validation AUC
   (:mod:`benchmark.perf.precision`).
2. ``runner``: N near-instant trials (naive Bayes on summary features) under ``bench run``'s machinery
   (``runner.run``) vs the short Ray Tune + ``OptunaSearch`` script a user would otherwise write
   (:mod:`benchmark.perf.peer`), 1 and 2 at a time, alternating; plain ``optuna`` ``study.optimize`` as
   the reference line (the cost of Ray Tune itself). Each timed from its first trial's result to its last.
3. ``search``: TPE + ASHA vs random search without early stopping, replayed on the recorded tables
   (``leaderboard/tables``, :mod:`benchmark.tables.replay`) with many seeds: simulated time and epochs to reach
   random search's final best (:mod:`benchmark.perf.search`).
4. ``memory``: the resident memory of 1 vs 4 concurrent trials on the same prepared, memory-mapped
   data (:mod:`benchmark.perf.procmem`), bench run vs the same script holding the same data.
5. ``blackbox``: how fast ``benchmark.tables.api`` answers from a table and from its surrogate, and a TPE
   study against a blackbox beside TPE's own cost (:mod:`benchmark.perf.blackbox`).

1 lives in :mod:`benchmark.perf.throughput`; 2 and 4 run through ``bench run``'s own machinery
(``runner.search``) and live in :mod:`benchmark.perf.runs`; :mod:`benchmark.perf.report` formats the
result. This module holds the input sizes and runs them all.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmark import environment
from benchmark.perf import common
from benchmark.perf.report import Comparison, Report

COMPARISONS = ("throughput", "precision", "runner", "search", "memory", "blackbox")


@dataclasses.dataclass(frozen=True)
class PerfSizes:
    """Input sizes of ``bench perf``. :data:`FULL` is the published run (7 to 13 min on 2 idle AMD EPYC cores),
    :data:`QUICK` the CI-sized one (checks that everything runs; its numbers mean little)."""

    samples: int = 1200  # throughput: synthetic samples per task (70 % train, 15 % validation)
    epochs: int = 2  # throughput: epochs, the same on both sides
    rounds: int = 2  # throughput, resnet15: alternating repetitions, each side keeps its fastest
    vit_rounds: int = 1  # throughput, vit: the reference alone takes minutes per round
    format_rounds: int = 2  # precision x memory format cells: alternating rounds, each keeps its fastest
    precision_samples: int = 1200  # fp32 vs bf16 through fit: synthetic samples per task
    threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    trials: int = 100  # runner: near-instant trials
    runner_samples: int = 1000
    runner_rounds: int = 3  # runner: alternating rounds per side and concurrency, each side keeps its fastest
    search_trials: int = 100  # search: trials per replay
    seeds: int = 50  # search: replays per method
    memory_samples: int = 2000  # hcal_dqm: 18 kB per image, ~31 MB of train + validation images
    memory_epochs: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"PerfSizes.{f.name} must be >= 1, got {getattr(self, f.name)}")
        if self.trials < 2:
            raise ValueError("PerfSizes.trials must be >= 2 (trials are timed from the first one's result)")
        if self.seeds < 2:
            raise ValueError("PerfSizes.seeds must be >= 2 (the seed-to-seed spread is part of the target)")


FULL = PerfSizes()
QUICK = PerfSizes(samples=100, epochs=1, rounds=1, vit_rounds=1, format_rounds=1, precision_samples=100, trials=3, runner_samples=200, runner_rounds=1, search_trials=10,
                  seeds=2, memory_samples=300, memory_epochs=1)


def run_all(sizes: PerfSizes = FULL, *, only: Sequence[str] = COMPARISONS, command: str = "bench perf",
            gpu: bool = False) -> Report:
    """Every comparison in ``only`` on ``sizes``, in this process, on synthetic data in a temporary
    directory. ``gpu``: the throughput and precision rows on the first CUDA GPU. The Ray instance the
    runner starts stays up until the process exits."""
    from benchmark.devices import DevicePlan

    plan = DevicePlan.local(threads=sizes.threads, gpu=gpu)
    if gpu and not plan.is_cuda:
        raise ValueError("--gpu: torch sees no CUDA GPU here")
    unknown = sorted(set(only) - set(COMPARISONS))
    if unknown:
        raise ValueError(f"unknown comparison(s) {unknown}; known: {', '.join(COMPARISONS)}")
    load_before, t0 = environment.load_average(), time.perf_counter()
    common.start_clock()
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        common.log(f"bench perf: {', '.join(c for c in COMPARISONS if c in only)}")
        from benchmark.perf.runs import memory, runner_cost
        from benchmark.perf.search import search_efficiency
        from benchmark.perf.throughput import throughput

        if "throughput" in only:  # first, before Ray's processes exist (and the precision rows)
            comparisons += throughput(n=sizes.samples, epochs=sizes.epochs, plan=plan, root=root / "data", rounds=sizes.rounds, vit_rounds=sizes.vit_rounds)
        if "precision" in only:
            from benchmark.perf.precision import precision_fit, step_rates

            comparisons += step_rates(plan=plan, root=root / "data", rounds=sizes.format_rounds, quick=sizes == QUICK)
            comparisons += precision_fit(n=sizes.precision_samples, epochs=sizes.epochs, plan=plan, root=root / "data")
        if "runner" in only:
            comparisons.append(runner_cost(trials=sizes.trials, n=sizes.runner_samples, root=root, rounds=sizes.runner_rounds))
        if "search" in only:
            comparisons.append(search_efficiency(trials=sizes.search_trials, seeds=sizes.seeds))
        if "memory" in only:
            comparisons.append(memory(n=sizes.memory_samples, epochs=sizes.memory_epochs, root=root))
        if "blackbox" in only:
            from benchmark.perf.blackbox import blackbox_speed

            comparisons.append(blackbox_speed(trials=sizes.search_trials))
    preset = "full" if sizes == FULL else "quick" if sizes == QUICK else "custom"
    return Report(command=command, hardware=hardware(), comparisons=tuple(comparisons),
                  sizes=dataclasses.asdict(sizes), preset=preset, wall_s=time.perf_counter() - t0,
                  load_before=load_before, load_after=environment.load_average())


def hardware() -> dict:
    """The machine, the library versions that set the speed, and torch's thread count."""
    import torch

    return {**environment.hardware(), **environment.versions(), "torch_threads": torch.get_num_threads()}
