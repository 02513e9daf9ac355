"""The ``bench`` command line, built from command objects (one class per sub-command).

Each command declares its arguments and turns the argparse namespace into typed values before calling
into the library; errors meant for the user (:class:`BenchError`) become one line on stderr and exit
code 2, with the traceback only under ``--debug``.
"""
from __future__ import annotations

import abc
import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmark import strategies
from benchmark.devices import PRECISIONS
from benchmark.errors import BenchError
from benchmark.text import aligned


class Command(abc.ABC):
    name: str
    help: str

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abc.abstractmethod
    def run(self, args: argparse.Namespace) -> int: ...


NAME_MAX, PATH_MAX = 255, 4096  # bytes in one path component, and in a whole path (Linux)


def _shown(text: str, limit: int = 60) -> str:
    """``text`` as it goes into a one-line message: repr'd (NUL, newlines visible), cut to ``limit``."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {_shown(text)}")
    return value


def positive_float(text: str) -> float:
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {value}")
    return value


def seed(text: str) -> int:
    """A seed numpy, Optuna's samplers and scikit-learn all take: an integer in [0, 2**32 - 1]."""
    from benchmark.search.spec import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**32 - 1 = {MAX_SEED}, got {_shown(text)}")
    return value


def _path_problem(text: str) -> str | None:
    """Why ``text`` cannot be a path on this system (None if it can)."""
    if not text:
        return "an empty path"
    if "\0" in text:
        return f"{_shown(text)} contains a NUL character"
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:
        return f"{_shown(text)} is not encodable as a file name"
    if len(raw) >= PATH_MAX:
        return f"a path of {len(raw)} bytes (at most {PATH_MAX - 1})"
    if any(len(part) > NAME_MAX for part in raw.split(b"/")):
        return f"{_shown(text)} has a name longer than {NAME_MAX} bytes"
    return None


def _expanded(text: str) -> str:
    """``text`` checked to be a path, ``~`` / ``~user`` expanded."""
    problem = _path_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    expanded = os.path.expanduser(text)
    if expanded.startswith("~"):
        raise argparse.ArgumentTypeError(f"{_shown(text)}: no such user's home directory")
    problem = _path_problem(expanded)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return expanded


def path_arg(text: str) -> str:
    """A path to read (a run directory, the runs directory of the board): checked, ``~`` expanded."""
    return _expanded(text)


def _uncreatable(path: Path) -> str | None:
    """Why the directory ``path`` cannot be made (or written in): None if it can. Writes nothing."""
    path = Path(os.path.abspath(path))
    for p in (path, *path.parents):
        try:
            if not os.path.lexists(p):
                continue
            if os.path.isdir(p):
                return None if os.access(p, os.W_OK | os.X_OK) else f"{p} is not writable"
        except (OSError, ValueError) as e:
            return str(getattr(e, "strerror", None) or e)
        kind = "a broken symbolic link" if os.path.islink(p) else "a file, not a directory"
        return f"{p} is {kind}"
    return None


def output_dir(text: str) -> str:
    """A directory that a command writes in (made when missing): ``cannot create`` when it cannot be."""
    path = _expanded(text)
    problem = _uncreatable(Path(path))
    if problem:
        raise argparse.ArgumentTypeError(f"cannot create the directory {path}: {problem}")
    return path


def run_name(text: str) -> str:
    """One directory name inside ``--runs-dir`` (``benchmark.search.spec.run_name_problem``)."""
    from benchmark.search.spec import run_name_problem

    problem = run_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"run name {problem}")
    return text


def space_arg(text: str) -> tuple[str, str]:
    """``[MODEL=]FILE`` as (MODEL or "", FILE), the file name checked and ``~`` expanded."""
    model, _, path = text.rpartition("=")
    if not path:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: no file after '=' (as MODEL=FILE)")
    return model, _expanded(path)


def fixed_arg(text: str) -> tuple[str, object]:
    """``KEY=VALUE``, the value read as YAML (``10`` an int, ``1e-3`` a float, ``true`` a bool)."""
    import yaml

    key, eq, value = text.partition("=")
    if not eq or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{_shown(text)}: write KEY=VALUE, e.g. patience=10")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as text
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip(), parsed


def points_file(text: str) -> tuple[dict, ...]:
    """``--points FILE``: a JSON list of configs, read here (their values are checked against the space
    with the rest of the run)."""
    import json

    path = Path(_expanded(text))
    try:
        points = json.loads(path.read_text())
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: not JSON ({e})") from None
    if not isinstance(points, list) or not points:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: must hold a non-empty JSON list of configs")
    return tuple(points)


