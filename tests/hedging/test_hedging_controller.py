"""The controller: in-flight orders, bands, triggers, lots, settlement, ids, reasons."""

from __future__ import annotations

import numpy as np
import pytest
from hedging_builders import NOW_MS, SPOT, risk, total_delta, venue_state
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import (
    FixedBandPolicy,
    HedgerdPolicy,
    MakerSettings,
    TimerPolicy,
    WhalleyWilmottPolicy,
)
from hedgerd.hedging.controller import after, decide
from hedgerd.hedging.inputs import InFlightOrder, PolicyState
from hedgerd.hedging.kernel import BandContext, band_for, plan_trades
from hedgerd.model import HedgeStyle, HedgeTrigger, OrderSide

PERP = venue_state("BTC-PERPETUAL")
BAND = FixedBandPolicy(halfwidth_coin=0.1, rebalance_to="target")
EMPTY = PolicyState()


def _in_flight(
    decision_legs: tuple[object, ...], style: HedgeStyle = HedgeStyle.TAKER
) -> list[InFlightOrder]:
    return [
        InFlightOrder(leg.venue, leg.instrument, f"x{i}", leg.delta_coin, style, NOW_MS)  # type: ignore[attr-defined]
        for i, leg in enumerate(decision_legs)
    ]


def test_short_delta_outside_band_buys_back_to_target() -> None:
    d = decide(risk(-1.0), [PERP], [], "band", BAND, EMPTY, NOW_MS)
    assert d.trades and d.trigger is HedgeTrigger.BAND
    (leg,) = d.legs
    assert leg.side is OrderSide.BUY and leg.amount_unit.value == "usd"
    assert leg.amount % 10.0 == 0.0
    assert total_delta(d.legs) == pytest.approx(1.0, abs=10 / SPOT)
    assert d.expected_cost_usd > 0
    assert "net -1.000000" in d.reason and "buy" in d.reason


def test_hedge_in_flight_is_not_hedged_again() -> None:
    first = decide(risk(-1.0), [PERP], [], "band", BAND, EMPTY, NOW_MS)
    state = after(EMPTY, first, SPOT)
    flying = _in_flight(first.legs)
    # Nothing filled yet: the book still shows -1.0, but the order in flight covers it.
    again = decide(risk(-1.0), [PERP], flying, "band", BAND, state, NOW_MS + 1000)
    assert not again.trades
    assert again.net_delta_coin == pytest.approx(first.delta_after_coin)
    # Partly filled (0.6 of 1.0): book -0.4 plus 0.4 remaining in flight: still nothing.
    part = [InFlightOrder("deribit", "BTC-PERPETUAL", "x0", 0.4, HedgeStyle.TAKER, NOW_MS)]
    assert not decide(risk(-0.4), [PERP], part, "band", BAND, state, NOW_MS + 2000).trades
    # A further move is hedged, and only the new part.
    more = decide(risk(-1.5), [PERP], flying, "band", BAND, state, NOW_MS + 3000)
    assert total_delta(more.legs) == pytest.approx(0.5, abs=0.001)
    # Maker orders resting count as well.
    maker = _in_flight(first.legs, HedgeStyle.MAKER)
    assert not decide(risk(-1.0), [PERP], maker, "band", BAND, state, NOW_MS + 4000).trades


def test_band_edge_versus_target() -> None:
    edge = FixedBandPolicy(halfwidth_coin=0.1, rebalance_to="edge")
    d = decide(risk(0.5), [PERP], [], "edge", edge, EMPTY, NOW_MS)
    assert d.delta_after_coin == pytest.approx(0.1, abs=10 / SPOT)
    d = decide(risk(0.5), [PERP], [], "centre", BAND, EMPTY, NOW_MS)
    assert d.delta_after_coin == pytest.approx(0.0, abs=10 / SPOT)
    assert not decide(risk(0.09), [PERP], [], "edge", edge, EMPTY, NOW_MS).trades


