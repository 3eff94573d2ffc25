"""Hostile Deribit payloads through the real receive path: simulator WebSocket → `DeribitSession`
(JSON-RPC framing) → `DeribitVenue._on_private` (deribit/payloads.py) → `BookFeed` → `GreeksBook`.

Frames are pushed by the simulator's test hook (`sim.admin.inject_ws`) on the venue's own
authenticated session, followed by a sentinel notification: once the sentinel is seen, every
frame before it was read. Invariants, per hypothesis example:

- no exception escapes the session's receive loop (the session task lives, never reconnects)
  and frames it cannot read are counted (`bad_frames`);
- defective positions, trades and portfolios change nothing: the book's positions, balances,
  venue Greeks and fills equal the baseline, so the controller has nothing new to hedge;
- tickers (finite or not, crossed or not) leave the book finite or quarantine the option;
  refused ones emit nothing.

The market stays still (stepped simulator clock): the baseline cannot move by itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from fuzz_support import (
    BAD_NUMBERS,
    CHANGES,
    HUGE_NUMBERS,
    PORTFOLIO,
    UNKNOWN_NAMES,
    LoopRunner,
    changes_frames,
    dumps,
    envelopes,
    fuzz_settings,
    notification,
    raw_garbage,
    wait_until,
)
from hypothesis import given
from hypothesis import strategies as st

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.config import VenueSettings
from hedgerd.model import IndexPrice
from hedgerd.sim.admin import inject_ws
from hedgerd.sim.command import Simulator, start_simulator
from hedgerd.sim.scenario import Scenario
from hedgerd.venues.base import (
    BalanceEvent,
    FillEvent,
    IndexEvent,
    OrderEvent,
    PortfolioEvent,
    PositionEvent,
    QuoteEvent,
    TickerEvent,
    VenueEvent,
)
from hedgerd.venues.book_feed import BookFeed
from hedgerd.venues.ccxt_venue import Backoff
from hedgerd.venues.deribit import DeribitVenue
from hedgerd.venues.deribit.payloads import FAR_FUTURE_MS, ticker_from_deribit
from hedgerd.venues.deribit.session import DeribitSession

KEY, SECRET = "fuzz-key", "fuzz-secret"
SENTINEL = "fuzz.sentinel"


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "seed": 11,
            "underlyings": [
                {
                    "currency": "BTC",
                    "spot": 90_000.0,
                    "vol": 0.6,
                    "chain": {
                        "dailies": 1,
                        "weeklies": 1,
                        "monthlies": 1,
                        "quarterlies": 1,
                        "strikes_each_side": 3,
                    },
                }
            ],
            "flow": {"rate_per_min": 0.0, "currencies": ["BTC"], "max_size_coin": 1.0},
            "accounts": [
                {
                    "name": "fuzz",
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
    )


@dataclass(repr=False)  # hypothesis prints the fixture on failure
class Rig:
    runner: LoopRunner
    sim: Simulator
    venue: DeribitVenue
    feed: BookFeed
    book: GreeksBook
    sentinels: list[Any] = field(default_factory=list)
    tickers: dict[str, dict[str, Any]] = field(default_factory=dict)
    emitted: list[VenueEvent] = field(default_factory=list)

    @property
    def session(self) -> DeribitSession:
        assert self.venue.session is not None
        return self.venue.session

    def session_alive(self) -> bool:
        tasks = [t for t in self.venue._tasks if t.get_name().endswith("private-session")]
        return bool(tasks) and not any(t.done() for t in tasks) and self.session.connects == 1

    def push(self, frames: list[str]) -> list[VenueEvent]:
        """Send `frames` on the venue's session, wait until the session read them all, apply
        what the venue emitted to the feed; returns those events."""
        n = len(self.sentinels)
        for text in frames:
            assert inject_ws(self.sim.server, text, channel=CHANGES) == 1
        inject_ws(self.sim.server, notification(SENTINEL, n), channel=CHANGES)
        self.runner.run(
            wait_until(lambda: len(self.sentinels) > n, 5.0, "the session to read the frames")
        )
        return self.drain()

    def drain(self) -> list[VenueEvent]:
        out: list[VenueEvent] = []
        while self.venue.pending_events():
            ev = self.venue._queue.get_nowait()
            self.feed.apply(ev)  # raises if the feed lets anything but BookError out
            out.append(ev)
        self.emitted.extend(out)
        return out

    def state(self) -> dict[str, Any]:
        """Everything a hostile frame must not change (what the controller hedges from)."""
        snap = self.book.underlying_snapshot("BTC", self.sim.now_ms())
        return {
            "positions": dict(self.feed.positions),
            "book_positions": {n: self.book.position(n) for n in self.feed.positions},
            "index": self.book.index_price("BTC"),
            "venue_greeks": dict(self.feed.venue_greeks),
            "fills": list(self.feed.fills),
            "delta_coin": snap.delta_coin("coin", projected=False),
            "delta_usd": snap.delta_coin("usd", projected=False),
            "quarantined": snap.quarantined,
        }


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    runner = LoopRunner()
    sim = runner.run(start_simulator(scenario=_scenario(), stepped=True))
    settings = VenueSettings(
        mode="sim",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        api_key=KEY,
        api_secret=SECRET,
        underlyings=("BTC",),
    )
    venue = DeribitVenue(
        "fuzz", settings, clock_ms=sim.now_ms, backoff=Backoff(initial_s=0.05, max_s=0.2)
    )
    book = GreeksBook()
    feed = BookFeed(venue, book, clock_ms=sim.now_ms, reconcile_s=3600.0)
    rig = Rig(runner, sim, venue, feed, book)
    try:
        runner.run(_start(feed))
        session = rig.session
        on_message = session._on_message

        def spy(channel: str, data: Any) -> None:
            if channel == SENTINEL:
                rig.sentinels.append(data)
                return
            on_message(channel, data)

        session._on_message = spy
        rig.drain()
        assert feed.positions and session.connects == 1
        yield rig
    finally:
        runner.run(venue.close())
        runner.run(sim.stop())
        runner.close()


async def _start(feed: BookFeed) -> None:
    """Connect (with the private session) and rebuild from REST, without the market stream:
    tickers are fed to the adapter's parser directly."""
    await feed.venue.connect()
    await feed.rebuild(stream=False)


