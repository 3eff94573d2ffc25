"""One daemon's side of the leader lease: STANDBY → (takeover) → ACTIVE → FENCED → STANDBY.

`HaNode.run` is the lease's loop. A standby polls `acquire` every `acquire_poll_ms` (and at
once on a release NOTIFY); a grant starts the takeover (`on_acquired`: wait for the previous
leader's requests, reconcile, restore the trading state) and only then is the node ACTIVE
(`active` set: the gated parts, the hedge loop among them, run). The active renews every
`renew_interval_ms`; a renew that says the lease is lost, or the local self-fence deadline
passing while renews fail, fences it (`on_fenced`: stop intents, cancel its own orders), and
the loop goes back to acquiring, which only a new epoch satisfies.

Every `LeaderLease` call runs on one thread of its own (the lease is synchronous and not
thread-safe; a renew must not wait behind a journal write). The fenced write itself is the
lease's `guard`, run by the journal inside each intent transaction. Times: `*_s` seconds
on the lease's monotonic clock, `*_ms` milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import structlog

from hedgerd.execution.journal import IntentGuard
from hedgerd.execution.journal_db import JournalDb
from hedgerd.ha.lease import (
    LeaderLease,
    LeaseGrant,
    LeaseLostError,
    LeaseUnavailableError,
    LeaseView,
    Role,
)
from hedgerd.ha.settings import HaSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: How often the event loop looks at a held grant between the renewer's signals (seconds):
#: only the reaction to a deadline passing unnoticed (the guards refuse at once anyway).
_HOLD_POLL_S = 0.25
#: The shortest wait between two renews (seconds): no busy loop when they fail fast.
_MIN_RENEW_GAP_S = 0.05
#: A standby's acquire follows the seen lease's expiry by this much (seconds): the view's
#: round trip made the remaining time a little shorter than it reads.
_EXPIRY_SLACK_S = 0.005


class NodeRole(StrEnum):
    STANDBY = "standby"  # no grant: warm, sends nothing, polls the lease
    TAKEOVER = "takeover"  # granted, reconciling: sends nothing yet
    ACTIVE = "active"  # granted and reconciled: hedges
    FENCED = "fenced"  # lost its grant; only a new epoch brings it back


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What `hedgerctl status` and the metrics show. `lease_age_ms`: since the held grant's
    last renew was sent (None without a grant); `last_failover_ms`: the daemon clock (UTC ms)
    when this node last became the leader; `db_reachable`: the last lease call reached the
    database."""

    role: NodeRole
    holder: str
    epoch: int
    lease_age_ms: int | None
    acquisitions: int
    last_failover_ms: int | None
    last_takeover_s: float | None
    db_reachable: bool
    seen_holder: str
    seen_epoch: int

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "holder": self.holder,
            "epoch": self.epoch,
            "lease_age_ms": self.lease_age_ms,
            "acquisitions": self.acquisitions,
            "last_failover_ms": self.last_failover_ms,
            "last_takeover_s": self.last_takeover_s,
            "db_reachable": self.db_reachable,
            "lease_holder_seen": self.seen_holder,
            "lease_epoch_seen": self.seen_epoch,
        }


def _refuse(why: str) -> IntentGuard:
    def check(_db: JournalDb) -> None:
        raise LeaseLostError(why)

    return check


