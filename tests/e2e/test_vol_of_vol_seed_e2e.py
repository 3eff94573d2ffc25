"""The marks' vol-of-vol estimate across a restart, end to end: a daemon on the simulator
(real ccxt client on 127.0.0.1) samples its book's mark vol as the marks move, keeps the
samples in its journal (`portfolio.volvol_seed`), and the daemon started again on the same
journal makes its first decision with the estimate the first one had; the index's jump
variance ratio and the jumps' lean, sampled with the marks (`hedging.jumps`), likewise.

The window before the first start is filled from the simulator's DVOL (a walk at 80 % a
year before its start). The simulator's clock is stepped (the market moves when the test
advances it, 10 minutes a time: the estimator's sampling step) and the index gapped between
samples so the book's mark vol moves (the surface's skew); the controller's timer is an
hour, so the evaluations are the test's.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    Running,
    admin_trade,
    daemon_config,
    decide,
    hedgerctl,
    short_dir,
    sim_admin,
    simulator,
    start_daemon,
    wait_for,
)
from test_ha_failover_e2e import HA  # a short lease: the handoff takes a second

from hedgerd.execution.journal import JournalStore
from hedgerd.execution.journal_db import PostgresTarget
from hedgerd.ha.node import NodeRole
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.volvol import VOLVOL_SAMPLE_MS, VOLVOL_WINDOW_MS, VolOfVolEstimator
from hedgerd.model import HedgeDecision
from hedgerd.sim.command import Simulator
from hedgerd.sim.scenario import Scenario, load_scenario

pytestmark = pytest.mark.usefixtures("patient_seeds")

SPEED = 1.0


def _scenario(history_vol_of_vol: float = 0.8) -> Scenario:
    """The default world, its market stepped every 10 s (an advance of 10 minutes is 60
    steps, not 2,400), no client option flow; BTC's DVOL before the start a walk at
    `history_vol_of_vol` a year (`sim.vol_index`)."""
    scenario = load_scenario(None, seed=3)
    flow = scenario.flow.model_copy(update={"enabled": False})
    btc = scenario.underlyings[0]
    assert btc.currency == "BTC"
    surface = btc.surface.model_copy(update={"history_vol_of_vol": history_vol_of_vol})
    btc = btc.model_copy(update={"surface": surface})
    return scenario.model_copy(
        update={"flow": flow, "tick_ms": 10_000, "underlyings": [btc, *scenario.underlyings[1:]]}
    )


def _values(work: Path) -> dict[str, Any]:
    values = daemon_config(work)
    values["daemon"]["evaluate_interval_s"] = 3_600.0  # evaluations are the test's
    return values


async def _decide(run: Running) -> tuple[HedgeDecision, UnderlyingRisk]:
    """`decide` once the book's index is the simulator's (the notifications of the last
    advance have arrived)."""
    engine: Any = run.sim.engine

    def caught_up() -> bool:
        book = run.daemon.accounts["sim"].book
        seen = book.index_price("BTC") if book is not None else math.nan
        return bool(abs(seen - engine.index_price("BTC")) < 1e-3)

    await wait_for(caught_up, 20.0, "the book to see the simulator's index", interval_s=0.02)
    return await decide(run)


async def _atm_options(sim: Simulator) -> None:
    """A short straddle-ish book two weeks out: gamma to weight the mark vol with."""
    engine: Any = sim.engine
    index = engine.index_price("BTC")
    later = sim.now_ms() + 14 * 86_400_000
    for kind in ("call", "put"):
        pool = [
            i
            for i in engine.catalog.active()
            if i.is_option and i.currency == "BTC" and i.option_type == kind
            and i.expiry_ms >= later
        ]  # fmt: skip
        best = min(pool, key=lambda i: (i.expiry_ms, abs(i.strike - index)))
        await admin_trade(sim, best.name, "sell", 5.0)


async def test_a_restarted_daemon_decides_first_with_the_vol_of_vol_it_had() -> None:
    async with simulator(SPEED, scenario=_scenario()) as sim:
        work = short_dir()
        await _atm_options(sim)
        first = await start_daemon(sim, _values(work), SPEED)
        try:
            await sim_admin(sim, "time/stepped?on=1")
            vols: list[float] = []
            # Two gaps apart (a quiet step between): jumps the bipower variation leaves out,
            # so the index's jump variance ratio (`hedging.jumps`) rises above 1 too.
            for pct in (4.0, 0.0, -6.0):
                _, risk = await _decide(first)
                vols.append(risk.vol)
                if pct:
                    await sim_admin(sim, f"market/gap?currency=BTC&pct={pct}")
                await sim_admin(sim, f"time/advance?ms={VOLVOL_SAMPLE_MS}")
            _, before = await _decide(first)
            vols.append(before.vol)
            assert len(set(vols)) > 1 and before.vol_of_vol_per_sqrt_year > 0.0
            # (Over the 28-day window's marks, the simulator's index history included: the
            # two gaps' squares are a smaller share of it than of the former 7 days'.)
            assert before.jump_var_ratio > 1.3
            assert before.jump_rate_per_year > 0.0  # the gaps, counted
            # The gaps' cubes: the -6 % one outweighs the +4 %: the jumps lean down.
            assert before.jump_skew < 0.0
        finally:
            assert await first.shutdown() == 0
        # The samples are in the journal, one per 10 minutes (the evaluations between are
        # not).
        now = sim.now_ms()
        store = JournalStore(work / "journal.sqlite", readonly=True)
        try:
            kept = store.volvol_samples("BTC", now - VOLVOL_WINDOW_MS, now)
        finally:
            store.close()
        # (The first at the start's time is the timer's at start-up, or the test's when the
        # timer's found the book incomplete.)
        assert [v for _, v in kept][1:] == vols[1:]
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(kept)]
        assert gaps[1:] == [VOLVOL_SAMPLE_MS] * 2
        # ... and that one may precede the stepped clock's first instant by the start-up's
        # milliseconds (the simulator's clock ran until the test stepped it).
        assert VOLVOL_SAMPLE_MS <= gaps[0] < VOLVOL_SAMPLE_MS + 60_000
        second = await start_daemon(sim, _values(work), SPEED)  # the clock has not moved
        try:
            _, after = await _decide(second)
            assert after.vol_of_vol_per_sqrt_year == before.vol_of_vol_per_sqrt_year
            # The index came back with the samples: the jumps' ratio is the one it had.
            assert after.jump_var_ratio == before.jump_var_ratio
            assert after.jump_skew == before.jump_skew
            assert after.jump_rate_per_year == before.jump_rate_per_year
            # And it goes on from there: the next sample is compared with the last stored.
            await sim_admin(sim, "market/gap?currency=BTC&pct=3")
            await sim_admin(sim, f"time/advance?ms={VOLVOL_SAMPLE_MS}")
            _, later = await _decide(second)
            assert later.vol_of_vol_per_sqrt_year > 0.0
        finally:
            assert await second.shutdown() == 0


async def test_a_first_start_seeds_the_vol_of_vol_from_the_venues_vol_index() -> None:
    """An empty journal: the window is filled from the simulator's DVOL history (hourly,
    `sim.vol_index`, its walk before the start at 80 % a year), fetched through ccxt."""
    async with simulator(SPEED, scenario=_scenario()) as sim:
        await _atm_options(sim)
        await sim_admin(sim, "time/stepped?on=1")  # the seed's cut is the test's `now`
        now = sim.now_ms()
        run = await start_daemon(sim, _values(short_dir()), SPEED)
        try:
            _, risk = await _decide(run)
        finally:
            assert await run.shutdown() == 0
        engine: Any = sim.engine
        hour = 3_600_000
        since = now - VOLVOL_WINDOW_MS
        times = range(since // hour * hour, now + 1, hour)  # the first, its predecessor
        dvol = [(t, round(engine.vol_index("BTC", t), 2) / 100.0) for t in times]
        assert len(dvol) in (721, 722) and len({v for _, v in dvol}) > 100
        expected = VolOfVolEstimator.seeded([], now, proxy=dvol).estimate(now)
        # The first live mark adds no change (not compared with the index: the joint).
        assert expected > 0.0
        assert risk.vol_of_vol_per_sqrt_year == pytest.approx(expected, rel=1e-12)


async def test_a_takeover_decides_first_with_the_vol_of_vol_the_leader_had(pg_url: str) -> None:
    """Two HA daemons on one PostgreSQL journal: the leader's samples are the new leader's
    seed (it read them from the shared database at its hedge loop's start)."""

    def values(node: str) -> dict[str, Any]:
        v = _values(short_dir())
        v["journal"] = {"url": pg_url}
        v["ha"] = {**HA, "node_id": node}
        return v

    def role(run: Running) -> NodeRole:
        assert run.daemon.ha is not None
        return run.daemon.ha.node.role

    async with simulator(SPEED, scenario=_scenario()) as sim:
        await _atm_options(sim)
        a = await start_daemon(sim, values("a"), SPEED)
        await wait_for(lambda: role(a) is NodeRole.ACTIVE, 10.0, "node a to lead")
        b = await start_daemon(sim, values("b"), SPEED)
        try:
            assert role(b) is NodeRole.STANDBY
            await sim_admin(sim, "time/stepped?on=1")
            for pct in (4.0, -6.0, 5.0):
                await _decide(a)
                await sim_admin(sim, f"market/gap?currency=BTC&pct={pct}")
                await sim_admin(sim, f"time/advance?ms={VOLVOL_SAMPLE_MS}")
            _, before = await _decide(a)
            assert before.vol_of_vol_per_sqrt_year > 0.0
            now = sim.now_ms()

            def stored() -> int:  # a's writes are queued: on the database before the handoff
                store = JournalStore(PostgresTarget(pg_url), readonly=True)
                try:
                    return len(store.volvol_samples("BTC", now - VOLVOL_SAMPLE_MS, now))
                finally:
                    store.close()

            await wait_for(lambda: stored() == 2, 10.0, "a's last sample on the database")
            code, out = await hedgerctl(a.daemon.config.control.socket_path, "handoff")
            assert code == 0, out
            await wait_for(lambda: role(b) is NodeRole.ACTIVE, 10.0, "b to take over")
            _, after = await _decide(b)
            assert after.vol_of_vol_per_sqrt_year == before.vol_of_vol_per_sqrt_year
        finally:
            assert await b.shutdown() == 0
            assert await a.shutdown() == 0