def storage_location(text: str) -> str:
    """A URI (``scheme://...``) of a file system Ray Tune (pyarrow) knows, as given; a local path made
    absolute, as Ray Tune needs it, and checked to be a directory that can be made."""
    from benchmark.search.spec import storage_problem

    if "://" in text:
        problem = storage_problem(text)
        if problem:
            raise argparse.ArgumentTypeError(f"{_shown(text)}: {problem}")
        if text.split("://", 1)[0] in ("file", "local"):
            output_dir(text.split("://", 1)[1])
        return text
    return str(Path(output_dir(text)).resolve())


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """``--n-train`` (the training-size fidelity) and the synthetic evaluation sizes ``--n-val`` / ``--n-test``."""
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="training rows (synthetic: generated; real: a nested subset of the training split; "
                             "default: the task's synthetic size, or the whole real training split)")
    parser.add_argument("--n-val", type=positive_int, default=None,
                        help="synthetic validation rows (default: the task's fixed size)")
    parser.add_argument("--n-test", type=positive_int, default=None,
                        help="synthetic test rows (default: the task's fixed size, so a test AUC's 95 %% interval is "
                             "at most +/- 0.01)")


def sizes_of(args: argparse.Namespace):
    from benchmark.data import Sizes

    return Sizes(args.n_train, args.n_val, args.n_test)


def _task_names(args_task: str) -> list[str]:
    from benchmark.tasks import get_task, list_tasks

    return [t.name for t in list_tasks()] if args_task == "all" else [get_task(args_task).name]


class TasksCommand(Command):
    name, help = "tasks", "list the benchmark tasks"

    def add_arguments(self, parser):
        pass

    def run(self, args):
        from benchmark.tasks import list_tasks

        rows = [("task", "image (C,H,W)", "label 0 / label 1", "reference")]
        for t in list_tasks():
            ref = ", ".join(f"{r.model} {r.metric} {r.value:g}" for r in t.references) or "-"
            rows.append((t.name, "x".join(map(str, t.image_shape)), " / ".join(t.class_names), ref))
        print(aligned(rows))
        print("\nEvery task is tuned on the validation ROC AUC (maximised) and reported with the test AUC.")
        return 0


class ModelsCommand(Command):
    name, help = "models", "list the models, their kind and config keys, and the model families"

    def add_arguments(self, parser):
        pass

    def run(self, args):
        from benchmark.models import list_families, list_models

        rows = [("model", "kind", "fidelity", "config keys")]
        rows += [(m.name, m.kind, m.fidelity or "-", ", ".join(m.default_config)) for m in list_models()]
        print(aligned(rows))
        print("\nEvery model runs on every task.")
        if extra := [m.name for m in list_models() if not m.on_board]:
            print(f"Searched only when named with --model (not on the board): {', '.join(extra)}")
        for family in list_families():
            print(f"Family: {family.name}:<name> builds that member of the {family.name} family, from scratch at the "
                  f"task's resolution (its name goes to the config key {family.family_key!r})")
        return 0


class DataInfoCommand(Command):
    name, help = "info", "statistics of a task's data beside the reference numbers (docs/datasets.md)"

    def add_arguments(self, parser):
        parser.add_argument("task")
        parser.add_argument("--source", choices=["synthetic", "real"], default="synthetic")
        parser.add_argument("--n", type=positive_int, default=5000, help="samples to describe (default 5000)")
        parser.add_argument("--seed", type=seed, default=0)

    def run(self, args):
        from benchmark import data, environment
        from benchmark.stats import describe, format_stats
        from benchmark.tasks import RawBatch, get_task

        task = get_task(args.task)
        root = data.data_dir(args.data_dir)
        need, have = 2 * args.n * data.sample_bytes(task), environment.total_memory()
        if have is not None and need > have:  # the samples are held in memory (and concatenated once)
            raise BenchError(f"--n {args.n}: describing {task.name} needs about {need / 1e9:.3g} GB of memory, this "
                             f"machine has {have / 1e9:.3g} GB: pass a smaller --n")
        t0 = time.perf_counter()
        if args.source == "synthetic":
            y, batches = data.synthetic_split(task, data.Split.TRAIN, args.n, args.seed)
            batch = _concat(list(batches))
            origin = f"synthetic (generator {task.generator_version}, seed {args.seed})"
        else:
            located = data.locate_real(task, root)
            if located is None:
                raise BenchError(data.missing_real_message(task, root))
            reader = task.open_real(*located)
            keep = np.sort(np.random.default_rng(args.seed).permutation(len(reader.y))[:args.n])
            parts, start = [], 0
            for b in reader.batches(data.CHUNK):  # stream the whole file, keep a random subset
                sel = keep[(keep >= start) & (keep < start + len(b.X))] - start
                parts.append(RawBatch(b.X[sel], b.aux[sel]))
                start += len(b.X)
            batch, y = _concat(parts), reader.y[keep]
            origin = "real: " + ", ".join(str(p) for p in reader.files)
        stats = describe(task, batch, y)
        print(f"{task.name}: {task.description}")
        print(f"source: {origin}; {len(y)} samples of {task.image_shape} in {time.perf_counter() - t0:.1f} s")
        print(f"labels: 0 = {task.class_names[0]}, 1 = {task.class_names[1]} ({task.label_note})\n")
        print(format_stats(stats, task.reference_stats))
        return 0


