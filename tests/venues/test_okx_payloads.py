"""OKX payloads → hedgerd's model (contracts to coin/USD, signs, fees), OKX error codes →
classes and neutral reasons, and the order body ccxt's real okx client builds from the
adapter's params (no network: ccxt's own `create_order_request`)."""

from __future__ import annotations

import math
from typing import Any

import ccxt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_okx_units import INVERSE_SWAP_INFO, LINEAR_SWAP_INFO, OPTION_INFO, SPOT_INFO

from hedgerd.config import VenueSettings
from hedgerd.execution.client_ids import codec_for
from hedgerd.model import AmountUnit, OrderSide, OrderStatus, OrderType, TimeInForce
from hedgerd.venues.base import ErrorClass, OrderRequest, RejectReason, VenueError
from hedgerd.venues.ccxt_venue import classify_error, venue_error_code
from hedgerd.venues.okx import errors as okx_errors
from hedgerd.venues.okx.names import parse_instrument_name
from hedgerd.venues.okx.payloads import (
    BadOkxPayloadError,
    balances_from_okx,
    fill_from_okx,
    greeks_from_okx,
    order_from_okx,
    position_from_okx,
    quote_from_okx,
    unified_available,
)
from hedgerd.venues.okx.venue import OkxVenue

OPTION = parse_instrument_name("BTC-USD-261225-60000-C")
INVERSE = parse_instrument_name("BTC-USD-SWAP")
LINEAR = parse_instrument_name("BTC-USDT-SWAP")
T = 1_790_000_000_000


def test_option_position_is_coin_with_bs_delta() -> None:
    ev = position_from_okx(
        "okx", "main",
        {"instId": OPTION.name, "pos": "-3", "posSide": "net", "avgPx": "0.05", "markPx": "0.04",
         "deltaBS": "-0.0165", "deltaPA": "-0.0153", "uTime": str(T)},
        OPTION, 0,
    )  # fmt: skip
    p = ev.position
    assert p.amount == -0.03 and p.amount_unit is AmountUnit.COIN  # 3 contracts × 0.01 BTC
    assert ev.venue_qty_coin == -0.03
    assert p.venue_delta_coin == -0.0165 and p.average_price == 0.05 and p.ts_ms == T


def test_inverse_swap_position_is_usd_and_coin_at_mark() -> None:
    ev = position_from_okx(
        "okx", "main",
        {"instId": INVERSE.name, "pos": "-5", "posSide": "net", "avgPx": "80000",
         "markPx": "80000", "deltaBS": "", "uTime": ""},
        INVERSE, T,
    )  # fmt: skip
    assert ev.position.amount == -500.0 and ev.position.amount_unit is AmountUnit.USD
    assert ev.venue_qty_coin == pytest.approx(-500.0 / 80000)
    assert ev.position.venue_delta_coin == pytest.approx(-500.0 / 80000)
    assert ev.position.ts_ms == T


def test_long_short_mode_sign_and_bad_pos() -> None:
    short = position_from_okx(
        "okx", "m", {"instId": LINEAR.name, "pos": "2.5", "posSide": "short", "markPx": "1"},
        LINEAR, T,
    )  # fmt: skip
    assert short.position.amount == pytest.approx(-0.025)
    with pytest.raises(BadOkxPayloadError):
        position_from_okx("okx", "m", {"instId": LINEAR.name, "pos": ""}, LINEAR, T)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    contracts=st.integers(min_value=-100_000, max_value=100_000),
    mark=st.floats(min_value=1_000.0, max_value=500_000.0),
)
def test_position_coin_quantity_invariant(contracts: int, mark: float) -> None:
    """Inverse: USD face / mark; linear: contracts × 0.01 BTC; the sign is the position's."""
    for inst, coin in ((INVERSE, contracts * 100.0 / mark), (LINEAR, contracts * 0.01)):
        ev = position_from_okx(
            "okx", "m", {"instId": inst.name, "pos": str(contracts), "posSide": "net",
                         "markPx": repr(mark)}, inst, T,
        )  # fmt: skip
        assert ev.venue_qty_coin is not None
        assert math.isclose(ev.venue_qty_coin, coin, rel_tol=1e-9, abs_tol=1e-12)


