"""The adapter against the exchange simulator with the real ccxt clients (ccxt.async_support
for REST, ccxt.pro for tickers) and the Deribit private session: the book's delta equals the
simulator's account truth, survives a dropped WebSocket, and stale data is reported.

The simulator runs in stepped time: nothing moves unless a test calls `sim.advance`. The
truth is read from the engine directly (not through the adapter): coin numeraire = the BTC
account's `delta_total`, USD numeraire = `delta_total + equity`. The scenario has no futures
basis and no perpetual premium, so Deribit's option delta (dV/dF) and the book's (dV/dS),
and the perpetual's mark and index, coincide and the two must agree to float precision.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.config import VenueSettings
from hedgerd.model import OrderSide, OrderStatus, OrderType
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.scenario import Scenario
from hedgerd.venues.base import (
    ErrorClass,
    FillEvent,
    OrderRequest,
    PositionEvent,
    RejectReason,
    StreamSource,
    VenueError,
    VenueModeMismatchError,
)
from hedgerd.venues.book_feed import BookFeed
from hedgerd.venues.ccxt_venue import Backoff
from hedgerd.venues.deribit import DeribitVenue
from venue_truth import deribit_truth

KEY, SECRET = "mm-key", "mm-secret"
TOL_COIN = 1e-6
WAIT_S = 10.0


def _scenario(**overrides: Any) -> Scenario:
    base: dict[str, Any] = {
        "seed": 11,
        "underlyings": [
            {
                "currency": "BTC",
                "spot": 90_000.0,
                "vol": 0.6,
                "basis_per_year": 0.0,
                "jumps": {"intensity_per_day": 0.0},
                "chain": {
                    "dailies": 1,
                    "weeklies": 2,
                    "monthlies": 1,
                    "quarterlies": 1,
                    "strikes_each_side": 4,
                },
            }
        ],
        "funding": {"premium_mean_bps": 0.0, "premium_vol_bps": 0.0},
        "flow": {"rate_per_min": 20.0, "currencies": ["BTC"], "max_size_coin": 2.0},
        "accounts": [
            {
                "name": "mm",
                "api_key": KEY,
                "api_secret": SECRET,
                "positions": [
                    {"instrument": "BTC-PERPETUAL", "size": -50_000.0},
                    {"currency": "BTC", "option_type": "call", "expiry_rank": 1, "size": -3.0},
                    {
                        "currency": "BTC",
                        "option_type": "put",
                        "expiry_rank": 2,
                        "moneyness": 0.95,
                        "size": 2.0,
                    },
                ],
            }
        ],
    }
    base.update(overrides)
    return Scenario.model_validate(base)


@dataclass
class Rig:
    sim: Simulator
    venue: DeribitVenue
    feed: BookFeed
    book: GreeksBook

    def truth(self) -> tuple[float, float]:
        """(coin-numeraire, USD-numeraire) delta of the account's BTC book, from the engine."""
        return deribit_truth(self.sim, KEY)

    def ours(self) -> tuple[float, float]:
        snap = self.book.underlying_snapshot("BTC", self.sim.now_ms())
        return snap.delta_coin("coin", projected=False), snap.delta_coin("usd", projected=False)

    def converged(self) -> bool:
        try:
            ours = self.ours()
        except Exception:
            return False
        truth = self.truth()
        return all(abs(a - b) < TOL_COIN for a, b in zip(ours, truth, strict=True))

    def venue_trade_ids(self) -> list[str]:
        engine: Any = self.sim.engine
        acct = engine.account_for_key(KEY)
        rows = engine.dispatch(
            "private/get_user_trades_by_currency",
            {"currency": "BTC", "count": 1000, "sorting": "asc"},
            acct,
        )["trades"]
        return [str(t["trade_id"]) for t in rows]

    async def settle(self) -> None:
        """Wait (bounded) until the book agrees with the truth, then assert it."""
        ok = await self.feed.wait_until(self.converged, WAIT_S)
        assert ok, f"book {self.ours()} != truth {self.truth()}"


