"""The option flow's seed from the venue's trade history (`portfolio.flow_seed`): each
trade priced as the book prices a position change, the cut-over by time, the fetch's bound,
and a failed fetch that seeds nothing (the venue's own answers: tests/e2e/
test_option_flow_seed_e2e.py, real ccxt clients against the simulator)."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from hedgerd.book.greeks_book import option_delta_change
from hedgerd.hedging.flow import FLOW_WINDOW_MS
from hedgerd.model import Instrument, OptionTrade
from hedgerd.portfolio.flow_seed import (
    FlowSeed,
    SeedFetches,
    fetch_seed,
    gap_jumps,
    seed_from_trades,
)
from hedgerd.venues.base import ErrorClass, VenueError
from hedgerd.venues.deribit.names import parse_expiry_ms, parse_instrument_name

CUT = parse_expiry_ms("20NOV26") + 3 * 3_600_000
CALL = "BTC-27NOV26-95000-C"
PUT = "BTC-27NOV26-85000-P"
INSTRUMENTS = {n: parse_instrument_name(n) for n in (CALL, PUT)}


def _trade(name: str, ts: int, amount: float, trade_id: str = "1") -> OptionTrade:
    return OptionTrade("d", name, trade_id, ts, amount, 0.55, 90_000.0, 90_450.0)


def test_each_trade_is_the_books_delta_change_at_its_time() -> None:
    trades = [_trade(CALL, CUT - 5_000, -2.0), _trade(PUT, CUT - 1_000, 1.0)]
    seed = seed_from_trades(trades, INSTRUMENTS.get, CUT - FLOW_WINDOW_MS, CUT)
    want = []
    for t in trades:
        inst = INSTRUMENTS[t.instrument]
        assert inst.strike_usd is not None and inst.expiry_ms is not None
        d = option_delta_change(
            inst.is_call, inst.strike_usd, inst.expiry_ms, t.amount_coin, 90_000.0,
            90_450.0 / 90_000.0, 0.55, t.ts_ms,
        )  # fmt: skip
        want.append((t.ts_ms, d))
    assert list(seed.jumps) == want
    assert want[0][1] < 0.0 and want[1][1] < 0.0  # a call sold and a put bought: both lower it
    assert (seed.start_ms, seed.cut_ms, len(seed.trades), seed.unpriced) == (
        CUT - FLOW_WINDOW_MS,
        CUT,
        2,
        0,
    )


def test_trades_after_the_cut_are_the_live_flows_and_before_the_window_none() -> None:
    since = CUT - FLOW_WINDOW_MS
    trades = [
        _trade(CALL, since - 1, 1.0, "old"),
        _trade(CALL, since, 1.0, "first"),
        _trade(CALL, CUT, 1.0, "at the cut"),
        _trade(CALL, CUT + 1, 1.0, "after"),
    ]
    seed = seed_from_trades(trades, INSTRUMENTS.get, since, CUT)
    assert [t for t, _ in seed.jumps] == [since, CUT]


def test_a_trade_that_cannot_be_priced_is_left_out_and_counted() -> None:
    expired = "BTC-20NOV26-90000-C"
    instruments: dict[str, Instrument] = {**INSTRUMENTS, expired: parse_instrument_name(expired)}
    trades = [
        _trade(CALL, CUT - 10, 1.0),
        _trade("BTC-UNKNOWN", CUT - 9, 1.0),  # not listed any more
        _trade(expired, CUT - 8, 1.0),  # expired at 08:00, three hours before the trade
    ]
    seed = seed_from_trades(trades, instruments.get, CUT - FLOW_WINDOW_MS, CUT)
    assert (len(seed.jumps), seed.unpriced, len(seed.trades)) == (1, 2, 3)


def test_a_fetch_cut_by_the_bound_starts_at_its_oldest_trade() -> None:
    trades = [_trade(CALL, CUT - 3_000 + i, 0.1, str(i)) for i in range(3)]
    seed = seed_from_trades(trades, INSTRUMENTS.get, CUT - FLOW_WINDOW_MS, CUT, limit=3)
    assert seed.start_ms == CUT - 3_000  # the rate is over what was seen, not the window
    assert seed_from_trades(trades, INSTRUMENTS.get, 0, CUT, limit=4).start_ms == 0


class _Venue:
    def __init__(self, exc: Exception | None = None) -> None:
        self.exc = exc
        self.asked: list[tuple[str, int, int, int]] = []

    async def fetch_option_trades(
        self, underlying: str, since_ms: int, until_ms: int, limit: int
    ) -> list[OptionTrade]:
        self.asked.append((underlying, since_ms, until_ms, limit))
        if self.exc is not None:
            raise self.exc
        return [_trade(CALL, until_ms - 1, -1.0)]


async def test_the_fetch_covers_the_window_up_to_the_cut() -> None:
    venue = _Venue()
    seed = await fetch_seed(venue, "main", "BTC", INSTRUMENTS.get, CUT)
    assert venue.asked == [("BTC", CUT - FLOW_WINDOW_MS, CUT, 10_000)]
    assert seed is not None and len(seed.jumps) == 1


@pytest.mark.parametrize(
    "exc",
    [VenueError("down", error_class=ErrorClass.RETRYABLE, venue="deribit"), ValueError("bad")],
)
async def test_a_failed_fetch_seeds_nothing_and_says_so(exc: Exception) -> None:
    with capture_logs() as logs:
        seed = await fetch_seed(_Venue(exc), "main", "BTC", INSTRUMENTS.get, CUT)
    assert seed is None
    assert [e["event"] for e in logs] == ["daemon.option_flow_seed_failed"]
    assert logs[0]["log_level"] == "warning" and logs[0]["venue"] == "main"


def _history(*rows: tuple[int, str, float]) -> FlowSeed:
    """A seed whose trade i jumps the delta by i + 1 (so each is recognisable)."""
    return FlowSeed(tuple((t, n, q, float(i + 1)) for i, (t, n, q) in enumerate(rows)), 0, CUT)


def test_a_resyncs_netted_move_is_the_newest_trades_that_sum_to_it() -> None:
    seed = _history(
        (CUT - 50, CALL, -1.0),  # seen by the book before the gap
        (CUT - 40, PUT, 2.0),
        (CUT - 30, CALL, -1.0),  # the gap: two sales netted into one move of -3
        (CUT - 20, CALL, -2.0),
    )
    jumps, fell_back = gap_jumps(seed, [(CALL, -3.0, -9.9)])
    assert (jumps, fell_back) == ([(CUT - 30, 3.0), (CUT - 20, 4.0)], 0)


def test_several_changes_of_one_option_net_and_a_move_with_no_history_falls_back() -> None:
    seed = _history((CUT - 30, CALL, 1.0), (CUT - 20, CALL, 0.5))
    netted = [(CALL, 1.0, 0.2), (CALL, 0.5, 0.1), (PUT, 2.0, -0.7), (PUT, -2.0, 0.7)]
    jumps, fell_back = gap_jumps(seed, netted)
    assert (jumps, fell_back) == ([(CUT - 30, 1.0), (CUT - 20, 2.0)], 0)  # PUT: no net move
    jumps, fell_back = gap_jumps(_history(), [(CALL, -3.0, -0.9), (PUT, 1.0, None)])
    assert (jumps, fell_back) == ([(CUT, -0.9)], 2)  # the net move as before; unpriced: none


class _HangingVenue:
    """A venue whose history never answers (a fetch still paging when the loop stops)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def fetch_option_trades(
        self, underlying: str, since_ms: int, until_ms: int, limit: int
    ) -> list[OptionTrade]:
        await self.release.wait()
        return []


