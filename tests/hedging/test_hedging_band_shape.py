"""The hedgerd band's shape: the horizon term on the under-hedged side only (issue 19).

Invariants of `kernel.band_for` for the default policy, checked on random books: the band
mirrors with the sign of the options' delta, the over-hedged side is the gamma term alone,
the horizon term never takes the hedge past zero, both sides grow with the cost, and the
scalar path (live controller) equals the array path (backtest).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.kernel import (
    BandContext,
    OptionArrays,
    band_for,
    book_gamma_coherence,
    gamma_coherence,
    long_cap_factor,
    modified_delta_shift,
    vov_weight,
    ww_halfwidth,
    zak_h0,
)

SPOT_USD = 60_000.0

books = st.fixed_dictionaries(
    {
        "gamma": st.floats(-5e-4, 5e-4),
        "vanna": st.floats(-2.0, 2.0),
        "vol": st.floats(0.2, 1.5),
        "tau": st.floats(1e-4, 0.5),
        "lam": st.floats(1e-5, 3e-3),
        "delta": st.floats(-5.0, 5.0).filter(lambda d: abs(d) > 1e-9),
        "ra": st.floats(1e-6, 1e-2),
    }
)


def _ctx(b: dict[str, float], xi: float = 0.0, **over: float) -> BandContext:
    """`b`'s book (`over` replacing its figures), the marks' vol-of-vol `xi` (1/sqrt(year))."""
    v = {**b, **over}
    return BandContext(
        spot_usd=SPOT_USD,
        gamma_coin_per_usd=v["gamma"],
        vanna_coin_per_vol=v["vanna"],
        vol=v["vol"],
        tau_years=v["tau"],
        rate=0.0,
        lam=v["lam"],
        options_delta_coin=v["delta"],
        vol_of_vol_per_sqrt_year=xi,
    )


@settings(max_examples=200, deadline=None)
@given(books)
def test_band_mirrors_with_the_sign_of_the_options_delta(b: dict[str, float]) -> None:
    p = HedgerdPolicy(risk_aversion_per_usd=b["ra"], k_prefactor=0.0)
    pos = band_for(p, _ctx(b, delta=abs(b["delta"])))
    neg = band_for(p, _ctx(b, delta=-abs(b["delta"])))
    assert pos.lower == pytest.approx(neg.upper, rel=1e-12)
    assert pos.upper == pytest.approx(neg.lower, rel=1e-12)
    # options long delta (hedge short): the under-hedged side is above the centre
    assert pos.upper >= pos.lower


@settings(max_examples=200, deadline=None)
@given(books)
def test_horizon_term_only_on_the_under_hedged_side_and_at_most_to_no_hedge(
    b: dict[str, float],
) -> None:
    p = HedgerdPolicy(risk_aversion_per_usd=b["ra"], k_prefactor=0.0)
    ctx = _ctx(b)
    band = band_for(p, ctx)
    over, under = (band.upper, band.lower) if b["delta"] < 0 else (band.lower, band.upper)
    gamma_term = ww_halfwidth(ctx, b["ra"])
    assert over == pytest.approx(gamma_term, rel=1e-12, abs=1e-15)
    extra = under - over
    h0 = p.h0_weight * zak_h0(ctx, b["ra"], p.h0_cap_coin)
    assert extra == pytest.approx(min(h0, abs(b["delta"])), rel=1e-9, abs=1e-12)
    assert -1e-12 <= extra <= abs(b["delta"]) + 1e-12


@settings(max_examples=200, deadline=None)
@given(books, st.floats(1.01, 10.0), st.sampled_from(["both", "under"]))
def test_both_sides_grow_with_the_cost(b: dict[str, float], k: float, side: str) -> None:
    p = HedgerdPolicy(risk_aversion_per_usd=b["ra"], k_prefactor=0.0, horizon_side=side)
    cheap = band_for(p, _ctx(b))
    dear = band_for(p, _ctx(b, lam=b["lam"] * k))
    assert dear.lower >= cheap.lower * (1 - 1e-12)
    assert dear.upper >= cheap.upper * (1 - 1e-12)


@settings(max_examples=100, deadline=None)
@given(books)
def test_symmetric_when_the_options_delta_is_unknown_or_side_is_both(
    b: dict[str, float],
) -> None:
    p = HedgerdPolicy(risk_aversion_per_usd=b["ra"], k_prefactor=0.0)
    unknown = band_for(p, _ctx(b, delta=0.0))
    assert unknown.lower == unknown.upper
    both = band_for(p.model_copy(update={"horizon_side": "both"}), _ctx(b))
    assert both.lower == both.upper
    # Zakamouline's symmetric band: gamma term plus horizon term on each side
    assert both.lower == pytest.approx(unknown.lower, rel=1e-12)


def test_scalar_path_equals_array_path() -> None:
    rng = np.random.default_rng(19)
    n = 64
    gamma = rng.uniform(-5e-4, 5e-4, n)
    delta = rng.uniform(-3.0, 3.0, n)
    delta[:4] = 0.0  # unknown options delta: the symmetric fallback
    tau = rng.uniform(1e-4, 0.2, n)
    p = HedgerdPolicy(risk_aversion_per_usd=1e-4)
    arr = band_for(
        p,
        BandContext(SPOT_USD, gamma, 0.1 * delta, 0.6, tau, 0.0, 5e-4, 0.0, delta),
    )
    for i in range(n):
        one = band_for(
            p,
            BandContext(
                SPOT_USD,
                float(gamma[i]),
                float(0.1 * delta[i]),
                0.6,
                float(tau[i]),
                0.0,
                5e-4,
                0.0,
                float(delta[i]),
            ),
        )
        assert one.centre == pytest.approx(arr.centre[i], rel=1e-12, abs=1e-15)
        assert one.lower == pytest.approx(arr.lower[i], rel=1e-12, abs=1e-15)
        assert one.upper == pytest.approx(arr.upper[i], rel=1e-12, abs=1e-15)


def test_near_expiry_the_band_runs_from_no_hedge_to_beyond_the_full_hedge() -> None:
    """Short 1 call, in the money an hour before expiry: options delta -1 (hedge +1). The
    horizon term is large (its cap lifted); it opens the band down to no hedge (net -1) and
    not above."""
    p = HedgerdPolicy(risk_aversion_per_usd=1e-5, k_prefactor=0.0, h0_cap_coin=5.0)
    ctx = BandContext(SPOT_USD, -1e-7, 0.0, 0.6, 1 / (365 * 24), 0.0, 5e-4, 0.0, -1.0)
    band = band_for(p, ctx)
    assert band.centre - band.lower == pytest.approx(-1.0 - ww_halfwidth(ctx, 1e-5))
    assert band.upper == pytest.approx(ww_halfwidth(ctx, 1e-5))
    assert band.upper < 0.05


@settings(max_examples=300, deadline=None)
@given(books, st.sampled_from([0.25, 0.5, 1.0, 3.0]), st.sampled_from([0.0, 0.3]))
def test_shift_cap_never_grows_the_shift_and_off_is_the_plain_band(
    b: dict[str, float], c: float, vov_ref: float
) -> None:
    """`shift_cap_hw`: the capped centre shift is never larger than the uncapped one, is at
    most c times the gamma term, and moves nothing else; 0 (off) is today's band bit for bit."""
    ctx = _ctx(b, 2.0)
    # The plain cap (`shift_cap_vov_ref` 0: the long books' under vol-of-vol is its own test).
    knobs = {"risk_aversion_per_usd": b["ra"], "vov_ref": vov_ref, "shift_cap_vov_ref": 0.0}
    plain = band_for(HedgerdPolicy(**knobs, shift_cap_hw=0.0), ctx)
    # Off: the uncapped modified-vol shift (weighed by the vol-of-vol), bit for bit.
    want = modified_delta_shift(ctx, b["ra"], 4.76)
    if vov_ref > 0.0:
        want = want * vov_weight(ctx, b["ra"], vov_ref, 2_592_000.0 / (365.0 * 86_400.0))
    assert plain.centre == 0.0 - want
    capped = band_for(HedgerdPolicy(**knobs, shift_cap_hw=c), ctx)
    assert (capped.lower, capped.upper) == (plain.lower, plain.upper)
    shift, shift_c = -plain.centre, -capped.centre  # target 0: centre = -shift
    assert abs(shift_c) <= abs(shift)
    assert shift_c * shift >= 0.0  # never flips the side
    h = ww_halfwidth(ctx, b["ra"], 2.0 / 3.0, None)
    assert abs(shift_c) <= c * abs(h) * (1 + 1e-12)
    if abs(shift) <= c * abs(h):
        assert shift_c == shift


