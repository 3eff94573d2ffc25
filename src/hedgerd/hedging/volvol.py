"""Online estimate of the marks' vol-of-vol (pure: times are passed in, in ms).

The hedgerd band's constant-vol refinements (the modified-vol centre shift, the horizon
term, the averaged gamma) are mean-variance gains when the vol is known and constant; when
the marks move, their P&L covaries with the book's vega P&L (issue 19, docs/backtest.md
"Volatility regimes", fifth and sixth rounds). The band weighs them against that
covariance, which needs the vol-of-vol. `VolOfVolEstimator` is fed the book's mark vol (one
number per underlying and evaluation: the hedge loop gives it the |gamma|-weighted mark IV
the band prices with) with its time (ms) and gives

    xi = sqrt(sum of (ln sigma_i - ln sigma_{i-1})^2 over a trailing window / span in years)

in 1/sqrt(year): the realised variance rate of ln(mark vol). A mark that never changes gives
exactly 0 (the band is then the plain one, bit for bit). Marks are sampled at most once every
`sample_ms` (10 minutes, the backtest's decision step): a live mark IV moves a little at
every evaluation, and a realised variance summed over ever finer steps would measure that
noise, not the vol's moves. The span is as the flow estimator's (`trailing.span_ms`): the time
observed, at least `min_span_ms`, at most the window. The first observation has no
predecessor and adds nothing.

`VolOfVolEstimator.seeded` rebuilds an estimator from its recorded samples (the daemon keeps
them in its journal, `portfolio.volvol_seed`): fed the same samples, the same estimate as
the estimator that sampled them live.

`VolOfVolPaths` is the backtest's form (arrays of paths, one observation per step, sampled
as the online one), the same sum as a difference of running totals (exactly 0 where no change
is in the window).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

# The trailing sum and the rate's denominator as the option flow estimator's.
from hedgerd.hedging.trailing import YEAR_MS, TrailingSum, span_ms

VOLVOL_WINDOW_MS = 30 * 86_400_000
VOLVOL_MIN_SPAN_MS = 86_400_000
VOLVOL_SAMPLE_MS = 600_000


class VolOfVolEstimator:
    """Trailing-window realised vol-of-vol of one underlying's mark vol (1/sqrt(year)).

    `start_ms` is when observation began (the daemon's start, the backtest's t = 0).
    """

    def __init__(
        self,
        start_ms: int,
        window_ms: int = VOLVOL_WINDOW_MS,
        min_span_ms: int = VOLVOL_MIN_SPAN_MS,
        sample_ms: int = VOLVOL_SAMPLE_MS,
    ) -> None:
        if window_ms <= 0 or min_span_ms <= 0 or sample_ms < 0:
            raise ValueError("window_ms and min_span_ms must be positive, sample_ms >= 0")
        self._start_ms = start_ms
        self._min_span_ms = min(min_span_ms, window_ms)
        self._sample_ms = sample_ms
        self._last_ms: int | None = None
        self._last_ln: float | None = None
        self._changes = TrailingSum(window_ms)  # squared ln changes by time

    @property
    def window_ms(self) -> int:
        return self._changes.window_ms

    @classmethod
    def seeded(
        cls,
        samples: Iterable[tuple[int, float]],
        now_ms: int,
        window_ms: int = VOLVOL_WINDOW_MS,
        min_span_ms: int = VOLVOL_MIN_SPAN_MS,
        sample_ms: int = VOLVOL_SAMPLE_MS,
        proxy: Iterable[tuple[int, float]] = (),
    ) -> VolOfVolEstimator:
        """An estimator that sampled `samples` ((time ms, mark vol), oldest first, each as
        `observe` recorded it) live: observation began at the first one (`now_ms` when there
        is none). Samples after `now_ms` are left out; those before the window add nothing
        but their ln (the last of them is the first change's predecessor, as it was live).

        `proxy`: another series of the vol before the samples (a venue's vol index, the
        window's part the samples do not cover), sampled alike and observed first; its
        changes count, but no change is taken across the joint of the two series (from its
        last point to the first sample, or to the first live mark when there is no sample):
        their levels differ (an ATM index is not the book's gamma-weighted vol)."""
        ahead = [(t, v) for t, v in proxy if t <= now_ms]
        kept = [(t, v) for t, v in samples if t <= now_ms]
        if kept:
            ahead = [(t, v) for t, v in ahead if t < kept[0][0]]
        first = (ahead or kept)[0][0] if ahead or kept else now_ms
        est = cls(first, window_ms, min_span_ms, sample_ms)
        for t, v in ahead:
            est.observe(v, t)
        if ahead:
            est._last_ln = est._last_ms = None  # the joint: the next sample starts a series
        for t, v in kept:
            est.observe(v, t)
        return est

    @property
    def last_sample_ms(self) -> int | None:
        """When the last sample was recorded (ms); None before the first."""
        return self._last_ms

    def observe(self, mark_vol: float, at_ms: int) -> bool:
        """Record the mark vol (a fraction, > 0) at `at_ms`, if `sample_ms` has passed since
        the last recorded one (else skipped). Non-finite or non-positive marks are skipped:
        they carry no vol (the next valid mark is compared with the last one). True when
        recorded (a sample to keep: `seeded` rebuilds the estimator from them)."""
        if not (math.isfinite(mark_vol) and mark_vol > 0.0):
            return False
        if self._last_ms is not None and at_ms - self._last_ms < self._sample_ms:
            return False
        ln = math.log(mark_vol)
        if self._last_ln is not None and ln != self._last_ln:
            d = ln - self._last_ln
            self._changes.add(at_ms, d * d)
        self._last_ln = ln
        self._last_ms = at_ms
        return True

    def estimate(self, now_ms: int) -> float:
        """xi (1/sqrt(year)) from the changes in (now - window, now]; 0 if none."""
        total, count = self._changes.sums(now_ms)
        if count == 0:
            return 0.0
        span = span_ms(now_ms - self._start_ms, self.window_ms, self._min_span_ms)
        return math.sqrt(total / (span / YEAR_MS))


class VolOfVolPaths:
    """`VolOfVolEstimator` for arrays of paths observed every `step_ms` from t = 0 (the
    backtest): `observe` once per step, in order, then `estimate`. Steps closer than
    `sample_ms` to the last sampled one are skipped, as the online estimator skips them."""

    def __init__(
        self,
        step_ms: float,
        window_ms: float = VOLVOL_WINDOW_MS,
        min_span_ms: float = VOLVOL_MIN_SPAN_MS,
        sample_ms: float = VOLVOL_SAMPLE_MS,
    ) -> None:
        self._step_ms = step_ms
        self._window_ms = window_ms
        self._min_span_ms = min(min_span_ms, window_ms)
        self._sample_ms = sample_ms
        self._last_ms = 0.0
        # A change at step j counts at step t when j step > t step - window: the last `lag`.
        self._lag = max(1, math.ceil(window_ms / step_ms - 1e-9))
        self._totals: deque[NDArray[np.float64]] = deque(maxlen=self._lag + 1)
        self._last_ln: NDArray[np.float64] | None = None
        self._steps = 0

    def observe(self, mark_vol: NDArray[np.float64]) -> None:
        """The paths' mark vols at the next step (fractions, > 0)."""
        at = self._steps * self._step_ms
        self._steps += 1
        if self._last_ln is None:
            self._last_ln = np.log(mark_vol)
            self._totals.append(np.zeros_like(self._last_ln))
            return
        if at - self._last_ms < self._sample_ms - 1e-6:  # float steps: not a ms short
            self._totals.append(self._totals[-1])  # not sampled: nothing added this step
            return
        ln = np.log(mark_vol)
        d = ln - self._last_ln
        # A running total of non-negative terms: differences are >= 0, and exactly 0
        # where every term between is 0.
        self._totals.append(self._totals[-1] + d * d)
        self._last_ln = ln
        self._last_ms = at

    def estimate(self) -> NDArray[np.float64]:
        """xi (1/sqrt(year)) per path at the last observed step."""
        now = self._totals[-1]
        old = self._totals[0] if len(self._totals) > self._lag else np.zeros_like(now)
        elapsed = (self._steps - 1) * self._step_ms
        span = span_ms(elapsed, int(self._window_ms), int(self._min_span_ms))
        return np.sqrt((now - old) / (span / YEAR_MS))
