"""The composition root: `hedgerd run --config FILE`.

Start-up, in this order (each step needs the one before):

    config (validated; a live venue needs the explicit live confirmation)
      → journal (SQLite) → trading state restored from it (halts survive restarts)
      → kill-switch board (rate budgets restored from the journal), metrics, alerts
      → venue connected (instruments, private session with cancel-on-disconnect: orders go
        over the WebSocket session, never as a re-sendable HTTP GET)
      → start-up order reconciliation (in-doubt orders asked by label) → executor loaded
      → book rebuilt from the venue's positions and streamed (BookFeed)
      → READY (readiness flag, sd_notify), control socket, controller.

Long-running parts run under one `Supervisor`: a crash trips COMPONENT_CRASH (HALTED), is
logged and the part restarts with backoff. SIGTERM/SIGINT stop gracefully (controller first,
then the hedger's orders are cancelled and the journal flushed, within
`daemon.shutdown_timeout_s`); SIGHUP reloads the live-tunable config (hedging policies, risk
limits).

The controller loop evaluates every underlying every `daemon.evaluate_interval_s` of the
daemon's clock: book snapshot → `UnderlyingRisk` + `HedgeVenueState`s → `decide` →
kill-switch pre-trade checks per leg → `executor.execute` as a task (the next evaluation sees
its in-flight delta) → `after`.

Clocks: `clock_ms` is the daemon's clock (UTC epoch ms; the venue's time: in paper mode the
simulator's accelerated clock). `board_clock_ms` is what the kill switches judge durations
(staleness, disconnection, rate windows) against: the wall clock in paper mode, so an
accelerated simulator does not turn a 0.3 s event-loop hiccup into "6 s stale".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from hedgerd.accounts.integrity import position_diffs_coin
from hedgerd.accounts.runtime import AccountRuntime, AccountStartError
from hedgerd.book.greeks_book import BookError, GreeksBook, UnderlyingGreeks
from hedgerd.config import ConfigError, HedgerdConfig, load_config
from hedgerd.control.adapters import JournalAudit, OrderControlAdapter, TradingControlAdapter
from hedgerd.control.commands import (
    CommandRefusedError,
    ControlCommands,
    Tunable,
    parse_finite_float,
    parse_fraction,
    parse_positive_float,
)
from hedgerd.control.server import ControlServerError, serve_control
from hedgerd.control.views import summarize_freshness
from hedgerd.execution.executor import (
    DecisionResult,
    Executor,
    ExecutorSettings,
    LegOutcome,
    OrderRejection,
    protected_price,
    round_down,
)
from hedgerd.execution.journal import Journal, JournalError
from hedgerd.execution.reconcile import Reconciler
from hedgerd.execution.reconcile import ReconcileReport as ExecReconcileReport
from hedgerd.hedging.adapter import underlying_risk
from hedgerd.hedging.config import HedgingConfig, PolicyConfig
from hedgerd.hedging.controller import after, decide, should_log
from hedgerd.hedging.costs import fill_cost
from hedgerd.hedging.inputs import HedgeVenueState, InFlightOrder, PolicyState
from hedgerd.model import (
    AmountUnit,
    Fill,
    HedgeDecision,
    HedgeLeg,
    HedgeStyle,
    HedgeTrigger,
    InstrumentKind,
    OrderSide,
    PriceUnit,
)
from hedgerd.ops.health import LoopMonitor, Readiness, serve_ops
from hedgerd.ops.logging import SecretRedactor
from hedgerd.ops.metrics import Metrics
from hedgerd.ops.supervisor import Part, Supervisor
from hedgerd.ops.systemd import SystemdNotifier, run_watchdog
from hedgerd.portfolio.parts import Clocks, PortfolioParts
from hedgerd.portfolio.stats import DaemonStats, HedgeObserver, UnderlyingStats
from hedgerd.risk.alerts import AlertDispatcher
from hedgerd.risk.kill_switches import (
    KillSwitchBoard,
    day_start_ms,
    hedge_pnl_usd,
)
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import ReasonCode, TradingState, TradingStateMachine
from hedgerd.venues.base import (
    VenueError,
    VenueEvent,
)
from hedgerd.venues.book_feed import BookFeed, DeltaDivergence, ReconcileReport
from hedgerd.venues.deribit import DeribitVenue

log = structlog.get_logger(__name__)

LIVE_CONFIRM_ENV = "HEDGERD_LIVE_CONFIRM"
LIVE_CONFIRM_FLAG = "--i-understand-this-is-live"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

#: Wall seconds a filled hedge may take to show in the position stream before the book's
#: figure is believed again (the reconciliation corrects either way).
_UNCONFIRMED_TIMEOUT_S = 3.0
#: Kill-switch ticks (about 1 s each) between two comparisons with the venue's own delta.
_CROSS_CHECK_TICKS = 5
#: Wall seconds between two venue checks (clock skew, margin, daily hedge loss).
_VENUE_CHECK_INTERVAL_S = 2.0


class DaemonError(Exception):
    """The daemon cannot start (unsafe or unusable configuration, venue unreachable)."""


#: The units of the status document's figures, for scripts reading `hedgerctl status --json`.
STATUS_UNITS: Mapping[str, str] = {
    "delta, band, target": "coin of the underlying, in the configured numeraire",
    "gamma": "coin per USD of index move",
    "vega": "USD per 1.00 of vol (divide by 100 for a vol point)",
    "theta": "USD per day",
    "hedge_cost_usd": "USD",
    "time_in_band": "fraction of the evaluations with the delta inside the band",
    "amount, limit_price": "the order's amount_unit and price_unit (usd, or coin of underlying)",
    "age_s, oldest_age_s": "seconds",
    "*_ms": "UTC epoch milliseconds on the daemon's clock (the simulator's in paper mode)",
    "speed": "daemon seconds per wall second",
}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def live_confirmed(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether trading real money was confirmed: the command-line flag or
    `HEDGERD_LIVE_CONFIRM=yes`."""
    env = os.environ if environ is None else environ
    return flag or env.get(LIVE_CONFIRM_ENV, "").strip().lower() == "yes"


