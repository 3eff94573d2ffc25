"""The executor: a `HedgeDecision` becomes the right orders on the venue, exactly once.

Per decision:

    risk gate (`allows`, judged on the underlying's net delta)
      → labels (the account's `client_ids` codec: account tag, epoch, decision, leg, slice,
        attempt; format-1 `client_label` without one)
      → decision + first intents committed to the journal
      → send through the `Venue` protocol (its lanes throttle the wire)
      → every answer (ack, fill, cancel, reject, timeout, query) through the journal's state
        machine (`order_state.apply`)

Styles (`HedgeStyle` of the leg → `OrderStyle` of its orders):

- TAKER: immediate-or-cancel limits at the leg's protected price, clamped to at most
  `max_slippage_bps` from the mid; a partial fill's remainder is retried (a new attempt, so a
  new label) until the decided amount is done, within the attempt budget.
- SLICED (or any leg above `max_slice_delta_coin`, or worth more than `max_slice_notional_usd`):
  the same IOC orders, at most a slice each, paced by `slice_interval_ms`; what a slice leaves
  is carried into the next.
- MAKER: post-only at the leg's price, re-priced (cancel, then a new attempt at the touch)
  when the touch moves away, and replaced by an IOC taker order for the remainder at the
  leg's `fallback_after_ms`.
- `reduce_only` is set when the order only shrinks a position the caller reports.

Every order of a leg after its first (a slice, a re-price, a retry, the fallback) is put to
`order_budget` (the order-rate kill switch) right before it is sent: one refused is closed
unsent and the leg ends PARTIAL. A decision's `cancel_labels` are cancelled with its legs,
and `cancel_orders` (the operator's flatten) stops the legs it cancels the orders of.

Errors (a `VenueError`'s class):

- network / timeout / no answer (`outcome_unknown`, or any RETRYABLE on a send): the order
  becomes UNKNOWN and is queried by its label; its label is never sent again. Still unknown
  after the queries: it stays UNKNOWN (counted in flight in full) for the reconciler.
- RATE_LIMITED (Deribit 10028, which also ends the session): the order is closed as refused,
  every send on that venue backs off (capped exponential), waits for the venue's private
  session to be re-established when it has one, and the remainder goes out as a new attempt.
- DEFINITIVE (invalid order, reduce-only conflict, ...): REJECTED, never retried, reported to
  `on_reject` (the controller reads it, e.g. a minimum size); not enough funds trips
  INSUFFICIENT_FUNDS; `reject_streak_limit` rejects in a row trip REJECT_STREAK.
- AUTH: REJECTED and VENUE_DISCONNECTED is tripped (nothing will work until an operator acts).

Fills the streams missed: when an answer, a query or an order update shows the venue's filled
amount above the fills journalled (`OrderRecord.fills_missing`: the trades' notifications were
lost, e.g. the WebSocket was down when an IOC order filled), that order's trades are fetched
at once (`fetch_order_fills`, Deribit `private/get_user_trades_by_order`) and journalled
through the same de-duplicated path as the stream's (unique by trade id); each fill new to the
journal goes to `on_fill_repaired` (the book). With the venue's private stream up, the stream
first gets `fill_repair_grace_ms` to deliver them. The periodic reconciliation remains the
backstop.

In flight: `in_flight_delta_coin(underlying)` and `in_flight_orders(underlying)` give the
controller the signed delta of what may still fill or has filled without the book's position
showing it yet (`execution.inflight`, one rule for every order: its fill counts in flight
until the book's position shows it, keyed per order and attributed per instrument): the rest
of every leg being worked (from the moment `execute` is called, before any await) that the
book does not hold yet, and every other order tracked (an open one's amount, a terminal one's
fill, less what the book holds; UNKNOWN in full). The caller reads the book's positions and
this at one instant, with no await in between. So a slow fill never causes a second hedge,
and a fill is never counted twice.

Dry run: the decision and its intents are journalled, then closed as cancelled "dry_run";
nothing is sent.

Units: amounts in the instrument's `amount_unit` (USD for inverse futures and perpetuals, coin
otherwise), prices in its `price_unit`, deltas in coin of the underlying, times UTC epoch ms
from the injected `clock_ms`; waits go through the injected `sleep_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import structlog

from hedgerd.execution.client_ids import ClientIdCodec, client_label, parse_label
from hedgerd.execution.inflight import InFlightLedger, reported_fill
from hedgerd.execution.journal import (
    DecisionRecord,
    DuplicateIntentError,
    FillOutcome,
    IntentGuard,
    Journal,
)
from hedgerd.execution.order_state import (
    Cancelled,
    OrderEvent,
    OrderRecord,
    OrderStateError,
    OrderStyle,
    Rejected,
    Sent,
    TimedOut,
    new_order,
    query_result_from_update,
)
from hedgerd.ha.lease import LeaseError
from hedgerd.hedging.inputs import InFlightOrder
from hedgerd.model import (
    AmountUnit,
    Fill,
    HedgeDecision,
    HedgeLeg,
    HedgeStyle,
    Instrument,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PriceUnit,
    Quote,
    TimeInForce,
)
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.trading_state import (
    GateResult,
    OrderKind,
    ReasonCode,
    TradingState,
    TradingStateMachine,
    TradingStateSnapshot,
)
from hedgerd.risk.trips import OrderCheck
from hedgerd.venues.base import (
    ErrorClass,
    FillEvent,
    OrderRequest,
    RejectReason,
    Venue,
    VenueError,
    VenueEvent,
)
from hedgerd.venues.base import (
    OrderEvent as VenueOrderEvent,
)

log = structlog.get_logger(__name__)

#: Env var naming a point where the process SIGKILLs itself (crash drills only):
#: "after_intent" (journalled, not sent) or "after_send" (sent and answered, answer not
#: journalled). Read once per `Executor`.
DRILL_ENV = "HGD_DRILL_KILL_AT"
_EPS = 1e-9


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _sleep_ms(ms: int) -> None:
    await asyncio.sleep(max(ms, 0) / 1000.0)


@runtime_checkable
class OrderFillsVenue(Protocol):
    """A venue that can list one order's trades (not part of `Venue`)."""

    async def fetch_order_fills(self, order_id: str) -> list[Fill]: ...


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """How orders are worked. Times in ms (of the injected clock), prices in basis points."""

    dry_run: bool = False
    #: Orders in flight to the venues at once (across decisions).
    max_concurrent_orders: int = 4
    #: Price protection of an IOC order: its limit is at most this far from the mid.
    max_slippage_bps: float = 25.0
    #: A leg moving more delta than this (coin) is sent in slices of at most this much.
    max_slice_delta_coin: float = 5.0
    #: ... and a leg worth more than this (USD notional) in slices worth at most this much
    #: (None: no such cap). The daemon sets the order-notional kill switch's limit: a hedge
    #: sized for a whole breach must not go out as orders the switch refuses (and halts on).
    max_slice_notional_usd: float | None = None
    #: Pause between two IOC orders of one leg (slices, or the remainder after a partial fill).
    slice_interval_ms: int = 500
    #: How often a resting maker order is checked (and re-priced if the touch moved away).
    reprice_interval_ms: int = 2_000
    #: Taker fallback of a maker leg when the leg gives no `fallback_after_ms`.
    maker_fallback_ms: int = 10_000
    #: Orders one leg may use in all (slices, re-prices, retries, fallback).
    max_orders_per_leg: int = 30
    #: Queries by label of an order whose send has no known outcome, and their spacing.
    unknown_queries: int = 4
    unknown_query_interval_ms: int = 500
    #: Backoff of every send on a venue after a rate-limit answer (doubles, capped).
    rate_limit_initial_ms: int = 500
    rate_limit_max_ms: int = 10_000
    #: Wall seconds to wait for a venue's private session to come back after a rate limit.
    session_wait_s: float = 10.0
    #: Orders go over the venue's private session only (the daemon's `cancel_on_disconnect`):
    #: a leg's next order (slice, retry, re-price) waits up to `session_wait_s` for a session
    #: that is down, and the leg ends if it stays down. The adapter would otherwise send it
    #: over REST, whose GETs aiohttp may re-send when a connection drops.
    orders_need_session: bool = False
    #: This many definitive rejects in a row trip REJECT_STREAK (0: never).
    reject_streak_limit: int = 5
    #: Cancel every open order this executor knows when the trading state becomes HALTED.
    cancel_on_halt: bool = True
    #: How long (ms, through `sleep_ms`) the venue's private stream, when up, gets to deliver
    #: the trades of a fill an answer reported before they are fetched by order; with the
    #: stream down they are fetched at once.
    fill_repair_grace_ms: int = 1_000
    #: Wall seconds a terminal order's fill may take to show in the book's position before
    #: the book is believed (`execution.inflight`): longer than a reconciliation interval
    #: (30 s by default), so a position the stream lost is corrected by the reconciliation
    #: first, and far longer than a starved stream's lag (seconds: believing the book sooner
    #: hedged the fill again); a position moved by something else must not stay in flight
    #: for good.
    absorb_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_concurrent_orders < 1:
            raise ValueError("max_concurrent_orders must be >= 1")
        if not (self.max_slippage_bps > 0 and self.max_slice_delta_coin > 0):
            raise ValueError("max_slippage_bps and max_slice_delta_coin must be > 0")
        if self.max_slice_notional_usd is not None and not self.max_slice_notional_usd > 0:
            raise ValueError("max_slice_notional_usd must be > 0 (or None)")
        if self.max_orders_per_leg < 1 or self.unknown_queries < 1:
            raise ValueError("max_orders_per_leg and unknown_queries must be >= 1")


