"""Side-by-side performance comparisons, measured in one process on the same data and hardware.

    bench perf [--quick] [--out leaderboard/perf.md]    # all four, a table and a Markdown page
    python -m benchmark.perf defaults                   # untuned defaults, every model x task

1. ``throughput``: (a) ``resnet15`` trained by the suite's loop (whole-array batches from the prepared
   arrays) vs the same network fed by a per-sample ``Dataset`` / ``DataLoader``, as the reference
   solutions do; (b) ``vit`` at the task's native resolution vs the reference's
   ``vit_tiny_patch16_224`` on 224 x 224 resized, 3-channel copies (hcal_dqm, the task the reference
   ViT solution used). Each side trains the same number of epochs on the same rows and reports its
   validation AUC, so speed is not bought with accuracy.
2. ``runner``: N near-instant trials (naive Bayes on summary features) under ``bench run``'s machinery
   (``runner.run``) vs the same objective under plain ``optuna`` ``study.optimize``, each timed from
   its first trial's result to its last (Ray's start-up excluded).
3. ``search``: on one task and model, TPE + ASHA vs random search without early stopping, the same
   number of trials, several seeds, through ``runner.run``: best validation AUC and epochs consumed.
4. ``memory``: the resident memory of 1 vs 4 concurrent trials on the same prepared, memory-mapped
   data (:mod:`benchmark.procmem`), beside the trials' model states.

1 is here; 2-4 run through ``runner.run`` and live in :mod:`benchmark.perf_runs`; :mod:`benchmark.perf_report`
formats the result.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.perf_report import Comparison, Report, format_terminal, hardware, load_average

COMPARISONS = ("throughput", "runner", "search", "memory")


@dataclasses.dataclass(frozen=True)
class PerfSizes:
    """Input sizes of ``bench perf``. :data:`FULL` is the published run (8 to 10 min on 2 idle CPU cores),
    :data:`QUICK` the CI-sized one (checks that everything runs; its numbers mean little)."""

    samples: int = 1200  # throughput: synthetic samples per task (70 % train, 15 % validation)
    epochs: int = 2  # throughput: epochs, the same on both sides
    rounds: int = 2  # throughput, resnet15: alternating repetitions, each side keeps its fastest
    vit_rounds: int = 1  # throughput, vit: the reference alone takes minutes per round
    threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    trials: int = 100  # runner: near-instant trials
    runner_samples: int = 1000
    search_trials: int = 16
    search_epochs: int = 9  # ASHA rungs at 1 and 3 epochs (reduction factor 3), 9 at most
    search_samples: int = 600
    seeds: int = 3
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
QUICK = PerfSizes(samples=100, epochs=1, rounds=1, vit_rounds=1, trials=3, runner_samples=200, search_trials=2,
                  search_epochs=2, search_samples=200, seeds=2, memory_samples=300, memory_epochs=1)


_T0 = [time.perf_counter()]  # when run_all started: progress lines show the elapsed time


def _log(message: str) -> None:
    elapsed = int(time.perf_counter() - _T0[0])
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def _prepared(task_name: str, n: int, root: Path, seed: int = 0):
    from benchmark.data import Source, Split, prepare
    from benchmark.tasks import get_task

    p = prepare(get_task(task_name), source=Source.SYNTHETIC, root=root, seed=seed, n_samples=n)
    return p.task, p.split(Split.TRAIN), p.split(Split.VAL)


def _suite_train(net, train, *, batch_size: int, epochs: int, lr: float) -> float:
    """Seconds spent in the suite's training epochs (``training.train_epoch`` over a ``Feeder``)."""
    import torch

    from benchmark.models.training import ClassifierObjective, Feeder, make_optimizer, train_epoch, warmup_cosine

    feeder = Feeder(train.X, train.y, batch_size=batch_size, device=torch.device("cpu"))
    opt = make_optimizer(net, lr, 1e-2)
    sched = warmup_cosine(opt, warmup_steps=feeder.n_batches(), total_steps=epochs * feeder.n_batches())
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_epoch(net, ClassifierObjective(0.0), feeder, opt, sched, rng=rng, grad_clip=1.0, epoch=epoch, base_lr=lr)
    return time.perf_counter() - t0


