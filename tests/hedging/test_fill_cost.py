"""`hedging.costs.fill_cost`: a hedge fill's realized cost (fee + distance from a reference) in
USD for each unit combination; the daemon's hedge-cost count and the journal picture use it."""

from __future__ import annotations

import math

import pytest

from hedgerd.hedging.costs import fill_cost
from hedgerd.model import AmountUnit, OrderSide, PriceUnit
from hedgerd.model.orders import Fill

CASES = {
    # An inverse perpetual (USD amount, coin fee) sold 100 below the reference.
    "inverse": (
        OrderSide.SELL, 1_000.0, AmountUnit.USD, PriceUnit.USD, 49_900.0, 50_000.0,
        0.0001, "btc", 50_000.0, 1_000.0 * 100.0 / 49_900.0, 5.0, 1_000.0,
    ),
    # Coin-priced, coin amount, USDC fee, bought below the reference: a gain (negative cost).
    "coin price": (
        OrderSide.BUY, 2.0, AmountUnit.COIN, PriceUnit.COIN, 0.04, 0.05,
        1.5, "USDC", 50_000.0, 2.0 * (2_000.0 - 2_500.0), 1.5, 4_000.0,
    ),
    # A fee that is not a number (no index to convert it) counts as 0.
    "nan fee": (
        OrderSide.BUY, 1.0, AmountUnit.COIN, PriceUnit.USD, 100.0, 100.0,
        0.001, "BTC", math.nan, 0.0, 0.0, 100.0,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_fill_cost(case: str) -> None:
    (side, amount, amount_unit, price_unit, price, ref, fee, fee_ccy, index, slip, fee_usd,
     notional) = CASES[case]  # fmt: skip
    paid = fill_cost(
        Fill("deribit", "X", "t", "o", "l", side, amount, price, fee, fee_ccy, 0),
        underlying="BTC",
        amount_unit=amount_unit,
        price_unit=price_unit,
        index_usd=index,
        reference_price=ref,
    )
    assert paid.slippage_usd == pytest.approx(slip)
    assert paid.fee_usd == pytest.approx(fee_usd)
    assert paid.notional_usd == pytest.approx(notional)
    assert paid.cost_usd == pytest.approx(slip + fee_usd)
