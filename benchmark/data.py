"""Prepared data: fixed, seeded train / val / test splits stored as memory-mappable arrays.

``prepare(task, source=..., sizes=...)`` turns the real files or the synthetic generator into a cache
directory

    <data_dir>/prepared/<task>/<source>-<key>/manifest.json
                                           /{train,val,test}/{X,y,aux,features}.npy

where ``key`` hashes everything the arrays depend on, so different inputs never collide and the same
inputs reuse the cache. Arrays are written chunk by chunk into ``np.lib.format.open_memmap`` files
inside a temporary directory that is renamed into place only when complete: a kill at any point
leaves no half-written cache. Peak memory is a few chunks, whatever the source size.

**The evaluation splits are fixed; the training size is a fidelity.** Synthetic val and test rows
come from streams of their own (:data:`STREAM`), sized by the task (``TaskSpec.synthetic_sizes``) or
``--n-val`` / ``--n-test``; ``--n-train`` only decides how many rows of the training stream are used,
and a smaller training split is the start of a larger one. Real files are split by the task's
stratified fractions, and ``--n-train`` takes a nested, seeded subset of the training split. Either
way two runs with different training sizes are validated and tested on the same rows.
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
from benchmark.tasks import RawBatch, Sizes, TaskSpec
from benchmark.tasks.base import FileSet

CACHE_VERSION = 2  # 2: fixed evaluation splits, each synthetic split its own stream
CHUNK = 2048  # samples per generated / read chunk: bounds memory, fixes the synthetic RNG streams
MIN_ROWS = 10  # the fewest rows a split may have (and it needs both classes)


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
    _opened: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def split(self, split: Split) -> SplitData:
        """One split's read-only memory maps, opened on first use (a reused trial process asks again)."""
        if split not in self._opened:
            d = self.path / split.value
            self._opened[split] = SplitData(*(np.load(d / f"{k}.npy", mmap_mode="r")
                                              for k in ("X", "y", "aux", "features")))
        return self._opened[split]


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
    return locate_in(task, raw_dir(task, root))


def locate_in(task: TaskSpec, folder: Path) -> tuple[FileSet, dict[str, Path]] | None:
    """The first file set of ``task`` whose files are all present in ``folder``, or None."""
    folder = Path(folder)
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


