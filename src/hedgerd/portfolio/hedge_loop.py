"""The hedge loop: every `daemon.evaluate_interval_s` of the daemon's clock, per underlying,
book snapshot -> `UnderlyingRisk` + the hedge instruments' `HedgeVenueState`s -> `decide` ->
kill-switch pre-trade checks per leg -> `executor.execute` as a task (the next evaluation
sees its in-flight delta) -> `after`.

Portfolio-wide: the risk is the sum of every account's book (`portfolio.book.sum_risks`),
the candidates are the hedge instruments of every routable hedge account
(`portfolio.routing.hedge_accounts`: a halted or unreachable account is out of routing for
that evaluation, a reduce-only one takes only position-reducing hedges), and the orders it
dispatches are tracked here until they end (`exec_tasks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import structlog

from hedgerd.accounts.runtime import AccountRuntime
from hedgerd.book.greeks_book import BookError, GreeksBook, UnderlyingGreeks
from hedgerd.execution.executor import DecisionResult, ExecutorSettings, LegOutcome
from hedgerd.hedging.adapter import underlying_risk
from hedgerd.hedging.config import HedgerdPolicy, PolicyConfig
from hedgerd.hedging.controller import after, decide, should_log
from hedgerd.hedging.cross_venue import several_accounts, with_carry
from hedgerd.hedging.flow import FLOW_WINDOW_MS, FlowEstimator
from hedgerd.hedging.inputs import HedgeVenueState, PolicyState, UnderlyingRisk
from hedgerd.hedging.jumps import JUMP_MAX_GAP_MS, JUMP_WINDOW_MS, JumpVarianceEstimator
from hedgerd.hedging.kernel import gamma_ahead_key
from hedgerd.hedging.volvol import VOLVOL_WINDOW_MS, VolOfVolEstimator
from hedgerd.model import AmountUnit, HedgeDecision, HedgeLeg, PriceUnit
from hedgerd.portfolio.book import BookOptions, sum_risks
from hedgerd.portfolio.flow_seed import FlowSeed, SeedFetches, gap_jumps
from hedgerd.portfolio.policies import PolicyBook
from hedgerd.portfolio.routing import hedge_accounts, limit_to_reducing, short_of_funds
from hedgerd.portfolio.scope import PortfolioScope, PortfolioService
from hedgerd.portfolio.stats import HedgeObserver, UnderlyingStats
from hedgerd.portfolio.volvol_seed import VolOfVolSeed, VolOfVolSeeds, proxy_index_samples
from hedgerd.venues.base import IndexHistoryVenue, OptionHistoryVenue, VenueError, VolIndexVenue

log = structlog.get_logger(__name__)

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
        self._book_options: dict[str, BookOptions] = {}
        #: The option flow's delta jumps per underlying (the band's `flow_weight`), fed from
        #: the books' option position changes; and the (account, underlying) pairs whose
        #: first positions were taken (the initial load is the book, not flow).
        self._flow: dict[str, FlowEstimator] = {}
        #: When each (account, underlying)'s option position changes were last taken (daemon
        #: ms; absent: its book not yet complete), the time of the last reconnection resync
        #: seen (feed ms), and the seeds being fetched (`portfolio.flow_seed`).
        self._flow_taken: dict[tuple[str, str], int] = {}
        self._flow_gap: dict[tuple[str, str], int] = {}
        self._flow_seeds = SeedFetches()
        #: The marks' vol-of-vol per underlying (the band's `vov_ref`), fed the book's mark
        #: vol at every evaluation; its samples are kept in the journal and seed it at each
        #: start (`portfolio.volvol_seed`): the reads in flight, and the samples recorded
        #: while one was.
        self._volvol: dict[str, VolOfVolEstimator] = {}
        self._volvol_seeds = VolOfVolSeeds()
        #: (time ms, mark vol, index USD) recorded while the seed's read is in flight.
        self._volvol_live: dict[str, list[tuple[int, float, float]]] = {}
        #: The index's jump variance over the marks' per underlying (the band's
        #: `jump_shift_power`), fed with the vol-of-vol's samples and seeded with them.
        self._jumps: dict[str, JumpVarianceEstimator] = {}
        #: The venue's index history (time ms, index USD) of a seed that knew no vol for it,
        #: waiting for the first evaluation's mark vol (`portfolio.volvol_seed`).
        self._jump_proxy: dict[str, list[tuple[int, float]]] = {}
        self._volvol_writes: set[asyncio.Future[None]] = set()
        self.exec_tasks: set[asyncio.Task[None]] = set()
        #: Set while `run` runs, after its reset of the per-spell state (the flow and
        #: vol-of-vol estimates and their seeds): an evaluation begun before it (an
        #: operator's, a test's, while the daemon starts) has its seeds' fetches cancelled
        #: and taken again by the reset.
        self.running = asyncio.Event()
        #: Net delta (coin) per underlying at the last evaluation: the executor's risk gate.
        self._book_delta: dict[str, float] = {}
        #: Why each hedge account was out of routing at the last evaluation (for status).
        self.excluded: dict[str, str] = {}
        #: Evaluations begun (every underlying's), and the count at which each account now
        #: out of routing was first left out: how many evaluations a failure took to act.
        self.evaluations_started = 0
        self.excluded_at: dict[str, int] = {}
        #: The timer's rounds finished since `run` last started (every underlying evaluated
        #: once): after the first, its next evaluation is `evaluate_interval_s` away.
        self.rounds = 0
        #: Configured hedge instruments refused as candidates (logged once each).
        self._refused_hedges: set[tuple[str, str]] = set()

    async def run(self) -> None:
        interval = self.config.daemon.evaluate_interval_s
        # A (re)start: an HA node active again after a standby (its books stayed live), the
        # supervisor's restart. What the books' options changed while no loop took them has
        # no time the loop knows (days of a standby's, stamped now, read as a burst for the
        # next window): taken as their load, not flow, as at the first start, and the
        # estimate seeded again from the venues' history, each trade at its own time (the
        # estimate kept from before the stop would count the window's older trades twice).
        self._flow_taken.clear()
        self._flow_gap.clear()
        self._flow.clear()
        self._flow_seeds.cancel()
        # Likewise the vol-of-vol: seeded again from the journal's samples (an HA node's
        # estimate from its last active spell misses what the other node sampled since).
        self._volvol.clear()
        self._volvol_live.clear()
        self._jumps.clear()
        self._jump_proxy.clear()
        self._volvol_seeds.cancel()
        self.rounds = 0  # a spell's own: an HA node active again has its start round ahead
        self.running.set()
        try:
            while True:
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self._reload()
                for u in self.underlyings:
                    await self.evaluate(u)
                self.rounds += 1
                await self.clocks.sleep_daemon_s(interval)
        finally:
            # Stopped (shutdown, a lost lease): a seed still paging the venue's history
            # would outlive the loop and hold the venue's read lane for nobody.
            self.running.clear()
            self._flow_seeds.cancel()
            self._volvol_seeds.cancel()

    def book_delta_coin(self, underlying: str) -> float:
        return self._book_delta.get(underlying, math.nan)

    def index_price(self, underlying: str) -> float:
        """The underlying's index (USD) for portfolio-wide figures (kill-switch notional and
        price checks, margin headroom, flatten): the freshest of the accounts' indexes, by
        the data's own time, so a venue whose feed went stale does not price the others
        (each account's own Greeks still use its own venue's index). NaN when no book has
        one. Was the first account's, stale or not."""
        quotes: list[tuple[float, int | None]] = []
        for account in self.accounts.values():
            if account.book is None or underlying not in account.underlyings:
                continue
            ts = account.feed.index_ms(underlying) if account.feed is not None else None
            quotes.append((account.book.index_price(underlying), ts))
        return freshest_index(quotes)

    async def hedge_states(self, underlying: str) -> list[HedgeVenueState]:
        """The hedge candidates of every routable hedge account (`portfolio.routing`)."""
        out: list[HedgeVenueState] = []
        per_account = self.shared.states is not None and self.shared.states.per_account
        for route in hedge_accounts(self.accounts, self.shared.states, underlying):
            name = route.account.name
            if not route.routable:
                if self.excluded.get(name) != route.excluded:
                    log.warning("daemon.account_out_of_routing", venue=name, why=route.excluded)
                self.excluded[name] = route.excluded or ""
                self.excluded_at.setdefault(name, self.evaluations_started)
                continue
            if name in self.excluded:
                log.info("daemon.account_back_in_routing", venue=name)
                del self.excluded[name]
                self.excluded_at.pop(name, None)
            # With one account the venue's refusal judges funds, as before accounts.
            available = route.account.checks.available if per_account else {}
            for v in await self._account_states(route.account, underlying):
                reduce = route.reducing_only or short_of_funds(available, v)
                v = limit_to_reducing(v) if reduce else v
                out.append(self._with_headroom(v, available, underlying) if per_account else v)
        return out

    def _with_headroom(
        self, v: HedgeVenueState, available: Mapping[str, float], underlying: str
    ) -> HedgeVenueState:
        """`v` with its account's free collateral in its settlement currency (USD; the coin's
        figure at the index) and the initial margin a growing hedge needs: the cross-venue
        router keeps every split within it. Unknown funds or index: unchanged."""
        free = available.get(v.instrument.settlement_currency)
        frac = self.policies.hedging.router.initial_margin_frac
        if free is None or not math.isfinite(free) or frac <= 0.0:
            return v
        if v.instrument.settlement_currency == underlying:
            index = self.index_price(underlying)
            if not math.isfinite(index):
                return v
            free *= index
        return replace(v, margin_available_usd=free, initial_margin_frac=frac)

    async def _account_states(
        self, account: AccountRuntime, underlying: str
    ) -> list[HedgeVenueState]:
        venue, feed = account.venue, account.feed
        assert venue is not None and feed is not None
        out: list[HedgeVenueState] = []
        for name in self.config.hedge_instruments(account.name, underlying):
            inst = venue.instruments().get(name)
            if inst is None:
                continue
            if inst.underlying != underlying or inst.is_option:
                # A configuration slip: the delta per amount below (1, or 1/mid) is right
                # only for a future, perpetual or spot of this underlying. Never a candidate.
                if (account.name, name) not in self._refused_hedges:
                    self._refused_hedges.add((account.name, name))
                    log.error(
                        "daemon.hedge_instrument_refused",
                        venue=account.name,
                        instrument=name,
                        underlying=underlying,
                        why=f"an {inst.kind} of {inst.underlying}",
                    )
                continue
            quote = account.market.fresh_quote(account.name, name)
            if quote is None:
                try:
                    quote = await venue.fetch_quote(name)
                except VenueError as exc:
                    log.warning(
                        "daemon.quote_unavailable",
                        venue=account.name,
                        instrument=name,
                        error=str(exc)[:200],
                    )
                    continue
                account.market.quotes[name] = quote
            per_amount = 1.0 / quote.mid_price if inst.amount_unit is AmountUnit.USD else 1.0
            pos = feed.positions.get(name)
            out.append(
                HedgeVenueState(
                    instrument=inst,
                    quote=quote,
                    delta_coin_per_amount=per_amount,
                    position_amount=pos.amount if pos is not None else 0.0,
                )
            )
        return out

    def _depth_usd(self, decision: HedgeDecision, spot_usd: float) -> float:
        """USD notional of book depth to fetch per side for `decision`: the configured depth,
        or the decision's whole wanted trade (`_DEPTH_HEADROOM` times over) when larger."""
        floor = max(a.settings.depth_notional_usd for a in self.accounts.values())
        need = abs(decision.wanted_coin) * spot_usd * _DEPTH_HEADROOM
        return max(floor, need) if math.isfinite(need) else floor

    async def _with_books(
        self, venues: list[HedgeVenueState], depth_usd: float
    ) -> list[HedgeVenueState]:
        """`venues` with `depth_usd` of order book depth per side, USD notional (the same list
        when a fetch fails)."""
        out: list[HedgeVenueState] = []
        cross = several_accounts(venues)
        now = self.clocks.clock_ms()
        for v in venues:
            venue = self.account_of(v.venue).venue
            assert venue is not None
            try:
                book = await venue.fetch_order_book(v.name, depth_usd)
            except VenueError as exc:
                log.warning("daemon.book_unavailable", instrument=v.name, error=str(exc)[:200])
                return venues
            v = replace(v, book=book)
            if cross:
                # Across venues the carry (funding, basis to the index) decides too: fetched
                # with the depth, only when a trade is due.
                try:
                    v = with_carry(v, await venue.fetch_ticker(v.name), now)
                except VenueError as exc:
                    log.warning(
                        "daemon.ticker_unavailable", instrument=v.name, error=str(exc)[:200]
                    )
            out.append(v)
        return out

    async def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One evaluation of one underlying; returns the decision (None when the inputs were
        refused)."""
        assert self.shared.executor is not None and self.shared.board is not None
        st = self.stats.per_underlying[underlying]
        self.evaluations_started += 1
        # The candidates first: gathering them may wait on the venues (a quote fetched), and
        # fills and positions arrive meanwhile. Then the books and the orders in flight are
        # read at one instant with no wait between them (`execution.inflight`: a fill counts
        # in flight until the book's position shows it, so at any instant the two together
        # count it once, whichever of its trade and its position has arrived): a book read
        # before a wait and in-flight orders read after it counted a hedge that filled
        # meanwhile in neither, and the next hedge doubled it (two-venue e2e, issue 17).
        await self._seed_flow(underlying)
        await self._seed_vol_of_vol(underlying)
        venues = await self.hedge_states(underlying)
        now = self.clocks.clock_ms()
        risks: dict[str, UnderlyingRisk] = {}
        snaps: dict[str, UnderlyingGreeks] = {}
        books: list[GreeksBook] = []
        for account in self.accounts.values():
            if underlying not in account.underlyings:
                continue
            got = self._account_risk(account, underlying, now, st)
            if got is None:
                return None  # one account's book incomplete: the sum would be a guess
            snaps[account.name], risks[account.name] = got
            if account.book is not None:  # always: a risk came from it
                books.append(account.book)
                self._note_option_trades(account.name, account.book, underlying, now)
        if not risks:
            return None
        st.last_greeks = next(iter(snaps.values()))
        st.greeks_by_account = snaps
        portfolio = sum_risks(risks)
        st.delta_by_account = portfolio.delta_by_account()
        risk = portfolio.total
        self._book_delta[underlying] = risk.net_delta_coin
        if not venues:
            return None
        policy_name, policy = self.policies.policy_for(underlying)
        key = gamma_ahead_key(policy)
        if key is not None:
            # The band's gamma term takes the whole book's gamma over the spot range ahead:
            # one Black–Scholes pass per account's options (7 for the magnitude), here and
            # not inside `decide`, whose latency budget is per decision.
            # Cached per the books' options versions (`BookOptions`): positions and marks
            # change between evaluations far less often than the index.
            ahead = self._options_cache(underlying).gamma_ahead(
                key, books, now, risk.spot_usd, risk.vol
            )
            if math.isfinite(ahead):
                risk = replace(risk, gamma_ahead_coin_per_usd=ahead)
        flow_v, flow_j = self._flow_estimator(underlying, now).estimate(now)
        if flow_v > 0.0:
            risk = replace(risk, flow_var_coin2_per_year=flow_v, flow_jump_coin=flow_j)
        risk = self._with_vol_of_vol(underlying, policy, risk, now)
        # After the jump ratio and skew are in: the jump term takes the coherence too.
        risk = self._with_coherence(underlying, policy, risk, books, now)
        st.last_risk = risk
        in_flight = self.shared.executor.in_flight_orders(underlying)
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
        self._observe(underlying, st, snaps, decision, risk)
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
        if (decision.trades or decision.cancel_labels) and self.shared.trading is not None:
            self._act(decision, risk.spot_usd)
        return decision

    def _with_coherence(
        self,
        underlying: str,
        policy: PolicyConfig,
        risk: UnderlyingRisk,
        books: Sequence[GreeksBook],
        now: int,
    ) -> UnderlyingRisk:
        """Put the coherence of the book's gamma (|net| / gross, `kernel.book_gamma_coherence`)
        in the risk where the policy's centre takes it (`shift_coherence`: Zakamouline's shift
        and the jump term, and the jump term's own cap): one more Black–Scholes pass over the
        whole book's options, cached as the averaged gamma. Not where neither moves the centre
        (no Zakamouline shift or no vanna; no jump term or no jump found): the band then does
        not read it, as the backtest's, which always has it."""
        if not (isinstance(policy, HedgerdPolicy) and policy.shift_coherence > 0.0 and books):
            return risk
        zak = policy.k_prefactor > 0.0 and risk.vanna_coin_per_vol != 0.0
        jumped = risk.jump_var_ratio != 1.0 or risk.jump_skew != 0.0
        if not (zak or (policy.jump_shift_power > 0.0 and jumped)):
            return risk
        cache = self._options_cache(underlying)
        coherence = cache.gamma_coherence(books, now, risk.spot_usd, risk.vol)
        if 0.0 <= coherence <= 1.0:
            return replace(risk, gamma_coherence=coherence)
        return risk

    def _options_cache(self, underlying: str) -> BookOptions:
        cache = self._book_options.get(underlying)
        if cache is None:
            cache = self._book_options[underlying] = BookOptions(underlying)
        return cache

    async def _seed_vol_of_vol(self, underlying: str) -> None:
        """Start the vol-of-vol estimator of `underlying` at this loop's first evaluation
        (and after a reload changed its window): empty, and seeded from the journal's
        samples of the window (`portfolio.volvol_seed`) when they land. Here, before the
        evaluation reads the books, as the flow's seed; waits `SEED_WAIT_S` at most."""
        window_ms = _volvol_window_ms(self.policies.policy_for(underlying)[1])
        est = self._volvol.get(underlying)
        if est is None or est.window_ms != window_ms:
            now = self.clocks.clock_ms()
            self._volvol[underlying] = VolOfVolEstimator(now, window_ms)
            # (Kept through a change of the vol-of-vol's window: its own is fixed.)
            self._jumps.setdefault(underlying, JumpVarianceEstimator())
            self._volvol_live[underlying] = []
            if self.shared.journal is not None:
                self._volvol_seeds.start(
                    self.shared.journal, self._vol_index_venue(underlying), underlying,
                    window_ms, now, self._index_history_venue(underlying),
                )  # fmt: skip
        seed = await self._volvol_seeds.landed(underlying)
        if seed is not None:
            self._apply_volvol_seed(seed)

    def _vol_index_venue(self, underlying: str) -> VolIndexVenue | None:
        """The first account's venue of `underlying` that publishes a vol index (Deribit)."""
        for account in self.accounts.values():
            if underlying in account.underlyings and isinstance(account.venue, VolIndexVenue):
                return account.venue
        return None

    def _index_history_venue(self, underlying: str) -> IndexHistoryVenue | None:
        """The first account's venue of `underlying` that publishes its index's history."""
        for account in self.accounts.values():
            venue = account.venue
            if underlying in account.underlyings and isinstance(venue, IndexHistoryVenue):
                return venue
        return None

    def _apply_volvol_seed(self, seed: VolOfVolSeed) -> None:
        """The estimator rebuilt from the stored samples and those recorded since the read."""
        u = seed.underlying
        est = self._volvol.get(u)
        if est is None or est.window_ms != seed.window_ms:
            return  # the window changed meanwhile: its own read is on its way
        live = self._volvol_live.pop(u, [])
        if seed.samples or seed.proxy:
            last = seed.samples[-1][0] if seed.samples else seed.cut_ms - seed.window_ms
            samples = [*seed.samples, *((t, v) for t, v, _ in live if t > last)]
            now = max(seed.cut_ms, samples[-1][0] if samples else seed.cut_ms)
            est = self._volvol[u] = VolOfVolEstimator.seeded(
                samples, now, seed.window_ms, proxy=seed.proxy
            )
        jumps = self._jumps.get(u)
        # The venue's index before the journal's (its vols: `volvol_seed.proxy_index_samples`;
        # none known: the first evaluation's mark vol, `_with_vol_of_vol`).
        proxy = proxy_index_samples(seed, live[0][1] if live else None)
        self._jump_proxy.pop(u, None)
        if proxy is None:
            self._jump_proxy[u] = list(seed.index_proxy)
        elif seed.index or proxy:
            last = (seed.index or proxy)[-1][0]
            index = [*proxy, *seed.index, *((t, s, v) for t, v, s in live if t > last)]
            jumps = self._jumps[u] = JumpVarianceEstimator.seeded(
                index, max(seed.cut_ms, index[-1][0])
            )
        now = self.clocks.clock_ms()
        noise = _jump_noise(self.policies.policy_for(u)[1])
        r_k = None if jumps is None else jumps.estimate(now, noise)  # one read
        log.info(
            "daemon.vol_of_vol_seeded",
            underlying=u,
            samples=len(seed.samples),
            index_points=len(seed.proxy),
            index_first_ms=seed.proxy[0][0] if seed.proxy else None,
            first_ms=seed.samples[0][0] if seed.samples else None,
            last_ms=seed.samples[-1][0] if seed.samples else None,
            cut_ms=seed.cut_ms,
            window_ms=seed.window_ms,
            vol_of_vol_per_sqrt_year=round(est.estimate(now), 6),
            index_samples=len(seed.index),
            index_history_points=len(seed.index_proxy),
            index_history_waits_for_mark_vol=proxy is None,
            jump_var_ratio=None if r_k is None else round(r_k.ratio, 6),
            jump_skew=None if r_k is None else round(r_k.skew, 6),
            jump_rate_per_year=None if r_k is None else round(r_k.rate_per_year, 3),
        )

    def _act(self, decision: HedgeDecision, spot_usd: float) -> None:
        """Send what the pre-trade check lets through of a decision that trades or cancels:
        its legs, with which the executor cancels its `cancel_labels`; its cancels alone
        when no leg goes (a resting order working against it must not wait for one)."""
        legs = self._pre_trade(decision) if decision.trades else []
        if legs:
            self._dispatch(
                decision if len(legs) == len(decision.legs) else _with_legs(decision, legs)
            )
            u = decision.underlying
            self._policy_state[u] = after(self._policy_state[u], decision, spot_usd)
        elif decision.cancel_labels:
            self._dispatch(_with_legs(decision, []))

    def _with_vol_of_vol(
        self, underlying: str, policy: PolicyConfig, risk: UnderlyingRisk, now: int
    ) -> UnderlyingRisk:
        """Feed the vol-of-vol estimator the book's mark vol (`risk.vol`, the gamma-weighted
        IV the band prices with: its moves are what the band's refinements covary with) and
        put its estimate in the risk. Fed whatever the policy, so a reload that turns the
        weight on finds the history; a reload that changes the window starts it again
        (`_seed_vol_of_vol`). A recorded sample is kept in the journal, not awaited.
        The same samples, with the index (`risk.spot_usd`), feed the jump variance
        estimator (`hedging.jumps`), whose ratio, skew (the jumps' lean) and rate go in the
        risk too."""
        window_ms = _volvol_window_ms(policy)
        est = self._volvol.get(underlying)
        if est is None or est.window_ms != window_ms:  # (normally `_seed_vol_of_vol`'s)
            est = self._volvol[underlying] = VolOfVolEstimator(now, window_ms)
        jumps = self._jumps.get(underlying)
        if jumps is None:
            jumps = self._jumps[underlying] = JumpVarianceEstimator()
        pending = self._jump_proxy.pop(underlying, None)
        if pending is not None:  # a seed's index history that waited for a mark vol
            jumps = self._jumps[underlying] = JumpVarianceEstimator.seeded(
                [(t, s, risk.vol) for t, s in pending], now
            )
        if est.observe(risk.vol, now):
            jumps.observe(risk.spot_usd, risk.vol, now)
            self._keep_volvol_sample(underlying, now, risk.vol, risk.spot_usd, est.window_ms)
        xi = est.estimate(now)
        ratio, skew, rate = jumps.estimate(now, _jump_noise(policy))
        if xi > 0.0 or ratio != 1.0 or skew != 0.0 or rate != 0.0:
            return replace(
                risk,
                vol_of_vol_per_sqrt_year=xi,
                jump_var_ratio=ratio,
                jump_skew=skew,
                jump_rate_per_year=rate,
            )
        return risk

    def _keep_volvol_sample(
        self, underlying: str, now: int, vol: float, index_usd: float, window_ms: int
    ) -> None:
        if underlying in self._volvol_seeds:
            self._volvol_live.setdefault(underlying, []).append((now, vol, index_usd))
        journal = self.shared.journal
        if journal is None:
            return
        # The jump window's first return and its bipower pair start before it.
        keep_since = now - max(window_ms, JUMP_WINDOW_MS + JUMP_MAX_GAP_MS)
        try:
            write = journal.record_volvol_sample_soon(
                underlying, now, vol, keep_since, index_usd=index_usd
            )
        except Exception as exc:  # closed (shutting down): the sample is lost, not the loop
            _sample_not_recorded(underlying, now, exc)
            return
        self._volvol_writes.add(write)

        def done(f: asyncio.Future[None]) -> None:
            self._volvol_writes.discard(f)
            if not f.cancelled() and f.exception() is not None:
                _sample_not_recorded(underlying, now, f.exception())

        write.add_done_callback(done)

    def _flow_estimator(self, underlying: str, now: int) -> FlowEstimator:
        est = self._flow.get(underlying)
        if est is None:
            est = self._flow[underlying] = FlowEstimator(now)
        return est

    async def _seed_flow(self, underlying: str) -> None:
        """Seed the flow estimate of `underlying` from the venues' option trade history
        (`portfolio.flow_seed`): each account's trades before its first complete book, and
        after a resync that moved positions (a reconnection's, or a correction) the trades
        behind the moves since its last evaluation (the snapshot moves a position by the
        gap's trades netted: one jump where there were several). Here,
        before the evaluation reads the books (a wait after that read would break the
        in-flight rule); the evaluation that started a fetch waits for it `SEED_WAIT_S` (wall)
        at most, a later answer is applied at the evaluation that finds it."""
        for account in self.accounts.values():
            book = account.book
            if book is None or underlying not in account.underlyings:
                continue
            key = (account.name, underlying)
            # A resync that moved positions: after a reconnection, or a correction.
            report = account.feed.last_reconcile if account.feed is not None else None
            moved = report is not None and (report.reason == "reconnect" or report.corrected)
            resync = report.ts_ms if report is not None and moved else -1
            now = self.clocks.clock_ms()
            taken = self._flow_taken.get(key)
            if taken is None:
                try:
                    if not book.underlying_snapshot(underlying, now).complete:
                        continue
                except BookError:
                    continue
                self._take_and_seed(account.name, book, underlying, now, now - FLOW_WINDOW_MS)
            elif resync > self._flow_gap.get(key, -1):
                # The resync's moves may net several trades: the venue's history of the
                # window tells them apart (`flow_seed.gap_jumps`).
                netted = book.take_option_changes(underlying, now)
                self._flow_taken[key] = now
                venue = account.venue
                if not netted:
                    pass  # no option moved: nothing to tell apart (a hedge's correction)
                elif isinstance(venue, OptionHistoryVenue):
                    self._flow_seeds.start(
                        venue, account.name, underlying, venue.resolve_instrument, now,
                        now - FLOW_WINDOW_MS, netted,
                    )  # fmt: skip
                else:
                    self._observe_jumps(account.name, underlying, now, [d for *_, d in netted])
            self._flow_gap[key] = resync
        for name, seed, moves in await self._flow_seeds.landed(underlying):
            self._apply_seed(name, underlying, seed, moves)

    def _take_and_seed(
        self, account: str, book: GreeksBook, underlying: str, now: int, since_ms: int
    ) -> None:
        """`account`'s option position changes of `underlying` so far are not taken as
        flow (dropped: the book's loading, or a resync's netted moves); its trades in
        [since_ms, now] are fetched from the venue instead, `now` the cut-over."""
        book.take_option_trades(underlying, now)
        self._flow_taken[(account, underlying)] = now
        venue = self.accounts[account].venue
        if isinstance(venue, OptionHistoryVenue):
            self._flow_seeds.start(
                venue, account, underlying, venue.resolve_instrument, now, since_ms
            )

    def _apply_seed(
        self,
        account: str,
        underlying: str,
        seed: FlowSeed,
        netted: Sequence[tuple[str, float, float | None]] | None,
    ) -> None:
        est = self._flow_estimator(underlying, seed.cut_ms)
        fell_back = 0
        if netted is None:
            est.observed_since(seed.start_ms)
            jumps = seed.jumps
        else:
            jumps, fell_back = gap_jumps(seed, netted)
        for at_ms, d in jumps:
            est.observe(d, at_ms)
        v, j = est.estimate(seed.cut_ms)
        log.info(
            "daemon.option_flow_seeded",
            venue=account,
            underlying=underlying,
            reason="start" if netted is None else "resync",
            trades=len(seed.trades),
            jumps=len(jumps),
            unpriced=seed.unpriced,
            netted_fallback=fell_back,
            since_ms=seed.start_ms,
            cut_ms=seed.cut_ms,
            flow_var_coin2_per_year=round(v, 6),
            flow_jump_coin=round(j, 6),
        )

    def _note_option_trades(
        self, account: str, book: GreeksBook, underlying: str, now: int
    ) -> None:
        """Feed the flow estimator the delta change of each option position change of
        `account`'s book since the last evaluation. The first complete book's changes are
        its loading, not flow: dropped (`_take_and_seed`, normally by `_seed_flow`; after
        each start of `run` too)."""
        if (account, underlying) not in self._flow_taken:
            self._take_and_seed(account, book, underlying, now, now - FLOW_WINDOW_MS)
            return
        jumps = book.take_option_trades(underlying, now)
        self._flow_taken[(account, underlying)] = now
        self._observe_jumps(account, underlying, now, jumps)

    def _observe_jumps(
        self, account: str, underlying: str, now: int, jumps: Sequence[float | None]
    ) -> None:
        priced = [d for d in jumps if d is not None]
        if priced:
            est = self._flow_estimator(underlying, now)
            for d in priced:
                est.observe(d, now)
            log.info(
                "daemon.option_flow",
                venue=account,
                underlying=underlying,
                trades=len(priced),
                delta_change_coin=round(math.fsum(priced), 6),
            )

    def _account_risk(
        self, account: AccountRuntime, underlying: str, now: int, st: UnderlyingStats
    ) -> tuple[UnderlyingGreeks, UnderlyingRisk] | None:
        """One account's book snapshot of `underlying` and its risk (None: not usable)."""
        if account.book is None:
            st.skipped_incomplete += 1
            return None
        try:
            snap = account.book.underlying_snapshot(underlying, now)
        except BookError as exc:
            st.skipped_incomplete += 1
            if st.skipped_incomplete % 100 == 1:
                log.info(
                    "daemon.no_book", venue=account.name, underlying=underlying, error=str(exc)
                )
            return None
        if not snap.complete:
            st.skipped_incomplete += 1
            if st.skipped_incomplete % 100 == 1:
                log.warning(
                    "daemon.book_incomplete",
                    venue=account.name,
                    underlying=underlying,
                    quarantined=[f"{q.instrument}: {q.reason}" for q in snap.quarantined][:5],
                )
            return None
        try:
            return snap, underlying_risk(snap, now, self.config.numeraire)
        except ValueError as exc:
            st.skipped_incomplete += 1
            log.warning(
                "daemon.risk_refused", venue=account.name, underlying=underlying, error=str(exc)
            )
            return None

    def _observe(
        self,
        underlying: str,
        st: UnderlyingStats,
        snaps: dict[str, UnderlyingGreeks],
        d: HedgeDecision,
        risk: UnderlyingRisk,
    ) -> None:
        """Count the evaluation and export what it saw: Greeks, band and the band's market
        inputs (`risk`, the one the decision was made on)."""
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
                    delta_coin=sum(s.delta_coin(num, projected=False) for s in snaps.values()),
                    gamma_coin_per_usd=sum(s.total.gamma_coin_per_usd(num) for s in snaps.values()),
                    vega_usd=sum(s.total.vega_usd_per_vol for s in snaps.values()),
                    theta_usd_per_day=sum(s.total.theta_usd_per_day for s in snaps.values()),
                )
                self.shared.metrics.set_band(
                    underlying,
                    target_coin=d.target_delta_coin,
                    lower_coin=min(d.band_lower_coin, d.target_delta_coin),
                    upper_coin=max(d.band_upper_coin, d.target_delta_coin),
                )
            with contextlib.suppress(ValueError):  # apart: one refused, the others still set
                self.shared.metrics.set_band_inputs(
                    underlying,
                    mark_vol=risk.vol,
                    vol_of_vol_per_sqrt_year=risk.vol_of_vol_per_sqrt_year,
                    jump_var_ratio=risk.jump_var_ratio,
                    jump_skew=risk.jump_skew,
                    jump_rate_per_year=risk.jump_rate_per_year,
                )

    def _pre_trade(self, decision: HedgeDecision) -> list[HedgeLeg]:
        """The legs the kill switches let through (`check_order` per leg, judged at the
        largest single order the executor will send for it); refusals are logged."""
        assert self.shared.board is not None
        st = self.stats.per_underlying[decision.underlying]
        before = decision.net_delta_coin
        index = self.index_price(decision.underlying)
        out: list[HedgeLeg] = []
        for i, leg in enumerate(decision.legs):
            account = self.account_of(leg.venue)
            if account.orders_blocked():
                # The adapter would fall back to ccxt's REST client, whose order requests are
                # GETs that aiohttp may re-send when a connection drops: wait for the session.
                st.blocked_legs += 1
                log.warning(
                    "daemon.order_session_down",
                    decision_id=decision.decision_id,
                    venue=account.name,
                )
                continue
            assert account.venue is not None
            inst = account.venue.instruments().get(leg.instrument)
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
                # The executor sends every slice without asking again: the budgets count
                # them all (one slice counted let a sliced leg trade past them).
                added_notional_usd=notional,
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
        task = asyncio.get_running_loop().create_task(
            self._execute(decision), name=f"execute:{decision.decision_id[:8]}"
        )
        self.exec_tasks.add(task)
        task.add_done_callback(self.exec_tasks.discard)

    async def _execute(self, decision: HedgeDecision) -> None:
        assert self.shared.executor is not None and self.shared.board is not None
        if decision.legs:  # not a decision that only cancels
            self.stats.decisions_trading += 1
            self.shared.board.on_hedge_sent(decision.underlying)
        try:
            result = await self.shared.executor.execute(decision)
        except Exception as exc:
            log.exception("daemon.execute_failed", decision_id=decision.decision_id)
            self.stats.error(f"execute {decision.decision_id[:8]}: {exc!r}")
            return
        self.after_execute(decision, result)

    def after_execute(self, decision: HedgeDecision, result: DecisionResult) -> None:
        """Count the decision's outcome: reject streaks per account, and hedges."""
        assert self.shared.board is not None
        st = self.stats.per_underlying[decision.underlying]
        now = self.clocks.board_clock_ms()
        filled_on: set[str] = set()
        for leg in result.legs:
            if leg.outcome in (LegOutcome.BLOCKED, LegOutcome.DUPLICATE, LegOutcome.DRY_RUN):
                continue
            hedge = decision.legs[leg.leg]
            venue = hedge.venue
            st.account(venue).orders += len(leg.labels)
            if leg.filled_amount > 0:
                filled_on.add(venue)
            self.shared.board.on_order_outcome(
                now, leg.outcome is not LegOutcome.REJECTED, leg.detail, venue
            )
        st.count_hedge(filled_on)


