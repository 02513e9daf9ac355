"""The run records: what ``bench run`` writes into a run directory, typed, in one module.

Layout (``runs/<name>/``)::

    run.json                        RunRecord: every invocation (command, spec, versions, hardware)
    <task>/<model>/                 StudyDir: one search, every artifact's path, reader and writer
                  /trials.jsonl     TrialLog: append-only, written while the search runs (what a kill keeps)
                  /trials.json      every TrialRecord of the search, written when it ends
                  /result.json      SearchResult: best config, validation AUC, test metrics, budget used; its
                                    ``data`` is the DataManifest (source, hash, split sizes, training rows)
                  /space.yaml       the space searched, as YAML (bench run's fixed values in it)
                  /optuna.journal   the Optuna study (benchmark.search.studies)
                  /tune/            Ray Tune's experiment state (what --resume restores)
                  /roc.npz          test labels, scores and aux variables of the best config (first seed)
                  /<artifact>.npz   the model's extra test arrays (VAEs: recon, latent)

The runner writes them, and the board, ``bench report``, ``bench export``, ``bench perf`` and the tests
read them, only through this module; :func:`studies` is the one scanner of run directories. Each JSON file carries ``schema_version``; files of schema 1 (the
first release, without the field) and 2 still read, with the values later schemas added derived where
the old file determines them (schema 3 added the convergence of the test retraining, the VAEs'
reconstruction quality, the reference recipe and the fixed-evaluation data sizes). A file of another schema, or one that does not parse, is a :class:`BenchError`
that says how to rebuild.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from benchmark.errors import BenchError, one_line
from benchmark.files import write_json
from benchmark.tasks.base import Sizes

SCHEMA_VERSION = 3
RUN, TRIALS, RESULT, LOG = "run.json", "trials.json", "result.json", "trials.jsonl"
SPACE = "space.yaml"  # a study directory's copy of the space it searched (benchmark.search_space.SearchSpace.dump)
ROC, JOURNAL, TUNE_DIR = "roc.npz", "optuna.journal", "tune"
STATUSES = ("completed", "pruned", "failed")
COST = "cost."  # the prefix of a trial's measured costs (benchmark.costs.KEYS)
#: How a rejected file is fixed: its run directory was written by another hepbench version.
REBUILD = "rerun the search with this version (`bench run ... --name NEW`)"


# --- one trial -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Epoch:
    """One reported step of a trial (an epoch; the single step of a model without a fidelity)."""

    epoch: int
    val_auc: float
    wall_s: float | None = None         # this step's wall time in the trial
    reported_at: float | None = None    # the driver's clock when the result arrived (Unix time)
    node_id: str | None = None
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)  # the model's curve_keys

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "val_auc": self.val_auc, **self.metrics, "time_this_iter_s": self.wall_s,
                "node_id": self.node_id, "reported_at": self.reported_at}

    @classmethod
    def from_json(cls, d: Mapping) -> Epoch:
        fixed = {"epoch", "val_auc", "time_this_iter_s", "node_id", "reported_at"}
        return cls(epoch=int(d["epoch"]), val_auc=float(d["val_auc"]), wall_s=d.get("time_this_iter_s"),
                   reported_at=d.get("reported_at"), node_id=d.get("node_id"),
                   metrics={k: float(v) for k, v in d.items() if k not in fixed})


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial of a search: its config, per-step curve and how it ended."""

    trial_id: str                       # Ray Tune's id (also the Optuna trial's user attribute TUNE_ID)
    status: str                         # one of STATUSES
    config: Mapping[str, Any]
    seed: int
    best_val_auc: float | None          # None for a failed trial
    epochs: int | None                  # steps trained
    wall_s: float | None
    node_id: str | None = None
    hostname: str | None = None
    retries: int = 0                    # restarts after a lost node or actor
    precision: str | None = None        # as the model computed: "fp32" / "bf16" (neural), "native"
    error: str | None = None            # one line, for a failed trial
    curve: tuple[Epoch, ...] = ()
    costs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # cost.* (bench run --costs)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["curve"] = [e.to_json() for e in self.curve]
        return d

    @classmethod
    def from_json(cls, d: Mapping, seed: int = 0) -> TrialRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in d.items() if k in fields}
        kept["curve"] = tuple(Epoch.from_json(e) for e in d.get("curve") or ())
        kept.setdefault("seed", seed)  # schema 1 had the search's seed only (every trial used it)
        return cls(**kept)


