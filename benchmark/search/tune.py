"""Ray Tune's side of a search: the trainable (one trial), the Optuna searcher over the study's journal,
the scheduler that logs the trials it stops, the live progress line, and the signals that stop a search
cleanly. ``benchmark.search.runner`` puts them together; this module imports Ray Tune.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from benchmark import data, records
from benchmark.errors import ConfigError, DivergedError, one_line
from benchmark.search import session, studies
from benchmark.strategies import ASHA, OBJECTIVE, make_sampler

# Retries of a failed trial (Tune's FailureConfig.max_failures), for lost nodes and actors. A config that
# fails by itself (diverged loss, out of memory) ends its trial as failed at once (see trial); any other
# exception in a trial looks like a lost node to Tune and runs 1 + TRIAL_RETRIES times.
TRIAL_RETRIES = 2


class Tagger:
    """The define-by-run search space: suggests a config, and writes Ray Tune's id of the trial being
    suggested on the Optuna trial (``records.TUNE_ID``), so the two stores join by id."""

    def __init__(self, space) -> None:
        self.space, self.current = space, None

    def __call__(self, ot_trial):
        ot_trial.set_user_attr(records.TUNE_ID, self.current)
        return self.space.suggest(ot_trial)


class TaggedSearch(OptunaSearch):
    """Ray's OptunaSearch that tags each Optuna trial with Tune's id and keeps the journal in step with its
    checkpoints (see :func:`tagged_search`)."""

    def __init__(self, tagger: Tagger, journal: Path, **kwargs) -> None:
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


def tagged_search(space, sampler: str, seed: int, study_name: str, study_dir: Path, points_to_evaluate=None):
    """Ray's OptunaSearch over the study directory's journal (:mod:`benchmark.search.studies`), tagging each
    Optuna trial with Tune's id; its checkpoints remember how far the journal went, and a restore cuts
    the journal back to that point before the study reads it."""
    return TaggedSearch(Tagger(space), studies.path(study_dir), metric=OBJECTIVE.running, mode=OBJECTIVE.mode,
                        sampler=make_sampler(sampler, seed), study_name=study_name,
                        storage=studies.storage(study_dir), points_to_evaluate=points_to_evaluate)


def trial(config: dict, *, model_name: str, prep: dict, seed: int, costs: bool = False) -> None:
    """One Tune trial: build the model from its config, train, report every epoch; with ``costs``, the
    config's parameters, FLOPs and latency (``benchmark.costs``, measured first) in every report."""
    from benchmark.models import create_model
    from benchmark.costs import measure

    prepared = data.prepare_shared(**prep)
    train, val = prepared.split(data.Split.TRAIN), prepared.split(data.Split.VAL)
    plan = session.trial_plan()
    node = ray.get_runtime_context().get_node_id()
    best, last_epoch, precision, cost = -math.inf, 0, None, {}

    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        nonlocal best, last_epoch
        best, last_epoch = max(best, float(metrics[OBJECTIVE.name])), epoch
        tune.report({**metrics, "epoch": epoch, OBJECTIVE.running: best, "node_id": node, "precision": precision,
                     **cost})

    try:
        model = create_model(model_name, prepared.task, config, seed=seed, plan=plan)
        precision = model.precision
        cost = measure(model) if costs else {}
        model.fit(train, val, report=report)
    except Exception as e:
        reason = config_failure(e)
        if reason is None:
            raise  # Tune retries it: a lost node or actor looks the same from here
        # the same config would fail the same way again: one last result says so, and the trial ends
        tune.report({OBJECTIVE.running: math.nan, "failed": reason, "epoch": last_epoch, "node_id": node})


def config_failure(e: BaseException) -> str | None:
    """One line if ``e`` is a failure of the configuration itself (diverged loss, out of memory, a config
    the model refuses), which a retry would only repeat; None for anything else."""
    text = str(e).lower()
    out_of_memory = isinstance(e, MemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))
    if isinstance(e, (DivergedError, ConfigError)) or out_of_memory:
        return one_line(e, typed=True, last_line=True)
    return None
