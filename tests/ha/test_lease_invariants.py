"""The lease's invariants under arbitrary interleavings of three contenders (hypothesis state
machine against the throwaway PostgreSQL): acquire, renew, release, fenced writes, time
passing, and hosts whose monotonic clock stops (suspended) and resumes. (It finds a write by
a suspended ex-holder in seconds when the database half of the fence is taken out.)

Invariants:
- every grant's epoch is one more than the last granted (strictly increasing, never reused);
- an intent is written only by the lease row's holder, under the row's epoch, with at least
  `min_left_ms` left on the server's clock;
- the epochs of the intents written never decrease;
- among hosts whose clock never stopped, at most one believes it is active.
"""

from __future__ import annotations

import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from lease_support import LEASE, Clocks, Node, node, write_intent

from hedgerd.ha.lease import LeaseLostError, LeaseTiming, Role
from pg_server import PgServer, scratch_schema

TIMING = LeaseTiming()
NODES = 2


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self, server: PgServer) -> None:
        super().__init__()
        self._schema = scratch_schema(server, "h")
        self.url = self._schema.__enter__()
        self.clocks = Clocks(self.url)
        self.nodes: list[Node] = [node(self.clocks, f"host-{i}") for i in range(NODES)]
        self.nodes[0].lease.view()  # creates the lease's tables and row
        self.ever_frozen = [False] * NODES
        self.last_epoch = 0
        self.written_epochs: list[int] = []

    def teardown(self) -> None:
        for n in self.nodes:
            n.close()
        self.clocks.close()
        self._schema.__exit__(None, None, None)

    def _row(self) -> tuple[str, int, int]:
        """(holder, epoch, ms left on the server's clock) of the lease row."""
        row = self.clocks.conn.execute(
            "SELECT holder, epoch, CASE WHEN isfinite(expires_at) THEN "
            "(extract(epoch FROM expires_at - (SELECT t FROM lease_test_clock)) * 1000)"
            "::bigint ELSE -1 END FROM leader_lease WHERE name = %s",
            (LEASE,),
        ).fetchone()
        assert row is not None
        return str(row[0]), int(row[1]), int(row[2])

    @rule(i=st.integers(0, NODES - 1))
    def acquire(self, i: int) -> None:
        grant = self.nodes[i].lease.acquire()
        if grant is not None:
            assert grant.epoch == self.last_epoch + 1
            self.last_epoch = grant.epoch

    @rule(i=st.integers(0, NODES - 1))
    def renew(self, i: int) -> None:
        with contextlib.suppress(LeaseLostError):
            self.nodes[i].lease.renew()

    @rule(i=st.integers(0, NODES - 1))
    def release(self, i: int) -> None:
        self.nodes[i].lease.release()

    def _holding(self) -> list[int]:
        """Nodes holding a grant (even past its deadline): the ones that would try to write."""
        return [i for i, n in enumerate(self.nodes) if n.lease.grant is not None]

    @precondition(lambda self: bool(self._holding()))
    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        self._write(data.draw(st.sampled_from(self._holding()), label="writer"))

    @rule(i=st.integers(0, NODES - 1))
    def write_any(self, i: int) -> None:
        self._write(i)

    def _write(self, i: int) -> None:
        n = self.nodes[i]
        grant = n.lease.grant
        holder, epoch, left_ms = self._row()  # time does not pass between this and the write
        try:
            write_intent(n)
        except LeaseLostError:
            return
        assert grant is not None
        assert (holder, epoch) == (n.name, grant.epoch)
        assert left_ms > TIMING.min_left_ms
        self.written_epochs.append(grant.epoch)

    @rule(ms=st.sampled_from([500, 1_000, 2_000, 4_000, 7_000]))
    def advance(self, ms: int) -> None:
        self.clocks.advance(ms)

    @precondition(lambda self: bool(self._holding()))
    @rule(data=st.data())
    def suspend_a_holder(self, data: st.DataObject) -> None:
        """A holder's host is suspended (its monotonic clock stops): the worst moment."""
        i = data.draw(st.sampled_from(self._holding()), label="suspended")
        self.nodes[i].clock.frozen = True
        self.ever_frozen[i] = True

    @rule(i=st.integers(0, NODES - 1))
    def resume(self, i: int) -> None:
        self.nodes[i].clock.frozen = False

    @invariant()
    def written_epochs_never_decrease(self) -> None:
        assert self.written_epochs == sorted(self.written_epochs)

    @invariant()
    def one_active_among_true_clocks(self) -> None:
        active = [
            n.name
            for n, frozen in zip(self.nodes, self.ever_frozen, strict=True)
            if not frozen and n.lease.role is Role.ACTIVE
        ]
        assert len(active) <= 1, active


def test_lease_invariants(pg_server: PgServer) -> None:
    run_state_machine_as_test(
        lambda: LeaseMachine(pg_server),
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None),
    )
