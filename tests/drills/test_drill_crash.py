"""Short crash drill: `hedgerd run` SIGKILLed twice (at random moments, seeded) and restarted on
the same journal: no duplicate, no lost fill, the trading state survives each kill. The full
run is `scripts/crash_drill.py --restarts 50`."""

from __future__ import annotations

import pytest
from drill_support import load_script

from hedgerd.sim.wall_clock import FaketimeMissingError
from pinned_clock import TEST_START_MS

crash_drill = load_script("crash_drill")


async def test_short_crash_drill() -> None:
    try:
        r = await crash_drill.run_drill(restarts=2, seed=4, max_life_s=3.0, start_ms=TEST_START_MS)
    except FaketimeMissingError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")
    assert r["kills"] == 2
    assert r["duplicate_orders"] == 0, r
    assert r["lost_fills"] == 0, r
    assert r["double_fills"] == 0, r
    assert r["state_preserved"] == 2, r
    assert r["last_exit_code"] == 0, r


async def test_short_crash_drill_two_accounts() -> None:
    """Two accounts (Deribit and its OKX twin) in one daemon, killed twice: seed 25 halts
    every account before the first kill and one account only before the second; each
    account's state survives, and neither venue sees a duplicate or loses a fill."""
    try:
        r = await crash_drill.run_drill(
            restarts=2, seed=25, max_life_s=3.0, start_ms=TEST_START_MS, venues=("deribit", "okx")
        )
    except FaketimeMissingError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")
    assert r["accounts"] == ["sim", "okx"]
    assert r["kills_with_one_account_halted"] == 1, r
    assert r["duplicate_orders"] == 0, r
    assert r["lost_fills"] == 0, r
    assert r["double_fills"] == 0, r
    assert r["venues"]["okx"]["duplicate_orders"] == 0, r
    assert r["state_preserved"] == 2, r
    assert r["last_exit_code"] == 0, r
