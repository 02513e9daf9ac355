"""The recorded tables' page, ``leaderboard/tables/README.md``: what each table holds, the commands that
recorded it and the live searches beside them, written from the tables and their metadata alone.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.tables.replay import blackboxes
from benchmark.tables.tabular import metadata_path
from benchmark.text import markdown


def tables_page(tables_dir: Path) -> str:
    """``leaderboard/tables/README.md``: what each table of ``tables_dir`` holds and the commands that
    recorded it, each blackbox's report card and costs, from the tables and their metadata alone (``make
    table`` and ``make image-table`` rewrite it)."""
    from benchmark.tables.surrogates import report_card

    rows, commands, cards, costs, names, spaces = [], [], [], [], [], []
    for path in sorted(Path(tables_dir).glob("*.parquet")):
        meta = json.loads(metadata_path(path).read_text())
        commands += _commands(meta)
        hardware = _hardware(meta)
        for box in blackboxes(path):
            searches = meta["studies"][box.study].get("searches", [])
            wall = sum(x["search_wall_s"] for x in searches) / 60 if searches else None
            best = max(searches, key=lambda x: x["val_auc"])["test_auc"] if searches else None
            trained = box.times.sum() + sum(r[1].sum() for r in box.repeats.values())
            rows.append([path.name, box.study, f"{box.n_train:,}", len(box.configs), box.failed, box.max_epochs,
                         f"{box.finals.max():.4f}", f"{np.median(box.finals):.4f}",
                         "-" if wall is None else f"{wall:.1f} min", f"{trained / 3600:.2f}",
                         "-" if best is None else f"{best:.4f}", len(box.repeats), hardware])
            names.append(f"{meta['task']}/{box.study}")
            spaces.append([f"`{names[-1]}`", _space_text(box.space), f"epoch 1..{box.max_epochs}",
                           ", ".join(["val_auc (max)", *(f"{c} ({'min' if 'loss' in c else 'max'})"
                                                        for c in meta.get("metric_columns", ())),
                                      "wall_s (min)"] + (["cost.* (min)"] if meta.get("cost_columns") else []))])
            if (card := report_card(box)) is not None:
                cards.append(_card_row(names[-1], card))
            costs += _cost_rows(names[-1], path, box.study)
    return "\n".join([
        "# Recorded tables\n",
        "Replayed by `bench replay` / `bench compare` (README: *Comparing optimisers on the recorded tables*): random "
        "searches without early stopping on the task's synthetic data, the task's fixed validation split scoring "
        "every epoch (a trial that stopped itself by its patience keeps its last value). `T.parquet` holds the mlp "
        "and xgboost searches of task T (`make table TASK=T`), `T-images.parquet` its image models, resnet15 and "
        "vit, with their costs and seed repeats (`make image-table TASK=T`, `benchmark/tables/record.py`). "
        "`FILE.meta.json` beside each holds the search spaces as declared, every command, the package versions and "
        "the hardware. Both targets are resumable (run them again after an interruption) and rewrite this page "
        "from the tables. They ran:\n",
        "```bash", *dict.fromkeys(commands), "```\n",
        "and `bench export` of those run directories into each table.\n",
        markdown([["table", "study", "training rows", "configs", "failed", "epochs", "best val AUC", "median val AUC",
                   "search wall time", "CPU-hours", "test AUC of the best", "configs with more seeds", "recorded on"],
                  *rows]),
        "\nSearch wall time: the search alone (2 trials at a time on 2 cores), without Ray's start-up and the test "
        "evaluation (of its last sitting, for a search resumed after an interruption); CPU-hours: every recorded epoch's wall time (what a replay simulates) times the trial's one "
        "CPU, seed repeats included.\n",
        "## Loading a blackbox\n",
        "Every study above is a blackbox of `benchmark.tables.api` (README: *The tables as benchmarks*), named "
        "`<task>/<study>`: " + ", ".join(f"`{n}`" for n in names) + ".\n",
        "```python",
        "from benchmark.tables import api",
        f"bench = api.load({names[0]!r})" if names else "bench = api.load(api.names()[0])",
        "config = bench.configs[0]                 # or any config inside bench.distributions()",
        "answer = bench(config, epoch=bench.fidelity.high)",
        "print(answer.recorded, answer.metrics['val_auc'], answer.metrics['cum_wall_s'])",
        "```\n",
        "### Spaces, fidelities and objectives\n",
        markdown([["blackbox", "searched parameters", "fidelity", "objectives (per epoch, direction)"], *spaces]),
        "",
        "## Surrogate report cards\n",
        "How well each surrogate predicts configurations it has not seen: 5-fold cross-validation by configuration "
        "(a configuration's seed repeats are held out with it), of the final best validation AUC (Spearman, "
        "Kendall, mean absolute error, R^2) and of every epoch's value of the curve (Spearman, R^2). knn: the "
        "distance-weighted nearest-neighbour surrogate (`benchmark.tables.replay.Surrogate`, its k by "
        "cross-validation); forest: a 300-tree random forest over the configuration predicting the whole curve "
        "(`benchmark.tables.surrogates`). `bench replay` uses the chosen one (the higher final Spearman); "
        "`bench compare`'s published page still replays with knn (its cached replays were made with it). Noise "
        "ceiling: the Spearman of the final value between two training seeds of the repeated configurations: no "
        "surrogate can rank configurations better than a second seed does.\n",
        "A blackbox of fewer than 10 configurations has no card.\n",
        markdown([["blackbox", "knn k", "knn final Spearman / Kendall / MAE / R^2", "knn curve Spearman / R^2",
                   "forest final Spearman / Kendall / MAE / R^2", "forest curve Spearman / R^2", "chosen",
                   "noise ceiling (configs)"], *cards]),
        *(["\n## Costs\n",
           "Per configuration, measured before it trained (`bench run --costs`, `benchmark.costs`): "
           "parameters, training FLOPs per sample (torch's FLOP counter: matrix products and convolutions, forward "
           "and backward), and inference latency per sample at batch 1 and 256 (median of repeats, the network "
           "alone in eval mode, on the trial's one CPU thread while the other trial trained): the range over the "
           "blackbox's configurations, median in brackets.\n",
           markdown([["blackbox", "parameters", "training MFLOPs / sample", "latency batch 1 (ms)",
                      "latency batch 256 (ms / sample)", "device"], *costs])] if costs else []),
        "",
        *_live_section(Path(tables_dir) / "live")])


def _space_text(space) -> str:
    """A space's searched parameters in one line: ``lr`` float [1e-05, 0.003] log; ``width`` {8, 16}; ..."""
    out = []
    for p in space.params:
        if p.type == "categorical":
            out.append(f"`{p.name}` {{{', '.join(map(str, p.choices))}}}")
        elif p.type in ("float", "int"):
            out.append(f"`{p.name}` {p.type} [{p.low:g}, {p.high:g}]" + (" log" if p.log else "")
                       + (f" step {p.step:g}" if p.step else ""))
    return "; ".join(out)


