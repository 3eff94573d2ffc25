"""Two real daemons (`[ha] enabled`) on one PostgreSQL journal and one simulator, with real
ccxt: only the leader sends orders; cutting the leader's database (a TCP proxy) fences it and
the standby takes over within lease + margin; no client id is sent twice across the switch,
no fill is lost or counted twice, a HALTED desk stays HALTED; `hedgerctl handoff` hands over
fast (the gap is measured and printed).

Timings are short (lease 2 s) so the tests take seconds; every wait is on a condition with a
timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from e2e_support import (
    Running,
    admin_trade,
    atm_call,
    daemon_config,
    hedgerctl,
    mm_open_orders,
    short_dir,
    simulator,
    start_daemon,
    status,
    wait_for,
)

from hedgerd.execution.client_ids import parse_label
from hedgerd.execution.journal import JournalStore
from hedgerd.execution.journal_db import PostgresTarget
from hedgerd.execution.order_state import OrderStyle, new_order
from hedgerd.ha.lease import boottime_s
from hedgerd.ha.node import NodeRole
from hedgerd.model import Fill, OrderSide, OrderStatus
from hedgerd.sim.command import Simulator
from hedgerd.venues.base import OrderRequest
from tcp_proxy import TcpProxy

SPEED = 10.0
PERP = "BTC-PERPETUAL"
LEASE_MS = 2_000
MARGIN_MS = 600
HA = {
    "enabled": True,
    "lease_ms": LEASE_MS,
    "renew_interval_ms": 300,
    "renew_timeout_ms": 250,
    "margin_ms": MARGIN_MS,
    "min_left_ms": 400,
    "acquire_poll_ms": 100,
    "takeover_wait_ms": 300,
}
#: Failover budget: the lease expires at most LEASE_MS after the dead leader's last renew,
#: the standby polls every 100 ms, waits 300 ms and reconciles (REST round trips that queue
#: on a loaded two-core machine: the drill saw up to 4.2 s in all over 20 failovers).
FAILOVER_BUDGET_S = (LEASE_MS + MARGIN_MS) / 1000.0 + 3.0


@pytest.fixture
def db_proxy(pg_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy to the test's PostgreSQL that node a's connections go through."""
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        yield proxy
    finally:
        proxy.close()


def _values(work: Path, url: str, node: str) -> dict[str, Any]:
    values = daemon_config(work)
    values["journal"] = {"url": url}
    values["ha"] = {**HA, "node_id": node}
    return values


def _via(proxy: TcpProxy, pg_url: str) -> str:
    parts = urlsplit(pg_url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))


def _role(run: Running) -> NodeRole:
    assert run.daemon.ha is not None
    return run.daemon.ha.node.role


def _epochs(sim: Simulator) -> Counter[int]:
    """Orders the simulator received, by the epoch in their label."""
    out: Counter[int] = Counter()
    for label, n in sim.server.counters.orders_received.items():
        cid = parse_label(label)
        out[cid.epoch if cid is not None else -1] += n
    return out


def _sent_twice(sim: Simulator) -> list[str]:
    return [lbl for lbl, n in sim.server.counters.orders_received.items() if n > 1]


def _perp_usd(sim: Simulator) -> float:
    pos = sim.engine.accounts["mm"].positions.get("BTC-PERPETUAL")  # type: ignore[attr-defined]
    return float(pos.size) if pos is not None else 0.0


def _journal_perp_usd(pg_url: str) -> tuple[float, int, int]:
    """The perpetual position the journal's fills add up to (USD), the fill count and the
    count of distinct trade ids."""
    store = JournalStore(PostgresTarget(pg_url), readonly=True)
    try:
        fills = [f for f in store.fills_since(0) if f.instrument == "BTC-PERPETUAL"]
    finally:
        store.close()
    signed = sum(f.amount if str(f.side) == "buy" else -f.amount for f in fills)
    return signed, len(fills), len({(f.venue, f.trade_id) for f in fills})


