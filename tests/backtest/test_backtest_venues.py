"""The backtest over two venues (config/scenarios/two-venues.toml): per-venue volume in the
report, a venue that is down takes no order while it is, and the cross-venue default against
each venue alone (`--compare-venues`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedgerd.backtest import command
from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import render, stats
from hedgerd.backtest.runner import run_backtest
from hedgerd.backtest.scenario import Scenario, load_scenario
from hedgerd.backtest.venues import (
    BEST_OF,
    best_of,
    compare_venues,
    hedge_side,
    render_venues,
    single_venue,
    venue_names,
    venues_json,
)

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


def test_single_venue_keeps_only_that_venues_instruments_and_its_outage() -> None:
    sc = _short(2.0, 0.5, 6.0)
    assert venue_names(sc) == ["deribit", "okx"]
    okx = single_venue(sc, "okx")
    assert {i.venue for i in okx.instruments} == {"okx"}
    assert all(i.down_from_days == 0.5 and i.down_hours == 6.0 for i in okx.instruments)
    assert {i.name for i in single_venue(sc, "deribit").instruments} == {
        "DERIBIT-PERPETUAL",
        "DERIBIT-FUTURE-60D",
    }


def test_compare_venues_prices_the_default_against_the_cheapest_single_venue() -> None:
    sc = _short(1.0, 0.3, 6.0)
    # No std targets: the default's own frontier points are the targets.
    sc = sc.model_copy(update={"report": sc.report.model_copy(update={"std_targets": ()})})
    vc = compare_venues(sc, paths=20, seed=3)
    policies = {r.policy for r in vc.rows}
    assert policies == {
        "hedgerd",
        "timer",
        "hedgerd@deribit",
        "hedgerd@okx",
        "timer@deribit",
        "timer@okx",
        f"hedgerd@{BEST_OF}",
    }
    # A single-venue run trades on its venue only.
    assert all(set(r.venue_volume) == {"okx"} for r in vc.rows if r.policy.endswith("@okx"))
    assert vc.table, "the default's own frontier gives the std targets"
    for row in vc.table:
        for p in ("hedgerd", "timer"):
            best = row.best[p]
            reached = [c for v in vc.venues if (c := row.costs[f"{p}@{v}"]) is not None]
            if best is None:
                assert not reached
                continue
            assert best.cost == min(reached)
            base = row.costs["hedgerd"]
            assert base is not None and row.ratio[p] == pytest.approx(base / best.cost)
    assert any(row.ratio["timer"] is not None for row in vc.table)
    for row in vc.table:
        floor, own = row.costs[f"hedgerd@{BEST_OF}"], row.best["hedgerd"]
        if floor is None or own is None:
            assert row.bound is None
        else:
            assert row.bound == pytest.approx(floor / own.cost)
    text = render_venues(vc)
    assert "best single-venue timer" in text and "hedgerd@okx" in text
    assert "best_of_to_best_single_venue" in venues_json(vc)["matched_std"][0]
    assert venues_json(vc)["matched_std"][0]["ratio_to_best_single_venue"].keys() == {
        "hedgerd",
        "timer",
    }


def test_cli_compare_venues_refuses_a_one_venue_scenario_and_other_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    two = str(SCENARIOS / "two-venues.toml")
    one = str(SCENARIOS / "reference.toml")
    assert command.main(["backtest", "--scenario", one, "--compare-venues"]) == 2
    assert "needs instruments on two venues" in capsys.readouterr().err
    assert command.main(["backtest", "--scenario", two, "--compare-venues", "--policy", "ww"]) == 2
    assert "--compare-venues runs its own policies" in capsys.readouterr().err


def _carry_of_timer(move_later_weight: float, venues: tuple[str, str] = ("a", "b")) -> float:
    """Mean carry (USD) of a 10-minute timer hedging on OKX's two instruments, put on
    `venues`: buys are cheapest on the future (low basis), sells on the swap (they earn its
    high funding)."""
    sc = _short(2.0, None, 0.0)
    okx = [i for i in sc.instruments if i.venue == "okx"]
    ins = tuple(i.model_copy(update={"venue": v}) for i, v in zip(okx, venues, strict=True))
    cost = sc.cost.model_copy(update={"move_later_weight": move_later_weight})
    sc = sc.model_copy(update={"instruments": ins, "cost": cost})
    runs = expand(builtin_policies(sc), ["timer"])[:1]
    (r,), _ = run_backtest(sc, runs, paths=40, seed=3)
    return float(r.carry_usd.mean())


def test_across_venues_a_hedge_is_unwound_where_it_sits_not_built_into_a_spread() -> None:
    # Priced naively (every part of a trade grows a position and carries for the same short
    # time), every buy opens a long future and every sell a short swap: a spread that grows
    # with each trade and earns the funding difference (carry below 0), a carry trade rather
    # than a hedge. Two rules stop it, each alone: the cost of moving a position later on the
    # growing part, and the carry of the hedge's own side over the book's horizon (a sell that
    # reduces the long saves its carry to expiry; a short opened against it earns only to the
    # next rebalance). The long hedge of short calls pays its carry.
    assert _carry_of_timer(0.0) > 0.0
    assert _carry_of_timer(1.0) > 0.0
    # One rule: on one venue too (as live on one account).
    assert _carry_of_timer(1.0, ("a", "a")) > 0.0
    assert _carry_of_timer(0.0, ("a", "a")) > 0.0


def test_the_best_of_venue_takes_each_kinds_best_terms_for_the_hedges_side() -> None:
    sc = load_scenario(SCENARIOS / "two-venues.toml")
    assert hedge_side(sc) == 1  # short calls: the hedge is long
    best = {i.kind: i for i in best_of(sc).instruments}
    assert set(best) == {"perpetual", "future"}
    assert all(i.venue == BEST_OF and i.down_from_days is None for i in best.values())
    perp, fut = best["perpetual"], best["future"]
    # The swap's taker fee and depth with the Deribit perpetual's maker fee and funding.
    assert (perp.taker_fee, perp.maker_fee, perp.half_spread) == (0.0004, 0.0, 0.00005)
    assert (perp.level_size_coin, perp.level_step, perp.funding_8h) == (4.0, 0.0001, 0.00001)
    # Deribit's rebate and depth with OKX's spread and smaller basis.
    assert (fut.taker_fee, fut.maker_fee, fut.half_spread) == (0.0005, -0.0001, 0.0001)
    assert (fut.level_size_coin, fut.basis_annual, fut.expiry_days) == (1.0, 0.01, 60.0)
    # A short hedge takes the most carry (it earns it).
    calls = tuple(o.model_copy(update={"qty_coin": 20.0}) for o in sc.options)
    long_book = sc.model_copy(update={"options": calls})
    assert hedge_side(long_book) == -1
    short = {i.kind: i for i in best_of(long_book).instruments}
    assert short["perpetual"].funding_8h == 0.00003
    assert short["future"].basis_annual == 0.02


def test_the_best_of_carry_is_ranked_by_the_carry_the_runner_charges() -> None:
    # A perpetual's carry is its funding (per 8 h, 3 x 365 a year); its `basis_annual` is not
    # charged (the runner takes a basis on futures only), so it must not rank the perpetuals:
    # funding per 8 h plus a basis per year mixed the units, and the dearer swap won.
    sc = load_scenario(SCENARIOS / "two-venues.toml")
    ins = tuple(
        i.model_copy(update={"basis_annual": -0.01})
        if i.kind == "perpetual" and i.funding_8h == 0.00003
        else i
        for i in sc.instruments
    )
    sc = sc.model_copy(update={"instruments": ins})
    assert hedge_side(sc) == 1  # a long hedge: the least funding
    perp = next(i for i in best_of(sc).instruments if i.kind == "perpetual")
    assert perp.funding_8h == 0.00001
