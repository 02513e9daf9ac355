"""The runner: one Optuna search under Ray Tune per (task, model), then one evaluation of the best on test.

``run(spec)`` runs every search of a :class:`~benchmark.search.spec.RunSpec` and ``search(spec)`` the one
search of a one-(task, model) spec, each returning typed records (:mod:`benchmark.records`, which owns
the run directory's layout); publishing them is a separate step (``benchmark.publish.leaderboard.update``,
which ``bench run`` calls at the end). The search wing, module by module::

    spec.py      RunSpec (from the command line, or a protocol's preset), names, addresses, storage
    validate.py  check(spec): every check that needs no Ray, before Ray starts
    session.py   the Ray session: a local Ray or a cluster, its slots, a trial's device plan
    tune.py      Ray Tune's side: trainable, searcher over the study's journal, scheduler, progress, signals
    final.py     the test evaluation (seeds as Ray tasks)
    studies.py   the Optuna study of a search as a journal file
    runner.py    this module: the plan, the searches in order, the records they leave

With ``--storage`` Tune's experiment state goes there instead of ``tune/`` (a shared path or a cloud URI
for a cluster); every other file is written on the driver. Trial results reach the driver through Ray, so
a cluster needs no shared filesystem; trials keep their best weights in memory and write no checkpoints.
A trial whose node dies is retried from its start (``tune.TRIAL_RETRIES`` times) on a node that is alive.

Trials read the prepared, memory-mapped splits from the node's data directory (``data.prepare_shared``
reuses the cache, and builds it once on a node that lacks it), so data is shared by the page cache, not
copied. The best trial is retrained with its config and seed (bit-identical on CPU) and K-1 more seeds for
``--repeats`` (``final``): the test split is touched only there. A reference recipe (``--recipe``) is not
searched: its config is trained once with the run's seed (validated every epoch, the study's one trial)
and tested.
"""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from pathlib import Path

from benchmark import data, records
from benchmark.errors import BenchError
from benchmark.files import make_dir
from benchmark.search import session, studies
from benchmark.search import tune as tune_wiring
from benchmark.search.final import Final, final_evaluation
from benchmark.search.spec import RunSpec, experiment_name
from benchmark.search.validate import Checked, check, fixed_by_spec

