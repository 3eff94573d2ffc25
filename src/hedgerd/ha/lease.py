"""The leader lease with fencing: at most one daemon creates order intents for an account.

A lease is one row of `leader_lease` per trading account. Its holder renews it every
`renew_interval_ms`; it lasts `duration_ms` past the last renew *on the database server's
clock* (the only clock that judges expiry). Every grant increments the `epoch`, the fencing
token: an order intent is committed only in a transaction that re-checks, under a row lock,
that the writer still holds that epoch with at least `min_left_ms` to spare (`guard`). A lease
or lock alone does not give mutual exclusion (a paused holder wakes up after its lease has
expired); the epoch checked by the journal does, for the journal. The venue fences are the
daemon integration's (docs/ha.md).

Three rules, each with its own clock:

1. Expiry, acquire and the fenced write compare times on the PostgreSQL server only
   (`clock_timestamp()`, not `now()`, which is the start of the transaction).
2. The holder self-fences on its own monotonic clock: after `deadline_s` = (local time
   *before* the last successful renew or acquire was sent) + duration − margin it creates no
   intent, whether or not the database can be reached. The request reached the server after
   it was sent, so the server's expiry is at least `duration` after that local instant; the
   margin covers the drift rate between the two clocks and the time a fenced write takes.
   The default clock is CLOCK_BOOTTIME (CLOCK_MONOTONIC stops while the host is suspended,
   which is when a self-fence matters most).
3. A holder past its deadline, or whose renew found the lease expired or taken, is FENCED
   and comes back only through `acquire`, with a new epoch (and, in the daemon, a full
   reconciliation). A renew that fails because the database cannot be reached keeps the
   grant until its deadline: a one-second blip does not cost a failover.

All times in this module: `*_ms` are milliseconds, `*_s` seconds on the local monotonic clock.
The SQL takes the server's time from `server_now_sql` ("clock_timestamp()"); tests replace it
with a clock they drive (a one-row table), so nothing here sleeps.

    lease = LeaderLease(target, "deribit:main", holder="host-a:4711")
    grant = lease.acquire()            # standby, every ~0.5 s until it returns a grant
    lease.renew()                      # active, every ~1 s; LeaseLostError: fenced
    journal.record_intents(orders, decision, guard=lease.guard())
    lease.release()                    # graceful handoff
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import psycopg
import structlog

from hedgerd.execution.journal_db import JournalDb, PostgresTarget
from hedgerd.execution.journal_pg import connect
from hedgerd.ha.lease_schema import ensure_lease_schema

log = structlog.get_logger(__name__)

#: NOTIFY channel on release: a standby LISTENing acquires at once instead of at its next poll.
RELEASED_CHANNEL = "hedgerd_lease_released"
#: `LeaseView.expires_in_ms` of a lease never held.
NEVER_MS = -(2**62)


def boottime_s() -> float:
    """Seconds on CLOCK_BOOTTIME: monotonic, and counting time the host was suspended."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class LeaseError(Exception):
    """Base of the lease's errors."""


class LeaseLostError(LeaseError):
    """This process does not hold the lease (any more): it must not create intents. Raised by
    `renew` when the lease expired or was taken, and by the fenced write."""


class LeaseUnavailableError(LeaseError):
    """The database could not be asked (connection refused, dropped, timed out). The current
    grant, if any, still counts until its local deadline."""


