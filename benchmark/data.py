"""Prepared data: fixed, stratified, seeded train / val / test splits stored as memory-mappable arrays.

``prepare(task, source=...)`` turns the real files or the synthetic generator into a cache directory

    <data_dir>/prepared/<task>/<source>-<key>/manifest.json
                                           /{train,val,test}/{X,y,aux,features}.npy

where ``key`` hashes everything the arrays depend on, so different inputs never collide and the same
inputs reuse the cache. Arrays are written chunk by chunk into ``np.lib.format.open_memmap`` files
inside a temporary directory that is renamed into place only when complete: a kill at any point
leaves no half-written cache. Peak memory is a few chunks, whatever the source size.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from benchmark.errors import DataError
from benchmark.files import atomic_write_text, make_dir
from benchmark.tasks import RawBatch, TaskSpec
from benchmark.tasks.base import FileSet

CACHE_VERSION = 1
CHUNK = 2048  # samples per generated / read chunk: bounds memory, fixes the synthetic RNG streams
MIN_SAMPLES = 20  # the fewest that split into train, validation and test, each with both classes


class Split(enum.Enum):
    """A data split. An enum, not strings, so that a typo cannot silently select the wrong rows."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class Source(enum.Enum):
    REAL = "real"
    SYNTHETIC = "synthetic"


@dataclasses.dataclass(frozen=True)
class SplitData:
    """One split's arrays (memory-mapped): images ``(n, C, H, W)`` float32 after preprocessing,
    labels ``(n,)`` int8, auxiliary variables ``(n, A)`` and summary features ``(n, F)``."""

    X: np.ndarray
    y: np.ndarray
    aux: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> SplitData:
        """Rows ``index`` as in-memory arrays (e.g. the background class for a VAE)."""
        return SplitData(self.X[index], self.y[index], self.aux[index], self.features[index])


@dataclasses.dataclass(frozen=True)
class Prepared:
    task: TaskSpec
    path: Path
    manifest: Mapping

    def split(self, split: Split) -> SplitData:
        d = self.path / split.value
        return SplitData(*(np.load(d / f"{k}.npy", mmap_mode="r") for k in ("X", "y", "aux", "features")))


def load_prepared(task: TaskSpec, path: Path) -> Prepared | None:
    """The prepared data at ``path`` if it is complete on this machine, else None."""
    manifest = Path(path) / "manifest.json"
    return Prepared(task, Path(path), json.loads(manifest.read_text())) if manifest.is_file() else None


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``$BENCH_DATA_DIR``, else the user cache directory."""
    for given, what in ((explicit, "--data-dir"), (os.environ.get("BENCH_DATA_DIR"), "$BENCH_DATA_DIR")):
        if given:
            try:
                return Path(given).expanduser()
            except RuntimeError as e:  # ~user of no such user
                raise DataError(f"{what} {given}: {e}") from None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hepbench"


def raw_dir(task: TaskSpec, root: Path) -> Path:
    """Where a task's real files live (and are fetched to)."""
    return root / task.name


def locate_real(task: TaskSpec, root: Path) -> tuple[FileSet, dict[str, Path]] | None:
    """The first file set whose files are all present in ``raw_dir``, or None."""
    folder = raw_dir(task, root)
    for file_set in task.file_sets:
        found: dict[str, Path] = {}
        for f in file_set.files:
            hits = sorted(folder.glob(f.pattern or f.name)) if folder.is_dir() else []
            exact = folder / f.name
            if exact.is_file():
                found[f.name] = exact
            elif hits:
                found[f.name] = hits[0]
        if len(found) == len(file_set.files):
            return file_set, found
    return None


def missing_real_message(task: TaskSpec, root: Path) -> str:
    folder = raw_dir(task, root)
    sets = "; or ".join(f"{s.name}: {', '.join(f.name for f in s.files)}" for s in task.file_sets)
    return (f"no real {task.name} files in {folder} (expected {sets}). "
            f"Run `bench data fetch {task.name}` or place them there by hand; `--source synthetic` works without them")


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int) -> dict[Split, np.ndarray]:
    """Sorted sample indices per split; each class is cut by ``fractions`` separately."""
    rng = np.random.default_rng([seed, 0x5B1])
    parts: dict[Split, list[np.ndarray]] = {s: [] for s in Split}
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for s, part in zip(Split, np.split(idx, [n_train, n_train + n_val])):
            parts[s].append(part)
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


