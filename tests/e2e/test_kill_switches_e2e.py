"""Every automatic kill switch the simulator can provoke, tripped against a running daemon: the
trading state changes, `kill_switch_tripped` is logged with the reason code, and no order
reaches the simulator afterwards even though the controller wants to trade (counted on the
simulator's side).

The venue-state switches come from venue failures: position updates that never arrive while
trades are booked behind the daemon's back (position mismatch), wrong account Greeks from the
venue (Greeks divergence), and a book too thin for the hedges after a large option trade
(delta limit)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from e2e_support import (
    Running,
    admin_trade,
    atm_call,
    daemon_config,
    orders_received,
    short_dir,
    simulator,
    wait_for,
)
from structlog.testing import capture_logs

from hedgerd.config import HedgerdConfig
from hedgerd.daemon import Daemon
from hedgerd.paper import paper_config
from hedgerd.sim.command import Simulator

SPEED = 10.0


async def _start(sim: Simulator, values: dict[str, Any], speed: float, skew: list[int]) -> Running:
    """`start_daemon`, with the daemon's clock the simulator's plus `skew[0]` ms (so a test can
    put the daemon's clock off the venue's)."""
    config = paper_config(HedgerdConfig(**values), sim)
    daemon = Daemon(
        config,
        clock_ms=lambda: int(sim.engine.now_ms()) + skew[0],
        speed=speed,
        board_clock_ms=lambda: time.time_ns() // 1_000_000,
    )
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(daemon.run(stop))

    def ready() -> bool:
        if task.done():
            task.result()
        return daemon.ready.is_set()

    await wait_for(ready, 40.0, "the daemon to become ready")
    return Running(sim, daemon, stop, task)


async def _set_target(run: Running, target_coin: float) -> None:
    await run.daemon._tunables()["hedging.BTC.target_coin"].apply(target_coin)


def _growing_target(run: Running, step_coin: float = 4.0) -> float:
    """A target that needs |net delta| to grow by `step_coin` (refused in REDUCE_ONLY as well
    as HALTED); the step must exceed the band's half-width for the controller to trade."""
    d = run.daemon.stats.per_underlying["BTC"].last_delta_coin
    d = d if math.isfinite(d) else 0.0
    return math.copysign(abs(d) + step_coin, d if d != 0 else 1.0)


Trigger = Callable[[Simulator, Running, list[int]], Awaitable[None]]


async def _fault(sim: Simulator, spec: dict[str, Any]) -> None:
    sim.faults.add(spec, sim.now_ms())


async def _nothing(sim: Simulator, run: Running, skew: list[int]) -> None:
    """The tight limit trips on the daemon's own first hedges."""


async def _freeze(sim: Simulator, run: Running, skew: list[int]) -> None:
    await _fault(sim, {"kind": "freeze_market_data", "duration_s": 3600})


async def _ws_down(sim: Simulator, run: Running, skew: list[int]) -> None:
    # Held open: every WebSocket is dropped now, and every new session's login is cut off.
    await _fault(sim, {"kind": "ws_drop", "methods": ["public/auth"], "duration_s": 3600})
    await _fault(sim, {"kind": "ws_drop", "duration_s": 3600})


async def _rejects(sim: Simulator, run: Running, skew: list[int]) -> None:
    await _fault(sim, {"kind": "order_reject", "duration_s": 3600})
    await _set_target(run, _growing_target(run))


async def _gap(sim: Simulator, run: Running, skew: list[int]) -> None:
    await _fault(sim, {"kind": "price_gap", "currency": "BTC", "pct": -15.0})


async def _more_orders(sim: Simulator, run: Running, skew: list[int]) -> None:
    await _set_target(run, _growing_target(run))


async def _clock_off(sim: Simulator, run: Running, skew: list[int]) -> None:
    skew[0] = 5_000  # the daemon's clock 5 s ahead of the venue's


async def _churn(sim: Simulator, run: Running, skew: list[int]) -> None:
    """Hedge back and forth: each round trip pays the spread and fees (a certain loss)."""
    trading = run.daemon.trading
    assert trading is not None
    deadline = time.monotonic() + 15.0
    sign = 1.0
    while time.monotonic() < deadline and trading.state.value == "active":
        await _set_target(run, sign * 2.0)
        sign = -sign
        await asyncio.sleep(0.5)