def test_asymmetric_band_target_and_hedge_ratio() -> None:
    p = FixedBandPolicy(
        halfwidth_coin=0.1,
        lower_halfwidth_coin=0.05,
        upper_halfwidth_coin=0.3,
        target_delta_coin=0.2,
        hedge_ratio=0.5,
        rebalance_to="target",
    )
    assert not decide(risk(0.45), [PERP], [], "a", p, EMPTY, NOW_MS).trades
    d = decide(risk(0.6), [PERP], [], "a", p, EMPTY, NOW_MS)  # above 0.5: half way to 0.2
    assert total_delta(d.legs) == pytest.approx(-0.2, abs=10 / SPOT)
    d = decide(risk(0.1), [PERP], [], "a", p, EMPTY, NOW_MS)  # below 0.15: half way up
    assert total_delta(d.legs) == pytest.approx(0.05, abs=10 / SPOT)


def test_lot_rounding_carries_the_remainder() -> None:
    need = 0.123456
    d = decide(
        risk(-need),
        [PERP],
        [],
        "b",
        FixedBandPolicy(halfwidth_coin=0.0, rebalance_to="target"),
        EMPTY,
        NOW_MS,
    )
    (leg,) = d.legs
    assert leg.amount == pytest.approx(6170.0)  # 0.123456 coin = 6172.8 USD, down to 10s
    carried = d.delta_after_coin
    assert 0 > carried > -10 / SPOT
    # next decision sees the remainder in the book delta and adds it once it is worth a lot
    small = decide(
        risk(carried), [PERP], [], "b", FixedBandPolicy(halfwidth_coin=0.0), EMPTY, NOW_MS + 1
    )
    assert not small.trades and "carried" in small.reason


def test_min_trade_size() -> None:
    p = FixedBandPolicy(halfwidth_coin=0.01, rebalance_to="target", min_trade_coin=0.05)
    assert not decide(risk(0.03), [PERP], [], "m", p, EMPTY, NOW_MS).trades
    assert decide(risk(0.06), [PERP], [], "m", p, EMPTY, NOW_MS).trades


def test_timer_and_safety_timer() -> None:
    timer = TimerPolicy(interval_s=600)
    assert decide(risk(0.01), [PERP], [], "t", timer, EMPTY, NOW_MS).trigger is HedgeTrigger.TIMER
    st0 = PolicyState(last_hedge_ms=NOW_MS, last_hedge_spot_usd=SPOT)
    assert not decide(risk(0.01), [PERP], [], "t", timer, st0, NOW_MS + 599_000).trades
    assert decide(risk(0.01), [PERP], [], "t", timer, st0, NOW_MS + 600_000).trades
    safe = FixedBandPolicy(halfwidth_coin=0.1, max_interval_s=3600)
    assert not decide(risk(0.05), [PERP], [], "s", safe, st0, NOW_MS + 3_599_000).trades
    d = decide(risk(0.05), [PERP], [], "s", safe, st0, NOW_MS + 3_600_000)
    assert d.trigger is HedgeTrigger.SAFETY_TIMER
    assert d.delta_after_coin == pytest.approx(0.0, abs=10 / SPOT)


def test_price_move_filter() -> None:
    p = FixedBandPolicy(halfwidth_coin=0.1, price_move_filter_frac=0.01)
    st0 = PolicyState(last_hedge_ms=NOW_MS, last_hedge_spot_usd=SPOT)
    assert not decide(risk(0.3, spot=SPOT * 1.005), [PERP], [], "f", p, st0, NOW_MS + 1).trades
    assert decide(risk(0.3, spot=SPOT * 1.02), [PERP], [], "f", p, st0, NOW_MS + 1).trades


def test_settlement_window_uses_projected_delta() -> None:
    p = FixedBandPolicy(halfwidth_coin=0.05, rebalance_to="target", settlement_window_s=1800)
    settle = NOW_MS + 900_000  # halfway through the 30-minute window
    r = risk(0.0, expiring_delta_coin=-0.8, next_settlement_ms=settle)  # type: ignore[arg-type]
    # The expiring options' -0.8 is half fixed already: projected net +0.4, so sell 0.4.
    d = decide(r, [PERP], [], "s", p, EMPTY, NOW_MS)
    assert d.net_delta_coin == pytest.approx(0.4)
    assert total_delta(d.legs) == pytest.approx(-0.4, abs=10 / SPOT)
    outside = risk(0.0, expiring_delta_coin=-0.8, next_settlement_ms=NOW_MS + 7_200_000)  # type: ignore[arg-type]
    assert not decide(outside, [PERP], [], "s", p, EMPTY, NOW_MS).trades


