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

import math

import numpy as np
from numpy.typing import NDArray

from hedgerd.hedging.trailing import YEAR_MS, TrailingSum, span_ms

FLOW_WINDOW_MS = 3 * 86_400_000
FLOW_MIN_SPAN_MS = 86_400_000


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
        self._min_span_ms = min(min_span_ms, window_ms)
        # The squared jumps (coin^2) by time: asked on every evaluation, a busy book's
        # window holds tens of thousands of them (`TrailingSum` keeps their sum).
        self._jumps = TrailingSum(window_ms)

    def observe(self, delta_change_coin: float, at_ms: int) -> None:
        """Record one option trade's change of the book's delta (coin) at `at_ms`.
        Non-finite changes are refused (the estimate must stay finite). A jump older than
        the newest (a seed from the venue's history landing after the first live trades)
        is kept in time order."""
        if not math.isfinite(delta_change_coin):
            raise ValueError(f"non-finite delta change {delta_change_coin!r}")
        self._jumps.add(at_ms, delta_change_coin * delta_change_coin)

    def observed_since(self, start_ms: int) -> None:
        """Observation began at `start_ms` if that is earlier than the start so far: a seed
        from the venue's trade history covers the span it was fetched over (the rate's
        denominator grows with it, so seeded trades do not read as a burst)."""
        self._start_ms = min(self._start_ms, start_ms)

    def estimate(self, now_ms: int) -> tuple[float, float]:
        """(v coin^2/year, J coin) from the trades in (now - window, now]."""
        total, count = self._jumps.sums(now_ms)
        if count == 0:
            return 0.0, 0.0
        window = self._jumps.window_ms
        span = span_ms(now_ms - self._start_ms, window, self._min_span_ms)
        return total / (span / YEAR_MS), math.sqrt(total / count)


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
    span = span_ms(now_ms - start_ms, window_ms, min_span_ms)
    v = total / (span / YEAR_MS)
    j = np.sqrt(total / np.maximum(count, 1))
    return v, j
