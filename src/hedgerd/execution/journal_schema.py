"""The journal's schema as a list of migrations, applied in order and recorded in
`PRAGMA user_version` (SQLite) or the `journal_schema_version` table (PostgreSQL). The
statements are written once, in SQLite's dialect; `JournalDb.ddl` translates them for
PostgreSQL (types, autoincrement: see `journal_db.postgres_ddl`).

Rules for adding a migration: append a `Migration(version=N + 1, ...)`; never edit one that
has shipped (files in the field are at its version); each migration runs in one transaction
together with its `user_version` bump, so a crash mid-migration leaves the file at the old
version, untouched. A file newer than this code (a downgrade) is refused, not guessed at.

Units: amounts are in each row's instrument amount unit (`amount_unit`: usd for inverse
futures and perpetuals, coin otherwise), prices in the instrument's price unit, every `*_ms`
is UTC epoch milliseconds. `recorded_ms` is when the journal wrote the row; `ts_ms` is when
the fact happened (venue time for fills and order updates).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from hedgerd.execution.journal_db import JournalDb, as_journal_db


class JournalVersionError(Exception):
    """The journal file's schema is newer than this hedgerd, or the migrations are broken."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1_ORDERS = Migration(
    version=1,
    description="decisions, order intents and their updates, fills, event timeline",
    statements=(
        """CREATE TABLE decisions (
            decision_id TEXT PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,
            underlying  TEXT NOT NULL,
            reason      TEXT NOT NULL,
            payload     TEXT NOT NULL,          -- the decision as JSON
            recorded_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX decisions_ts ON decisions (ts_ms)",
        # One row per client order id: the intent (committed before the send) and its latest
        # state; every change is also appended to order_updates.
        """CREATE TABLE orders (
            label               TEXT PRIMARY KEY,
            decision_id         TEXT REFERENCES decisions (decision_id),
            venue               TEXT NOT NULL,
            instrument          TEXT NOT NULL,
            side                TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            amount              REAL NOT NULL CHECK (amount > 0),
            amount_unit         TEXT NOT NULL,
            limit_price         REAL,
            style               TEXT NOT NULL,
            reduce_only         INTEGER NOT NULL,
            status              TEXT NOT NULL,
            filled_amount       REAL NOT NULL,
            avg_price           REAL,
            venue_filled_amount REAL NOT NULL,
            venue_order_id      TEXT,
            created_ms          INTEGER NOT NULL,
            sent_ms             INTEGER,
            acked_ms            INTEGER,
            updated_ms          INTEGER,
            closed_ms           INTEGER,
            reason              TEXT,
            recorded_ms         INTEGER NOT NULL
        )""",
        "CREATE INDEX orders_decision ON orders (decision_id)",
        "CREATE INDEX orders_created ON orders (created_ms)",
        "CREATE INDEX orders_venue_order_id ON orders (venue, venue_order_id)",
        "CREATE INDEX orders_open ON orders (status) "
        "WHERE status NOT IN ('filled', 'cancelled', 'rejected')",
        """CREATE TABLE order_updates (
            seq           INTEGER PRIMARY KEY AUTOINCREMENT,
            label         TEXT NOT NULL REFERENCES orders (label),
            ts_ms         INTEGER NOT NULL,
            event         TEXT NOT NULL,
            status_before TEXT NOT NULL,
            status_after  TEXT NOT NULL,
            payload       TEXT NOT NULL,
            recorded_ms   INTEGER NOT NULL
        )""",
        "CREATE INDEX order_updates_label ON order_updates (label, seq)",
        # Every trade the venue reported, ours or not. order_label is the journal order it
        # belongs to (NULL: unknown order), applied = 1 when it was counted in that order.
        """CREATE TABLE fills (
            seq            INTEGER PRIMARY KEY AUTOINCREMENT,
            venue          TEXT NOT NULL,
            trade_id       TEXT NOT NULL,
            instrument     TEXT NOT NULL,
            label          TEXT,
            order_label    TEXT,
            applied        INTEGER NOT NULL,
            venue_order_id TEXT,
            side           TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            amount         REAL NOT NULL CHECK (amount > 0),
            price          REAL NOT NULL,
            fee            REAL NOT NULL,
            fee_currency   TEXT NOT NULL,
            ts_ms          INTEGER NOT NULL,
            recorded_ms    INTEGER NOT NULL,
            UNIQUE (venue, trade_id)
        )""",
        "CREATE INDEX fills_order_label ON fills (order_label)",
        "CREATE INDEX fills_ts ON fills (ts_ms)",
        # The timeline behind `hedgerctl events` and `journal export --table events`: one row
        # per journal write, with a gap-free cursor (seq).
        """CREATE TABLE events (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            ts_ms       INTEGER NOT NULL,
            kind        TEXT NOT NULL,
            ref         TEXT,
            payload     TEXT NOT NULL,
            recorded_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX events_ts ON events (ts_ms)",
    ),
)

