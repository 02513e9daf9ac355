"""hepbench: hyper-parameter optimisation benchmarks on particle-physics detector images."""
from __future__ import annotations

__version__ = "0.1.0"

from benchmark.devices import cap_onednn_on_amd_avx512  # noqa: E402

cap_onednn_on_amd_avx512()  # before torch creates a oneDNN primitive, in the driver and in every Ray worker
