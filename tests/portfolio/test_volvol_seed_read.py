"""The vol-of-vol seed's read (`portfolio.volvol_seed.read_seed`) against the simulator's
DVOL (real ccxt client on 127.0.0.1, the Deribit adapter) and a real journal: what the
journal's samples and the venue's index give the estimator at a hedge loop's start."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, sim_rig, sim_scenario
from hedgerd.execution.journal import JournalStore
from hedgerd.hedging.volvol import VOLVOL_WINDOW_MS, VolOfVolEstimator
from hedgerd.portfolio.volvol_seed import read_seed
from hedgerd.sim.command import running_simulator
from hedgerd.sim.scenario import Scenario

DAY_MS = 86_400_000


def _scenario() -> Scenario:
    """The drills' world, BTC's DVOL before the start a walk at 80 % a year."""
    sc: Scenario = sim_scenario()
    btc = sc.underlyings[0]
    surface = btc.surface.model_copy(update={"history_vol_of_vol": 0.8})
    return sc.model_copy(update={"underlyings": [btc.model_copy(update={"surface": surface})]})


@pytest.mark.parametrize("down_days", [45, 365])
async def test_a_last_sample_long_before_the_window_is_not_its_predecessor(
    tmp_path: Path, down_days: int
) -> None:
    """The daemon ran last `down_days` ago (longer than the window): the journal's newest
    sample is the last one at or before the window's start, but far before it. Taken as the
    window's first change's predecessor it said the samples reached back over the window (no
    DVOL asked) and the first live mark's change from it (the vol's move over `down_days`)
    was counted in 30 days: xi overstated by sqrt(down_days / 30) on average, for a month.
    The window comes from DVOL instead, its joint with the live marks uncounted."""
    async with running_simulator(
        scenario=_scenario(), stepped=True, accounts=[(DRILL_KEY, DRILL_SECRET)]
    ) as sim:
        r = await sim_rig(sim, tmp_path / "journal.sqlite")
        await r.start()
        try:
            cut = sim.now_ms()
            since = cut - VOLVOL_WINDOW_MS
            last_run = cut - down_days * DAY_MS
            for i in range(6):  # the last hour of the previous run, 10-minute samples
                t = last_run - (5 - i) * 600_000
                await r.journal.run(
                    JournalStore.record_volvol_sample,
                    "BTC",
                    t,
                    0.5,
                    t - VOLVOL_WINDOW_MS,
                )
            seed = await read_seed(r.journal, r.venue, "BTC", VOLVOL_WINDOW_MS, cut)
        finally:
            await r.close()
    assert seed is not None
    assert seed.samples == (), seed.samples
    assert seed.proxy and seed.proxy[0][0] <= since < seed.proxy[1][0], seed.proxy[:2]
    # The first live mark (at another level: the book's vol, not DVOL's) adds no change.
    est = VolOfVolEstimator.seeded(seed.samples, cut, VOLVOL_WINDOW_MS, proxy=seed.proxy)
    index_only = est.estimate(cut)
    assert index_only == pytest.approx(0.8, rel=0.25)  # the walk's own vol of vol
    assert est.observe(1.2, cut + 1)
    assert est.estimate(cut + 1) == pytest.approx(index_only, rel=1e-6)
