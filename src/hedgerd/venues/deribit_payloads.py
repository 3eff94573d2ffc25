"""Deribit's JSON payloads → hedgerd's model, and the environment check.

Pure functions: positions (`size` in the instrument's amount unit, `size_currency` in coin),
trades, orders, account summaries (the venue's Greeks and cash balance), tickers and top of
book. Bad values are refused (None or a default), never passed on as NaN prices.
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
    OrderSide,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    Ticker,
)
from hedgerd.venues.base import (
    PositionEvent,
    VenueGreeks,
    VenueModeMismatchError,
)
from hedgerd.venues.deribit_names import UnknownInstrumentError, parse_instrument_name

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


def as_float(value: Any, default: float = math.nan) -> float:
    """A finite float from a JSON value, else `default`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


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
    """
    name = str(data["instrument_name"])
    size = as_float(data.get("size"), 0.0)
    direction = data.get("direction")
    if direction == "sell" and size > 0:  # be robust to an unsigned size
        size = -size
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
    """One user trade (REST or `user.changes` / `user.trades`) → `Fill` (venue units)."""
    return Fill(
        venue=venue,
        instrument=str(data["instrument_name"]),
        trade_id=str(data["trade_id"]),
        order_id=str(data.get("order_id", "")),
        label=(str(data["label"]) if data.get("label") else None),
        side=OrderSide.BUY if data.get("direction") == "buy" else OrderSide.SELL,
        amount=as_float(data.get("amount"), 0.0),
        price=as_float(data.get("price")),
        fee=as_float(data.get("fee"), 0.0),
        fee_currency=str(data.get("fee_currency", "")),
        ts_ms=int(data.get("timestamp", 0)),
    )


_STATES = {
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "untriggered": OrderStatus.ACKED,
}


def order_from_deribit(venue: str, data: Mapping[str, Any]) -> OrderUpdate:
    """A Deribit order object → `OrderUpdate`. A market order's `price` may be the string
    'market_price': it becomes None."""
    amount = as_float(data.get("amount"), 0.0)
    filled = as_float(data.get("filled_amount"), 0.0)
    state = str(data.get("order_state", ""))
    status = _STATES.get(state)
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACKED
    avg = _opt(data.get("average_price"))
    return OrderUpdate(
        venue=venue,
        instrument=str(data["instrument_name"]),
        order_id=str(data["order_id"]),
        label=(str(data["label"]) if data.get("label") else None),
        side=OrderSide.BUY if data.get("direction") == "buy" else OrderSide.SELL,
        status=status,
        amount=amount,
        filled_amount=filled,
        price=_opt(data.get("price")),
        average_price=avg if avg else None,
        ts_ms=int(data.get("last_update_timestamp") or data.get("creation_timestamp") or 0),
    )


def greeks_from_summary(
    venue: str, account: str, underlying: str, data: Mapping[str, Any], ts_ms: int
) -> VenueGreeks:
    """`private/get_account_summary` or a `user.portfolio` notification → `VenueGreeks`."""
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
    which the book values itself; see book/valuation.py)."""
    return Balance(
        venue=venue,
        account=account,
        currency=str(data.get("currency", underlying)).upper(),
        equity=as_float(data.get("balance"), 0.0),
        ts_ms=ts_ms,
    )


def ticker_from_deribit(venue: str, data: Mapping[str, Any]) -> Ticker | None:
    """`public/ticker` or a `ticker.*` notification → `Ticker` (mark IV as a fraction: Deribit
    sends percent). None when the mark or index is missing or not positive (refused, not
    traded on)."""
    mark = as_float(data.get("mark_price"))
    index = as_float(data.get("index_price"))
    if not (mark > 0 and index > 0):
        return None
    iv = _opt(data.get("mark_iv"))
    greeks = data.get("greeks") or {}
    return Ticker(
        venue=venue,
        instrument=str(data["instrument_name"]),
        mark_price=mark,
        index_price_usd=index,
        ts_ms=int(data.get("timestamp", 0)),
        underlying_price_usd=_opt(data.get("underlying_price")),
        mark_iv=iv / 100.0 if iv is not None and iv > 0 else None,
        funding_8h=_opt(data.get("funding_8h")),
        venue_delta=_opt(greeks.get("delta")) if isinstance(greeks, Mapping) else None,
    )


def quote_from_deribit(venue: str, data: Mapping[str, Any]) -> Quote | None:
    """Top of book from a ticker; None when a side is empty or the book is crossed."""
    bid = as_float(data.get("best_bid_price"))
    ask = as_float(data.get("best_ask_price"))
    if not (bid > 0 and ask > 0 and bid <= ask):
        return None
    return Quote(
        venue=venue,
        instrument=str(data["instrument_name"]),
        bid_price=bid,
        bid_amount=as_float(data.get("best_bid_amount"), 0.0),
        ask_price=ask,
        ask_amount=as_float(data.get("best_ask_amount"), 0.0),
        ts_ms=int(data.get("timestamp", 0)),
    )


def index_name(underlying: str) -> str:
    return f"{underlying.lower()}_usd"


__all__ = [
    "FAR_FUTURE_MS",
    "LINEAR_SETTLEMENT",
    "as_float",
    "balance_from_summary",
    "check_environment",
    "fill_from_deribit",
    "greeks_from_summary",
    "index_name",
    "order_from_deribit",
    "position_from_deribit",
    "quote_from_deribit",
    "resolve_instrument",
    "ticker_from_deribit",
]
