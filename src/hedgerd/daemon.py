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
no order sent after that, the requests in flight resolved, then the hedger's orders are
cancelled and checked and the journal flushed, within `daemon.shutdown_timeout_s`); SIGHUP
reloads the live-tunable config (hedging policies, risk limits).

The work is done by services this module only builds and runs: one
`accounts.runtime.AccountRuntime` per `[venues.NAME]` account (session, reconciler, book
feed, event routing, book integrity, clock and margin checks, its own trading state under
the portfolio's: `risk.account_state`) and the portfolio's (`portfolio/`: `HedgeLoop` over
the summed book, `FillLedger`, `PolicyBook`, `Flattener`, `DailyLossCheck`, `StatusReport`),
all over one `PortfolioParts`. The hedge loop evaluates every underlying every
`daemon.evaluate_interval_s` of the daemon's clock: book snapshot → `UnderlyingRisk` +
`HedgeVenueState`s → `decide` → kill-switch pre-trade checks per leg → `executor.execute` as
a task (the next evaluation sees its in-flight delta) → `after`.

Clocks: `clock_ms` is the daemon's clock (UTC epoch ms; the venue's time: in paper mode the
simulator's accelerated clock). `board_clock_ms` is what the kill switches judge durations
(staleness, disconnection, rate windows) against: the wall clock in paper mode, so an
accelerated simulator does not turn a 0.3 s event-loop hiccup into "6 s stale".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from hedgerd.accounts.integrity import position_diffs_coin
from hedgerd.accounts.market import AccountMarkets
from hedgerd.accounts.runtime import AccountRuntime, AccountStartError
from hedgerd.book.greeks_book import GreeksBook
from hedgerd.config import ConfigError, HedgerdConfig, load_config
from hedgerd.control.adapters import JournalAudit, OrderControlAdapter, TradingControlAdapter
from hedgerd.control.commands import ControlCommands, Tunable
from hedgerd.control.server import ControlServerError, serve_control
from hedgerd.delegate import Kept
from hedgerd.execution.client_ids import codec_for
from hedgerd.execution.executor import Executor, ExecutorSettings
from hedgerd.execution.journal import Journal, JournalError
from hedgerd.execution.journal_db import PostgresTarget
from hedgerd.execution.reconcile import Reconciler
from hedgerd.execution.reconcile import ReconcileReport as ExecReconcileReport
from hedgerd.ha.lease import boottime_s
from hedgerd.ha.takeover import DaemonHa
from hedgerd.hedging.adapter import underlying_risk
from hedgerd.hedging.config import PolicyConfig
from hedgerd.model import Fill, HedgeDecision
from hedgerd.ops.health import LoopMonitor, Readiness, serve_ops
from hedgerd.ops.logging import SecretRedactor
from hedgerd.ops.metrics import Metrics
from hedgerd.ops.supervisor import Part, Supervisor
from hedgerd.ops.systemd import SystemdNotifier, run_watchdog
from hedgerd.portfolio.daily_loss import DailyLossCheck
from hedgerd.portfolio.fills import FillLedger
from hedgerd.portfolio.flatten import Flattener
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.parts import Clocks, PortfolioParts
from hedgerd.portfolio.policies import PolicyBook
from hedgerd.portfolio.scope import PortfolioScope, portfolio_underlyings
from hedgerd.portfolio.stats import DaemonStats, HedgeObserver, UnderlyingStats
from hedgerd.portfolio.status import StatusReport
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.alerts import AlertDispatcher
from hedgerd.risk.kill_switches import KillSwitchBoard
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import (
    ReasonCode,
    TradingState,
    TradingStateMachine,
    TradingStateSnapshot,
)
from hedgerd.venues.base import DeadManVenue, FeedVenue, VenueError, VenueEvent
from hedgerd.venues.book_feed import BookFeed, DeltaDivergence, ReconcileReport

log = structlog.get_logger(__name__)

LIVE_CONFIRM_ENV = "HEDGERD_LIVE_CONFIRM"
LIVE_CONFIRM_FLAG = "--i-understand-this-is-live"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

#: Kill-switch ticks (about 1 s each) between two comparisons with the venue's own delta.
_CROSS_CHECK_TICKS = 5
#: Wall seconds between two venue checks (clock skew, margin, daily hedge loss).
_VENUE_CHECK_INTERVAL_S = 2.0


class DaemonError(Exception):
    """The daemon cannot start (unsafe or unusable configuration, venue unreachable)."""


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _export_account_state(metrics: Metrics, venue: str, snapshot: TradingStateSnapshot) -> None:
    metrics.set_account_trading_state(venue, snapshot.state)


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
        ha_monotonic_s: Callable[[], float] | None = None,
    ) -> None:
        if not config.venues:
            raise DaemonError("the config has no venue account ([venues.NAME] section)")
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
        self.stats = DaemonStats()
        self.clocks = Clocks(self.clock_ms, self.board_clock_ms, self.speed)
        #: The portfolio-wide parts (journal, trading state, board, ...): built in `run`.
        self.parts = PortfolioParts()
        #: One runtime per `[venues.NAME]` account, in config order; `account` is the first.
        self.accounts: dict[str, AccountRuntime] = {
            name: AccountRuntime(
                name,
                settings,
                config,
                self.clocks,
                self.parts,
                on_fill=self._note_fill,
                on_error=self.stats.error,
            )
            for name, settings in config.venues.items()
        }
        self.account = next(iter(self.accounts.values()))
        self.venue_name, self.venue_settings = self.account.name, self.account.settings
        self.underlyings = portfolio_underlyings(self.accounts)
        for u in self.underlyings:
            self.stats.per_underlying[u] = UnderlyingStats()
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self._reload = asyncio.Event()
        self._orders_sent_total = 0
        # The portfolio services, over every account.
        scope = PortfolioScope(config, self.clocks, self.parts, self.stats, self.accounts)
        self.policies = PolicyBook(config.hedging, self.underlyings)
        self.fills = FillLedger(scope, observer)
        self.hedge_loop = HedgeLoop(
            scope,
            self.policies,
            observer=observer,
            reload_requested=self._reload,
            reload=self.reload,
        )
        self.flattener = Flattener(scope, self.hedge_loop)
        self.daily_loss = DailyLossCheck(scope)
        self.status_report = StatusReport(
            scope,
            self.hedge_loop,
            orders_sent_total=lambda: self._orders_sent_total,
        )
        # Built in `run`.
        self.supervisor: Supervisor | None = None
        self.control_socket: Path | None = None
        self._notifier: SystemdNotifier | None = None
        self._orders_counted: int | None = None
        self.ops_port: int | None = None
        #: `[ha] enabled`: the lease and the roles (built in `run`); `ha_monotonic_s`: the
        #: lease's clock (tests give each node its own).
        self.ha: DaemonHa | None = None
        self._ha_monotonic_s = ha_monotonic_s

    # The parts live in the services that use them (`parts`: portfolio-wide; `account`:
    # the venue account's): the daemon's attributes of the same names read and set them there.
    journal = Kept[Journal | None]("parts")
    trading = Kept[TradingStateMachine | None]("parts")
    board = Kept[KillSwitchBoard | None]("parts")
    alerts = Kept[AlertDispatcher | None]("parts")
    metrics = Kept[Metrics | None]("parts")
    executor = Kept[Executor | None]("parts")
    venue = Kept[FeedVenue | None]("account.parts")
    reconciler = Kept[Reconciler | None]("account.parts")
    book = Kept[GreeksBook | None]("account.parts")
    feed = Kept[BookFeed | None]("account.parts")

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

    # The portfolio services, under the names the control API, paper mode and tests use.
    @property
    def _exec_tasks(self) -> set[asyncio.Task[None]]:
        return self.hedge_loop.exec_tasks

    def _note_fill(self, fill: Fill) -> None:
        # The account is built before the ledger (which reads the account's market data).
        self.fills.note_fill(fill)

    def policy_for(self, underlying: str) -> tuple[str, PolicyConfig]:
        return self.policies.policy_for(underlying)

    async def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One evaluation of one underlying (`HedgeLoop.evaluate`)."""
        return await self.hedge_loop.evaluate(underlying)

    async def flatten(
        self, underlying: str | None, actor: str, venue: str | None = None
    ) -> dict[str, Any]:
        """The operator's flatten (`Flattener.flatten`)."""
        return await self.flattener.flatten(underlying, actor, venue)

    def status(self) -> dict[str, Any]:
        """The control API's status (`StatusReport.status`)."""
        out = self.status_report.status()
        if self.ha is not None:
            out["ha"] = self.ha.status()
        return out

    def status_line(self) -> str:
        return self.status_report.status_line()

    def _tunables(self) -> dict[str, Tunable]:
        return self.policies.tunables()

    async def _check_daily_loss(self) -> None:
        await self.daily_loss.check()

    # -------------------------------------------------------------------- helpers
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
        location = config.journal.location()  # a SQLite path or a PostgreSQL target
        if isinstance(location, Path):
            location.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # HA: the lease fences the writes; a writer lock would block a takeover.
        journal = self.journal = await Journal.open(location, exclusive=not config.ha.enabled)
        if config.ha.enabled:
            assert isinstance(location, PostgresTarget)  # the config requires a url
            self.ha = DaemonHa(
                self, config.ha, location, monotonic_s=self._ha_monotonic_s or boottime_s
            )
            journal.state_guard = self.ha.node.state_guard
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
        states = self.parts.states = await AccountStates.restore(
            journal, trading, self.accounts, clock_ms=self.clock_ms
        )
        metrics = self.metrics = Metrics(underlyings=self.underlyings, venues=tuple(self.accounts))
        # The config's own secrets (API keys, control token, webhook token and URL), whether
        # or not logging was configured with them: an alert body never carries one.
        alerts = self.alerts = AlertDispatcher(
            config.risk.alerts, secrets=SecretRedactor(config.secret_values()), metrics=metrics
        )
        trading.add_listener(alerts.state_listener())
        for name, machine in states.accounts.items():
            metrics.set_account_trading_state(name, machine.state)
            machine.add_listener(functools.partial(_export_account_state, metrics, name))
        board = self.board = KillSwitchBoard(
            self._risk_settings(config.risk), trading, alerts=alerts, metrics=metrics
        )
        board.accounts = states
        if self._same_clocks:
            # A restart must not reset the order-rate budgets. (Paper mode judges rates by the
            # wall clock while the journal holds simulated times: nothing to restore there.)
            await board.restore_rates(journal, self.board_clock_ms())
        readiness = Readiness()
        readiness.set("startup", False, "start-up reconciliation not done")
        loop_monitor = LoopMonitor(metrics)
        venues = {name: a.build_venue() for name, a in self.accounts.items()}
        if self.ha is not None:
            for venue in venues.values():
                if isinstance(venue, DeadManVenue):
                    venue.dead_man_by_role = True  # armed only while leading (ha/takeover.py)
        markets = AccountMarkets({name: a.market for name, a in self.accounts.items()})
        executor = self.executor = Executor(
            venues,
            journal,
            trading,
            settings=self._executor_settings(config.risk),
            clock_ms=self.clock_ms,
            book_delta_coin=self.hedge_loop.book_delta_coin,
            position_amount=markets.position_amount,
            quote=markets.fresh_quote,
            coin_per_amount=markets.coin_per_amount,
            on_reject=self.fills.on_reject,
            on_fill_repaired=self._on_fill_repaired_any,
            states=states,
            client_ids={
                name: codec_for(a.settings.exchange, config.client_id_tag(name))
                for name, a in self.accounts.items()
            },
            epoch=self.ha.node.epoch if self.ha is not None else None,
            intent_guard=self.ha.node.intent_guard if self.ha is not None else None,
            request_ttl_ms=config.ha.request_ttl_ms if self.ha is not None else None,
            order_budget=lambda flatten: board.check_next_order(
                self.board_clock_ms(), is_operator_flatten=flatten
            ),
        )
        for account in self.accounts.values():
            account.build_reconciler(journal, executor.note_record)
            board.register_venue(account.name, self.board_clock_ms())
        try:
            async with serve_ops(
                config.metrics, metrics, readiness, loop_monitor=loop_monitor
            ) as ops:
                self.ops_port = ops.port if ops.listening else None
                await self._start_trading(executor)
                commands = ControlCommands(
                    trading=TradingControlAdapter(trading, states),
                    orders=OrderControlAdapter(executor, self.flatten, tuple(self.accounts)),
                    audit=JournalAudit(journal),
                    status_source=self.status,
                    clock_ms=self.clock_ms,
                    tunables=self._tunables(),
                    reconciler=self._reconcile_command,
                    handoff=self.ha.handoff if self.ha is not None else None,
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
                        venues=list(self.accounts),
                        state=trading.state.value,
                        underlyings=list(self.underlyings),
                        control_socket=str(config.control.socket_path),
                        metrics_port=self.ops_port,
                    )
                    await self._supervise(stop, notifier, loop_monitor)
                    notifier.stopping("shutting down")
                    await self._shutdown()
        finally:
            for account in self.accounts.values():
                await account.close()
            with contextlib.suppress(Exception):
                await alerts.aclose(timeout_s=1.0)
        return EXIT_OK

    def _executor_settings(self, risk: KillSwitchSettings) -> ExecutorSettings:
        """How the executor works orders: slices worth at most the order-notional switch's
        limit, so that a large hedge goes out as orders the switch lets through (it refuses
        a larger one and halts); with `cancel_on_disconnect`, a leg's later orders wait for
        the order session as the first one does (`HedgeLoop._pre_trade`)."""
        on = risk.order_notional.enabled
        cap = risk.order_notional.max_order_notional_usd if on else None
        return ExecutorSettings(
            dry_run=self.config.dry_run,
            max_slice_notional_usd=cap,
            orders_need_session=any(
                a.settings.cancel_on_disconnect for a in self.accounts.values()
            ),
        )

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
        """Every account connected and its orders reconciled, the executor loaded from the
        journal, then each account's book rebuilt and streamed (each step needs the one
        before; a journal's open orders may be on any account)."""
        for account in self.accounts.values():
            try:
                # An HA node reconciles when it takes the lease, not as a standby.
                await account.connect_and_reconcile(reconcile=self.ha is None)
            except AccountStartError as exc:
                raise DaemonError(f"{account.name}: {exc}") from exc
        await executor.load()
        for account in self.accounts.values():
            await account.start_feed()

    # ---------------------------------------------------------------- supervision
    async def _supervise(
        self, stop: asyncio.Event, notifier: SystemdNotifier, loop_monitor: LoopMonitor
    ) -> None:
        supervisor = self.supervisor = Supervisor(self._on_crash)
        interval_ms = int(self.config.daemon.reconcile_interval_s * 1000)

        def reconcile_timer(reconciler: Reconciler) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                await reconciler.run(interval_ms, sleep_ms=lambda ms: asyncio.sleep(ms / 1000.0))

            return run

        async def watchdog() -> None:
            await run_watchdog(notifier, lambda: True, loop_monitor=loop_monitor)
            await asyncio.Event().wait()  # no watchdog configured: idle until stopped

        # One account keeps the part names it always had (operators and alerts know them).
        one = len(self.accounts) == 1
        parts: list[Part] = []
        for account in self.accounts.values():
            assert account.reconciler is not None
            suffix = "" if one else f":{account.name}"
            parts.append(Part(f"book-feed{suffix}", account.feed_watch))
            parts.append(Part(f"reconciler{suffix}", reconcile_timer(account.reconciler)))
        parts += [
            Part("controller", self.hedge_loop.run),
            Part("kill-switch-tick", self._tick_loop),
            Part("venue-checks", self._venue_check_loop),
        ]
        if self.ha is not None:
            # A standby trades, reconciles and judges nothing: those parts run while ACTIVE.
            parts = [Part(p.name, functools.partial(self.ha.node.gate, p.run)) for p in parts]
            parts += [Part("ha-lease", self.ha.node.run), Part("ha-metrics", self.ha.watch)]
        parts.append(Part("watchdog", watchdog))
        if self.config.daemon.status_line:
            parts.append(Part("status-line", self.status_report.run_line_loop))

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
        """Stop sending, let the requests in flight resolve, cancel the hedger's open orders
        and check none is left, flush the journal; bounded by `shutdown_timeout_s`.

        The order matters for money: an order sent after the cancel-all would rest on the
        venue with nobody to cancel it (an order of an earlier run is not covered by this
        connection's cancel-on-disconnect). So no order goes out once shutdown starts, the
        executions in flight get at most half the budget, and the cancels always get the
        rest of it, however long the executions took."""
        timeout = self.config.daemon.shutdown_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self.executor is not None and self.trading is not None
        self.executor.stop_sending()
        exec_tasks = self.hedge_loop.exec_tasks
        log.info("daemon.stopping", executions=len(exec_tasks))
        if exec_tasks:
            # A leg ends after the request it has on the wire (one round trip).
            _done, pending = await asyncio.wait(exec_tasks, timeout=timeout / 2)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with asyncio.timeout_at(deadline):
                cancelled, left = await self.executor.cancel_all_verified()
                if left:
                    log.error("daemon.orders_left_open", labels=left)
                # Then what only the journal needs: halt cancels, fill repairs, state.
                await self.executor.flush()
                await self.trading.flush()
                log.info("daemon.stopped", cancelled_orders=cancelled, left_open=len(left))
        except TimeoutError:
            open_labels = [r.label for r in self.executor.open_records()]
            log.error("daemon.shutdown_timeout", timeout_s=timeout, open_orders=open_labels)
            self.stats.error("shutdown timed out")

    # ------------------------------------------------------------------- events
    async def reconcile_now(self) -> ExecReconcileReport:
        """Run the order and fill reconciliation the timer runs (every
        `daemon.reconcile_interval_s`), now, of the first account; returns its report.
        Passes never overlap: one under way is waited for first. Raises DaemonError before
        the daemon is started."""
        if self.reconciler is None:
            raise DaemonError("not started: no reconciler yet")
        return await self.reconciler.reconcile()

    async def _reconcile_command(self) -> dict[str, Any]:
        """The operator's `reconcile`: each account's report as JSON-ready values (one
        account: its report itself, as before accounts)."""
        if len(self.accounts) == 1:
            return dataclasses.asdict(await self.reconcile_now())
        out: dict[str, Any] = {}
        for name, account in self.accounts.items():
            if account.reconciler is None:
                raise DaemonError("not started: no reconciler yet")
            out[name] = dataclasses.asdict(await account.reconciler.reconcile())
        return {"accounts": out}

    def _on_fill_repaired_any(self, fill: Fill) -> None:
        """A fill the executor repaired: to the account it is on."""
        self.accounts.get(fill.venue, self.account).on_fill_repaired(fill)

    # ------------------------------------------------------------ executor callbacks
    # ----------------------------------------------------------------- controller
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
        self.policies.replace(new.hedging)
        if self.board is not None:
            self.board.reconfigure(self._risk_settings(new.risk))
        if self.executor is not None:
            self.executor.settings = self._executor_settings(new.risk)
        log.info("daemon.reloaded", path=str(self.config_path))
        return True

    # ---------------------------------------------------------------- flatten
    # ------------------------------------------------------------ venue checks
    async def _venue_check_loop(self) -> None:
        """Clock skew, margin and the daily hedge loss, every `_VENUE_CHECK_INTERVAL_S` wall
        seconds. A venue error skips that check (the disconnection and stale-data switches
        judge an unreachable venue); anything else is a crash of this part (HALTED)."""
        while True:
            steps: list[tuple[str, str, Callable[[], Awaitable[None]]]] = []
            for account in self.accounts.values():
                # Named as before the account's checks left the daemon (operators grep them).
                steps.append((account.name, "_check_clock_skew", account.checks.check_clock_skew))
                steps.append((account.name, "_check_margin", account.checks.check_margin))
            steps.append(("portfolio", "_check_daily_loss", self.daily_loss.check))
            for where, name, check in steps:
                try:
                    await check()
                except VenueError as exc:
                    log.warning(
                        "daemon.venue_check_failed", venue=where, check=name, error=str(exc)
                    )
            await asyncio.sleep(_VENUE_CHECK_INTERVAL_S)

    # ---------------------------------------------------------------- timers
    async def _tick_loop(self) -> None:
        assert self.board is not None and self.journal is not None and self.executor is not None
        ticks = 0
        while True:
            now = self.board_clock_ms()
            for account in self.accounts.values():
                account.note_positions_seen(now)
            self.board.tick(now)
            ticks += 1
            if ticks % _CROSS_CHECK_TICKS == 0:
                # Each account's delta against its own venue's figure.
                for account in self.accounts.values():
                    await account.refresh_venue_greeks()
                    account.cross_check(now)
            self._orders_sent_total = await self.journal.count_intents_since(0)
            if self.metrics is not None:
                # Orders sent since this start (the journal's history is not re-counted).
                if self._orders_counted is not None:
                    for _ in range(max(0, self._orders_sent_total - self._orders_counted)):
                        self.metrics.record_order_sent(self.venue_name)
                self._orders_counted = self._orders_sent_total
                open_records = self.executor.open_records()
                for name in self.accounts:
                    self.metrics.set_open_orders(
                        name, sum(1 for r in open_records if r.venue == name)
                    )
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ status
    # ---------------------------------------------------------------- tunables


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