def trial_records(results, log: records.TrialLog, seed: int) -> list[records.TrialRecord]:
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
            best_val_auc=None if failed else m.get(OBJECTIVE.running), epochs=len(curve) or m.get("training_iteration"),
            wall_s=m.get("time_total_s"), node_id=m.get("node_id"), hostname=m.get("hostname"),
            retries=retries.get(trial_id, 0), precision=m.get("precision"),
            error=one_line(r.error, typed=True, last_line=True) if r.error else m.get("failed"), curve=curve,
            costs={k: v for k, v in m.items() if k.startswith(records.COST)}))
    return sorted(trials, key=lambda t: t.trial_id)


class LoggedASHA(ASHAScheduler):
    """Ray Tune's ASHA with ``strategies.ASHA``'s settings over the epochs, writing every trial it stops
    before ``max_t`` into the search's trial log (which survives a kill of the driver)."""

    def __init__(self, log: records.TrialLog, max_t: int) -> None:
        super().__init__(time_attr="training_iteration", metric=OBJECTIVE.running, mode=OBJECTIVE.mode, max_t=max_t,
                         grace_period=ASHA.grace_period, reduction_factor=ASHA.reduction_factor)
        self.log, self.max_t, self.pruned = log, max_t, log.read()[2]  # a resume: the trials stopped before

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == "STOP" and result.get("epoch", 0) < self.max_t:
            self.pruned.add(trial.trial_id)
            self.log.pruned(trial.trial_id, result.get("epoch", 0))
        return decision

    def pruned_ids(self) -> set[str]:
        return set(self.pruned)


def make_scheduler(name: str, log: records.TrialLog, *, has_fidelity: bool, max_t: int):
    """``asha`` for a model with a fidelity (:class:`LoggedASHA`); FIFO (every trial runs its full budget)
    otherwise."""
    if name == "asha" and has_fidelity:
        return LoggedASHA(log, max_t)
    return FIFOScheduler()


