"""The simulator's DVOL (`public/get_volatility_index_data`, `sim.vol_index`): candles on
the resolution's grid up to now, stamped at their open and closing at their end as
Deribit's, paged back by `continuation`, the level at the start the surface's 30-day ATM vol,
the history before it a seeded walk (flat by default)."""

from __future__ import annotations

import itertools
import math

import pytest

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import DeribitError
from hedgerd.sim.scenario import Scenario

HOUR = 3_600_000
METHOD = "public/get_volatility_index_data"


def _engine(vov: float = 0.0, seed: int = 7) -> SimExchange:
    sc = Scenario(seed=seed)
    btc = sc.underlyings[0]
    surface = btc.surface.model_copy(update={"history_vol_of_vol": vov})
    btc = btc.model_copy(update={"surface": surface})
    return SimExchange(sc.model_copy(update={"underlyings": [btc, *sc.underlyings[1:]]}))


def _ask(ex: SimExchange, start: int, end: int, resolution: object = "3600") -> dict:  # type: ignore[type-arg]
    params = {"currency": "BTC", "start_timestamp": start, "end_timestamp": end}
    return ex.dispatch(METHOD, {**params, "resolution": resolution}, None)  # type: ignore[no-any-return]


def test_flat_by_default_at_the_surfaces_30_day_atm_vol() -> None:
    ex = _engine()
    now = ex.now_ms()
    got = _ask(ex, now - 30 * 24 * HOUR, now + 10 * HOUR)  # nothing after now
    assert got["continuation"] is None
    times = [c[0] for c in got["data"]]
    assert len(times) == 721 and all(t % HOUR == 0 for t in times) and times[-1] <= now
    atm = 100.0 * ex.markets["BTC"].atm_vol(30 / 365)
    assert {tuple(c[1:]) for c in got["data"]} == {(round(atm, 2),) * 4}


def test_a_walk_before_the_start_deterministic_and_paged() -> None:
    ex = _engine(vov=0.8)
    now = ex.now_ms()
    start = now - 60 * 24 * HOUR
    first = _ask(ex, start, now)  # 1,441 hourly candles: the newest 1,000, then the rest
    assert len(first["data"]) == 1_000
    rest = _ask(ex, start, first["continuation"])
    assert rest["continuation"] is None and len(rest["data"]) == 441
    closes = [c[4] for c in rest["data"] + first["data"]]
    steps = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    realised = math.sqrt(sum(s * s for s in steps) / (len(steps) / (365 * 24)))
    assert realised == pytest.approx(0.8, rel=0.1)  # the walk's vol of ln vol
    # The same history however it is asked, and for the same seed.
    again = _engine(vov=0.8)
    assert _ask(again, now - 2 * HOUR, now)["data"] == first["data"][-3:]
    assert _ask(_engine(vov=0.8, seed=8), now - 2 * HOUR, now)["data"] != first["data"][-3:]
    # A minute's resolution, a number over JSON-RPC.
    assert len(_ask(ex, now - 10 * 60_000, now, 60)["data"]) in (10, 11)


def test_a_candle_is_stamped_at_its_open_and_closes_at_its_end() -> None:
    """As Deribit serves candles ([open time, open, high, low, close]): the candle opened at
    t opens at the index at t and closes at the index at t + 1 h, so one candle's close is
    the next one's open; the candle still forming closes at the index now (before: every
    value of a candle was the index at its open time, a close an hour early)."""
    ex = _engine(vov=0.8)
    now = ex.now_ms()
    data = _ask(ex, now - 48 * HOUR, now)["data"]
    for t, first, high, low, last in data:
        assert first == round(ex.vol_index("BTC", t), 2)
        assert last == round(ex.vol_index("BTC", min(t + HOUR, now)), 2)
        assert (high, low) == (max(first, last), min(first, last))
    assert all(a[4] == b[1] for a, b in itertools.pairwise(data))
    assert sum(c[1] != c[4] for c in data) > 40  # the walk moves every hour
    assert data[-1][0] <= now < data[-1][0] + HOUR  # the forming candle


def test_bad_parameters_are_refused() -> None:
    ex = _engine()
    now = ex.now_ms()
    with pytest.raises(DeribitError):
        _ask(ex, now - HOUR, now, "600")
    with pytest.raises(DeribitError):
        ex.dispatch(
            METHOD,
            {"currency": "XRP", "start_timestamp": 0, "end_timestamp": now, "resolution": "60"},
            None,
        )
