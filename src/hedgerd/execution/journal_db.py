"""The journal's database connection: one interface, SQLite or PostgreSQL underneath.

`JournalStore` writes its SQL once, in SQLite's dialect with `?` placeholders. A `JournalDb`
runs it on its engine and owns what differs between the two (the dialect, not the logic):
placeholders, column types and autoincrement in the schema, how a write transaction starts,
where the schema version lives, how the writer excludes a second writer, and which errors
mean "duplicate" or "missing parent row".

    SqliteDb   one file (hedgerd's default): `PRAGMA user_version`, `BEGIN IMMEDIATE`,
               a sidecar flock for writer exclusion (kept in journal.py)
    PostgresDb (hedgerd.execution.journal_pg) a database reached by URL: a version table,
               `BEGIN`, a session advisory lock for writer exclusion, `?` → `%s`

Where the journal lives is a `JournalLocation`: a path (SQLite) or a `PostgresTarget` (URL
without credentials; the password comes from the config's secret or file, or libpq's own
`PGPASSWORD`/`~/.pgpass`, and is never logged).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

POSTGRES_SCHEMES = ("postgresql", "postgres")


class Row(Protocol):
    """A result row: by column index or by column name (sqlite3.Row and the PostgreSQL rows)."""

    def __getitem__(self, key: Any, /) -> Any: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class JournalDb(Protocol):
    """What `JournalStore` and the migrations need from a connection."""

    #: "sqlite" or "postgresql"
    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement written with `?` placeholders."""
        ...

    def begin(self) -> None:
        """Start a write transaction (taking the write lock at once, not at the first write)."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None: ...

    @property
    def in_transaction(self) -> bool: ...

    def user_version(self) -> int:
        """The schema version (0: empty database)."""
        ...

    def set_user_version(self, version: int) -> None:
        """Record the schema version, inside the migration's transaction."""
        ...

    def begin_migration(self) -> None:
        """`begin()`, serialised against other processes migrating the same database."""
        ...

    def end_migration(self) -> None:
        """After the migration's COMMIT or ROLLBACK: let the next process migrate."""
        ...

    def ddl(self, statement: str) -> str:
        """A schema statement (written for SQLite) in this engine's dialect."""
        ...

    def columns(self, table: str) -> list[str]:
        """The table's columns in definition order (without any engine-private one)."""
        ...

    def is_unique_violation(self, exc: BaseException) -> bool: ...
    def is_foreign_key_violation(self, exc: BaseException) -> bool: ...

    def integrity_check(self) -> str:
        """ "ok" when the database is sound."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------ location


class JournalUrlError(ValueError):
    """A journal URL that cannot be used (not PostgreSQL, or with a password in it)."""


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """A PostgreSQL journal: `url` (postgresql://user@host:port/db, no password: it would end
    up in logs, `ps` and shell history) and the password, if libpq's own sources
    (PGPASSWORD, ~/.pgpass, a client certificate) do not provide it."""

    url: str
    password: SecretStr | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_postgres_url(self.url)

    def __str__(self) -> str:
        return self.url


JournalLocation: TypeAlias = str | os.PathLike[str] | PostgresTarget


def is_postgres_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in text


def check_postgres_url(url: str) -> None:
    """Raise `JournalUrlError` unless `url` is a postgresql:// URL without a password."""
    if not is_postgres_url(url):
        raise JournalUrlError("a journal URL starts with postgresql:// (or postgres://)")
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError as exc:
        raise JournalUrlError(f"not a valid URL: {exc}") from None
    if has_password or "password" in {k.lower() for k in parse_qs(parts.query)}:
        # Never repeat the URL here: it holds the secret.
        raise JournalUrlError(
            "the journal URL must not contain a password: give it as journal.password, "
            "journal.password_file or HEDGERD_JOURNAL__PASSWORD (or libpq's PGPASSWORD / "
            "~/.pgpass)"
        )


def journal_location(text: str, password: SecretStr | None = None) -> Path | PostgresTarget:
    """A journal named on a command line or in a config: a postgresql:// URL or a file path."""
    if is_postgres_url(text):
        return PostgresTarget(text, password)
    return Path(text)