def _btc_names(rig: Rig) -> list[str]:
    return sorted(n for n, i in rig.venue.instruments().items() if i.underlying == "BTC")


def _reads_as_bad_frame(text: str) -> bool:
    """The session's contract: what it must count as unreadable."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return True
    if not isinstance(body, dict):
        return True
    if body.get("method") != "subscription":
        return False
    params = body.get("params")
    if not isinstance(params, dict):
        return True
    channel = params.get("channel")
    return not isinstance(channel, str) or not channel


def test_unknown_instrument_names_are_unknown() -> None:
    # The position strategy below relies on these names resolving to nothing.
    from hedgerd.venues.deribit.payloads import resolve_instrument

    for name in UNKNOWN_NAMES:
        if isinstance(name, str):
            assert resolve_instrument({}, name, "v") is None, name


# ---------------------------------------------------------------- 1. framing garbage
@fuzz_settings(60)
@given(frames=st.lists(raw_garbage | envelopes, min_size=1, max_size=8))
def test_garbage_frames_never_kill_the_session_nor_touch_the_book(
    rig: Rig, frames: list[str]
) -> None:
    before = rig.state()
    bad_before = rig.session.bad_frames
    events = rig.push(frames)
    assert rig.session_alive()
    assert rig.session.bad_frames - bad_before == sum(map(_reads_as_bad_frame, frames))
    # Envelopes may carry a user.changes channel by chance, but never a valid position.
    assert not [e for e in events if isinstance(e, FillEvent)]
    assert rig.state() == before


# ------------------------------------------------- 2. defective user.changes / portfolio
@fuzz_settings(60)
@given(data=st.data())
def test_defective_positions_trades_and_portfolios_change_nothing(
    rig: Rig, data: st.DataObject
) -> None:
    names = [*_btc_names(rig), *[n for n in UNKNOWN_NAMES if isinstance(n, str)]]
    frames = data.draw(changes_frames(names))
    before = rig.state()
    events = rig.push(frames)
    assert rig.session_alive()
    assert rig.state() == before
    for ev in events:
        if isinstance(ev, OrderEvent):  # the executor's business: at least well-formed
            o = ev.order
            assert math.isfinite(o.amount) and o.amount >= 0 and o.filled_amount >= 0
            assert o.order_id and o.instrument


def test_regression_nan_or_missing_size_is_not_a_closed_position(rig: Rig) -> None:
    # Found by the fuzzer: `size` NaN, "abc" or missing was read as 0, i.e. the perpetual
    # closed: the book's delta moved by the whole hedge and the controller would re-hedge it.
    before = rig.state()
    assert before["positions"]["BTC-PERPETUAL"].amount != 0
    for size in (math.nan, "abc", None):
        pos: dict[str, Any] = {"instrument_name": "BTC-PERPETUAL", "direction": "sell"}
        if size is not None:
            pos["size"] = size
        rig.push([notification(CHANGES, {"positions": [pos], "trades": [], "orders": []})])
    assert rig.state() == before
    assert rig.venue.refused_entries >= 3


def test_regression_one_bad_entry_does_not_drop_the_rest_of_the_batch(rig: Rig) -> None:
    # Found by the fuzzer: the first entry of a `user.changes` batch that the parser refused
    # raised out of the handler, and every entry after it (a real fill, a real position) was
    # lost until the next reconciliation. Each entry is judged on its own now.
    held = rig.feed.positions["BTC-PERPETUAL"]
    good_pos = {
        "instrument_name": "BTC-PERPETUAL",
        "kind": "future",
        "size": held.amount,  # the position as held: the book does not move
        "direction": "sell" if held.amount < 0 else "buy",
    }
    bad_pos = dict(good_pos, size=math.nan)
    trade = {
        "instrument_name": "BTC-PERPETUAL",
        "trade_id": "batch-1",
        "order_id": "1",
        "direction": "buy",
        "amount": 10.0,
        "price": 90_000.0,
        "timestamp": rig.sim.now_ms(),
    }
    bad_trade = dict(trade, trade_id="batch-2", amount="abc")
    order = {"instrument_name": "BTC-PERPETUAL", "order_id": "7", "amount": 10.0}
    refused = rig.venue.refused_entries
    batch = {
        "trades": [bad_trade, trade],
        "orders": [{"amount": math.nan}, order],
        "positions": [bad_pos, "BTC-PERPETUAL", good_pos],
    }
    events = rig.push([notification(CHANGES, batch)])
    assert rig.venue.refused_entries == refused + 4
    assert [e.fill.trade_id for e in events if isinstance(e, FillEvent)] == ["batch-1"]
    assert [e.order.order_id for e in events if isinstance(e, OrderEvent)] == ["7"]
    positions = [e.position for e in events if isinstance(e, PositionEvent)]
    assert [(p.instrument, p.amount) for p in positions] == [("BTC-PERPETUAL", held.amount)]
    assert "batch-1" in rig.feed.fills
    assert rig.feed.positions["BTC-PERPETUAL"].amount == held.amount
    # A list that is not a list is refused as a whole; the other lists are still read.
    events = rig.push([notification(CHANGES, {"trades": 5, "positions": [good_pos]})])
    assert rig.venue.refused_entries == refused + 5
    assert [type(e) for e in events] == [PositionEvent]


def test_regression_portfolio_parts_are_judged_each_on_its_own(rig: Rig) -> None:
    # A summary with a good balance and a bad `delta_total` (or the reverse) applies the
    # valid part and refuses the other; before, the order of the parsers decided (a bad
    # balance also dropped good Greeks, a bad delta_total did not drop the balance).
    rig.drain()
    greeks = rig.feed.venue_greeks["BTC"]
    good = {
        "currency": "BTC",
        "balance": 12.5,
        "delta_total": greeks.delta_total_coin,
        "options_delta": greeks.options_delta_coin,
        "equity": greeks.equity_coin,
    }
    refused = rig.venue.refused_entries
    events = rig.push([notification(PORTFOLIO, dict(good, delta_total=math.nan))])
    assert [type(e) for e in events] == [BalanceEvent]
    assert isinstance(events[0], BalanceEvent) and events[0].balance.equity == 12.5
    events = rig.push([notification(PORTFOLIO, dict(good, balance="abc"))])
    assert [type(e) for e in events] == [PortfolioEvent]
    assert rig.venue.refused_entries == refused + 2
    # A summary filed under another currency than its channel's: neither part is trusted.
    failed = rig.session.failed_notifications
    assert rig.push([notification(PORTFOLIO, dict(good, currency="ETH"))]) == []
    assert rig.session.failed_notifications == failed + 1


def test_regression_non_object_frames_do_not_end_the_session(rig: Rig) -> None:
    # Found by the fuzzer: a frame that parses to a list, number or string raised
    # AttributeError out of the receive loop and ended the private session for good (no
    # reconnect, no DISCONNECTED event); so did a deeply nested array (RecursionError) and a
    # notification whose params were not an object.
    bad = rig.session.bad_frames
    rig.push(["[]", "42", '"x"', "[" * 20_000, dumps({"method": "subscription", "params": []})])
    assert rig.session_alive()
    assert rig.session.bad_frames == bad + 5


# ------------------------------------------------------------------------ 3. tickers
def _real_tickers(rig: Rig) -> dict[str, dict[str, Any]]:
    """The venue's REST ticker of every BTC instrument (fetched once: REST reads are
    rate-limited, and the market stands still)."""
    if not rig.tickers:
        for name in _btc_names(rig):
            rig.tickers[name] = dict(rig.runner.run(rig.venue._raw_ticker(name)))
    return rig.tickers


def _fresh_feed(rig: Rig) -> BookFeed:
    """A feed and book holding the module feed's positions and the venue's real tickers,
    built in memory (no REST): each ticker example starts from the same clean state."""
    rig.drain()  # whatever an earlier test left goes to the module's feed, not this one
    feed = BookFeed(rig.venue, GreeksBook(), clock_ms=rig.sim.now_ms, reconcile_s=3600.0)
    now = rig.sim.now_ms()
    feed.apply(IndexEvent(IndexPrice(rig.venue.name, "BTC", rig.book.index_price("BTC"), 0)))
    for pos in rig.feed.positions.values():
        feed.apply(PositionEvent(pos, None))
    for data in _real_tickers(rig).values():
        ticker = ticker_from_deribit(rig.venue.name, data)
        assert ticker is not None
        feed.apply(TickerEvent(ticker))
    assert feed.stats.refused == 0 and math.isfinite(feed.book.index_price("BTC"))
    snap = feed.book.underlying_snapshot("BTC", now)
    assert snap.complete
    return feed


good_or_bad = st.one_of(
    st.floats(1e-4, 1e6),
    st.sampled_from([*BAD_NUMBERS, *HUGE_NUMBERS, 0, -1.0, -90_000.0]),
)
times = st.sampled_from(["now", 0, -1, FAR_FUTURE_MS, FAR_FUTURE_MS + 1, "day ahead", math.nan])


@fuzz_settings(80)
@given(data=st.data())
def test_hostile_tickers_leave_the_book_finite_or_quarantined(
    rig: Rig, data: st.DataObject
) -> None:
    real = _real_tickers(rig)
    name = data.draw(st.sampled_from([*sorted(real), *UNKNOWN_NAMES]), label="instrument")
    ticker: dict[str, Any] = dict(
        real.get(name if isinstance(name, str) else "", real["BTC-PERPETUAL"])
    )
    ticker["instrument_name"] = name
    for key in (
        "mark_price",
        "index_price",
        "underlying_price",
        "mark_iv",
        "best_bid_price",
        "best_ask_price",
        "best_bid_amount",
        "best_ask_amount",
    ):
        if data.draw(st.booleans(), label=f"spoil {key}"):
            ticker[key] = data.draw(good_or_bad, label=key)
    if data.draw(st.booleans(), label="spoil timestamp"):
        ts = data.draw(times, label="timestamp")
        now = rig.sim.now_ms()
        ticker["timestamp"] = now if ts == "now" else now + 86_400_000 if ts == "day ahead" else ts
    if data.draw(st.booleans(), label="drop a field"):
        ticker.pop(data.draw(st.sampled_from(sorted(ticker))), None)
    feed = _fresh_feed(rig)
    book = feed.book
    rig.venue._on_ticker(ticker)  # the adapter's market-data parser (after ccxt)
    events = []
    while rig.venue.pending_events():
        ev = rig.venue._queue.get_nowait()
        feed.apply(ev)  # raises if the feed lets anything but BookError out
        events.append(ev)
    for ev in events:
        if isinstance(ev, TickerEvent):
            t = ev.ticker
            assert t.mark_price > 0 and math.isfinite(t.mark_price)
            assert t.index_price_usd > 0 and math.isfinite(t.index_price_usd)
        elif isinstance(ev, IndexEvent):
            assert ev.index.price_usd > 0 and math.isfinite(ev.index.price_usd)
        elif isinstance(ev, QuoteEvent):
            q = ev.quote
            assert 0 < q.bid_price <= q.ask_price and math.isfinite(q.ask_price)
            assert q.bid_amount >= 0 and q.ask_amount >= 0
    index = book.index_price("BTC")
    assert math.isfinite(index) and index > 0
    snap = book.underlying_snapshot("BTC", rig.sim.now_ms())
    for numeraire in ("coin", "usd"):
        delta = snap.delta_coin(numeraire, projected=False)
        assert math.isfinite(delta) or snap.quarantined, (numeraire, delta, ticker)


def test_regression_ticker_with_bad_name_or_time_is_refused(rig: Rig) -> None:
    # Found by the fuzzer: a ticker without `instrument_name` (KeyError) or with a timestamp
    # that is not a number (ValueError) or is infinite (OverflowError) raised out of the
    # market stream step, which the adapter then treated as a disconnection.
    real = _real_tickers(rig)["BTC-PERPETUAL"]
    rig.drain()  # whatever an earlier test left
    for spoil in ({"instrument_name": None}, {"timestamp": "x"}, {"timestamp": math.inf}):
        rig.venue._on_ticker({**real, **spoil})
        assert not rig.venue.pending_events()


def test_regression_future_stamped_index_does_not_pin_the_book(rig: Rig) -> None:
    # Found by the fuzzer: the feed keeps the newest index by timestamp, so one ticker stamped
    # in the far future set the index and every true update after it was ignored as older.
    feed = _fresh_feed(rig)
    real = _real_tickers(rig)["BTC-PERPETUAL"]
    index = feed.book.index_price("BTC")
    ahead = dict(real, index_price=index * 1.05, timestamp=rig.sim.now_ms() + 86_400_000)
    rig.venue._on_ticker(ahead)
    rig.venue._on_ticker(dict(real, index_price=index * 1.01, timestamp=rig.sim.now_ms()))
    while rig.venue.pending_events():
        feed.apply(rig.venue._queue.get_nowait())
    assert feed.stats.refused >= 1
    assert feed.book.index_price("BTC") == pytest.approx(index * 1.01)


def test_regression_tiny_index_or_forward_is_refused_not_a_crash(rig: Rig) -> None:
    # Found by the fuzzer: index_price 1e-300 is finite and positive, so the book took it,
    # and the next valuation raised ZeroDivisionError (1/S²), which is not a BookError: the
    # controller and the cross-check would crash on it.
    feed = _fresh_feed(rig)
    real = _real_tickers(rig)["BTC-PERPETUAL"]
    for index in (1e-300, 1e300):
        rig.venue._on_ticker(dict(real, index_price=index))
    # And a forward so small that forward / strike underflows to 0: math.log raised
    # ValueError in the vol polish (also not a BookError).
    option = next(n for n in _real_tickers(rig) if n.endswith("-C"))
    rig.venue._on_ticker(dict(_real_tickers(rig)[option], underlying_price=5e-324))
    while rig.venue.pending_events():
        feed.apply(rig.venue._queue.get_nowait())
    # Each bad index ticker and the index event it carries; the option's forward.
    assert feed.stats.refused == 5
    snap = feed.book.underlying_snapshot("BTC", rig.sim.now_ms())
    assert math.isfinite(snap.delta_coin("coin", projected=False))


def test_regression_an_index_refused_by_the_check_is_not_applied(rig: Rig) -> None:
    # Found by the daemon fuzz: the feed set the book's index before the PRICE_SANITY switch
    # judged it, so a refused index stayed in the book and a `resume` traded on it. The
    # check now runs first; a ticker and the index event it carries are judged once.
    feed = _fresh_feed(rig)
    real = _real_tickers(rig)["BTC-PERPETUAL"]
    index = feed.book.index_price("BTC")
    judged: list[float] = []

    def sane(underlying: str, price_usd: float) -> bool:
        assert underlying == "BTC"
        judged.append(price_usd)
        return price_usd < index * 1.2

    feed.index_check = sane
    now = rig.sim.now_ms()
    rig.venue._on_ticker(dict(real, index_price=index * 1.5, timestamp=now))
    rig.venue._on_ticker(dict(real, index_price=index * 1.01, timestamp=now + 1))
    refused = feed.stats.refused
    first = True
    while rig.venue.pending_events():
        feed.apply(rig.venue._queue.get_nowait())
        if first:  # the jumped ticker: refused, the last good index kept
            assert feed.book.index_price("BTC") == index
            first = False
    assert judged == [index * 1.5, index * 1.01]
    assert feed.stats.refused == refused + 2  # the jumped ticker and its index event
    assert feed.book.index_price("BTC") == pytest.approx(index * 1.01)


def test_regression_refused_event_is_logged_not_raised(rig: Rig) -> None:
    # Found by the fuzzer: the feed logged a refused event with `event=...`, which clashes
    # with structlog's event name: TypeError, and the feed's consumer task died on the first
    # position in an instrument it could not value.
    feed = _fresh_feed(rig)
    pos = rig.feed.positions["BTC-PERPETUAL"]
    feed.apply(PositionEvent(replace(pos, instrument="BTC-NOPE"), None))
    assert feed.stats.refused == 1 and "BTC-NOPE" in feed.stats.unknown_instruments


def test_inject_route_pushes_a_raw_frame_to_subscribed_sessions(rig: Rig) -> None:
    # The admin route the daemon-level fuzz relies on: the body goes out verbatim (even when it
    # is not JSON), only to sessions subscribed to `channel`.
    bad = rig.session.bad_frames
    n = len(rig.sentinels)

    async def post(body: str, channel: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{rig.sim.rest_url}/sim/admin/ws/inject", params={"channel": channel}, data=body
            ) as resp,
        ):
            assert resp.status == 200
            answer: dict[str, Any] = await resp.json()
            return answer

    assert rig.runner.run(post("{not json", CHANGES)) == {"sent": 1}
    assert rig.runner.run(post("{not json", "ticker.NOPE.100ms")) == {"sent": 0}
    assert rig.runner.run(post(notification(SENTINEL, n), CHANGES)) == {"sent": 1}
    rig.runner.run(wait_until(lambda: len(rig.sentinels) > n, 5.0, "the sentinel"))
    assert rig.session.bad_frames == bad + 1
