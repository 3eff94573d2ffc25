"""Deribit's JSON payloads → hedgerd's model, and the environment check.

Pure functions: positions (`size` in the instrument's amount unit, `size_currency` in coin),
trades, orders, account summaries (the venue's Greeks and cash balance), tickers and top of
book. Bad values are refused, never passed on as NaN prices or guessed: a ticker or quote
that cannot be read is None; a position, trade, order or account summary whose essential
fields are missing or not finite numbers raises `BadPayloadError` (a missing position size
read as 0 would look like a closed position and be hedged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import structlog

from hedgerd.model import (
    AmountUnit,
    Balance,
    Fill,
    Instrument,
    OptionTrade,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    Ticker,
)
from hedgerd.venues.base import (
    ErrorClass,
    PositionEvent,
    VenueError,
    VenueGreeks,
    VenueModeMismatchError,
)
from hedgerd.venues.deribit.names import UnknownInstrumentError, parse_instrument_name
from hedgerd.venues.json_values import as_float

log = structlog.get_logger(__name__)

LINEAR_SETTLEMENT = "USDC"
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01: "until now", whatever the venue's clock

# ------------------------------------------------------------------------ environment


def check_environment(venue: str, mode: str, testnet: Any, where: str) -> None:
    """Refuse a venue whose reported `testnet` flag contradicts the configured mode.

    `live` needs `testnet: false`; `testnet` and `sim` (the simulator is not real money)
    need `testnet: true`. A missing flag is refused too: Deribit always sends it.
    """
    if not isinstance(testnet, bool):
        raise VenueModeMismatchError(
            f"venue {venue!r}: the {where} response carries no 'testnet' flag (got "
            f"{testnet!r}); cannot confirm the environment for mode {mode!r}, refusing"
        )
    expected = mode != "live"
    if testnet != expected:
        said = "a TEST environment (testnet: true)" if testnet else "PRODUCTION (testnet: false)"
        raise VenueModeMismatchError(
            f"venue {venue!r} is configured with mode {mode!r} but its {where} reports "
            f"{said}; refusing to connect. Check mode, rest_url/ws_url and the API keys."
        )


# ---------------------------------------------------------------------------- parsing


class BadPayloadError(VenueError):
    """A venue payload that cannot be read safely (a missing or non-numeric field, a side
    that contradicts the sign). Retryable and `outcome_unknown`: when it is the answer to an
    order, the order may exist all the same and must be asked for by label."""

    def __init__(self, what: str, data: Any) -> None:
        super().__init__(
            f"deribit: malformed {what}: {str(data)[:200]}",
            error_class=ErrorClass.RETRYABLE,
            venue="deribit",
            outcome_unknown=True,
        )


def as_ms(value: Any) -> int | None:
    """A timestamp (UTC epoch ms) from a JSON value; None unless a finite number in
    [0, FAR_FUTURE_MS] (a far-future time would poison "newest seen" bookkeeping)."""
    if isinstance(value, bool):
        return None
    x = as_float(value)
    if not 0 <= x <= FAR_FUTURE_MS:
        return None
    return int(x)


def _mapping(what: str, data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise BadPayloadError(what, data)
    return data


def _text(what: str, data: Mapping[str, Any], key: str, *, ints: bool = False) -> str:
    """A required non-empty string field (`ints`: a JSON integer is accepted too, for ids)."""
    value = data.get(key)
    ok = isinstance(value, str) or (ints and isinstance(value, int))
    if not ok or isinstance(value, bool) or value == "":
        raise BadPayloadError(f"{what} ({key})", data)
    return str(value)


def _side(what: str, data: Mapping[str, Any]) -> OrderSide:
    direction = data.get("direction")
    if direction == "buy":
        return OrderSide.BUY
    if direction == "sell":
        return OrderSide.SELL
    raise BadPayloadError(f"{what} (direction)", data)


def _label(data: Mapping[str, Any]) -> str | None:
    label = data.get("label")
    if isinstance(label, bool) or not isinstance(label, str | int) or label == "":
        return None
    return str(label)


def _opt(value: Any) -> float | None:
    x = as_float(value)
    return None if math.isnan(x) else x


def resolve_instrument(
    instruments: Mapping[str, Instrument], name: str, venue: str
) -> Instrument | None:
    """The instrument by name: loaded markets first, else Deribit's name parser (expired or
    newly listed instruments); None if the name is not one hedgerd can value."""
    inst = instruments.get(name)
    if inst is not None:
        return inst
    try:
        return parse_instrument_name(name, venue)
    except UnknownInstrumentError:
        return None


def position_from_deribit(
    venue: str, account: str, data: Mapping[str, Any], instrument: Instrument | None, ts_ms: int
) -> PositionEvent:
    """One entry of `private/get_positions` or of `user.changes` `positions` → event.

    `size` is signed (negative short) in the instrument's amount unit: USD for inverse
    futures and perpetuals, coin for options, linear and spot. `size_currency` is the coin
    equivalent for futures (at the mark); options and coin-sized instruments are their size.
    Raises `BadPayloadError` when the name or size is missing or not a finite number, or
    the size's sign contradicts `direction`. A non-positive `average_price` is no price.
    """
    data = _mapping("position", data)
    name = _text("position", data, "instrument_name")
    size = as_float(data.get("size"))
    if math.isnan(size):
        raise BadPayloadError("position (size)", data)
    direction = data.get("direction")
    if direction == "sell" and size > 0:  # be robust to an unsigned size
        size = -size
    if (direction == "buy" and size < 0) or (direction == "zero" and size != 0):
        raise BadPayloadError("position (size against direction)", data)
    if instrument is not None:
        unit = instrument.amount_unit
    else:
        unit = (
            AmountUnit.USD
            if data.get("kind") == "future" and "USDC" not in name
            else (AmountUnit.COIN)
        )
    size_ccy = _opt(data.get("size_currency"))
    if size_ccy is not None and direction == "sell" and size_ccy > 0:
        size_ccy = -size_ccy
    qty_coin = size if unit is AmountUnit.COIN else size_ccy
    avg = _opt(data.get("average_price"))
    if avg is not None and avg <= 0:
        avg = None
    return PositionEvent(
        position=Position(
            venue=venue,
            account=account,
            instrument=name,
            amount=size,
            amount_unit=unit,
            ts_ms=ts_ms,
            average_price=avg if avg else None,
            venue_delta_coin=_opt(data.get("delta")),
        ),
        venue_qty_coin=qty_coin,
    )


def fill_from_deribit(venue: str, data: Mapping[str, Any]) -> Fill:
    """One user trade (REST or `user.changes` / `user.trades`) → `Fill` (venue units).

    Raises `BadPayloadError` without a name, trade id, side, a positive finite amount and
    price, or a valid timestamp (UTC ms)."""
    data = _mapping("trade", data)
    amount = as_float(data.get("amount"))
    price = as_float(data.get("price"))
    ts_ms = as_ms(data.get("timestamp", 0))
    if not (amount > 0 and price > 0) or ts_ms is None:
        raise BadPayloadError("trade (amount, price or timestamp)", data)
    return Fill(
        venue=venue,
        instrument=_text("trade", data, "instrument_name"),
        trade_id=_text("trade", data, "trade_id", ints=True),
        order_id=str(data.get("order_id", "")),
        label=_label(data),
        side=_side("trade", data),
        amount=amount,
        price=price,
        fee=as_float(data.get("fee"), 0.0),
        fee_currency=str(data.get("fee_currency", "")),
        ts_ms=ts_ms,
    )


def option_trade_from_deribit(venue: str, data: Mapping[str, Any]) -> OptionTrade | None:
    """One option's user trade → `OptionTrade`: its `iv` (percent, the trade price's
    implied vol), `index_price` and `underlying_price` (the forward the iv is on). None
    when one is missing (`fill_from_deribit`'s checks raise as there)."""
    fill = fill_from_deribit(venue, data)
    return OptionTrade.of_fill(
        fill,
        vol=as_float(data.get("iv")) / 100.0,
        index_usd=as_float(data.get("index_price")),
        forward_usd=as_float(data.get("underlying_price")),
    )


_STATES = {
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "untriggered": OrderStatus.ACKED,
}


def order_from_deribit(venue: str, data: Mapping[str, Any]) -> OrderUpdate:
    """A Deribit order object → `OrderUpdate`. A market order's `price` may be the string
    'market_price': it becomes None. Raises `BadPayloadError` without a name or order id,
    or with a negative or non-finite amount or filled amount."""
    data = _mapping("order", data)
    amount = as_float(data.get("amount", 0.0))
    filled = as_float(data.get("filled_amount", 0.0))
    if not (amount >= 0 and filled >= 0):  # NaN (absent is 0) fails too
        raise BadPayloadError("order (amount)", data)
    state = str(data.get("order_state", ""))
    status = _STATES.get(state)
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACKED
    avg = _opt(data.get("average_price"))
    return OrderUpdate(
        venue=venue,
        instrument=_text("order", data, "instrument_name"),
        order_id=_text("order", data, "order_id", ints=True),
        label=_label(data),
        # Lenient on the side (an answer to a cancel may omit it): refusing an order update
        # would hide a cancel or fill from the executor; the amounts are what is checked.
        side=OrderSide.BUY if data.get("direction") == "buy" else OrderSide.SELL,
        status=status,
        amount=amount,
        filled_amount=filled,
        price=_opt(data.get("price")),
        average_price=avg if avg else None,
        ts_ms=as_ms(data.get("last_update_timestamp") or data.get("creation_timestamp") or 0) or 0,
    )


def greeks_from_summary(
    venue: str, account: str, underlying: str, data: Mapping[str, Any], ts_ms: int
) -> VenueGreeks:
    """`private/get_account_summary` or a `user.portfolio` notification → `VenueGreeks`.
    Raises `BadPayloadError` when `delta_total` is missing or not a finite number (a 0 in
    its place would be a false divergence, or a false agreement)."""
    data = _mapping("account summary", data)
    if math.isnan(as_float(data.get("delta_total"))):
        raise BadPayloadError("account summary (delta_total)", data)
    return VenueGreeks(
        venue=venue,
        account=account,
        underlying=underlying.upper(),
        delta_total_coin=as_float(data.get("delta_total"), 0.0),
        options_delta_coin=as_float(data.get("options_delta"), 0.0),
        equity_coin=as_float(data.get("equity"), 0.0),
        ts_ms=ts_ms,
        projected_delta_total_coin=_opt(data.get("projected_delta_total")),
        options_gamma=_opt(data.get("options_gamma")),
        options_vega_usd=_opt(data.get("options_vega")),
    )


def balance_from_summary(
    venue: str, account: str, underlying: str, data: Mapping[str, Any], ts_ms: int
) -> Balance:
    """The cash balance in coin (Deribit `balance`: without the floating P&L of futures,
    which the book values itself; see book/valuation.py). Raises `BadPayloadError` when
    `balance` is missing or not a finite number: read as 0 it would move a USD-numeraire
    delta by the whole collateral."""
    data = _mapping("account summary", data)
    balance = as_float(data.get("balance"))
    currency = data.get("currency", underlying)
    if math.isnan(balance) or not isinstance(currency, str) or not currency:
        raise BadPayloadError("account summary (balance)", data)
    return Balance(
        venue=venue,
        account=account,
        currency=currency.upper(),
        equity=balance,
        ts_ms=ts_ms,
    )


def ticker_from_deribit(venue: str, data: Mapping[str, Any]) -> Ticker | None:
    """`public/ticker` or a `ticker.*` notification → `Ticker` (mark IV as a fraction: Deribit
    sends percent). None when the mark or index is missing or not positive, or the name or
    timestamp is missing or invalid (refused, not traded on); a non-positive forward
    (`underlying_price`) is no forward."""
    if not isinstance(data, Mapping):
        return None
    name = data.get("instrument_name")
    mark = as_float(data.get("mark_price"))
    index = as_float(data.get("index_price"))
    ts_ms = as_ms(data.get("timestamp", 0))
    if not (mark > 0 and index > 0) or not isinstance(name, str) or not name or ts_ms is None:
        return None
    iv = _opt(data.get("mark_iv"))
    fwd = _opt(data.get("underlying_price"))
    greeks = data.get("greeks") or {}
    return Ticker(
        venue=venue,
        instrument=name,
        mark_price=mark,
        index_price_usd=index,
        ts_ms=ts_ms,
        underlying_price_usd=fwd if fwd is not None and fwd > 0 else None,
        mark_iv=iv / 100.0 if iv is not None and iv > 0 else None,
        funding_8h=_opt(data.get("funding_8h")),
        venue_delta=_opt(greeks.get("delta")) if isinstance(greeks, Mapping) else None,
    )


def quote_from_deribit(venue: str, data: Mapping[str, Any]) -> Quote | None:
    """Top of book from a ticker; None when a side is empty, the book is crossed, an amount
    is negative or not a number, or the name or timestamp is missing or invalid."""
    if not isinstance(data, Mapping):
        return None
    name = data.get("instrument_name")
    bid = as_float(data.get("best_bid_price"))
    ask = as_float(data.get("best_ask_price"))
    bid_amount = as_float(data.get("best_bid_amount", 0.0))  # absent: 0; not a number: NaN
    ask_amount = as_float(data.get("best_ask_amount", 0.0))
    ts_ms = as_ms(data.get("timestamp", 0))
    if not (bid > 0 and ask > 0 and bid <= ask and bid_amount >= 0 and ask_amount >= 0):
        return None
    if not isinstance(name, str) or not name or ts_ms is None:
        return None
    return Quote(
        venue=venue,
        instrument=name,
        bid_price=bid,
        bid_amount=bid_amount,
        ask_price=ask,
        ask_amount=ask_amount,
        ts_ms=ts_ms,
    )


def index_name(underlying: str) -> str:
    return f"{underlying.lower()}_usd"


__all__ = [
    "FAR_FUTURE_MS",
    "LINEAR_SETTLEMENT",
    "BadPayloadError",
    "as_ms",
    "balance_from_summary",
    "check_environment",
    "fill_from_deribit",
    "greeks_from_summary",
    "index_name",
    "option_trade_from_deribit",
    "order_from_deribit",
    "position_from_deribit",
    "quote_from_deribit",
    "resolve_instrument",
    "ticker_from_deribit",
]
