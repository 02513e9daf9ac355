"""Every trial of run directories as one table: what HPO research replays instead of training again
(HPOBench's tables, syne-tune's blackbox repository, LCBench's curves). ``bench export`` writes it
(:func:`export`), :func:`load` reads it back.

One row per trial and epoch: a classical model's trial is one row (its one step, epoch 1), and a trial
that failed before its first epoch is one row with an empty epoch, so every trial is there. Columns::

    run, task, study, model, recipe   the run directory's name; study = <model> or <model>@<recipe>
                                      (recipe: a reference recipe's name, empty (null) for a search)
    source, data_hash, n_train        the evaluation data as the leaderboard keys it, and the training rows
    precision, trial_id, seed, status, retries, error
    config.<key>                      every hyperparameter of the trial's config, fixed ones included
    cost.<key>                        its measured costs, with ``bench run --costs`` (benchmark.costs):
                                      parameters, train_flops_per_sample, latency_b1_s, latency_b256_s, device
    epoch                             the fidelity: the step the row reports (1 .. the config's epochs)
    val_auc                           the objective (OBJECTIVE, maximised)
    train_loss, val_loss, ...         the model's other per-epoch metrics (metric.<name> if it clashes): the
                                      neural models' val_rej_at_eff30 / 50 are 1 / eps_B at eps_S 0.3 / 0.5
    wall_s, cum_wall_s, reported_at   that epoch's wall time, the trial's up to it, the driver's clock

A retried trial (``retries`` > 0) keeps its last attempt's curve, as ``trials.json`` does. A search
without ``result.json`` (running, interrupted before its test evaluation, or every trial failed) is
left out with a note: its evaluation data, which keys the table, is recorded only there. One table
holds one task and one evaluation-data hash: runs of the same data merge, different data never do
(:func:`export` writes one file per combination). Beside the table, ``<file>.meta.json``
(:func:`metadata_path`) holds the export schema, each study's fidelity (name, range) and search space as
its YAML declared it (the study directory's ``space.yaml``, bench run's fixed values in it), and each
run's invocations (command, spec, package versions, hardware).

Replaying it as a tabular benchmark in pandas::

    from benchmark.tables import tabular
    df, meta = tabular.load("hcal.parquet")
    res = df[df.study == "resnet15"]                    # one model's search: one space
    hp = tabular.config_columns(res)                    # its hyperparameters: config.lr, config.width, ...
    curve = tabular.lookup(res, res.iloc[0][hp])        # f(config, epoch) at every recorded epoch, per trial
    curve.set_index("epoch")[tabular.OBJECTIVE]         # ... val_auc by epoch
    res.groupby("epoch")[tabular.OBJECTIVE].max()       # best value by budget: the best config at each epoch
    res[res.cum_wall_s <= 600].groupby(list(tabular.TRIAL))[tabular.OBJECTIVE].max()  # each trial's, 10 min in
    meta["studies"]["resnet15"]["spaces"][0]["params"]  # the space to sample from, as its YAML declared it

A config that was never trained has no row: a table answers only what was recorded (an ASHA-stopped
trial's curve ends where it was stopped), so a sampler replaying it draws from the recorded configs, or a
surrogate fills the rest (``tests/test_tabular.py`` replays an ASHA search in syne-tune's simulator).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import records, strategies
from benchmark.errors import BenchError, one_line
from benchmark.files import atomic_write, make_dir, write_json

__all__ = ["CONFIG", "FIDELITY", "FIXED", "FORMATS", "MODE", "OBJECTIVE", "SCHEMA_VERSION", "TRIAL", "Table", "build",
           "config_columns", "export", "load", "lookup", "metadata_path", "metric_columns", "write"]

#: Version of the exported table and its metadata; bump it when a column or key is added, removed or re-meant.
SCHEMA_VERSION = 2
#: The versions :func:`load` reads: 2 added the ``cost.*`` columns and ``cost_columns`` (a version-1 table has none).
READS = (1, 2)
FORMATS = ("parquet", "csv")
OBJECTIVE, MODE, FIDELITY = strategies.OBJECTIVE.name, strategies.OBJECTIVE.mode, "epoch"
#: The columns that name one trial (``trial_id`` alone repeats: every recipe's is ``recipe``).
TRIAL = ("run", "study", "trial_id")
CONFIG = "config."
COST = records.COST  # a trial's measured costs (bench run --costs): one value per trial, on each of its rows
_IDENTITY = ("run", "task", "study", "model", "recipe", "source", "data_hash", "n_train", "precision",
             "trial_id", "seed", "status", "retries", "error")
_TIMES = ("wall_s", "cum_wall_s", "reported_at")
#: Every column that is not a hyperparameter or a model's own metric.
FIXED = _IDENTITY + (FIDELITY, OBJECTIVE) + _TIMES
#: The fixed columns' types, whatever their values (a column of only missing values keeps its type).
_DTYPES = {**{c: "str" for c in ("run", "task", "study", "model", "recipe", "source", "data_hash", "precision",
                                 "trial_id", "status", "error")},
           **{c: "int64" for c in ("n_train", "seed", "retries")}, **{c: "float64" for c in (OBJECTIVE, *_TIMES)}}


@dataclasses.dataclass(frozen=True)
class Table:
    """One export: the trials of one (task, evaluation data), and the metadata that goes beside them."""

    task: str
    data_hash: str
    frame: pd.DataFrame
    metadata: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _Study:
    run_dir: Path
    path: Path
    run: records.RunRecord | None  # None: run.json unreadable
    result: records.SearchResult
    trials: tuple[records.TrialRecord, ...]

    @property
    def name(self) -> str:
        r = self.result
        return r.model if r.recipe is None else f"{r.model}@{r.recipe}"

    @property
    def spec(self) -> Mapping[str, Any]:
        inv = self.run.invocation_for(self.result.task, self.result.model) if self.run else None
        return inv.spec if inv else {}


# --- building ------------------------------------------------------------------------------------

def export(run_dirs: Iterable[Path], out: Path, fmt: str | None = None) -> list[tuple[Table, Path]]:
    """Write the trials of ``run_dirs`` to ``out`` (and ``out.meta.json``): one file when they hold one
    (task, data hash), else one per combination, named ``<stem>-<task>-<hash12><suffix>`` beside ``out``.
    ``fmt``: parquet or csv (None: csv for a ``.csv`` name, else parquet)."""
    out = Path(out)
    fmt = fmt or ("csv" if out.suffix.lower() == ".csv" else "parquet")
    if fmt not in FORMATS:
        raise BenchError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if out.is_dir():
        raise BenchError(f"--out {out} is a directory: name the file to write, e.g. {out / 'trials.parquet'}")
    tables = build(run_dirs)
    make_dir(out.parent, fix="pass a writable --out")
    written = []
    for table in tables:
        path = out if len(tables) == 1 else out.with_name(f"{out.stem}-{table.task}-{table.data_hash[:12]}{out.suffix}")
        try:
            written.append((table, write(table, path, fmt)))
        except OSError as e:
            raise BenchError(f"--out {path}: cannot write it ({e.strerror or e}); pass a writable --out") from None
    return written


def build(run_dirs: Iterable[Path]) -> list[Table]:
    """The tables of ``run_dirs``: one per (task, data hash), in the order they are first met."""
    studies = _studies(run_dirs)
    groups: dict[tuple[str, str], list[_Study]] = {}
    for s in studies:
        groups.setdefault((s.result.task, s.result.data.hash), []).append(s)
    return [_table(task, digest, mine) for (task, digest), mine in groups.items()]


def _studies(run_dirs: Iterable[Path]) -> list[_Study]:
    """Every finished study of ``run_dirs``. A study without ``result.json`` (still running, interrupted
    before its test evaluation, or every trial failed) is skipped with a note: the evaluation data that
    keys the table is recorded only there. A damaged one is skipped with a warning, as the board does."""
    dirs = list(dict.fromkeys(Path(d).resolve() for d in run_dirs))
    names = [d.name for d in dirs]
    if twice := next((n for n in names if names.count(n) > 1), None):
        raise BenchError(f"two run directories named {twice!r} ({', '.join(str(d) for d in dirs if d.name == twice)}): "
                         "the table tells runs apart by name; export them separately")
    studies = []
    for run_dir in dirs:
        if not run_dir.is_dir():
            raise BenchError(f"no run directory {run_dir}: `bench run --name NAME` writes runs/NAME")
        found = records.studies(run_dir)
        run = records.read_run_or_none(run_dir, lambda e: _note(
            f"warning: {e}: the run's command, versions and hardware are unknown")) if found else None
        for study in found:
            path = study.path
            if not study.finished:
                _note(f"note: skipping {path}: no {records.RESULT} (an unfinished search: the evaluation data "
                      "that keys the table is recorded there; `bench run --name ... --resume` finishes it)")
                continue
            try:
                result = study.read_result()
                result.data.hash  # a damaged data section fails here, not in the middle of a table
                trials = study.read_trials(seed=result.seed)
            except BenchError as e:
                _note(f"warning: skipping {path}: {e}")
                continue
            except (KeyError, TypeError, ValueError) as e:
                _note(f"warning: skipping {path}: {one_line(e, typed=True)}")
                continue
            studies.append(_Study(run_dir, path, run, result, trials))
    if not studies:
        raise BenchError(f"nothing to export: no finished search (<task>/<model>/{records.RESULT}) in "
                         f"{', '.join(map(str, dirs))}; pass run directories written by `bench run`, e.g. runs/<name>")
    return studies


def _table(task: str, digest: str, studies: list[_Study]) -> Table:
    rows = [row for s in studies for row in _rows(s, digest)]
    config = list(dict.fromkeys(k for row in rows for k in row if k.startswith(CONFIG)))
    costs = list(dict.fromkeys(k for row in rows for k in row if k.startswith(COST)))
    metrics = list(dict.fromkeys(k for row in rows for k in row
                                 if k not in FIXED and not k.startswith((CONFIG, COST))))
    columns: dict[str, pd.Series] = {}
    json_columns = []
    for c in (*_IDENTITY, *config, *costs, FIDELITY, OBJECTIVE, *metrics, *_TIMES):
        columns[c], encoded = _column([row.get(c) for row in rows], _DTYPES.get(c))
        if encoded:
            json_columns.append(c)
    frame = pd.DataFrame(columns)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "task": task, "source": studies[0].result.source, "data_hash": digest,
        "n_train": sorted({int(v) for v in frame["n_train"]}),
        "rows": len(frame), "trials": int(frame.groupby(list(TRIAL)).ngroups),
        "objective": {"column": OBJECTIVE, "mode": MODE}, "fidelity_column": FIDELITY, "trial_key": list(TRIAL),
        "config_columns": config, "cost_columns": costs, "metric_columns": metrics, "json_columns": json_columns,
        "columns": {c: str(frame[c].dtype) for c in frame.columns},
        "studies": _studies_meta(studies),
        "runs": {s.run_dir.name: _run_meta(s) for s in studies},
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return Table(task, digest, frame, meta)


def _rows(s: _Study, digest: str) -> list[dict[str, Any]]:
    r = s.result
    study = {"run": s.run_dir.name, "task": r.task, "study": s.name, "model": r.model, "recipe": r.recipe,
             "source": r.source, "data_hash": digest,
             "n_train": r.data.training_rows}  # as the board's n_train
    rows = []
    for t in s.trials:
        trial = {**study, "precision": t.precision or r.precision, "trial_id": t.trial_id, "seed": t.seed,
                 "status": t.status, "retries": t.retries, "error": t.error,
                 **{CONFIG + k: v for k, v in t.config.items()}, **t.costs}
        total: float | None = 0.0
        for e in sorted(t.curve, key=lambda e: e.epoch) or [None]:
            if e is None:  # failed before its first epoch: the trial is still a row
                rows.append(trial)
                continue
            total = None if total is None or e.wall_s is None else total + e.wall_s
            rows.append({**trial, FIDELITY: e.epoch, OBJECTIVE: e.val_auc,
                         **{(f"metric.{k}" if k in FIXED else k): v for k, v in e.metrics.items()},
                         "wall_s": e.wall_s, "cum_wall_s": total, "reported_at": e.reported_at})
    return rows


def _column(values: list, dtype: str | None = None) -> tuple[pd.Series, bool]:
    """``values`` as one typed column that parquet and CSV both keep: ``dtype``, else bool, int, float or
    str as the values are, nullable where one is missing (an inactive conditional parameter, a failed
    trial's epoch). Values of mixed kinds (a categorical of numbers and strings) are stored as their JSON
    text: True in the second element, and :func:`load` decodes them."""
    present = [v for v in values if not _missing(v)]
    kinds = {"bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "float" if isinstance(v, float)
             else "str" if isinstance(v, str) else "other" for v in present}
    full = len(present) == len(values)
    if dtype == "str":
        return pd.Series([None if _missing(v) else str(v) for v in values], dtype="str"), False
    if dtype is not None:
        return pd.Series([math.nan if _missing(v) else v for v in values], dtype=dtype), False
    if not kinds or kinds <= {"int", "float"} and "float" in kinds:
        return pd.Series([math.nan if _missing(v) else float(v) for v in values], dtype="float64"), False
    if kinds == {"bool"}:
        return pd.Series(values, dtype="bool" if full else "boolean"), False
    if kinds == {"int"}:
        return pd.Series(values, dtype="int64" if full else "Int64"), False
    if kinds == {"str"}:
        return pd.Series(values, dtype="str"), False
    return pd.Series([None if _missing(v) else json.dumps(v) for v in values], dtype="str"), True


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


# --- metadata ------------------------------------------------------------------------------------

def _studies_meta(studies: list[_Study]) -> dict[str, Any]:
    """Per study name: its model, recipe, fidelity and the search space(s) its runs used."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(s.name for s in studies):
        mine = [s for s in studies if s.name == name]
        r = mine[0].result
        cls = _model_class(r.model)
        spaces: dict[str, dict] = {}
        for s in mine:
            entry = _space_meta(s)
            key = json.dumps(entry, sort_keys=True, default=str)
            spaces.setdefault(key, {**entry, "runs": []})["runs"].append(s.run_dir.name)
        keys = dict.fromkeys(CONFIG + k for s in mine for t in s.trials for k in t.config)
        # what recording it cost: every trial's wall time times its CPUs (as its run's spec asked for them)
        cpu_hours = sum((t.wall_s or 0.0) * float(s.spec.get("cpus_per_trial", 1.0)) for s in mine for t in s.trials) / 3600
        out[name] = {"model": r.model, "recipe": r.recipe, "runs": [s.run_dir.name for s in mine],
                     "config_columns": list(keys), "fidelity": _fidelity_meta(cls, mine),
                     "spaces": list(spaces.values()), "cpu_hours": round(cpu_hours, 3),
                     # each run's search as its result.json has it: the search's own wall time (Ray's start-up
                     # and the test evaluation left out), the best trial's validation and test AUC
                     "searches": [{"run": s.run_dir.name, "search_wall_s": s.result.search_wall_s,
                                   "val_auc": s.result.val_auc, "test_auc": s.result.test.first.auc} for s in mine]}
    return out


def _model_class(model: str):
    from benchmark.models import get_model_class

    try:
        return get_model_class(model)
    except BenchError:  # a plugin's model, not loaded here
        return None


def _fidelity_meta(cls, studies: list[_Study]) -> dict[str, Any]:
    if cls is None:
        return {"name": None, "column": FIDELITY, "note": "a model this hepbench does not know: fidelity unknown"}
    if cls.fidelity is None:
        return {"name": None, "column": FIDELITY, "min": 1, "max": 1, "note": "no fidelity: one step per trial"}
    # the config's value is the cap every trial trained towards (--max-epochs fixes it; ASHA stops earlier)
    caps = [int(t.config[cls.fidelity]) for s in studies for t in s.trials if cls.fidelity in t.config]
    caps += [] if caps else [int(s.spec["max_epochs"]) for s in studies if "max_epochs" in s.spec]
    return {"name": cls.fidelity, "column": FIDELITY, "config_column": CONFIG + cls.fidelity, "min": 1,
            "max": max(caps, default=None)}


def _space_meta(s: _Study) -> dict[str, Any]:
    """The space ``s`` searched, as its YAML declared it: the study directory's copy (``space.yaml``,
    with the values ``bench run``'s options fixed), or None for a recipe or a run that kept none."""
    from benchmark.search_space import load_space

    if s.result.recipe is not None:
        return {"params": None, "note": f"reference recipe {s.result.recipe} (benchmark.recipes): one fixed "
                                        "config, not searched"}
    path = s.path / records.SPACE
    try:
        return {"params": load_space(s.result.model, path).declared()}
    except BenchError as e:
        return {"params": None, "note": f"the space is not recorded ({e}): a run of an older hepbench"}


def _run_meta(s: _Study) -> dict[str, Any]:
    """A run's invocations as ``run.json`` has them: command, time, spec, package versions, hardware."""
    if s.run is None:
        return {"path": str(s.run_dir), "invocations": [], "note": f"{records.RUN} unreadable"}
    return {"path": str(s.run_dir), "invocations": [{**dataclasses.asdict(i), "argv": list(i.argv)}
                                                    for i in s.run.invocations]}


# --- writing and reading -------------------------------------------------------------------------

def metadata_path(path: Path) -> Path:
    """Where the metadata of the table ``path`` lies: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write(table: Table, path: Path, fmt: str = "parquet") -> Path:
    """``table`` to ``path`` in ``fmt`` and its metadata beside it, each file replaced atomically."""
    path = Path(path)
    if fmt == "csv":
        atomic_write(path, lambda tmp: table.frame.to_csv(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: table.frame.to_parquet(tmp, index=False))
    write_json(metadata_path(path), {**table.metadata, "format": fmt, "table": path.name})
    return path


def load(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table ``bench export`` wrote to ``path`` and its metadata, typed as exported (a CSV's columns
    get the types the metadata records; mixed-kind config columns are decoded from JSON)."""
    path, meta_path = Path(path), metadata_path(path)
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{meta_path}: missing (`bench export` writes it beside the table)") from None
    except (OSError, ValueError) as e:
        raise BenchError(f"{meta_path}: unreadable ({one_line(e, typed=True)})") from None
    if not isinstance(meta, dict) or meta.get("schema_version") not in READS:
        version = meta.get("schema_version") if isinstance(meta, dict) else None
        raise BenchError(f"{meta_path}: export schema {version!r}, but this hepbench reads {' or '.join(map(str, READS))}: "
                         "export the run directories again with this version")
    try:
        if meta.get("format") == "csv":
            frame = pd.read_csv(path, dtype=meta["columns"])
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, KeyError) as e:
        raise BenchError(f"{path}: unreadable ({one_line(e, typed=True)})") from None
    for c in meta.get("json_columns", ()):
        frame[c] = frame[c].map(lambda v: None if _missing(v) else json.loads(v)).astype(object)
    return frame, meta


