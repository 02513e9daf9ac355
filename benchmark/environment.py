"""What a result was obtained with: package versions and the machine. Written into every run record
(``run.json``) and into ``bench perf``'s page, from this one place."""
from __future__ import annotations

import functools
import os
import platform
import sys
from typing import Any

#: The packages whose versions a result records (they set the numbers and the speed).
PACKAGES = ("numpy", "torch", "timm", "ray", "optuna", "scikit-learn", "xgboost")


def versions() -> dict[str, str | None]:
    import importlib.metadata as md

    from benchmark import __version__

    out: dict[str, str | None] = {"hepbench": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def hardware() -> dict[str, Any]:
    """CPU model and cores, memory, GPUs, OS and Python. Imports torch only to count CUDA devices."""
    memory = total_memory()
    names = gpu_names()
    return {"cpu": cpu_model(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_gib": memory / 2**30 if memory else None, "gpus": len(names),
            "gpu_names": ", ".join(names) or "none", "platform": platform.platform(),
            "python": sys.version.split()[0]}


@functools.lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """The local CUDA devices' names (none without a usable CUDA runtime); probed once per process."""
    try:
        import torch

        return tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # no usable CUDA runtime: a CPU machine
        return ()


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
