"""The gamma averaged over the spot range ahead (`kernel.horizon_gamma`, issue 19).

Invariants on random books: at a zero horizon it is the gamma at spot; the signed average
(computed as the gamma at tau + h) equals the dollar-gamma-weighted average over the
lognormal spot h ahead, taken by brute-force quadrature; the magnitude average is at least
the magnitude of the signed one and equals it for a book whose gamma has one sign; both are
linear (or absolutely homogeneous) in the quantities and homogeneous of degree -1 in the
price scale. And the hedgerd band takes that gamma in its gamma term only when asked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.kernel import (
    BandContext,
    OptionArrays,
    band_for,
    gamma_ahead,
    gamma_ahead_key,
    horizon_gamma,
    ww_halfwidth,
)
from hedgerd.pricing.black import black_scholes

DAY = 1.0 / 365.0

options = st.lists(
    st.tuples(
        st.booleans(),  # call
        st.floats(0.7, 1.3),  # strike / spot
        st.floats(1.0, 60.0),  # days to expiry
        st.floats(-5.0, 5.0),  # quantity, coin
    ),
    min_size=1,
    max_size=4,
)


def _arrays(opts: list[tuple[bool, float, float, float]], spot: float) -> tuple[np.ndarray, ...]:
    is_call = np.array([[o[0] for o in opts]])
    strike = np.array([[o[1] * spot for o in opts]])
    tau = np.array([[o[2] * DAY for o in opts]])
    qty = np.array([[o[3] for o in opts]])
    return is_call, strike, tau, qty


def _gamma_at(
    is_call: np.ndarray,
    strike: np.ndarray,
    tau: np.ndarray,
    qty: np.ndarray,
    spot: np.ndarray,
    vol: float,
) -> np.ndarray:
    g = black_scholes(is_call, spot[..., None], strike, tau, vol).gamma
    return np.sum(qty * g, axis=-1)


@settings(max_examples=100, deadline=None)
@given(options, st.floats(0.2, 1.5))
def test_zero_horizon_is_the_gamma_at_spot(opts: list, vol: float) -> None:
    spot = np.array([60_000.0])
    ic, k, t, q = _arrays(opts, 60_000.0)
    at_spot = _gamma_at(ic, k, t, q, spot, vol)
    for mode in ("signed", "abs"):
        got = horizon_gamma(ic, k, t, q, spot, np.array([vol]), 0.0, mode)
        want = at_spot if mode == "signed" else np.abs(at_spot)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-18)


@settings(max_examples=60, deadline=None)
@given(options, st.floats(0.2, 1.5), st.floats(0.0, 2.0))
def test_signed_average_is_the_lognormal_average_of_dollar_gamma(
    opts: list, vol: float, days: float
) -> None:
    # Brute force: 200-node Gauss–Hermite over S' = S exp(vol sqrt(h) Z - vol^2 h / 2),
    # weighted by (S'/S)^2; the kernel's closed form is the gamma at tau + h.
    spot = 60_000.0
    ic, k, t, q = _arrays(opts, spot)
    # quadrature resolves the gamma peak: the spread ahead at most ~3x the option's own
    assume(days <= 3.0 * float(t.min()) / DAY)
    h = days * DAY
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / math.sqrt(2.0 * math.pi)
    sd = vol * math.sqrt(h)
    ratio = np.exp(sd * z - 0.5 * sd * sd)
    g = _gamma_at(ic, k, t, q, spot * ratio, vol)
    brute = float(np.sum(w * g * ratio**2))
    got = float(horizon_gamma(ic, k, t, q, np.array([spot]), np.array([vol]), h, "signed")[0])
    scale = float(np.sum(np.abs(q))) / (spot * vol * math.sqrt(float(t.min())))
    assert got == pytest.approx(brute, rel=1e-6, abs=1e-6 * scale)


@settings(max_examples=60, deadline=None)
@given(options, st.floats(0.2, 1.5), st.floats(0.05, 2.0))
# A far out-of-the-money book (gamma ~1e-13 of its ATM scale): the quadrature's relative error
# there is large, its absolute error negligible (found in a run of several test folders).
@example(
    opts=[(False, 1.0, 1.0, 2.3867679086225665e-203), (False, 1.125, 1.0, -1.0)],
    vol=0.25,
    days=1.0,
)
def test_magnitude_average_bounds_the_signed_one(opts: list, vol: float, days: float) -> None:
    spot = np.array([60_000.0])
    ic, k, t, q = _arrays(opts, 60_000.0)
    h = days * DAY
    signed = float(horizon_gamma(ic, k, t, q, spot, np.array([vol]), h, "signed")[0])
    mag = float(horizon_gamma(ic, k, t, q, spot, np.array([vol]), h, "abs")[0])
    # 7-node quadrature against the closed form: a small relative error, and an absolute one
    # small against the book's ATM gamma scale (coin/USD)
    tol = 1e-9 * float(np.sum(np.abs(q))) / (60_000.0 * vol * math.sqrt(float(t.min())))
    assert mag >= abs(signed) * (1.0 - 0.03) - tol
    same_sign = np.all(q >= 0.0) or np.all(q <= 0.0)
    if same_sign and days <= float(t.min()) / DAY:
        assert mag == pytest.approx(abs(signed), rel=0.03, abs=tol)


@settings(max_examples=60, deadline=None)
@given(
    options, st.floats(0.2, 1.5), st.floats(0.0, 2.0), st.floats(-3.0, 3.0), st.floats(0.01, 100.0)
)
def test_homogeneity(opts: list, vol: float, days: float, c: float, scale: float) -> None:
    ic, k, t, q = _arrays(opts, 100.0)
    h = days * DAY
    v = np.array([vol])
    for mode in ("signed", "abs"):
        base = horizon_gamma(ic, k, t, q, np.array([100.0]), v, h, mode)
        scaled_q = horizon_gamma(ic, k, t, c * q, np.array([100.0]), v, h, mode)
        want = c * base if mode == "signed" else abs(c) * base
        assert scaled_q == pytest.approx(want, rel=1e-9, abs=1e-15)
        scaled_px = horizon_gamma(ic, k * scale, t, q, np.array([100.0 * scale]), v, h, mode)
        assert scaled_px == pytest.approx(base / scale, rel=1e-9, abs=1e-15)


def test_expired_options_count_for_nothing() -> None:
    ic = np.array([[True, True]])
    k = np.array([[100.0, 100.0]])
    t = np.array([[0.0, 7 * DAY]])
    q = np.array([[-1.0, 0.0]])
    for mode in ("signed", "abs"):
        assert horizon_gamma(ic, k, t, q, np.array([100.0]), np.array([0.6]), DAY, mode) == 0.0


def test_the_band_takes_the_averaged_gamma_only_when_asked() -> None:
    opts = OptionArrays(
        np.array([False, True, True]),
        np.array([95.0, 105.0, 100.0]),
        np.array([DAY, DAY, 24 * DAY]),
        np.array([-1.0, -1.0, 1.0]),
    )
    spot, vol = 95.0, 0.6
    policy = HedgerdPolicy(risk_aversion_per_usd=0.01, h0_weight=0.0, gamma_horizon_s=86_400.0)
    key = gamma_ahead_key(policy)
    assert key == (86_400.0, "abs", 10_800.0)  # the default's shortest time to expiry: 3 h
    assert gamma_ahead_key(policy.model_copy(update={"gamma_horizon_s": 0.0})) is None
    at_spot = gamma_ahead((0.0, "signed"), opts, spot, vol)
    ahead = gamma_ahead(key, opts, spot, vol)
    assert isinstance(ahead, float) and ahead == pytest.approx(
        float(
            horizon_gamma(
                opts.is_call,
                opts.strike_usd,
                opts.tau_years,
                opts.qty_coin,
                np.array([spot]),
                np.array([vol]),
                DAY,
                "abs",
            )[0]
        )
    )
    ctx = BandContext(
        spot_usd=spot,
        gamma_coin_per_usd=at_spot,
        vanna_coin_per_vol=0.0,
        vol=vol,
        tau_years=DAY,
        rate=0.0,
        lam=5e-4,
        options_delta_coin=0.0,
    )
    plain = band_for(policy, ctx)  # not computed: the gamma at spot
    assert plain.upper == pytest.approx(ww_halfwidth(ctx, 0.01))
    ctx.gamma_ahead_coin_per_usd = ahead
    averaged = band_for(policy, ctx)
    assert averaged.upper == pytest.approx(ww_halfwidth(ctx, 0.01, gamma=ahead))
    # at the short put's strike a day before expiry the gamma ahead is smaller: narrower band
    assert averaged.upper < plain.upper
    # a policy without a horizon ignores it
    off = policy.model_copy(update={"gamma_horizon_s": 0.0})
    assert band_for(off, ctx).upper == pytest.approx(plain.upper)
    # the backtest's array path gives the same number
    arr = gamma_ahead(
        key,
        OptionArrays(
            opts.is_call[None], opts.strike_usd[None], opts.tau_years[None], opts.qty_coin[None]
        ),
        np.array([spot]),
        np.array([vol]),
    )
    assert float(arr[0]) == pytest.approx(ahead, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.booleans(),
    st.floats(-1.0, 1.0),  # log(strike / spot) in standard deviations to expiry
    st.floats(7.0, 60.0),  # days to expiry
    st.floats(0.3, 1.0),  # vol
)
def test_the_default_horizon_leaves_a_single_option_a_week_out_at_its_gamma(
    call: bool, sds: float, days: float, vol: float
) -> None:
    """The default averages over 3 hours (issue 19, fourth round): the mixed-gamma books need
    the smoothing near the short strikes' expiry, but a one-option book with a week or more
    left and its strike within a standard deviation of spot keeps within 2 % of its gamma at
    spot, so its band is the Whalley–Wilmott one (12 hours moved it 3.4 % at the money)."""
    policy = HedgerdPolicy()
    key = gamma_ahead_key(policy)
    assert key == (10_800.0, "abs", 10_800.0)
    spot = 100.0
    strike = spot * math.exp(sds * vol * math.sqrt(days * DAY))
    opts = OptionArrays(
        np.array([call]), np.array([strike]), np.array([days * DAY]), np.array([-1.0])
    )
    at_spot = abs(gamma_ahead((0.0, "signed"), opts, spot, vol))
    assert gamma_ahead(key, opts, spot, vol) == pytest.approx(at_spot, rel=0.02)
    old = gamma_ahead((43_200.0, "abs"), opts, spot, vol)
    if abs(sds) < 0.1 and days < 8.0:
        assert old != pytest.approx(at_spot, rel=0.02)


def test_gamma_min_tau_counts_an_expiring_strike_as_that_far_from_expiry() -> None:
    """`gamma_min_tau_s`: the averaged gamma takes each live option's time to expiry as at least
    that long. An option nearer expiry is priced at the floor (its gamma peak at the strike is
    capped), options further out and expired ones are untouched, and 0 is the plain key."""
    three_h = 10_800.0
    near = 3_600.0 / (365.0 * 86_400.0)  # one hour to expiry
    opts = OptionArrays(
        np.array([False, True, True, True]),
        np.array([95.0, 105.0, 100.0, 100.0]),
        np.array([near, near, 13 * DAY, 0.0]),
        np.array([-1.0, -1.0, 1.0, -1.0]),
    )
    policy = HedgerdPolicy(gamma_horizon_s=three_h, gamma_min_tau_s=0.0)
    plain_key = gamma_ahead_key(policy)
    assert plain_key == (three_h, "abs")
    key = gamma_ahead_key(policy.model_copy(update={"gamma_min_tau_s": three_h}))
    assert key == (three_h, "abs", three_h)
    floored = OptionArrays(
        opts.is_call,
        opts.strike_usd,
        np.array([three_h / (365.0 * 86_400.0), three_h / (365.0 * 86_400.0), 13 * DAY, 0.0]),
        opts.qty_coin,
    )
    for spot in (95.0, 100.0, 105.0):
        got = gamma_ahead(key, opts, spot, 0.8)
        assert got == gamma_ahead(plain_key, floored, spot, 0.8)
    # at a short strike an hour before expiry the peak is what the floor caps
    assert gamma_ahead(key, opts, 95.0, 0.8) < gamma_ahead(plain_key, opts, 95.0, 0.8)
    # a book with nothing nearer expiry than the floor: bit for bit the plain average
    far = OptionArrays(
        opts.is_call[2:3], opts.strike_usd[2:3], opts.tau_years[2:3], opts.qty_coin[2:3]
    )
    assert gamma_ahead(key, far, 97.0, 0.8) == gamma_ahead(plain_key, far, 97.0, 0.8)
    with pytest.raises(ValueError):
        HedgerdPolicy(gamma_min_tau_s=-1.0)
