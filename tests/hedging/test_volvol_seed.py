"""The vol-of-vol estimator rebuilt from its recorded samples (`VolOfVolEstimator.seeded`,
what the hedge loop does at each start from the journal's samples): the estimate of the
estimator that sampled them live, older samples adding nothing, a gap one change."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from hedgerd.hedging.volvol import VOLVOL_WINDOW_MS, VolOfVolEstimator

DAY_MS = 86_400_000
START_MS = 1_790_000_000_000  # any fixed instant: the estimator reads no clock
MIN_MS = 60_000
YEAR_MS = 365.0 * DAY_MS


def _live(
    rng: random.Random, days: float, start_ms: int = START_MS, gap: tuple[int, int] | None = None
) -> tuple[VolOfVolEstimator, list[tuple[int, float]], int]:
    """An estimator fed a random-walk mark every 1-7 minutes for `days` (none inside `gap`,
    ms from the start); the samples it recorded, and the last evaluation's time."""
    est = VolOfVolEstimator(start_ms)
    samples: list[tuple[int, float]] = []
    t, ln = start_ms, math.log(0.6)
    while t < start_ms + days * DAY_MS:
        if gap is None or not gap[0] <= t - start_ms < gap[1]:
            vol = math.exp(ln)
            if est.observe(vol, t):
                samples.append((t, vol))
        ln += rng.gauss(0.0, 0.01)
        t += rng.randint(1, 7) * MIN_MS
    return est, samples, t - MIN_MS


@pytest.mark.parametrize("days", [0.5, 3.0, 45.0])
def test_seeded_from_the_recorded_samples_equals_the_live_estimate(days: float) -> None:
    est, samples, now = _live(random.Random(7), days)
    assert len(samples) > 10
    seeded = VolOfVolEstimator.seeded(samples, now)
    for later in (now, now + DAY_MS, now + 20 * DAY_MS):
        assert est.estimate(later) > 0.0
        assert seeded.estimate(later) == est.estimate(later)
    assert seeded.last_sample_ms == samples[-1][0]
    # And both take the next mark alike (a sample as soon as 10 minutes have passed).
    for e in (est, seeded):
        e.observe(0.9, samples[-1][0] + 10 * MIN_MS)
    assert seeded.estimate(now + DAY_MS) == est.estimate(now + DAY_MS)


def test_samples_before_the_window_add_nothing_and_later_ones_are_left_out() -> None:
    _, samples, now = _live(random.Random(11), 45.0)
    cut = now - VOLVOL_WINDOW_MS
    pred = max(i for i, (t, _) in enumerate(samples) if t <= cut)  # the first change's
    window_only = samples[pred:]
    full = VolOfVolEstimator.seeded(samples, now).estimate(now)
    assert full > 0.0
    assert VolOfVolEstimator.seeded(window_only, now).estimate(now) == full
    # Without the predecessor the first change in the window is lost: the estimate is not
    # the same (it is the predecessor's ln that counts, not its change).
    assert VolOfVolEstimator.seeded(samples[pred + 1 :], now).estimate(now) != full
    # Samples after `now` (a clock stepped back) are not taken.
    ahead = [*samples, (now + DAY_MS, 5.0)]
    assert VolOfVolEstimator.seeded(ahead, now).estimate(now) == full


def test_a_gap_in_the_samples_is_one_change_as_live() -> None:
    est, samples, now = _live(random.Random(5), 10.0, gap=(2 * DAY_MS, 5 * DAY_MS))
    times = [t for t, _ in samples]
    jumps = [b - a for a, b in itertools.pairwise(times)]
    assert max(jumps) >= 3 * DAY_MS  # the gap: one change across it
    assert VolOfVolEstimator.seeded(samples, now).estimate(now) == est.estimate(now)


def test_no_samples_start_empty_at_now() -> None:
    seeded = VolOfVolEstimator.seeded([], START_MS)
    assert seeded.estimate(START_MS) == 0.0 and seeded.last_sample_ms is None
    # Observation begins now: one change a day later is over the one-day minimum span.
    seeded.observe(0.6, START_MS)
    seeded.observe(0.9, START_MS + DAY_MS)
    assert seeded.estimate(START_MS + DAY_MS) == pytest.approx(math.sqrt(math.log(1.5) ** 2 * 365))


def test_a_proxy_series_counts_its_changes_but_none_across_the_joint() -> None:
    """A venue's vol index before the samples: its changes and the samples' count, the
    step from its last point to the first sample does not (levels differ: an ATM index is
    not the book's gamma-weighted vol); its points at or after the first sample are not
    taken. Observation begins at its first point."""
    hour = 3_600_000
    proxy = [(START_MS + i * hour, 0.5 * (1.1 if i % 2 else 1.0)) for i in range(48)]
    joint = START_MS + 48 * hour
    samples = [(joint, 0.9), (joint + 10 * MIN_MS, 0.99)]
    now = joint + 10 * MIN_MS
    late = [*proxy, (joint, 3.0), (joint + 5 * MIN_MS, 0.1)]  # overlapping: dropped
    est = VolOfVolEstimator.seeded(samples, now, proxy=late)
    # 47 changes of ln 1.1 in the proxy, one of ln 1.1 in the samples, none at the joint.
    span_y = (now - START_MS) / YEAR_MS
    assert est.estimate(now) == pytest.approx(math.sqrt(48 * math.log(1.1) ** 2 / span_y))
    # Without samples the first live mark is the joint: no change, the next one counts.
    alone = VolOfVolEstimator.seeded([], joint, proxy=proxy)
    before = alone.estimate(joint)
    assert before == pytest.approx(
        math.sqrt(47 * math.log(1.1) ** 2 / ((joint - START_MS) / YEAR_MS))
    )
    assert alone.observe(5.0, joint)
    assert alone.estimate(joint) == before
    assert alone.observe(5.5, joint + 10 * MIN_MS)
    assert alone.estimate(joint + 10 * MIN_MS) > before
