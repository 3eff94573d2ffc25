"""The executor repairs the fills its stream missed, by order, against the simulator (real ccxt
and Deribit adapter; simulated time stepped by the executor's waits): with the session up but
its trade notifications lost, the stream gets `fill_repair_grace_ms`, then the order's trades
are fetched and journalled once each, however often the repair runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hedgerd.execution.drill import (
    DRILL_KEY,
    DRILL_SECRET,
    PERP,
    Rig,
    perp_decision,
    rig,
    sim_scenario,
)
from hedgerd.execution.executor import ExecutorSettings, LegOutcome
from hedgerd.execution.reconcile import ReconcileSettings
from hedgerd.model import Fill, OrderSide
from hedgerd.sim.command import Simulator, running_simulator

GRACE_MS = 700


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Simulator, Rig, list[int]]]:
    async with running_simulator(
        scenario=sim_scenario(), stepped=True, accounts=[(DRILL_KEY, DRILL_SECRET)]
    ) as sim:
        sleeps: list[int] = []

        async def sleep_ms(ms: int) -> None:
            sleeps.append(ms)
            sim.advance(max(ms, 0))
            await asyncio.sleep(0)

        r = await rig(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            key=DRILL_KEY,
            secret=DRILL_SECRET,
            journal_path=tmp_path / "journal.sqlite",
            clock_ms=sim.now_ms,
            sleep_ms=sleep_ms,
            settings=ExecutorSettings(fill_repair_grace_ms=GRACE_MS),
            reconcile=ReconcileSettings(not_found_grace_ms=1_000),
            request_timeout_s=2.0,
        )
        await r.start()
        try:
            yield sim, r, sleeps
        finally:
            await r.close()


def _trade_ids(sim: Simulator, label: str) -> set[str]:
    accounts: Any = getattr(sim.engine, "accounts", {})
    return {t.trade_id for a in accounts.values() for t in a.trades if t.order.label == label}


async def test_lost_trade_notifications_are_fetched_by_order_after_the_grace(
    env: tuple[Simulator, Rig, list[int]],
) -> None:
    sim, r, sleeps = env
    repaired: list[Fill] = []
    r.executor.on_fill_repaired = repaired.append
    # The session stays up; only the trade/order notifications are lost.
    sim.faults.add({"kind": "drop_notifications", "channels": ["user.changes.*"]}, sim.now_ms())
    q = await r.venue.fetch_quote(PERP)
    d = perp_decision("repair-grace", OrderSide.SELL, 500.0, mid_usd=q.mid_price, ts_ms=0)
    result = await r.executor.execute(d)
    (leg,) = result.legs
    assert leg.outcome is LegOutcome.DONE, leg
    (label,) = leg.labels
    await r.executor.flush()
    trades = _trade_ids(sim, label)
    assert trades
    assert GRACE_MS in sleeps  # the stream was up: it got its chance first
    fills = await r.journal.fills_for_order(label)
    assert {f.trade_id for f in fills} == trades
    assert {f.trade_id for f in repaired} == trades
    rec = await r.journal.order(label)
    assert rec is not None and not rec.fills_missing
    assert rec.filled_amount == pytest.approx(500.0)
    # Again (a late query, a stream replay): nothing is counted twice.
    assert await r.executor.repair_fills(label) == 0
    assert len(await r.journal.fills_for_order(label)) == len(trades)
    assert r.executor.fills_repaired == len(trades)
