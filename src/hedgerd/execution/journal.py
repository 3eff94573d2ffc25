"""The journal: hedgerd's only durable state, in one SQLite file (the default) or a
PostgreSQL database (`[journal] url`, for a standby on another host: hedgerd.ha).

Decisions, order intents (committed before the send), order updates, fills (unique by venue
trade id), the trading state and the operator audit log. The daemon writes it through the async
`Journal`, which runs every call on one dedicated thread owning one connection, so the event
loop never waits on the disk and writes are applied in the order they were awaited. `JournalStore`
is the same thing without the thread, for tools (export) and tests.

Durability. WAL mode with `synchronous=FULL`: every commit fsyncs the WAL, so a write that has
returned survives a process kill *and* a power cut. (NORMAL would survive a process kill but may
lose the last commits on power loss; an order intent lost that way would leave a live order the
journal does not know, so intents pay the fsync.) Each write method is one transaction.

PostgreSQL runs the same schema, migrations and SQL through `journal_db`/`journal_pg` (what
differs is the dialect, the version's place and the writer lock; see journal_pg); the rest of
this page describes the SQLite file.

Files. The database and its -wal and -shm are created 0600, a missing parent directory 0700,
and an existing file with looser permissions is tightened. A sidecar `<db>.lock` (0600) holds an
exclusive flock while a writer is open: two daemons on one journal would double every hedge.

Time: every `*_ms` is UTC epoch milliseconds; amounts are in the order's `amount_unit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import structlog

from hedgerd.execution import journal_schema
from hedgerd.execution.journal_db import (
    JournalDb,
    JournalLocation,
    PostgresTarget,
    Row,
    SqliteDb,
    location_name,
)
from hedgerd.execution.order_state import (
    Filled,
    OrderEvent,
    OrderRecord,
    OrderStateError,
    OrderStyle,
    TimedOut,
    apply,
    event_name,
)
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import Fill, OrderSide, OrderStatus
from hedgerd.ops.logging import SecretRedactor, redactor

if TYPE_CHECKING:
    from hedgerd.execution.journal_pg import PostgresDb

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

FILE_MODE = 0o600
DIR_MODE = 0o700
_TERMINAL = tuple(s.value for s in OrderStatus if s.is_terminal)
#: Every table the journal's schema creates.
JOURNAL_TABLES = (
    "decisions",
    "orders",
    "order_updates",
    "fills",
    "events",
    "trading_state",
    "trading_state_history",
    "audit_log",
    "account_trading_state",
    "account_trading_state_history",
    "volvol_samples",
)


class JournalError(Exception):
    """The journal cannot do what was asked (see subclasses)."""


class JournalLockedError(JournalError):
    """Another process has the journal open for writing."""


class DuplicateIntentError(JournalError):
    """An intent with this label (or a decision with this id) is already journalled: the
    order may already have been sent, so it must not be sent again under a new intent."""


class UnknownOrderError(JournalError):
    """No journalled order has this label."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------ records


