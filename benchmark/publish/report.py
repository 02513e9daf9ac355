"""``bench report RUN_DIR``: a run's HPO report, PNGs and a short Markdown page in ``RUN_DIR/report/``.

Per search (``<run>/<task>/<model>/``, see :mod:`benchmark.search.runner`)::

    hpo_<task>_<model>.png     best-so-far validation AUC against trials and against wall time; Optuna's
                               fANOVA parameter importances; training and validation loss of every
                               trial (pruned ones dashed); the parallel-coordinate view of the
                               sampled parameters, coloured by validation AUC
    latent_<task>_<model>.png  VAEs: the test set's posterior means projected to 2-D (PCA) by class

Per task, robustness as the HCAL reference solution checked it::

    robustness_<task>.png      each model's test AUC in quantile bins of the task's first auxiliary
                               variable (jet pt, total energy, cluster energy, lumisection)
    holdout_hcal_dqm.png       the best model retrained with a lumisection range left out of training
                               *and* validation altogether, tested on that range, beside the same
                               test samples scored by the model that saw the range in training

Everything is read from the run directory; only the hold-out retrains (``holdout=False`` skips it).
The test split is used for reporting only: nothing here feeds back into a search.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmark import metrics, records
from benchmark.errors import BenchError
from benchmark.files import atomic_write_text, make_dir
from benchmark.publish.plots import figure, save
from benchmark.text import markdown
from benchmark.tasks import find_task

__all__ = ["write_report"]

N_BINS, N_HOLDOUT, N_BOOT = 5, 3, 200


def write_report(run_dir: Path, out_dir: Path | None = None, *, holdout: bool = True) -> Path:
    """Write the report of ``run_dir`` into ``out_dir`` (default ``run_dir/report``); returns report.md."""
    run_dir = Path(run_dir)
    studies = [s.path for s in records.studies(run_dir) if s.file(records.TRIALS).is_file()]
    if not studies:
        raise BenchError(f"{run_dir}: no finished search in it (no <task>/<model>/trials.json): "
                         "pass a run directory written by `bench run`, e.g. runs/<name>")
    out = Path(out_dir) if out_dir else run_dir / "report"
    make_dir(out, fix="pass a writable --out")
    parts = [f"# HPO report: run `{run_dir.name}`\n",
             "Validation AUC drives the search; test AUC is measured once, for the best configuration. "
             "Robustness tables are on the test split.\n"]
    for task_name in dict.fromkeys(s.parent.name for s in studies):
        mine = [s for s in studies if s.parent.name == task_name]
        parts.append(f"## {task_name}\n\n" + _summary_table(mine))
        for study in mine:
            parts.append(_study_section(study, out))
        parts.append(_robustness_section(task_name, mine, out))
        task = find_task(task_name)  # None for a task this version does not know: no task-specific sections
        if holdout and task is not None and task.holdout_aux:
            parts.append(_holdout_section(run_dir, task, mine, out))
    path = out / "report.md"
    atomic_write_text(path, "\n".join(p for p in parts if p))
    return path


def _result(study: Path) -> records.SearchResult | None:
    study = records.StudyDir(study)
    return study.read_result() if study.finished else None


def _summary_table(studies: list[Path]) -> str:
    lines = [("model", "trials completed / pruned / failed", "best val AUC", "test AUC [95% CI]")]
    for s in studies:
        trials, result = records.read_trials(s), _result(s)
        counts = "/".join(str(sum(t.status == k for t in trials)) for k in records.STATUSES)
        if result:
            t = result.test.first
            lines.append((s.name, counts, f"{result.val_auc:.4f}", f"{t.auc:.4f} [{t.auc_low:.3f}, {t.auc_high:.3f}]"))
        else:
            lines.append((s.name, counts, "-", "not evaluated"))
    return markdown(lines) + "\n"


# --- one search ----------------------------------------------------------------------------------

def _study_trials(study: Path):
    """The Optuna study and its trials in the order they were asked, joined with Tune's records
    (status, curves) by Tune's trial id (``records.TUNE_ID``; by equal parameters for a study of schema 1,
    which did not record it); ``(None, [])`` without a study."""
    import optuna

    from benchmark.search import studies

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tune_trials = {t.trial_id: t for t in records.read_trials(study)}
    ot = studies.load(study)
    if ot is None:
        return None, []
    joined = []
    for t in ot.trials:
        match = tune_trials.get(t.user_attrs.get(records.TUNE_ID)) or next(
            (r for r in tune_trials.values() if all(r.config.get(k) == v for k, v in t.params.items())), None)
        joined.append({"number": t.number, "params": t.params, "distributions": t.distributions,
                       "value": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                       "start": t.datetime_start, "end": t.datetime_complete,
                       "status": match.status if match else t.state.name.lower(),
                       "curve": match.curve if match else ()})
    return ot, joined


def _study_section(study: Path, out: Path) -> str:
    task, model = study.parent.name, study.name
    ot, trials = _study_trials(study)
    if ot is None:
        return f"### {model}\n\nNo Optuna study in {study}.\n"
    with_curves = any("train_loss" in c.metrics for t in trials for c in t["curve"])
    fig = figure(figsize=(16, 9))
    if with_curves:
        (hist_n, hist_t, imp), (train_ax, val_ax, par) = fig.subplots(2, 3)
    else:  # a classical model trains in one step: no loss panels to draw
        (hist_n, hist_t), (imp, par) = fig.subplots(2, 2)
    _importances(ot, imp)
    _parallel(trials, par, fig)
    notes = [_history(trials, hist_n, hist_t),
             _curves(trials, train_ax, val_ax) if with_curves else "No loss curves: the model trains in one step."]
    fig.suptitle(f"{task} / {model}: {len(trials)} trials")
    name = f"hpo_{task}_{model.replace(':', '_')}.png"
    save(fig, out / name)
    text = f"### {model}\n\n![HPO {task} {model}]({name})\n"
    text += "".join(f"\n{n}\n" for n in notes if n)
    latent = records.StudyDir(study).artifact("latent")
    if latent.is_file():
        lname = f"latent_{task}_{model}.png"
        _latent(task, model, latent, out / lname)
        text += f"\n![latent space]({lname})\n"
    return text


def _history(trials: list[dict], by_n, by_t) -> str:
    done = [t for t in trials if t["value"] is not None]
    if not done:
        return "No trial finished with a validation AUC."
    t0 = min(t["start"] for t in trials if t["start"])
    x_n = np.array([t["number"] + 1 for t in done])
    x_t = np.array([(t["end"] - t0).total_seconds() / 60 for t in done])
    v = np.array([t["value"] for t in done])
    pruned = np.array([t["status"] == "pruned" for t in done])
    for ax, x, label in ((by_n, x_n, "trial"), (by_t, x_t, "wall time since the first trial [min]")):
        order = np.argsort(x, kind="stable")
        ax.plot(x[order], np.maximum.accumulate(v[order]), "C3-", drawstyle="steps-post", label="best so far")
        ax.scatter(x[~pruned], v[~pruned], s=18, c="C0", label="completed")
        ax.scatter(x[pruned], v[pruned], s=18, facecolors="none", edgecolors="C1", label="pruned (at its last epoch)")
        ax.set(xlabel=label, ylabel="best validation AUC of the trial", title="optimisation history")
        ax.grid(alpha=0.3)
    by_n.legend(fontsize=8)
    return ""


def _importances(ot, ax) -> None:
    import optuna

    try:
        imp = optuna.importance.get_param_importances(ot, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as e:  # too few trials, or a single point per parameter
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no importances:\n{str(e)[:80]}", ha="center", va="center", wrap=True, fontsize=9)
        return
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names], color="C2")
    ax.set(xlabel="fANOVA importance (share of the variance of the val AUC)", title="parameter importances")
    ax.grid(alpha=0.3, axis="x")


def _curves(trials: list[dict], train_ax, val_ax) -> str:
    best = max((t for t in trials if t["value"] is not None), key=lambda t: t["value"], default=None)
    for t in trials:
        curve = t["curve"]
        if not curve:
            continue
        epochs = [c.epoch for c in curve]
        style = dict(ls="--" if t["status"] == "pruned" else "-", lw=2.2 if t is best else 0.9,
                     color="C3" if t is best else ("C1" if t["status"] == "pruned" else "C0"),
                     alpha=1.0 if t is best else 0.6, marker=".")
        for ax, key in ((train_ax, "train_loss"), (val_ax, "val_loss")):
            if all(key in c.metrics for c in curve):
                ax.plot(epochs, [c.metrics[key] for c in curve], **style)
    for ax, what in ((train_ax, "training"), (val_ax, "validation")):
        ax.set(xlabel="epoch", ylabel=f"{what} loss", title=f"{what} loss (dashed: pruned, red: best)")
        ax.grid(alpha=0.3)
    return ""


def _parallel(trials: list[dict], ax, fig) -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    done = [t for t in trials if t["value"] is not None]
    names = sorted({n for t in done for n, d in t["distributions"].items() if not d.single()})
    if not done or not names:
        ax.set_axis_off()
        return
    columns = []
    for n in names:
        dist = next(t["distributions"][n] for t in done if n in t["distributions"])
        raw = [t["params"].get(n) for t in done]
        if hasattr(dist, "choices"):
            pos = [np.nan if r is None else dist.choices.index(r) / max(1, len(dist.choices) - 1) for r in raw]
        else:
            f = (lambda x: math.log(x)) if dist.log else float
            lo, hi = f(dist.low), f(dist.high)
            pos = [np.nan if r is None else (f(r) - lo) / ((hi - lo) or 1.0) for r in raw]
        columns.append(pos)
    values = np.array([t["value"] for t in done])
    norm, cmap = Normalize(values.min(), values.max() if np.ptp(values) else values.min() + 1e-9), colormaps["viridis"]
    y = np.array(columns).T
    for i in np.argsort(values):
        ax.plot(range(len(names)), y[i], color=cmap(norm(values[i])), lw=1.2, alpha=0.8)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set(ylim=(-0.05, 1.05), ylabel="position in the search range", title="parallel coordinates")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="validation AUC")


def _latent(task_name: str, model: str, path: Path, out: Path) -> None:
    from benchmark.tasks import get_task

    with np.load(path) as f:
        mu, y = f["mu"].astype(np.float64), f["y"]
    keep = np.random.default_rng(0).permutation(len(y))[:5000]
    mu, y = mu[keep], y[keep]
    centred = mu - mu.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred[:, 0], np.zeros(len(y))]
    share = sv[:2] ** 2 / max((sv ** 2).sum(), 1e-30)
    fig = figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    names = get_task(task_name).class_names
    for k in (0, 1):
        ax.scatter(*xy[y == k].T, s=5, alpha=0.5, c=f"C{k}", label=f"{names[k]} (label {k})")
    ax.set(xlabel=f"PC 1 ({share[0]:.0%} of the variance)",
           ylabel=f"PC 2 ({share[1]:.0%})" if len(share) > 1 else "", title=f"{task_name} / {model}: test latent means")
    ax.legend(markerscale=3)
    save(fig, out)


# --- robustness ----------------------------------------------------------------------------------

def _auc_ci(y: np.ndarray, s: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    if y.min() == y.max():
        return math.nan, math.nan, math.nan
    low, high = metrics.bootstrap_auc(y, s, n_boot=N_BOOT, seed=seed)
    return metrics.roc_auc(y, s), low, high


def _fmt(auc: float, low: float, high: float) -> str:
    return "-" if math.isnan(auc) else f"{auc:.3f} [{low:.2f}, {high:.2f}]"


def _robustness_section(task_name: str, studies: list[Path], out: Path) -> str:
    from benchmark.tasks import get_task

    task = get_task(task_name)
    rocs = {}
    for s in studies:
        roc = records.StudyDir(s).read_artifact("roc")
        if roc is not None:
            rocs[s.name] = (roc["y"], roc["score"], roc["aux"][:, 0])
    if not rocs:
        return ""
    aux_name = task.aux_names[0]
    aux = next(iter(rocs.values()))[2]
    edges = np.unique(np.quantile(aux, np.linspace(0, 1, N_BINS + 1)))
    bins = [f"{lo:.4g}–{hi:.4g}" for lo, hi in zip(edges[:-1], edges[1:])]
    fig = figure(figsize=(8, 4.8))
    ax = fig.subplots()
    lines = [("model", "all", *bins)]
    centres = (edges[:-1] + edges[1:]) / 2
    for i, (model, (y, s, a)) in enumerate(rocs.items()):
        which = np.clip(np.searchsorted(edges, a, side="right") - 1, 0, len(bins) - 1)
        cells = [_auc_ci(y[which == b], s[which == b]) for b in range(len(bins))]
        lines.append((model, _fmt(*_auc_ci(y, s)), *(_fmt(*c) for c in cells)))
        auc, low, high = (np.array(v) for v in zip(*cells))
        ax.errorbar(centres + (i - len(rocs) / 2) * 0.01 * np.ptp(edges), auc, yerr=[auc - low, high - auc],
                    marker="o", capsize=3, label=model, color=f"C{i % 10}")
    ax.set(xlabel=f"{aux_name} (quantile bins of the test split)", ylabel="test AUC (95% bootstrap CI)",
           title=f"{task_name}: test AUC per {aux_name} bin")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    name = f"robustness_{task_name}.png"
    save(fig, out / name)
    return (f"### Robustness: test AUC per {aux_name} bin\n\n" + markdown(lines) + f"\n\n![robustness]({name})\n")


def _holdout_section(run_dir: Path, task, studies: list[Path], out: Path) -> str:
    """Retrain the best model (by val AUC) of the task's searches without each range of its
    ``holdout_aux`` variable (hcal_dqm: lumisections), and test it on that range only."""
    from benchmark import data
    from benchmark.devices import DevicePlan
    from benchmark.models import create_model, get_model_class

    results = [(s, _result(s)) for s in studies]
    results = [(s, r) for s, r in results if r]
    if not results:
        return ""
    study, best = max(results, key=lambda sr: sr[1].val_auc)
    invocation = records.read_run(run_dir).invocation_for(best.task, best.model)  # the one that started it
    spec = invocation.spec if invocation else {}
    prepared = data.prepare_shared(task_name=best.task, source=best.source, root=spec.get("data_root", "."),
                                   seed=best.data.seed, sizes=best.sizes)
    train, val, test = (prepared.split(s) for s in data.Split)
    plan = DevicePlan.local(gpu=best.device == "cuda")
    same_device = plan.kind == best.device  # retrained as the search computed, on the same kind of device
    config = get_model_class(best.model).as_computed(best.best_config, best.precision if same_device else None)
    seen_score = records.StudyDir(study).read_artifact("roc")["score"]
    col, aux = task.aux_names.index(task.holdout_aux), task.holdout_aux
    ls = {name: np.asarray(split.aux[:, col]) for name, split in (("train", train), ("val", val), ("test", test))}
    edges = np.quantile(np.concatenate(list(ls.values())), np.linspace(0, 1, N_HOLDOUT + 1))
    lines = [(f"{aux} range held out", "test samples", "AUC, range never seen", "AUC, range in training")]
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inside = {k: (v >= lo) & ((v <= hi) if i == N_HOLDOUT - 1 else (v < hi)) for k, v in ls.items()}
        model = create_model(best.model, prepared.task, config, seed=best.seed, plan=plan)
        model.fit(train.subset(np.flatnonzero(~inside["train"])), val.subset(np.flatnonzero(~inside["val"])))
        rows_test = np.flatnonzero(inside["test"])
        y = np.asarray(test.y)[rows_test]
        unseen = _auc_ci(y, model.score(test.subset(rows_test)))
        seen = _auc_ci(y, seen_score[rows_test])
        rows.append((lo, hi, unseen, seen))
        lines.append((f"{lo:.0f}–{hi:.0f}", len(rows_test), _fmt(*unseen), _fmt(*seen)))
    fig = figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    x = np.arange(len(rows))
    for dx, k, label in ((-0.1, 2, "range held out of training and validation"), (0.1, 3, "range in training")):
        auc, low, high = (np.array(v) for v in zip(*(r[k] for r in rows)))
        ax.errorbar(x + dx, auc, yerr=[auc - low, high - auc], marker="o", capsize=3, ls="none", label=label)
    ax.set_xticks(x, [f"{r[0]:.0f}–{r[1]:.0f}" for r in rows])
    ax.set(ylabel="test AUC (95% bootstrap CI)", xlabel=f"{aux} range",
           title=f"{task.name} / {best.model}: held-out {aux} ranges")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    name = f"holdout_{task.name}.png"
    save(fig, out / name)
    return (f"### Held-out {aux}s ({best.model}, the best by validation AUC)\n\n"
            f"Retrained with the best configuration and seed on the training split minus one {aux} range "
            "(early stopping on the validation split minus the same range), then tested on that range only.\n\n"
            + markdown(lines) + f"\n\n![hold-out]({name})\n")