class Stopped(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM (how SLURM and Kubernetes preempt a job) stopped the run; finished trials
    are kept and ``--resume`` continues it."""

    def __init__(self, message: str = "interrupted", signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum


class StopWatch:
    """Stops ``tuner.fit()`` on Ctrl-C or SIGTERM the same way and tells afterwards whether it did.

    Tune's SIGINT handler ends the run gracefully and, on the first Ctrl-C only, puts back the handler
    that was installed before ``fit``: we install a sentinel there (which behaves like Python's default)
    and look for it afterwards. SIGTERM is turned into that same SIGINT (without a handler of ours, Ray's
    native one would print a stack dump and the process would die mid-write)."""

    def __enter__(self):
        self.happened, self.signum = False, signal.SIGINT
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGINT, self._sentinel)
            signal.signal(signal.SIGTERM, self._term)
        return self

    @staticmethod
    def _sentinel(signum, frame):
        raise Stopped()

    def _term(self, signum, frame):
        self.signum = signal.SIGTERM
        signal.raise_signal(signal.SIGINT)  # whoever handles SIGINT now (Tune, or the sentinel) stops

    def __exit__(self, *exc):
        if self.active:
            self.happened = signal.getsignal(signal.SIGINT) is self._sentinel
            signal.signal(signal.SIGINT, self.previous[0])
            signal.signal(signal.SIGTERM, self.previous[1])
        return False


def stop_on_sigterm() -> None:
    """Outside ``tuner.fit`` (data preparation, the test evaluation), SIGTERM stops the run as Ctrl-C does."""
    def handler(signum, frame):
        raise Stopped("terminated (SIGTERM)", signal.SIGTERM)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


class RunClock:
    """The whole run's progress: its trials so far and to come, for an estimate of the run's end."""

    def __init__(self, total_trials: int) -> None:
        self.t0, self.total, self.finished, self.busy_s = time.time(), total_trials, 0, 0.0

    def eta(self, finished_here: int, elapsed_here: float) -> float:
        """Seconds left in the whole run at this search's pace so far (``nan`` before a trial ends)."""
        done = self.finished + finished_here
        if not done:
            return math.nan
        return (self.busy_s + elapsed_here) / done * (self.total - done)


_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # study directory -> this driver's Progress


def _live(key: str):
    """The driver's own :class:`Progress` of a study: what a restored experiment's pickled callback
    becomes (Tune pickles callbacks into its experiment state, with their counters of that time)."""
    return _LIVE.get(key) or Progress(key, "restored", 0, None, (), None)


class Progress(tune.Callback):
    """A live status line instead of Ray's tables: trials done / total, running, pruned, failed, best, the
    search's and the whole run's ETA; and every reported epoch into the search's trial log."""

    def __init__(self, key: str, label: str, total: int, log: records.TrialLog | None, curve_keys: tuple[str, ...],
                 clock: RunClock | None, pruned: set[str] | None = None) -> None:
        self.key, self.label, self.total, self.log, self.curve_keys = key, label, total, log, curve_keys
        self.clock, self.pruned = clock, pruned if pruned is not None else set()
        self.t0, self.last_print, self.tty = time.time(), 0.0, sys.stderr.isatty()
        self.done: set[str] = set()  # Ray calls on_trial_complete before it sets the status
        self.failed: set[str] = set()
        _LIVE[key] = self

    def __reduce__(self):
        return _live, (self.key,)

    def finished(self) -> int:
        return len(self.done | self.failed)

    def _show(self, trials, force=False):
        now = time.time()
        if not force and not self.tty and now - self.last_print < 15:
            return
        self.last_print = now
        failed_ids = self.failed | {t.trial_id for t in trials if t.status == "ERROR"}
        done = len((self.done | {t.trial_id for t in trials if t.status == "TERMINATED"}) - failed_ids)
        failed = len(failed_ids)
        running = sum(t.status == "RUNNING" and t.trial_id not in self.done | self.failed for t in trials)
        best = max((t.last_result[OBJECTIVE.running] for t in trials
                    if math.isfinite((t.last_result or {}).get(OBJECTIVE.running, math.nan))), default=None)
        elapsed = now - self.t0
        finished = done + failed
        eta = elapsed / finished * (self.total - finished) if finished else float("nan")
        run_eta = f", run ETA {hms(self.clock.eta(finished, elapsed))}" if self.clock is not None and \
            self.clock.total > self.total else ""
        line = (f"{self.label}: {finished}/{self.total} trials | running {running} | pruned {len(self.pruned)} | "
                f"failed {failed} | best val AUC {'-' if best is None else f'{best:.4f}'} | {hms(elapsed)} elapsed, "
                f"ETA {hms(eta)}{run_eta}")
        print(("\r" + line.ljust(120)) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "failed" in result:  # the trial's config failed (see trial): no epoch to record
            self.failed.add(trial.trial_id)
            return
        self.log.step(trial.trial_id, records.Epoch(
            epoch=int(result["epoch"]), val_auc=float(result[OBJECTIVE.name]), wall_s=result.get("time_this_iter_s"),
            reported_at=time.time(),  # the driver's clock: `bench perf` times trials by it
            node_id=result.get("node_id"), metrics={k: result[k] for k in self.curve_keys if k in result}))
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done.add(trial.trial_id)
        self._show(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed.add(trial.trial_id)
        print(f"\n{self.label}: trial {trial.trial_id} failed ({last_error(trial)})", file=sys.stderr)
        self._show(trials, force=True)

    def on_trial_recover(self, iteration, trials, trial, **info):  # Tune retries it from the start
        self.log.retry(trial.trial_id)
        print(f"\n{self.label}: trial {trial.trial_id} failed ({last_error(trial)}); retrying it from the start "
              f"({trial.num_failures}/{TRIAL_RETRIES})", file=sys.stderr, flush=True)

    def close(self):
        if self.tty:
            print(file=sys.stderr)
        if self.clock is not None:
            self.clock.finished += self.finished()
            self.clock.busy_s += time.time() - self.t0


def last_error(trial) -> str:
    """The trial's latest exception as one line (Tune's own traceback is printed only with --verbose)."""
    try:
        error = trial.get_pickled_error() or trial.get_error()  # Tune's record of its own trial
        return one_line(error, typed=True, last_line=True) if error else "see trials.json"
    except Exception:  # best effort, for the message only
        return "see trials.json"


def hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
