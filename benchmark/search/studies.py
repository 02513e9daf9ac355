"""Each search's Optuna study, live on disk: a journal file in its study directory.

The searcher (Ray Tune's ``OptunaSearch``, in the driver) writes every suggest, report and tell to
``<study dir>/optuna.journal`` as it happens, through Optuna's ``JournalStorage`` over a
``JournalFileBackend``: an append-only log of JSON lines under a file lock, which Optuna documents
for many processes and for file systems without reliable locks. So:

* ``optuna-dashboard runs/<name>/<task>/<model>/optuna.journal`` follows a search while it runs;
* a killed driver leaves the journal as it was at its last operation, and ``--resume`` continues it:
  Tune restores its searcher from its last checkpoint, the journal is cut back to what that checkpoint
  knew (:func:`rewind`), and the restored searcher's study reads on from there;
* nothing is copied when the search ends.

Appends are flushed to the operating system but not ``fsync``-ed one by one (Optuna's backend does
both): a killed process loses nothing the OS already has, and a per-operation fsync cost more than a
near-instant trial (``bench perf``, runner cost). A power cut may lose the last operations; the
search's own records (``trials.jsonl``) are the same kind of log.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file  # the backend's own lock protocol

JOURNAL = "optuna.journal"
LEGACY = "optuna.db"  # a study written at the end of a search, by hepbench before the journal (sqlite)


class JournalFile(JournalFileBackend):
    """Optuna's journal file, each append flushed but not fsync-ed (see the module's docstring)."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with get_lock_file(self._lock):
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))


def path(study_dir: Path) -> Path:
    return Path(study_dir).resolve() / JOURNAL  # absolute: a resumed searcher reopens it from its pickle


def rewind(journal: Path, size: int | None) -> None:
    """Cut the journal back to its first ``size`` bytes: the study as a searcher's checkpoint knew it.

    Tune checkpoints its searcher now and then; a killed driver resumes from the last checkpoint and
    runs again every trial that was not finished by then. What the journal recorded after that point
    (trials suggested or finished later, a line cut by the kill) is dropped, so the study and Tune agree
    on every trial, as they did when the study lived in the checkpoint itself."""
    if size is not None and journal.is_file() and journal.stat().st_size > size:
        with open(journal, "rb+") as f:
            f.truncate(size)


def size(journal: Path) -> int:
    return journal.stat().st_size if journal.is_file() else 0


def storage(study_dir: Path) -> JournalStorage:
    """The study directory's journal storage (the file is created if missing); readers may open it while
    the search writes."""
    journal = path(study_dir)
    return JournalStorage(JournalFile(str(journal)))  # Optuna's default lock: optuna-dashboard takes the same


def load(study_dir: Path):
    """The study of a study directory (its journal, or an older hepbench's sqlite copy), or None."""
    import optuna

    study_dir = Path(study_dir)
    if (study_dir / JOURNAL).is_file():
        store = storage(study_dir)
    elif (study_dir / LEGACY).is_file():
        store = f"sqlite:///{study_dir / LEGACY}"
    else:
        return None
    summaries = optuna.get_all_study_summaries(store)
    return optuna.load_study(study_name=summaries[0].study_name, storage=store) if summaries else None