def test_fill_fee_sign_and_coin_amount() -> None:
    raw = {"instId": OPTION.name, "tradeId": "7", "ordId": "11", "clOrdId": "hg2abc",
           "side": "sell", "fillSz": "3", "fillPx": "0.05", "fee": "-0.00009",
           "feeCcy": "BTC", "ts": str(T)}  # fmt: skip
    fill = fill_from_okx("okx", raw, OPTION)
    assert fill.amount == 0.03 and fill.side is OrderSide.SELL and fill.price == 0.05
    assert fill.fee == pytest.approx(0.00009) and fill.fee_currency == "BTC"  # paid: positive
    rebate = fill_from_okx("okx", dict(raw, fee="0.00001"), OPTION)
    assert rebate.fee == pytest.approx(-0.00001)
    # An `orders` push carries the fill as fillSz/fillPx/fillFee/fillFeeCcy/fillTime.
    push = dict(raw, fee="-1", fillFee="-0.0002", fillFeeCcy="BTC", fillTime=str(T + 5))
    assert fill_from_okx("okx", push, OPTION).fee == pytest.approx(0.0002)
    assert fill_from_okx("okx", push, OPTION).ts_ms == T + 5
    with pytest.raises(BadOkxPayloadError):
        fill_from_okx("okx", dict(raw, fillSz="0"), OPTION)


@pytest.mark.parametrize(
    ("state", "status"),
    [("live", OrderStatus.ACKED), ("partially_filled", OrderStatus.PARTIALLY_FILLED),
     ("filled", OrderStatus.FILLED), ("canceled", OrderStatus.CANCELLED),
     ("mmp_canceled", OrderStatus.CANCELLED), ("order_failed", OrderStatus.REJECTED)],
)  # fmt: skip
def test_order_states_and_units(state: str, status: OrderStatus) -> None:
    upd = order_from_okx(
        "okx",
        {"instId": INVERSE.name, "ordId": "9", "clOrdId": "", "side": "buy", "sz": "7",
         "accFillSz": "2", "px": "", "avgPx": "80000.5", "state": state, "uTime": str(T)},
        INVERSE,
    )  # fmt: skip
    assert upd.status is status and upd.label is None and upd.price is None
    assert (upd.amount, upd.filled_amount, upd.average_price) == (700.0, 200.0, 80000.5)


def test_balances_and_greeks() -> None:
    data = {"uTime": str(T), "details": [
        {"ccy": "BTC", "cashBal": "9.5", "eq": "9.7", "availEq": "9.0"},
        {"ccy": "USDT", "cashBal": "100000", "eq": "100012"},
    ]}  # fmt: skip
    bals = {b.currency: b.equity for b in balances_from_okx("okx", "m", data, 0)}
    assert bals == {"BTC": 9.5, "USDT": 100000.0}
    g = greeks_from_okx("okx", "m", "btc", {"deltaPA": "-0.2", "deltaBS": "-0.1",
                                            "gammaBS": "0.001", "ts": str(T)}, 9.7, 0)  # fmt: skip
    assert (g.underlying, g.delta_total_coin, g.options_delta_coin, g.equity_coin) == (
        "BTC", -0.2, -0.1, 9.7,
    )  # fmt: skip
    with pytest.raises(BadOkxPayloadError):
        greeks_from_okx("okx", "m", "BTC", {"deltaPA": ""}, 0.0, 0)


def test_quote_sizes_are_hedgerd_amounts() -> None:
    q = quote_from_okx("okx", {"bidPx": "80000", "bidSz": "12", "askPx": "80000.1",
                               "askSz": "3", "ts": str(T)}, INVERSE)  # fmt: skip
    assert q is not None and (q.bid_amount, q.ask_amount) == (1200.0, 300.0)
    assert quote_from_okx("okx", {"bidPx": "2", "askPx": "1", "ts": "1"}, INVERSE) is None


# ------------------------------------------------------------------------------- errors


def _okx_error(cls: type[Exception], code: str, scode: str | None = None) -> Exception:
    if scode is None:
        body = f'{{"code":"{code}","data":[],"msg":"x"}}'
    else:
        body = (f'{{"code":"{code}","data":[{{"clOrdId":"a","ordId":"","sCode":"{scode}",'
                '"sMsg":"x","tag":""}],"msg":"All operations failed"}')  # fmt: skip
    return cls(f"okx {body}")


