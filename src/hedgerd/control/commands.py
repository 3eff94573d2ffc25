"""The one command layer behind every operator surface (Unix socket, TCP, signals).

Each command is journalled with the caller's identity, the time and its arguments before it
acts, so the audit trail shows what was asked even when the action then fails. The layer owns
no state: it calls the parts of the daemon through the narrow protocols below.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who issued a command: the peer's uid on the Unix socket, or the TCP listener."""

    surface: str  # "unix", "tcp", "signal", "cli"
    uid: int | None = None
    pid: int | None = None


class CommandRefusedError(Exception):
    """A command that was understood but not carried out (bad value, missing confirmation)."""


class TradingControl(Protocol):
    """The trading-state machine as the control layer sees it. A command with `venue=NAME`
    acts on that venue account's state only (the layer passes `venue` only when given)."""

    async def operator_halt(self, reason: str, actor: str) -> None: ...
    async def operator_resume(self, actor: str) -> None: ...
    async def operator_reduce_only(self, reason: str, actor: str) -> None: ...
    def describe(self) -> Mapping[str, Any]:
        """{"state": "ACTIVE"|"REDUCE_ONLY"|"HALTED", "reasons": [...]}"""
        ...


class OrderControl(Protocol):
    """The executor's operator actions (`venue=NAME`, passed only when given: that venue
    account's orders and positions only)."""

    async def cancel_all(self, actor: str) -> int:
        """Cancel every open order of the hedger; returns how many were cancelled."""
        ...

    async def flatten(self, underlying: str | None, actor: str) -> Mapping[str, Any]:
        """Close hedge positions (never options) of one or all underlyings."""
        ...


class AuditLog(Protocol):
    async def record_operator_command(
        self, command: str, args: Mapping[str, Any], caller: Caller, ts_ms: int
    ) -> None: ...

    async def recent_events(self, limit: int) -> list[Mapping[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Tunable:
    """A live-tunable parameter: `apply` validates and applies a parsed value."""

    key: str
    description: str
    parse: Callable[[str], Any]
    apply: Callable[[Any], Awaitable[None]]


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def parse_fraction(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 0 < value <= 1:
        raise ValueError(f"expected a number in (0, 1], got {text!r}")
    return value


def parse_finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


@dataclass
class ControlCommands:
    """Operator commands. Every surface calls these and nothing else."""

    trading: TradingControl
    orders: OrderControl
    audit: AuditLog
    status_source: Callable[[], Mapping[str, Any]]
    clock_ms: Callable[[], int]
    tunables: dict[str, Tunable] = field(default_factory=dict)
    #: Runs the daemon's order and fill reconciliation now and returns its report (None: the
    #: daemon offers none).
    reconciler: Callable[[], Awaitable[Mapping[str, Any]]] | None = None
    #: HA: hand the leader lease to the standby (None: HA is off).
    handoff: Callable[[], Awaitable[Mapping[str, Any]]] | None = None

    async def _audit(self, command: str, args: Mapping[str, Any], caller: Caller) -> str:
        actor = f"{caller.surface}:uid={caller.uid}" if caller.uid is not None else caller.surface
        await self.audit.record_operator_command(command, args, caller, self.clock_ms())
        log.info("operator_command", command=command, args=dict(args), actor=actor)
        return actor

    async def status(self) -> dict[str, Any]:
        """The daemon's state: trading state and reasons plus whatever the status source adds."""
        out = dict(self.status_source())
        out.update(self.trading.describe())
        return out

    async def halt(self, reason: str, caller: Caller, venue: str | None = None) -> dict[str, Any]:
        """Halt the portfolio (every account), or venue account `venue` only (the others keep
        hedging); the hedger's open orders there are cancelled."""
        actor = await self._audit("halt", _with_venue({"reason": reason}, venue), caller)
        await self.trading.operator_halt(reason, actor, **_venue_kw(venue))
        cancelled = await self.orders.cancel_all(actor, **_venue_kw(venue))
        return {**self.trading.describe(), "cancelled_orders": cancelled}

    async def resume(self, caller: Caller, venue: str | None = None) -> dict[str, Any]:
        actor = await self._audit("resume", _with_venue({}, venue), caller)
        await self.trading.operator_resume(actor, **_venue_kw(venue))
        return dict(self.trading.describe())

    async def reduce_only(
        self, caller: Caller, reason: str = "operator", venue: str | None = None
    ) -> dict[str, Any]:
        actor = await self._audit("reduce-only", _with_venue({"reason": reason}, venue), caller)
        await self.trading.operator_reduce_only(reason, actor, **_venue_kw(venue))
        return dict(self.trading.describe())

    async def cancel_all(self, caller: Caller, venue: str | None = None) -> dict[str, Any]:
        actor = await self._audit("cancel-all", _with_venue({}, venue), caller)
        return {"cancelled_orders": await self.orders.cancel_all(actor, **_venue_kw(venue))}

    async def hand_off(self, caller: Caller) -> dict[str, Any]:
        """HA: stop hedging, cancel this node's orders and release the lease so the standby
        takes over at once (`hedgerctl handoff`)."""
        await self._audit("handoff", {}, caller)
        if self.handoff is None:
            raise CommandRefusedError("high availability is off ([ha] enabled = false)")
        return dict(await self.handoff())

    async def reconcile(self, caller: Caller) -> dict[str, Any]:
        """Reconcile orders and fills with the venue now (what the timer does every
        `daemon.reconcile_interval_s`); returns the pass's report."""
        await self._audit("reconcile", {}, caller)
        if self.reconciler is None:
            raise CommandRefusedError("this daemon has no reconciler")
        return dict(await self.reconciler())

    async def flatten(
        self, underlying: str | None, confirm: bool, caller: Caller, venue: str | None = None
    ) -> dict[str, Any]:
        args = _with_venue({"underlying": underlying, "confirm": confirm}, venue)
        actor = await self._audit("flatten", args, caller)
        if not confirm:
            raise CommandRefusedError("flatten needs --confirm")
        return dict(await self.orders.flatten(underlying, actor, **_venue_kw(venue)))

    async def set(self, key: str, value: str, caller: Caller) -> dict[str, Any]:
        await self._audit("set", {"key": key, "value": value}, caller)
        tunable = self.tunables.get(key)
        if tunable is None:
            known = ", ".join(sorted(self.tunables)) or "none"
            raise CommandRefusedError(f"unknown key {key!r}; live-tunable keys: {known}")
        try:
            parsed = tunable.parse(value)
        except ValueError as exc:
            raise CommandRefusedError(f"{key}: {exc}") from None
        await tunable.apply(parsed)
        return {"key": key, "value": parsed}

    async def events(self, limit: int) -> list[Mapping[str, Any]]:
        if not 1 <= limit <= 10_000:
            raise CommandRefusedError("limit must be between 1 and 10000")
        return await self.audit.recent_events(limit)


def _venue_kw(venue: str | None) -> dict[str, str]:
    # Only when given: a port without venue support (one account) is called as before.
    return {} if venue is None else {"venue": venue}


def _with_venue(args: dict[str, Any], venue: str | None) -> dict[str, Any]:
    return args if venue is None else {**args, "venue": venue}