def schema_1_precision(gpu: bool, neural: bool = True) -> str:
    """What the code of schema 1 computed in: neural models bf16 autocast on a GPU and fp32 on CPU,
    classical models their library's own arithmetic."""
    return ("bf16" if gpu else "fp32") if neural else "native"


#: The Optuna trial's user attribute holding Ray Tune's trial id (the join between the two stores).
TUNE_ID = "tune_trial_id"


class TrialLog:
    """The append-only record of a running search, one JSON line per event: a step's result, a
    retry (the trial starts again from step 1), a stop by the scheduler. A line cut by a kill is
    skipped when read; the step is reported again on ``--resume``."""

    def __init__(self, study_dir: Path) -> None:
        self.path = Path(study_dir) / LOG

    def _append(self, record: Mapping) -> None:
        with open(self.path, "a") as f:  # one short line per event: append is enough
            f.write(json.dumps(record) + "\n")

    def step(self, trial_id: str, epoch: Epoch) -> None:
        self._append({"trial_id": trial_id, **epoch.to_json()})

    def retry(self, trial_id: str) -> None:
        self._append({"trial_id": trial_id, "event": "retry"})

    def pruned(self, trial_id: str, epoch: int) -> None:
        self._append({"trial_id": trial_id, "event": "pruned", "epoch": epoch})

    def read(self) -> tuple[dict[str, tuple[Epoch, ...]], dict[str, int], set[str]]:
        """Each trial's steps (a re-run step replaces the old one), its retries, the pruned trials."""
        steps: dict[str, dict[int, Epoch]] = {}
        retries: dict[str, int] = {}
        pruned: set[str] = set()
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        for line in lines:
            try:
                rec = json.loads(line)
                trial_id, event = rec.pop("trial_id"), rec.pop("event", None)
                if event == "retry":
                    steps[trial_id] = {}
                    retries[trial_id] = retries.get(trial_id, 0) + 1
                elif event == "pruned":
                    pruned.add(trial_id)
                else:
                    epoch = Epoch.from_json(rec)
                    steps.setdefault(trial_id, {})[epoch.epoch] = epoch
            except (ValueError, KeyError, TypeError):  # a line cut by a kill
                continue
        return {t: tuple(s[e] for e in sorted(s)) for t, s in steps.items()}, retries, pruned


def write_trials(study_dir: Path, trials: Iterable[TrialRecord]) -> None:
    write_json(Path(study_dir) / TRIALS, {"schema_version": SCHEMA_VERSION,
                                         "trials": [t.to_json() for t in trials]})


def read_trials(study_dir: Path, seed: int = 0) -> tuple[TrialRecord, ...]:
    """The search's trials; ``seed`` fills in a schema-1 file's per-trial seed (the search's)."""
    path = Path(study_dir) / TRIALS
    raw = _load(path)
    if isinstance(raw, list):  # schema 1: a bare list
        items = raw
    else:
        _check_version(path, raw)
        items = raw["trials"]
    try:
        return tuple(TrialRecord.from_json(t, seed) for t in items)
    except (KeyError, TypeError, ValueError) as e:
        raise BenchError(f"{path}: not a trial record ({one_line(e, typed=True)}); {REBUILD}") from None