def test_decision_id_is_deterministic_and_names_orders() -> None:
    a = decide(risk(-1.0), [PERP], [], "band", BAND, EMPTY, NOW_MS)
    b = decide(risk(-1.0), [PERP], [], "band", BAND, EMPTY, NOW_MS)
    c = decide(risk(-1.0), [PERP], [], "band", BAND, EMPTY, NOW_MS + 1)
    assert a.decision_id == b.decision_id != c.decision_id
    assert a.client_order_id(0) == b.client_order_id(0) != a.client_order_id(0, attempt=1)
    assert len(a.client_order_id(0)) <= 64
    with pytest.raises(IndexError):
        a.client_order_id(5)


def test_maker_zone_posts_at_the_touch() -> None:
    p = HedgerdPolicy(risk_aversion_per_usd=1e-4, maker=MakerSettings(enabled=True))
    r = risk(0.0)
    d0 = decide(r, [PERP], [], "h", p, EMPTY, NOW_MS)
    hw = d0.band_upper_coin - d0.target_delta_coin
    inner = d0.target_delta_coin + 0.75 * hw  # beyond the maker band, inside the taker band
    d = decide(risk(inner), [PERP], [], "h", p, EMPTY, NOW_MS)
    assert d.trigger is HedgeTrigger.MAKER_ZONE
    (leg,) = d.legs
    assert leg.style is HedgeStyle.MAKER and leg.side is OrderSide.SELL
    assert leg.limit_price == PERP.quote.ask_price
    assert leg.fallback_after_ms == NOW_MS + 600_000
    outside = decide(risk(d0.target_delta_coin + 1.5 * hw), [PERP], [], "h", p, EMPTY, NOW_MS)
    assert outside.legs[0].style in (HedgeStyle.TAKER, HedgeStyle.SLICED)


def test_whalley_wilmott_band_grows_with_cost_and_gamma() -> None:
    ww = WhalleyWilmottPolicy(risk_aversion_per_usd=1e-4)
    narrow = decide(risk(0.0, gamma=-1e-5), [PERP], [], "w", ww, EMPTY, NOW_MS)
    wide = decide(risk(0.0, gamma=-4e-5), [PERP], [], "w", ww, EMPTY, NOW_MS)
    dear = decide(
        risk(0.0, gamma=-1e-5), [venue_state("X", taker_fee=0.004)], [], "w", ww, EMPTY, NOW_MS
    )
    w = [x.band_upper_coin - x.target_delta_coin for x in (narrow, wide, dear)]
    assert w[1] == pytest.approx(w[0] * 4 ** (2 / 3), rel=1e-6)
    assert w[2] > w[0]


@settings(max_examples=60, deadline=None)
@given(
    net=st.lists(st.floats(-3, 3), min_size=1, max_size=8),
    gamma=st.floats(-1e-3, 1e-3),
    ra=st.floats(1e-4, 10.0),
)
def test_vectorised_kernel_equals_scalar_calls(net: list[float], gamma: float, ra: float) -> None:
    """The backtest's array call and the controller's scalar calls give the same trades."""
    p = HedgerdPolicy(risk_aversion_per_usd=ra, maker=MakerSettings(enabled=True))
    n = len(net)
    spot = np.linspace(90, 110, n)

    def ctx(i: slice | int) -> BandContext:
        return BandContext(spot[i], gamma, 0.3 * gamma * 100, 0.6, 0.05, 0.0, 0.0005)

    arr = np.asarray(net)
    band = band_for(p, ctx(slice(None)))
    vec = plan_trades(p, band, arr, 100.0, np.full(n, np.nan), spot, np.full(n, np.nan), True)
    for i in range(n):
        b = band_for(p, ctx(i))
        one = plan_trades(p, b, arr[i], 100.0, np.nan, spot[i], np.nan, True)
        assert float(one.taker_coin) == pytest.approx(vec.taker_coin[i], abs=1e-12)
        assert float(one.maker_coin) == pytest.approx(vec.maker_coin[i], abs=1e-12)
        assert int(one.trigger) == int(vec.trigger[i])


