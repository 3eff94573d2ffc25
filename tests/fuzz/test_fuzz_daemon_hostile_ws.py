"""Hostile frames on a running daemon's WebSockets (the simulator's `/sim/admin/ws/inject`
hook): malformed notifications on the private channels, tickers with NaN, negative, zero or
crossed prices and a zero or NaN index, positions in unknown instruments or with a size
against their side, portfolios without a balance, and framing garbage, on the private
session and on ccxt's market-data socket.

One daemon for the module, on a stepped simulator (the market stands still, so a baseline
with the controller's target at the current delta sends nothing on its own; staleness limits
are wide for the same reason). Invariants per example: the daemon task lives and stays
ACTIVE, `hedgerd status` (the control API) answers, the private session neither dies nor
reconnects, and the simulator receives no order. Two controls keep the invariants honest: a
valid position change injected the same way does produce an order, and an index jump trips
PRICE_SANITY (a halt with a reason code, the acceptable outcome) with no order.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import (
    BAD_NUMBERS,
    CHANGES,
    RAW_GARBAGE,
    UNKNOWN_NAMES,
    LoopRunner,
    changes_frames,
    envelopes,
    fuzz_settings,
    notification,
    wait_until,
)
from hypothesis import given, note
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_support import daemon_config, orders_received, short_dir, status

from hedgerd.book.valuation import MS_PER_YEAR
from hedgerd.config import HedgerdConfig
from hedgerd.daemon import Daemon
from hedgerd.model.instruments import Instrument
from hedgerd.model.orders import Fill, OrderSide
from hedgerd.paper import paper_config
from hedgerd.pricing.black import black76
from hedgerd.sim.admin import inject_ws
from hedgerd.sim.command import Simulator, start_simulator
from hedgerd.venues.base import ConnectionEvent, ConnectionState
from pinned_clock import TEST_START_MS

SPEED = 20.0  # daemon seconds per wall second: the controller runs every 50 ms
SENTINEL = "fuzz.sentinel"
#: Price sanity's gap window here, wall seconds (short: the tests wait it out).
GAP_CONFIRM_S = 0.5


@dataclass(repr=False)  # hypothesis prints the fixture on failure
class Rig:
    runner: LoopRunner
    sim: Simulator
    daemon: Daemon
    stop: asyncio.Event
    task: asyncio.Task[int]
    ticker_channel: str
    ticker: dict[str, Any]
    sentinels: list[Any] = field(default_factory=list)

    def alive(self) -> None:
        if self.task.done():
            self.task.result()  # raises what ended it
            raise AssertionError("the daemon stopped")
        session = self.daemon.venue.session if self.daemon.venue else None
        assert session is not None and session.connects == 1
        assert self.daemon.trading is not None
        assert self.daemon.trading.state.value == "active", self.daemon.trading.reasons

    async def settle(self, evaluations: int = 4) -> None:
        """Let the controller evaluate `evaluations` times more (it would have traded by
        then) and the executions end."""
        n = self.daemon.stats.evaluations
        await wait_until(
            lambda: (
                self.daemon.stats.evaluations >= n + evaluations and not self.daemon._exec_tasks
            ),
            20.0,
            "controller passes",
        )

    async def push(self, frames: list[tuple[str, str]]) -> None:
        """Inject (where, text) frames, wait until the private session read them, then let
        the controller run."""
        n = len(self.sentinels)
        for where, text in frames:
            channel = {"private": CHANGES, "market": self.ticker_channel}[where]
            assert inject_ws(self.sim.server, text, channel=channel) >= 1
        inject_ws(self.sim.server, notification(SENTINEL, n), channel=CHANGES)
        await wait_until(lambda: len(self.sentinels) > n, 5.0, "the session to read the frames")
        await self.settle()


def _config(workdir: Path) -> dict[str, Any]:
    values = daemon_config(
        workdir,
        extra={
            "risk": {
                # The stepped market sends nothing new: staleness is not under test here.
                "stale_data": {"market_stale_after_s": 3600.0, "positions_stale_after_s": 3600.0},
                # A jump is held this long as a possible gap before it trips (board: wall).
                "price_sanity": {"gap_confirm_s": GAP_CONFIRM_S},
            }
        },
    )
    values["venues"]["sim"].update(stale_market_s=3600.0, stale_positions_s=3600.0)
    return values


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    runner = LoopRunner()
    sim = runner.run(start_simulator(seed=21, stepped=True, start_ms=TEST_START_MS))
    config = paper_config(HedgerdConfig(**_config(short_dir())), sim)
    daemon = Daemon(
        config,
        clock_ms=lambda: int(sim.engine.now_ms()),
        speed=SPEED,
        board_clock_ms=lambda: time.time_ns() // 1_000_000,
    )
    stop = asyncio.Event()
    task = runner.loop.create_task(daemon.run(stop))
    try:

        async def start() -> Rig:
            def ready() -> bool:
                if task.done():
                    task.result()
                return daemon.ready.is_set() and daemon.venue is not None

            await wait_until(ready, 40.0, "the daemon to become ready")
            assert daemon.venue is not None and daemon.venue.session is not None
            session = daemon.venue.session
            ticker = dict(await daemon.venue._raw_ticker("BTC-PERPETUAL"))

            def ticker_channels() -> list[str]:
                return [
                    ch
                    for s in sim.server.sessions.values()
                    for ch in sim.server.hub.channels_of(s)
                    if ch.startswith("ticker.BTC-PERPETUAL")
                ]

            # Ready does not wait for every subscription's answer: the market stream
            # subscribes the perpetual's ticker as it comes up.
            await wait_until(lambda: bool(ticker_channels()), 20.0, "the ticker streamed")
            channels = ticker_channels()
            rig = Rig(runner, sim, daemon, stop, task, channels[0], ticker)
            on_message = session._on_message

            def spy(channel: str, data: Any) -> None:
                if channel == SENTINEL:
                    rig.sentinels.append(data)
                else:
                    on_message(channel, data)

            session._on_message = spy
            # The start-up hedge, then a target at the current delta: from here on the
            # controller has no reason of its own to trade.
            await rig.settle(8)
            delta = daemon.stats.per_underlying["BTC"].last_delta_coin
            assert math.isfinite(delta)
            await daemon._tunables()["hedging.BTC.target_coin"].apply(delta)
            await rig.settle()
            return rig

        yield runner.run(start())
    finally:
        stop.set()
        runner.run(asyncio.wait_for(task, 20.0))
        runner.run(sim.stop())
        runner.close()


# ------------------------------------------------------------------------ strategies
#: Bad values that keep the frame valid JSON: ccxt's market socket dies on NaN/Infinity
#: literals (see the xfail test at the end), which a venue writing JSON cannot send anyway.
JSON_BAD_NUMBERS = [
    v for v in BAD_NUMBERS if not (isinstance(v, float) and not math.isfinite(v))
] + [0, -1.0, -90_000.0, 1e308, -1e308]


def _spoiled_ticker(base: dict[str, Any]) -> st.SearchStrategy[str]:
    bad = st.sampled_from(JSON_BAD_NUMBERS)

    @st.composite
    def build(draw: st.DrawFn) -> str:
        data = dict(base)
        spoil = draw(
            st.sampled_from(
                ["mark_price", "index_price", "crossed", "best_bid_price", "both", "name"]
            )
        )
        if spoil == "crossed":
            data["best_bid_price"] = data["best_ask_price"] * 1.01
        elif spoil == "both":
            data["mark_price"] = draw(bad)
            data["index_price"] = draw(bad)
        elif spoil == "name":
            data["instrument_name"] = draw(st.sampled_from(UNKNOWN_NAMES))
        else:
            data[spoil] = draw(bad)
        # A fresh stamp each time, so that ccxt and the adapter see a new ticker.
        data["timestamp"] = int(base["timestamp"]) + draw(st.integers(1, 50_000))
        channel = f"ticker.{data.get('instrument_name')}.100ms"
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {
                    "channel": draw(
                        st.sampled_from([channel, f"ticker.{base['instrument_name']}.100ms"])
                    ),
                    "data": data,
                },
            },
            allow_nan=False,
        )

    return build()


def hostile_frames(rig: Rig) -> st.SearchStrategy[list[tuple[str, str]]]:
    names = [*sorted(rig.daemon.feed.positions if rig.daemon.feed else ()), "BTC-PERPETUAL"]
    private = changes_frames(names).map(lambda fs: [("private", f) for f in fs])
    market = st.lists(
        _spoiled_ticker(rig.ticker).map(lambda f: ("market", f)), min_size=1, max_size=3
    )
    # Framing garbage on the private session only: on ccxt's socket it ends the market
    # stream (see the xfail test at the end).
    garbage = st.lists(
        st.tuples(st.just("private"), st.sampled_from(RAW_GARBAGE)), min_size=1, max_size=3
    )
    envelope = st.lists(st.tuples(st.just("private"), envelopes), min_size=1, max_size=2)
    return st.lists(st.one_of(private, market, garbage, envelope), min_size=1, max_size=3).map(
        lambda groups: [f for g in groups for f in g]
    )


# ------------------------------------------------------------------------------ tests
@fuzz_settings(15)
@given(data=st.data())
def test_hostile_frames_neither_crash_the_daemon_nor_trade(rig: Rig, data: st.DataObject) -> None:
    frames = data.draw(hostile_frames(rig))
    note(frames)
    orders = orders_received(rig.sim)

    async def example() -> None:
        await rig.push(frames)
        rig.alive()
        socket = rig.daemon.control_socket
        assert socket is not None
        answer = await status(socket)
        assert answer["state"] == "ACTIVE" and answer["venue"] == "sim", answer
        assert orders_received(rig.sim) == orders, "hostile data caused an order"

    rig.runner.run(example())


def test_an_isolated_index_jump_halts_with_price_sanity_and_sends_nothing(rig: Rig) -> None:
    trading = rig.daemon.trading
    assert trading is not None

    async def example() -> None:
        await rig.settle()  # the control's hedges (and their reconciliation) end first
        orders = orders_received(rig.sim)
        jump = dict(
            rig.ticker,
            index_price=float(rig.ticker["index_price"]) * 1.5,
            mark_price=float(rig.ticker["mark_price"]) * 1.5,
            timestamp=int(rig.ticker["timestamp"]) + 1,
        )
        await rig.push([("market", notification(rig.ticker_channel, jump))])
        # Alone, the jump is held as a possible gap: not in the book, no trip, nothing sent.
        assert "price_sanity" not in [r.code.value for r in trading.reasons]
        assert rig.daemon.book is not None
        assert rig.daemon.book.index_price("BTC") == float(rig.ticker["index_price"])
        assert orders_received(rig.sim) == orders
        # Still there once the window is over, and no other feed moved with it (the stepped
        # market sends nothing new): an isolated jump, which trips.
        await asyncio.sleep(GAP_CONFIRM_S)
        again = dict(jump, timestamp=int(rig.ticker["timestamp"]) + 2)
        await rig.push([("market", notification(rig.ticker_channel, again))])
        await wait_until(
            lambda: "price_sanity" in [r.code.value for r in trading.reasons],
            10.0,
            "price sanity to trip",
        )
        assert trading.state.value == "halted"
        await rig.settle()
        assert orders_received(rig.sim) == orders
        # The refused index never reached the book: a `resume` with no fresh tick would
        # otherwise have the controller trade on it.
        assert rig.daemon.book is not None
        assert rig.daemon.book.index_price("BTC") == float(rig.ticker["index_price"])
        assert not rig.task.done()
        socket = rig.daemon.control_socket
        assert socket is not None
        assert (await status(socket))["state"] == "HALTED"
        # The next true tick (accepted: back at the last good index), then the operator
        # resumes; the market stands still again.
        back = dict(rig.ticker, timestamp=int(rig.ticker["timestamp"]) + 3)
        inject_ws(rig.sim.server, notification(rig.ticker_channel, back))
        await wait_until(
            lambda: (
                rig.daemon.book is not None
                and rig.daemon.book.index_price("BTC") == float(rig.ticker["index_price"])
            ),
            5.0,
            "the index back",
        )
        await trading.resume(actor="fuzz-test")
        await rig.settle()
        assert orders_received(rig.sim) == orders

    rig.runner.run(example())


def _streamed_option(rig: Rig) -> tuple[Instrument, str]:
    """An option the daemon streams the ticker of, a few days or more from expiry, and its
    ticker channel."""
    venue = rig.daemon.venue
    assert venue is not None
    now = rig.sim.now_ms()
    streamed = {
        ch.split(".")[1]: ch
        for s in rig.sim.server.sessions.values()
        for ch in rig.sim.server.hub.channels_of(s)
        if ch.startswith("ticker.")
    }
    known = venue.instruments()
    option = next(
        known[n]
        for n in sorted(streamed)
        if n in known and known[n].is_option and (known[n].expiry_ms or 0) > now + 3 * 86_400_000
    )
    return option, streamed[option.name]


def _repriced(option: Instrument, raw: dict[str, Any], vol: float, ts_ms: int) -> dict[str, Any]:
    """The ticker `raw` at time `ts_ms` with its mark (coin) and mark IV (percent) set to
    the Black-76 price at `vol` (fraction), on the ticker's own forward and index."""
    assert option.expiry_ms is not None and option.strike_usd is not None
    tau = (option.expiry_ms - ts_ms) / MS_PER_YEAR
    forward = float(raw["underlying_price"])
    price_usd = float(black76(option.is_call, forward, option.strike_usd, tau, vol).price)
    return dict(
        raw,
        timestamp=ts_ms,
        mark_price=price_usd / float(raw["index_price"]),
        mark_iv=vol * 100.0,
    )


