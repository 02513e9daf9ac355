"""The device plan: where a trial computes and with what, decided once from what it was given.

A :class:`DevicePlan` is built once per trial (``benchmark.search.session.trial_plan`` inside a Ray trial or task,
:meth:`DevicePlan.local` for ``bench report``, ``bench perf`` and scripts) and handed to the model;
the model, the batch feeder, the training loop and the final evaluation all read the device, the
thread count, the precision and the GPU memory they may use from it rather than choosing for
themselves.

**Precision.** Every neural model has the config key ``precision``: ``auto`` (default), ``fp32`` or
``bf16`` (bf16 autocast; weights, optimiser state and losses stay fp32). ``auto`` means bf16 where the
hardware computes it natively (CUDA GPUs that support bf16; CPUs with AMX or AVX512-BF16) and fp32
elsewhere: on a CPU without those units bf16 is emulated, about ten times *slower* than fp32
(``bench perf``, rows 1c and 1e of ``leaderboard/perf.md``). :meth:`DevicePlan.precision` resolves ``auto``; the resolved value is
what every record stores.

**GPU memory.** A split is copied to the GPU when it needs at most :data:`GPU_RESIDENT_FRACTION` of
*this trial's share* of the GPU's total memory (Ray's ``num_gpus`` fraction), so trials packed on one
GPU cannot starve each other by whoever reads the free memory first.

This module imports torch only when a plan is asked about the hardware, so classical trials never
load it.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path

from benchmark.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
GPU_RESIDENT_FRACTION = 0.25  # a split stays on the GPU when it needs at most this share of the trial's memory


def cap_onednn_on_amd_avx512() -> None:
    """On AMD CPUs with AVX-512 (EPYC Zen 4 and later), cap oneDNN at AVX2 unless the user set
    ``ONEDNN_MAX_CPU_ISA``: torch 2.15's oneDNN AVX-512 convolution kernels crash there (SIGSEGV in the
    1x1 convolution's weight gradient, run to run different bf16 losses on one thread), measured with
    resnet15 and timm's resnet18 on an AMD EPYC. Called when the package is imported, before torch
    creates any oneDNN primitive; Ray workers inherit the variable."""
    if {"AuthenticAMD", "avx512f"} <= _cpuinfo_words():
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


@functools.cache
def _cpuinfo_words() -> frozenset[str]:
    """The words of ``/proc/cpuinfo`` (its vendor and flags), read once; empty where there is none."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def _onednn_capped_below_avx512() -> bool:
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return bool(isa) and isa != "ALL" and "AVX512" not in isa


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX512-BF16), as torch's own probe or,
    failing that, the Linux CPU flags say; not where oneDNN is capped below AVX-512, which emulates it."""
    import torch

    if _onednn_capped_below_avx512():
        return False

    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if all(p is not None for p in probes):
        return any(p() for p in probes)
    flags = _cpuinfo_words()
    return "amx_bf16" in flags or "avx512_bf16" in flags


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    """Where one trial computes. ``device`` is ``cpu`` or ``cuda:<index>`` (the index within the
    GPUs the process sees); ``threads`` the CPU threads it may use (None: the library's default);
    ``gpu_fraction`` its share of that GPU (Ray's ``num_gpus``; 0 on CPU)."""

    device: str = "cpu"
    threads: int | None = None
    gpu_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"DevicePlan: device must be 'cpu' or 'cuda[:i]', got {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"DevicePlan: threads must be >= 1, got {self.threads}")
        if self.is_cuda and not 0 < self.gpu_fraction <= 1:
            raise ValueError(f"DevicePlan: a cuda plan needs 0 < gpu_fraction <= 1, got {self.gpu_fraction}")

    @classmethod
    def from_resources(cls, assigned: Mapping[str, float], has_gpu: bool) -> DevicePlan:
        """The plan of a process that a scheduler assigned ``assigned`` (``{"CPU": 2, "GPU": 0.5}``), with
        its GPU visible as ``cuda:0`` when ``has_gpu`` (``benchmark.search.session.trial_plan`` under Ray)."""
        threads = max(1, int(assigned.get("CPU", 1)))
        gpu = float(assigned.get("GPU", 0.0))
        if has_gpu and gpu > 0:
            return cls("cuda:0", threads, min(1.0, gpu))
        return cls("cpu", threads)

    @classmethod
    def local(cls, *, threads: int | None = None, gpu: bool = False) -> DevicePlan:
        """A plan for this process: the first GPU, whole, when ``gpu`` (and one is visible), else the CPU;
        ``threads`` CPU threads (default: all of them)."""
        threads = threads or os.cpu_count() or 1
        if gpu:
            import torch

            if torch.cuda.is_available():
                return cls("cuda:0", threads, 1.0)
        return cls("cpu", threads)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def kind(self) -> str:
        """``cpu`` or ``cuda``, as the records store it."""
        return "cuda" if self.is_cuda else "cpu"

    def bf16_native(self) -> bool:
        """Whether this device computes bf16 natively (see the module docstring)."""
        if self.is_cuda:
            import torch

            return torch.cuda.is_bf16_supported()
        return cpu_has_bf16()

    def precision(self, requested: str = "auto") -> str:
        """``fp32`` or ``bf16``: ``requested`` with ``auto`` resolved for this device."""
        if requested not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
        if requested == "auto":
            return "bf16" if self.bf16_native() else "fp32"
        return requested

    def resident_bytes(self) -> int:
        """GPU bytes a split may take to be kept on the GPU: a share of this trial's part of the GPU."""
        if not self.is_cuda:
            return 0
        import torch

        total = torch.cuda.get_device_properties(self.device).total_memory
        return int(GPU_RESIDENT_FRACTION * self.gpu_fraction * total)

    def apply(self) -> None:
        """Set torch's thread count (and cuDNN's autotuner on CUDA) for this process."""
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.is_cuda:
            torch.backends.cudnn.benchmark = True
