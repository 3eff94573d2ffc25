"""OKX names and units: instId ↔ Instrument, contracts ↔ hedgerd amounts (coin or USD), the
instruments ccxt's real okx market parser hands over (with `ctMult`, which ccxt ignores), and
the wire body ccxt builds from the adapter's order params."""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.book.positions_file import (
    BookFileError,
    build_book,
    parse_book_csv,
    parse_book_json,
)
from hedgerd.model import AmountUnit, InstrumentKind, OptionType, PriceUnit, UnknownInstrumentError
from hedgerd.sim.okx import limits as sim_okx_limits
from hedgerd.venues import registry
from hedgerd.venues.okx.contracts import (
    ContractSizeError,
    amount_to_contracts,
    contracts_to_amount,
    contracts_to_coin,
    instrument_from_okx,
)
from hedgerd.venues.okx.limits import ENDPOINT_LIMITS
from hedgerd.venues.okx.names import (
    SPECS,
    format_expiry,
    option_name,
    parse_expiry_ms,
    parse_instrument_name,
)

# Real `public/instruments` entries (ccxt's recorded markets, okx.md §1), trimmed.
OPTION_INFO = {
    "instId": "BTC-USD-241227-60000-P", "instType": "OPTION", "uly": "BTC-USD",
    "instFamily": "BTC-USD", "settleCcy": "BTC", "ctVal": "1", "ctMult": "0.01",
    "ctValCcy": "BTC", "ctType": "", "optType": "P", "stk": "60000",
    "expTime": "1735286400000", "listTime": "1702629020673", "lotSz": "1", "minSz": "1",
    "tickSz": "0.0001", "lever": "", "maxMktSz": "5000", "state": "live", "baseCcy": "",
    "quoteCcy": "",
}  # fmt: skip
LINEAR_SWAP_INFO = {
    "instId": "BTC-USDT-SWAP", "instType": "SWAP", "uly": "BTC-USDT", "instFamily": "BTC-USDT",
    "settleCcy": "USDT", "ctVal": "0.01", "ctMult": "1", "ctValCcy": "BTC", "ctType": "linear",
    "lotSz": "0.1", "minSz": "0.1", "tickSz": "0.1", "lever": "100", "state": "live",
    "expTime": "", "optType": "", "stk": "", "baseCcy": "", "quoteCcy": "",
    "listTime": "1573557408000", "maxMktSz": "12000",
}  # fmt: skip
INVERSE_SWAP_INFO = dict(
    LINEAR_SWAP_INFO, instId="BTC-USD-SWAP", uly="BTC-USD", instFamily="BTC-USD",
    settleCcy="BTC", ctVal="100", ctValCcy="USD", ctType="inverse", lotSz="1", minSz="1",
)  # fmt: skip
FUTURE_INFO = dict(
    INVERSE_SWAP_INFO, instId="BTC-USD-241227", instType="FUTURES", expTime="1735286400000"
)
SPOT_INFO = {
    "instId": "BTC-USDT", "instType": "SPOT", "baseCcy": "BTC", "quoteCcy": "USDT",
    "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "uly": "", "instFamily": "",
    "lotSz": "0.00000001", "minSz": "0.00001", "tickSz": "0.1", "state": "live",
    "expTime": "", "optType": "", "stk": "", "lever": "10", "listTime": "1548133413000",
}  # fmt: skip


def test_option_name_parses_to_coin_sized_inverse_option() -> None:
    inst = parse_instrument_name("BTC-USD-261225-60000-C")
    assert inst.kind is InstrumentKind.OPTION and inst.inverse
    assert inst.option_type is OptionType.CALL and inst.strike_usd == 60000.0
    assert inst.expiry_ms == parse_expiry_ms("261225")
    assert format_expiry(inst.expiry_ms) == "261225"
    # One contract is ctMult = 0.01 BTC; premium in coin.
    assert inst.amount_unit is AmountUnit.COIN and inst.price_unit is PriceUnit.COIN
    assert inst.contract_size == inst.amount_step == inst.min_amount == 0.01
    assert parse_instrument_name("ETH-USD-261225-2500-P").contract_size == 0.1