def test_a_forward_off_the_index_halts_with_price_sanity_and_is_not_applied(rig: Rig) -> None:
    # An option ticker whose underlying price (the expiry's forward) is 30 % off the index, a
    # few weeks out: a basis no expiry that close carries. Before the forward check it went
    # straight into the book (only a factor of 2 was implausible) and moved every delta of
    # the expiry.
    trading = rig.daemon.trading
    book = rig.daemon.book
    venue = rig.daemon.venue
    assert trading is not None and book is not None and venue is not None
    option, channel = _streamed_option(rig)

    async def example() -> None:
        await rig.settle()
        orders = orders_received(rig.sim)
        assert option.expiry_ms is not None
        raw = dict(await venue._raw_ticker(option.name))
        before = book.forward_ratio("BTC", option.expiry_ms)
        off = dict(
            raw,
            underlying_price=float(raw["index_price"]) * 1.3,
            timestamp=int(raw["timestamp"]) + 1,
        )
        assert inject_ws(rig.sim.server, notification(channel, off), channel=channel) >= 1
        await wait_until(
            lambda: "price_sanity" in [r.code.value for r in trading.reasons],
            10.0,
            "price sanity to trip on the forward",
        )
        assert trading.state.value == "halted"
        assert book.forward_ratio("BTC", option.expiry_ms) == before
        await rig.settle()
        assert orders_received(rig.sim) == orders
        # The true ticker again (accepted), then the operator resumes.
        back = dict(raw, timestamp=int(raw["timestamp"]) + 2)
        assert inject_ws(rig.sim.server, notification(channel, back), channel=channel) >= 1
        await rig.settle()
        await trading.resume(actor="fuzz-test")
        await rig.settle()
        assert trading.state.value == "active", trading.reasons
        assert orders_received(rig.sim) == orders

    rig.runner.run(example())


