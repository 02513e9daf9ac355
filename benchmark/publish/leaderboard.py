"""The leaderboard: the best search of every (task, model, data) in the run directories, as CSV + Markdown.

``update(runs_dir, out_dir)`` merges the runs under ``runs_dir`` (``runs/<name>/<task>/<model>/
result.json``, read through :mod:`benchmark.records`) into the board already in ``out_dir``::

    leaderboard.csv     one row per (task, model, data source, data hash), schema SCHEMA_VERSION
    leaderboard.md      one table per task, literature rows, ROC picture, the commands that ran
    roc_<task>.png      every model's test ROC (HEP view and TPR vs FPR)
    recon_<task>.png    VAE / beta-VAE reconstructions beside the test images
    arrays/<task>/      each row's test labels and scores (and reconstructions): what the pictures show

Rows are kept by key, the best *validation* AUC winning, so a board published with the project (whose
run directories are not) survives a user's local runs, and the pictures are redrawn from ``arrays/``
for every row, local or not. ``rebuild`` regenerates everything from ``runs_dir`` alone.
Under a file lock, concurrent ``bench run``s lose no rows: each writes its own run directory before it
takes the lock and merges into what the previous holder wrote. Every file is replaced atomically, so
readers never see half a file.

Example:
    >>> rows = collect(Path("runs"))               # doctest: +SKIP
    >>> print(format_table(rows))                  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark import records
from benchmark.records import data_hash  # the evaluation data's identity, which keys the board's rows
from benchmark.errors import BenchError, one_line
from benchmark.files import atomic_savez, atomic_write_text, make_dir
from benchmark.text import aligned, markdown
from benchmark.tasks import find_task

__all__ = ["COLUMNS", "SCHEMA_VERSION", "Row", "arrays_path", "collect", "data_hash", "format_csv", "format_markdown",
           "format_table", "load", "rebuild", "update"]

#: Version of the CSV columns below; bump it when a column is added, removed, renamed or re-meant.
SCHEMA_VERSION = 3
CSV_NAME, MD_NAME, LOCK_NAME, ARRAYS_DIR = "leaderboard.csv", "leaderboard.md", ".leaderboard.lock", "arrays"
_FIGURE_GLOBS = ("roc_*.png", "recon_*.png")
_LITERATURE = "(literature, not produced here)"


@dataclasses.dataclass(frozen=True)
class Row:
    """One leaderboard row: the best search (by validation AUC) of a (task, model, recipe, source,
    data_hash, n_train).

    The fields are the CSV columns in order, after ``schema_version``; ``study_dir`` (where the ROC
    and reconstruction arrays lie) is known only to rows read from run directories.
    """

    task: str
    model: str
    recipe: str            # a reference recipe's name (untuned, benchmark.recipes); "" for a tuned search
    source: str            # "synthetic" or "real"
    data_hash: str         # sha256 of the evaluation data: the real files' digests, or generator + val / test sizes + seed
    n_train: int           # training rows (the training-size fidelity; -1: unknown, schema < 3)
    test_auc: float
    auc_low: float         # bootstrap 95 % interval of the test AUC
    auc_high: float
    accuracy: float        # at the threshold chosen on validation
    rej_at_eff50: float    # 1 / eps_B at eps_S = 0.5 (inf: no background passed)
    rej_at_eff30: float
    auc_mean: float        # over the --repeats seeds
    auc_std: float
    auc_median: float
    auc_min: float
    auc_max: float
    repeats: int
    epochs: float          # median epochs of the seeds' retraining (NaN: a model without epochs, or unknown)
    converged: str         # "yes" when every seed's retraining converged, "no" (or "no (k of n seeds)"), "" n/a
    recon_corr: float      # VAEs: mean pixel correlation of test images and reconstructions (NaN otherwise)
    val_auc: float
    trials_completed: int
    trials_pruned: int
    trials_failed: int
    sampler: str
    scheduler: str
    search_wall_s: float
    cpu_hours: float       # sum of trial wall times x CPUs per trial (NaN when run.json is missing)
    gpu_hours: float
    device: str            # where the best configuration was trained and tested: cpu or cuda
    precision: str         # fp32 or bf16 (neural models, as resolved there), native (the library's own)
    n_parameters: int
    best_config: str       # JSON, keys sorted
    seed: int
    package_version: str
    date: str              # day of the invocation that ran the search
    run_id: str            # the run directory's name
    command: str           # the `bench run` command of that invocation
    protocol: str          # the board protocol it ran under (benchmark.protocol), "" for none
    study_dir: Path | None = dataclasses.field(default=None, compare=False, repr=False)


COLUMNS: tuple[str, ...] = ("schema_version",) + tuple(f.name for f in dataclasses.fields(Row)
                                                      if f.name != "study_dir")
_ADDED_IN_2 = ("device", "precision")  # schema 1 is read with these derived (see load)
#: Schema 3's columns, and what an older board's row reads as (nothing of it measured them).
_ADDED_IN_3 = {"recipe": "", "n_train": "-1", "auc_median": None, "auc_min": None, "auc_max": None,
               "epochs": "nan", "converged": "", "recon_corr": "nan", "protocol": ""}
_PARSE = {"str": str, "int": int, "float": float}


# --- reading run directories ---------------------------------------------------------------------

def collect(runs_dir: Path) -> list[Row]:
    """The best run of every (task, model, source, data_hash) under ``runs_dir``, in board order.

    A study directory without ``result.json`` (still running, failed, interrupted) is ignored; a
    malformed one is skipped with a one-line warning on stderr.
    """
    return _best(_scan(Path(runs_dir)))


def _scan(runs_dir: Path, names: Sequence[str] | None = None) -> list[Row]:
    runs, rows = {}, []
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if names is None and runs_dir.is_dir() else \
        [runs_dir / n for n in names or ()]
    for study in (s for d in run_dirs for s in records.studies(d, finished=True)):
        path = study.file(records.RESULT)
        try:
            rows.append(_row(study, runs))
        except BenchError as e:
            _warn(f"skipping {path}: {e}")
        except (KeyError, TypeError, ValueError) as e:  # a result whose data section is damaged
            _warn(f"skipping {path}: {one_line(e, typed=True)}")
    return rows


def _best(rows: list[Row]) -> list[Row]:
    # Select by *validation* AUC, never test AUC: picking the best of several runs on the test set
    # would tune on test and bias the published number upwards. On a tie the row with more evidence
    # (more seeds) wins, then the newest.
    best: dict[tuple, Row] = {}

    def rank(r: Row) -> tuple:
        return _finite_or(r.val_auc, -math.inf), r.repeats, r.date, r.run_id

    for row in rows:
        key = (row.task, row.model, row.recipe, row.source, row.data_hash, row.n_train)
        old = best.get(key)
        if old is None or rank(row) > rank(old):
            best[key] = row
    return _board_order(best.values())


def _board_order(rows) -> list[Row]:
    order = {name: i for i, name in enumerate(_known_tasks())}
    return sorted(rows, key=lambda r: (order.get(r.task, len(order)), r.task, -_finite_or(r.auc_median, -1.0),
                                       r.model, r.recipe, r.source, r.data_hash, r.n_train))


def _row(study: records.StudyDir, runs: dict[Path, records.RunRecord]) -> Row:
    r = study.read_result()
    run_dir = study.run_dir
    if run_dir not in runs:
        runs[run_dir] = records.read_run_or_none(
            run_dir, lambda e: _warn(f"{e}: command, versions and CPU hours unknown")) or records.RunRecord(run_dir.name)
    inv = runs[run_dir].invocation_for(r.task, r.model)
    spec = inv.spec if inv else {}
    trial_hours = r.trial_time_s / 3600.0
    first, seeds = r.test.first, r.test.repeats
    epochs = sorted(t.epochs for t in seeds if t.epochs is not None)
    cut = sum(t.converged is False for t in seeds)
    converged = "" if not epochs else ("yes" if not cut else "no" if cut == len(seeds) else
                                       f"no ({cut} of {len(seeds)} seeds)")
    recon = [t.recon_corr for t in seeds if t.recon_corr is not None]
    return Row(
        task=r.task, model=r.model, recipe=r.recipe or "", source=r.source, data_hash=r.data.hash,
        n_train=r.data.training_rows,
        test_auc=first.auc, auc_low=first.auc_low, auc_high=first.auc_high, accuracy=first.accuracy,
        rej_at_eff50=first.rej_at_eff50, rej_at_eff30=first.rej_at_eff30, auc_mean=r.test.auc_mean,
        auc_std=r.test.auc_std, auc_median=r.test.auc_median, auc_min=min(t.auc for t in seeds),
        auc_max=max(t.auc for t in seeds), repeats=len(seeds),
        epochs=float(epochs[len(epochs) // 2]) if epochs else math.nan, converged=converged,
        recon_corr=float(sum(recon) / len(recon)) if recon else math.nan, val_auc=r.val_auc,
        trials_completed=int(r.trials["completed"]), trials_pruned=int(r.trials["pruned"]),
        trials_failed=int(r.trials["failed"]), sampler=r.sampler, scheduler=r.scheduler,
        search_wall_s=r.search_wall_s, cpu_hours=trial_hours * float(spec.get("cpus_per_trial", math.nan)),
        gpu_hours=trial_hours * float(spec.get("gpus_per_trial", math.nan)), device=r.device,
        precision=r.precision, n_parameters=r.n_parameters,
        best_config=json.dumps(r.best_config, sort_keys=True), seed=r.seed,
        package_version=str(inv.versions.get("hepbench") or "") if inv else "", date=inv.time[:10] if inv else "",
        run_id=run_dir.name, command=shlex.join(["bench", *inv.argv[1:]]) if inv and inv.argv else "",
        protocol=r.protocol or "", study_dir=study.path)


# --- writing the board ---------------------------------------------------------------------------

def update(runs_dir: Path, out_dir: Path, runs: Sequence[str] | None = None) -> list[Row]:
    """Merge the runs named ``runs`` (default: every run) in ``runs_dir`` into the board in ``out_dir``,
    under a file lock. ``bench run`` merges its own run only: a board gets the rows of the runs that name it."""
    return _write_board(Path(runs_dir), Path(out_dir), fresh=False, names=runs)


def rebuild(runs_dir: Path, out_dir: Path) -> list[Row]:
    """The board from ``runs_dir`` alone: the old rows, arrays and pictures go first."""
    return _write_board(Path(runs_dir), Path(out_dir), fresh=True)


def _write_board(runs_dir: Path, out_dir: Path, *, fresh: bool, names: Sequence[str] | None = None) -> list[Row]:
    from filelock import FileLock

    make_dir(out_dir, fix="pass a writable --leaderboard-dir / --out")
    with FileLock(str(out_dir / LOCK_NAME)):
        if fresh:
            stale = [out_dir / CSV_NAME, out_dir / MD_NAME, *(p for g in _FIGURE_GLOBS for p in out_dir.glob(g))]
            for path in stale:
                path.unlink(missing_ok=True)
            shutil.rmtree(out_dir / ARRAYS_DIR, ignore_errors=True)
        rows = _best(_scan(runs_dir, names) + _published(out_dir))  # a run directory's row wins a tie
        _store_arrays(rows, out_dir)
        _write_figures(rows, out_dir)
        atomic_write_text(out_dir / CSV_NAME, format_csv(rows))
        atomic_write_text(out_dir / MD_NAME, format_markdown(rows, figures_dir=out_dir))
    return rows


def _published(out_dir: Path) -> list[Row]:
    """The rows already on the board; an unreadable board is replaced (with a warning)."""
    if not (out_dir / CSV_NAME).is_file():
        return []
    try:
        return load(out_dir)
    except BenchError as e:
        _warn(f"{e}; replacing it with the rows of the run directories")
        return []


def arrays_path(out_dir: Path, row: Row) -> Path:
    """Where the board keeps ``row``'s test labels / scores (and reconstructions)."""
    recipe = f"@{row.recipe}" if row.recipe else ""
    size = f"-n{row.n_train}" if row.n_train >= 0 else ""  # a row of schema < 3 keeps its old file name
    name = f"{row.model}{recipe}-{row.source}-{row.data_hash[:12]}{size}.npz".replace(":", "_").replace("/", "_")
    return Path(out_dir) / ARRAYS_DIR / row.task / name