@pytest.mark.parametrize(
    ("name", "kind", "unit", "size", "settle"),
    [
        ("BTC-USD-SWAP", InstrumentKind.PERPETUAL, AmountUnit.USD, 100.0, "BTC"),
        ("ETH-USD-SWAP", InstrumentKind.PERPETUAL, AmountUnit.USD, 10.0, "ETH"),
        ("BTC-USD-261225", InstrumentKind.FUTURE, AmountUnit.USD, 100.0, "BTC"),
        ("BTC-USDT-SWAP", InstrumentKind.PERPETUAL, AmountUnit.COIN, 0.01, "USDT"),
        ("ETH-USDT-SWAP", InstrumentKind.PERPETUAL, AmountUnit.COIN, 0.1, "USDT"),
        ("BTC-USDT-261225", InstrumentKind.FUTURE, AmountUnit.COIN, 0.01, "USDT"),
        ("BTC-USDT", InstrumentKind.SPOT, AmountUnit.COIN, 1.0, "USDT"),
    ],
)
def test_non_option_names(
    name: str, kind: InstrumentKind, unit: AmountUnit, size: float, settle: str
) -> None:
    inst = parse_instrument_name(name, "okx-main")
    assert (inst.kind, inst.amount_unit, inst.contract_size, inst.settlement_currency) == (
        kind, unit, size, settle,
    )  # fmt: skip
    assert inst.venue == "okx-main" and inst.underlying == name.split("-")[0]
    assert inst.inverse is (settle == inst.underlying)
    assert registry.parse_instrument_name("okx", name).name == name


@pytest.mark.parametrize(
    "name",
    ["BTC-PERPETUAL", "XRP-USD-SWAP", "BTC-USD-261325", "BTC-USD-261225-0-C",
     "BTC-USD-261225-60000-X", "BTC-EUR-SWAP", "BTC", "-USD-SWAP", "BTC-USD-261225-1-C-X"],
)  # fmt: skip
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(UnknownInstrumentError):
        parse_instrument_name(name)


def test_registry_knows_both_exchanges() -> None:
    assert {"deribit", "okx"} <= set(registry.specs())
    with pytest.raises(registry.UnknownExchangeError):
        registry.venue_spec("bybit")


def test_endpoint_windows_stay_inside_okx_windows() -> None:
    """Each tight endpoint's own window counts over OKX's 2 s and admits fewer than OKX does
    in one (the simulator's table, okx.md §4): a burst never meets 50011."""
    paths = {
        "privateGetTradeFillsHistory": "trade/fills-history",
        "privateGetAccountBalance": "account/balance",
        "privateGetAccountPositions": "account/positions",
        "privateGetAccountGreeks": "account/greeks",
        "publicGetPublicMarkPrice": "public/mark-price",
        "publicGetPublicFundingRate": "public/funding-rate",
        "publicGetPublicTime": "public/time",
        "publicGetMarketHistoryIndexCandles": "market/history-index-candles",
    }
    assert set(ENDPOINT_LIMITS) == {*paths, "privatePostTradeCancelAllAfter"}
    for method, path in paths.items():
        n, window_s = ENDPOINT_LIMITS[method]
        assert window_s == sim_okx_limits.WINDOW_S and n < sim_okx_limits.LIMITS[path], method
    n, window_s = ENDPOINT_LIMITS["privatePostTradeCancelAllAfter"]
    assert n / window_s * sim_okx_limits.WINDOW_S <= sim_okx_limits.LIMITS["trade/cancel-all-after"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    base=st.sampled_from(sorted(SPECS)),
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2040, 12, 31)),
    strike=st.integers(min_value=1, max_value=2_000_000) | st.decimals(
        min_value="0.5", max_value="99999", places=2).map(float),
    call=st.booleans(),
)  # fmt: skip
def test_option_name_round_trip(base: str, day: Any, strike: float, call: bool) -> None:
    expiry = parse_expiry_ms(day.strftime("%y%m%d"))
    name = option_name(base, expiry, float(strike), call)
    inst = parse_instrument_name(name)
    assert inst.name == name
    assert inst.expiry_ms == expiry and inst.strike_usd == float(strike)
    assert inst.is_call is call
    assert option_name(base, expiry, inst.strike_usd, inst.is_call) == name


