"""What a kill switch reports (`Trip`), the pre-trade verdict (`OrderCheck`), the sliding
window the rate limits use, and the comparisons every switch shares.

Thresholds: a measured level trips when it *reaches* its limit (`reaches`, `>=` up to float
noise); a budget may be used in full (the order that would exceed it is refused).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from hedgerd.risk.trading_state import ReasonCode, TradingState

Number = float | int | str

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Trip:
    """A switch fired: its reason code, the state it asks for, a one-line detail for people
    (never a secret) and the numbers behind it (units in the keys)."""

    code: ReasonCode
    state: TradingState
    detail: str
    values: Mapping[str, Number] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """The pre-trade verdict: allowed or not, why, and the reason code of a refusal by a kill
    switch (None when allowed, or when only the trading-state gate refused)."""

    allowed: bool
    reason: str
    code: ReasonCode | None = None


def finite(x: float) -> bool:
    return math.isfinite(x)


def ms_to_s(ms: float) -> float:
    return ms / 1000.0


# Levels are computed in floating point: 90 against 100 is 9.999999999999998 %, and 1.001 − 1.0
# is 0.000999...: a limit counts as reached within this relative tolerance, so that a limit
# means what it says.
_RTOL = 1e-9


def reaches(value: float, limit: float) -> bool:
    """`value >= limit`, up to float noise (False for NaN)."""
    return value >= limit * (1.0 - _RTOL)


def within(value: float, limit: float) -> bool:
    """`value <= limit`, up to float noise (False for NaN)."""
    return value <= limit * (1.0 + _RTOL)


# ------------------------------------------------------------------------ sliding window


class SlidingWindow:
    """Sum of integer amounts recorded in the last `window_ms`: entries with
    `ts > now - window_ms` count. Amortised O(1) per add and per query (each entry is evicted
    once); integers keep the sum exact (notional is kept in cents)."""

    __slots__ = ("_entries", "_total", "window_ms")

    def __init__(self, window_ms: int) -> None:
        if window_ms <= 0:
            raise ValueError("window_ms must be > 0")
        self.window_ms = window_ms
        self._entries: deque[tuple[int, int]] = deque()
        self._total = 0

    def add(self, ts_ms: int, amount: int) -> None:
        """Record `amount` at `ts_ms` (times are expected in order; a late one is still
        counted, and evicted when the entries before it are)."""
        self._entries.append((ts_ms, amount))
        self._total += amount

    def total(self, now_ms: int) -> int:
        cutoff = now_ms - self.window_ms
        entries = self._entries
        while entries and entries[0][0] <= cutoff:
            self._total -= entries.popleft()[1]
        return self._total

    def __len__(self) -> int:
        return len(self._entries)


__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "Number",
    "OrderCheck",
    "SlidingWindow",
    "Trip",
    "finite",
    "ms_to_s",
    "reaches",
    "within",
]
