"""The journal on PostgreSQL (psycopg 3): the `JournalDb` behind `[journal] url`.

Same schema, same migrations and same SQL as the SQLite journal (`journal_db` translates the
dialect). What PostgreSQL does differently:

- Schema version: the one-row table `journal_schema_version` (SQLite keeps it in
  `PRAGMA user_version`); migrations take a transaction-level advisory lock, so two processes
  starting on an empty database do not both create the tables.
- Durability: every session runs with `synchronous_commit = on`, whatever the server's
  default: a returned intent write is on the server's disk (and on its synchronous replicas),
  like SQLite's `synchronous=FULL`.
- Writer exclusion: a writer holds a session advisory lock named after the journal's schema
  (SQLite: a flock on a sidecar file); a second writer is refused. The lock ends with the
  session. The HA integration opens with `exclusive=False` and fences writes with the leader
  lease instead (hedgerd.ha.lease), because an advisory lock held by a frozen host's orphaned
  session could block a takeover for as long as TCP keepalives allow.
- Read-only: `default_transaction_read_only` for the session (export, tools).
- Isolation: READ COMMITTED. Each write is one transaction on the writer's one connection,
  so the journal's own writes are serialised as on SQLite.
- `events.seq` comes from an identity column: increasing in commit order for the single
  writer, but with gaps where a transaction rolled back (SQLite's has none); a cursor
  (`events_since(after_seq)`) does not care.

Connection: libpq keepalives and `tcp_user_timeout` so a dead network is noticed in seconds
rather than the OS default of two hours; each can be overridden in the URL's query string.
The password is passed to libpq apart from the URL and never logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from hedgerd.execution.journal_db import (
    Cursor,
    ExplicitTransactions,
    PostgresTarget,
    postgres_ddl,
    postgres_placeholders,
    without_private,
)

log = structlog.get_logger(__name__)

#: Connection defaults; the URL's own parameters win.
CONNECT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms of unacknowledged data before the connection is dead
    "application_name": "hedgerd-journal",
}
VERSION_TABLE = "journal_schema_version"
#: Advisory-lock namespaces (first key; the second is the schema's hash): the writer's session
#: lock and the migrations' transaction lock ("hj" and "hk" in ASCII). Different keys, so a
#: writer without the exclusive lock (HA) can still migrate while another session holds it.
WRITER_LOCK = 0x686A
MIGRATION_LOCK = 0x686B


class PgRow(tuple[Any, ...]):
    """A row readable by index or by column name, like sqlite3.Row."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description] if cursor.description else []
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, index)

    return make


def connect(
    target: PostgresTarget, *, application_name: str | None = None
) -> psycopg.Connection[Any]:
    """An autocommit connection (transactions are explicit) with hedgerd's defaults."""
    params: dict[str, Any] = dict(CONNECT_DEFAULTS)
    if application_name is not None:
        params["application_name"] = application_name
    params.update(conninfo_to_dict(target.url))
    if target.password is not None and "password" not in params:
        params["password"] = target.password.get_secret_value()
    conn: psycopg.Connection[Any] = psycopg.connect(
        autocommit=True,
        row_factory=_row_factory,
        **params,
    )
    return conn


