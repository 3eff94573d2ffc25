"""A legitimate price gap against a running daemon, real ccxt clients (issue 19): the index
jumps 15 % at once (`/sim/admin/market/gap`), on every feed of the venue (index and marks) and,
with two venues, on both. Price sanity quarantines the jump for `gap_confirm_s` without a
trip; the feeds confirm one another, the new level is accepted (`price_gap_confirmed`), the
book prices at it, and the desk stays ACTIVE and goes on hedging. (Before, any jump of
`max_jump_pct` HALTED the desk; an isolated outlier still does, `tests/risk/test_price_gap.py`;
with `gap_confirm_s` 0 every jump trips, `test_kill_switches_e2e`'s price_sanity case.)"""

from __future__ import annotations

import math

from e2e_support import (
    TWO_VENUES,
    daemon_config,
    settle_two_venues,
    short_dir,
    sim_admin,
    simulator,
    start_daemon,
    two_venue_scenario,
    two_venue_simulator,
    two_venue_values,
    wait_for,
)
from structlog.testing import capture_logs

from hedgerd.daemon import Daemon
from hedgerd.risk.trading_state import ReasonCode, TradingState

SPEED = 10.0
GAP_PCT = -15.0


def _book_index(daemon: Daemon, account: str) -> float:
    book = daemon.accounts[account].book
    return book.index_price("BTC") if book is not None else math.nan


async def _gap_is_confirmed(daemon: Daemon, accounts: list[str]) -> None:
    """After the gap: every account's book at the new index, no PRICE_SANITY anywhere."""
    before = {a: _book_index(daemon, a) for a in accounts}
    assert daemon.parts.states is None or all(
        daemon.parts.states.machine(a).state is TradingState.ACTIVE for a in accounts
    )
    for a in accounts:
        level = before[a] * (1 + GAP_PCT / 100)

        def at_new_level(a: str = a, level: float = level) -> bool:
            return abs(_book_index(daemon, a) / level - 1) < 0.02

        await wait_for(at_new_level, 20.0, f"{a}'s book at the gapped index")
    trading = daemon.trading
    assert trading is not None
    assert ReasonCode.PRICE_SANITY not in [r.code for r in trading.reasons]
    assert trading.state is TradingState.ACTIVE, trading.reasons


async def test_a_gap_on_one_venue_is_confirmed_by_its_marks_and_trading_goes_on() -> None:
    work = short_dir()
    async with simulator(SPEED, seed=21) as sim:
        with capture_logs() as logs:
            run = await start_daemon(sim, daemon_config(work), SPEED)
            stats = run.daemon.stats.per_underlying["BTC"]
            await wait_for(lambda: stats.hedges > 0, 20.0, "the first hedge")
            hedges = stats.hedges
            await sim_admin(sim, f"market/gap?currency=BTC&pct={GAP_PCT}")
            await _gap_is_confirmed(run.daemon, ["sim"])
            # The gap moved the options' delta: the desk hedges it, at the new level.
            await wait_for(lambda: stats.hedges > hedges, 30.0, "a hedge after the gap")
        confirmed = [e for e in logs if e["event"] == "price_gap_confirmed"]
        assert any(e["source"] == "sim:index:BTC" for e in confirmed), confirmed
        assert not [e for e in logs if e["event"] == "kill_switch_tripped"]
        assert await run.shutdown() == 0


async def test_a_gap_on_two_venues_is_confirmed_by_each_others_index() -> None:
    work = short_dir()
    async with two_venue_simulator(two_venue_scenario(seed=5, still=True), SPEED) as sim:
        with capture_logs() as logs:
            run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
            await settle_two_venues(run)
            await sim_admin(sim, f"market/gap?currency=BTC&pct={GAP_PCT}")
            await _gap_is_confirmed(run.daemon, ["deribit", "okx"])
        confirmed = {e["source"] for e in logs if e["event"] == "price_gap_confirmed"}
        assert {"deribit:index:BTC", "okx:index:BTC"} <= confirmed, confirmed
        assert not [e for e in logs if e["event"] == "kill_switch_tripped"]
        assert await run.shutdown() == 0