_V2_CONTROL = Migration(
    version=2,
    description="trading state (current and history) and the operator audit log",
    statements=(
        """CREATE TABLE trading_state (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            seq         INTEGER NOT NULL,
            ts_ms       INTEGER NOT NULL,
            state       TEXT NOT NULL,
            reasons     TEXT NOT NULL,          -- JSON list of active reasons
            recorded_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE trading_state_history (
            seq            INTEGER PRIMARY KEY,  -- the state machine's transition number
            ts_ms          INTEGER NOT NULL,
            previous_state TEXT,
            state          TEXT NOT NULL,
            cause          TEXT NOT NULL,
            actor          TEXT NOT NULL,
            detail         TEXT NOT NULL,
            reasons        TEXT NOT NULL,
            recorded_ms    INTEGER NOT NULL
        )""",
        "CREATE INDEX trading_state_history_ts ON trading_state_history (ts_ms)",
        """CREATE TABLE audit_log (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            ts_ms       INTEGER NOT NULL,
            uid         INTEGER,                -- NULL when the caller is not known
            surface     TEXT NOT NULL,
            command     TEXT NOT NULL,
            args        TEXT NOT NULL,          -- JSON, secrets redacted
            outcome     TEXT NOT NULL,
            recorded_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX audit_log_ts ON audit_log (ts_ms)",
    ),
)

_V3_ACCOUNTS = Migration(
    version=3,
    description="trading state per venue account (under the portfolio's trading_state)",
    statements=(
        # One row per account (its `[venues.NAME]` name): what `trading_state` is for the
        # portfolio. `seq` counts the account's own transitions.
        """CREATE TABLE account_trading_state (
            account     TEXT PRIMARY KEY,
            seq         INTEGER NOT NULL,
            ts_ms       INTEGER NOT NULL,
            state       TEXT NOT NULL,
            reasons     TEXT NOT NULL,          -- JSON list of active reasons
            recorded_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE account_trading_state_history (
            account        TEXT NOT NULL,
            seq            INTEGER NOT NULL,     -- the account machine's transition number
            ts_ms          INTEGER NOT NULL,
            previous_state TEXT,
            state          TEXT NOT NULL,
            cause          TEXT NOT NULL,
            actor          TEXT NOT NULL,
            detail         TEXT NOT NULL,
            reasons        TEXT NOT NULL,
            recorded_ms    INTEGER NOT NULL,
            PRIMARY KEY (account, seq)
        )""",
        "CREATE INDEX account_trading_state_history_ts ON account_trading_state_history (ts_ms)",
    ),
)

_V4_REQUEST_EXPIRY = Migration(
    version=4,
    description="each order's request expiry (Deribit valid_until, OKX expTime); events by kind",
    statements=(
        # UTC ms after which the venue refuses the order's request; NULL: none was sent. A
        # new HA leader waits until the latest has passed before it sends (docs/ha.md).
        "ALTER TABLE orders ADD COLUMN valid_until_ms INTEGER",
        "CREATE INDEX orders_valid_until ON orders (valid_until_ms)",
        # The latest timeline row of a kind about one thing (an HA takeover reads the
        # positions the previous one recorded).
        "CREATE INDEX events_kind_ref ON events (kind, ref, seq)",
    ),
)

_V5_VOLVOL_SAMPLES = Migration(
    version=5,
    description="the marks' vol-of-vol samples per underlying (the estimate's history)",
    statements=(
        # One row per sample the hedge loop's vol-of-vol estimator recorded (at most one per
        # 10 minutes per underlying): the book's |gamma|-weighted mark vol (a fraction) at
        # ts_ms (the daemon's clock). A hedge loop's start seeds the estimator from them
        # (`portfolio.volvol_seed`); rows before the window's first change's predecessor are
        # pruned at each write.
        """CREATE TABLE volvol_samples (
            underlying  TEXT NOT NULL,
            ts_ms       INTEGER NOT NULL,
            mark_vol    REAL NOT NULL CHECK (mark_vol > 0),
            recorded_ms INTEGER NOT NULL,
            PRIMARY KEY (underlying, ts_ms)
        )""",
    ),
)

_V6_INDEX_SAMPLES = Migration(
    version=6,
    description="the index price beside each vol-of-vol sample (the jump variance's history)",
    statements=(
        # The underlying's index (USD) when the sample was taken, for the jump variance
        # estimate (`hedging.jumps`, seeded like the vol-of-vol from these rows); NULL in rows
        # written before this version.
        "ALTER TABLE volvol_samples ADD COLUMN index_usd REAL CHECK (index_usd > 0)",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1_ORDERS,
    _V2_CONTROL,
    _V3_ACCOUNTS,
    _V4_REQUEST_EXPIRY,
    _V5_VOLVOL_SAMPLES,
    _V6_INDEX_SAMPLES,
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def user_version(conn: sqlite3.Connection | JournalDb) -> int:
    return as_journal_db(conn).user_version()


def migrate(
    conn: sqlite3.Connection | JournalDb,
    migrations: Sequence[Migration] = MIGRATIONS,
    target: int | None = None,
) -> tuple[int, int]:
    """Bring the database up to `target` (default: the last migration); returns
    (version before, version after). A sqlite3 connection must be in autocommit mode
    (isolation_level None). Each step is one write transaction including its version bump,
    serialised against another process migrating the same database (which then finds the step
    done and skips it)."""
    db = as_journal_db(conn)
    for expected, step in enumerate(migrations, start=1):
        if step.version != expected:
            raise JournalVersionError(f"migrations must be numbered 1..N, found {step.version}")
    latest = len(migrations)
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise JournalVersionError(f"no migration to version {goal}")
    before = db.user_version()
    if before > latest:
        raise JournalVersionError(
            f"journal schema version {before} is newer than this hedgerd's ({latest}); "
            "use the hedgerd release that wrote it"
        )
    for step in migrations[before:goal]:
        db.begin_migration()
        try:
            if db.user_version() < step.version:  # else another process just applied it
                for statement in step.statements:
                    db.execute(db.ddl(statement))
                db.set_user_version(step.version)
            db.commit()
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        finally:
            db.end_migration()
    return before, max(before, goal)


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "JournalVersionError",
    "Migration",
    "migrate",
    "user_version",
]