@pytest.mark.parametrize(
    ("exc", "cls", "reason"),
    [
        (_okx_error(ccxt.InvalidOrder, "1", "51016"), ErrorClass.DEFINITIVE,
         RejectReason.DUPLICATE_CLIENT_ID),
        (_okx_error(ccxt.ExchangeError, "1", "51169"), ErrorClass.DEFINITIVE,
         RejectReason.REDUCE_ONLY),
        (_okx_error(ccxt.ExchangeError, "1", "51170"), ErrorClass.DEFINITIVE,
         RejectReason.REDUCE_ONLY),
        (_okx_error(ccxt.InsufficientFunds, "1", "51008"), ErrorClass.DEFINITIVE,
         RejectReason.INSUFFICIENT_FUNDS),
        (_okx_error(ccxt.RateLimitExceeded, "50011"), ErrorClass.RATE_LIMITED,
         RejectReason.RATE_LIMITED),
        (_okx_error(ccxt.AuthenticationError, "50113"), ErrorClass.AUTH, RejectReason.AUTH),
        (_okx_error(ccxt.InvalidNonce, "50102"), ErrorClass.AUTH, RejectReason.AUTH),
        (_okx_error(ccxt.OrderNotFound, "51603"), ErrorClass.DEFINITIVE,
         RejectReason.ORDER_NOT_FOUND),
        (_okx_error(ccxt.ExchangeNotAvailable, "50001"), ErrorClass.RETRYABLE, None),
    ],
)  # fmt: skip
def test_okx_codes_map_to_classes_and_reasons(
    exc: Exception, cls: ErrorClass, reason: RejectReason | None
) -> None:
    assert okx_errors.CODES  # the table is registered under "okx"
    err = classify_error(exc, "okx", mutating=True)
    assert (err.error_class, err.reason) == (cls, reason)
    assert not err.outcome_unknown  # an explicit answer: the outcome is known


def test_scode_wins_over_batch_code_and_deribit_codes_still_read() -> None:
    assert venue_error_code(_okx_error(ccxt.ExchangeError, "1", "51016")) == 51016
    assert venue_error_code(_okx_error(ccxt.ExchangeError, "51603")) == 51603
    deribit = ccxt.DDoSProtection('deribit {"jsonrpc":"2.0","error":{"code":10028}}')
    assert venue_error_code(deribit) == 10028


# --------------------------------------------------------------- order params → wire


def _venue() -> OkxVenue:
    settings = VenueSettings(
        exchange="okx", mode="sim", rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1/ws/v5"
    )
    venue = OkxVenue("okx-main", settings, private_stream=False)
    markets = [venue.rest.parse_market(i) for i in (OPTION_INFO, INVERSE_SWAP_INFO,
                                                    LINEAR_SWAP_INFO, SPOT_INFO)]  # fmt: skip
    venue.rest.set_markets(markets)
    return venue


LABEL = codec_for("okx", "Q7xa").client_id("0mi8k2v5c-9f1c04ab", 0, 2, 1).label


def _wire(request: OrderRequest, name: str, contracts: float) -> dict[str, Any]:
    venue = _venue()
    inst = parse_instrument_name(name, venue.name)
    params = venue.order_params(request, inst)
    symbol = venue.rest.markets_by_id[name][0]["symbol"]
    price = request.price if request.order_type is OrderType.LIMIT else None
    body: dict[str, Any] = venue.rest.create_order_request(
        symbol, str(request.order_type), str(request.side), contracts, price, params
    )
    return body


def test_codec_label_is_sent_as_clordid_with_cross_margin() -> None:
    assert len(LABEL) == 32 and LABEL.isalnum()
    body = _wire(
        OrderRequest("BTC-USD-241227-60000-P", OrderSide.BUY, 0.03, LABEL, price=0.0123,
                     time_in_force=TimeInForce.IOC),
        "BTC-USD-241227-60000-P", 3,
    )  # fmt: skip
    assert body == {"instId": "BTC-USD-241227-60000-P", "side": "buy", "ordType": "ioc",
                    "sz": "3", "tdMode": "cross", "px": "0.0123", "clOrdId": LABEL}  # fmt: skip