def check_live(config: HedgerdConfig, confirmed: bool) -> None:
    """Refuse a config with a `mode = "live"` venue unless live trading was confirmed."""
    live = sorted(name for name, v in config.venues.items() if v.mode == "live")
    if live and not confirmed:
        raise DaemonError(
            f"venue(s) {', '.join(live)} are mode 'live' (real money): start with "
            f"{LIVE_CONFIRM_FLAG} or {LIVE_CONFIRM_ENV}=yes to confirm"
        )


class Daemon:
    """hedgerd's parts, built from one config and run until `stop` is set.

    `clock_ms`: the daemon's clock (default: the wall clock); `speed`: daemon seconds per wall
    second (paper mode's accelerated simulator; loops sleep `interval / speed`);
    `board_clock_ms`: the kill switches' clock (default: `clock_ms`); `config_path`: where
    SIGHUP reloads from; `confirmed_live`: the live confirmation was given."""

    def __init__(
        self,
        config: HedgerdConfig,
        *,
        clock_ms: Callable[[], int] | None = None,
        speed: float = 1.0,
        board_clock_ms: Callable[[], int] | None = None,
        config_path: Path | None = None,
        confirmed_live: bool = False,
        observer: HedgeObserver | None = None,
    ) -> None:
        if len(config.venues) != 1:
            raise DaemonError(
                f"this version runs exactly one venue account; the config has "
                f"{len(config.venues)} ([venues.NAME] sections)"
            )
        if not speed > 0:
            raise DaemonError(f"speed must be positive, got {speed}")
        self.config = config
        self.clock_ms = clock_ms or _wall_ms
        self.speed = float(speed)
        self.board_clock_ms = board_clock_ms or self.clock_ms
        self._same_clocks = board_clock_ms is None
        self.config_path = config_path
        self.confirmed_live = confirmed_live
        self.observer = observer
        self.hedging: HedgingConfig = config.hedging
        self.overrides: dict[str, PolicyConfig] = {}
        self.stats = DaemonStats()
        self.clocks = Clocks(self.clock_ms, self.board_clock_ms, self.speed)
        #: The portfolio-wide parts (journal, trading state, board, ...): built in `run`.
        self.parts = PortfolioParts()
        self.venue_name, self.venue_settings = next(iter(config.venues.items()))
        self.account = AccountRuntime(
            self.venue_name,
            self.venue_settings,
            config,
            self.clocks,
            self.parts,
            on_fill=self._note_fill,
            on_error=self.stats.error,
        )
        self.underlyings = self.account.underlyings
        for u in self.underlyings:
            self.stats.per_underlying[u] = UnderlyingStats()
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self._reload = asyncio.Event()
        self._policy_state: dict[str, PolicyState] = {u: PolicyState() for u in self.underlyings}
        self._exec_tasks: set[asyncio.Task[None]] = set()
        self._book_delta: dict[str, float] = {}
        self._orders_sent_total = 0
        self._recent_fills: deque[str] = deque(maxlen=10_000)
        self._seen_fills: set[str] = set()
        #: Hedge positions expected once the book sees this process's fills (instrument ->
        #: (amount in its unit, wall deadline s)): a fill answered over the order session can
        #: arrive before the position stream says so; until then it still counts in flight.
        self._expected_pos: dict[str, tuple[float, float]] = {}
        # Built in `run`.
        self.supervisor: Supervisor | None = None
        self.control_socket: Path | None = None
        self._notifier: SystemdNotifier | None = None
        self._orders_counted: int | None = None
        self.ops_port: int | None = None

    # ------------------------------------------------- the parts, as tests reach them
    # The parts live in the services that use them (`self.parts`: portfolio-wide;
    # `self.account`: the venue account's); these read and set them there.
    @property
    def journal(self) -> Journal | None:
        return self.parts.journal

    @journal.setter
    def journal(self, value: Journal | None) -> None:
        self.parts.journal = value

    @property
    def trading(self) -> TradingStateMachine | None:
        return self.parts.trading

    @trading.setter
    def trading(self, value: TradingStateMachine | None) -> None:
        self.parts.trading = value

    @property
    def board(self) -> KillSwitchBoard | None:
        return self.parts.board

    @board.setter
    def board(self, value: KillSwitchBoard | None) -> None:
        self.parts.board = value

    @property
    def alerts(self) -> AlertDispatcher | None:
        return self.parts.alerts

    @alerts.setter
    def alerts(self, value: AlertDispatcher | None) -> None:
        self.parts.alerts = value

    @property
    def metrics(self) -> Metrics | None:
        return self.parts.metrics

    @metrics.setter
    def metrics(self, value: Metrics | None) -> None:
        self.parts.metrics = value

    @property
    def executor(self) -> Executor | None:
        return self.parts.executor

    @executor.setter
    def executor(self, value: Executor | None) -> None:
        self.parts.executor = value

    @property
    def venue(self) -> DeribitVenue | None:
        return self.account.parts.venue

    @venue.setter
    def venue(self, value: DeribitVenue | None) -> None:
        self.account.parts.venue = value

    @property
    def reconciler(self) -> Reconciler | None:
        return self.account.parts.reconciler

    @property
    def book(self) -> GreeksBook | None:
        return self.account.parts.book

    @book.setter
    def book(self, value: GreeksBook | None) -> None:
        self.account.parts.book = value

    @property
    def feed(self) -> BookFeed | None:
        return self.account.parts.feed

    # The account's book integrity and events, under the names tests drive them by.
    def _on_reconcile(self, report: ReconcileReport) -> None:
        self.account.integrity.on_reconcile(report)

    def _on_divergence(self, now_ms: int, divergences: Sequence[DeltaDivergence]) -> None:
        self.account.integrity.on_divergence(now_ms, divergences)

    def _on_fill_repaired(self, fill: Fill) -> None:
        self.account.on_fill_repaired(fill)

    async def _on_event(self, ev: VenueEvent) -> None:
        await self.account.on_event(ev)

    @property
    def _repaired_pending(self) -> dict[str, float]:
        return self.account.integrity.repaired_pending

    @property
    def _divergence_refresh_ms(self) -> int | None:
        return self.account.integrity.divergence_refresh_ms

    @_divergence_refresh_ms.setter
    def _divergence_refresh_ms(self, value: int | None) -> None:
        self.account.integrity.divergence_refresh_ms = value

    @property
    def _reloaded_for(self) -> set[str]:
        return self.account.reloaded_for

    # -------------------------------------------------------------------- helpers
    def _daemon_sleep_s(self, seconds: float) -> Any:
        return asyncio.sleep(max(seconds, 0.0) / self.speed)

    def policy_for(self, underlying: str) -> tuple[str, PolicyConfig]:
        name, policy = self.hedging.policy_for(underlying)
        override = self.overrides.get(underlying)
        return (name, override) if override is not None else (name, policy)

    def request_reload(self) -> None:
        """SIGHUP: reload the live-tunable config at the next controller pass."""
        self._reload.set()

    # ------------------------------------------------------------------------ run
    async def run(self, stop: asyncio.Event) -> int:
        """Start, run until `stop` is set, shut down. Returns the exit code."""
        config = self.config
        check_live(config, self.confirmed_live)
        notifier = self._notifier = SystemdNotifier.from_env()
        self.stats.started_ms = self.clock_ms()
        path = config.journal.path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        journal = self.journal = await Journal.open(path)
        try:
            return await self._run_open(stop, journal, notifier)
        finally:
            with contextlib.suppress(Exception):
                await journal.close()
            notifier.close()
            self.stopped.set()

    async def _run_open(
        self, stop: asyncio.Event, journal: Journal, notifier: SystemdNotifier
    ) -> int:
        config = self.config
        trading = self.trading = await TradingStateMachine.restore(journal, clock_ms=self.clock_ms)
        metrics = self.metrics = Metrics(underlyings=self.underlyings, venues=(self.venue_name,))
        # The config's own secrets (API keys, control token, webhook token and URL), whether
        # or not logging was configured with them: an alert body never carries one.
        alerts = self.alerts = AlertDispatcher(
            config.risk.alerts, secrets=SecretRedactor(config.secret_values()), metrics=metrics
        )
        trading.add_listener(alerts.state_listener())
        board = self.board = KillSwitchBoard(
            self._risk_settings(config.risk), trading, alerts=alerts, metrics=metrics
        )
        if self._same_clocks:
            # A restart must not reset the order-rate budgets. (Paper mode judges rates by the
            # wall clock while the journal holds simulated times: nothing to restore there.)
            await board.restore_rates(journal, self.board_clock_ms())
        readiness = Readiness()
        readiness.set("startup", False, "start-up reconciliation not done")
        loop_monitor = LoopMonitor(metrics)
        account = self.account
        venue = account.build_venue()
        executor = self.executor = Executor(
            {self.venue_name: venue},
            journal,
            trading,
            settings=ExecutorSettings(dry_run=config.dry_run),
            clock_ms=self.clock_ms,
            book_delta_coin=self._book_delta_coin,
            position_amount=account.market.position_amount,
            quote=account.market.fresh_quote,
            coin_per_amount=account.market.coin_per_amount,
            on_reject=self._on_reject,
            on_fill_repaired=account.on_fill_repaired,
        )
        account.build_reconciler(journal, executor.note_record)
        board.register_venue(self.venue_name, self.board_clock_ms())
        try:
            async with serve_ops(
                config.metrics, metrics, readiness, loop_monitor=loop_monitor
            ) as ops:
                self.ops_port = ops.port if ops.listening else None
                await self._start_trading(executor)
                commands = ControlCommands(
                    trading=TradingControlAdapter(trading),
                    orders=OrderControlAdapter(executor, self.flatten),
                    audit=JournalAudit(journal),
                    status_source=self.status,
                    clock_ms=self.clock_ms,
                    tunables=self._tunables(),
                    reconciler=self._reconcile_command,
                )
                token = config.control.token.get_secret_value() if config.control.token else None
                async with serve_control(
                    commands,
                    config.control.socket_path,
                    tcp_port=config.control.tcp_port,
                    token=token,
                ):
                    self.control_socket = config.control.socket_path
                    readiness.set("startup", True)
                    notifier.ready("hedging")
                    self.ready.set()
                    log.info(
                        "daemon.ready",
                        venue=self.venue_name,
                        state=trading.state.value,
                        underlyings=list(self.underlyings),
                        control_socket=str(config.control.socket_path),
                        metrics_port=self.ops_port,
                    )
                    await self._supervise(stop, notifier, loop_monitor)
                    notifier.stopping("shutting down")
                    await self._shutdown()
        finally:
            await account.close()
            with contextlib.suppress(Exception):
                await alerts.aclose(timeout_s=1.0)
        return EXIT_OK

    def _risk_settings(self, risk: KillSwitchSettings) -> KillSwitchSettings:
        """The kill-switch limits as the board applies them. With an accelerated daemon clock
        judged on the wall clock (paper mode), the order and notional budgets are per
        simulated minute/hour/day: scaled by `speed`, as that much simulated time passes in
        one wall interval. Staleness and disconnection limits stay wall seconds."""
        if self._same_clocks or self.speed == 1.0:
            return risk
        k = self.speed
        o, n = risk.order_rate, risk.notional_rate
        order_rate = o.model_copy(
            update={
                "max_orders_per_minute": max(1, int(o.max_orders_per_minute * k)),
                "max_orders_per_hour": max(1, int(o.max_orders_per_hour * k)),
                "max_orders_per_day": max(1, int(o.max_orders_per_day * k)),
            }
        )
        notional_rate = n.model_copy(
            update={
                "max_notional_usd_per_minute": n.max_notional_usd_per_minute * k,
                "max_notional_usd_per_hour": n.max_notional_usd_per_hour * k,
                "max_notional_usd_per_day": n.max_notional_usd_per_day * k,
            }
        )
        return risk.model_copy(update={"order_rate": order_rate, "notional_rate": notional_rate})

    async def _start_trading(self, executor: Executor) -> None:
        """The account connected and its orders reconciled, the executor loaded from the
        journal, then the account's book rebuilt and streamed (each step needs the one
        before)."""
        try:
            await self.account.connect_and_reconcile()
        except AccountStartError as exc:
            raise DaemonError(str(exc)) from exc
        await executor.load()
        await self.account.start_feed()

    # ---------------------------------------------------------------- supervision
    async def _supervise(
        self, stop: asyncio.Event, notifier: SystemdNotifier, loop_monitor: LoopMonitor
    ) -> None:
        supervisor = self.supervisor = Supervisor(self._on_crash)
        assert self.reconciler is not None
        reconciler = self.reconciler
        interval_ms = int(self.config.daemon.reconcile_interval_s * 1000)

        async def reconcile_timer() -> None:
            await reconciler.run(interval_ms, sleep_ms=lambda ms: asyncio.sleep(ms / 1000.0))

        async def watchdog() -> None:
            await run_watchdog(notifier, lambda: True, loop_monitor=loop_monitor)
            await asyncio.Event().wait()  # no watchdog configured: idle until stopped

        parts = [
            Part("book-feed", self.account.feed_watch),
            Part("controller", self._controller_loop),
            Part("reconciler", reconcile_timer),
            Part("kill-switch-tick", self._tick_loop),
            Part("venue-checks", self._venue_check_loop),
            Part("watchdog", watchdog),
        ]
        if self.config.daemon.status_line:
            parts.append(Part("status-line", self._status_loop))

        async def stopper() -> None:
            await stop.wait()
            supervisor.stop()

        waiter = asyncio.get_running_loop().create_task(stopper(), name="daemon-stop")
        try:
            await supervisor.run(parts)
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter

    async def _on_crash(self, part: str, exc: BaseException) -> None:
        self.stats.error(f"part {part} crashed: {exc!r}")
        assert self.trading is not None
        await self.trading.trip(ReasonCode.COMPONENT_CRASH, f"{part} crashed: {exc!r}"[:200])

    async def _shutdown(self) -> None:
        """Stop sending, cancel the hedger's open orders, flush the journal; bounded."""
        timeout = self.config.daemon.shutdown_timeout_s
        log.info("daemon.stopping", executions=len(self._exec_tasks))
        try:
            async with asyncio.timeout(timeout):
                if self._exec_tasks:
                    # IOC legs finish in one round trip; give them half the budget.
                    _done, pending = await asyncio.wait(self._exec_tasks, timeout=timeout / 2)
                    for t in pending:
                        t.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                assert self.executor is not None and self.trading is not None
                await self.executor.flush()
                cancelled = await self.executor.cancel_all_open()
                await self.trading.flush()
                log.info("daemon.stopped", cancelled_orders=cancelled)
        except TimeoutError:
            log.error("daemon.shutdown_timeout", timeout_s=timeout)
            self.stats.error("shutdown timed out")

    # ------------------------------------------------------------------- events
    def _note_fill(self, fill: Fill) -> None:
        """A fill of one of the hedger's orders: hedge cost (fee + distance from the mid),
        counted once per trade id."""
        if self.executor is None or fill.label is None or self.executor.record(fill.label) is None:
            return
        if fill.trade_id in self._seen_fills:
            return
        self._seen_fills.add(fill.trade_id)
        self._recent_fills.append(fill.trade_id)
        if len(self._seen_fills) > 20_000:
            self._seen_fills = set(self._recent_fills)
        assert self.venue is not None
        inst = self.venue.instruments().get(fill.instrument)
        if inst is None:
            return
        st = self.stats.per_underlying.get(inst.underlying)
        if st is None:
            return
        index = self.book.index_price(inst.underlying) if self.book is not None else math.nan
        q = self.account.market.quotes.get(fill.instrument)
        paid = fill_cost(
            fill,
            underlying=inst.underlying,
            amount_unit=inst.amount_unit,
            price_unit=inst.price_unit,
            index_usd=index,
            reference_price=q.mid_price if q is not None else fill.price,
        )
        cost = paid.cost_usd
        st.hedge_cost_usd += cost
        st.fees_usd += paid.fee_usd
        st.hedge_notional_usd += paid.notional_usd
        st.fills.append(fill)
        if self.metrics is not None and math.isfinite(cost):
            self.metrics.record_hedge(
                inst.underlying, self.venue_name, cost_usd=cost, notional_usd=paid.notional_usd
            )
        if self.observer is not None:
            self.observer.on_hedge_fill(inst.underlying, fill, cost)

    async def reconcile_now(self) -> ExecReconcileReport:
        """Run the order and fill reconciliation the timer runs (every
        `daemon.reconcile_interval_s`), now; returns its report. Passes never overlap: one
        under way is waited for first. Raises DaemonError before the daemon is started."""
        if self.reconciler is None:
            raise DaemonError("not started: no reconciler yet")
        return await self.reconciler.reconcile()

    async def _reconcile_command(self) -> dict[str, Any]:
        """The operator's `reconcile`: `reconcile_now`'s report as JSON-ready values."""
        return dataclasses.asdict(await self.reconcile_now())

    def _on_reject(self, rejection: OrderRejection) -> None:
        self.stats.error(f"order {rejection.label} rejected: {rejection.code} {rejection.reason}")

    # ------------------------------------------------------------ executor callbacks
    def _book_delta_coin(self, underlying: str) -> float:
        return self._book_delta.get(underlying, math.nan)

    # ----------------------------------------------------------------- controller
    async def _controller_loop(self) -> None:
        interval = self.config.daemon.evaluate_interval_s
        while True:
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            for u in self.underlyings:
                await self.evaluate(u)
            await self._daemon_sleep_s(interval)

    def reload(self) -> bool:
        """Reload hedging policies and risk limits from the config file (SIGHUP). Other
        settings need a restart. A bad file is refused and logged; the old config stays."""
        if self.config_path is None:
            log.warning("daemon.reload_no_file")
            return False
        if self._notifier is not None:
            self._notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("daemon.reload_refused", error=str(exc))
            return False
        finally:
            if self._notifier is not None:
                self._notifier.ready("hedging")
        self.hedging = new.hedging
        self.overrides.clear()
        if self.board is not None:
            self.board.reconfigure(self._risk_settings(new.risk))
        log.info("daemon.reloaded", path=str(self.config_path))
        return True

    async def _hedge_states(self, underlying: str) -> list[HedgeVenueState]:
        assert self.venue is not None and self.feed is not None
        out: list[HedgeVenueState] = []
        for name in self.config.daemon.hedge_instruments.get(underlying, ()):
            inst = self.venue.instruments().get(name)
            if inst is None:
                continue
            quote = self.account.market.fresh_quote(self.venue_name, name)
            if quote is None:
                try:
                    quote = await self.venue.fetch_quote(name)
                except VenueError as exc:
                    log.warning("daemon.quote_unavailable", instrument=name, error=str(exc)[:200])
                    continue
                self.account.market.quotes[name] = quote
            per_amount = 1.0 / quote.mid_price if inst.amount_unit is AmountUnit.USD else 1.0
            pos = self.feed.positions.get(name)
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

    async def _with_books(self, venues: list[HedgeVenueState]) -> list[HedgeVenueState]:
        """`venues` with their order book depth (the same list when a fetch fails)."""
        assert self.venue is not None
        out: list[HedgeVenueState] = []
        for v in venues:
            try:
                book = await self.venue.fetch_order_book(
                    v.name, self.venue_settings.depth_notional_usd
                )
            except VenueError as exc:
                log.warning("daemon.book_unavailable", instrument=v.name, error=str(exc)[:200])
                return venues
            out.append(replace(v, book=book))
        return out

    async def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One evaluation of one underlying; returns the decision (None when the inputs were
        refused)."""
        assert self.book is not None and self.executor is not None and self.board is not None
        st = self.stats.per_underlying[underlying]
        now = self.clock_ms()
        numeraire = self.config.numeraire
        try:
            snap = self.book.underlying_snapshot(underlying, now)
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
        venues = await self._hedge_states(underlying)
        if not venues:
            return None
        policy_name, policy = self.policy_for(underlying)
        in_flight = self.executor.in_flight_orders(underlying) + self._unconfirmed(venues, now)
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
                self.hedging.cost,
                self.hedging.router,
            )

        decision = decide_on(venues)
        if decision.trades:
            # Only a trade needs depth (the router sizes and prices through the book): fetch
            # it then, not on every evaluation, and decide again with it.
            deep = await self._with_books(venues)
            if deep is not venues:
                decision = decide_on(deep)
        self._observe(underlying, st, snap, decision)
        self.board.on_delta(
            self.board_clock_ms(), underlying, decision.book_delta_coin, risk.spot_usd
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
        if decision.trades and self.trading is not None:
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
        if self.metrics is not None:
            num = self.config.numeraire
            with contextlib.suppress(ValueError):
                self.metrics.set_greeks(
                    underlying,
                    delta_coin=snap.delta_coin(num, projected=False),
                    gamma_coin_per_usd=snap.total.gamma_coin_per_usd(num),
                    vega_usd=snap.total.vega_usd_per_vol,
                    theta_usd_per_day=snap.total.theta_usd_per_day,
                )
                self.metrics.set_band(
                    underlying,
                    target_coin=d.target_delta_coin,
                    lower_coin=min(d.band_lower_coin, d.target_delta_coin),
                    upper_coin=max(d.band_upper_coin, d.target_delta_coin),
                )

    def _pre_trade(self, decision: HedgeDecision) -> list[HedgeLeg]:
        """The legs the kill switches let through (`check_order` per leg, judged at the
        largest single order the executor will send for it); refusals are logged."""
        assert self.board is not None and self.venue is not None and self.book is not None
        st = self.stats.per_underlying[decision.underlying]
        if self.account.orders_blocked():
            # The adapter would fall back to ccxt's REST client, whose order requests are GETs
            # that aiohttp may re-send when a connection drops: wait for the session instead.
            st.blocked_legs += len(decision.legs)
            log.warning(
                "daemon.order_session_down",
                decision_id=decision.decision_id,
                venue=self.venue_name,
            )
            return []
        before = decision.net_delta_coin
        index = self.book.index_price(decision.underlying)
        out: list[HedgeLeg] = []
        for i, leg in enumerate(decision.legs):
            inst = self.venue.instruments().get(leg.instrument)
            price_usd = (
                leg.limit_price * index if leg.price_unit is PriceUnit.COIN else (leg.limit_price)
            )
            notional = leg.amount if leg.amount_unit is AmountUnit.USD else leg.amount * price_usd
            # The executor sends a leg in slices of at most max_slice_delta_coin.
            slice_cap_usd = ExecutorSettings().max_slice_delta_coin * index
            per_order = min(notional, slice_cap_usd) if inst is not None else notional
            check = self.board.check_order(
                now_ms=self.board_clock_ms(),
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
        self._exec_tasks.add(task)
        task.add_done_callback(self._exec_tasks.discard)

    async def _execute(self, decision: HedgeDecision, base: dict[str, float]) -> None:
        assert self.executor is not None and self.board is not None
        self.stats.decisions_trading += 1
        self.board.on_hedge_sent(decision.underlying)
        try:
            result = await self.executor.execute(decision)
        except Exception as exc:
            log.exception("daemon.execute_failed", decision_id=decision.decision_id)
            self.stats.error(f"execute {decision.decision_id[:8]}: {exc!r}")
            return
        self._after_execute(decision, result, base)

    def _after_execute(
        self, decision: HedgeDecision, result: DecisionResult, base: dict[str, float]
    ) -> None:
        assert self.board is not None
        st = self.stats.per_underlying[decision.underlying]
        now = self.board_clock_ms()
        traded = False
        for leg in result.legs:
            if leg.outcome in (LegOutcome.BLOCKED, LegOutcome.DUPLICATE, LegOutcome.DRY_RUN):
                continue
            self.board.on_order_outcome(now, leg.outcome is not LegOutcome.REJECTED, leg.detail)
            traded = traded or leg.filled_amount > 0
            if leg.filled_amount > 0:
                side = decision.legs[leg.leg].side.sign
                held = self.account.market.position_amount(self.venue_name, leg.instrument) or 0.0
                start = base.get(leg.instrument, held)
                current = self._expected_pos.get(leg.instrument, (start, 0.0))[0]
                self._expected_pos[leg.instrument] = (
                    current + side * leg.filled_amount,
                    time.monotonic() + _UNCONFIRMED_TIMEOUT_S,
                )
        if traded:
            st.hedges += 1

    # ---------------------------------------------------------------- flatten
    async def flatten(self, underlying: str | None, actor: str) -> dict[str, Any]:
        """The operator's flatten: close the hedge positions (the configured hedge
        instruments; never options) of `underlying`, or of every underlying when None, with
        reduce-only IOC orders at a protected price (sliced when large), in any trading state
        (HALTED included). Journalled like any order under decision id
        `flatten-<UNDERLYING>-<ts_ms>`. Returns what was sent, per underlying."""
        if underlying is None:
            unds = self.underlyings
        else:
            u = underlying.upper()
            if u not in self.underlyings:
                raise CommandRefusedError(
                    f"unknown underlying {underlying!r}; known: {', '.join(self.underlyings)}"
                )
            unds = (u,)
        if self.account.orders_blocked():
            raise CommandRefusedError("the venue's order session is down: nothing can be sent")
        log.warning("daemon.flatten", actor=actor, underlyings=list(unds))
        out: dict[str, Any] = {}
        for u in unds:
            out[u] = await self._flatten_one(u)
        return {"underlyings": out}

    async def _flatten_one(self, underlying: str) -> dict[str, Any]:
        assert self.venue is not None and self.executor is not None and self.board is not None
        venue = self.venue
        now = self.clock_ms()
        hedge_names = set(self.config.daemon.hedge_instruments.get(underlying, ()))
        try:
            positions = await venue.fetch_positions(underlying)
        except VenueError as exc:
            raise CommandRefusedError(f"{underlying}: positions unavailable: {exc}") from exc
        index = self.book.index_price(underlying) if self.book is not None else math.nan
        slippage_bps = self.executor.settings.max_slippage_bps
        legs: list[HedgeLeg] = []
        skipped: list[dict[str, Any]] = []
        for ev in positions:
            pos = ev.position
            inst = venue.instruments().get(pos.instrument)
            if inst is None or inst.kind is InstrumentKind.OPTION:
                continue  # options are the book, never flattened
            if pos.instrument not in hedge_names:
                skipped.append({"instrument": pos.instrument, "why": "not a hedge instrument"})
                continue
            amount = round_down(abs(pos.amount), inst.amount_step)
            if amount < inst.min_amount or amount <= 0:
                skipped.append({"instrument": pos.instrument, "why": "below the minimum size"})
                continue
            try:
                quote = await venue.fetch_quote(pos.instrument)
            except VenueError as exc:
                skipped.append({"instrument": pos.instrument, "why": f"no quote: {exc}"[:200]})
                continue
            side = OrderSide.SELL if pos.amount > 0 else OrderSide.BUY
            mid = quote.mid_price
            per_amount = 1.0 / mid if inst.amount_unit is AmountUnit.USD else 1.0
            try:
                limit = protected_price(side, mid, slippage_bps, inst.tick_size)
            except ValueError as exc:
                skipped.append({"instrument": pos.instrument, "why": str(exc)[:200]})
                continue
            price_usd = limit * index if inst.price_unit is PriceUnit.COIN else limit
            notional = amount if inst.amount_unit is AmountUnit.USD else amount * price_usd
            slice_cap_usd = self.executor.settings.max_slice_delta_coin * index
            check = self.board.check_order(
                now_ms=self.board_clock_ms(),
                notional_usd=min(notional, slice_cap_usd) if slice_cap_usd > 0 else notional,
                price_usd=price_usd,
                reference_price_usd=index,
                delta_before_coin=0.0,
                delta_after_coin=0.0,
                is_operator_flatten=True,
            )
            if not check.allowed:
                skipped.append({"instrument": pos.instrument, "why": check.reason})
                continue
            legs.append(
                HedgeLeg(
                    venue=self.venue_name,
                    instrument=pos.instrument,
                    side=side,
                    amount=amount,
                    amount_unit=inst.amount_unit,
                    delta_coin=side.sign * amount * per_amount,
                    style=HedgeStyle.TAKER,
                    limit_price=limit,
                    price_unit=inst.price_unit,
                    expected_cost_usd=0.0,
                )
            )
        result: dict[str, Any] = {"decision_id": None, "legs": [], "skipped": skipped}
        if not legs:
            return result
        book_delta = self._book_delta.get(underlying, 0.0)
        net = book_delta if math.isfinite(book_delta) else 0.0
        traded = sum(leg.delta_coin for leg in legs)
        decision = HedgeDecision(
            decision_id=f"flatten-{underlying}-{now}",
            underlying=underlying,
            policy="operator-flatten",
            ts_ms=now,
            trigger=HedgeTrigger.NONE,
            net_delta_coin=net,
            book_delta_coin=net,
            in_flight_delta_coin=0.0,
            target_delta_coin=net + traded,
            band_lower_coin=net + traded,
            band_upper_coin=net + traded,
            wanted_coin=traded,
            delta_after_coin=net + traded,
            legs=tuple(legs),
            expected_cost_usd=0.0,
            lambda_frac=0.0,
            gamma_coin_per_usd=0.0,
            spot_usd=index if math.isfinite(index) else 0.0,
        )
        base = {
            leg.instrument: self.account.market.position_amount(leg.venue, leg.instrument) or 0.0
            for leg in legs
        }
        res = await self.executor.execute(decision, operator_flatten=True)
        self._after_execute(decision, res, base)
        result["decision_id"] = decision.decision_id
        result["legs"] = [
            {
                "instrument": leg.instrument,
                "side": str(leg.side),
                "amount": leg.amount,
                "amount_unit": str(leg.amount_unit),
                "limit_price": leg.limit_price,
                "outcome": str(r.outcome),
                "filled_amount": r.filled_amount,
                "labels": list(r.labels),
                "detail": r.detail,
            }
            for r in res.legs
            for leg in (decision.legs[r.leg],)
        ]
        log.warning("daemon.flattened", decision_id=decision.decision_id, legs=result["legs"])
        return result

    # ------------------------------------------------------------ venue checks
    async def _venue_check_loop(self) -> None:
        """Clock skew, margin and the daily hedge loss, every `_VENUE_CHECK_INTERVAL_S` wall
        seconds. A venue error skips that check (the disconnection and stale-data switches
        judge an unreachable venue); anything else is a crash of this part (HALTED)."""
        while True:
            checks = self.account.checks
            # Named as before the account's checks left the daemon (operators grep them).
            for name, check in (
                ("_check_clock_skew", checks.check_clock_skew),
                ("_check_margin", checks.check_margin),
                ("_check_daily_loss", self._check_daily_loss),
            ):
                try:
                    await check()
                except VenueError as exc:
                    log.warning("daemon.venue_check_failed", check=name, error=str(exc))
            await asyncio.sleep(_VENUE_CHECK_INTERVAL_S)

    async def _check_daily_loss(self) -> None:
        """The day's hedge P&L from the journal's fills, marked at the hedge instruments'
        latest mids (fetched when no quote streams for one). Positions carried into the day
        are not counted (only the day's trades)."""
        assert self.venue is not None and self.board is not None and self.journal is not None
        now = self.clock_ms()
        settings = self.board.settings.daily_loss
        if not settings.enabled:
            return
        fills = await self.journal.fills_since(day_start_ms(now, settings.day_start_hour_utc))
        instruments = await self.account.instruments_of({f.instrument for f in fills})
        marks: dict[str, float] = {}
        for name in {f.instrument for f in fills}:
            inst = instruments.get(name)
            if inst is None or inst.is_option:
                continue
            mark = self.account.market.marks.get(name, math.nan)
            if not (math.isfinite(mark) and mark > 0):
                q = self.account.market.quotes.get(name)
                mark = q.mid_price if q is not None else math.nan
            if not (math.isfinite(mark) and mark > 0):
                mark = (await self.venue.fetch_ticker(name)).mark_price
            marks[name] = mark
        index = {
            u: self.book.index_price(u) if self.book is not None else math.nan
            for u in self.underlyings
        }
        for name in marks:  # hedges of an underlying the book does not follow (or no index yet)
            u = instruments[name].underlying
            if not (math.isfinite(index.get(u, math.nan)) and index[u] > 0):
                index[u] = (await self.venue.fetch_index(u)).price_usd
        # Judged on the fills read above (`check_daily_loss` would read them again, and a
        # fill landing in between would have no mark).
        estimate = hedge_pnl_usd(fills, instruments, marks, index)
        self.board.on_daily_pnl(now, estimate)
        log.debug(
            "daemon.daily_pnl", pnl_usd=estimate.pnl_usd, missing=estimate.missing, marks=marks
        )

    # ---------------------------------------------------------------- timers
    async def _tick_loop(self) -> None:
        assert self.board is not None and self.journal is not None and self.executor is not None
        ticks = 0
        while True:
            now = self.board_clock_ms()
            self.account.note_positions_seen(now)
            self.board.tick(now)
            ticks += 1
            if ticks % _CROSS_CHECK_TICKS == 0:
                self.account.cross_check(now)
            self._orders_sent_total = await self.journal.count_intents_since(0)
            if self.metrics is not None:
                # Orders sent since this start (the journal's history is not re-counted).
                if self._orders_counted is not None:
                    for _ in range(max(0, self._orders_sent_total - self._orders_counted)):
                        self.metrics.record_order_sent(self.venue_name)
                self._orders_counted = self._orders_sent_total
                self.metrics.set_open_orders(self.venue_name, len(self.executor.open_records()))
            await asyncio.sleep(1.0)

    async def _status_loop(self) -> None:
        tty = sys.stderr.isatty()
        interval = 0.5 if tty else self.config.daemon.status_interval_s
        while True:
            await asyncio.sleep(interval)
            line = self.status_line()
            if tty:
                sys.stderr.write("\r\x1b[2K" + line)
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

    # ------------------------------------------------------------------ status
    def status_line(self) -> str:
        """One line: state, per underlying delta against its band, hedges, cost."""
        state = self.trading.state.value.upper() if self.trading is not None else "STARTING"
        parts = [f"hedgerd {state}"]
        for u, st in self.stats.per_underlying.items():
            lo, _target, hi = st.last_band
            share = st.in_band_samples / st.samples if st.samples else math.nan
            parts.append(
                f"{u} Δ {st.last_delta_coin:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                f"in band {share:.0%} hedges {st.hedges} cost ${st.hedge_cost_usd:,.2f}"
            )
        return " | ".join(parts)

    def status(self) -> dict[str, Any]:
        """The control API's status (the trading state is added by the command layer)."""
        unds: dict[str, Any] = {}
        for u, st in self.stats.per_underlying.items():
            g = st.last_greeks
            num = self.config.numeraire
            lo, target, hi = st.last_band
            unds[u] = {
                "delta": _num(st.last_delta_coin),
                "gamma": _num(g.total.gamma_coin_per_usd(num)) if g else None,
                "vega": _num(g.total.vega_usd_per_vol) if g else None,
                "theta": _num(g.total.theta_usd_per_day) if g else None,
                "index_usd": _num(g.index_price_usd) if g else None,
                "band": {"lower": _num(lo), "upper": _num(hi)},
                "target": _num(target),
                "policy": self.policy_for(u)[0],
                "last_decision": st.last_decision,
                "hedges": st.hedges,
                "hedge_cost_usd": st.hedge_cost_usd,
                "time_in_band": st.in_band_samples / st.samples if st.samples else None,
            }
        open_orders = []
        instruments = self.venue.instruments() if self.venue is not None else {}
        for r in self.executor.open_records() if self.executor is not None else ():
            inst = instruments.get(r.instrument)
            open_orders.append(
                {
                    "label": r.label,
                    "instrument": r.instrument,
                    "underlying": inst.underlying if inst is not None else None,
                    "side": str(r.side),
                    "amount": r.amount,
                    "amount_unit": str(r.amount_unit),
                    "limit_price": r.limit_price,
                    "price_unit": str(inst.price_unit) if inst is not None else None,
                    "status": str(r.status),
                }
            )
        health = self.feed.health() if self.feed is not None else []
        freshness = [
            {"source": str(h.source), "key": h.key, "age_s": h.age_s, "stale": h.stale}
            for h in health
        ]
        # The list is cut to keep the document small; the summary covers every source.
        summary = summarize_freshness((str(h.source), h.key, h.age_s, h.stale) for h in health)
        return {
            "venue": self.venue_name,
            "mode": self.venue_settings.mode,
            "dry_run": self.config.dry_run,
            "speed": self.speed,
            "numeraire": self.config.numeraire,
            "now_ms": self.clock_ms(),
            "started_ms": self.stats.started_ms,
            "units": STATUS_UNITS,
            "underlyings": unds,
            "open_orders": open_orders,
            "orders_sent_total": self._orders_sent_total,
            "executions_in_flight": len(self._exec_tasks),
            "data_freshness": freshness[:50],
            "data_freshness_summary": [f.to_json() for f in summary],
            "errors": len(self.stats.errors),
        }

    # ---------------------------------------------------------------- tunables
    def _tunables(self) -> dict[str, Tunable]:
        out: dict[str, Tunable] = {}
        for u in self.underlyings:
            for key, parse, fld in (
                ("target_coin", parse_finite_float, "target_delta_coin"),
                ("hedge_ratio", parse_fraction, "hedge_ratio"),
                ("band_coin", parse_positive_float, None),
            ):
                name = f"hedging.{u}.{key}"
                out[name] = Tunable(
                    key=name,
                    description=f"{key} of {u}'s policy",
                    parse=parse,
                    apply=self._setter(u, fld),
                )
        return out

    def _setter(self, underlying: str, fld: str | None) -> Callable[[Any], Any]:
        async def apply(value: Any) -> None:
            _name, policy = self.policy_for(underlying)
            if fld is not None:
                update = {fld: float(value)}
            elif policy.kind == "band":
                update = {"halfwidth_coin": float(value)}
            elif policy.kind == "timer":
                raise CommandRefusedError("a timer policy has no band")
            else:
                update = {"min_halfwidth_coin": float(value)}
            new = type(policy).model_validate({**policy.model_dump(), **update})
            self.overrides[underlying] = new
            log.info("daemon.tuned", underlying=underlying, **update)

        return apply


def _with_legs(decision: HedgeDecision, legs: list[HedgeLeg]) -> HedgeDecision:
    traded = sum(leg.delta_coin for leg in legs)
    return replace(
        decision,
        legs=tuple(legs),
        delta_after_coin=decision.net_delta_coin + traded,
        expected_cost_usd=sum(leg.expected_cost_usd for leg in legs),
    )


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _float(x: Any) -> float:
    """A venue figure as a float (NaN when it is not a number)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def install_signals(daemon: Daemon, stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT: graceful stop; SIGHUP: reload the live-tunable config."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)


async def run_daemon(config: HedgerdConfig, *, config_path: Path | None, live: bool) -> int:
    """`hedgerd run`: the daemon with signal handling, until SIGTERM/SIGINT."""
    daemon = Daemon(config, config_path=config_path, confirmed_live=live)
    stop = asyncio.Event()
    install_signals(daemon, stop)
    return await daemon.run(stop)


def _run_command(args: Any) -> int:
    from hedgerd.ops.logging import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    live = live_confirmed(bool(args.live))
    try:
        check_live(config, live)
    except DaemonError as exc:
        print(f"hedgerd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log.level, config.log.format, secrets=config.secret_values())
    try:
        return asyncio.run(run_daemon(config, config_path=args.config, live=live))
    except (DaemonError, ConfigError, ControlServerError, JournalError, ValueError) as exc:
        print(f"hedgerd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except VenueError as exc:
        print(f"hedgerd: venue error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def add_parser(sub: Any) -> Any:
    """Register `hedgerd run`."""
    p = sub.add_parser("run", help="run the hedging daemon", description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, required=True, help="TOML config file")
    p.add_argument(
        LIVE_CONFIRM_FLAG,
        dest="live",
        action="store_true",
        help=f"confirm that mode 'live' venues trade real money (or {LIVE_CONFIRM_ENV}=yes)",
    )
    p.set_defaults(func=_run_command)
    return p


__all__ = [
    "Daemon",
    "DaemonError",
    "DaemonStats",
    "TradingState",
    "add_parser",
    "check_live",
    "install_signals",
    "live_confirmed",
    "position_diffs_coin",
    "run_daemon",
    "underlying_risk",
]
