"""The hedge loop: every `daemon.evaluate_interval_s` of the daemon's clock, per underlying,
book snapshot -> `UnderlyingRisk` + the hedge instruments' `HedgeVenueState`s -> `decide` ->
kill-switch pre-trade checks per leg -> `executor.execute` as a task (the next evaluation
sees its in-flight delta) -> `after`.

Portfolio-wide: the candidates are the hedge instruments of every hedge account (one today),
and the orders it dispatches are tracked here until they end (`exec_tasks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog

from hedgerd.book.greeks_book import BookError, UnderlyingGreeks
from hedgerd.execution.executor import DecisionResult, ExecutorSettings, LegOutcome
from hedgerd.hedging.adapter import underlying_risk
from hedgerd.hedging.controller import after, decide, should_log
from hedgerd.hedging.inputs import HedgeVenueState, InFlightOrder, PolicyState
from hedgerd.model import AmountUnit, HedgeDecision, HedgeLeg, HedgeStyle, PriceUnit
from hedgerd.portfolio.policies import PolicyBook
from hedgerd.portfolio.scope import PortfolioScope, PortfolioService
from hedgerd.portfolio.stats import HedgeObserver, UnderlyingStats
from hedgerd.venues.base import VenueError

log = structlog.get_logger(__name__)

#: Wall seconds a filled hedge may take to show in the position stream before the book's
#: figure is believed again (the reconciliation corrects either way).
_UNCONFIRMED_TIMEOUT_S = 3.0
#: The order book depth fetched for a trade covers the trade's notional this many times over
#: (the index is not the instrument's price, and the router's walk stops once the need is
#: covered, so the extra costs nothing). The router sizes a taker trade through the levels
#: it is shown: a snapshot cut at a fixed notional capped every hedge at that notional
#: (250,000 USD, about 2.8 BTC), so a price gap's breach of the delta limit took more hedge
#: attempts than the switch allows (issue 19).
_DEPTH_HEADROOM = 1.25


class HedgeLoop(PortfolioService):
    """The controller pass over every underlying, and the executions it starts.

    `reload_requested`/`reload`: SIGHUP's flag, and what reloads the config at the next pass."""

    def __init__(
        self,
        scope: PortfolioScope,
        policies: PolicyBook,
        *,
        observer: HedgeObserver | None,
        reload_requested: asyncio.Event,
        reload: Callable[[], object],
    ) -> None:
        super().__init__(scope)
        self.policies = policies
        self.observer = observer
        self._reload_requested = reload_requested
        self._reload = reload
        self._policy_state: dict[str, PolicyState] = {u: PolicyState() for u in self.underlyings}
        self.exec_tasks: set[asyncio.Task[None]] = set()
        #: Net delta (coin) per underlying at the last evaluation: the executor's risk gate.
        self._book_delta: dict[str, float] = {}
        #: Hedge positions expected once the book sees this process's fills (instrument ->
        #: (amount in its unit, wall deadline s)): a fill answered over the order session can
        #: arrive before the position stream says so; until then it still counts in flight.
        self._expected_pos: dict[str, tuple[float, float]] = {}

    async def run(self) -> None:
        interval = self.config.daemon.evaluate_interval_s
        while True:
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()
            for u in self.underlyings:
                await self.evaluate(u)
            await self.clocks.sleep_daemon_s(interval)

    def book_delta_coin(self, underlying: str) -> float:
        return self._book_delta.get(underlying, math.nan)

    async def hedge_states(self, underlying: str) -> list[HedgeVenueState]:
        assert self.account.venue is not None and self.account.feed is not None
        out: list[HedgeVenueState] = []
        for name in self.config.daemon.hedge_instruments.get(underlying, ()):
            inst = self.account.venue.instruments().get(name)
            if inst is None:
                continue
            quote = self.account.market.fresh_quote(self.account.name, name)
            if quote is None:
                try:
                    quote = await self.account.venue.fetch_quote(name)
                except VenueError as exc:
                    log.warning("daemon.quote_unavailable", instrument=name, error=str(exc)[:200])
                    continue
                self.account.market.quotes[name] = quote
            per_amount = 1.0 / quote.mid_price if inst.amount_unit is AmountUnit.USD else 1.0
            pos = self.account.feed.positions.get(name)
            out.append(
                HedgeVenueState(
                    instrument=inst,
                    quote=quote,
                    delta_coin_per_amount=per_amount,
                    position_amount=pos.amount if pos is not None else 0.0,
                )
            )
        return out

    def _unconfirmed(self, venues: list[HedgeVenueState], now_ms: int) -> list[InFlightOrder]:
        """Fills of this process not yet in the book's positions, as in-flight orders."""
        out: list[InFlightOrder] = []
        for v in venues:
            entry = self._expected_pos.get(v.name)
            if entry is None:
                continue
            expected, deadline_s = entry
            missing = expected - v.position_amount
            if abs(missing) < 0.5 * v.instrument.amount_step or time.monotonic() > deadline_s:
                del self._expected_pos[v.name]
                continue
            out.append(
                InFlightOrder(
                    v.venue,
                    v.name,
                    f"unconfirmed:{v.name}",
                    missing * v.delta_coin_per_amount,
                    HedgeStyle.TAKER,
                    now_ms,
                )
            )
        return out

    def _depth_usd(self, decision: HedgeDecision, spot_usd: float) -> float:
        """USD notional of book depth to fetch per side for `decision`: the configured depth,
        or the decision's whole wanted trade (`_DEPTH_HEADROOM` times over) when larger."""
        floor = self.account.settings.depth_notional_usd
        need = abs(decision.wanted_coin) * spot_usd * _DEPTH_HEADROOM
        return max(floor, need) if math.isfinite(need) else floor

    async def _with_books(
        self, venues: list[HedgeVenueState], depth_usd: float
    ) -> list[HedgeVenueState]:
        """`venues` with `depth_usd` of order book depth per side, USD notional (the same list
        when a fetch fails)."""
        assert self.account.venue is not None
        out: list[HedgeVenueState] = []
        for v in venues:
            try:
                book = await self.account.venue.fetch_order_book(v.name, depth_usd)
            except VenueError as exc:
                log.warning("daemon.book_unavailable", instrument=v.name, error=str(exc)[:200])
                return venues
            out.append(replace(v, book=book))
        return out

    async def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One evaluation of one underlying; returns the decision (None when the inputs were
        refused)."""
        assert (
            self.account.book is not None
            and self.shared.executor is not None
            and self.shared.board is not None
        )
        st = self.stats.per_underlying[underlying]
        now = self.clocks.clock_ms()
        numeraire = self.config.numeraire
        try:
            snap = self.account.book.underlying_snapshot(underlying, now)
        except BookError as exc:
            st.skipped_incomplete += 1
            if st.skipped_incomplete % 100 == 1:
                log.info("daemon.no_book", underlying=underlying, error=str(exc))
            return None
        st.last_greeks = snap
        if not snap.complete:
            st.skipped_incomplete += 1
            if st.skipped_incomplete % 100 == 1:
                log.warning(
                    "daemon.book_incomplete",
                    underlying=underlying,
                    quarantined=[q.instrument for q in snap.quarantined][:5],
                )
            return None
        try:
            risk = underlying_risk(snap, now, numeraire)
        except ValueError as exc:
            st.skipped_incomplete += 1
            log.warning("daemon.risk_refused", underlying=underlying, error=str(exc))
            return None
        self._book_delta[underlying] = risk.net_delta_coin
        venues = await self.hedge_states(underlying)
        if not venues:
            return None
        policy_name, policy = self.policies.policy_for(underlying)
        in_flight = self.shared.executor.in_flight_orders(underlying) + self._unconfirmed(
            venues, now
        )
        state = self._policy_state[underlying]

        def decide_on(v: Sequence[HedgeVenueState]) -> HedgeDecision:
            return decide(
                risk,
                v,
                in_flight,
                policy_name,
                policy,
                state,
                now,
                self.policies.hedging.cost,
                self.policies.hedging.router,
            )

        decision = decide_on(venues)
        if decision.trades:
            # Only a trade needs depth (the router sizes and prices through the book): fetch
            # it then, not on every evaluation, and decide again with it. Deep enough for the
            # whole trade: the router cannot route more than the levels it is shown.
            deep = await self._with_books(venues, self._depth_usd(decision, risk.spot_usd))
            if deep is not venues:
                decision = decide_on(deep)
        self._observe(underlying, st, snap, decision)
        self.shared.board.on_delta(
            self.clocks.board_clock_ms(), underlying, decision.book_delta_coin, risk.spot_usd
        )
        if should_log(decision, self.config.daemon.hold_log_sample_rate):
            log.info(
                "daemon.decision",
                decision_id=decision.decision_id,
                underlying=underlying,
                policy=policy_name,
                trigger=str(decision.trigger),
                net_delta_coin=round(decision.net_delta_coin, 6),
                band_lower_coin=round(decision.band_lower_coin, 6),
                band_upper_coin=round(decision.band_upper_coin, 6),
                legs=len(decision.legs),
                delta_after_coin=round(decision.delta_after_coin, 6),
                expected_cost_usd=round(decision.expected_cost_usd, 4),
            )
        if decision.trades and self.shared.trading is not None:
            legs = self._pre_trade(decision)
            if legs:
                self._dispatch(
                    decision if len(legs) == len(decision.legs) else _with_legs(decision, legs)
                )
                self._policy_state[underlying] = after(
                    self._policy_state[underlying], decision, risk.spot_usd
                )
        return decision

    def _observe(
        self, underlying: str, st: UnderlyingStats, snap: UnderlyingGreeks, d: HedgeDecision
    ) -> None:
        self.stats.evaluations += 1
        st.samples += 1
        net = d.net_delta_coin
        if d.band_lower_coin - 1e-9 <= net <= d.band_upper_coin + 1e-9:
            st.in_band_samples += 1
        st.max_abs_delta_coin = max(st.max_abs_delta_coin, abs(net))
        st.last_delta_coin = net
        st.last_band = (d.band_lower_coin, d.target_delta_coin, d.band_upper_coin)
        if self.observer is not None:
            self.observer.on_decision(d)
        st.last_decision = {
            "decision_id": d.decision_id,
            "ts_ms": d.ts_ms,
            "trigger": str(d.trigger),
            "net_delta_coin": net,
            "delta_after_coin": d.delta_after_coin,
            "legs": len(d.legs),
        }
        if self.shared.metrics is not None:
            num = self.config.numeraire
            with contextlib.suppress(ValueError):
                self.shared.metrics.set_greeks(
                    underlying,
                    delta_coin=snap.delta_coin(num, projected=False),
                    gamma_coin_per_usd=snap.total.gamma_coin_per_usd(num),
                    vega_usd=snap.total.vega_usd_per_vol,
                    theta_usd_per_day=snap.total.theta_usd_per_day,
                )
                self.shared.metrics.set_band(
                    underlying,
                    target_coin=d.target_delta_coin,
                    lower_coin=min(d.band_lower_coin, d.target_delta_coin),
                    upper_coin=max(d.band_upper_coin, d.target_delta_coin),
                )

    def _pre_trade(self, decision: HedgeDecision) -> list[HedgeLeg]:
        """The legs the kill switches let through (`check_order` per leg, judged at the
        largest single order the executor will send for it); refusals are logged."""
        assert (
            self.shared.board is not None
            and self.account.venue is not None
            and self.account.book is not None
        )
        st = self.stats.per_underlying[decision.underlying]
        if self.account.orders_blocked():
            # The adapter would fall back to ccxt's REST client, whose order requests are GETs
            # that aiohttp may re-send when a connection drops: wait for the session instead.
            st.blocked_legs += len(decision.legs)
            log.warning(
                "daemon.order_session_down",
                decision_id=decision.decision_id,
                venue=self.account.name,
            )
            return []
        before = decision.net_delta_coin
        index = self.account.book.index_price(decision.underlying)
        out: list[HedgeLeg] = []
        for i, leg in enumerate(decision.legs):
            inst = self.account.venue.instruments().get(leg.instrument)
            price_usd = (
                leg.limit_price * index if leg.price_unit is PriceUnit.COIN else (leg.limit_price)
            )
            notional = leg.amount if leg.amount_unit is AmountUnit.USD else leg.amount * price_usd
            # The executor sends a leg in slices of at most max_slice_delta_coin and at most
            # max_slice_notional_usd, but never below the instrument's minimum order (a limit
            # under it must still refuse).
            xs = (
                self.shared.executor.settings
                if self.shared.executor is not None
                else ExecutorSettings()
            )
            slice_cap_usd = xs.max_slice_delta_coin * index
            if xs.max_slice_notional_usd is not None:
                slice_cap_usd = min(slice_cap_usd, xs.max_slice_notional_usd)
            if inst is not None:
                min_usd = (
                    inst.min_amount
                    if inst.amount_unit is AmountUnit.USD
                    else inst.min_amount * price_usd
                )
                per_order = min(notional, max(slice_cap_usd, min_usd))
            else:
                per_order = notional
            check = self.shared.board.check_order(
                now_ms=self.clocks.board_clock_ms(),
                notional_usd=per_order,
                price_usd=price_usd,
                reference_price_usd=index,
                delta_before_coin=before,
                delta_after_coin=before + leg.delta_coin,
            )
            if not check.allowed:
                st.blocked_legs += 1
                log.warning(
                    "daemon.leg_refused",
                    decision_id=decision.decision_id,
                    leg=i,
                    reason=check.reason,
                    code=check.code.value if check.code is not None else None,
                )
                continue
            before += leg.delta_coin
            out.append(leg)
        return out

    def _dispatch(self, decision: HedgeDecision) -> None:
        base: dict[str, float] = {}
        for leg in decision.legs:
            entry = self._expected_pos.get(leg.instrument)
            held = self.account.market.position_amount(leg.venue, leg.instrument) or 0.0
            base[leg.instrument] = entry[0] if entry is not None else held
        task = asyncio.get_running_loop().create_task(
            self._execute(decision, base), name=f"execute:{decision.decision_id[:8]}"
        )
        self.exec_tasks.add(task)
        task.add_done_callback(self.exec_tasks.discard)

    async def _execute(self, decision: HedgeDecision, base: dict[str, float]) -> None:
        assert self.shared.executor is not None and self.shared.board is not None
        self.stats.decisions_trading += 1
        self.shared.board.on_hedge_sent(decision.underlying)
        try:
            result = await self.shared.executor.execute(decision)
        except Exception as exc:
            log.exception("daemon.execute_failed", decision_id=decision.decision_id)
            self.stats.error(f"execute {decision.decision_id[:8]}: {exc!r}")
            return
        self.after_execute(decision, result, base)

    def after_execute(
        self, decision: HedgeDecision, result: DecisionResult, base: dict[str, float]
    ) -> None:
        assert self.shared.board is not None
        st = self.stats.per_underlying[decision.underlying]
        now = self.clocks.board_clock_ms()
        traded = False
        for leg in result.legs:
            if leg.outcome in (LegOutcome.BLOCKED, LegOutcome.DUPLICATE, LegOutcome.DRY_RUN):
                continue
            self.shared.board.on_order_outcome(
                now, leg.outcome is not LegOutcome.REJECTED, leg.detail
            )
            traded = traded or leg.filled_amount > 0
            if leg.filled_amount > 0:
                side = decision.legs[leg.leg].side.sign
                held = self.account.market.position_amount(self.account.name, leg.instrument) or 0.0
                start = base.get(leg.instrument, held)
                current = self._expected_pos.get(leg.instrument, (start, 0.0))[0]
                self._expected_pos[leg.instrument] = (
                    current + side * leg.filled_amount,
                    time.monotonic() + _UNCONFIRMED_TIMEOUT_S,
                )
        if traded:
            st.hedges += 1


def _with_legs(decision: HedgeDecision, legs: list[HedgeLeg]) -> HedgeDecision:
    traded = sum(leg.delta_coin for leg in legs)
    return replace(
        decision,
        legs=tuple(legs),
        delta_after_coin=decision.net_delta_coin + traded,
        expected_cost_usd=sum(leg.expected_cost_usd for leg in legs),
    )
