"""Online estimate of the option flow's delta motion (pure: times are passed in, in ms).

The book's own option trades jump its delta by the traded options' delta, a motion of the
delta independent of the spot and of the gamma (issue 19). `FlowEstimator` is fed each
option trade's delta change (coin) with its time (ms) and gives:

- v, the delta-variance rate: the sum of squared jumps over a trailing window divided by the
  window in years (coin^2/year), the variance a year of such trades adds to the delta;
- J, the rms jump over the same window (coin).

The window is `FLOW_WINDOW_MS` (3 days): at the flow rates the band cares about (a few to a
dozen trades a day) it holds some 10 to 40 trades, enough for v to within roughly a third,
and short enough to follow a change of client activity within days. Until the window has
elapsed since the estimator started the sum is divided by the elapsed time, at least
`FLOW_MIN_SPAN_MS` (1 day), so that one early trade does not read as a burst.
No trades in the window: v = J = 0, and the band is the plain one.

`flow_estimates` is the vectorised form the backtest uses (arrays of paths), the same sums.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np
from numpy.typing import NDArray

FLOW_WINDOW_MS = 3 * 86_400_000
FLOW_MIN_SPAN_MS = 86_400_000
_YEAR_MS = 365.0 * 86_400_000.0


class FlowEstimator:
    """Trailing-window estimate of the option flow's delta variance rate and rms jump.

    One per underlying. `start_ms` is when observation began (the daemon's start, the
    backtest's t = 0; earlier once seeded: `observed_since`): the rate's denominator is the
    observed span, capped at the window.
    """

    def __init__(
        self,
        start_ms: int,
        window_ms: int = FLOW_WINDOW_MS,
        min_span_ms: int = FLOW_MIN_SPAN_MS,
    ) -> None:
        if window_ms <= 0 or min_span_ms <= 0:
            raise ValueError("window_ms and min_span_ms must be positive")
        self._start_ms = start_ms
        self._window_ms = window_ms
        self._min_span_ms = min(min_span_ms, window_ms)
        self._jumps: deque[tuple[int, float]] = deque()  # (time ms, squared jump coin^2)
        # The squared jumps' fsum and count, kept until the jumps change (None: to compute):
        # asked on every evaluation, a busy book's window holds tens of thousands of jumps.
        # Valid while every jump is at or before the time asked (`_latest_ms`, an upper
        # bound of their times); else the jumps are filtered as they are.
        self._sums: tuple[float, int] | None = None
        self._latest_ms: int | None = None

    def observe(self, delta_change_coin: float, at_ms: int) -> None:
        """Record one option trade's change of the book's delta (coin) at `at_ms`.
        Non-finite changes are refused (the estimate must stay finite)."""
        if not math.isfinite(delta_change_coin):
            raise ValueError(f"non-finite delta change {delta_change_coin!r}")
        jump = (at_ms, delta_change_coin * delta_change_coin)
        if self._jumps and at_ms < self._jumps[-1][0]:
            # Kept in time order (`_forget` drops from the left): a seed from the venue's
            # history can land after the first live trades.
            bisect.insort(self._jumps, jump)
        else:
            self._jumps.append(jump)
        self._sums = None
        if self._latest_ms is None or at_ms > self._latest_ms:
            self._latest_ms = at_ms

    def observed_since(self, start_ms: int) -> None:
        """Observation began at `start_ms` if that is earlier than the start so far: a seed
        from the venue's trade history covers the span it was fetched over (the rate's
        denominator grows with it, so seeded trades do not read as a burst)."""
        self._start_ms = min(self._start_ms, start_ms)

    def _forget(self, now_ms: int) -> None:
        cut = now_ms - self._window_ms
        while self._jumps and self._jumps[0][0] <= cut:
            self._jumps.popleft()
            self._sums = None
            if not self._jumps:
                self._latest_ms = None  # (after a clock stepped back: the fast path again)

    def estimate(self, now_ms: int) -> tuple[float, float]:
        """(v coin^2/year, J coin) from the trades in (now - window, now]."""
        self._forget(now_ms)
        if not self._jumps:
            return 0.0, 0.0
        if self._latest_ms is not None and self._latest_ms <= now_ms:
            # Every jump held counts: their sums, kept (fsum is correctly rounded: the same
            # whichever way it is fed).
            if self._sums is None:
                self._sums = (math.fsum(j2 for _, j2 in self._jumps), len(self._jumps))
            total, count = self._sums
        else:
            sq = [j2 for t, j2 in self._jumps if t <= now_ms]
            if not sq:
                return 0.0, 0.0
            total, count = math.fsum(sq), len(sq)
        span = _span_ms(now_ms - self._start_ms, self._window_ms, self._min_span_ms)
        return total / (span / _YEAR_MS), math.sqrt(total / count)


def _span_ms(elapsed_ms: float, window_ms: int, min_span_ms: int) -> float:
    """The rate's denominator: the observed span, between the minimum and the window (ms)."""
    return float(min(max(elapsed_ms, min(min_span_ms, window_ms)), window_ms))


def flow_estimates(
    times_ms: NDArray[np.float64],
    jumps_coin: NDArray[np.float64],
    now_ms: float,
    start_ms: float = 0.0,
    window_ms: int = FLOW_WINDOW_MS,
    min_span_ms: int = FLOW_MIN_SPAN_MS,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`FlowEstimator.estimate` for arrays of paths: `times_ms` and `jumps_coin` of shape
    (paths, slots), a slot counting where its time is in (now - window, now] (unused slots:
    time inf). Returns (v coin^2/year, J coin), each of shape (paths,)."""
    seen = (times_ms <= now_ms) & (times_ms > now_ms - window_ms)
    sq = np.where(seen, jumps_coin * jumps_coin, 0.0)
    total = np.sum(sq, axis=1)
    count = np.sum(seen, axis=1)
    span = _span_ms(now_ms - start_ms, window_ms, min_span_ms)
    v = total / (span / _YEAR_MS)
    j = np.sqrt(total / np.maximum(count, 1))
    return v, j
