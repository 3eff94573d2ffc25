"""Unit conversions between a venue's amounts and prices and hedgerd's coin/USD quantities.

One place per venue convention (DESIGN: "conversions live in one place per venue"). Deribit's
convention, which these functions follow: inverse futures and perpetuals are sized in USD
(multiples of `contract_size`), everything else (options, linear perpetuals and futures,
spot) in coin of the underlying. Prices are USD per coin, except inverse options, whose
premium is quoted in coin per coin of underlying.
"""

from __future__ import annotations

import math

from hedgerd.model import AmountUnit, Instrument, PriceUnit


def _check_price(price_usd: float, what: str) -> None:
    if not (math.isfinite(price_usd) and price_usd > 0):
        raise ValueError(f"{what} must be a positive finite USD price, got {price_usd}")


def amount_to_qty_coin(instrument: Instrument, amount: float, price_usd: float) -> float:
    """A signed amount in the instrument's amount unit → coin of the underlying.

    `price_usd` (USD per coin) is the price the venue converts at: for Deribit inverse
    futures that is the instrument's mark price (what `size_currency` uses). Ignored for
    coin-sized instruments.
    """
    if instrument.amount_unit is AmountUnit.COIN:
        return amount
    _check_price(price_usd, f"{instrument.name} conversion price")
    return amount / price_usd


def qty_coin_to_amount(instrument: Instrument, qty_coin: float, price_usd: float) -> float:
    """Coin of the underlying → the instrument's amount unit (not rounded to the step)."""
    if instrument.amount_unit is AmountUnit.COIN:
        return qty_coin
    _check_price(price_usd, f"{instrument.name} conversion price")
    return qty_coin * price_usd


def round_to_step(amount: float, step: float) -> tuple[float, float]:
    """Round a signed amount toward zero onto the venue's step.

    Returns `(rounded, remainder)` with `rounded + remainder == amount` (up to float
    rounding): what rounding leaves is carried into the next decision, not lost.
    """
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be positive, got {step}")
    # The small epsilon absorbs binary noise (0.3 / 0.1 = 2.9999999999999996).
    n = math.floor(abs(amount) / step + 1e-9)
    rounded = math.copysign(float(f"{n * step:.12g}"), amount) if n else 0.0
    return rounded, amount - rounded


def price_to_usd(instrument: Instrument, price: float, underlying_usd: float) -> float:
    """A price in the instrument's price unit → USD per coin of underlying.

    Inverse options quote premium in coin: times the underlying (index) price in USD.
    """
    if instrument.price_unit is PriceUnit.USD:
        return price
    _check_price(underlying_usd, f"{instrument.name} underlying price")
    return price * underlying_usd


def price_to_coin(instrument: Instrument, price: float, underlying_usd: float) -> float:
    """A price in the instrument's price unit → coin per coin of underlying (premium in coin).

    Only meaningful for options (a future's price in coin is 1 by construction)."""
    if instrument.price_unit is PriceUnit.COIN:
        return price
    _check_price(underlying_usd, f"{instrument.name} underlying price")
    return price / underlying_usd


def notional_usd(instrument: Instrument, amount: float, underlying_usd: float) -> float:
    """Absolute notional of `amount` (instrument's amount unit) in USD of underlying exposure.

    USD-sized contracts are their own notional; coin-sized ones are coin times the underlying
    price (for options: the underlying amount, which is what Deribit's fee rule uses)."""
    if instrument.amount_unit is AmountUnit.USD:
        return abs(amount)
    _check_price(underlying_usd, f"{instrument.name} underlying price")
    return abs(amount) * underlying_usd


def depth_to_notional(
    instrument: Instrument,
    levels: list[tuple[float, float]],
    depth_notional_usd: float,
    underlying_usd: float,
) -> list[tuple[float, float]]:
    """The best levels (`(price, amount)`, best first) whose cumulative USD notional first
    reaches `depth_notional_usd`; all levels if the book is thinner than that."""
    out: list[tuple[float, float]] = []
    total_usd = 0.0
    for price, amount in levels:
        out.append((price, amount))
        total_usd += notional_usd(instrument, amount, underlying_usd)
        if total_usd >= depth_notional_usd:
            break
    return out


__all__ = [
    "amount_to_qty_coin",
    "depth_to_notional",
    "notional_usd",
    "price_to_coin",
    "price_to_usd",
    "qty_coin_to_amount",
    "round_to_step",
]
