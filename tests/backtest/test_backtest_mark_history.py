"""The estimators' pre-history in the backtest (`MarketSpec.mark_history`): each path starts
with the marks (the vol-of-vol's) and the index (the jumps') of the estimator's window behind
it, as a running desk (and the daemon, seeded at start) has them, drawn from its own random
stream."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.paths import PathGenerator
from hedgerd.backtest.runner import (
    PolicyRun,
    _greeks_vol,
    _jump_history,
    _vov_history,
    run_backtest,
)
from hedgerd.backtest.scenario import MarketSpec, Scenario, load_scenario
from hedgerd.hedging.jumps import JumpVariancePaths
from hedgerd.hedging.volvol import VolOfVolPaths

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
WINDOW_S = 2_592_000.0
YEAR_MS = 365.0 * 86_400_000.0


def _xi_at_start(mk: MarketSpec, n: int, seed: int) -> np.ndarray:
    """The estimate at t = 0 after the pre-history, as the runner feeds it."""
    gen = PathGenerator(mk, n, np.random.default_rng(seed))
    est = VolOfVolPaths(mk.dt_years * YEAR_MS, WINDOW_S * 1000.0)
    horizon = mk.steps * mk.dt_years
    _vov_history({WINDOW_S: est}, mk, gen, np.random.default_rng([seed, 2]), horizon)
    est.observe(_greeks_vol(mk, gen, gen.state.vol, horizon))
    out: np.ndarray = est.estimate()
    return out


REGIMES = MarketSpec(
    process="regimes",
    regime_vols=(0.6, 0.35, 0.9),
    regime_switch_per_year=24.0,
    horizon_days=3.0,
)


def test_the_history_is_deterministic_under_a_seed_and_moves_with_it() -> None:
    a = _xi_at_start(REGIMES, 200, 5)
    assert np.array_equal(a, _xi_at_start(REGIMES, 200, 5))
    assert not np.array_equal(a, _xi_at_start(REGIMES, 200, 6))


@pytest.mark.parametrize("greeks_vol", ["instantaneous", "expected"])
def test_a_switch_in_the_history_gives_vol_of_vol_at_the_start(greeks_vol: str) -> None:
    """About 1 - e^{-q W} of the paths (q = 24/year, W = 30 days: 0.861) saw a switch in
    their window before t = 0 and start with xi > 0, of the size of a regime jump (ln 0.9/0.6
    to ln 0.9/0.35 over a month: 1.4 to 3.3 per sqrt(year) for one switch). Marked at the
    expected vol, the jumps are damped (the mark averages the variance over the book's
    horizon, a month in the history: about a quarter of a regime jump at the least) and the
    marks also drift with the horizon (every path moves, by far less)."""
    mk = REGIMES.model_copy(update={"greeks_vol": greeks_vol})
    xi = _xi_at_start(mk, 2000, 11)
    one = math.sqrt(math.log(0.9 / 0.6) ** 2 * 365.0 / 30.0)
    moved = xi > 0.2 * one
    assert np.mean(moved) == pytest.approx(1.0 - math.exp(-24.0 * 30.0 / 365.0), abs=0.03)
    if greeks_vol == "instantaneous":
        assert np.min(xi[moved]) > 0.9 * one
        assert np.all(xi[~moved] == 0.0)  # no switch: the marks never changed
    else:
        assert np.all(xi[~moved] > 0.0) and np.all(xi[~moved] < 0.01 * one)


def test_heston_history_gives_vol_of_vol_at_the_start() -> None:
    """The variance drawn backward from v0 moves every path; ln(sigma) of a CIR variance
    diffuses at about xi_v / (2 sigma) per sqrt(year) (xi_v = 1, sigma = 0.6: 0.83)."""
    mk = MarketSpec(process="heston", heston_xi=1.0, horizon_days=3.0)
    xi = _xi_at_start(mk, 500, 3)
    assert np.all(xi > 0.0)
    assert float(np.median(xi)) == pytest.approx(1.0 / (2 * 0.6), rel=0.25)


def _runs(sc: Scenario) -> list[PolicyRun]:
    specs = builtin_policies(sc)
    hedgerd = expand(specs, ["hedgerd"])[9:10]  # a high risk aversion (88 g0)
    return expand(specs, ["ww"])[9:10] + hedgerd


def _history(sc: Scenario, on: bool) -> Scenario:
    m = sc.market.model_copy(update={"horizon_days": 3.0, "mark_history": on})
    opts = tuple(o.model_copy(update={"expiry_days": 3.0}) for o in sc.options)
    return sc.model_copy(update={"market": m, "options": opts})


@pytest.mark.parametrize("name", ["reference", "jumps"])
def test_constant_vol_scenarios_are_bit_for_bit_unchanged(name: str) -> None:
    """No vol moves: nothing is fed, every policy's run is the one without a history."""
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    (a_ww, a_h), a_opt = run_backtest(_history(sc, True), _runs(sc), paths=40, seed=3)
    (b_ww, b_h), b_opt = run_backtest(_history(sc, False), _runs(sc), paths=40, seed=3)
    assert np.array_equal(a_opt, b_opt)
    for a, b in ((a_ww, b_ww), (a_h, b_h)):
        assert np.array_equal(a.pnl_usd, b.pnl_usd) and np.array_equal(a.cost_usd, b.cost_usd)
        assert np.array_equal(a.trades, b.trades)


