"""The index's jump variance over the marks' (`hedging.jumps`) and its term in the band's
centre (`kernel.jump_shift`, the hedgerd policy's `jump_shift_power`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.jumps import (
    JUMP_RATE_MIN_SPAN_MS,
    JUMP_RATIO_MAX,
    JUMP_SKEW_MAX,
    JUMP_WINDOW_MS,
    JumpVarianceEstimator,
    JumpVariancePaths,
)
from hedgerd.hedging.kernel import BandContext, band_for, ww_halfwidth

DAY_MS = 86_400_000
YEAR_MS = 365.0 * DAY_MS
START_MS = 1_790_000_000_000  # any fixed instant: the estimator reads no clock
STEP_MS = 600_000  # the sampling step


def _path(rng: np.random.Generator, n: int, vol: float, jumps: dict[int, float]) -> list[float]:
    """An index path of n + 1 points, 10-minute diffusion returns at `vol` plus the jumps
    (log size) at their steps."""
    sd = vol * math.sqrt(STEP_MS / YEAR_MS)
    r = rng.normal(0.0, sd, n)
    for i, j in jumps.items():
        r[i] += j
    return list(100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)])))


def test_no_returns_or_constant_index_give_exactly_one() -> None:
    est = JumpVarianceEstimator()
    assert est.ratio(START_MS) == 1.0
    for i in range(300):
        est.observe(100.0, 0.6, START_MS + i * STEP_MS)
    assert est.ratio(START_MS + 299 * STEP_MS) == 1.0


def test_a_jump_is_the_excess_over_the_marks_variance_and_leaves_with_the_window() -> None:
    rng = np.random.default_rng(3)
    n = JUMP_WINDOW_MS // STEP_MS  # the window's 10-minute returns (28 days)
    vol = 0.6
    jump = 0.1
    spots = _path(rng, 2 * n, vol, {n // 2: jump})
    est = JumpVarianceEstimator()
    for i, s in enumerate(spots[: n + 1]):
        est.observe(s, vol, START_MS + i * STEP_MS)
    now = START_MS + n * STEP_MS
    mv = vol * vol * n * STEP_MS / YEAR_MS
    # The jump's square over the window's marked variance, up to the diffusion's noise
    # (realised minus bipower of 4,032 diffusion returns: a few % of mv).
    assert est.ratio(now) == pytest.approx(1.0 + jump * jump / mv, abs=0.05)
    assert jump * jump / mv > 0.3  # the jump is what the ratio measures, not the noise
    for i in range(n + 1, 2 * n + 1):
        est.observe(spots[i], vol, START_MS + i * STEP_MS)
    assert est.ratio(START_MS + 2 * n * STEP_MS) < 1.05  # out of the window


def test_diffusion_alone_and_a_vol_regime_stay_near_one() -> None:
    """Bipower takes a vol the marks have not caught up with as diffusion: the ratio is
    about 1 where realised over marked variance is 4; beyond the noise threshold (the
    default policy's, 3 standard deviations), exactly 1 on most windows, while a jump of the
    first test's size still counts."""
    noise = HedgerdPolicy().jump_noise_sd
    n = 7 * 144
    now = START_MS + n * STEP_MS
    plain, thresholded = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        est = JumpVarianceEstimator()
        for i, s in enumerate(_path(rng, n, 1.2, {})):
            est.observe(s, 0.6, START_MS + i * STEP_MS)
        plain.append(est.ratio(now))
        thresholded.append(est.ratio(now, noise_sd=noise))
    assert max(plain) < 1.25 and sum(r > 1.0 for r in plain) >= 5  # the noise
    assert sum(r == 1.0 for r in thresholded) >= 19
    jumped = JumpVarianceEstimator()
    for i, s in enumerate(_path(np.random.default_rng(3), n, 0.6, {n // 2: 0.05})):
        jumped.observe(s, 0.6, START_MS + i * STEP_MS)
    assert jumped.ratio(now, noise_sd=noise) > 1.2


def test_ramp_gap_sampling_and_bad_input() -> None:
    est = JumpVarianceEstimator()
    assert est.observe(100.0, 0.5, START_MS)
    assert not est.observe(130.0, 0.5, START_MS + STEP_MS - 1)  # under the sampling step
    for bad in (math.nan, 0.0, -1.0, math.inf):
        assert not est.observe(bad, 0.5, START_MS + STEP_MS)
        assert not est.observe(100.0, bad, START_MS + STEP_MS)
    assert est.observe(100.0, 0.5, START_MS + STEP_MS)
    assert est.observe(101.0, 0.5, START_MS + 2 * STEP_MS)  # a 1 % jump
    assert est.observe(101.0, 0.5, START_MS + 3 * STEP_MS)
    t = START_MS + 3 * STEP_MS
    mv = 0.25 * 3 * STEP_MS / YEAR_MS
    # 30 minutes of a day's ramp seen.
    assert est.ratio(t) == pytest.approx(1.0 + (1.0 / 48.0) * math.log(1.01) ** 2 / mv)
    # After a gap (the daemon down) the first return is not taken: no variance added.
    gap = JumpVarianceEstimator()
    gap.observe(100.0, 0.5, START_MS)
    gap.observe(150.0, 0.5, START_MS + 2 * 3_600_000)
    assert gap.ratio(START_MS + 2 * 3_600_000) == 1.0


def test_seeded_is_the_estimator_that_observed_live() -> None:
    rng = np.random.default_rng(11)
    spots = _path(rng, 400, 0.8, {100: -0.06, 300: 0.04})
    samples = [(START_MS + i * STEP_MS, s, 0.7) for i, s in enumerate(spots)]
    live = JumpVarianceEstimator()
    for t, s, v in samples:
        live.observe(s, v, t)
    now = samples[-1][0]
    assert JumpVarianceEstimator.seeded(samples, now).ratio(now) == live.ratio(now)
    assert JumpVarianceEstimator.seeded([], now).ratio(now) == 1.0


def test_the_seed_read_of_a_window_and_two_before_it_is_the_live_estimator() -> None:
    """A day more than the window observed, a jump 10 minutes into the last window: the
    samples of the window and the two before it (what the journal's seed read gives) rebuild
    the live estimate exactly, the jump and its count included."""
    w = JUMP_WINDOW_MS // STEP_MS
    n = w + 144
    window_start = START_MS + (n - w) * STEP_MS  # the window is (start, now]
    spots = _path(np.random.default_rng(2), n, 0.6, {n - w: 0.1})
    samples = [(START_MS + i * STEP_MS, s, 0.6) for i, s in enumerate(spots)]
    live = JumpVarianceEstimator()
    for t, s, v in samples:
        live.observe(s, v, t)
    now = samples[-1][0]
    inside = [x for x in samples if x[0] > window_start]
    before = [x for x in samples if x[0] <= window_start][-2:]
    got = JumpVarianceEstimator.seeded([*before, *inside], now).estimate(now, 3.0)
    want = live.estimate(now, 3.0)
    assert got == want
    assert want.ratio > 1.2
    assert want.rate_per_year == pytest.approx(365 / 28, rel=1e-9)  # the one jump


def test_a_short_run_long_ago_does_not_count_as_a_day_observed() -> None:
    """The ramp counts the time the window's returns cover: three samples three days ago
    and two now are 30 minutes of returns, not three days."""
    est = JumpVarianceEstimator()
    old = START_MS - 3 * DAY_MS
    for i, s in enumerate((100.0, 100.0, 100.0)):
        est.observe(s, 0.5, old + i * STEP_MS)
    est.observe(100.0, 0.5, START_MS)  # a new series: no return across the gap
    est.observe(101.0, 0.5, START_MS + STEP_MS)
    mv = 0.25 * 3 * STEP_MS / YEAR_MS
    want = 1.0 + (30 * 60_000 / DAY_MS) * math.log(1.01) ** 2 / mv
    assert want < 1.5
    assert est.ratio(START_MS + STEP_MS) == pytest.approx(want)


def test_the_ratio_is_capped() -> None:
    """A bad print that reverts reads as a huge jump: the ratio stops at JUMP_RATIO_MAX."""
    est = JumpVarianceEstimator(ramp_ms=0)
    for i, s in enumerate((100.0, 100.0, 200.0, 100.0, 100.0)):
        est.observe(s, 0.6, START_MS + i * STEP_MS)
    assert est.ratio(START_MS + 4 * STEP_MS) == JUMP_RATIO_MAX


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 400),
    step_ms=st.sampled_from([60_000, 300_000, 600_000, 1_800_000]),
    window_h=st.sampled_from([6, 24, 168]),
    jump_at=st.integers(0, 399),
    noise_sd=st.sampled_from([0.0, 1.0, 3.0]),
)
def test_paths_form_is_the_online_estimator(
    seed: int, n: int, step_ms: int, window_h: int, jump_at: int, noise_sd: float
) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 0.01, (n, 3))
    r[min(jump_at, n - 1), 1] += 0.08
    spots = 100.0 * np.exp(np.cumsum(np.vstack([np.zeros(3), r]), axis=0))
    marks = 0.5 + 0.1 * rng.random((n + 1, 3))
    window = window_h * 3_600_000
    paths = JumpVariancePaths(step_ms, window_ms=window)
    online = [JumpVarianceEstimator(window_ms=window) for _ in range(3)]
    for i in range(n + 1):
        paths.observe(spots[i], marks[i])
        for k, est in enumerate(online):
            est.observe(float(spots[i, k]), float(marks[i, k]), START_MS + i * step_ms)
    got, skew, rate = paths.estimate(noise_sd)
    for k, est in enumerate(online):
        want = est.estimate(START_MS + n * step_ms, noise_sd)
        assert got[k] == pytest.approx(want.ratio, rel=1e-9, abs=1e-12)
        assert skew[k] == pytest.approx(want.skew, abs=1e-12)
        assert rate[k] == pytest.approx(want.rate_per_year, rel=1e-9, abs=1e-9)


def _ctx(gamma: float, ratio: float) -> BandContext:
    ctx = BandContext(50_000.0, gamma, 2.0, 0.6, 30 / 365, 0.0, 0.0005, 0.0, 0.3)
    ctx.jump_var_ratio = ratio
    # Jumps certain within the book's life: `jump_life_weight`'s weight is 1.0 exactly.
    ctx.jump_rate_per_year = 1e9
    return ctx


@pytest.mark.parametrize("gamma", [2e-5, -2e-5])
def test_a_long_gamma_centre_moves_by_the_vanna_times_the_realised_vol_change(
    gamma: float,
) -> None:
    on = HedgerdPolicy(jump_shift_power=1.0, shift_cap_hw=0.0, vov_ref=0.0, jump_cap_hw=None)
    off = dataclasses.replace(_ctx(gamma, 1.0))
    base = band_for(on, off)
    assert band_for(on.model_copy(update={"jump_shift_power": 0.0}), off) == base  # r = 1
    r = 1.21  # the index moves at 1.1 x the marks' vol
    moved = band_for(on, _ctx(gamma, r))
    # Net-delta centre: minus a long-gamma book's delta change, vanna x sigma (sqrt(r) - 1);
    # a short-gamma book's centre stays (its modified vol is already the higher one).
    want = 2.0 * 0.6 * 0.1 if gamma > 0 else 0.0
    assert base.centre - moved.centre == pytest.approx(want, rel=1e-9, abs=0.0)
    assert (moved.lower, moved.upper) == (base.lower, base.upper)
    # The array path (the backtest's) gives the same per path.
    two = np.ones(2)
    ctx = BandContext(
        50_000.0 * two, gamma * two, 2.0 * two, 0.6 * two, (30 / 365) * two, 0.0,
        0.0005 * two, 0.0, 0.3 * two,
    )  # fmt: skip
    ctx.jump_var_ratio = np.array([1.0, r])
    ctx.jump_rate_per_year = 1e9 * two
    arr = band_for(on, ctx)
    assert arr.centre[0] == base.centre
    assert arr.centre[1] == pytest.approx(moved.centre, rel=1e-12)


@pytest.mark.parametrize("jump", [-0.05, 0.05])
def test_the_skew_is_the_jumps_cube_over_the_index_variance(jump: float) -> None:
    """One jump in a quiet week: the skew is its cube over the window's whole variance (the
    marks' plus the jump's), with the jump's sign; none found (diffusion alone), exactly 0."""
    rng = np.random.default_rng(5)
    n = 7 * 144
    vol = 0.6
    quiet = _path(rng, n, vol, {})
    est = JumpVarianceEstimator()
    for i, s in enumerate(quiet):
        est.observe(s, vol, START_MS + i * STEP_MS)
    now = START_MS + n * STEP_MS
    assert est.ratio(now, noise_sd=3.0) == 1.0
    assert est.skew(now, noise_sd=3.0) == 0.0
    spots = _path(np.random.default_rng(5), n, vol, {n // 2: jump})
    est = JumpVarianceEstimator()
    for i, s in enumerate(spots):
        est.observe(s, vol, START_MS + i * STEP_MS)
    mv = vol * vol * 7 / 365
    want = jump**3 / (mv + jump * jump)
    # The diffusion's cubes and the bipower's noise move it by a few %.
    assert est.skew(now, noise_sd=3.0) == pytest.approx(want, rel=0.1)
    assert math.copysign(1.0, est.skew(now, noise_sd=3.0)) == math.copysign(1.0, jump)


def test_the_skew_is_capped_and_ramped() -> None:
    """A one-sided bad print reads as a huge lean: it stops at JUMP_SKEW_MAX. Within the
    first day observed it is moved toward 0 as the ratio toward 1."""
    est = JumpVarianceEstimator()
    for i in range(3):
        est.observe(100.0, 0.6, START_MS + i * STEP_MS)
    est.observe(300.0, 0.6, START_MS + 3 * STEP_MS)
    est.observe(300.0, 0.6, START_MS + 4 * STEP_MS)
    now = START_MS + 4 * STEP_MS
    # Four returns of a day's 144: the ramp takes 4/144 of a lean far beyond the cap.
    raw = math.log(3.0) ** 3 / (math.log(3.0) ** 2 + 0.36 * 4 * STEP_MS / YEAR_MS)
    assert est.skew(now) == pytest.approx(min(raw * 4 / 144, JUMP_SKEW_MAX), rel=1e-9)
    for i in range(5, 200):
        est.observe(300.0, 0.6, START_MS + i * STEP_MS)
    assert est.skew(START_MS + 199 * STEP_MS) == JUMP_SKEW_MAX


def _skew_ctx(gamma: float, skew: float) -> BandContext:
    ctx = _ctx(gamma, 1.0)
    ctx.jump_skew = skew
    return ctx


@pytest.mark.parametrize("gamma", [2e-5, -2e-5])
def test_a_long_gamma_centre_leans_against_the_jumps_skew(gamma: float) -> None:
    """The skew term moves a long-gamma book's centre by w Gamma S k / 2 (the
    minimum-variance hedge's lean: falling jumps, a shorter hedge); a short-gamma book's
    stays; with k = 0 (no jump found) nothing moves, bit for bit."""
    on = HedgerdPolicy(
        jump_shift_power=1.0, jump_skew_weight=1.0, shift_cap_hw=0.0, jump_cap_hw=None
    )
    base = band_for(on, _skew_ctx(gamma, 0.0))
    assert base == band_for(on.model_copy(update={"jump_skew_weight": 0.0}), _ctx(gamma, 1.0))
    k = -0.02
    moved = band_for(on, _skew_ctx(gamma, k))
    want = 0.5 * gamma * 50_000.0 * k if gamma > 0 else 0.0  # delta change, coin
    assert base.centre - moved.centre == pytest.approx(want, rel=1e-9, abs=0.0)
    assert (moved.lower, moved.upper) == (base.lower, base.upper)
    half = band_for(on.model_copy(update={"jump_skew_weight": 0.5}), _skew_ctx(gamma, k))
    assert base.centre - half.centre == pytest.approx(0.5 * want, rel=1e-9, abs=0.0)


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.floats(1.0, 4.0),
    skew=st.floats(-JUMP_SKEW_MAX, JUMP_SKEW_MAX),
    cap=st.sampled_from([0.25, 1.0, 2.0]),
    vanna=st.floats(-50.0, 50.0),
)
def test_the_jump_terms_keep_within_their_own_cap(
    ratio: float, skew: float, cap: float, vanna: float
) -> None:
    """Whatever the ratio and skew, the jump terms move the centre by at most
    `jump_cap_hw` x H beyond where the capped Zakamouline shift put it, and by exactly the
    uncapped terms where those are inside the cap."""
    ctx = _skew_ctx(2e-5, skew)
    ctx.vanna_coin_per_vol = vanna
    ctx.jump_var_ratio = ratio
    pol = HedgerdPolicy(jump_shift_power=1.0, jump_skew_weight=1.0, jump_cap_hw=cap)
    off = band_for(pol.model_copy(update={"jump_shift_power": 0.0}), ctx)
    got = band_for(pol, ctx)
    free = band_for(pol.model_copy(update={"jump_cap_hw": 1e9}), ctx)
    h = ww_halfwidth(ctx, pol.risk_aversion_per_usd, pol.gamma_exponent, None)
    # The gamma term H the band computes: its averaged gamma is None here (no `ahead`).
    moved, unc = off.centre - got.centre, off.centre - free.centre
    assert abs(moved) <= cap * pol.ww_weight * abs(h) * (1 + 1e-12) + 1e-15
    if abs(unc) <= cap * pol.ww_weight * abs(h) * (1 - 1e-9):
        assert moved == pytest.approx(unc, rel=1e-9, abs=1e-15)
    else:
        assert math.copysign(1.0, moved) == math.copysign(1.0, unc)


def test_the_risk_carries_a_skew_within_its_bound_and_refuses_any_other() -> None:
    """`UnderlyingRisk.jump_skew` (the daemon's carrier of `skew`): 0 by default, the
    bounds +-`JUMP_SKEW_MAX` taken, beyond them or not finite refused naming the
    underlying (the one-sum fast check lets none of them through)."""
    base = UnderlyingRisk("ETH", 3_000.0, 0.1, 1e-3, 0.6, 0.05)
    assert base.jump_skew == 0.0
    for ok in (JUMP_SKEW_MAX, -JUMP_SKEW_MAX, 0.0123):
        assert dataclasses.replace(base, jump_skew=ok).jump_skew == ok
    for bad in (JUMP_SKEW_MAX + 1e-12, -0.5, 1e300, math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match=r"ETH: jump_skew must be finite and within \+-0.2"):
            dataclasses.replace(base, jump_skew=bad)


@settings(max_examples=100, deadline=None)
@given(
    ratio=st.floats(1.0, 4.0),
    coherence=st.floats(0.0, 1.0),
    vanna=st.floats(-50.0, 50.0),
)
def test_the_own_cap_shrinks_with_the_square_of_the_coherence(
    ratio: float, coherence: float, vanna: float
) -> None:
    """A mixed book's jump terms (gamma coherence c < 1) keep within `jump_cap_hw` x H x c^2,
    beside the term's own factor c (`shift_coherence`)."""
    ctx = _ctx(2e-5, ratio)
    ctx.vanna_coin_per_vol = vanna
    ctx.gamma_coherence = coherence
    pol = HedgerdPolicy(jump_shift_power=1.0, jump_cap_hw=0.5)
    off = band_for(pol.model_copy(update={"jump_shift_power": 0.0}), ctx)
    moved = off.centre - band_for(pol, ctx).centre
    h = pol.ww_weight * abs(ww_halfwidth(ctx, pol.risk_aversion_per_usd, pol.gamma_exponent))
    assert abs(moved) <= 0.5 * h * coherence**2 * (1 + 1e-12) + 1e-15
    free = vanna * 0.6 * (math.sqrt(ratio) - 1.0) * coherence  # the uncapped term, coin
    if abs(free) <= 0.5 * h * coherence**2 * (1 - 1e-9):
        assert moved == pytest.approx(free, rel=1e-9, abs=1e-15)


def test_without_an_own_cap_the_terms_join_zakamoulines_shift_under_its_cap() -> None:
    """`jump_cap_hw` None (the form measured first): the jump terms are added to Zakamouline's shift
    before its cap, so together they stay within `shift_cap_hw` x H; with an own cap the
    jump terms come on top of the capped shift."""
    ctx = _ctx(2e-5, 4.0)
    ctx.vanna_coin_per_vol = 50.0  # a term far beyond either cap
    pol = HedgerdPolicy(jump_shift_power=1.0, jump_cap_hw=None)
    h = pol.ww_weight * abs(ww_halfwidth(ctx, pol.risk_aversion_per_usd, pol.gamma_exponent))
    target = pol.target_delta_coin
    shared = band_for(pol, ctx)
    assert target - shared.centre == pytest.approx(pol.shift_cap_hw * h, rel=1e-9)
    own = band_for(pol.model_copy(update={"jump_cap_hw": 1.0}), ctx)
    zak = band_for(pol.model_copy(update={"jump_shift_power": 0.0}), ctx)
    assert zak.centre - own.centre == pytest.approx(1.0 * h, rel=1e-9)


@pytest.mark.parametrize("gamma", [2e-5, -2e-5])
def test_the_default_policy_takes_the_jump_terms_on_long_gamma_only(gamma: float) -> None:
    """The default (`jump_shift_power` 1 after Zakamouline's capped shift, its own cap 1 x H,
    weighed by a jump within the book's life): where the index jumped (r = 1.21) at 24 jumps a
    year, a 30-day book's r is 1 + (1 - exp(-24 x 30 / 365)) 0.21, and a long-gamma book's
    centre moves by vanna x sigma (sqrt(r) - 1) when that is within the cap, by the cap when
    not; a short-gamma book's band is the one without the term, bit for bit, and so is any
    book's where no jump was counted (rate 0) or none found (r = 1)."""
    pol = HedgerdPolicy()
    without = pol.model_copy(update={"jump_shift_power": 0.0})
    g0 = pol.risk_aversion_per_usd
    h = pol.ww_weight * abs(ww_halfwidth(_ctx(gamma, 1.0), g0, pol.gamma_exponent))
    w = 1.0 - math.exp(-24.0 * 30 / 365)
    for vanna in (0.01, 50.0):  # a term within the own cap, and one far beyond it
        ctx = _ctx(gamma, 1.21)
        ctx.vanna_coin_per_vol = vanna
        ctx.jump_rate_per_year = 24.0
        moved = band_for(without, ctx).centre - band_for(pol, ctx).centre
        if gamma < 0:
            assert band_for(pol, ctx) == band_for(without, ctx)
            continue
        want = min(vanna * 0.6 * (math.sqrt(1.0 + w * 0.21) - 1.0), pol.jump_cap_hw * h)  # coin
        assert moved == pytest.approx(want, rel=1e-9)
        ctx.jump_rate_per_year = 0.0
        assert band_for(pol, ctx) == band_for(without, ctx)  # no jump counted
    assert band_for(pol, _ctx(gamma, 1.0)) == band_for(without, _ctx(gamma, 1.0))  # r = 1


def test_the_rate_counts_the_returns_beyond_four_marked_sd_over_the_time_seen() -> None:
    """Two 5 % jumps in 28 days of 10-minute returns at the marks' vol: a rate of 2 over 28
    days a year (a diffusion's 4-sd returns are 6e-5 of 4,032: none here); after the first
    jump alone, 1 over the time seen. No jump found (the ratio's test): rate 0."""
    rng = np.random.default_rng(11)
    n = 28 * 144
    vol = 0.6
    spots = _path(rng, n, vol, {n // 3: 0.05, 2 * n // 3: -0.05})
    est = JumpVarianceEstimator()
    for i, s in enumerate(spots[: n // 2 + 1]):
        est.observe(s, vol, START_MS + i * STEP_MS)
    half = est.estimate(START_MS + (n // 2) * STEP_MS, 3.0)
    assert half.rate_per_year == pytest.approx(1.0 / ((n // 2) * STEP_MS / YEAR_MS), rel=1e-9)
    for i in range(n // 2 + 1, n + 1):
        est.observe(spots[i], vol, START_MS + i * STEP_MS)
    got = est.estimate(START_MS + n * STEP_MS, 3.0)
    assert got.ratio > 1.0
    assert got.rate_per_year == pytest.approx(2.0 / (28 / 365), rel=1e-9)
    calm = JumpVarianceEstimator()
    for i, s in enumerate(_path(rng, n, vol, {})):
        calm.observe(s, vol, START_MS + i * STEP_MS)
    assert calm.estimate(START_MS + n * STEP_MS, 3.0) == (1.0, 0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.0, 400.0),
    tau_days=st.floats(0.1, 120.0),
    ratio=st.floats(1.0, JUMP_RATIO_MAX),
)
def test_the_life_weight_scales_the_excess_by_a_jump_within_the_books_life(
    rate: float, tau_days: float, ratio: float
) -> None:
    """With `jump_life_weight` the long-gamma centre moves as at r' = 1 + (1 - exp(-rate
    tau)) (r - 1): never more than unweighted, 0 at rate 0, and nearly the unweighted
    move where many jumps fall before expiry; the scalar path (the daemon's) is the array
    path (the backtest's)."""
    pol = HedgerdPolicy(shift_cap_hw=0.0, vov_ref=0.0, jump_cap_hw=None, k_prefactor=0.0)
    plain = pol.model_copy(update={"jump_life_weight": False})
    ctx = _ctx(2e-5, ratio)
    ctx.tau_years = tau_days / 365
    ctx.jump_rate_per_year = rate
    none = band_for(pol.model_copy(update={"jump_shift_power": 0.0}), ctx).centre
    full = none - band_for(plain, ctx).centre
    got = none - band_for(pol, ctx).centre
    w = 1.0 - math.exp(-rate * tau_days / 365)
    assert got == pytest.approx(2.0 * 0.6 * (math.sqrt(1.0 + w * (ratio - 1.0)) - 1.0), abs=1e-12)
    assert 0.0 <= got <= full + 1e-15
    if rate * tau_days / 365 > 20.0:
        assert got == pytest.approx(full, rel=1e-8)
    one = np.ones(1)
    arr = BandContext(
        50_000.0 * one, 2e-5 * one, 2.0 * one, 0.6 * one, ctx.tau_years * one, 0.0,
        0.0005 * one, 0.0, 0.3 * one,
    )  # fmt: skip
    arr.jump_var_ratio = ratio * one
    arr.jump_rate_per_year = rate * one
    assert band_for(pol, arr).centre[0] == pytest.approx(band_for(pol, ctx).centre, rel=1e-12)


def test_a_jump_in_a_runs_first_hours_reads_as_a_weeks_not_hundreds_a_year() -> None:
    """No index history (a failed fetch): one 5 % jump two hours in is counted over a week
    (`JUMP_RATE_MIN_SPAN_MS`), 52 a year, not over the two hours seen (4,380 a year: the
    life weight would be ~1 for a 3-day book); the ratio ramps in over the day as before."""
    rng = np.random.default_rng(5)
    spots = _path(rng, 12, 0.6, {6: 0.05})
    est = JumpVarianceEstimator()
    for i, s in enumerate(spots):
        est.observe(s, 0.6, START_MS + i * STEP_MS)
    got = est.estimate(START_MS + 12 * STEP_MS)
    assert got.ratio > 1.0
    assert got.rate_per_year == pytest.approx(YEAR_MS / JUMP_RATE_MIN_SPAN_MS, rel=1e-12)
    assert got.rate_per_year == pytest.approx(365 / 7, rel=1e-12)
