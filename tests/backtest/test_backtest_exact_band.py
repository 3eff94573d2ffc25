"""The exact DP band (`exact_band.solve`): known limits on tiny grids, and the backtest family.

- Zero cost: no band, the hedge is the variance-minimising delta at every node.
- Small cost: the band's half-width grows like lambda^(1/3) and matches Whalley–Wilmott once
  the discrete-monitoring overshoot (0.5826 x the delta's move per step, the Broadie–Glasserman–
  Kou continuity correction) is taken off.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hedgerd.backtest.exact_band import Criterion, StaticOption, solve, solve_regimes
from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.runner import PolicyRun, RunResult, run_backtest
from hedgerd.backtest.scenario import ScenarioError, SweepSpec, load_scenario
from hedgerd.pricing.black import black_scholes

SHORT_CALL = (StaticOption(True, 100.0, 30.0 / 365.0, -1.0),)
MINUTE_Y = 1.0 / 525600.0
ROOT = Path(__file__).resolve().parents[2]


def _atm_halfwidth(lam: float, steps: int = 240) -> tuple[float, float]:
    """(DP half-width, centre - delta) at t = 0, S = K (coin)."""
    band = solve(
        SHORT_CALL, 100.0, 0.6, MINUTE_Y, steps, lam, 1.0, nh=801, h_range=(0.3, 0.7), n_sigma=4.0
    )
    i = band.x.size // 2
    delta = float(black_scholes(True, 100.0, 100.0, 30.0 / 365.0, 0.6).delta)
    lo, hi = float(band.h_lo[0, i]), float(band.h_hi[0, i])
    return 0.5 * (hi - lo), 0.5 * (hi + lo) - delta


@pytest.mark.parametrize("criterion", ["exp_utility", "mean_variance"])
def test_zero_cost_band_collapses_to_the_delta(criterion: Criterion) -> None:
    band = solve(SHORT_CALL, 100.0, 0.6, 10 * MINUTE_Y, 30, 0.0, 1.0, nh=401, criterion=criterion)
    assert np.array_equal(band.h_lo, band.h_hi)
    t = np.arange(band.steps) * band.dt_years
    s = np.exp(band.x)
    delta = black_scholes(True, s[None, :], 100.0, 30.0 / 365.0 - t[:, None], 0.6).delta
    # Without cost the best hedge of a 10-minute step is the delta (to the h grid's step),
    # at every node up to the grid's edges.
    assert np.max(np.abs(band.h_lo - delta)) < 2e-3


def test_band_grows_as_cube_root_of_cost_like_whalley_wilmott() -> None:
    g = black_scholes(True, 100.0, 100.0, 30.0 / 365.0, 0.6)
    gamma = float(g.gamma)
    overshoot = 0.5826 * gamma * 100.0 * 0.6 * math.sqrt(MINUTE_Y)
    widths = {}
    for lam in (1e-5, 8e-5):
        h, shift = _atm_halfwidth(lam)
        ww = (1.5 * lam * 100.0 * gamma**2) ** (1.0 / 3.0)
        assert h / (ww - overshoot) == pytest.approx(1.0, abs=0.12), (lam, h, ww)
        assert abs(shift) < 0.2 * h
        widths[lam] = h
    assert widths[8e-5] / widths[1e-5] == pytest.approx(2.0, abs=0.3)


def _one_day_reference(exact: str, gamma: float) -> tuple[list[PolicyRun], list[RunResult]]:
    """The reference book shortened to one day, run with the `exact` family named and
    Whalley–Wilmott, both at risk aversion `gamma` (1/USD), on 400 common paths."""
    sc = load_scenario(ROOT / "config" / "scenarios" / "reference.toml")
    m = sc.market.model_copy(update={"horizon_days": 1.0})
    opts = tuple(o.model_copy(update={"expiry_days": 1.0}) for o in sc.options)
    sc = sc.model_copy(update={"market": m, "options": opts})
    sweep = SweepSpec(param="risk_aversion_per_usd", values=(gamma,))
    specs = builtin_policies(sc)
    specs = {name: specs[name].model_copy(update={"sweep": sweep}) for name in (exact, "ww")}
    runs = expand(specs, [exact, "ww"])
    results, _ = run_backtest(sc, runs, paths=400, seed=3)
    return runs, results


def test_exact_band_beats_whalley_wilmott_on_its_own_objective() -> None:
    """At the same risk aversion the DP band maximises the exponential utility of the P&L: on
    common paths its certainty-equivalent loss is no worse than the Whalley–Wilmott band's."""
    gamma = 0.1  # 1/USD: bands of a few hundredths of a coin
    _, results = _one_day_reference("exact", gamma)
    # Certainty-equivalent loss (USD): (1/gamma) log E exp(-gamma P&L).
    loss = [float(np.log(np.mean(np.exp(-gamma * r.pnl_usd))) / gamma) for r in results]
    assert all(r.trades.mean() > 5 and np.all(np.isfinite(r.pnl_usd)) for r in results)
    assert loss[0] <= loss[1], loss


