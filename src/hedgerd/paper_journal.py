"""`hedgerd paper` starts from a clean journal: each run's simulator is a new world (its order
and trade ids start again from the same numbers), so the previous run's journal describes a
venue that no longer exists. Journalling the new run's fills into it recorded trades under ids
the old run had used for other trades (`executor.fill_conflict`) and reconciled this run's
orders against the last run's. The previous journal is kept beside it as `<name>.prev`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: SQLite's files of one database: the file, its write-ahead log and shared memory.
_SUFFIXES = ("", "-wal", "-shm")


def set_aside_journal(path: Path) -> Path | None:
    """Move the SQLite journal at `path` (and its -wal, -shm) to `<path>.prev` (replacing an
    older one); returns the new path, None when there was nothing to move or when a process
    holds the journal (its `.lock`, as `hedgerd run`/`paper` takes it): then nothing moves
    and that daemon's own start refuses the journal as it always did."""
    if not path.exists():
        return None
    lock = Path(f"{path}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        prev = path.with_name(path.name + ".prev")
        for suffix in _SUFFIXES:
            old = Path(f"{prev}{suffix}")
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        for suffix in _SUFFIXES:
            src = Path(f"{path}{suffix}")
            if src.exists():
                src.rename(Path(f"{prev}{suffix}"))
        log.info("paper.journal_set_aside", journal=str(path), previous=str(prev))
        return prev
    finally:
        os.close(fd)


__all__ = ["set_aside_journal"]
