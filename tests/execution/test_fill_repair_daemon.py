"""Fills the streams missed are repaired at once, not at the next reconciliation: the whole
daemon on the simulator (real ccxt client), its private WebSocket dropped and kept down, a
hedge sent over REST that fills; the fill must reach the journal and the book's position
while the timer reconciliations (set an hour apart) cannot have run. Then `hedgerctl
reconcile` runs that pass on demand (`Daemon.reconcile_now`)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hedgerd.config import HedgerdConfig
from hedgerd.ctl import main as ctl_main
from hedgerd.daemon import Daemon
from hedgerd.execution.drill import perp_decision
from hedgerd.execution.executor import LegOutcome
from hedgerd.model import OrderSide
from hedgerd.paper import paper_config
from hedgerd.sim.command import Simulator, running_simulator
from pinned_clock import TEST_START_MS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_support import daemon_config, short_dir, wait_for

PERP = "BTC-PERPETUAL"
HOUR_S = 3600.0


def _sim_perp_position(sim: Simulator) -> float:
    accounts: Any = getattr(sim.engine, "accounts", {})
    rows = sim.engine.dispatch("private/get_positions", {"currency": "BTC"}, accounts["mm"])
    return sum(float(p["size"]) for p in rows if p["instrument_name"] == PERP)


def _sim_trade_ids(sim: Simulator, label: str) -> set[str]:
    accounts: Any = getattr(sim.engine, "accounts", {})
    return {t.trade_id for t in accounts["mm"].trades if t.order.label == label}


@pytest.fixture
async def running() -> AsyncIterator[tuple[Simulator, Daemon]]:
    async with running_simulator(
        host="127.0.0.1", port=0, seed=5, speed=1.0, start_ms=TEST_START_MS
    ) as sim:
        values = daemon_config(
            short_dir(),
            extra={"metrics": {"enabled": False, "port": 0}},
        )
        # Nothing reconciles on a timer during the test, and the controller hedges nothing:
        # the only order is the test's.
        values["daemon"].update(
            reconcile_interval_s=HOUR_S,
            evaluate_interval_s=HOUR_S,
            hedge_instruments={"BTC": []},
        )
        values["venues"]["sim"]["reconcile_s"] = HOUR_S
        config = paper_config(HedgerdConfig(**values), sim)
        daemon = Daemon(
            config,
            clock_ms=lambda: int(sim.engine.now_ms()),
            board_clock_ms=lambda: time.time_ns() // 1_000_000,
        )
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(daemon.run(stop))

        def ready() -> bool:
            if task.done():
                task.result()
            return daemon.ready.is_set()

        await wait_for(ready, 40.0, "the daemon to become ready")
        try:
            yield sim, daemon
        finally:
            stop.set()
            await asyncio.wait_for(task, 20.0)


async def test_fill_made_while_the_stream_is_down_is_repaired_at_once(
    running: tuple[Simulator, Daemon],
) -> None:
    sim, daemon = running
    assert daemon.executor is not None and daemon.feed is not None
    assert daemon.reconciler is not None and daemon.journal is not None
    venue = daemon.venue
    assert venue is not None and venue.session is not None
    connected = venue.session.connected
    startup_report = daemon.reconciler.last
    feed_reconciles = daemon.feed.stats.reconciles
    held_before = _sim_perp_position(sim)
    # The book's passes from here on, by reason: dropping every WebSocket also drops the
    # market stream, whose reconnection asks for a pass of its own ("reconnect") that may
    # land before or after the repair's.
    reasons: list[str] = []
    feed = daemon.feed
    plain_reconcile = feed.reconcile

    async def recording(reason: str) -> Any:
        reasons.append(reason)
        return await plain_reconcile(reason)

    feed.reconcile = recording  # type: ignore[method-assign]
    # Keep the private session down: every re-authentication over WebSocket fails (retryable),
    # then drop every WebSocket; orders now go over REST and no notification arrives.
    sim.faults.add(
        {"kind": "http_5xx", "methods": ["public/auth"], "transport": "ws"}, sim.now_ms()
    )
    assert sim.server.drop_ws() >= 1
    await wait_for(lambda: not connected.is_set(), 10.0, "the session to drop")

    q = await venue.fetch_quote(PERP)
    decision = perp_decision(
        "fill-repair-1", OrderSide.BUY, 1_000.0, mid_usd=q.mid_price, ts_ms=sim.now_ms()
    )
    legs = tuple(dataclasses.replace(leg, venue=daemon.venue_name) for leg in decision.legs)
    decision = dataclasses.replace(decision, legs=legs)
    result = await daemon.executor.execute(decision)
    (leg,) = result.legs
    assert leg.outcome is LegOutcome.DONE, leg
    (label,) = leg.labels
    trades = _sim_trade_ids(sim, label)
    assert trades, "the IOC order traded nothing"

    async def journalled() -> bool:
        assert daemon.journal is not None
        return {f.trade_id for f in await daemon.journal.fills_for_order(label)} == trades

    # Bounded by a few round trips on loopback; the timer passes are an hour away.
    await wait_for(journalled, 5.0, "the missed fills in the journal")
    held = _sim_perp_position(sim)
    assert held == pytest.approx(held_before + 1_000.0)

    def booked() -> bool:
        assert daemon.feed is not None
        pos = daemon.feed.positions.get(PERP)
        return (pos.amount if pos is not None else 0.0) == pytest.approx(held)

    await wait_for(booked, 5.0, "the book's position to include the fill")
    assert set(daemon.feed.fills) >= trades
    assert daemon.executor.fills_repaired == len(trades)
    # Neither timer ran: the executor's reconciler still holds its start-up pass, and the
    # book's passes since are the refresh the repair asked for (and the market stream's
    # reconnection's, if it came back meanwhile).
    assert daemon.reconciler.last is startup_report
    assert "fill_repair" in reasons
    assert set(reasons) <= {"fill_repair", "reconnect"}, reasons
    assert daemon.feed.stats.reconciles >= feed_reconciles + 1
    assert not connected.is_set()  # the stream never delivered them

    # The operator's `hedgerctl reconcile` runs the timer's pass now (`reconcile_now`): nothing
    # is left for it to find, and the command is in the journal's audit trail.
    assert daemon.control_socket is not None
    code = await asyncio.to_thread(
        ctl_main, ["--socket", str(daemon.control_socket), "--json", "reconcile"]
    )
    assert code == 0
    report = daemon.reconciler.last
    assert report is not None and report is not startup_report
    assert not report.startup and report.missed_fills == [] and report.errors == []
    audit = await daemon.journal.audit_since(0)
    assert [e.command for e in audit][-1:] == ["reconcile"]
    again = await daemon.reconcile_now()
    assert again is daemon.reconciler.last and again.missed_fills == []