_JUMPS_ON = {"jump_shift_power": 1.0, "jump_noise_sd": 3.0, "jump_skew_weight": 1.0}


@pytest.mark.parametrize(
    ("name", "long", "knobs"),
    [
        ("regime-shift", False, {"vov_ref": 0.3}),  # the marks' history (vol-of-vol)
        ("jumps", True, _JUMPS_ON),  # the index's (the jump terms act on long gamma)
    ],
)
def test_the_paths_and_the_baselines_are_unchanged_by_the_history(
    name: str, long: bool, knobs: dict[str, float]
) -> None:
    """The histories draw from their own streams: the option book's P&L and a baseline's
    run are the same bit for bit; only the policy that reads the estimator moves."""
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    if long:
        opts = tuple(o.model_copy(update={"qty_coin": 1.0}) for o in sc.options)
        sc = sc.model_copy(update={"options": opts})
    runs = _runs(sc)
    runs = [runs[0], replace(runs[1], config=runs[1].config.model_copy(update=knobs))]
    (a_ww, a_h), a_opt = run_backtest(_history(sc, True), runs, paths=60, seed=3)
    (b_ww, b_h), b_opt = run_backtest(_history(sc, False), runs, paths=60, seed=3)
    assert np.array_equal(a_opt, b_opt)
    assert np.array_equal(a_ww.pnl_usd, b_ww.pnl_usd)
    assert np.array_equal(a_ww.cost_usd, b_ww.cost_usd)
    assert not np.array_equal(a_h.pnl_usd, b_h.pnl_usd)


def _jumps_at_start(mk: MarketSpec, n: int, seed: int, noise_sd: float) -> tuple[Any, Any, Any]:
    """The jump estimator's ratio, skew and rate at t = 0 after the pre-history, as the
    runner feeds it."""
    gen = PathGenerator(mk, n, np.random.default_rng(seed))
    est = JumpVariancePaths(mk.dt_years * YEAR_MS)
    horizon = mk.steps * mk.dt_years
    _jump_history(est, mk, gen, np.random.default_rng([seed, 3]), horizon)
    est.observe(gen.state.spot, _greeks_vol(mk, gen, gen.state.vol, horizon))
    return est.estimate(noise_sd)


