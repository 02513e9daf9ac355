"""Errors that reach the user as one line and exit code 2 (see ``benchmark.cli``)."""
from __future__ import annotations


class BenchError(Exception):
    """A problem with the user's input, files or environment: printed as one line, exit code 2."""


class DataError(BenchError):
    """A data file is missing, unreadable or does not have the expected schema."""


class ConfigError(BenchError):
    """A search space, run spec or model config is invalid."""