def test_mean_variance_exact_band_beats_whalley_wilmott_on_its_own_objective() -> None:
    """`exact_mv` minimises mean cost + (gamma/2) variance of the P&L: on common paths it is no
    worse on that objective than the Whalley–Wilmott band at the same risk aversion, and its
    runs carry the criterion through."""
    gamma = 0.1
    runs, results = _one_day_reference("exact_mv", gamma)
    assert runs[0].exact_criterion == "mean_variance"
    obj = [float(-np.mean(r.pnl_usd) + 0.5 * gamma * np.var(r.pnl_usd)) for r in results]
    assert all(r.trades.mean() > 5 for r in results)
    assert obj[0] <= obj[1], obj


def test_regime_band_with_one_regime_is_the_constant_vol_band() -> None:
    """`solve_regimes` values the book by its own induction instead of Black-Scholes; with one
    regime it must find the mean-variance band of `solve` (to the grid's precision)."""
    one_day = (StaticOption(True, 100.0, 1.0 / 365.0, -1.0),)
    a = solve(one_day, 100.0, 0.6, 10 * MINUTE_Y, 144, 5e-4, 1.0, criterion="mean_variance")
    b = solve_regimes(one_day, 100.0, (0.6,), 0.0, 10 * MINUTE_Y, 144, 5e-4, 1.0)
    spots = np.array([90.0, 97.0, 100.0, 103.0, 110.0])
    for step in (0, 72, 130):
        lo_a, hi_a = a.edges(step, spots)
        lo_b, hi_b = b.edges(step, spots, np.zeros(spots.size, dtype=np.intp))
        assert lo_b == pytest.approx(lo_a, abs=5e-3) and hi_b == pytest.approx(hi_a, abs=5e-3)


def test_regime_band_is_wider_in_the_calm_regime() -> None:
    """Knowing the regime, the hedger tolerates more delta when the vol is low (each coin of
    error costs sigma^2 less variance) and less when it is high."""
    five_days = (StaticOption(True, 100.0, 5.0 / 365.0, -1.0),)
    band = solve_regimes(five_days, 100.0, (0.6, 0.35, 0.9), 24.0, 10 * MINUTE_Y, 720, 5e-4, 1.0)
    lo, hi = band.edges(0, np.full(3, 100.0), np.arange(3))
    width = hi - lo
    assert width[1] > width[0] > width[2] > 0.0


def test_exact_family_refuses_a_book_it_cannot_solve() -> None:
    sc = load_scenario(ROOT / "config" / "scenarios" / "option-flow.toml")
    runs = expand(builtin_policies(sc), ["exact"])[:1]
    with pytest.raises(ScenarioError, match="static option book"):
        run_backtest(sc, runs, paths=4, seed=1)
