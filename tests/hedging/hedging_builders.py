"""Builders for controller inputs."""

from __future__ import annotations

from collections.abc import Sequence

from hedgerd.hedging.inputs import HedgeVenueState, UnderlyingRisk
from hedgerd.model import (
    AmountUnit,
    BookLevel,
    HedgeDecision,
    HedgeLeg,
    HedgeTrigger,
    Instrument,
    InstrumentKind,
    OrderBookSnapshot,
    PriceUnit,
    Quote,
)

SPOT = 50_000.0
NOW_MS = 1_800_000_000_000


def instrument(
    name: str,
    kind: InstrumentKind = InstrumentKind.PERPETUAL,
    taker_fee: float = 0.0005,
    maker_fee: float = 0.0,
    venue: str = "deribit",
    inverse: bool = True,
) -> Instrument:
    return Instrument(
        venue=venue,
        name=name,
        kind=kind,
        underlying="BTC",
        quote_currency="USD",
        settlement_currency="BTC" if inverse else "USDC",
        inverse=inverse,
        contract_size=10.0 if inverse else 0.001,
        amount_unit=AmountUnit.USD if inverse else AmountUnit.COIN,
        min_amount=10.0 if inverse else 0.001,
        amount_step=10.0 if inverse else 0.001,
        tick_size=0.5,
        price_unit=PriceUnit.USD,
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        expiry_ms=NOW_MS + 60 * 86_400_000 if kind is InstrumentKind.FUTURE else None,
    )


def venue_state(
    name: str,
    kind: InstrumentKind = InstrumentKind.PERPETUAL,
    mid: float = SPOT,
    half_spread_usd: float = 0.5,
    level_usd: float = 1_000_000.0,
    levels: int = 5,
    level_step_usd: float = 5.0,
    taker_fee: float = 0.0005,
    maker_fee: float = 0.0,
    funding_8h: float | None = None,
    basis_annual: float | None = None,
    position_amount: float = 0.0,
    max_position_amount: float | None = None,
    venue: str = "deribit",
) -> HedgeVenueState:
    """An inverse contract sized in USD with `levels` levels of `level_usd` a side."""
    inst = instrument(name, kind, taker_fee, maker_fee, venue)
    bid, ask = mid - half_spread_usd, mid + half_spread_usd
    asks = tuple(BookLevel(ask + i * level_step_usd, level_usd) for i in range(levels))
    bids = tuple(BookLevel(bid - i * level_step_usd, level_usd) for i in range(levels))
    return HedgeVenueState(
        instrument=inst,
        quote=Quote(venue, name, bid, level_usd, ask, level_usd, NOW_MS),
        delta_coin_per_amount=1.0 / mid,
        position_amount=position_amount,
        book=OrderBookSnapshot(venue, name, bids, asks, NOW_MS),
        funding_8h=funding_8h,
        basis_annual=basis_annual,
        max_position_amount=max_position_amount,
    )


def risk(
    net_delta_coin: float,
    gamma: float = -2e-5,
    spot: float = SPOT,
    vol: float = 0.6,
    tau_years: float = 30 / 365,
    **kw: float,
) -> UnderlyingRisk:
    return UnderlyingRisk(
        underlying="BTC",
        spot_usd=spot,
        net_delta_coin=net_delta_coin,
        gamma_coin_per_usd=gamma,
        vol=vol,
        tau_years=tau_years,
        **kw,  # type: ignore[arg-type]
    )


def total_delta(legs: Sequence[object]) -> float:
    return sum(leg.delta_coin for leg in legs)  # type: ignore[attr-defined]


def hedge_decision(
    underlying: str,
    ts_ms: int,
    net_coin: float,
    *,
    after_coin: float | None = None,
    legs: tuple[HedgeLeg, ...] = (),
    band_coin: tuple[float, float, float] = (-1.0, 0.0, 1.0),
    spot_usd: float = SPOT,
    decision_id: str | None = None,
) -> HedgeDecision:
    """A controller decision: a hold without `legs`; `band_coin` is (lower, target, upper)."""
    lower, target, upper = band_coin
    after = net_coin if after_coin is None else after_coin
    return HedgeDecision(
        decision_id=decision_id or f"{underlying}-{ts_ms}",
        underlying=underlying,
        policy="test",
        ts_ms=ts_ms,
        trigger=HedgeTrigger.BAND if legs else HedgeTrigger.NONE,
        net_delta_coin=net_coin,
        book_delta_coin=net_coin,
        in_flight_delta_coin=0.0,
        target_delta_coin=target,
        band_lower_coin=lower,
        band_upper_coin=upper,
        wanted_coin=after - net_coin,
        delta_after_coin=after,
        legs=legs,
        expected_cost_usd=sum(leg.expected_cost_usd for leg in legs),
        lambda_frac=0.0005,
        gamma_coin_per_usd=0.001,
        spot_usd=spot_usd,
    )
