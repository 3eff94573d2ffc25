"""Short chaos drill (a few simulated minutes under a dense fault schedule): no duplicate
order, no fill lost or counted twice. The full run is `scripts/chaos.py --hours 1`."""

from __future__ import annotations

import asyncio
import io
import json
from types import SimpleNamespace
from typing import Any

from drill_support import load_script

from hedgerd.config import HedgerdConfig, VenueSettings
from hedgerd.sim.command import running_simulator
from hedgerd.venues.deribit.names import parse_instrument_name
from pinned_clock import TEST_START_MS

chaos = load_script("chaos")


def test_schedule_is_seeded_and_covers_the_run() -> None:
    a = chaos.schedule(2.0, 11)
    assert a == chaos.schedule(2.0, 11)
    assert a != chaos.schedule(2.0, 12)
    assert all(60.0 < t < 2 * 3600 for t, _, _ in a)
    assert len({spec["kind"] for _, _, spec in a}) >= 5


def test_trip_is_warranted_only_near_a_matching_fault() -> None:
    faults = [chaos.Injected("freeze_market_data", 10_000, 40_000, {})]
    trace = chaos.Trace(
        trips=[(30_000, "halted", ("stale_data",)), (900_000, "halted", ("stale_data",))]
    )
    judged = chaos.judge_trips(faults, trace, 0)
    assert [t["warranted"] for t in judged] == [True, False]
    # At 30 times real time the daemon's wall-clock checks (30 wall s) span 900 simulated s.
    judged = chaos.judge_trips(faults, trace, 0, speed=30.0)
    assert [t["warranted"] for t in judged] == [True, True]
    trace = chaos.Trace(trips=[(30_000, "halted", ("daily_loss",))])
    assert not chaos.judge_trips(faults, trace, 0)[0]["warranted"]


def test_trip_the_simulators_books_bear_out_is_warranted_without_a_fault() -> None:
    trace = chaos.Trace(trips=[(30_000, "halted", ("daily_loss",))])
    trace.real[(30_000, "daily_loss")] = chaos.BORNE_OUT_WHY["daily_loss"]
    (judged,) = chaos.judge_trips([], trace, 0)
    assert judged["warranted"] and judged["faults"] == ["hedge loss (the simulator's own ledger)"]


async def test_simulators_ledger_bears_out_a_hedge_loss_and_empty_funds() -> None:
    """A 10 BTC perpetual hedge bought, then the index 10 % down: about 0.1 x 10 coin x the
    index of loss on the simulator's own ledger, well beyond a 1,000 USD limit and short of
    a 10 M one; the same account with a 1,000 BTC short perpetual has no funds left."""
    async with running_simulator(host="127.0.0.1", port=0, seed=5, speed=1.0) as sim:
        engine: Any = sim.engine
        index = engine.index_price("BTC")
        engine.book_trade("mm", "BTC-PERPETUAL", "buy", round(10 * index, -1))
        engine.price_gap("BTC", -10.0)
        instruments = {"BTC-PERPETUAL": parse_instrument_name("BTC-PERPETUAL")}

        def daemon(limit_usd: float) -> Any:
            risk = {"daily_loss": {"max_daily_loss_usd": limit_usd}}
            config = HedgerdConfig(venues={"sim": VenueSettings()}, risk=risk)
            venue = SimpleNamespace(instruments=lambda: instruments)
            return SimpleNamespace(config=config, venue=venue)

        assert chaos.daily_loss_is_real(daemon(1_000.0), sim)
        assert not chaos.daily_loss_is_real(daemon(10_000_000.0), sim)
        assert not chaos.funds_are_real(daemon(1_000.0), sim)
        engine.book_trade("mm", "BTC-PERPETUAL", "sell", round(1_000 * index, -1))
        engine.price_gap("BTC", 50.0)
        assert chaos.funds_are_real(daemon(1_000.0), sim)


async def test_short_chaos_run_loses_and_doubles_nothing() -> None:
    r = await chaos.run_chaos(
        hours=0.05, seed=5, speed=30.0, evaluate_s=5.0, mean_gap_s=25.0, start_ms=TEST_START_MS
    )
    why = json.dumps({k: v for k, v in r.items() if k != "kill_switch_trips"})
    assert r["faults"] >= 2
    assert r["evaluations"] > 0
    assert r["duplicate_orders"] == 0, why
    # Fills the streams missed count as lost unless the reconciliation journals them.
    assert r["lost_fills"] == 0, why
    assert r["double_fills"] == 0, why
    assert r["journal_fills"] + r["lost_fills"] == r["sim_trades"], why
    assert r["sim_internal_errors"] == 0
    assert not r["wall_limit_hit"]
    assert r["tick_ms"] == 1000 and r["max_market_lag_s"] >= 0
    for key in (
        "faults",
        "orders",
        "duplicate_orders",
        "lost_fills",
        "double_fills",
        "time_outside_band",
    ):
        assert key in r


async def test_task_dump_names_every_task_and_where_it_waits() -> None:
    gate = asyncio.Event()

    async def stuck_somewhere() -> None:
        await gate.wait()

    task = asyncio.get_running_loop().create_task(stuck_somewhere(), name="stuck-part")
    await asyncio.sleep(0)
    out = io.StringIO()
    text = chaos.dump_tasks(out)
    gate.set()
    await task
    assert text in out.getvalue()
    assert "task stuck-part" in text
    assert "in stuck_somewhere" in text and "await gate.wait()" in text