class HaNode:
    """The lease loop of one daemon. `on_acquired(grant)`: the takeover, awaited before the
    node is ACTIVE (an exception fences); `on_fenced(why)`: stop and cancel own orders;
    `on_alert(kind, text)`: failover, fenced, database unreachable."""

    def __init__(
        self,
        lease: LeaderLease,
        settings: HaSettings,
        *,
        clock_ms: Callable[[], int],
        on_acquired: Callable[[LeaseGrant], Awaitable[None]],
        on_fenced: Callable[[str], Awaitable[None]],
        on_alert: Callable[[str, str], None] | None = None,
    ) -> None:
        self.lease = lease
        self.settings = settings
        self.clock_ms = clock_ms
        self._on_acquired = on_acquired
        self._on_fenced = on_fenced
        self._on_alert = on_alert or (lambda _kind, _text: None)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hedgerd-lease")
        self._thread_closed = False
        #: Set while ACTIVE (granted and reconciled): the gated parts run.
        self.active = asyncio.Event()
        #: Set while not ACTIVE: the gated parts stop.
        self.inactive = asyncio.Event()
        self.inactive.set()
        self._was_fenced = False
        self._handoff_until_s = 0.0
        self.acquisitions = 0
        self.last_failover_ms: int | None = None
        self.last_takeover_s: float | None = None
        self.db_reachable = True
        self._seen = LeaseView(lease.name, "", 0, 0)
        #: The grant being led followed a graceful release (handoff) of the epoch before it:
        #: the previous leader stopped and cancelled before releasing, no expiry wait needed.
        self.after_release = False
        #: When this node last released the lease in a handoff (lease clock, s).
        self.released_at_s: float | None = None
        self._handoff = asyncio.Lock()
        self._renewer: _Renewer | None = None

    # ---------------------------------------------------------------------- state
    @property
    def role(self) -> NodeRole:
        if self.lease.grant is not None and self.lease.can_write():
            # ACTIVE only once the takeover is done (the lease thread sets the grant before
            # this loop has even started the takeover).
            return NodeRole.ACTIVE if self.active.is_set() else NodeRole.TAKEOVER
        if self.lease.grant is not None or self._was_fenced:
            return NodeRole.FENCED
        return NodeRole.STANDBY

    def state_guard(self) -> IntentGuard:
        """The fence of a trading-state write: refused unless this node holds a grant
        (taking over or ACTIVE), then the lease's check on the database, so that a write
        queued before a fence and landing after it is refused too."""
        if self.role not in (NodeRole.TAKEOVER, NodeRole.ACTIVE):
            return _refuse(f"lease {self.lease.name}: this node is {self.role.value}")
        return self.lease.guard()

    def epoch(self) -> int:
        """The epoch client ids carry: the held grant's (0 without one; no intent is then
        written anyway)."""
        grant = self.lease.grant
        return grant.epoch if grant is not None else 0

    def intent_guard(self) -> IntentGuard:
        """The fence of one intent write: refuses unless ACTIVE, then the lease's own check
        (holder, epoch and time left, on the database, in the intent's transaction)."""
        if self.role is not NodeRole.ACTIVE:
            return _refuse(f"lease {self.lease.name}: this node is {self.role.value}")
        return self.lease.guard()

    def status(self) -> NodeStatus:
        grant = self.lease.grant
        age = None
        if grant is not None:
            age = int((self.lease._monotonic_s() - grant.sent_s) * 1000)
        return NodeStatus(
            role=self.role,
            holder=self.lease.holder,
            epoch=self.epoch(),
            lease_age_ms=age,
            acquisitions=self.acquisitions,
            last_failover_ms=self.last_failover_ms,
            last_takeover_s=self.last_takeover_s,
            db_reachable=self.db_reachable,
            seen_holder=self._seen.holder,
            seen_epoch=self._seen.epoch,
        )

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    def _now_s(self) -> float:
        return self.lease._monotonic_s()

    def _db(self, reachable: bool) -> None:
        if self.db_reachable and not reachable:
            log.error("ha.db_unreachable", lease=self.lease.name, role=self.role.value)
            self._on_alert(
                "ha_db_unreachable",
                f"lease {self.lease.name}: database unreachable ({self.role.value}): no node "
                "can take or keep the lease; exposure is unhedged until it is back",
            )
        self.db_reachable = reachable

    # ---------------------------------------------------------------------- loop
    async def run(self) -> None:
        """The lease loop, until cancelled (then the grant, if any, is released). Restartable:
        the supervisor runs it again after a crash."""
        if self._thread_closed:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hedgerd-lease")
            self._thread_closed = False
        try:
            while True:
                grant = await self._acquire_loop()
                await self._lead(grant)
        finally:
            self._set_active(False)
            if self._renewer is not None:
                self._renewer.stop()
            if self.lease.grant is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._call(self.lease.release))
            self._thread.shutdown(wait=False)
            self._thread_closed = True

    async def _acquire_loop(self) -> LeaseGrant:
        poll_s = self.settings.acquire_poll_ms / 1000.0
        while True:
            if self._now_s() < self._handoff_until_s:
                await asyncio.sleep(poll_s)  # just handed off: let the other node take it
                continue
            try:
                grant = await self._call(self.lease.acquire)
                if grant is not None:
                    self._db(True)
                    seen = self._seen
                    self.after_release = seen.holder == "" and seen.epoch == grant.epoch - 1
                    return grant
                seen = self._seen = await self._call(self.lease.view)
                self._db(True)
                await self._call(self.lease.wait_released, self._poll_wait_s(seen, poll_s))
            except LeaseUnavailableError:
                self._db(False)
                await asyncio.sleep(poll_s)

    @staticmethod
    def _poll_wait_s(seen: LeaseView, poll_s: float) -> float:
        """Until the next acquire: the poll interval, or less when the held lease runs out
        sooner (by the server's own count): a dead leader's lease is taken as it expires,
        not up to a poll later."""
        if not seen.holder or seen.expires_in_ms <= 0:
            return poll_s
        return min(poll_s, seen.expires_in_ms / 1000.0 + _EXPIRY_SLACK_S)

    async def _lead(self, grant: LeaseGrant) -> None:
        self.acquisitions += 1
        self.last_failover_ms = self.clock_ms()
        self._was_fenced = False
        started = self._now_s()
        log.warning(
            "ha.acquired",
            lease=grant.name,
            epoch=grant.epoch,
            holder=grant.holder,
            # What the acquire's round trip left of the grant's local lifetime: short when
            # the process was starved while it waited for the answer.
            deadline_in_s=round(grant.deadline_s - started, 3),
        )
        self._on_alert(
            "ha_failover", f"lease {grant.name}: {grant.holder} leads, epoch {grant.epoch}"
        )
        loop = asyncio.get_running_loop()
        lost = asyncio.Event()
        renewer = self._renewer = _Renewer(self, loop, lost)
        renewer.start()
        watcher = loop.create_task(self._hold(renewer, lost), name="ha-hold")
        takeover = loop.create_task(self._take_over(grant), name="ha-takeover")
        try:
            await asyncio.wait((watcher, takeover), return_when=asyncio.FIRST_COMPLETED)
            if not takeover.done():  # the grant was lost while taking over
                takeover.cancel()
                await asyncio.gather(takeover, return_exceptions=True)
                await watcher
                return
            failure = takeover.result()
            if failure is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
                await self._fence(failure)
                return
            self.last_takeover_s = self._now_s() - started
            if watcher.done():  # fenced just as the takeover ended
                await watcher
                return
            self._set_active(True)
            log.warning(
                "ha.active",
                lease=grant.name,
                epoch=grant.epoch,
                takeover_s=round(self.last_takeover_s, 3),
            )
            await watcher  # returns when fenced or handed off
        finally:
            renewer.stop()
            for t in (watcher, takeover):
                if not t.done():
                    t.cancel()
            await asyncio.gather(watcher, takeover, return_exceptions=True)

    async def _take_over(self, grant: LeaseGrant) -> str | None:
        """The takeover; None when done, else why it failed (the node then fences)."""
        try:
            await self._on_acquired(grant)
        except Exception as exc:
            log.exception("ha.takeover_failed", epoch=grant.epoch)
            return f"takeover failed: {exc!r}"[:200]
        return None

    async def _hold(self, renewer: _Renewer, lost: asyncio.Event) -> None:
        """While the grant is held: return when the renewer lost it or its local deadline
        passed (then fence), or when a handoff released it. The renewals themselves run on
        the renewer's thread, so a busy event loop (a takeover's reconciliation) delays only
        this watch, never a renew; the deadline is judged on the lease's monotonic clock by
        every intent guard whatever this loop is doing."""
        while True:
            if renewer.lost_why is not None:
                await self._fence(renewer.lost_why)
                return
            grant = self.lease.grant
            if grant is None:
                if self.lease.role is Role.FENCED:  # a guard found the deadline passed
                    await self._fence("deadline passed at a write")
                return  # else released by a handoff
            left_s = grant.deadline_s - self._now_s()
            if left_s <= 0:
                await self._fence("renew: no answer before the self-fence deadline")
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left_s, _HOLD_POLL_S)):
                    await lost.wait()

    async def _fence(self, why: str) -> None:
        self._set_active(False)
        self._was_fenced = True
        log.error("ha.fenced", lease=self.lease.name, why=why)
        self._on_alert("ha_fenced", f"lease {self.lease.name}: {self.lease.holder} fenced: {why}")
        try:
            await self._on_fenced(why)
        except Exception:
            log.exception("ha.on_fenced_failed")

    def _set_active(self, on: bool) -> None:
        if on:
            self.inactive.clear()
            self.active.set()
        else:
            self.active.clear()
            self.inactive.set()

    async def handoff(self, stop_trading: Callable[[], Awaitable[object]]) -> bool:
        """Graceful handoff: stop creating intents, `stop_trading` (finish/cancel own orders),
        release the lease (NOTIFY wakes the standby) and stay away from it for one lease
        length. False when this node was not the leader."""
        async with self._handoff:
            if self.lease.grant is None:
                return False
            self._set_active(False)
            await stop_trading()
            if self._renewer is not None:
                # No renew may follow the release (it would find the lease gone: a fence).
                self._renewer.stop()
            self._handoff_until_s = self._now_s() + self.settings.lease_ms / 1000.0
            released = await self._call(self.lease.release)
            self.released_at_s = self._now_s()
            log.warning("ha.handed_off", lease=self.lease.name, confirmed=released)
            return True

    async def _until_inactive(self) -> None:
        await self.inactive.wait()

    async def gate(self, part: Callable[[], Awaitable[None]]) -> None:
        """Run `part` only while ACTIVE: started when the node becomes active, cancelled when
        it stops being active (a supervisor part that never ends)."""
        while True:
            await self.active.wait()
            task: asyncio.Future[None] = asyncio.ensure_future(part())
            stopper: asyncio.Future[None] = asyncio.ensure_future(self._until_inactive())
            try:
                await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (task, stopper):
                    t.cancel()
                await asyncio.gather(task, stopper, return_exceptions=True)
            if task.done() and not task.cancelled():
                exc = task.exception()
                if exc is not None:
                    raise exc