class DataCompareCommand(Command):
    name, help = "compare", "how far the synthetic data is from real files: shape statistics and a two-sample test"

    def add_arguments(self, parser):
        parser.add_argument("task")
        parser.add_argument("--real", type=path_arg, required=True, metavar="PATH",
                            help="a folder with the task's real files (or for ee_gamma an .npz of the ML4SCI "
                                 "200-crop layout)")
        parser.add_argument("--n-synthetic", type=positive_int, default=2000,
                            help="synthetic samples to compare, half of each class (default 2000)")
        parser.add_argument("--max-real", type=positive_int, default=5000,
                            help="real samples read per class at most (default 5000)")
        parser.add_argument("--seed", type=seed, default=0)
        parser.add_argument("--out", type=path_arg, default=None, metavar="FILE",
                            help="also write the tables as Markdown to FILE")

    def run(self, args):
        from benchmark import realism
        from benchmark.files import atomic_write_text
        from benchmark.tasks import get_task

        task = get_task(args.task)
        t0 = time.perf_counter()
        result = realism.compare(task, Path(args.real), n_synthetic=args.n_synthetic, seed=args.seed,
                                 limit=args.max_real)
        page = realism.markdown(result)
        print(page)
        print(f"({time.perf_counter() - t0:.1f} s)")
        if args.out:
            atomic_write_text(Path(args.out), page + "\n")
            print(f"written: {args.out}")
        return 0


class DataFetchCommand(Command):
    name, help = "fetch", "download a task's public files (verified by SHA-256)"

    def add_arguments(self, parser):
        parser.add_argument("task")
        parser.add_argument("--mirror", help="base URL to download from instead of the origin")

    def run(self, args):
        from benchmark import data
        from benchmark.fetch import fetch
        from benchmark.tasks import get_task

        for path in fetch(get_task(args.task), data.data_dir(args.data_dir), mirror=args.mirror):
            print(f"ok  {path}")
        return 0


class DataPrepareCommand(Command):
    name, help = "prepare", "prepare a task's splits (synthetic, or the real files) into the data directory"
    sources = ("synthetic", "real")

    def add_arguments(self, parser):
        parser.add_argument("task")
        if len(self.sources) > 1:
            parser.add_argument("--source", choices=self.sources, default=self.sources[0])
        add_size_arguments(parser)
        parser.add_argument("--seed", type=seed, default=0)

    def run(self, args):
        from benchmark import data
        from benchmark.tasks import get_task

        source = data.Source(getattr(args, "source", self.sources[0]))
        root = data.data_dir(args.data_dir)
        if source is data.Source.SYNTHETIC:
            data.check_room([get_task(t) for t in _task_names(args.task)], root, seed=args.seed, sizes=sizes_of(args))
        for name in _task_names(args.task):
            t0 = time.perf_counter()
            prepared = data.prepare(get_task(name), source=source, root=root,
                                    seed=args.seed, sizes=sizes_of(args), progress=True)
            sizes = prepared.manifest["split_sizes"]
            print(f"{name}: {sizes} in {time.perf_counter() - t0:.1f} s -> {prepared.path}")
        return 0


class DataGenerateCommand(DataPrepareCommand):
    name, help, sources = "generate", "prepare synthetic splits of a task into the data directory", ("synthetic",)


