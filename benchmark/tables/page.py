"""The recorded tables' page, ``leaderboard/tables/README.md``: what each table holds, the commands that
recorded it and the live searches beside them, written from the tables and their metadata alone.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.tables.replay import blackboxes
from benchmark.tables.tabular import metadata_path
from benchmark.text import markdown


def tables_page(tables_dir: Path) -> str:
    """``leaderboard/tables/README.md``: what each table of ``tables_dir`` holds and the commands that
    recorded it, from the tables and their metadata alone (``make table`` rewrites it)."""
    import numpy as np

    rows, commands = [], []
    for path in sorted(Path(tables_dir).glob("*.parquet")):
        meta = json.loads(metadata_path(path).read_text())
        commands += _commands(meta)
        for box in blackboxes(path):
            searches = meta["studies"][box.study].get("searches", [])
            wall = sum(x["search_wall_s"] for x in searches) / 60 if searches else None
            best = max(searches, key=lambda x: x["val_auc"])["test_auc"] if searches else None
            rows.append([path.name, box.study, f"{box.n_train:,}", len(box.configs), box.failed, box.max_epochs,
                         f"{box.finals.max():.4f}", f"{np.median(box.finals):.4f}",
                         "-" if wall is None else f"{wall:.1f} min", f"{box.times.sum() / 60:.1f} min",
                         "-" if best is None else f"{best:.4f}"])
    return "\n".join([
        "# Recorded tables\n",
        "One table per task, replayed by `bench replay` / `bench compare` (README: *Comparing optimisers on the "
        "recorded tables*): random searches without early stopping on the task's synthetic data, the task's fixed "
        "validation split scoring every epoch (a trial that stopped itself by its patience keeps its last value). "
        "`FILE.meta.json` beside each holds the search spaces as declared, every command, the package versions and "
        "the hardware. Recorded on a 2-core CPU with `make table TASK=<task>` (resumable: run it again after an "
        "interruption; it rewrites this page from the tables), which ran:\n",
        "```bash", *dict.fromkeys(commands), "```\n",
        "and `bench export runs/table-T-mlp runs/table-T-xgboost --out leaderboard/tables/T.parquet`.\n",
        markdown([["table", "study", "training rows", "configs", "failed", "epochs", "best val AUC", "median val AUC",
                   "search wall time", "recorded trial time", "test AUC of the best"], *rows]),
        "\nSearch wall time: the search alone (2 trials at a time on 2 cores), without Ray's start-up and the test "
        "evaluation; recorded trial time: the sum of every recorded epoch's wall time (what a replay simulates).\n",
        *_live_section(Path(tables_dir) / "live")])


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