def test_an_option_iv_jump_is_held_until_confirmed_and_does_not_halt(rig: Rig) -> None:
    # The option's mark (and mark IV) doubles in one tick: a plausible number, but no option
    # reprices like that in a second. The book keeps the last good vol, the daemon keeps
    # hedging (no trip), and nothing is traded on it. The next tick back at the old level
    # is taken; a jump that the next tick confirms (a real repricing) is taken one tick late.
    trading = rig.daemon.trading
    book = rig.daemon.book
    venue = rig.daemon.venue
    assert trading is not None and book is not None and venue is not None
    option, channel = _streamed_option(rig)

    async def example() -> None:
        await rig.settle()
        orders = orders_received(rig.sim)
        raw = dict(await venue._raw_ticker(option.name))
        before = book.option_vol(option.name)
        assert math.isfinite(before)
        stamp = int(raw["timestamp"])

        def scaled(k: float, dt: int) -> str:
            # The tick's mark is priced at k times the held vol, so the vol the daemon
            # implies from it (and judges) moves by exactly that factor. Scaling the mark
            # price itself would not: how far a doubled premium moves the implied vol depends
            # on the option's moneyness and time to expiry, i.e. on the day the test runs.
            return notification(channel, _repriced(option, raw, before * k, stamp + dt))

        assert inject_ws(rig.sim.server, scaled(2.0, 1), channel=channel) >= 1
        await rig.settle()
        assert book.option_vol(option.name) == before
        assert trading.state.value == "active", trading.reasons
        assert orders_received(rig.sim) == orders
        assert inject_ws(rig.sim.server, scaled(1.05, 2), channel=channel) >= 1
        await wait_until(
            lambda: book.option_vol(option.name) > before * 1.02, 5.0, "the small move applied"
        )
        # A repricing the next tick confirms is taken (one tick late), with no trip.
        assert inject_ws(rig.sim.server, scaled(2.0, 3), channel=channel) >= 1
        await rig.settle()
        assert book.option_vol(option.name) < before * 1.5
        assert inject_ws(rig.sim.server, scaled(2.01, 4), channel=channel) >= 1
        await wait_until(
            lambda: book.option_vol(option.name) > before * 1.8, 5.0, "the confirmed jump"
        )
        # Back to the venue's own mark: a jump down, confirmed by the tick after it (one at a
        # time: ccxt keeps only the latest ticker of a symbol until it is read).
        for dt in (5, 6):
            back = notification(channel, dict(raw, timestamp=stamp + dt))
            assert inject_ws(rig.sim.server, back, channel=channel) >= 1
            await rig.settle()
        await wait_until(
            lambda: abs(book.option_vol(option.name) / before - 1) < 1e-6, 5.0, "the vol back"
        )
        await rig.settle()
        assert trading.state.value == "active", trading.reasons

    rig.runner.run(example())


