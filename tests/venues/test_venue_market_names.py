"""The ticker stream survives a name it cannot subscribe (the chaos seed-11 stall): the book feed
adds every held instrument to `market_names`, including one listed after the markets were
loaded; such a name made every stream step raise, so the market stream reconnected in a tight
loop (each reconnect a full book reconciliation) and never delivered a ticker again. Now an
unknown name reloads the markets once and, if still unknown, is left out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from hedgerd.config import VenueSettings
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.venues.base import ConnectionEvent, ConnectionState, TickerEvent
from hedgerd.venues.deribit import DeribitVenue
from pinned_clock import TEST_START_MS

KEY, SECRET = "names-key", "names-secret"
PERP = "BTC-PERPETUAL"
NEVER_LISTED = "BTC-1JAN30-100000-C"


@pytest.fixture
async def venue() -> AsyncIterator[tuple[Simulator, DeribitVenue]]:
    async with running_simulator(
        host="127.0.0.1",
        port=0,
        seed=4,
        speed=1.0,
        start_ms=TEST_START_MS,
        accounts=[(KEY, SECRET)],
    ) as sim:
        v = DeribitVenue(
            "sim",
            VenueSettings(
                mode="sim",
                rest_url=sim.rest_url,
                ws_url=sim.ws_url,
                api_key=KEY,
                api_secret=SECRET,
                underlyings=("BTC",),
                request_timeout_s=5.0,
            ),
            clock_ms=sim.now_ms,
        )
        await v.connect()
        try:
            yield sim, v
        finally:
            await v.close()


async def test_an_unknown_market_name_does_not_stop_the_ticker_stream(
    venue: tuple[Simulator, DeribitVenue],
) -> None:
    sim, v = venue
    tickers: list[str] = []
    market_states: list[ConnectionState] = []
    watch = {"from": 0}
    three_more = asyncio.Event()

    async def pump() -> None:
        async for ev in v.events():
            if isinstance(ev, TickerEvent):
                tickers.append(ev.ticker.instrument)
                if tickers[watch["from"] :].count(PERP) >= 3:
                    three_more.set()
            elif isinstance(ev, ConnectionEvent) and ev.session == "market":
                market_states.append(ev.state)

    task = asyncio.get_running_loop().create_task(pump())
    try:
        await v.subscribe_market([PERP])
        reloads_before = sim.server.counters.requests.get("public/get_instruments", 0)
        # What the book feed does for a held instrument it has no ticker for.
        v.market_names.add(NEVER_LISTED)
        watch["from"] = seen = len(tickers)
        three_more.clear()
        # Bounded wait for the stream's next tickers (the simulator publishes every tick).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(three_more.wait(), 10.0)
        assert tickers[seen:].count(PERP) >= 3, "the ticker stream stopped"
        assert ConnectionState.DISCONNECTED not in market_states, market_states
        assert sim.server.counters.requests.get("public/get_instruments", 0) > reloads_before
    finally:
        task.cancel()
