"""hepbench: hyper-parameter optimisation benchmarks on particle-physics detector images."""
from __future__ import annotations

__version__ = "0.1.0"


from benchmark.devices import cap_onednn_on_amd_avx512  # noqa: E402  (before torch runs a convolution)

cap_onednn_on_amd_avx512()
