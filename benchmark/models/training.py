"""The one training loop shared by every neural model, and the base class built on it.

A neural model supplies a network for the task's image shape (:meth:`NeuralModel.build_net`) and an
:class:`Objective`: its training loss, the per-sample outputs it computes on validation data (column 0
is the score, higher = more like label 1) and the metrics made from them. Everything else is here:

* **Whole-array batching.** Each batch is a sorted slice of a seeded permutation, read straight from
  the prepared (memory-mapped) arrays with one fancy index and ``torch.from_numpy``: no ``Dataset``, no
  per-sample ``__getitem__``. On CUDA a split that fits the trial's share of the GPU
  (:meth:`DevicePlan.resident_bytes`) is copied to the GPU once; otherwise each batch goes through
  pinned memory.
* **One device plan** (:class:`benchmark.devices.DevicePlan`): device, threads, precision and GPU
  memory come from the plan the model was built with, nowhere else.
* **Input standardisation.** Per-channel mean / std of (a sample of) the training rows are folded into
  the network as fixed buffers (:class:`Standardize`), so every model sees unit-scale inputs whatever
  the task's units, and ``score`` takes the prepared arrays as they are.
* **Optimisation.** AdamW (no weight decay on biases, norms and timm's ``no_weight_decay`` names),
  linear warm-up then cosine decay per step over ``epochs``, gradient-norm clipping.
* **Precision and memory format.** bf16 autocast when the config's ``precision`` resolves to bf16
  (``auto``: where the hardware has native bf16, see :mod:`benchmark.devices`); channels-last on CUDA,
  and on CPU for the networks whose class says it was measured faster there (``cpu_channels_last``).
* **Early stopping** on ``val_auc`` with ``patience``; the best epoch's weights are kept and restored.
* ``report(epoch, metrics)`` after every epoch (epochs count from 1).
* **Determinism.** ``torch.manual_seed(seed)`` before the network is built and a NumPy generator from
  the same seed for the batch order: on CPU the same seed, precision and thread count give identical
  scores (bf16 included).
* A NaN / inf loss raises :class:`DivergedError` naming the epoch, batch and learning rate.
"""
from __future__ import annotations

import abc
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.devices import PRECISIONS, DevicePlan
from benchmark.errors import ConfigError, DivergedError
from benchmark.metrics import REJECTION_EFFICIENCIES, rejections, roc_auc
from benchmark.models.base import Model, ReportFn

if TYPE_CHECKING:
    from benchmark.data import SplitData

#: The narrowest ``width`` trained channels-last on CPU. Below it oneDNN's channels-last convolution
#: backward crashed (segfault or abort with 1 thread, a hang with 2) for resnet15 at width 4 on every
#: task shape, and not at widths 8, 12, 16 or 32 (torch 2.15, AVX2 CPU): it is the width, not the shape.
#: The VAE's convolutions trained at every width tried (4-32); the bound is kept for both, to be safe.
CPU_CHANNELS_LAST_MIN_WIDTH = 8
STATS_ELEMENTS = 1 << 23  # pixel values read to estimate the channel statistics (64 MB in float64)

#: Training keys shared by every neural model (their YAML search-space names), with defaults.
#: ``epochs`` is the maximum (the cosine schedule spans it; early stopping and ASHA may stop sooner),
#: ``patience`` counts epochs without a better ``val_auc``, ``warmup_epochs`` may be fractional (and is
#: capped at a fifth of ``epochs``, so a short budget is not spent warming up),
#: ``grad_clip`` is the maximum gradient norm (0 = no clipping), ``precision`` one of ``auto``, ``fp32``,
#: ``bf16`` (:meth:`benchmark.devices.DevicePlan.precision`); ``crop`` (a fraction of H and W, centred)
#: and ``pool`` (an average-pooling factor) shrink what the network sees (:class:`Standardize`);
#: ``lr_schedule`` is ``cosine`` (warm-up, then cosine decay) or ``constant`` (warm-up, then flat).
TRAIN_DEFAULTS: Mapping[str, Any] = {
    "lr": 1e-3, "weight_decay": 1e-2, "batch_size": 128, "epochs": 30, "patience": 5,
    "warmup_epochs": 1.0, "grad_clip": 1.0, "precision": "auto", "crop": 1.0, "pool": 1, "lr_schedule": "cosine",
}