def _store_arrays(rows: list[Row], out_dir: Path) -> None:
    """Copy each run-directory row's arrays into ``out_dir/arrays`` and drop arrays of no row."""
    import numpy as np

    keep = {arrays_path(out_dir, r) for r in rows}
    for r in rows:
        if r.study_dir is None:
            continue
        path = arrays_path(out_dir, r)
        try:
            study = records.StudyDir(r.study_dir)
            roc = study.read_artifact("roc")
            if roc is None:
                raise FileNotFoundError(f"no {study.artifact('roc').name}")
            arrays = {"y": roc["y"].astype(np.int8), "score": roc["score"].astype(np.float32)}
            recon = study.read_artifact("recon")
            if recon is not None:
                arrays.update({f"recon_{k}": v for k, v in recon.items()})
        except (OSError, ValueError, KeyError) as e:
            _warn(f"{r.study_dir}: ROC / reconstruction arrays unreadable ({e}); left out of the pictures")
            keep.discard(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_savez(path, **arrays)
    for path in (out_dir / ARRAYS_DIR).glob("*/*.npz"):
        if path not in keep:
            path.unlink()


def _write_figures(rows: list[Row], out_dir: Path) -> None:
    import numpy as np

    from benchmark.publish import plots

    for task_name in dict.fromkeys(r.task for r in rows):
        task = find_task(task_name)
        if task is None:
            continue
        mine = [r for r in rows if r.task == task_name and arrays_path(out_dir, r).is_file()]
        several = len({(r.source, r.data_hash, r.n_train) for r in mine}) > 1
        curves, recons = {}, {}
        for r in mine:
            label = _name(r)
            if several:
                label += f" ({r.source} {r.data_hash[:8]}, {r.n_train} rows)"
            try:
                with np.load(arrays_path(out_dir, r)) as a:
                    curves[label] = (a["y"], a["score"])
                    if "recon_y" in a:
                        recons[label] = {k.removeprefix("recon_"): a[k] for k in a.files if k.startswith("recon_")}
            except (OSError, ValueError, KeyError) as e:
                _warn(f"{arrays_path(out_dir, r)}: unreadable ({e}); left out of the pictures")
        # a picture that cannot be drawn must not cost the board (this runs at the end of `bench run`),
        # nor leave an older picture that no longer matches the table
        for draw, arrays, name in ((plots.roc_figure, curves, "roc"), (plots.recon_figure, recons, "recon")):
            path = out_dir / f"{name}_{task_name}.png"
            try:
                if arrays:
                    draw(task, arrays, path)
                else:
                    path.unlink(missing_ok=True)
            except (OSError, ValueError) as e:
                path.unlink(missing_ok=True)
                _warn(f"{task_name}: {name} picture not drawn ({one_line(e, typed=True)})")


# --- formats -------------------------------------------------------------------------------------

def format_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([SCHEMA_VERSION, *(getattr(r, c) for c in COLUMNS[1:])])
    return buf.getvalue()


def load(out_dir: Path) -> list[Row]:
    """The rows of ``out_dir/leaderboard.csv``; a missing file or another schema is a :class:`BenchError`."""
    path = Path(out_dir) / CSV_NAME
    if not path.is_file():
        raise BenchError(f"no leaderboard in {out_dir}: `bench run` writes one, "
                         "`bench leaderboard --rebuild --runs-dir DIR` regenerates it from run directories")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        lines = list(reader)
    v2 = tuple(c for c in COLUMNS if c not in _ADDED_IN_3)
    v1 = tuple(c for c in v2 if c not in _ADDED_IN_2)
    try:
        if header == v1 and all(line[0] == "1" for line in lines):
            return [_from_schema_1(dict(zip(v1[1:], line[1:], strict=True))) for line in lines]
        if header == v2 and all(line[0] == "2" for line in lines):
            return [_parse_row(_schema_3_cells(dict(zip(v2[1:], line[1:], strict=True)))) for line in lines]
        if header != COLUMNS or any(line[0] != str(SCHEMA_VERSION) for line in lines):
            raise BenchError(f"{path} is not leaderboard schema {SCHEMA_VERSION}: "
                             "regenerate it with `bench leaderboard --rebuild`")
        return [_parse_row(dict(zip(COLUMNS[1:], line[1:], strict=True))) for line in lines]
    except (ValueError, TypeError) as e:
        raise BenchError(f"{path}: unreadable ({e}): regenerate it with `bench leaderboard --rebuild`") from None


_TYPES = {f.name: _PARSE[f.type] for f in dataclasses.fields(Row) if f.name != "study_dir"}


def _parse_row(cells: dict[str, str]) -> Row:
    return Row(**{c: _TYPES[c](v) for c, v in cells.items()})


def _schema_3_cells(cells: dict[str, str]) -> dict[str, str]:
    """An older row's cells with schema 3's columns: the seeds' median / min / max from their mean (the
    older board kept mean and std only), the rest unknown."""
    return {**{c: cells["auc_mean"] if d is None else d for c, d in _ADDED_IN_3.items()}, **cells}


def _from_schema_1(cells: dict[str, str]) -> Row:
    """A schema-1 row: it ran on a GPU when it took GPU hours, in the precision that schema's code used
    there (:func:`records.schema_1_precision`)."""
    from benchmark.models import get_model_class

    try:
        neural = get_model_class(cells["model"]).has_precision()
        gpu = float(cells["gpu_hours"]) > 0
    except (BenchError, ValueError) as e:
        raise BenchError(f"unreadable schema-1 row ({e}): regenerate the board with `bench leaderboard --rebuild`") from None
    return _parse_row(_schema_3_cells({**cells, "device": "cuda" if gpu else "cpu",
                                       "precision": records.schema_1_precision(gpu, neural)}))


def format_table(rows: list[Row]) -> str:
    """The board as aligned plain text, one block per task (for the terminal)."""
    blocks = []
    for task_name, mine in _by_task(rows).items():
        literature = _literature(task_name)
        short = [(line[0], line[1].replace(_LITERATURE, "(literature)"), *line[2:]) for line, _ in literature]
        lines = [_HEADERS] + [_cells(r, i + 1) for i, r in enumerate(mine)] + short
        notes = "".join(f"\n  {line[1]}: {source}" for line, source in literature)
        blocks.append(f"{task_name}: {_task_text(task_name)}\n{aligned(lines)}{notes}")
    return "\n\n".join(blocks) + "\n" if blocks else "(no results)\n"


def format_markdown(rows: list[Row], *, figures_dir: Path | None = None) -> str:
    """The board as Markdown: per task a table, literature rows, pictures (those present in
    ``figures_dir``), and the commands that produced the rows."""
    parts = [
        "# hepbench leaderboard\n",
        f"Generated by hepbench (CSV schema {SCHEMA_VERSION}). One row per task, model (or reference recipe), "
        "evaluation data and training size: the search with the best *validation* AUC. Its best configuration "
        "was retrained with each seed of `--repeats` and evaluated once on the fixed held-out test split. "
        "*test AUC* is the first seed's, with its bootstrap 95 % interval; *seeds* gives the median and range "
        "over all seeds (the rows are ordered by the median). *converged*: every seed's retraining was ended by "
        "early stopping or gained less than 0.002 validation AUC over its last 3 epochs, then the median "
        "epochs trained; *no* means the epoch cap cut it while it still improved. *recon r*: the VAEs' "
        "mean pixel correlation of background test images with their reconstructions. Rows marked *recipe* "
        "are a seed solution's untuned recipe run by the suite on the same data and splits "
        "(`benchmark.recipes`): what tuning buys is the distance to them. Rejection is 1/ε_B at the given "
        "signal efficiency ε_S (inf: no background passed). Rows marked "
        f"{_LITERATURE} are published numbers for comparison.\n", _protocol_text(rows)]
    for task_name, mine in _by_task(rows).items():
        literature = [line[:2] + (source,) + line[3:] for line, source in _literature(task_name)]
        lines = [_HEADERS] + [_cells(r, i + 1) for i, r in enumerate(mine)] + literature
        parts.append(f"## {task_name}\n\n{_task_text(task_name)}\n")
        parts.append(markdown(lines) + "\n")
        wide = [f"{_name(r)} ±{(r.auc_high - r.auc_low) / 2:.4f}" for r in mine
                if r.test_auc < WIDE_BELOW and (r.auc_high - r.auc_low) / 2 > WIDE]
        if wide:
            parts.append(f"Test AUC intervals wider than the board's ±{WIDE} (where AUC < {WIDE_BELOW}): "
                         f"{', '.join(wide)}.\n")
        below = [f"{r.model} {r.auc_median:.3f} against {_name(ref)} {_auc_ci(ref.test_auc, ref.auc_low, ref.auc_high)}"
                 for r in mine if not r.recipe for ref in mine
                 if ref.recipe and ref.model == r.model and r.auc_median < ref.auc_low]
        if below:
            parts.append("Tuned below its reference recipe (the median over seeds under the recipe's interval): "
                         f"{'; '.join(below)}.\n")
        for name, alt in ((f"roc_{task_name}.png", "ROC"), (f"recon_{task_name}.png", "reconstructions")):
            if figures_dir is not None and (Path(figures_dir) / name).is_file():
                parts.append(f"![{alt}]({name})\n")
        commands = list(dict.fromkeys(f"{r.command}    # run {r.run_id}" for r in mine if r.command))
        if commands:
            parts.append("Produced by:\n\n```bash\n" + "\n".join(commands) + "\n```\n")
    return "\n".join(parts)


#: the board's bar for its intervals: at most +/- WIDE wherever the test AUC is below WIDE_BELOW; rows
#: wider are named under their task's table
WIDE, WIDE_BELOW = 0.01, 0.99

_HEADERS = ("#", "model", "data", "train rows", "test AUC [95% CI]", "seeds: median [min, max]", "converged",
            "recon r", "accuracy", "rej@εS=0.5", "rej@εS=0.3", "val AUC", "trials done/pruned/failed", "search",
            "device", "CPU h", "GPU h", "params", "run")


def _cells(r: Row, rank: int) -> tuple[str, ...]:
    spread = f"{r.auc_median:.3f} [{r.auc_min:.3f}, {r.auc_max:.3f}] ({r.repeats})" if r.repeats > 1 else "-"
    converged = f"{r.converged}, {r.epochs:.0f} ep" if r.converged and not math.isnan(r.epochs) else (r.converged or "-")
    return (str(rank), _name(r), f"{r.source} {r.data_hash[:8]}", f"{r.n_train:,}" if r.n_train >= 0 else "?",
            _auc_ci(r.test_auc, r.auc_low, r.auc_high), spread, converged,
            "-" if math.isnan(r.recon_corr) else f"{r.recon_corr:.2f}",
            f"{r.accuracy:.3f}", _num(r.rej_at_eff50), _num(r.rej_at_eff30), f"{r.val_auc:.3f}",
            f"{r.trials_completed}/{r.trials_pruned}/{r.trials_failed}", f"{r.sampler}/{r.scheduler}",
            f"{r.device} {r.precision}", _hours(r.cpu_hours), _hours(r.gpu_hours), f"{r.n_parameters:,}", r.run_id)


def _name(r: Row) -> str:
    """How the board names a row's model: a reference recipe's rows say so, and what the suite changed
    in the recipe on that task (:attr:`benchmark.recipes.Recipe.on_task`)."""
    from benchmark.recipes import RECIPES

    if not r.recipe:
        return r.model
    changed = RECIPES[r.recipe].on_task.get(r.task, {}) if r.recipe in RECIPES else {}
    return f"{r.model} · recipe {r.recipe} (untuned{''.join(f'; {k} {v}' for k, v in changed.items())})"


def _protocol_text(rows: list[Row]) -> str:
    """The board protocols the rows ran under, each as the table of its settings per task."""
    from benchmark import protocol

    names = sorted({r.protocol for r in rows if r.protocol})
    return "\n".join(protocol.describe(name) for name in names if name in protocol.PROTOCOLS)


def _literature(task_name: str) -> list[tuple[tuple[str, ...], str]]:
    """One row per published (model, source) of the task, each metric in its own column, with the
    source apart (long: the Markdown puts it in the row, the terminal table below the table)."""
    task = find_task(task_name)
    grouped: dict[tuple[str, str], dict[str, float]] = {}
    for ref in (task.references if task else ()):
        grouped.setdefault((ref.model, ref.source), {})[ref.metric] = ref.value
    columns = {metric: _HEADERS.index(header) for metric, header in (
        ("auc", "test AUC [95% CI]"), ("accuracy", "accuracy"), ("rej_at_eff50", "rej@εS=0.5"),
        ("rej_at_eff30", "rej@εS=0.3"))}
    lines = []
    for (model, source), values in grouped.items():
        cells = ["-", f"{model} {_LITERATURE}", "published"] + ["-"] * (len(_HEADERS) - 3)
        for metric, value in values.items():
            if metric in columns:
                cells[columns[metric]] = f"{value:.3f}" if metric in ("auc", "accuracy") else _num(value)
        lines.append((tuple(cells), source))
    return lines


def _auc_ci(auc: float, low: float, high: float) -> str:
    # round the interval outwards so the printed bounds still contain the computed ones
    return f"{auc:.3f} [{math.floor(low * 1000) / 1000:.3f}, {math.ceil(high * 1000) / 1000:.3f}]"


def _num(x: float) -> str:
    return "-" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.1f}")


def _hours(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}"  # tiny test runs and week-long sweeps alike


def _by_task(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for r in _board_order(rows):
        grouped.setdefault(r.task, []).append(r)
    return grouped


def _task_text(task_name: str) -> str:
    task = find_task(task_name)
    if task is None:
        return "not a task of this hepbench version."
    return (f"{task.description.rstrip('.')}. Signal (label 1) = {task.class_names[1]}, "
            f"background (label 0) = {task.class_names[0]}.")


def _known_tasks() -> list[str]:
    from benchmark.tasks import list_tasks

    return [t.name for t in list_tasks()]


def _finite_or(x: float, default: float) -> float:
    return x if math.isfinite(x) else default


def _warn(message: str) -> None:
    print(f"bench: warning: {message}", file=sys.stderr)
