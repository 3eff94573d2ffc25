"""The journal's two engines for tests: every journal test runs on SQLite and on PostgreSQL.

`journal_backend` (a session fixture in tests/conftest.py, parametrized "sqlite" and
"postgresql") hands out fresh, empty journal locations; `raw` opens a location's database
beside the journal (for what a test must do behind the journal's back: an old schema, a
version from the future, a second reader).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hedgerd.execution.journal_db import JournalDb, JournalLocation, PostgresTarget, SqliteDb
from pg_server import PgServer, scratch_schema


@dataclass(frozen=True, slots=True)
class JournalBackend:
    """`name` is "sqlite" or "postgresql"; `server` the throwaway PostgreSQL (None: SQLite)."""

    name: str
    server: PgServer | None = None

    @contextlib.contextmanager
    def fresh(self) -> Iterator[JournalLocation]:
        """An empty journal location, removed afterwards (SQLite: a file in a directory that
        does not exist yet; PostgreSQL: an empty schema)."""
        if self.server is None:
            with tempfile.TemporaryDirectory() as tmp:
                yield Path(tmp) / "state" / "journal.sqlite"
        else:
            with scratch_schema(self.server, "j") as url:
                yield PostgresTarget(url)

    @property
    def syntax_error(self) -> type[Exception]:
        """What the engine raises for a statement it cannot parse."""
        if self.server is None:
            import sqlite3

            return sqlite3.OperationalError
        import psycopg

        return psycopg.errors.SyntaxError


@contextlib.contextmanager
def raw(location: JournalLocation) -> Iterator[JournalDb]:
    """The location's database on a connection of its own (autocommit), not through the
    journal: no lock, no migration."""
    if isinstance(location, PostgresTarget):
        from hedgerd.execution.journal_pg import PostgresDb

        db: JournalDb = PostgresDb(location)
    else:
        import sqlite3

        path = Path(location)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        db = SqliteDb(conn)
    try:
        yield db
    finally:
        db.close()


__all__ = ["JournalBackend", "raw"]