def location_name(location: JournalLocation) -> str:
    """How to name the journal in messages and logs (never with a secret)."""
    return str(location) if isinstance(location, PostgresTarget) else os.fspath(location)


# -------------------------------------------------------------------------------- SQLite


class ExplicitTransactions:
    """COMMIT and ROLLBACK as statements, on a connection in autocommit mode (both engines:
    the journal starts its transactions itself, see `JournalDb.begin`)."""

    conn: Any

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")


class SqliteDb(ExplicitTransactions):
    """A journal file through the standard library's sqlite3 (autocommit mode: transactions
    are explicit)."""

    dialect = "sqlite"
    conn: sqlite3.Connection

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def begin(self) -> None:
        # IMMEDIATE takes the write lock now: a transaction that reads then writes cannot fail
        # with "database is locked" half-way.
        self.conn.execute("BEGIN IMMEDIATE")

    begin_migration = begin  # BEGIN IMMEDIATE already serialises writers of the file

    def end_migration(self) -> None:
        pass

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def user_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def set_user_version(self, version: int) -> None:
        self.conn.execute(f"PRAGMA user_version = {int(version)}")

    def ddl(self, statement: str) -> str:
        return statement

    def columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def is_foreign_key_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc)

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


def as_journal_db(conn: sqlite3.Connection | JournalDb) -> JournalDb:
    """A raw sqlite3 connection (tools, tests) wrapped; a `JournalDb` as it is."""
    return SqliteDb(conn) if isinstance(conn, sqlite3.Connection) else conn


# ------------------------------------------------------------------ dialect: PostgreSQL DDL

_AUTOINCREMENT = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.IGNORECASE)
_INTEGER_PK = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.IGNORECASE)
_INTEGER = re.compile(r"\bINTEGER\b", re.IGNORECASE)
_REAL = re.compile(r"\bREAL\b", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\b", re.IGNORECASE)
_ALTER_TABLE = re.compile(r"^\s*ALTER\s+TABLE\b", re.IGNORECASE)
#: The column that stands for SQLite's implicit rowid in PostgreSQL (insertion order).
ROWID = "rowid"


def postgres_ddl(statement: str) -> str:
    """A schema statement written for SQLite, in PostgreSQL's dialect.

    - INTEGER is 64-bit in SQLite (epoch milliseconds need it): BIGINT; REAL: DOUBLE PRECISION;
    - INTEGER PRIMARY KEY AUTOINCREMENT: an identity column;
    - a table without an INTEGER PRIMARY KEY has SQLite's implicit `rowid` (insertion order,
      which queries use to break ties): PostgreSQL gets it as an explicit identity column,
      last, so positional INSERTs see the same columns.
    Other statements (indexes, partial indexes) are the same in both.
    """
    if not (_CREATE_TABLE.match(statement) or _ALTER_TABLE.match(statement)):
        return statement
    needs_rowid = _CREATE_TABLE.match(statement) is not None and not _INTEGER_PK.search(statement)
    out = _AUTOINCREMENT.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", statement)
    out = _INTEGER.sub("BIGINT", out)
    out = _REAL.sub("DOUBLE PRECISION", out)
    if needs_rowid:
        body = out.rstrip()
        if not body.endswith(")"):
            raise ValueError(f"cannot translate CREATE TABLE: {statement[:60]!r}")
        out = f"{body[:-1].rstrip()},\n    {ROWID} BIGINT GENERATED ALWAYS AS IDENTITY\n)"
    return out


def postgres_placeholders(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled). The journal's SQL has no
    `?` inside string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


def without_private(columns: Iterable[str]) -> list[str]:
    return [c for c in columns if c != ROWID]


__all__ = [
    "ROWID",
    "Cursor",
    "ExplicitTransactions",
    "JournalDb",
    "JournalLocation",
    "JournalUrlError",
    "PostgresTarget",
    "Row",
    "SqliteDb",
    "as_journal_db",
    "check_postgres_url",
    "is_postgres_url",
    "journal_location",
    "location_name",
    "postgres_ddl",
    "postgres_placeholders",
    "without_private",
]
