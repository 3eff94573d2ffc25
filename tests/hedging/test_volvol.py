"""The marks' vol-of-vol estimator (`hedging.volvol`) and its weight in the band
(`kernel.vov_weight`, the hedgerd policy's `vov_ref`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.kernel import BandContext, band_for, vov_weight
from hedgerd.hedging.volvol import VolOfVolEstimator, VolOfVolPaths

DAY_MS = 86_400_000
YEAR_MS = 365.0 * DAY_MS
START_MS = 1_790_000_000_000  # any fixed instant: the estimator reads no clock
STEP_MS = 3_600_000

marks = st.lists(st.sampled_from([0.35, 0.6, 0.9, 0.61, 1.2]), min_size=1, max_size=120)


def test_constant_marks_give_exactly_zero() -> None:
    est = VolOfVolEstimator(START_MS)
    paths = VolOfVolPaths(STEP_MS)
    for i in range(200):
        est.observe(0.6, START_MS + i * STEP_MS)
        paths.observe(np.full(4, 0.6))
        assert est.estimate(START_MS + i * STEP_MS) == 0.0
        assert np.all(paths.estimate() == 0.0)


def test_one_change_over_the_span_then_forgotten() -> None:
    est = VolOfVolEstimator(START_MS, window_ms=3 * DAY_MS)
    est.observe(0.6, START_MS)
    est.observe(0.9, START_MS + 2 * DAY_MS)  # ln 1.5, seen at day 2
    d2 = math.log(1.5) ** 2
    assert est.estimate(START_MS + 2 * DAY_MS) == pytest.approx(math.sqrt(d2 / (2 / 365)))
    # The span is capped at the window (3 days), and the change leaves it after day 5.
    at = START_MS + 4 * DAY_MS
    assert est.estimate(at) == pytest.approx(math.sqrt(d2 * YEAR_MS / (3 * DAY_MS)))
    assert est.estimate(START_MS + 5 * DAY_MS) == 0.0


def test_bad_marks_are_skipped() -> None:
    est = VolOfVolEstimator(START_MS)
    for v in (0.6, math.nan, 0.0, -1.0, math.inf, 0.6):
        est.observe(v, START_MS + DAY_MS)
    assert est.estimate(START_MS + DAY_MS) == 0.0


@settings(max_examples=150, deadline=None)
@given(
    seq=marks,
    window_h=st.sampled_from([5, 24, 72]),
    step_ms=st.sampled_from([STEP_MS, 60_000, 240_000]),
)
def test_paths_form_is_the_online_estimator(seq: list[float], window_h: int, step_ms: int) -> None:
    """Non-negative, finite, and the backtest's running totals give the online sums (steps
    shorter than the 10-minute sample included)."""
    window_ms = window_h * 3_600_000
    est = VolOfVolEstimator(START_MS, window_ms=window_ms)
    paths = VolOfVolPaths(float(step_ms), window_ms=window_ms)
    for i, v in enumerate(seq):
        now = START_MS + i * step_ms
        est.observe(v, now)
        paths.observe(np.array([v, 0.6]))
        xi = est.estimate(now)
        got = paths.estimate()
        assert xi >= 0.0 and math.isfinite(xi)
        assert got[0] == pytest.approx(xi, rel=1e-9, abs=1e-9)
        assert got[1] == 0.0


def _ctx(xi: float, paths: int = 0) -> BandContext:
    """One decision's context (floats), or `paths` copies of it (arrays, as the backtest)."""
    fields = {
        "spot_usd": 100.0,
        "gamma_coin_per_usd": -0.002,
        "vanna_coin_per_vol": 0.3,
        "vol": 0.6,
        "tau_years": 20 / 365,
        "rate": 0.0,
        "lam": 0.0005,
        "options_delta_coin": -0.5,
        "gamma_ahead_coin_per_usd": 0.0018,
        "vol_of_vol_per_sqrt_year": xi,
    }
    if paths:
        return BandContext(**{k: np.full(paths, v) for k, v in fields.items()})
    return BandContext(**fields)


