"""The control API's ports (`control.commands`' `TradingControl`, `OrderControl`, `AuditLog`)
over the daemon's parts: the trading state machine, the executor, the journal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from hedgerd.control.commands import Caller, CommandRefusedError
from hedgerd.execution.executor import Executor
from hedgerd.execution.journal import Journal
from hedgerd.risk.trading_state import TradingStateMachine

log = structlog.get_logger(__name__)


class TradingControlAdapter:
    """`TradingControl` over the `TradingStateMachine`."""

    def __init__(self, machine: TradingStateMachine) -> None:
        self.machine = machine

    async def operator_halt(self, reason: str, actor: str) -> None:
        await self.machine.halt(actor=actor, text=reason)

    async def operator_resume(self, actor: str) -> None:
        await self.machine.resume(actor=actor)

    async def operator_reduce_only(self, reason: str, actor: str) -> None:
        await self.machine.reduce_only(actor=actor, text=reason)

    def describe(self) -> Mapping[str, Any]:
        snap = self.machine.snapshot
        return {
            "state": snap.state.value.upper(),
            "reasons": [r.to_json() for r in snap.reasons],
            "since_ms": snap.ts_ms,
        }


class OrderControlAdapter:
    """`OrderControl` over the `Executor` (flatten: the daemon's `flatten`)."""

    def __init__(
        self,
        executor: Executor,
        flatten: Callable[[str | None, str], Awaitable[Mapping[str, Any]]] | None = None,
    ) -> None:
        self.executor = executor
        self._flatten = flatten

    async def cancel_all(self, actor: str) -> int:
        n = await self.executor.cancel_all_open()
        log.info("daemon.cancel_all", actor=actor, cancelled=n)
        return n

    async def flatten(self, underlying: str | None, actor: str) -> Mapping[str, Any]:
        if self._flatten is None:
            raise CommandRefusedError("flatten is not available here")
        return await self._flatten(underlying, actor)


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
