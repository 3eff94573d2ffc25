"""Reconciliation against the simulator: orders the journal does not know (adopted or
cancelled), fills the stream missed (applied once, handed to the book), and UNKNOWN orders
closed as not found only after the grace period."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hedgerd.execution.client_ids import client_label
from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, PERP, Rig, rig, sim_scenario
from hedgerd.execution.journal import DecisionRecord
from hedgerd.execution.order_state import OrderStyle, new_order
from hedgerd.execution.reconcile import ForeignOrderPolicy, ReconcileSettings
from hedgerd.model import AmountUnit, Fill, OrderSide, OrderStatus, OrderType, TimeInForce
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.venues.base import OrderRequest


async def make(
    tmp_path: Path, policy: ForeignOrderPolicy = ForeignOrderPolicy.ADOPT
) -> AsyncIterator[tuple[Simulator, Rig]]:
    async with running_simulator(
        scenario=sim_scenario(vol=0.05), stepped=True, accounts=[(DRILL_KEY, DRILL_SECRET)]
    ) as sim:

        async def sleep_ms(ms: int) -> None:
            sim.advance(max(ms, 0))
            await asyncio.sleep(0)

        r = await rig(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            key=DRILL_KEY,
            secret=DRILL_SECRET,
            journal_path=tmp_path / "j.sqlite",
            clock_ms=sim.now_ms,
            sleep_ms=sleep_ms,
            reconcile=ReconcileSettings(not_found_grace_ms=2_000, foreign_orders=policy),
        )
        await r.start(stream=False)  # only reconciliation updates the journal here
        try:
            yield sim, r
        finally:
            await r.close()


async def resting(r: Rig, label: str, amount: float = 100.0) -> Any:
    q = await r.venue.fetch_quote(PERP)
    return await r.venue.place_order(
        OrderRequest(
            PERP,
            OrderSide.BUY,
            amount,
            label=label,
            price=round(q.bid_price * 0.95),
            post_only=True,
        )
    )


async def test_unknown_orders_on_the_venue_are_adopted_once(tmp_path: Path) -> None:
    async for _sim, r in make(tmp_path):
        by_hand = await resting(r, "manual-1")
        ghost = await resting(r, client_label("lost-decision", 0))  # a crashed run's order
        report = await r.reconciler.reconcile()
        assert report.open_orders_listed
        assert sorted(report.adopted) == sorted(["manual-1", client_label("lost-decision", 0)])
        for upd in (by_hand, ghost):
            rec = await r.journal.order(str(upd.label))
            assert rec is not None and rec.decision_id is None
            assert rec.status is OrderStatus.ACKED and rec.venue_order_id == upd.order_id
            assert r.executor.record(rec.label) == rec, "the executor sees it in flight"
        assert not (await r.reconciler.reconcile()).adopted, "adopted once"
        # An adopted order is then reconciled like any other: cancelled by hand, seen closed.
        await r.venue.cancel_order(by_hand.order_id)
        await r.reconciler.reconcile()
        rec = await r.journal.order("manual-1")
        assert rec is not None and rec.status is OrderStatus.CANCELLED


async def test_unknown_orders_on_the_venue_are_cancelled_per_setting(tmp_path: Path) -> None:
    async for _sim, r in make(tmp_path, ForeignOrderPolicy.CANCEL):
        ghost = await resting(r, client_label("lost-decision", 1))
        report = await r.reconciler.reconcile()
        assert report.cancelled_foreign == [ghost.order_id] and not report.adopted
        (state,) = await r.venue.order_by_label(str(ghost.label))
        assert state.status is OrderStatus.CANCELLED
        assert await r.journal.order(str(ghost.label)) is None


async def test_missed_fills_applied_once_and_handed_to_the_book(tmp_path: Path) -> None:
    async for sim, r in make(tmp_path):
        book: list[Fill] = []
        r.reconciler.on_fill = book.append
        # An intent the executor journalled and sent; its answer and fills were never seen.
        label = client_label("missed-1", 0)
        now = sim.now_ms()
        await r.journal.record_intents(
            [
                new_order(
                    label=label,
                    decision_id="missed-1",
                    venue=r.venue.name,
                    instrument=PERP,
                    side=OrderSide.SELL,
                    amount=30_000.0,
                    amount_unit=AmountUnit.USD,
                    limit_price=1.0,
                    style=OrderStyle.IOC_LIMIT,
                    reduce_only=False,
                    created_ms=now,
                )
            ],
            DecisionRecord("missed-1", now, "BTC", "test", {"legs": []}),
        )
        await r.venue.place_order(
            OrderRequest(
                PERP,
                OrderSide.SELL,
                30_000.0,
                label=label,
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
            )
        )
        report = await r.reconciler.reconcile()
        engine: Any = sim.engine
        acct = engine.account_for_key(DRILL_KEY)
        trades = engine.dispatch(
            "private/get_user_trades_by_currency", {"currency": "BTC", "count": 100}, acct
        )["trades"]
        venue_ids = sorted(str(t["trade_id"]) for t in trades)
        assert len(venue_ids) >= 2, "walked more than one level"
        assert sorted(report.missed_fills) == venue_ids
        assert sorted(f.trade_id for f in book) == venue_ids
        rec = await r.journal.order(label)
        assert rec is not None and rec.status is OrderStatus.FILLED
        assert rec.filled_amount == 30_000.0 and rec.missing_fill_amount == 0
        again = await r.reconciler.reconcile()
        assert not again.missed_fills and len(book) == len(venue_ids)


async def test_unknown_closed_as_not_found_only_after_the_grace(tmp_path: Path) -> None:
    async for sim, r in make(tmp_path):
        label = client_label("never-sent", 0)
        now = sim.now_ms()
        await r.journal.record_intents(
            [
                new_order(
                    label=label,
                    decision_id="never-sent",
                    venue=r.venue.name,
                    instrument=PERP,
                    side=OrderSide.BUY,
                    amount=100.0,
                    amount_unit=AmountUnit.USD,
                    limit_price=100_000.0,
                    style=OrderStyle.IOC_LIMIT,
                    reduce_only=False,
                    created_ms=now,
                )
            ],
            DecisionRecord("never-sent", now, "BTC", "test", {"legs": []}),
        )
        first = await r.reconciler.reconcile(startup=True)  # a restart: NEW is in doubt
        assert first.recovered_unknown == [label] and first.still_unknown == [label]
        rec = await r.journal.order(label)
        assert rec is not None and rec.status is OrderStatus.UNKNOWN and rec.is_open
        sim.advance(2_500)
        second = await r.reconciler.reconcile()
        assert second.not_found == [label]
        rec = await r.journal.order(label)
        assert rec is not None and rec.status is OrderStatus.CANCELLED
        assert rec.reason == "not_found"


async def test_an_order_closed_as_not_found_that_arrives_later_is_cancelled(
    tmp_path: Path,
) -> None:
    """A request that reached the venue after the grace had closed its order as not found
    (a network that held it): the order rests with a label the journal knows, as CANCELLED.
    It was skipped as 'known' and rested unmanaged (no halt or cancel-all reaches a closed
    order); the journal's word is made true on the venue: it is cancelled."""
    async for sim, r in make(tmp_path):
        label = client_label("late-arrival", 0)
        now = sim.now_ms()
        intent = new_order(
            label=label, decision_id="late-arrival", venue=r.venue.name, instrument=PERP,
            side=OrderSide.BUY, amount=100.0, amount_unit=AmountUnit.USD,
            limit_price=100_000.0, style=OrderStyle.POST_ONLY, reduce_only=False,
            created_ms=now,
        )  # fmt: skip
        await r.journal.record_intents(
            [intent], DecisionRecord("late-arrival", now, "BTC", "test", {"legs": []})
        )
        await r.reconciler.reconcile(startup=True)  # in doubt: UNKNOWN
        sim.advance(2_500)
        assert (await r.reconciler.reconcile()).not_found == [label]
        late = await resting(r, label)  # the held request arrives
        report = await r.reconciler.reconcile()
        assert report.cancelled_foreign == [late.order_id], report
        (state,) = await r.venue.order_by_label(label)
        assert state.status is OrderStatus.CANCELLED
        rec = await r.journal.order(label)
        assert rec is not None and rec.status is OrderStatus.CANCELLED