class RunCommand(Command):
    name, help = "run", "Optuna searches under Ray Tune for every model on a task, then one test evaluation"

    def add_arguments(self, parser):
        from benchmark.protocol import PROTOCOLS
        from benchmark.recipes import RECIPES

        parser.add_argument("--task", required=True, help="a task name or 'all'")
        parser.add_argument("--model", nargs="+", action="extend", default=None,
                            help="model names (default: all eight; repeatable)")
        parser.add_argument("--trials", type=positive_int, default=20, help="trials per model (default 20)")
        parser.add_argument("--sampler", choices=strategies.SAMPLERS, default="tpe")
        parser.add_argument("--scheduler", choices=strategies.SCHEDULERS, default="asha",
                            help="early stopping over the fidelity (epochs) of the models that have one (default asha)")
        parser.add_argument("--max-epochs", type=positive_int, default=10)
        parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                            help="neural models' arithmetic: auto (bf16 where the hardware has it natively: CUDA, "
                                 "CPUs with AMX or AVX512-BF16; fp32 elsewhere), fp32 or bf16 (default auto)")
        parser.add_argument("--cpus-per-trial", type=positive_float, default=1.0)
        parser.add_argument("--gpus-per-trial", type=non_negative_float, default=0.0)
        parser.add_argument("--concurrency", type=positive_int, default=None,
                            help="trials at once (default: as many as the CPUs allow)")
        parser.add_argument("--source", choices=["auto", "synthetic", "real"], default="auto")
        add_size_arguments(parser)
        parser.add_argument("--seed", type=seed, default=0)
        parser.add_argument("--sampler-seed", type=seed, default=None,
                            help="the sampler's seed alone (default: --seed, which also seeds the synthetic data and "
                                 "the training): several searches of the same data and training")
        parser.add_argument("--train-seed", type=seed, default=None,
                            help="the trials' training seed alone (default: --seed): seed repeats of the same "
                                 "configs on the same data")
        parser.add_argument("--points", type=points_file, default=(), metavar="FILE",
                            help="a JSON list of configs (searched parameter -> value) the search evaluates "
                                 "first, instead of the model's defaults")
        parser.add_argument("--fix", action="append", type=fixed_arg, default=[], metavar="KEY=VALUE",
                            help="fix a config key in the search space of every model that has it, e.g. "
                                 "patience=10 for no early stopping within 10 epochs (repeatable)")
        parser.add_argument("--costs", action="store_true",
                            help="measure every trial's parameters, training FLOPs and inference latency at "
                                 "batch 1 and 256 before it trains (neural models; recorded as cost.*)")
        parser.add_argument("--name", type=run_name, default=None,
                            help="run name: the directory RUNS_DIR/NAME (default: a timestamp)")
        parser.add_argument("--resume", action="store_true", help="continue the run --name after an interruption")
        parser.add_argument("--repeats", type=positive_int, default=1, help="retrain the best config with K seeds")
        parser.add_argument("--space", action="append", type=space_arg, default=[], metavar="[MODEL=]FILE",
                            help="a search-space YAML file replacing the model's own")
        parser.add_argument("--recipe", nargs="+", default=[], metavar="NAME",
                            help="reference recipes to run after the searches, untuned (benchmark.recipes: "
                                 f"{' '.join(RECIPES)})")
        parser.add_argument("--protocol", choices=PROTOCOLS, default=None,
                            help="a board protocol (benchmark.protocol): its preset for the task fixes models, "
                                 "trials, epochs, training rows, seeds, sampler, scheduler, recipes and spaces")
        parser.add_argument("--address", default=None,
                            help="an existing Ray cluster: auto or HOST:PORT of its head (default: a local Ray, "
                                 "or $RAY_ADDRESS when set, as under `ray job submit`)")
        parser.add_argument("--storage", type=storage_location, default=None, metavar="PATH_OR_URI",
                            help="where Ray Tune keeps its experiment state: a shared path or a URI such as "
                                 "s3://bucket/dir (default: the run directory on this machine)")
        parser.add_argument("--runs-dir", type=output_dir, default="runs")
        parser.add_argument("--leaderboard-dir", type=output_dir, default=None,
                            help="the board the run's results are merged into at the end (default RUNS_DIR/leaderboard: "
                                 "a board of your own; the project's published board is `leaderboard`, written "
                                 "only when named here)")
        parser.add_argument("--verbose", action="store_true", help="show Ray's and Optuna's logs")

    def run(self, args):
        from benchmark import data
        from benchmark.publish import leaderboard
        from benchmark.models import list_models
        from benchmark.search.runner import RunSpec, SearchFailed, run

        if args.resume and not args.name:
            raise BenchError("--resume needs the --name of the run to continue")
        spaces = {}
        models = tuple(args.model or [m.name for m in list_models() if m.on_board])  # checked with the rest in check
        for model, path in args.space:
            if not model and len(models) != 1:
                raise BenchError(f"--space {path}: say which model it is for, as MODEL=FILE")
            if (model or models[0]) in spaces:
                raise BenchError(f"--space: two files for {model or models[0]} ({spaces[model or models[0]]} "
                                 f"and {path}): pass one")
            spaces[model or models[0]] = path
        common = dict(precision=args.precision, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                      concurrency=args.concurrency, source=args.source, seed=args.seed, sampler_seed=args.sampler_seed,
                      train_seed=args.train_seed, points=args.points, costs=args.costs, fixed=dict(args.fix),
                      name=args.name or time.strftime("%Y%m%d-%H%M%S"), resume=args.resume, address=args.address,
                      storage=args.storage, data_root=data.data_dir(args.data_dir), runs_dir=Path(args.runs_dir),
                      verbose=args.verbose, argv=("bench", *args.argv))
        if args.protocol is not None:
            spec = _protocol_spec(args, common)
        else:
            spec = RunSpec(tasks=tuple(_task_names(args.task)), models=models, trials=args.trials, sampler=args.sampler,
                           scheduler=args.scheduler, max_epochs=args.max_epochs, sizes=sizes_of(args),
                           repeats=args.repeats, spaces=spaces, recipes=tuple(dict.fromkeys(args.recipe)), **common)
        board = Path(args.leaderboard_dir) if args.leaderboard_dir else spec.runs_dir / "leaderboard"
        try:
            outcome = run(spec)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (benchmark.search.tune.Stopped)
            again = [a for a in args.argv if a != "--resume"] + ([] if args.name else ["--name", spec.name])
            print(f"\nbench: {e or 'interrupted'}; finished trials are kept. Continue with:\n"
                  f"  bench {' '.join(again)} --resume", file=sys.stderr)
            return 128 + int(getattr(e, "signum", 2))
        try:  # merged with the board, under a file lock
            leaderboard.update(spec.runs_dir, board, runs=[outcome.run_dir.name])
        except (OSError, BenchError) as e:  # the results are saved; only the board could not be written
            print(f"bench: warning: leaderboard not updated ({e}); run `bench leaderboard --rebuild` later",
                  file=sys.stderr)
        if outcome.failures:
            raise SearchFailed("; ".join(outcome.failures))
        print(f"results: {outcome.run_dir}\nboard: {board / leaderboard.MD_NAME}")
        return 0


