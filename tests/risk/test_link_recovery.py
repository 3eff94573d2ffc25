"""An account's link conditions (stale data, venue disconnected) clear by themselves once its
link has been healthy for `link_recover_after_s`, with several accounts; everything else,
the operator's states and the single-account (portfolio) state latch. Board clock: plain ms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hedgerd.execution.journal import Journal, TradingStateRecord
from hedgerd.ops.metrics import Metrics
from hedgerd.risk.account_state import LINK_CODES, AccountStates
from hedgerd.risk.kill_switches import KillSwitchBoard, MarginInputs
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.monitors import VenueDisconnectedSwitch
from hedgerd.risk.trading_state import (
    AUTO_ACTOR,
    LINK_ACTOR,
    ReasonCode,
    TradingState,
    TradingStateMachine,
    tightest,
)
from hedgerd.risk.trips import Trip

T0 = 1_700_000_000_000
A, R, H = TradingState.ACTIVE, TradingState.REDUCE_ONLY, TradingState.HALTED
NAMES = ("main", "sub")
HOLD_MS = int(KillSwitchSettings().link_recover_after_s * 1000)


class Alerts:
    def __init__(self) -> None:
        self.trips: list[Trip] = []
        self.texts: list[tuple[str, str]] = []

    def notify_trip(self, trip: Trip, ts_ms: int) -> None:
        self.trips.append(trip)

    def notify_text(self, kind: str, detail: str, ts_ms: int = 0) -> bool:
        self.texts.append((kind, detail))
        return True


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await Journal.open(tmp_path / "journal.sqlite", clock_ms=lambda: T0)
    yield j
    await j.close()


async def _rig(journal: Journal, names: tuple[str, ...] = NAMES) -> tuple[KillSwitchBoard, Alerts]:
    portfolio = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
    states = await AccountStates.restore(journal, portfolio, names, clock_ms=lambda: T0)
    alerts = Alerts()
    board = KillSwitchBoard(
        KillSwitchSettings(), portfolio, alerts=alerts, metrics=Metrics(process_metrics=False)
    )
    board.accounts = states
    for name in names:
        board.register_venue(name, T0)
        board.register_feed(name, "index:BTC", T0)
        board.register_feed(name, "positions", T0)
        board.on_connection(name, True, T0)
    return board, alerts


def _run(board: KillSwitchBoard, start_ms: int, end_ms: int, flowing: Iterable[str]) -> None:
    """Tick every second from `start_ms` to `end_ms` (inclusive), the accounts in `flowing`
    receiving fresh data before each tick."""
    names = tuple(flowing)
    for now in range(start_ms, end_ms + 1, 1_000):
        for name in names:
            board.on_data(name, "index:BTC", now)
            board.on_data(name, "positions", now)
        board.tick(now)


def _machine(board: KillSwitchBoard, name: str) -> TradingStateMachine:
    assert board.accounts is not None
    return board.accounts.machine(name)


async def test_a_venue_down_for_60_s_leaves_and_rejoins_by_itself(journal: Journal) -> None:
    board, alerts = await _rig(journal)
    sub = _machine(board, "sub")
    _run(board, T0, T0 + 1_000, NAMES)
    board.on_connection("sub", False, T0 + 1_500)
    _run(board, T0 + 2_000, T0 + 61_000, ("main",))
    assert sub.state is H and sub.link_codes() == {
        ReasonCode.STALE_DATA,
        ReasonCode.VENUE_DISCONNECTED,
    }
    assert all(r.actor == LINK_ACTOR for r in sub.reasons)
    assert _machine(board, "main").state is A and board.machine.state is A

    # Reconnected, but nothing subscribed yet: connected is not healthy.
    board.on_connection("sub", True, T0 + 61_500)
    _run(board, T0 + 62_000, T0 + 64_000, ("main",))
    assert not board.link_healthy("sub", T0 + 64_000) and sub.state is H
    # Data flows from 65 s: back after the hold, not before.
    _run(board, T0 + 65_000, T0 + 65_000 + HOLD_MS - 1_000, NAMES)
    assert sub.state is H
    _run(board, T0 + 65_000 + HOLD_MS, T0 + 65_000 + HOLD_MS, NAMES)
    assert sub.state is A and sub.reasons == ()
    assert alerts.texts and alerts.texts[-1][0] == "account_link_recovered"
    # Journalled: the account's last record is the recovery, by the link actor.
    await sub.flush()
    record = await journal.last_trading_state("sub")
    assert isinstance(record, TradingStateRecord)
    assert (record.state, record.previous_state, record.actor) == ("active", "halted", LINK_ACTOR)
    # Counted once each way (two codes tripped: one transition out).
    assert board.metrics is not None
    assert _transitions(board.metrics, "sub") == {"out": 1.0, "back": 1.0}


def _transitions(metrics: Metrics, venue: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        s.labels["transition"]: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "hedgerd_account_link_transitions_total" and s.labels["venue"] == venue
    }


async def test_a_reconnect_whose_subscription_fails_restarts_the_hold(journal: Journal) -> None:
    board, _ = await _rig(journal)
    sub = _machine(board, "sub")
    board.on_connection("sub", False, T0 + 1_000)
    _run(board, T0 + 1_000, T0 + 40_000, ("main",))
    assert sub.state is H
    # The WebSocket comes back and drops again before any data: never healthy.
    board.on_connection("sub", True, T0 + 40_100)
    board.on_connection("sub", False, T0 + 40_200)
    _run(board, T0 + 41_000, T0 + 41_000 + 2 * HOLD_MS, ("main",))
    assert sub.state is H
    # Healthy for half the hold, a blip between two ticks: the hold starts over.
    start = T0 + 45_000 + 2 * HOLD_MS
    board.on_connection("sub", True, start - 500)
    _run(board, start, start + HOLD_MS // 2, NAMES)
    blip = start + HOLD_MS // 2 + 300
    board.on_connection("sub", False, blip)
    board.on_connection("sub", True, blip + 100)
    _run(board, start + HOLD_MS // 2 + 1_000, blip + HOLD_MS - 1_000, NAMES)
    assert sub.state is H
    _run(board, blip + HOLD_MS + 700, blip + HOLD_MS + 700, NAMES)
    assert sub.state is A


async def test_operator_and_latched_reasons_stay(journal: Journal) -> None:
    board, _ = await _rig(journal)
    main, sub = _machine(board, "main"), _machine(board, "sub")
    await main.halt(actor="uid:1", text="drill")
    board.on_margin(T0, MarginInputs("sub", "BTC", equity=1.0, maintenance_margin=0.99))
    assert sub.state is R
    for name in NAMES:
        board.on_connection(name, False, T0 + 1_000)
    _run(board, T0 + 1_000, T0 + 40_000, ())
    assert (main.state, sub.state) == (H, H)
    for name in NAMES:
        board.on_connection(name, True, T0 + 40_500)
    _run(board, T0 + 41_000, T0 + 41_000 + 2 * HOLD_MS, NAMES)
    # The link cleared on both; the operator's HALT and the margin's REDUCE_ONLY hold.
    assert main.state is H and main.snapshot.reason_codes == (ReasonCode.OPERATOR,)
    assert sub.state is R and sub.snapshot.reason_codes == (ReasonCode.MARGIN,)


async def test_one_account_latches_in_the_portfolio(journal: Journal) -> None:
    board, alerts = await _rig(journal, ("only",))
    board.on_connection("only", False, T0 + 1_000)
    _run(board, T0 + 1_000, T0 + 40_000, ())
    assert board.machine.state is H
    assert all(r.actor == AUTO_ACTOR for r in board.machine.reasons)
    board.on_connection("only", True, T0 + 40_500)
    _run(board, T0 + 41_000, T0 + 41_000 + 3 * HOLD_MS, ("only",))
    assert board.machine.state is H and not alerts.texts


async def test_an_auth_failure_makes_a_link_reason_latch(journal: Journal) -> None:
    board, _ = await _rig(journal)
    sub = _machine(board, "sub")
    board.on_connection("sub", False, T0 + 1_000)
    _run(board, T0 + 1_000, T0 + 40_000, ("main",))
    assert ReasonCode.VENUE_DISCONNECTED in sub.link_codes()
    # The executor's auth failure: the same code, tripped by an ordinary (latching) trip.
    assert board.accounts is not None
    await board.accounts.trip("sub", ReasonCode.VENUE_DISCONNECTED, "sub: auth: bad key")
    board.on_connection("sub", True, T0 + 40_500)
    _run(board, T0 + 41_000, T0 + 41_000 + 2 * HOLD_MS, NAMES)
    assert sub.state is H and sub.snapshot.reason_codes == (ReasonCode.VENUE_DISCONNECTED,)


# ------------------------------------------------------------------ the invariant


class _Memory:
    def __init__(self) -> None:
        self.records: list[TradingStateRecord] = []

    async def last_trading_state(self) -> TradingStateRecord | None:
        return self.records[-1] if self.records else None

    async def save_trading_state(self, record: TradingStateRecord) -> None:
        self.records.append(record)


_CODES = [c for c in ReasonCode if c is not ReasonCode.OPERATOR]
_OPS = st.one_of(
    st.tuples(
        st.just("trip"),
        st.sampled_from(_CODES),
        st.sampled_from([R, H]),
        st.sampled_from([AUTO_ACTOR, LINK_ACTOR]),
    ),
    st.tuples(st.just("operator"), st.sampled_from([A, R, H])),
    st.tuples(st.just("clear")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_OPS, max_size=25))
def test_clearing_never_loosens_an_operator_or_a_latched_reason(ops: list[tuple[Any, ...]]) -> None:
    async def run() -> None:
        m = await TradingStateMachine.restore(_Memory(), clock_ms=lambda: T0)
        for op in ops:
            if op[0] == "trip":
                code, state, actor = op[1], op[2], op[3]
                if actor == LINK_ACTOR and code not in LINK_CODES:
                    actor = AUTO_ACTOR  # the board marks only link codes
                m.trip_nowait(code, "x", state=state, actor=actor)
            elif op[0] == "operator":
                await m.operator_set(op[1], actor="uid:1")
            else:
                before = m.snapshot
                kept = tuple(r for r in before.reasons if r.actor != LINK_ACTOR)
                m.clear_link_nowait("healthy")
                # Only self-clearing reasons go; operator's and latched ones stay as they were.
                assert m.reasons == kept
                # Never tighter than before, never looser than any reason left.
                assert m.state.severity <= before.state.severity
                assert m.state is tightest(*(r.state for r in kept))
            assert m.state.severity >= tightest(*(r.state for r in m.reasons)).severity
            operator = [r for r in m.reasons if r.code is ReasonCode.OPERATOR]
            assert all(m.state.severity >= r.state.severity for r in operator)
        await m.flush()

    asyncio.run(run())


def test_reconnected_since_is_none_until_a_reconnection() -> None:
    """Routing's "awaiting data" judges reconnections only: at start the stale-data switch's
    start-up grace judges the first data, as before."""
    switch = VenueDisconnectedSwitch(KillSwitchSettings().venue_disconnected)
    switch.register("okx", T0)
    assert switch.up_since_ms("okx") is None
    switch.observe("okx", True, T0 + 100)
    assert (switch.up_since_ms("okx"), switch.reconnected_since_ms("okx")) == (T0 + 100, None)
    switch.observe("okx", True, T0 + 200)  # another session: still up since the first
    assert switch.up_since_ms("okx") == T0 + 100
    switch.observe("okx", False, T0 + 300)
    assert (switch.up_since_ms("okx"), switch.reconnected_since_ms("okx")) == (None, None)
    switch.observe("okx", True, T0 + 400)
    assert switch.reconnected_since_ms("okx") == T0 + 400


@pytest.mark.parametrize("stamp_ms", [0, 300])
async def test_between_two_drops_only_data_after_the_latest_reconnect_counts(
    journal: Journal, stamp_ms: int
) -> None:
    """Issue 17: an account flipped back into routing for an instant between two WebSocket
    drops. Its last update before the second drop was processed in the same board
    millisecond as the drop and the reconnect (`stamp_ms` 0: a burst of events drained in one
    go), or stamped at or after the reconnect (300: the update's own time, ahead of when it was
    processed): judged by timestamps it counted as data after the reconnect, so the link read
    healthy at once and routing (`awaiting_data`) took the account back with nothing received
    since. Only an update processed after the latest reconnect counts."""
    board, _ = await _rig(journal)
    # First drop and reconnect; data flows after it: healthy.
    board.on_connection("sub", False, T0 + 1_000)
    board.on_connection("sub", True, T0 + 1_200)
    board.on_data("sub", "index:BTC", T0 + 2_000)
    assert board.link_healthy("sub", T0 + 2_000)
    # A last update, then the second drop and its reconnect in the same millisecond.
    board.on_data("sub", "index:BTC", T0 + 2_000 + stamp_ms)
    board.on_connection("sub", False, T0 + 2_000)
    board.on_connection("sub", True, T0 + 2_000)
    assert board.disconnected.reconnected_since_ms("sub") == T0 + 2_000
    assert not board.link_healthy("sub", T0 + 2_000)
    assert not board.link_healthy("sub", T0 + 2_500)  # nothing since: still not
    # The first update processed after the reconnect: healthy again.
    board.on_data("sub", "index:BTC", T0 + 2_600)
    assert board.link_healthy("sub", T0 + 2_600)
