"""Every automatic kill switch the simulator can provoke, tripped against a running daemon: the
trading state changes, `kill_switch_tripped` is logged with the reason code, and no order
reaches the simulator afterwards even though the controller wants to trade (counted on the
simulator's side)."""

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


def _growing_target(run: Running) -> float:
    """A target that needs |net delta| to grow (refused in REDUCE_ONLY as well as HALTED)."""
    d = run.daemon.stats.per_underlying["BTC"].last_delta_coin
    d = d if math.isfinite(d) else 0.0
    return math.copysign(abs(d) + 4.0, d if d != 0 else 1.0)


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


@dataclass(frozen=True)
class Case:
    code: str
    trigger: Trigger
    risk: dict[str, Any] = field(default_factory=dict)
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
    "price_sanity": Case("price_sanity", _gap),
    # Unscaled budgets: speed 1 (at other speeds the per-minute budget is per simulated minute).
    "order_rate": Case(
        "order_rate", _more_orders, {"order_rate": {"max_orders_per_minute": 1}}, speed=1.0
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
}


@pytest.mark.parametrize("name", list(CASES))
async def test_switch_trips_and_no_order_follows(name: str) -> None:
    case = CASES[name]
    work = short_dir()
    skew = [0]
    async with simulator(case.speed, seed=21) as sim:
        values = daemon_config(work, extra={"risk": case.risk})
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
            await _set_target(run, _growing_target(run))
            await wait_for(lambda: stats.blocked_legs > blocked, 15.0, "a refused hedge")
            assert orders_received(sim) == sent
            assert trading.state.value == "halted"
        sim.faults.clear()  # a clean shutdown: the venue reachable again
        assert await run.shutdown() == 0