# --- using the table -----------------------------------------------------------------------------

def config_columns(frame: pd.DataFrame) -> list[str]:
    """The hyperparameter columns (``config.<key>``) that hold a value in ``frame``, in the table's order:
    of one study's rows, its own (a table of several models has the union of their keys)."""
    return [c for c in frame.columns if c.startswith(CONFIG) and frame[c].notna().any()]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The per-epoch metrics besides the objective (``train_loss``, ``val_loss``, ...)."""
    return [c for c in frame.columns if c not in FIXED and not c.startswith((CONFIG, COST))]


def lookup(frame: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of the trials whose config is ``config`` (keys with or without ``config.``), by trial and
    epoch: a tabular benchmark's f(config, fidelity) at every recorded fidelity, one trial per run and seed
    that trained it. A hyperparameter ``config`` leaves out must be empty in the row (an inactive one)."""
    wanted = {k if k.startswith(CONFIG) else CONFIG + k: v for k, v in config.items()}
    columns = [c for c in frame.columns if c.startswith(CONFIG)]
    if unknown := [k for k in wanted if k not in columns]:
        raise KeyError(f"{unknown[0]} is not a hyperparameter of this table ({', '.join(columns)})")
    mask = pd.Series(True, index=frame.index)
    for c in columns:
        mask &= frame[c].map(functools.partial(_same, wanted.get(c))).astype(bool)
    return frame[mask].sort_values([*TRIAL, FIDELITY])


def _same(wanted: Any, value: Any) -> bool:
    return _missing(value) if _missing(wanted) else not _missing(value) and bool(value == wanted)


def _note(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)
