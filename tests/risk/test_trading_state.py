"""Trading state: the pure gate, tighten-only trips, operator-only loosening, multiple reasons,
persistence and restore through the real journal."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.execution.journal import Journal, JournalStore, TradingStateRecord
from hedgerd.risk.trading_state import (
    DEFAULT_TRIP_STATE,
    OrderKind,
    ReasonCode,
    TradingState,
    TradingStateMachine,
    TradingStateSnapshot,
    allows,
    operator_actor,
)

A, R, H = TradingState.ACTIVE, TradingState.REDUCE_ONLY, TradingState.HALTED
OP = operator_actor(1000)


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        self.now_ms += 1
        return self.now_ms


class MemoryStore:
    def __init__(self, records: list[TradingStateRecord] | None = None) -> None:
        self.records = records if records is not None else []

    async def last_trading_state(self) -> TradingStateRecord | None:
        return max(self.records, key=lambda r: r.seq) if self.records else None

    async def save_trading_state(self, record: TradingStateRecord) -> None:
        await asyncio.sleep(0)  # a real store yields to the loop
        self.records.append(record)


# ------------------------------------------------------------------------------- gate


def test_active_passes_everything() -> None:
    assert allows(A, OrderKind.NEW, 1.0, 5.0).allowed
    assert allows(A, OrderKind.AMEND, 0.0, -3.0).allowed


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        (1.0, 0.2, True),  # reduces
        (-1.0, -0.5, True),  # reduces a short delta
        (1.0, -0.4, True),  # crosses zero, ends smaller: passes
        (1.0, -1.0, False),  # crosses zero, same size: does not shrink
        (1.0, -1.5, False),  # crosses zero, ends larger
        (1.0, 1.2, False),  # grows
        (0.0, 0.1, False),  # nothing to reduce
        (1.0, 1.0, False),
        (math.nan, 0.0, False),  # unknown delta never passes
        (1.0, math.inf, False),
    ],
)
def test_reduce_only_judges_the_underlyings_net_delta(
    before: float, after: float, allowed: bool
) -> None:
    ok, reason = allows(R, OrderKind.NEW, before, after)
    assert ok is allowed and reason.startswith("reduce_only")
    assert allows(R, OrderKind.AMEND, before, after).allowed is allowed


def test_halted_passes_only_cancels_and_operator_flatten() -> None:
    assert not allows(H, OrderKind.NEW, 1.0, 0.0).allowed  # even a reducing hedge
    assert not allows(H, OrderKind.AMEND, 1.0, 0.0).allowed
    assert allows(H, OrderKind.CANCEL, 1.0, 1.0).allowed
    assert allows(H, OrderKind.NEW, 1.0, 1.0, is_cancel=True).allowed
    assert allows(H, OrderKind.NEW, -2.0, 3.0, is_operator_flatten=True).allowed
    # cancels and flatten pass everywhere
    for state in (A, R, H):
        assert allows(state, OrderKind.CANCEL, 0.0, 9.0).allowed
        assert allows(state, OrderKind.NEW, 0.0, 9.0, is_operator_flatten=True).allowed


@settings(max_examples=300, deadline=None)
@given(st.floats(-100, 100), st.floats(-100, 100))
def test_reduce_only_never_passes_a_growing_order(before: float, after: float) -> None:
    ok = allows(R, OrderKind.NEW, before, after).allowed
    assert ok == (abs(after) < abs(before))


# ---------------------------------------------------------------------------- machine


async def test_trips_only_tighten_and_track_every_reason() -> None:
    store = MemoryStore()
    m = await TradingStateMachine.restore(store, clock_ms=Clock())
    assert m.state is A and store.records == []
    assert await m.trip(ReasonCode.MARGIN, "margin 12% < 15%")
    assert m.state is R  # MARGIN defaults to REDUCE_ONLY
    assert await m.trip(ReasonCode.STALE_DATA, "BTC quotes 12 s old")
    assert m.state is H
    assert await m.trip(ReasonCode.INSUFFICIENT_FUNDS, "10009", state=R)
    assert m.state is H  # a looser trip never loosens
    assert not await m.trip(ReasonCode.STALE_DATA, "still stale")  # no-op, not persisted
    assert set(m.snapshot.reason_codes) == {
        ReasonCode.MARGIN,
        ReasonCode.STALE_DATA,
        ReasonCode.INSUFFICIENT_FUNDS,
    }
    assert [r.state for r in store.records] == ["reduce_only", "halted", "halted"]
    assert [r.seq for r in store.records] == [1, 2, 3]
    with pytest.raises(ValueError):
        await m.trip(ReasonCode.OPERATOR, "not for trips")
    with pytest.raises(ValueError):
        await m.trip(ReasonCode.MARGIN, "x", state=A)


async def test_only_the_operator_loosens() -> None:
    m = await TradingStateMachine.restore(MemoryStore(), clock_ms=Clock())
    await m.trip(ReasonCode.MARGIN, "thin")
    await m.trip(ReasonCode.POSITION_MISMATCH, "BTC-PERPETUAL off by 30 USD")
    assert m.state is H
    # reduce-only from HALTED: the HALTED-level reason is overruled, MARGIN stays
    assert await m.reduce_only(actor=OP, text="checked positions")
    assert m.state is R
    assert set(m.snapshot.reason_codes) == {ReasonCode.MARGIN, ReasonCode.OPERATOR}
    assert await m.resume(actor=OP)
    assert m.state is A and m.reasons == ()
    assert await m.halt(actor=OP, text="maintenance")
    assert m.state is H and m.reasons[0].actor == OP and m.reasons[0].detail == "maintenance"
    assert not await m.halt(actor=OP, text="maintenance")  # nothing changes


async def test_gate_sees_a_trip_before_the_journal_write_finishes() -> None:
    m = await TradingStateMachine.restore(MemoryStore(), clock_ms=Clock())
    assert m.trip_nowait(ReasonCode.REJECT_STREAK, "5 rejects in a row")
    assert m.state is H and not m.check(OrderKind.NEW, 1.0, 0.0).allowed
    await m.flush()


async def test_listeners_hear_each_transition() -> None:
    m = await TradingStateMachine.restore(MemoryStore(), clock_ms=Clock())
    seen: list[TradingStateSnapshot] = []
    m.add_listener(seen.append)
    await m.trip(ReasonCode.CLOCK_SKEW, "skew 1.2 s")
    await m.resume(actor=OP)
    assert [s.state for s in seen] == [H, A]


async def test_halt_survives_a_restart_through_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    clock = Clock()
    journal = await Journal.open(path)
    m = await TradingStateMachine.restore(journal, clock_ms=clock)
    await m.halt(actor=OP, text="end of day")
    await m.trip(ReasonCode.DAILY_LOSS, "hedge loss 1.2k USD > 1k")
    await journal.close()

    journal = await Journal.open(path)  # "restart"
    m2 = await TradingStateMachine.restore(journal, clock_ms=clock)
    assert m2.state is H
    assert m2.snapshot.reason_codes == (ReasonCode.DAILY_LOSS, ReasonCode.OPERATOR)
    assert m2.snapshot.seq == 2
    # a trip after restart still cannot loosen, and only resume does
    await m2.trip(ReasonCode.MARGIN, "thin")
    assert m2.state is H
    await m2.resume(actor=OP, text="all clear")
    await journal.close()

    store = JournalStore(path, readonly=True)
    try:
        history = store.trading_state_history()
        assert [(r.seq, r.state, r.cause, r.actor) for r in history] == [
            (1, "halted", "operator", OP),
            (2, "halted", "daily_loss", "auto"),
            (3, "halted", "margin", "auto"),
            (4, "active", "operator", OP),
        ]
        last = store.last_trading_state()
        assert last is not None and last.state == "active" and last.reasons == ()
    finally:
        store.close()


async def test_initial_state_and_unreadable_state() -> None:
    store = MemoryStore()
    m = await TradingStateMachine.restore(store, clock_ms=Clock(), initial=H)
    assert m.state is H and [r.state for r in store.records] == ["halted"]
    bad = TradingStateRecord(7, 5, "paused", (), None, "operator", "uid:1", "from the future")
    m2 = await TradingStateMachine.restore(MemoryStore([bad]), clock_ms=Clock())
    assert m2.state is H and m2.snapshot.reason_codes == (ReasonCode.COMPONENT_CRASH,)
    assert m2.snapshot.seq == 8


def test_every_automatic_code_has_a_default_that_is_not_active() -> None:
    automatic = set(ReasonCode) - {ReasonCode.OPERATOR}
    assert set(DEFAULT_TRIP_STATE) == automatic
    assert A not in DEFAULT_TRIP_STATE.values()


async def test_nowait_trips_persist_in_order_and_failures_do_not_loosen() -> None:
    store = MemoryStore()
    m = await TradingStateMachine.restore(store, clock_ms=Clock())
    m.trip_nowait(ReasonCode.MARGIN, "thin")
    m.trip_nowait(ReasonCode.ORDER_RATE, "31 orders/min > 30")
    m.trip_nowait(ReasonCode.PRICE_SANITY, "mark 3% off index")
    await m.flush()
    assert [(r.seq, r.state) for r in store.records] == [
        (1, "reduce_only"),
        (2, "halted"),
        (3, "halted"),
    ]

    class FailingStore(MemoryStore):
        async def save_trading_state(self, record: TradingStateRecord) -> None:
            raise OSError("disk full")

    failing = await TradingStateMachine.restore(FailingStore(), clock_ms=Clock())
    failing.trip_nowait(ReasonCode.COMPONENT_CRASH, "executor died")
    await failing.flush()  # logged, not raised
    assert failing.state is H
    with pytest.raises(OSError):
        await failing.trip(ReasonCode.MARGIN, "thin", state=H)
    assert failing.state is H


async def test_resync_takes_the_journals_state() -> None:
    """HA takeover: the machine takes what the shared journal last recorded (another node's
    halt), and ACTIVE when nothing was recorded (its own unrecorded trip is dropped)."""
    store = MemoryStore()
    m = await TradingStateMachine.restore(store, clock_ms=Clock())
    seen: list[TradingState] = []
    m.add_listener(lambda snap: seen.append(snap.state))
    other = await TradingStateMachine.restore(store, clock_ms=Clock())
    await other.halt(actor="uid:0", text="other node")
    assert await m.resync()
    assert m.state is TradingState.HALTED and seen == [TradingState.HALTED]
    assert not await m.resync()  # nothing new

    fresh = await TradingStateMachine.restore(MemoryStore(), clock_ms=Clock())
    await fresh.trip(ReasonCode.COMPONENT_CRASH, "own outage", state=TradingState.HALTED)
    fresh._store = MemoryStore()
    assert await fresh.resync()
    assert fresh.state is TradingState.ACTIVE and fresh.reasons == ()