def test_post_only_and_reduce_only_on_swaps() -> None:
    body = _wire(
        OrderRequest("BTC-USD-SWAP", OrderSide.SELL, 500.0, LABEL, price=80000.0,
                     post_only=True, reduce_only=True),
        "BTC-USD-SWAP", 5,
    )  # fmt: skip
    assert body["ordType"] == "post_only" and body["reduceOnly"] is True and body["sz"] == "5"
    market = _wire(
        OrderRequest("BTC-USDT-SWAP", OrderSide.BUY, 0.01, LABEL, order_type=OrderType.MARKET),
        "BTC-USDT-SWAP", 1,
    )  # fmt: skip
    assert market["ordType"] == "market" and "px" not in market
    spot = _wire(
        OrderRequest("BTC-USDT", OrderSide.BUY, 0.5, LABEL, order_type=OrderType.MARKET),
        "BTC-USDT", 0.5,
    )  # fmt: skip
    assert (spot["tdMode"], spot["tgtCcy"], spot["sz"]) == ("cash", "base_ccy", "0.5")


@pytest.mark.parametrize(
    "request_",
    [
        OrderRequest("BTC-USD-SWAP", OrderSide.BUY, 100.0, "hg2-Q7xa-0-x-0-0-0", price=1.0),
        OrderRequest("BTC-USD-SWAP", OrderSide.BUY, 100.0, "a" * 33, price=1.0),
        OrderRequest("BTC-USD-241227-60000-P", OrderSide.BUY, 0.01, LABEL, reduce_only=True,
                     price=0.01),
        OrderRequest("BTC-USD-241227-60000-P", OrderSide.BUY, 0.01, LABEL,
                     order_type=OrderType.MARKET),
        OrderRequest("BTC-USD-SWAP", OrderSide.BUY, 100.0, LABEL, price=1.0, post_only=True,
                     time_in_force=TimeInForce.IOC),
    ],
)  # fmt: skip
def test_what_okx_cannot_take_is_refused_before_sending(request_: OrderRequest) -> None:
    venue = _venue()
    inst = parse_instrument_name(request_.instrument, venue.name)
    with pytest.raises(VenueError) as err:
        venue.order_params(request_, inst)
    assert err.value.error_class is ErrorClass.DEFINITIVE
    assert err.value.reason is RejectReason.INVALID_ORDER


# ------------------------------------------------------------------- raw pushes → events


def test_raw_pushes_become_events_and_bad_items_are_refused_alone() -> None:
    """What the hooks on ccxt.pro's handlers hand over (the pushes' shapes of okx.md §3):
    each item read on its own; an order push with a `tradeId` is an order and a fill."""
    from hedgerd.venues.base import BalanceEvent, FillEvent, OrderEvent, PositionEvent

    venue = _venue()
    venue._instruments = {i.name: i for i in (INVERSE, OPTION)}
    order = {"instId": INVERSE.name, "ordId": "5", "clOrdId": LABEL, "side": "buy", "sz": "3",
             "accFillSz": "1", "px": "80000", "avgPx": "80000", "state": "partially_filled",
             "tradeId": "77", "fillSz": "1", "fillPx": "80000", "fillFee": "-0.0000006",
             "fillFeeCcy": "BTC", "fillTime": str(T), "uTime": str(T)}  # fmt: skip
    venue._on_raw("handle_orders", {"arg": {"channel": "orders"},
                                    "data": [order, {"instId": "NOPE"}, "junk"]})  # fmt: skip
    venue._on_raw(
        "handle_positions",
        {
            "arg": {"channel": "positions"},
            "data": [{"instId": INVERSE.name, "pos": "1", "posSide": "net", "markPx": "80000"}],
        },
    )
    venue._on_raw(
        "handle_balance",
        {
            "arg": {"channel": "account"},
            "data": [{"uTime": str(T), "details": [{"ccy": "BTC", "cashBal": "9.9", "eq": "10"}]}],
        },
    )
    venue._on_raw("handle_ticker", {"arg": {"channel": "tickers"}, "data": [
        {"instId": INVERSE.name, "bidPx": "79999.9", "bidSz": "4", "askPx": "80000",
         "askSz": "2", "ts": str(T)}]})  # fmt: skip
    events = []
    while venue.pending_events():
        events.append(venue._queue.get_nowait())
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["FillEvent", "OrderEvent", "PositionEvent", "BalanceEvent", "QuoteEvent"]
    assert venue.refused_entries == 2
    f, o, p, b = events[0], events[1], events[2], events[3]
    assert isinstance(o, OrderEvent) and o.order.amount == 300.0 and o.order.label == LABEL
    assert isinstance(f, FillEvent) and f.fill.amount == 100.0 and f.fill.fee > 0
    assert isinstance(p, PositionEvent) and p.position.amount == 100.0
    assert isinstance(b, BalanceEvent) and b.balance.equity == 9.9
    # cancels and queries of order 5 now know its instrument
    assert venue._order_inst["5"] == INVERSE.name and venue._label_inst[LABEL] == INVERSE.name


