"""OKX v5 JSON (REST `data[]` items and WebSocket pushes, the same fields) → hedgerd's model.

Sizes arrive in contracts (`sz`, `pos`, `fillSz`, `accFillSz`; spot coin) and leave in the
instrument's amount unit (`contracts.contracts_to_amount`); numbers are strings, `""` is
absent. Fees: OKX reports a fee paid as negative (`fee "-0.0001"`), hedgerd's `Fill.fee` is
positive when paid (Deribit's sign), so it is negated here. Every parser raises
`BadOkxPayloadError` (retryable, outcome unknown) on a field it cannot read safely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
from hedgerd.venues.base import ErrorClass, PositionEvent, VenueError, VenueGreeks
from hedgerd.venues.json_values import as_float
from hedgerd.venues.okx.contracts import contracts_to_amount


class BadOkxPayloadError(VenueError):
    """An OKX payload that cannot be read safely. Retryable and `outcome_unknown`: as the
    answer to an order, the order may exist all the same and must be asked for by
    `clOrdId`."""

    def __init__(self, what: str, data: Any) -> None:
        super().__init__(
            f"okx: malformed {what}: {str(data)[:200]}",
            error_class=ErrorClass.RETRYABLE,
            venue="okx",
            outcome_unknown=True,
        )


def opt_num(value: Any) -> float | None:
    x = as_float(value)
    return None if math.isnan(x) else x


def ms(value: Any) -> int | None:
    """An OKX timestamp string (UTC epoch ms) → int; None when absent or invalid."""
    x = as_float(value)
    return int(x) if x >= 0 else None


def _mapping(what: str, data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise BadOkxPayloadError(what, data)
    return data


def _text(what: str, data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadOkxPayloadError(f"{what} ({key})", data)
    return value


def _side(what: str, data: Mapping[str, Any]) -> OrderSide:
    side = data.get("side")
    if side == "buy":
        return OrderSide.BUY
    if side == "sell":
        return OrderSide.SELL
    raise BadOkxPayloadError(f"{what} (side)", data)


def _label(data: Mapping[str, Any]) -> str | None:
    value = data.get("clOrdId")
    return value if isinstance(value, str) and value else None


# -------------------------------------------------------------------------- positions


def signed_contracts(data: Mapping[str, Any]) -> float:
    """A position's signed size in contracts: `pos` is signed in net mode (`posSide
    "net"`); in long/short mode it is unsigned and `posSide` gives the sign."""
    pos = as_float(data.get("pos"))
    if math.isnan(pos):
        raise BadOkxPayloadError("position (pos)", data)
    side = data.get("posSide")
    if side == "short" and pos > 0:
        return -pos
    if side == "long" and pos < 0:
        raise BadOkxPayloadError("position (pos against posSide)", data)
    return pos


def position_from_okx(
    venue: str, account: str, data: Mapping[str, Any], instrument: Instrument, ts_ms: int
) -> PositionEvent:
    """One `account/positions` entry (or `positions` push) → event, amounts in hedgerd units.

    `venue_qty_coin` is the position in coin of the underlying as OKX would count it: options
    `pos * ctMult`, linear `pos * ctVal`, inverse `pos * ctVal / markPx` (USD face at the
    mark). `venue_delta_coin` is OKX's Black-Scholes delta in coin (`deltaBS`, like Deribit's
    per-position `delta`) for options, and the coin quantity for swaps and futures."""
    data = _mapping("position", data)
    name = _text("position", data, "instId")
    contracts = signed_contracts(data)
    amount = contracts_to_amount(instrument, contracts)
    mark = as_float(data.get("markPx"))
    if instrument.amount_unit is AmountUnit.COIN:
        qty_coin: float | None = amount
    elif mark > 0:
        qty_coin = amount / mark
    else:
        qty_coin = None
    if instrument.is_option:
        delta = opt_num(data.get("deltaBS"))
        if delta is None and contracts == 0:
            delta = 0.0
    else:
        delta = qty_coin
    avg = as_float(data.get("avgPx"))
    return PositionEvent(
        position=Position(
            venue=venue,
            account=account,
            instrument=name,
            amount=amount,
            amount_unit=instrument.amount_unit,
            ts_ms=ms(data.get("uTime")) or ts_ms,
            average_price=avg if avg > 0 else None,
            venue_delta_coin=delta,
        ),
        venue_qty_coin=qty_coin,
    )


# ----------------------------------------------------------------------- fills, orders


def fill_from_okx(venue: str, data: Mapping[str, Any], instrument: Instrument) -> Fill:
    """One `trade/fills-history` entry, or an `orders` push carrying a fill (`tradeId`
    non-empty: `fillSz`, `fillPx`, `fillFee`), → `Fill` in hedgerd units; fee positive when
    paid, in `feeCcy`."""
    data = _mapping("fill", data)
    contracts = as_float(data.get("fillSz"))
    price = as_float(data.get("fillPx"))
    ts = ms(data.get("fillTime") or data.get("ts"))
    if not (contracts > 0 and price > 0) or ts is None:
        raise BadOkxPayloadError("fill (fillSz, fillPx or ts)", data)
    fee = as_float(data.get("fillFee") if "fillFee" in data else data.get("fee"), 0.0)
    fee_ccy = data.get("fillFeeCcy") if "fillFeeCcy" in data else data.get("feeCcy")
    return Fill(
        venue=venue,
        instrument=_text("fill", data, "instId"),
        trade_id=_text("fill", data, "tradeId"),
        order_id=str(data.get("ordId") or ""),
        label=_label(data),
        side=_side("fill", data),
        amount=contracts_to_amount(instrument, contracts),
        price=price,
        fee=-fee,
        fee_currency=str(fee_ccy or ""),
        ts_ms=ts,
    )


def option_trade_from_okx(
    venue: str, data: Mapping[str, Any], instrument: Instrument
) -> OptionTrade | None:
    """One option's `trade/fills-history` entry → `OptionTrade`: its `fillMarkVol` (the
    mark's vol at the fill, a fraction; the book prices at the mark's vol too),
    `fillIdxPx` and `fillFwdPx`. None when one is empty (`fill_from_okx`'s checks raise as
    there)."""
    fill = fill_from_okx(venue, data, instrument)
    return OptionTrade.of_fill(
        fill,
        vol=as_float(data.get("fillMarkVol")),
        index_usd=as_float(data.get("fillIdxPx")),
        forward_usd=as_float(data.get("fillFwdPx")),
    )


_STATES = {
    "live": OrderStatus.ACKED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "mmp_canceled": OrderStatus.CANCELLED,
    "order_failed": OrderStatus.REJECTED,
}


def order_from_okx(venue: str, data: Mapping[str, Any], instrument: Instrument) -> OrderUpdate:
    """An OKX order object (`trade/order`, `orders-pending`, `orders` push) → `OrderUpdate`
    in hedgerd units. A market order's `px` is `""`: its price is None."""
    data = _mapping("order", data)
    size = as_float(data.get("sz"), 0.0)
    filled = as_float(data.get("accFillSz"), 0.0)
    if not (size >= 0 and filled >= 0):
        raise BadOkxPayloadError("order (sz, accFillSz)", data)
    state = str(data.get("state") or "")
    status = _STATES.get(state)
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACKED
    price = as_float(data.get("px"))
    avg = as_float(data.get("avgPx"))
    return OrderUpdate(
        venue=venue,
        instrument=_text("order", data, "instId"),
        order_id=_text("order", data, "ordId"),
        label=_label(data),
        side=_side("order", data),
        status=status,
        amount=contracts_to_amount(instrument, size),
        filled_amount=contracts_to_amount(instrument, filled),
        price=price if price > 0 else None,
        average_price=avg if avg > 0 else None,
        ts_ms=ms(data.get("uTime") or data.get("cTime")) or 0,
    )


def order_ack(
    venue: str, data: Mapping[str, Any], instrument: Instrument, side: OrderSide, amount: float,
    price: float | None, ts_ms: int,
) -> OrderUpdate:  # fmt: skip
    """A placement answer (`data[0]`: `ordId`, `clOrdId`, `sCode "0"`, `ts`) → the order as
    acknowledged (OKX answers a placement without its state: a fill, if any, comes from the
    `orders` stream or a query)."""
    data = _mapping("order ack", data)
    return OrderUpdate(
        venue=venue,
        instrument=instrument.name,
        order_id=_text("order ack", data, "ordId"),
        label=_label(data),
        side=side,
        status=OrderStatus.ACKED,
        amount=amount,
        filled_amount=0.0,
        price=price,
        average_price=None,
        ts_ms=ms(data.get("ts")) or ts_ms,
    )


# ------------------------------------------------------------------ balances, Greeks


def balances_from_okx(
    venue: str, account: str, data: Mapping[str, Any], ts_ms: int
) -> list[Balance]:
    """`account/balance` `data[0]` (or an `account` push) → one `Balance` per currency: the
    cash balance `cashBal` (without floating P&L and option value, which the book values
    from the positions: Deribit's `balance`), else `eq`. USDT/USDC are cash, not coin
    collateral: they carry no delta of any underlying."""
    data = _mapping("balance", data)
    details = data.get("details")
    if not isinstance(details, list):
        raise BadOkxPayloadError("balance (details)", data)
    ts = ms(data.get("uTime")) or ts_ms
    out = []
    for d in details:
        d = _mapping("balance detail", d)
        ccy = _text("balance detail", d, "ccy")
        cash = as_float(d.get("cashBal"))
        if math.isnan(cash):
            cash = as_float(d.get("eq"))
        if math.isnan(cash):
            raise BadOkxPayloadError("balance detail (cashBal, eq)", d)
        out.append(
            Balance(venue=venue, account=account, currency=ccy.upper(), equity=cash, ts_ms=ts)
        )
    return out


def equity_of(data: Mapping[str, Any], currency: str) -> float:
    """The equity `eq` (cash plus floating P&L and option value) in `currency` from an
    `account/balance` `data[0]`; 0 when the currency is not held."""
    for d in data.get("details") or ():
        if isinstance(d, Mapping) and str(d.get("ccy", "")).upper() == currency.upper():
            return as_float(d.get("eq"), 0.0)
    return 0.0


def unified_available(detail: Mapping[str, Any], account_avail_usd: float) -> float:
    """A currency's free collateral in a unified account (Multi-currency or Portfolio margin):
    the lower of its own `availEq` and the account's (top-level `availEq`, USD) in that
    currency, at OKX's own price of it (`coinUsdPrice`, else `eqUsd / eq`). Those modes
    margin the account as a whole: a currency with equity to spare cannot grow a position
    when the account has none left, and OKX refuses the order (51008). When the price is
    unknown (nothing held), an account with no free equity still caps it at 0. NaN: the venue
    did not say."""
    own = as_float(detail.get("availEq"))
    if math.isnan(account_avail_usd):
        return own
    px = as_float(detail.get("coinUsdPrice"))
    if not px > 0.0:
        eq, eq_usd = as_float(detail.get("eq")), as_float(detail.get("eqUsd"))
        px = eq_usd / eq if eq > 0.0 and eq_usd > 0.0 else math.nan
    if px > 0.0:
        cap = account_avail_usd / px
    else:  # no price: only the sign of the account's room is known
        cap = math.inf if account_avail_usd > 0.0 else min(account_avail_usd, 0.0)
    if math.isnan(own):
        return cap if math.isfinite(cap) else own
    return min(own, cap)


def greeks_from_okx(
    venue: str, account: str, underlying: str, greeks: Mapping[str, Any], equity_coin: float,
    ts_ms: int,
) -> VenueGreeks:  # fmt: skip
    """`account/greeks` for one coin → `VenueGreeks`. `deltaPA` ("Greeks in coins") is the
    coin-numeraire delta (Black-Scholes delta less the premium in coin, plus swaps and
    futures in coin): hedgerd's `delta_total_coin`, the coin-numeraire figure of Deribit's
    `delta_total`; `deltaBS` (Black-Scholes) is `options_delta_coin`. The USD-numeraire
    figure is `delta_total_coin + equity_coin` (see `BookFeed.cross_check`), with
    `equity_coin` the coin's `eq`. Raises when `deltaPA` is unreadable."""
    greeks = _mapping("account greeks", greeks)
    delta_pa = as_float(greeks.get("deltaPA"))
    if math.isnan(delta_pa):
        raise BadOkxPayloadError("account greeks (deltaPA)", greeks)
    return VenueGreeks(
        venue=venue,
        account=account,
        underlying=underlying.upper(),
        delta_total_coin=delta_pa,
        options_delta_coin=as_float(greeks.get("deltaBS"), 0.0),
        equity_coin=equity_coin,
        ts_ms=ms(greeks.get("ts")) or ts_ms,
        options_gamma=opt_num(greeks.get("gammaBS")),
        options_vega_usd=opt_num(greeks.get("vegaBS")),
    )


# -------------------------------------------------------------------------- market data


def quote_from_okx(venue: str, data: Mapping[str, Any], instrument: Instrument) -> Quote | None:
    """A `market/ticker` entry or `tickers` push → top of book (sizes in hedgerd units);
    None when a side is empty, the book is crossed or the timestamp is invalid."""
    if not isinstance(data, Mapping):
        return None
    bid, ask = as_float(data.get("bidPx")), as_float(data.get("askPx"))
    bid_sz, ask_sz = as_float(data.get("bidSz"), 0.0), as_float(data.get("askSz"), 0.0)
    ts = ms(data.get("ts"))
    if not (bid > 0 and ask > 0 and bid <= ask and bid_sz >= 0 and ask_sz >= 0) or ts is None:
        return None
    return Quote(
        venue=venue,
        instrument=instrument.name,
        bid_price=bid,
        bid_amount=contracts_to_amount(instrument, bid_sz),
        ask_price=ask,
        ask_amount=contracts_to_amount(instrument, ask_sz),
        ts_ms=ts,
    )


def ticker_from_okx(
    venue: str, instrument: Instrument, mark: Mapping[str, Any], index_usd: float, ts_ms: int,
    option: Mapping[str, Any] | None = None, funding_rate: float | None = None,
) -> Ticker | None:  # fmt: skip
    """OKX spreads what Deribit's ticker holds over several calls: `public/mark-price`
    (`markPx`, in the price unit: coin for inverse options), `market/index-tickers`
    (`idxPx`), `public/opt-summary` (options: `markVol` fraction, `fwdPx`, `deltaBS`) and
    `public/funding-rate` (swaps: `fundingRate` per 8 h period). None without a positive mark
    and index."""
    mark_px = as_float(mark.get("markPx")) if isinstance(mark, Mapping) else math.nan
    if not (mark_px > 0 and index_usd > 0):
        return None
    iv = fwd = delta = None
    if option is not None:
        iv = opt_num(option.get("markVol"))
        fwd = opt_num(option.get("fwdPx"))
        delta = opt_num(option.get("deltaBS"))
    return Ticker(
        venue=venue,
        instrument=instrument.name,
        mark_price=mark_px,
        index_price_usd=index_usd,
        ts_ms=ms(mark.get("ts")) or ts_ms,
        underlying_price_usd=fwd if fwd is not None and fwd > 0 else None,
        mark_iv=iv if iv is not None and iv > 0 else None,
        funding_8h=funding_rate,
        venue_delta=delta,
    )


__all__ = [
    "BadOkxPayloadError",
    "balances_from_okx",
    "equity_of",
    "fill_from_okx",
    "greeks_from_okx",
    "ms",
    "opt_num",
    "option_trade_from_okx",
    "order_ack",
    "order_from_okx",
    "position_from_okx",
    "quote_from_okx",
    "signed_contracts",
    "ticker_from_okx",
    "unified_available",
]