def _hardware(meta: Mapping[str, Any]) -> str:
    """The machines a table's runs ran on, from their invocations: CPU and cores, or GPUs."""
    seen = []
    for run in meta["runs"].values():
        for inv in run["invocations"]:
            h = inv.get("hardware") or {}
            gpus = h.get("gpu_names") if h.get("gpus") else None
            seen.append(f"{h.get('cpu', '?')}, {h.get('cpus', '?')} cores" + (f", {gpus}" if gpus else ""))
    return "; ".join(dict.fromkeys(seen)) or "-"


def _card_row(name: str, card: Mapping[str, Any]) -> list[str]:
    def final(kind):
        f = card[kind]["final"]
        return f"{f['spearman']:.3f} / {f['kendall']:.3f} / {f['mae']:.4f} / {f['r2']:.3f}"

    def curve(kind):
        c = card[kind]["curve"]
        return f"{c['spearman']:.3f} / {c['r2']:.3f}"

    ceiling = card["noise_ceiling"]
    return [name, str(card["k"]), final("knn"), curve("knn"), final("forest"), curve("forest"), card["chosen"],
            "-" if ceiling is None else f"{ceiling['spearman']:.3f} ({ceiling['configs']})"]


def _cost_rows(name: str, path: Path, study: str) -> list[list[str]]:
    from benchmark.tables.tabular import load

    frame, meta = load(path)
    if "cost.parameters" not in meta.get("cost_columns", ()):
        return []
    per = frame[frame.study == study].groupby(["run", "trial_id"]).first()

    def spread(column, scale, fmt):
        v = per[column].dropna().to_numpy(dtype=float) * scale
        return "-" if not len(v) else f"{v.min():{fmt}} - {v.max():{fmt}} ({float(np.median(v)):{fmt}})"

    return [[name, spread("cost.parameters", 1, ",.0f"), spread("cost.train_flops_per_sample", 1e-6, ",.1f"),
             spread("cost.latency_b1_s", 1e3, ".3f"), spread("cost.latency_b256_s", 1e3, ".3f"),
             "; ".join(sorted(per["cost.device"].dropna().unique()))]]


def _commands(meta: Mapping[str, Any]) -> list[str]:
    """The commands that recorded a table's runs, as its metadata has them (``bench export`` left out)."""
    return [" ".join(inv["argv"]) for run in meta["runs"].values() for inv in run["invocations"]
            if "export" not in inv["argv"][:2]]


def _live_section(live_dir: Path) -> list[str]:
    """The live searches in ``live_dir`` (``make live``), which ``bench compare --live`` sets against the
    replays: each search's command, wall time and best trial."""
    rows, commands = [], []
    for path in sorted(live_dir.glob("*.parquet")):
        meta = json.loads(metadata_path(path).read_text())
        commands += _commands(meta)
        for study, info in meta["studies"].items():
            rows += [[path.name, study, x["run"], f"{x['search_wall_s'] / 60:.1f} min", f"{x['val_auc']:.4f}",
                      f"{x['test_auc']:.4f}"] for x in info.get("searches", [])]
    if not rows:
        return []
    return ["## Live searches (`live/`)\n",
            "Real training on a table's data and budget, with the method named in the file, one search per sampler "
            "seed: `bench compare --live` places their incumbents against the replays of the same method. Made with "
            "`make live`, which ran:\n", "```bash", *dict.fromkeys(commands), "```\n",
            markdown([["table", "study", "run", "search wall time", "best val AUC", "its test AUC"], *rows]), ""]