def test_ws_class_hooks_ccxt_handlers() -> None:
    """The ccxt.pro subclass routes OKX channels to hooked handlers (ccxt dispatches on
    `arg.channel` through bound methods, so the overrides are the ones called)."""
    from hedgerd.venues.okx.venue import okx_ws_class

    cls = okx_ws_class()
    for name in ("handle_orders", "handle_positions", "handle_balance", "handle_ticker"):
        assert name in vars(cls)
    assert cls.__mro__[2].__name__ == "okx"


_JSON_LEAF = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(
    max_size=12
) | st.sampled_from(["", "0", "-3", "1e400", "nan", "buy", "sell", "net", "short",
                     INVERSE.name, OPTION.name, "filled", "live"])  # fmt: skip
_FIELDS = ["instId", "ordId", "clOrdId", "side", "sz", "accFillSz", "px", "avgPx", "state",
           "tradeId", "fillSz", "fillPx", "fillFee", "fillFeeCcy", "fillTime", "uTime", "pos",
           "posSide", "markPx", "deltaBS", "details", "ccy", "cashBal", "eq", "bidPx", "askPx",
           "bidSz", "askSz", "ts"]  # fmt: skip
_ITEM = st.dictionaries(
    st.sampled_from(_FIELDS),
    _JSON_LEAF
    | st.lists(st.dictionaries(st.sampled_from(_FIELDS), _JSON_LEAF, max_size=4), max_size=2),
    max_size=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    method=st.sampled_from(["handle_orders", "handle_positions", "handle_balance",
                            "handle_ticker"]),
    data=st.lists(_ITEM | _JSON_LEAF, max_size=4),
)  # fmt: skip
def test_hostile_pushes_are_refused_never_raised(method: str, data: list[Any]) -> None:
    """Whatever a push holds, the hook neither raises nor emits an event it could not read:
    each item becomes events or one counted refusal."""
    venue = _venue()
    venue._instruments = {i.name: i for i in (INVERSE, OPTION)}
    venue._on_raw(method, {"arg": {"channel": "x"}, "data": data})
    events = venue.pending_events()
    assert venue.refused_entries <= len(data)
    assert events + venue.refused_entries >= 0


@pytest.mark.parametrize(
    ("detail", "account_usd", "expected"),
    [
        # The currency's own room is the tighter: it stands.
        ({"availEq": "0.5", "eq": "2", "eqUsd": "200000"}, 1e6, 0.5),
        # The account's room (USD at OKX's own price of the coin) is the tighter.
        ({"availEq": "5", "eq": "2", "eqUsd": "200000"}, 100_000.0, 1.0),
        ({"availEq": "5", "coinUsdPrice": "50000", "eq": "2", "eqUsd": "1"}, 100_000.0, 2.0),
        # The account has none left: no room in any currency, even one with equity to spare.
        ({"availEq": "5", "eq": "2", "eqUsd": "200000"}, -10.0, -0.0001),
        ({"availEq": "5", "eq": "0", "eqUsd": "0"}, -10.0, -10.0),  # (its sign is what counts)
        ({"availEq": "5", "eq": "0", "eqUsd": "0"}, 1e6, 5.0),  # no price, room: its own
        ({"availEq": ""}, math.nan, math.nan),  # not said: not judged
        ({"availEq": "3"}, math.nan, 3.0),  # Futures mode: its own only
    ],
)
def test_unified_available_is_capped_by_the_accounts_available_equity(
    detail: dict[str, str], account_usd: float, expected: float
) -> None:
    got = unified_available(detail, account_usd)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)
