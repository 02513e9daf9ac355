"""Every check of a :class:`~benchmark.search.spec.RunSpec` that needs no Ray: names, numbers, models and
their search spaces, recipes, resources, storage, data and directories. Bad input fails here, in a second,
with a one-line :class:`BenchError`, before Ray starts; nothing is written but the directories the spec names.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark import data, environment, records
from benchmark.errors import BenchError, ConfigError, DataError
from benchmark.files import make_dir
from benchmark.search.spec import MAX_SEED, RunSpec, experiment_name, parse_address, run_name_problem, storage_problem

MAX_REPEATS = 1000
FINEST = 1e-4  # Ray's resource granularity


@dataclasses.dataclass(frozen=True)
class Checked:
    """A spec checked against the registries, its search spaces loaded: what ``run`` starts Ray with."""

    spec: RunSpec
    run_dir: Path
    tasks: tuple  # TaskSpec
    spaces: Mapping[str, Any]  # model -> SearchSpace
    sources: Mapping[str, data.Source]  # task -> the data it runs on


def check(spec: RunSpec) -> Checked:
    """Every check that needs no Ray (see the module's text)."""
    from benchmark.tasks import get_task

    run_dir = _run_dir(spec)
    _numbers(spec)
    tasks = tuple(get_task(t) for t in dict.fromkeys(spec.tasks))
    spaces = _models(spec, tasks)
    _recipes(spec, tasks)
    _resources(spec)
    _storage(spec, tasks)
    sources = _data(spec, tasks)
    make_dir(spec.data_root / "prepared")  # unwritable directories fail here, before Ray starts
    make_dir(spec.runs_dir, fix="pass a writable --runs-dir")
    if spec.storage is not None and "://" not in spec.storage:
        make_dir(Path(spec.storage), fix="pass a writable --storage")
    return Checked(spec, run_dir, tasks, spaces, sources)


def _run_dir(spec: RunSpec) -> Path:
    """The run directory: one name inside --runs-dir, new unless resumed."""
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
    return run_dir


def _numbers(spec: RunSpec) -> None:
    """What numpy, Optuna, scikit-learn and Ray take."""
    for option, value in (("--trials", spec.trials), ("--max-epochs", spec.max_epochs), ("--repeats", spec.repeats),
                          ("--concurrency", 1 if spec.concurrency is None else spec.concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BenchError(f"{option} {value!r}: must be a positive integer")
        if value > sys.maxsize:  # Tune's own "unlimited"; beyond it int64 counters overflow
            raise BenchError(f"{option} {value}: at most 2**63 - 1 = {sys.maxsize}")
    if spec.repeats > MAX_REPEATS:
        raise BenchError(f"--repeats {spec.repeats}: at most {MAX_REPEATS} (each one retrains the best config)")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or not 0 <= spec.seed <= MAX_SEED - (spec.repeats - 1):
        raise BenchError(f"--seed {spec.seed!r}: must be an integer from 0 to 2**32 - 1 = {MAX_SEED}"
                         + (f" less --repeats - 1 (the repeats use seeds SEED..SEED+{spec.repeats - 1})"
                            if spec.repeats > 1 else ""))
    if spec.train_seed is not None and (isinstance(spec.train_seed, bool) or not isinstance(spec.train_seed, int)
                                        or not 0 <= spec.train_seed <= MAX_SEED - (spec.repeats - 1)):
        raise BenchError(f"--train-seed {spec.train_seed!r}: must be an integer from 0 to 2**32 - 1 = {MAX_SEED}"
                         + (" less --repeats - 1 (the test retrains with seeds TRAIN_SEED..)" if spec.repeats > 1 else ""))


def _models(spec: RunSpec, tasks) -> dict[str, Any]:
    """The models and their search spaces, each model built once per task with its defaults and with the
    space's fixed values (a timm member that timm does not know, or a fixed value the model refuses,
    would fail every trial)."""
    from benchmark.models import create_model, get_model_class
    from benchmark.search_space import load_space

    if not spec.models:
        raise BenchError("no model to run: pass --model NAME ...")
    twice = [m for m in dict.fromkeys(spec.models) if spec.models.count(m) > 1]
    if twice:
        raise BenchError(f"--model {twice[0]} is given twice: name each model once")
    extra = [m for m in spec.spaces if m not in spec.models]
    if extra:
        raise BenchError(f"--space {extra[0]}={spec.spaces[extra[0]]}: {extra[0]!r} is not a model of this run "
                         f"({' '.join(spec.models)}); write MODEL as it is given to --model")

    spaces = {}
    for m in spec.models:
        cls = get_model_class(m)
        try:
            spaces[m] = load_space(m, spec.spaces.get(m), known_keys=cls.default_config)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{spec.spaces.get(m)}: unreadable search-space file "
                              f"({getattr(e, 'strerror', None) or e})") from None
        fixed = {p.name: p.value for p in spaces[m].params if p.type == "fixed" and not p.when}
        fixed.update(fixed_by_spec(spec, cls, spaces[m]))
        for task in tasks:
            for config, where in (({}, ""), (fixed, f" with the fixed values of {spaces[m].path}")):
                try:
                    create_model(m, task, config)
                except (BenchError, TypeError, ValueError) as e:
                    raise ConfigError(f"--model {m} on {task.name}{where}: {e}") from None
    for key in spec.fixed:
        if not any(key in get_model_class(m).default_config for m in spec.models):
            raise BenchError(f"--fix {key}=...: no model of this run has a config key {key!r} "
                             f"({' '.join(spec.models)})")
    _points(spec, spaces)
    return spaces


def _points(spec: RunSpec, spaces: dict[str, Any]) -> None:
    """``--points``: for one model, at most ``--trials`` configs, each a value for every searched parameter
    of its space, inside it."""
    if not spec.points:
        return
    if len(spec.models) != 1:
        raise BenchError(f"--points: configs of one model, but this run has {len(spec.models)} "
                         f"({' '.join(spec.models)}); pass one --model")
    if len(spec.points) > spec.trials:
        raise BenchError(f"--points: {len(spec.points)} configs but --trials {spec.trials}; pass --trials "
                         f"{len(spec.points)} or more")
    space = spaces[spec.models[0]]
    searched = [p.name for p in space.params if p.type != "fixed" and not p.when]
    for i, point in enumerate(spec.points, 1):
        if not isinstance(point, dict):
            raise BenchError(f"--points: config {i} is {type(point).__name__}, not a mapping of parameter to value")
        if unknown := sorted(set(point) - {p.name for p in space.params if p.type != "fixed"}):
            raise BenchError(f"--points: config {i} sets {unknown[0]!r}, not a searched parameter of {space.path} "
                             f"({', '.join(searched)})")
        taken = space.point(point)
        if bad := next((k for k in searched if k not in taken), None):
            where = f"{bad}={point[bad]!r} is outside the space" if bad in point else f"it has no {bad}"
            raise BenchError(f"--points: config {i}: {where} ({space.path}: {space.declared()[bad]})")


def _recipes(spec: RunSpec, tasks) -> None:
    """Each reference recipe built on each task it applies to."""
    from benchmark.models import create_model
    from benchmark.recipes import get_recipe

    for name in spec.recipes:
        recipe = get_recipe(name)
        for task in tasks:
            if recipe.applies_to(task.name):
                try:
                    create_model(recipe.model, task, recipe.config_for(task.name))
                except (BenchError, TypeError, ValueError) as e:
                    raise ConfigError(f"--recipe {name} on {task.name}: {e}") from None


def _resources(spec: RunSpec) -> None:
    """Resources Ray can schedule, and that a local Ray has; an address ``connect`` can read."""
    for option, value in (("--cpus-per-trial", spec.cpus_per_trial), ("--gpus-per-trial", spec.gpus_per_trial)):
        if not math.isfinite(value) or value < 0 or 0 < value < FINEST:
            raise BenchError(f"{option} {value:g}: Ray schedules resources in steps of {FINEST:g}: pass 0 "
                             f"(GPUs only) or a finite number of at least {FINEST:g}")
    if spec.cpus_per_trial == 0:
        raise BenchError("--cpus-per-trial 0: every trial needs a share of a CPU (at least 0.0001)")
    if spec.address is not None and not spec.address.strip():
        raise BenchError(f"--address {spec.address!r}: pass auto or HOST:PORT, or leave --address out for a local Ray")
    address, label = (spec.address, "--address") if spec.address else (os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS")
    if not address:  # a local Ray, with this machine's CPUs and GPUs (see session.init_ray)
        cpus = os.cpu_count() or 1
        if spec.cpus_per_trial > cpus:
            raise BenchError(f"--cpus-per-trial {spec.cpus_per_trial:g}: this machine has {cpus} CPUs (a local "
                             f"Ray): ask for at most {cpus}, or pass the --address of a cluster that has more")
        if spec.gpus_per_trial > 0 and spec.gpus_per_trial > (gpus := len(environment.gpu_names())):
            raise BenchError(f"--gpus-per-trial {spec.gpus_per_trial:g}: this machine has {gpus} GPUs (a local "
                             f"Ray): ask for at most {gpus}, or pass the --address of a cluster that has them")
    elif address != "auto":
        parse_address(address, label)  # as session.connect reads it, which would fail later, after Ray's start-up


def _storage(spec: RunSpec, tasks) -> None:
    """Where Tune keeps its state: a location pyarrow knows, experiment names it can hold."""
    if spec.storage is None:
        return
    problem = storage_problem(spec.storage)
    if problem:
        raise BenchError(f"--storage {spec.storage!r}: {problem}")
    for task in tasks:
        for m in spec.models:
            experiment = experiment_name(spec, task.name, m)
            if len(experiment.encode("utf-8", "surrogateescape")) > 255:
                raise BenchError(f"--storage: the experiment name {experiment[:40]}... is longer than 255 bytes: "
                                 "pass a shorter --name")


def _data(spec: RunSpec, tasks) -> dict[str, data.Source]:
    """Each task's source: real files where --source asks for them (and where auto finds them), room for
    the synthetic splits."""
    root = Path(spec.data_root)
    sources = {}
    for t in tasks:
        real = spec.source != "synthetic" and data.locate_real(t, root) is not None
        if spec.source == "real" and not real:
            raise DataError(data.missing_real_message(t, root))
        sources[t.name] = data.Source.REAL if real else data.Source.SYNTHETIC
    synthetic = [t for t in tasks if sources[t.name] is data.Source.SYNTHETIC]
    data.check_room(synthetic, root, seed=spec.seed, sizes=spec.sizes)
    return sources


def fixed_by_spec(spec: RunSpec, cls, space) -> dict[str, Any]:
    """The values ``bench run``'s options fix in a model's space: ``--fix KEY=VALUE`` for the models whose
    config has KEY, its fidelity at ``--max-epochs``, and ``precision`` when ``--precision`` names one (a
    space may then not tune it)."""
    fixed: dict[str, Any] = {k: v for k, v in spec.fixed.items() if k in cls.default_config}
    if cls.fidelity is not None and cls.fidelity in space.names():
        fixed[cls.fidelity] = spec.max_epochs
    if spec.precision != "auto" and cls.has_precision():
        fixed["precision"] = spec.precision
    return fixed