NAMES = ["BTC-USD-261225-60000-C", "ETH-USD-261225-2500-P", "BTC-USD-SWAP", "ETH-USD-SWAP",
         "BTC-USD-261225", "BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USDT"]  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(NAMES), lots=st.integers(min_value=1, max_value=10**7))
def test_contracts_amount_round_trip(name: str, lots: int) -> None:
    """Any whole number of lots converts to contracts and back exactly, and the contracts are
    a whole number of OKX lots (lot in contracts = step / contract size)."""
    inst = parse_instrument_name(name)
    amount = float(f"{lots * inst.amount_step:.12g}")
    if amount < inst.min_amount:  # spot: minSz is above one lot
        with pytest.raises(ContractSizeError):
            amount_to_contracts(inst, amount)
        return
    contracts = amount_to_contracts(inst, amount)
    assert math.isclose(contracts_to_amount(inst, contracts), amount, rel_tol=1e-12)
    lot_contracts = inst.amount_step / inst.contract_size
    assert abs(contracts / lot_contracts - lots) < 1e-6


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(NAMES),
    contracts=st.integers(min_value=-(10**6), max_value=10**6),
    mark=st.floats(min_value=100.0, max_value=1e6),
)
def test_coin_quantity_invariants(name: str, contracts: int, mark: float) -> None:
    """Coin of the underlying: option contracts × ctMult, linear × ctVal, inverse USD face
    / mark; sign preserved; linear in the contracts."""
    inst = parse_instrument_name(name)
    coin = contracts_to_coin(inst, contracts, mark)
    if inst.is_option:
        expected = contracts * SPECS[inst.underlying].option_coin
    elif inst.inverse:
        expected = contracts * SPECS[inst.underlying].inverse_usd / mark
    elif inst.kind is InstrumentKind.SPOT:
        expected = float(contracts)
    else:
        expected = contracts * SPECS[inst.underlying].linear_coin
    assert math.isclose(coin, expected, rel_tol=1e-9, abs_tol=1e-12)
    assert math.copysign(1, coin) == math.copysign(1, contracts) or contracts == 0
    assert math.isclose(contracts_to_coin(inst, 2 * contracts, mark), 2 * coin, rel_tol=1e-9,
                        abs_tol=1e-12)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "amount"),
    [("BTC-USD-261225-60000-C", 0.015), ("BTC-USD-SWAP", 150.0), ("BTC-USD-SWAP", 0.0),
     ("BTC-USDT-SWAP", -0.01), ("BTC-USDT-SWAP", math.nan), ("BTC-USDT", 0.000001)],
)  # fmt: skip
def test_amounts_off_the_lot_are_refused(name: str, amount: float) -> None:
    with pytest.raises(ContractSizeError):
        amount_to_contracts(parse_instrument_name(name), amount)


def _okx_market(info: dict[str, Any]) -> dict[str, Any]:
    """ccxt's real okx market parser on one raw instrument (no network)."""
    market: dict[str, Any] = ccxt_async.okx().parse_market(info)
    return market


def test_ccxt_okx_option_market_is_100x_too_large_and_ours_is_not() -> None:
    market = _okx_market(OPTION_INFO)
    assert market["contractSize"] == 1.0  # ccxt: ctVal, ctMult ignored
    inst = instrument_from_okx("okx", market["info"])
    assert inst is not None
    assert inst.contract_size == 0.01 and inst.amount_unit is AmountUnit.COIN
    assert inst.min_amount == inst.amount_step == 0.01 and inst.tick_size == 0.0001
    assert inst.expiry_ms == 1735286400000 and inst.option_type is OptionType.PUT
    named = parse_instrument_name("BTC-USD-241227-60000-P")
    for field in (
        "kind",
        "underlying",
        "settlement_currency",
        "inverse",
        "contract_size",
        "amount_unit",
        "price_unit",
        "expiry_ms",
        "strike_usd",
        "option_type",
    ):
        assert getattr(inst, field) == getattr(named, field), field