def nested_subset(index: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the sorted ``index``, sorted: a seeded order's first ``n``, so a smaller training size is
    a subset of a larger one (HPOBench's subsample fidelity)."""
    return np.sort(np.random.default_rng([seed, 0x7A1]).permutation(index)[:n])


#: Each synthetic split is its own seeded stream of fixed chunks: split k's chunk i is generated from
#: ``default_rng([seed, STREAM[k], i])`` with balanced labels from ``[seed, STREAM[k], i, 1]``. So the
#: validation and test rows never depend on how many training rows there are, and n training rows are
#: the first n of any larger training split.
STREAM = {Split.TRAIN: 0x7121, Split.VAL: 0x7A11, Split.TEST: 0x7E57}
SYNTHETIC_CHUNK = 256


def synthetic_split(task: TaskSpec, split: Split, n: int, seed: int) -> tuple[np.ndarray, Iterator[RawBatch]]:
    """Labels of the first ``n`` rows of ``split``'s stream, and the rows in batches of at most
    :data:`SYNTHETIC_CHUNK`: identical bytes for (split, seed), whatever ``n`` is beyond them."""
    chunks = math.ceil(n / SYNTHETIC_CHUNK)
    base = (np.arange(SYNTHETIC_CHUNK) % 2).astype(np.int8)
    labels = [np.random.default_rng([seed, STREAM[split], i, 1]).permutation(base) for i in range(chunks)]
    y = np.concatenate(labels)[:n]

    def batches() -> Iterator[RawBatch]:
        for i, chunk_y in enumerate(labels):
            batch = task.generate(chunk_y, np.random.default_rng([seed, STREAM[split], i]))
            keep = min(SYNTHETIC_CHUNK, n - i * SYNTHETIC_CHUNK)
            yield RawBatch(batch.X[:keep], batch.aux[:keep])
    return y, batches()


def resolve_sizes(task: TaskSpec, source: Source, sizes: Sizes | None) -> Sizes:
    """``sizes`` with the task's defaults filled in (synthetic) or checked (real: only ``train`` may be
    given; val and test are the task's split fractions of the files). One-line :class:`DataError`s."""
    sizes = sizes or Sizes()
    for name, n in dataclasses.asdict(sizes).items():
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < MIN_ROWS):
            raise DataError(f"--n-{name} {n!r} is too small for {task.name}: every split needs at least "
                            f"{MIN_ROWS} rows (with both classes)")
    if source is Source.REAL:
        if sizes.val is not None or sizes.test is not None:
            raise DataError(f"--n-val / --n-test: {task.name}'s real files are split by the task's fractions "
                            f"{task.split_fractions} (fixed evaluation rows); these options size synthetic data only")
        return sizes
    default = task.synthetic_sizes
    return Sizes(*(n if n is not None else d for n, d in zip(dataclasses.astuple(sizes), dataclasses.astuple(default))))


def prepare(task: TaskSpec, *, source: Source, root: Path, seed: int = 0, sizes: Sizes | None = None,
            progress: bool = False) -> Prepared:
    """Prepare (or reuse) the cached splits of ``task`` from ``source``. See the module docstring."""
    sizes = resolve_sizes(task, source, sizes)
    if source is Source.REAL:
        located = locate_real(task, root)
        if located is None:
            raise DataError(missing_real_message(task, root))
        file_set, paths = located
        identity = {"files": {name: {"path": str(p), "sha256": sha256(p)} for name, p in paths.items()},
                    "split_fractions": task.split_fractions, "n_train": sizes.train}
    else:
        identity = _synthetic_identity(task, sizes)
    identity, final = _cache_entry(task, source, root, seed, identity)
    if (cached := load_prepared(task, final)) is not None:
        return cached

    if source is Source.REAL:
        reader = task.open_real(file_set, paths)
        splits = stratified_split(reader.y, task.split_fractions, seed)
        if sizes.train is not None:
            if sizes.train > len(splits[Split.TRAIN]):
                raise DataError(f"--n-train {sizes.train}: {task.name}'s real training split has "
                                f"{len(splits[Split.TRAIN])} rows")
            splits[Split.TRAIN] = nested_subset(splits[Split.TRAIN], sizes.train, seed)
        parts = {s: np.asarray(reader.y)[idx] for s, idx in splits.items()}
    else:
        streams = {s: synthetic_split(task, s, getattr(sizes, s.value), seed) for s in Split}
        parts = {s: y for s, (y, _) in streams.items()}
    for s, y in parts.items():  # the labels are known before a row is generated or read
        if len(np.unique(y)) < 2:
            fix = (f"the files in {raw_dir(task, root)} hold too few rows" if source is Source.REAL
                   else f"pass a larger --n-{s.value}")
            raise DataError(f"{task.name}: the {s.value} split has one class only ({len(y)} rows): {fix}")

    make_dir(final.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    except OSError as e:
        raise DataError(f"cannot write in {final.parent}: {e.strerror or e}; pass a writable --data-dir") from None
    try:
        writers = {s: _SplitWriter(task, tmp / s.value, y) for s, y in parts.items()}
        total = len(reader.y) if source is Source.REAL else sum(len(y) for y in parts.values())
        bar = _progress(total, f"preparing {task.name}") if progress else None
        if source is Source.REAL:
            _route(task, reader.batches(CHUNK), len(reader.y), splits, writers, bar)
        else:
            for s, (_, batches) in streams.items():
                for batch in batches:
                    writers[s].append(*_processed(task, batch), bar)
        for w in writers.values():
            w.close()
        if bar is not None:
            bar.close()
        manifest = {**identity, "shapes": {"X": list(task.image_shape), "aux": list(task.aux_names),
                                           "features": list(task.feature_names)},
                    "split_sizes": {s.value: int(len(y)) for s, y in parts.items()},
                    "class_counts": {s.value: np.bincount(y, minlength=2).tolist() for s, y in parts.items()},
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


def prepare_shared(*, task_name: str, source: str, root: str, seed: int, sizes: Sizes, progress: bool = False,
                   path: str | None = None) -> Prepared:
    """The prepared splits of a trial or a run, from plain arguments (what Ray ships to a node): opened at
    ``path`` when this node has them (the per-trial fast path), else prepared here once, a file lock
    keeping concurrent trials of the node from racing."""
    from filelock import FileLock

    from benchmark.tasks import get_task

    if path and (prepared := _open_once(task_name, path)) is not None:
        return prepared
    root_path = Path(root)
    lock_dir = make_dir(root_path / "prepared")
    with FileLock(str(lock_dir / f".{task_name}.lock")):
        return prepare(get_task(task_name), source=Source(source), root=root_path, seed=seed,
                       sizes=sizes, progress=progress)


_OPENED: dict[tuple[str, str], Prepared] = {}


def _open_once(task_name: str, path: str) -> Prepared | None:
    """A trial process's prepared data, opened once: a reused Ray actor runs many trials on the same
    splits, and a prepared directory never changes once written (its name is the hash of its inputs)."""
    from benchmark.tasks import get_task

    key = (task_name, path)
    if key not in _OPENED and (prepared := load_prepared(get_task(task_name), Path(path))) is not None:
        _OPENED[key] = prepared
    return _OPENED.get(key)


def _synthetic_identity(task: TaskSpec, sizes: Sizes) -> dict:
    return {"n_train": sizes.train, "n_val": sizes.val, "n_test": sizes.test,
            "generator_version": task.generator_version}


def _cache_entry(task: TaskSpec, source: Source, root: Path, seed: int, identity: dict) -> tuple[dict, Path]:
    """Everything the arrays depend on, and the cache directory named by its hash."""
    identity = {"cache_version": CACHE_VERSION, "task": task.name, "source": source.value, "seed": seed, **identity}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return identity, Path(root) / "prepared" / task.name / f"{source.value}-{key}"


def sample_bytes(task: TaskSpec) -> int:
    """Bytes one prepared sample of ``task`` takes on disk (float32 image, aux, features; int8 label)."""
    return 4 * (math.prod(task.image_shape) + len(task.aux_names) + len(task.feature_names)) + 1


def check_room(tasks: Iterable[TaskSpec], root: Path, *, seed: int, sizes: Sizes | None) -> None:
    """Refuse synthetic splits that are too few to split or would not fit on the disk of ``root``
    (splits already in the cache cost nothing). One-line :class:`DataError`s."""
    need = 0
    try:
        for task in tasks:
            full = resolve_sizes(task, Source.SYNTHETIC, sizes)
            _, path = _cache_entry(task, Source.SYNTHETIC, root, seed, _synthetic_identity(task, full))
            if not (path / "manifest.json").is_file():
                need += sum(dataclasses.astuple(full)) * sample_bytes(task)
        existing = Path(os.path.abspath(root))
        existing = next(p for p in (existing, *existing.parents) if p.is_dir())
        free = shutil.disk_usage(existing).free
    except OSError as e:
        raise DataError(f"data directory {root}: {e.strerror or e}; pass a usable --data-dir") from None
    if need > free:
        raise DataError(f"the synthetic splits need about {need / 1e9:.3g} GB in {root}, which has "
                        f"{free / 1e9:.3g} GB free: pass a smaller --n-train / --n-val / --n-test or another --data-dir")


def _processed(task: TaskSpec, batch: RawBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if batch.X.shape[1:] != task.image_shape:
        raise DataError(f"{task.name}: the source yielded images of shape {batch.X.shape[1:]}, "
                        f"expected {task.image_shape}")
    return task.preprocess(batch.X), batch.aux, task.features(batch)


class _SplitWriter:
    """One split's memory-mapped arrays, filled in row order (``append``) or at given rows (``put``)."""

    def __init__(self, task: TaskSpec, d: Path, y: np.ndarray) -> None:
        d.mkdir()
        self.n, self.filled, self.split = len(y), 0, d.name
        np.save(d / "y.npy", y)
        self.arrays = [np.lib.format.open_memmap(d / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
                       for name, shape in (("X", (self.n, *task.image_shape)), ("aux", (self.n, len(task.aux_names))),
                                           ("features", (self.n, len(task.feature_names))))]

    def put(self, rows: np.ndarray, *values: np.ndarray) -> None:
        for a, v in zip(self.arrays, values):
            a[rows] = v
        self.filled += len(rows)

    def append(self, X: np.ndarray, aux: np.ndarray, F: np.ndarray, bar=None) -> None:
        if self.filled + len(X) > self.n:
            raise DataError(f"the {self.split} source yielded more than its {self.n} rows")
        self.put(np.arange(self.filled, self.filled + len(X)), X, aux, F)
        if bar is not None:
            bar.update(len(X))

    def close(self) -> None:
        if self.filled != self.n:
            raise DataError(f"the {self.split} split got {self.filled} of its {self.n} rows")
        for a in self.arrays:
            a.flush()


def _route(task: TaskSpec, batches: Iterator[RawBatch], n: int, splits: Mapping[Split, np.ndarray],
           writers: Mapping[Split, _SplitWriter], bar) -> None:
    """Write a real source's batches (in source order) into the splits that take their rows."""
    where = np.full(n, -1, dtype=np.int8)  # which split each sample goes to (-1: none), and its row there
    row = np.empty(n, dtype=np.int64)
    order = list(splits)
    for k, s in enumerate(order):
        where[splits[s]] = k
        row[splits[s]] = np.arange(len(splits[s]))
    start = 0
    for batch in batches:
        stop = start + len(batch.X)
        if stop > n:
            raise DataError(f"{task.name}: the source yielded more than its {n} samples")
        X, aux, F = _processed(task, batch)
        for k, s in enumerate(order):
            sel = np.flatnonzero(where[start:stop] == k)
            if len(sel):
                writers[s].put(row[start + sel], X[sel], aux[sel], F[sel])
        start = stop
        if bar is not None:
            bar.update(len(batch.X))
    if start != n:
        raise DataError(f"{task.name}: the source yielded {start} samples, expected {n}")


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="samples", unit_scale=True, leave=False)
