"""The order state machine: one frozen `OrderRecord` per client order id and a pure
`apply(record, event) -> record`.

    NEW ──send──▶ SENT ──ack──▶ ACKED ──fill──▶ PARTIALLY_FILLED ──fill──▶ FILLED
     │             │  ╲                 ╲                ╲
     │             │   fill (before the ack) ─▶ PARTIALLY_FILLED | FILLED
     │             ├──reject──▶ REJECTED         cancel ──▶ CANCELLED
     │             └──timeout──▶ UNKNOWN ──query result──▶ any state the venue reports
     ├──cancel / reject──▶ CANCELLED / REJECTED   (never sent: dry run, halted before the send)
     ├──timeout──▶ UNKNOWN   (after a crash: the intent was committed, the send may have gone out)
     └──ack / fill──▶ as from SENT  (they prove the send: its journal write may have been lost)

Rules (each is a test in tests/execution/test_order_state.py):
- Nothing leaves a terminal state (FILLED, CANCELLED, REJECTED). A late event for a terminal
  order is stale and changes nothing, except that a late fill with a new trade id on a CANCELLED
  order is still counted (the trade happened; the status stays CANCELLED).
- Only a `QueryResult` (the venue's own view of the order) moves an order out of UNKNOWN. While
  UNKNOWN, fills are still counted and a venue order id is still recorded: the facts are kept,
  only the status waits for the query.
- A fill is identified by its venue trade id and counted once; a fill that would take
  `filled_amount` above `amount` raises `OverfillError` (loud: it means two orders share a
  label, or the venue and hedgerd disagree on the size).
- Statuses only move forward (NEW < SENT < ACKED < PARTIALLY_FILLED < terminal); a stale venue
  report cannot move an order back. UNKNOWN is outside that order: a query may report anything.
- `Sent` is accepted only from NEW: a retry after a timeout is a new order with a new attempt
  number and so a new label (see `client_ids`), never a second send of the same label.

`apply` returns the same object when the event changes nothing (a duplicate trade id, a stale
event), so `apply(r, e) is r` tells the caller "no-op". It raises an `OrderStateError` for an
event that cannot happen to a correct order (a second send of a label, a fill on a rejected
order, an over-fill, two venue order ids for one label);
`apply` is pure, so the caller's record is unchanged when it raises.

Amounts are in the order's `amount_unit` (USD for inverse futures and perpetuals, coin
otherwise); prices in the instrument's price unit; times are UTC epoch milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeAlias

from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import OrderSide, OrderStatus, OrderUpdate

MAX_LABEL_LEN = 64  # Deribit `label`
_RTOL = 1e-9  # amounts are multiples of the venue's step; this only absorbs float sums


class OrderStyle(StrEnum):
    """How the order is placed on the venue.

    IOC_LIMIT: immediate-or-cancel limit at the protected price (taker). POST_ONLY: resting
    maker order. LIMIT: a plain good-til-cancelled limit. The executor maps the controller's
    `HedgeStyle` onto these (SLICED legs are IOC_LIMIT slices; a MAKER leg's taker fallback is
    a new IOC_LIMIT order with the next attempt number).
    """

    IOC_LIMIT = "ioc_limit"
    POST_ONLY = "post_only"
    LIMIT = "limit"


class OrderStateError(Exception):
    """An event that cannot happen to a correct order."""


class InvalidTransition(OrderStateError):  # noqa: N818 - reads better at the raise site
    """The event is not possible in the order's current status."""


class OverfillError(OrderStateError):
    """A fill or venue report would take the filled amount above the order's amount."""


_RANK: dict[OrderStatus, int] = {
    OrderStatus.NEW: 0,
    OrderStatus.SENT: 1,
    OrderStatus.ACKED: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
}


