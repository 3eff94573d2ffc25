"""A position update the stream lost shows first as hedgerd's delta disagreeing with the venue's
own figure: the daemon refreshes its book from the venue at once, hedges the real position and
does not trip the Greeks-divergence switch (whose `min_duration_s` the refresh beats). With no
timer reconciliation in the test's reach, only that refresh can teach the book the trade."""

from __future__ import annotations

from pathlib import Path

from e2e_support import (
    NOW_MS,
    admin_trade,
    atm_call,
    daemon_config,
    short_dir,
    simulator,
    start_daemon,
    wait_for,
    wired,
)
from structlog.testing import capture_logs

from hedgerd.venues.book_feed import DeltaDivergence, Numeraire

SPEED = 10.0
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

            def btc_gap() -> float:
                gaps = [d.diff_coin for d in feed.cross_check() if d.underlying == "BTC"]
                return max((abs(g) for g in gaps), default=float("inf"))

            # The venue's figure caught up with the hedges: the coming gap is the trade's own.
            await wait_for(lambda: btc_gap() < 0.1, 10.0, "the venue's delta to agree")
            daemon._divergence_refresh_ms = None  # a refresh for a hedge's lag does not count
            hedges = stats.hedges

            # The venue books a customer trade; its position update never reaches the daemon,
            # but the account's Greeks (user.portfolio) still do.
            sim.faults.add(
                {"kind": "drop_notifications", "account": "mm", "channels": ["user.changes.*"]},
                sim.now_ms(),
            )
            call = atm_call(sim)
            await admin_trade(sim, call, "sell", CALLS_SOLD)
            # Hedges move both figures alike: the gap is the trade the book did not hear of.
            await wait_for(lambda: btc_gap() > 2.0, 10.0, "the venue's figure to show the trade")
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


async def test_refresh_when_half_the_limit_holds_two_checks_at_most_every_10_s(
    tmp_path: Path,
) -> None:
    async with wired(tmp_path) as (daemon, _machine):  # BTC divergence limit 0.5 coin
        asked: list[int] = []
        daemon.account.integrity.want_refresh = lambda: asked.append(1)  # type: ignore[method-assign]

        numeraire = daemon.config.numeraire

        def gap(diff_coin: float, underlying: str = "BTC") -> list[DeltaDivergence]:
            return [
                DeltaDivergence(
                    underlying, numeraire, diff_coin, 0.0, diff_coin, 0.01, True, NOW_MS
                )
            ]

        # Half the limit held over two cross-checks in a row, and not more than every 10 s.
        daemon._on_divergence(NOW_MS, gap(0.2))  # the venue's figure lagging a small fill
        daemon._on_divergence(NOW_MS + 5_000, gap(0.2))
        assert asked == []
        daemon._on_divergence(NOW_MS + 10_000, gap(-3.0))  # once: a lag for all it knows
        daemon._on_divergence(NOW_MS + 15_000, gap(0.1))
        daemon._on_divergence(NOW_MS + 20_000, gap(-3.0, "ETH"))  # ETH's limit is 10 coin
        daemon._on_divergence(NOW_MS + 25_000, gap(-6.0, "ETH"))
        assert asked == []
        daemon._on_divergence(NOW_MS + 30_000, gap(-0.3))
        daemon._on_divergence(NOW_MS + 35_000, gap(-0.3))
        assert asked == [1]
        daemon._on_divergence(NOW_MS + 40_000, gap(3.0))
        assert asked == [1]  # 5 s after the last refresh
        daemon._on_divergence(NOW_MS + 45_000, gap(3.0))
        assert asked == [1, 1]
        other: Numeraire = "coin" if numeraire == "usd" else "usd"
        off = [DeltaDivergence("BTC", other, 3.0, 0.0, 3.0, 0.01, True, NOW_MS)]
        daemon._on_divergence(NOW_MS + 60_000, off)
        daemon._on_divergence(NOW_MS + 65_000, off)
        assert asked == [1, 1]  # the switch judges its own numeraire only
