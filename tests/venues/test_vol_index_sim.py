"""`DeribitVenue.fetch_vol_index` (DVOL, the vol-of-vol seed's fill: `portfolio.volvol_seed`)
with the real ccxt client against the simulator, which serves candles as Deribit does
(stamped at their open, closing at their end): each hourly close is stamped at the hour's
end, the time the index had that value; nothing after `until_ms`, the window's first value's
predecessor at or before `since_ms`. The truth is the engine's own index (`sim.vol_index`:
a seeded walk before the start)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hedgerd.config import VenueSettings
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.venues.deribit import DeribitVenue
from pinned_clock import TEST_START_MS

HOUR_MS = 3_600_000


def _scenario() -> Scenario:
    scenario = load_scenario(None, seed=5)
    btc = scenario.underlyings[0]
    assert btc.currency == "BTC"
    surface = btc.surface.model_copy(update={"history_vol_of_vol": 0.8})
    btc = btc.model_copy(update={"surface": surface})
    return scenario.model_copy(
        update={"start_ms": TEST_START_MS, "underlyings": [btc, *scenario.underlyings[1:]]}
    )


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(scenario=_scenario(), stepped=True) as s:
        yield s


async def _venue(sim: Simulator) -> DeribitVenue:
    """A market-data venue without keys (DVOL is public)."""
    settings = VenueSettings(
        mode="sim", rest_url=sim.rest_url, ws_url=sim.ws_url, underlyings=("BTC",)
    )
    venue = DeribitVenue("d", settings, clock_ms=sim.now_ms, private_stream=False)
    await venue.connect()
    return venue


# `since` on the hour grid and off it (the end stays off it): on the hour, the close stamped
# at `since` itself is the first change's predecessor, and nothing before it comes back.
@pytest.mark.parametrize("since_past_hour_ms", [0, 11 * 60_000], ids=["on-hour", "off-hour"])
async def test_each_dvol_close_is_stamped_at_the_end_of_its_hour(
    sim: Simulator, since_past_hour_ms: int
) -> None:
    venue = await _venue(sim)
    try:
        engine: Any = sim.engine
        start = sim.now_ms()
        # Before the simulated start (the walk's history); `until` off the hour grid.
        until = start - 5 * HOUR_MS - 17 * 60_000
        since = (until - 3 * 24 * HOUR_MS) // HOUR_MS * HOUR_MS + since_past_hour_ms
        got = await venue.fetch_vol_index("BTC", since, until)
        # The index at each point's time (before: the close of the hour after it).
        want = [round(engine.vol_index("BTC", t), 2) / 100.0 for t, _ in got]
        assert [v for _, v in got] == want
        times = [t for t, _ in got]
        assert all(t % HOUR_MS == 0 for t in times)
        assert times == list(range(times[0], times[-1] + 1, HOUR_MS))
        # The first change's predecessor (the last close at or before `since`: at `since`
        # itself on the hour), then every hour's end up to `until`: the candle opened in
        # `until`'s hour closes after it and is left out.
        assert times[0] == since // HOUR_MS * HOUR_MS
        assert times[0] <= since < times[1]
        assert until - HOUR_MS < times[-1] <= until
        assert len({v for _, v in got}) > 30  # the walk moves
    finally:
        await venue.close()