# --- the data a search ran on ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DataManifest:
    """What a search result keeps of its prepared data's manifest (``benchmark.data.prepare``): the real
    files' SHA-256 (none for synthetic data), the generator version, the requested sizes, the split seed
    and the split sizes as prepared. ``n_samples`` is schema < 3's one sample count."""

    KEYS = ("files", "generator_version", "n_train", "n_val", "n_test", "seed", "split_sizes")

    files: Mapping[str, Any] | None = None
    generator_version: Any = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    seed: int | None = None
    split_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    n_samples: int | None = None
    present: tuple[str, ...] = KEYS  # the keys the file had (an old file lacks some), so it is written back as read

    @classmethod
    def of_prepared(cls, manifest: Mapping[str, Any]) -> DataManifest:
        return cls.from_json({k: manifest.get(k) for k in cls.KEYS})

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DataManifest:
        if not isinstance(d, Mapping):
            raise TypeError(f"data: a mapping expected, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"present"}
        kept = {k: v for k, v in d.items() if k in known and v is not None}
        return cls(**kept, present=tuple(k for k in d if k in known))

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.present}

    @property
    def training_rows(self) -> int:
        """The training split's rows as prepared (-1: unknown, an old result)."""
        return int((self.split_sizes or {}).get("train", -1))

    @property
    def hash(self) -> str:
        """Identity of the *evaluation* data: SHA-256 over the real files' SHA-256 (in file-name order) and
        the split seed, or over generator version, validation and test sizes and seed for synthetic data.
        The training size is not part of it (it is ``training_rows``): rows trained on different amounts
        of the same data were tested on the same rows. A result of schema < 3 hashes its sample count."""
        import hashlib

        if self.files:
            text = "".join(self.files[name]["sha256"] for name in sorted(self.files))
            if "n_train" in self.present:
                text += f"|{self.seed}"
        elif "n_samples" in self.present:
            text = f"{self.generator_version}|{self.n_samples}|{self.seed}"
        else:
            missing = [k for k in ("generator_version", "n_val", "n_test", "seed") if k not in self.present]
            if missing:
                raise KeyError(missing[0])
            text = f"{self.generator_version}|val {self.n_val}|test {self.n_test}|{self.seed}"
        return hashlib.sha256(text.encode()).hexdigest()

    def sizes(self, source: str) -> Sizes:
        """The rows per split to prepare the same data again."""
        if "n_train" not in self.present:
            raise KeyError("n_train")
        if source == "real":
            return Sizes(train=self.n_train)
        return Sizes(self.n_train, self.n_val, self.n_test)


def data_hash(data: Mapping[str, Any] | DataManifest) -> str:
    """:attr:`DataManifest.hash` of a manifest or of its JSON mapping."""
    return (data if isinstance(data, DataManifest) else DataManifest.from_json(data)).hash


# --- one study directory -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StudyDir:
    """One search's directory, ``<run>/<task>/<model>``: every artifact's path, its reader and writer."""

    path: Path

    @classmethod
    def of(cls, run_dir: Path, task: str, label: str) -> StudyDir:
        """The study of ``label`` (a model, or ``model@recipe``) on ``task`` in ``run_dir``."""
        return cls(Path(run_dir) / task / label.replace(":", "_"))

    @property
    def run_dir(self) -> Path:
        return self.path.parents[1]

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        """A study with ``result.json`` is done (it is the last file written)."""
        return (self.path / RESULT).is_file()

    @property
    def started(self) -> bool:
        return any((self.path / f).is_file() for f in (RESULT, TRIALS, LOG))

    def log(self) -> TrialLog:
        return TrialLog(self.path)

    def read_result(self) -> SearchResult:
        return read_result(self.path)

    def write_result(self, result: SearchResult) -> None:
        write_result(self.path, result)

    def read_trials(self, seed: int = 0) -> tuple[TrialRecord, ...]:
        return read_trials(self.path, seed)

    def write_trials(self, trials: Iterable[TrialRecord]) -> None:
        write_trials(self.path, trials)

    def artifact(self, name: str) -> Path:
        """The ``.npz`` of a test artifact: ``roc`` (labels, scores, aux) or a model's (``recon``, ``latent``)."""
        return self.path / f"{name}.npz"

    def write_artifact(self, name: str, arrays: Mapping[str, Any]) -> None:
        from benchmark.files import atomic_savez

        atomic_savez(self.artifact(name), **arrays)

    def read_artifact(self, name: str) -> dict[str, Any] | None:
        """The arrays of a test artifact, or None when the study has none of that name."""
        import numpy as np

        path = self.artifact(name)
        if not path.is_file():
            return None
        with np.load(path) as z:
            return {k: z[k] for k in z.files}


def studies(run_dir: Path, *, finished: bool = False) -> list[StudyDir]:
    """Every study directory of ``run_dir`` that has a record (only those with a result if ``finished``),
    in name order: the one scanner of run directories."""
    found = [StudyDir(p) for p in sorted(Path(run_dir).glob("*/*")) if p.is_dir()]
    return [s for s in found if (s.finished if finished else s.started)]


