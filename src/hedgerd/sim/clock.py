"""The simulator's clock: UTC epoch milliseconds, real time, accelerated, or stepped by tests.

The engine never reads the wall clock itself; it asks a `SimClock`. In real or accelerated
mode simulated time runs at `speed` times wall time from `start_ms`; in stepped mode it moves
only when a test calls `advance(ms)` or `set(ms)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Simulated time in UTC epoch milliseconds.

    `speed` is simulated seconds per wall second (1.0 = real time); `stepped=True` freezes the
    clock between explicit `advance`/`set` calls. `wall_s` (seconds, float) is injectable for
    tests of the accelerated mode.
    """

    def __init__(
        self,
        start_ms: int | None = None,
        *,
        speed: float = 1.0,
        stepped: bool = False,
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self._wall_s = wall_s
        self._speed = float(speed)
        self._stepped = stepped
        wall_now_ms = int(wall_s() * 1000)
        self._base_sim_ms = int(start_ms) if start_ms is not None else wall_now_ms
        self._base_wall_s = wall_s()

    @property
    def stepped(self) -> bool:
        return self._stepped

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        """Current simulated time, UTC epoch ms."""
        if self._stepped:
            return self._base_sim_ms
        elapsed_s = self._wall_s() - self._base_wall_s
        return self._base_sim_ms + int(elapsed_s * 1000.0 * self._speed)

    def advance(self, ms: int) -> int:
        """Move simulated time forward by `ms` milliseconds (any mode); returns the new time."""
        if ms < 0:
            raise ValueError("the clock does not go backwards")
        self._rebase()
        self._base_sim_ms += int(ms)
        return self._base_sim_ms

    def set(self, now_ms: int) -> int:
        """Jump to `now_ms` (not earlier than now); returns it."""
        current = self.now_ms()
        if now_ms < current:
            raise ValueError("the clock does not go backwards")
        return self.advance(int(now_ms) - current)

    def set_speed(self, speed: float) -> None:
        """Change the acceleration without a jump in simulated time."""
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self._rebase()
        self._speed = float(speed)

    def set_stepped(self, stepped: bool) -> None:
        """Freeze (True) or release (False) the clock at the current simulated time."""
        self._rebase()
        self._stepped = stepped

    def _rebase(self) -> None:
        self._base_sim_ms = self.now_ms()
        self._base_wall_s = self._wall_s()