#: ``bench run`` options a protocol's preset fixes (``--n-val`` / ``--n-test``: the task's own sizes).
PROTOCOL_FIXES = ("--model", "--trials", "--max-epochs", "--n-train", "--n-val", "--n-test", "--repeats", "--sampler",
                  "--scheduler", "--space", "--recipe")


def _protocol_spec(args: argparse.Namespace, common: dict):
    """The spec of ``--protocol``'s preset for the one task (``RunSpec.from_protocol``); an option the
    preset fixes may not be given too."""
    from benchmark.search.spec import RunSpec

    given = [opt for opt in PROTOCOL_FIXES if any(a == opt or a.startswith(opt + "=") for a in args.argv)]
    if given:
        raise BenchError(f"--protocol {args.protocol} fixes {given[0]}: leave it out (see benchmark/protocol.py)")
    tasks = _task_names(args.task)
    if len(tasks) != 1:
        raise BenchError(f"--protocol {args.protocol}: one task per command (each is a resumable run of its own); "
                         f"pass --task {tasks[0]}, then the others")
    return RunSpec.from_protocol(args.protocol, tasks[0], **common)


class LeaderboardCommand(Command):
    name, help = "leaderboard", "print the leaderboard (best search per task, model and data); --rebuild regenerates it"

    def add_arguments(self, parser):
        parser.add_argument("--task", default=None, help="only this task")
        parser.add_argument("--format", choices=["table", "csv", "markdown"], default="table")
        parser.add_argument("--rebuild", action="store_true",
                            help="regenerate --out from scratch from every run in --runs-dir first")
        parser.add_argument("--runs-dir", type=path_arg, default="runs")
        parser.add_argument("--out", type=path_arg, default=None,
                            help="the leaderboard directory (default RUNS_DIR/leaderboard, where `bench run` writes; "
                                 "the project's published board is `leaderboard`)")

    def run(self, args):
        from benchmark.publish import leaderboard
        from benchmark.tasks import get_task

        task = get_task(args.task).name if args.task is not None else None  # an unknown task fails before any work
        runs_dir = Path(args.runs_dir)
        out = Path(args.out) if args.out else runs_dir / "leaderboard"
        if args.rebuild and not runs_dir.is_dir():  # rebuilding from nothing would empty the board
            raise BenchError(f"--rebuild: no runs directory {runs_dir} (pass --runs-dir)")
        rows = leaderboard.rebuild(runs_dir, out) if args.rebuild else leaderboard.load(out)
        rows = [r for r in rows if task is None or r.task == task]
        if args.format == "csv":
            print(leaderboard.format_csv(rows), end="")
        elif args.format == "markdown":
            print(leaderboard.format_markdown(rows, figures_dir=out), end="")
        else:
            print(leaderboard.format_table(rows), end="")
        return 0


