"""The simulator's index history (Deribit's `public/get_index_chart_data`, OKX's
`market/index-candles` and `market/history-index-candles`): the index (USD) at a past time.

From the simulated start on, the simulated index path: `IndexPath` keeps the index at the
first market step of every minute (stamped at that step's time; the last one at or before a
time is the index then). Before the start there is no simulated market, so the history is
made up, deterministically, as `sim.vol_index`'s DVOL is: `IndexPrehistory`, a walk of
ln(index) back from the start's level in one-minute steps at the underlying's vol (the first
regime's, or `vol`) and drift, with the scenario's compound-Poisson jumps (`JumpSpec`) when
their intensity is above 0, drawn from a generator of its own (seeded by the scenario's seed
and the currency) so the market's path is the same with or without it. The walk is drawn in
blocks of a day, always the same blocks, so a value does not depend on which was asked first.
"""

from __future__ import annotations

import bisect
import math
import zlib

import numpy as np
from numpy.typing import NDArray

from hedgerd.sim.scenario import UnderlyingSpec

MINUTE_MS = 60_000
DAY_MS = 86_400_000
_YEAR_MS = 365.0 * DAY_MS
_BLOCK = DAY_MS // MINUTE_MS  # steps drawn at once (a day of minutes)
HOUR_MS = 3_600_000
#: Deribit's `get_index_chart_data` ranges: (span back from now, the points' step), ms. Deribit
#: documents the ranges and shows "1m" with hourly points; the other steps are assumed (the
#: points of "1h" a minute apart, of "1d" and "2d" ten minutes, of "1y" and "all" a day; "all"
#: here two years back).
CHART_RANGES: dict[str, tuple[int, int]] = {
    "1h": (HOUR_MS, MINUTE_MS),
    "1d": (DAY_MS, 10 * MINUTE_MS),
    "2d": (2 * DAY_MS, 10 * MINUTE_MS),
    "1m": (30 * DAY_MS, HOUR_MS),
    "1y": (365 * DAY_MS, DAY_MS),
    "all": (730 * DAY_MS, DAY_MS),
}
#: A fixed tag that keeps this generator's stream apart from `sim.vol_index`'s.
_STREAM = 0x1D3E


class IndexPrehistory:
    """One underlying's index (USD) before the start: `level(at_ms)` for `at_ms` <= start."""

    def __init__(self, spec: UnderlyingSpec, seed: int, start_ms: int, start_usd: float) -> None:
        self._ln0 = math.log(start_usd)
        self._start_ms = start_ms
        self._vol = spec.regimes[0].vol if spec.regimes else spec.vol
        self._drift = spec.drift
        self._jumps = spec.jumps
        self._rng = np.random.default_rng([seed, zlib.crc32(spec.currency.encode()), _STREAM])
        # ln(index / start's), minute k before the start (k = 0: the start).
        self._walk: NDArray[np.float64] = np.zeros(1)

    def level(self, at_ms: int) -> float:
        """The index (USD) at `at_ms` (before the start: the minute at or after it)."""
        k = max(0, math.ceil((self._start_ms - at_ms) / MINUTE_MS))
        while k >= len(self._walk):
            self._walk = np.concatenate([self._walk, self._walk[-1] - np.cumsum(self._block())])
        return math.exp(self._ln0 + float(self._walk[k]))

    def _block(self) -> NDArray[np.float64]:
        """The next day's one-minute log returns, newest first (each the return over the
        minute that ends where the walk stands)."""
        dt_y = MINUTE_MS / _YEAR_MS
        sigma = self._vol
        z = self._rng.standard_normal(_BLOCK)
        r = (self._drift - 0.5 * sigma * sigma) * dt_y + sigma * math.sqrt(dt_y) * z
        j = self._jumps
        if j.intensity_per_day > 0.0:
            n = self._rng.poisson(j.intensity_per_day * MINUTE_MS / DAY_MS, _BLOCK)
            hit = np.flatnonzero(n)
            if len(hit):
                k = n[hit].astype(np.float64)
                r[hit] += self._rng.normal(j.mean * k, j.std * np.sqrt(k))
        return r


class IndexPath:
    """One underlying's simulated index from the start on: the index at the first market
    step of each minute, at that step's time."""

    def __init__(self, start_ms: int, start_usd: float) -> None:
        self._times = [start_ms]
        self._values = [start_usd]

    def record(self, t_ms: int, index_usd: float) -> None:
        """The index after the market step at `t_ms` (kept when it is the minute's first)."""
        if t_ms // MINUTE_MS > self._times[-1] // MINUTE_MS:
            self._times.append(t_ms)
            self._values.append(index_usd)

    def level(self, at_ms: int) -> float:
        """The index (USD) recorded last at or before `at_ms` (>= the start)."""
        i = bisect.bisect_right(self._times, at_ms) - 1
        return self._values[max(i, 0)]


def chart_times(range_name: str, now_ms: int) -> list[int]:
    """The times (ms, on the range's step grid) of a chart of `range_name` served at `now_ms`,
    oldest first: every grid point in [now - span, now]."""
    span, step = CHART_RANGES[range_name]
    first = -(-(now_ms - span) // step) * step
    return list(range(first, now_ms // step * step + 1, step))


__all__ = ["CHART_RANGES", "IndexPath", "IndexPrehistory", "chart_times"]
