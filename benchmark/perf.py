"""Side-by-side performance comparisons, measured in one process on the same data and hardware.

    python -m benchmark.perf throughput [--n 2000 --epochs 2]   # training samples/s + val AUC
    python -m benchmark.perf runner [--trials 100]              # bench run vs plain optuna
    python -m benchmark.perf defaults                           # untuned defaults, every model x task

``throughput``: (a) ``resnet15`` trained by the suite's loop (whole-array batches from the prepared
arrays) vs the same network fed by a per-sample ``Dataset`` / ``DataLoader``, as the reference
solutions do; (b) ``vit`` at the task's native resolution vs the reference's ``vit_tiny_patch16_224``
on 224 x 224 resized, 3-channel copies (hcal_dqm, the task the reference ViT solution used). Each
side trains the same number of epochs and reports its validation AUC, so speed is not bought with
accuracy. ``runner``: the wall time of N near-instant trials under the Ray Tune runner
(``tuner.fit()`` only: Ray's start-up is excluded) vs the same objective under ``study.optimize``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


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


def _val_auc(net, val, transform=None, batch_size: int = 256) -> float:
    import torch

    from benchmark.metrics import roc_auc

    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(val), batch_size):
            x = torch.from_numpy(np.array(val.X[start:start + batch_size], dtype=np.float32))
            if transform is not None:
                x = torch.stack([transform(xi) for xi in x])
            out.append(net(x)[:, 0].float().numpy())
    return roc_auc(np.asarray(val.y), np.concatenate(out))


def throughput(*, n: int, epochs: int, threads: int, root: Path, rounds: int = 2) -> list[dict]:
    import timm
    import torch

    from benchmark.models import create_model
    from benchmark.models.training import Standardize, channel_stats
    from benchmark.models.vit import reference_vit_inputs

    torch.set_num_threads(threads)
    rows = []

    def standardized(net, train):
        mean, std = channel_stats(train.X, np.arange(len(train)), np.random.default_rng(0))
        return Standardize(net, mean, std)

    def pair(task, train, val, sides):
        """Time both sides ``rounds`` times in alternating order and keep each side's best: a busy
        machine slows whichever runs during the disturbance, not a side."""
        best: dict[str, dict] = {}
        for r in range(rounds):
            for label, build, train_fn, transform in (sides if r % 2 == 0 else sides[::-1]):
                torch.manual_seed(0)
                net = build()
                seconds = train_fn(net, train)
                row = {"comparison": label, "task": task.name, "train_samples": len(train), "epochs": epochs,
                       "samples_per_s": len(train) * epochs / seconds, "seconds": seconds,
                       "val_auc": _val_auc(net, val, transform), "parameters": sum(p.numel() for p in net.parameters())}
                print(f"  round {r + 1}: {label}: {row['samples_per_s']:.1f} samples/s", flush=True)
                if label not in best or seconds < best[label]["seconds"]:
                    best[label] = row
        rows.extend(best[label] for label, *_ in sides)

    task, train, val = _prepared("ee_gamma", n, root)
    resnet = create_model("resnet15", task, {"width": 16, "batch_size": 128})
    pair(task, train, val, [
        (label, lambda: standardized(resnet.build_net(), train),
         lambda net, tr, fn=fn: fn(net, tr, batch_size=128, epochs=epochs, lr=1e-3), None)
        for label, fn in (("resnet15 / suite loop", _suite_train), ("resnet15 / per-sample DataLoader", _reference_train))])

    task, train, val = _prepared("hcal_dqm", n, root)
    vit = create_model("vit", task, {"patch_size": 8, "batch_size": 64})
    ref = lambda x: reference_vit_inputs(x[None])[0]  # noqa: E731  per sample, as the reference does
    pair(task, train, val, [
        ("vit / native 64x72, 1 channel (suite)", lambda: standardized(vit.build_net(), train),
         lambda net, tr: _suite_train(net, tr, batch_size=64, epochs=epochs, lr=5e-4), None),
        ("vit / vit_tiny_patch16_224 on 224x224x3 (reference)",
         lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1),
         lambda net, tr: _reference_train(net, tr, batch_size=64, epochs=epochs, lr=5e-4, transform=ref), ref)])
    return rows


def runner_cost(*, trials: int, n: int, root: Path, concurrency: int) -> list[dict]:
    """N trials of naive_bayes on summary features (milliseconds each): runner vs plain optuna."""
    import optuna

    from benchmark import runner
    from benchmark.models import create_model, get_model_class
    from benchmark.search_space import load_space

    model_name, task_name = "naive_bayes", "ee_gamma"
    task, train, val = _prepared(task_name, n, root)
    space = load_space(model_name, known_keys=get_model_class(model_name).default_config).with_fixed(pool=0)

    def objective(trial):
        config = {**space.suggest(trial), **trial.params}
        model = create_model(model_name, task, config, seed=0, threads=1)
        aucs = []
        model.fit(train, val, report=lambda step, m: aucs.append(m["val_auc"]))
        return max(aucs)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    t_optuna = time.perf_counter() - t0

    space_file = root / "nb_features_only.yaml"
    space_file.write_text("var_smoothing: {type: float, low: 1.0e-12, high: 1.0e-3, log: true}\n"
                          "pool: {type: fixed, value: 0}\n")
    rows = [{"setup": "optuna study.optimize (1 process)", "trials": trials, "wall_s": t_optuna,
             "best_val_auc": study.best_value}]
    for conc in sorted({1, concurrency}):
        spec = runner.RunSpec(tasks=(task_name,), models=(model_name,), trials=trials, n_samples=n, seed=0,
                              concurrency=conc, source="synthetic", name=f"cost-{conc}", data_root=root,
                              runs_dir=root / "runs", leaderboard_dir=root / "leaderboard",
                              spaces={model_name: str(space_file)})
        run_dir = runner.run(spec)
        import json

        result = json.loads((run_dir / task_name / model_name / "result.json").read_text())
        rows.append({"setup": f"bench run, {conc} concurrent trial(s) (tuner.fit)", "trials": trials,
                     "wall_s": result["search_wall_s"], "best_val_auc": result["val_auc"]})
    for r in rows:
        r["ratio_to_optuna"] = r["wall_s"] / t_optuna
    return rows


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


def _format(rows: list[dict]) -> str:
    keys = list(rows[0])
    cells = [[f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=2000, help="synthetic samples per task (70%% train)")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--rounds", type=int, default=2, help="alternating repetitions; each side keeps its best")
    r = sub.add_parser("runner")
    r.add_argument("--trials", type=int, default=100)
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--concurrency", type=int, default=2)
    d = sub.add_parser("defaults")
    d.add_argument("--n", nargs="*", default=["ee_gamma=10000", "quark_gluon=3000", "hcal_dqm=4000", "atlas_topo=10000"],
                   metavar="TASK=N", help="the tasks to run and their synthetic sample counts")
    d.add_argument("--epochs", type=int, default=5)
    d.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.what == "throughput":
            rows = throughput(n=args.n, epochs=args.epochs, threads=args.threads, root=Path(tmp), rounds=args.rounds)
            print(_format(rows))
            suite, ref = rows[0]["samples_per_s"], rows[1]["samples_per_s"]
            print(f"\nresnet15: suite loop / per-sample loader = {suite / ref:.2f}x")
            print(f"vit: native / reference 224x224 = {rows[2]['samples_per_s'] / rows[3]['samples_per_s']:.2f}x")
        elif args.what == "defaults":
            sizes = {k: int(v) for k, v in (item.split("=") for item in args.n)}
            rows = defaults(n=sizes, epochs=args.epochs, threads=args.threads, root=Path(tmp))
            print(_format(rows))
        else:
            rows = runner_cost(trials=args.trials, n=args.n, root=Path(tmp), concurrency=args.concurrency)
            print(_format(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
