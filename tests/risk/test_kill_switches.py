"""Each kill switch on its own: trips exactly at its threshold, not below it, with time driven
explicitly (no clock, no sleeps)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.model.instruments import (
    AmountUnit,
    Instrument,
    InstrumentKind,
    OptionType,
    PriceUnit,
)
from hedgerd.model.orders import Fill, OrderSide
from hedgerd.risk.kill_switches import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    CarriedPosition,
    ClockSkewSwitch,
    DailyLossSwitch,
    DeltaLimitSwitch,
    FeedKind,
    GreeksDivergenceSwitch,
    MarginInputs,
    MarginSwitch,
    OrderNotionalSwitch,
    PnlEstimate,
    PositionDiff,
    PositionMismatchSwitch,
    PriceSanitySwitch,
    RateSwitch,
    RejectStreakSwitch,
    SlidingWindow,
    StaleDataSwitch,
    VenueDisconnectedSwitch,
    clock_skew_ms,
    clock_skew_ms_ntp,
    day_start_ms,
    hedge_pnl_usd,
)
from hedgerd.risk.limits import (
    ClockSkewSettings,
    DailyLossSettings,
    DeltaLimitSettings,
    GreeksDivergenceSettings,
    MarginSettings,
    NotionalRateSettings,
    OrderNotionalSettings,
    OrderRateSettings,
    PositionMismatchSettings,
    PriceSanitySettings,
    RejectStreakSettings,
    StaleDataSettings,
    VenueDisconnectedSettings,
)
from hedgerd.risk.trading_state import ReasonCode, TradingState

T0 = 1_700_000_000_000  # an arbitrary UTC epoch ms
H, R = TradingState.HALTED, TradingState.REDUCE_ONLY


# ---------------------------------------------------------------------------- stale data


def test_stale_market_feed_trips_at_its_limit_not_before() -> None:
    sw = StaleDataSwitch(StaleDataSettings())  # market 5 s, positions 90 s
    sw.observe("deribit", "ticker", T0)
    sw.observe("deribit", "positions", T0)
    assert sw.evaluate(T0 + 4_999) is None
    trip = sw.evaluate(T0 + 5_000)
    assert trip is not None and trip.code is ReasonCode.STALE_DATA and trip.state is H
    assert trip.values["feed"] == "ticker" and trip.values["age_s"] == 5.0
    assert trip.values["limit_s"] == 5.0
    sw.observe("deribit", "ticker", T0 + 5_000)  # fresh again
    assert sw.evaluate(T0 + 9_999) is None


def test_stale_positions_judged_by_the_positions_limit() -> None:
    sw = StaleDataSwitch(StaleDataSettings())
    sw.observe("deribit", "positions", T0)
    assert sw.evaluate(T0 + 89_999) is None
    trip = sw.evaluate(T0 + 90_000)
    assert trip is not None and trip.values["feed"] == "positions"


def test_stale_per_feed_override_and_explicit_kind() -> None:
    sw = StaleDataSwitch(StaleDataSettings(stale_after_s_by_feed={"index": 10.0}))
    sw.observe("deribit", "index", T0)
    sw.observe("deribit", "portfolio_stream", T0, kind=FeedKind.POSITIONS)
    assert sw.evaluate(T0 + 9_999) is None
    trip = sw.evaluate(T0 + 10_000)
    assert trip is not None and trip.values["feed"] == "index"
    assert sw.limit_s("portfolio_stream", FeedKind.POSITIONS) == 90.0


def test_a_feed_that_never_delivered_gets_the_startup_grace() -> None:
    sw = StaleDataSwitch(StaleDataSettings(startup_grace_s=30.0))
    sw.register("deribit", "ticker", T0)
    assert sw.evaluate(T0 + 34_999) is None
    trip = sw.evaluate(T0 + 35_000)
    assert trip is not None and trip.values["limit_s"] == 35.0
    assert sw.ages_s(T0)[("deribit", "ticker")] == math.inf


def test_stale_picks_the_worst_feed_and_ignores_out_of_order_updates() -> None:
    sw = StaleDataSwitch(StaleDataSettings())
    sw.observe("a", "ticker", T0 + 1_000)
    sw.observe("b", "book", T0)
    sw.observe("a", "ticker", T0)  # late, older: does not make the feed older
    trip = sw.evaluate(T0 + 6_000)
    assert trip is not None and trip.values["venue"] == "b"


def test_disabled_stale_switch_never_trips() -> None:
    sw = StaleDataSwitch(StaleDataSettings(enabled=False))
    sw.observe("deribit", "ticker", T0)
    assert sw.evaluate(T0 + DAY_MS) is None


# ------------------------------------------------------------------- venue disconnected


def test_venue_disconnected_trips_after_n_seconds() -> None:
    sw = VenueDisconnectedSwitch(VenueDisconnectedSettings(trip_after_s=30.0))
    sw.observe("deribit", True, T0)
    sw.observe("deribit", False, T0 + 1_000)
    sw.observe("deribit", False, T0 + 20_000)  # still down: keeps the first time
    assert sw.evaluate(T0 + 30_999) is None
    trip = sw.evaluate(T0 + 31_000)
    assert trip is not None and trip.code is ReasonCode.VENUE_DISCONNECTED
    assert trip.values == {"venue": "deribit", "disconnected_s": 30.0, "limit_s": 30.0}
    sw.observe("deribit", True, T0 + 31_500)
    assert sw.evaluate(T0 + 100_000) is None


def test_a_venue_never_connected_counts_from_registration() -> None:
    sw = VenueDisconnectedSwitch(VenueDisconnectedSettings(trip_after_s=30.0))
    sw.register("deribit", T0)
    assert sw.evaluate(T0 + 29_999) is None
    assert sw.evaluate(T0 + 30_000) is not None


# -------------------------------------------------------------------- position mismatch


def test_position_mismatch_trips_at_the_tolerance() -> None:
    settings = PositionMismatchSettings(mismatch_limit_coin=0.5, consecutive_runs=1)
    sw = PositionMismatchSwitch(settings)
    below = [PositionDiff("BTC-PERPETUAL", 1.25, 1.0), PositionDiff("BTC-F", 0.0, 0.0)]
    assert sw.observe(T0, "deribit", below) is None
    trip = sw.observe(T0, "deribit", [PositionDiff("BTC-PERPETUAL", 1.5, 1.0)])
    assert trip is not None and trip.code is ReasonCode.POSITION_MISMATCH and trip.state is H
    assert trip.values["diff_coin"] == 0.5 and trip.values["instrument"] == "BTC-PERPETUAL"
    neg = sw.observe(T0, "deribit", [PositionDiff("X", -1.0, -0.5), PositionDiff("Y", 0, 2.0)])
    assert neg is not None and neg.values["instrument"] == "Y"  # the worst one is reported


def test_position_mismatch_consecutive_runs_and_nan() -> None:
    sw = PositionMismatchSwitch(
        PositionMismatchSettings(mismatch_limit_coin=0.5, consecutive_runs=2)
    )
    bad = [PositionDiff("BTC-PERPETUAL", 2.0, 1.0)]
    assert sw.observe(T0, "deribit", bad) is None
    assert sw.observe(T0, "deribit", []) is None  # a clean run resets
    assert sw.observe(T0, "deribit", bad) is None
    assert sw.observe(T0, "deribit", bad) is not None
    sw2 = PositionMismatchSwitch(PositionMismatchSettings(consecutive_runs=1))
    assert sw2.observe(T0, "deribit", [PositionDiff("X", math.nan, 1.0)]) is not None


# -------------------------------------------------------------------- Greeks divergence


def test_greeks_divergence_must_hold_for_the_duration() -> None:
    sw = GreeksDivergenceSwitch(GreeksDivergenceSettings(min_duration_s=15.0))
    # BTC limit 0.5 coin.
    assert sw.observe(T0, "deribit", "BTC", 1.25, 1.0) is None  # below
    assert sw.observe(T0, "deribit", "BTC", 1.5, 1.0) is None  # at the limit, not long enough
    assert sw.observe(T0 + 14_999, "deribit", "BTC", 0.5, 1.0) is None
    trip = sw.observe(T0 + 15_000, "deribit", "BTC", 1.5, 1.0)
    assert trip is not None and trip.code is ReasonCode.GREEKS_DIVERGENCE
    assert trip.values["divergence_coin"] == 0.5 and trip.values["limit_coin"] == 0.5
    # Back inside: the clock restarts.
    assert sw.observe(T0 + 16_000, "deribit", "BTC", 1.0, 1.0) is None
    assert sw.observe(T0 + 17_000, "deribit", "BTC", 2.0, 1.0) is None
    # ETH has its own limit (10 coin); unknown underlyings the default.
    assert sw.observe(T0, "deribit", "ETH", 9.0, 0.0) is None
    assert GreeksDivergenceSettings().limit_coin("SOL") == 0.5


def test_greeks_divergence_nan_counts_as_diverged() -> None:
    sw = GreeksDivergenceSwitch(GreeksDivergenceSettings(min_duration_s=0.0))
    assert sw.observe(T0, "deribit", "BTC", math.nan, 1.0) is not None


# -------------------------------------------------------------------------- delta limit


def test_delta_limit_trips_after_k_hedge_attempts() -> None:
    sw = DeltaLimitSwitch(DeltaLimitSettings(hedge_attempts=3))  # BTC hard limit 20 coin
    assert sw.observe(T0, "BTC", 19.99, 90_000.0) is None
    assert sw.observe(T0, "BTC", -20.0, 90_000.0) is None  # at the limit: armed, 0 attempts
    sw.on_hedge_sent("BTC")
    sw.on_hedge_sent("BTC")
    assert sw.observe(T0 + 1_000, "BTC", -20.5, 90_000.0) is None  # 2 attempts
    sw.on_hedge_sent("BTC")
    trip = sw.observe(T0 + 2_000, "BTC", -20.5, 90_000.0)
    assert trip is not None and trip.code is ReasonCode.DELTA_LIMIT
    assert trip.values["hedge_attempts"] == 3 and trip.values["limit_coin"] == 20.0


def test_delta_limit_back_inside_resets_the_attempts() -> None:
    sw = DeltaLimitSwitch(DeltaLimitSettings(hedge_attempts=2))
    sw.on_hedge_sent("BTC")  # not in breach: not counted
    sw.observe(T0, "BTC", 25.0, 90_000.0)
    sw.on_hedge_sent("BTC")
    assert sw.observe(T0, "BTC", 5.0, 90_000.0) is None  # the hedge worked
    sw.observe(T0, "BTC", 25.0, 90_000.0)
    sw.on_hedge_sent("BTC")
    assert sw.observe(T0, "BTC", 25.0, 90_000.0) is None  # one attempt since the new breach


def test_delta_limit_trips_on_duration_without_attempts() -> None:
    sw = DeltaLimitSwitch(DeltaLimitSettings(max_breach_s=120.0))
    sw.observe(T0, "BTC", 30.0, 90_000.0)
    assert sw.evaluate(T0 + 119_999) is None
    trip = sw.evaluate(T0 + 120_000)
    assert trip is not None and trip.values["breach_s"] == 120.0


def test_delta_limit_in_usd_for_other_underlyings_and_nan() -> None:
    sw = DeltaLimitSwitch(DeltaLimitSettings(hard_limit_usd=2_000_000.0, hedge_attempts=1))
    assert sw.limit_coin("SOL", 100.0) == 20_000.0
    assert sw.limit_coin("SOL", math.nan) is None
    assert sw.observe(T0, "SOL", 19_999.0, 100.0) is None
    sw.observe(T0, "SOL", 20_000.0, 100.0)
    sw.on_hedge_sent("SOL")
    assert sw.observe(T0, "SOL", 20_000.0, 100.0) is not None
    nan_trip = sw.observe(T0, "ETH", math.nan, 3_000.0)
    assert nan_trip is not None and nan_trip.code is ReasonCode.DELTA_LIMIT


# ------------------------------------------------------------------------ reject streak


def test_reject_streak_trips_at_the_limit_and_resets_on_success() -> None:
    sw = RejectStreakSwitch(RejectStreakSettings(streak_limit=3))
    assert sw.observe(T0, False, "too_many_requests") is None
    assert sw.observe(T0, False, "x") is None
    assert sw.observe(T0, True) is None  # an accepted order resets
    assert sw.observe(T0, False) is None
    assert sw.observe(T0, False) is None
    trip = sw.observe(T0, False, "invalid_params")
    assert trip is not None and trip.code is ReasonCode.REJECT_STREAK
    assert trip.values["streak"] == 3 and trip.values["last"] == "invalid_params"


# ---------------------------------------------------------------------- sliding windows


def test_sliding_window_counts_the_last_window_only() -> None:
    w = SlidingWindow(MINUTE_MS)
    w.add(T0, 1)
    w.add(T0 + 30_000, 2)
    assert w.total(T0 + 59_999) == 3
    assert w.total(T0 + 60_000) == 2  # the first entry is exactly one window old: out
    assert w.total(T0 + 90_000) == 0 and len(w) == 0
    with pytest.raises(ValueError):
        SlidingWindow(0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5 * MINUTE_MS), st.integers(0, 1_000)), min_size=1, max_size=60
    ),
    st.integers(0, 6 * MINUTE_MS),
)
def test_sliding_window_matches_a_brute_force_sum(
    events: list[tuple[int, int]], probe_offset_ms: int
) -> None:
    events.sort()
    w = SlidingWindow(MINUTE_MS)
    for i, (ts, amount) in enumerate(events):
        w.add(ts, amount)
        # Query at every step (amortised eviction) and at the end.
        now = ts
        assert w.total(now) == sum(a for t, a in events[: i + 1] if t > now - MINUTE_MS)
    now = max(events[-1][0], probe_offset_ms)
    assert w.total(now) == sum(a for t, a in events if t > now - MINUTE_MS)


def test_order_rate_refuses_the_order_over_the_budget() -> None:
    rs = RateSwitch(
        OrderRateSettings(max_orders_per_minute=3, max_orders_per_hour=5, max_orders_per_day=6),
        NotionalRateSettings(),
    )
    for i in range(3):
        assert rs.check(T0 + i, 1_000.0) is None
        rs.record(T0 + i, 1_000.0)
    trip = rs.check(T0 + 3, 1_000.0)
    assert trip is not None and trip.code is ReasonCode.ORDER_RATE
    assert trip.values == {"window": "minute", "orders": 3, "limit": 3}
    # A minute later the minute has room; the hour allows 5.
    later = T0 + MINUTE_MS + 10
    assert rs.check(later, 1_000.0) is None
    rs.record(later, 1.0)
    rs.record(later, 1.0)
    trip = rs.check(later + 1, 1.0)
    assert trip is not None and trip.values["window"] == "hour"
    # The day allows 6: after the hour, one more fits, then the day is full.
    assert rs.check(T0 + HOUR_MS + 10, 1.0) is None
    rs.record(T0 + HOUR_MS + 10, 1.0)
    trip = rs.check(T0 + HOUR_MS + 11, 1.0)
    assert trip is not None and trip.values["window"] == "day"
    assert rs.check(T0 + DAY_MS + 1, 1.0) is None


def test_notional_rate_allows_the_budget_in_full_not_a_cent_more() -> None:
    rs = RateSwitch(
        OrderRateSettings(),
        NotionalRateSettings(
            max_notional_usd_per_minute=1_000_000.0,
            max_notional_usd_per_hour=2_000_000.0,
            max_notional_usd_per_day=3_000_000.0,
        ),
    )
    for _ in range(10):  # 10 × 100,000.10 would drift in floats; cents keep it exact
        assert rs.check(T0, 99_999.99) is None
        rs.record(T0, 99_999.99)
    assert rs.check(T0, 0.1) is None
    trip = rs.check(T0, 0.11)
    assert trip is not None and trip.code is ReasonCode.NOTIONAL_RATE
    assert trip.values["window"] == "minute"
    assert rs.counts(T0)["minute"] == (10, 999_999.9)


def test_disabled_rates_never_refuse() -> None:
    rs = RateSwitch(OrderRateSettings(enabled=False), NotionalRateSettings(enabled=False))
    for i in range(100):
        rs.record(T0 + i, 10_000_000.0)
    assert rs.check(T0 + 100, 10_000_000.0) is None


# ----------------------------------------------------------------------- order notional


def test_order_notional_boundary() -> None:
    sw = OrderNotionalSwitch(OrderNotionalSettings(max_order_notional_usd=500_000.0))
    assert sw.check(500_000.0) is None
    trip = sw.check(500_000.01)
    assert trip is not None and trip.code is ReasonCode.ORDER_NOTIONAL and trip.state is H


# ------------------------------------------------------------------------- price sanity


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_nan_and_non_positive_prices_are_always_refused(bad: float) -> None:
    for enabled in (True, False):
        sw = PriceSanitySwitch(PriceSanitySettings(enabled=enabled))
        verdict = sw.observe(T0, "deribit:BTC-PERPETUAL:mark", bad)
        assert not verdict.accepted
        assert (verdict.trip is not None) is enabled
        assert sw.last_good("deribit:BTC-PERPETUAL:mark") is None
        assert not sw.check_order_price(bad, 100.0).accepted
        assert not sw.check_order_price(100.0, bad).accepted


@pytest.mark.parametrize(("new", "trips"), [(110.0, True), (90.0, True), (109.9, False)])
def test_price_jump_trips_at_the_limit_both_ways(new: float, trips: bool) -> None:
    sw = PriceSanitySwitch(PriceSanitySettings(max_jump_pct=10.0, jump_interval_s=60.0))
    assert sw.observe(T0, "idx", 100.0).accepted
    verdict = sw.observe(T0 + 1_000, "idx", new)
    assert verdict.accepted is not trips
    assert (verdict.trip is not None) is trips
    assert sw.last_good("idx") == ((T0, 100.0) if trips else (T0 + 1_000, new))


def test_a_jump_after_the_interval_is_accepted() -> None:
    sw = PriceSanitySwitch(PriceSanitySettings(max_jump_pct=10.0, jump_interval_s=60.0))
    sw.observe(T0, "idx", 100.0)
    assert not sw.observe(T0 + 60_000, "idx", 120.0).accepted  # still inside (<=)
    assert sw.observe(T0 + 60_001, "idx", 120.0).accepted


def test_price_deviation_from_reference() -> None:
    sw = PriceSanitySwitch(PriceSanitySettings(max_deviation_pct=5.0))
    assert sw.observe(T0, "mark", 104.99, reference_price_usd=100.0).accepted
    verdict = sw.observe(T0, "mark2", 95.0, reference_price_usd=100.0)
    assert not verdict.accepted and verdict.trip is not None
    assert verdict.trip.values["deviation_pct"] == 5.0
    assert not sw.observe(T0, "mark3", 100.0, reference_price_usd=math.nan).accepted


def test_forward_deviation_limit_widens_with_time_to_expiry() -> None:
    """A forward's limit is max(max_deviation_pct, max_basis_annual_pct x years): a 20 %
    premium passes half a year out (limit 50 %), not a week out (limit 5 %)."""
    sw = PriceSanitySwitch(PriceSanitySettings(max_deviation_pct=5.0, max_basis_annual_pct=100.0))
    assert sw.observe(T0, "fwd:half-year", 120.0, 100.0, reference_horizon_years=0.5).accepted
    week = sw.observe(T0, "fwd:week", 120.0, 100.0, reference_horizon_years=7 / 365)
    assert not week.accepted and week.trip is not None
    assert week.trip.code is ReasonCode.PRICE_SANITY and week.trip.values["limit_pct"] == 5.0
    # 1.5 years out: limit 150 %, but the last good forward still bounds the jump.
    assert sw.observe(T0, "fwd:far", 140.0, 100.0, reference_horizon_years=1.5).accepted
    assert not sw.observe(T0 + 1_000, "fwd:far", 180.0, 100.0, 1.5).accepted
    # Expired or no horizon: the plain deviation limit.
    assert not sw.observe(T0, "fwd:now", 106.0, 100.0, reference_horizon_years=0.0).accepted


def test_option_iv_jump_is_refused_once_then_taken_when_confirmed() -> None:
    sw = PriceSanitySwitch(PriceSanitySettings(max_vol_jump_pct=50.0, jump_interval_s=60.0))
    assert sw.observe_vol(T0, "iv", 0.60).accepted
    assert sw.observe_vol(T0 + 1_000, "iv", 0.89).accepted  # +48 %: a move, not a jump
    # A single bad tick (+50 % of the last good) is dropped, without a trip...
    glitch = sw.observe_vol(T0 + 2_000, "iv", 0.89 * 1.5)
    assert not glitch.accepted and glitch.trip is None
    # ...and the next good one is taken as usual.
    assert sw.observe_vol(T0 + 3_000, "iv", 0.90).accepted
    # A repricing: refused once, taken when the next tick confirms the level (within 5 %).
    assert not sw.observe_vol(T0 + 4_000, "iv", 1.50).accepted
    assert sw.observe_vol(T0 + 5_000, "iv", 1.47).accepted
    # A second jump that the next tick does not confirm stays refused.
    assert not sw.observe_vol(T0 + 6_000, "iv", 0.50).accepted
    assert not sw.observe_vol(T0 + 7_000, "iv", 0.70).accepted  # -52 %, and 40 % off 0.50
    assert sw.observe_vol(T0 + 8_000, "iv", 0.72).accepted  # confirms 0.70
    # Past the window the last good value no longer judges.
    assert sw.observe_vol(T0 + 68_001, "iv", 2.0).accepted
    assert not sw.observe_vol(T0, "iv2", math.nan).accepted
    assert not sw.observe_vol(T0, "iv2", 0.0).accepted
    off = PriceSanitySwitch(PriceSanitySettings(enabled=False))
    assert off.observe_vol(T0, "iv", 0.6).accepted and off.observe_vol(T0, "iv", 3.0).accepted


def test_order_price_band() -> None:
    sw = PriceSanitySwitch(PriceSanitySettings(order_price_band_pct=3.0))
    assert sw.check_order_price(102.99, 100.0).accepted
    verdict = sw.check_order_price(97.0, 100.0)
    assert not verdict.accepted and verdict.trip is not None
    assert verdict.trip.code is ReasonCode.PRICE_SANITY


# --------------------------------------------------------------------------- daily loss


def test_day_start_is_the_configured_hour() -> None:
    eight = 1_700_035_200_000  # 2023-11-15T08:00:00Z
    assert day_start_ms(eight, 8) == eight
    assert day_start_ms(eight - 1, 8) == eight - DAY_MS
    assert day_start_ms(eight + DAY_MS - 1, 8) == eight
    assert day_start_ms(eight, 0) == eight - 8 * HOUR_MS


def test_daily_loss_trips_at_the_limit() -> None:
    sw = DailyLossSwitch(DailyLossSettings(max_daily_loss_usd=100_000.0))
    assert sw.observe(T0, 5_000.0) is None
    assert sw.observe(T0, -99_999.99) is None
    trip = sw.observe(T0, -100_000.0)
    assert trip is not None and trip.code is ReasonCode.DAILY_LOSS
    assert trip.values == {"loss_usd": 100_000.0, "limit_usd": 100_000.0}


@pytest.mark.parametrize("pnl", [None, math.nan])
def test_daily_loss_that_cannot_be_computed_halts(pnl: float | None) -> None:
    sw = DailyLossSwitch(DailyLossSettings(trips_to="reduce_only"))
    trip = sw.observe(T0, pnl, "mark:BTC-PERPETUAL")
    assert trip is not None and trip.state is H  # whatever trips_to says
    assert "mark:BTC-PERPETUAL" in trip.detail


def _perp() -> Instrument:
    return Instrument(
        venue="deribit", name="BTC-PERPETUAL", kind=InstrumentKind.PERPETUAL, underlying="BTC",
        quote_currency="USD", settlement_currency="BTC", inverse=True, contract_size=10.0,
        amount_unit=AmountUnit.USD, min_amount=10.0, amount_step=10.0, tick_size=0.5,
        price_unit=PriceUnit.USD,
    )  # fmt: skip


def _linear() -> Instrument:
    return Instrument(
        venue="deribit", name="BTC_USDC-PERPETUAL", kind=InstrumentKind.PERPETUAL,
        underlying="BTC", quote_currency="USDC", settlement_currency="USDC", inverse=False,
        contract_size=0.001, amount_unit=AmountUnit.COIN, min_amount=0.001, amount_step=0.001,
        tick_size=1.0, price_unit=PriceUnit.USD,
    )  # fmt: skip


def _fill(name: str, side: OrderSide, amount: float, price: float, fee: float, cur: str) -> Fill:
    return Fill(
        "deribit", name, f"t{amount}{price}", "o1", "h-1", side, amount, price, fee, cur, T0
    )


def test_hedge_pnl_linear_inverse_fees_and_carried() -> None:
    insts = {"BTC-PERPETUAL": _perp(), "BTC_USDC-PERPETUAL": _linear()}
    marks = {"BTC-PERPETUAL": 100_000.0, "BTC_USDC-PERPETUAL": 100_000.0}
    index = {"BTC": 100_000.0}
    fills = [
        # Linear: bought 2 BTC at 101,000, mark 100,000: −2,000 USD, fee 5 USDC.
        _fill("BTC_USDC-PERPETUAL", OrderSide.BUY, 2.0, 101_000.0, 5.0, "USDC"),
        # Inverse: sold 100,000 USD at 80,000, mark 100,000: −1 × 100,000 × (1/80,000 −
        # 1/100,000) = −0.25 BTC = −25,000 USD; fee 0.0001 BTC = 10 USD.
        _fill("BTC-PERPETUAL", OrderSide.SELL, 100_000.0, 80_000.0, 0.0001, "BTC"),
    ]
    carried = [CarriedPosition("BTC_USDC-PERPETUAL", -1.0, 99_000.0)]  # −1,000 USD
    est = hedge_pnl_usd(fills, insts, marks, index, carried)
    assert est.missing == ()
    assert est.pnl_usd == pytest.approx(-2_000.0 - 5.0 - 25_000.0 - 10.0 - 1_000.0)


def test_hedge_pnl_missing_mark_or_index_is_unknown() -> None:
    insts = {"BTC-PERPETUAL": _perp()}
    fill = _fill("BTC-PERPETUAL", OrderSide.BUY, 10.0, 80_000.0, 0.0, "BTC")
    est = hedge_pnl_usd([fill], insts, {}, {"BTC": 1.0})
    assert est.pnl_usd is None and est.missing == ("mark:BTC-PERPETUAL",)
    est = hedge_pnl_usd([fill], insts, {"BTC-PERPETUAL": math.nan}, {"BTC": 1.0})
    assert est.pnl_usd is None
    est = hedge_pnl_usd([fill], insts, {"BTC-PERPETUAL": 80_000.0}, {})
    assert est.pnl_usd is None and "index:BTC" in est.missing
    est = hedge_pnl_usd([fill], {}, {"BTC-PERPETUAL": 80_000.0}, {"BTC": 8e4})
    assert est.pnl_usd is None and est.missing == ("instrument:BTC-PERPETUAL",)


# ------------------------------------------------------------------------------- margin


def _margin(equity: float, mm: float, **kw: float | None) -> MarginInputs:
    return MarginInputs("deribit", "BTC", equity, mm, **kw)


def test_margin_ratio_trips_at_the_limit_reduce_only_by_default() -> None:
    sw = MarginSwitch(MarginSettings(maintenance_limit_pct=50.0))
    assert sw.observe(T0, _margin(10.0, 4.999)) is None
    trip = sw.observe(T0, _margin(10.0, 5.0))
    assert trip is not None and trip.code is ReasonCode.MARGIN and trip.state is R
    assert sw.observe(T0, _margin(0.0, 0.0)) is not None  # no equity
    assert sw.observe(T0, _margin(math.nan, 1.0)) is not None


def test_liquidation_too_close() -> None:
    sw = MarginSwitch(MarginSettings(liquidation_distance_pct=15.0))
    far = _margin(10.0, 1.0, index_price_usd=100.0, liquidation_price_usd=84.9)
    assert sw.observe(T0, far) is None
    at = _margin(10.0, 1.0, index_price_usd=100.0, liquidation_price_usd=85.0)
    trip = sw.observe(T0, at)
    assert trip is not None and trip.values["distance_pct"] == 15.0
    above = _margin(10.0, 1.0, index_price_usd=100.0, liquidation_price_usd=115.0)  # a short
    assert sw.observe(T0, above) is not None
    none = _margin(10.0, 1.0, index_price_usd=100.0, liquidation_price_usd=None)
    assert sw.observe(T0, none) is None


# --------------------------------------------------------------------------- clock skew


def test_clock_skew_boundary_and_rtt_correction() -> None:
    sw = ClockSkewSwitch(ClockSkewSettings(skew_limit_ms=1_000.0))
    assert sw.observe(T0 + 999, "deribit", T0) is None
    trip = sw.observe(T0 + 1_000, "deribit", T0)
    assert trip is not None and trip.code is ReasonCode.CLOCK_SKEW
    assert trip.values["skew_ms"] == 1_000.0
    assert sw.observe(T0, "deribit", T0 + 1_000) is not None  # behind counts too
    # Half of a 400 ms round trip was travel: 1,100 ms after the stamp is 900 ms of skew.
    assert clock_skew_ms(T0 + 1_100, T0, rtt_ms=400.0) == 900.0
    assert sw.observe(T0 + 1_100, "deribit", T0, rtt_ms=400.0) is None
    assert sw.observe(T0, "deribit", math.nan) is not None


def test_option_fills_are_not_hedges() -> None:
    option = Instrument(
        venue="deribit", name="BTC-27DEC24-100000-C", kind=InstrumentKind.OPTION,
        underlying="BTC", quote_currency="BTC", settlement_currency="BTC", inverse=True,
        contract_size=1.0, amount_unit=AmountUnit.COIN, min_amount=0.1, amount_step=0.1,
        tick_size=0.0005, price_unit=PriceUnit.COIN, expiry_ms=T0 + DAY_MS,
        strike_usd=100_000.0, option_type=OptionType.CALL,
    )  # fmt: skip
    fills = [_fill(option.name, OrderSide.BUY, 1.0, 0.05, 0.0003, "BTC")]
    assert hedge_pnl_usd(fills, {option.name: option}, {}, {}) == PnlEstimate(0.0, ())


def test_ntp_skew_estimate() -> None:
    # Sent at local 1,000, the venue stamps in at 1,550 and out at 1,560 (its clock is 500 ms
    # ahead), received at local 1,110: local − venue = −500 ms.
    assert clock_skew_ms_ntp(1_000.0, 1_550_000.0, 1_560_000.0, 1_110.0) == -500.0
    sw = ClockSkewSwitch(ClockSkewSettings(skew_limit_ms=500.0))
    assert sw.observe_skew(T0, "deribit", -499.0) is None
    assert sw.observe_skew(T0, "deribit", -500.0) is not None


def test_stale_unregister_stops_watching() -> None:
    sw = StaleDataSwitch(StaleDataSettings())
    sw.observe("deribit", "ticker", T0)
    sw.unregister("deribit", "ticker")
    assert sw.evaluate(T0 + DAY_MS) is None


def test_coin_limits_mean_what_they_say_despite_float_noise() -> None:
    sw = PositionMismatchSwitch(PositionMismatchSettings(consecutive_runs=1))  # 0.001 coin
    assert 1.001 - 1.0 < 0.001  # the float trap this guards against
    assert sw.observe(T0, "deribit", [PositionDiff("BTC-PERPETUAL", 1.001, 1.0)]) is not None
    assert sw.observe(T0, "deribit", [PositionDiff("BTC-PERPETUAL", 1.0009, 1.0)]) is None


@settings(max_examples=80, deadline=None)
@given(
    st.floats(1.0, 1e6),
    st.floats(0.1, 50.0),
    st.sampled_from([1.0, -1.0]),
)
def test_price_limits_trip_at_the_limit_and_not_just_below(
    price: float, limit_pct: float, sign: float
) -> None:
    s = PriceSanitySettings(max_jump_pct=limit_pct, max_deviation_pct=limit_pct)
    at = price * (1.0 + sign * limit_pct / 100.0)
    below = price * (1.0 + sign * 0.999 * limit_pct / 100.0)
    for new, trips in ((at, True), (below, False)):
        sw = PriceSanitySwitch(s)
        sw.observe(T0, "p", price)
        assert sw.observe(T0 + 1, "p", new).accepted is not trips
        assert PriceSanitySwitch(s).observe(T0, "q", new, price).accepted is not trips


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3 * MINUTE_MS), min_size=1, max_size=120), st.integers(1, 8))
def test_rate_switch_never_lets_more_than_the_budget_into_any_minute(
    times: list[int], per_minute: int
) -> None:
    rs = RateSwitch(
        OrderRateSettings(
            max_orders_per_minute=per_minute, max_orders_per_hour=10_000, max_orders_per_day=10_000
        ),
        NotionalRateSettings(),
    )
    sent: list[int] = []
    for now in sorted(times):
        if rs.check(now, 1.0) is None:
            rs.record(now, 1.0)
            sent.append(now)
        else:  # refused only when the minute is really full
            assert sum(1 for t in sent if t > now - MINUTE_MS) == per_minute
    for now in sent:
        assert sum(1 for t in sent if now - MINUTE_MS < t <= now) <= per_minute