async def _pair(sim: Simulator, pg_url: str, proxy: TcpProxy) -> tuple[Running, Running]:
    """Node a (its database through `proxy`) becomes the leader, then node b stands by."""
    a = await start_daemon(sim, _values(short_dir(), _via(proxy, pg_url), "a"), SPEED)
    await wait_for(lambda: _role(a) is NodeRole.ACTIVE, 10.0, "node a to lead")
    b = await start_daemon(sim, _values(short_dir(), pg_url, "b"), SPEED)
    assert _role(b) is NodeRole.STANDBY
    return a, b


@pytest.mark.parametrize("how", ["cut", "stall"])
async def test_failover(pg_url: str, db_proxy: TcpProxy, how: str) -> None:
    """`cut`: node a's database traffic is cut (renewals and journal writes fail); `stall`:
    node a's lease thread hangs (renewals stop, its journal still works: the lease's guard
    on the database is what refuses its writes once the lease is gone)."""
    stalled = threading.Event()
    async with simulator(SPEED) as sim:
        perp_before_usd = _perp_usd(sim)
        a, b = await _pair(sim, pg_url, db_proxy)
        epoch_a = a.daemon.ha.node.epoch() if a.daemon.ha else 0
        await wait_for(lambda: sum(_epochs(sim).values()) > 0, 20.0, "a's first hedge")
        assert set(_epochs(sim)) == {epoch_a}  # only the leader sent, with its epoch
        assert _role(b) is NodeRole.STANDBY

        t0 = time.monotonic()
        if how == "cut":
            db_proxy.cut()
        else:
            assert a.daemon.ha is not None
            a.daemon.ha.node._thread.submit(stalled.wait)
        await wait_for(lambda: _role(b) is NodeRole.ACTIVE, 15.0, "b to take over")
        failover_s = time.monotonic() - t0
        print(f"failover ({how}): {failover_s:.2f} s")
        assert failover_s <= FAILOVER_BUDGET_S
        assert _role(a) is NodeRole.FENCED
        epoch_b = b.daemon.ha.node.epoch() if b.daemon.ha else 0
        assert epoch_b > epoch_a
        sent_by_a = _epochs(sim)[epoch_a]

        await admin_trade(sim, atm_call(sim), "buy", 10.0)  # new delta to hedge
        await wait_for(lambda: _epochs(sim)[epoch_b] > 0, 20.0, "b's first hedge")
        st = await status(b.daemon.config.control.socket_path)
        assert st["ha"]["role"] == "active" and st["ha"]["epoch"] == epoch_b
        assert _epochs(sim)[epoch_a] == sent_by_a  # the fenced leader sent nothing more
        assert _sent_twice(sim) == []
        await wait_for(lambda: not b.daemon.hedge_loop.exec_tasks, 20.0, "b's executions to end")
        assert await b.shutdown() == 0
        db_proxy.restore()
        stalled.set()
        assert await a.shutdown() == 0
        journal_usd, n_fills, n_trades = _journal_perp_usd(pg_url)
        assert n_fills == n_trades  # no fill counted twice
        # None lost: the journal's fills add up to what the venue booked.
        assert journal_usd == _perp_usd(sim) - perp_before_usd


async def test_halted_desk_stays_halted_after_takeover(pg_url: str, db_proxy: TcpProxy) -> None:
    async with simulator(SPEED) as sim:
        a, b = await _pair(sim, pg_url, db_proxy)
        code, out = await hedgerctl(a.daemon.config.control.socket_path, "halt", "--reason", "x")
        assert code == 0, out
        db_proxy.cut()
        await wait_for(lambda: _role(b) is NodeRole.ACTIVE, 15.0, "b to take over")
        assert b.daemon.trading is not None
        assert b.daemon.trading.state.value == "halted"
        epoch_b = b.daemon.ha.node.epoch() if b.daemon.ha else 0
        await admin_trade(sim, atm_call(sim), "buy", 10.0)
        # Two evaluations of b's: a hedge would have gone out by then, were it not halted.
        evals = b.daemon.stats.evaluations
        await wait_for(lambda: b.daemon.stats.evaluations >= evals + 2, 10.0, "b evaluates")
        assert _epochs(sim)[epoch_b] == 0
        assert await b.shutdown() == 0
        db_proxy.restore()
        assert await a.shutdown() == 0