class Role(StrEnum):
    STANDBY = "standby"  # holds no grant, may acquire
    ACTIVE = "active"  # holds a grant within its local deadline
    FENCED = "fenced"  # held one, lost it or passed its deadline: re-acquire to come back


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Lease `duration_ms` (D), renew every `renew_interval_ms`, each renew allowed
    `renew_timeout_ms`; the holder stops creating intents `margin_ms` (M) before D has passed
    since its last successful renew was sent; a fenced write needs `min_left_ms` left on the
    server's expiry. Defaults: docs/ha.md (a crash fails over in about D + acquire poll)."""

    duration_ms: int = 6_000
    renew_interval_ms: int = 1_000
    renew_timeout_ms: int = 800
    margin_ms: int = 1_500
    min_left_ms: int = 1_500

    def __post_init__(self) -> None:
        if min(self.duration_ms, self.renew_interval_ms, self.renew_timeout_ms) <= 0:
            raise ValueError("lease duration, renew interval and renew timeout must be > 0")
        if self.margin_ms < 0 or self.min_left_ms < 0:
            raise ValueError("lease margin and min_left must be >= 0")
        if self.renew_timeout_ms >= self.renew_interval_ms:
            raise ValueError("a renew must time out before the next one is due")
        # At least one renew (and its timeout) must fit before the self-fence deadline, or the
        # holder fences itself between two healthy renews.
        if self.duration_ms - self.margin_ms <= self.renew_interval_ms + self.renew_timeout_ms:
            raise ValueError(
                "duration_ms - margin_ms must exceed renew_interval_ms + renew_timeout_ms "
                f"(got {self.duration_ms} - {self.margin_ms} <= "
                f"{self.renew_interval_ms} + {self.renew_timeout_ms})"
            )


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A grant this process holds: lease `name`, `epoch`, and `deadline_s`, the local
    monotonic instant after which it must not create intents. `server_left_ms`: what the
    server said was left of the lease when it answered (for status)."""

    name: str
    holder: str
    epoch: int
    sent_s: float
    deadline_s: float
    server_left_ms: int


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The lease as the database has it now (what a standby and `hedgerctl status` see):
    `holder` '' when released or never held; `expires_in_ms` ≤ 0 once expired."""

    name: str
    holder: str
    epoch: int
    expires_in_ms: int


def _ms(delta: timedelta) -> int:
    return int(delta / timedelta(milliseconds=1))


