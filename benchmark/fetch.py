"""Download a task's public files with pooch, and pin them by SHA-256.

No checksum is published upstream, so the first download records each file's SHA-256 in
``<data_dir>/<task>/SHA256SUMS`` (``sha256sum -c`` format) and every later fetch verifies against it.
Files already present are never downloaded again: no network is touched when the cache is complete.
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmark.data import raw_dir, sha256
from benchmark.files import atomic_write_text, make_dir
from benchmark.errors import DataError
from benchmark.tasks import FileSet, TaskSpec

SUMS = "SHA256SUMS"


def fetchable_set(task: TaskSpec) -> FileSet:
    for file_set in task.file_sets:
        if all(f.url for f in file_set.files):
            return file_set
    how = " ".join(s.how_to_get for s in task.file_sets)
    raise DataError(f"{task.name} has no publicly downloadable files. {how}")


def read_sums(folder: Path) -> dict[str, str]:
    path = folder / SUMS
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def write_sums(folder: Path, sums: dict[str, str]) -> None:
    atomic_write_text(folder / SUMS, "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def fetch(task: TaskSpec, root: Path, *, mirror: str | None = None, progress: bool = True) -> list[Path]:
    """Make sure the task's downloadable files are in ``raw_dir`` and match their recorded hashes.

    ``mirror`` (or ``$BENCH_MIRROR_URL``) replaces each file's URL by ``<mirror>/<file name>``.
    """
    import pooch

    file_set = fetchable_set(task)
    folder = raw_dir(task, root)
    make_dir(folder)
    mirror = mirror or os.environ.get("BENCH_MIRROR_URL")
    sums = read_sums(folder)
    paths = []
    for f in file_set.files:
        path = folder / f.name
        if not path.is_file():
            url = f"{mirror.rstrip('/')}/{f.name}" if mirror else f.url
            known = f"sha256:{sums[f.name]}" if f.name in sums else None
            try:
                pooch.retrieve(url, known_hash=known, fname=f.name, path=folder, progressbar=progress)
            except ValueError as e:  # pooch's hash mismatch; the partial download is already removed
                raise DataError(f"{path}: download does not match the recorded SHA-256 ({e}); "
                                f"delete {folder / SUMS} only if the upstream file really changed") from None
            except Exception as e:  # network errors come in many classes (requests, urllib3, OSError)
                raise DataError(f"could not download {url}: {e}") from None
        digest = sha256(path)
        if f.name not in sums:
            sums[f.name] = digest
            write_sums(folder, sums)
        elif sums[f.name] != digest:
            raise DataError(f"{path}: SHA-256 {digest[:12]}... does not match the recorded {sums[f.name][:12]}...; "
                            "the file is corrupt or was replaced: delete it and fetch again")
        paths.append(path)
    return paths