async def test_handoff_gap(pg_url: str, db_proxy: TcpProxy) -> None:
    async with simulator(SPEED) as sim:
        a, b = await _pair(sim, pg_url, db_proxy)
        await wait_for(lambda: sum(_epochs(sim).values()) > 0, 20.0, "a's first hedge")
        await wait_for(lambda: not a.daemon.hedge_loop.exec_tasks, 20.0, "a's executions")

        async def b_sees_a() -> bool:
            st = await status(b.daemon.config.control.socket_path)
            assert st["ha"]["role"] == "standby"
            return bool(st["ha"]["lease_holder_seen"].startswith("a:"))

        await wait_for(b_sees_a, 10.0, "the standby to see a's lease")
        code, out = await hedgerctl(a.daemon.config.control.socket_path, "status")
        assert code == 0, out
        assert "HA  active  epoch 1" in out
        t0 = time.monotonic()
        code, out = await hedgerctl(a.daemon.config.control.socket_path, "handoff")
        assert code == 0, out
        await wait_for(lambda: _role(b) is NodeRole.ACTIVE, 10.0, "b to take over")
        gap_s = time.monotonic() - t0
        assert a.daemon.ha is not None and a.daemon.ha.node.released_at_s is not None
        from_release_s = boottime_s() - a.daemon.ha.node.released_at_s
        print(
            f"handoff: no-hedging gap {gap_s:.2f} s from the command (hedgerctl process "
            f"included), {from_release_s:.2f} s from the release to the standby ACTIVE"
        )
        assert _role(a) is NodeRole.STANDBY
        # Issue #18 asks < 1 s; measured 0.35-0.9 s here. The bound leaves room for a loaded
        # two-core CI machine, where the takeover's REST round trips queue.
        assert from_release_s < 1.5
        epoch_b = b.daemon.ha.node.epoch() if b.daemon.ha else 0
        await admin_trade(sim, atm_call(sim), "buy", 10.0)
        await wait_for(lambda: _epochs(sim)[epoch_b] > 0, 20.0, "b's first hedge")
        assert _sent_twice(sim) == []
        assert _role(a) is NodeRole.STANDBY  # it stays away from the lease
        assert await b.shutdown() == 0
        assert await a.shutdown() == 0


async def test_a_resting_order_of_the_old_epoch_is_cancelled_by_id_at_takeover(
    pg_url: str, db_proxy: TcpProxy
) -> None:
    """An order of the old leader's epoch still resting at the venue (the old leader died
    before cancelling it: here it never knew it in memory, so its own fence cannot cancel it)
    is cancelled by its venue id during the new leader's takeover, before it hedges."""
    async with simulator(SPEED) as sim:
        a, b = await _pair(sim, pg_url, db_proxy)
        da = a.daemon
        assert da.executor is not None and da.journal is not None and da.ha is not None
        venue = da.accounts["sim"].parts.venue
        assert venue is not None
        label = da.executor.label("sim", "stale-resting", 0)
        assert parse_label(label) is not None
        assert parse_label(label).epoch == da.ha.node.epoch()  # type: ignore[union-attr]
        inst = venue.instruments()[PERP]
        quote = await venue.fetch_quote(PERP)
        price = round(quote.bid_price * 0.9 / inst.tick_size) * inst.tick_size
        ack = await venue.place_order(
            OrderRequest(PERP, OrderSide.BUY, 10.0, label, price=price, post_only=True)
        )
        await asyncio.sleep(0.5)  # its stream update has passed a (the journal did not know it)
        now = da.clock_ms()
        rec = new_order(
            label=label, decision_id=None, venue="sim", instrument=PERP, side=OrderSide.BUY,
            amount=10.0, amount_unit=inst.amount_unit, limit_price=price,
            style=OrderStyle.POST_ONLY, reduce_only=False, created_ms=now,
        )  # fmt: skip
        await da.journal.adopt_order(
            dataclasses.replace(
                rec, status=OrderStatus.ACKED, venue_order_id=ack.order_id, sent_ms=now,
                acked_ms=now,
            )
        )  # fmt: skip
        assert any(o.label == label for o in mm_open_orders(sim))
        db_proxy.cut()
        await wait_for(lambda: _role(b) is NodeRole.ACTIVE, 15.0, "b to take over")
        assert b.daemon.ha is not None
        report = b.daemon.ha.last_reconcile
        assert report["stale_open_orders"] >= 1 and report["stale_cancelled"] >= 1, report
        assert not any(o.label == label for o in mm_open_orders(sim))  # gone at the venue
        assert b.daemon.journal is not None
        after = await b.daemon.journal.order(label)
        assert after is not None and after.status is OrderStatus.CANCELLED
        assert await b.shutdown() == 0
        db_proxy.restore()
        assert await a.shutdown() == 0


