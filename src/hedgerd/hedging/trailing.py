"""Sums of timed samples over a trailing window (pure: times are passed in, in ms).

The option flow's estimator (`hedging.flow`: squared delta jumps, coin^2) and the marks'
vol-of-vol estimator (`hedging.volvol`: squared changes of ln(mark vol)) both divide a
trailing sum of squares by the span observed. Both are asked on every evaluation of every
underlying, and a window holds thousands of samples, so the sum is kept until the samples
change instead of being read again each time.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

YEAR_MS = 365.0 * 86_400_000.0


def span_ms(elapsed_ms: float, window_ms: int, min_span_ms: int) -> float:
    """A trailing rate's denominator: the observed span, between the minimum and the window
    (ms)."""
    return float(min(max(elapsed_ms, min(min_span_ms, window_ms)), window_ms))


class TrailingSum:
    """(time ms, value) samples; their fsum and count over (now - window, now].

    Samples are kept in time order (one may arrive out of order: a seed from a venue's
    history landing after the first live ones). The fsum and count are kept until the
    samples change (fsum is correctly rounded: the same whichever way it is fed); valid while
    every sample is at or before the time asked (`_latest_ms`, an upper bound of their
    times), else the samples are filtered as they are.
    """

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._items: deque[tuple[int, float]] = deque()
        self._sums: tuple[float, int] | None = None
        self._latest_ms: int | None = None

    def add(self, at_ms: int, value: float) -> None:
        """Record `value` at `at_ms`."""
        item = (at_ms, value)
        if self._items and at_ms < self._items[-1][0]:
            bisect.insort(self._items, item)
        else:
            self._items.append(item)
        self._sums = None
        if self._latest_ms is None or at_ms > self._latest_ms:
            self._latest_ms = at_ms

    def sums(self, now_ms: int) -> tuple[float, int]:
        """(fsum, count) of the samples in (now - window, now]; forgets older ones."""
        cut = now_ms - self.window_ms
        while self._items and self._items[0][0] <= cut:
            self._items.popleft()
            self._sums = None
            if not self._items:
                self._latest_ms = None  # (after a clock stepped back: the fast path again)
        if not self._items:
            return 0.0, 0
        if self._latest_ms is not None and self._latest_ms <= now_ms:
            if self._sums is None:
                self._sums = (math.fsum(v for _, v in self._items), len(self._items))
            return self._sums
        seen = [v for t, v in self._items if t <= now_ms]
        return math.fsum(seen), len(seen)


__all__ = ["YEAR_MS", "TrailingSum", "span_ms"]
