"""Implied volatility: round trips wherever the price carries information, reasons where it
does not, and the documented bad-input policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_black76 import MINUTE, random_grid

from hedgerd.pricing import Reason, black76, implied_vol, implied_vol_with_reason

EPS = float(np.finfo(np.float64).eps)


def vol_condition(grid: dict[str, np.ndarray], price: np.ndarray, vega: np.ndarray) -> np.ndarray:
    """Relative vol error that one rounding of the price (and of the intrinsic value) causes:
    eps * (price + intrinsic) / (vol * vega), undiscounted. Where this exceeds ~1e-8 the
    price cannot pin the vol to 1e-8 whatever the solver."""
    F, K, D = grid["F"], grid["K"], grid["D"]
    intrinsic = np.where(grid["is_call"], np.maximum(F - K, 0), np.maximum(K - F, 0))
    with np.errstate(all="ignore"):
        cond = EPS * (price / D + intrinsic) / (vega / D * grid["vol"])
    return np.where(np.isfinite(cond), cond, np.inf)


@pytest.mark.parametrize(("h_max", "seed"), [(38.0, 11), (6.0, 12)])
def test_round_trip_on_broad_grid(h_max: float, seed: int) -> None:
    grid = random_grid(20000, seed=seed, h_max=h_max)
    g = black76(grid["is_call"], grid["F"], grid["K"], grid["tau"], grid["vol"], grid["D"])
    iv, reason = implied_vol_with_reason(
        grid["is_call"], g.price, grid["F"], grid["K"], grid["tau"], grid["D"]
    )
    cond = vol_condition(grid, g.price, g.vega)
    ok = reason == Reason.OK
    err = np.abs(iv - grid["vol"]) / grid["vol"]
    # Where the price pins the vol (rounding moves it by < 1e-10), the round trip is 1e-8.
    informative = cond <= 1e-10
    # (time values below 1e-280, absolute or per sqrt(F K), are float64 underflow territory
    # and documented as no information)
    undiscounted = g.price / grid["D"]
    representable = (undiscounted >= 1e-270) & (
        undiscounted / np.sqrt(grid["F"] * grid["K"]) >= 1e-270
    )
    assert np.all(ok[informative & representable])
    assert np.all(err[ok & informative] <= 1e-8), np.max(err[ok & informative])
    # Elsewhere a returned vol is as good as the price allows.
    assert np.all(err[ok] <= np.maximum(1e-8, 10 * cond[ok]))
    # Only "no information" (or the float64 upper bound) is refused, and only where the
    # price really cannot pin the vol.
    assert set(np.unique(reason)) <= {Reason.OK, Reason.NO_TIME_VALUE_INFO}
    no_info = reason == Reason.NO_TIME_VALUE_INFO
    assert np.all(cond[no_info & representable] >= 1e-4)
    assert np.all(np.isnan(iv[~ok]))
    if h_max <= 6:  # a realistic book: everything solves
        assert ok.mean() > 0.998


def test_round_trip_one_minute_expiry_across_strikes() -> None:
    vol = np.array([0.2, 0.5, 1.0, 2.0])[:, None]
    h = np.linspace(-6, 6, 49)[None, :]
    F = 60_000.0
    K = F * np.exp(-h * vol * math.sqrt(MINUTE))
    for is_call in (True, False):
        g = black76(is_call, F, K, MINUTE, vol)
        iv, reason = implied_vol_with_reason(is_call, g.price, F, K, MINUTE)
        grid = {
            "F": np.full(K.shape, F),
            "K": K,
            "D": np.ones(K.shape),
            "vol": np.broadcast_to(vol, K.shape),
            "is_call": np.full(K.shape, is_call),
        }
        cond = vol_condition(grid, g.price, g.vega)
        ok = reason == Reason.OK
        assert ok[cond <= 1e-10].all()
        np.testing.assert_allclose(iv[cond <= 1e-10], grid["vol"][cond <= 1e-10], rtol=1e-8)


def test_round_trip_extreme_total_variance() -> None:
    # vol * sqrt(tau) up to ~20: prices within a few ulps of the forward for calls
    vol = np.array([0.05, 0.5, 3.0, 8.0, 10.0])
    tau = np.array([5.0])[:, None] * np.ones((1, 5))
    g = black76(True, 100.0, 120.0, tau, vol)
    iv, reason = implied_vol_with_reason(True, g.price, 100.0, 120.0, tau)
    ok = reason == Reason.OK
    assert ok[0, :3].all()
    np.testing.assert_allclose(iv[ok], np.broadcast_to(vol, tau.shape)[ok], rtol=1e-8)
    # where the call is worth the forward to float precision, say so instead of guessing
    assert np.all((reason == Reason.OK) | (reason == Reason.ABOVE_UPPER_BOUND))


def test_reasons_for_prices_without_information_or_out_of_bounds() -> None:
    F, K, T, D = 100.0, 90.0, 0.25, 0.98
    call_intrinsic = D * (F - K)
    cases = [
        # (is_call, price, F, K, tau, D, expected reason)
        (True, 5.0, F, 110.0, T, D, Reason.OK),
        (True, 0.0, F, 110.0, T, D, Reason.NO_TIME_VALUE_INFO),  # OTM worth nothing
        (True, call_intrinsic, F, K, T, D, Reason.NO_TIME_VALUE_INFO),  # = intrinsic
        (True, call_intrinsic * (1 + 2 * EPS), F, K, T, D, Reason.NO_TIME_VALUE_INFO),
        (True, call_intrinsic * (1 - 1e-9), F, K, T, D, Reason.BELOW_INTRINSIC),
        (False, D * (110.0 - F) - 0.01, F, 110.0, T, D, Reason.BELOW_INTRINSIC),
        (True, D * F * 1.0001, F, K, T, D, Reason.ABOVE_UPPER_BOUND),
        (True, D * F, F, K, T, D, Reason.ABOVE_UPPER_BOUND),  # at the bound: infinite vol
        (False, D * 110.0 * 1.01, F, 110.0, T, D, Reason.ABOVE_UPPER_BOUND),
        (True, 5.0, F, K, 0.0, D, Reason.EXPIRED),
        (True, np.nan, F, K, T, D, Reason.BAD_INPUT),
        (True, -1.0, F, K, T, D, Reason.BAD_INPUT),
        (True, 5.0, 0.0, K, T, D, Reason.BAD_INPUT),
        (True, 5.0, -F, K, T, D, Reason.BAD_INPUT),
        (True, 5.0, F, 0.0, T, D, Reason.BAD_INPUT),
        (True, 5.0, F, K, -T, D, Reason.BAD_INPUT),
        (True, 5.0, F, K, np.inf, D, Reason.BAD_INPUT),
        (True, 5.0, F, K, T, 0.0, Reason.BAD_INPUT),
        (True, 5.0, F, K, T, np.nan, Reason.BAD_INPUT),
        (True, np.inf, F, K, T, D, Reason.BAD_INPUT),
    ]
    cols = list(zip(*cases, strict=True))
    iv, reason = implied_vol_with_reason(*(np.array(c) for c in cols[:6]))
    expected = np.array(cols[6], dtype=np.int8)
    np.testing.assert_array_equal(reason, expected)
    assert np.isfinite(iv[0]) and iv[0] > 0
    assert np.all(np.isnan(iv[1:]))
    assert reason.dtype == np.int8
    # the scalar path (one quote at a time) classifies identically
    for case in cases:
        iv1, reason1 = implied_vol_with_reason(*case[:6])
        assert reason1.shape == () and reason1 == case[6], case
        assert np.isnan(iv1) == (case[6] != Reason.OK)


@pytest.mark.parametrize(("h_max", "seed"), [(38.0, 13), (6.0, 14)])
def test_scalar_path_matches_vectorised_path(h_max: float, seed: int) -> None:
    grid = random_grid(1500, seed=seed, h_max=h_max)
    g = black76(grid["is_call"], grid["F"], grid["K"], grid["tau"], grid["vol"], grid["D"])
    keys = ("is_call", "F", "K", "tau", "D")
    iv, reason = implied_vol_with_reason(
        grid["is_call"], g.price, grid["F"], grid["K"], grid["tau"], grid["D"]
    )
    for i in range(len(iv)):
        call, F, K, tau, D = (grid[k][i].item() for k in keys)
        iv1, reason1 = implied_vol_with_reason(call, float(g.price[i]), F, K, tau, D)
        assert reason1 == reason[i]
        if reason[i] == Reason.OK:
            assert abs(float(iv1) - iv[i]) <= 1e-10 * iv[i]
        else:
            assert np.isnan(iv1)


def test_implied_vol_scalar_and_broadcast() -> None:
    p = black76(True, 100.0, 110.0, 0.5, 0.6).price
    iv = implied_vol(True, p, 100.0, 110.0, 0.5)
    assert iv.shape == () and abs(float(iv) - 0.6) < 1e-12
    strikes = np.array([80.0, 100.0, 120.0])
    prices = black76(np.array([[True], [False]]), 100.0, strikes, 0.5, 0.6, 0.99).price
    iv2 = implied_vol(np.array([[True], [False]]), prices, 100.0, strikes, 0.5, 0.99)
    assert iv2.shape == (2, 3)
    np.testing.assert_allclose(iv2, 0.6, rtol=1e-10)


def test_round_trip_from_exact_reference_prices() -> None:
    # invert prices from the independent 60-digit reference, not from our own black76
    from _pricing_reference import exact_black76

    grid = random_grid(300, seed=15, h_max=12.0)
    keys = ("is_call", "F", "K", "tau", "vol", "D")
    exact = [exact_black76(*(grid[k][i].item() for k in keys)) for i in range(300)]
    price = np.array([e["price"] for e in exact])
    vega = np.array([e["vega"] for e in exact])
    iv, reason = implied_vol_with_reason(
        grid["is_call"], price, grid["F"], grid["K"], grid["tau"], grid["D"]
    )
    cond = vol_condition(grid, price, vega)
    informative = cond <= 1e-10
    assert informative.sum() > 200
    assert np.all(reason[informative] == Reason.OK)
    err = np.abs(iv - grid["vol"]) / grid["vol"]
    assert np.all(err[informative] <= 1e-8), np.max(err[informative])


def test_extreme_inputs_never_raise_and_both_paths_agree() -> None:
    import itertools
    import warnings

    vals = [5e-324, 1e-300, 1.0, 1e300, 1.7e308]
    taus = [5e-324, 1e-10, 0.5, 1e300]
    vols = [1e-300, 0.5, 1e300]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning leaks out either
        for F, K, T, V in itertools.product(vals, vals, taus, vols):
            for call in (True, False):
                one = black76(call, F, K, T, V)
                vec = black76(np.array([call]), np.array([F]), K, T, V)
                for a, b in zip(one.arrays(), vec.arrays(), strict=True):
                    assert np.isfinite(a) == np.isfinite(b[0])
                iv1, r1 = implied_vol_with_reason(call, one.price, F, K, T)
                ivv, rv = implied_vol_with_reason(np.array([call]), vec.price, F, K, T)
                assert r1 == rv[0], (call, F, K, T, V)
                assert np.isnan(iv1) == np.isnan(ivv[0])
