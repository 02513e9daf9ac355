"""``bench perf``'s precision and memory-format comparisons.

1c. ``step_rates``: the suite's training loop (``training.train_epoch`` over a ``Feeder``, the model's
    own objective) on each (network, input) in :data:`CASES`, in fp32 and bf16 autocast, each in the
    default (NCHW) and channels-last memory format, alternating; it checks that the format and the
    precision each model's device plan picks are the fastest measured, and gives ``auto`` over fp32
    NCHW (what the suite trained in before it chose per network) per network and input.
1d. ``precision_fit``: the same model trained through its own ``fit`` in fp32 and in bf16, the same
    epochs on the same rows: samples/s and validation AUC (paired bootstrap interval of the difference).

Where this CPU has no native bf16 (no AMX, no AVX512-BF16), bf16 is emulated and ~10x slower: the bf16
cells are then measured on the 32x32 inputs only, with one batch (:func:`_bf16_rows`), enough to show
why ``auto`` is fp32 there.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmark.metrics import paired_auc_difference
from benchmark.perf.common import log, prepared_splits
from benchmark.perf.report import Comparison

#: (model, task, batches per cell): the shapes of the tasks the networks are tuned on.
CASES = (("resnet15", "ee_gamma", 4), ("resnet15", "hcal_dqm", 2), ("resnet15", "quark_gluon", 1),
         ("vae", "ee_gamma", 4), ("vae", "hcal_dqm", 2), ("vit", "ee_gamma", 4), ("vit", "hcal_dqm", 2))
BATCH = 128
#: issue targets for auto over fp32 NCHW, by (model, task)
SPEED_TARGETS = {("resnet15", "ee_gamma"): 1.6, ("resnet15", "hcal_dqm"): 2.5, ("resnet15", "quark_gluon"): 4.0,
                 ("vae", "ee_gamma"): 1.6, ("vit", "hcal_dqm"): 1.3}
FORMAT_TOLERANCE = 0.9  # the plan's choice must reach this share of the fastest cell's samples/s


def _loop_rate(model, train, *, precision: str, channels_last: bool, batches: int) -> float:
    """Samples/s of ``batches`` training steps of the suite's loop on ``model.plan`` (one warm-up step first)."""
    import torch

    from benchmark.models.training import input_map
    from benchmark.perf.throughput import suite_train

    rows = model.train_rows(train)
    rows = (np.arange(len(train)) if rows is None else rows)[:BATCH * (batches + 1)]
    torch.manual_seed(0)
    net = input_map(model.build_net(), train.X, rows, np.random.default_rng(0)).to(model.plan.device)
    kwargs = dict(model=model, batch_size=BATCH, epochs=1, lr=1e-3, precision=precision, channels_last=channels_last)
    suite_train(net, train, rows=rows[:BATCH], **kwargs)  # warm-up
    return (len(rows) - BATCH) / suite_train(net, train, rows=rows[BATCH:], **kwargs)


