"""Trailing 24-hour trade statistics of one instrument: the ticker's `stats.high`, `stats.low`,
`stats.volume`, `stats.volume_usd` and `last_price`.

`high` and `low` are taken over the public trades of the last 24 simulated hours together with
the last price itself, so `low <= last <= high` holds whatever the window holds (a last trade
older than a day, or none yet and the mark standing in for it). Monotonic deques keep each
update and query amortised O(1): a ticker is built every market step for each subscriber.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_MS = 86_400_000  # Deribit's stats cover 24 hours


@dataclass(frozen=True, slots=True)
class StatsView:
    """The figures a ticker shows. Prices in the instrument's price unit; `volume` in coin
    of the underlying, `volume_usd` in USD."""

    last: float
    high: float
    low: float
    volume: float
    volume_usd: float


@dataclass(slots=True)
class TrailingStats:
    """Public trades of one instrument over a trailing window (default 24 h)."""

    window_ms: int = WINDOW_MS
    last: float | None = None  # price of the latest trade ever, None before the first
    # (timestamp ms, volume in coin, volume in USD) of every trade in the window, oldest first
    _trades: deque[tuple[int, float, float]] = field(default_factory=deque)
    # (timestamp ms, price): prices that can still be the window's max (min), decreasing
    # (increasing) from the left; a price is dropped once a later one is at least as high
    # (low), as it can then never be the extreme of any later window.
    _maxq: deque[tuple[int, float]] = field(default_factory=deque)
    _minq: deque[tuple[int, float]] = field(default_factory=deque)
    _volume: float = 0.0
    _volume_usd: float = 0.0

    def add(self, t_ms: int, price: float, volume_coin: float, volume_usd: float) -> None:
        """Record a trade at `t_ms` (not before the previous one) of `price`, with its size in
        coin and in USD."""
        self.last = price
        self._trades.append((t_ms, volume_coin, volume_usd))
        self._volume += volume_coin
        self._volume_usd += volume_usd
        while self._maxq and self._maxq[-1][1] <= price:
            self._maxq.pop()
        self._maxq.append((t_ms, price))
        while self._minq and self._minq[-1][1] >= price:
            self._minq.pop()
        self._minq.append((t_ms, price))

    def _prune(self, now_ms: int) -> None:
        """Forget trades at or before `now_ms - window_ms`."""
        cutoff = now_ms - self.window_ms
        trades = self._trades
        while trades and trades[0][0] <= cutoff:
            _, v, u = trades.popleft()
            self._volume -= v
            self._volume_usd -= u
        if not trades:  # no drift left over from the running sums
            self._volume = self._volume_usd = 0.0
        while self._maxq and self._maxq[0][0] <= cutoff:
            self._maxq.popleft()
        while self._minq and self._minq[0][0] <= cutoff:
            self._minq.popleft()

    def view(self, now_ms: int, mark: float) -> StatsView:
        """The figures at `now_ms`; `mark` stands in for the last price before any trade."""
        self._prune(now_ms)
        # The last trade is the newest, so it is in the window whenever anything is: an
        # empty window leaves the last price (or the mark) as high, low and last alike.
        last = self.last if self.last is not None else mark
        high = self._maxq[0][1] if self._maxq else last
        low = self._minq[0][1] if self._minq else last
        return StatsView(
            last=last,
            high=high,
            low=low,
            volume=max(0.0, self._volume),
            volume_usd=max(0.0, self._volume_usd),
        )
