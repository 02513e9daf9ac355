"""hepbench: hyper-parameter optimisation benchmarks on particle-physics detector images."""
from __future__ import annotations

__version__ = "0.1.0"