MONTH_Y = 30 / 365


@settings(max_examples=200, deadline=None)
@given(
    xi=st.floats(0.0, 100.0),
    ra=st.floats(1e-4, 100.0),
    ref=st.floats(0.01, 10.0),
    horizon=st.sampled_from([1 / 365, MONTH_Y]),
)
def test_weight_is_in_0_1_and_1_without_vol_of_vol(
    xi: float, ra: float, ref: float, horizon: float
) -> None:
    w = vov_weight(_ctx(xi), ra, ref, horizon)
    assert 0.0 < w <= 1.0
    assert vov_weight(_ctx(0.0), ra, ref, horizon) == 1.0
    assert np.all(vov_weight(_ctx(0.0, 3), ra, ref, horizon) == 1.0)
    # More risk aversion, less weight.
    assert vov_weight(_ctx(xi), 2.0 * ra, ref, horizon) <= w


def test_r_is_the_risk_aversion_times_the_vol_pnl_scale() -> None:
    """R = gamma max(-Gamma, 0) S^2 sigma^2 xi h^1.5: 0.5 x 0.002 x 100^2 x 0.36 x 2 x h^1.5."""
    r = 0.5 * 0.002 * 100.0**2 * 0.36 * 2.0 * MONTH_Y**1.5
    assert vov_weight(_ctx(2.0), 0.5, 0.3, MONTH_Y) == pytest.approx(1.0 / (1.0 + r / 0.3))


@settings(max_examples=100, deadline=None)
@given(xi=st.floats(0.0, 100.0), gamma=st.floats(0.0, 1.0), ra=st.floats(1e-4, 100.0))
def test_a_long_gamma_book_is_never_faded(xi: float, gamma: float, ra: float) -> None:
    """A long-gamma book is long vol: the refinements offset its vol P&L, so w = 1."""
    ctx = dataclasses.replace(_ctx(xi), gamma_coin_per_usd=gamma)
    assert vov_weight(ctx, ra, 0.3, MONTH_Y) == 1.0
    many = dataclasses.replace(_ctx(xi, 2), gamma_coin_per_usd=np.array([gamma, -0.002]))
    w = vov_weight(many, ra, 0.3, MONTH_Y)
    assert w[0] == 1.0 and w[1] == vov_weight(_ctx(xi), ra, 0.3, MONTH_Y)


@pytest.mark.parametrize("scope", ["both", "shift", "horizon", "all"])
def test_band_without_vol_of_vol_is_the_plain_band_bit_for_bit(scope: str) -> None:
    plain = HedgerdPolicy(risk_aversion_per_usd=0.5, vov_ref=0.0)
    weighed = HedgerdPolicy(risk_aversion_per_usd=0.5, vov_ref=0.3, vov_scope=scope)  # type: ignore[arg-type]
    for ctx in (_ctx(0.0), _ctx(0.0, 2)):
        a, b = band_for(plain, ctx), band_for(weighed, ctx)
        for x, y in ((a.centre, b.centre), (a.lower, b.lower), (a.upper, b.upper)):
            assert np.all(np.asarray(x) == np.asarray(y))


def test_vol_of_vol_fades_the_shift_the_horizon_term_and_the_averaged_gamma() -> None:
    pol = HedgerdPolicy(risk_aversion_per_usd=0.5, vov_ref=0.3, vov_scope="all")
    plain = band_for(pol, _ctx(0.0))
    faded = band_for(pol, _ctx(5.0))
    target = pol.target_delta_coin
    assert 0.0 < abs(faded.centre - target) < abs(plain.centre - target)
    # The horizon term widens the under-hedged side (short call: options delta < 0, lower);
    # the gamma term moves from the averaged gamma (0.0018) toward the gamma at spot (0.002).
    assert faded.upper > plain.upper
    assert faded.lower - faded.upper < plain.lower - plain.upper