def _tol(amount: float) -> float:
    return max(abs(amount) * _RTOL, 1e-12)


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """hedgerd's view of one order, keyed by its client id `label` (Deribit `label`).

    `amount` is the order size (> 0) in `amount_unit`; `limit_price` (None for none) in the
    instrument's price unit. `filled_amount` is the sum of the fills counted by trade id
    (`trade_ids`) and `avg_price` their volume-weighted price; `venue_filled_amount` is the
    largest cumulative filled amount the venue has reported for the order (from acks, queries
    and order updates). When the venue reports more than the fills seen,
    `missing_fill_amount` > 0 and reconciliation should fetch the missing trades.
    `decision_id` is None only for an order adopted from the venue (not placed by hedgerd).
    """

    label: str
    decision_id: str | None
    venue: str
    instrument: str
    side: OrderSide
    amount: float
    amount_unit: AmountUnit
    limit_price: float | None
    style: OrderStyle
    reduce_only: bool
    created_ms: int
    status: OrderStatus = OrderStatus.NEW
    filled_amount: float = 0.0
    avg_price: float | None = None
    venue_filled_amount: float = 0.0
    venue_order_id: str | None = None
    trade_ids: frozenset[str] = frozenset()
    sent_ms: int | None = None
    acked_ms: int | None = None
    updated_ms: int | None = None
    closed_ms: int | None = None
    reason: str | None = None
    #: The request expiry sent with the order (UTC ms; None: none): the venue refuses the
    #: request if it arrives later. Journalled with the intent, never recomputed at send.
    valid_until_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.label or len(self.label) > MAX_LABEL_LEN:
            raise ValueError(f"label must be 1..{MAX_LABEL_LEN} chars, got {self.label!r}")
        _check_positive(f"order {self.label}: amount", self.amount)
        if self.limit_price is not None:
            _check_positive(f"order {self.label}: limit_price", self.limit_price)
        for name, value in (
            ("filled_amount", self.filled_amount),
            ("venue_filled_amount", self.venue_filled_amount),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"order {self.label}: {name} must be >= 0, got {value!r}")
            if value > self.amount + _tol(self.amount):
                raise OverfillError(
                    f"order {self.label}: {name} {value} above amount {self.amount}"
                )

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_open(self) -> bool:
        """Not terminal: NEW (maybe sent, after a crash), SENT, ACKED, PARTIALLY_FILLED and
        UNKNOWN all still count as in flight."""
        return not self.status.is_terminal

    @property
    def open_amount(self) -> float:
        """What may still fill, in `amount_unit`: 0 for a terminal order, else the amount less
        the larger of the counted and the venue-reported fills. An UNKNOWN order counts in
        full (it may be live on the venue)."""
        if self.status.is_terminal:
            return 0.0
        return max(self.amount - max(self.filled_amount, self.venue_filled_amount), 0.0)

    @property
    def missing_fill_amount(self) -> float:
        """Filled on the venue's word but not yet seen as trades, in `amount_unit`."""
        return max(self.venue_filled_amount - self.filled_amount, 0.0)

    @property
    def fills_missing(self) -> bool:
        """The venue reports more filled than the fills counted (beyond float noise): its
        trades are to be fetched."""
        return self.missing_fill_amount > _tol(self.amount)

    @property
    def signed_filled_amount(self) -> float:
        return self.side.sign * self.filled_amount


# ---------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Sent:
    """The order request went out (the executor applies this right after handing it to the
    venue client; the intent was committed before)."""

    ts_ms: int


@dataclass(frozen=True, slots=True)
class Acked:
    """The venue accepted the order and gave it `venue_order_id`. `filled_amount` is the
    cumulative fill the acknowledgement reports (Deribit returns the order with its trades)."""

    ts_ms: int
    venue_order_id: str
    filled_amount: float = 0.0


