"""Orders and fills. Amounts in the instrument's amount unit, prices in its price unit."""

from __future__ import annotations

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
