"""The Ray Tune runner: one Optuna search per (task, model), then one evaluation of the best on test.

This is the only module that imports Ray. ``check(spec)`` validates a run without Ray, ``run(spec)``
runs every search of it and ``search(spec)`` the one search of a one-(task, model) spec, each
returning typed records (:mod:`benchmark.records`); publishing them is a separate step
(``benchmark.leaderboard.update``, which ``bench run`` calls at the end). Layout of a run directory::

    runs/<name>/run.json                       command, versions, hardware, spec (every invocation)
    runs/<name>/<task>/<model>/optuna.journal  the Optuna study, written as the search runs (optuna-dashboard
                                               opens it; --resume continues it: benchmark.studies)
                              /tune/           Ray Tune's experiment state (what --resume restores)
                              /space.yaml      the space searched, as YAML (bench run's fixed values in it)
                              /trials.jsonl    append-only while the search runs: every epoch, retry and stop
                              /trials.json     every trial: config, per-epoch curve, status, time, node
                              /result.json     best config, validation metric, test metrics (+ repeats)
                              /roc.npz         test labels, scores and aux variables of the best config (first seed)
                              /<artifact>.npz  the model's extra test arrays (VAEs: recon, latent)

With ``--storage`` Tune's experiment state goes there instead of ``tune/`` (a shared path or a cloud URI
for a cluster); every other file is written on the driver. Trial results reach the driver through Ray, so
a cluster needs no shared filesystem; trials keep their best weights in memory and write no checkpoints.
A trial whose node dies is retried from its start (``TRIAL_RETRIES`` times) on a node that is alive.

Trials read the prepared, memory-mapped splits from the node's data directory (``prepare`` reuses the
cache, and builds it once on a node that lacks it), so data is shared by the page cache, not copied.
The best trial is retrained with its config and seed (bit-identical on CPU) and K-1 more seeds for
``--repeats``, one Ray task per seed with a trial's resources (side by side where there is room): the test
split is touched only there. A reference recipe (``--recipe``) is not searched: its config is trained once
with the run's seed (validated every epoch, the study's one trial) and tested.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import data, environment, records
from benchmark.devices import DevicePlan
from benchmark.errors import BenchError, ConfigError, DivergedError, one_line
from benchmark.files import atomic_savez, make_dir
from benchmark.strategies import METRIC, MODE, make_sampler, scheduler_class
# Retries of a failed trial (Tune's FailureConfig.max_failures), for lost nodes and actors. A config that
# fails by itself (diverged loss, out of memory) ends its trial as failed at once (see _trial); any other
# exception in a trial looks like a lost node to Tune and runs 1 + TRIAL_RETRIES times.
TRIAL_RETRIES = 2
CONNECT_TIMEOUT_S = 10  # ray.init retries an unreachable head for minutes: a plain TCP connect first


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A typed ``bench run``: built from the command line in ``benchmark.cli``, trusted here."""

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    trials: int = 20
    sampler: str = "tpe"
    scheduler: str = "asha"
    max_epochs: int = 10
    precision: str = "auto"  # the neural models' config key ``precision`` (benchmark.devices)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    source: str = "auto"
    sizes: data.Sizes = data.Sizes()  # rows per split (None: the task's default; real files: train only)
    seed: int = 0
    sampler_seed: int | None = None  # the sampler's own seed (None: ``seed``, which also fixes data and training)
    name: str = ""
    resume: bool = False
    repeats: int = 1
    address: str | None = None
    storage: str | None = None  # Tune's storage_path (a shared path or URI); None: the study dir on the driver
    data_root: Path = Path(".")
    runs_dir: Path = Path("runs")
    spaces: Mapping[str, str] = dataclasses.field(default_factory=dict)
    recipes: tuple[str, ...] = ()  # reference recipes (benchmark.recipes) to run after the searches
    protocol: str | None = None    # the board protocol this spec was made from (benchmark.protocol)
    verbose: bool = False
    argv: tuple[str, ...] = ()


def study_dir(run_dir: Path, task: str, model: str) -> Path:
    """Where the search of (task, model) keeps its records inside ``run_dir``."""
    return Path(run_dir) / task / model.replace(":", "_")


def _experiment(spec: RunSpec, task: str, model: str) -> str:
    """Tune's experiment name of a search under a shared ``--storage``: one per (run, task, model)."""
    return f"{spec.name}-{task}-{model.replace(':', '_')}"


@dataclasses.dataclass(frozen=True)
class Checked:
    """A spec checked against the registries, its search spaces loaded: what ``run`` starts Ray with."""

    spec: RunSpec
    run_dir: Path
    tasks: tuple  # TaskSpec
    spaces: Mapping[str, Any]  # model -> SearchSpace
    sources: Mapping[str, data.Source]  # task -> the data it runs on


#: Seeds numpy's RandomState (Optuna's samplers, scikit-learn) takes: [0, 2**32).
MAX_SEED = 2**32 - 1


def run_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a run's directory inside ``--runs-dir`` (one name, not a path,
    nothing a file system or a terminal mangles, room for Tune's experiment suffixes), or None."""
    import unicodedata

    if not name.strip():
        return "empty: pass a name, or leave --name out for a timestamp"
    if name in (".", "..") or "/" in name or (os.altsep and os.altsep in name):
        return f"{name!r} is a path, not a name: the run goes to RUNS_DIR/NAME (pass --runs-dir for another place)"
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cs")]
    if bad:
        return f"{name[:60]!r} contains the character {bad[0]!r}: use letters, digits, '-', '_' or '.'"
    if len(name.encode("utf-8", "surrogateescape")) > 200:
        return f"of {len(name.encode('utf-8', 'surrogateescape'))} bytes (at most 200)"
    return None