class ReportCommand(Command):
    name, help = "report", "write a run's HPO report (history, importances, curves, robustness) as PNGs + Markdown"

    def add_arguments(self, parser):
        parser.add_argument("run_dir", type=path_arg, help="a run directory written by `bench run`, e.g. runs/<name>")
        parser.add_argument("--out", type=output_dir, default=None, help="where to write (default RUN_DIR/report)")
        parser.add_argument("--no-holdout", action="store_true",
                            help="skip retraining the best model without each range of the task's hold-out "
                                 "variable (hcal_dqm: lumisections)")

    def run(self, args):
        from benchmark.publish.report import write_report

        run_dir = Path(args.run_dir)
        if not run_dir.is_dir():
            raise BenchError(f"no run directory {run_dir}: `bench run --name NAME` writes runs/NAME")
        path = write_report(run_dir, Path(args.out) if args.out else None, holdout=not args.no_holdout)
        print(f"report: {path}")
        return 0


class ExportCommand(Command):
    name, help = "export", "every trial of run directories as one table (one row per trial and epoch) for tabular HPO"

    def add_arguments(self, parser):
        from benchmark.tables.tabular import FORMATS

        parser.add_argument("run_dir", nargs="+", type=path_arg, metavar="RUN_DIR",
                            help="run directories written by `bench run` (runs/<name>); runs of the same task and "
                                 "evaluation data merge into one table. A search without result.json (unfinished) "
                                 "is skipped with a note")
        parser.add_argument("--out", type=path_arg, required=True, metavar="FILE",
                            help="the table to write, with its metadata (search spaces, fidelities, versions, "
                                 "hardware) in FILE.meta.json. Different data never merge: runs of several tasks or "
                                 "evaluation-data hashes write one file per combination, FILE's stem + "
                                 "-<task>-<hash12>, instead of FILE")
        parser.add_argument("--format", choices=FORMATS, default=None,
                            help="default: csv for a FILE ending in .csv, else parquet")

    def run(self, args):
        from benchmark.tables.tabular import export, metadata_path

        for table, path in export([Path(d) for d in args.run_dir], Path(args.out), args.format):
            m = table.metadata
            print(f"{path}: {m['rows']} rows, {m['trials']} trials of {len(m['studies'])} studies from "
                  f"{len(m['runs'])} run(s); {m['task']}, {m['source']} data {table.data_hash[:12]} "
                  f"(metadata: {metadata_path(path).name})")
        return 0