# ------------------------------------------------------------------------------- results


class LegOutcome(StrEnum):
    """How a leg ended."""

    DONE = "done"  # the decided amount traded (within lot rounding)
    PARTIAL = "partial"  # attempts exhausted or price protection held; the rest is not traded
    UNKNOWN = "unknown"  # an order's outcome is still unknown: in flight until reconciled
    REJECTED = "rejected"  # the venue refused an order definitively
    BLOCKED = "blocked"  # the risk gate refused
    DRY_RUN = "dry_run"
    DUPLICATE = "duplicate"  # the decision was already journalled: never executed twice


@dataclass(frozen=True, slots=True)
class LegResult:
    """One leg's end: `filled_amount` of `target_amount` (both in the leg's amount unit),
    the labels of every order it used, and why it ended."""

    leg: int
    instrument: str
    outcome: LegOutcome
    target_amount: float
    filled_amount: float
    labels: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """How each leg ended, and the labels of the resting orders the decision's
    `cancel_labels` cancelled (their cancels answered)."""

    decision_id: str
    legs: tuple[LegResult, ...]
    cancelled: tuple[str, ...] = ()

    @property
    def filled_delta_ok(self) -> bool:
        return all(leg.outcome is LegOutcome.DONE for leg in self.legs)


@dataclass(frozen=True, slots=True)
class OrderRejection:
    """A definitive refusal, for the controller: `code`/`reason` as the venue gave them
    (e.g. Deribit 10009 not_enough_funds, 11030, qty_too_low)."""

    decision_id: str | None
    label: str
    venue: str
    instrument: str
    side: OrderSide
    amount: float
    code: int | None
    reason: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OrderTiming:
    """Wall-clock marks of one send (perf_counter_ns): `decision_ns` when its decision reached
    `execute` (a leg's later orders: when their intent was started), `send_ns` when the request
    was handed to the venue adapter, `answer_ns` when the answer was back; `journal_ns` is how
    long the intent's commit took (in between)."""

    label: str
    decision_ns: int
    send_ns: int
    answer_ns: int
    journal_ns: int = 0  # how long committing its intent took (fsync included)


# ------------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _OrderMeta:
    underlying: str
    coin_per_amount: float | None  # |delta| per unit of amount; None: not known
    style: HedgeStyle


@dataclass(slots=True)
class _LegRun:
    """A leg being worked: its target, the orders it used, and the decision's context."""

    decision: HedgeDecision
    index: int
    leg: HedgeLeg
    instrument: Instrument
    coin_per_amount: float
    decision_ns: int
    labels: list[str] = field(default_factory=list)
    slice_no: int = 0
    attempt: int = 0
    journal_ns: int = 0  # duration of the last intent commit
    #: An operator's flatten: passes the trading-state gate in any state, always reduce-only.
    operator_flatten: bool = False
    #: Why the leg may send no further order (`cancel_orders`: a later decision or the
    #: operator's flatten cancelled its orders); None: it may.
    stopped: str | None = None
    #: Set while none of the leg's orders is on the wire (sent, its answer not in): what
    #: `cancel_orders` waits for, the venue may not have such an order yet.
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.answered.set()

    @property
    def sign(self) -> int:
        return self.leg.side.sign


class _Retry(Exception):  # noqa: N818 - internal control flow
    """The order was refused for a reason that allows a new attempt (rate limit)."""


class _LegStopped(Exception):  # noqa: N818 - internal control flow
    """The leg may send no more order (the order budget refused one, or `cancel_orders`
    stopped it): it ends PARTIAL with what it has, the rest is left to the next decision."""


