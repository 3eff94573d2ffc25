"""`DeribitVenue.fetch_index_history` and `OkxVenue.fetch_index_history` (the index's
history, the jump variance seed's fill: `portfolio.volvol_seed`) with the real ccxt clients
against the simulator: Deribit's smallest `public/get_index_chart_data` range over the
request, OKX's `market/history-index-candles` paged back; the points in (since, until] after
the last one at or before `since`. The truth is the engine's own index (`sim.index_history`: a
seeded walk before the start, the simulated path after it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hedgerd.config import VenueSettings
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.venues.deribit import DeribitVenue
from hedgerd.venues.okx.venue import OkxVenue
from pinned_clock import TEST_START_MS

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def _scenario() -> Scenario:
    return load_scenario(None, seed=5).model_copy(update={"start_ms": TEST_START_MS})


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(scenario=_scenario(), stepped=True) as s:
        yield s


async def _venue(sim: Simulator) -> DeribitVenue:
    """A market-data venue without keys (the index chart is public)."""
    settings = VenueSettings(
        mode="sim", rest_url=sim.rest_url, ws_url=sim.ws_url, underlyings=("BTC",)
    )
    venue = DeribitVenue("d", settings, clock_ms=sim.now_ms, private_stream=False)
    await venue.connect()
    return venue


@pytest.mark.parametrize("since_past_hour_ms", [0, 11 * MIN_MS], ids=["on-hour", "off-hour"])
async def test_a_week_back_is_the_month_range_hourly_after_its_predecessor(
    sim: Simulator, since_past_hour_ms: int
) -> None:
    venue = await _venue(sim)
    try:
        engine: Any = sim.engine
        start = sim.now_ms()
        until = start - 5 * HOUR_MS - 17 * MIN_MS
        since = (start - 7 * DAY_MS) // HOUR_MS * HOUR_MS + since_past_hour_ms
        got = await venue.fetch_index_history("BTC", since, until)
        times = [t for t, _ in got]
        assert [v for _, v in got] == [engine.index_at("BTC", t) for t in times]
        assert all(t % HOUR_MS == 0 for t in times)  # "1m": hourly points
        assert times == list(range(times[0], times[-1] + 1, HOUR_MS))
        assert times[0] == since // HOUR_MS * HOUR_MS  # the predecessor, nothing older
        assert times[0] <= since < times[1]
        assert until - HOUR_MS < times[-1] <= until
        assert len({v for _, v in got}) > 100  # the walk moves
    finally:
        await venue.close()


async def test_after_the_start_the_points_are_the_simulated_path(sim: Simulator) -> None:
    """An hour back after running 90 minutes: the "1h" range, a point a minute, each the
    index the market had then (the walk's before the start)."""
    venue = await _venue(sim)
    try:
        engine: Any = sim.engine
        start = sim.now_ms()
        seen: dict[int, float] = {start: engine.index_price("BTC")}
        for _ in range(90):
            sim.advance(MIN_MS)
            seen[sim.now_ms()] = engine.index_price("BTC")
        now = sim.now_ms()
        got = await venue.fetch_index_history("BTC", now - 50 * MIN_MS, now)
        assert [t for t, _ in got] == list(range(now - 50 * MIN_MS, now + 1, MIN_MS))
        assert got == [(t, seen[t]) for t, _ in got]
        assert len({v for _, v in got}) > 40
    finally:
        await venue.close()


# ------------------------------------------------------------------------------------ OKX
OKX_KEY, OKX_SECRET, OKX_PASSPHRASE = "okx-key", "okx-secret", "okxPass1"
BAR_MS = 900_000


@pytest.fixture
async def okx_sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        scenario=_scenario(),
        stepped=True,
        venues=("deribit", "okx"),
        accounts=[(OKX_KEY, OKX_SECRET)],
        api_passphrase=OKX_PASSPHRASE,
    ) as s:
        yield s


async def _okx(sim: Simulator) -> OkxVenue:
    settings = VenueSettings(
        exchange="okx",
        mode="sim",
        rest_url=sim.rest_url,
        ws_url=sim.okx_ws_url,
        api_key=OKX_KEY,
        api_secret=OKX_SECRET,
        api_passphrase=OKX_PASSPHRASE,
        underlyings=("BTC",),
        account="okx-main",
    )
    venue = OkxVenue("okx", settings, clock_ms=sim.now_ms, private_stream=False)
    await venue.connect()
    return venue


@pytest.mark.parametrize("since_past_bar_ms", [0, 7 * MIN_MS], ids=["on-bar", "off-bar"])
async def test_okx_index_candles_are_paged_back_each_close_at_its_bars_end(
    okx_sim: Simulator, since_past_bar_ms: int
) -> None:
    """A week and an hour back from 90-105 minutes after the start: seven pages of 15-minute
    candles (`after`), each close stamped at its bar's end (the index then: the walk's
    before the start, the market's after), the forming one left out, the predecessor first."""
    venue = await _okx(okx_sim)
    try:
        engine: Any = okx_sim.engine
        # To 5 minutes into a bar, 90-105 minutes after the start, whatever the pinned start's
        # minute (`HEDGERD_TEST_START`: 07:58 is 2 minutes before a bar's end).
        past = (5 * MIN_MS - okx_sim.now_ms() % BAR_MS) % BAR_MS
        okx_sim.advance(90 * MIN_MS + past)
        now = okx_sim.now_ms()
        assert now % BAR_MS == 5 * MIN_MS
        since = (now - 7 * DAY_MS - HOUR_MS) // BAR_MS * BAR_MS + since_past_bar_ms
        got = await venue.fetch_index_history("BTC", since, now)
        times = [t for t, _ in got]
        assert times == list(range(since // BAR_MS * BAR_MS, now // BAR_MS * BAR_MS + 1, BAR_MS))
        assert times[0] <= since < times[1]
        assert times[-1] == now - 5 * MIN_MS  # the bar forming now is left out
        assert [v for _, v in got] == [round(engine.index_at("BTC", t), 4) for t in times]
        assert any(t > engine.start_ms for t in times)
    finally:
        await venue.close()
