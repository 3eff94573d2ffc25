"""Property-based tests (hypothesis) for the pricing invariants."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hedgerd.pricing import (
    Reason,
    black76,
    black_scholes,
    implied_vol_with_reason,
    pricing_reason,
)

MINUTE = 1.0 / (365.0 * 24 * 60)
EPS = float(np.finfo(np.float64).eps)

forwards = st.floats(1.0, 1e6)
moneyness = st.floats(-8.0, 8.0)  # ln(F/K) in standard deviations
taus = st.floats(MINUTE, 5.0)
vols = st.floats(0.05, 5.0)
discounts = st.floats(0.5, 1.1)
calls = st.booleans()

SETTINGS = settings(max_examples=150, deadline=None)


def strike_of(F: float, h: float, vol: float, tau: float) -> float:
    return F * math.exp(-h * vol * math.sqrt(tau))


@SETTINGS
@given(calls, forwards, moneyness, taus, vols, discounts)
def test_price_within_no_arbitrage_bounds(
    is_call: bool, F: float, h: float, tau: float, vol: float, D: float
) -> None:
    K = strike_of(F, h, vol, tau)
    p = float(black76(is_call, F, K, tau, vol, D).price)
    lower = D * max((F - K) if is_call else (K - F), 0.0)
    upper = D * (F if is_call else K)
    slack = 4 * EPS * (F + K) * D
    assert lower - slack <= p <= upper + slack


@SETTINGS
@given(forwards, moneyness, taus, vols, discounts)
def test_put_call_parity(F: float, h: float, tau: float, vol: float, D: float) -> None:
    K = strike_of(F, h, vol, tau)
    c = black76(True, F, K, tau, vol, D)
    p = black76(False, F, K, tau, vol, D)
    assert abs(float(c.price - p.price) - D * (F - K)) <= 8 * EPS * D * (F + K)
    assert abs(float(c.delta - p.delta) - D) <= 4 * EPS
    for name in ("gamma", "vega", "vanna", "volga"):
        a, b = float(getattr(c, name)), float(getattr(p, name))
        assert abs(a - b) <= 1e-12 * max(abs(a), abs(b)) + 1e-300


@SETTINGS
@given(calls, forwards, moneyness, taus, vols, discounts)
def test_delta_bounds_and_convexity(
    is_call: bool, F: float, h: float, tau: float, vol: float, D: float
) -> None:
    K = strike_of(F, h, vol, tau)
    g = black76(is_call, F, K, tau, vol, D)
    if is_call:
        assert 0.0 <= float(g.delta) <= D
    else:
        assert -D <= float(g.delta) <= 0.0
    assert float(g.gamma) >= 0.0
    assert float(g.vega) >= 0.0


@SETTINGS
@given(calls, forwards, st.floats(-5.0, 5.0), taus, vols, discounts, st.floats(1e-3, 0.5))
def test_price_increases_with_vol(
    is_call: bool, F: float, h: float, tau: float, vol: float, D: float, bump: float
) -> None:
    K = strike_of(F, h, vol, tau)
    lo = float(black76(is_call, F, K, tau, vol, D).price)
    hi = float(black76(is_call, F, K, tau, vol * (1 + bump), D).price)
    assert hi >= lo
    # strictly, wherever the time value is well above rounding
    intrinsic = D * max((F - K) if is_call else (K - F), 0.0)
    if lo - intrinsic > 1e-9 * (F + K) * D:
        assert hi > lo


@SETTINGS
@given(calls, forwards, moneyness, taus, vols, discounts, st.floats(1e-3, 1e3))
def test_homogeneous_in_forward_and_strike(
    is_call: bool, F: float, h: float, tau: float, vol: float, D: float, lam: float
) -> None:
    K = strike_of(F, h, vol, tau)
    a = black76(is_call, F, K, tau, vol, D)
    b = black76(is_call, lam * F, lam * K, tau, vol, D)
    # rounding lam*F and lam*K moves ln(F/K) by ~eps, which moves these relatively by
    # ~eps (1 + |h|) / (vol sqrt(tau)) (the problem's own conditioning)
    tol = 4e-12 + 8 * EPS * (1 + abs(h)) / (vol * math.sqrt(tau))
    assert math.isclose(float(b.price), lam * float(a.price), rel_tol=tol, abs_tol=1e-300)
    assert math.isclose(float(b.delta), float(a.delta), rel_tol=tol, abs_tol=1e-300)
    assert math.isclose(float(b.gamma), float(a.gamma) / lam, rel_tol=tol, abs_tol=1e-300)
    assert math.isclose(float(b.vega), lam * float(a.vega), rel_tol=tol, abs_tol=1e-300)


@SETTINGS
@given(calls, forwards, st.floats(-6.0, 6.0), taus, vols, discounts)
@example(True, 1.0, 3.5, 3.5, 5.0, 1.0)  # price 4 ulp under F: at the upper bound
def test_implied_vol_round_trip(
    is_call: bool, F: float, h: float, tau: float, vol: float, D: float
) -> None:
    K = strike_of(F, h, vol, tau)
    g = black76(is_call, F, K, tau, vol, D)
    iv, reason = implied_vol_with_reason(is_call, g.price, F, K, tau, D)
    intrinsic = max((F - K) if is_call else (K - F), 0.0)
    cond = EPS * (float(g.price) / D + intrinsic) / (float(g.vega) / D * vol)
    if cond <= 1e-10:
        assert reason == Reason.OK
        assert abs(float(iv) - vol) <= 1e-8 * vol
    elif reason == Reason.OK:
        assert abs(float(iv) - vol) <= max(1e-8, 10 * cond) * vol
    else:
        # No information in the price: said as such, or, where the price is within rounding
        # of the no-arbitrage upper bound (deep ITM call, vol sqrt(tau) ~ 9), as being at it.
        upper = D * (F if is_call else K)
        at_upper = float(g.price) >= upper * (1.0 - 16 * EPS)
        allowed = {Reason.NO_TIME_VALUE_INFO} | ({Reason.ABOVE_UPPER_BOUND} if at_upper else set())
        assert Reason(int(reason)) in allowed and np.isnan(iv)


@SETTINGS
@given(
    calls,
    st.floats(100.0, 1e5),
    st.floats(-4.0, 4.0),
    st.floats(1.0 / 365, 3.0),
    st.floats(0.1, 2.0),
    st.floats(-0.05, 0.15),
    st.floats(-0.05, 0.1),
)
def test_black_scholes_is_black76_on_the_forward(
    is_call: bool, S: float, h: float, tau: float, vol: float, r: float, q: float
) -> None:
    K = strike_of(S, h, vol, tau)
    bs = black_scholes(is_call, S, K, tau, vol, r, q)
    F = S * math.exp((r - q) * tau)
    b76 = black76(is_call, F, K, tau, vol, math.exp(-r * tau))
    assert math.isclose(float(bs.price), float(b76.price), rel_tol=1e-13, abs_tol=1e-300)
    carry = F / S
    assert math.isclose(float(bs.delta), float(b76.delta) * carry, rel_tol=1e-13, abs_tol=1e-300)
    assert math.isclose(float(bs.vega), float(b76.vega), rel_tol=1e-13, abs_tol=1e-300)


bad_values = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, -1e-300])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), bad_values), min_size=0, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_bad_input_is_nan_exactly_where_the_reason_says(
    corruptions: list[tuple[int, float]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    cols = [
        rng.uniform(10, 1e5, n),  # forward
        rng.uniform(10, 1e5, n),  # strike
        rng.uniform(MINUTE, 2.0, n),  # tau
        rng.uniform(0.1, 2.0, n),  # vol
        rng.uniform(0.9, 1.0, n),  # discount
    ]
    for k, (col, value) in enumerate(corruptions):
        cols[col][(k * 5 + seed) % n] = value
    call = rng.random(n) < 0.5
    g = black76(call, *cols)
    reason = pricing_reason(*cols)
    bad = reason == Reason.BAD_INPUT
    for arr in g.arrays():
        assert np.all(np.isnan(arr[bad]))
        assert np.all(np.isfinite(arr[~bad]))
    # tau == 0 with vol == 0 is expiry (finite), other zero/negative tau or vol is bad
    expired = reason == Reason.EXPIRED
    assert np.all(cols[2][expired] == 0)
    iv, iv_reason = implied_vol_with_reason(call, g.price, cols[0], cols[1], cols[2], cols[4])
    # a NaN price (bad pricing input) is bad input to the solver too
    assert np.all(iv_reason[bad] == Reason.BAD_INPUT)
    assert np.all(np.isnan(iv[iv_reason != Reason.OK]))
