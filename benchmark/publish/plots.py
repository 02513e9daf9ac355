"""Leaderboard figures: every model's test ROC on one task, and VAE reconstructions beside the originals.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: no display is needed, no global figure state leaks between calls, and importing this
module does not switch the backend of a caller's interactive session. Files are written atomically
(temporary file, then ``os.replace``), so a leaderboard reader never sees half a PNG.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from benchmark.tasks import get_task
    >>> y = np.r_[np.zeros(50), np.ones(50)]
    >>> s = y + np.random.default_rng(0).normal(size=100)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "roc.png"
    >>> roc_figure(get_task("ee_gamma"), {"demo": (y, s)}, out).stat().st_size > 0
    True
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark import metrics
from benchmark.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from benchmark.tasks import TaskSpec

__all__ = ["figure", "recon_figure", "roc_figure", "save"]


def roc_figure(task: TaskSpec, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Every model's test ROC of ``task`` in one PNG at ``path``; returns ``path``.

    ``curves`` maps a legend label to ``(y, score)`` (test labels and scores, higher = label 1).
    Left: the HEP view, signal efficiency against background rejection ``1 / eps_B`` on a log axis;
    right: the usual true- against false-positive rate. Legend entries are ordered by AUC.
    """
    if not curves:
        raise ValueError(f"{task.name}: no ROC curves to draw")
    bkg, sig = task.class_names
    ranked = sorted(((metrics.roc_auc(y, s), label, y, s) for label, (y, s) in curves.items()),
                    key=lambda item: (-item[0], item[1]))
    fig = figure(figsize=(13, 5.2))
    hep, roc = fig.subplots(1, 2)
    eff = np.linspace(0.005, 1.0, 400)
    for i, (auc, label, y, s) in enumerate(ranked):
        fpr, tpr, _ = metrics.roc_curve(y, s)
        style = dict(color=f"C{i % 10}", lw=1.6, label=f"{label} (AUC {auc:.3f})")
        rejection = _rejection(fpr, tpr, eff)
        note = "" if np.isfinite(rejection).any() else ", no background passes: $1/\\epsilon_B = \\infty$"
        hep.plot(eff, rejection, **{**style, "label": style["label"][:-1] + note + ")"})
        roc.plot(fpr, tpr, **style)
    for k, working_point in enumerate(metrics.REJECTION_EFFICIENCIES.values()):  # the table's columns
        hep.axvline(working_point, color="grey", ls="--", lw=0.8, label=None if k else "tabled $\\epsilon_S$")
    hep.plot(eff, 1.0 / eff, "k:", lw=1, label="random guess")
    roc.plot([0, 1], [0, 1], "k:", lw=1, label="random guess")
    hep.set(yscale="log", xlim=(0, 1), title="HEP view (higher is better)",
            xlabel=f"signal efficiency $\\epsilon_S$ ({sig} kept)",
            ylabel=f"background rejection $1/\\epsilon_B$ ({bkg})")
    roc.set(xlim=(0, 1), ylim=(0, 1.01), title="ROC (upper left is better)",
            xlabel=f"false positive rate ({bkg} taken as {sig})",
            ylabel=f"true positive rate ({sig} taken as {sig})")
    for ax in (hep, roc):
        ax.grid(alpha=0.3, which="both")
    hep.legend(fontsize=8, loc="upper right")
    roc.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{task.name}: test ROC of each model's best configuration (signal = label 1 = {sig})")
    return save(fig, path)


def _rejection(fpr: np.ndarray, tpr: np.ndarray, eff: np.ndarray) -> np.ndarray:
    """``1 / eps_B`` at each signal efficiency in ``eff`` (in (0, 1]), read off the piecewise-linear
    ROC as :func:`metrics.background_rejection` does, so the curve passes through the table's values.
    NaN where no background passes (infinite rejection: nothing to draw on a log axis)."""
    eps_b = metrics.background_efficiency(fpr, tpr, eff)
    with np.errstate(divide="ignore"):
        return np.where(eps_b > 0, 1.0 / eps_b, np.nan)


