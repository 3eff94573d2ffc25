"""The control API's ports (`control.commands`' `TradingControl`, `OrderControl`, `AuditLog`)
over the daemon's parts: the trading state machine, the executor, the journal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from hedgerd.control.commands import Caller, CommandRefusedError
from hedgerd.execution.executor import Executor
from hedgerd.execution.journal import Journal
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.trading_state import TradingStateMachine

log = structlog.get_logger(__name__)


class TradingControlAdapter:
    """`TradingControl` over the portfolio's `TradingStateMachine` and, with `states`, each
    venue account's (`venue=NAME`). Without `venue` a command acts on the portfolio's state,
    which every account's orders pass (so on all accounts); `resume` without `venue` also
    resumes every account."""

    def __init__(self, machine: TradingStateMachine, states: AccountStates | None = None) -> None:
        self.machine = machine
        self.states = states

    def _target(self, venue: str | None) -> TradingStateMachine:
        if venue is None:
            return self.machine
        if self.states is None:
            raise CommandRefusedError("this daemon has no per-venue trading state")
        try:
            return self.states.machine(venue)
        except KeyError as exc:
            raise CommandRefusedError(str(exc.args[0])) from None

    async def operator_halt(self, reason: str, actor: str, venue: str | None = None) -> None:
        await self._target(venue).halt(actor=actor, text=reason)

    async def operator_resume(self, actor: str, venue: str | None = None) -> None:
        await self._target(venue).resume(actor=actor)
        if venue is None and self.states is not None:
            for machine in self.states.accounts.values():
                await machine.resume(actor=actor)

    async def operator_reduce_only(self, reason: str, actor: str, venue: str | None = None) -> None:
        await self._target(venue).reduce_only(actor=actor, text=reason)

    def describe(self) -> Mapping[str, Any]:
        snap = self.machine.snapshot
        out: dict[str, Any] = {
            "state": snap.state.value.upper(),
            "reasons": [r.to_json() for r in snap.reasons],
            "since_ms": snap.ts_ms,
        }
        if self.states is not None:
            out["account_states"] = {
                name: {
                    "state": m.snapshot.state.value.upper(),
                    "effective_state": self.states.state(name).value.upper(),
                    "reasons": [r.to_json() for r in m.snapshot.reasons],
                    "since_ms": m.snapshot.ts_ms,
                }
                for name, m in self.states.accounts.items()
            }
        return out


class OrderControlAdapter:
    """`OrderControl` over the `Executor` (flatten: the daemon's `flatten`)."""

    def __init__(
        self,
        executor: Executor,
        flatten: Callable[..., Awaitable[Mapping[str, Any]]] | None = None,
        venues: tuple[str, ...] | None = None,
    ) -> None:
        self.executor = executor
        self._flatten = flatten
        #: The venue accounts `venue=NAME` may name (None: the executor's).
        self.venues = venues if venues is not None else tuple(executor.venues)

    def _check_venue(self, venue: str | None) -> None:
        if venue is not None and venue not in self.venues:
            raise CommandRefusedError(
                f"unknown venue account {venue!r}; known: {', '.join(self.venues)}"
            )

    async def cancel_all(self, actor: str, venue: str | None = None) -> int:
        self._check_venue(venue)
        n = await self.executor.cancel_all_open(venue)
        log.info("daemon.cancel_all", actor=actor, venue=venue, cancelled=n)
        return n

    async def flatten(
        self, underlying: str | None, actor: str, venue: str | None = None
    ) -> Mapping[str, Any]:
        if self._flatten is None:
            raise CommandRefusedError("flatten is not available here")
        self._check_venue(venue)
        if venue is None:
            return await self._flatten(underlying, actor)
        return await self._flatten(underlying, actor, venue)


class JournalAudit:
    """`AuditLog` over the journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def record_operator_command(
        self, command: str, args: Mapping[str, Any], caller: Caller, ts_ms: int
    ) -> None:
        await self.journal.record_operator_command(
            ts_ms=ts_ms, uid=caller.uid, command=command, args=args, surface=caller.surface
        )

    async def recent_events(self, limit: int) -> list[Mapping[str, Any]]:
        entries = await self.journal.audit_since(0)
        return [
            {
                "seq": e.seq,
                "ts_ms": e.ts_ms,
                "uid": e.uid,
                "surface": e.surface,
                "command": e.command,
                "args": dict(e.args),
                "outcome": e.outcome,
            }
            for e in entries[-limit:]
        ]