def test_maker_needs_time_else_taker() -> None:
    """Post-only only where the band leaves time for the expected fill delay."""
    from hedgerd.hedging.config import CostModelSettings

    p = HedgerdPolicy(risk_aversion_per_usd=1e-4, maker=MakerSettings(enabled=True))
    d0 = decide(risk(0.0), [PERP], [], "h", p, EMPTY, NOW_MS)
    hw = d0.band_upper_coin - d0.target_delta_coin
    r = risk(d0.target_delta_coin + 0.75 * hw)
    quick = decide(r, [PERP], [], "h", p, EMPTY, NOW_MS, cost=CostModelSettings())
    assert quick.legs[0].style is HedgeStyle.MAKER
    slow = decide(
        r,
        [PERP],
        [],
        "h",
        p,
        EMPTY,
        NOW_MS,
        cost=CostModelSettings(maker_fill_delay_s=30 * 86400.0),
    )
    assert slow.legs[0].style is HedgeStyle.TAKER
    assert total_delta(slow.legs) == pytest.approx(total_delta(quick.legs), abs=10 / SPOT)


def test_should_log_every_trade_and_a_sample_of_holds() -> None:
    from hedgerd.hedging.controller import should_log

    assert should_log(decide(risk(-1.0), [PERP], [], "b", BAND, EMPTY, NOW_MS))
    holds = [decide(risk(0.0), [PERP], [], "b", BAND, EMPTY, NOW_MS + i) for i in range(400)]
    logged = sum(should_log(h, 0.1) for h in holds)
    assert 15 <= logged <= 70
    assert all(should_log(h, 1.0) for h in holds[:10])
    assert not any(should_log(h, 0.0) for h in holds[:10])


def test_opposite_resting_maker_order_is_cancelled() -> None:
    resting = [
        InFlightOrder("deribit", "BTC-PERPETUAL", "hd-old-0-0", 0.3, HedgeStyle.MAKER, NOW_MS)
    ]
    # The market moved: net (book +0.5, resting buy +0.3) is now far above the band.
    d = decide(risk(0.5), [PERP], resting, "band", BAND, EMPTY, NOW_MS)
    assert d.cancel_labels == ("hd-old-0-0",)
    # The legs are sized without the buy being cancelled: sells 0.5, not 0.8 (sized with it,
    # a cancel that lands left the delta overshot by 0.3, then a round trip to undo it).
    assert total_delta(d.legs) == pytest.approx(-0.5, abs=10 / SPOT)
    assert d.in_flight_delta_coin == 0.0
    assert d.net_delta_coin == pytest.approx(0.5)
    assert d.delta_after_coin == pytest.approx(0.0, abs=10 / SPOT)
    # A resting buy that the plan without it still wants: kept, and counted.
    small = decide(risk(-0.5), [PERP], resting, "band", BAND, EMPTY, NOW_MS)
    assert small.cancel_labels == ()
    assert small.in_flight_delta_coin == pytest.approx(0.3)
    same_way = decide(risk(-1.0), [PERP], resting, "band", BAND, EMPTY, NOW_MS)
    assert same_way.cancel_labels == ()


def test_hedgerd_band_knobs_asymmetry_and_unwind() -> None:
    base = HedgerdPolicy(risk_aversion_per_usd=1e-4, k_prefactor=0.0)
    d = decide(risk(0.0, gamma=-2e-5), [PERP], [], "h", base, EMPTY, NOW_MS)
    h = d.band_upper_coin - d.target_delta_coin
    skew = base.model_copy(update={"asymmetry": 0.5})
    s = decide(risk(0.0, gamma=-2e-5), [PERP], [], "h", skew, EMPTY, NOW_MS)
    assert s.band_upper_coin - s.target_delta_coin == pytest.approx(1.5 * h)
    assert s.target_delta_coin - s.band_lower_coin == pytest.approx(0.5 * h)
    # near expiry, the unwind shift aims at a smaller hedge (toward the options' delta sign)
    unwind = base.model_copy(update={"unwind_weight": 1.0})
    r = risk(0.0, gamma=-2e-5, tau_years=1 / 365, options_delta_coin=-0.9)
    u = decide(r, [PERP], [], "h", unwind, EMPTY, NOW_MS)
    assert -0.9 <= u.target_delta_coin < -0.01


