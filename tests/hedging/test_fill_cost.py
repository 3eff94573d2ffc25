"""`hedging.costs.fill_cost`: a hedge fill's realized cost (fee + distance from a reference) in
USD for each unit combination; the daemon's hedge-cost count and the journal picture use it."""

from __future__ import annotations

import pytest

from hedgerd.hedging.costs import fill_cost
from hedgerd.model import AmountUnit, OrderSide, PriceUnit
from hedgerd.model.orders import Fill


def _fill(side: OrderSide, amount: float, price: float, fee: float, fee_ccy: str) -> Fill:
    return Fill("deribit", "X", "t", "o", "l", side, amount, price, fee, fee_ccy, 0)


def test_inverse_usd_amount_coin_fee() -> None:
    paid = fill_cost(
        _fill(OrderSide.SELL, 1_000.0, 49_900.0, 0.0001, "btc"),
        underlying="BTC",
        amount_unit=AmountUnit.USD,
        price_unit=PriceUnit.USD,
        index_usd=50_000.0,
        reference_price=50_000.0,
    )
    assert paid.slippage_usd == pytest.approx(1_000.0 * 100.0 / 49_900.0)  # sold below
    assert paid.fee_usd == pytest.approx(5.0)
    assert paid.notional_usd == 1_000.0
    assert paid.cost_usd == pytest.approx(paid.fee_usd + paid.slippage_usd)


def test_coin_price_and_amount_usdc_fee_and_a_better_price() -> None:
    paid = fill_cost(
        _fill(OrderSide.BUY, 2.0, 0.04, 1.5, "USDC"),
        underlying="BTC",
        amount_unit=AmountUnit.COIN,
        price_unit=PriceUnit.COIN,
        index_usd=50_000.0,
        reference_price=0.05,
    )
    assert paid.slippage_usd == pytest.approx(2.0 * (2_000.0 - 2_500.0))  # bought below: a gain
    assert paid.fee_usd == 1.5
    assert paid.notional_usd == pytest.approx(4_000.0)


def test_a_fee_that_is_not_a_number_counts_as_zero() -> None:
    paid = fill_cost(
        _fill(OrderSide.BUY, 1.0, 100.0, 0.001, "ETH"),
        underlying="ETH",
        amount_unit=AmountUnit.COIN,
        price_unit=PriceUnit.USD,
        index_usd=float("nan"),
        reference_price=100.0,
    )
    assert paid.fee_usd == 0.0 and paid.slippage_usd == 0.0