class _DecisionLike(Protocol):
    @property
    def decision_id(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def underlying(self) -> str: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as journalled: its id, time, underlying, the controller's reason, and the
    whole decision as JSON-able data (`payload`)."""

    decision_id: str
    ts_ms: int
    underlying: str
    reason: str
    payload: Mapping[str, Any]

    @classmethod
    def of(cls, decision: _DecisionLike) -> DecisionRecord:
        """From the controller's `HedgeDecision` (any dataclass with these four fields)."""
        if not dataclasses.is_dataclass(decision) or isinstance(decision, type):
            raise TypeError("a decision must be a dataclass instance")
        return cls(
            decision_id=decision.decision_id,
            ts_ms=decision.ts_ms,
            underlying=decision.underlying,
            reason=decision.reason,
            payload=dataclasses.asdict(decision),
        )


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What `record_fill` did. `duplicate`: the (venue, trade id) was already journalled and
    nothing changed. `order`: the journal order the fill belongs to, after the fill (None for a
    fill of an order the journal does not know: placed by hand or lost)."""

    duplicate: bool
    order: OrderRecord | None


@dataclass(frozen=True, slots=True)
class FillTotal:
    """Fills of one instrument over a period, in the instrument's amount unit: `net_amount`
    signed (buys positive), `gross_amount` unsigned."""

    venue: str
    instrument: str
    net_amount: float
    gross_amount: float
    count: int


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One row of the timeline: `kind` is decision, intent, order, fill, fill_conflict,
    order_conflict, adopted, state or operator; `ref` the label, decision id or state."""

    seq: int
    ts_ms: int
    kind: str
    ref: str | None
    payload: Mapping[str, Any]
    recorded_ms: int


@dataclass(frozen=True, slots=True)
class TradingStateRecord:
    """One trading-state transition as the risk layer persists it (the journal does not
    interpret states): `seq` is the state machine's transition number, `reasons` the active
    reasons after the transition (JSON-able), `cause` the reason code that caused it, `actor`
    "auto" or the operator ("uid:1000")."""

    seq: int
    ts_ms: int
    state: str
    reasons: tuple[Mapping[str, Any], ...]
    previous_state: str | None
    cause: str
    actor: str
    detail: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator command: caller uid (None if not known), the surface it came through
    (unix, tcp, signal, cli), the command, its arguments with secrets redacted, its outcome."""

    seq: int
    ts_ms: int
    uid: int | None
    surface: str
    command: str
    args: Mapping[str, Any]
    outcome: str


# --------------------------------------------------------------------------- helpers


def _json_default(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _event_payload(event: OrderEvent) -> dict[str, Any]:
    return {"event": event_name(event), **dataclasses.asdict(event)}


def _chmod_owner_only(path: Path, mode: int) -> None:
    """Set `mode` on `path` if it exists; say so when the file was looser."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current != mode:
        if current & 0o077:
            log.warning("journal_permissions_tightened", path=str(path), mode=oct(current))
        os.chmod(path, mode)


def _prepare_path(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
        os.chmod(parent, DIR_MODE)  # mkdir's mode is filtered by the umask
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _chmod_owner_only(path, FILE_MODE)


def _sidecars(path: Path) -> tuple[Path, Path]:
    return Path(f"{path}-wal"), Path(f"{path}-shm")


_ORDER_COLUMNS = (
    "label",
    "decision_id",
    "venue",
    "instrument",
    "side",
    "amount",
    "amount_unit",
    "limit_price",
    "style",
    "reduce_only",
    "status",
    "filled_amount",
    "avg_price",
    "venue_filled_amount",
    "venue_order_id",
    "created_ms",
    "sent_ms",
    "acked_ms",
    "updated_ms",
    "closed_ms",
    "reason",
    "valid_until_ms",
)
_ORDER_SELECT = ", ".join(_ORDER_COLUMNS)


def _order_values(order: OrderRecord) -> tuple[Any, ...]:
    return (
        order.label,
        order.decision_id,
        order.venue,
        order.instrument,
        order.side.value,
        order.amount,
        order.amount_unit.value,
        order.limit_price,
        order.style.value,
        int(order.reduce_only),
        order.status.value,
        order.filled_amount,
        order.avg_price,
        order.venue_filled_amount,
        order.venue_order_id,
        order.created_ms,
        order.sent_ms,
        order.acked_ms,
        order.updated_ms,
        order.closed_ms,
        order.reason,
        order.valid_until_ms,
    )


def _fill_from_row(row: Row) -> Fill:
    return Fill(
        venue=row["venue"],
        instrument=row["instrument"],
        trade_id=row["trade_id"],
        order_id=row["venue_order_id"] or "",
        label=row["label"],
        side=OrderSide(row["side"]),
        amount=row["amount"],
        price=row["price"],
        fee=row["fee"],
        fee_currency=row["fee_currency"],
        ts_ms=row["ts_ms"],
    )


def _decision_from_row(row: Row) -> DecisionRecord:
    return DecisionRecord(
        decision_id=row["decision_id"],
        ts_ms=row["ts_ms"],
        underlying=row["underlying"],
        reason=row["reason"],
        payload=json.loads(row["payload"]),
    )


def _event_from_row(row: Row) -> JournalEvent:
    return JournalEvent(
        seq=row["seq"],
        ts_ms=row["ts_ms"],
        kind=row["kind"],
        ref=row["ref"],
        payload=json.loads(row["payload"]),
        recorded_ms=row["recorded_ms"],
    )


# ----------------------------------------------------------------------------- store


#: A guard runs first inside an intent's write transaction, on the journal's connection, and
#: raises to refuse the write (the HA lease's fence: hedgerd.ha.lease).
IntentGuard = Callable[[JournalDb], None]


class JournalStore:
    """The journal on one connection, synchronous. Not thread-safe: use it from one thread
    (the async `Journal` does that for the daemon). Each write method is one transaction that
    has committed when the method returns.

    `location` is a path (SQLite) or a `PostgresTarget`. `exclusive` (writers only): refuse to
    open while another writer has the journal open; the HA integration turns it off on
    PostgreSQL and fences intents with the leader lease instead."""

    def __init__(
        self,
        location: JournalLocation,
        *,
        readonly: bool = False,
        clock_ms: Callable[[], int] = _now_ms,
        secrets: SecretRedactor | None = None,
        migrations: Sequence[journal_schema.Migration] = journal_schema.MIGRATIONS,
        exclusive: bool = True,
    ) -> None:
        self.readonly = readonly
        self.name = location_name(location)
        #: The SQLite file (None for PostgreSQL).
        self.path: Path | None = None
        self._clock_ms = clock_ms
        self._redactor = secrets if secrets is not None else redactor()
        self._lock_fd: int | None = None
        self._db: JournalDb
        if isinstance(location, PostgresTarget):
            self._db = self._open_postgres(location, readonly=readonly, exclusive=exclusive)
        else:
            self.path = path = Path(location)
            self._db = SqliteDb(self._open_sqlite(path, readonly=readonly, exclusive=exclusive))
        try:
            if readonly:
                version = self._db.user_version()
                if version == 0 and self._db.dialect != "sqlite":
                    raise JournalError(f"{self.name}: no journal there (schema not created)")
                if version > journal_schema.SCHEMA_VERSION:
                    raise journal_schema.JournalVersionError(
                        f"journal schema version {version} is newer than this hedgerd's "
                        f"({journal_schema.SCHEMA_VERSION})"
                    )
            else:
                before, after = journal_schema.migrate(self._db, migrations)
                if before != after:
                    log.info("journal_migrated", journal=self.name, before=before, after=after)
                if self.path is not None:
                    for sidecar in _sidecars(self.path):
                        _chmod_owner_only(sidecar, FILE_MODE)
        except BaseException:
            self.close()
            raise

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._db.dialect

    def _open_sqlite(self, path: Path, *, readonly: bool, exclusive: bool) -> sqlite3.Connection:
        if readonly:
            if not path.exists():
                raise JournalError(f"{path}: no such journal")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            _prepare_path(path)
            if exclusive:
                self._lock_fd = self._take_lock(path)
            try:
                conn = sqlite3.connect(path, isolation_level=None)
            except BaseException:
                self._release_lock()
                raise
        conn.row_factory = sqlite3.Row
        try:
            self._configure_sqlite(conn, path, readonly=readonly)
        except BaseException:
            conn.close()
            self._release_lock()
            raise
        return conn

    def _open_postgres(
        self, target: PostgresTarget, *, readonly: bool, exclusive: bool
    ) -> PostgresDb:
        from hedgerd.execution.journal_pg import PostgresDb  # psycopg only when it is used

        return PostgresDb(target, readonly=readonly, exclusive=exclusive)

    def _take_lock(self, path: Path) -> int:
        lock_path = Path(f"{path}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLockedError(
                f"{path} is open for writing by another process (is hedgerd running?)"
            ) from None
        _chmod_owner_only(lock_path, FILE_MODE)
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    @staticmethod
    def _configure_sqlite(conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
        conn.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{path}: cannot enable WAL (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None  # type: ignore[assignment]
        self._release_lock()

    @property
    def schema_version(self) -> int:
        return self._db.user_version()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[JournalDb]:
        if self.readonly:
            raise JournalError("journal opened read-only")
        db = self._db
        db.begin()
        try:
            yield db
            db.commit()
        except BaseException:
            if db.in_transaction:  # also after a failed COMMIT (disk full, I/O error)
                db.rollback()
            raise

    def _event(self, conn: JournalDb, ts_ms: int, kind: str, ref: str | None, payload: Any) -> None:
        conn.execute(
            "INSERT INTO events (ts_ms, kind, ref, payload, recorded_ms) VALUES (?, ?, ?, ?, ?)",
            (ts_ms, kind, ref, _dumps(payload), self._clock_ms()),
        )

    # ---------------------------------------------------------------- decisions, intents

    def _insert_decision(self, conn: JournalDb, decision: DecisionRecord) -> None:
        try:
            conn.execute(
                "INSERT INTO decisions (decision_id, ts_ms, underlying, reason, payload, "
                "recorded_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    decision.decision_id,
                    decision.ts_ms,
                    decision.underlying,
                    decision.reason,
                    _dumps(decision.payload),
                    self._clock_ms(),
                ),
            )
        except Exception as exc:
            if not conn.is_unique_violation(exc):
                raise
            raise DuplicateIntentError(
                f"decision {decision.decision_id} is already journalled"
            ) from None
        self._event(
            conn,
            decision.ts_ms,
            "decision",
            decision.decision_id,
            {"underlying": decision.underlying, "reason": decision.reason},
        )

    def record_decision(self, decision: DecisionRecord) -> None:
        """Journal a decision (before any of its intents)."""
        with self._transaction() as conn:
            self._insert_decision(conn, decision)

    def _insert_order(self, conn: JournalDb, order: OrderRecord, kind: str) -> None:
        placeholders = ", ".join("?" for _ in _ORDER_COLUMNS)
        try:
            conn.execute(
                f"INSERT INTO orders ({_ORDER_SELECT}, recorded_ms) VALUES ({placeholders}, ?)",
                (*_order_values(order), self._clock_ms()),
            )
        except Exception as exc:
            if conn.is_unique_violation(exc):
                raise DuplicateIntentError(f"order {order.label} is already journalled") from None
            if conn.is_foreign_key_violation(exc):
                raise JournalError(
                    f"order {order.label}: FOREIGN KEY constraint failed (decision "
                    f"{order.decision_id} is not journalled)"
                ) from None
            raise
        payload = {
            "decision_id": order.decision_id,
            "venue": order.venue,
            "instrument": order.instrument,
            "side": order.side.value,
            "amount": order.amount,
            "amount_unit": order.amount_unit.value,
            "limit_price": order.limit_price,
            "style": order.style.value,
            "reduce_only": order.reduce_only,
            "status": order.status.value,
        }
        if order.valid_until_ms is not None:
            payload["valid_until_ms"] = order.valid_until_ms
        conn.execute(
            "INSERT INTO order_updates (label, ts_ms, event, status_before, status_after, "
            "payload, recorded_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                order.label,
                order.created_ms,
                kind,
                order.status.value,
                order.status.value,
                _dumps(payload),
                self._clock_ms(),
            ),
        )
        self._event(conn, order.created_ms, kind, order.label, payload)

    def record_intents(
        self,
        orders: Sequence[OrderRecord],
        decision: DecisionRecord | None = None,
        *,
        guard: IntentGuard | None = None,
    ) -> None:
        """Journal order intents (status NEW), with their decision if given, in one
        transaction: when this returns they are on disk and may be sent. Each intent's
        `decision_id` must be journalled (here or before). Raises `DuplicateIntentError` if a
        label (or the decision) is already there, and then nothing is written. `guard` runs
        first in the same transaction; whatever it raises refuses the whole write (the HA
        lease: "only if I still hold epoch E")."""
        for order in orders:
            if order.status is not OrderStatus.NEW:
                raise ValueError(f"intent {order.label} must be NEW, is {order.status}")
            if order.decision_id is None:
                raise ValueError(f"intent {order.label} needs a decision id")
        with self._transaction() as conn:
            if guard is not None:
                guard(conn)
            if decision is not None:
                self._insert_decision(conn, decision)
            for order in orders:
                self._insert_order(conn, order, "intent")

    def record_intent(
        self,
        order: OrderRecord,
        decision: DecisionRecord | None = None,
        *,
        guard: IntentGuard | None = None,
    ) -> None:
        """`record_intents` for one order."""
        self.record_intents((order,), decision, guard=guard)

    def adopt_order(self, order: OrderRecord) -> None:
        """Journal an order found on the venue that the journal did not know (reconciliation
        decided to adopt it); it may be in any status and have no decision."""
        with self._transaction() as conn:
            self._insert_order(conn, order, "adopted")

    # ------------------------------------------------------------------- order updates

    def _load_order(self, conn: JournalDb, label: str) -> OrderRecord | None:
        row = conn.execute(
            f"SELECT {_ORDER_SELECT} FROM orders WHERE label = ?", (label,)
        ).fetchone()
        if row is None:
            return None
        trade_ids = frozenset(
            r[0]
            for r in conn.execute(
                "SELECT trade_id FROM fills WHERE order_label = ? AND applied = 1", (label,)
            )
        )
        return OrderRecord(
            label=row["label"],
            decision_id=row["decision_id"],
            venue=row["venue"],
            instrument=row["instrument"],
            side=OrderSide(row["side"]),
            amount=row["amount"],
            amount_unit=AmountUnit(row["amount_unit"]),
            limit_price=row["limit_price"],
            style=OrderStyle(row["style"]),
            reduce_only=bool(row["reduce_only"]),
            created_ms=row["created_ms"],
            status=OrderStatus(row["status"]),
            filled_amount=row["filled_amount"],
            avg_price=row["avg_price"],
            venue_filled_amount=row["venue_filled_amount"],
            venue_order_id=row["venue_order_id"],
            trade_ids=trade_ids,
            sent_ms=row["sent_ms"],
            acked_ms=row["acked_ms"],
            updated_ms=row["updated_ms"],
            closed_ms=row["closed_ms"],
            reason=row["reason"],
            valid_until_ms=row["valid_until_ms"],
        )

    def _store_update(
        self,
        conn: JournalDb,
        before: OrderRecord,
        after: OrderRecord,
        event: OrderEvent,
    ) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _ORDER_COLUMNS[1:])
        conn.execute(
            f"UPDATE orders SET {assignments}, recorded_ms = ? WHERE label = ?",
            (*_order_values(after)[1:], self._clock_ms(), after.label),
        )
        payload = _event_payload(event)
        conn.execute(
            "INSERT INTO order_updates (label, ts_ms, event, status_before, status_after, "
            "payload, recorded_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                after.label,
                event.ts_ms,
                event_name(event),
                before.status.value,
                after.status.value,
                _dumps(payload),
                self._clock_ms(),
            ),
        )
        self._event(
            conn,
            event.ts_ms,
            "order",
            after.label,
            {
                **payload,
                "status_before": before.status.value,
                "status_after": after.status.value,
                "filled_amount": after.filled_amount,
            },
        )

    def apply_event(self, label: str, event: OrderEvent) -> OrderRecord:
        """Apply a state-machine event to the journalled order and persist the result in one
        transaction; returns the order after the event (the same record if it was a no-op).
        Fills go through `record_fill` instead. An impossible event (`OrderStateError`) is
        journalled as an `order_conflict` event, then re-raised, and the order is unchanged."""
        if isinstance(event, Filled):
            raise ValueError("fills are journalled with record_fill (it de-duplicates them)")
        conflict: OrderStateError | None = None
        with self._transaction() as conn:
            before = self._load_order(conn, label)
            if before is None:
                raise UnknownOrderError(f"no journalled order {label}")
            try:
                after = apply(before, event)
            except OrderStateError as exc:
                conflict = exc
                self._event(
                    conn,
                    event.ts_ms,
                    "order_conflict",
                    label,
                    {**_event_payload(event), "error": str(exc)},
                )
                after = before
            if after is not before:
                self._store_update(conn, before, after, event)
        if conflict is not None:
            raise conflict
        return after

    def recover_in_doubt(self, ts_ms: int) -> list[OrderRecord]:
        """At start-up, before anything is sent: every order whose send may or may not have
        reached the venue (NEW: intent committed, send not recorded; SENT: no answer recorded)
        becomes UNKNOWN, in one transaction. Returns every UNKNOWN order: the reconciler queries
        each by label and applies the `QueryResult` before the executor sends again."""
        event = TimedOut(ts_ms=ts_ms, reason="restart: outcome of the send not journalled")
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT label FROM orders WHERE status IN (?, ?) ORDER BY created_ms, label",
                (OrderStatus.NEW.value, OrderStatus.SENT.value),
            ).fetchall()
            for row in rows:
                before = self._load_order(conn, row["label"])
                if before is not None:
                    self._store_update(conn, before, apply(before, event), event)
        return self._orders_where("status = ?", (OrderStatus.UNKNOWN.value,))

    # ---------------------------------------------------------------------------- fills

    def _match_order(self, conn: JournalDb, fill: Fill) -> OrderRecord | None:
        if fill.label:
            order = self._load_order(conn, fill.label)
            if order is not None and order.venue == fill.venue:
                return order
        if fill.order_id:
            row = conn.execute(
                "SELECT label FROM orders WHERE venue = ? AND venue_order_id = ?",
                (fill.venue, fill.order_id),
            ).fetchone()
            if row is not None:
                return self._load_order(conn, row["label"])
        return None

    def record_fill(self, fill: Fill) -> FillOutcome:
        """Journal one of our trades and count it in its order (matched by label, else by
        venue order id), in one transaction. A (venue, trade id) already journalled is a no-op
        reported as `duplicate=True`. A fill the order cannot take (over-fill, a rejected
        order) is kept, journalled as a `fill_conflict` event, and the `OrderStateError` is
        raised after the commit: the trade is a fact even when it contradicts the journal."""
        conflict: OrderStateError | None = None
        with self._transaction() as conn:
            order = self._match_order(conn, fill)
            cur = conn.execute(
                "INSERT INTO fills (venue, trade_id, instrument, label, order_label, applied, "
                "venue_order_id, side, amount, price, fee, fee_currency, ts_ms, recorded_ms) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (venue, trade_id) DO NOTHING",
                (
                    fill.venue,
                    fill.trade_id,
                    fill.instrument,
                    fill.label,
                    order.label if order is not None else None,
                    fill.order_id or None,
                    fill.side.value,
                    fill.amount,
                    fill.price,
                    fill.fee,
                    fill.fee_currency,
                    fill.ts_ms,
                    self._clock_ms(),
                ),
            )
            if cur.rowcount == 0:
                return FillOutcome(duplicate=True, order=order)
            fill_payload = {
                "venue": fill.venue,
                "trade_id": fill.trade_id,
                "instrument": fill.instrument,
                "side": fill.side.value,
                "amount": fill.amount,
                "price": fill.price,
                "fee": fill.fee,
                "fee_currency": fill.fee_currency,
            }
            if order is None:
                self._event(conn, fill.ts_ms, "fill", fill.label, fill_payload)
                return FillOutcome(duplicate=False, order=None)
            event = Filled(
                ts_ms=fill.ts_ms,
                trade_id=fill.trade_id,
                amount=fill.amount,
                price=fill.price,
                venue_order_id=fill.order_id or None,
            )
            try:
                if fill.side is not order.side or fill.instrument != order.instrument:
                    raise OrderStateError(
                        f"order {order.label}: fill {fill.trade_id} is a {fill.side} of "
                        f"{fill.instrument}, the order a {order.side} of {order.instrument}"
                    )
                after = apply(order, event)
            except OrderStateError as exc:
                conflict = exc
                self._event(
                    conn,
                    fill.ts_ms,
                    "fill_conflict",
                    order.label,
                    {**fill_payload, "error": str(exc)},
                )
                after = order
            else:
                conn.execute(
                    "UPDATE fills SET applied = 1 WHERE venue = ? AND trade_id = ?",
                    (fill.venue, fill.trade_id),
                )
                if after is not order:
                    self._store_update(conn, order, after, event)
        if conflict is not None:
            raise conflict
        return FillOutcome(duplicate=False, order=after)

    # -------------------------------------------------------------------- trading state

    def save_trading_state(
        self,
        record: TradingStateRecord,
        account: str | None = None,
        *,
        guard: IntentGuard | None = None,
    ) -> None:
        """Persist a trading-state transition: the history row and, if `record.seq` is the
        newest, the current state (so writes landing out of order cannot roll it back).
        `account`: the venue account's state (None: the portfolio's). `guard` runs first in
        the transaction, as for intents (HA: only the lease holder records states)."""
        detail = self._redactor.redact_text(record.detail)
        reasons = _dumps([self._clean(dict(r)) for r in record.reasons])
        now = self._clock_ms()
        history = (
            record.seq,
            record.ts_ms,
            record.previous_state,
            record.state,
            record.cause,
            record.actor,
            detail,
            reasons,
            now,
        )
        with self._transaction() as conn:
            if guard is not None:
                guard(conn)
            if account is None:
                conn.execute(
                    "INSERT INTO trading_state_history (seq, ts_ms, previous_state, state, "
                    "cause, actor, detail, reasons, recorded_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    history,
                )
                conn.execute(
                    "INSERT INTO trading_state (id, seq, ts_ms, state, reasons, recorded_ms) "
                    "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, "
                    "ts_ms = excluded.ts_ms, state = excluded.state, reasons = excluded.reasons, "
                    "recorded_ms = excluded.recorded_ms WHERE excluded.seq > trading_state.seq",
                    (record.seq, record.ts_ms, record.state, reasons, now),
                )
            else:
                conn.execute(
                    "INSERT INTO account_trading_state_history (account, seq, ts_ms, "
                    "previous_state, state, cause, actor, detail, reasons, recorded_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (account, *history),
                )
                conn.execute(
                    "INSERT INTO account_trading_state (account, seq, ts_ms, state, reasons, "
                    "recorded_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET "
                    "seq = excluded.seq, ts_ms = excluded.ts_ms, state = excluded.state, "
                    "reasons = excluded.reasons, recorded_ms = excluded.recorded_ms "
                    "WHERE excluded.seq > account_trading_state.seq",
                    (account, record.seq, record.ts_ms, record.state, reasons, now),
                )
            payload: dict[str, Any] = {
                "seq": record.seq,
                "previous_state": record.previous_state,
                "cause": record.cause,
                "actor": record.actor,
                "detail": detail,
            }
            if account is not None:
                payload["account"] = account
            self._event(
                conn,
                record.ts_ms,
                "state" if account is None else "account_state",
                record.state,
                payload,
            )

    def _history_record(self, row: Row) -> TradingStateRecord:
        return TradingStateRecord(
            seq=row["seq"],
            ts_ms=row["ts_ms"],
            state=row["state"],
            reasons=tuple(json.loads(row["reasons"])),
            previous_state=row["previous_state"],
            cause=row["cause"],
            actor=row["actor"],
            detail=row["detail"],
        )

    def last_trading_state(self, account: str | None = None) -> TradingStateRecord | None:
        """The newest persisted trading state of the portfolio, or of venue account
        `account` (None on a fresh journal)."""
        if account is None:
            row = self._db.execute(
                "SELECT h.* FROM trading_state s JOIN trading_state_history h ON h.seq = s.seq"
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT h.* FROM account_trading_state s JOIN account_trading_state_history h "
                "ON h.account = s.account AND h.seq = s.seq WHERE s.account = ?",
                (account,),
            ).fetchone()
        return None if row is None else self._history_record(row)

    def trading_state_history(
        self, since_ms: int = 0, account: str | None = None
    ) -> list[TradingStateRecord]:
        """The portfolio's trading-state transitions since `since_ms` (or account
        `account`'s)."""
        if account is None:
            rows = self._db.execute(
                "SELECT * FROM trading_state_history WHERE ts_ms >= ? ORDER BY seq", (since_ms,)
            )
        else:
            rows = self._db.execute(
                "SELECT * FROM account_trading_state_history WHERE account = ? AND ts_ms >= ? "
                "ORDER BY seq",
                (account, since_ms),
            )
        return [self._history_record(r) for r in rows]

    # ----------------------------------------------------------------------- audit log

    def _clean(self, args: dict[str, Any]) -> dict[str, Any]:
        return dict(self._redactor(None, "journal", args))

    def record_operator_command(
        self,
        *,
        ts_ms: int,
        uid: int | None,
        command: str,
        args: Mapping[str, Any],
        surface: str = "unix",
        outcome: str = "ok",
    ) -> int:
        """Journal an operator command; returns its audit sequence number. Arguments whose
        name says secret/token/password/api key, and any configured secret value anywhere,
        are replaced by the redaction marker before they reach the disk."""
        clean_args = self._clean(dict(args))
        command = self._redactor.redact_text(command)
        outcome = self._redactor.redact_text(outcome)
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO audit_log (ts_ms, uid, surface, command, args, outcome, "
                "recorded_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (ts_ms, uid, surface, command, _dumps(clean_args), outcome, self._clock_ms()),
            ).fetchone()
            seq = int(row[0])
            self._event(
                conn,
                ts_ms,
                "operator",
                command,
                {"uid": uid, "surface": surface, "args": clean_args, "outcome": outcome},
            )
        return seq

    def audit_since(self, since_ms: int = 0) -> list[AuditEntry]:
        rows = self._db.execute(
            "SELECT * FROM audit_log WHERE ts_ms >= ? ORDER BY seq", (since_ms,)
        )
        return [
            AuditEntry(
                seq=r["seq"],
                ts_ms=r["ts_ms"],
                uid=r["uid"],
                surface=r["surface"],
                command=r["command"],
                args=json.loads(r["args"]),
                outcome=r["outcome"],
            )
            for r in rows
        ]

    # -------------------------------------------------------------------------- queries

    def order(self, label: str) -> OrderRecord | None:
        """The journalled order with client id `label`."""
        return self._load_order(self._db, label)

    def _orders_where(self, where: str, params: Sequence[Any]) -> list[OrderRecord]:
        rows = self._db.execute(
            f"SELECT label FROM orders WHERE {where} ORDER BY created_ms, label", params
        ).fetchall()
        out = []
        for row in rows:
            order = self._load_order(self._db, row["label"])
            if order is not None:
                out.append(order)
        return out

    def open_orders(self, venue: str | None = None) -> list[OrderRecord]:
        """Every order not in a terminal state: NEW (maybe sent before a crash), SENT, ACKED,
        PARTIALLY_FILLED and UNKNOWN; oldest first."""
        marks = ", ".join("?" for _ in _TERMINAL)
        where = f"status NOT IN ({marks})"
        params: list[Any] = list(_TERMINAL)
        if venue is not None:
            where += " AND venue = ?"
            params.append(venue)
        return self._orders_where(where, params)

    def orders_for_decision(self, decision_id: str) -> list[OrderRecord]:
        return self._orders_where("decision_id = ?", (decision_id,))

    def latest_request_expiry_ms(self) -> int | None:
        """The latest request expiry (`valid_until_ms`) of any journalled order, None when
        none carries one: after it, no request of those orders can still be processed."""
        row = self._db.execute("SELECT MAX(valid_until_ms) FROM orders").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def order_by_venue_id(self, venue: str, venue_order_id: str) -> OrderRecord | None:
        row = self._db.execute(
            "SELECT label FROM orders WHERE venue = ? AND venue_order_id = ?",
            (venue, venue_order_id),
        ).fetchone()
        return None if row is None else self._load_order(self._db, row["label"])

    def decision(self, decision_id: str) -> DecisionRecord | None:
        row = self._db.execute(
            "SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)
        ).fetchone()
        return None if row is None else _decision_from_row(row)

    def decisions_since(self, since_ms: int, until_ms: int | None = None) -> list[DecisionRecord]:
        """Journalled decisions (those that sent orders) with `ts_ms` in [since_ms, until_ms),
        oldest first."""
        rows = self._db.execute(
            "SELECT * FROM decisions WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, rowid",
            (since_ms, until_ms if until_ms is not None else 2**62),
        )
        return [_decision_from_row(r) for r in rows]

    def fills_for_order(self, label: str) -> list[Fill]:
        """Every journalled fill matched to order `label` (including any that conflicted)."""
        rows = self._db.execute(
            "SELECT * FROM fills WHERE order_label = ? ORDER BY ts_ms, seq", (label,)
        )
        return [_fill_from_row(r) for r in rows]

    def fills_since(self, since_ms: int, until_ms: int | None = None) -> list[Fill]:
        """Fills with venue time in [since_ms, until_ms), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM fills WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, seq",
            (since_ms, until_ms if until_ms is not None else 2**62),
        )
        return [_fill_from_row(r) for r in rows]

    def trade_ids_since(self, venue: str, since_ms: int) -> set[str]:
        """The trade ids journalled for account `venue` with venue time >= `since_ms`."""
        rows = self._db.execute(
            "SELECT trade_id FROM fills WHERE venue = ? AND ts_ms >= ?", (venue, since_ms)
        )
        return {r[0] for r in rows}

    def fill_totals_since(self, since_ms: int, venue: str | None = None) -> list[FillTotal]:
        """Sum of fills per (venue, instrument) with venue time >= `since_ms`."""
        sql = (
            "SELECT venue, instrument, "
            "SUM(CASE side WHEN 'buy' THEN amount ELSE -amount END) AS net, "
            "SUM(amount) AS gross, COUNT(*) AS n FROM fills WHERE ts_ms >= ?"
        )
        params: list[Any] = [since_ms]
        if venue is not None:
            sql += " AND venue = ?"
            params.append(venue)
        sql += " GROUP BY venue, instrument ORDER BY venue, instrument"
        return [
            FillTotal(r["venue"], r["instrument"], r["net"], r["gross"], r["n"])
            for r in self._db.execute(sql, params)
        ]

    def count_intents_since(self, since_ms: int, venue: str | None = None) -> int:
        """Order intents created at or after `since_ms` (for order-rate limits)."""
        sql = "SELECT COUNT(*) FROM orders WHERE created_ms >= ? AND decision_id IS NOT NULL"
        params: list[Any] = [since_ms]
        if venue is not None:
            sql += " AND venue = ?"
            params.append(venue)
        return int(self._db.execute(sql, params).fetchone()[0])

    def events_since(
        self, after_seq: int = 0, since_ms: int | None = None, limit: int = 1000
    ) -> list[JournalEvent]:
        """Timeline rows with seq > `after_seq` (and ts_ms >= `since_ms` if given), in seq
        order, at most `limit`. Follow the timeline by passing the last seen seq back."""
        rows = self._db.execute(
            "SELECT * FROM events WHERE seq > ? AND ts_ms >= ? ORDER BY seq LIMIT ?",
            (after_seq, since_ms if since_ms is not None else -(2**62), limit),
        )
        return [_event_from_row(r) for r in rows]

    def record_event(self, ts_ms: int, kind: str, ref: str | None, payload: Any) -> None:
        """Append one row to the timeline (a fact with no table of its own)."""
        with self._transaction() as conn:
            self._event(conn, ts_ms, kind, ref, payload)

    def last_event(self, kind: str, ref: str | None) -> JournalEvent | None:
        """The latest timeline row of `kind` about `ref`, if any."""
        r = self._db.execute(
            "SELECT * FROM events WHERE kind = ? AND ref = ? ORDER BY seq DESC LIMIT 1",
            (kind, ref),
        ).fetchone()
        return None if r is None else _event_from_row(r)

    # ------------------------------------------------------------ vol-of-vol samples

    def record_volvol_sample(
        self,
        underlying: str,
        ts_ms: int,
        mark_vol: float,
        keep_since_ms: int,
        *,
        index_usd: float | None = None,
        guard: IntentGuard | None = None,
    ) -> None:
        """Keep one vol-of-vol sample of `underlying`, with the index (USD) at its time when
        given (a second one at the same time, from another node on a shared journal, is
        ignored) and prune its samples before the last one at or before `keep_since_ms` (the
        window's start: that one is the first change's predecessor). `guard` runs first in
        the transaction, as for intents (HA: only the lease holder records samples)."""
        with self._transaction() as conn:
            if guard is not None:
                guard(conn)
            conn.execute(
                "INSERT INTO volvol_samples (underlying, ts_ms, mark_vol, recorded_ms, index_usd) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (underlying, ts_ms) DO NOTHING",
                (underlying, ts_ms, mark_vol, self._clock_ms(), index_usd),
            )
            conn.execute(
                "DELETE FROM volvol_samples WHERE underlying = ? AND ts_ms < ("
                "SELECT MAX(ts_ms) FROM volvol_samples WHERE underlying = ? AND ts_ms <= ?)",
                (underlying, underlying, keep_since_ms),
            )

    def volvol_samples(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        """(time ms, mark vol) of `underlying`'s samples in (since_ms, until_ms], oldest
        first, after the last one at or before `since_ms` if any (their first change's
        predecessor)."""
        rows = self._sample_rows("ts_ms, mark_vol", "", underlying, since_ms, until_ms, 1)
        return [(int(r[0]), float(r[1])) for r in rows]

    def index_samples(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float, float]]:
        """(time ms, index USD, mark vol) of `underlying`'s samples in (since_ms, until_ms]
        that carry the index, oldest first (the jump variance's seed, `hedging.jumps`),
        after the two at or before `since_ms` if any: the window's first return and its
        bipower pair start from them."""
        rows = self._sample_rows(
            "ts_ms, index_usd, mark_vol",
            " AND index_usd IS NOT NULL",
            underlying,
            since_ms,
            until_ms,
            2,
        )
        return [(int(r[0]), float(r[1]), float(r[2])) for r in rows]

    def _sample_rows(
        self, columns: str, where: str, underlying: str, since_ms: int, until_ms: int, lead: int
    ) -> list[Row]:
        """`volvol_samples` rows (`columns`, filtered by `where`) of `underlying` in
        (since_ms, until_ms], oldest first, after the last `lead` at or before `since_ms`."""
        before = self._db.execute(
            f"SELECT {columns} FROM volvol_samples WHERE underlying = ? AND ts_ms <= ?{where} "
            f"ORDER BY ts_ms DESC LIMIT {int(lead)}",
            (underlying, since_ms),
        ).fetchall()
        rows = self._db.execute(
            f"SELECT {columns} FROM volvol_samples WHERE underlying = ? "
            f"AND ts_ms > ? AND ts_ms <= ?{where} ORDER BY ts_ms",
            (underlying, since_ms, until_ms),
        ).fetchall()
        return [*reversed(before), *rows]

    def integrity_check(self) -> str:
        """ "ok" when the database is sound (SQLite: `PRAGMA integrity_check`)."""
        return self._db.integrity_check()

    def iter_rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Stream the rows of a read query (export and diagnostics), written with `?`
        placeholders whatever the engine."""
        yield from self._db.execute(sql, params)

    def columns(self, table: str) -> list[str]:
        """A table's columns, in definition order."""
        return self._db.columns(table)


# ----------------------------------------------------------------------------- async


def _is_lease_refusal(exc: BaseException) -> bool:
    """A `ha.lease.LeaseError` (imported here lazily: the lease module imports the
    journal's database layer)."""
    from hedgerd.ha.lease import LeaseError

    return isinstance(exc, LeaseError)


class Journal:
    """The async journal the daemon uses. Every call runs on one dedicated thread that owns the
    connection, in the order the calls were made; a write's coroutine returns only after its
    COMMIT. If the awaiting task is cancelled, the write still completes (or not) on the
    thread: after a cancelled `record_intent` the intent may be on disk, so treat the order as
    possibly sent (it is NEW in the journal, and restart recovery queries it).

        journal = await Journal.open(path)
        await journal.record_intents(orders, DecisionRecord.of(decision))  # then send
        order = await journal.apply_event(label, Sent(ts_ms=now))
    """

    def __init__(self, store: JournalStore, executor: ThreadPoolExecutor) -> None:
        self._store = store
        self._executor = executor
        self._closed = False
        #: HA: the fence of a trading-state or vol-of-vol sample write (only the lease holder
        #: may record them: a fenced node's crash trip, or a standby's, written to the shared
        #: journal would be adopted by the next leader's takeover, and a deposed leader's
        #: samples read by the next leader's seed). None: no fence.
        self.state_guard: Callable[[], IntentGuard] | None = None

    @classmethod
    async def open(
        cls,
        location: JournalLocation,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        secrets: SecretRedactor | None = None,
        exclusive: bool = True,
    ) -> Journal:
        """Open (creating or migrating) the journal at `location`: a path or a
        `PostgresTarget`."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hedgerd-journal")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(
                executor,
                functools.partial(
                    JournalStore,
                    location,
                    clock_ms=clock_ms,
                    secrets=secrets,
                    exclusive=exclusive,
                ),
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None for PostgreSQL)."""
        return self._store.path

    @property
    def name(self) -> str:
        """The journal's path or URL, for messages (never with a secret)."""
        return self._store.name

    async def close(self) -> None:
        """Close the connection (on its thread) and stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._store.close)
        finally:
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(
        self, fn: Callable[Concatenate[JournalStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(store, *args, **kwargs)` on the journal thread (for queries not wrapped
        below)."""
        return await self.submit(fn, *args, **kwargs)

    def submit(
        self, fn: Callable[Concatenate[JournalStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """`run`, queued on the journal thread now (in order with the calls queued after it)
        and not awaited: the future carries its outcome."""
        if self._closed:
            raise JournalError("journal is closed")
        return asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, self._store, *args, **kwargs)
        )

    # writes
    async def record_decision(self, decision: DecisionRecord) -> None:
        await self.run(JournalStore.record_decision, decision)

    async def record_intents(
        self,
        orders: Sequence[OrderRecord],
        decision: DecisionRecord | None = None,
        *,
        guard: IntentGuard | None = None,
    ) -> None:
        await self.run(JournalStore.record_intents, tuple(orders), decision, guard=guard)

    async def record_intent(
        self,
        order: OrderRecord,
        decision: DecisionRecord | None = None,
        *,
        guard: IntentGuard | None = None,
    ) -> None:
        await self.run(JournalStore.record_intent, order, decision, guard=guard)

    async def adopt_order(self, order: OrderRecord) -> None:
        await self.run(JournalStore.adopt_order, order)

    async def apply_event(self, label: str, event: OrderEvent) -> OrderRecord:
        return await self.run(JournalStore.apply_event, label, event)

    async def recover_in_doubt(self, ts_ms: int) -> list[OrderRecord]:
        return await self.run(JournalStore.recover_in_doubt, ts_ms)

    async def record_fill(self, fill: Fill) -> FillOutcome:
        return await self.run(JournalStore.record_fill, fill)

    async def save_trading_state(
        self, record: TradingStateRecord, account: str | None = None
    ) -> None:
        make_guard = self.state_guard
        if make_guard is None:
            await self.run(JournalStore.save_trading_state, record, account)
            return
        try:
            await self.run(JournalStore.save_trading_state, record, account, guard=make_guard())
        except Exception as exc:
            if not _is_lease_refusal(exc):
                raise
            log.warning(
                "journal.trading_state_not_recorded",
                why=str(exc)[:200],
                account=account,
                state=record.state,
                cause=record.cause,
            )

    async def record_operator_command(
        self,
        *,
        ts_ms: int,
        uid: int | None,
        command: str,
        args: Mapping[str, Any],
        surface: str = "unix",
        outcome: str = "ok",
    ) -> int:
        return await self.run(
            JournalStore.record_operator_command,
            ts_ms=ts_ms,
            uid=uid,
            command=command,
            args=dict(args),
            surface=surface,
            outcome=outcome,
        )

    # reads
    async def order(self, label: str) -> OrderRecord | None:
        return await self.run(JournalStore.order, label)

    async def open_orders(self, venue: str | None = None) -> list[OrderRecord]:
        return await self.run(JournalStore.open_orders, venue)

    async def record_event(self, ts_ms: int, kind: str, ref: str | None, payload: Any) -> None:
        await self.run(JournalStore.record_event, ts_ms, kind, ref, payload)

    async def last_event(self, kind: str, ref: str | None) -> JournalEvent | None:
        return await self.run(JournalStore.last_event, kind, ref)

    async def latest_request_expiry_ms(self) -> int | None:
        return await self.run(JournalStore.latest_request_expiry_ms)

    async def orders_for_decision(self, decision_id: str) -> list[OrderRecord]:
        return await self.run(JournalStore.orders_for_decision, decision_id)

    async def order_by_venue_id(self, venue: str, venue_order_id: str) -> OrderRecord | None:
        return await self.run(JournalStore.order_by_venue_id, venue, venue_order_id)

    async def decision(self, decision_id: str) -> DecisionRecord | None:
        return await self.run(JournalStore.decision, decision_id)

    async def fills_for_order(self, label: str) -> list[Fill]:
        return await self.run(JournalStore.fills_for_order, label)

    async def trade_ids_since(self, venue: str, since_ms: int) -> set[str]:
        return await self.run(JournalStore.trade_ids_since, venue, since_ms)

    async def fills_since(self, since_ms: int, until_ms: int | None = None) -> list[Fill]:
        return await self.run(JournalStore.fills_since, since_ms, until_ms)

    async def fill_totals_since(self, since_ms: int, venue: str | None = None) -> list[FillTotal]:
        return await self.run(JournalStore.fill_totals_since, since_ms, venue)

    async def count_intents_since(self, since_ms: int, venue: str | None = None) -> int:
        return await self.run(JournalStore.count_intents_since, since_ms, venue)

    async def last_trading_state(self, account: str | None = None) -> TradingStateRecord | None:
        return await self.run(JournalStore.last_trading_state, account)

    async def trading_state_history(
        self, since_ms: int = 0, account: str | None = None
    ) -> list[TradingStateRecord]:
        return await self.run(JournalStore.trading_state_history, since_ms, account)

    async def events_since(
        self, after_seq: int = 0, since_ms: int | None = None, limit: int = 1000
    ) -> list[JournalEvent]:
        return await self.run(JournalStore.events_since, after_seq, since_ms, limit)

    async def audit_since(self, since_ms: int = 0) -> list[AuditEntry]:
        return await self.run(JournalStore.audit_since, since_ms)

    async def volvol_samples(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        return await self.run(JournalStore.volvol_samples, underlying, since_ms, until_ms)

    async def index_samples(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float, float]]:
        return await self.run(JournalStore.index_samples, underlying, since_ms, until_ms)

    def record_volvol_sample_soon(
        self,
        underlying: str,
        ts_ms: int,
        mark_vol: float,
        keep_since_ms: int,
        index_usd: float | None = None,
    ) -> asyncio.Future[None]:
        """`JournalStore.record_volvol_sample`, queued and not awaited (`submit`): the hedge
        loop's decision path does not wait on the disk for a sample. Fenced by `state_guard`
        (HA): a refused sample's future carries the `LeaseError`, nothing is written."""
        make_guard = self.state_guard
        return self.submit(
            JournalStore.record_volvol_sample,
            underlying,
            ts_ms,
            mark_vol,
            keep_since_ms,
            index_usd=index_usd,
            guard=make_guard() if make_guard is not None else None,
        )


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "JOURNAL_TABLES",
    "AuditEntry",
    "DecisionRecord",
    "DuplicateIntentError",
    "FillOutcome",
    "FillTotal",
    "IntentGuard",
    "Journal",
    "JournalError",
    "JournalEvent",
    "JournalLockedError",
    "JournalStore",
    "TradingStateRecord",
    "UnknownOrderError",
]
