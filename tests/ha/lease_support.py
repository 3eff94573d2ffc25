"""Helpers for the lease tests: clocks the test drives, contenders with their own journal.

The server's clock is a one-row table (`SERVER_NOW` replaces `clock_timestamp()` in the
lease's SQL); each contender has its own local monotonic clock. `Clocks.advance` moves the
server and every local clock that is not frozen (a frozen one is a suspended or paused host:
CLOCK_MONOTONIC stops, the world goes on). Nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from hedgerd.execution.journal import DecisionRecord, JournalStore
from hedgerd.execution.journal_db import PostgresTarget
from hedgerd.execution.order_state import OrderRecord, OrderStyle, new_order
from hedgerd.ha.lease import LeaderLease, LeaseTiming
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import OrderSide

SERVER_NOW = "(SELECT t FROM lease_test_clock)"
LEASE = "deribit:main"


@dataclass
class LocalClock:
    """A host's monotonic clock, seconds."""

    s: float = 1_000.0
    frozen: bool = False

    def __call__(self) -> float:
        return self.s


@dataclass
class Clocks:
    url: str
    locals: list[LocalClock] = field(default_factory=list)

    def __post_init__(self) -> None:
        #: The test's own connection (the clock, and looking at the lease row).
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.conn.execute("CREATE TABLE lease_test_clock (t timestamptz NOT NULL)")
        self.conn.execute("INSERT INTO lease_test_clock VALUES ('2026-01-01T00:00:00Z')")

    def close(self) -> None:
        self.conn.close()

    def local(self) -> LocalClock:
        clock = LocalClock()
        self.locals.append(clock)
        return clock

    def advance(self, ms: int) -> None:
        """`ms` milliseconds pass on the server and on every clock not frozen."""
        self.conn.execute(
            "UPDATE lease_test_clock SET t = t + %s * interval '1 millisecond'", (ms,)
        )
        for clock in self.locals:
            if not clock.frozen:
                clock.s += ms / 1000.0


@dataclass
class Node:
    """One daemon as far as HA goes: its lease contender and its journal connection."""

    name: str
    lease: LeaderLease
    journal: JournalStore
    clock: LocalClock

    def close(self) -> None:
        self.lease.close()
        self.journal.close()


def node(
    clocks: Clocks,
    name: str,
    url: str | None = None,
    timing: LeaseTiming | None = None,
) -> Node:
    """A contender reaching the database at `url` (default: the clocks' URL)."""
    target = PostgresTarget(url or clocks.url)
    clock = clocks.local()
    lease = LeaderLease(
        target, LEASE, holder=name, timing=timing, monotonic_s=clock, server_now_sql=SERVER_NOW
    )
    # exclusive=False: both nodes keep the journal open; the lease, not a lock, fences writes.
    return Node(name, lease, JournalStore(target, exclusive=False), clock)


_counter = iter(range(1, 1 << 30))


def an_intent(created_ms: int = 1_000) -> tuple[OrderRecord, DecisionRecord]:
    n = next(_counter)
    did = f"d{n}"
    order = new_order(
        label=f"hg1-{did}-0-0-0",
        decision_id=did,
        venue="deribit",
        instrument="BTC-PERPETUAL",
        side=OrderSide.SELL,
        amount=100.0,
        amount_unit=AmountUnit.USD,
        limit_price=50_000.0,
        style=OrderStyle.IOC_LIMIT,
        reduce_only=False,
        created_ms=created_ms,
    )
    return order, DecisionRecord(did, created_ms, "BTC", "band", {})


def write_intent(n: Node) -> str:
    """Journal one intent under `n`'s lease fence; returns its label (raises if refused)."""
    order, decision = an_intent()
    n.journal.record_intent(order, decision, guard=n.lease.guard())
    return order.label


__all__ = [
    "LEASE",
    "SERVER_NOW",
    "Clocks",
    "LocalClock",
    "Node",
    "an_intent",
    "node",
    "write_intent",
]