@dataclass(frozen=True, slots=True)
class Filled:
    """One trade of the order (partial or whole), unique by `trade_id` on the venue.
    `amount` (> 0) in the order's amount unit, `price` in the instrument's price unit."""

    ts_ms: int
    trade_id: str
    amount: float
    price: float
    venue_order_id: str | None = None

    def __post_init__(self) -> None:
        if not self.trade_id:
            raise ValueError("fill needs a trade id")
        _check_positive(f"fill {self.trade_id}: amount", self.amount)
        _check_positive(f"fill {self.trade_id}: price", self.price)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The venue confirmed the cancel (or the order expired: IOC remainder, post-only
    rejection by re-pricing off); from NEW it means the order was never sent."""

    ts_ms: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The venue refused the order (`code` is its error code), or hedgerd refused it before the
    send (NEW). Never retried blindly."""

    ts_ms: int
    reason: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The send's outcome is not known: a network error or timeout after the request may have
    reached the venue, or (from NEW) an intent found uncompleted after a restart. The order
    becomes UNKNOWN and stays in flight until a `QueryResult` resolves it."""

    ts_ms: int
    reason: str = "timeout"


_QUERY_STATUSES = frozenset(
    {
        OrderStatus.ACKED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    }
)


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The venue's own view of the order: a query by label, reconciliation, or an update on the
    private order stream. `status` is what the venue reports (ACKED for open and untouched,
    PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED); `filled_amount` its cumulative fill in the
    order's amount unit. An order the venue does not know (after the reconciler's grace
    period) is reported as CANCELLED with filled_amount 0 and reason "not_found"."""

    ts_ms: int
    status: OrderStatus
    filled_amount: float
    venue_order_id: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in _QUERY_STATUSES:
            raise ValueError(f"a venue cannot report status {self.status}")
        if not (math.isfinite(self.filled_amount) and self.filled_amount >= 0):
            raise ValueError(f"filled_amount must be >= 0, got {self.filled_amount!r}")


OrderEvent: TypeAlias = Sent | Acked | Filled | Cancelled | Rejected | TimedOut | QueryResult


def event_name(event: OrderEvent) -> str:
    """A short stable name for logs and the journal ("sent", "acked", "filled", ...)."""
    return _EVENT_NAMES[type(event)]


_EVENT_NAMES: dict[type, str] = {
    Sent: "sent",
    Acked: "acked",
    Filled: "filled",
    Cancelled: "cancelled",
    Rejected: "rejected",
    TimedOut: "timed_out",
    QueryResult: "query_result",
}


def query_result_from_update(update: OrderUpdate) -> QueryResult:
    """The state-machine event for the venue's `OrderUpdate` (stream or query). The update's
    status must be one a venue reports (the adapter maps Deribit's `open` to ACKED or
    PARTIALLY_FILLED by its filled amount)."""
    return QueryResult(
        ts_ms=update.ts_ms,
        status=update.status,
        filled_amount=update.filled_amount,
        venue_order_id=update.order_id or None,
    )


# ----------------------------------------------------------------------------------- apply


def new_order(
    *,
    label: str,
    decision_id: str | None,
    venue: str,
    instrument: str,
    side: OrderSide,
    amount: float,
    amount_unit: AmountUnit,
    limit_price: float | None,
    style: OrderStyle,
    reduce_only: bool,
    created_ms: int,
    valid_until_ms: int | None = None,
) -> OrderRecord:
    """An order intent in status NEW (what `Journal.record_intent` commits before the send)."""
    return OrderRecord(
        valid_until_ms=valid_until_ms,
        label=label,
        decision_id=decision_id,
        venue=venue,
        instrument=instrument,
        side=side,
        amount=amount,
        amount_unit=amount_unit,
        limit_price=limit_price,
        style=style,
        reduce_only=reduce_only,
        created_ms=created_ms,
        updated_ms=created_ms,
    )


def apply(record: OrderRecord, event: OrderEvent) -> OrderRecord:
    """The record after `event`. Pure; returns `record` itself when nothing changes; raises
    `InvalidTransition` or `OverfillError` for an impossible event (see the module doc)."""
    if isinstance(event, Sent):
        return _on_sent(record, event)
    if isinstance(event, Acked):
        return _on_acked(record, event)
    if isinstance(event, Filled):
        return _on_filled(record, event)
    if isinstance(event, Cancelled):
        return _on_cancelled(record, event)
    if isinstance(event, Rejected):
        return _on_rejected(record, event)
    if isinstance(event, TimedOut):
        return _on_timed_out(record, event)
    return _on_query(record, event)


