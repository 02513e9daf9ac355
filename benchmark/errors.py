"""Errors that reach the user as one line and exit code 2 (see ``benchmark.cli``), and the one way an
exception is shortened to one line for a message or a record."""
from __future__ import annotations


class BenchError(Exception):
    """A problem with the user's input, files or environment: printed as one line, exit code 2."""


class DataError(BenchError):
    """A data file is missing, unreadable or does not have the expected schema."""


class ConfigError(BenchError):
    """A search space, run spec or model config is invalid."""


class DivergedError(RuntimeError):
    """Training produced a NaN or inf loss (too high a learning rate, or NaN / inf in the inputs)."""


def one_line(exc: BaseException, *, typed: bool = False, last_line: bool = False, limit: int = 300) -> str:
    """``exc`` as one line of at most ``limit`` characters: the innermost cause of an exception that Ray
    wrapped, its whitespace collapsed; ``typed`` puts the type in front, ``last_line`` keeps only the last
    line of a multi-line message (where a traceback ends with the error itself)."""
    while getattr(exc, "cause", None) is not None:  # Ray wraps the trial's own exception
        exc = exc.cause
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(" ".join(lines[-1:] if last_line else lines).split())
    if typed:
        text = f"{type(exc).__name__}: {text}"
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."