__all__ = ["Outcome", "RunSpec", "SearchFailed", "check", "plan", "run", "search"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What ``run`` did: the run directory, every search that finished, and those that failed."""

    run_dir: Path
    results: tuple[records.SearchResult, ...]
    failures: tuple[str, ...] = ()


class SearchFailed(BenchError):
    """Every trial of a search failed: a clear message and exit code 2, after the other searches."""


def _searches(checked: Checked, task) -> list[tuple[str, object]]:
    """The (model, recipe or None) searches of one task, in the order they run."""
    from benchmark.recipes import get_recipe

    spec = checked.spec
    return [(model, None) for model in spec.models] + [
        (r.model, r) for r in map(get_recipe, spec.recipes) if r.applies_to(task.name)]


def plan(checked: Checked) -> str:
    """What the run will do, in a few lines: tasks x models x trials, the epoch cap, the data sizes and
    the resources (``bench run`` prints it before Ray starts)."""
    spec = checked.spec
    lines = []
    searched = recipes = 0
    for task in checked.tasks:
        sizes = data.resolve_sizes(task, checked.sources[task.name], spec.sizes)
        mine = _searches(checked, task)
        n_recipes = sum(r is not None for _, r in mine)
        searched, recipes = searched + len(spec.models), recipes + n_recipes
        lines.append(f"  {task.name} ({checked.sources[task.name].value}: {_rows(sizes.train)} train / "
                     f"{_rows(sizes.val)} val / {_rows(sizes.test)} test rows): {' '.join(spec.models)}"
                     + (f", then {n_recipes} reference recipe(s)" if n_recipes else ""))
    where = spec.address or "a local Ray"
    total = searched * spec.trials
    head = (f"plan: {len(checked.tasks)} task(s) x {len(spec.models)} model(s) x {spec.trials} trials = {total:,} "
            f"trials{f' + {recipes} recipe run(s)' if recipes else ''}; sampler {spec.sampler}, scheduler "
            f"{spec.scheduler}, at most {spec.max_epochs} epochs per trial; {spec.cpus_per_trial:g} CPU"
            f"{f' + {spec.gpus_per_trial:g} GPU' if spec.gpus_per_trial else ''} per trial on {where}; best config "
            f"tested with {spec.repeats} seed(s); run directory {checked.run_dir}")
    return "\n".join([head, *lines, "  (an estimate for the whole run follows once trials have finished)"])


def _rows(n) -> str:
    return "all" if n is None else f"{n:,}"


def run(spec: RunSpec) -> Outcome:
    """Run every (task, model) search of ``spec``; a search whose every trial failed is reported in
    ``failures`` and the others go on. Publishing is apart: ``benchmark.publish.leaderboard.update``."""
    from benchmark.recipes import study_name

    checked = check(spec)
    print(plan(checked), flush=True)  # stdout: the error a bad address gets stays one line on stderr
    tune_wiring.stop_on_sigterm()
    session.init_ray(spec)  # before the run directory exists: an unreachable cluster leaves nothing behind
    tune_wiring.stop_on_sigterm()  # after Ray's start, which installs its own handler
    run_dir = make_dir(checked.run_dir, fix="pass a writable --runs-dir")
    spec_json = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()}
    records.append_invocation(run_dir, records.Invocation.now(spec.argv, spec_json))
    results, failures = [], []
    clock = tune_wiring.RunClock(len(checked.tasks) * len(spec.models) * spec.trials)
    for task in checked.tasks:
        source = checked.sources[task.name]
        if spec.source == "auto" and source is data.Source.SYNTHETIC:
            print(f"NOTE {task.name}: no real files in {data.raw_dir(task, spec.data_root)}: using SYNTHETIC data "
                  f"(`bench data fetch {task.name}` or --source real for the real set)", file=sys.stderr)
        prep = dict(task_name=task.name, source=source.value, root=str(spec.data_root), seed=spec.seed,
                    sizes=spec.sizes)
        prepared = data.prepare_shared(**prep, progress=True)
        prep["path"] = str(prepared.path)  # trials on this node open it directly (no re-hashing)
        for model, recipe in _searches(checked, task):
            label = study_name(model, recipe)
            study = records.StudyDir.of(run_dir, task.name, label)
            if study.finished:
                print(f"{task.name} / {label}: already finished, kept", file=sys.stderr)
                results.append(study.read_result())
                if recipe is None:
                    clock.total -= spec.trials
                continue
            try:
                results.append(_search(spec, task, model, checked.spaces.get(model), prepared, prep, study, clock)
                               if recipe is None else _reference(spec, task, recipe, prepared, prep, study))
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


def _reference(spec: RunSpec, task, recipe, prepared, prep: dict, study: records.StudyDir) -> records.SearchResult:
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
    study.path.mkdir(parents=True, exist_ok=True)
    print(f"{task.name} / {study_name(recipe.model, recipe)}: the recipe trained once "
          f"({config.get('epochs', 1)} epoch(s) at most), then tested", file=sys.stderr)
    t0 = time.perf_counter()
    alone = dataclasses.replace(spec, repeats=1, cpus_per_trial=session.lone_task_cpus(spec))
    final = final_evaluation(alone, recipe.model, config, prep, curve=True)
    wall = time.perf_counter() - t0
    curve = final.curve
    trial = records.TrialRecord(
        trial_id="recipe", status="completed", config=config, seed=spec.seed,
        best_val_auc=max(e.val_auc for e in curve), epochs=len(curve), wall_s=final.test.first.train_s,
        precision=final.precision, curve=curve)
    study.write_trials([trial])
    return _record(alone, task, recipe.model, prepared, study, [trial], trial, final, wall, recipe)


def _search(spec: RunSpec, task, model: str, space, prepared, prep: dict, study: records.StudyDir,
            clock: tune_wiring.RunClock | None = None) -> records.SearchResult:
    """One search of ``model`` on ``task``, whose first trial is the model's default config (as far as the
    space has it), then its best configuration tested with ``spec.repeats`` seeds."""
    import functools

    import optuna
    from ray import tune

    from benchmark.models import get_model_class

    cls = get_model_class(model)
    label = model
    space = space.with_fixed(**fixed_by_spec(spec, cls, space))
    study_dir = study.path
    study_dir.mkdir(parents=True, exist_ok=True)
    space.dump(study.file(records.SPACE))
    log = study.log()
    if spec.resume and (study_dir / "curves.jsonl").is_file() and not log.path.is_file():
        raise BenchError(f"{study_dir}: a search begun by an older hepbench (curves.jsonl); {records.REBUILD}")
    optuna.logging.set_verbosity(optuna.logging.INFO if spec.verbose else optuna.logging.WARNING)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA's rung of only failed trials
    if not spec.verbose:  # Ray times every define-by-run call and warns about slow ones
        warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space` argument")
        # a retried trial reports its epochs to the Optuna trial again: Optuna keeps the first value
        warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    scheduler = tune_wiring.make_scheduler(spec.scheduler, log, has_fidelity=cls.fidelity is not None,
                                           max_t=spec.max_epochs)
    trainable = tune.with_resources(
        functools.partial(tune_wiring.trial, model_name=model, prep=prep, seed=spec.trial_seed, costs=spec.costs),
        {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})
    progress = tune_wiring.Progress(str(study_dir), f"{task.name} / {label}", spec.trials, log, cls.curve_keys, clock,
                                    getattr(scheduler, "pruned", None))
    if spec.storage is None:
        storage_path, experiment = str(study_dir), records.TUNE_DIR
    else:  # one experiment per (run, task, model) under the shared location
        storage_path, experiment = spec.storage, experiment_name(spec, task.name, label)
    tune_dir = f"{storage_path.rstrip('/')}/{experiment}"
    journal = studies.path(study_dir)
    if spec.resume and tune.Tuner.can_restore(tune_dir):
        # Tune unpickles its callbacks: the pickled Progress becomes this one (tune.Progress.__reduce__)
        tuner = tune.Tuner.restore(tune_dir, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        journal.unlink(missing_ok=True)  # a search killed before Tune's first checkpoint starts afresh
        first = space.point(cls.default_config)  # the model's defaults, as far as the space has them
        points = [dict(p) for p in spec.points] or ([first] if first else None)
        sampler_seed = spec.seed if spec.sampler_seed is None else spec.sampler_seed
        searcher = tune_wiring.tagged_search(space, spec.sampler, sampler_seed, f"{task.name}-{label}", study_dir,
                                             points)
        concurrency = spec.concurrency or max(1, session.trial_slots(spec))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.trials,
                                        max_concurrent_trials=concurrency, reuse_actors=True),
            run_config=tune.RunConfig(name=experiment, storage_path=storage_path, verbose=1 if spec.verbose else 0,
                                      callbacks=[progress],
                                      failure_config=tune.FailureConfig(max_failures=tune_wiring.TRIAL_RETRIES)))
    t_fit = time.perf_counter()
    with tune_wiring.StopWatch() as interrupt:
        results = tuner.fit()
    t_fit = time.perf_counter() - t_fit
    progress.close()
    tune_wiring.stop_on_sigterm()  # Tune put back the handler it found; ours again, for the test evaluation
    if interrupt.happened:  # Ray returns normally after Ctrl-C or SIGTERM, the unfinished trials marked stopped
        how = "terminated (SIGTERM)" if interrupt.signum == tune_wiring.signal.SIGTERM else "interrupted"
        raise tune_wiring.Stopped(f"{task.name} / {label} {how}", interrupt.signum)
    trials = tune_wiring.trial_records(results, log, spec.trial_seed)
    study.write_trials(trials)
    done = [t for t in trials if t.status in ("completed", "pruned") and t.best_val_auc is not None]
    if not done:
        reasons = {t.error for t in trials if t.error}
        raise SearchFailed(f"{task.name} / {label}: every trial failed ({'; '.join(sorted(reasons))[:500]}); "
                           f"see {study.file(records.TRIALS)}")
    best = max(done, key=lambda t: t.best_val_auc)
    print(f"{task.name} / {label}: best val AUC {best.best_val_auc:.4f} ({len(done)} trials); "
          f"evaluating on test ({spec.repeats} seed(s))", file=sys.stderr)
    config = cls.as_computed(best.config, best.precision)  # the test evaluation computes as the search did
    final = final_evaluation(spec, model, config, prep)
    return _record(spec, task, model, prepared, study, trials, best, final, t_fit)


def _record(spec: RunSpec, task, model: str, prepared, study: records.StudyDir, trials, best, final: Final,
            wall_s: float, recipe=None) -> records.SearchResult:
    """Write a finished study's test arrays and its result (the last file: a study with one is done)."""
    from benchmark.models import get_model_class

    study.write_artifact("roc", final.roc)
    for name, arrays in final.artifacts.items():
        study.write_artifact(name, arrays)
    searched = recipe is None and get_model_class(model).fidelity is not None
    result = records.SearchResult(
        task=task.name, model=model, source=prepared.manifest["source"],
        data=records.DataManifest.of_prepared(prepared.manifest),
        sampler=spec.sampler if recipe is None else "none", scheduler=spec.scheduler if searched else "none",
        seed=spec.seed, trials={s: sum(t.status == s for t in trials) for s in records.STATUSES},
        best_trial=best.trial_id, best_config=best.config, val_auc=best.best_val_auc, test=final.test,
        n_parameters=final.n_parameters, search_wall_s=wall_s, trial_time_s=sum(t.wall_s or 0 for t in trials),
        epochs_trained=sum(t.epochs or 0 for t in trials),
        resources_per_trial={"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
        device=final.device, precision=final.precision, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        recipe=None if recipe is None else recipe.name, protocol=spec.protocol)
    study.write_result(result)
    return result