@pytest.mark.parametrize(
    ("info", "unit", "size", "step"),
    [(LINEAR_SWAP_INFO, AmountUnit.COIN, 0.01, 0.001),
     (INVERSE_SWAP_INFO, AmountUnit.USD, 100.0, 100.0),
     (FUTURE_INFO, AmountUnit.USD, 100.0, 100.0), (SPOT_INFO, AmountUnit.COIN, 1.0, 1e-8)],
)  # fmt: skip
def test_instruments_from_okx_fields(
    info: dict[str, Any], unit: AmountUnit, size: float, step: float
) -> None:
    market = _okx_market(info)
    inst = instrument_from_okx("okx", market["info"])
    assert inst is not None and inst.name == info["instId"]
    assert (inst.amount_unit, inst.contract_size, inst.amount_step) == (unit, size, step)
    assert inst.price_unit is PriceUnit.USD


def test_instrument_without_sizes_is_skipped() -> None:
    assert instrument_from_okx("okx", dict(OPTION_INFO, ctMult="")) is None
    assert instrument_from_okx("okx", dict(OPTION_INFO, state="expired")) is None
    assert instrument_from_okx("okx", {"instId": ""}) is None


def test_book_files_name_their_exchange() -> None:
    """`hedgerd book` files: `venue: okx` (JSON) or a `venue,okx` record (CSV) reads OKX
    names; sizes are hedgerd amounts (3 BTC option contracts are 0.03 BTC) on OKX's lots."""
    doc = {
        "venue": "okx",
        "valuation_time": "2026-11-20T11:00:00Z",
        "index_prices_usd": {"BTC": 91250.0},
        "balances": {"BTC": 1.0, "USDT": 5000.0},
        "positions": [
            {"instrument": "BTC-USD-261225-95000-C", "size": -0.03, "mark_iv_pct": 52.0},
            {"instrument": "BTC-USD-SWAP", "size": -1000, "average_price_usd": 90500.0},
            {"instrument": "BTC-USDT-SWAP", "size": 0.02, "average_price_usd": 91000.0},
        ],
    }
    bf = parse_book_json(json.dumps(doc))
    assert [p.instrument.contract_size for p in bf.positions] == [0.01, 100.0, 0.01]
    book = build_book(bf)
    assert book.underlying_snapshot("BTC", bf.valuation_time_ms).complete
    with pytest.raises(BookFileError, match=r"positions row 1.*not a multiple"):
        parse_book_json(
            json.dumps(
                doc
                | {
                    "positions": [
                        {
                            "instrument": "BTC-USD-261225-95000-C",
                            "size": -0.015,
                            "mark_iv_pct": 52.0,
                        }
                    ]
                }
            )
        )
    with pytest.raises(BookFileError, match="positions row 1"):
        parse_book_json(json.dumps(doc | {"venue": "deribit"}))  # an OKX name on Deribit
    with pytest.raises(BookFileError, match="no adapter for exchange 'bybit'"):
        parse_book_json(json.dumps(doc | {"venue": "bybit"}))
    csv_text = (
        "record,name,size,mark_iv_pct,mark_price,average_price_usd,underlying_price_usd,value\n"
        "time,,,,,,,2026-11-20T11:00:00Z\nvenue,okx,,,,,,\nindex,BTC,,,,,,91250\n"
        "position,BTC-USD-SWAP,-1000,,,90500,,\n"
    )
    assert parse_book_csv(csv_text).positions[0].instrument.amount_unit is AmountUnit.USD
    with pytest.raises(BookFileError, match="venue record must come before"):
        parse_book_csv(csv_text + "venue,deribit,,,,,,\n")
