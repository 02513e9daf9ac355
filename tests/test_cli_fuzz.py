"""Property-based tests of the command line: every value a user can type into ``bench run`` and the other
sub-commands gives either a valid run or the usual one-line error with exit code 2, in seconds, never
a traceback, and nothing is written outside the directories the command line names.

``benchmark.search.session.init_ray`` is replaced by a sentinel: a ``bench run`` that reaches it passed every
check that needs no Ray, and the spec it carries is then checked to really be valid (its models and
tasks resolve, timm members exist, its run directory is inside ``--runs-dir``, its seed, resources,
address and search spaces are usable). Every example runs in a fresh temporary directory (the working
directory, ``$HOME`` and ``$BENCH_DATA_DIR`` inside it); paths in the strategies are relative to it or
start with ``{ROOT}`` (that directory), so a path that escapes shows up in the check of what was written.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmark.search import runner, session
from benchmark.cli import main
from benchmark.models import get_model_class, list_models
from benchmark.search_space import load_space
from benchmark.tasks import get_task, list_tasks

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SLOW_S = 20  # "in seconds": generous for a shared 2-core machine
ERROR_LINE = re.compile(r"^bench( [a-z]+)*: error: ")
MAX_SEED = 2**32 - 1  # numpy's RandomState (Optuna's samplers, scikit-learn) takes seeds in [0, 2**32)

TASKS = [t.name for t in list_tasks()]
MODELS = [m.name for m in list_models()]  # imports every model module once, before the timed examples

# --- what a user can type --------------------------------------------------------------------------

UNICODE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
WEIRD = st.sampled_from(["", " ", "-", ".", "..", "/", "\0", "a\0b", "\n", "a\nb", "x" * 300, "é", "日本",
                         "\u202e", "~", "~nosuchuser/x", "$HOME", "*", "NaN", "None", "null", "🚀", "a b"])


def near_misses(names: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(names).flatmap(lambda n: st.sampled_from(
        [n.upper(), n + " ", " " + n, n[:-1], n + "s", n.replace("_", "-"), n + "/", "./" + n, "../" + n,
         n + "\0", n + ":", f"{n}={n}"]))


VALID_TASKS = st.sampled_from([*TASKS, "all"])
TASK_NAMES = st.one_of(VALID_TASKS, VALID_TASKS, VALID_TASKS, near_misses([*TASKS, "all"]), WEIRD, UNICODE,
                       st.sampled_from(["ALL", "all ", "ee_gamma,hcal_dqm", "{ROOT}/ee_gamma", "../ee_gamma"]))
TIMM_MEMBERS = st.sampled_from(["resnet10t", "resnet18", "resnet18.a1_in1k", "vit_tiny_patch16_224", "",
                                " ", "bogus", "resnet18 ", "RESNET18", "resnet18:x", "hf-hub:timm/resnet18",
                                "../resnet18", "resnet18/x", "\0", "x" * 300]) | UNICODE
MODEL_NAMES = st.one_of(
    st.sampled_from(MODELS), st.sampled_from(MODELS), near_misses(MODELS),
    st.builds(lambda m: f"timm:{m}", TIMM_MEMBERS), st.sampled_from(["timm", "timm:", "logreg:x", "vit:resnet18"]),
    WEIRD)
MODEL_LISTS = st.lists(MODEL_NAMES, min_size=1, max_size=3) | st.sampled_from(MODELS).map(lambda m: [m, m])
INTEGERS = st.one_of(st.integers(-3, 30).map(str), st.sampled_from(
    ["0", "-1", "-0", "+5", " 7 ", "1_000", "2**10", "1e3", "1.5", "0x10", "", "x", "nan", "inf", "٣",
     str(2**31), str(2**63), str(2**64 + 1), "9" * 40, "9" * 5000]))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(
    ["0", "0.0", "-0", "-1", "0.5", "1", "2", "1e-5", "0.0001", "1e-300", "1e300", "1e400", "nan", "NaN", "inf",
     "-inf", "infinity", "", "x", "1,5", str(os.cpu_count()), str((os.cpu_count() or 1) + 1), "1_0"]))
SEEDS = st.one_of(st.integers(-5, 5).map(str), st.sampled_from(
    [str(MAX_SEED), str(MAX_SEED - 1), str(2**32), str(2**63), str(2**64 + 3), str(-2**64), "1.0", "", "x",
     "9" * 100]))
N_SAMPLES = st.one_of(st.sampled_from(["20", "19", "21", "100", "3000", "1000000", str(10**12), str(10**30), "0",
                                       "-20", "1", "2", "5", "x", ""]), INTEGERS)
PATH_PIECES = st.sampled_from(["runs", "out", "a/b/c", "{ROOT}/abs", "{ROOT}/abs/nested/deeper", "blocker",
                               "blocker/sub", "dir", "dir/", "./x", "../escape", "~/home-rel", "~nosuchuser/x",
                               "", "\0", "a\0b", "x" * 300, "y/" + "x" * 256, "a b", "é/ü", "{ROOT}/link"])
NAMES = st.one_of(st.sampled_from(["eg", "run-1", "", " ", ".", "..", "../x", "../../x", "{ROOT}/abs", "a/b",
                                   "a\0b", "\0", "a\nb", "\n", "\t", "x" * 255, "x" * 256, "x" * 1000,
                                   "~", ".hidden", "run.json", "é", "a\\b", "-x", "runs"]), UNICODE)
ADDRESSES = st.sampled_from(["auto", "127.0.0.1:6379", "localhost:6379", "[::1]:6379", "127.0.0.1:0",
                             "127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1", ":6379",
                             "127.0.0.1:", "localhost:x", "ray://127.0.0.1:10001", "http://127.0.0.1:8265",
                             "a..b:6379", ".:6379", "x" * 300 + ":6379", "\0:6379", "a b:6379", "::1:6379",
                             "[::1:6379", "", " ", "local", "AUTO", "localhost:6379/x", "127.0.0.1:6379 "]) | WEIRD
STORAGES = PATH_PIECES | st.sampled_from(["s3://bucket/dir", "gs://bucket/x", "s3://", "s3:///x", "foo://bar",
                                          "://x", "file://relative", "file://{ROOT}/store", "mock://x",
                                          "s3://bucket/a b", "s3://bucket/%zz", "hdfs://h/x", "S3://bucket/x"])
SPACE_FILES = {  # written into the sandbox before each example
    "good.yaml": "C: {type: float, low: 1.0e-3, high: 1.0, log: true}\npool: {type: categorical, choices: [0, 4]}\n",
    "bad_yaml.yaml": "C: {type: float, low: 1e-3, high: [1\n",
    "unknown_key.yaml": "learning_rate: {type: fixed, value: 1}\n",
    "bad_fixed.yaml": "C: {type: fixed, value: -1}\npool: {type: fixed, value: banana}\n",
    "list.yaml": "- a\n- b\n",
    "empty.yaml": "",
    "binary.yaml": b"\xff\xfe\x00garbage",
}
SPACE_ITEMS = st.one_of(
    st.sampled_from([*SPACE_FILES, "missing.yaml", "dir", "blocker", "", "\0", "x" * 300, "{ROOT}/good.yaml"]),
    st.tuples(st.sampled_from(["logreg", "xgboost", "resnet15", "timm:resnet18", "timm", "nope", "", "logreg "]),
              st.sampled_from([*SPACE_FILES, "missing.yaml", "dir", ""])).map(lambda t: f"{t[0]}={t[1]}"))

RUN_OPTIONS = {
    "--trials": INTEGERS, "--max-epochs": INTEGERS, "--concurrency": INTEGERS, "--repeats": INTEGERS,
    "--n-train": N_SAMPLES, "--n-test": N_SAMPLES, "--cpus-per-trial": FLOATS, "--gpus-per-trial": FLOATS, "--seed": SEEDS,
    "--name": NAMES, "--runs-dir": PATH_PIECES, "--data-dir": PATH_PIECES, "--leaderboard-dir": PATH_PIECES,
    "--address": ADDRESSES, "--storage": STORAGES, "--source": st.sampled_from(["auto", "synthetic", "real", "x", ""]),
    "--sampler": st.sampled_from(["tpe", "random", "cmaes", "gp", "qmc", "bayes", ""]),
    "--scheduler": st.sampled_from(["asha", "none", "hyperband", ""]),
}
SPACE_LISTS = st.lists(SPACE_ITEMS, min_size=1, max_size=2)
FLAGS = st.sampled_from([(), (), (), (), ("--verbose",), ("--resume",), ("--resume", "--verbose")])


# --- the sandbox -------------------------------------------------------------------------------------

class _ReachedRay(Exception):
    """``session.init_ray`` was called: the spec passed every check before Ray."""

    def __init__(self, spec):
        super().__init__("reached Ray")
        self.spec = spec


class Sandbox:
    """A fresh directory: ``root`` holds ``cwd`` (the working directory), ``home`` ($HOME), a file
    ``blocker`` in the way of paths under it, a directory ``dir``, a broken symlink ``link`` and the
    search-space files; ``$BENCH_DATA_DIR`` is ``cwd/env-data``."""

    def __init__(self, root: Path):
        self.root, self.cwd, self.home = root, root / "cwd", root / "home"
        for d in (self.cwd, self.home, self.cwd / "dir", self.root / "dir"):
            d.mkdir(parents=True, exist_ok=True)
        for base in (self.root, self.cwd):
            (base / "blocker").write_text("a file, not a directory")
            for name, text in SPACE_FILES.items():
                (base / name).write_bytes(text if isinstance(text, bytes) else text.encode())
            (base / "link").symlink_to(base / "nowhere")
        self.env_data = self.cwd / "env-data"
        self.before = self.snapshot()

    def sub(self, text: str) -> str:
        return text.replace("{ROOT}", str(self.root))

    def snapshot(self) -> set[Path]:
        return {Path(dirpath) / n for dirpath, dirs, files in os.walk(self.root) for n in dirs + files}

    def resolve(self, text: str) -> Path:
        """Where a path typed by the user is (relative to the working directory, ~ being $HOME)."""
        return Path(os.path.abspath(os.path.join(self.cwd, os.path.expanduser(text))))

    def assert_written_only_in(self, allowed: list[Path]) -> None:
        allowed = [Path(os.path.realpath(a)) for a in allowed]
        for path in sorted(self.snapshot() - self.before):
            real = Path(os.path.realpath(path))
            inside = any(real == a or a in real.parents for a in allowed)
            ancestor = path.is_dir() and any(real in a.parents for a in allowed)  # made for an allowed dir
            assert inside or ancestor, f"{path} was written outside {allowed}"


@contextlib.contextmanager
def sandbox():
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as d, pytest.MonkeyPatch.context() as mp:
        box = Sandbox(Path(d).resolve())
        mp.chdir(box.cwd)
        mp.setenv("HOME", str(box.home))
        mp.setenv("BENCH_DATA_DIR", str(box.env_data))
        mp.setenv("XDG_CACHE_HOME", str(box.home / ".cache"))
        for var in ("RAY_ADDRESS", "BENCH_MIRROR_URL"):
            mp.delenv(var, raising=False)

        def no_ray(spec):
            raise _ReachedRay(spec)

        mp.setattr(session, "init_ray", no_ray)
        yield box


def bench(argv: list[str]):
    """``main(argv)``: (exit code, stdout, stderr, the spec if it reached Ray, seconds)."""
    out, err, spec = io.StringIO(), io.StringIO(), None
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
        except _ReachedRay as e:
            code, spec = None, e.spec
    return code, out.getvalue(), err.getvalue(), spec, time.perf_counter() - t0


def assert_one_line_error(code, err: str, argv) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    assert len(lines) == 1, (argv, err)
    assert ERROR_LINE.match(lines[0]), (argv, lines[0])


def option(argv: list[str], name: str, default=None):
    """The value of the last ``name VALUE`` in argv (as argparse reads it), else ``default``."""
    value = default
    for i, a in enumerate(argv[:-1]):
        if a == name:
            value = argv[i + 1]
    return value


# --- what a valid spec is ----------------------------------------------------------------------------

ADDRESS = re.compile(r"(localhost|127\.0\.0\.1|\[::1\]):(\d+)")
STORAGE_SCHEMES = ("s3", "gs", "gcs", "file", "local", "mock", "hdfs", "viewfs", "abfs", "abfss")


def assert_valid_spec(spec: runner.RunSpec, box: Sandbox, argv: list[str]) -> None:
    import timm

    assert all(t in TASKS for t in spec.tasks) and len(set(spec.tasks)) == len(spec.tasks)
    assert len(set(spec.models)) == len(spec.models), spec.models
    for m in spec.models:
        cls = get_model_class(m)
        base, sep, member = m.partition(":")
        if sep:
            assert cls.family_key is not None and timm.is_model(member), m
    # the run directory is one directory inside --runs-dir
    runs_dir = box.resolve(option(argv, "--runs-dir", "runs"))
    assert Path(spec.runs_dir).resolve() == runs_dir.resolve()
    run_dir = (Path(spec.runs_dir) / spec.name).resolve()
    assert run_dir.parent == runs_dir.resolve() and spec.name not in ("", ".", ".."), spec.name
    assert not any(c in spec.name for c in "/\0\n\r\t") and len(spec.name.encode()) <= 255
    assert run_dir.is_dir() is False or spec.resume
    # search spaces: only for the models of the run, and they load
    assert set(spec.spaces) <= set(spec.models), (spec.spaces, spec.models)
    for m in spec.models:
        load_space(m, spec.spaces.get(m), known_keys=get_model_class(m).default_config)
    # numbers
    assert 0 <= spec.seed and spec.seed + spec.repeats - 1 <= MAX_SEED, (spec.seed, spec.repeats)
    assert 1 <= spec.trials <= sys.maxsize and 1 <= spec.max_epochs <= sys.maxsize and 1 <= spec.repeats <= 1000
    assert spec.concurrency is None or 1 <= spec.concurrency <= sys.maxsize
    assert math.isfinite(spec.cpus_per_trial) and 1e-4 <= spec.cpus_per_trial <= (os.cpu_count() or 1)
    assert spec.gpus_per_trial == 0 or (math.isfinite(spec.gpus_per_trial) and spec.gpus_per_trial >= 1e-4)
    if spec.gpus_per_trial:  # this machine: only as many GPUs as it has
        from benchmark.environment import gpu_names

        assert spec.gpus_per_trial <= len(gpu_names())
    for n in (spec.sizes.train, spec.sizes.val, spec.sizes.test):
        assert n is None or 10 <= n <= 10**9, spec.sizes
    if spec.source == "real":
        from benchmark import data

        assert all(data.locate_real(get_task(t), spec.data_root) for t in spec.tasks)
    # Ray: a loopback address (the strategies name no other), a storage Tune can use
    assert spec.address is None or spec.address == "auto" or (
        (m := ADDRESS.fullmatch(spec.address)) and 1 <= int(m[2]) <= 65535), spec.address
    if spec.storage is not None:
        if "://" in spec.storage:
            scheme, rest = spec.storage.split("://", 1)
            assert scheme in STORAGE_SCHEMES and rest and " " not in rest, spec.storage
        else:
            assert os.path.isabs(spec.storage) and "\0" not in spec.storage


def allowed_dirs(box: Sandbox, argv: list[str], *names_defaults) -> list[Path]:
    dirs = []
    for name, default in names_defaults:
        value = option(argv, name, default)
        if value is not None and value != "" and "\0" not in value and "://" not in value:
            with contextlib.suppress(RuntimeError):  # ~nosuchuser
                dirs.append(box.resolve(value))
    return dirs


# --- bench run -------------------------------------------------------------------------------------

@st.composite
def run_argvs(draw):
    argv = ["run", "--task", draw(TASK_NAMES)]
    if draw(st.booleans()):
        argv += ["--model", *draw(MODEL_LISTS)]
    else:  # the cheap default-free path: one real model
        argv += ["--model", draw(st.sampled_from(["logreg", "xgboost", "timm:resnet10t"]))]
    names = draw(st.lists(st.sampled_from(sorted(RUN_OPTIONS)), max_size=3, unique=True))
    for name in names:
        argv += [name, draw(RUN_OPTIONS[name])]
    if draw(st.integers(0, 4)) == 0:
        for item in draw(SPACE_LISTS):
            argv += ["--space", item]
    argv += sorted(draw(FLAGS))
    return argv


def check_run(argv: list[str]) -> None:
    with sandbox() as box:
        argv = [box.sub(a) for a in argv]
        code, out, err, spec, seconds = bench(argv)
        if spec is not None:
            assert_valid_spec(spec, box, argv)
        else:
            assert_one_line_error(code, err, argv)
        assert seconds < SLOW_S, (argv, seconds)
        box.assert_written_only_in(allowed_dirs(box, argv, ("--runs-dir", "runs"), ("--data-dir", str(box.env_data)),
                                                ("--leaderboard-dir", None), ("--storage", None)))


@FUZZ
@given(run_argvs())
@example(["run", "--task", "ee_gamma", "--model", "logreg"])
@example(["run", "--task", "all", "--model", "logreg", "timm:resnet10t", "--space", "logreg=good.yaml"])
@example(["run", "--task", "ee_gamma", "--model", "logreg", "--seed", str(2**64 + 1)])
@example(["run", "--task", "ee_gamma", "--model", "logreg", "--name", "../x"])
@example(["run", "--task", "ee_gamma", "--model", "timm:bogus"])
@example(["run", "--task", "ee_gamma", "--model", "logreg", "--space", "xgboost=good.yaml"])
@example(["run", "--task", "ee_gamma", "--model", "logreg", "--address", "a..b:6379"])
def test_run_arguments(argv):
    check_run(argv)


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(sorted(RUN_OPTIONS)).flatmap(lambda name: st.tuples(st.just(name), RUN_OPTIONS[name])),
       FLAGS)
@example(("--address", ""), ())
@example(("--address", "127.0.0.1:65536"), ())
@example(("--storage", "foo://bar"), ())
@example(("--storage", "s3://bucket/a b"), ())
@example(("--name", ""), ())
@example(("--name", "x" * 300), ())
@example(("--cpus-per-trial", "inf"), ())
@example(("--cpus-per-trial", "1e-300"), ())
@example(("--gpus-per-trial", "0.5"), ())
@example(("--n-train", "9"), ())
@example(("--n-test", str(10**12)), ())
@example(("--source", "real"), ())
@example(("--repeats", str(10**12)), ())
@example(("--trials", str(2**64)), ())
@example(("--data-dir", "~nosuchuser/x"), ())
@example(("--leaderboard-dir", "blocker/sub"), ())
@example(("--runs-dir", "{ROOT}/link"), ())
def test_each_run_option_alone(name_value, flags):
    """Each option with every value its strategy has, the rest valid: the checks behind the first."""
    name, value = name_value
    check_run(["run", "--task", "hcal_dqm", "--model", "logreg", name, value, *sorted(flags)])


@settings(FUZZ, max_examples=40)
@given(SPACE_LISTS, st.lists(st.sampled_from(["logreg", "xgboost", "timm:resnet18", "timm"]), min_size=1,
                             max_size=2, unique=True))
def test_run_search_spaces(spaces, models):
    check_run(["run", "--task", "ee_gamma", "--model", *models, *(a for s in spaces for a in ("--space", s))])


def test_a_valid_run_reaches_ray_and_writes_only_its_directories():
    with sandbox() as box:
        argv = ["run", "--task", "all", "--model", "logreg", "timm:resnet10t", "--name", "eg", "--seed", "7",
                "--runs-dir", "a/runs", "--data-dir", "d", "--storage", "st", "--n-train", "20",
                "--n-val", "10", "--n-test", "10"]
        code, out, err, spec, _ = bench(argv)
        assert spec is not None, err
        assert spec.name == "eg" and spec.tasks == tuple(TASKS) and spec.seed == 7
        assert_valid_spec(spec, box, argv)
        box.assert_written_only_in(allowed_dirs(box, argv, ("--runs-dir", ""), ("--data-dir", ""),
                                                ("--storage", "")))


def test_resume_reaches_ray_only_for_a_run_inside_runs_dir():
    with sandbox() as box:
        (box.cwd / "runs" / "eg").mkdir(parents=True)
        (box.cwd / "runs" / "eg" / "run.json").write_text("{}")
        (box.root / "outside").mkdir()
        (box.root / "outside" / "run.json").write_text("{}")
        code, _, err, spec, _ = bench(["run", "--task", "ee_gamma", "--model", "logreg", "--name", "eg", "--resume"])
        assert spec is not None and spec.resume, err
        for name in ("../../outside", str(box.root / "outside")):
            code, _, err, spec, _ = bench(["run", "--task", "ee_gamma", "--model", "logreg", "--name", name,
                                           "--resume"])
            assert spec is None
            assert_one_line_error(code, err, name)


# --- the other commands ------------------------------------------------------------------------------

SMALL_N = st.sampled_from(["20", "40", "100", "20", "40", "1", "19", "0", "-5", "x", "", "1.5", str(10**12),
                           str(10**30)])
DATA_SEEDS = st.sampled_from(["0", "1", "-1", str(MAX_SEED), str(2**32), str(2**64 + 1), "x", ""])
CHEAP_TASKS = st.one_of(st.sampled_from(["hcal_dqm", "ee_gamma", "atlas_topo"]),
                        st.sampled_from(["hcal_dqm", "ee_gamma", "atlas_topo"]), near_misses(TASKS), WEIRD)


@st.composite
def data_argvs(draw):
    sub = draw(st.sampled_from(["info", "generate", "prepare", "fetch"]))
    if sub == "fetch":  # never a download: only tasks that are invalid or have no public files
        task = draw(st.sampled_from(["atlas_topo", "all", "", "nope", "ee_gama", "../ee_gamma"]) | WEIRD)
        argv = ["data", "fetch", task]
        if draw(st.booleans()):
            argv += ["--mirror", draw(st.sampled_from(["http://127.0.0.1:1", "", "x", "file:///nope"]))]
    else:
        task = draw(CHEAP_TASKS | st.just("all")) if sub != "info" else draw(CHEAP_TASKS)
        # info describes --n samples; prepare / generate size the training split (evaluation splits kept small)
        argv = ["data", sub, task, "--n", draw(SMALL_N)] if sub == "info" else \
            ["data", sub, task, "--n-train", draw(SMALL_N), "--n-val", "10", "--n-test", "10"]
        if draw(st.booleans()):
            argv += ["--seed", draw(DATA_SEEDS)]
        if sub != "generate" and draw(st.booleans()):
            argv += ["--source", draw(st.sampled_from(["synthetic", "real", "auto", ""]))]
    if draw(st.booleans()):
        argv += ["--data-dir", draw(PATH_PIECES)]
    return argv


@settings(FUZZ, max_examples=60)
@given(data_argvs())
@example(["data", "generate", "hcal_dqm", "--n-train", "20", "--seed", "-1"])
@example(["data", "info", "hcal_dqm", "--n", str(10**12)])
@example(["data", "generate", "hcal_dqm", "--n-train", str(10**12)])
@example(["data", "prepare", "hcal_dqm", "--n-train", "40", "--n-test", "10", "--data-dir", "blocker/x"])
def test_data_commands(argv):
    with sandbox() as box:
        argv = [box.sub(a) for a in argv]
        code, out, err, _, seconds = bench(argv)
        if code != 0:
            assert_one_line_error(code, err, argv)
        assert seconds < SLOW_S, (argv, seconds)
        box.assert_written_only_in(allowed_dirs(box, argv, ("--data-dir", str(box.env_data))))


@st.composite
def leaderboard_argvs(draw):
    argv = ["leaderboard"]
    if draw(st.booleans()):
        argv += ["--task", draw(st.sampled_from(TASKS) | near_misses(TASKS) | WEIRD)]
    if draw(st.booleans()):
        argv += ["--format", draw(st.sampled_from(["table", "csv", "markdown", "json", ""]))]
    if draw(st.booleans()):
        argv += ["--out", draw(PATH_PIECES | st.just("board"))]
    if draw(st.booleans()):
        argv += ["--runs-dir", draw(PATH_PIECES | st.just("runs"))]
    if draw(st.booleans()):
        argv += ["--rebuild"]
    return argv


@settings(FUZZ, max_examples=60)
@given(leaderboard_argvs(), st.booleans())
@example(["leaderboard", "--rebuild", "--runs-dir", "dir", "--out", "blocker"], False)
@example(["leaderboard", "--task", ""], True)
def test_leaderboard(argv, with_board):
    with sandbox() as box:
        argv = [box.sub(a) for a in argv]
        if with_board:  # an empty board where --out says, and a run directory with nothing finished
            (box.cwd / "runs" / "r1" / "ee_gamma" / "logreg").mkdir(parents=True)
            code, _, err, _, _ = bench(["leaderboard", "--rebuild", "--out", "board0"])
            assert code == 0, err
            box.before = box.snapshot()
        code, out, err, _, seconds = bench(argv)
        if code != 0:
            assert_one_line_error(code, err, argv)
        assert seconds < SLOW_S, (argv, seconds)
        # the default board is the one beside the runs
        board = option(argv, "--out", None) or f"{option(argv, '--runs-dir', 'runs')}/leaderboard"
        box.assert_written_only_in(allowed_dirs(box, [*argv, "--out", board], ("--out", None)))


REPORT_DIRS = st.sampled_from(["runs/r1", "runs/empty", "runs/missing", "blocker", "dir", "good.yaml", "", "\0",
                               "x" * 300, "{ROOT}/nowhere", "link", "runs/damaged", "runs"])


@settings(FUZZ, max_examples=40)
@given(REPORT_DIRS, st.none() | PATH_PIECES, st.booleans())
@example("runs/damaged", None, True)
@example("runs/r1", "blocker", True)
def test_report(run_dir, out, no_holdout):
    with sandbox() as box:
        (box.cwd / "runs" / "empty").mkdir(parents=True)
        (box.cwd / "runs" / "r1" / "ee_gamma" / "logreg").mkdir(parents=True)
        (box.cwd / "runs" / "r1" / "report").write_text("a file where the report directory goes")
        damaged = box.cwd / "runs" / "damaged" / "ee_gamma" / "logreg"
        damaged.mkdir(parents=True)
        (damaged / "trials.json").write_text("{not json")
        box.before = box.snapshot()
        argv = ["report", box.sub(run_dir)] + (["--out", box.sub(out)] if out is not None else [])
        argv += ["--no-holdout"] if no_holdout else []
        code, _, err, _, seconds = bench(argv)
        if code != 0:
            assert_one_line_error(code, err, argv)
        assert seconds < SLOW_S, (argv, seconds)
        report = [box.resolve(box.sub(out))] if out and "\0" not in out else []
        if out is None and "\0" not in run_dir and run_dir:
            report.append(box.resolve(box.sub(run_dir)) / "report")
        box.assert_written_only_in(report)
