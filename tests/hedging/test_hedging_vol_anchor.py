"""The hedgerd band's vol anchor (issue 19, regime shifts): the centre on the delta at a slow
average of the marked vol.

Invariants: the average moves from its value toward the mark by 1/2 after one half-life and
stays between the two; a constant mark is its fixed point, so a book marked at one vol gets no
shift; the shift is the first-order delta change vanna x (anchor - mark) and moves the band's
centre by minus that, leaving the half-widths alone; without an anchor (None) or with the
half-life 0 the band is the one without the term.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.kernel import (
    BandContext,
    band_for,
    vol_anchor_key,
    vol_anchor_shift,
    vol_anchor_update,
)

vols = st.floats(0.05, 3.0)


def _ctx(vol: float, vanna: float, anchor: float | None) -> BandContext:
    return BandContext(
        spot_usd=100.0,
        gamma_coin_per_usd=-0.02,
        vanna_coin_per_vol=vanna,
        vol=vol,
        tau_years=20.0 / 365.0,
        rate=0.0,
        lam=0.0005,
        options_delta_coin=-0.5,
        vol_anchor=anchor,
    )


@given(vols, vols, st.floats(60.0, 1e7), st.floats(0.0, 1e7))
def test_the_average_moves_toward_the_mark_and_halfway_in_one_half_life(
    prev: float, vol: float, halflife: float, dt: float
) -> None:
    v2 = vol_anchor_update(prev * prev, vol, dt, halflife)
    lo, hi = sorted((prev * prev, vol * vol))
    assert lo - 1e-12 <= v2 <= hi + 1e-12
    half = vol_anchor_update(prev * prev, vol, halflife, halflife)
    assert half == pytest.approx(0.5 * (prev * prev + vol * vol), rel=1e-12)
    assert vol_anchor_update(vol * vol, vol, dt, halflife) == pytest.approx(vol * vol)


@given(vols, vols, st.floats(-5.0, 5.0))
def test_the_centre_moves_by_the_first_order_delta_change_and_the_widths_stay(
    vol: float, anchor: float, vanna: float
) -> None:
    on = HedgerdPolicy(risk_aversion_per_usd=0.01, vol_anchor_halflife_s=86400.0)
    off = HedgerdPolicy(risk_aversion_per_usd=0.01)
    with_anchor = band_for(on, _ctx(vol, vanna, anchor))
    without = band_for(off, _ctx(vol, vanna, anchor))
    shift = vol_anchor_shift(_ctx(vol, vanna, anchor))
    assert shift == pytest.approx(vanna * (anchor - vol))
    assert with_anchor.centre == pytest.approx(without.centre - shift, abs=1e-12)
    assert (with_anchor.lower, with_anchor.upper) == (without.lower, without.upper)
    # The anchor at the mark, or no anchor kept: no shift.
    assert band_for(on, _ctx(vol, vanna, vol)).centre == pytest.approx(without.centre)
    assert band_for(on, _ctx(vol, vanna, None)).centre == pytest.approx(without.centre)


def test_only_a_policy_with_a_half_life_keeps_an_anchor() -> None:
    assert vol_anchor_key(HedgerdPolicy()) is None
    assert vol_anchor_key(HedgerdPolicy(vol_anchor_halflife_s=3600.0)) == 3600.0
    weighted = HedgerdPolicy(vol_anchor_halflife_s=3600.0, vol_anchor_weight=0.5)
    full = HedgerdPolicy(vol_anchor_halflife_s=3600.0)
    ctx = _ctx(0.9, 2.0, 0.6)
    half = band_for(weighted, ctx).centre - band_for(HedgerdPolicy(), ctx).centre
    whole = band_for(full, ctx).centre - band_for(HedgerdPolicy(), ctx).centre
    assert half == pytest.approx(0.5 * whole)
    assert math.isclose(whole, -2.0 * (0.6 - 0.9))