def test_a_fill_in_an_option_the_venue_no_longer_lists_does_not_halt_the_day(rig: Rig) -> None:
    # Found by the chaos drill: the account traded an option that the venue's instrument list
    # did not hold (listed after the markets were loaded, or expired since), and the day's
    # hedge loss "could not be computed": daily_loss halted the daemon. Options are the book,
    # not its hedges: the check reloads the markets once, then knows the name is an option.
    daemon = rig.daemon
    trading = daemon.trading
    journal = daemon.journal
    assert trading is not None and journal is not None and daemon.venue is not None
    name = "BTC-1JAN30-123456-P"
    assert name not in daemon.venue.instruments()
    fill = Fill(
        venue=daemon.venue.name,
        instrument=name,
        trade_id="chaos-found-1",
        order_id="foreign-1",
        label=None,
        side=OrderSide.SELL,
        amount=0.5,
        price=0.01,
        fee=0.0,
        fee_currency="BTC",
        ts_ms=int(rig.sim.now_ms()),
    )

    async def example() -> None:
        await journal.record_fill(fill)
        await daemon._check_daily_loss()
        assert name in daemon._reloaded_for  # the markets were reloaded for it, once
        await daemon._check_daily_loss()
        assert "daily_loss" not in [r.code.value for r in trading.reasons]
        assert trading.state.value == "active", trading.reasons

    rig.runner.run(example())