def _settings(sim: Simulator, **kw: Any) -> VenueSettings:
    return VenueSettings(
        mode="sim",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        api_key=KEY,
        api_secret=SECRET,
        underlyings=("BTC",),
        **kw,
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_simulator(scenario=_scenario(), stepped=True) as sim:
        venue = DeribitVenue(
            "deribit-sim",
            _settings(sim),
            clock_ms=sim.now_ms,
            backoff=Backoff(initial_s=0.05, max_s=0.2),
        )
        book = GreeksBook()
        feed = BookFeed(venue, book, reconcile_s=3600.0)
        try:
            await feed.start()
            yield Rig(sim, venue, feed, book)
        finally:
            await feed.stop()
            await venue.close()


async def test_book_delta_equals_truth_across_flow_moves_and_perp_trades(rig: Rig) -> None:
    await rig.settle()
    coin0, usd0 = rig.ours()
    assert rig.feed.positions, "the scenario's starting positions are in the book"
    # Option flow and price moves: a few minutes of simulated market.
    fills_before = len(rig.feed.fills)
    for _ in range(6):
        rig.sim.advance(30_000)
        await rig.settle()
    assert len(rig.feed.fills) > fills_before, "the flow traded options on the account"
    assert rig.ours() != (coin0, usd0)
    # Perpetual and dated future trades of our own, through ccxt create_order with a label.
    fut = next(
        n
        for n, i in rig.venue.instruments().items()
        if i.kind.value == "future" and i.underlying == "BTC"
    )
    for i, (name, side, amount) in enumerate(
        [
            ("BTC-PERPETUAL", OrderSide.BUY, 20_000.0),
            ("BTC-PERPETUAL", OrderSide.SELL, 7_000.0),
            (fut, OrderSide.BUY, 3_000.0),
        ]
    ):
        order = await rig.venue.place_order(
            OrderRequest(name, side, amount, label=f"t-{i}", order_type=OrderType.MARKET)
        )
        assert order.label == f"t-{i}" and order.status is OrderStatus.FILLED
        await rig.settle()
    book = await rig.venue.fetch_order_book("BTC-PERPETUAL", 50_000.0)
    assert book.bids[0].price < book.asks[0].price
    assert [lv.price for lv in book.bids] == sorted((lv.price for lv in book.bids), reverse=True)
    assert 50_000.0 <= sum(lv.amount for lv in book.bids) < 50_000.0 + book.bids[-1].amount
    perp_ticker = await rig.venue.fetch_ticker("BTC-PERPETUAL")
    assert perp_ticker.funding_8h is not None and perp_ticker.mark_price > 0
    by_label = await rig.venue.order_by_label("t-1")
    assert [o.amount for o in by_label] == [7_000.0]
    rig.sim.advance(30_000)
    await rig.settle()
    # Every venue trade is in the fill log exactly once.
    assert list(rig.feed.fills) == rig.venue_trade_ids()
    # The venue's own Greeks agree too (the cross-check the kill switch reads).
    await rig.feed.reconcile("test")
    assert rig.feed.max_divergence_coin(rig.sim.now_ms()) < TOL_COIN
    assert not rig.feed.last_reconcile or not rig.feed.last_reconcile.corrected


async def test_ws_drop_then_reconnect_converges_with_no_event_lost_or_doubled(rig: Rig) -> None:
    await rig.settle()
    sim, feed = rig.sim, rig.feed
    reconnects = feed.stats.reconnects
    # Hold the outage open: the private session's re-authentication fails while this lasts.
    hold = sim.faults.add(
        {"kind": "http_5xx", "methods": ["public/auth"], "transport": "ws"}, sim.now_ms()
    )
    sim.faults.add({"kind": "ws_drop"}, sim.now_ms())
    sim.advance(250)  # the drop fires on the next tick
    assert await feed.wait_until(lambda: not feed._connected.get("private", True), WAIT_S)
    assert any(h.source is StreamSource.POSITIONS and h.stale for h in feed.health())
    # Trades while disconnected: ours through REST, and customer flow.
    await rig.venue.place_order(
        OrderRequest(
            "BTC-PERPETUAL",
            OrderSide.BUY,
            30_000.0,
            label="during-outage",
            order_type=OrderType.MARKET,
        )
    )
    sim.advance(60_000)
    missed = set(rig.venue_trade_ids()) - set(feed.fills)
    assert missed, "trades happened that the book has not seen"
    assert not rig.converged()
    sim.faults.remove(hold.id)
    await rig.settle()  # bounded: WAIT_S
    assert feed.stats.reconnects == reconnects + 1
    assert list(feed.fills) == rig.venue_trade_ids()  # none lost, none twice, in order
    assert not any(h.source is StreamSource.POSITIONS and h.stale for h in feed.health())
    # Later stream events still flow after the reconnect.
    sim.advance(30_000)
    await rig.settle()
    assert list(feed.fills) == rig.venue_trade_ids()


@pytest.mark.parametrize("fault", ["freeze_market_data", "stale_market_data"])
async def test_stale_market_data_reported_per_source(rig: Rig, fault: str) -> None:
    await rig.settle()
    feed, sim = rig.feed, rig.sim
    assert not feed.stale_sources(), feed.stale_sources()
    held = sorted(feed.positions)
    # freeze: no ticker notifications; stale: notifications with old marks and timestamps.
    sim.faults.add({"kind": fault}, sim.now_ms())
    sim.advance(int((feed.stale_market_s + 1) * 1000))
    stale = feed.stale_sources()
    keys = {(h.source, h.key) for h in stale}
    assert {(StreamSource.TICKERS, n) for n in held} <= keys
    assert (StreamSource.INDEX, "BTC") in keys
    assert (StreamSource.POSITIONS, "") not in keys  # positions have their own threshold
    assert all(h.age_s is not None and h.age_s > feed.stale_market_s for h in stale)
    sim.faults.clear()
    sim.advance(250)
    assert await feed.wait_until(lambda: not feed.stale_sources(), WAIT_S), feed.stale_sources()


async def test_testnet_flag_contradicting_mode_is_refused() -> None:
    async with running_simulator(scenario=_scenario(testnet=False), stepped=True) as sim:
        venue = DeribitVenue("deribit-sim", _settings(sim), clock_ms=sim.now_ms)
        try:
            with pytest.raises(VenueModeMismatchError, match=r"mode 'sim'.*PRODUCTION"):
                await venue.connect()
        finally:
            await venue.close()


async def test_heartbeats_answered_and_cancel_on_disconnect_cancels_resting_orders() -> None:
    # heartbeat_scale: one heartbeat second lasts 10 ms of wall time (10 s interval: 0.1 s).
    async with running_simulator(
        scenario=_scenario(flow={"enabled": False}), stepped=True, heartbeat_scale=0.01
    ) as sim:
        venue = DeribitVenue(
            "deribit-sim",
            _settings(sim),
            clock_ms=sim.now_ms,
            backoff=Backoff(initial_s=0.05, max_s=0.2),
        )
        try:
            await venue.connect()
            session = venue.session
            assert session is not None
            server: Any = sim.server
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while session.heartbeats_answered < 5:  # about 0.5 s of heartbeats
                assert asyncio.get_running_loop().time() < deadline, "no heartbeats"
                await asyncio.sleep(0.05)
            assert server.counters.heartbeat_timeouts == 0 and session.connects == 1
            # A resting order placed over the session (label = client id) ...
            bid = (await venue.fetch_quote("BTC-PERPETUAL")).bid_price
            order = await venue.place_order(
                OrderRequest(
                    "BTC-PERPETUAL",
                    OrderSide.BUY,
                    100.0,
                    label="cod-1",
                    price=round(bid * 0.9),
                    post_only=True,
                )
            )
            assert order.status is OrderStatus.ACKED and order.label == "cod-1"
            assert [o.label for o in await venue.fetch_open_orders("BTC")] == ["cod-1"]
            # ... is cancelled by the venue when the session drops (heartbeats stop with it).
            hold = sim.faults.add(
                {"kind": "http_5xx", "methods": ["public/auth"], "transport": "ws"}, sim.now_ms()
            )
            sim.faults.add({"kind": "ws_drop"}, sim.now_ms())
            sim.advance(250)
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while True:
                (state,) = await venue.order_by_label("cod-1")  # REST, session down
                if state.status is OrderStatus.CANCELLED:
                    break
                assert asyncio.get_running_loop().time() < deadline, state
                await asyncio.sleep(0.05)
            assert not session.connected.is_set()
            sim.faults.remove(hold.id)
            assert await _wait_event(session.connected, WAIT_S)
            assert session.connects == 2
        finally:
            await venue.close()


async def _wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def test_timer_reconcile_corrects_a_wrong_book_and_flags_divergence() -> None:
    async with running_simulator(scenario=_scenario(flow={"enabled": False}), stepped=True) as sim:
        venue = DeribitVenue("deribit-sim", _settings(sim), clock_ms=sim.now_ms)
        book = GreeksBook()
        feed = BookFeed(venue, book, reconcile_s=0.2)
        rig = Rig(sim, venue, feed, book)
        try:
            await feed.start()
            await rig.settle()
            assert feed.max_divergence_coin() < TOL_COIN
            # A position the venue does not have (a lost or corrupted update).
            perp = feed.positions["BTC-PERPETUAL"]
            wrong = replace(perp, amount=perp.amount + 10_000.0)
            feed.apply(PositionEvent(wrong))
            assert not rig.converged()
            worst = max(feed.cross_check(), key=lambda d: abs(d.diff_coin))
            assert worst.exceeded and abs(worst.diff_coin) > 0.1  # 10,000 USD at ~90,000
            # The timer's reconciliation puts the venue's truth back and counts it.
            assert await feed.wait_until(lambda: feed.stats.reconcile_corrections >= 1, WAIT_S)
            assert feed.last_reconcile is not None
            assert feed.last_reconcile.corrected == (("BTC-PERPETUAL", wrong.amount, perp.amount),)
            await rig.settle()
            assert not any(d.exceeded for d in feed.cross_check())
        finally:
            await feed.stop()
            await venue.close()


async def test_order_with_no_answer_is_outcome_unknown_and_found_by_label() -> None:
    async with running_simulator(scenario=_scenario(flow={"enabled": False}), stepped=True) as sim:
        venue = DeribitVenue(
            "deribit-sim",
            _settings(sim),
            clock_ms=sim.now_ms,
            backoff=Backoff(initial_s=0.05, max_s=0.2),
        )
        try:
            await venue.connect()
            # The order reaches the matching engine, then the connection closes unanswered.
            sim.faults.add(
                {"kind": "timeout_after_accept", "mode": "close", "count": 1}, sim.now_ms()
            )
            with pytest.raises(VenueError) as info:
                await venue.place_order(
                    OrderRequest(
                        "BTC-PERPETUAL",
                        OrderSide.SELL,
                        1_000.0,
                        label="lost-reply",
                        order_type=OrderType.MARKET,
                    )
                )
            assert info.value.outcome_unknown and info.value.retryable
            # Asking by client id resolves it: the order exists and filled.
            (found,) = await venue.order_by_label("lost-reply")
            assert found.status is OrderStatus.FILLED and found.filled_amount == 1_000.0
            # A definitive refusal (not enough funds) is not 'unknown'.
            sim.faults.add(
                {"kind": "order_reject", "code": 10009, "message": "not_enough_funds", "count": 1},
                sim.now_ms(),
            )
            with pytest.raises(VenueError) as info:
                await venue.place_order(
                    OrderRequest(
                        "BTC-PERPETUAL",
                        OrderSide.BUY,
                        10.0,
                        label="refused",
                        order_type=OrderType.MARKET,
                    )
                )
            assert not info.value.outcome_unknown
            assert info.value.error_class is ErrorClass.DEFINITIVE and info.value.code == 10009
            assert await venue.order_by_label("refused") == []
        finally:
            await venue.close()


async def test_a_request_arriving_after_its_valid_until_is_refused() -> None:
    """The journalled request expiry goes as Deribit's `valid_until`: in time, the order is
    placed; from a process paused after journalling (the venue's clock moved past it before
    the request arrived), the simulator answers 13888 `timed_out` and places nothing, which
    hedgerd reads as a definitive refusal (REQUEST_EXPIRED)."""
    async with running_simulator(scenario=_scenario(flow={"enabled": False}), stepped=True) as sim:
        venue = DeribitVenue("deribit-sim", _settings(sim), clock_ms=sim.now_ms)
        try:
            await venue.connect()
            now = sim.now_ms()

            def request(label: str) -> OrderRequest:
                return OrderRequest(
                    "BTC-PERPETUAL", OrderSide.BUY, 10.0, label=label,
                    order_type=OrderType.MARKET, valid_until_ms=now + 1_000,
                )  # fmt: skip

            placed = await venue.place_order(request("in-time"))
            assert placed.status is OrderStatus.FILLED
            late = request("paused")
            sim.advance(1_500)  # the sender was paused between its journal write and the send
            with pytest.raises(VenueError) as info:
                await venue.place_order(late)
            assert info.value.code == 13888 and info.value.reason is RejectReason.REQUEST_EXPIRED
            assert info.value.error_class is ErrorClass.DEFINITIVE
            assert not info.value.outcome_unknown
            assert sim.server.counters.requests_expired == 1
            assert sim.server.counters.orders_accepted["paused"] == 0
            assert await venue.order_by_label("paused") == []
        finally:
            await venue.close()


async def test_a_reconciliation_behind_the_stream_is_no_correction() -> None:
    # A starved daemon: the stream's reader is held up routing a fill (the executor's journal
    # write) while the batch's position waits in its queue. The timer's snapshot already has
    # the position: the book is behind the stream, not missing an update, so that difference
    # is no correction (it was counted one, and two such runs in a row tripped the
    # position-mismatch switch: the failover drill's and chaos's "unexplained" trips). The
    # Greeks the venue reports then are ahead of the book in the same way: not taken.
    async with running_simulator(scenario=_scenario(flow={"enabled": False}), stepped=True) as sim:
        venue = DeribitVenue("deribit-sim", _settings(sim), clock_ms=sim.now_ms)
        book = GreeksBook()
        gate, routing = asyncio.Event(), asyncio.Event()

        async def slow_router(ev: object) -> None:
            if isinstance(ev, FillEvent):
                routing.set()
                await gate.wait()

        feed = BookFeed(venue, book, reconcile_s=3600.0, on_event=slow_router, catch_up_s=0.2)
        rig = Rig(sim, venue, feed, book)
        try:
            await feed.start()
            await rig.settle()
            perp_before = feed.positions["BTC-PERPETUAL"].amount
            greeks_before = feed.venue_greeks["BTC"]
            await venue.place_order(
                OrderRequest("BTC-PERPETUAL", OrderSide.BUY, 20_000.0, label="t-0",
                             order_type=OrderType.MARKET)
            )  # fmt: skip
            assert await _wait_event(routing, WAIT_S), "the fill reached the router"
            assert feed.positions["BTC-PERPETUAL"].amount == perp_before, "position queued"
            report = await feed.reconcile("timer")
            assert report.corrected == ()
            assert report.unconfirmed == (("BTC-PERPETUAL", perp_before, perp_before + 20_000.0),)
            assert feed.stats.reconcile_corrections == 0
            assert await feed.refresh_venue_greeks(0) == 0, "a figure ahead of the book"
            assert feed.venue_greeks["BTC"] == greeks_before
            assert feed.greeks_current("BTC"), "the figure in hand and the book: both before"
            gate.set()
            await rig.settle()
            assert feed.positions["BTC-PERPETUAL"].amount == perp_before + 20_000.0
            await feed.refresh_venue_greeks(0)  # caught up: taken (or the stream's newer one)
            assert feed.greeks_current("BTC")
            assert not any(d.exceeded for d in feed.cross_check())
        finally:
            gate.set()
            await feed.stop()
            await venue.close()


async def test_a_write_to_a_closing_session_is_a_classified_unknown_outcome() -> None:
    """The private session's socket is closing when an order or a cancel goes out: aiohttp
    raises ClientConnectionResetError (an OSError) from the write. It must leave the adapter
    as a VenueError (outcome unknown for the order: ask by label), like a dropped answer: a
    raw OSError escaped the executor's send (the intent stayed NEW) and ended a halt's
    cancel-all at the first order it met."""
    async with running_simulator(scenario=_scenario(flow={"enabled": False}), stepped=True) as sim:
        venue = DeribitVenue("deribit-sim", _settings(sim), clock_ms=sim.now_ms)
        try:
            await venue.connect()
            session: Any = venue.session
            assert session is not None and session.connected.is_set()

            async def closing(*args: Any, **kw: Any) -> None:
                raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")

            session._ws.send_str = closing  # what aiohttp does once the transport closes
            request = OrderRequest("BTC-PERPETUAL", OrderSide.BUY, 10.0, label="closing-1",
                                   order_type=OrderType.LIMIT, price=1_000.0)  # fmt: skip
            with pytest.raises(VenueError) as placed:
                await venue.place_order(request)
            assert placed.value.outcome_unknown and placed.value.retryable
            with pytest.raises(VenueError) as cancelled:
                await venue.cancel_order("30000000001")
            assert cancelled.value.retryable
        finally:
            await venue.close()