async def test_cancel_stops_the_fetches_in_flight() -> None:
    fetches = SeedFetches()
    fetches.start(_HangingVenue(), "main", "BTC", INSTRUMENTS.get, CUT, CUT - FLOW_WINDOW_MS)
    task = next(iter(fetches._tasks.values())).task
    assert fetches
    fetches.cancel()
    assert not fetches
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fetches.landed("BTC") == []


async def test_a_waiter_from_before_a_restart_never_takes_the_new_fetch_of_the_same_cut() -> None:
    """The hedge loop's (re)start cancels the fetches in flight and starts them again; an
    evaluation still waiting on the old fetch of the same (account, underlying, cut) (the
    venue clock had not moved) used to pop the new one with the old one's cancelled result:
    the seed was lost, its account counted as seeded with no flow."""
    fetches = SeedFetches()
    old = _HangingVenue()
    fetches.start(old, "okx", "BTC", INSTRUMENTS.get, CUT, CUT - FLOW_WINDOW_MS)
    waiter = asyncio.get_running_loop().create_task(fetches.landed("BTC"))
    await asyncio.sleep(0)  # the waiter is waiting on the old fetch
    fetches.cancel()
    new = _HangingVenue()
    fetches.start(new, "okx", "BTC", INSTRUMENTS.get, CUT, CUT - FLOW_WINDOW_MS)
    assert await waiter == []
    assert fetches  # the new fetch is still the one in flight
    new.release.set()
    landed = await fetches.landed("BTC")
    assert [(name, seed.cut_ms) for name, seed, _ in landed] == [("okx", CUT)]
    assert not fetches
