"""Positions and balances as the venue reports them, in the venue's units."""

from __future__ import annotations

from dataclasses import dataclass

from hedgerd.model.instruments import AmountUnit


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position (long > 0) of `amount` in `amount_unit`: USD for inverse futures and
    perpetuals, coin for options, linear contracts and spot.

    `venue_delta_coin` is the venue's own delta for cross-checks (None when not reported).
    """

    venue: str
    account: str
    instrument: str
    amount: float
    amount_unit: AmountUnit
    ts_ms: int
    average_price: float | None = None
    venue_delta_coin: float | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """Equity held in one currency (coin collateral: BTC, ETH; or USDC), in that currency."""

    venue: str
    account: str
    currency: str
    equity: float
    ts_ms: int
