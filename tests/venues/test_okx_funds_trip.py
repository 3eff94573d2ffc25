"""OKX's insufficient-funds refusal (`sCode` 51008), through the real ccxt okx client and the
`OkxVenue` adapter against the simulator, into the executor with two accounts: it is a funds
trip of the OKX account alone (REDUCE_ONLY, reason insufficient_funds), the other account and
the portfolio trade on, and it is not counted as a plain reject toward a reject streak."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from hedgerd.config import VenueSettings
from hedgerd.execution.client_ids import codec_for
from hedgerd.execution.drill import perp_decision
from hedgerd.execution.executor import Executor, ExecutorSettings, LegOutcome
from hedgerd.execution.journal import Journal
from hedgerd.model import AmountUnit, OrderSide
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.trading_state import ReasonCode, TradingState, TradingStateMachine
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.venues.okx.errors import INSUFFICIENT_BALANCE
from hedgerd.venues.okx.venue import OkxVenue
from pinned_clock import TEST_START_MS

KEY, SECRET, PASSPHRASE = "okx-key", "okx-secret", "okxPass1"
SWAP = "BTC-USD-SWAP"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        stepped=True,
        seed=11,
        start_ms=TEST_START_MS,
        venues=("deribit", "okx"),
        accounts=[(KEY, SECRET)],
        api_passphrase=PASSPHRASE,
    ) as s:
        yield s


@pytest.fixture
async def venue(sim: Simulator) -> AsyncIterator[OkxVenue]:
    settings = VenueSettings(
        exchange="okx",
        mode="sim",
        rest_url=sim.rest_url,
        ws_url=sim.okx_ws_url,
        api_key=KEY,
        api_secret=SECRET,
        api_passphrase=PASSPHRASE,
        underlyings=("BTC",),
        account="okx-main",
    )
    v = OkxVenue("okx", settings, clock_ms=sim.now_ms, private_stream=False)
    await v.connect()
    try:
        yield v
    finally:
        await v.close()


async def test_an_okx_51008_is_a_funds_trip_of_that_account_only(
    tmp_path: Path, sim: Simulator, venue: OkxVenue
) -> None:
    (acct,) = [a for a in sim.okx.accounts.values() if a.creds.api_key == KEY]
    acct.imr_add["BTC"] = 1_000.0  # OKX raised the initial margin: no free BTC equity left
    quote = await venue.fetch_quote(SWAP)
    journal = await Journal.open(tmp_path / "j.sqlite")
    try:
        trading = await TradingStateMachine.restore(journal, clock_ms=sim.now_ms)
        states = await AccountStates.restore(
            journal, trading, ("okx", "deribit"), clock_ms=sim.now_ms
        )

        async def sleep_ms(ms: int) -> None:
            sim.advance(ms)
            await asyncio.sleep(0)

        ex = Executor(
            {"okx": venue, "deribit": venue},  # the other account sends nothing here
            journal,
            trading,
            clock_ms=sim.now_ms,
            sleep_ms=sleep_ms,
            settings=ExecutorSettings(unknown_queries=2, reject_streak_limit=1),
            states=states,
            client_ids={"okx": codec_for("okx", "Q7xa")},
        )
        d = perp_decision(
            "funds-1", OrderSide.BUY, 1_000.0, mid_usd=quote.mid_price, ts_ms=sim.now_ms()
        )
        (leg,) = d.legs
        d = replace(d, legs=(replace(leg, venue="okx", instrument=SWAP),))
        assert d.legs[0].amount_unit is AmountUnit.USD  # the inverse swap: USD, as the perp

        (out,) = (await ex.execute(d)).legs
        assert out.outcome is LegOutcome.REJECTED
        (rejection,) = ex.rejections
        assert rejection.venue == "okx" and rejection.code == INSUFFICIENT_BALANCE
        assert acct.positions.get(SWAP) is None or acct.positions[SWAP].size == 0
        okx = states.machine("okx")
        assert okx.state is TradingState.REDUCE_ONLY
        # A funds trip, not a reject streak (the limit of 1 would have tripped that too).
        assert okx.snapshot.reason_codes == (ReasonCode.INSUFFICIENT_FUNDS,)
        assert states.machine("deribit").state is TradingState.ACTIVE
        assert states.portfolio.state is TradingState.ACTIVE
        assert trading.state is TradingState.ACTIVE
    finally:
        await journal.close()