def test_the_jump_history_fills_the_estimators_window_at_the_start() -> None:
    """With the window (28 days) of index behind each path the ratio starts where a running
    desk has it, not at 1 ramping in over the first day. 200 jumps a year of 0 +- 1.5 % at
    30 % vol give 1 + lambda E[J^2] / sigma^2 = 1.5 on average less bipower's share,
    symmetric (skew near 0 on average), and a rate counted below 200 (the jumps within 4 of
    the marks' sd of a 10-minute return, 0.52 %, are not counted: about 27 % of them); 4 a year
    of -5 % +- 10 % show on about 1 - e^{-4 x 28 / 365 x 0.89} = 24 % of the paths (those beyond
    the noise threshold; the others read no jump: 1 and 0 exactly), with the jumps' lean
    (negative, on average) and a rate of about a jump in 28 days."""
    many = MarketSpec(
        process="jumps", vol=0.3, jump_intensity_per_year=200.0, jump_mean=0.0,
        jump_std=0.015, horizon_days=3.0, step_minutes=5.0,
    )  # fmt: skip
    ratio, skew, rate = _jumps_at_start(many, 400, 7, 3.0)
    # Bipower counts each jump against its two neighbours, pi/2 |J| (|d| + |d'|): E|J| =
    # 0.015 sqrt(2/pi), E|d| = 0.3 sqrt(10 min / year) sqrt(2/pi), so it keeps 17 % of the
    # jumps' variance back (the estimator's known bias; the same live).
    e_abs_j = 0.015 * math.sqrt(2 / math.pi)
    e_abs_d = 0.3 * math.sqrt(600_000 / YEAR_MS) * math.sqrt(2 / math.pi)
    kept = 1.0 - math.pi * e_abs_j * e_abs_d / 0.015**2
    assert kept == pytest.approx(0.83, abs=0.01)
    assert float(np.mean(ratio)) == pytest.approx(1.0 + 0.5 * kept, abs=0.05)
    assert abs(float(np.mean(skew))) < 0.003
    beyond = math.erfc(4.0 * 0.3 * math.sqrt(600_000 / YEAR_MS) / 0.015 / math.sqrt(2.0))
    assert beyond == pytest.approx(0.73, abs=0.01)
    assert float(np.mean(rate)) == pytest.approx(200.0 * beyond, rel=0.1)
    rare = many.model_copy(
        update={"jump_intensity_per_year": 4.0, "jump_mean": -0.05, "jump_std": 0.1}
    )
    ratio, skew, rate = _jumps_at_start(rare, 4000, 7, 3.0)
    seen = ratio > 1.0
    # Found where the jump's square is beyond 3 sd of bipower's noise, 3 sqrt(theta / n) MV
    # over the window's n = 4,032 returns: |J| > 1.6 %, 89 % of these jumps.
    theta = math.pi**2 / 4 + math.pi - 5
    big = math.sqrt(3.0 * math.sqrt(theta / 4032) * 0.09 * 28 / 365)
    assert big == pytest.approx(0.016, abs=0.001)
    small = 0.5 * (
        math.erf((big + 0.05) / 0.1 / math.sqrt(2)) - math.erf((0.05 - big) / 0.1 / math.sqrt(2))
    )
    found = 1.0 - math.exp(-4.0 * 28 / 365 * (1.0 - small))
    assert found == pytest.approx(0.24, abs=0.01)
    assert float(np.mean(seen)) == pytest.approx(found, abs=0.015)
    assert np.all(skew[~seen] == 0.0) and np.all(rate[~seen] == 0.0)
    assert float(np.median(rate[seen])) == pytest.approx(365 / 28, rel=0.01)
    assert float(np.mean(skew[seen])) < 0.0
    calm = many.model_copy(update={"process": "gbm"})
    ratio, skew, _ = _jumps_at_start(calm, 400, 7, 3.0)
    assert float(np.mean(ratio == 1.0)) > 0.98 and float(np.mean(skew == 0.0)) > 0.98
