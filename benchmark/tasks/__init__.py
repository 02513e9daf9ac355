"""Task registry. Adding a task is adding a module here and one import line below."""
from __future__ import annotations

from benchmark.tasks._registry import find_task, get_task, list_tasks, register_task
from benchmark.tasks.base import FileSet, RawBatch, RealFile, Reference, Sizes, TaskSpec

# Registering imports, explicit on purpose (tests check that every module here is listed).
from benchmark.tasks import ee_gamma, quark_gluon, hcal_dqm, atlas_topo  # noqa: E402,F401  isort: skip

__all__ = ["FileSet", "RawBatch", "RealFile", "Reference", "Sizes", "TaskSpec", "find_task", "get_task", "list_tasks", "register_task"]
