"""The simulator's volatility index (Deribit's DVOL, `public/get_volatility_index_data`):
100 x the surface's 30-day ATM vol, from the simulator's own vol model.

From the simulated start on, the index is the 30-day ATM vol now (`UnderlyingMarket.atm_vol`:
the regime in force when asked; the simulator keeps no history of its regimes). Before the
start there is no simulated market, so the history is made up, deterministically: a walk of
ln(ATM vol) back from the start's level in hourly steps with the surface's
`history_vol_of_vol` (annualised; 0: flat), drawn from its own generator (seeded by the
scenario's seed and the currency) so the market's path is the same with or without it.

A candle is served as Deribit serves its candles: stamped with its open time, open the index
then, close the index at the candle's end (the last value of its interval), or now for the
candle still forming; high and low of those two (the walk moves in hourly steps).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from hedgerd.sim.scenario import UnderlyingSpec

HOUR_MS = 3_600_000
_HOUR_Y = 1.0 / (365.0 * 24.0)
#: Resolutions (s) Deribit serves ("1D" is 86,400).
RESOLUTIONS_S = {"1": 1, "60": 60, "3600": 3_600, "43200": 43_200, "1D": 86_400}
MAX_CANDLES = 1_000


class VolIndexHistory:
    """One currency's index before the start (`level`), in vol points."""

    def __init__(self, spec: UnderlyingSpec, seed: int, start_ms: int) -> None:
        s = spec.surface
        base = s.atm_vol if s.atm_vol is not None else (
            spec.regimes[0].vol if spec.regimes else spec.vol
        )  # fmt: skip
        self._ln0 = math.log(base)
        self._vov = s.history_vol_of_vol
        self._start_ms = start_ms
        self._rng = np.random.default_rng([seed, zlib.crc32(spec.currency.encode())])
        self._walk: NDArray[np.float64] = np.zeros(1)  # ln offsets, hour k before the start

    def level(self, at_ms: int) -> float:
        """The index (vol points) at `at_ms`, a time before the start."""
        k = math.ceil((self._start_ms - at_ms) / HOUR_MS)
        if k >= len(self._walk):
            more = self._rng.standard_normal(k + 1 - len(self._walk))
            steps = self._vov * math.sqrt(_HOUR_Y) * more
            self._walk = np.concatenate([self._walk, self._walk[-1] + np.cumsum(steps)])
        return 100.0 * math.exp(self._ln0 + float(self._walk[k]))


def candle_times(start_ms: int, end_ms: int, resolution_s: int) -> tuple[list[int], int | None]:
    """The candle times (ms, on the resolution's grid) in [start_ms, end_ms], the newest
    `MAX_CANDLES`, oldest first; and the continuation (the `end_timestamp` of the next
    page back) when older ones were left out."""
    step = resolution_s * 1000
    first = -(-start_ms // step) * step
    last = end_ms // step * step
    if last < first:
        return [], None
    n = (last - first) // step + 1
    if n <= MAX_CANDLES:
        return list(range(first, last + 1, step)), None
    oldest = last - (MAX_CANDLES - 1) * step
    return list(range(oldest, last + 1, step)), oldest - 1


def candle(
    level: Callable[[int], float], open_ms: int, resolution_s: int, now_ms: int
) -> list[float]:
    """[open time ms, open, high, low, close] of the candle opened at `open_ms` (`level`: the
    index at a time, vol points): open at `open_ms`, close at its end (`now_ms` while it is
    still forming), each rounded to 0.01 as Deribit publishes it."""
    first = round(level(open_ms), 2)
    last = round(level(min(open_ms + resolution_s * 1000, now_ms)), 2)
    return [open_ms, first, max(first, last), min(first, last), last]
