"""Trading state: ACTIVE, REDUCE_ONLY, HALTED, the reasons behind it, and the gate every order
passes.

- `TradingStateMachine` holds the state and its active reasons, persists every transition to
  the journal and restores it at start: a halted daemon comes back halted.
- Automatic trips (kill switches) only tighten: ACTIVE → REDUCE_ONLY → HALTED. Only an operator
  loosens (`resume`, or `reduce_only` from HALTED), with one exception: a reason tripped with
  `actor=LINK_ACTOR` (an account's own link condition, with several accounts: see
  `risk.account_state`) is taken back by `clear_link_nowait` once the link has been healthy
  for a while; that removes only that reason, never an operator's or a latched one, and the
  state never goes looser than the tightest reason left. Several reasons can be active at
  once; the state is never looser than the tightest of them.
- `allows(...)` is the pure gate: ACTIVE passes everything; REDUCE_ONLY passes cancels, the
  operator's flatten, and orders that make the underlying's |net delta| strictly smaller
  (judged on the underlying's net delta, not per instrument; an order that crosses zero passes
  when |after| < |before|, so +1.0 → −0.4 passes and +1.0 → −1.0 does not); HALTED passes only
  cancels and the operator's explicit flatten.

A transition takes effect in memory at once (before any await), so the very next gate check
sees it; the journal write follows, in transition order (`seq`). If that write fails, the
journal is failing and the executor, which journals every intent before sending, cannot send
either.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import structlog

from hedgerd.execution.journal import TradingStateRecord

log = structlog.get_logger(__name__)


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"

    @property
    def severity(self) -> int:
        """0 ACTIVE, 1 REDUCE_ONLY, 2 HALTED: higher is tighter."""
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCE_ONLY: 1, TradingState.HALTED: 2}


def tightest(*states: TradingState) -> TradingState:
    return max(states, key=lambda s: s.severity, default=TradingState.ACTIVE)


class ReasonCode(StrEnum):
    """Why the state is not ACTIVE: the operator, or an automatic kill switch."""

    OPERATOR = "operator"
    STALE_DATA = "stale_data"
    VENUE_DISCONNECTED = "venue_disconnected"
    POSITION_MISMATCH = "position_mismatch"
    GREEKS_DIVERGENCE = "greeks_divergence"
    DELTA_LIMIT = "delta_limit"
    REJECT_STREAK = "reject_streak"
    ORDER_RATE = "order_rate"
    NOTIONAL_RATE = "notional_rate"
    ORDER_NOTIONAL = "order_notional"
    PRICE_SANITY = "price_sanity"
    DAILY_LOSS = "daily_loss"
    MARGIN = "margin"
    CLOCK_SKEW = "clock_skew"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    COMPONENT_CRASH = "component_crash"


# The state each automatic trip asks for unless configured otherwise. Where hedgerd's view of
# the world is unreliable it halts; where only adding risk is the worry (thin margin, no funds)
# it still lets delta-reducing orders through.
DEFAULT_TRIP_STATE: Mapping[ReasonCode, TradingState] = {
    ReasonCode.STALE_DATA: TradingState.HALTED,
    ReasonCode.VENUE_DISCONNECTED: TradingState.HALTED,
    ReasonCode.POSITION_MISMATCH: TradingState.HALTED,
    ReasonCode.GREEKS_DIVERGENCE: TradingState.HALTED,
    ReasonCode.DELTA_LIMIT: TradingState.HALTED,
    ReasonCode.REJECT_STREAK: TradingState.HALTED,
    ReasonCode.ORDER_RATE: TradingState.HALTED,
    ReasonCode.NOTIONAL_RATE: TradingState.HALTED,
    ReasonCode.ORDER_NOTIONAL: TradingState.HALTED,
    ReasonCode.PRICE_SANITY: TradingState.HALTED,
    ReasonCode.DAILY_LOSS: TradingState.HALTED,
    ReasonCode.MARGIN: TradingState.REDUCE_ONLY,
    ReasonCode.CLOCK_SKEW: TradingState.HALTED,
    ReasonCode.INSUFFICIENT_FUNDS: TradingState.REDUCE_ONLY,
    ReasonCode.COMPONENT_CRASH: TradingState.HALTED,
}

AUTO_ACTOR = "auto"
#: The actor of a self-clearing trip: an account's stale data or disconnection, judged by the
#: board's link switches (with several accounts). `clear_link_nowait` removes only these.
LINK_ACTOR = "auto:link"


@dataclass(frozen=True, slots=True)
class Reason:
    """One active reason: its code, the state it demands, a human detail (never a secret),
    when it was first raised (UTC epoch ms), and who raised it ("auto" or "uid:N")."""

    code: ReasonCode
    state: TradingState
    detail: str
    since_ms: int
    actor: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "state": self.state.value,
            "detail": self.detail,
            "since_ms": self.since_ms,
            "actor": self.actor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reason:
        return cls(
            code=ReasonCode(data["code"]),
            state=TradingState(data["state"]),
            detail=str(data.get("detail", "")),
            since_ms=int(data["since_ms"]),
            actor=str(data.get("actor", AUTO_ACTOR)),
        )


@dataclass(frozen=True, slots=True)
class TradingStateSnapshot:
    """The state, its active reasons (sorted by code), the number of the transition that made
    it, and when."""

    state: TradingState
    reasons: tuple[Reason, ...]
    seq: int
    ts_ms: int

    @property
    def reason_codes(self) -> tuple[ReasonCode, ...]:
        return tuple(r.code for r in self.reasons)


# ------------------------------------------------------------------------------- gate


class OrderKind(StrEnum):
    """What the gate is asked about: a new order, an amendment of a live one (re-price or
    resize), or a cancel."""

    NEW = "new"
    AMEND = "amend"
    CANCEL = "cancel"


class GateResult(NamedTuple):
    allowed: bool
    reason: str


def allows(
    state: TradingState,
    order_kind: OrderKind,
    delta_before_coin: float,
    delta_after_coin: float,
    is_cancel: bool = False,
    is_operator_flatten: bool = False,
) -> GateResult:
    """May this order go out in `state`?

    `delta_before_coin` is the underlying's net delta (book, hedges and every other order in
    flight) without this order; `delta_after_coin` the same with this order fully filled (for
    an amendment: with the order as amended), both in coin of the underlying. A cancel
    (`is_cancel` or `order_kind` CANCEL) and the operator's explicit flatten always pass.
    REDUCE_ONLY passes an order only if |after| < |before| strictly (crossing zero is fine when
    it ends smaller); a non-finite delta never passes there.
    """
    if is_cancel or order_kind is OrderKind.CANCEL:
        return GateResult(True, "cancel: always allowed")
    if is_operator_flatten:
        return GateResult(True, "operator flatten: always allowed")
    if state is TradingState.ACTIVE:
        return GateResult(True, "active")
    if state is TradingState.HALTED:
        return GateResult(False, "halted: only cancels and the operator's flatten pass")
    before, after = delta_before_coin, delta_after_coin
    if not (math.isfinite(before) and math.isfinite(after)):
        return GateResult(False, f"reduce_only: delta not known ({before} → {after} coin)")
    if abs(after) < abs(before):
        return GateResult(True, f"reduce_only: |delta| {abs(before):.6g} → {abs(after):.6g} coin")
    return GateResult(
        False, f"reduce_only: |delta| would not shrink ({abs(before):.6g} → {abs(after):.6g} coin)"
    )


# ------------------------------------------------------------------------ the machine


class TradingStateStore(Protocol):
    """Where the machine persists (the `Journal` is one)."""

    async def last_trading_state(self) -> TradingStateRecord | None: ...

    async def save_trading_state(self, record: TradingStateRecord) -> None: ...


Listener = Callable[[TradingStateSnapshot], None]


class TradingStateMachine:
    """The daemon's trading state. Build it with `await TradingStateMachine.restore(journal,
    clock_ms=...)`; read `state` / `snapshot` or call `check(...)` before every order; trip it
    from kill switches with `trip`; change it for the operator with `halt`, `reduce_only`,
    `resume`. Listeners (e.g. the executor cancelling its orders on HALTED) are called
    synchronously after each transition."""

    def __init__(
        self,
        store: TradingStateStore,
        snapshot: TradingStateSnapshot,
        clock_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self._clock_ms = clock_ms
        self._listeners: list[Listener] = []
        self._persist_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    async def restore(
        cls,
        store: TradingStateStore,
        *,
        clock_ms: Callable[[], int],
        initial: TradingState = TradingState.ACTIVE,
    ) -> TradingStateMachine:
        """The machine in the state the journal last recorded; `initial` on a fresh journal
        (persisted when it is not ACTIVE). A stored state this code cannot read restores as
        HALTED with a COMPONENT_CRASH reason: an unreadable halt must not become ACTIVE."""
        record = await store.last_trading_state()
        now = clock_ms()
        if record is not None:
            try:
                snapshot = TradingStateSnapshot(
                    state=TradingState(record.state),
                    reasons=tuple(
                        sorted((Reason.from_json(r) for r in record.reasons), key=_by_code)
                    ),
                    seq=record.seq,
                    ts_ms=record.ts_ms,
                )
            except (KeyError, ValueError, TypeError) as exc:
                log.error("trading_state_unreadable", seq=record.seq, error=str(exc))
                machine = cls(
                    store, TradingStateSnapshot(TradingState.ACTIVE, (), record.seq, now), clock_ms
                )
                await machine.trip(
                    ReasonCode.COMPONENT_CRASH,
                    f"stored trading state unreadable: {exc}",
                    state=TradingState.HALTED,
                )
                return machine
            log.info(
                "trading_state_restored",
                state=snapshot.state.value,
                reasons=[r.code.value for r in snapshot.reasons],
                seq=snapshot.seq,
            )
            return cls(store, snapshot, clock_ms)
        machine = cls(store, TradingStateSnapshot(TradingState.ACTIVE, (), 0, now), clock_ms)
        reasons: tuple[Reason, ...] = ()
        if initial is not TradingState.ACTIVE:
            reasons = (Reason(ReasonCode.OPERATOR, initial, "initial state", now, "config"),)
        await machine._transition(initial, reasons, ReasonCode.OPERATOR, "config", "initial state")
        return machine

    # ------------------------------------------------------------------------ reading

    @property
    def snapshot(self) -> TradingStateSnapshot:
        return self._snapshot

    async def resync(self) -> bool:
        """Take the state the journal last recorded (an HA takeover: the previous leader may
        have halted while this node stood by; a HALTED desk stays HALTED). Listeners hear
        the change; nothing is written. True when the state changed."""
        record = await self._store.last_trading_state()
        if record is None:  # none recorded yet: the journal says ACTIVE (restore's initial)
            snapshot = TradingStateSnapshot(TradingState.ACTIVE, (), 0, self._clock_ms())
            return self._adopt(snapshot)
        try:
            snapshot = TradingStateSnapshot(
                state=TradingState(record.state),
                reasons=tuple(sorted((Reason.from_json(r) for r in record.reasons), key=_by_code)),
                seq=record.seq,
                ts_ms=record.ts_ms,
            )
        except (KeyError, ValueError, TypeError) as exc:
            await self.trip(
                ReasonCode.COMPONENT_CRASH,
                f"stored trading state unreadable: {exc}",
                state=TradingState.HALTED,
            )
            return True
        return self._adopt(snapshot)

    def _adopt(self, snapshot: TradingStateSnapshot) -> bool:
        """`resync`'s second half: take `snapshot`, tell the listeners if it changed."""
        old = self._snapshot
        self._snapshot = snapshot
        changed = snapshot.state is not old.state or snapshot.reasons != old.reasons
        log.info("trading_state_resynced", state=snapshot.state.value, seq=snapshot.seq)
        if changed:
            for listener in tuple(self._listeners):
                try:
                    listener(snapshot)
                except Exception:
                    log.exception("trading_state_listener_failed")
        return changed

    @property
    def state(self) -> TradingState:
        return self._snapshot.state

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return self._snapshot.reasons

    def check(
        self,
        order_kind: OrderKind,
        delta_before_coin: float,
        delta_after_coin: float,
        is_cancel: bool = False,
        is_operator_flatten: bool = False,
    ) -> GateResult:
        """`allows` in the current state."""
        return allows(
            self.state,
            order_kind,
            delta_before_coin,
            delta_after_coin,
            is_cancel=is_cancel,
            is_operator_flatten=is_operator_flatten,
        )

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -------------------------------------------------------------------- transitions

    def _apply(
        self,
        state: TradingState,
        reasons: tuple[Reason, ...],
        cause: ReasonCode,
        actor: str,
        detail: str,
    ) -> TradingStateRecord | None:
        """Make the transition in memory (synchronously) and return what to persist, or None
        when nothing changes."""
        old = self._snapshot
        reasons = tuple(sorted(reasons, key=_by_code))
        if state is old.state and reasons == old.reasons:
            return None
        new = TradingStateSnapshot(state, reasons, old.seq + 1, self._clock_ms())
        self._snapshot = new
        log.warning(
            "trading_state_changed",
            previous=old.state.value,
            state=state.value,
            cause=cause.value,
            actor=actor,
            detail=detail,
            reasons=[r.code.value for r in reasons],
            seq=new.seq,
        )
        for listener in tuple(self._listeners):
            try:
                listener(new)
            except Exception:
                log.exception("trading_state_listener_failed")
        return TradingStateRecord(
            seq=new.seq,
            ts_ms=new.ts_ms,
            state=state.value,
            reasons=tuple(r.to_json() for r in reasons),
            previous_state=old.state.value,
            cause=cause.value,
            actor=actor,
            detail=detail,
        )

    async def _persist(self, record: TradingStateRecord | None) -> None:
        if record is None:
            return
        async with self._persist_lock:  # FIFO: history rows land in transition order
            await self._store.save_trading_state(record)

    async def _transition(
        self,
        state: TradingState,
        reasons: tuple[Reason, ...],
        cause: ReasonCode,
        actor: str,
        detail: str,
    ) -> bool:
        record = self._apply(state, reasons, cause, actor, detail)
        await self._persist(record)
        return record is not None

    def _tripped(
        self, code: ReasonCode, detail: str, state: TradingState | None, actor: str = AUTO_ACTOR
    ) -> TradingStateRecord | None:
        if code is ReasonCode.OPERATOR:
            raise ValueError("operator changes go through halt / reduce_only / resume")
        if actor not in (AUTO_ACTOR, LINK_ACTOR):
            raise ValueError(f"a trip's actor is {AUTO_ACTOR!r} or {LINK_ACTOR!r}, not {actor!r}")
        wanted = state if state is not None else DEFAULT_TRIP_STATE[code]
        if wanted is TradingState.ACTIVE:
            raise ValueError("a trip cannot ask for ACTIVE")
        current = {r.code: r for r in self._snapshot.reasons}
        existing = current.get(code)
        # A latching trip of a code held as self-clearing makes it latch (an auth failure on
        # top of a disconnection): the stricter actor wins, never the other way round.
        latches = existing is not None and existing.actor == LINK_ACTOR and actor == AUTO_ACTOR
        if existing is not None and existing.state.severity >= wanted.severity and not latches:
            return None  # already tripped at least this tight
        if existing is not None and existing.actor == AUTO_ACTOR:
            actor = AUTO_ACTOR
        if existing is not None:
            wanted = tightest(wanted, existing.state)
        since = existing.since_ms if existing is not None else self._clock_ms()
        current[code] = Reason(code, wanted, detail, since, actor)
        new_state = tightest(self.state, wanted)
        return self._apply(new_state, tuple(current.values()), code, actor, detail)

    async def trip(
        self,
        code: ReasonCode,
        detail: str,
        *,
        state: TradingState | None = None,
        actor: str = AUTO_ACTOR,
    ) -> bool:
        """An automatic kill switch fired: add reason `code` demanding `state` (default from
        `DEFAULT_TRIP_STATE`) and tighten if needed. Never loosens. Returns True if anything
        changed (then it is persisted before this returns); tripping an already active reason
        again at the same or a looser level is a no-op. `actor` LINK_ACTOR marks the reason
        self-clearing (`clear_link_nowait`)."""
        record = self._tripped(code, detail, state, actor)
        await self._persist(record)
        return record is not None

    def trip_nowait(
        self,
        code: ReasonCode,
        detail: str,
        *,
        state: TradingState | None = None,
        actor: str = AUTO_ACTOR,
    ) -> bool:
        """`trip` from synchronous code: the state changes before this returns, the journal
        write is scheduled on the running loop (`flush()` waits for it)."""
        return self._schedule(self._tripped(code, detail, state, actor))

    def _schedule(self, record: TradingStateRecord | None) -> bool:
        if record is not None:
            task = asyncio.get_running_loop().create_task(self._persist(record))
            self._pending.add(task)
            task.add_done_callback(self._persisted)
        return record is not None

    def link_codes(self) -> frozenset[ReasonCode]:
        """The codes held now as self-clearing (tripped with `LINK_ACTOR`)."""
        return frozenset(r.code for r in self._snapshot.reasons if r.actor == LINK_ACTOR)

    def clear_link_nowait(self, detail: str) -> frozenset[ReasonCode]:
        """The account's link is healthy again: remove every self-clearing reason (actor
        LINK_ACTOR) and loosen to the tightest reason left, never further; an operator's
        reason and every latched one stay. Journalled like a trip (cause: the first code
        cleared, actor LINK_ACTOR). Returns the codes cleared (empty: nothing changed)."""
        cleared = self.link_codes()
        if not cleared:
            return cleared
        kept = tuple(r for r in self._snapshot.reasons if r.actor != LINK_ACTOR)
        state = tightest(*(r.state for r in kept))
        if self.state.severity > tightest(*(r.state for r in self.reasons)).severity:
            state = self.state  # tighter than any reason (never seen): keep it, as a latch
        cause = min(cleared, key=lambda c: c.value)
        self._schedule(self._apply(state, kept, cause, LINK_ACTOR, detail))
        return cleared

    def _persisted(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("trading_state_persist_failed", error=str(task.exception()))

    async def flush(self) -> None:
        """Wait for scheduled journal writes (shutdown, tests); failures were logged."""
        while self._pending:
            await asyncio.gather(*tuple(self._pending), return_exceptions=True)

    async def operator_set(self, target: TradingState, *, actor: str, text: str = "") -> bool:
        """The operator puts the daemon in `target`. Reasons tighter than `target` are cleared
        (the operator has overruled them; the history keeps them); looser ones stay; for
        REDUCE_ONLY and HALTED an OPERATOR reason records the command. `actor` is "uid:N"."""
        now = self._clock_ms()
        kept = [
            r
            for r in self._snapshot.reasons
            if r.code is not ReasonCode.OPERATOR and r.state.severity <= target.severity
        ]
        if target is not TradingState.ACTIVE:
            previous = next(
                (r for r in self._snapshot.reasons if r.code is ReasonCode.OPERATOR), None
            )
            if previous is not None and previous.state is target:
                kept.append(previous)  # a repeated command changes nothing (the audit log has it)
            else:
                kept.append(Reason(ReasonCode.OPERATOR, target, text, now, actor))
        return await self._transition(
            target, tuple(kept), ReasonCode.OPERATOR, actor, text or target.value
        )

    async def halt(self, *, actor: str, text: str = "") -> bool:
        return await self.operator_set(TradingState.HALTED, actor=actor, text=text)

    async def reduce_only(self, *, actor: str, text: str = "") -> bool:
        return await self.operator_set(TradingState.REDUCE_ONLY, actor=actor, text=text)

    async def resume(self, *, actor: str, text: str = "") -> bool:
        """Back to ACTIVE, every reason cleared. A kill switch whose condition still holds
        trips again at its next check."""
        return await self.operator_set(TradingState.ACTIVE, actor=actor, text=text)


def operator_actor(uid: int | None) -> str:
    """The `actor` string for an operator's uid ("uid:1000"; "uid:?" when unknown)."""
    return f"uid:{uid}" if uid is not None else "uid:?"


def _by_code(reason: Reason) -> str:
    return reason.code.value


__all__ = [
    "AUTO_ACTOR",
    "DEFAULT_TRIP_STATE",
    "LINK_ACTOR",
    "GateResult",
    "OrderKind",
    "Reason",
    "ReasonCode",
    "TradingState",
    "TradingStateMachine",
    "TradingStateSnapshot",
    "TradingStateStore",
    "allows",
    "operator_actor",
    "tightest",
]
