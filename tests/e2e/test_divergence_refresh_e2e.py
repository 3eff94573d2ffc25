"""A position update the stream lost shows first as hedgerd's delta disagreeing with the venue's
own figure: the daemon refreshes its book from the venue at once, hedges the real position and
does not trip the Greeks-divergence switch (whose `min_duration_s` the refresh beats). With no
timer reconciliation in the test's reach, only that refresh can teach the book the trade."""

from __future__ import annotations

from pathlib import Path

from e2e_support import (
    admin_trade,
    atm_call,
    daemon_config,
    short_dir,
    simulator,
    start_daemon,
    wait_for,
)
from structlog.testing import capture_logs

from hedgerd.config import HedgerdConfig, VenueSettings
from hedgerd.daemon import Daemon
from hedgerd.execution.journal import Journal
from hedgerd.risk.kill_switches import KillSwitchBoard
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import TradingStateMachine
from hedgerd.venues.book_feed import DeltaDivergence

SPEED = 10.0
NOW_MS = 1_790_000_000_000
CALLS_SOLD = 8.0  # about -4 coin of delta: far beyond the 0.5 coin divergence limit


async def test_divergence_refreshes_the_book_before_the_switch_trips() -> None:
    async with simulator(SPEED, seed=21) as sim:
        values = daemon_config(short_dir())
        values["venues"]["sim"]["reconcile_s"] = 3_600.0  # no timer run during the test
        with capture_logs() as logs:
            run = await start_daemon(sim, values, SPEED)
            daemon, feed, trading = run.daemon, run.daemon.feed, run.daemon.trading
            assert feed is not None and trading is not None
            stats = daemon.stats.per_underlying["BTC"]
            await wait_for(lambda: stats.hedges > 0, 20.0, "the first hedge")
            await wait_for(lambda: not daemon._exec_tasks, 10.0, "executions to end")
            hedges = stats.hedges

            # The venue books a customer trade; its position update never reaches the daemon,
            # but the account's Greeks (user.portfolio) still do.
            sim.faults.add(
                {"kind": "drop_notifications", "account": "mm", "channels": ["user.changes.*"]},
                sim.now_ms(),
            )
            call = atm_call(sim)
            before = feed.venue_greeks["BTC"].delta_total_coin
            await admin_trade(sim, call, "sell", CALLS_SOLD)
            await wait_for(
                lambda: feed.venue_greeks["BTC"].delta_total_coin < before - 2.0,
                10.0,
                "the venue's figure to show the trade",
            )
            sim.faults.clear()
            assert call not in feed.positions  # the book did not hear of it

            await wait_for(
                lambda: call in feed.positions and feed.positions[call].amount == -CALLS_SOLD,
                12.0,
                "the book to learn the trade from a refresh",
            )
            report = feed.last_reconcile
            assert report is not None and report.reason == "divergence"
            assert any(name == call for name, _ours, _venue in report.corrected)
            assert any(e["event"] == "daemon.book_refresh_divergence" for e in logs)

            # The real delta is hedged, and nothing tripped.
            await wait_for(lambda: stats.hedges > hedges, 10.0, "a hedge of the trade")
            assert trading.state.value == "active", trading.reasons
            assert not [e for e in logs if e["event"] == "kill_switch_tripped"]
        assert await run.shutdown() == 0


async def test_refresh_asked_from_half_the_limit_at_most_every_10_s(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.sqlite")
    try:
        machine = await TradingStateMachine.restore(journal, clock_ms=lambda: NOW_MS)
        daemon = Daemon(HedgerdConfig(venues={"deribit": VenueSettings()}), clock_ms=lambda: NOW_MS)
        daemon.board = KillSwitchBoard(KillSwitchSettings(), machine)  # BTC limit 0.5 coin
        asked: list[int] = []
        daemon._want_book_refresh = lambda: asked.append(1)  # type: ignore[method-assign]

        def gap(diff_coin: float) -> list[DeltaDivergence]:
            return [DeltaDivergence("BTC", "coin", diff_coin, 0.0, diff_coin, 0.01, True, NOW_MS)]

        daemon._on_divergence(NOW_MS, gap(0.2))  # the venue's figure lagging a small fill
        assert asked == []
        daemon._on_divergence(NOW_MS, gap(-0.3))
        assert asked == [1]
        daemon._on_divergence(NOW_MS + 9_999, gap(3.0))
        assert asked == [1]
        daemon._on_divergence(NOW_MS + 10_000, gap(3.0))
        assert asked == [1, 1]
        await machine.flush()
    finally:
        await journal.close()