async def _lost_updates(sim: Simulator, run: Running, skew: list[int]) -> None:
    """The venue stops telling the daemon about position changes; positions change behind its
    back twice, so two timer reconciliations in a row must correct the book."""
    feed = run.daemon.feed
    assert feed is not None
    # A hedge of the daemon's own whose fill went unheard would be repaired by the executor,
    # with a book refresh that is not a timer run: let them end first (and the case's wide
    # band keeps the daemon from hedging during it).
    await wait_for(lambda: not run.daemon._exec_tasks, 10.0, "executions to end")
    await _fault(sim, {"kind": "drop_notifications", "account": "mm"})
    corrected = feed.stats.reconcile_corrections
    await admin_trade(sim, "BTC-PERPETUAL", "buy", 1_000.0)  # 0.01 coin, unheard of
    await wait_for(
        lambda: feed.stats.reconcile_corrections > corrected,
        10.0,
        "a timer reconciliation to correct the book",
    )
    # Milliseconds after the first correction (the timer runs every 1.5 s): the next timer
    # run corrects again, the second in a row, and trips.
    await admin_trade(sim, "BTC-PERPETUAL", "buy", 1_000.0)


async def _wrong_venue_greeks(sim: Simulator, run: Running, skew: list[int]) -> None:
    await _fault(sim, {"kind": "portfolio_delta_offset", "currency": "BTC", "offset_coin": 3.0})


async def _unhedgeable(sim: Simulator, run: Running, skew: list[int]) -> None:
    """The perpetual's book is 1,000 USD deep (0.01 coin; it refills within a simulated second,
    so the top of book stays quoted); then a customer buys 20 ATM calls from the market maker
    (about -10 coin of delta), which the hedges cannot bring back."""
    # Start from a delta the daemon has seen inside the limit (the start-up hedge's breach
    # cleared), so that only the hedges after the option trade count as attempts.
    stats = run.daemon.stats.per_underlying["BTC"]
    await wait_for(lambda: not run.daemon._exec_tasks, 10.0, "executions to end")
    await wait_for(lambda: abs(stats.last_delta_coin) < 1.0, 10.0, "|delta| back in the band")
    await _fault(
        sim, {"kind": "thin_depth", "instruments": ["BTC-PERPETUAL"], "depth_amount": 1_000}
    )
    # The engine thins the book at its next step: trade only once the daemon would see it.
    # A hedge sized on the whole book just before is one attempt that works its slices in
    # the thin book until its order budget ends (the switch's duration judges that).
    venue = run.daemon.venue
    assert venue is not None

    async def thin() -> bool:
        book = await venue.fetch_order_book("BTC-PERPETUAL", math.inf)
        return sum(level.amount for level in book.asks) <= 1_000

    await wait_for(thin, 10.0, "the thin book", interval_s=0.1)
    await admin_trade(sim, atm_call(sim), "sell", 20.0)


@dataclass(frozen=True)
class Case:
    code: str
    trigger: Trigger
    risk: dict[str, Any] = field(default_factory=dict)
    venue: dict[str, Any] = field(default_factory=dict)  # venues.sim settings
    policy: dict[str, Any] = field(default_factory=dict)  # the hedging policy's settings
    grow_coin: float = 4.0  # how far the post-trip target moves |delta| (beyond the band)
    speed: float = SPEED
    after_first_hedge: bool = True
    detail: str = ""  # in the trip's detail