class _GeneralPath(HedgerdPolicy):
    """The hedgerd policy as `band_for`'s general path sees it (the scalar branch takes the
    class itself only)."""


@settings(max_examples=300, deadline=None)
@given(books, st.sampled_from([0.05, 0.3, 2.0]), st.sampled_from([0.0, 0.5, 3.0]))
@example(  # a long book whose shift the plain cap clips and the widened one does not
    {
        "gamma": 2e-5,
        "vanna": 1.5,
        "vol": 0.6,
        "tau": 0.05,
        "lam": 5e-4,
        "delta": 0.5,
        "ra": 5e-3,
    },
    0.3,
    3.0,
)
def test_long_cap_under_vol_of_vol_only_widens_a_long_books_cap(
    b: dict[str, float], ref_c: float, xi: float
) -> None:
    """`shift_cap_vov_ref`: a long-gamma book's cap is c H (1 + R / ref), R the vol P&L scale
    of its long gamma; a short book or constant marks keep the plain cap bit for bit; the
    shift is never larger than the uncapped one nor flipped, and the half-widths never move."""
    ctx = _ctx(b, xi)
    knobs = {"risk_aversion_per_usd": b["ra"], "vov_ref": 0.3, "shift_cap_hw": 0.25}
    plain = band_for(HedgerdPolicy(**knobs, shift_cap_vov_ref=0.0), ctx)
    policy = HedgerdPolicy(**knobs, shift_cap_vov_ref=ref_c)
    wide = band_for(policy, ctx)
    # The general path (the backtest's) on the same floats: the same band, bit for bit.
    assert band_for(_GeneralPath(**knobs, shift_cap_vov_ref=ref_c), ctx) == wide
    free = band_for(HedgerdPolicy(**{**knobs, "shift_cap_hw": 0.0}), ctx)
    assert (wide.lower, wide.upper) == (plain.lower, plain.upper)
    factor = long_cap_factor(ctx, b["ra"], ref_c, policy.vov_horizon_s / (365.0 * 86_400.0))
    if b["gamma"] <= 0.0 or xi == 0.0:
        assert factor == 1.0
        assert wide == plain
        return
    assert factor >= 1.0  # > 1 unless R underflows against 1
    shift, shift_p, shift_f = -wide.centre, -plain.centre, -free.centre
    assert abs(shift_p) <= abs(shift) <= abs(shift_f)
    assert shift * shift_f >= 0.0
    h = ww_halfwidth(ctx, b["ra"], 2.0 / 3.0, None)
    assert abs(shift) <= 0.25 * abs(h) * factor * (1 + 1e-12)
    if abs(shift_f) <= 0.25 * abs(h) * factor:
        assert shift == shift_f