def step_rates(*, plan, root: Path, rounds: int, quick: bool = False) -> list[Comparison]:
    """The cells of 1c and the ratios of 1d; ``quick``: the 32x32 inputs only, one batch per cell."""
    import torch

    from benchmark.models import create_model

    plan.apply()
    threads = torch.get_num_threads()
    native = plan.bf16_native()
    cells = [(p, cl) for p in ("fp32", "bf16") for cl in (False, True)]
    rows, format_ok, speed = [], [], []
    for model_name, task_name, batches in (c for c in CASES if not quick or c[1] == "ee_gamma"):
        batches = 1 if quick else batches
        task, train, _ = prepared_splits(task_name, BATCH * (batches + 1) * 2 + 200, root)
        model = create_model(model_name, task, {}, plan=plan)
        measure = [c for c in cells if c[0] == "fp32" or native or task.image_shape[1:] == (32, 32)]
        best: dict[tuple[str, bool], float] = {}
        for r in range(rounds):
            for precision, cl in (measure if r % 2 == 0 else measure[::-1]):
                if precision == "bf16" and not native and r > 0:
                    continue  # emulated: one round, one batch
                n = batches if precision == "fp32" or native else 1
                rate = _loop_rate(model, train, precision=precision, channels_last=cl, batches=n)
                best[precision, cl] = max(best.get((precision, cl), 0.0), rate)
        chosen = (model.precision, model.channels_last)
        fastest = max(best, key=best.get)
        ratio = best[chosen] / best["fp32", False]
        format_ok.append(best[chosen] >= FORMAT_TOLERANCE * best[fastest])
        target = SPEED_TARGETS.get((model_name, task_name))
        if target is not None:
            speed.append((model_name, task_name, ratio, target))
        shape = "x".join(map(str, task.image_shape))
        row = {"model": model_name, "task": task_name, "input": shape}
        for precision, cl in cells:
            row[f"{precision} {'channels-last' if cl else 'NCHW'}"] = best.get((precision, cl))
        row.update({"auto picks": f"{chosen[0]} {'channels-last' if chosen[1] else 'NCHW'}",
                    "auto / fp32 NCHW": ratio})
        rows.append(row)
        log(f"  {model_name} {task_name}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()
                                                       if isinstance(v, float) and "/" not in k))
    cpu = (f"this {plan.kind} has native bf16" if native
           else "this CPU has no native bf16 (no AMX, no AVX512-BF16)")
    notes = (f"Samples/s of the suite's training loop (`training.train_epoch` over a `Feeder`, the model's own "
             f"objective, AdamW, clipping), default config, batch {BATCH}, on {plan.kind} ({threads} torch threads), on prepared "
             f"synthetic rows of each task; best of {rounds} alternating round(s) per cell after one warm-up step. "
             f"{cpu}: auto resolves to {plan.precision('auto')}."
             + ("" if native else " bf16 is emulated here: its cells are measured once, one batch, on the 32x32 "
                "inputs only (- = not measured)."))
    met = all(r >= t for *_, r, t in speed)
    return [
        Comparison("memory_format", "1c. Precision and memory format per network and input: the device plan's choice",
                   tuple(rows), f"the plan's choice within {FORMAT_TOLERANCE:.0%} of the fastest cell on "
                   f"{sum(format_ok)} of {len(format_ok)} (network, input) pairs",
                   f"the format and precision auto picks reach {FORMAT_TOLERANCE:.0%} of the fastest measured",
                   all(format_ok), notes),
        Comparison("precision_speed", "1d. Training speed: auto vs fp32 NCHW (the suite before this choice)", (),
                   "; ".join(f"{m} {t} {r:.2f}x" for m, t, r, _ in speed),
                   "; ".join(f"{m} {t} >= {g:g}x" for m, t, _, g in speed), met,
                   "From the table of 1c (the same measurements): auto's cell over fp32 NCHW. " + cpu + "."),
    ]


def precision_fit(*, n: int, epochs: int, plan, root: Path) -> list[Comparison]:
    """fp32 vs bf16 through each model's ``fit``: the same rows, seed and epochs."""
    import torch

    from benchmark.metrics import roc_auc
    from benchmark.models import create_model

    plan.apply()
    threads = torch.get_num_threads()
    cases = (("resnet15", "ee_gamma"), ("vae", "ee_gamma")) + (
        (("resnet15", "hcal_dqm"), ("vit", "hcal_dqm")) if plan.bf16_native() else ())
    out = []
    for model_name, task_name in cases:
        task, train, val = prepared_splits(task_name, n, root)
        rows, scores = [], []
        for precision in ("fp32", "bf16"):
            config = {"precision": precision, "epochs": epochs, "patience": epochs}
            model = create_model(model_name, task, config, seed=0, plan=plan)
            t0 = time.perf_counter()
            model.fit(train, val)
            seconds = time.perf_counter() - t0
            s = model.score(val)
            trained = model.result.n_train
            rows.append({"precision": precision, "task": task_name, "train_samples": trained, "epochs": epochs,
                         "samples_per_s": trained * epochs / seconds, "seconds": seconds,
                         "val_auc": roc_auc(np.asarray(val.y), s)})
            scores.append(s)
            log(f"  {model_name} {task_name} {precision}: {rows[-1]['samples_per_s']:.0f} samples/s")
        diff, low, high = paired_auc_difference(np.asarray(val.y), scores[1], scores[0])
        ratio = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
        out.append(Comparison(
            f"precision_{model_name}_{task_name}", f"1e. bf16 vs fp32 through fit: {model_name} on {task_name}",
            tuple(rows), f"{ratio:.2f}x the samples/s; val AUC {rows[1]['val_auc']:.3f} vs {rows[0]['val_auc']:.3f} "
            f"(difference {diff:+.3f}, 95 % CI [{low:+.3f}, {high:+.3f}])",
            "bf16's val AUC not measurably worse (the interval reaches 0 or above)", high >= 0,
            f"Both sides: `{model_name}` defaults, seed 0, {epochs} epoch(s) (no early stop), the same "
            f"{len(train)} training rows (the VAE trains on their background) and {len(val)} validation rows, "
            f"{plan.kind} ({threads} torch threads); seconds include each epoch's validation. The interval is the paired, "
            "stratified bootstrap of AUC(bf16) - AUC(fp32). auto resolves to "
            f"{plan.precision('auto')} here."))
    return out