class ReplayCommand(Command):
    name, help = "replay", "run an optimiser against a recorded table (bench export) instead of training"

    def add_arguments(self, parser):
        from benchmark.strategies import SAMPLERS, SCHEDULERS

        parser.add_argument("table", type=path_arg, metavar="TABLE", help="a table written by `bench export`")
        parser.add_argument("--study", action="append", default=None,
                            help="a searched study of the table (default: all; repeat for several)")
        parser.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)")
        parser.add_argument("--scheduler", choices=SCHEDULERS, default="asha", help="early stopping (default asha)")
        parser.add_argument("--trials", type=positive_int, default=100, help="trials per replay (default 100)")
        parser.add_argument("--seeds", type=positive_int, default=5, help="replays with seeds 0..K-1 (default 5)")
        parser.add_argument("--workers", type=positive_int, default=2,
                            help="trials at a time in simulated time (default 2, as bench run on 2 cores)")
        parser.add_argument("--seed-noise", action="store_true",
                            help="answer with a recorded training seed drawn by the replay's seed, not always the "
                                 "first (tables with seed repeats; benchmark.tables.surrogates.SeedNoise)")

    def run(self, args):
        import numpy as np

        from benchmark.tables import surrogates
        from benchmark.tables.compare import normalised_regret
        from benchmark.tables.replay import blackboxes, replay

        for box in blackboxes(Path(args.table), args.study):
            card = surrogates.report_card(box)
            chosen = surrogates.choose(box, card)
            if card is None:  # too few configurations for the forest's card
                h, ceiling, kind = chosen.holdout(), None, f"knn k={chosen.k}"
            else:
                h, ceiling = card[card["chosen"]]["final"], card["noise_ceiling"]
                kind = "forest" if card["chosen"] == "forest" else f"knn k={card['k']}"
            print(f"{box.name}: {len(box.configs)} configs x {box.max_epochs} epoch(s), n_train {box.n_train:,}; "
                  f"surrogate {kind}, held-out MAE {h['mae']:.4f}, Spearman {h['spearman']:.3f}"
                  + (f"; noise ceiling (seed vs seed Spearman) {ceiling['spearman']:.3f}" if ceiling else ""))
            if args.seed_noise and not box.repeats:
                print(f"  (--seed-noise: {box.name} has no seed repeats; every answer is its first seed's)")
            lo, hi = box.finals.min(), box.finals.max()
            rows = [("seed", "best val AUC", "regret", "trials", "epochs", "simulated time (s)", "replay (s)")]
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                surrogate = surrogates.SeedNoise(chosen, np.random.default_rng([seed, 1])) if args.seed_noise else chosen
                trace = replay(box, args.sampler, args.scheduler, seed, trials=args.trials, workers=args.workers,
                               surrogate=surrogate)
                best = float(trace.value.max())
                rows.append((seed, f"{best:.4f}", f"{float(normalised_regret(best, lo, hi)):.4f}",
                             len(trace.trial_value), int(trace.trial_epochs.sum()), f"{trace.time[-1]:,.0f}",
                             f"{time.perf_counter() - t0:.2f}"))
            print(aligned(rows))
        return 0


class CompareCommand(Command):
    name, help = "compare", "rank optimisers by replaying recorded tables; writes leaderboard/optimizers.md"

    def add_arguments(self, parser):
        from benchmark.strategies import SAMPLERS, SCHEDULERS

        parser.add_argument("tables", nargs="+", type=path_arg, metavar="TABLE", help="tables written by `bench export`")
        parser.add_argument("--out", type=path_arg, default="leaderboard/optimizers.md",
                            help="the page to write, its figures beside it (default leaderboard/optimizers.md)")
        parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
        parser.add_argument("--schedulers", nargs="+", choices=SCHEDULERS, default=list(SCHEDULERS))
        parser.add_argument("--seeds", type=positive_int, default=20, help="seeds per method (default 20)")
        parser.add_argument("--trials", type=positive_int, default=100, help="trials per replay (default 100)")
        parser.add_argument("--workers", type=positive_int, default=2, help="trials at a time in simulated time")
        parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                            help="replays at once, one process each (default: the CPUs)")
        parser.add_argument("--live", nargs="+", action="extend", default=[], type=path_arg, metavar="RUN",
                            help="live searches of a table's study, on its data and budget (bench run directories, "
                                 "or the table bench export made of them, as leaderboard/tables/live/ holds): "
                                 "the page shows where their incumbents lie against the replays of their method")
        parser.add_argument("--cache", type=path_arg, default="runs/replay-cache",
                            help="where each replay is kept and read back from, one folder per sampler (default "
                                 "runs/replay-cache): an interrupted comparison goes on where it stopped")
        parser.add_argument("--no-cache", action="store_true", help="replay everything, keep nothing")
        parser.add_argument("--no-stability", action="store_true",
                            help="skip the second replay of the grid with another surrogate")
        parser.add_argument("--surrogate", choices=("knn", "chosen"), default="knn",
                            help="knn: the nearest-neighbour surrogate (the second one its runner-up k; the "
                                 "published page's); chosen: per blackbox the report card's choice, knn or forest "
                                 "(the second one the other)")
        parser.add_argument("--seed-noise", action="store_true",
                            help="answer with a recorded training seed drawn per replay seed (tables with seed repeats)")
        parser.add_argument("--stability-samplers", nargs="+", choices=SAMPLERS, default=None, metavar="SAMPLER",
                            help="the samplers the second replay repeats (default: all compared; Optuna's gp costs "
                                 "50-140 s a replay on one core)")

    def run(self, args):
        from benchmark.tables.compare import build
        from benchmark.files import make_dir

        out = Path(args.out)
        make_dir(out.parent, fix="pass a writable --out")
        build([Path(t) for t in args.tables], out, samplers=args.samplers, schedulers=args.schedulers,
              seeds=args.seeds, trials=args.trials, workers=args.workers, jobs=args.jobs,
              stability=not args.no_stability,
              stability_samplers=args.stability_samplers, live=[Path(d) for d in args.live],
              cache=None if args.no_cache else Path(args.cache), command=" ".join(("bench", *args.argv)),
              log=lambda m: print(m, file=sys.stderr, flush=True), surrogate=args.surrogate,
              seed_noise=args.seed_noise)
        print(f"written: {out}")
        return 0


