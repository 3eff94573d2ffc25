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
        self._floor_ms: Callable[[], int] | None = None
        self._lead_wall_s = 0.0
        self._min_lead_ms = 0
        self._last_ms = self._base_sim_ms
        self._cap_ms: Callable[[], int | None] | None = None

    @property
    def stepped(self) -> bool:
        return self._stepped

    @property
    def speed(self) -> float:
        return self._speed

    def limit_lead(
        self, floor_ms: Callable[[], int], *, lead_wall_s: float = 0.5, min_lead_ms: int = 1_000
    ) -> None:
        """Keep simulated time at most `max(speed * lead_wall_s s, min_lead_ms ms)` ahead of
        `floor_ms()` (the engine's processed market time, UTC epoch ms).

        Why: an engine that cannot keep up with `speed` (a high --speed, a busy machine) would
        otherwise owe a backlog of market steps that grows without bound and is worked off in
        one blocking catch-up (minutes of a frozen server). Capped, the clock slows down to
        what the engine does: time stays monotonic and the backlog is dropped, not owed.
        Explicit `advance`/`set` calls are honoured in full."""
        if not lead_wall_s > 0 or min_lead_ms < 0:
            raise ValueError("lead_wall_s must be positive and min_lead_ms non-negative")
        self._floor_ms = floor_ms
        self._lead_wall_s = float(lead_wall_s)
        self._min_lead_ms = int(min_lead_ms)

    def limit_to(self, cap_ms: Callable[[], int | None] | None) -> None:
        """Keep simulated time at most `cap_ms()` (UTC epoch ms; None from it: no cap now;
        `cap_ms` None: remove it), never going back: held at the cap, the clock resumes at
        `speed` from there once the cap moves on (the time held is dropped, as with
        `limit_lead`).

        Why: `hedgerd paper` paces the simulator by its daemon's evaluations
        (`paper.EvaluationPace`), so that a starved process runs fewer simulated minutes in
        its wall time instead of hedging the same minutes less often."""
        self._cap_ms = cap_ms

    def now_ms(self) -> int:
        """Current simulated time, UTC epoch ms."""
        if self._stepped:
            return self._base_sim_ms
        wall = self._wall_s()
        now = self._base_sim_ms + int((wall - self._base_wall_s) * 1000.0 * self._speed)
        if self._floor_ms is not None:
            lead = max(int(self._speed * self._lead_wall_s * 1000.0), self._min_lead_ms)
            cap = max(self._floor_ms() + lead, self._last_ms)
            if now > cap:  # re-anchor at the cap: the lost time is dropped
                self._base_sim_ms, self._base_wall_s, now = cap, wall, cap
        if self._cap_ms is not None:
            held = self._cap_ms()
            if held is not None and now > max(held, self._last_ms):
                now = max(held, self._last_ms)
                self._base_sim_ms, self._base_wall_s = now, wall
        self._last_ms = now
        return now

    def advance(self, ms: int) -> int:
        """Move simulated time forward by `ms` milliseconds (any mode); returns the new time."""
        if ms < 0:
            raise ValueError("the clock does not go backwards")
        self._rebase()
        self._base_sim_ms += int(ms)
        self._last_ms = max(self._last_ms, self._base_sim_ms)
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
