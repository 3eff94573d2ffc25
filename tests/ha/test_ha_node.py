"""`HaNode` over a real PostgreSQL with driven clocks (lease_support): no intent before the
takeover is done, intents written with the grant's epoch once ACTIVE, a paused node (frozen
local clock) refused by the database once another node holds the lease, then FENCED; a
handoff releases the lease at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from lease_support import LEASE, SERVER_NOW, Clocks, an_intent, node, write_intent

from hedgerd.execution.journal_db import PostgresTarget
from hedgerd.ha.lease import LeaderLease, LeaseLostError
from hedgerd.ha.node import HaNode, NodeRole
from hedgerd.ha.settings import HaSettings
from tcp_proxy import TcpProxy

SETTINGS = HaSettings(
    enabled=True,
    lease_name=LEASE,
    acquire_poll_ms=20,
    renew_interval_ms=100,
    renew_timeout_ms=80,
    lease_ms=6_000,
    margin_ms=1_500,
)


@pytest.fixture
def clocks(pg_url: str) -> Iterator[Clocks]:
    c = Clocks(pg_url)
    try:
        yield c
    finally:
        c.close()


async def _until(pred: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Wait for `pred` (polled every 10 ms), failing with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)


async def test_node_roles_and_fenced_writes(clocks: Clocks) -> None:
    a = node(clocks, "host-a", timing=SETTINGS.timing())
    b = node(clocks, "host-b", timing=SETTINGS.timing())
    go = asyncio.Event()
    fenced: list[str] = []

    async def take_over(_grant: object) -> None:
        await go.wait()

    async def on_fenced(why: str) -> None:
        fenced.append(why)

    ha = HaNode(a.lease, SETTINGS, clock_ms=lambda: 0, on_acquired=take_over, on_fenced=on_fenced)
    task = asyncio.get_running_loop().create_task(ha.run())
    try:
        await _until(lambda: ha.role is NodeRole.TAKEOVER, "a takes the lease")
        with pytest.raises(LeaseLostError, match="takeover"):
            a.journal.record_intent(*an_intent(), guard=ha.intent_guard())
        go.set()
        await _until(lambda: ha.role is NodeRole.ACTIVE, "a active")
        assert ha.epoch() == 1
        a.journal.record_intent(*an_intent(), guard=ha.intent_guard())

        # a pauses (its clock stops, renewals fail to matter): the lease expires on the server
        # and b takes it; a still thinks it is within its deadline, the database refuses it.
        a.clock.frozen = True
        clocks.advance(7_000)
        assert b.lease.acquire() is not None
        # Locally a may still believe it leads (its renewer thread may also have seen the
        # loss already: a race with this thread, so not asserted); the database refuses it.
        with pytest.raises(LeaseLostError):
            a.journal.record_intent(*an_intent(), guard=ha.intent_guard())
        await _until(lambda: ha.role is NodeRole.FENCED, "a fenced at its next renew")
        assert fenced and "expired or taken" in fenced[0]
        assert write_intent(b)  # b writes with its own grant
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        a.close()
        b.close()


async def test_handoff_releases_at_once(clocks: Clocks) -> None:
    a = node(clocks, "host-a", timing=SETTINGS.timing())

    async def nothing(_x: object) -> None:
        return None

    ha = HaNode(a.lease, SETTINGS, clock_ms=lambda: 0, on_acquired=nothing, on_fenced=nothing)
    task = asyncio.get_running_loop().create_task(ha.run())
    stopped: list[bool] = []

    async def stop_trading() -> None:
        stopped.append(True)

    try:
        await _until(lambda: ha.role is NodeRole.ACTIVE, "a active")
        assert await ha.handoff(stop_trading)
        assert stopped == [True]
        assert ha.role is NodeRole.STANDBY
        other = LeaderLease(
            PostgresTarget(clocks.url),
            LEASE,
            "host-b",
            server_now_sql=SERVER_NOW,
            monotonic_s=clocks.local(),
        )
        grant = other.acquire()  # no expiry wait: released
        assert grant is not None and grant.epoch == 2
        other.close()
        await asyncio.sleep(0.1)
        assert ha.role is NodeRole.STANDBY  # a stays away (and the lease is b's anyway)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        a.close()


async def test_database_unreachable_fences_and_alerts(clocks: Clocks) -> None:
    """The active's database is cut: the renewals fail (alert), its grant stands until its
    deadline, then it is FENCED (alert) and writes nothing."""
    parts = urlsplit(clocks.url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    a = node(clocks, "host-a", via, timing=SETTINGS.timing())
    alerts: list[str] = []

    async def nothing(_x: object) -> None:
        return None

    ha = HaNode(
        a.lease,
        SETTINGS,
        clock_ms=lambda: 0,
        on_acquired=nothing,
        on_fenced=nothing,
        on_alert=lambda kind, _text: alerts.append(kind),
    )
    task = asyncio.get_running_loop().create_task(ha.run())
    try:
        await _until(lambda: ha.role is NodeRole.ACTIVE, "a active")
        proxy.cut()
        await _until(lambda: "ha_db_unreachable" in alerts, "the unreachable alert")
        assert ha.role is NodeRole.ACTIVE  # a blip does not cost a failover
        clocks.advance(SETTINGS.lease_ms - SETTINGS.margin_ms)  # a's deadline passes
        assert ha.role is NodeRole.FENCED  # judged on its own clock at once
        await _until(lambda: "ha_fenced" in alerts, "the fenced alert")
        with pytest.raises(LeaseLostError):
            ha.intent_guard()(None)  # type: ignore[arg-type]  # refused before any SQL
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        proxy.close()
        a.close()
