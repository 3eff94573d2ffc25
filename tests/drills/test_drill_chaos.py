"""Short chaos drill (a few simulated minutes under a dense fault schedule): no duplicate
order, no fill lost or counted twice. The full run is `scripts/chaos.py --hours 1`."""

from __future__ import annotations

import asyncio
import io
import json

from drill_support import load_script

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
    trace = chaos.Trace(trips=[(30_000, "halted", ("daily_loss",))])
    assert not chaos.judge_trips(faults, trace, 0)[0]["warranted"]


async def test_short_chaos_run_loses_and_doubles_nothing() -> None:
    r = await chaos.run_chaos(hours=0.05, seed=5, speed=30.0, evaluate_s=5.0, mean_gap_s=25.0)
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
