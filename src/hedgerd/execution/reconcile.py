"""Reconciliation: the journal's orders and fills against the venue's, at start and on a timer.

One pass (`Reconciler.reconcile`) for one venue:

1. At start-up only: `journal.recover_in_doubt` turns every order whose send may or may not
   have happened (NEW, SENT) into UNKNOWN, before anything is sent again.
2. Every open journal order is asked for by its label (`Venue.order_by_label`) and the
   venue's view applied (`QueryResult`). An order the venue does not know is closed as
   CANCELLED "not_found" only once it is older than `not_found_grace_ms` (a request may still
   be on its way); until then it stays in flight.
3. Our trades since the oldest open order (or `fills_lookback_ms`) are fetched and journalled
   (`record_fill` de-duplicates by trade id); each fill new to the journal goes to `on_fill`
   (the book feed) — these are the fills the stream missed.
4. Orders open on the venue that the journal does not know (a crashed run's order whose
   intent was lost, or one placed by hand) are adopted into the journal, cancelled, or left
   alone, per `foreign_orders`. Listing open orders needs a venue with `fetch_open_orders`
   (`OpenOrdersVenue`); without it this step is skipped and said so.

Every journal change is also handed to `on_record` (the executor's in-flight view).
Times are UTC epoch ms of the injected clock (the venue's clock: fills are fetched by venue
time); amounts in the order's amount unit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import structlog

from hedgerd.execution.client_ids import is_hedgerd_label
from hedgerd.execution.journal import Journal
from hedgerd.execution.order_state import (
    OrderRecord,
    OrderStateError,
    OrderStyle,
    QueryResult,
    query_result_from_update,
)
from hedgerd.model import AmountUnit, Fill, OrderStatus, OrderUpdate
from hedgerd.venues.base import Venue, VenueError

log = structlog.get_logger(__name__)


class ForeignOrderPolicy(StrEnum):
    """What to do with an open venue order the journal does not know."""

    ADOPT = "adopt"  # journal it (no decision); it counts in flight and is reconciled
    CANCEL = "cancel"  # cancel it on the venue
    IGNORE = "ignore"  # log it only


@runtime_checkable
class OpenOrdersVenue(Protocol):
    """A venue that can list its open orders (not yet part of `Venue`)."""

    async def fetch_open_orders(self, underlying: str) -> list[OrderUpdate]: ...


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """`not_found_grace_ms`: how old an unanswered order must be before "the venue does not
    know it" closes it. `fills_lookback_ms`: how far back fills are fetched when no open order
    is older. `foreign_orders`: see `ForeignOrderPolicy`; `foreign_hedgerd_only`: apply it only
    to orders with a hedgerd label (leave hand-placed orders alone)."""

    not_found_grace_ms: int = 5_000
    fills_lookback_ms: int = 3_600_000
    fill_overlap_ms: int = 5_000
    foreign_orders: ForeignOrderPolicy = ForeignOrderPolicy.ADOPT
    foreign_hedgerd_only: bool = False


@dataclass(slots=True)
class ReconcileReport:
    """What one pass did (labels, trade ids)."""

    venue: str
    ts_ms: int
    startup: bool
    recovered_unknown: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    still_unknown: list[str] = field(default_factory=list)
    missed_fills: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    cancelled_foreign: list[str] = field(default_factory=list)
    ignored_foreign: list[str] = field(default_factory=list)
    open_orders_listed: bool = False
    errors: list[str] = field(default_factory=list)


class Reconciler:
    """Reconciles one venue's orders and fills with the journal (see the module doc)."""

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        underlyings: Sequence[str],
        settings: ReconcileSettings | None = None,
        clock_ms: Callable[[], int],
        on_fill: Callable[[Fill], None] | None = None,
        on_record: Callable[[OrderRecord], None] | None = None,
    ) -> None:
        self.venue = venue
        self.journal = journal
        self.underlyings = tuple(u.upper() for u in underlyings)
        self.settings = settings or ReconcileSettings()
        self.clock_ms = clock_ms
        self.on_fill = on_fill
        self.on_record = on_record
        self.last: ReconcileReport | None = None
        self._lock = asyncio.Lock()

    async def reconcile(self, *, startup: bool = False) -> ReconcileReport:
        """One pass; passes never overlap. Venue failures are reported, not raised: what
        could not be checked stays as it was (UNKNOWN stays UNKNOWN)."""
        async with self._lock:
            report = ReconcileReport(self.venue.name, self.clock_ms(), startup)
            try:
                await self._pass(report)
            except VenueError as exc:
                report.errors.append(str(exc)[:200])
                log.warning("reconcile.venue_failed", venue=self.venue.name, error=str(exc)[:200])
            self.last = report
            log.info(
                "reconcile.done",
                venue=self.venue.name,
                startup=startup,
                resolved=len(report.resolved),
                not_found=report.not_found,
                still_unknown=report.still_unknown,
                missed_fills=len(report.missed_fills),
                adopted=report.adopted,
                cancelled_foreign=report.cancelled_foreign,
                errors=len(report.errors),
            )
            return report

    async def _pass(self, report: ReconcileReport) -> None:
        now = report.ts_ms
        if report.startup:
            unknown = await self.journal.recover_in_doubt(now)
            report.recovered_unknown = [o.label for o in unknown if o.venue == self.venue.name]
        open_orders = await self.journal.open_orders(self.venue.name)
        # 3 before 2: fills first, so an order's trades are counted before its terminal status.
        oldest = min((o.created_ms for o in open_orders), default=now)
        since = min(oldest, now - self.settings.fills_lookback_ms) - self.settings.fill_overlap_ms
        await self._fills(report, max(since, 0))
        for order in open_orders:
            if order.status is OrderStatus.NEW and not report.startup:
                continue  # the executor is about to send it: not in doubt while it runs
            await self._check_order(report, order, now)
        await self._foreign(report)

    async def _fills(self, report: ReconcileReport, since_ms: int) -> None:
        # The fills already journalled, in one query: recording each fetched fill again (a
        # transaction per fill, an hour of them) made an HA takeover's reconciliation take
        # 10-18 s in the process drill. The fetched ones start at `since_ms`; the slack
        # covers a venue that reports a trade's time differently between its two APIs.
        known = await self.journal.trade_ids_since(
            self.venue.name, since_ms - self.settings.fill_overlap_ms
        )
        for u in self.underlyings:
            for fill in await self.venue.fetch_fills(u, since_ms):
                if fill.trade_id in known:
                    continue  # what `record_fill` would report as a duplicate
                try:
                    outcome = await self.journal.record_fill(fill)
                except OrderStateError as exc:
                    report.errors.append(f"fill {fill.trade_id}: {exc}")
                    log.error(
                        "reconcile.fill_conflict",
                        trade_id=fill.trade_id,
                        label=fill.label,
                        error=str(exc),
                    )
                    continue
                if outcome.duplicate:
                    continue
                report.missed_fills.append(fill.trade_id)
                log.warning(
                    "reconcile.missed_fill",
                    venue=self.venue.name,
                    label=fill.label,
                    decision_id=outcome.order.decision_id if outcome.order else None,
                    venue_order_id=fill.order_id,
                    trade_id=fill.trade_id,
                    amount=fill.amount,
                )
                if outcome.order is not None and self.on_record is not None:
                    self.on_record(outcome.order)
                if self.on_fill is not None:
                    self.on_fill(fill)

    async def _check_order(self, report: ReconcileReport, order: OrderRecord, now: int) -> None:
        olog = log.bind(decision_id=order.decision_id, label=order.label, venue=order.venue)
        found = [u for u in await self.venue.order_by_label(order.label) if u.label == order.label]
        if len(found) > 1:
            olog.error("reconcile.duplicate_label", venue_order_ids=[u.order_id for u in found])
            report.errors.append(f"{order.label}: {len(found)} venue orders")
        if found:
            u = found[0]
            event = query_result_from_update(u)
        else:
            age = now - (order.sent_ms or order.created_ms)
            if order.status is not OrderStatus.UNKNOWN and order.venue_order_id is not None:
                # Acknowledged and now gone without a trace: the venue's word is "cancelled".
                event = QueryResult(now, OrderStatus.CANCELLED, 0.0, reason="not_found")
            elif age < self.settings.not_found_grace_ms:
                report.still_unknown.append(order.label)
                return
            else:
                event = QueryResult(now, OrderStatus.CANCELLED, 0.0, reason="not_found")
        try:
            after = await self.journal.apply_event(order.label, event)
        except OrderStateError as exc:
            report.errors.append(f"{order.label}: {exc}")
            olog.error("reconcile.order_conflict", error=str(exc))
            return
        if after.status is OrderStatus.UNKNOWN:
            report.still_unknown.append(order.label)
        elif not found:
            report.not_found.append(order.label)
        elif after is not order:
            report.resolved.append(order.label)
        if after is not order:
            olog.info(
                "reconcile.order",
                venue_order_id=after.venue_order_id,
                status_before=str(order.status),
                status=str(after.status),
                filled_amount=after.filled_amount,
                venue_filled_amount=after.venue_filled_amount,
            )
        if self.on_record is not None:
            self.on_record(after)

    async def _foreign(self, report: ReconcileReport) -> None:
        venue = self.venue
        if not isinstance(venue, OpenOrdersVenue):
            log.warning(
                "reconcile.open_orders_not_listed",
                venue=self.venue.name,
                why="venue has no fetch_open_orders",
            )
            return
        report.open_orders_listed = True
        policy = self.settings.foreign_orders
        for u in self.underlyings:
            for upd in await venue.fetch_open_orders(u):
                label = upd.label or ""
                known = await self.journal.order(label) if label else None
                if known is None and upd.order_id:
                    known = await self.journal.order_by_venue_id(self.venue.name, upd.order_id)
                olog = log.bind(
                    label=label or None,
                    venue_order_id=upd.order_id,
                    venue=self.venue.name,
                    instrument=upd.instrument,
                )
                if known is not None:
                    if known.is_terminal:
                        # Closed in the journal (not found after the grace: its request was
                        # held and arrived later), open on the venue: nothing manages it (no
                        # halt or cancel-all reaches a closed order). Make the journal true.
                        olog.error("reconcile.closed_order_open", status=str(known.status))
                        await self._cancel(report, upd.order_id, olog)
                    continue
                hedgerd_made = is_hedgerd_label(label)
                act = policy
                if self.settings.foreign_hedgerd_only and not hedgerd_made:
                    act = ForeignOrderPolicy.IGNORE
                if act is ForeignOrderPolicy.CANCEL:
                    await self._cancel(report, upd.order_id, olog)
                elif act is ForeignOrderPolicy.ADOPT:
                    rec = adopted_record(upd, self.venue, label)
                    await self.journal.adopt_order(rec)
                    report.adopted.append(rec.label)
                    olog.warning("reconcile.foreign_adopted", adopted_label=rec.label)
                    if self.on_record is not None:
                        self.on_record(rec)
                else:
                    report.ignored_foreign.append(upd.order_id)
                    olog.warning("reconcile.foreign_ignored")

    async def _cancel(self, report: ReconcileReport, order_id: str, olog: Any) -> None:
        """Cancel an open venue order the journal does not hold open (`cancelled_foreign`)."""
        try:
            await self.venue.cancel_order(order_id)
            report.cancelled_foreign.append(order_id)
            olog.warning("reconcile.foreign_cancelled")
        except VenueError as exc:
            report.errors.append(f"cancel {order_id}: {exc}")
            olog.warning("reconcile.foreign_cancel_failed", error=str(exc)[:200])

    async def run(
        self,
        interval_ms: int,
        sleep_ms: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """Reconcile every `interval_ms` until cancelled (the first pass is not a start-up
        pass: call `reconcile(startup=True)` once before starting the executor)."""
        sleep = sleep_ms or (lambda ms: asyncio.sleep(ms / 1000.0))
        while True:
            await sleep(interval_ms)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # the timer must outlive one bad pass (e.g. a journal error)
                log.exception("reconcile.pass_failed", venue=self.venue.name)


def adopted_record(upd: OrderUpdate, venue: Venue, label: str) -> OrderRecord:
    """A journal record for an open venue order the journal did not know. Its label is its
    own when it has one, else `ext-<venue order id>`."""
    inst = venue.instruments().get(upd.instrument)
    unit = inst.amount_unit if inst is not None else AmountUnit.COIN
    status = (
        upd.status
        if upd.status in (OrderStatus.ACKED, OrderStatus.PARTIALLY_FILLED)
        else OrderStatus.ACKED
    )
    ts = upd.ts_ms
    return OrderRecord(
        label=label or f"ext-{upd.order_id}"[:64],
        decision_id=None,
        venue=venue.name,
        instrument=upd.instrument,
        side=upd.side,
        amount=upd.amount,
        amount_unit=unit,
        limit_price=upd.price if upd.price and upd.price > 0 else None,
        style=OrderStyle.LIMIT,
        reduce_only=False,
        created_ms=ts,
        status=status,
        venue_filled_amount=min(upd.filled_amount, upd.amount),
        venue_order_id=upd.order_id,
        sent_ms=ts,
        acked_ms=ts,
        updated_ms=ts,
    )


__all__ = [
    "ForeignOrderPolicy",
    "OpenOrdersVenue",
    "ReconcileReport",
    "ReconcileSettings",
    "Reconciler",
    "adopted_record",
]