TRANSFORMS = ("none", "asinh")  # the config key ``transform`` (:class:`Standardize`)
LR_SCHEDULES = ("cosine", "constant")  # the config key ``lr_schedule`` (:func:`warmup_cosine`)


# --- config checks (at the public edge: the model's constructor) ----------------------------------

def number(kind: type, *, low: float | None = None, high: float | None = None,
           open_low: bool = False) -> Callable[[Any], str | None]:
    """A config rule: ``kind`` (int or float) within [low, high] (``(low, ...`` when ``open_low``)."""
    def rule(value: Any) -> str | None:
        ok_type = (isinstance(value, (int, np.integer)) if kind is int
                   else isinstance(value, (int, float, np.integer, np.floating)))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            return f"must be {'an integer' if kind is int else 'a number'}"
        if low is not None and (value <= low if open_low else value < low):
            return f"must be {'>' if open_low else '>='} {low}"
        if high is not None and value > high:
            return f"must be <= {high}"
        return None
    return rule


TRAIN_RULES: Mapping[str, Callable[[Any], str | None]] = {
    "lr": number(float, low=0, open_low=True), "weight_decay": number(float, low=0),
    "batch_size": number(int, low=1), "epochs": number(int, low=1), "patience": number(int, low=1),
    "warmup_epochs": number(float, low=0), "grad_clip": number(float, low=0),
    "label_smoothing": number(float, low=0, high=0.5), "dropout": number(float, low=0, high=0.99),
    "width": number(int, low=1), "crop": number(float, low=0, high=1, open_low=True), "pool": number(int, low=1),
    "transform": lambda v: None if v in TRANSFORMS else f"must be one of {', '.join(TRANSFORMS)}",
    "lr_schedule": lambda v: None if v in LR_SCHEDULES else f"must be one of {', '.join(LR_SCHEDULES)}",
    "precision": lambda v: None if v in PRECISIONS else f"must be one of {', '.join(PRECISIONS)}",
}


def check_config(model: str, config: Mapping[str, Any], rules: Mapping[str, Callable[[Any], str | None]]) -> None:
    for key, rule in rules.items():
        if key in config and (problem := rule(config[key])):
            raise ConfigError(f"model {model!r}: config {key!r} {problem}, got {config[key]!r}")


# --- the network wrapper and the batches ---------------------------------------------------------