def read_run_or_none(run_dir: Path, warn) -> RunRecord | None:
    """The run record, or None after ``warn(message)`` when it is missing or unreadable."""
    try:
        return read_run(run_dir)
    except BenchError as e:
        warn(str(e))
        return None


# --- one search ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TestRun:
    """The best config retrained with one seed and scored once on the test split."""

    seed: int
    train_s: float
    auc: float
    auc_low: float          # bootstrap 95 % interval
    auc_high: float
    accuracy: float         # at the threshold of best accuracy on validation
    rej_at_eff50: float     # 1 / eps_B at eps_S = 0.5 (inf: no background passed)
    rej_at_eff30: float
    epochs: int | None = None       # epochs trained (neural models; None: classical, or schema < 3)
    converged: bool | None = None   # by :func:`benchmark.models.training.convergence` (None as for epochs)
    stop: str | None = None         # why training stopped: "patience", "plateau" or "max_epochs"
    recon_corr: float | None = None  # VAEs: mean per-image pixel correlation of test images and reconstructions


@dataclasses.dataclass(frozen=True)
class TestMetrics:
    """The test evaluation of a search: the first seed's run, and every seed's (``--repeats``)."""

    repeats: tuple[TestRun, ...]

    @property
    def first(self) -> TestRun:
        return self.repeats[0]

    @property
    def auc_mean(self) -> float:
        return sum(r.auc for r in self.repeats) / len(self.repeats)

    @property
    def auc_median(self) -> float:
        aucs = sorted(r.auc for r in self.repeats)
        n = len(aucs)
        return aucs[n // 2] if n % 2 else 0.5 * (aucs[n // 2 - 1] + aucs[n // 2])

    @property
    def auc_std(self) -> float:
        n = len(self.repeats)
        if n < 2:
            return 0.0
        mean = self.auc_mean
        return (sum((r.auc - mean) ** 2 for r in self.repeats) / (n - 1)) ** 0.5

    def to_json(self) -> dict:
        runs = [dataclasses.asdict(r) for r in self.repeats]
        return {**runs[0], "auc_mean": self.auc_mean, "auc_median": self.auc_median, "auc_std": self.auc_std,
                "repeats": runs}

    @classmethod
    def from_json(cls, d: Mapping) -> TestMetrics:
        names = [f.name for f in dataclasses.fields(TestRun)]  # the later fields default (schema < 3)
        return cls(tuple(TestRun(**{k: r[k] for k in names if k in r}) for r in d.get("repeats") or [d]))


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """One finished search of a (task, model): what the board publishes, and how it was obtained."""

    task: str
    model: str
    source: str                         # "synthetic" or "real"
    data: DataManifest                  # the prepared data's manifest: files, generator, sizes, seed, split sizes
    sampler: str
    scheduler: str
    seed: int
    trials: Mapping[str, int]           # counts per status
    best_trial: str
    best_config: Mapping[str, Any]
    val_auc: float
    test: TestMetrics
    n_parameters: int
    search_wall_s: float
    trial_time_s: float                 # the budget used: sum of the trials' wall times
    epochs_trained: int | None          # the budget used in steps (None: unknown, schema 1)
    resources_per_trial: Mapping[str, float]
    device: str                         # "cpu" or "cuda"
    precision: str                      # "fp32" or "bf16" (autocast)
    finished: str
    recipe: str | None = None           # a reference recipe's name (benchmark.recipes): untuned; None: a search
    protocol: str | None = None         # the board protocol it ran under (benchmark.protocol), if any
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.data, DataManifest):  # a mapping, as the JSON file has it
            object.__setattr__(self, "data", DataManifest.from_json(self.data))

    @property
    def sizes(self) -> Sizes:
        """The rows per split it was trained and evaluated on (to prepare the same data again)."""
        try:
            return self.data.sizes(self.source)
        except KeyError:  # schema < 3: splits cut from one sample count, before the fixed evaluation splits
            raise BenchError(f"{self.task} / {self.model}: a result of an older hepbench, whose data this version "
                             f"does not prepare; {REBUILD}") from None

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["test"], d["data"] = self.test.to_json(), self.data.to_json()
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> SearchResult:
        d = dict(d)
        version = d.pop("schema_version", 1)
        d.setdefault("recipe", None)
        d.setdefault("protocol", None)
        if version == 1:  # derive what schema 1 left implicit
            gpu = float((d.get("resources_per_trial") or {}).get("gpu", 0) or 0) > 0
            d.setdefault("device", "cuda" if gpu else "cpu")
            d.setdefault("precision", schema_1_precision(gpu))
            d.setdefault("epochs_trained", None)
            d.setdefault("resources_per_trial", {})
            d.setdefault("finished", "")
        d["test"] = TestMetrics.from_json(d["test"])
        d["data"] = DataManifest.from_json(d["data"])
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name != "schema_version"})


