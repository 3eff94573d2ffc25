"""Online estimate of the index's jump variance against the marks' (pure: times in ms).

The marks carry the diffusion's vol; where the index also jumps, its realised variance is
the marks' plus the jumps'. Hedging a long-gamma book at the delta of a *lower* vol
(Zakamouline's modified-vol centre) is then the wrong way: the delta the index moves with
is the delta at the realised vol (issue 19, docs/backtest.md "Jumps: two mechanisms the
default has no signal for"). Realised variance alone mixes the jumps with a vol regime the
marks have not caught up with; the jumps' part is realised minus bipower variation
(Barndorff-Nielsen and Shephard 2004):

    RV = sum r_i^2,   BV = (pi / 2) sum |r_i| |r_{i-1}|,   r_i = ln(S_i / S_{i-1})

over a trailing window (BV is robust to a jump: one large return meets small neighbours).
`JumpVarianceEstimator` gives the ratio of the index's variance to the marks'

    r = 1 + max(RV - BV, 0) / MV,   MV = sum sigma_{i-1}^2 (t_i - t_{i-1}) / year

moved toward 1 while the window's returns cover less than `ramp_ms` (one day: a few
returns say nothing; counted in returns, not in time since the first sample, so a short run
long ago does not count as a day observed), and at most `JUMP_RATIO_MAX` (a bad index print
that reverts reads as a huge jump for the window: the cap bounds what it does to the centre),
with sigma the book's mark vol (the band's). `skew` gives the jumps' sign: the window's
sum r_i^3 over its whole variance (MV + RV - BV, a return), where the ratio finds a jump
(else 0), ramped as the ratio, within +-`JUMP_SKEW_MAX`: the minimum-variance hedge of a
book with gamma Gamma moves by Gamma S E[J^3] lambda / (2 (sigma^2 + lambda E[J^2])) where
the jumps lean one way (`kernel.jump_shift`). Without jumps RV - BV is noise of
standard deviation about sqrt(theta / n) BV over n returns (theta = pi^2/4 + pi - 5, the
asymptotic variance of the difference, Barndorff-Nielsen and Shephard 2006, at constant
vol): `ratio`'s `noise_sd` k counts the excess only where it is beyond k of those (a
test, not a deduction: a jump found counts whole), so a diffusion's noise does not move
the centre. Index and marks are sampled together,
at most once every `sample_ms` (the vol-of-vol's 10 minutes: the daemon records them in one
journal row). A gap longer than `max_gap_ms` (the daemon was down) starts a new series: a
return over hours is not one sampling step's, and bipower would read it as a jump.

`estimate` also gives the jumps' rate (per year): the window's returns beyond
`JUMP_COUNT_SD` of the marks' standard deviation over their step (sigma_{i-1}
sqrt(t_i - t_{i-1})), counted, over the time the window's returns cover (at least
`JUMP_RATE_MIN_SPAN_MS`, a week, or the window if shorter: one jump in a run's first hours
is not hundreds a year), where the ratio finds a jump (else 0). The ratio says how much
variance the jumps add a year; the rate says how likely one is within a book's life:
`kernel.jump_shift` weighs the ratio's excess by 1 - exp(-rate x tau), the chance of at least
one jump before the book expires (issue 19, docs/backtest.md "The jump term weighed by a
jump within the book's life"). The window is 28 days (not 7): a week of a rate of 24 a year
reads no jump half the time and twice the rate the other half, where a 90-day book needs the
rate; near-expiry books, which a longer window's old jumps would over-hedge, have the weight
near 0 (28 days, not 30: Deribit's index chart's "1m" range reaches back 30 days, the window
and its hour before it fit).

`JumpVariancePaths` is the backtest's form (arrays of paths, one observation per step,
sampled as the online one, the window's sums as differences of running totals).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hedgerd.hedging.trailing import YEAR_MS, TrailingSum
from hedgerd.hedging.volvol import VOLVOL_SAMPLE_MS

JUMP_WINDOW_MS = 28 * 86_400_000
JUMP_RAMP_MS = 86_400_000
JUMP_MAX_GAP_MS = 3_600_000
#: The largest ratio taken: the index moving at twice the marks' vol.
JUMP_RATIO_MAX = 4.0
#: The largest |skew| taken (a return): a bad print that reverts leaves r^3 and -r^3 and
#: mostly cancels, but a one-sided one would not.
JUMP_SKEW_MAX = 0.2
#: A return counts as a jump beyond this many of the marks' standard deviations over its step
#: (a diffusion at the marks' vol: 6e-5 of returns, 0.26 a window of 10-minute returns).
JUMP_COUNT_SD = 4.0
_COUNT_SD2 = JUMP_COUNT_SD * JUMP_COUNT_SD
#: The least time the rate's count is taken over (or the window, if shorter): a jump in the
#: first hours of a run with no index history reads as a week's, not as hundreds a year (the
#: weight would then be ~1 for any book, the over-hedging of short books it is there to stop).
JUMP_RATE_MIN_SPAN_MS = 7 * 86_400_000
_HALF_PI = 0.5 * math.pi
_THETA = math.pi**2 / 4.0 + math.pi - 5.0


class JumpEstimate(NamedTuple):
    """One read of the window: `ratio` (dimensionless, in [1, `JUMP_RATIO_MAX`]), `skew`
    (a signed return, within +-`JUMP_SKEW_MAX`) and `rate_per_year` (jumps counted a year,
    >= 0; 0 where the ratio finds no jump)."""

    ratio: float
    skew: float
    rate_per_year: float


_NONE = JumpEstimate(1.0, 0.0, 0.0)


class JumpVarianceEstimator:
    """Trailing-window ratio of the index's jump-inclusive variance to the marks' variance
    (dimensionless, in [1, `JUMP_RATIO_MAX`]) of one underlying. An estimator rebuilt from
    the recorded samples (`seeded`) is the live one exactly."""

    def __init__(
        self,
        window_ms: int = JUMP_WINDOW_MS,
        ramp_ms: int = JUMP_RAMP_MS,
        sample_ms: int = VOLVOL_SAMPLE_MS,
        max_gap_ms: int = JUMP_MAX_GAP_MS,
    ) -> None:
        if window_ms <= 0 or ramp_ms < 0 or sample_ms < 0 or max_gap_ms <= 0:
            raise ValueError("window_ms and max_gap_ms must be positive, the others >= 0")
        self._ramp_ms = ramp_ms
        self._sample_ms = sample_ms
        self._max_gap_ms = max_gap_ms
        self._last: tuple[int, float, float] | None = None  # (ms, ln index, mark vol)
        self._last_abs: float | None = None  # |previous return| of the series
        self._rv = TrailingSum(window_ms)  # r_i^2
        self._bv = TrailingSum(window_ms)  # (pi/2) |r_i| |r_{i-1}|
        self._mv = TrailingSum(window_ms)  # sigma_{i-1}^2 dt_i (years)
        self._span = TrailingSum(window_ms)  # dt_i (ms): the time the returns cover
        self._r3 = TrailingSum(window_ms)  # r_i^3
        self._count = TrailingSum(window_ms)  # 1 where r_i^2 > JUMP_COUNT_SD^2 sigma^2 dt

    @property
    def window_ms(self) -> int:
        return self._rv.window_ms

    @classmethod
    def seeded(
        cls,
        samples: Iterable[tuple[int, float, float]],
        now_ms: int,
        window_ms: int = JUMP_WINDOW_MS,
    ) -> JumpVarianceEstimator:
        """An estimator that observed `samples` ((time ms, index USD, mark vol), oldest
        first, as recorded live) up to `now_ms`."""
        est = cls(window_ms)
        for t, index, vol in samples:
            if t <= now_ms:
                est.observe(index, vol, t)
        return est

    def observe(self, index_usd: float, mark_vol: float, at_ms: int) -> bool:
        """Record the index (USD, > 0) and the mark vol (fraction, > 0) at `at_ms`, if
        `sample_ms` has passed since the last recorded pair (else skipped; non-finite or
        non-positive values are skipped too). True when recorded."""
        if not (
            math.isfinite(index_usd)
            and index_usd > 0.0
            and math.isfinite(mark_vol)
            and mark_vol > 0.0
        ):
            return False
        last = self._last
        if last is not None and at_ms - last[0] < self._sample_ms:
            return False
        ln = math.log(index_usd)
        if last is not None and at_ms - last[0] <= self._max_gap_ms:
            r = ln - last[1]
            mv = last[2] * last[2] * ((at_ms - last[0]) / YEAR_MS)
            self._rv.add(at_ms, r * r)
            self._r3.add(at_ms, r * r * r)
            self._mv.add(at_ms, mv)
            self._count.add(at_ms, 1.0 if r * r > _COUNT_SD2 * mv else 0.0)
            self._span.add(at_ms, float(at_ms - last[0]))
            if self._last_abs is not None:
                self._bv.add(at_ms, _HALF_PI * abs(r) * self._last_abs)
            self._last_abs = abs(r)
        else:
            self._last_abs = None  # a new series: no return across the gap
        self._last = (at_ms, ln, mark_vol)
        return True

    def ratio(self, now_ms: int, noise_sd: float = 0.0) -> float:
        """r = 1 + (RV - BV) / MV over (now - window, now] where RV - BV exceeds `noise_sd`
        standard deviations of its no-jump noise, sqrt(theta / n) BV (else 1), toward 1 by
        the time the window's returns cover over `ramp_ms` (1 with no returns), at most
        `JUMP_RATIO_MAX`."""
        return self.estimate(now_ms, noise_sd)[0]

    def skew(self, now_ms: int, noise_sd: float = 0.0) -> float:
        """The jumps' lean (a return, signed): sum r^3 / (MV + RV - BV) over the window where
        `ratio` finds a jump (else 0), times its ramp, within +-`JUMP_SKEW_MAX`."""
        return self.estimate(now_ms, noise_sd)[1]

    def estimate(self, now_ms: int, noise_sd: float = 0.0) -> JumpEstimate:
        """`ratio`, `skew` and the jumps' rate (per year: the window's returns beyond
        `JUMP_COUNT_SD` of the marks' sd over their step, over the time its returns cover, at
        least `JUMP_RATE_MIN_SPAN_MS` or the window if shorter; 0 where `ratio` finds no
        jump) from one read of the window's sums (the hedge loop takes them on every
        evaluation)."""
        mv, count = self._mv.sums(now_ms)
        if count == 0 or not mv > 0.0:
            return _NONE
        rv = self._rv.sums(now_ms)[0]
        bv = self._bv.sums(now_ms)[0]
        excess = rv - bv
        if not excess > noise_sd * math.sqrt(_THETA / count) * bv or not excess > 0.0:
            return _NONE
        seen = self._span.sums(now_ms)[0]
        w = 1.0 if self._ramp_ms == 0 or seen >= self._ramp_ms else seen / self._ramp_ms
        sk = w * self._r3.sums(now_ms)[0] / (mv + excess)
        ratio = min(1.0 + w * (excess / mv), JUMP_RATIO_MAX)
        least = min(JUMP_RATE_MIN_SPAN_MS, self.window_ms)
        rate = self._count.sums(now_ms)[0] / (max(seen, least, 1.0) / YEAR_MS)
        return JumpEstimate(ratio, min(max(sk, -JUMP_SKEW_MAX), JUMP_SKEW_MAX), rate)


class JumpVariancePaths:
    """`JumpVarianceEstimator` for arrays of paths observed every `step_ms` from t = 0 (the
    backtest): `observe` once per step, in order, then `ratio`. Steps closer than
    `sample_ms` to the last sampled one are skipped, as the online estimator skips them;
    the backtest has no gaps."""

    def __init__(
        self,
        step_ms: float,
        window_ms: float = JUMP_WINDOW_MS,
        ramp_ms: float = JUMP_RAMP_MS,
        sample_ms: float = VOLVOL_SAMPLE_MS,
    ) -> None:
        self._step_ms = step_ms
        self._window_ms = window_ms
        self._ramp_ms = ramp_ms
        self._sample_ms = sample_ms
        self._last_ms = 0.0
        # A return at step j counts at step t when j step > t step - window: the last `lag`.
        self._lag = max(1, math.ceil(window_ms / step_ms - 1e-9))
        # (rv, bv, mv, n, span, r3, count): arrays per path but n and span (floats).
        self._totals: deque[tuple[Any, ...]] = deque(maxlen=self._lag + 1)
        self._last: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        self._last_abs: NDArray[np.float64] | None = None
        self._steps = 0

    def observe(self, index_usd: NDArray[np.float64], mark_vol: NDArray[np.float64]) -> None:
        """The paths' index (USD) and mark vol (fraction) at the next step."""
        at = self._steps * self._step_ms
        self._steps += 1
        if self._last is None:
            zero = np.zeros_like(np.asarray(index_usd, dtype=np.float64))
            self._last = (np.log(index_usd), np.asarray(mark_vol, dtype=np.float64))
            # The count of returns and the time they cover are the same on every path (no
            # gaps): plain floats, not arrays (the window holds 4,032 samples' totals).
            self._totals.append((zero, zero, zero, 0.0, 0.0, zero, zero))
            return
        if at - self._last_ms < self._sample_ms - 1e-6:  # float steps: not a ms short
            self._totals.append(self._totals[-1])
            return
        ln = np.log(index_usd)
        r = ln - self._last[0]
        a = np.abs(r)
        rv, bv, mv, n, span, r3, jc = self._totals[-1]
        dmv = self._last[1] * self._last[1] * ((at - self._last_ms) / YEAR_MS)
        bv = bv if self._last_abs is None else bv + _HALF_PI * a * self._last_abs
        jc = jc + np.where(r * r > _COUNT_SD2 * dmv, 1.0, 0.0)
        span = span + (at - self._last_ms)
        sums = (rv + r * r, bv, mv + dmv, n + 1.0, span, r3 + r * r * r, jc)
        self._totals.append(sums)
        self._last = (ln, np.asarray(mark_vol, dtype=np.float64))
        self._last_abs = a
        self._last_ms = at

    def ratio(self, noise_sd: float = 0.0) -> NDArray[np.float64]:
        """r per path at the last observed step (`JumpVarianceEstimator.ratio`)."""
        return self.estimate(noise_sd)[0]

    def skew(self, noise_sd: float = 0.0) -> NDArray[np.float64]:
        """The jumps' lean per path at the last observed step (`JumpVarianceEstimator.skew`)."""
        return self.estimate(noise_sd)[1]

    def estimate(
        self, noise_sd: float = 0.0
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(`ratio`, `skew`, rate per year) per path from one difference of the window's
        totals (`JumpVarianceEstimator.estimate`)."""
        now = self._totals[-1]
        if len(self._totals) > self._lag:
            old = self._totals[0]
            rv, bv, mv, n, seen, r3, jc = (x - o for x, o in zip(now, old, strict=True))
        else:
            rv, bv, mv, n, seen, r3, jc = now
        w = np.minimum(seen / self._ramp_ms, 1.0) if self._ramp_ms > 0 else np.ones_like(rv)
        noise = noise_sd * np.sqrt(_THETA / np.maximum(n, 1.0)) * bv
        excess = np.where(rv - bv > noise, np.maximum(rv - bv, 0.0), 0.0)
        ratio = np.minimum(1.0 + w * excess / np.maximum(mv, 1e-300), JUMP_RATIO_MAX)
        sk = np.where(excess > 0.0, w * r3 / np.maximum(mv + excess, 1e-300), 0.0)
        years = max(seen, min(JUMP_RATE_MIN_SPAN_MS, self._window_ms), 1.0) / YEAR_MS
        rate = np.where(excess > 0.0, jc / years, 0.0)
        return ratio, np.clip(sk, -JUMP_SKEW_MAX, JUMP_SKEW_MAX), rate


__all__ = [
    "JUMP_COUNT_SD",
    "JUMP_MAX_GAP_MS",
    "JUMP_RAMP_MS",
    "JUMP_RATE_MIN_SPAN_MS",
    "JUMP_RATIO_MAX",
    "JUMP_SKEW_MAX",
    "JUMP_WINDOW_MS",
    "JumpEstimate",
    "JumpVarianceEstimator",
    "JumpVariancePaths",
]