def _jump_noise(policy: PolicyConfig) -> float:
    """The policy's jump variance noise threshold (`jump_noise_sd`; 0 for other kinds)."""
    return policy.jump_noise_sd if isinstance(policy, HedgerdPolicy) else 0.0


def _volvol_window_ms(policy: PolicyConfig) -> int:
    """The policy's vol-of-vol window (ms): its `vov_window_s`, else the default."""
    window_s = policy.vov_window_s if isinstance(policy, HedgerdPolicy) else 0.0
    return int(window_s * 1000.0) if window_s > 0.0 else VOLVOL_WINDOW_MS


def _sample_not_recorded(underlying: str, ts_ms: int, exc: BaseException | None) -> None:
    log.warning(
        "daemon.vol_of_vol_sample_not_recorded",
        underlying=underlying,
        ts_ms=ts_ms,
        error_type=type(exc).__name__,
        error=str(exc)[:200],
    )


def freshest_index(quotes: Sequence[tuple[float, int | None]]) -> float:
    """The index (USD) with the latest time among (price, data time ms or None) pairs, a
    finite price only; ties and unknown times keep the earlier account. NaN when none."""
    best, best_ms = math.nan, -1
    for price, ts in quotes:
        stamp = ts if ts is not None else 0
        if math.isfinite(price) and stamp > best_ms:
            best, best_ms = price, stamp
    return best


def _with_legs(decision: HedgeDecision, legs: list[HedgeLeg]) -> HedgeDecision:
    traded = sum(leg.delta_coin for leg in legs)
    return replace(
        decision,
        legs=tuple(legs),
        delta_after_coin=decision.net_delta_coin + traded,
        expected_cost_usd=sum(leg.expected_cost_usd for leg in legs),
    )
