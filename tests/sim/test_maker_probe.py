"""The maker-fill measurement's core (`hedgerd.sim.maker_probe`) on a stepped simulator, through
the real DeribitVenue and ccxt: a probe at the touch fills when the market trades through it,
one far behind it and the other side do not, and the record says so."""

from __future__ import annotations

from pathlib import Path

from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, PERP, sim_rig, sim_scenario
from hedgerd.model import OrderSide
from hedgerd.sim.command import running_simulator
from hedgerd.sim.maker_probe import MakerProbe, cell_stats
from pinned_clock import TEST_START_MS


async def test_probe_at_touch_fills_when_crossed_far_one_does_not(tmp_path: Path) -> None:
    async with running_simulator(
        scenario=sim_scenario(vol=0.05),
        stepped=True,
        start_ms=TEST_START_MS,
        rate_limits=False,
        accounts=[(DRILL_KEY, DRILL_SECRET)],
    ) as sim:
        r = await sim_rig(sim, tmp_path / "j.sqlite")
        await r.venue.connect()
        try:
            probe = MakerProbe(
                r.venue, PERP, amount=10.0, timeout_ms=60_000, clock_ms=sim.now_ms, activity="t"
            )
            bid0, ask0 = await probe.touch()
            placed = await probe.place([OrderSide.BUY, OrderSide.SELL], [0, 200])
            assert len(placed) == 4 and all(p.placed_ms == TEST_START_MS for p in placed)
            assert await probe.touch() == (bid0, ask0), "own probes do not move the touch"
            near_buy = next(p for p in placed if p.side is OrderSide.BUY and p.distance_ticks == 0)
            assert near_buy.price == bid0
            # Not expired yet: nothing is closed.
            assert await probe.expire() == [] and len(probe.open) == 4
            sim.advance(5_000)
            # Index -0.03 % (27 USD at 90,000): the ask (mark + 1 bp) falls through the bid
            # we joined; 200 ticks (100 USD) behind it stays out of reach.
            sim.engine.price_gap("BTC", -0.03)  # type: ignore[attr-defined]
            sim.advance(1_000)
            sim.advance(60_000)
            results = await probe.expire()
        finally:
            await r.close()
    by = {(x.probe.side, x.probe.distance_ticks): x for x in results}
    assert len(by) == 4 and not probe.open
    hit = by[(OrderSide.BUY, 0)]
    assert hit.filled and hit.full and not hit.partial and hit.filled_amount == 10.0
    assert hit.time_to_fill_s is not None and 5.0 < hit.time_to_fill_s <= 6.0
    for key in [(OrderSide.BUY, 200), (OrderSide.SELL, 0), (OrderSide.SELL, 200)]:
        assert not by[key].filled and by[key].filled_amount == 0.0, key
    cells = {c.distance_ticks: c for c in cell_stats(results)}
    assert (cells[0].n, cells[0].filled, cells[0].p_fill) == (2, 1, 0.5)
    assert abs(cells[0].se - 0.5 / 2**0.5) < 1e-12 and cells[0].median_s == hit.time_to_fill_s
    assert (cells[200].filled, cells[200].median_s) == (0, None)