class _Renewer(threading.Thread):
    """Renews the held grant every `renew_interval_ms` from a thread of its own, whatever
    the event loop is doing: under load a takeover's reconciliation kept the loop busy for
    seconds, the renew task woke up past its deadline and the new leader fenced itself
    (failovers of 10-46 s in the process drill). Each renew still runs on the lease's one
    thread (`HaNode._thread`: the lease is not thread-safe), on the lease's own connection;
    this thread only times them, waits for each at most until the grant's local deadline
    (a renew hung on a dead network), and tells the loop when the grant is lost (`lost`).
    Times on the lease's monotonic clock, except the waits between renews (real seconds)."""

    def __init__(self, node: HaNode, loop: asyncio.AbstractEventLoop, lost: asyncio.Event):
        super().__init__(name="hedgerd-lease-renew", daemon=True)
        self.node = node
        self.loop = loop
        self.lost = lost
        self.lost_why: str | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """No renew is started after this; the outcome of one under way is ignored."""
        self._stop.set()

    def _signal(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed (shutdown)
            self.loop.call_soon_threadsafe(fn)

    def _lose(self, why: str) -> None:
        if self._stop.is_set():
            return
        self.lost_why = why
        self._signal(self.lost.set)

    def run(self) -> None:
        node = self.node
        lease = node.lease
        interval_s = node.settings.renew_interval_ms / 1000.0
        timeout_s = node.settings.renew_timeout_ms / 1000.0
        while True:
            grant = lease.grant
            if grant is None:
                return  # released (handoff) or fenced by a guard: the loop sees it
            # Every interval, or sooner when the deadline is nearer than one renew's timeout
            # after that: a grant whose acquire answered late (a starved process: seen
            # 3.4 s under load) is renewed at once instead of fencing at its first renew.
            left_s = grant.deadline_s - lease._monotonic_s()
            if self._stop.wait(min(interval_s, max(_MIN_RENEW_GAP_S, left_s - timeout_s))):
                return
            if lease.grant is not grant:
                continue
            left_s = grant.deadline_s - lease._monotonic_s()
            if left_s <= 0:
                self._lose("deadline passed before renew")
                return
            try:
                node._thread.submit(lease.renew).result(timeout=left_s)
            except LeaseUnavailableError:
                self._signal(lambda: node._db(False))
                continue  # the grant stands until its deadline
            except LeaseLostError as exc:
                self._lose(f"renew: {exc}")
                return
            except FutureTimeout:
                self._lose("renew: no answer before the self-fence deadline")
                return
            except RuntimeError:  # the lease thread was shut down (daemon stopping)
                return
            if self._stop.is_set():
                return
            self._signal(lambda: node._db(True))