def _fail(record: OrderRecord, event: OrderEvent, why: str) -> InvalidTransition:
    return InvalidTransition(
        f"order {record.label}: {event_name(event)} in status {record.status}: {why}"
    )


def _venue_order_id(
    record: OrderRecord, event: OrderEvent, venue_order_id: str | None
) -> str | None:
    """The record's venue order id after an event reporting `venue_order_id`; a different id
    for the same label means two venue orders share a label, which must never be papered over."""
    if venue_order_id is None or venue_order_id == record.venue_order_id:
        return record.venue_order_id
    if record.venue_order_id is not None:
        raise _fail(
            record,
            event,
            f"venue order id {venue_order_id} differs from {record.venue_order_id}",
        )
    return venue_order_id


def _venue_filled(record: OrderRecord, reported: float) -> float:
    if reported > record.amount + _tol(record.amount):
        raise OverfillError(
            f"order {record.label}: venue reports {reported} filled of {record.amount}"
        )
    return max(record.venue_filled_amount, min(reported, record.amount))


_LIVE = frozenset({OrderStatus.SENT, OrderStatus.ACKED, OrderStatus.PARTIALLY_FILLED})


def _progress(record: OrderRecord, venue_filled: float) -> OrderStatus:
    """The status a live, acknowledged order has by its fills (counted or venue-reported)."""
    filled = max(venue_filled, record.filled_amount)
    if filled >= record.amount - _tol(record.amount):
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACKED


def _proven_sent(status: OrderStatus) -> OrderStatus:
    # An ack or a fill proves the send even when `Sent` was never recorded (a crash between
    # the send and its journal write, or a stream message that overtook the executor).
    return OrderStatus.SENT if status is OrderStatus.NEW else status


def _on_sent(record: OrderRecord, event: Sent) -> OrderRecord:
    if record.status is not OrderStatus.NEW:
        raise _fail(record, event, "a label is sent once; a retry needs a new attempt number")
    return replace(record, status=OrderStatus.SENT, sent_ms=event.ts_ms, updated_ms=event.ts_ms)


def _on_acked(record: OrderRecord, event: Acked) -> OrderRecord:
    status: OrderStatus = _proven_sent(record.status)
    if status is OrderStatus.REJECTED:
        return record
    venue_id = _venue_order_id(record, event, event.venue_order_id)
    venue_filled = _venue_filled(record, event.filled_amount)
    new_status: OrderStatus = status
    if status in _LIVE:
        progress = _progress(record, venue_filled)
        new_status = progress if _RANK[progress] > _RANK[status] else status
    if (
        new_status is status
        and venue_id == record.venue_order_id
        and venue_filled == record.venue_filled_amount
        and record.acked_ms is not None
    ):
        return record
    closed_ms = record.closed_ms
    if new_status.is_terminal and closed_ms is None:
        closed_ms = event.ts_ms
    return replace(
        record,
        status=new_status,
        venue_order_id=venue_id,
        venue_filled_amount=venue_filled,
        acked_ms=record.acked_ms if record.acked_ms is not None else event.ts_ms,
        updated_ms=event.ts_ms,
        closed_ms=closed_ms,
    )


def _on_filled(record: OrderRecord, event: Filled) -> OrderRecord:
    status = _proven_sent(record.status)
    if event.trade_id in record.trade_ids:
        return record
    if status is OrderStatus.REJECTED:
        raise _fail(record, event, "a rejected order cannot trade")
    filled = record.filled_amount + event.amount
    if filled > record.amount + _tol(record.amount):
        raise OverfillError(
            f"order {record.label}: fill {event.trade_id} of {event.amount} takes filled "
            f"{record.filled_amount} above amount {record.amount}"
        )
    venue_id = _venue_order_id(record, event, event.venue_order_id)
    notional = (record.avg_price or 0.0) * record.filled_amount + event.price * event.amount
    full = filled >= record.amount - _tol(record.amount)
    if status in _LIVE:
        new_status = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
    else:  # UNKNOWN waits for a query; CANCELLED and FILLED are terminal
        new_status = status
    closed_ms = record.closed_ms
    if new_status.is_terminal and closed_ms is None:
        closed_ms = event.ts_ms
    return replace(
        record,
        status=new_status,
        filled_amount=filled,
        avg_price=notional / filled,
        venue_order_id=venue_id,
        trade_ids=record.trade_ids | {event.trade_id},
        updated_ms=event.ts_ms,
        closed_ms=closed_ms,
    )


