"""Short crash drill: `hedgerd run` SIGKILLed twice (at random moments, seeded) and restarted on
the same journal: no duplicate, no lost fill, the trading state survives each kill. The full
run is `scripts/crash_drill.py --restarts 50`."""

from __future__ import annotations

from drill_support import load_script

crash_drill = load_script("crash_drill")


async def test_short_crash_drill() -> None:
    r = await crash_drill.run_drill(restarts=2, seed=4, max_life_s=3.0)
    assert r["kills"] == 2
    assert r["duplicate_orders"] == 0, r
    assert r["lost_fills"] == 0, r
    assert r["double_fills"] == 0, r
    assert r["state_preserved"] == 2, r
    assert r["last_exit_code"] == 0, r
