"""The market stream (ccxt.pro `watch_tickers` through `DeribitVenue`) against the simulator:
a frame ccxt cannot handle is dropped, not fatal (the guarded ccxt client), and a stream
silent for longer than `market_silence_s` on the venue's clock is restarted (the
watchdog): ccxt's connection closed, a new one opened and the tickers resubscribed.

The simulator is stepped (it sends nothing by itself) and the venue's clock is the test's:
tickers are injected (`sim.admin.inject_ws`) and time is advanced explicitly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hedgerd.config import VenueSettings
from hedgerd.sim.admin import inject_ws
from hedgerd.sim.command import Simulator, start_simulator
from hedgerd.venues.base import TickerEvent
from hedgerd.venues.ccxt_venue import Backoff
from hedgerd.venues.deribit import DeribitVenue
from pinned_clock import TEST_START_MS

PERP = "BTC-PERPETUAL"
SILENCE_S = 5.0  # on the venue's (the test's) clock


@dataclass
class Rig:
    sim: Simulator
    venue: DeribitVenue
    clock: list[int]  # the venue's clock, UTC ms: advanced by the test only
    ticker: dict[str, Any]

    def channel_sessions(self) -> list[int]:
        """Ids of the simulator sessions subscribed to the perpetual's ticker."""
        server = self.sim.server
        return [
            sid
            for sid, s in server.sessions.items()
            if any(ch.startswith(f"ticker.{PERP}.") for ch in server.hub.channels_of(s))
        ]

    def channel(self) -> str:
        server = self.sim.server
        return next(
            ch
            for s in server.sessions.values()
            for ch in server.hub.channels_of(s)
            if ch.startswith(f"ticker.{PERP}.")
        )

    def inject(self, text: str) -> None:
        assert inject_ws(self.sim.server, text, channel=self.channel()) == 1

    def frame(self, **changes: Any) -> str:
        data = dict(self.ticker, **changes)
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"channel": self.channel(), "data": data},
            },
            allow_nan=True,  # NaN literals on purpose: what a careless venue writes
        )

    def tickers(self) -> list[float]:
        """Mark prices of the ticker events the venue emitted since the last call."""
        out = []
        while self.venue.pending_events():
            ev = self.venue._queue.get_nowait()
            if isinstance(ev, TickerEvent):
                out.append(ev.ticker.mark_price)
        return out

    def collect(self, got: list[float]) -> list[float]:
        """`got` with the marks of the tickers emitted since the last call appended."""
        got.extend(self.tickers())
        return got


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _venue(sim: Simulator, clock: list[int]) -> DeribitVenue:
    """A market-data-only venue on the simulator, on the test's clock, with a fast backoff
    and watchdog poll."""
    settings = VenueSettings(
        mode="sim", rest_url=sim.rest_url, ws_url=sim.ws_url, underlyings=("BTC",)
    )
    return DeribitVenue(
        "wd",
        settings,
        clock_ms=lambda: clock[0],
        backoff=Backoff(initial_s=0.05, max_s=0.2),
        private_stream=False,
        market_silence_s=SILENCE_S,
        market_watchdog_poll_s=0.02,
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = await start_simulator(seed=5, stepped=True, start_ms=TEST_START_MS)
    clock = [int(sim.now_ms())]
    venue = _venue(sim, clock)
    try:
        await venue.connect()
        ticker = dict(await venue._raw_ticker(PERP))
        rig = Rig(sim, venue, clock, ticker)
        await venue.subscribe_market([PERP])
        await until(lambda: bool(rig.channel_sessions()), "the ticker subscription")
        # The simulator answers a subscription with the current ticker: read it first.
        await until(lambda: bool(rig.tickers()), "the subscription's ticker")
        yield rig
    finally:
        await venue.close()
        await sim.stop()


async def test_an_undecodable_frame_is_dropped_and_the_stream_goes_on(rig: Rig) -> None:
    rig.inject(rig.frame(mark_price=1.0, timestamp=int(rig.ticker["timestamp"]) + 1))
    await until(lambda: rig.tickers() == [1.0], "the first ticker")
    bad = [
        rig.frame(mark_price=float("nan"), timestamp=int(rig.ticker["timestamp"]) + 2),
        rig.frame(mark_price=2.0)[:-7],  # truncated JSON
        '{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "nope.x"}}',
    ]
    for text in bad:
        rig.inject(text)
    rig.inject(rig.frame(mark_price=3.0, timestamp=int(rig.ticker["timestamp"]) + 3))
    await until(lambda: rig.venue.ws.dropped_frames == 3, "the bad frames dropped")
    got: list[float] = []
    await until(lambda: rig.collect(got) == [3.0], "the next ticker")
    # The clock stood still: the stream lived on its own, the watchdog did nothing, and the
    # socket is the same one.
    assert rig.venue.market_restarts == 0
    assert len(rig.channel_sessions()) == 1


async def test_an_error_reply_resubscribes_at_once_not_after_the_silence(rig: Rig) -> None:
    # A JSON-RPC error answering a request on the market socket: a refused subscription, so
    # no data will come on it. The venue drops ccxt's client and subscribes again on a new
    # socket straight away; the venue's clock stands still, so the watchdog cannot be the
    # one that acts.
    (first,) = rig.channel_sessions()
    rig.inject('{"jsonrpc": "2.0", "id": 77, "error": {"code": 10000, "message": "boom"}}')
    await until(lambda: rig.venue.ws.dropped_frames == 1, "the error frame dropped")
    await until(
        lambda: rig.channel_sessions() not in ([], [first]), "the resubscription on a new socket"
    )
    assert rig.venue.market_restarts == 0 and len(rig.channel_sessions()) == 1
    rig.inject(rig.frame(mark_price=5.0, timestamp=int(rig.ticker["timestamp"]) + 5))
    got: list[float] = []
    # The resubscription's snapshot (the ticker already taken) went out before the channel
    # did: only the new ticker is emitted.
    await until(lambda: rig.collect(got) == [5.0], "a ticker on the new subscription")


async def test_a_refused_subscription_is_retried_without_the_watchdog() -> None:
    # The venue answers the first public/subscribe with an error (the simulator's http_5xx
    # fault over WebSocket: 11094 internal_server_error). Before, ccxt raised on the reply,
    # the guard dropped it, and the stream waited in silence for the watchdog.
    sim = await start_simulator(seed=5, stepped=True, start_ms=TEST_START_MS)
    sim.faults.add(
        {
            "kind": "http_5xx",
            "count": 1,
            "methods": ["public/subscribe"],
            "transport": "ws",
        },
        sim.now_ms(),
    )
    clock = [int(sim.now_ms())]
    venue = _venue(sim, clock)
    try:
        await venue.connect()
        await venue.subscribe_market([PERP])
        rig = Rig(sim, venue, clock, {})
        await until(lambda: bool(rig.tickers()), "a ticker despite the refused subscription")
        # The fault fired once (count 1: it is spent, so listed no more) and the refusal was
        # the one dropped frame; the watchdog never acted.
        assert sim.faults.to_json() == []
        assert venue.ws.dropped_frames == 1 and venue.market_restarts == 0
    finally:
        await venue.close()
        await sim.stop()


async def test_a_silent_stream_is_restarted_and_resubscribed(rig: Rig) -> None:
    rig.inject(rig.frame(mark_price=1.0, timestamp=int(rig.ticker["timestamp"]) + 1))
    await until(lambda: rig.tickers() == [1.0], "the first ticker")
    (first,) = rig.channel_sessions()
    # Not yet silent for long enough: nothing happens (several polls pass meanwhile).
    rig.clock[0] += int(SILENCE_S * 1000)
    polls_s = 10 * rig.venue.market_watchdog_poll_s
    await asyncio.sleep(polls_s)  # a bounded wait for something that must NOT happen
    assert rig.venue.market_restarts == 0 and rig.channel_sessions() == [first]
    # Past the limit: ccxt's connection is closed, a new one subscribes.
    rig.clock[0] += 1
    await until(lambda: rig.venue.market_restarts == 1, "the restart")
    await until(
        lambda: rig.channel_sessions() not in ([], [first]), "the resubscription on a new socket"
    )
    assert first not in rig.channel_sessions() and len(rig.channel_sessions()) == 1
    rig.inject(rig.frame(mark_price=4.0, timestamp=int(rig.ticker["timestamp"]) + 4))
    got: list[float] = []
    await until(lambda: rig.collect(got) == [4.0], "a ticker after it")
    assert rig.venue.market_restarts == 1  # the data came back: the watchdog is quiet again


async def test_restarts_that_bring_back_only_a_snapshot_back_off(rig: Rig) -> None:
    # A venue that answers each subscription with one ticker and then falls silent again
    # (the simulator's frozen market) is not reconnected to at every silence limit.
    (first,) = rig.channel_sessions()
    rig.clock[0] += int(SILENCE_S * 1000) + 1
    await until(lambda: rig.venue.market_restarts == 1, "the first restart")
    await until(lambda: rig.channel_sessions() not in ([], [first]), "the resubscription")
    # The simulator answers the new subscription with its (unchanged) ticker, then nothing.
    await until(lambda: rig.venue.market_updates_since_restart == 1, "the snapshot")
    rig.clock[0] += int(SILENCE_S * 1000) + 1
    await asyncio.sleep(10 * rig.venue.market_watchdog_poll_s)  # must NOT restart meanwhile
    assert rig.venue.market_restarts == 1
    rig.clock[0] += int(SILENCE_S * 1000)  # twice the limit now
    await until(lambda: rig.venue.market_restarts == 2, "the second restart")