def _close(record: OrderRecord, status: OrderStatus, ts_ms: int, reason: str) -> OrderRecord:
    return replace(record, status=status, updated_ms=ts_ms, closed_ms=ts_ms, reason=reason or None)


def _on_cancelled(record: OrderRecord, event: Cancelled) -> OrderRecord:
    if record.status.is_terminal or record.status is OrderStatus.UNKNOWN:
        return record
    return _close(record, OrderStatus.CANCELLED, event.ts_ms, event.reason)


def _on_rejected(record: OrderRecord, event: Rejected) -> OrderRecord:
    status = record.status
    if status.is_terminal or status is OrderStatus.UNKNOWN:
        return record
    if status not in (OrderStatus.NEW, OrderStatus.SENT):
        raise _fail(record, event, "the venue already accepted the order")
    reason = f"{event.code}: {event.reason}" if event.code is not None else event.reason
    return _close(record, OrderStatus.REJECTED, event.ts_ms, reason)


def _on_timed_out(record: OrderRecord, event: TimedOut) -> OrderRecord:
    # Once acknowledged, the order is known to be on the venue: a later timeout (of a cancel,
    # say) does not make it unknown; reconciliation of open orders covers it.
    if record.status not in (OrderStatus.NEW, OrderStatus.SENT):
        return record
    return replace(
        record, status=OrderStatus.UNKNOWN, updated_ms=event.ts_ms, reason=event.reason or None
    )


def _on_query(record: OrderRecord, event: QueryResult) -> OrderRecord:
    status = record.status
    venue_filled = _venue_filled(record, event.filled_amount)
    venue_id = _venue_order_id(record, event, event.venue_order_id)
    if status.is_terminal:
        if venue_filled == record.venue_filled_amount and venue_id == record.venue_order_id:
            return record
        return replace(record, venue_filled_amount=venue_filled, venue_order_id=venue_id)
    reported = event.status
    filled_any = max(venue_filled, record.filled_amount) > 0
    if reported is OrderStatus.REJECTED and filled_any:
        raise _fail(record, event, "venue reports REJECTED for an order with fills")
    if reported is OrderStatus.ACKED and filled_any:
        reported = OrderStatus.PARTIALLY_FILLED
    if status in (OrderStatus.UNKNOWN, OrderStatus.NEW) or _RANK[reported] >= _RANK[status]:
        new_status = reported
    else:
        new_status = status  # a stale report never moves an order back
    if (
        new_status is status
        and venue_filled == record.venue_filled_amount
        and venue_id == record.venue_order_id
    ):
        return record
    acked_ms = record.acked_ms
    if acked_ms is None and new_status is not OrderStatus.REJECTED and venue_id is not None:
        acked_ms = event.ts_ms
    closed_ms = record.closed_ms
    reason = record.reason
    if new_status.is_terminal:
        closed_ms = event.ts_ms
        reason = event.reason or reason
    elif status is OrderStatus.UNKNOWN:
        reason = event.reason or None  # the timeout that made it UNKNOWN is resolved
    return replace(
        record,
        status=new_status,
        venue_filled_amount=venue_filled,
        venue_order_id=venue_id,
        acked_ms=acked_ms,
        updated_ms=event.ts_ms,
        closed_ms=closed_ms,
        reason=reason,
    )


__all__ = [
    "MAX_LABEL_LEN",
    "Acked",
    "Cancelled",
    "Filled",
    "InvalidTransition",
    "OrderEvent",
    "OrderRecord",
    "OrderStateError",
    "OrderStyle",
    "OverfillError",
    "QueryResult",
    "Rejected",
    "Sent",
    "TimedOut",
    "apply",
    "event_name",
    "new_order",
    "query_result_from_update",
]
