"""The leader lease against a real PostgreSQL (the throwaway server): one holder at a time,
epochs that only grow, the fenced intent write, self-fencing on the local deadline, handoff,
and a database nobody can reach. Time is driven by the test (lease_support.Clocks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from lease_support import LEASE, Clocks, Node, an_intent, node, write_intent

from hedgerd.execution.journal import Journal, JournalStore
from hedgerd.execution.journal_db import JournalDb, PostgresTarget
from hedgerd.ha.lease import (
    NEVER_MS,
    RELEASED_CHANNEL,
    LeaseError,
    LeaseLostError,
    LeaseTiming,
    LeaseUnavailableError,
    Role,
)
from tcp_proxy import TcpProxy

D_MS = LeaseTiming().duration_ms  # 6 s
M_MS = LeaseTiming().margin_ms  # 1.5 s


@pytest.fixture
def clocks(pg_url: str) -> Iterator[Clocks]:
    c = Clocks(pg_url)
    yield c
    c.close()


@pytest.fixture
def a(clocks: Clocks) -> Iterator[Node]:
    n = node(clocks, "host-a")
    yield n
    n.close()


@pytest.fixture
def b(clocks: Clocks) -> Iterator[Node]:
    n = node(clocks, "host-b")
    yield n
    n.close()


def intents(n: Node) -> int:
    return n.journal.count_intents_since(0)


def history(clocks: Clocks) -> list[tuple[int, str]]:
    with psycopg.connect(clocks.url) as conn:
        rows = conn.execute(
            "SELECT epoch, holder FROM lease_history WHERE name = %s ORDER BY epoch", (LEASE,)
        ).fetchall()
    return [(int(e), str(h)) for e, h in rows]


def test_two_contenders_only_one_holds(a: Node, b: Node) -> None:
    assert a.lease.role is Role.STANDBY and b.lease.view().expires_in_ms == NEVER_MS
    grant = a.lease.acquire()
    assert grant is not None and grant.epoch == 1
    assert b.lease.acquire() is None
    assert (a.lease.role, b.lease.role) == (Role.ACTIVE, Role.STANDBY)
    view = b.lease.view()
    assert (view.holder, view.epoch, view.expires_in_ms) == ("host-a", 1, D_MS)
    write_intent(a)
    with pytest.raises(LeaseLostError, match="not held"):
        write_intent(b)
    assert intents(a) == 1


def test_epoch_strictly_increases_across_takeovers(clocks: Clocks, a: Node, b: Node) -> None:
    epochs: list[int] = []
    nodes = (a, b)
    for turn in range(6):
        taker, other = nodes[turn % 2], nodes[(turn + 1) % 2]
        if turn % 3 == 0:
            clocks.advance(D_MS)  # the holder died: its lease runs out
        else:
            other.lease.release()  # handoff
        grant = taker.lease.acquire()
        assert grant is not None, turn
        epochs.append(grant.epoch)
        write_intent(taker)
    assert epochs == sorted(set(epochs)) and epochs[0] == 1
    assert history(clocks) == [(e, nodes[i % 2].name) for i, e in enumerate(epochs)]


def test_a_paused_holders_write_is_refused_by_the_database(
    clocks: Clocks, a: Node, b: Node
) -> None:
    assert a.lease.acquire() is not None
    write_intent(a)
    a.clock.frozen = True  # host A is suspended: its monotonic clock stops, the world goes on
    clocks.advance(D_MS + 1_000)
    grant_b = b.lease.acquire()
    assert grant_b is not None and grant_b.epoch == 2
    assert a.lease.can_write()  # A's own clock cannot tell...
    with pytest.raises(LeaseLostError, match="epoch 1 not held"):
        write_intent(a)  # ...the database can: nothing is written
    write_intent(b)
    assert intents(b) == 2
    with pytest.raises(LeaseLostError):
        a.lease.renew()
    assert a.lease.role is Role.FENCED


def test_the_holder_fences_itself_at_its_local_deadline(clocks: Clocks, a: Node, b: Node) -> None:
    assert a.lease.acquire() is not None
    clocks.advance(D_MS - M_MS - 1)  # renews failed (or never ran) this long
    write_intent(a)
    clocks.advance(1)
    assert a.lease.role is Role.FENCED and not a.lease.can_write()
    with pytest.raises(LeaseLostError, match="past its deadline"):
        write_intent(a)  # refused locally, before the database is asked
    # The lease has not expired on the server yet: nobody else may take it before then...
    assert b.lease.acquire() is None
    clocks.advance(M_MS)
    # ...and then only with the next epoch; A cannot renew back into it either.
    with pytest.raises(LeaseLostError):
        a.lease.renew()
    grant = b.lease.acquire()
    assert grant is not None and grant.epoch == 2


def test_renewing_moves_the_deadline_and_the_expiry(clocks: Clocks, a: Node, b: Node) -> None:
    assert a.lease.acquire() is not None
    for _ in range(10):  # 10 renews a second apart: 10 s, longer than one lease
        clocks.advance(1_000)
        grant = a.lease.renew()
        assert grant.server_left_ms == D_MS
        assert b.lease.acquire() is None
    clocks.advance(D_MS - M_MS - 1)
    write_intent(a)
    assert a.lease.grant is not None and a.lease.grant.epoch == 1


def test_a_write_needs_time_to_spare_on_the_server(clocks: Clocks) -> None:
    timing = LeaseTiming(duration_ms=6_000, margin_ms=1_000, min_left_ms=2_000)
    a = node(clocks, "host-a", timing=timing)
    try:
        assert a.lease.acquire() is not None
        clocks.advance(4_000)  # 2 s left on the server: not more than min_left
        assert a.lease.can_write()  # the local deadline is at 5 s
        with pytest.raises(LeaseLostError, match="2000 ms to spare"):
            write_intent(a)
        a.lease.renew()
        write_intent(a)
    finally:
        a.close()


def test_renew_after_expiry_fails_and_reacquire_takes_a_new_epoch(clocks: Clocks, a: Node) -> None:
    assert a.lease.acquire() is not None
    clocks.advance(D_MS + 1)
    with pytest.raises(LeaseLostError):
        a.lease.renew()
    assert a.lease.role is Role.FENCED
    with pytest.raises(LeaseLostError, match="not held"):
        a.lease.renew()
    grant = a.lease.acquire()
    assert grant is not None and grant.epoch == 2 and a.lease.role is Role.ACTIVE
    write_intent(a)


def test_expired_on_the_server_but_not_locally_is_not_renewed(clocks: Clocks, a: Node) -> None:
    """A renew reaching the server after expiry fails even if the local clock lagged."""
    assert a.lease.acquire() is not None
    a.clock.frozen = True
    clocks.advance(D_MS)
    with pytest.raises(LeaseLostError, match="expired or taken"):
        a.lease.renew()
    assert a.lease.role is Role.FENCED


def test_handoff(clocks: Clocks, a: Node, b: Node) -> None:
    assert a.lease.acquire() is not None
    write_intent(a)
    assert b.lease.acquire() is None
    assert not b.lease.wait_released(0.0)  # the standby listens between polls
    with psycopg.connect(clocks.url, autocommit=True) as listener:
        listener.execute(f"LISTEN {RELEASED_CHANNEL}")
        assert a.lease.release()
        notes = list(listener.notifies(timeout=5.0, stop_after=1))
    assert [n.payload for n in notes] == [LEASE]
    assert b.lease.wait_released(5.0)  # woken by the release, not by its poll interval
    assert not a.lease.can_write() and a.lease.role is Role.STANDBY
    grant = b.lease.acquire()  # at once: no waiting for expiry
    assert grant is not None and grant.epoch == 2
    with pytest.raises(LeaseLostError):
        write_intent(a)
    write_intent(b)
    assert not a.lease.release()  # nothing held any more


def test_nobody_writes_while_the_database_is_unreachable(clocks: Clocks, pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    a, b = node(clocks, "host-a", via_proxy), node(clocks, "host-b", via_proxy)
    try:
        assert a.lease.acquire() is not None
        write_intent(a)
        proxy.cut()
        with pytest.raises(LeaseUnavailableError):
            a.lease.renew()
        assert a.lease.can_write()  # a blip does not fence at once...
        with pytest.raises(psycopg.OperationalError):
            write_intent(a)  # ...but no intent can be committed without the database
        with pytest.raises(LeaseUnavailableError):
            b.lease.acquire()
        with pytest.raises((LeaseLostError, psycopg.OperationalError)):
            write_intent(b)
        clocks.advance(D_MS - M_MS)
        assert a.lease.role is Role.FENCED  # A's deadline passed during the outage
        assert not a.lease.release()  # the release cannot reach the database either
        proxy.restore()
        clocks.advance(M_MS)
        with pytest.raises(LeaseLostError):
            a.lease.renew()
        with pytest.raises(LeaseLostError, match="not held"):
            write_intent(a)  # its journal is back (reconnected), its lease is not
        grant = b.lease.acquire()
        assert grant is not None and grant.epoch == 2
        write_intent(b)
    finally:
        a.close()
        b.close()
        proxy.close()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row == (2,)


def test_the_fence_needs_postgresql(a: Node, tmp_path: Path) -> None:
    assert a.lease.acquire() is not None
    store = JournalStore(tmp_path / "j.sqlite")
    try:
        order, decision = an_intent()
        with pytest.raises(LeaseError, match="PostgreSQL journal only"):
            store.record_intent(order, decision, guard=a.lease.guard())
        assert store.order(order.label) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"duration_ms": 0}, "> 0"),
        ({"renew_timeout_ms": 1_000}, "time out before"),
        ({"duration_ms": 3_000}, "must exceed"),
        ({"margin_ms": -1}, ">= 0"),
    ],
)
def test_timing_is_checked(kw: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LeaseTiming(**kw)


def test_a_takeover_waits_for_the_holders_open_intent_write(
    clocks: Clocks, a: Node, b: Node
) -> None:
    """The fence reads the lease row FOR SHARE: while an epoch-1 intent transaction is open,
    epoch 2 cannot be granted, even once the lease has expired; after it commits, the new
    holder sees the intent."""
    assert a.lease.acquire() is not None
    fence = a.lease.guard()
    during: list[object] = []

    def guard_then_expire(db: JournalDb) -> None:
        fence(db)  # the lease is checked and the row share-locked...
        clocks.advance(D_MS)  # ...then the lease expires before the commit
        during.append(b.lease.acquire())  # waits lock_timeout for the row, then gives up

    order, decision = an_intent()
    a.journal.record_intent(order, decision, guard=guard_then_expire)
    assert during == [None]
    grant = b.lease.acquire()
    assert grant is not None and grant.epoch == 2
    assert b.journal.order(order.label) is not None  # epoch 1's intent is visible to epoch 2


async def test_the_async_journal_runs_the_fence_on_its_thread(clocks: Clocks, a: Node) -> None:
    """The daemon's path: `Journal.record_intents(..., guard=)` on the journal's thread."""
    journal = await Journal.open(PostgresTarget(clocks.url), exclusive=False)
    try:
        assert a.lease.acquire() is not None
        order, decision = an_intent()
        await journal.record_intent(order, decision, guard=a.lease.guard())
        clocks.advance(D_MS - M_MS)
        late, late_decision = an_intent()
        with pytest.raises(LeaseLostError):
            await journal.record_intent(late, late_decision, guard=a.lease.guard())
        assert await journal.order(order.label) is not None
        assert await journal.order(late.label) is None
        assert await journal.decision(late_decision.decision_id) is None
    finally:
        await journal.close()


async def test_a_deposed_leaders_vol_of_vol_samples_are_refused(
    clocks: Clocks, a: Node, b: Node
) -> None:
    """Vol-of-vol samples are fenced like intents and trading states (`Journal.state_guard`,
    the daemon's `HaNode.state_guard`, whose database check is the lease's guard): a paused
    leader's sample written after the next leader took over is refused and neither lands nor
    prunes, so the new leader's seed reads only its own and its predecessor's samples before
    the takeover (before: the deposed leader's samples landed in the shared journal)."""
    journals = [await Journal.open(PostgresTarget(clocks.url), exclusive=False) for _ in "ab"]
    journal_a, journal_b = journals
    journal_a.state_guard = a.lease.guard
    journal_b.state_guard = b.lease.guard
    hour = 3_600_000
    try:
        assert a.lease.acquire() is not None
        await journal_a.record_volvol_sample_soon("BTC", 1 * hour, 0.50, 0)
        a.clock.frozen = True  # A is paused and does not know it lost the lease
        clocks.advance(D_MS + 1_000)
        assert b.lease.acquire() is not None
        with pytest.raises(LeaseLostError):
            # Its window would prune every sample before it.
            await journal_a.record_volvol_sample_soon("BTC", 2 * hour, 0.90, 2 * hour)
        await journal_b.record_volvol_sample_soon("BTC", 3 * hour, 0.55, 0)
        assert await journal_b.volvol_samples("BTC", 0, 4 * hour) == [
            (1 * hour, 0.50),
            (3 * hour, 0.55),
        ]
    finally:
        for journal in journals:
            await journal.close()