STORAGE_SCHEMES = ("file", "local", "mock", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")  # pyarrow's


def storage_problem(storage: str) -> str | None:
    """What is wrong with ``storage`` as Ray Tune's storage path (a URI of a file system pyarrow knows,
    or an absolute path), or None."""
    import unicodedata

    if "://" not in storage:
        return None if os.path.isabs(storage) else "a URI or an absolute path"
    scheme, rest = storage.split("://", 1)
    if scheme not in STORAGE_SCHEMES:
        return f"unknown scheme {scheme!r}; Ray Tune knows {', '.join(s + '://' for s in STORAGE_SCHEMES)} and local paths"
    if any(c.isspace() or unicodedata.category(c).startswith("C") or ord(c) > 127 for c in rest) or \
            re.search(r"%(?![0-9A-Fa-f]{2})", rest):
        return "not a valid URI (percent-encode spaces, non-ASCII and control characters)"
    if scheme in ("file", "local") and not rest.startswith("/"):
        return f"a {scheme}:// URI needs an absolute path ({scheme}:///dir), or pass the path itself"
    if scheme not in ("file", "local", "mock") and not rest.split("/", 1)[0]:
        return f"no bucket or host after {scheme}://"
    return None


def parse_address(address: str, label: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IP, ``[IPv6]`` or a host name; port 1-65535) as (host, port); anything else,
    and Ray Client's ``ray://``, a one-line BenchError."""
    import ipaddress

    if address.startswith("ray://"):  # Tune would run its driver on the head, away from the run directory
        raise BenchError(f"{label} {address}: Ray Client (ray://) runs Tune's driver on the head node, where this "
                         f"machine's run directory is not; run `bench run --address HOST:6379` on a machine of the "
                         f"cluster, or `ray job submit -- bench run ...` (README: Scaling out)")
    parsed = re.fullmatch(r"(\[[^]]+\]|[^:/\[\]]+):([0-9]{1,5})", address)
    if parsed is None or not 1 <= int(parsed[2]) <= 65535:
        raise BenchError(f"{label} {address!r}: expected auto or HOST:PORT with a port from 1 to 65535 "
                         "(the head's GCS port, 6379 by default)")
    host = parsed[1]
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        label_re = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
        if host.startswith("[") or len(host) > 253 or not all(
                re.fullmatch(label_re, part) for part in host.removesuffix(".").split(".")):
            raise BenchError(f"{label} {address!r}: {host!r} is neither an IP address nor a host name "
                             "(letters, digits and '-' between dots; IDN as punycode)") from None
    return host.strip("[]"), int(parsed[2])


def check(spec: RunSpec) -> Checked:
    """Every check that needs no Ray: names, search spaces, directories. Bad input fails here, in a
    second, with a :class:`BenchError`; nothing is written but the directories ``spec`` names."""
    from benchmark.errors import DataError
    from benchmark.models import create_model, get_model_class
    from benchmark.search_space import load_space
    from benchmark.tasks import get_task

    max_seed, max_repeats, finest = MAX_SEED, 1000, 1e-4  # Ray's resource granularity

    # the run directory: one name inside --runs-dir
    name = spec.name
    problem = run_name_problem(name)
    if problem:
        raise BenchError(f"run name {problem}")
    try:
        run_dir = (spec.runs_dir / name).resolve()
        if run_dir.parent != Path(spec.runs_dir).resolve():
            raise BenchError(f"run name {name!r}: {spec.runs_dir / name} leads out of --runs-dir {spec.runs_dir} "
                             "(a symbolic link): pass another --name")
        if spec.resume and not (run_dir / records.RUN).is_file():
            raise BenchError(f"--resume: no run named {name!r} in {spec.runs_dir}")
        if not spec.resume and run_dir.exists():
            raise BenchError(f"run directory {run_dir} exists: pass --resume to continue it, or another --name")
    except (OSError, ValueError) as e:
        raise BenchError(f"run directory {spec.runs_dir / name}: {getattr(e, 'strerror', None) or e}; "
                         "pass a shorter --runs-dir or --name") from None

    # numbers: what numpy, Optuna, scikit-learn and Ray take
    for option, value in (("--trials", spec.trials), ("--max-epochs", spec.max_epochs), ("--repeats", spec.repeats),
                          ("--concurrency", 1 if spec.concurrency is None else spec.concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BenchError(f"{option} {value!r}: must be a positive integer")
        if value > sys.maxsize:  # Tune's own "unlimited"; beyond it int64 counters overflow
            raise BenchError(f"{option} {value}: at most 2**63 - 1 = {sys.maxsize}")
    if spec.repeats > max_repeats:
        raise BenchError(f"--repeats {spec.repeats}: at most {max_repeats} (each one retrains the best config)")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or not 0 <= spec.seed <= max_seed - (spec.repeats - 1):
        raise BenchError(f"--seed {spec.seed!r}: must be an integer from 0 to 2**32 - 1 = {max_seed}"
                         + (f" less --repeats - 1 (the repeats use seeds SEED..SEED+{spec.repeats - 1})"
                            if spec.repeats > 1 else ""))

    tasks = tuple(get_task(t) for t in dict.fromkeys(spec.tasks))
    if not spec.models:
        raise BenchError("no model to run: pass --model NAME ...")
    twice = [m for m in dict.fromkeys(spec.models) if spec.models.count(m) > 1]
    if twice:
        raise BenchError(f"--model {twice[0]} is given twice: name each model once")
    extra = [m for m in spec.spaces if m not in spec.models]
    if extra:
        raise BenchError(f"--space {extra[0]}={spec.spaces[extra[0]]}: {extra[0]!r} is not a model of this run "
                         f"({' '.join(spec.models)}); write MODEL as it is given to --model")

    # search spaces, and the models they configure: built once per task (a timm member that timm does not
    # know, or a fixed value the model refuses, would fail every trial)
    spaces = {}
    for m in spec.models:
        cls = get_model_class(m)
        try:
            spaces[m] = load_space(m, spec.spaces.get(m), known_keys=cls.default_config)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{spec.spaces.get(m)}: unreadable search-space file "
                              f"({getattr(e, 'strerror', None) or e})") from None
        fixed = {p.name: p.value for p in spaces[m].params if p.type == "fixed" and not p.when}
        fixed.update(_fixed_by_spec(spec, cls, spaces[m]))
        for task in tasks:
            for config, where in (({}, ""), (fixed, f" with the fixed values of {spaces[m].path}")):
                try:
                    create_model(m, task, config)
                except (BenchError, TypeError, ValueError) as e:
                    raise ConfigError(f"--model {m} on {task.name}{where}: {e}") from None

    from benchmark.recipes import get_recipe

    for name in spec.recipes:
        recipe = get_recipe(name)
        for task in tasks:
            if recipe.applies_to(task.name):
                try:
                    create_model(recipe.model, task, recipe.config_for(task.name))
                except (BenchError, TypeError, ValueError) as e:
                    raise ConfigError(f"--recipe {name} on {task.name}: {e}") from None

    for option, value in (("--cpus-per-trial", spec.cpus_per_trial), ("--gpus-per-trial", spec.gpus_per_trial)):
        if not math.isfinite(value) or value < 0 or 0 < value < finest:
            raise BenchError(f"{option} {value:g}: Ray schedules resources in steps of {finest:g}: pass 0 "
                             f"(GPUs only) or a finite number of at least {finest:g}")
    if spec.cpus_per_trial == 0:
        raise BenchError("--cpus-per-trial 0: every trial needs a share of a CPU (at least 0.0001)")
    if spec.address is not None and not spec.address.strip():
        raise BenchError(f"--address {spec.address!r}: pass auto or HOST:PORT, or leave --address out for a local Ray")
    address, label = (spec.address, "--address") if spec.address else (os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS")
    if not address:  # a local Ray, with this machine's CPUs and GPUs (see _init_ray)
        cpus = os.cpu_count() or 1
        if spec.cpus_per_trial > cpus:
            raise BenchError(f"--cpus-per-trial {spec.cpus_per_trial:g}: this machine has {cpus} CPUs (a local "
                             f"Ray): ask for at most {cpus}, or pass the --address of a cluster that has more")
        if spec.gpus_per_trial > 0 and spec.gpus_per_trial > (gpus := len(environment.gpu_names())):
            raise BenchError(f"--gpus-per-trial {spec.gpus_per_trial:g}: this machine has {gpus} GPUs (a local "
                             f"Ray): ask for at most {gpus}, or pass the --address of a cluster that has them")
    elif address != "auto":
        parse_address(address, label)  # as _connect reads it, which would fail later, after Ray's start-up

    # where Tune keeps its state
    if spec.storage is not None:
        problem = storage_problem(spec.storage)
        if problem:
            raise BenchError(f"--storage {spec.storage!r}: {problem}")
        for task in tasks:
            for m in spec.models:
                experiment = _experiment(spec, task.name, m)
                if len(experiment.encode("utf-8", "surrogateescape")) > 255:
                    raise BenchError(f"--storage: the experiment name {experiment[:40]}... is longer than 255 bytes: "
                                     "pass a shorter --name")

    # the data: real files where --source real asks for them, room for the synthetic splits
    root = Path(spec.data_root)
    sources = {}
    for t in tasks:
        real = spec.source != "synthetic" and data.locate_real(t, root) is not None
        if spec.source == "real" and not real:
            raise DataError(data.missing_real_message(t, root))
        sources[t.name] = data.Source.REAL if real else data.Source.SYNTHETIC
    synthetic = [t for t in tasks if sources[t.name] is data.Source.SYNTHETIC]
    data.check_room(synthetic, root, seed=spec.seed, sizes=spec.sizes)

    make_dir(spec.data_root / "prepared")  # unwritable directories fail here, before Ray starts
    make_dir(spec.runs_dir, fix="pass a writable --runs-dir")
    if spec.storage is not None and "://" not in spec.storage:
        make_dir(Path(spec.storage), fix="pass a writable --storage")
    return Checked(spec, run_dir, tasks, spaces, sources)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What ``run`` did: the run directory, every search that finished, and those that failed."""

    run_dir: Path
    results: tuple[records.SearchResult, ...]
    failures: tuple[str, ...] = ()


def run(spec: RunSpec) -> Outcome:
    """Run every (task, model) search of ``spec``; a search whose every trial failed is reported in
    ``failures`` and the others go on. Publishing is apart: ``benchmark.leaderboard.update``."""
    from benchmark.recipes import get_recipe, study_name

    checked = check(spec)
    _init_ray(spec)  # before the run directory exists: an unreachable cluster leaves nothing behind
    run_dir = make_dir(checked.run_dir, fix="pass a writable --runs-dir")
    spec_json = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()}
    records.append_invocation(run_dir, records.Invocation.now(spec.argv, spec_json))
    results, failures = [], []
    for task in checked.tasks:
        source = checked.sources[task.name]
        if spec.source == "auto" and source is data.Source.SYNTHETIC:
            print(f"NOTE {task.name}: no real files in {data.raw_dir(task, spec.data_root)}: using SYNTHETIC data "
                  f"(`bench data fetch {task.name}` or --source real for the real set)", file=sys.stderr)
        prep = dict(task_name=task.name, source=source.value, root=str(spec.data_root), seed=spec.seed,
                    sizes=spec.sizes)
        prepared = prepare(**prep, progress=True)
        prep["path"] = str(prepared.path)  # trials on this node open it directly (no re-hashing)
        searches = [(model, None) for model in spec.models] + [
            (r.model, r) for r in map(get_recipe, spec.recipes) if r.applies_to(task.name)]
        for model, recipe in searches:
            label = study_name(model, recipe)
            where = study_dir(run_dir, task.name, label)
            if (where / records.RESULT).is_file():
                print(f"{task.name} / {label}: already finished, kept", file=sys.stderr)
                results.append(records.read_result(where))
                continue
            try:
                results.append(_search(spec, task, model, checked.spaces.get(model), prepared, prep, where)
                               if recipe is None else _reference(spec, task, recipe, prepared, prep, where))
            except SearchFailed as e:  # the other searches go on; the run fails at the end
                print(f"bench: warning: {e}; going on with the other searches", file=sys.stderr)
                failures.append(str(e))
    return Outcome(run_dir, tuple(results), tuple(failures))


def search(spec: RunSpec) -> records.SearchResult:
    """The one search of a spec with one task and one model: its typed result (or SearchFailed)."""
    if len(spec.tasks) != 1 or len(spec.models) != 1:
        raise BenchError(f"search: one task and one model, got {spec.tasks} x {spec.models}")
    outcome = run(spec)
    if outcome.failures:
        raise SearchFailed("; ".join(outcome.failures))
    return outcome.results[0]


class SearchFailed(BenchError):
    """Every trial of a search failed: a clear message and exit code 2, after the other searches."""


def prepare(*, task_name: str, source: str, root: str, seed: int, sizes: data.Sizes, progress: bool = False,
            path: str | None = None):
    """The prepared splits: opened at ``path`` when this node has them (the per-trial fast path),
    else prepared here once, a file lock keeping concurrent trials of the node from racing."""
    from filelock import FileLock

    from benchmark.tasks import get_task

    if path and (prepared := data.load_prepared(get_task(task_name), Path(path))) is not None:
        return prepared
    root_path = Path(root)
    lock_dir = make_dir(root_path / "prepared")
    with FileLock(str(lock_dir / f".{task_name}.lock")):
        return data.prepare(get_task(task_name), source=data.Source(source), root=root_path, seed=seed,
                            sizes=sizes, progress=progress)


def _fixed_by_spec(spec: RunSpec, cls, space) -> dict[str, Any]:
    """The values ``bench run``'s options fix in a model's space: its fidelity at ``--max-epochs``, and
    ``precision`` when ``--precision`` names one (a space may then not tune it)."""
    fixed: dict[str, Any] = {}
    if cls.fidelity is not None and cls.fidelity in space.names():
        fixed[cls.fidelity] = spec.max_epochs
    if spec.precision != "auto" and cls.has_precision():
        fixed["precision"] = spec.precision
    return fixed


#: What a search result keeps of the prepared data's manifest (``SearchResult.data``).
DATA_KEYS = ("files", "generator_version", "n_train", "n_val", "n_test", "seed", "split_sizes")


def _reference(spec: RunSpec, task, recipe, prepared, prep: dict, study_dir: Path) -> records.SearchResult:
    """A reference recipe: its one fixed config (epochs and patience capped by ``--max-epochs``) trained
    once with the run's seed, validated every epoch and scored on test. Nothing is searched, so it is not
    a Tune search (one trial there would be trained a second time for the test), and it trains alone
    with the CPUs of a whole node; its training curve is the study's one trial, ``recipe``."""
    from benchmark.recipes import study_name

    config = recipe.config_for(task.name)
    for key in ("epochs", "patience"):
        if key in config:
            config[key] = min(int(config[key]), spec.max_epochs)
    if spec.precision != "auto":
        config["precision"] = spec.precision
    study_dir.mkdir(parents=True, exist_ok=True)
    print(f"{task.name} / {study_name(recipe.model, recipe)}: the recipe trained once "
          f"({config.get('epochs', 1)} epoch(s) at most), then tested", file=sys.stderr)
    t0 = time.perf_counter()
    alone = dataclasses.replace(spec, repeats=1, cpus_per_trial=_lone_task_cpus(spec))
    final = _final_evaluation(alone, recipe.model, config, prep, curve=True)
    wall = time.perf_counter() - t0
    curve = final.curve
    trial = records.TrialRecord(
        trial_id="recipe", status="completed", config=config, seed=spec.seed,
        best_val_auc=max(e.val_auc for e in curve), epochs=len(curve), wall_s=final.test.first.train_s,
        precision=final.precision, curve=curve)
    records.write_trials(study_dir, [trial])
    return _record(alone, task, recipe.model, prepared, study_dir, [trial], trial, final, wall, recipe)


def _lone_task_cpus(spec: RunSpec) -> float:
    """The CPUs of a task that runs alone (a recipe's one training): the CPUs of the node with the most,
    on CPU-only runs; a trial's share on GPU runs (the widest node may have no GPU)."""
    import ray

    if spec.gpus_per_trial > 0:
        return spec.cpus_per_trial
    return max([spec.cpus_per_trial] + [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")])


def _search(spec: RunSpec, task, model: str, space, prepared, prep: dict, study_dir: Path) -> records.SearchResult:
    """One search of ``model`` on ``task``, whose first trial is the model's default config (as far as the
    space has it), then its best configuration tested with ``spec.repeats`` seeds."""
    import functools

    import optuna
    from ray import tune

    from benchmark import studies
    from benchmark.models import get_model_class

    cls = get_model_class(model)
    label = model
    space = space.with_fixed(**_fixed_by_spec(spec, cls, space))
    study_dir.mkdir(parents=True, exist_ok=True)
    space.dump(study_dir / records.SPACE)
    log = records.TrialLog(study_dir)
    if spec.resume and (study_dir / "curves.jsonl").is_file() and not log.path.is_file():
        raise BenchError(f"{study_dir}: a search begun by an older hepbench (curves.jsonl); {records.REBUILD}")
    optuna.logging.set_verbosity(optuna.logging.INFO if spec.verbose else optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA's rung of only failed trials
    if not spec.verbose:  # Ray times every define-by-run call and warns about slow ones
        warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space` argument")
        # a retried trial reports its epochs to the Optuna trial again: Optuna keeps the first value
        warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    scheduler = _PruneTracker.make(log, spec, cls.fidelity is not None)
    trainable = tune.with_resources(
        functools.partial(_trial, model_name=model, prep=prep, seed=spec.seed),
        {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})
    progress = _Progress(f"{task.name} / {label}", spec.trials, scheduler, log, cls.curve_keys)
    if spec.storage is None:
        storage_path, experiment = str(study_dir), "tune"
    else:  # one experiment per (run, task, model) under the shared location
        storage_path, experiment = spec.storage, _experiment(spec, task.name, label)
    tune_dir = f"{storage_path.rstrip('/')}/{experiment}"
    journal = studies.path(study_dir)
    if spec.resume and tune.Tuner.can_restore(tune_dir):
        tuner = tune.Tuner.restore(tune_dir, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
        tuner._local_tuner._run_config.callbacks = [progress]  # Ray restores pickled callbacks with stale state
    else:
        journal.unlink(missing_ok=True)  # a search killed before Tune's first checkpoint starts afresh
        first = space.point(cls.default_config)  # the model's defaults, as far as the space has them
        sampler_seed = spec.seed if spec.sampler_seed is None else spec.sampler_seed
        searcher = _tagged_search(space, spec.sampler, sampler_seed, f"{task.name}-{label}", study_dir,
                                  [first] if first else None)
        concurrency = spec.concurrency or max(1, _trial_slots(spec))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.trials,
                                        max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=tune.RunConfig(name=experiment, storage_path=storage_path, verbose=1 if spec.verbose else 0,
                                      callbacks=[progress], failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES)))
    t_fit = time.perf_counter()
    with _InterruptWatch() as interrupt:
        results = tuner.fit()
    t_fit = time.perf_counter() - t_fit
    progress.close()
    if interrupt.happened:  # Ray returns normally after Ctrl-C, with the unfinished trials marked stopped
        raise KeyboardInterrupt(f"{task.name} / {label} interrupted")
    trials = _trial_records(results, log, spec.seed)
    records.write_trials(study_dir, trials)
    done = [t for t in trials if t.status in ("completed", "pruned") and t.best_val_auc is not None]
    if not done:
        reasons = {t.error for t in trials if t.error}
        raise SearchFailed(f"{task.name} / {label}: every trial failed ({'; '.join(sorted(reasons))[:500]}); "
                           f"see {study_dir / records.TRIALS}")
    best = max(done, key=lambda t: t.best_val_auc)
    print(f"{task.name} / {label}: best val AUC {best.best_val_auc:.4f} ({len(done)} trials); "
          f"evaluating on test ({spec.repeats} seed(s))", file=sys.stderr)
    config = dict(best.config)
    if best.precision is not None and cls.has_precision():
        config["precision"] = best.precision  # the test evaluation computes as the search did
    final = _final_evaluation(spec, model, config, prep)
    return _record(spec, task, model, prepared, study_dir, trials, best, final, t_fit)


def _record(spec: RunSpec, task, model: str, prepared, study_dir: Path, trials, best, final: _Final,
            wall_s: float, recipe=None) -> records.SearchResult:
    """Write a finished study's test arrays and its result (the last file: a study with one is done)."""
    from benchmark.models import get_model_class

    atomic_savez(study_dir / "roc.npz", **final.roc)
    for name, arrays in final.artifacts.items():
        atomic_savez(study_dir / f"{name}.npz", **arrays)
    searched = recipe is None and get_model_class(model).fidelity is not None
    result = records.SearchResult(
        task=task.name, model=model, source=prepared.manifest["source"],
        data={k: prepared.manifest.get(k) for k in DATA_KEYS},
        sampler=spec.sampler if recipe is None else "none", scheduler=spec.scheduler if searched else "none",
        seed=spec.seed, trials={s: sum(t.status == s for t in trials) for s in records.STATUSES},
        best_trial=best.trial_id, best_config=best.config, val_auc=best.best_val_auc, test=final.test,
        n_parameters=final.n_parameters, search_wall_s=wall_s, trial_time_s=sum(t.wall_s or 0 for t in trials),
        epochs_trained=sum(t.epochs or 0 for t in trials),
        resources_per_trial={"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
        device=final.device, precision=final.precision, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        recipe=None if recipe is None else recipe.name, protocol=spec.protocol)
    records.write_result(study_dir, result)
    return result


class _Tagger:
    """The define-by-run search space: suggests a config, and writes Ray Tune's id of the trial being
    suggested on the Optuna trial (``records.TUNE_ID``), so the two stores join by id."""

    def __init__(self, space) -> None:
        self.space, self.current = space, None

    def __call__(self, ot_trial):
        ot_trial.set_user_attr(records.TUNE_ID, self.current)
        return self.space.suggest(ot_trial)


def _tagged_search(space, sampler: str, seed: int, study_name: str, study_dir: Path, points_to_evaluate=None):
    """Ray's OptunaSearch over the study directory's journal (:mod:`benchmark.studies`), tagging each
    Optuna trial with Tune's id; its checkpoints remember how far the journal went, and a restore cuts
    the journal back to that point before the study reads it."""
    from ray.tune.search.optuna import OptunaSearch

    from benchmark import studies

    class TaggedSearch(OptunaSearch):
        def __init__(self, tagger: _Tagger, journal: Path, **kwargs) -> None:
            super().__init__(space=tagger, **kwargs)
            self.tagger, self.journal, self.journal_size = tagger, journal, 0

        def suggest(self, trial_id: str):
            self.tagger.current = trial_id
            return super().suggest(trial_id)

        def save(self, checkpoint_path: str) -> None:
            self.journal_size = studies.size(self.journal)  # every operation so far is in the file
            super().save(checkpoint_path)

        def restore(self, checkpoint_path: str) -> None:
            super().restore(checkpoint_path)  # the study is unpickled, not read yet
            studies.rewind(self.journal, self.journal_size)

    return TaggedSearch(_Tagger(space), studies.path(study_dir), metric=METRIC, mode=MODE,
                        sampler=make_sampler(sampler, seed), study_name=study_name,
                        storage=studies.storage(study_dir), points_to_evaluate=points_to_evaluate)


def _trial(config: dict, *, model_name: str, prep: dict, seed: int) -> None:
    """One Tune trial: build the model from its config, train, report every epoch."""
    import ray
    from ray import tune

    from benchmark.models import create_model

    prepared = prepare(**prep)
    train, val = prepared.split(data.Split.TRAIN), prepared.split(data.Split.VAL)
    plan = DevicePlan.from_ray()
    node = ray.get_runtime_context().get_node_id()
    best, last_epoch, precision = -math.inf, 0, None

    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        nonlocal best, last_epoch
        best, last_epoch = max(best, float(metrics["val_auc"])), epoch
        tune.report({**metrics, "epoch": epoch, METRIC: best, "node_id": node, "precision": precision})

    try:
        model = create_model(model_name, prepared.task, config, seed=seed, plan=plan)
        precision = model.precision
        model.fit(train, val, report=report)
    except Exception as e:
        reason = _config_failure(e)
        if reason is None:
            raise  # Tune retries it: a lost node or actor looks the same from here
        # the same config would fail the same way again: one last result says so, and the trial ends
        tune.report({METRIC: math.nan, "failed": reason, "epoch": last_epoch, "node_id": node})


def _config_failure(e: BaseException) -> str | None:
    """One line if ``e`` is a failure of the configuration itself (diverged loss, out of memory, a config
    the model refuses), which a retry would only repeat; None for anything else."""
    text = str(e).lower()
    out_of_memory = isinstance(e, MemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))
    if isinstance(e, (DivergedError, ConfigError)) or out_of_memory:
        return one_line(e, typed=True, last_line=True)
    return None


@dataclasses.dataclass(frozen=True)
class _Final:
    """The test evaluation of the best config, as it comes back from its Ray task."""

    test: records.TestMetrics
    roc: dict            # y, score, aux of the first seed
    artifacts: dict      # the model's artifact_names -> arrays
    n_parameters: int
    device: str
    precision: str
    curve: tuple = ()    # the first seed's training curve (records.Epoch), when asked for


def _final_evaluation(spec: RunSpec, model: str, config: Mapping, prep: dict, curve: bool = False) -> _Final:
    """One Ray task per seed, each with a trial's resources, so the seeds retrain side by side where
    there is room (each seed's result does not depend on what runs beside it). With more seeds than
    trial slots on CPU, the slots' CPUs are shared among all seeds when each still gets a trial's
    threads (three seeds on two cores: all three at once, no core idle while the last one trains)."""
    import ray

    seeds = [spec.seed + i for i in range(spec.repeats)]
    task_fn = ray.remote(num_cpus=_seed_cpus(spec), num_gpus=spec.gpus_per_trial)(_evaluate_on_test)
    done = ray.get([task_fn.remote(model, dict(config), prep, seed, seed == seeds[0], curve) for seed in seeds])
    runs = tuple(run for run, _ in done)
    return _Final(test=records.TestMetrics(runs), **done[0][1])


def _seed_cpus(spec: RunSpec) -> float:
    """The CPUs of one seed's retraining task (see :func:`_final_evaluation`)."""
    slots = _trial_slots(spec)
    if spec.gpus_per_trial > 0 or not 0 < slots < spec.repeats:
        return spec.cpus_per_trial
    shared = spec.cpus_per_trial * slots / spec.repeats
    same_threads = max(1, int(shared)) == max(1, int(spec.cpus_per_trial))  # as DevicePlan.from_ray counts
    return shared if same_threads else spec.cpus_per_trial


def _evaluate_on_test(model_name: str, config: dict, prep: dict, seed: int, first: bool,
                      curve: bool = False) -> tuple[records.TestRun, dict]:
    """Retrain ``config`` with ``seed`` on train (val for early stopping) and score the test split once;
    for the ``first`` seed also the arrays the board draws (ROC, the model's artifacts) and, with
    ``curve``, its training curve."""
    from benchmark import metrics
    from benchmark.models import create_model

    prepared = prepare(**prep)
    train, val, test = (prepared.split(s) for s in data.Split)
    plan = DevicePlan.from_ray()
    t0 = last = time.perf_counter()
    model = create_model(model_name, prepared.task, config, seed=seed, plan=plan)
    epochs: list[records.Epoch] = []

    def report(epoch: int, m: Mapping[str, float]) -> None:
        nonlocal last
        now = time.perf_counter()
        epochs.append(records.Epoch(epoch, float(m["val_auc"]), wall_s=now - last, reported_at=time.time(),
                                    metrics={k: float(v) for k, v in m.items() if k != "val_auc"}))
        last = now

    model.fit(train, val, report=report)
    threshold = metrics.threshold_at_best_accuracy(np.asarray(val.y), model.score(val))
    scores = model.score(test)
    m = metrics.evaluate(np.asarray(test.y), scores, seed=seed, threshold=threshold)
    run = records.TestRun(seed=seed, train_s=time.perf_counter() - t0, **m, **model.training_summary(),
                          **model.test_metrics(test))
    extras = {}
    if first:
        extras = dict(roc={"y": np.asarray(test.y), "score": scores.astype(np.float32), "aux": np.asarray(test.aux)},
                      artifacts=model.artifacts(test), n_parameters=model.n_parameters(), precision=model.precision,
                      device=plan.kind, curve=tuple(epochs) if curve else ())
    return run, extras


def _trial_records(results, log: records.TrialLog, seed: int) -> list[records.TrialRecord]:
    curves, retries, pruned = log.read()
    trials = []
    for r in results:
        m = r.metrics or {}
        trial_id = m.get("trial_id") or Path(r.path).name
        curve = curves.get(trial_id, ())
        failed = r.error is not None or "failed" in m
        status = "failed" if failed else ("pruned" if trial_id in pruned else "completed")
        trials.append(records.TrialRecord(
            trial_id=trial_id, status=status, config=r.config, seed=seed,
            best_val_auc=None if failed else m.get(METRIC), epochs=len(curve) or m.get("training_iteration"),
            wall_s=m.get("time_total_s"), node_id=m.get("node_id"), hostname=m.get("hostname"),
            retries=retries.get(trial_id, 0), precision=m.get("precision"),
            error=one_line(r.error, typed=True, last_line=True) if r.error else m.get("failed"), curve=curve))
    return sorted(trials, key=lambda t: t.trial_id)


class _InterruptWatch:
    """Tells whether Ctrl-C stopped ``tuner.fit()``. Tune's SIGINT handler ends the run gracefully and,
    on the first Ctrl-C only, puts back the handler that was installed before ``fit``: we install a
    sentinel there (which behaves like Python's default) and look for it afterwards."""

    def __enter__(self):
        self.happened = False
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._sentinel)
        return self

    @staticmethod
    def _sentinel(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.active:
            self.happened = signal.getsignal(signal.SIGINT) is self._sentinel
            signal.signal(signal.SIGINT, self.previous)
        return False


class _PruneTracker:
    """ASHA for models with a fidelity (FIFO otherwise) that logs the trials it stops early."""

    @staticmethod
    def make(log: records.TrialLog, spec: RunSpec, has_fidelity: bool):
        base, kwargs = scheduler_class(spec.scheduler, has_fidelity=has_fidelity, max_t=spec.max_epochs)
        pruned: set[str] = log.read()[2]  # a resume: the trials stopped before

        class Tracker(base):
            def on_trial_result(self, tune_controller, trial, result):
                decision = super().on_trial_result(tune_controller, trial, result)
                if decision == "STOP" and result.get("epoch", 0) < spec.max_epochs:
                    pruned.add(trial.trial_id)
                    log.pruned(trial.trial_id, result.get("epoch", 0))  # survives a kill of the driver
                return decision

            def pruned_ids(self) -> set[str]:
                return set(pruned)

        return Tracker(**kwargs)


class _Progress:
    """A live status line instead of Ray's tables: trials done / total, running, pruned, failed, best, ETA;
    and every reported epoch into the search's trial log."""

    def __new__(cls, label: str, total: int, scheduler, log: records.TrialLog, curve_keys: tuple[str, ...]):
        from ray.tune import Callback

        class Progress(Callback):
            def __init__(self):
                self.t0, self.last_print, self.tty = time.time(), 0.0, sys.stderr.isatty()
                self.done: set[str] = set()  # Ray calls on_trial_complete before it sets the status
                self.failed: set[str] = set()

            def _show(self, trials, force=False):
                now = time.time()
                if not force and not self.tty and now - self.last_print < 15:
                    return
                self.last_print = now
                failed_ids = self.failed | {t.trial_id for t in trials if t.status == "ERROR"}
                done = len((self.done | {t.trial_id for t in trials if t.status == "TERMINATED"}) - failed_ids)
                failed = len(failed_ids)
                running = sum(t.status == "RUNNING" and t.trial_id not in self.done | self.failed for t in trials)
                pruned = len(scheduler.pruned_ids())
                best = max((t.last_result[METRIC] for t in trials
                            if math.isfinite((t.last_result or {}).get(METRIC, math.nan))), default=None)
                elapsed = now - self.t0
                finished = done + failed
                eta = elapsed / finished * (total - finished) if finished else float("nan")
                line = (f"{label}: {finished}/{total} trials | running {running} | pruned {pruned} | failed {failed} "
                        f"| best val AUC {'-' if best is None else f'{best:.4f}'} | {_hms(elapsed)} elapsed, ETA {_hms(eta)}")
                print(("\r" + line.ljust(120)) if self.tty else line, end="" if self.tty else "\n",
                      file=sys.stderr, flush=True)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if "failed" in result:  # the trial's config failed (see _trial): no epoch to record
                    self.failed.add(trial.trial_id)
                    return
                log.step(trial.trial_id, records.Epoch(
                    epoch=int(result["epoch"]), val_auc=float(result["val_auc"]), wall_s=result.get("time_this_iter_s"),
                    reported_at=time.time(),  # the driver's clock: `bench perf` times trials by it
                    node_id=result.get("node_id"), metrics={k: result[k] for k in curve_keys if k in result}))
                self._show(trials)

            def on_trial_complete(self, iteration, trials, trial, **info):
                self.done.add(trial.trial_id)
                self._show(trials, force=True)

            def on_trial_error(self, iteration, trials, trial, **info):
                self.failed.add(trial.trial_id)
                print(f"\n{label}: trial {trial.trial_id} failed ({_last_error(trial)})", file=sys.stderr)
                self._show(trials, force=True)

            def on_trial_recover(self, iteration, trials, trial, **info):  # Tune retries it from the start
                log.retry(trial.trial_id)
                print(f"\n{label}: trial {trial.trial_id} failed ({_last_error(trial)}); retrying it from the start "
                      f"({trial.num_failures}/{TRIAL_RETRIES})", file=sys.stderr, flush=True)

            def close(self):
                if self.tty:
                    print(file=sys.stderr)

        return Progress()


def _last_error(trial) -> str:
    """The trial's latest exception as one line (Tune's own traceback is printed only with --verbose)."""
    try:
        error = trial.get_pickled_error() or trial.get_error()  # Tune's record of its own trial
        return one_line(error, typed=True, last_line=True) if error else "see trials.json"
    except Exception:  # best effort, for the message only
        return "see trials.json"


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _trial_slots(spec: RunSpec) -> int:
    """How many trials fit at once: per alive node, its CPUs over --cpus-per-trial, capped by its GPUs
    over --gpus-per-trial (a trial cannot span nodes)."""
    import ray

    slots = 0
    for node in ray.nodes():
        if node.get("Alive"):
            res = node.get("Resources", {})
            fit = math.floor(res.get("CPU", 0) / spec.cpus_per_trial + 1e-9)
            if spec.gpus_per_trial > 0:
                fit = min(fit, math.floor(res.get("GPU", 0) / spec.gpus_per_trial + 1e-9))
            slots += fit
    return slots


def _check_resources(spec: RunSpec) -> None:
    """Refuse a trial no node can host, instead of Tune waiting for it forever."""
    import ray

    if _trial_slots(spec) > 0:
        return
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = ", ".join(f"{r.get('CPU', 0):g} CPUs / {r.get('GPU', 0):g} GPUs" for r in nodes) or "none alive"
    raise BenchError(f"no node can run a trial with --cpus-per-trial {spec.cpus_per_trial:g} and --gpus-per-trial "
                     f"{spec.gpus_per_trial:g} (nodes: {largest}); ask for less, or add a node that has it")


def _init_ray(spec: RunSpec) -> None:
    import logging

    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our own records replace Ray's loggers
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "1" if spec.verbose else "0")  # _Progress prints one line
    if not ray.is_initialized():
        quiet = logging.INFO if spec.verbose else logging.ERROR
        if spec.address or os.environ.get("RAY_ADDRESS"):  # `ray job submit` sets RAY_ADDRESS for its driver
            _connect(spec.address or os.environ["RAY_ADDRESS"], "--address" if spec.address else "RAY_ADDRESS",
                     logging_level=quiet, log_to_driver=spec.verbose)
        else:  # "local": a new instance, even when a cluster started by `ray start` runs on this machine
            ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=len(environment.gpu_names()), include_dashboard=False,
                     logging_level=quiet, log_to_driver=spec.verbose, configure_logging=True)
    _check_resources(spec)


def _connect(address: str, label: str, **init_kwargs) -> None:
    """``ray.init(address=...)``, failing in seconds with one line (Ray retries an unreachable head for
    minutes, then raises a multi-line error)."""
    import ray

    how = "start one with `ray start --head` and pass the address it prints, or check host, port and firewall"
    if address != "auto":
        host, port = parse_address(address, label)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise BenchError(f"{label} {address}: no Ray cluster reachable at {host}:{port} "
                             f"({e.strerror or type(e).__name__}); {how}") from None
        except UnicodeError as e:  # a host name IDNA cannot encode
            raise BenchError(f"{label} {address}: not a host name ({e}); {how}") from None
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:  # e.g. `auto` finds no cluster on this machine
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"{label} {address}: cannot connect ({message}); {how}") from None