class PostgresDb(ExplicitTransactions):
    """A journal in a PostgreSQL database (the schema on the connection's `search_path`)."""

    dialect = "postgresql"
    conn: psycopg.Connection[Any]

    def __init__(
        self, target: PostgresTarget, *, readonly: bool = False, exclusive: bool = False
    ) -> None:
        """Connect; `exclusive` (writers): take the writer lock or raise JournalLockedError."""
        self.target = target
        self.readonly = readonly
        self.exclusive = exclusive and not readonly
        self.conn = self._session()

    def _session(self) -> psycopg.Connection[Any]:
        conn = connect(self.target)
        try:
            conn.execute("SET synchronous_commit = on")
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
            else:
                # A writer that stops half-way through a transaction (a paused process) would
                # hold its row locks, and with them a lease takeover (hedgerd.ha.lease): the
                # server ends such a session. Journal transactions take milliseconds.
                conn.execute("SET idle_in_transaction_session_timeout = 5000")
            if self.exclusive and not self._try_writer_lock(conn):
                from hedgerd.execution.journal import JournalLockedError

                raise JournalLockedError(
                    f"{self.target} is open for writing by another process (is hedgerd running?)"
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, opened again if the last one was lost (only ever between
        transactions: a transaction that lost its connection has failed, and says so)."""
        if self.conn.closed or self.conn.broken:
            self.conn.close()
            self.conn = self._session()
            log.warning("journal_reconnected", journal=str(self.target))
        return self.conn

    def _run(self, conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> Cursor:
        if not params:  # no placeholder processing at all: `%` stays as written
            return conn.execute(sql)
        return conn.execute(postgres_placeholders(sql), params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self.in_transaction:
            return self._run(self.conn, sql, params)
        # Outside a transaction (reads): a connection found dead is opened again and the
        # statement retried once; whatever it was, it had not run.
        try:
            return self._run(self._live(), sql, params)
        except psycopg.OperationalError:
            if not self.conn.broken:
                raise
        return self._run(self._live(), sql, params)

    def begin(self) -> None:
        try:
            self._live().execute("BEGIN")
        except psycopg.OperationalError:
            # The server or the network dropped the idle session since the last write (a
            # restart, pg_terminate_backend): nothing was done yet, so a new session may start.
            if not self.conn.broken:
                raise
            self._live().execute("BEGIN")

    @property
    def in_transaction(self) -> bool:
        status = self.conn.info.transaction_status
        return status in (
            psycopg.pq.TransactionStatus.INTRANS,
            psycopg.pq.TransactionStatus.INERROR,
            psycopg.pq.TransactionStatus.ACTIVE,
        )

    def _version_table_exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()
        return row is not None and row[0] is not None

    def user_version(self) -> int:
        if not self._version_table_exists():
            return 0
        row = self.conn.execute(f"SELECT version FROM {VERSION_TABLE} WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def set_user_version(self, version: int) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)"
        )
        self.conn.execute(
            f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (int(version),),
        )

    def begin_migration(self) -> None:
        # A session lock taken *before* BEGIN: a second process starting at the same time
        # waits here, and its transaction then starts after the first one's commit, with
        # catalog caches that see the tables just created (a transaction-level lock taken
        # inside the transaction would leave it looking at a stale catalog).
        self._live().execute(
            "SELECT pg_advisory_lock(%s, hashtext(current_schema()))", (MIGRATION_LOCK,)
        )
        try:
            self.begin()
        except BaseException:
            self.end_migration()
            raise

    def end_migration(self) -> None:
        if not self.conn.broken and not self.conn.closed:
            self.conn.execute(
                "SELECT pg_advisory_unlock(%s, hashtext(current_schema()))", (MIGRATION_LOCK,)
            )

    def ddl(self, statement: str) -> str:
        return postgres_ddl(statement)

    def columns(self, table: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return without_private(str(r[0]) for r in rows)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation)

    def is_foreign_key_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.ForeignKeyViolation)

    def integrity_check(self) -> str:
        # PostgreSQL checks its pages itself (and amcheck needs an extension and a superuser);
        # what the journal can check is that the server answers and the schema is there.
        return "ok" if self._version_table_exists() else "no journal schema"

    @staticmethod
    def _try_writer_lock(conn: psycopg.Connection[Any]) -> bool:
        """Take the journal's writer lock for this session (False: another writer has it)."""
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (WRITER_LOCK,)
        ).fetchone()
        return bool(row is not None and row[0])

    def close(self) -> None:
        self.conn.close()


__all__ = ["CONNECT_DEFAULTS", "VERSION_TABLE", "PgRow", "PostgresDb", "connect"]