def _cod_sessions(sim: Simulator) -> int:
    """The simulator's WebSocket sessions with cancel-on-disconnect on."""
    server: Any = sim.server
    return sum(1 for s in server.sessions.values() if s.cod_enabled)


def _cod_armed(run: Running) -> bool:
    venue: Any = run.daemon.accounts["sim"].parts.venue
    return bool(venue.session.cancel_on_disconnect)


async def test_dead_man_switch_is_armed_only_while_active(pg_url: str, db_proxy: TcpProxy) -> None:
    """Deribit's cancel-on-disconnect follows the role: on (scope connection) for the
    leader's session only, never the standby's (whose disconnect would otherwise cancel the
    leader's orders); a fenced leader turns its own off, the new leader turns its on."""
    async with simulator(SPEED) as sim:
        a, b = await _pair(sim, pg_url, db_proxy)
        server: Any = sim.server
        assert _cod_armed(a) and not _cod_armed(b)
        assert _cod_sessions(sim) == 1 and not server._cod_accounts  # no account scope
        db_proxy.cut()
        await wait_for(lambda: _role(b) is NodeRole.ACTIVE, 15.0, "b to take over")
        await wait_for(lambda: not _cod_armed(a), 10.0, "the fenced a to disarm")
        assert _cod_armed(b)
        await wait_for(lambda: _cod_sessions(sim) == 1, 10.0, "one armed session: b's")
        assert await b.shutdown() == 0
        db_proxy.restore()
        assert await a.shutdown() == 0


async def test_positions_against_the_journal_at_takeover(pg_url: str, db_proxy: TcpProxy) -> None:
    """Each takeover reads the venue's positions and compares them with the previous
    takeover's reading plus the journal's fills since: here the journal holds a fill the
    venue never booked, so the new leader reports the perpetual (alert, journal event) and
    trades on: the venue's positions are what it hedges."""
    async with simulator(SPEED) as sim:
        a, b = await _pair(sim, pg_url, db_proxy)
        assert a.daemon.journal is not None and a.daemon.ha is not None
        ha_a = a.daemon.ha
        # The check runs on after ACTIVE (it only alerts).
        await wait_for(lambda: "position_mismatches" in ha_a.last_reconcile, 10.0, "a's check")
        assert ha_a.last_reconcile["position_mismatches"] == []  # nothing to compare yet
        ghost = Fill(
            venue="sim", instrument=PERP, trade_id="ghost-1", order_id="", label=None,
            side=OrderSide.BUY, amount=10.0, price=90_000.0, fee=0.0, fee_currency="BTC",
            ts_ms=a.daemon.clock_ms(),
        )  # fmt: skip
        await a.daemon.journal.record_fill(ghost)
        db_proxy.cut()
        await wait_for(lambda: _role(b) is NodeRole.ACTIVE, 15.0, "b to take over")
        assert b.daemon.ha is not None and b.daemon.journal is not None
        ha_b = b.daemon.ha
        await wait_for(lambda: "position_mismatches" in ha_b.last_reconcile, 10.0, "b's check")
        [m] = ha_b.last_reconcile["position_mismatches"]
        assert m["instrument"] == PERP
        assert m["journal_amount"] == pytest.approx(m["venue_amount"] + 10.0)
        event = await b.daemon.journal.last_event("position_mismatch", "sim")
        assert event is not None and event.payload["instrument"] == PERP
        assert _role(b) is NodeRole.ACTIVE  # an alert, not a halt
        assert await b.shutdown() == 0
        db_proxy.restore()
        assert await a.shutdown() == 0