def test_long_cap_factor_grows_with_the_vol_of_vol_and_the_long_gamma() -> None:
    """1 + R / ref: R = gamma x Gamma S^2 sigma^2 x xi x h^1.5, linear in each."""
    base = dict(
        spot_usd=SPOT_USD,
        gamma_coin_per_usd=2e-5,
        vanna_coin_per_vol=0.5,
        vol=0.6,
        tau_years=0.1,
        rate=0.0,
        lam=5e-4,
        options_delta_coin=0.5,
    )
    h = 30.0 / 365.0
    f1 = long_cap_factor(BandContext(**base, vol_of_vol_per_sqrt_year=1.0), 1e-4, 0.3, h)
    f2 = long_cap_factor(BandContext(**base, vol_of_vol_per_sqrt_year=2.0), 1e-4, 0.3, h)
    r1 = 1e-4 * 2e-5 * SPOT_USD**2 * 0.36 * 1.0 * h**1.5
    assert f1 == pytest.approx(1.0 + r1 / 0.3, rel=1e-12)
    assert f2 - 1.0 == pytest.approx(2.0 * (f1 - 1.0), rel=1e-12)
    short = {**base, "gamma_coin_per_usd": -2e-5}
    assert long_cap_factor(BandContext(**short, vol_of_vol_per_sqrt_year=2.0), 1e-4, 0.3, h) == 1.0


