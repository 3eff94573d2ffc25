"""Orders and fills. Amounts in the instrument's amount unit, prices in its price unit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "good_til_cancelled"
    IOC = "immediate_or_cancel"
    FOK = "fill_or_kill"


class OrderStatus(StrEnum):
    """The order state machine: NEW → SENT → ACKED → PARTIALLY_FILLED → FILLED | CANCELLED |
    REJECTED; UNKNOWN is 'sent, outcome not known' and only a venue query resolves it."""

    NEW = "new"
    SENT = "sent"
    ACKED = "acked"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The venue's view of one order. `label` is hedgerd's client order id."""

    venue: str
    instrument: str
    order_id: str
    label: str | None
    side: OrderSide
    status: OrderStatus
    amount: float
    filled_amount: float
    price: float | None
    average_price: float | None
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade of ours, unique by (venue, trade_id). `fee` is in `fee_currency`."""

    venue: str
    instrument: str
    trade_id: str
    order_id: str
    label: str | None
    side: OrderSide
    amount: float
    price: float
    fee: float
    fee_currency: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OptionTrade:
    """One trade of ours in an option with the market it was made in, from the venue's trade
    history (the option flow's seed: `portfolio.flow_seed`). `amount_coin` signed (positive:
    bought), coin of the underlying; `vol` annualised (0.55, not 55); `index_usd` and
    `forward_usd` (the option's underlying: the expiry's forward) USD per coin at the trade."""

    venue: str
    instrument: str
    trade_id: str
    ts_ms: int
    amount_coin: float
    vol: float
    index_usd: float
    forward_usd: float

    @staticmethod
    def of_fill(
        fill: Fill, *, vol: float, index_usd: float, forward_usd: float
    ) -> OptionTrade | None:
        """`fill` (an option's: amount in coin) with its market; None when a market figure
        is missing or not positive (the venue left it out: pricing it would be a guess)."""
        if not all(math.isfinite(x) and x > 0.0 for x in (vol, index_usd, forward_usd)):
            return None
        return OptionTrade(
            venue=fill.venue,
            instrument=fill.instrument,
            trade_id=fill.trade_id,
            ts_ms=fill.ts_ms,
            amount_coin=fill.side.sign * fill.amount,
            vol=vol,
            index_usd=index_usd,
            forward_usd=forward_usd,
        )