class LeaderLease:
    """One contender for one lease, on a connection of its own (not the journal's: a renew
    must not queue behind a journal write). Synchronous and not thread-safe: the daemon runs
    it on one thread, like the journal."""

    def __init__(
        self,
        target: PostgresTarget,
        name: str,
        holder: str,
        *,
        timing: LeaseTiming | None = None,
        monotonic_s: Callable[[], float] = boottime_s,
        server_now_sql: str = "clock_timestamp()",
    ) -> None:
        if not name or not holder:
            raise ValueError("a lease needs a name and a holder id")
        self.target = target
        self.name = name
        self.holder = holder
        self.timing = timing or LeaseTiming()
        self._monotonic_s = monotonic_s
        self._now = server_now_sql
        self._conn: psycopg.Connection[Any] | None = None
        self._grant: LeaseGrant | None = None
        self._fenced = False
        self._ready = False  # schema and row ensured
        self._listening = False  # LISTEN issued on the current connection

    # ------------------------------------------------------------------ connection

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            t = self.timing
            conn = connect(self.target, application_name=f"hedgerd-lease:{self.holder}")
            try:
                # A renew that cannot finish in time has failed: better to know at once than
                # to learn it after the deadline. The lock timeout lets an acquire give up
                # behind a fenced write that holds the row, and poll again.
                conn.execute(f"SET statement_timeout = {int(t.renew_timeout_ms)}")
                conn.execute(f"SET lock_timeout = {int(t.renew_timeout_ms // 2 or 1)}")
                if not self._ready:
                    ensure_lease_schema(conn)
                    conn.execute(
                        "INSERT INTO leader_lease (name) VALUES (%s) ON CONFLICT DO NOTHING",
                        (self.name,),
                    )
                    self._ready = True
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        self._listening = False
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _call(self, what: str, fn: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """Run `fn` on the lease connection; a connection or timeout failure becomes
        `LeaseUnavailableError` (and the connection is dropped, to reconnect next time)."""
        try:
            return fn(self._connection())
        except psycopg.errors.LockNotAvailable:
            raise  # the row is busy, the connection fine: the caller decides
        except psycopg.OperationalError as exc:  # also statement timeouts (QueryCanceled)
            self._drop_connection()
            log.warning("lease_db_unavailable", lease=self.name, op=what, error=type(exc).__name__)
            raise LeaseUnavailableError(f"lease {self.name}: {what}: database unavailable") from exc

    def close(self) -> None:
        self._drop_connection()

    # ------------------------------------------------------------------------ state

    @property
    def role(self) -> Role:
        if self._grant is not None and self._monotonic_s() < self._grant.deadline_s:
            return Role.ACTIVE
        if self._grant is not None or self._fenced:
            return Role.FENCED
        return Role.STANDBY

    @property
    def grant(self) -> LeaseGrant | None:
        """The grant held, even past its deadline (see `role`)."""
        return self._grant

    def can_write(self) -> bool:
        """Whether this process may create intents now (holds a grant within its deadline)."""
        return self.role is Role.ACTIVE

    def _fence(self, why: str) -> None:
        if self._grant is not None:
            log.warning("lease_fenced", lease=self.name, epoch=self._grant.epoch, why=why)
        self._grant = None
        self._fenced = True

    # ----------------------------------------------------------------- operations

    def acquire(self) -> LeaseGrant | None:
        """Take the lease if it is free (expired or released) with a new epoch; None when
        someone else holds it (or this process still holds its own, unexpired: a restarted
        holder waits for expiry like anyone else). A grant held here is given up first."""
        if self._grant is not None:
            self._fence("re-acquire")
        sent_s = self._monotonic_s()
        duration_ms = self.timing.duration_ms
        now = self._now

        def run(conn: psycopg.Connection[Any]) -> Any:
            # The deadline counts from the statement's send, not from before a (re)connect:
            # the server computes the expiry when it runs the statement, later still.
            nonlocal sent_s
            sent_s = self._monotonic_s()
            # One statement (autocommit), grant and history row together: as a transaction
            # it was four round trips, which on a loaded machine took the grant's whole
            # local lifetime (acquires answered 4-8 s after they were sent).
            return conn.execute(
                f"WITH granted AS ("
                f"UPDATE leader_lease SET holder = %s, epoch = epoch + 1, "
                f"acquired_at = {now}, renewed_at = {now}, "
                f"expires_at = {now} + %s * interval '1 millisecond' "
                f"WHERE name = %s AND expires_at <= {now} "
                f"RETURNING name, epoch, holder, expires_at), "
                f"history AS (INSERT INTO lease_history (name, epoch, holder, acquired_at) "
                f"SELECT name, epoch, holder, {now} FROM granted) "
                f"SELECT epoch, expires_at - {now} FROM granted",
                (self.holder, duration_ms, self.name),
            ).fetchone()

        try:
            row = self._call("acquire", run)
        except psycopg.errors.LockNotAvailable:
            return None  # a fenced write of the holder has the row: it is not free
        if row is None:
            return None
        grant = self._granted(int(row[0]), sent_s, _ms(row[1]))
        log.info("lease_acquired", lease=self.name, epoch=grant.epoch, holder=self.holder)
        return grant

    def _granted(self, epoch: int, sent_s: float, server_left_ms: int) -> LeaseGrant:
        t = self.timing
        self._grant = LeaseGrant(
            name=self.name,
            holder=self.holder,
            epoch=epoch,
            sent_s=sent_s,
            deadline_s=sent_s + (t.duration_ms - t.margin_ms) / 1000.0,
            server_left_ms=server_left_ms,
        )
        self._fenced = False
        return self._grant

    def renew(self) -> LeaseGrant:
        """Extend the held lease by `duration_ms` from now (server clock). Raises
        `LeaseLostError` (and fences) when no grant is held, its local deadline has passed,
        or the server says it expired or changed hands; `LeaseUnavailableError` when the
        database cannot be asked (the grant stands until its deadline)."""
        grant = self._grant
        if grant is None:
            raise LeaseLostError(f"lease {self.name}: not held")
        sent_s = self._monotonic_s()  # before sending: the deadline counts from here
        if sent_s >= grant.deadline_s:
            self._fence("deadline passed before renew")
            raise LeaseLostError(f"lease {self.name}: epoch {grant.epoch} past its deadline")
        now = self._now

        def run(conn: psycopg.Connection[Any]) -> Any:
            nonlocal sent_s  # as in `acquire`: from the statement's send, after a reconnect
            sent_s = self._monotonic_s()
            if sent_s >= grant.deadline_s:
                return None  # the reconnect took the rest of the grant: lost
            return conn.execute(
                f"UPDATE leader_lease SET renewed_at = {now}, "
                f"expires_at = {now} + %s * interval '1 millisecond' "
                f"WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > {now} "
                f"RETURNING expires_at - {now}",
                (self.timing.duration_ms, self.name, self.holder, grant.epoch),
            ).fetchone()

        try:
            row = self._call("renew", run)
        except psycopg.errors.LockNotAvailable as exc:  # only our own write holds the row
            raise LeaseUnavailableError(f"lease {self.name}: renew: row locked") from exc
        if row is None:
            self._fence("expired or taken at renew")
            raise LeaseLostError(f"lease {self.name}: epoch {grant.epoch} expired or taken")
        return self._granted(grant.epoch, sent_s, _ms(row[0]))

    def release(self) -> bool:
        """Give the lease up now (graceful handoff): this process stops creating intents
        first, then the lease expires at once and a NOTIFY wakes the standby. True when the
        database confirmed it; False when there was nothing to release or the database could
        not be reached (the lease then expires by itself)."""
        grant = self._grant
        self._grant = None
        self._fenced = False
        if grant is None:
            return False
        now = self._now

        def run(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                row = conn.execute(
                    f"UPDATE leader_lease SET holder = '', expires_at = {now} "
                    f"WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > {now} "
                    "RETURNING epoch",
                    (self.name, self.holder, grant.epoch),
                ).fetchone()
                conn.execute("SELECT pg_notify(%s, %s)", (RELEASED_CHANNEL, self.name))
            return row is not None

        try:
            released = bool(self._call("release", run))
        except LeaseUnavailableError:
            return False
        log.info("lease_released", lease=self.name, epoch=grant.epoch, confirmed=released)
        return released

    def wait_released(self, timeout_s: float) -> bool:
        """A standby's wait between two `acquire` polls: True as soon as this lease is
        released (NOTIFY), False after `timeout_s`. The first call starts listening, so a
        release before it is not seen: the loop is `while acquire() is None:
        wait_released(0.5)`, which a lost notification only slows down to the poll."""

        def run(conn: psycopg.Connection[Any]) -> bool:
            if not self._listening:
                conn.execute(f"LISTEN {RELEASED_CHANNEL}")
                self._listening = True
            for note in conn.notifies(timeout=max(0.0, timeout_s), stop_after=1):
                if note.payload == self.name:
                    return True
            return False

        try:
            return bool(self._call("wait_released", run))
        except LeaseUnavailableError:
            self._listening = False  # a new connection listens again
            raise

    def view(self) -> LeaseView:
        """The lease as the database has it now (raises `LeaseUnavailableError`)."""
        now = self._now

        def run(conn: psycopg.Connection[Any]) -> Any:
            return conn.execute(
                f"SELECT holder, epoch, CASE WHEN isfinite(expires_at) "
                f"THEN expires_at - {now} END FROM leader_lease WHERE name = %s",
                (self.name,),
            ).fetchone()

        row = self._call("view", run)
        if row is None:  # pragma: no cover - the row is created with the connection
            return LeaseView(self.name, "", 0, NEVER_MS)
        left = row[2]  # NULL: never held ('-infinity')
        expires_in_ms = _ms(left) if isinstance(left, timedelta) else NEVER_MS
        return LeaseView(self.name, str(row[0]), int(row[1]), expires_in_ms)

    # --------------------------------------------------------------- fenced write

    def guard(self) -> Callable[[JournalDb], None]:
        """The fence for one intent write: `journal.record_intents(..., guard=lease.guard())`.

        Inside the intent's transaction, on the journal's connection: refuse (LeaseLostError,
        so nothing is written) unless this process is within its local deadline AND the
        database says it still holds this epoch with at least `min_left_ms` before expiry.
        The row is read FOR SHARE: a takeover's UPDATE waits for this transaction, so every
        intent of epoch E is committed before epoch E + 1 can be granted, and the new
        leader sees it.

        The guard checks the grant held when it was made: make one per write, after building
        the intents' client ids from that grant's epoch."""
        grant = self._grant
        min_left_ms = self.timing.min_left_ms
        now = self._now
        name = self.name
        holder = self.holder

        def check(db: JournalDb) -> None:
            if grant is None:
                raise LeaseLostError(f"lease {name}: not held: no intent may be created")
            if self._monotonic_s() >= grant.deadline_s:
                if self._grant is grant:  # not if a renew replaced it meanwhile (other thread)
                    self._fence("deadline passed at a write")
                raise LeaseLostError(f"lease {name}: epoch {grant.epoch} past its deadline")
            if db.dialect != "postgresql":
                raise LeaseError("the leader lease fences a PostgreSQL journal only")
            row = db.execute(
                f"SELECT epoch FROM leader_lease WHERE name = ? AND holder = ? AND epoch = ? "
                f"AND expires_at > {now} + ? * interval '1 millisecond' FOR SHARE",
                (name, holder, grant.epoch, min_left_ms),
            ).fetchone()
            if row is None:
                raise LeaseLostError(
                    f"lease {name}: epoch {grant.epoch} not held with {min_left_ms} ms to spare"
                )

        return check


__all__ = [
    "RELEASED_CHANNEL",
    "LeaderLease",
    "LeaseError",
    "LeaseGrant",
    "LeaseLostError",
    "LeaseTiming",
    "LeaseUnavailableError",
    "LeaseView",
    "Role",
    "boottime_s",
]