class _PerSampleDataset:
    """The reference solutions' input pipeline: one sample per ``__getitem__``, transformed there."""

    def __init__(self, X, y, transform=None):
        self.X, self.y, self.transform = X, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        import torch

        x = torch.tensor(np.asarray(self.X[i], dtype=np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(float(self.y[i]))


def _reference_train(net, train, *, batch_size: int, epochs: int, lr: float, transform=None) -> float:
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(_PerSampleDataset(train.X, train.y, transform), batch_size=batch_size, shuffle=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(net(x)[:, 0], y)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def _val_scores(net, val, transform=None, batch_size: int = 256) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(val), batch_size):
            x = torch.from_numpy(np.array(val.X[start:start + batch_size], dtype=np.float32))
            if transform is not None:
                x = torch.stack([transform(xi) for xi in x])
            out.append(net(x)[:, 0].float().numpy())
    return np.concatenate(out)


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, *, seed: int = 0,
                          n_boot: int = 1000) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) on the same samples and its paired, stratified percentile-bootstrap 95 % interval."""
    from benchmark.metrics import roc_auc

    y = np.asarray(y).astype(bool)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        diffs[i] = roc_auc(y[idx], a[idx]) - roc_auc(y[idx], b[idx])
    low, high = np.quantile(diffs, [0.025, 0.975])
    return roc_auc(y, a) - roc_auc(y, b), float(low), float(high)


def throughput(*, n: int, epochs: int, threads: int, root: Path, rounds: int = 2,
               vit_rounds: int = 1) -> list[Comparison]:
    import timm
    import torch

    from benchmark.metrics import roc_auc
    from benchmark.models import create_model
    from benchmark.models.training import Standardize, channel_stats
    from benchmark.models.vit import reference_vit_inputs

    torch.set_num_threads(threads)

    def standardized(net, train):
        mean, std = channel_stats(train.X, np.arange(len(train)), np.random.default_rng(0))
        return Standardize(net, mean, std)

    def pair(task, train, val, sides, rounds):
        """Time both sides ``rounds`` times in alternating order and keep each side's best: a busy
        machine slows whichever runs during the disturbance, not a side."""
        best: dict[str, dict] = {}
        for r in range(rounds):
            for label, build, train_fn, transform in (sides if r % 2 == 0 else sides[::-1]):
                torch.manual_seed(0)
                net = build()
                seconds = train_fn(net, train)
                scores = _val_scores(net, val, transform)
                row = {"side": label, "task": task.name, "train_samples": len(train), "epochs": epochs,
                       "samples_per_s": len(train) * epochs / seconds, "seconds": seconds,
                       "val_auc": roc_auc(np.asarray(val.y), scores),
                       "parameters": sum(p.numel() for p in net.parameters()), "_scores": scores}
                _log(f"  round {r + 1}: {label}: {row['samples_per_s']:.1f} samples/s")
                if label not in best or seconds < best[label]["seconds"]:
                    best[label] = row
        rows = [best[label] for label, *_ in sides]
        return rows, [r.pop("_scores") for r in rows]

    out = []
    task, train, val = _prepared("ee_gamma", n, root)
    resnet = create_model("resnet15", task, {"width": 16, "batch_size": 128})
    rows, _ = pair(task, train, val, [
        (label, lambda: standardized(resnet.build_net(), train),
         lambda net, tr, fn=fn: fn(net, tr, batch_size=128, epochs=epochs, lr=1e-3), None)
        for label, fn in (("suite loop", _suite_train), ("per-sample DataLoader", _reference_train))], rounds)
    ratio = rows[0]["samples_per_s"] / rows[1]["samples_per_s"]
    out.append(Comparison(
        "throughput_resnet15", "1a. Training throughput: resnet15, suite loop vs per-sample DataLoader",
        tuple(rows), f"{rows[0]['samples_per_s']:.0f} vs {rows[1]['samples_per_s']:.0f} samples/s = {ratio:.2f}x "
        f"(val AUC {rows[0]['val_auc']:.3f} vs {rows[1]['val_auc']:.3f})",
        "suite loop ahead of the per-sample loader on CPU (> 1x)", ratio > 1,
        f"The same network and initial weights, batch size 128, {threads} torch threads, {epochs} epoch(s) on the "
        f"same {len(train)} ee_gamma rows. Suite: `training.train_epoch` over a `Feeder` (whole-batch reads from the "
        "memory-mapped arrays; AdamW, warm-up + cosine, clipping). Reference: a `Dataset` returning one sample per "
        f"`__getitem__`, a shuffling `DataLoader` and Adam, as the reference solutions. Best of {rounds} "
        "alternating round(s) per side."))

    task, train, val = _prepared("hcal_dqm", n, root)
    vit = create_model("vit", task, {"patch_size": 8, "batch_size": 64})
    ref = lambda x: reference_vit_inputs(x[None])[0]  # noqa: E731  per sample, as the reference does
    rows, (s_native, s_ref) = pair(task, train, val, [
        ("vit, native 64x72x1 (suite)", lambda: standardized(vit.build_net(), train),
         lambda net, tr: _suite_train(net, tr, batch_size=64, epochs=epochs, lr=5e-4), None),
        ("vit_tiny_patch16_224 on 224x224x3 (reference)",
         lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1),
         lambda net, tr: _reference_train(net, tr, batch_size=64, epochs=epochs, lr=5e-4, transform=ref), ref)],
        vit_rounds)
    ratio = rows[0]["samples_per_s"] / rows[1]["samples_per_s"]
    diff, low, high = paired_auc_difference(np.asarray(val.y), s_native, s_ref)
    out.append(Comparison(
        "throughput_vit", "1b. Training throughput: vit at native resolution vs the reference's vit_tiny_patch16_224",
        tuple(rows), f"{rows[0]['samples_per_s']:.1f} vs {rows[1]['samples_per_s']:.2f} samples/s = {ratio:.1f}x; "
        f"val AUC {rows[0]['val_auc']:.3f} vs {rows[1]['val_auc']:.3f} (difference {diff:+.3f}, "
        f"95 % CI [{low:+.3f}, {high:+.3f}])",
        ">= 5x the reference's samples/s at equal or better val AUC", ratio >= 5 and high >= 0,
        f"hcal_dqm, {epochs} epoch(s) on {len(train)} rows each side, {threads} torch threads, batch 64, "
        f"best of {vit_rounds} round(s). The reference resizes every image to 224x224 and repeats its channel "
        "to 3 in `__getitem__`, as the reference solution does. 'Equal or better' is judged on the "
        f"{len(val)} validation rows: the paired, stratified bootstrap 95 % interval of AUC(native) - "
        "AUC(reference) must reach 0 or above (the suite is not measurably worse); the point estimates are "
        "in the table."))
    return out


def defaults(*, n: dict[str, int], epochs: int, threads: int, root: Path) -> list[dict]:
    """Test AUC of every model with its default config (neural: ``epochs`` at most) on every task."""
    from benchmark import metrics
    from benchmark.data import Source, Split, prepare
    from benchmark.models import create_model, get_model_class, list_models
    from benchmark.tasks import list_tasks

    rows = []
    for task in (t for t in list_tasks() if t.name in n):
        p = prepare(task, source=Source.SYNTHETIC, root=root, seed=0, n_samples=n.get(task.name, task.default_n_samples))
        train, val, test = (p.split(s) for s in Split)
        for cls in list_models():
            config = {"epochs": epochs} if "epochs" in get_model_class(cls.name).default_config else {}
            model = create_model(cls.name, task, config, seed=0, threads=threads)
            t0 = time.perf_counter()
            epochs_run = []
            model.fit(train, val, report=lambda step, m: epochs_run.append(step))
            seconds = time.perf_counter() - t0
            rows.append({"task": task.name, "model": cls.name, "train": len(train), "test": len(test),
                         "epochs": len(epochs_run), "fit_s": seconds, "test_auc": metrics.roc_auc(test.y, model.score(test))})
            print(f"  {task.name} / {cls.name}: test AUC {rows[-1]['test_auc']:.3f} in {seconds:.0f} s", flush=True)
    return rows


def run_all(sizes: PerfSizes = FULL, *, only: Sequence[str] = COMPARISONS, command: str = "bench perf") -> Report:
    """Every comparison in ``only`` on ``sizes``, in this process, on synthetic data in a temporary
    directory. The Ray instance the runner starts stays up until the process exits."""
    unknown = sorted(set(only) - set(COMPARISONS))
    if unknown:
        raise ValueError(f"unknown comparison(s) {unknown}; known: {', '.join(COMPARISONS)}")
    load_before, t0 = load_average(), time.perf_counter()
    _T0[0] = t0
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        root = Path(tmp)
        _log(f"bench perf: {', '.join(c for c in COMPARISONS if c in only)}")
        if "throughput" in only:  # first, before Ray's processes exist
            comparisons += throughput(n=sizes.samples, epochs=sizes.epochs, threads=sizes.threads,
                                      root=root / "data", rounds=sizes.rounds, vit_rounds=sizes.vit_rounds)
        from benchmark.perf_runs import memory, runner_cost, search_efficiency

        if "runner" in only:
            comparisons.append(runner_cost(trials=sizes.trials, n=sizes.runner_samples, root=root))
        if "search" in only:
            comparisons.append(search_efficiency(trials=sizes.search_trials, max_epochs=sizes.search_epochs,
                                                 n=sizes.search_samples, seeds=sizes.seeds, root=root))
        if "memory" in only:
            comparisons.append(memory(n=sizes.memory_samples, epochs=sizes.memory_epochs, root=root))
    preset = "full" if sizes == FULL else "quick" if sizes == QUICK else "custom"
    return Report(command=command, hardware=hardware(), comparisons=tuple(comparisons),
                  sizes=dataclasses.asdict(sizes), preset=preset, wall_s=time.perf_counter() - t0,
                  load_before=load_before, load_after=load_average())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in COMPARISONS:
        p = sub.add_parser(name, help=f"only the {name} comparison (bench perf runs all four)")
        p.add_argument("--quick", action="store_true")
    d = sub.add_parser("defaults")
    d.add_argument("--n", nargs="*", default=["ee_gamma=10000", "quark_gluon=3000", "hcal_dqm=4000", "atlas_topo=10000"],
                   metavar="TASK=N", help="the tasks to run and their synthetic sample counts")
    d.add_argument("--epochs", type=int, default=5)
    d.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "defaults":
        with tempfile.TemporaryDirectory() as tmp:
            sizes = {k: int(v) for k, v in (item.split("=") for item in args.n)}
            rows = defaults(n=sizes, epochs=args.epochs, threads=args.threads, root=Path(tmp))
        from benchmark.perf_report import _aligned

        print("\n".join(_aligned(rows)))
        return 0
    report = run_all(QUICK if args.quick else FULL, only=(args.what,),
                     command=" ".join(["python -m benchmark.perf", *(argv if argv is not None else sys.argv[1:])]))
    print(format_terminal(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
