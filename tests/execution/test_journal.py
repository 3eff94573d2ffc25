"""The journal, on SQLite and on PostgreSQL (every test runs on both: `journal_backend`):
commits before returning, off the event loop, de-duplicated fills, queries for the executor
and reconciler, trading state, audit log, migrations, permissions."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.execution import journal_schema
from hedgerd.execution.client_ids import client_label
from hedgerd.execution.journal import (
    JOURNAL_TABLES,
    DecisionRecord,
    DuplicateIntentError,
    Journal,
    JournalError,
    JournalLockedError,
    JournalStore,
    TradingStateRecord,
    UnknownOrderError,
)
from hedgerd.execution.journal_db import JournalLocation
from hedgerd.execution.order_state import (
    Acked,
    Cancelled,
    Filled,
    InvalidTransition,
    OrderRecord,
    OrderStyle,
    OverfillError,
    QueryResult,
    Sent,
    TimedOut,
    new_order,
)
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import Fill, OrderSide, OrderStatus
from hedgerd.ops.logging import REDACTED, SecretRedactor
from journal_backends import JournalBackend, raw

SECRET = "tok-3c9d1f0e8a7b6c5d"


def decision(did: str = "d1", ts_ms: int = 1_000) -> DecisionRecord:
    return DecisionRecord(did, ts_ms, "BTC", "band", {"net_delta_coin": 1.5, "legs": 1})


def intent(did: str = "d1", leg: int = 0, attempt: int = 0, **kw: object) -> OrderRecord:
    fields: dict[str, object] = {
        "label": client_label(did, leg, 0, attempt),
        "decision_id": did,
        "venue": "deribit",
        "instrument": "BTC-PERPETUAL",
        "side": OrderSide.SELL,
        "amount": 100.0,
        "amount_unit": AmountUnit.USD,
        "limit_price": 50_000.0,
        "style": OrderStyle.IOC_LIMIT,
        "reduce_only": False,
        "created_ms": 1_000,
    }
    fields.update(kw)
    return new_order(**fields)  # type: ignore[arg-type]


def fill(trade_id: str, amount: float, label: str | None, **kw: object) -> Fill:
    fields: dict[str, object] = {
        "venue": "deribit",
        "instrument": "BTC-PERPETUAL",
        "trade_id": trade_id,
        "order_id": "o-1",
        "label": label,
        "side": OrderSide.SELL,
        "amount": amount,
        "price": 50_000.0,
        "fee": 0.00001,
        "fee_currency": "BTC",
        "ts_ms": 2_000,
    }
    fields.update(kw)
    return Fill(**fields)  # type: ignore[arg-type]


@pytest.fixture
def db_path(journal_backend: JournalBackend) -> Iterator[JournalLocation]:
    """A fresh journal location: a file path (SQLite) or an empty schema (PostgreSQL)."""
    with journal_backend.fresh() as location:
        yield location


@pytest.fixture
def store(db_path: JournalLocation) -> Iterator[JournalStore]:
    s = JournalStore(db_path, secrets=SecretRedactor([SECRET]))
    yield s
    s.close()


def sqlite_only(backend: JournalBackend, what: str) -> None:
    if backend.name != "sqlite":
        pytest.skip(f"{what}: a property of the SQLite file")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- files


def test_owner_only_permissions(db_path: Path, journal_backend: JournalBackend) -> None:
    sqlite_only(journal_backend, "file permissions")
    old = os.umask(0o022)  # a typical permissive umask: the journal must not rely on it
    try:
        s = JournalStore(db_path)
        s.record_intent(intent(), decision())
        assert mode(db_path.parent) == 0o700
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            assert path.exists() and mode(path) == 0o600, path
        assert mode(Path(f"{db_path}.lock")) == 0o600
        s.close()
        os.chmod(db_path, 0o644)  # loosened by hand: tightened on the next open
        JournalStore(db_path).close()
        assert mode(db_path) == 0o600
    finally:
        os.umask(old)


def test_every_commit_is_durable(store: JournalStore) -> None:
    if store.dialect == "sqlite":
        rows = {
            "journal_mode": next(store.iter_rows("PRAGMA journal_mode"))[0],
            "synchronous": next(store.iter_rows("PRAGMA synchronous"))[0],
        }
        assert rows == {"journal_mode": "wal", "synchronous": 2}  # 2 = FULL
    else:
        assert next(store.iter_rows("SHOW synchronous_commit"))[0] == "on"


def test_second_writer_is_refused_readers_are_not(
    store: JournalStore, db_path: JournalLocation
) -> None:
    with pytest.raises(JournalLockedError):
        JournalStore(db_path)
    store.record_intent(intent(), decision())
    reader = JournalStore(db_path, readonly=True)
    assert reader.order(intent().label) is not None
    reader.close()


# ------------------------------------------------------------------------------ async


async def test_record_intent_returns_after_commit_and_runs_off_the_loop(
    db_path: JournalLocation,
) -> None:
    journal = await Journal.open(db_path)
    try:
        order = intent()
        await journal.record_intent(order, decision())
        # another connection sees it at once: the await returned after COMMIT
        with raw(db_path) as other:
            status = other.execute("SELECT status FROM orders WHERE label = ?", (order.label,))
            assert tuple(status.fetchone()) == ("new",)

        loop_thread = threading.get_ident()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        def slow(_: JournalStore) -> int:
            time.sleep(0.3)  # a slow disk
            return threading.get_ident()

        task = asyncio.create_task(ticker())
        worker_thread = await journal.run(slow)
        task.cancel()
        assert worker_thread != loop_thread
        assert ticks >= 10  # the loop kept running while the journal thread was busy
    finally:
        await journal.close()


async def test_async_writes_apply_in_call_order(db_path: JournalLocation) -> None:
    async with await Journal.open(db_path) as journal:
        order = intent()
        await journal.record_intent(order, decision())
        results = await asyncio.gather(
            journal.apply_event(order.label, Sent(1_001)),
            journal.apply_event(order.label, Acked(1_002, "o-1")),
            journal.record_fill(fill("t-1", 100.0, order.label)),
        )
        assert [r.status for r in results[:2]] == [OrderStatus.SENT, OrderStatus.ACKED]
        final = await journal.order(order.label)
        assert final is not None and final.status is OrderStatus.FILLED


# ----------------------------------------------------------------------- intents, updates


def test_duplicate_intent_or_decision_writes_nothing(store: JournalStore) -> None:
    store.record_intents([intent(leg=0), intent(leg=1)], decision())
    with pytest.raises(DuplicateIntentError):
        store.record_intent(intent(leg=0))
    with pytest.raises(DuplicateIntentError):  # the new decision rolls back with the dup label
        store.record_intents(
            [intent("d2"), replace(intent(leg=1), decision_id="d2")], decision("d2")
        )
    assert store.decision("d2") is None and store.order(intent("d2").label) is None


def test_intent_needs_its_decision_journalled(store: JournalStore) -> None:
    with pytest.raises(JournalError, match="FOREIGN KEY"):
        store.record_intent(intent("d9"))
    with pytest.raises(ValueError):
        store.record_intent(replace(intent(), status=OrderStatus.SENT))


def test_updates_persist_and_survive_reopen(store: JournalStore, db_path: JournalLocation) -> None:
    order = intent()
    store.record_intent(order, decision())
    store.apply_event(order.label, Sent(1_001))
    after = store.apply_event(order.label, TimedOut(1_500))
    assert after.status is OrderStatus.UNKNOWN
    assert store.apply_event(order.label, Cancelled(1_600)) == after  # UNKNOWN waits for a query
    store.close()
    reopened = JournalStore(db_path)
    try:
        assert reopened.order(order.label) == after
        updates = [
            (r["event"], r["status_before"], r["status_after"])
            for r in reopened.iter_rows("SELECT * FROM order_updates ORDER BY seq")
        ]
        assert updates == [
            ("intent", "new", "new"),
            ("sent", "new", "sent"),
            ("timed_out", "sent", "unknown"),
        ]
        resolved = reopened.apply_event(order.label, QueryResult(1_700, OrderStatus.CANCELLED, 0.0))
        assert resolved.status is OrderStatus.CANCELLED
    finally:
        reopened.close()


def test_impossible_event_is_journalled_and_raised(store: JournalStore) -> None:
    order = intent()
    store.record_intent(order, decision())
    store.apply_event(order.label, Sent(1_001))
    with pytest.raises(InvalidTransition):
        store.apply_event(order.label, Sent(1_002))
    assert store.order(order.label).status is OrderStatus.SENT  # type: ignore[union-attr]
    assert [e.kind for e in store.events_since()][-1] == "order_conflict"
    with pytest.raises(UnknownOrderError):
        store.apply_event("hg1-nope-0-0-0", Sent(1))
    with pytest.raises(ValueError):
        store.apply_event(order.label, Filled(1, "t", 1.0, 1.0))


# ------------------------------------------------------------------------------- fills


def test_fills_unique_by_trade_id_and_counted_once(store: JournalStore) -> None:
    order = intent()
    store.record_intent(order, decision())
    store.apply_event(order.label, Sent(1_001))
    first = store.record_fill(fill("t-1", 40.0, order.label))
    assert not first.duplicate and first.order is not None
    assert first.order.status is OrderStatus.PARTIALLY_FILLED
    again = store.record_fill(fill("t-1", 40.0, order.label))
    assert again.duplicate and again.order is not None and again.order.filled_amount == 40.0
    # no label on the trade (some venues): matched by the venue order id
    store.apply_event(order.label, Acked(1_002, "o-1"))
    second = store.record_fill(fill("t-2", 60.0, None, order_id="o-1"))
    assert second.order is not None and second.order.status is OrderStatus.FILLED
    assert [f.trade_id for f in store.fills_for_order(order.label)] == ["t-1", "t-2"]
    count = next(store.iter_rows("SELECT COUNT(*) FROM fills"))[0]
    assert count == 2


def test_overfill_keeps_the_trade_and_raises(store: JournalStore) -> None:
    order = intent()
    store.record_intent(order, decision())
    store.apply_event(order.label, Sent(1_001))
    store.record_fill(fill("t-1", 100.0, order.label))
    with pytest.raises(OverfillError):
        store.record_fill(fill("t-2", 10.0, order.label))
    assert store.order(order.label).filled_amount == 100.0  # type: ignore[union-attr]
    assert {f.trade_id for f in store.fills_for_order(order.label)} == {"t-1", "t-2"}
    assert store.events_since()[-1].kind == "fill_conflict"
    assert store.record_fill(fill("t-2", 10.0, order.label)).duplicate  # raised once only


def test_fill_of_an_unknown_order_is_kept(store: JournalStore) -> None:
    outcome = store.record_fill(fill("t-9", 10.0, "manual", order_id="o-x"))
    assert not outcome.duplicate and outcome.order is None
    assert [f.trade_id for f in store.fills_since(0)] == ["t-9"]


# ----------------------------------------------------------------------------- queries


def test_queries_for_executor_and_reconciler(store: JournalStore) -> None:
    store.record_intents([intent(leg=i) for i in range(5)], decision())
    store.record_intent(intent("d2", venue="okx", created_ms=5_000), decision("d2", 5_000))
    labels = [intent(leg=i).label for i in range(5)]
    store.apply_event(labels[1], Sent(1_001))
    store.apply_event(labels[2], Sent(1_001))
    store.apply_event(labels[2], TimedOut(1_200))
    store.apply_event(labels[3], Sent(1_001))
    store.record_fill(fill("t-1", 100.0, labels[3], ts_ms=3_000))
    store.apply_event(labels[4], Cancelled(1_001, "dry_run"))
    store.record_fill(fill("t-2", 30.0, "manual", order_id="o-x", side=OrderSide.BUY, ts_ms=4_000))

    open_labels = [o.label for o in store.open_orders()]
    assert open_labels == [labels[0], labels[1], labels[2], intent("d2").label]
    assert [o.status for o in store.open_orders("deribit")] == [
        OrderStatus.NEW,
        OrderStatus.SENT,
        OrderStatus.UNKNOWN,
    ]
    assert [o.label for o in store.orders_for_decision("d2")] == [intent("d2").label]
    by_venue_id = store.order_by_venue_id("deribit", "o-1")
    assert by_venue_id is not None and by_venue_id.label == labels[3]
    totals = store.fill_totals_since(0)
    assert len(totals) == 1
    assert (totals[0].net_amount, totals[0].gross_amount, totals[0].count) == (-70.0, 130.0, 2)
    assert store.fill_totals_since(3_500)[0].net_amount == 30.0
    assert store.count_intents_since(1_000) == 6
    assert store.count_intents_since(2_000, venue="okx") == 1


def test_events_cursor(store: JournalStore) -> None:
    store.record_intent(intent(), decision())
    events = store.events_since()
    assert [e.kind for e in events] == ["decision", "intent"]
    store.apply_event(intent().label, Sent(1_001))
    newer = store.events_since(after_seq=events[-1].seq)
    assert [(e.kind, e.ref) for e in newer] == [("order", intent().label)]
    assert newer[0].payload["status_after"] == "sent"
    assert store.events_since(since_ms=1_001) == newer


# ------------------------------------------------------------------- state and audit log


def state_record(seq: int, state: str, ts_ms: int) -> TradingStateRecord:
    return TradingStateRecord(
        seq=seq,
        ts_ms=ts_ms,
        state=state,
        reasons=({"code": "operator", "state": state, "detail": f"by {SECRET}"},),
        previous_state=None,
        cause="operator",
        actor="uid:1000",
        detail=f"halt with {SECRET}",
    )


def test_trading_state_current_and_history(store: JournalStore) -> None:
    assert store.last_trading_state() is None
    store.save_trading_state(state_record(1, "halted", 10))
    store.save_trading_state(state_record(3, "active", 30))
    store.save_trading_state(state_record(2, "reduce_only", 20))  # late write: history only
    last = store.last_trading_state()
    assert last is not None and (last.seq, last.state) == (3, "active")
    assert [r.state for r in store.trading_state_history()] == ["halted", "reduce_only", "active"]
    assert SECRET not in repr(store.trading_state_history())


def test_operator_audit_log_never_stores_secrets(
    store: JournalStore, db_path: JournalLocation
) -> None:
    store.record_operator_command(
        ts_ms=5, uid=1000, command="halt", args={"reason": f"rotating {SECRET}", "token": "x"}
    )
    store.record_operator_command(
        ts_ms=6, uid=1000, command="set", args={"key": "band", "value": "0.1"}, surface="tcp"
    )
    entries = store.audit_since(0)
    assert [(e.uid, e.command, e.surface) for e in entries] == [
        (1000, "halt", "unix"),
        (1000, "set", "tcp"),
    ]
    assert entries[0].args == {"reason": f"rotating {REDACTED}", "token": REDACTED}
    assert entries[1].args == {"key": "band", "value": "0.1"}
    for table in JOURNAL_TABLES:
        assert SECRET not in repr([tuple(r) for r in store.iter_rows(f"SELECT * FROM {table}")])
    store.close()
    if isinstance(db_path, Path):  # and not in a free page of the file either
        data = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.is_file())
        assert SECRET.encode() not in data


# -------------------------------------------------------------------------- migrations


def test_migrates_an_old_version_file(db_path: JournalLocation) -> None:
    with raw(db_path) as db:
        assert journal_schema.migrate(db, target=1) == (0, 1)
        db.execute(
            "INSERT INTO decisions VALUES ('d1', 1000, 'BTC', 'band', '{}', 1000)",
        )
    store = JournalStore(db_path)
    try:
        assert store.schema_version == journal_schema.SCHEMA_VERSION == 6
        assert store.decision("d1") is not None  # v1 data kept
        store.save_trading_state(state_record(1, "halted", 10))  # v2 table usable
        store.save_trading_state(state_record(1, "halted", 10), account="hedge")  # v3
        assert (
            store.last_trading_state("hedge") is not None and store.last_trading_state("x") is None
        )
        assert store.latest_request_expiry_ms() is None  # v4 column there, nothing in it
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_newer_file_is_refused(db_path: JournalLocation) -> None:
    JournalStore(db_path).close()
    with raw(db_path) as db:
        db.set_user_version(99)
    with pytest.raises(journal_schema.JournalVersionError):
        JournalStore(db_path)
    with pytest.raises(journal_schema.JournalVersionError):
        JournalStore(db_path, readonly=True)


def test_failed_migration_rolls_back_whole(
    db_path: JournalLocation, journal_backend: JournalBackend
) -> None:
    bad = journal_schema.Migration(
        journal_schema.SCHEMA_VERSION + 1,
        "broken",
        ("CREATE TABLE half_done (x INTEGER)", "NOT SQL"),
    )
    with pytest.raises(journal_backend.syntax_error):
        JournalStore(db_path, migrations=(*journal_schema.MIGRATIONS, bad))
    with raw(db_path) as db:
        assert journal_schema.user_version(db) == journal_schema.SCHEMA_VERSION
        assert db.columns("half_done") == [] and "seq" in db.columns("audit_log")


def test_decision_record_of_a_dataclass_decision(store: JournalStore) -> None:
    from dataclasses import dataclass as dc
    from enum import StrEnum

    class Style(StrEnum):
        TAKER = "taker"

    @dc(frozen=True)
    class Leg:
        instrument: str
        amount: float
        style: Style

    @dc(frozen=True)
    class Decision:
        decision_id: str
        underlying: str
        ts_ms: int
        reason: str
        legs: tuple[Leg, ...]

    record = DecisionRecord.of(
        Decision("d7", "ETH", 9, "band breach", (Leg("ETH-PERPETUAL", 10.0, Style.TAKER),))
    )
    store.record_decision(record)
    loaded = store.decision("d7")
    assert loaded is not None and loaded.reason == "band breach"
    assert loaded.payload["legs"] == [
        {"instrument": "ETH-PERPETUAL", "amount": 10.0, "style": "taker"}
    ]
    with pytest.raises(TypeError):
        DecisionRecord.of(object())  # type: ignore[arg-type]


def test_adopted_foreign_order(store: JournalStore) -> None:
    foreign = replace(
        intent(),
        label="manual-1",
        decision_id=None,
        status=OrderStatus.ACKED,
        venue_order_id="o-77",
    )
    store.adopt_order(foreign)
    assert store.order("manual-1") == foreign
    assert [o.label for o in store.open_orders()] == ["manual-1"]
    assert store.count_intents_since(0) == 0  # not one of hedgerd's intents
    outcome = store.record_fill(fill("t-5", 100.0, None, order_id="o-77"))
    assert outcome.order is not None and outcome.order.status is OrderStatus.FILLED


def test_recover_in_doubt_after_restart(store: JournalStore) -> None:
    store.record_intents([intent(leg=i) for i in range(4)], decision())
    labels = [intent(leg=i).label for i in range(4)]
    store.apply_event(labels[1], Sent(1_001))
    store.apply_event(labels[2], Sent(1_001))
    store.apply_event(labels[2], Acked(1_002, "o-2"))
    store.apply_event(labels[3], Cancelled(1_001, "dry_run"))
    in_doubt = store.recover_in_doubt(5_000)
    assert [o.label for o in in_doubt] == labels[:2]
    assert all(o.status is OrderStatus.UNKNOWN for o in in_doubt)
    assert store.order(labels[2]).status is OrderStatus.ACKED  # type: ignore[union-attr]
    assert store.recover_in_doubt(6_000) == in_doubt  # idempotent


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["t-1", "t-2", "t-3", "t-4"]), st.sampled_from([20.0, 30.0])),
        max_size=10,
    )
)
def test_journal_counts_each_trade_once(
    journal_backend: JournalBackend, trades: list[tuple[str, float]]
) -> None:
    with journal_backend.fresh() as location:
        store = JournalStore(location)
        try:
            order = intent()
            store.record_intent(order, decision())
            counted: dict[str, float] = {}
            seen: set[str] = set()  # journalled, counted or kept as a conflict
            for trade_id, amount in trades:
                try:
                    outcome = store.record_fill(fill(trade_id, amount, order.label))
                except OverfillError:
                    assert trade_id not in seen  # a journalled trade id never raises again
                    seen.add(trade_id)
                    continue
                assert outcome.duplicate == (trade_id in seen)
                if not outcome.duplicate:
                    counted[trade_id] = amount
                seen.add(trade_id)
            final = store.order(order.label)
            assert final is not None and final.filled_amount <= final.amount
            assert final.trade_ids == set(counted)
            assert final.filled_amount == pytest.approx(sum(counted.values()))
        finally:
            store.close()
