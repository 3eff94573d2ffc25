"""The clocks and the portfolio-wide parts every service of the daemon shares.

`Daemon.run` builds the parts in start-up order (journal, trading state, board, metrics,
alerts, executor), so they are None until then. The services hold this one object rather
than copies, so a part built late (or put in by a test) is seen by all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hedgerd.execution.executor import Executor
from hedgerd.execution.journal import Journal
from hedgerd.ops.metrics import Metrics
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.alerts import AlertDispatcher
from hedgerd.risk.kill_switches import KillSwitchBoard
from hedgerd.risk.trading_state import TradingStateMachine


@dataclass(frozen=True, slots=True)
class Clocks:
    """`clock_ms`: the daemon's clock (UTC epoch ms; the simulator's in paper mode);
    `board_clock_ms`: what the kill switches judge durations against (the wall clock in paper
    mode); `speed`: daemon seconds per wall second."""

    clock_ms: Callable[[], int]
    board_clock_ms: Callable[[], int]
    speed: float

    def sleep_daemon_s(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Sleep `seconds` of the daemon's clock (`seconds / speed` wall seconds)."""
        return asyncio.sleep(max(seconds, 0.0) / self.speed)


@dataclass(slots=True)
class PortfolioParts:
    """The parts shared by every account and portfolio service (None before `Daemon.run`)."""

    journal: Journal | None = None
    trading: TradingStateMachine | None = None
    board: KillSwitchBoard | None = None
    alerts: AlertDispatcher | None = None
    metrics: Metrics | None = None
    executor: Executor | None = None
    #: The trading state of each venue account under `trading` (see `risk.account_state`).
    states: AccountStates | None = None