class PerfCommand(Command):
    name, help = "perf", "measure the suite side by side with what users would otherwise run; writes perf.md"

    def add_arguments(self, parser):
        from benchmark.perf import COMPARISONS

        parser.add_argument("--quick", action="store_true",
                            help="CI-sized inputs: checks that everything runs (the numbers mean little)")
        parser.add_argument("--only", nargs="+", choices=COMPARISONS, default=None, help="only these comparisons")
        parser.add_argument("--out", default="leaderboard/perf.md", help="the page to write (default leaderboard/perf.md)")
        parser.add_argument("--samples", type=positive_int, help="throughput: synthetic samples per task")
        parser.add_argument("--epochs", type=positive_int, help="throughput: training epochs, the same on both sides")
        parser.add_argument("--trials", type=positive_int, help="runner cost: near-instant trials (at least 2)")
        parser.add_argument("--search-trials", type=positive_int, help="search efficiency: trials per replay")
        parser.add_argument("--seeds", type=positive_int, help="search efficiency: replays per method (at least 2)")
        parser.add_argument("--gpu", action="store_true", help="the throughput and precision rows on the first CUDA GPU")

    def run(self, args):
        import dataclasses
        import os

        from benchmark import perf
        from benchmark.files import atomic_write_text, make_dir
        from benchmark.perf.report import format_markdown, format_terminal

        given = {"samples": args.samples, "epochs": args.epochs, "trials": args.trials,
                 "search_trials": args.search_trials, "seeds": args.seeds}
        try:
            sizes = dataclasses.replace(perf.QUICK if args.quick else perf.FULL,
                                        **{k: v for k, v in given.items() if v is not None})
        except ValueError as e:
            raise BenchError(str(e)) from None
        out = Path(args.out)
        make_dir(out.parent, fix="pass a writable --out")
        if not os.access(out.parent, os.W_OK):  # found out now, not after a quarter of an hour
            raise BenchError(f"--out {out}: {out.parent} is not writable")
        try:
            report = perf.run_all(sizes, only=tuple(args.only or perf.COMPARISONS),
                                  command=" ".join(("bench", *args.argv)), gpu=args.gpu)
        except ValueError as e:
            raise BenchError(str(e)) from None
        print(format_terminal(report))
        atomic_write_text(out, format_markdown(report))
        print(f"\nwritten: {out}")
        return 0


def _concat(batches):
    from benchmark.tasks import RawBatch

    return RawBatch(np.concatenate([b.X for b in batches]), np.concatenate([b.aux for b in batches]))


def _commands() -> dict[str, Command | dict[str, Command]]:
    cmds: dict[str, Command | dict[str, Command]] = {c.name: c for c in (RunCommand(), TasksCommand(), ModelsCommand(),
                                                                            LeaderboardCommand(), ReportCommand(), PerfCommand(),
                                                                            ExportCommand(), ReplayCommand(), CompareCommand())}
    cmds["data"] = {c.name: c for c in (DataInfoCommand(), DataCompareCommand(), DataFetchCommand(), DataGenerateCommand(),
                                                  DataPrepareCommand())}
    return cmds


class _Parser(argparse.ArgumentParser):
    """One line for a bad command line, like every other bad input (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=path_arg,
                        help="data directory (default: $BENCH_DATA_DIR, else ~/.cache/hepbench)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = _Parser(prog="bench", description="HPO benchmarks on particle-physics detector images")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in _commands().items():
        if isinstance(cmd, dict):
            group = sub.add_parser(name, help=f"{name} commands").add_subparsers(dest="subcommand", required=True)
            for sub_name, sub_cmd in cmd.items():
                p = group.add_parser(sub_name, help=sub_cmd.help, parents=[common])
                sub_cmd.add_arguments(p)
                p.set_defaults(handler=sub_cmd)
        else:
            p = sub.add_parser(name, help=cmd.help, parents=[common])
            cmd.add_arguments(p)
            p.set_defaults(handler=cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler.run(args)
    except BenchError as e:
        if args.debug:
            raise
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
