"""The daemon's HA roles: what a node does when it takes the lease, loses it or hands it off.

`DaemonHa` owns the `HaNode` of one daemon (one lease for all its accounts) and the three
transitions:

- **takeover** (lease acquired, before any hedge): wait `takeover_wait_ms` so the previous
  leader's requests, sent before its self-fence deadline, have reached the venue → resolve
  every account's in-doubt intents by label and record missed fills once (the start-up
  reconciliation) → reload the journal's open orders (the previous leader's, all of an older
  epoch: this leader has sent nothing) and cancel them by id → take the journalled trading
  state (a HALTED desk stays HALTED) → compare positions with the venue → only then ACTIVE.
- **fence** (renew refused or deadline passed): the node is no longer ACTIVE (the gated
  parts stop and every intent guard refuses), its executions are cancelled and its open
  orders cancelled by id, best effort (a possibly stale leader never cancels account-wide:
  that would cancel the new leader's orders).
- **handoff** (`hedgerctl handoff`): stop, cancel own orders, release the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import structlog

from hedgerd.execution.journal_db import PostgresTarget
from hedgerd.ha.lease import LeaderLease, LeaseGrant, boottime_s
from hedgerd.ha.node import HaNode, NodeRole
from hedgerd.ha.positions import MISMATCH_EVENT, POSITIONS_EVENT, PositionMismatch, compare
from hedgerd.ha.settings import HaSettings
from hedgerd.venues.base import DeadManVenue, VenueError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hedgerd.daemon import Daemon

log = structlog.get_logger(__name__)

#: Bound on the best-effort cancel of a fenced node's orders (seconds).
_FENCE_CANCEL_TIMEOUT_S = 5.0


class DaemonHa:
    """HA for one daemon. `monotonic_s`: the lease's clock (tests inject one per node)."""

    def __init__(
        self,
        daemon: Daemon,
        settings: HaSettings,
        target: PostgresTarget,
        *,
        monotonic_s: Callable[[], float] = boottime_s,
    ) -> None:
        self.daemon = daemon
        self.settings = settings
        self.lease = LeaderLease(
            target,
            settings.lease_name,
            settings.holder(),
            timing=settings.timing(),
            monotonic_s=monotonic_s,
        )
        self.node = HaNode(
            self.lease,
            settings,
            clock_ms=daemon.clock_ms,
            on_acquired=self.take_over,
            on_fenced=self.fenced,
            on_alert=self._alert,
        )
        self.last_reconcile: dict[str, Any] = {}
        #: The last takeover's position comparison (runs on after ACTIVE; tests await it).
        self._positions_check: asyncio.Future[None] | None = None

    def _alert(self, kind: str, text: str) -> None:
        d = self.daemon
        if d.metrics is not None:
            d.metrics.record_ha_event(kind)
        if d.alerts is not None:
            d.alerts.notify_text(kind, text)

    # -------------------------------------------------------------------- takeover
    async def take_over(self, grant: LeaseGrant) -> None:
        d = self.daemon
        assert d.executor is not None and d.trading is not None
        log.warning("ha.takeover_start", epoch=grant.epoch)
        phases: dict[str, float] = {}
        mark = time.monotonic()

        def phase(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            phases[name] = round(now - mark, 3)
            mark = now

        report: dict[str, Any] = {"epoch": grant.epoch}
        if not self.node.after_release:
            # The previous leader may have died: its last requests may still be on the way.
            # None it journalled can be processed after its request expiry.
            wait_s = await self.previous_requests_wait_s()
            report["expiry_wait_s"] = round(wait_s, 3)
            await asyncio.sleep(wait_s)
        phase("wait")
        # The venue's positions before the fills are reconciled: a trade after this read
        # has a later venue time, outside the fills compared with it.
        positions = {a.name: await self._venue_positions(a) for a in d.accounts.values()}
        phase("positions")
        for account in d.accounts.values():
            assert account.reconciler is not None
            r = await account.reconciler.reconcile(startup=True)
            if r.errors:
                raise RuntimeError(f"{account.name}: takeover reconciliation: {r.errors[0]}")
            report[account.name] = {"resolved": len(getattr(r, "resolved", ()) or ())}
        phase("reconcile")
        # The comparison only alerts (hedges follow the venue's positions): off the path to
        # ACTIVE, its journal round trips cost the takeover 0.3-2 s under load.
        self._positions_check = asyncio.ensure_future(
            self._check_all_positions(positions, grant, report)
        )
        # Three independent steps, concurrently (each is round trips, to the journal or the
        # venue: on a loaded machine they took about a second each, one after the other).
        timed: dict[str, float] = {}

        async def step(name: str, work: Awaitable[None]) -> None:
            t0 = time.monotonic()
            await work
            timed[name] = round(time.monotonic() - t0, 3)

        await asyncio.gather(
            step("cancel_stale", self._cancel_stale(grant, report)),
            # The dead-man switch is this node's from now on (a standby's is never armed): a
            # failure to arm it fails the takeover, as the venue would not cancel for us.
            step("dead_man", self._set_dead_man(True)),
            step("trading_state", self._resync_trading_state(report)),
        )
        phase("concurrent")
        phases.update({f"concurrent.{k}": v for k, v in timed.items()})
        now = d.board_clock_ms()
        for account in d.accounts.values():
            account.cross_check(now)  # positions: the book against the venue's own figure
        phase("cross_check")
        report["phases_s"] = phases
        self.last_reconcile = report
        log.warning(
            "ha.takeover_done",
            **{k: v for k, v in report.items() if k != "epoch"},
            epoch=grant.epoch,
        )

    async def previous_requests_wait_s(self) -> float:
        """How long until no request of an earlier epoch can still be processed by a venue:
        the journal's latest request expiry (every intent of those epochs is committed and
        visible: a takeover's acquire waits for an open intent transaction) plus the clock
        skew allowance, from now on this node's clock. Without any expiry in the journal
        (orders written before them), `takeover_wait_ms`."""
        d = self.daemon
        assert d.journal is not None
        latest = await d.journal.latest_request_expiry_ms()
        if latest is None:
            return self.settings.takeover_wait_s()
        return max(0.0, (latest + self.settings.clock_skew_ms - d.clock_ms()) / 1000.0)

    async def _cancel_stale(self, grant: LeaseGrant, report: dict[str, Any]) -> None:
        """The journal's open orders (the previous leader's) reloaded; those of an older
        epoch cancelled by id."""
        d = self.daemon
        assert d.executor is not None
        await d.executor.load()
        stale = [r for r in d.executor.open_records() if self._epoch_of(r.label) < grant.epoch]
        report["stale_open_orders"] = len(stale)
        report["stale_cancelled"] = await d.executor.cancel_all_open() if stale else 0

    async def _resync_trading_state(self, report: dict[str, Any]) -> None:
        """The journalled trading state taken: a desk HALTED on the old leader stays so."""
        d = self.daemon
        assert d.trading is not None
        await d.trading.resync()
        if d.parts.states is not None:
            for machine in d.parts.states.accounts.values():
                with contextlib.suppress(Exception):
                    await machine.resync()
        report["trading_state"] = d.trading.state.value

    async def _check_all_positions(
        self,
        positions: dict[str, tuple[int, dict[str, float]] | None],
        grant: LeaseGrant,
        report: dict[str, Any],
    ) -> None:
        found: list[PositionMismatch] = []
        try:
            for account in self.daemon.accounts.values():
                found += await self._check_positions(account, positions[account.name], grant)
        except Exception as exc:  # a check that could not run is logged, never fatal
            log.warning("ha.positions_check_failed", error=repr(exc)[:200])
            return
        report["position_mismatches"] = [m.to_json() for m in found]

    async def _venue_positions(self, account: Any) -> tuple[int, dict[str, float]] | None:
        """The account's positions at the venue now (instrument → amount in its amount
        unit) and when they were read (this node's clock); None when the venue could not be
        asked (the comparison is then skipped, logged: it never fails a takeover)."""
        venue = account.parts.venue
        if venue is None:
            return None
        read_ms = self.daemon.clock_ms()
        out: dict[str, float] = {}
        try:
            for underlying in account.underlyings:
                for ev in await venue.fetch_positions(underlying):
                    name = ev.position.instrument
                    out[name] = out.get(name, 0.0) + ev.position.amount
        except VenueError as exc:
            log.warning("ha.positions_unavailable", account=account.name, error=str(exc)[:200])
            return None
        return read_ms, out

    async def _check_positions(
        self, account: Any, read: tuple[int, dict[str, float]] | None, grant: LeaseGrant
    ) -> list[PositionMismatch]:
        """Compare `read` with the previous takeover's snapshot plus the journal's fills of
        this account since (`ha.positions`); alert on each difference; journal `read` for the
        next takeover."""
        journal = self.daemon.journal
        if read is None or journal is None:
            return []
        read_ms, now = read
        venue = account.parts.venue
        previous = await journal.last_event(POSITIONS_EVENT, account.name)
        found: list[PositionMismatch] = []
        if previous is not None:
            since_ms = int(previous.payload["ts_ms"])
            fills = [f for f in await journal.fills_since(since_ms, read_ms)
                     if f.venue == account.name]  # fmt: skip

            def expired(name: str) -> bool:
                inst = venue.instruments().get(name) if venue is not None else None
                return inst is None or (inst.expiry_ms is not None and inst.expiry_ms <= read_ms)

            found = compare(account.name, previous.payload["positions"], fills, now,
                            expired=expired)  # fmt: skip
        for m in found:
            log.error("ha.position_mismatch", epoch=grant.epoch, **m.to_json())
            await journal.record_event(read_ms, MISMATCH_EVENT, account.name, m.to_json())
            self._alert(
                "ha_position_mismatch",
                f"{m.account} {m.instrument}: venue {m.venue_amount:g}, journal "
                f"{m.journal_amount:g} at takeover (epoch {grant.epoch})",
            )
        await journal.record_event(
            read_ms, POSITIONS_EVENT, account.name,
            {"epoch": grant.epoch, "ts_ms": read_ms, "positions": now},
        )  # fmt: skip
        return found

    def _epoch_of(self, label: str) -> int:
        for codec in self.daemon.executor.client_ids.values() if self.daemon.executor else ():
            cid = codec.decode(label)
            if cid is not None:
                return cid.epoch
        return 0

    # ------------------------------------------------------------------ fence/handoff
    async def _stop_trading(self) -> int:
        d = self.daemon
        tasks = list(d.hedge_loop.exec_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if d.executor is None:
            return 0
        try:
            async with asyncio.timeout(_FENCE_CANCEL_TIMEOUT_S):
                return await d.executor.cancel_all_open()
        except Exception as exc:  # best effort: the next leader cancels them by id
            log.warning("ha.cancel_own_failed", error=repr(exc)[:200])
            return 0
        finally:
            # No longer the leader: its dead-man switch must not cancel the next one's orders.
            await self._disarm_dead_man()

    async def _set_dead_man(self, armed: bool) -> None:
        for account in self.daemon.accounts.values():
            venue = account.parts.venue
            if isinstance(venue, DeadManVenue) and venue.dead_man_by_role:
                await venue.set_dead_man(armed)

    async def _disarm_dead_man(self) -> None:
        """Best effort (a fenced node's venue may be unreachable too): its orders were
        cancelled by id already, and the next leader cancels the old epoch's at takeover."""
        try:
            async with asyncio.timeout(_FENCE_CANCEL_TIMEOUT_S):
                await self._set_dead_man(False)
        except Exception as exc:
            log.warning("ha.dead_man_disarm_failed", error=repr(exc)[:200])

    async def fenced(self, why: str) -> None:
        cancelled = await self._stop_trading()
        log.warning("ha.fenced_cancelled", cancelled=cancelled, why=why)

    async def handoff(self) -> dict[str, Any]:
        epoch = self.node.epoch()
        handed = await self.node.handoff(self._stop_trading)
        return {"handed_off": handed, "epoch": epoch}

    async def watch(self) -> None:
        """Every second: the HA metrics, and an alert when this node cannot see the lease
        (its database is unreachable: as a standby it could not take over)."""
        codes = {NodeRole.STANDBY: 1, NodeRole.TAKEOVER: 2, NodeRole.ACTIVE: 3, NodeRole.FENCED: 4}
        unseen = False
        while True:
            st = self.node.status()
            if self.daemon.metrics is not None:
                age = None if st.lease_age_ms is None else st.lease_age_ms / 1000.0
                self.daemon.metrics.set_ha(codes[st.role], st.epoch, age, st.last_failover_ms)
            if not st.db_reachable and st.role is not NodeRole.ACTIVE and not unseen:
                self._alert(
                    "ha_lease_unseen", f"{st.holder} ({st.role.value}) cannot see the lease"
                )
            unseen = not st.db_reachable
            await asyncio.sleep(1.0)

    def status(self) -> dict[str, Any]:
        out = self.node.status().to_json()
        out["lease"] = self.lease.name
        out["last_takeover"] = self.last_reconcile
        return out
