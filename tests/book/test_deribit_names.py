"""Deribit instrument names → Instrument with Deribit's sizes and units."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hedgerd.model import AmountUnit, InstrumentKind, OptionType, PriceUnit
from hedgerd.venues.deribit.names import (
    UnknownInstrumentError,
    format_expiry,
    option_name,
    parse_expiry_ms,
    parse_instrument_name,
)


def _ms(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, 8, tzinfo=UTC).timestamp() * 1000)


def test_inverse_products() -> None:
    perp = parse_instrument_name("BTC-PERPETUAL")
    assert (perp.kind, perp.inverse, perp.amount_unit) == (
        InstrumentKind.PERPETUAL,
        True,
        AmountUnit.USD,
    )
    assert perp.contract_size == perp.min_amount == perp.amount_step == 10.0
    assert perp.settlement_currency == "BTC" and perp.price_unit is PriceUnit.USD
    assert parse_instrument_name("ETH-PERPETUAL").contract_size == 1.0
    fut = parse_instrument_name("BTC-27DEC26")
    assert fut.kind is InstrumentKind.FUTURE and fut.expiry_ms == _ms(2026, 12, 27)
    opt = parse_instrument_name("BTC-27DEC26-100000-C")
    assert (opt.kind, opt.option_type, opt.strike_usd) == (
        InstrumentKind.OPTION,
        OptionType.CALL,
        100_000.0,
    )
    assert opt.amount_unit is AmountUnit.COIN and opt.price_unit is PriceUnit.COIN
    assert opt.min_amount == 0.1 and opt.tick_size == 0.0005 and opt.inverse
    assert parse_instrument_name("ETH-5JAN27-3000-P").min_amount == 1.0


def test_linear_products() -> None:
    perp = parse_instrument_name("BTC_USDC-PERPETUAL")
    assert (perp.kind, perp.inverse, perp.amount_unit, perp.settlement_currency) == (
        InstrumentKind.PERPETUAL,
        False,
        AmountUnit.COIN,
        "USDC",
    )
    spot = parse_instrument_name("BTC_USDC")
    assert spot.kind is InstrumentKind.SPOT and spot.underlying == "BTC"
    opt = parse_instrument_name("BTC_USDC-27DEC26-100000-C")
    assert opt.kind is InstrumentKind.OPTION and not opt.inverse
    assert opt.price_unit is PriceUnit.USD
    xrp = parse_instrument_name("XRP_USDC-27DEC26-0d625-P")
    assert xrp.strike_usd == 0.625 and xrp.option_type is OptionType.PUT


@pytest.mark.parametrize(
    "name",
    [
        "BTC-FOO",
        "BTC",
        "DOGE-PERPETUAL",
        "BTC-32DEC26",
        "BTC-27XYZ26-1000-C",
        "BTC-27DEC26-100000-X",
        "BTC-27DEC26-abc-C",
        "BTC-27DEC26-0-C",
        "BTC_USDT-PERPETUAL",
        "BTC_USDC-PERPETUAL-X",
        "",
        " BTC-PERPETUAL",
        "btc-perpetual",
    ],
)
def test_unknown_names_are_refused_with_the_name(name: str) -> None:
    with pytest.raises(UnknownInstrumentError, match=r"^unknown instrument") as info:
        parse_instrument_name(name)
    assert repr(name) in str(info.value)


def test_expiry_codes_round_trip() -> None:
    assert parse_expiry_ms("5JAN27") == _ms(2027, 1, 5)
    assert parse_expiry_ms("05JAN27") == _ms(2027, 1, 5)
    assert format_expiry(_ms(2027, 1, 5)) == "5JAN27"
    assert format_expiry(parse_expiry_ms("27DEC26")) == "27DEC26"
    assert option_name("BTC", _ms(2026, 12, 27), 100_000, True) == "BTC-27DEC26-100000-C"
    assert option_name("XRP", _ms(2026, 12, 27), 0.625, False, linear=True) == (
        "XRP_USDC-27DEC26-0d625-P"
    )
    assert parse_instrument_name(option_name("ETH", _ms(2027, 3, 26), 2500, False)).name == (
        "ETH-26MAR27-2500-P"
    )
