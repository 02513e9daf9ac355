"""The task contract: a frozen spec plus the functions that read, generate and summarise its data.

Every task module builds one :class:`TaskSpec` and registers it (``benchmark.tasks._registry``).
Images reach the rest of the suite channels-first, ``(n, C, H, W)`` float32, in the task's *raw*
units (as in the public files); ``spec.preprocess`` then maps them to what models see.
"""
from __future__ import annotations

import dataclasses
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from benchmark.errors import DataError


@dataclasses.dataclass(frozen=True)
class RealFile:
    """One public file. ``pattern`` is a glob that also accepts mirror names (e.g. a suffix)."""

    name: str
    url: str | None = None
    pattern: str | None = None


@dataclasses.dataclass(frozen=True)
class FileSet:
    """One complete way of holding a task's real data (e.g. quark_gluon as HDF5 *or* parquet)."""

    name: str
    files: tuple[RealFile, ...]
    how_to_get: str


@dataclasses.dataclass(frozen=True)
class Reference:
    """A published result, shown on the leaderboard as a literature row (not produced here)."""

    model: str
    metric: str
    value: float
    source: str


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Rows per split. For synthetic data all three are counts: ``val`` and ``test`` fix the evaluation
    splits (their rows do not depend on ``train``), ``train`` is the training-size fidelity. For real
    files ``val`` and ``test`` are None (the task's split fractions fix them) and ``train``, when given,
    takes that many rows of the real training split. None: the task's default (``synthetic_sizes``)."""

    train: int | None = None
    val: int | None = None
    test: int | None = None

    @classmethod
    def total(cls, n: int) -> Sizes:
        """``n`` rows cut 70 / 15 / 15 (small data for tests and quick measurements)."""
        val = test = max(10, round(0.15 * n))
        return cls(max(10, n - val - test), val, test)


@dataclasses.dataclass(frozen=True)
class RawBatch:
    """A batch of samples in raw units: images ``(n, C, H, W)`` float32, aux ``(n, A)`` float32."""

    X: np.ndarray
    aux: np.ndarray


class RealReader(Protocol):
    """An opened set of real files: labels up front (small), images streamed in source order."""

    y: np.ndarray  # (N,) int8 in {0, 1}
    files: tuple[Path, ...]

    def batches(self, size: int) -> Iterator[RawBatch]:
        """Yield consecutive batches of at most ``size`` samples covering all ``len(y)`` samples."""
        ...


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A benchmark task.

    Label 1 is the signal class: every model scores "higher = more like label 1", and the VAEs are
    trained on label 0 only. ``open_real(file_set, paths)`` gets the located file of each
    ``RealFile.name`` in ``file_set``; ``generate(y, rng)`` returns a :class:`RawBatch` with one
    sample per label, deterministically from ``rng``; ``preprocess`` is elementwise per sample
    (no fitted state, safe on chunks); ``features(batch)`` returns ``(n, len(feature_names))``.

    Example:
        >>> from benchmark.tasks import get_task
        >>> get_task("ee_gamma").image_shape
        (2, 32, 32)
    """

    name: str
    description: str
    image_shape: tuple[int, int, int]
    channel_names: tuple[str, ...]
    class_names: tuple[str, str]
    label_note: str
    aux_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    file_sets: tuple[FileSet, ...]
    references: tuple[Reference, ...]
    reference_stats: Mapping[str, str]
    generator_version: str
    open_real: Callable[[FileSet, Mapping[str, Path]], RealReader]
    generate: Callable[[np.ndarray, np.random.Generator], RawBatch]
    preprocess: Callable[[np.ndarray], np.ndarray]
    features: Callable[[RawBatch], np.ndarray]
    extra_stats: Callable[[RawBatch, np.ndarray], Mapping[str, float]] | None = None
    #: An auxiliary variable whose ranges ``bench report`` holds out of training and validation in
    #: turn, testing on each range (e.g. hcal_dqm's lumisection: does the model generalise in time?).
    holdout_aux: str | None = None
    #: How real files are split into train / val / test (stratified, seeded).
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    #: Synthetic rows per split by default. The test split is sized so that a test AUC's 95 % interval is
    #: at most +/- 0.01 wherever the task's models score below 0.99 (``benchmark.metrics.auc_halfwidth``).
    synthetic_sizes: Sizes = Sizes(20_000, 6_000, 13_000)

    def __post_init__(self) -> None:
        if len(self.image_shape) != 3 or len(self.channel_names) != self.image_shape[0]:
            raise ValueError(f"{self.name}: image_shape {self.image_shape} and channel_names disagree")
        if len(self.class_names) != 2:
            raise ValueError(f"{self.name}: binary tasks only, got classes {self.class_names}")
        if self.holdout_aux is not None and self.holdout_aux not in self.aux_names:
            raise ValueError(f"{self.name}: holdout_aux {self.holdout_aux!r} is not one of {self.aux_names}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-9 or min(self.split_fractions) <= 0:
            raise ValueError(f"{self.name}: split fractions {self.split_fractions} must be > 0, sum 1")
        if None in dataclasses.astuple(self.synthetic_sizes):
            raise ValueError(f"{self.name}: synthetic_sizes {self.synthetic_sizes} must give every split's rows")


# --- checks shared by the real readers: one-line errors that name the file and the problem ---------

#: What h5py raises on a damaged file: it maps HDF5's error stack onto several builtin exception types
#: (a bad superblock is an OSError, a bad object header a KeyError or RuntimeError, a bad datatype a
#: TypeError or ValueError). Readers catch these around their HDF5 access and raise one DataError.
HDF5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)
#: What ``np.load`` raises on a damaged .npy / .npz: the .npy header is a Python literal parsed by
#: ``ast.literal_eval`` (SyntaxError, tokenize.TokenError), an .npz is a zip of them (a damaged flag byte
#: makes zipfile raise RuntimeError "encrypted" or NotImplementedError).
NUMPY_ERRORS = (OSError, ValueError, EOFError, KeyError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile,
                zlib.error, RuntimeError, NotImplementedError)


def check_keys(available, required: tuple[str, ...], file: Path) -> None:
    missing = [k for k in required if k not in available]
    if missing:
        raise DataError(f"{file}: missing key(s) {missing}; found {sorted(available)}")


def check_images(X, tail: tuple[int, ...], file: Path, key: str) -> None:
    """Check shape ``(N, *tail)`` and a floating or integer dtype (values are checked per batch)."""
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):  # a damaged HDF5 file can name a group or a datatype
        raise DataError(f"{file}: {key!r} is a {type(X).__name__}, not an array of images")
    shape = tuple(X.shape)
    if len(shape) != len(tail) + 1 or shape[1:] != tuple(tail):
        raise DataError(f"{file}: {key!r} has shape {shape}, expected (N, {', '.join(map(str, tail))})")
    if np.dtype(X.dtype).kind not in "fiu":
        raise DataError(f"{file}: {key!r} has dtype {X.dtype}, expected a numeric array")


def check_finite(X: np.ndarray, file: Path, key: str, offset: int = 0) -> None:
    bad = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{file}: {key!r} has NaN or inf values (first at sample {offset + int(np.argmax(bad))})")


def check_labels(y, file: Path, key: str = "y") -> np.ndarray:
    """Return labels as int8 after checking they are exactly 0 or 1."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{file}: {key!r} has shape {y.shape}, expected (N,)")
    if np.dtype(y.dtype).kind not in "fiub":
        raise DataError(f"{file}: {key!r} has dtype {y.dtype}, expected numeric labels")
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        raise DataError(f"{file}: {key!r} is not binary: values {values[:10].tolist()} (expected 0 and 1)")
    return y.astype(np.int8)
