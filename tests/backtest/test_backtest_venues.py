"""The backtest over two venues (config/scenarios/two-venues.toml): per-venue volume in the
report, and a venue that is down takes no order while it is."""

from __future__ import annotations

from pathlib import Path

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import render, stats
from hedgerd.backtest.runner import run_backtest
from hedgerd.backtest.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def _short(days: float, okx_down_from: float | None, okx_down_hours: float) -> Scenario:
    """two-venues.toml over `days`, OKX down from `okx_down_from` (days) for the hours."""
    sc = load_scenario(SCENARIOS / "two-venues.toml")
    m = sc.market.model_copy(update={"horizon_days": days})
    opts = tuple(o.model_copy(update={"expiry_days": days}) for o in sc.options)
    ins = tuple(
        i.model_copy(update={"down_from_days": okx_down_from, "down_hours": okx_down_hours})
        if i.venue == "okx"
        else i
        for i in sc.instruments
    )
    return sc.model_copy(update={"market": m, "options": opts, "instruments": ins})


def _volume(sc: Scenario, policy: str) -> dict[str, float]:
    runs = expand(builtin_policies(sc), [policy])[:1]
    (r,), _ = run_backtest(sc, runs, paths=40, seed=3)
    venues = [i.venue or i.name for i in sc.instruments]
    row = stats(r, 1.0, venues)
    assert "volume per venue" in render(sc.name, "USD", [row], [], policy, [])
    return row.venue_volume


def test_both_venues_trade_and_the_report_gives_each_ones_volume() -> None:
    vol = _volume(_short(2.0, None, 0.0), "timer")
    assert set(vol) == {"deribit", "okx"} and all(v > 0 for v in vol.values())


def test_a_venue_that_is_down_gets_no_order_and_the_other_takes_the_flow() -> None:
    up = _volume(_short(2.0, None, 0.0), "timer")
    down = _volume(_short(2.0, 0.0, 48.0), "timer")  # OKX down the whole run
    assert down["okx"] == 0.0
    assert down["deribit"] > up["deribit"]
    # Down for half the run only: OKX trades, less than when always up.
    half = _volume(_short(2.0, 0.0, 24.0), "timer")
    assert 0.0 < half["okx"] < up["okx"]


def test_the_scenario_file_loads_with_two_venues_and_an_outage() -> None:
    sc = load_scenario(SCENARIOS / "two-venues.toml")
    assert {i.venue for i in sc.instruments} == {"deribit", "okx"}
    down = [i for i in sc.instruments if i.down_from_days is not None]
    assert down and all(i.venue == "okx" and i.down_hours == 1.0 for i in down)