@settings(max_examples=300, deadline=None)
@given(
    books,
    st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from([0.0, 0.25]),
    st.floats(0.0, 1.0),
)
def test_shift_coherence_never_grows_nor_flips_the_shift_and_off_is_the_plain_band(
    b: dict[str, float], p: float, cap: float, coherence: float
) -> None:
    """`shift_coherence`: on a book of mixed gamma (coherence c = |net| / gross < 1) the
    centre shift is scaled by c^p: never larger, never of the other sign, nothing else moves.
    Off (p = 0), the coherence unknown (None), or a book of one sign (c = 1, every single
    option): the plain band bit for bit."""
    knobs = {"risk_aversion_per_usd": b["ra"], "shift_cap_hw": cap}

    def ctx(c: float | None) -> BandContext:
        return BandContext(
            SPOT_USD, b["gamma"], b["vanna"], b["vol"], b["tau"], 0.0, b["lam"], 0.0,
            b["delta"], gamma_coherence=c,
        )  # fmt: skip

    plain = band_for(HedgerdPolicy(**knobs, shift_coherence=0.0), ctx(coherence))
    for policy, c in (
        (HedgerdPolicy(**knobs, shift_coherence=p), ctx(None)),
        (HedgerdPolicy(**knobs, shift_coherence=p), ctx(1.0)),
    ):
        same = band_for(policy, c)
        assert (same.centre, same.lower, same.upper) == (plain.centre, plain.lower, plain.upper)
    mixed = band_for(HedgerdPolicy(**knobs, shift_coherence=p), ctx(coherence))
    assert (mixed.lower, mixed.upper) == (plain.lower, plain.upper)
    shift, shift_m = -plain.centre, -mixed.centre  # target 0: centre = -shift
    assert abs(shift_m) <= abs(shift)
    assert shift_m * shift >= 0.0  # never flips the side
    if cap == 0.0:
        assert shift_m == pytest.approx(shift * coherence**p, rel=1e-12, abs=1e-300)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-5e-3, 5e-3), st.floats(-10.0, 10.0)), min_size=1, max_size=6))
def test_gamma_coherence_is_one_for_a_book_of_one_sign(legs: list[tuple[float, float]]) -> None:
    """`gamma_coherence` in [0, 1]; exactly 1 where every option's qty x gamma has one sign
    (every single option: the shift is then untouched bit for bit)."""
    qg = np.array([g * q for g, q in legs])
    c = float(gamma_coherence(float(np.sum(qg)), float(np.sum(np.abs(qg)))))
    assert 0.0 <= c <= 1.0
    if np.all(qg >= 0.0) or np.all(qg <= 0.0):
        assert c == 1.0
    arr = gamma_coherence(np.array([np.sum(qg)]), np.array([np.sum(np.abs(qg))]))
    assert float(arr[0]) == c  # the backtest's arrays, the same rule


def test_shift_coherence_on_the_far_put_book() -> None:
    """The diagnosis' book (`strangle v 3.5 far put` at the start, spot 100, vol 100 %): short
    95 put and 105 call (30 days), long 3.5 x 100 put (128.6 days). Its net gamma is 9 % of
    the gross (the strangle's short gamma nearly cancels the far put's long), while its net
    vanna is the far put's: the shift keeps 9 % at p = 1."""
    days = np.array([30.0, 30.0, 128.6]) / 365.0
    opts = OptionArrays(
        np.array([False, True, False]),
        np.array([95.0, 105.0, 100.0]),
        days,
        np.array([-1.0, -1.0, 3.5]),
    )
    c = book_gamma_coherence(opts, 100.0, 1.0)
    assert c == pytest.approx(0.09, abs=0.01)
    ctx = BandContext(100.0, -0.0046, 0.285, 1.0, 0.12, 0.0, 5e-4, gamma_coherence=c)
    knobs = {"risk_aversion_per_usd": 100.0 / 550.0, "shift_cap_hw": 0.0}
    plain = band_for(HedgerdPolicy(**knobs, shift_coherence=0.0), ctx).centre
    scaled = band_for(HedgerdPolicy(**knobs), ctx).centre  # the default: p = 1
    assert scaled == pytest.approx(plain * c, rel=1e-12)
    assert plain < 0.0  # short net gamma: the net vanna's shift up, the centre down
    one = OptionArrays(np.array([True]), np.array([100.0]), np.array([0.08]), np.array([-1.0]))
    assert book_gamma_coherence(one, 100.0, 0.6) == 1.0
