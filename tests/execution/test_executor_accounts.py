"""The executor over venue accounts: an order passes the portfolio's gate and its account's,
carries its account's client id (tag and lease epoch), and an account's trouble trips that
account only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from test_executor_inflight import MID, FakeVenue

from hedgerd.execution.client_ids import DeribitLabels, parse_label
from hedgerd.execution.drill import VENUE_NAME, perp_decision
from hedgerd.execution.executor import Executor, ExecutorSettings, LegOutcome
from hedgerd.execution.journal import Journal
from hedgerd.model import OrderSide, OrderUpdate
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.trading_state import ReasonCode, TradingState, TradingStateMachine
from hedgerd.venues.base import ErrorClass, OrderRequest, Venue, VenueError


class PoorVenue(FakeVenue):
    """Refuses every order for funds (Deribit 10009)."""

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.sent.append(request.label)
        raise VenueError(
            "not_enough_funds", error_class=ErrorClass.DEFINITIVE, venue="deribit", code=10009
        )


async def _executor(
    tmp_path: Path, venue: FakeVenue, epoch: int = 0
) -> tuple[Executor, AccountStates, Journal]:
    journal = await Journal.open(tmp_path / "j.sqlite")
    trading = await TradingStateMachine.restore(journal, clock_ms=lambda: venue.now)
    states = await AccountStates.restore(
        journal, trading, (VENUE_NAME, "other"), clock_ms=lambda: venue.now
    )

    async def no_sleep(ms: int) -> None:
        venue.now += ms
        await asyncio.sleep(0)

    ex = Executor(
        {VENUE_NAME: cast(Venue, venue)},
        journal,
        trading,
        clock_ms=lambda: venue.now,
        sleep_ms=no_sleep,
        settings=ExecutorSettings(unknown_queries=2),
        states=states,
        client_ids={VENUE_NAME: DeribitLabels("Ab12")},
        epoch=lambda: epoch,
    )
    return ex, states, journal


async def test_an_accounts_halt_blocks_its_orders_and_ids_carry_tag_and_epoch(
    tmp_path: Path,
) -> None:
    venue = FakeVenue()
    ex, states, journal = await _executor(tmp_path, venue, epoch=7)
    try:
        await states.machine(VENUE_NAME).halt(actor="uid:1", text="drill")
        d = perp_decision("acct-1", OrderSide.BUY, 1_000.0, mid_usd=MID, ts_ms=venue.now)
        (leg,) = (await ex.execute(d)).legs
        assert leg.outcome is LegOutcome.BLOCKED and leg.detail.startswith(f"account {VENUE_NAME}:")
        assert venue.sent == []
        # Another account's halt does not concern this one's orders.
        await states.machine(VENUE_NAME).resume(actor="uid:1")
        await states.machine("other").halt(actor="uid:1")
        d2 = perp_decision("acct-2", OrderSide.BUY, 1_000.0, mid_usd=MID, ts_ms=venue.now)
        (leg,) = (await ex.execute(d2)).legs
        assert leg.outcome is LegOutcome.DONE
        assert venue.sent == ["hg2-Ab12-7-acct-2-0-0-0"]
        cid = parse_label(venue.sent[0])
        assert cid is not None and cid.epoch == 7 and cid.is_for("acct-2")
    finally:
        await journal.close()


async def test_a_funds_refusal_trips_the_account_not_the_portfolio(tmp_path: Path) -> None:
    venue = PoorVenue()
    ex, states, journal = await _executor(tmp_path, venue)
    try:
        d = perp_decision("poor-1", OrderSide.BUY, 1_000.0, mid_usd=MID, ts_ms=venue.now)
        (leg,) = (await ex.execute(d)).legs
        assert leg.outcome is LegOutcome.REJECTED
        machine = states.machine(VENUE_NAME)
        assert machine.state is TradingState.REDUCE_ONLY
        assert machine.snapshot.reason_codes == (ReasonCode.INSUFFICIENT_FUNDS,)
        assert states.portfolio.state is TradingState.ACTIVE
        assert states.machine("other").state is TradingState.ACTIVE
    finally:
        await journal.close()


async def test_a_halt_while_an_intent_waits_to_be_sent_stops_it(tmp_path: Path) -> None:
    """The gate judges an order when it is journalled; the send may then wait (a rate-limit
    backoff, the venue's session coming back). An account halted meanwhile must not see the
    order go out: the halt's cancel-all only reaches orders the venue acknowledged."""
    venue = FakeVenue()
    ex, states, journal = await _executor(tmp_path, venue)
    waited = ex.sleep_ms

    async def halt_while_waiting(ms: int) -> None:
        await states.machine(VENUE_NAME).halt(actor="uid:1", text="halted during the wait")
        await waited(ms)

    ex.sleep_ms = halt_while_waiting
    ex._rl_until_ms[VENUE_NAME] = venue.now + 1_000  # a backoff is running
    try:
        d = perp_decision("wait-1", OrderSide.BUY, 1_000.0, mid_usd=MID, ts_ms=venue.now)
        (leg,) = (await ex.execute(d)).legs
        assert venue.sent == []
        assert leg.outcome is not LegOutcome.DONE
    finally:
        await journal.close()