def _drill(point: str, armed: str | None) -> None:
    if armed == point:
        log.warning("executor.drill_kill", point=point, pid=os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


def round_down(amount: float, step: float) -> float:
    """`amount` rounded down to a multiple of `step` (float noise absorbed), same unit."""
    n = math.floor(amount / step + 1e-9)
    return float(f"{n * step:.12g}")


def leg_problem(leg: HedgeLeg) -> str | None:
    """Why `leg` cannot be executed (None: it can): its amount, delta or limit price is not a
    finite number, or its amount or price is not positive. `HedgeLeg` is not validated where
    it is built; a NaN delta went out and counted NaN in flight (|delta| / amount per unit)."""
    for name, value in (
        ("amount", leg.amount),
        ("delta_coin", leg.delta_coin),
        ("limit_price", leg.limit_price),
    ):
        if not math.isfinite(value):
            return f"{name} {value} is not a finite number"
    if not (leg.amount > 0 and leg.limit_price > 0):
        return f"amount {leg.amount} and limit price {leg.limit_price} must be > 0"
    return None


def leg_notional_usd(leg: HedgeLeg) -> float | None:
    """The leg's notional, USD: its amount where that is USD (inverse contracts), else its
    amount at its limit price where that is USD; None for a coin price (no index here)."""
    if leg.amount_unit is AmountUnit.USD:
        return abs(leg.amount)
    if leg.price_unit is PriceUnit.USD:
        return abs(leg.amount) * leg.limit_price
    return None


def round_price(price: float, tick: float, side: OrderSide) -> float:
    """A protective limit on the tick grid: a buy rounds down, a sell up (price unit).
    Raises ValueError when no positive price on the grid is as good (a buy below one tick)."""
    q = price / tick
    n = math.floor(q + 1e-9) if side is OrderSide.BUY else math.ceil(q - 1e-9)
    if n < 1:
        raise ValueError(f"no price on the {tick} grid protects a {side} at {price}")
    return float(f"{n * tick:.12g}")


def protected_price(
    side: OrderSide, mid: float, max_slippage_bps: float, tick: float, cap: float | None = None
) -> float:
    """The IOC limit: at most `max_slippage_bps` from `mid` (and no worse than `cap`), on the
    tick grid. Price unit of the instrument."""
    slip = max_slippage_bps * 1e-4
    raw = mid * (1 + slip) if side is OrderSide.BUY else mid * (1 - slip)
    if cap is not None:
        raw = min(raw, cap) if side is OrderSide.BUY else max(raw, cap)
    return round_price(raw, tick, side)


# -------------------------------------------------------------------------------- executor


class Executor:
    """Turns decisions into orders through `Venue`s (by `venue.name`), journal first.

        executor = Executor({venue.name: venue}, journal, trading_state, clock_ms=...)
        await executor.load()                 # open orders from the journal (after reconcile)
        result = await executor.execute(decision)
        executor.in_flight_delta_coin("BTC")  # for the controller's inputs
        await executor.handle_event(ev)       # order updates and fills from the venue stream

    `book_delta_coin(underlying)`: the underlying's net delta without orders in flight (coin),
    for the risk gate; without it the decision's own `net_delta_coin` is used.
    `position_amount(venue, instrument)`: the signed position in the amount unit (None: not
    known), for `reduce_only`. `quote(venue, instrument)`: a fresh top of book if the caller
    has one (else the venue is asked). `coin_per_amount(venue, instrument)`: |delta| per unit
    of amount for orders not placed by this process (adopted, recovered without a decision).
    """

    def __init__(
        self,
        venues: Mapping[str, Venue],
        journal: Journal,
        trading: TradingStateMachine,
        *,
        settings: ExecutorSettings | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        sleep_ms: Callable[[int], Awaitable[None]] = _sleep_ms,
        book_delta_coin: Callable[[str], float] | None = None,
        position_amount: Callable[[str, str], float | None] | None = None,
        quote: Callable[[str, str], Quote | None] | None = None,
        coin_per_amount: Callable[[str, str], float | None] | None = None,
        on_reject: Callable[[OrderRejection], None] | None = None,
        on_fill_repaired: Callable[[Fill], None] | None = None,
        states: AccountStates | None = None,
        client_ids: Mapping[str, ClientIdCodec] | None = None,
        epoch: Callable[[], int] | None = None,
        intent_guard: Callable[[], IntentGuard | None] | None = None,
        request_ttl_ms: int | None = None,
        wall_s: Callable[[], float] = time.monotonic,
        order_budget: Callable[[bool], OrderCheck] | None = None,
    ) -> None:
        self.venues = dict(venues)
        self.journal = journal
        self.trading = trading
        #: Per-account trading states: an order passes the portfolio's gate and its
        #: account's, and account trips (funds, auth, rejects) trip its account. None: the
        #: portfolio's state alone (`trading`).
        self.states = states
        #: The client-id codec per venue account; an account without one gets format-1
        #: labels (`client_label`). `epoch`: the lease epoch the ids carry (0 without HA).
        self.client_ids = dict(client_ids or {})
        self._epoch = epoch or (lambda: 0)
        #: HA: the fence each intent write runs in its transaction (the lease's `guard`);
        #: one that refuses (LeaseError) means nothing is written and nothing sent.
        self._intent_guard = intent_guard or (lambda: None)
        #: HA: each intent journals a request expiry this long after its creation, sent with
        #: the order (Deribit `valid_until`, OKX `expTime`): a request that reaches the venue
        #: later is refused, so a paused leader cannot place it after a takeover. None: none.
        self.request_ttl_ms = request_ttl_ms
        self.settings = settings or ExecutorSettings()
        #: The order-rate budget for a leg's every order after its first (which the caller's
        #: pre-trade check counted): called with `operator_flatten` right before the send
        #: (`KillSwitchBoard.check_next_order`). None: no budget.
        self.order_budget = order_budget
        self.clock_ms = clock_ms
        self.sleep_ms = sleep_ms
        self._book_delta = book_delta_coin
        self._position = position_amount
        self._quote = quote
        self._coin_per_amount = coin_per_amount
        self.on_reject = on_reject
        #: Each fill the executor fetched itself (the stream missed it), once journalled.
        self.on_fill_repaired = on_fill_repaired
        self._sem = asyncio.Semaphore(self.settings.max_concurrent_orders)
        #: Shutdown began (`stop_sending`): no order goes out any more, whatever the state.
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._records: dict[str, OrderRecord] = {}
        self._meta: dict[str, _OrderMeta] = {}
        #: Every order this executor tracks, until the book's position shows its fill.
        self._ledger = InFlightLedger(
            position_amount, timeout_s=self.settings.absorb_timeout_s, wall_s=wall_s
        )
        self._runs: set[int] = set()
        self._run_objs: dict[int, _LegRun] = {}
        self._rl_until_ms: dict[str, int] = {}
        self._rl_streak: dict[str, int] = {}
        self._reject_streak: dict[str, int] = {}
        self._drill = os.environ.get(DRILL_ENV) or None
        self._halt_tasks: set[asyncio.Task[int]] = set()
        self._repairs: dict[str, asyncio.Task[int]] = {}
        self.fills_repaired = 0
        if self.settings.cancel_on_halt:
            trading.add_listener(self._on_trading_state)
            if states is not None:
                for name, machine in states.accounts.items():
                    machine.add_listener(self._account_halt_listener(name))
        self.timings: deque[OrderTiming] = deque(maxlen=10_000)
        self.rejections: deque[OrderRejection] = deque(maxlen=1_000)
        self.rate_limited = 0

    # ------------------------------------------------------------------------ in flight

    def in_flight_delta_coin(self, underlying: str) -> float:
        """Signed delta (coin) of everything that may still trade on `underlying`: the unfilled
        rest of every leg being worked and the open amount of every other non-terminal order
        (UNKNOWN in full)."""
        return sum(o.delta_coin for o in self.in_flight_orders(underlying))

    def in_flight_orders(
        self, underlying: str, exclude_decision: str | None = None
    ) -> list[InFlightOrder]:
        """The controller's `InFlightOrder`s of `underlying` (without those of decision
        `exclude_decision`): what may still fill or filled without the book's position
        showing it (`execution.inflight`). A leg being worked is one entry (label of its
        latest order) carrying its whole rest: its amount less what the book holds of its
        orders' fills."""
        absorbed = self._ledger.absorbed(self._records.get)
        out: list[InFlightOrder] = []
        covered: set[str] = set()
        for run in self._run_objs.values():
            if run.decision.underlying != underlying:
                continue
            covered.update(run.labels)
            if run.decision.decision_id == exclude_decision:
                continue
            held = sum(
                self._ledger.held(lb, self._records.get(lb), absorbed.get(lb, 0.0))
                for lb in run.labels
            )
            rest = max(run.leg.amount - held, 0.0)
            if rest <= _EPS:
                continue
            label = (
                run.labels[-1]
                if run.labels
                else self.label(run.leg.venue, run.decision.decision_id, run.index)
            )
            out.append(
                InFlightOrder(
                    run.leg.venue,
                    run.leg.instrument,
                    label,
                    run.sign * rest * run.coin_per_amount,
                    run.leg.style,
                    run.decision.ts_ms,
                )
            )
        for label, rec in self._records.items():
            meta = self._meta.get(label)
            if label in covered or meta is None or meta.underlying != underlying:
                continue
            if exclude_decision is not None and rec.decision_id == exclude_decision:
                continue
            if label in self._ledger:
                amount = self._ledger.in_flight(label, rec, absorbed.get(label, 0.0))
            else:
                amount = rec.open_amount
            if amount <= _EPS:
                continue
            ratio = meta.coin_per_amount
            if ratio is None and self._coin_per_amount is not None:
                ratio = self._coin_per_amount(rec.venue, rec.instrument)
            if ratio is None:
                log.warning("executor.in_flight_delta_unknown", label=label, venue=rec.venue)
                continue
            out.append(
                InFlightOrder(
                    rec.venue,
                    rec.instrument,
                    label,
                    rec.side.sign * amount * ratio,
                    meta.style,
                    rec.sent_ms or rec.created_ms,
                )
            )
        return out

    def open_records(self) -> list[OrderRecord]:
        """The executor's view of its non-terminal orders."""
        return [r for r in self._records.values() if r.is_open]

    def record(self, label: str) -> OrderRecord | None:
        return self._records.get(label)

    # ----------------------------------------------------------------------- start-up

    async def load(self) -> int:
        """Load the journal's open orders (run after start-up reconciliation resolved the
        UNKNOWN ones); returns how many. Each gets its underlying and delta per amount from
        its journalled decision when it has one."""
        orders = await self.journal.open_orders()
        for rec in orders:
            self._meta[rec.label] = await self._meta_from_journal(rec)
            self.note_record(rec)
        log.info("executor.loaded", open_orders=len(orders))
        return len(orders)

    async def _meta_from_journal(self, rec: OrderRecord) -> _OrderMeta:
        inst = (
            self.venues[rec.venue].instruments().get(rec.instrument)
            if (rec.venue in self.venues)
            else None
        )
        underlying = inst.underlying if inst is not None else rec.instrument.split("-")[0]
        ratio: float | None = None
        style = HedgeStyle.MAKER if rec.style is OrderStyle.POST_ONLY else HedgeStyle.TAKER
        cid = parse_label(rec.label)
        if rec.decision_id is not None and cid is not None:
            dec = await self.journal.decision(rec.decision_id)
            if dec is not None:
                underlying = dec.underlying
                legs = dec.payload.get("legs") or ()
                if cid.leg < len(legs):
                    leg = legs[cid.leg]
                    amount = float(leg.get("amount") or 0.0)
                    if amount > 0:
                        ratio = abs(float(leg.get("delta_coin") or 0.0)) / amount
        return _OrderMeta(underlying, ratio, style)

    def note_record(self, rec: OrderRecord) -> None:
        """Take the journal's newest view of an order (the reconciler calls this). An open
        order not tracked yet (loaded, or placed by an earlier process) is tracked from now
        on, what it filled so far taken to be in the book already (reconciled)."""
        self._records[rec.label] = rec
        if rec.label not in self._meta and rec.venue in self.venues:
            inst = self.venues[rec.venue].instruments().get(rec.instrument)
            if inst is not None:
                style = HedgeStyle.MAKER if rec.style is OrderStyle.POST_ONLY else HedgeStyle.TAKER
                self._meta[rec.label] = _OrderMeta(inst.underlying, None, style)
        if rec.label in self._ledger:
            self._ledger.observe(rec)
        elif rec.is_open and rec.label in self._meta:
            self._ledger.register(rec, prior=reported_fill(rec))

    # ------------------------------------------------------------------------- stream

    async def handle_event(self, ev: VenueEvent) -> None:
        """Feed an event from a venue stream: order updates and fills; others are ignored."""
        if isinstance(ev, VenueOrderEvent):
            await self.on_order_update(ev.order)
        elif isinstance(ev, FillEvent):
            await self.on_fill(ev.fill)

    async def on_order_update(self, update: OrderUpdate) -> None:
        """The venue's view of one of our orders (stream): applied as a `QueryResult`."""
        label = update.label
        if not label or parse_label(label) is None:
            return
        if label not in self._records:
            rec = await self.journal.order(label)
            if rec is None:
                return  # not ours in this journal: the reconciler decides
            self.note_record(rec)
        if update.status in (OrderStatus.NEW, OrderStatus.SENT, OrderStatus.UNKNOWN):
            return
        await self._apply(label, query_result_from_update(update), quiet=True)

    async def on_fill(self, fill: Fill) -> FillOutcome:
        """One of our trades (stream or reconciliation): journalled once by trade id."""
        try:
            outcome = await self.journal.record_fill(fill)
        except OrderStateError as exc:
            log.error(
                "executor.fill_conflict",
                label=fill.label,
                trade_id=fill.trade_id,
                venue_order_id=fill.order_id,
                error=str(exc),
            )
            return FillOutcome(duplicate=False, order=None)
        if outcome.order is not None:
            self.note_record(outcome.order)
        if not outcome.duplicate:
            log.info(
                "executor.fill",
                label=fill.label,
                decision_id=outcome.order.decision_id if outcome.order else None,
                venue_order_id=fill.order_id,
                trade_id=fill.trade_id,
                amount=fill.amount,
                price=fill.price,
            )
        return outcome

    # ------------------------------------------------------------------------ execute

    async def execute(
        self, decision: HedgeDecision, *, operator_flatten: bool = False
    ) -> DecisionResult:
        """Work every leg of `decision` to its end (see the module doc). Never raises for a
        venue problem: the result says how each leg ended.

        `operator_flatten`: the decision closes hedge positions on an operator's command: its
        orders pass the trading-state gate in every state (HALTED included) and are all sent
        reduce-only (an order that would open a position is refused by the venue)."""
        decision_ns = time.perf_counter_ns()
        did = decision.decision_id
        blog = log.bind(decision_id=did, underlying=decision.underlying)
        if not decision.legs:
            return DecisionResult(did, (), tuple(await self._cancel_superseded(decision)))
        # The resting orders the decision works against go with its legs (started here, no
        # await before the legs count in flight; they stay in flight until cancelled). No
        # task when there is none: the usual decision's path to the wire stays as it was.
        cancels = (
            asyncio.ensure_future(self._cancel_superseded(decision))
            if decision.cancel_labels and not self.settings.dry_run
            else None
        )
        runs: list[_LegRun] = []
        results: dict[int, LegResult] = {}
        # Count the whole decision in flight before the first await.
        for i, leg in enumerate(decision.legs):
            bad = leg_problem(leg)
            if bad is not None:  # refused, not traded on, never counted in flight
                blog.error("executor.bad_leg", leg=i, error=bad)
                results[i] = self._leg_end_none(i, leg, LegOutcome.REJECTED, bad)
                continue
            inst = self._instrument(leg)
            ratio = abs(leg.delta_coin) / leg.amount if leg.amount > 0 else 0.0
            run = (
                _LegRun(
                    decision, i, leg, inst, ratio, decision_ns, operator_flatten=operator_flatten
                )
                if inst
                else None
            )
            if run is None:
                results[i] = self._leg_end_none(i, leg, LegOutcome.REJECTED, "unknown instrument")
                continue
            runs.append(run)
            self._run_objs[id(run)] = run
        try:
            before = self._net_delta_before(decision)
            allowed: list[_LegRun] = []
            for run in runs:
                after = before + run.leg.delta_coin
                gate = self._check(
                    run.leg.venue, before, after, is_operator_flatten=operator_flatten
                )
                if not gate.allowed:
                    blog.warning(
                        "executor.gate_blocked",
                        leg=run.index,
                        reason=gate.reason,
                        delta_before_coin=before,
                        delta_after_coin=after,
                    )
                    results[run.index] = self._leg_end(run, LegOutcome.BLOCKED, gate.reason)
                    self._run_objs.pop(id(run), None)
                    continue
                before = after
                allowed.append(run)
            firsts: list[OrderRecord] = []
            for run in list(allowed):
                try:
                    firsts.append(self._first_intent(run))
                except ValueError as exc:  # refused, not traded on: a price off the grid
                    blog.error("executor.bad_price", leg=run.index, error=str(exc))
                    results[run.index] = self._leg_end(run, LegOutcome.REJECTED, str(exc))
                    allowed.remove(run)
                    self._run_objs.pop(id(run), None)
            t0 = time.perf_counter_ns()
            try:
                await self.journal.record_intents(
                    firsts, DecisionRecord.of(decision), guard=self._intent_guard()
                )
            except LeaseError as exc:
                blog.warning("executor.fenced", error=str(exc))
                return DecisionResult(
                    did,
                    tuple(
                        self._leg_end_none(i, leg, LegOutcome.BLOCKED, f"fenced: {exc}")
                        for i, leg in enumerate(decision.legs)
                    ),
                )
            except DuplicateIntentError as exc:
                blog.warning("executor.decision_duplicate", error=str(exc))
                return DecisionResult(
                    did,
                    tuple(
                        self._leg_end_none(i, leg, LegOutcome.DUPLICATE, str(exc))
                        for i, leg in enumerate(decision.legs)
                    ),
                )
            committed_ns = time.perf_counter_ns() - t0
            for run, rec in zip(allowed, firsts, strict=True):
                run.journal_ns = committed_ns
                self._track(run, rec)
                blog.info(
                    "executor.intent",
                    label=rec.label,
                    leg=run.index,
                    instrument=rec.instrument,
                    side=str(rec.side),
                    amount=rec.amount,
                    limit_price=rec.limit_price,
                    style=str(rec.style),
                    reduce_only=rec.reduce_only,
                )
            if self.settings.dry_run:
                for run, rec in zip(allowed, firsts, strict=True):
                    await self._apply(rec.label, Cancelled(self.clock_ms(), "dry_run"))
                    results[run.index] = self._leg_end(run, LegOutcome.DRY_RUN, "dry run")
            else:
                done = await asyncio.gather(
                    *(self._work_leg(run, rec) for run, rec in zip(allowed, firsts, strict=True))
                )
                for res in done:
                    results[res.leg] = res
        finally:
            cancelled = await cancels if cancels is not None else []
            for run in runs:
                self._run_objs.pop(id(run), None)
            self._prune()
        out = DecisionResult(did, tuple(results[i] for i in sorted(results)), tuple(cancelled))
        blog.info(
            "executor.decision_done",
            legs=[(r.leg, str(r.outcome), r.filled_amount, r.target_amount) for r in out.legs],
        )
        return out

    async def _cancel_superseded(self, decision: HedgeDecision) -> list[str]:
        """Cancel the decision's `cancel_labels` (resting maker orders working against its
        direction) and stop the legs that sent them (`cancel_orders`); nothing in a dry run
        (nothing was sent)."""
        if not decision.cancel_labels or self.settings.dry_run:
            return []
        return await self.cancel_orders(
            f"superseded by decision {decision.decision_id}", labels=decision.cancel_labels
        )

    # ---------------------------------------------------------------------- leg plans

    def _instrument(self, leg: HedgeLeg) -> Instrument | None:
        venue = self.venues.get(leg.venue)
        return venue.instruments().get(leg.instrument) if venue is not None else None

    def _net_delta_before(self, decision: HedgeDecision) -> float:
        if self._book_delta is None:
            return decision.net_delta_coin
        # The book without in-flight, plus what else is in flight (not this decision's legs).
        others = sum(
            o.delta_coin for o in self.in_flight_orders(decision.underlying, decision.decision_id)
        )
        return self._book_delta(decision.underlying) + others

    def _slices(self, run: _LegRun) -> int:
        """How many orders the leg's amount needs at most, by its delta (coin) and its
        notional (USD) against the slice caps; 1 when neither cap applies."""
        s = self.settings
        n = math.ceil(abs(run.leg.delta_coin) / s.max_slice_delta_coin - 1e-9)
        notional = leg_notional_usd(run.leg)
        if s.max_slice_notional_usd is not None and notional is not None:
            n = max(n, math.ceil(notional / s.max_slice_notional_usd - 1e-9))
        return max(1, n)

    def _is_sliced(self, run: _LegRun) -> bool:
        return run.leg.style is HedgeStyle.SLICED or (
            run.leg.style is HedgeStyle.TAKER and self._slices(run) > 1
        )

    def _slice_amount(self, run: _LegRun) -> float:
        if not self._is_sliced(run):
            return run.leg.amount
        step = run.instrument.amount_step
        return max(round_down(run.leg.amount / self._slices(run), step), run.instrument.min_amount)

    def _reduce_only(self, run: _LegRun, amount: float) -> bool:
        if run.operator_flatten:
            return True
        if self._position is None:
            return False
        pos = self._position(run.leg.venue, run.leg.instrument)
        if pos is None or pos == 0:
            return False
        reduces = (pos > 0 and run.leg.side is OrderSide.SELL) or (
            pos < 0 and run.leg.side is OrderSide.BUY
        )
        return reduces and amount <= abs(pos) + _EPS

    def _check(
        self, venue: str, before: float, after: float, *, is_operator_flatten: bool
    ) -> GateResult:
        """The trading-state gate for a new order to `venue` (its account's state too)."""
        if self.states is not None:
            return self.states.check(
                venue, OrderKind.NEW, before, after, is_operator_flatten=is_operator_flatten
            )
        return self.trading.check(
            OrderKind.NEW, before, after, is_operator_flatten=is_operator_flatten
        )

    async def _trip(self, venue: str, code: ReasonCode, detail: str) -> None:
        """An account's trouble (auth, funds, rejects): its account with several accounts,
        the portfolio otherwise (`AccountStates.machine_for`)."""
        if self.states is not None:
            await self.states.trip(venue, code, detail)
        else:
            await self.trading.trip(code, detail)

    def label(
        self, venue: str, decision_id: str, leg: int, slice_no: int = 0, attempt: int = 0
    ) -> str:
        """The client id of an order to account `venue` (its codec's; see `client_ids`)."""
        codec = self.client_ids.get(venue)
        if codec is None:
            return client_label(decision_id, leg, slice_no, attempt)
        return codec.client_id(decision_id, leg, slice_no, attempt, self._epoch()).label

    def _intent(self, run: _LegRun, amount: float, price: float, style: OrderStyle) -> OrderRecord:
        now = self.clock_ms()
        ttl = self.request_ttl_ms
        return new_order(
            label=self.label(
                run.leg.venue, run.decision.decision_id, run.index, run.slice_no, run.attempt
            ),
            decision_id=run.decision.decision_id,
            venue=run.leg.venue,
            instrument=run.leg.instrument,
            side=run.leg.side,
            amount=amount,
            amount_unit=run.instrument.amount_unit,
            limit_price=price,
            style=style,
            reduce_only=self._reduce_only(run, amount),
            created_ms=now,
            valid_until_ms=now + ttl if ttl is not None else None,
        )

    def _first_intent(self, run: _LegRun) -> OrderRecord:
        """Slice 0, attempt 0 of a leg, priced from the decision alone (no venue round trip
        on the hot path): the leg's price, clamped by `max_slippage_bps` from a fresh mid when
        the caller's quote source has one."""
        leg, inst = run.leg, run.instrument
        if leg.style is HedgeStyle.MAKER:
            return self._intent(
                run,
                leg.amount,
                round_price(leg.limit_price, inst.tick_size, leg.side),
                OrderStyle.POST_ONLY,
            )
        q = self._quote(leg.venue, leg.instrument) if self._quote is not None else None
        price = (
            protected_price(
                leg.side,
                q.mid_price,
                self.settings.max_slippage_bps,
                inst.tick_size,
                leg.limit_price,
            )
            if q is not None
            else round_price(leg.limit_price, inst.tick_size, leg.side)
        )
        return self._intent(run, self._slice_amount(run), price, OrderStyle.IOC_LIMIT)

    def _track(self, run: _LegRun, rec: OrderRecord) -> None:
        run.labels.append(rec.label)
        self._records[rec.label] = rec
        self._meta[rec.label] = _OrderMeta(
            run.decision.underlying, run.coin_per_amount, run.leg.style
        )
        self._ledger.register(rec)  # journalled, not sent: the book's position is its base

    def _leg_filled(self, run: _LegRun) -> float:
        """What the leg's orders filled (amount unit): by the venue's word or the journal's
        fills, the larger."""
        total = 0.0
        for label in run.labels:
            rec = self._records.get(label)
            if rec is not None:
                total += reported_fill(rec)
        return total

    def _leg_end(self, run: _LegRun, outcome: LegOutcome, detail: str) -> LegResult:
        return LegResult(
            run.index,
            run.leg.instrument,
            outcome,
            run.leg.amount,
            self._leg_filled(run),
            tuple(run.labels),
            detail,
        )

    def _leg_end_none(self, i: int, leg: HedgeLeg, outcome: LegOutcome, detail: str) -> LegResult:
        return LegResult(i, leg.instrument, outcome, leg.amount, 0.0, (), detail)

    def _remaining(self, run: _LegRun) -> float:
        """What the leg still has to trade, on the venue's step; 0 below the minimum size
        (lot rounding leaves it to the next decision)."""
        rest = round_down(
            max(run.leg.amount - self._leg_filled(run), 0.0), run.instrument.amount_step
        )
        return rest if rest >= run.instrument.min_amount - _EPS else 0.0

    def _prune(self) -> None:
        live: set[str] = set()
        for run in self._run_objs.values():
            live.update(run.labels)
        live.update(self._ledger.labels())  # a fill the book does not show yet
        for label in [lb for lb, r in self._records.items() if r.is_terminal and lb not in live]:
            self._records.pop(label, None)
            self._meta.pop(label, None)

    # ------------------------------------------------------------------- leg workers

    async def _work_leg(self, run: _LegRun, first: OrderRecord) -> LegResult:
        try:
            if first.style is OrderStyle.POST_ONLY:
                return await self._work_maker(run, first)
            return await self._work_ioc(run, first)
        except _LegStopped as exc:
            return self._leg_end(run, LegOutcome.PARTIAL, str(exc))
        except OrderStateError as exc:
            log.error(
                "executor.leg_conflict",
                decision_id=run.decision.decision_id,
                leg=run.index,
                error=str(exc),
            )
            return self._leg_end(run, LegOutcome.PARTIAL, f"state conflict: {exc}")

    async def _next_intent(
        self, run: _LegRun, amount: float, price: float, style: OrderStyle
    ) -> OrderRecord | None:
        """Gate, journal and track one more order of a running leg (None: the gate refused)."""
        if run.stopped is not None:
            raise _LegStopped(run.stopped)
        if len(run.labels) >= self.settings.max_orders_per_leg:
            return None
        if self._stopping:  # shutdown: the leg ends with what it has
            log.info(
                "executor.stopping_no_new_order",
                decision_id=run.decision.decision_id,
                leg=run.index,
            )
            return None
        if not await self._session_ready(run):
            return None
        order_delta = run.sign * amount * run.coin_per_amount
        before = self._gate_before(run, amount)
        gate = self._check(
            run.leg.venue,
            before,
            before + order_delta,
            is_operator_flatten=run.operator_flatten,
        )
        if not gate.allowed:
            log.warning(
                "executor.gate_blocked",
                decision_id=run.decision.decision_id,
                leg=run.index,
                reason=gate.reason,
            )
            return None
        rec = self._intent(run, amount, price, style)
        t0 = time.perf_counter_ns()
        try:
            await self.journal.record_intent(rec, guard=self._intent_guard())
        except LeaseError as exc:
            log.warning("executor.fenced", label=rec.label, error=str(exc))
            return None
        run.journal_ns = time.perf_counter_ns() - t0
        run.decision_ns = t0  # later orders: their own start
        self._track(run, rec)
        log.info(
            "executor.intent",
            decision_id=run.decision.decision_id,
            label=rec.label,
            leg=run.index,
            instrument=rec.instrument,
            side=str(rec.side),
            amount=rec.amount,
            limit_price=price,
            style=str(style),
            reduce_only=rec.reduce_only,
        )
        return rec

    async def _session_ready(self, run: _LegRun) -> bool:
        """Whether the leg's next order may go (see `orders_need_session`): the venue's
        private session is up, or comes back within `session_wait_s` wall seconds. A venue
        without a session object has nothing to wait for."""
        if not self.settings.orders_need_session:
            return True
        session = getattr(self.venues.get(run.leg.venue), "session", None)
        connected = getattr(session, "connected", None)
        if not isinstance(connected, asyncio.Event) or connected.is_set():
            return True
        log.warning(
            "executor.session_wait",
            decision_id=run.decision.decision_id,
            leg=run.index,
            venue=run.leg.venue,
        )
        try:
            async with asyncio.timeout(self.settings.session_wait_s):
                await connected.wait()
        except TimeoutError:
            log.warning(
                "executor.session_down_leg_ended",
                decision_id=run.decision.decision_id,
                leg=run.index,
                venue=run.leg.venue,
            )
            return False
        return True

    def _gate_before(self, run: _LegRun, amount: float) -> float:
        if self._book_delta is not None:
            in_flight = self.in_flight_delta_coin(run.decision.underlying)
            # Without this order: the leg's rest is in flight; this order is part of it.
            return (
                self._book_delta(run.decision.underlying)
                + in_flight
                - (run.sign * amount * run.coin_per_amount)
            )
        filled = self._leg_filled(run) * run.sign * run.coin_per_amount
        earlier = sum(leg.delta_coin for leg in run.decision.legs[: run.index])
        return run.decision.net_delta_coin + earlier + filled

    async def _fresh_quote(self, run: _LegRun) -> Quote | None:
        q = self._quote(run.leg.venue, run.leg.instrument) if self._quote is not None else None
        if q is not None:
            return q
        try:
            return await self.venues[run.leg.venue].fetch_quote(run.leg.instrument)
        except VenueError as exc:
            log.warning(
                "executor.quote_failed",
                decision_id=run.decision.decision_id,
                instrument=run.leg.instrument,
                error=str(exc),
            )
            return None

    async def _work_ioc(self, run: _LegRun, first: OrderRecord | None) -> LegResult:
        """IOC orders (one, or slices) until the leg's amount is done."""
        rec = first
        slice_amount = self._slice_amount(run)
        sliced = self._is_sliced(run)
        empty = 0  # IOC orders in a row that traded nothing
        while True:
            if rec is None:
                rest = self._remaining(run)
                if rest <= 0:
                    return self._leg_end(run, LegOutcome.DONE, "")
                q = await self._fresh_quote(run)
                if q is None:
                    return self._leg_end(run, LegOutcome.PARTIAL, "no quote for the price")
                cap = run.leg.limit_price if run.leg.style is not HedgeStyle.MAKER else None
                price = protected_price(
                    run.leg.side,
                    q.mid_price,
                    self.settings.max_slippage_bps,
                    run.instrument.tick_size,
                    cap,
                )
                rec = await self._next_intent(
                    run, min(slice_amount, rest), price, OrderStyle.IOC_LIMIT
                )
                if rec is None:
                    return self._leg_end(run, LegOutcome.PARTIAL, "order budget or gate")
            try:
                final = await self._send(run, rec)
            except _Retry:
                run.attempt += 1
                rec = None
                continue
            if final.status is OrderStatus.UNKNOWN:
                return self._leg_end(run, LegOutcome.UNKNOWN, f"{final.label} unknown")
            if final.status is OrderStatus.REJECTED:
                return self._leg_end(run, LegOutcome.REJECTED, final.reason or "")
            if final.is_open:  # an IOC the venue still reports open: never trade on top
                final = await self._refresh(run, final)
                if final.is_open:
                    return self._leg_end(run, LegOutcome.UNKNOWN, f"{final.label} still open")
            if self._remaining(run) <= 0:
                return self._leg_end(run, LegOutcome.DONE, "")
            empty = empty + 1 if max(final.filled_amount, final.venue_filled_amount) == 0 else 0
            if empty >= 2:  # the protected price is out of the market: let the controller see
                return self._leg_end(run, LegOutcome.PARTIAL, "price protection held")
            if sliced:
                run.slice_no += 1
                run.attempt = 0
            else:
                run.attempt += 1
            rec = None
            await self._pause(self.settings.slice_interval_ms)

    async def _work_maker(self, run: _LegRun, first: OrderRecord) -> LegResult:
        """Post-only at the touch, re-priced as it moves, IOC fallback at the deadline."""
        deadline = run.leg.fallback_after_ms or (
            run.decision.ts_ms + self.settings.maker_fallback_ms
        )
        rec: OrderRecord | None = first
        while True:
            if rec is None:
                rest = self._remaining(run)
                if rest <= 0:
                    return self._leg_end(run, LegOutcome.DONE, "")
                if self.clock_ms() >= deadline:
                    log.info(
                        "executor.taker_fallback",
                        decision_id=run.decision.decision_id,
                        leg=run.index,
                        remaining=rest,
                    )
                    run.attempt += 1
                    return await self._work_ioc(run, None)
                q = await self._fresh_quote(run)
                if q is None:
                    return self._leg_end(run, LegOutcome.PARTIAL, "no quote to re-price")
                rec = await self._next_intent(
                    run, rest, _touch(run.leg.side, q), OrderStyle.POST_ONLY
                )
                if rec is None:
                    return self._leg_end(run, LegOutcome.PARTIAL, "order budget or gate")
            try:
                live = await self._send(run, rec)
            except _Retry:
                run.attempt += 1
                rec = None
                continue
            if live.status is OrderStatus.UNKNOWN:
                return self._leg_end(run, LegOutcome.UNKNOWN, f"{live.label} unknown")
            if live.status is OrderStatus.REJECTED:
                # A post-only order that would cross is refused (Deribit post_only_reject):
                # only that one may be re-priced; any other refusal ends the leg.
                if live.reason and "post_only" in live.reason:
                    run.attempt += 1
                    rec = None
                    continue
                return self._leg_end(run, LegOutcome.REJECTED, live.reason or "")
            # Rest until filled, the touch moves away, the deadline, shutdown or a halt (one
            # that landed while the order was on the wire: its cancel-all could not see it).
            while live.is_open:
                if (
                    self._stopping
                    or self._halted_since_intent(run, live)
                    or run.stopped is not None  # `cancel_orders` could not see it yet
                ):
                    live = await self._cancel(run, live)
                    break
                wait = min(self.settings.reprice_interval_ms, max(deadline - self.clock_ms(), 0))
                await self._pause(wait)
                live = await self._refresh(run, live)
                if not live.is_open or live.status is OrderStatus.UNKNOWN:
                    break
                if self.clock_ms() >= deadline:
                    live = await self._cancel(run, live)
                    break
                q = await self._fresh_quote(run)
                if (
                    q is not None
                    and live.limit_price is not None
                    and (_touch(run.leg.side, q) != live.limit_price)
                ):
                    live = await self._cancel(run, live)
                    break
            if live.status is OrderStatus.UNKNOWN:
                return self._leg_end(run, LegOutcome.UNKNOWN, f"{live.label} unknown")
            if live.is_open:  # the cancel's outcome is not known yet: never trade on top
                return self._leg_end(run, LegOutcome.UNKNOWN, f"{live.label} still open")
            run.attempt += 1
            rec = None

    # --------------------------------------------------------------------- one order

    def _request(self, rec: OrderRecord) -> OrderRequest:
        ioc = rec.style is OrderStyle.IOC_LIMIT
        return OrderRequest(
            instrument=rec.instrument,
            side=rec.side,
            amount=rec.amount,
            label=rec.label,
            order_type=OrderType.LIMIT,
            price=rec.limit_price,
            time_in_force=TimeInForce.IOC if ioc else TimeInForce.GTC,
            post_only=rec.style is OrderStyle.POST_ONLY,
            reduce_only=rec.reduce_only,
            valid_until_ms=rec.valid_until_ms,
        )

    async def _send(self, run: _LegRun, rec: OrderRecord) -> OrderRecord:
        """Send one journalled intent and journal its answer. Returns the order after the
        answer (UNKNOWN if nothing resolved it); raises `_Retry` when a new attempt may go.
        The leg's `answered` is clear from the send until its answer is journalled."""
        try:
            return await self._send_once(run, rec)
        finally:
            run.answered.set()

    async def _send_once(self, run: _LegRun, rec: OrderRecord) -> OrderRecord:
        venue = self.venues[rec.venue]
        olog = log.bind(decision_id=rec.decision_id, label=rec.label, venue=rec.venue)
        async with self._sem:
            await self._wait_rate_limit(rec.venue)
            if self._stopping or self._halted_since_intent(run, rec):
                # Judged at the intent, halted (or shut down) while it waited (semaphore,
                # backoff, session): never sent, so closed as such; the cancel-all that
                # follows a halt or a SIGTERM cannot reach an order sent after it.
                why = "shutdown" if self._stopping else "halted"
                olog.warning("executor.halted_before_send", why=why)
                return await self._apply(rec.label, Cancelled(self.clock_ms(), why))
            if run.stopped is not None:
                # `cancel_orders` stopped the leg while this intent waited (semaphore,
                # backoff): its cancels could not see an order not yet sent, so it is never
                # sent (a flatten's position read would miss it, then it would fill).
                olog.warning("executor.stopped_before_send", why=run.stopped)
                await self._apply(rec.label, Cancelled(self.clock_ms(), "stopped"))
                raise _LegStopped(run.stopped)
            if rec.valid_until_ms is not None and self.clock_ms() >= rec.valid_until_ms:
                # Its request expiry passed while it waited (or this process was paused): the
                # venue would refuse it, and a takeover may already count on that. Never
                # sent; the next attempt journals a new intent through the lease's guard.
                olog.warning("executor.request_expired_before_send")
                await self._apply(rec.label, Cancelled(self.clock_ms(), "request_expired"))
                raise _Retry()
            if self.order_budget is not None and rec.label != run.labels[0]:
                # Every order on the wire counts in the order-rate budgets: a slice, a
                # re-quote, a retry, the fallback (the first was counted before `execute`).
                # Asked here, after every wait, so that the count is the send's own time.
                budget = self.order_budget(run.operator_flatten)
                if not budget.allowed:
                    olog.warning(
                        "executor.order_budget_refused",
                        reason=budget.reason,
                        code=budget.code.value if budget.code is not None else None,
                    )
                    await self._apply(rec.label, Cancelled(self.clock_ms(), "order_budget"))
                    raise _LegStopped(f"order budget: {budget.reason}")
            _drill("after_intent", self._drill)
            send_ns = time.perf_counter_ns()
            run.answered.clear()
            try:
                update = await venue.place_order(self._request(rec))
            except VenueError as exc:
                return await self._send_failed(run, rec, exc, olog)
            except Exception as exc:
                # The adapter failed on its own (a parser's bug in the answer): the venue may
                # have the order. An unknown outcome, asked for by label; left NEW it stayed
                # in flight for good (the running reconciliation skips NEW orders).
                olog.exception("executor.send_failed_unclassified")
                unknown = VenueError(
                    f"{rec.venue}: {type(exc).__name__}: {exc}",
                    error_class=ErrorClass.RETRYABLE,
                    venue=rec.venue,
                    outcome_unknown=True,
                )
                return await self._send_failed(run, rec, unknown, olog)
            answer_ns = time.perf_counter_ns()
            _drill("after_send", self._drill)
        self.timings.append(
            OrderTiming(rec.label, run.decision_ns, send_ns, answer_ns, run.journal_ns)
        )
        self._rl_streak[rec.venue] = 0
        await self._mark_sent(rec.label)
        out = await self._apply(rec.label, query_result_from_update(update))
        olog.info(
            "executor.acked",
            venue_order_id=update.order_id,
            status=str(out.status),
            filled_amount=update.filled_amount,
            wire_ms=(answer_ns - send_ns) / 1e6,
        )
        return out

    def _halted_since_intent(self, run: _LegRun, rec: OrderRecord) -> bool:
        """Whether the order's account (or the portfolio) is HALTED now; the operator's
        flatten still goes, as the gate lets it."""
        if run.operator_flatten:
            return False
        state = self.states.state(rec.venue) if self.states is not None else self.trading.state
        return state is TradingState.HALTED

    async def _mark_sent(self, label: str) -> None:
        rec = self._records.get(label)
        if rec is not None and rec.status is not OrderStatus.NEW:
            return  # the stream already proved the send
        # A race with a stream update that proved the send is harmless: nothing to do.
        with contextlib.suppress(OrderStateError):
            await self._apply(label, Sent(self.clock_ms()))

    async def _send_failed(
        self, run: _LegRun, rec: OrderRecord, exc: VenueError, olog: Any
    ) -> OrderRecord:
        now = self.clock_ms()
        olog = olog.bind(error_class=str(exc.error_class), code=exc.code)
        if exc.error_class is ErrorClass.RATE_LIMITED:
            await self._mark_sent(rec.label)
            await self._apply(rec.label, Rejected(now, "too_many_requests", exc.code))
            self._note_rate_limited(rec.venue)
            olog.warning("executor.rate_limited", backoff_until_ms=self._rl_until_ms[rec.venue])
            raise _Retry()
        if exc.reason is RejectReason.REQUEST_EXPIRED:
            # Not processed (its expiry passed on the way): no kill-switch streak; a new
            # attempt journals a new intent (the lease's guard decides whether it may).
            await self._mark_sent(rec.label)
            await self._apply(rec.label, Rejected(now, "request_expired", exc.code))
            olog.warning("executor.request_expired")
            raise _Retry()
        if exc.outcome_unknown or exc.error_class is ErrorClass.RETRYABLE:
            await self._mark_sent(rec.label)
            await self._apply(rec.label, TimedOut(now, str(exc)[:200]))
            olog.warning("executor.outcome_unknown", error=str(exc)[:200])
            return await self.resolve_unknown(rec.label)
        await self._mark_sent(rec.label)
        out = await self._apply(rec.label, Rejected(now, str(exc)[:200], exc.code))
        olog.warning("executor.rejected", error=str(exc)[:200])
        rejection = OrderRejection(
            rec.decision_id,
            rec.label,
            rec.venue,
            rec.instrument,
            rec.side,
            rec.amount,
            exc.code,
            str(exc)[:200],
            now,
        )
        self.rejections.append(rejection)
        if self.on_reject is not None:
            try:
                self.on_reject(rejection)
            except Exception:
                log.exception("executor.on_reject_failed", label=rec.label)
        if exc.error_class is ErrorClass.AUTH:
            await self._trip(rec.venue, ReasonCode.VENUE_DISCONNECTED, f"{rec.venue}: auth: {exc}")
        elif (
            exc.reason is RejectReason.INSUFFICIENT_FUNDS
            or "not_enough_funds" in str(exc).lower()
            or ("insufficient" in str(exc).lower())
        ):
            await self._trip(rec.venue, ReasonCode.INSUFFICIENT_FUNDS, f"{rec.label}: {exc}"[:200])
        elif "post_only" not in str(exc):
            streak = self._reject_streak[rec.venue] = self._reject_streak.get(rec.venue, 0) + 1
            limit = self.settings.reject_streak_limit
            if limit and streak >= limit:
                await self._trip(
                    rec.venue, ReasonCode.REJECT_STREAK, f"{rec.venue}: {streak} rejects in a row"
                )
        return out

    async def resolve_unknown(self, label: str) -> OrderRecord:
        """Query an UNKNOWN order by its label until the venue reports it (then apply that),
        at most `unknown_queries` times. Not found is not proof (the request may still be in
        flight): it stays UNKNOWN, and the reconciler closes it after its grace period."""
        rec = self._records.get(label) or await self.journal.order(label)
        if rec is None:
            raise KeyError(label)
        venue = self.venues[rec.venue]
        for i in range(self.settings.unknown_queries):
            if i:
                await self.sleep_ms(self.settings.unknown_query_interval_ms)
            try:
                found = [u for u in await venue.order_by_label(label) if u.label == label]
            except VenueError as exc:
                log.warning("executor.query_failed", label=label, error=str(exc)[:200])
                continue
            if len(found) > 1:
                log.error(
                    "executor.duplicate_label_on_venue",
                    label=label,
                    venue_order_ids=[u.order_id for u in found],
                )
            if found:
                u = found[0]
                out = await self._apply(label, query_result_from_update(u))
                log.info(
                    "executor.unknown_resolved",
                    decision_id=rec.decision_id,
                    label=label,
                    venue_order_id=u.order_id,
                    status=str(out.status),
                    filled_amount=u.filled_amount,
                )
                return out
        log.warning("executor.unknown_unresolved", decision_id=rec.decision_id, label=label)
        return self._records.get(label, rec)

    async def _refresh(self, run: _LegRun, rec: OrderRecord) -> OrderRecord:
        """The venue's current view of a live order (the stream may lag): query by label."""
        return await self._query_by_label(rec)

    async def _query_by_label(self, rec: OrderRecord) -> OrderRecord:
        try:
            found = [
                u
                for u in await self.venues[rec.venue].order_by_label(rec.label)
                if u.label == rec.label
            ]
        except VenueError as exc:
            log.warning("executor.query_failed", label=rec.label, error=str(exc)[:200])
            return self._records.get(rec.label, rec)
        if found:
            return await self._apply(rec.label, query_result_from_update(found[0]), quiet=True)
        return self._records.get(rec.label, rec)

    async def _cancel(self, run: _LegRun, rec: OrderRecord) -> OrderRecord:
        """Cancel a resting order; the answer (or a query when the cancel fails) is applied."""
        clog = log.bind(
            decision_id=rec.decision_id, label=rec.label, venue_order_id=rec.venue_order_id
        )
        if rec.venue_order_id is None:
            return await self._refresh(run, rec)
        gate = self.trading.check(OrderKind.CANCEL, 0.0, 0.0, is_cancel=True)
        assert gate.allowed  # cancels always pass
        try:
            update = await self.venues[rec.venue].cancel_order(rec.venue_order_id)
        except Exception as exc:  # a VenueError, or the adapter failing on the answer
            clog.warning(
                "executor.cancel_failed",
                error=str(exc)[:200],
                error_type=type(exc).__name__,
                code=getattr(exc, "code", None),
            )
            return await self._refresh(run, rec)  # filled meanwhile, or the cancel got lost
        out = await self._apply(rec.label, query_result_from_update(update))
        clog.info("executor.cancelled", status=str(out.status), filled_amount=out.filled_amount)
        return out

    async def cancel_all_open(self, venue: str | None = None) -> int:
        """Cancel every open order this executor knows (HALTED, the operator's cancel-all,
        shutdown), or those of account `venue`; returns how many cancels were answered. An
        open order without a venue id (a send whose answer never came: UNKNOWN, or still on
        the wire) is looked up by its label first: it may rest on the venue all the same."""
        return len(await self._cancel_open(lambda rec: venue is None or rec.venue == venue))

    async def cancel_orders(
        self, why: str, *, venue: str | None = None, labels: Collection[str] = ()
    ) -> list[str]:
        """Cancel the open orders of account `venue` (the operator's flatten), or the orders
        named in `labels` and every open order of the legs that sent them (a decision's
        `cancel_labels`), as `cancel_all_open` does; returns the labels whose cancels were
        answered. The legs working them are stopped first, without an await: a stopped leg
        sends no further order (a maker leg would re-post at the touch, a sliced leg its next
        slice, a fallback its IOC), cancels an order whose send was still on the wire once its
        answer comes, and ends PARTIAL with `why`."""
        named = set(labels)
        stopped: set[str] = set()
        runs: list[_LegRun] = []
        for run in self._run_objs.values():
            if (venue is not None and run.leg.venue == venue) or named.intersection(run.labels):
                run.stopped = why
                runs.append(run)
        log.info(
            "executor.cancel_orders",
            why=why,
            venue=venue,
            labels=sorted(named),
            legs_stopped=len(runs),
        )
        # An order still on the wire may not be on the venue yet: its label's look-up finds
        # nothing, and it lands (an IOC fills) after this returned, after the flatten read
        # the positions. Its answer is waited for (the send's own timeout bounds it).
        for run in runs:
            await run.answered.wait()
            stopped.update(run.labels)
        wanted = named | stopped
        return await self._cancel_open(
            lambda rec: (venue is not None and rec.venue == venue) or rec.label in wanted
        )

    async def _cancel_open(self, select: Callable[[OrderRecord], bool]) -> list[str]:
        """Cancel the open orders `select` picks (see `cancel_all_open`); the labels whose
        cancels were answered."""
        done: list[str] = []
        for rec in list(self.open_records()):
            if rec.venue not in self.venues or not select(rec):
                continue
            if rec.venue_order_id is None:
                rec = await self._query_by_label(rec)
                if not rec.is_open or rec.venue_order_id is None:
                    continue  # not on the venue (yet): nothing to cancel
            try:
                update = await self.venues[rec.venue].cancel_order(rec.venue_order_id)
            except Exception as exc:  # a VenueError, or the adapter failing on the answer:
                # one order's trouble must not end the cancel-all before the others
                log.warning(
                    "executor.cancel_failed",
                    label=rec.label,
                    error=str(exc)[:200],
                    error_type=type(exc).__name__,
                )
                # Filled or cancelled meanwhile (a concurrent cancel-all): the venue's view.
                await self._query_by_label(rec)
                continue
            await self._apply(rec.label, query_result_from_update(update), quiet=True)
            done.append(rec.label)
        return done

    def stop_sending(self) -> None:
        """Shutdown's first step: from now on no order is sent (a journalled intent not yet
        on the wire is closed unsent, a running leg ends after the request it has in flight,
        a resting maker order is cancelled by its leg). Requests already sent still finish,
        so that `cancel_all_verified` afterwards sees every order that can rest."""
        self._stopping = True
        self._stop_event.set()

    async def _pause(self, ms: int) -> None:
        """A leg's wait between orders (`sleep_ms`), cut short by `stop_sending`: shutdown
        waits for the legs, and a leg that may send nothing more has nothing to wait for."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        waits = {
            asyncio.ensure_future(self.sleep_ms(ms)),
            loop.create_task(self._stop_event.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in waits:
                t.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def cancel_all_verified(self) -> tuple[int, list[str]]:
        """Shutdown's cancel-all, checked: cancel every open order with a venue id, then
        look up by label each open order without one (a send whose answer never came: it
        may rest on the venue) and cancel it if it does. Returns the cancels answered and
        the labels still open afterwards (for the start-up reconciliation to settle). The
        cancels of a halt's cancel-all already under way are waited for and counted."""
        # A halt's cancel-all under way: its cancels count, and ours must not race them.
        started = await asyncio.gather(*tuple(self._halt_tasks), return_exceptions=True)
        n = sum(x for x in started if isinstance(x, int))
        n += await self.cancel_all_open()  # those without a venue id: looked up by label
        left = [r.label for r in self.open_records() if r.venue in self.venues]
        return n, left

    async def flush(self) -> None:
        """Wait for the cancels started by a HALT and the fill repairs under way (shutdown,
        tests)."""
        while self._halt_tasks or self._repairs:
            await asyncio.gather(
                *tuple(self._halt_tasks), *tuple(self._repairs.values()), return_exceptions=True
            )

    # ----------------------------------------------------------------- fill repair

    def _stream_up(self, venue_name: str) -> bool:
        """Whether the venue's private stream (order updates, trades) is connected; a venue
        without one has no stream to wait for."""
        session = getattr(self.venues.get(venue_name), "session", None)
        connected = getattr(session, "connected", None)
        return isinstance(connected, asyncio.Event) and connected.is_set()

    def _schedule_repair(self, rec: OrderRecord) -> None:
        """Fetch `rec`'s trades in a task of its own (one per order at a time), so that
        neither the leg being worked nor the stream's reader waits for it."""
        if rec.label in self._repairs or rec.venue_order_id is None:
            return
        if not isinstance(self.venues.get(rec.venue), OrderFillsVenue):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.repair_fills(rec.label), name=f"fill-repair:{rec.label}")
        self._repairs[rec.label] = task
        task.add_done_callback(functools.partial(self._repair_done, rec.label))

    def _repair_done(self, label: str, task: asyncio.Task[int]) -> None:
        if self._repairs.get(label) is task:
            del self._repairs[label]
        if not task.cancelled() and task.exception() is not None:
            log.error("executor.fill_repair_crashed", label=label, error=repr(task.exception()))

    async def repair_fills(self, label: str) -> int:
        """Fetch the trades of order `label` when the venue reports more filled than the
        journal holds, and journal them (de-duplicated by trade id). Returns how many fills
        were new to the journal. Venue failures are logged: the reconciler is the backstop."""
        rec = self._records.get(label) or await self.journal.order(label)
        if rec is None or not rec.fills_missing or rec.venue_order_id is None:
            return 0
        venue = self.venues.get(rec.venue)
        if not isinstance(venue, OrderFillsVenue):
            return 0
        if self._stream_up(rec.venue) and self.settings.fill_repair_grace_ms > 0:
            await self.sleep_ms(self.settings.fill_repair_grace_ms)
            rec = self._records.get(label) or await self.journal.order(label) or rec
            if not rec.fills_missing or rec.venue_order_id is None:
                return 0  # the stream delivered them
        rlog = log.bind(decision_id=rec.decision_id, label=label, venue_order_id=rec.venue_order_id)
        try:
            fills = await venue.fetch_order_fills(rec.venue_order_id)
        except VenueError as exc:
            rlog.warning("executor.fill_repair_failed", error=str(exc)[:200])
            return 0
        new = 0
        for fill in fills:
            if fill.order_id and fill.order_id != rec.venue_order_id:
                continue  # not this order's (a venue answering loosely)
            outcome = await self.on_fill(fill)
            if outcome.duplicate or outcome.order is None:
                continue
            new += 1
            if self.on_fill_repaired is not None:
                try:
                    self.on_fill_repaired(fill)
                except Exception:
                    rlog.exception("executor.on_fill_repaired_failed", trade_id=fill.trade_id)
        self.fills_repaired += new
        after = self._records.get(label)
        rlog.info(
            "executor.fills_repaired",
            fetched=len(fills),
            new=new,
            filled_amount=after.filled_amount if after is not None else None,
            venue_filled_amount=rec.venue_filled_amount,
        )
        return new

    def _account_halt_listener(self, venue: str) -> Callable[[TradingStateSnapshot], None]:
        def on_state(snapshot: TradingStateSnapshot) -> None:
            if snapshot.state is not TradingState.HALTED:
                return
            if not any(r.venue == venue for r in self.open_records()):
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            log.warning("executor.account_halted_cancelling", venue=venue)
            task = loop.create_task(self.cancel_all_open(venue), name=f"cancel-on-halt:{venue}")
            self._halt_tasks.add(task)
            task.add_done_callback(self._halt_done)

        return on_state

    def _on_trading_state(self, snapshot: TradingStateSnapshot) -> None:
        if snapshot.state is not TradingState.HALTED or not self.open_records():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        log.warning("executor.halted_cancelling", open_orders=len(self.open_records()))
        task = loop.create_task(self.cancel_all_open(), name="executor-cancel-on-halt")
        self._halt_tasks.add(task)
        task.add_done_callback(self._halt_done)

    def _halt_done(self, task: asyncio.Task[int]) -> None:
        self._halt_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Orders may still rest on the venue: say so (the reconciliation, a cancel-all
            # or the next halt is what is left).
            log.error("executor.cancel_on_halt_failed", error=repr(task.exception())[:300])

    # ------------------------------------------------------------------- rate limits

    def _note_rate_limited(self, venue: str) -> None:
        self.rate_limited += 1
        streak = self._rl_streak.get(venue, 0)
        self._rl_streak[venue] = streak + 1
        delay = min(
            self.settings.rate_limit_max_ms, self.settings.rate_limit_initial_ms * 2**streak
        )
        self._rl_until_ms[venue] = max(self._rl_until_ms.get(venue, 0), self.clock_ms() + delay)

    async def _wait_rate_limit(self, venue_name: str) -> None:
        """Hold sends to a venue that rate-limited us: the backoff, then (Deribit ends the
        session on 10028) the venue's private session back up, re-authenticated."""
        until = self._rl_until_ms.get(venue_name, 0)
        wait = until - self.clock_ms()
        if wait > 0:
            log.info("executor.backoff", venue=venue_name, wait_ms=wait)
            await self.sleep_ms(wait)
        if self._rl_streak.get(venue_name, 0) > 0:
            session = getattr(self.venues[venue_name], "session", None)
            connected = getattr(session, "connected", None)
            if isinstance(connected, asyncio.Event) and not connected.is_set():
                try:
                    async with asyncio.timeout(self.settings.session_wait_s):
                        await connected.wait()
                    log.info(
                        "executor.session_back",
                        venue=venue_name,
                        connects=getattr(session, "connects", None),
                    )
                except TimeoutError:
                    log.warning("executor.session_still_down", venue=venue_name)

    # ------------------------------------------------------------------------ journal

    async def _apply(self, label: str, event: OrderEvent, *, quiet: bool = False) -> OrderRecord:
        before = self._records.get(label)
        out = await self.journal.apply_event(label, event)
        self._records[label] = out
        self._ledger.observe(out)
        if out.fills_missing:
            self._schedule_repair(out)
        if not quiet or before is None or out.status is not before.status:
            log.info(
                "executor.order",
                decision_id=out.decision_id,
                label=label,
                venue_order_id=out.venue_order_id,
                order_event=type(event).__name__,
                status=str(out.status),
                filled_amount=max(out.filled_amount, out.venue_filled_amount),
                amount=out.amount,
            )
        return out


def _touch(side: OrderSide, q: Quote) -> float:
    """Where a maker order joins the book: the best bid for a buy, the best ask for a sell."""
    return q.bid_price if side is OrderSide.BUY else q.ask_price


__all__ = [
    "DRILL_ENV",
    "DecisionResult",
    "Executor",
    "ExecutorSettings",
    "LegOutcome",
    "LegResult",
    "OrderFillsVenue",
    "OrderRejection",
    "OrderTiming",
    "leg_notional_usd",
    "leg_problem",
    "protected_price",
    "round_down",
    "round_price",
]