def synthetic_labels(n: int, seed: int) -> np.ndarray:
    """Balanced labels in a seeded order."""
    y = (np.arange(n) >= n // 2).astype(np.int8)
    return np.random.default_rng([seed, 0x1AB]).permutation(y)


def synthetic_batches(task: TaskSpec, y: np.ndarray, seed: int, size: int = CHUNK) -> Iterator[RawBatch]:
    """Generate in fixed chunks, each from its own seeded stream: identical bytes for (n, seed)."""
    for i, start in enumerate(range(0, len(y), size)):
        yield task.generate(y[start:start + size], np.random.default_rng([seed, i]))


def prepare(task: TaskSpec, *, source: Source, root: Path, seed: int = 0, n_samples: int | None = None,
            progress: bool = False) -> Prepared:
    """Prepare (or reuse) the cached splits of ``task`` from ``source``. See the module docstring."""
    if source is Source.REAL:
        located = locate_real(task, root)
        if located is None:
            raise DataError(missing_real_message(task, root))
        file_set, paths = located
        identity = {"files": {name: {"path": str(p), "sha256": sha256(p)} for name, p in paths.items()}}
    else:
        identity = _synthetic_identity(task, _checked_n(task, n_samples))
    identity, final = _cache_entry(task, source, root, seed, identity)
    if (cached := load_prepared(task, final)) is not None:
        return cached

    if source is Source.REAL:
        reader = task.open_real(file_set, paths)
        y_all = reader.y
        batches = reader.batches(CHUNK)
    else:
        y_all = synthetic_labels(identity["n_samples"], seed)
        batches = synthetic_batches(task, y_all, seed)
    splits = stratified_split(y_all, task.split_fractions, seed)

    make_dir(final.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    except OSError as e:
        raise DataError(f"cannot write in {final.parent}: {e.strerror or e}; pass a writable --data-dir") from None
    try:
        _write_splits(task, tmp, y_all, splits, batches, progress=progress)
        manifest = {**identity, "shapes": {"X": list(task.image_shape), "aux": list(task.aux_names),
                                           "features": list(task.feature_names)},
                    "split_sizes": {s.value: int(len(i)) for s, i in splits.items()},
                    "class_counts": {s.value: np.bincount(y_all[i], minlength=2).tolist() for s, i in splits.items()},
                    "preprocess": task.preprocess.__doc__ and task.preprocess.__doc__.strip().splitlines()[0]}
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2))
        try:
            os.rename(tmp, final)
        except OSError:  # a concurrent prepare of the same inputs finished first: use its result
            if not (final / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_prepared(task, final)


def _checked_n(task: TaskSpec, n_samples: int | None) -> int:
    n = n_samples or task.default_n_samples
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_SAMPLES:
        raise DataError(f"--n-samples {n} is too small for {task.name}: need at least {MIN_SAMPLES} to split "
                        "(train, validation and test, each with both classes)")
    return n


def _synthetic_identity(task: TaskSpec, n: int) -> dict:
    return {"n_samples": n, "generator_version": task.generator_version}


def _cache_entry(task: TaskSpec, source: Source, root: Path, seed: int, identity: dict) -> tuple[dict, Path]:
    """Everything the arrays depend on, and the cache directory named by its hash."""
    identity = {"cache_version": CACHE_VERSION, "task": task.name, "source": source.value, "seed": seed,
                "split_fractions": task.split_fractions, **identity}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return identity, Path(root) / "prepared" / task.name / f"{source.value}-{key}"


def sample_bytes(task: TaskSpec) -> int:
    """Bytes one prepared sample of ``task`` takes on disk (float32 image, aux, features; int8 label)."""
    return 4 * (math.prod(task.image_shape) + len(task.aux_names) + len(task.feature_names)) + 1


def check_room(tasks: Iterable[TaskSpec], root: Path, *, seed: int, n_samples: int | None, option: str) -> None:
    """Refuse synthetic splits that are too few to split or would not fit on the disk of ``root``
    (splits already in the cache cost nothing). One-line :class:`DataError`s."""
    need = 0
    try:
        for task in tasks:
            n = _checked_n(task, n_samples)
            _, path = _cache_entry(task, Source.SYNTHETIC, root, seed, _synthetic_identity(task, n))
            if not (path / "manifest.json").is_file():
                need += n * sample_bytes(task)
        existing = Path(os.path.abspath(root))
        existing = next(p for p in (existing, *existing.parents) if p.is_dir())
        free = shutil.disk_usage(existing).free
    except OSError as e:
        raise DataError(f"data directory {root}: {e.strerror or e}; pass a usable --data-dir") from None
    if need > free:
        raise DataError(f"{option} {n_samples}: the synthetic splits need about {need / 1e9:.3g} GB in {root}, "
                        f"which has {free / 1e9:.3g} GB free: pass a smaller {option} or another --data-dir")


def _write_splits(task: TaskSpec, out: Path, y_all: np.ndarray, splits: dict[Split, np.ndarray],
                  batches: Iterator[RawBatch], *, progress: bool) -> None:
    n = len(y_all)
    where = np.empty(n, dtype=np.int8)  # which split each sample goes to, and its row there
    row = np.empty(n, dtype=np.int64)
    arrays = {}
    for k, (s, idx) in enumerate(splits.items()):
        where[idx] = k
        row[idx] = np.arange(len(idx))
        d = out / s.value
        d.mkdir()
        m = len(idx)
        np.save(d / "y.npy", y_all[idx])
        arrays[k] = [np.lib.format.open_memmap(d / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
                     for name, shape in (("X", (m, *task.image_shape)), ("aux", (m, len(task.aux_names))),
                                         ("features", (m, len(task.feature_names))))]
    bar = _progress(n, f"preparing {task.name}") if progress else None
    start = 0
    for batch in batches:
        stop = start + len(batch.X)
        if stop > n or batch.X.shape[1:] != task.image_shape:
            raise DataError(f"{task.name}: the source yielded {batch.X.shape} at sample {start}, "
                            f"expected {n} samples of {task.image_shape}")
        X = task.preprocess(batch.X)
        F = task.features(batch)
        for k, (Xs, As, Fs) in arrays.items():
            sel = np.flatnonzero(where[start:stop] == k)
            if len(sel):
                rows = row[start + sel]
                Xs[rows], As[rows], Fs[rows] = X[sel], batch.aux[sel], F[sel]
        start = stop
        if bar is not None:
            bar.update(len(batch.X))
    if bar is not None:
        bar.close()
    if start != n:
        raise DataError(f"{task.name}: the source yielded {start} samples, expected {n}")
    for group in arrays.values():
        for a in group:
            a.flush()


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="samples", unit_scale=True, leave=False)
