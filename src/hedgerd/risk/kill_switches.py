"""Automatic kill switches: small monitors that judge what they are shown, and the board that
turns their trips into trading-state changes, log lines, metrics and alerts.

Each switch is a plain object with pure methods: time is an argument (`now_ms`, UTC epoch ms,
the local clock unless said otherwise), nothing reads a clock or does I/O. A switch returns a
`Trip` (reason code, the state it asks for, a detail and the numbers behind it) or None.
`KillSwitchBoard` holds one of each, feeds every trip to `TradingStateMachine.trip_nowait`
(the state tightens before the call returns), logs `kill_switch_tripped` with the code and the
numbers, and hands the trip to the alert hook; the trading-state listener it installs keeps the
`kill_switch_*` and `trading_state*` metrics current.

Thresholds (see `hedgerd.risk.limits`): a measured level trips when it *reaches* its limit
(`>=`); a budget (`max_*`) may be used in full and the order that would *exceed* it is refused.

Who calls what (the daemon wires it):

- venue streams, on every update: `on_data(venue, feed, ts_ms)` (stale data, judged in `tick`);
- venue connection changes: `on_connection(venue, connected, now_ms)` (judged in `tick`);
- a timer, about every second: `tick(now_ms)` (stale data, venue disconnected, delta-limit
  duration);
- reconciliation: `on_reconciliation(now_ms, venue, diffs)` (position mismatch);
- venue Greeks against the book: `on_greeks(now_ms, venue, underlying, ours, venue's)`;
- the book, per update: `on_delta(now_ms, underlying, delta_coin, index_usd)`, and the
  executor per hedge sent: `on_hedge_sent(underlying)` (delta limit after K attempts);
- the executor, per venue answer: `on_order_outcome(now_ms, accepted, detail, venue)` (reject
  streak, per venue account);
- market data, per price: `on_price(now_ms, source, price_usd, reference)` (price sanity: the
  caller drops a refused price);
- a P&L timer: `await check_daily_loss(journal, now_ms, instruments, marks, index)`, or
  `on_daily_pnl(now_ms, hedge_pnl_usd(...))` (daily loss; unknown P&L halts);
- account updates: `on_margin(now_ms, MarginInputs(...))` (margin);
- venue messages carrying server time: `on_clock(now_ms, venue, venue_time_ms, rtt_ms)`, or
  `on_clock_skew(now_ms, venue, clock_skew_ms_ntp(...))` from Deribit's `usIn`/`usOut`;
- the pre-trade check, once per leg before it is executed: `check_order(...) -> OrderCheck`
  (price band, order notional, trading-state gate, order and notional rates: the leg's first
  order and its whole notional); the executor, right before each later order of the leg:
  `check_next_order(...)` (the order-rate budgets count every order sent);
- at start, after the trading state is restored: `await restore_rates(journal, now_ms)` (so a
  restart does not reset the rate budgets) and `register_feed` / `register_venue` for every
  subscription (a feed that never delivers then counts as stale).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from hedgerd.execution.journal import Journal, JournalStore
from hedgerd.execution.order_state import Cancelled, event_name
from hedgerd.model.instruments import AmountUnit, Instrument
from hedgerd.model.orders import OrderStatus
from hedgerd.ops.metrics import Metrics
from hedgerd.risk.account_state import LINK_CODES, AccountStates
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.monitors import (
    POSITION_FEEDS,
    ClockSkewSwitch,
    DeltaLimitSwitch,
    FeedKind,
    GreeksDivergenceSwitch,
    MarginInputs,
    MarginSwitch,
    OrderNotionalSwitch,
    PositionDiff,
    PositionMismatchSwitch,
    RateSwitch,
    RejectStreakSwitch,
    StaleDataSwitch,
    VenueDisconnectedSwitch,
    clock_skew_ms,
    clock_skew_ms_ntp,
)
from hedgerd.risk.pnl import (
    CarriedPosition,
    DailyLossSwitch,
    PnlEstimate,
    day_start_ms,
    hedge_pnl_usd,
)
from hedgerd.risk.sanity import GapWitness, PriceSanitySwitch, PriceVerdict
from hedgerd.risk.trading_state import (
    AUTO_ACTOR,
    LINK_ACTOR,
    OrderKind,
    ReasonCode,
    TradingState,
    TradingStateMachine,
    TradingStateSnapshot,
)
from hedgerd.risk.trips import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    Number,
    OrderCheck,
    SlidingWindow,
    Trip,
    finite,
)

log = structlog.get_logger(__name__)


# -------------------------------------------------------------------------------- board


class AlertHook(Protocol):
    """Where the board sends trips (`hedgerd.risk.alerts.AlertDispatcher` is one). `notify`
    must not block or raise."""

    def notify_trip(self, trip: Trip, ts_ms: int) -> None: ...

    def notify_text(self, kind: str, detail: str, ts_ms: int = 0) -> bool: ...


class KillSwitchBoard:
    """Every kill switch, wired to the trading state machine, the log, the metrics and the
    alert hook. All methods are synchronous and cheap; call them on the event loop (a trip's
    journal write is scheduled there; `flush()` waits for it)."""

    def __init__(
        self,
        settings: KillSwitchSettings,
        machine: TradingStateMachine,
        *,
        alerts: AlertHook | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.machine = machine
        self.alerts = alerts
        self.metrics = metrics
        self.stale = StaleDataSwitch(settings.stale_data)
        self.disconnected = VenueDisconnectedSwitch(settings.venue_disconnected)
        self.mismatch = PositionMismatchSwitch(settings.position_mismatch)
        self.divergence = GreeksDivergenceSwitch(settings.greeks_divergence)
        self.delta = DeltaLimitSwitch(settings.delta_limit)
        self.rejects = RejectStreakSwitch(settings.reject_streak)
        self.rates = RateSwitch(settings.order_rate, settings.notional_rate)
        self.order_notional = OrderNotionalSwitch(settings.order_notional)
        self.prices = PriceSanitySwitch(settings.price_sanity)
        self.daily_loss = DailyLossSwitch(settings.daily_loss)
        self.margin = MarginSwitch(settings.margin)
        self.clock = ClockSkewSwitch(settings.clock_skew)
        # Sources whose last price was refused: log the change, not every bad tick.
        self._quarantined: dict[str, int] = {}
        self._state = machine.snapshot.state
        #: Per-account states (set by the daemon): account switches then trip the account
        #: they name (`AccountStates.machine_for`); None: every trip trips `machine`.
        self.accounts: AccountStates | None = None
        #: Per account: since when its link has been healthy (`link_healthy`), board ms.
        self._healthy_since: dict[str, int] = {}
        #: Per venue: the stale-data switch's update count when its streams last came up
        #: (`StaleDataSwitch.updates`): data since then is what `link_healthy` asks for.
        self._up_at_update: dict[str, int] = {}
        machine.add_listener(self._on_state)
        if metrics is not None:
            machine.add_listener(self._export_state)
            self._export_state(machine.snapshot)

    def reconfigure(self, settings: KillSwitchSettings) -> None:
        """New limits (SIGHUP reload). What the switches have seen is kept: feed ages,
        disconnection times, breaches, streaks and the rate windows; a condition that now
        crosses a lower limit trips at its next check."""
        self.settings = settings
        self.stale.settings = settings.stale_data
        self.disconnected.settings = settings.venue_disconnected
        self.mismatch.settings = settings.position_mismatch
        self.divergence.settings = settings.greeks_divergence
        self.delta.settings = settings.delta_limit
        self.rejects.settings = settings.reject_streak
        self.rates.reconfigure(settings.order_rate, settings.notional_rate)
        self.order_notional.settings = settings.order_notional
        self.prices.settings = settings.price_sanity
        self.daily_loss.settings = settings.daily_loss
        self.margin.settings = settings.margin
        self.clock.settings = settings.clock_skew
        log.info("kill_switches_reconfigured")

    def _on_state(self, snapshot: TradingStateSnapshot) -> None:
        """Back to ACTIVE: the delta limit's breaches start over (see `DeltaLimitSwitch`)."""
        if snapshot.state is TradingState.ACTIVE and self._state is not TradingState.ACTIVE:
            self.delta.restart()
        self._state = snapshot.state

    def _export_state(self, snapshot: TradingStateSnapshot) -> None:
        assert self.metrics is not None
        self.metrics.set_trading_state(snapshot.state, [c.value for c in snapshot.reason_codes])

    # ------------------------------------------------------------------ applying trips

    def apply(self, trip: Trip | None, now_ms: int) -> bool:
        """Feed a trip to the state machine; log and alert when it changed the state or its
        reasons (a condition that persists does not log again until it trips anew, e.g. after
        an operator's resume). Returns whether anything changed."""
        if trip is None:
            return False
        machine = self.machine
        account = trip.values.get("venue")
        if self.accounts is not None:
            machine = self.accounts.machine_for(trip.code, str(account) if account else None)
        # An account's own link condition clears by itself (`recover_links`); with one
        # account the portfolio's trip latches, as every other trip does.
        link = machine is not self.machine and trip.code in LINK_CODES
        had = machine.link_codes()
        changed = machine.trip_nowait(
            trip.code, trip.detail, state=trip.state, actor=LINK_ACTOR if link else AUTO_ACTOR
        )
        if changed:
            if link and not had and self.metrics is not None:
                self._metric(self.metrics.record_link_transition, str(account), False)
            log.warning(
                "kill_switch_tripped",
                scope="portfolio" if machine is self.machine else f"account:{account}",
                self_clearing=link,
                code=trip.code.value,
                state=trip.state.value,
                detail=trip.detail,
                **{
                    k: v
                    for k, v in trip.values.items()
                    if k not in ("event", "code", "state", "detail")
                },
            )
            if self.alerts is not None:
                try:
                    self.alerts.notify_trip(trip, now_ms)
                except Exception:  # an alert problem must never reach trading
                    log.exception("alert_hook_failed", code=trip.code.value)
        return changed

    def _apply_all(self, now_ms: int, trips: Iterable[Trip | None]) -> tuple[Trip, ...]:
        fired = tuple(t for t in trips if t is not None)
        for trip in fired:
            self.apply(trip, now_ms)
        return fired

    async def flush(self) -> None:
        """Wait until every trip so far is in the journal."""
        await self.machine.flush()

    # ------------------------------------------------------------------------- feeds

    def register_feed(
        self, venue: str, feed: str, now_ms: int, kind: FeedKind | None = None
    ) -> None:
        self.stale.register(venue, feed, now_ms, kind)

    def register_venue(self, venue: str, now_ms: int) -> None:
        self.disconnected.register(venue, now_ms)

    def on_data(self, venue: str, feed: str, ts_ms: int, kind: FeedKind | None = None) -> None:
        """An update on a feed stamped `ts_ms` (see `StaleDataSwitch.observe`; judged in
        `tick`)."""
        self.stale.observe(venue, feed, ts_ms, kind)

    def _metric(self, fn: Callable[..., None], *args: object) -> None:
        # A metric that cannot be exported (e.g. a label it refuses) must never stop a switch.
        try:
            fn(*args)
        except Exception as exc:
            log.warning("kill_switch_metric_failed", metric=fn.__name__, error=repr(exc))

    def on_connection(self, venue: str, connected: bool, now_ms: int) -> None:
        if connected and self.disconnected.up_since_ms(venue) is None:
            self._up_at_update[venue] = self.stale.updates  # (re)connected: from now on
        self.disconnected.observe(venue, connected, now_ms)
        if self.metrics is not None:
            self._metric(self.metrics.set_venue_connected, venue, connected)

    def tick(self, now_ms: int) -> tuple[Trip, ...]:
        """The time-driven checks: stale data, venue disconnected, delta-limit duration."""
        # Each venue's worst stale feed and its disconnection: with several accounts each
        # trips its own account, so one account's trip must not hide another's.
        fired = self._apply_all(
            now_ms,
            (
                *self.stale.evaluate_each(now_ms),
                *self.disconnected.evaluate_each(now_ms),
                self.delta.evaluate(now_ms),
            ),
        )
        if self.metrics is not None:
            for (venue, feed), age in self.stale.ages_s(now_ms).items():
                self._metric(self.metrics.set_data_age, venue, feed, age)
        self.recover_links(now_ms)
        return fired

    def link_healthy(self, venue: str, now_ms: int) -> bool:
        """Whether account `venue`'s link is healthy now: every stream connected, and data
        flowing since that connection (`StaleDataSwitch.fresh_since`: a reconnect whose
        subscription failed is not healthy), counted by updates processed after it, not by
        their stamps alone (between two drops, the last update before the second one can
        carry a stamp at or after its reconnection)."""
        up = self.disconnected.up_since_ms(venue)
        if up is None:
            return False
        return self.stale.fresh_since(venue, up, now_ms, self._up_at_update.get(venue))

    def recover_links(self, now_ms: int) -> tuple[str, ...]:
        """Clear each account's self-clearing link trips (stale data, disconnection) once its
        link has been healthy for `link_recover_after_s` without a break: the account rejoins
        routing. Logged, journalled (the account's state record), counted and alerted.
        Returns the accounts that recovered."""
        if self.accounts is None or not self.accounts.per_account:
            return ()
        hold_ms = self.settings.link_recover_after_s * 1000.0
        out: list[str] = []
        for name, machine in self.accounts.accounts.items():
            if not self.link_healthy(name, now_ms):
                self._healthy_since.pop(name, None)
                continue
            up = self.disconnected.up_since_ms(name)
            assert up is not None  # healthy
            # A drop and reconnect between two ticks restarts the hold at the reconnection.
            since = self._healthy_since[name] = max(self._healthy_since.get(name, now_ms), up)
            if not machine.link_codes() or now_ms - since < hold_ms:
                continue
            held_s = (now_ms - since) / 1000.0
            detail = f"{name} link healthy for {held_s:.1f} s: back in routing"
            previous = machine.state
            cleared = machine.clear_link_nowait(detail)
            if not cleared:
                continue
            out.append(name)
            log.warning(
                "account_link_recovered",
                scope=f"account:{name}",
                venue=name,
                cleared=sorted(c.value for c in cleared),
                previous=previous.value,
                state=machine.state.value,
                healthy_s=round(held_s, 3),
            )
            if self.metrics is not None:
                self._metric(self.metrics.record_link_transition, name, True)
            if self.alerts is not None:
                try:
                    self.alerts.notify_text("account_link_recovered", detail, now_ms)
                except Exception:  # an alert problem must never reach trading
                    log.exception("alert_hook_failed", code="account_link_recovered")
        return tuple(out)

    def on_reconciliation(
        self, now_ms: int, venue: str, diffs: Sequence[PositionDiff]
    ) -> Trip | None:
        trip = self.mismatch.observe(now_ms, venue, diffs)
        self.apply(trip, now_ms)
        return trip

    def on_greeks(
        self,
        now_ms: int,
        venue: str,
        underlying: str,
        ours_delta_coin: float,
        venue_delta_coin: float,
    ) -> Trip | None:
        trip = self.divergence.observe(now_ms, venue, underlying, ours_delta_coin, venue_delta_coin)
        self.apply(trip, now_ms)
        gap = ours_delta_coin - venue_delta_coin
        if self.metrics is not None and finite(gap):
            self._metric(self.metrics.set_delta_divergence, venue, underlying, gap)
        return trip

    def on_delta(
        self, now_ms: int, underlying: str, delta_coin: float, index_price_usd: float
    ) -> Trip | None:
        trip = self.delta.observe(now_ms, underlying, delta_coin, index_price_usd)
        self.apply(trip, now_ms)
        return trip

    def on_hedge_sent(self, underlying: str) -> None:
        self.delta.on_hedge_sent(underlying)

    def on_order_outcome(
        self, now_ms: int, accepted: bool, detail: str = "", venue: str = ""
    ) -> Trip | None:
        """A venue's answer to an order of account `venue` ("": not said; one streak)."""
        trip = self.rejects.observe(now_ms, accepted, detail, venue)
        self.apply(trip, now_ms)
        return trip

    def on_price(
        self,
        now_ms: int,
        source: str,
        price_usd: float,
        reference_price_usd: float | None = None,
        reference_horizon_years: float | None = None,
        witness: GapWitness | None = None,
    ) -> PriceVerdict:
        """Judge a market price before anything uses it: a refused price must be dropped
        (quarantined) by the caller. `reference_horizon_years`: the price is a forward that
        far out from its reference; `witness`: which independent feed of which underlying it
        is, so that a gap other feeds confirm is accepted (see `PriceSanitySwitch.observe`)."""
        verdict = self.prices.observe(
            now_ms, source, price_usd, reference_price_usd, reference_horizon_years, witness
        )
        self._note_quarantine("price", source, verdict)
        self.apply(verdict.trip, now_ms)
        return verdict

    def on_vol(self, now_ms: int, source: str, vol: float) -> bool:
        """Judge an option's mark IV before the book takes it (no trip: a refused IV is
        dropped by the caller, and the book keeps the last good one)."""
        verdict = self.prices.observe_vol(now_ms, source, vol)
        self._note_quarantine("vol", source, verdict)
        return verdict.accepted

    def _note_quarantine(self, what: str, source: str, verdict: PriceVerdict) -> None:
        """Count refusals per source; log the first of a run (`{what}_quarantined`) and the
        acceptance that ends it (`{what}_accepted_again`, with how many were refused)."""
        if not verdict.accepted:
            if source not in self._quarantined:
                log.warning(f"{what}_quarantined", source=source, reason=verdict.reason)
            self._quarantined[source] = self._quarantined.get(source, 0) + 1
        elif source in self._quarantined:
            refused = self._quarantined.pop(source)
            log.info(f"{what}_accepted_again", source=source, refused=refused)

    def on_daily_pnl(self, now_ms: int, estimate: PnlEstimate) -> Trip | None:
        trip = self.daily_loss.observe(now_ms, estimate.pnl_usd, ",".join(estimate.missing))
        self.apply(trip, now_ms)
        return trip

    async def check_daily_loss(
        self,
        journal: Journal,
        now_ms: int,
        instruments: Mapping[str, Instrument],
        marks_usd: Mapping[str, float],
        index_usd: Mapping[str, float],
        carried: Iterable[CarriedPosition] = (),
    ) -> PnlEstimate:
        """Compute the day's hedge P&L from the journal's fills since the day's start (see
        `hedge_pnl_usd`) and judge it. `carried`: hedge positions held at the day's start with
        their marks then (the daemon snapshots them at the day boundary; without them only the
        day's trades count)."""
        since = day_start_ms(now_ms, self.settings.daily_loss.day_start_hour_utc)
        fills = await journal.fills_since(since)
        estimate = hedge_pnl_usd(fills, instruments, marks_usd, index_usd, carried)
        self.on_daily_pnl(now_ms, estimate)
        return estimate

    def on_margin(self, now_ms: int, inputs: MarginInputs) -> Trip | None:
        trip = self.margin.observe(now_ms, inputs)
        self.apply(trip, now_ms)
        return trip

    def on_clock(
        self, now_ms: int, venue: str, venue_time_ms: float, rtt_ms: float | None = None
    ) -> Trip | None:
        """A venue message stamped `venue_time_ms` (Deribit `usOut` / 1000) received at
        `now_ms`; `rtt_ms` the round trip when known."""
        trip = self.clock.observe(now_ms, venue, venue_time_ms, rtt_ms)
        self.apply(trip, now_ms)
        return trip

    def on_clock_skew(self, now_ms: int, venue: str, skew_ms: float) -> Trip | None:
        """A skew measured by the caller (`clock_skew_ms_ntp`), local minus venue, ms."""
        trip = self.clock.observe_skew(now_ms, venue, skew_ms)
        self.apply(trip, now_ms)
        return trip

    # --------------------------------------------------------------------- pre-trade

    def check_order(
        self,
        *,
        now_ms: int,
        notional_usd: float,
        price_usd: float,
        reference_price_usd: float,
        delta_before_coin: float,
        delta_after_coin: float,
        kind: OrderKind = OrderKind.NEW,
        added_notional_usd: float | None = None,
        is_operator_flatten: bool = False,
    ) -> OrderCheck:
        """May this order be sent now? The executor calls this right before sending; an
        allowed order is counted in the rate windows at once (so two orders checked back to
        back cannot both take the last slot).

        `notional_usd`: the order's notional (for an amendment: as amended), USD.
        `added_notional_usd`: what the order adds to the notional budgets when that is not
        `notional_usd` (an amendment: the increase, 0 for a re-price), USD. `price_usd`: its
        limit price (for a market order: the price it is expected to fill near), and
        `reference_price_usd` the mark or index it is judged against, both USD per coin. The
        deltas, coin, as for `TradingStateMachine.check`.

        Order: a cancel always passes; then the price (NaN, non-positive, outside the band)
        and the order's notional, which are refused and trip in every state, even for the
        operator's flatten; then the trading-state gate; then the rate and notional budgets
        (the operator's flatten is counted but never refused by them).
        """
        if kind is OrderKind.CANCEL:
            return OrderCheck(True, "cancel: always allowed")
        budget_usd = notional_usd if added_notional_usd is None else added_notional_usd
        if not (finite(notional_usd) and notional_usd >= 0 and finite(budget_usd)):
            trip = Trip(
                ReasonCode.ORDER_NOTIONAL,
                self.settings.order_notional.trip_state,
                f"order notional {notional_usd} is not a number >= 0",
                {"order_notional_usd": str(notional_usd)},
            )
            self.apply(trip, now_ms)
            return OrderCheck(False, trip.detail, trip.code)
        verdict = self.prices.check_order_price(price_usd, reference_price_usd)
        if not verdict.accepted:
            self.apply(verdict.trip, now_ms)
            return OrderCheck(False, verdict.reason, ReasonCode.PRICE_SANITY)
        too_big = self.order_notional.check(notional_usd)
        if too_big is not None:
            self.apply(too_big, now_ms)
            return OrderCheck(False, too_big.detail, too_big.code)
        gate = self.machine.check(
            kind, delta_before_coin, delta_after_coin, is_operator_flatten=is_operator_flatten
        )
        if not gate.allowed:
            return OrderCheck(False, gate.reason, None)
        if not is_operator_flatten:
            over = self.rates.check(now_ms, max(0.0, budget_usd))
            if over is not None:
                self.apply(over, now_ms)
                return OrderCheck(False, over.detail, over.code)
        self.rates.record(now_ms, max(0.0, budget_usd))
        return OrderCheck(True, gate.reason)

    def check_next_order(self, now_ms: int, *, is_operator_flatten: bool = False) -> OrderCheck:
        """May a leg send one more order (a slice, a maker re-quote, a retry, the taker
        fallback)? The leg's first order passed `check_order`, which counted the leg's whole
        notional; this counts the order itself, so the order-rate budgets see every order on
        the wire. The executor calls it right before each such send. One that would exceed a
        budget is refused and trips, as in `check_order` (the operator's flatten: counted,
        never refused)."""
        if not is_operator_flatten:
            over = self.rates.check_orders(now_ms)
            if over is not None:
                self.apply(over, now_ms)
                return OrderCheck(False, over.detail, over.code)
        self.rates.record(now_ms, 0.0)
        return OrderCheck(True, "within the order budgets")

    # ----------------------------------------------------------------------- restart

    async def restore_rates(self, journal: Journal, now_ms: int) -> int:
        """Count the orders hedgerd sent in the last day (from the journal) in the rate
        windows, so a restart does not reset the budgets. An intent closed unsent (refused by
        the order budget, halted, stopped or expired before its send, a dry run) is not
        counted: it never reached the wire, and the running daemon did not count it either;
        every other intent is, an unknown send outcome included (money-safe: it may have
        gone). An order's notional is its amount when sized in USD, amount × limit price when
        sized in coin with a limit, else (unknown) the largest allowed order notional. Returns
        the number of orders counted."""
        rows = await journal.run(orders_sent_since, now_ms - DAY_MS)
        cap = self.settings.order_notional.max_order_notional_usd
        for row in rows:
            if row.amount_unit == AmountUnit.USD.value:
                notional = row.amount
            elif row.limit_price is not None and row.limit_price > 0:
                notional = row.amount * row.limit_price
            else:
                notional = cap
            self.rates.record(row.created_ms, notional)
        log.info("kill_switch_rates_restored", orders=len(rows))
        return len(rows)