def test_control_a_valid_position_injected_the_same_way_does_trade(rig: Rig) -> None:
    # Without this, "no order" could mean the injected frames never reached the controller.
    feed = rig.daemon.feed
    assert feed is not None
    held = feed.positions.get("BTC-PERPETUAL")
    size = (held.amount if held is not None else 0.0) - 150_000.0  # ~1.7 coin shorter
    position = {
        "instrument_name": "BTC-PERPETUAL",
        "kind": "future",
        "size": size,
        "direction": "sell" if size < 0 else "buy",
        "average_price": rig.ticker["mark_price"],
    }
    orders = orders_received(rig.sim)

    async def example() -> None:
        frame = notification(CHANGES, {"positions": [position], "trades": [], "orders": []})
        await rig.push([("private", frame)])
        await wait_until(lambda: orders_received(rig.sim) > orders, 10.0, "the hedge of it")
        assert not rig.task.done()
        # Not settled afterwards: the venue then contradicts the phantom position and the
        # daemon hedges back (see the report); nothing after this test needs a calm book.

    rig.runner.run(example())


def test_market_stream_survives_an_undecodable_frame(rig: Rig) -> None:
    feed = rig.daemon.feed
    assert feed is not None

    async def example() -> None:
        nan_ticker = dict(rig.ticker, mark_price=math.nan)  # json.dumps writes NaN
        inject_ws(rig.sim.server, notification(rig.ticker_channel, nan_ticker))
        await rig.settle()
        tickers = feed.stats.tickers
        # A stamp no other test sends (the adapter skips a ticker it has seen): past the
        # hostile examples' +1..50 s, within the feed's 60 s ahead limit.
        fresh = dict(rig.ticker, timestamp=int(rig.ticker["timestamp"]) + 50_001)
        inject_ws(
            rig.sim.server, notification(rig.ticker_channel, fresh), channel=rig.ticker_channel
        )
        await wait_until(lambda: feed.stats.tickers > tickers, 3.0, "the next ticker")

    rig.runner.run(example())


async def test_regression_a_failing_event_route_is_logged_not_raised() -> None:
    # Found while fuzzing: the daemon logged a failed event with `event=...`, which clashes
    # with structlog's event name; the TypeError left the "never raises" handler and ended the
    # book feed's consumer. Here the route fails (no kill-switch board: not started).
    daemon = Daemon(HedgerdConfig(**_config(short_dir())))
    await daemon._on_event(
        ConnectionEvent("sim", "mm", "private", ConnectionState.CONNECTED, 0, reason="")
    )
    assert len(daemon.stats.errors) == 1