def test_the_default_band_takes_the_gamma_ahead_when_given() -> None:
    # A short strangle a day before expiry, spot at its put strike: the gamma at spot is the
    # strike's peak; over the next 12 hours' range it is smaller, and so is the band. The
    # gamma ahead is a decision input: it changes the decision id.
    from dataclasses import replace

    from hedgerd.hedging.config import HedgerdPolicy
    from hedgerd.hedging.kernel import OptionArrays, gamma_ahead, gamma_ahead_key

    opts = OptionArrays(
        np.array([False, True]),
        np.array([SPOT, SPOT * 1.1]),
        np.array([1 / 365, 1 / 365]),
        np.array([-1.0, -1.0]),
        np.array([0.6, 0.6]),
    )
    policy = HedgerdPolicy(risk_aversion_per_usd=1e-4, h0_weight=0.0, k_prefactor=0.0)
    key = gamma_ahead_key(policy)
    assert key is not None
    plain = risk(0.0, gamma=gamma_ahead((0.0, "signed"), opts, SPOT, 0.6), tau_years=1 / 365)
    ahead = replace(plain, gamma_ahead_coin_per_usd=gamma_ahead(key, opts, SPOT, 0.6))
    a = decide(plain, [PERP], [], "hedgerd", policy, EMPTY, NOW_MS)
    b = decide(ahead, [PERP], [], "hedgerd", policy, EMPTY, NOW_MS)
    assert b.band_upper_coin - b.target_delta_coin < a.band_upper_coin - a.target_delta_coin
    assert a.decision_id != b.decision_id
    off = policy.model_copy(update={"gamma_horizon_s": 0.0})
    c = decide(ahead, [PERP], [], "hedgerd", off, EMPTY, NOW_MS)
    assert c.band_upper_coin == pytest.approx(a.band_upper_coin)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "policy",
    [
        BAND,
        HedgerdPolicy(risk_aversion_per_usd=1e-5),
        HedgerdPolicy(risk_aversion_per_usd=1e-5, max_interval_s=60.0),
        FixedBandPolicy(halfwidth_coin=0.1, maker=MakerSettings(enabled=True)),
    ],
)
def test_a_non_finite_net_delta_never_trades(bad: float, policy: object) -> None:
    # An in-flight order whose rest is not finite makes the net delta NaN or infinite (the
    # record is not validated). The plan's NaN taker size (its "0" is 0 x net) went to the
    # router, whose split never reaches a NaN quantity's end: it sold every level shown,
    # 100 coin of a 5-level book, on a hold's trigger.
    orders = [InFlightOrder("deribit", "BTC-PERPETUAL", "x0", bad, HedgeStyle.TAKER, NOW_MS)]
    state = PolicyState(NOW_MS - 3_600_000, SPOT)
    d = decide(risk(0.5), [PERP], orders, "p", policy, state, NOW_MS)  # type: ignore[arg-type]
    assert d.legs == () and not d.trades
    assert d.trigger is HedgeTrigger.NONE


def test_the_gamma_coherence_scales_the_hedgerd_centre_shift_and_enters_the_id() -> None:
    """`UnderlyingRisk.gamma_coherence` reaches the band (`shift_coherence`, the default 1):
    the target's shift from the modified-vol delta is scaled by it, and the decision id
    changes with it (None: as before the field)."""
    p = HedgerdPolicy(risk_aversion_per_usd=1e-5, shift_cap_hw=0.0)
    plain = decide(risk(0.0, vanna_coin_per_vol=2.0), [PERP], [], "h", p, EMPTY, NOW_MS)
    half = decide(
        risk(0.0, vanna_coin_per_vol=2.0, gamma_coherence=0.5), [PERP], [], "h", p, EMPTY, NOW_MS
    )
    assert plain.target_delta_coin != 0.0
    assert half.target_delta_coin == pytest.approx(0.5 * plain.target_delta_coin, rel=1e-12)
    assert half.decision_id != plain.decision_id