def recon_figure(task: TaskSpec, recon_by_model: Mapping[str, Mapping[str, np.ndarray]], path: Path, *,
                 per_class: int = 3) -> Path:
    """Test images beside their VAE reconstructions, one block per channel, in one PNG at ``path``.

    ``recon_by_model`` maps a label (e.g. ``"vae"``) to the arrays of a ``recon.npz``: ``original``
    and ``reconstructed`` ``(k, C, H, W)``, ``y`` ``(k,)`` and optionally the class means ``mean_0`` /
    ``mean_1`` ``(C, H, W)``. Up to ``per_class`` samples of each class are shown as columns, then the
    class means; every image of a channel shares one symmetric-log colour scale (see below).
    """
    from matplotlib import colormaps

    if not recon_by_model:
        raise ValueError(f"{task.name}: no reconstructions to draw")
    from matplotlib.colors import SymLogNorm

    rows, labels, means = _recon_rows(recon_by_model, per_class)
    columns = [f"{task.class_names[k]} #{int((labels[:j] == k).sum()) + 1}" for j, k in enumerate(labels)]
    columns += [f"{task.class_names[k]} mean" for k in range(2)] if means else []
    n_rows, n_cols, n_channels = len(rows), len(columns), len(task.channel_names)
    _, height, width = task.image_shape
    # cells keep roughly the image's aspect, but a many-channel task must still fit a screen or two
    cell = min(float(np.clip(1.7 * height / width, 0.9, 2.6)), max(0.9, 20.0 / (n_rows * n_channels)))
    fig = figure(figsize=(1.7 * n_cols + 1.2, (cell * n_rows + 0.5) * n_channels))
    cmap = colormaps["viridis"].with_extremes(bad="white")  # NaN: the gaps between samples
    blocks = np.atleast_1d(fig.subfigures(n_channels, 1))
    for c, (block, channel) in enumerate(zip(blocks, task.channel_names)):
        cells = np.stack([images[:, c] for _, images in rows])
        strips, centres = _strips(cells)
        # one colour scale per channel for every image of it (originals, reconstructions, class means):
        # symmetric-logarithmic, four decades below the brightest original pixel, so sparse showers stay
        # visible, an empty layer stays empty (the bottom colour) and a reconstruction's amplitude is comparable
        top = float(np.nanmax(np.abs(cells[0]))) or 1.0
        # the scale's top in the title: a nearly empty layer's scale is tiny, and its faint noise looks bright
        block.suptitle(f"channel: {channel} (colour scale top {top:.2g})", fontweight="bold")
        norm = SymLogNorm(linthresh=1e-4 * top, vmin=min(0.0, float(np.nanmin(cells[0]))), vmax=top)
        for i, (ax, (label, _)) in enumerate(zip(block.subplots(n_rows, 1, squeeze=False)[:, 0], rows)):
            ax.imshow(strips[i], norm=norm, cmap=cmap, aspect="auto", interpolation="nearest")
            ax.set_yticks([])
            # horizontal, wrapped: long labels (a recipe's name) do not run into the next row's
            ax.set_ylabel(textwrap.fill(label, 22, break_on_hyphens=False), fontsize=8, rotation=0, ha="right", va="center")
            ax.set_xticks(centres, columns if i == 0 else [], fontsize=9)
            ax.xaxis.set_ticks_position("top")
            ax.tick_params(length=0)
    fig.suptitle(f"{task.name}: test images and reconstructions (VAEs are trained on {task.class_names[0]} only)")
    return save(fig, path)


def _strips(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols, H, W)`` images -> one ``(rows, H, cols * (W + gap) - gap)`` strip per row, NaN
    gaps between columns (values unscaled); and the column centres. One image per row instead of one
    axes per cell keeps many-channel tasks fast to draw."""
    n_rows, n_cols, height, width = cells.shape
    gap = max(1, width // 8)
    padded = np.concatenate([cells, np.full((n_rows, n_cols, height, gap), np.nan)], axis=3)
    strips = padded.transpose(0, 2, 1, 3).reshape(n_rows, height, n_cols * (width + gap))[:, :, :-gap]
    return strips, np.arange(n_cols) * (width + gap) + (width - 1) / 2


def _recon_rows(recon_by_model: Mapping[str, Mapping[str, np.ndarray]], per_class: int):
    """Rows ``(label, images (n, C, H, W))``, the class of each example column, and whether the two
    class-mean columns follow (the first model's ``mean_0`` / ``mean_1``: in the original row only,
    blank in the reconstruction rows). Models usually share their test images (same data, same pick);
    a model whose originals differ gets its own "original" row."""
    rows, labels = _example_rows(recon_by_model, per_class)
    first = next(iter(recon_by_model.values()))
    if "mean_0" not in first or any(images.shape[1] != first["mean_0"].shape[0] for _, images in rows):
        return rows, labels, False
    mean = _on_grid(np.stack([first["mean_0"], first["mean_1"]]), rows[0][1].shape[-2:])
    blank = np.full_like(mean, np.nan)
    return [(label, np.concatenate([images, mean if i == 0 else blank])) for i, (label, images) in enumerate(rows)], \
        labels, True


def _example_rows(recon_by_model, per_class: int):
    rows: list[tuple[str, np.ndarray]] = []
    labels = np.zeros(0, dtype=int)
    shown = None
    for label, recon in recon_by_model.items():
        y = np.asarray(recon["y"])
        pick = np.concatenate([np.flatnonzero(y == k)[:per_class] for k in (0, 1)])
        original = np.asarray(recon["original"])[pick]
        if shown is None:
            labels = y[pick].astype(int)
        if shown is None or original.shape != shown.shape or not np.allclose(original, shown):
            rows.append(("original" if shown is None else f"original ({label})", original))
            shown = original
        rows.append((label, np.asarray(recon["reconstructed"])[pick]))
    # models that saw the image cropped or pooled differently: every row drawn on the finest one's grid
    grid = (max(images.shape[-2] for _, images in rows), max(images.shape[-1] for _, images in rows))
    return [(label, _on_grid(images, grid)) for label, images in rows], labels


def _on_grid(images: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """``(..., h, w)`` images on an ``(H, W)`` grid, each pixel repeated (nearest neighbour): a 2x-pooled
    image's pixel covers 2x2 cells of the unpooled one's."""
    (h, w), (H, W) = images.shape[-2:], grid
    return images[..., np.arange(H) * h // H, :][..., np.arange(W) * w // W]


def figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib figure on the Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """``fig`` as a PNG at ``path``, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
