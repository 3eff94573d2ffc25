"""`hedgerd paper` sets the previous run's journal aside (a new simulator world reuses its
order and trade ids: fills journalled into the old file conflicted), unless a running
daemon holds it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hedgerd.paper_journal import set_aside_journal


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "hedgerd.sqlite"
    path.write_bytes(b"run 2")
    Path(f"{path}-wal").write_bytes(b"wal 2")
    Path(f"{path}.prev").write_bytes(b"run 1")
    Path(f"{path}.prev-shm").write_bytes(b"shm 1")
    return path


def test_the_previous_journal_goes_to_prev(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    prev = set_aside_journal(path)
    assert prev == tmp_path / "hedgerd.sqlite.prev"
    assert not path.exists() and not Path(f"{path}-wal").exists()
    assert prev.read_bytes() == b"run 2" and Path(f"{prev}-wal").read_bytes() == b"wal 2"
    assert not Path(f"{prev}-shm").exists()  # the older run's files are gone, not mixed in
    assert set_aside_journal(path) is None  # nothing left to move


def test_a_journal_in_use_stays(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert set_aside_journal(path) is None
        assert path.read_bytes() == b"run 2"
    finally:
        os.close(fd)