#: `Cancelled` applied to a NEW order: the order state machine's "never sent" (the
#: executor's only way to close an intent it did not send; an in-doubt intent becomes UNKNOWN
#: at a restart instead, and stays counted).
_CLOSED_UNSENT_EVENT = event_name(Cancelled(0))


@dataclass(frozen=True, slots=True)
class SentOrder:
    """One of hedgerd's orders that may have reached the wire, as the order-rate budgets
    count it: created at `created_ms` (UTC ms) on account `venue`; `amount` in `amount_unit`,
    `limit_price` in the instrument's price unit (None: none)."""

    label: str
    venue: str
    style: str
    created_ms: int
    amount: float
    amount_unit: str
    limit_price: float | None


def orders_sent_since(store: JournalStore, since_ms: int) -> list[SentOrder]:
    """hedgerd's orders created after `since_ms`, oldest first, but those closed unsent
    (`restore_rates`; `scripts/order_rate.py` measures a run's rate with the same count)."""
    return [
        SentOrder(
            label=str(r["label"]),
            venue=str(r["venue"]),
            style=str(r["style"]),
            created_ms=int(r["created_ms"]),
            amount=float(r["amount"]),
            amount_unit=str(r["amount_unit"]),
            limit_price=None if r["limit_price"] is None else float(r["limit_price"]),
        )
        for r in store.iter_rows(
            "SELECT label, venue, style, created_ms, amount, amount_unit, limit_price "
            "FROM orders o WHERE created_ms > ? AND decision_id IS NOT NULL AND NOT EXISTS ("
            "SELECT 1 FROM order_updates u WHERE u.label = o.label AND u.event = ? "
            "AND u.status_before = ?) ORDER BY created_ms, label",
            (since_ms, _CLOSED_UNSENT_EVENT, OrderStatus.NEW.value),
        )
    ]


__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "POSITION_FEEDS",
    "AlertHook",
    "CarriedPosition",
    "ClockSkewSwitch",
    "DailyLossSwitch",
    "DeltaLimitSwitch",
    "FeedKind",
    "GreeksDivergenceSwitch",
    "KillSwitchBoard",
    "MarginInputs",
    "MarginSwitch",
    "Number",
    "OrderCheck",
    "OrderNotionalSwitch",
    "PnlEstimate",
    "PositionDiff",
    "PositionMismatchSwitch",
    "PriceSanitySwitch",
    "PriceVerdict",
    "RateSwitch",
    "RejectStreakSwitch",
    "SentOrder",
    "SlidingWindow",
    "StaleDataSwitch",
    "Trip",
    "VenueDisconnectedSwitch",
    "clock_skew_ms",
    "clock_skew_ms_ntp",
    "day_start_ms",
    "hedge_pnl_usd",
    "orders_sent_since",
]
