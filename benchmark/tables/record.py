"""Recording the image-model tables: ``python -m benchmark.tables.record TASK`` (``make image-table TASK=...``).

Per task, for each image model it records (:data:`PLAN`), three ``bench run`` searches, each resumable
(run the command again after an interruption: finished searches are skipped, a started one resumes):

1. the table itself: ``N`` configurations drawn uniformly at random from the model's shipped search space
   (the first is the model's defaults), every one trained for :data:`EPOCHS` epochs with no early stopping
   (``--fix patience=EPOCHS``, ``--scheduler none``), scored on the task's fixed validation split after
   every epoch, with its costs measured (``--costs``: parameters, training FLOPs, inference latency);
2. and 3. seed repeats: the first :data:`REPEATED` of those configurations (``--points``) trained again
   with training seeds 1 and 2 on the same data (``--train-seed``), so the table holds 3 seeds of each.

After each model's searches, every finished one is exported to ``leaderboard/tables/<task>-images.parquet``
(``bench export``) and the tables page is rewritten, so a sitting that ends keeps what it finished.
The sizes (:data:`SIZES`) are the same for every model of a task; what was run is in the table's metadata.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmark import records
from benchmark.errors import BenchError

#: Per task: (model, configurations) recorded. hcal_dqm is left out on CPU: its 64x72 images cost about 4x
#: ee_gamma's per sample and every tuned model there reaches AUC 1.000.
PLAN = {"atlas_topo": (("resnet15", 200), ("vit", 150)), "quark_gluon": (("resnet15", 200),),
        "ee_gamma": (("resnet15", 200), ("vit", 150))}
EPOCHS = 10
REPEATED, REPEAT_SEEDS = 32, (1, 2)
SIZES = ("--n-train", "1000", "--n-val", "2000", "--n-test", "2000")
COMMON = ("--sampler", "random", "--scheduler", "none", "--max-epochs", str(EPOCHS), "--fix", f"patience={EPOCHS}",
          "--costs", *SIZES, "--repeats", "1", "--leaderboard-dir", "runs/table-boards")
SPACES = Path(__file__).resolve().parents[1] / "spaces"
OUT = Path("leaderboard/tables")


def first_points(run_dir: Path, task: str, model: str, n: int) -> list[dict]:
    """The searched parameters of the first ``n`` completed trials of a finished search, in trial order."""
    from benchmark.search_space import load_space

    study = records.StudyDir.of(run_dir, task, model)
    searched = [p.name for p in load_space(model, study.file(records.SPACE)).params if p.type != "fixed"]
    trials = sorted((t for t in study.read_trials() if t.status == "completed"), key=lambda t: t.trial_id)
    if len(trials) < n:
        raise BenchError(f"{study.path}: {len(trials)} completed trials, fewer than the {n} to repeat")
    return [{k: t.config[k] for k in searched if k in t.config} for t in trials[:n]]


def finished(task: str, runs: Path) -> list[Path]:
    """The run directories of ``task``'s planned searches that have finished."""
    names = [f"table-{task}-{m}{suffix}" for m, _ in PLAN[task] for suffix in ("", *(f"-seed{s}" for s in REPEAT_SEEDS))]
    return [runs / n for n in names if (found := records.studies(runs / n)) and all(s.finished for s in found)]


def _bench(argv: list[str], runs: Path) -> None:
    name = argv[argv.index("--name") + 1]
    if (runs / name).is_dir():
        if (found := records.studies(runs / name)) and all(s.finished for s in found):
            print(f"record: {name} finished, kept", file=sys.stderr)
            return
        argv = [*argv, "--resume"]
    print("bench " + " ".join(argv), file=sys.stderr, flush=True)
    code = subprocess.call([sys.executable, "-m", "benchmark.cli", *argv, "--runs-dir", str(runs)])
    if code:
        raise SystemExit(code)


def record(task: str, *, runs: Path = Path("runs"), out: Path = OUT, models: tuple[str, ...] | None = None) -> Path:
    """Record (or resume) every model of :data:`PLAN` for ``task`` and export the table; its path."""
    from benchmark.tables import tabular
    from benchmark.tables.page import tables_page

    if task not in PLAN:
        raise BenchError(f"no image-model table is planned for {task!r} (planned: {', '.join(PLAN)})")
    table = out / f"{task}-images.parquet"
    for model, n in PLAN[task]:
        if models and model not in models:
            continue
        space = SPACES / task / f"{model}.yaml"
        extra = ["--space", f"{model}={space}"] if space.is_file() else []
        base = ["run", "--task", task, "--model", model, *COMMON, *extra]
        name = f"table-{task}-{model}"
        t0 = time.time()
        _bench([*base, "--trials", str(n), "--name", name], runs)
        points = runs / f"{name}-points.json"
        points.write_text(json.dumps(first_points(runs / name, task, model, REPEATED), indent=1) + "\n")
        for seed in REPEAT_SEEDS:
            _bench([*base, "--trials", str(REPEATED), "--points", str(points), "--train-seed", str(seed),
                    "--name", f"{name}-seed{seed}"], runs)
        print(f"record: {task}/{model} recorded ({(time.time() - t0) / 3600:.2f} h this sitting)", file=sys.stderr)
        tabular.export(finished(task, runs), table)
        (out / "README.md").write_text(tables_page(out))
        print(f"record: written {table}", file=sys.stderr, flush=True)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.tables.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=sorted(PLAN))
    parser.add_argument("--model", nargs="+", default=None, help="only these of the task's models")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=OUT, help="the tables' folder (default leaderboard/tables)")
    args = parser.parse_args(argv)
    try:
        record(args.task, runs=args.runs_dir, out=args.out, models=tuple(args.model) if args.model else None)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