def write_result(study_dir: Path, result: SearchResult) -> None:
    write_json(Path(study_dir) / RESULT, result.to_json())


def read_result(study_dir: Path) -> SearchResult:
    return _read(Path(study_dir) / RESULT, "search result", SearchResult.from_json)


# --- one run -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Invocation:
    """One ``bench run`` (or ``--resume``) of a run directory."""

    argv: tuple[str, ...]
    time: str
    spec: Mapping[str, Any]
    versions: Mapping[str, str | None]
    hardware: Mapping[str, Any]

    @classmethod
    def now(cls, argv: Iterable[str], spec: Mapping[str, Any]) -> Invocation:
        from benchmark import environment

        return cls(tuple(argv), time.strftime("%Y-%m-%dT%H:%M:%S%z"), dict(spec), environment.versions(),
                   environment.hardware())

    def covers(self, task: str, model: str) -> bool:
        return task in (self.spec.get("tasks") or ()) and model in (self.spec.get("models") or ())


@dataclasses.dataclass(frozen=True)
class RunRecord:
    name: str
    invocations: tuple[Invocation, ...] = ()

    def invocation_for(self, task: str, model: str) -> Invocation | None:
        """The first invocation that covers (task, model): the command that started the search (later
        ones are resumes of it); else the last one."""
        first = next((inv for inv in self.invocations if inv.covers(task, model)), None)
        return first or (self.invocations[-1] if self.invocations else None)


def read_run(run_dir: Path) -> RunRecord:
    def parse(raw: Mapping) -> RunRecord:
        invocations = tuple(Invocation(tuple(i.get("argv") or ()), str(i.get("time", "")), i.get("spec") or {},
                                       i.get("versions") or {}, i.get("hardware") or {})
                            for i in raw.get("invocations") or ())
        return RunRecord(str(raw.get("name", Path(run_dir).name)), invocations)

    return _read(Path(run_dir) / RUN, "run record", parse)


def append_invocation(run_dir: Path, invocation: Invocation) -> RunRecord:
    """Add ``invocation`` to ``run_dir/run.json`` (created on the first)."""
    path = Path(run_dir) / RUN
    old = read_run(run_dir) if path.is_file() else RunRecord(Path(run_dir).name)
    record = RunRecord(old.name, (*old.invocations, invocation))
    write_json(path, {"schema_version": SCHEMA_VERSION, "name": record.name,
                      "invocations": [{**dataclasses.asdict(i), "argv": list(i.argv)} for i in record.invocations]})
    return record


# --- helpers -------------------------------------------------------------------------------------


def _read(path: Path, what: str, parse):
    """``parse`` of the JSON object in ``path``, its schema checked; anything else a BenchError."""
    raw = _load(path)
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: not a {what} (a JSON object expected); {REBUILD}")
    _check_version(path, raw)
    try:
        return parse(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BenchError(f"{path}: not a {what} ({one_line(e, typed=True)}); {REBUILD}") from None


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: missing") from None
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: unreadable ({one_line(e, typed=True)}); {REBUILD}") from None


def _check_version(path: Path, raw: Mapping) -> None:
    version = raw.get("schema_version", 1)
    if version not in (1, 2, SCHEMA_VERSION):
        raise BenchError(f"{path}: run-record schema {version!r}, but this hepbench reads schemas 1 to "
                         f"{SCHEMA_VERSION}; read it with the version that wrote it, or {REBUILD}")