def viewed_shape(shape: tuple[int, int, int], crop: float = 1.0, pool: int = 1) -> tuple[int, int, int]:
    """The image shape a network sees after :class:`Standardize`'s central ``crop`` and ``pool``."""
    C, H, W = shape
    h, w = max(1, round(H * crop)), max(1, round(W * crop))
    return C, max(1, h // pool), max(1, w // pool)


class Standardize(nn.Module):
    """The fixed input map in front of every network, then ``net``: a central crop to the fraction
    ``crop`` of H and W, ``pool`` x ``pool`` average pooling (the levers users of large jet images
    use), optionally ``asinh(x / scale)`` per channel (a log-like compression of sparse, heavy-tailed
    energies that keeps sign and zero), then ``(x - mean) / std``. The statistics are buffers (saved
    with the weights, never trained); :func:`input_map` estimates them on training rows."""

    def __init__(self, net: nn.Module, mean: np.ndarray, std: np.ndarray, *, scale: np.ndarray | None = None,
                 crop: float = 1.0, pool: int = 1) -> None:
        super().__init__()
        self.net, self.crop, self.pool = net, float(crop), int(pool)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", None if scale is None else torch.as_tensor(scale, dtype=torch.float32).view(1, -1, 1, 1))

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The crop and pooling alone (in the data's units): what the network looks at."""
        if self.crop < 1.0:
            (H, W), (_, h, w) = x.shape[-2:], viewed_shape((1, *x.shape[-2:]), self.crop)
            x = x[:, :, (H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w]
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.scale is None else torch.asinh(x / self.scale)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (self.transform(self.view(x)) - self.mean) / self.std

    def unstandardize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to the data's units (of the viewed image)."""
        x = x * self.std + self.mean
        return x if self.scale is None else torch.sinh(x.clamp(-40.0, 40.0)) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def input_map(net: nn.Module, X: np.ndarray, rows: np.ndarray, rng: np.random.Generator, *, crop: float = 1.0,
              pool: int = 1, asinh: bool = False) -> Standardize:
    """``Standardize(net, ...)`` with its statistics from a random sample of ``rows`` of ``X`` (all of
    them when small enough): per channel, the asinh scale is the mean absolute value, and mean / std are
    taken after the crop, pooling and transform. A constant channel gets std (and scale) 1 rather than a
    division by zero."""
    per_sample = int(np.prod(X.shape[1:]))
    m = min(len(rows), max(16, STATS_ELEMENTS // per_sample))
    sample = torch.from_numpy(np.asarray(X[np.sort(rng.choice(rows, size=m, replace=False))], dtype=np.float32))
    C = X.shape[1]
    inp = Standardize(net, np.zeros(C, np.float32), np.ones(C, np.float32), crop=crop, pool=pool)
    viewed = inp.view(sample).double()
    if asinh:
        scale = viewed.abs().mean(dim=(0, 2, 3))
        scale[~(scale > 1e-12)] = 1.0
        inp.scale = scale.float().view(1, -1, 1, 1)
        viewed = torch.asinh(viewed / scale.view(1, -1, 1, 1))
    std = viewed.std(dim=(0, 2, 3), correction=0)
    std[~(std > 1e-8)] = 1.0  # also catches NaN; a NaN mean is left to fail loudly as a NaN loss
    inp.mean.copy_(viewed.mean(dim=(0, 2, 3)).view(1, -1, 1, 1))
    inp.std.copy_(std.view(1, -1, 1, 1))
    return inp


class Feeder:
    """Batches of rows ``rows`` of ``X`` (and labels ``y``) as tensors on the plan's device, in
    channels-last memory format when ``channels_last``.

    ``shuffled(rng)`` cuts a permutation into ``ceil(n / batch_size)`` near-equal batches (every row
    once per epoch, no tiny last batch for batch norm); ``ordered()`` walks the rows in order.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray | None, *, batch_size: int, plan: DevicePlan,
                 rows: np.ndarray | None = None, channels_last: bool = False) -> None:
        self.X, self.batch_size, self.channels_last = X, batch_size, channels_last
        self.device = device = torch.device(plan.device)
        self.rows = np.arange(len(X)) if rows is None else np.asarray(rows, dtype=np.int64)
        labels = np.zeros(len(self.rows)) if y is None else np.asarray(y)[self.rows]
        self.y = torch.from_numpy(labels.astype(np.float32)).to(device)
        self.on_gpu = None
        if plan.is_cuda and self.nbytes() <= plan.resident_bytes():
            self.on_gpu = torch.empty((len(self.rows), *X.shape[1:]), dtype=torch.float32, device=device)
            for start in range(0, len(self.rows), 4096):  # chunked: no full host copy
                self.on_gpu[start:start + 4096] = self._read(self.rows[start:start + 4096])

    def __len__(self) -> int:
        return len(self.rows)

    def n_batches(self) -> int:
        return max(1, math.ceil(len(self.rows) / self.batch_size))

    def nbytes(self) -> int:
        """The float32 size of the rows' images."""
        return len(self.rows) * int(np.prod(self.X.shape[1:])) * 4

    def _read(self, idx: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(self.X[idx], dtype=np.float32))  # fancy index: a copy
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x

    def _take(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.from_numpy(pos).to(self.device)
        x = self.on_gpu[p] if self.on_gpu is not None else self._read(self.rows[pos])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.y[p]

    def shuffled(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for chunk in np.array_split(rng.permutation(len(self.rows)), self.n_batches()):
            yield self._take(np.sort(chunk))

    def ordered(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.rows), self.batch_size):
            yield self._take(np.arange(start, min(start + self.batch_size, len(self.rows))))


def autocast(device: torch.device, precision: str):
    """bf16 autocast when ``precision`` is ``bf16`` (on either device), nothing for ``fp32``."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def predict(net: nn.Module, feeder: Feeder, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor], *,
            precision: str) -> np.ndarray:
    """``fn(net, x)`` over all rows of ``feeder`` in order, in eval mode, as one float32 array."""
    net.eval()
    out = []
    with torch.inference_mode(), autocast(feeder.device, precision):
        for x, _ in feeder.ordered():
            out.append(fn(net, x).float())
    return torch.cat(out).cpu().numpy()


# --- objectives ----------------------------------------------------------------------------------

class Objective(Protocol):
    """What a model tells the loop: how to train, what to compute per validation sample, and which
    metrics follow (``val_auc`` required). Column 0 of ``outputs`` is the model's score."""

    def loss(self, net: Standardize, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def outputs(self, net: Standardize, x: torch.Tensor) -> torch.Tensor: ...

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]: ...


@dataclasses.dataclass(frozen=True)
class ClassifierObjective:
    """Binary cross-entropy on one logit (labels smoothed towards 0.5); the score is the logit."""

    label_smoothing: float = 0.0

    def loss(self, net: Standardize, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(net(x).float().view(-1), target)

    def outputs(self, net: Standardize, x: torch.Tensor) -> torch.Tensor:
        return net(x).view(-1, 1)

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        s = outputs[:, 0].astype(np.float64)
        bce = np.logaddexp(0.0, s) - y * s  # stable log(1 + e^s) - y s
        return {"val_auc": roc_auc(y, s), "val_loss": float(bce.mean()), **rejections(y, s, "val_")}


# --- the loop ------------------------------------------------------------------------------------

#: A training run has converged when early stopping ended it (``patience`` epochs without a better
#: ``val_auc``) or, run to its last epoch, when its last PLATEAU_EPOCHS epochs raised the best validation
#: AUC by less than PLATEAU_GAIN; otherwise it was cut by its epoch budget while still improving.
PLATEAU_GAIN, PLATEAU_EPOCHS = 0.002, 3


def convergence(val_aucs: list[float], *, patience: int) -> tuple[bool, str]:
    """``(converged, stop)`` of a run with these per-epoch validation AUCs; ``stop`` is ``patience``,
    ``plateau`` or ``max_epochs`` (cut while improving)."""
    best_epoch = int(np.argmax(val_aucs)) + 1
    if len(val_aucs) - best_epoch >= patience:
        return True, "patience"
    if len(val_aucs) > PLATEAU_EPOCHS and \
            max(val_aucs[-PLATEAU_EPOCHS:]) - max(val_aucs[:-PLATEAU_EPOCHS]) < PLATEAU_GAIN:
        return True, "plateau"
    return False, "max_epochs"


@dataclasses.dataclass
class TrainResult:
    """What one ``fit`` did: per-epoch metrics (as reported), the best epoch, rows trained on, time."""

    history: list[dict[str, float]]
    best_epoch: int
    n_train: int
    seconds: float
    patience: int = 1

    def summary(self) -> dict[str, Any]:
        """``epochs``, ``converged`` and ``stop`` (:func:`convergence`), as the test records keep them."""
        converged, stop = convergence([h["val_auc"] for h in self.history], patience=self.patience)
        return {"epochs": len(self.history), "converged": converged, "stop": stop}


def make_optimizer(net: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; biases, norm weights and the inner model's ``no_weight_decay()`` names are not decayed."""
    inner = net.net if isinstance(net, Standardize) else net
    skip = {f"net.{n}" for n in (inner.no_weight_decay() if hasattr(inner, "no_weight_decay") else ())}
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=next(net.parameters()).is_cuda)


def warmup_cosine(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, decay: bool = True):
    """Linear warm-up to the base learning rate, then cosine decay to zero at ``total_steps`` (or, without
    ``decay``, the base rate from then on: a seed recipe's plain Adam)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if not decay:
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _diverged(epoch: int, batch: int, loss: float, optimizer: torch.optim.Optimizer, base_lr: float) -> DivergedError:
    lr = optimizer.param_groups[0]["lr"]
    return DivergedError(f"training diverged: loss is {loss} at epoch {epoch}, batch {batch} "
                         f"(learning rate {lr:.3g}, config lr {base_lr:.3g}); lower lr or check the "
                         "inputs for NaN / inf")


def train_epoch(net: Standardize, objective: Objective, feeder: Feeder, optimizer, scheduler, *,
                rng: np.random.Generator, grad_clip: float, epoch: int, base_lr: float,
                precision: str = "fp32") -> float:
    """One pass over the training rows; returns the mean batch loss. On CPU every loss is checked at
    once; on CUDA the losses stay on the GPU (no sync per batch) and are checked at the end of the epoch."""
    net.train()
    losses = []
    for batch, (x, y) in enumerate(feeder.shuffled(rng), 1):
        with autocast(feeder.device, precision):
            loss = objective.loss(net, x, y)
        if feeder.device.type != "cuda" and not math.isfinite(value := loss.item()):
            raise _diverged(epoch, batch, value, optimizer, base_lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
    stacked = torch.stack(losses).float().cpu()
    bad = ~torch.isfinite(stacked)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        raise _diverged(epoch, first + 1, float(stacked[first]), optimizer, base_lr)
    return float(stacked.mean())


def evaluate(net: Standardize, objective: Objective, feeder: Feeder, *, epoch: int,
             precision: str = "fp32") -> dict[str, float]:
    outputs = predict(net, feeder, objective.outputs, precision=precision)
    if not np.isfinite(outputs).all():
        raise DivergedError(f"training diverged: non-finite validation outputs after epoch {epoch}")
    return objective.metrics(outputs, feeder.y.cpu().numpy())


def fit_loop(net: Standardize, objective: Objective, train: SplitData, val: SplitData, *,
             config: Mapping[str, Any], plan: DevicePlan, rng: np.random.Generator,
             report: ReportFn | None = None, rows: np.ndarray | None = None,
             channels_last: bool = False) -> TrainResult:
    """Train ``net`` on ``rows`` of ``train`` (all rows when None), validating on all of ``val`` after
    every epoch; stop after ``patience`` epochs without a better ``val_auc``; restore the best epoch.
    ``config["precision"]`` is resolved by ``plan``."""
    start = time.perf_counter()
    bs = int(config["batch_size"])
    precision = plan.precision(config.get("precision", "auto"))
    train_feed = Feeder(train.X, train.y, batch_size=bs, plan=plan, rows=rows, channels_last=channels_last)
    val_feed = Feeder(val.X, val.y, batch_size=bs, plan=plan, channels_last=channels_last)
    optimizer = make_optimizer(net, config["lr"], config["weight_decay"])
    steps = train_feed.n_batches()
    scheduler = warmup_cosine(optimizer, warmup_steps=round(min(config["warmup_epochs"], 0.2 * config["epochs"]) * steps),
                              total_steps=config["epochs"] * steps, decay=config.get("lr_schedule", "cosine") == "cosine")
    history: list[dict[str, float]] = []
    best_epoch, best_auc, best_state = 0, -math.inf, None
    for epoch in range(1, int(config["epochs"]) + 1):
        train_loss = train_epoch(net, objective, train_feed, optimizer, scheduler, rng=rng,
                                 grad_clip=config["grad_clip"], epoch=epoch, base_lr=config["lr"],
                                 precision=precision)
        metrics = {**evaluate(net, objective, val_feed, epoch=epoch, precision=precision), "train_loss": train_loss}
        history.append(metrics)
        if metrics["val_auc"] > best_auc:
            best_epoch, best_auc = epoch, metrics["val_auc"]
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if report is not None:
            report(epoch, metrics)
        if epoch - best_epoch >= int(config["patience"]):
            break
    net.load_state_dict(best_state)
    net.eval()
    return TrainResult(history, best_epoch, len(train_feed), time.perf_counter() - start, int(config["patience"]))


# --- the base class of the neural models ---------------------------------------------------------

class NeuralModel(Model):
    """A :class:`Model` trained by :func:`fit_loop`. Subclasses set ``name``, ``default_config`` (the
    keys of :data:`TRAIN_DEFAULTS` plus their own), ``rules`` for their own keys, and implement
    :meth:`build_net`; they may override :meth:`objective` and :meth:`train_rows`.

    ``cpu_channels_last`` says whether the network trains in channels-last memory format on CPU: True
    only where ``bench perf``'s memory-format row (1c) measured it faster (on CUDA it always does), and
    then only from :data:`CPU_CHANNELS_LAST_MIN_WIDTH` channels up."""

    kind = "neural"
    fidelity = "epochs"
    #: per epoch besides ``val_auc``: the losses and the background rejection 1 / eps_B at eps_S 0.5 and 0.3
    curve_keys = ("train_loss", "val_loss", *(f"val_{k}" for k in REJECTION_EFFICIENCIES))
    rules: Mapping[str, Callable[[Any], str | None]] = {}
    cpu_channels_last: bool = False

    def __init__(self, task, config, *, seed: int = 0, plan: DevicePlan | None = None) -> None:
        super().__init__(task, config, seed=seed, plan=plan)
        check_config(self.name, self.config, {**TRAIN_RULES, **self.rules})
        self.net: Standardize | None = None
        self.result: TrainResult | None = None

    @abc.abstractmethod
    def build_net(self) -> nn.Module:
        """The network for ``self.task.image_shape``, taking standardised ``(n, C, H, W)`` images."""

    def objective(self) -> Objective:
        return ClassifierObjective(self.config.get("label_smoothing", 0.0))

    def train_rows(self, train: SplitData) -> np.ndarray | None:
        """Rows of the training split to train on (None = all)."""
        return None

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: the config's ``precision`` resolved by the device plan."""
        return self.plan.precision(self.config["precision"])

    @property
    def channels_last(self) -> bool:
        """The memory format it trains and scores in: channels-last on CUDA, per network on CPU (not below
        :data:`CPU_CHANNELS_LAST_MIN_WIDTH`)."""
        if self.plan.is_cuda:
            return True
        return self.cpu_channels_last and int(self.config.get("width", 0)) >= CPU_CHANNELS_LAST_MIN_WIDTH

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The image shape the network is built for: the task's, after the config's ``crop`` and ``pool``."""
        return viewed_shape(self.task.image_shape, self.config["crop"], self.config["pool"])

    def fit(self, train: SplitData, val: SplitData, *, report: ReportFn | None = None) -> None:
        self.plan.apply()
        rng = np.random.default_rng(self.seed)
        rows = self.train_rows(train)
        torch.manual_seed(self.seed)
        net = input_map(self.build_net(), train.X, np.arange(len(train)) if rows is None else rows, rng,
                        crop=self.config["crop"], pool=self.config["pool"],
                        asinh=self.config.get("transform") == "asinh").to(self.plan.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.result = fit_loop(net, self.objective(), train, val, config=self.config, plan=self.plan,
                               rng=rng, report=report, rows=rows, channels_last=self.channels_last)

    def _predict(self, X: np.ndarray, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                 rows: np.ndarray | None = None) -> np.ndarray:
        """``fn(net, x)`` over ``rows`` of ``X`` (all when None), read batch by batch."""
        if self.net is None:
            raise RuntimeError(f"model {self.name!r} is not fitted: call fit() first")
        feeder = Feeder(X, None, batch_size=int(self.config["batch_size"]), plan=self.plan, rows=rows,
                        channels_last=self.channels_last)
        return predict(self.net, feeder, fn, precision=self.precision)

    def score(self, data: SplitData) -> np.ndarray:
        return self._predict(data.X, self.objective().outputs)[:, 0].astype(np.float64)

    def training_summary(self) -> dict[str, Any]:
        return self.result.summary() if self.result is not None else {}

    def n_parameters(self) -> int:
        net = self.net if self.net is not None else self.build_net()
        return sum(p.numel() for p in net.parameters() if p.requires_grad)