CASES = {
    "stale_data": Case(
        "stale_data",
        _freeze,
        {"stale_data": {"market_stale_after_s": 1.0, "startup_grace_s": 1.0}},
    ),
    "venue_disconnected": Case(
        "venue_disconnected", _ws_down, {"venue_disconnected": {"trip_after_s": 0.5}}
    ),
    "reject_streak": Case("reject_streak", _rejects, {"reject_streak": {"streak_limit": 2}}),
    # The gap moves every feed of the venue (index and marks), which confirm it after
    # `gap_confirm_s` (test_price_gap_e2e); without that window every jump trips at once.
    "price_sanity": Case("price_sanity", _gap, {"price_sanity": {"gap_confirm_s": 0.0}}),
    # Unscaled budgets: speed 1 (at other speeds the per-minute budget is per simulated minute).
    # Every order counts, each slice of a leg too: the first hedge (sliced, or its partial
    # fill's rest retried) may itself be what trips a budget of one order a minute.
    "order_rate": Case(
        "order_rate",
        _more_orders,
        {"order_rate": {"max_orders_per_minute": 1}},
        speed=1.0,
        after_first_hedge=False,
    ),
    "notional_rate": Case(
        "notional_rate",
        _nothing,
        {"notional_rate": {"max_notional_usd_per_minute": 1.0}},
        after_first_hedge=False,
    ),
    "order_notional": Case(
        "order_notional",
        _nothing,
        {"order_notional": {"max_order_notional_usd": 1.0}},
        after_first_hedge=False,
    ),
    "clock_skew": Case("clock_skew", _clock_off, {"clock_skew": {"skew_limit_ms": 1_000.0}}),
    "margin": Case(
        "margin",
        _nothing,
        {"margin": {"maintenance_limit_pct": 0.001, "trips_to": "halted"}},
        after_first_hedge=False,
    ),
    "daily_loss": Case(
        "daily_loss",
        _churn,
        {"daily_loss": {"max_daily_loss_usd": 1.0}},
        detail="reached the limit",  # a real loss, not "cannot be computed"
    ),
    "position_mismatch": Case(
        "position_mismatch",
        _lost_updates,
        venue={"reconcile_s": 1.5},
        policy={"min_halfwidth_coin": 5.0},
        grow_coin=12.0,
        detail="BTC-PERPETUAL",
    ),
    "greeks_divergence": Case(
        "greeks_divergence", _wrong_venue_greeks, {"greeks_divergence": {"min_duration_s": 0.0}}
    ),
    "delta_limit": Case(
        "delta_limit",
        _unhedgeable,
        {
            "delta_limit": {
                "hard_limit_coin_by_underlying": {"BTC": 5.0},
                "hedge_attempts": 3,
                "max_breach_s": 3_600.0,  # the attempts trip it, not the time
            }
        },
        # Half-filled hedges leave the last net delta a few coin off the settled one.
        grow_coin=12.0,
        detail="after 3 hedge attempts",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_switch_trips_and_no_order_follows(name: str) -> None:
    case = CASES[name]
    work = short_dir()
    skew = [0]
    async with simulator(case.speed, seed=21) as sim:
        values = daemon_config(work, extra={"risk": case.risk})
        values["venues"]["sim"].update(case.venue)
        values["hedging"]["policies"]["t"].update(case.policy)
        with capture_logs() as logs:
            run = await _start(sim, values, case.speed, skew)
            daemon = run.daemon
            trading = daemon.trading
            assert trading is not None
            stats = daemon.stats.per_underlying["BTC"]
            if case.after_first_hedge:
                await wait_for(lambda: stats.hedges > 0, 20.0, "the first hedge")
                assert trading.state.value == "active", trading.reasons

            await case.trigger(sim, run, skew)
            await wait_for(
                lambda: case.code in [r.code.value for r in trading.reasons],
                15.0,
                f"{case.code} to trip",
            )
            assert trading.state.value == "halted"
            tripped = [e for e in logs if e["event"] == "kill_switch_tripped"]
            assert any(e["code"] == case.code and case.detail in e["detail"] for e in tripped), (
                tripped
            )

            # What was already on the wire ends; from here on nothing may reach the venue,
            # although the controller wants to trade.
            await wait_for(lambda: not daemon._exec_tasks, 10.0, "executions to end")
            sent = orders_received(sim)
            blocked = stats.blocked_legs
            await _set_target(run, _growing_target(run, case.grow_coin))
            await wait_for(lambda: stats.blocked_legs > blocked, 15.0, "a refused hedge")
            assert orders_received(sim) == sent
            assert trading.state.value == "halted"
        sim.faults.clear()  # a clean shutdown: the venue reachable again
        assert await run.shutdown() == 0
