"""The option flow's delta-motion estimator (`hedging.flow`) and its term in the band."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import HedgerdPolicy
from hedgerd.hedging.flow import FLOW_WINDOW_MS, FlowEstimator, flow_estimates
from hedgerd.hedging.kernel import BandContext, band_for, flow_fade_weight

DAY_MS = 86_400_000
START_MS = 1_790_000_000_000  # any fixed instant: the estimator reads no clock

jumps = st.lists(
    st.tuples(st.integers(0, 5 * DAY_MS), st.floats(-3.0, 3.0, allow_nan=False)),
    max_size=40,
)


def _fed(trades: list[tuple[int, float]]) -> FlowEstimator:
    est = FlowEstimator(START_MS)
    for t, d in sorted(trades):
        est.observe(d, START_MS + t)
    return est


def test_no_trades_is_zero() -> None:
    assert FlowEstimator(START_MS).estimate(START_MS + 10 * DAY_MS) == (0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(trades=jumps, at=st.integers(0, 6 * DAY_MS))
def test_rate_and_jump_are_non_negative_and_finite(
    trades: list[tuple[int, float]], at: int
) -> None:
    v, j = _fed(trades).estimate(START_MS + at)
    assert v >= 0.0 and j >= 0.0
    assert math.isfinite(v) and math.isfinite(j)


@settings(max_examples=200, deadline=None)
@given(trades=jumps, at=st.integers(0, 6 * DAY_MS), k=st.sampled_from([0.5, 2.0, 10.0]))
def test_scaling_the_jumps_scales_v_by_k_squared_and_j_by_k(
    trades: list[tuple[int, float]], at: int, k: float
) -> None:
    v, j = _fed(trades).estimate(START_MS + at)
    vk, jk = _fed([(t, k * d) for t, d in trades]).estimate(START_MS + at)
    assert vk == pytest.approx(k * k * v, rel=1e-12, abs=1e-300)
    assert jk == pytest.approx(k * j, rel=1e-12, abs=1e-300)


def test_the_rate_is_the_squared_jumps_over_the_span_and_the_window_forgets() -> None:
    est = FlowEstimator(START_MS)
    for i in range(12):  # 12 trades of 0.1 coin over the first day
        est.observe(0.1 if i % 2 else -0.1, START_MS + i * DAY_MS // 12)
    v, j = est.estimate(START_MS + DAY_MS)
    assert v == pytest.approx(12 * 0.01 * 365.0)  # one day observed: the minimum span
    assert j == pytest.approx(0.1)
    v3, _ = est.estimate(START_MS + FLOW_WINDOW_MS - 1)
    assert v3 == pytest.approx(12 * 0.01 * 365.0 / 3.0, rel=1e-6)  # diluted over the window
    # After the window has passed every trade, nothing is left.
    assert est.estimate(START_MS + DAY_MS + FLOW_WINDOW_MS) == (0.0, 0.0)


def test_a_non_finite_change_is_refused() -> None:
    with pytest.raises(ValueError):
        FlowEstimator(START_MS).observe(math.nan, START_MS)


@settings(max_examples=100, deadline=None)
@given(trades=jumps, at=st.integers(0, 6 * DAY_MS))
def test_the_vectorised_estimate_is_the_scalar_one(
    trades: list[tuple[int, float]], at: int
) -> None:
    """Path 0 holds `trades`, path 1 them doubled, in slots padded with unseen ones."""
    est = FlowEstimator(0)
    for t, d in sorted(trades):
        est.observe(d, t)
    want = est.estimate(at)
    n = len(trades) + 2
    times = np.full((2, n), np.inf)
    coin = np.zeros((2, n))
    for i, (t, d) in enumerate(trades):
        times[:, i] = t
        coin[0, i], coin[1, i] = d, 2.0 * d
    v, j = flow_estimates(times, coin, float(at))
    assert v[0] == pytest.approx(want[0], rel=1e-12, abs=1e-300)
    assert j[0] == pytest.approx(want[1], rel=1e-12, abs=1e-300)
    assert v[1] == pytest.approx(4.0 * want[0], rel=1e-12, abs=1e-300)


def _ctx(v: object = 0.0, j: object = 0.0) -> BandContext:
    return BandContext(70_000.0, -4e-5, 0.3, 0.6, 7 / 365, 0.0, 0.0006, 0.0, 2.0, -3e-5, v, j)


def _paths_ctx() -> BandContext:
    """`_ctx` for three paths, the middle one with option flow (the backtest's arrays)."""
    return BandContext(
        np.full(3, 70_000.0), np.full(3, -4e-5), np.full(3, 0.3), np.full(3, 0.6),
        np.full(3, 7 / 365), 0.0, np.full(3, 0.0006), np.zeros(3), np.full(3, 2.0),
        np.full(3, -3e-5), np.array([0.0, 101.0, 0.0]), np.array([0.0, 0.152, 0.0]),
    )  # fmt: skip


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_without_flow_the_band_is_todays_bit_for_bit(weight: float) -> None:
    plain = band_for(HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_weight=0.0), _ctx())
    got = band_for(HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_weight=weight), _ctx())
    assert (got.centre, got.lower, got.upper) == (plain.centre, plain.lower, plain.upper)
    # The backtest's arrays: paths without arrivals (v = 0) keep today's band exactly.
    arr = _paths_ctx()
    flow = band_for(HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_weight=1.0), arr)
    today = band_for(HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_weight=0.0), arr)
    for a, b in ((flow.centre, today.centre), (flow.lower, today.lower), (flow.upper, today.upper)):
        assert a[0] == b[0] and a[2] == b[2]
    assert flow.lower[1] > today.lower[1]


@pytest.mark.parametrize("ref", [0.3, 30.0])
def test_without_flow_the_fade_leaves_the_band_bit_for_bit(ref: float) -> None:
    """`flow_fade_ref` > 0 and no option flow (v = 0): the band without the fade exactly;
    with flow only the flow term's widening shrinks (the centre is untouched)."""
    plain = HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_fade_ref=0.0)
    faded = HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_fade_ref=ref)
    a, b = band_for(plain, _ctx()), band_for(faded, _ctx())
    assert (a.centre, a.lower, a.upper) == (b.centre, b.lower, b.upper)
    arr = _paths_ctx()
    a, b = band_for(plain, arr), band_for(faded, arr)
    for x, y in ((a.centre, b.centre), (a.lower, b.lower), (a.upper, b.upper)):
        assert x[0] == y[0] and x[2] == y[2]
    assert b.centre[1] == a.centre[1]
    assert b.upper[1] < a.upper[1] and b.lower[1] < a.lower[1]
    # A stronger fade (smaller ref) narrows more, and never below the band without flow.
    none = band_for(HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_weight=0.0), arr)
    more = band_for(HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_fade_ref=ref / 10), arr)
    assert none.upper[1] <= more.upper[1] < b.upper[1]


def test_the_flow_fade_weight_is_one_over_one_plus_r() -> None:
    """w_f = 1 / (1 + gamma S sigma sqrt(v) h / ref), 1 exactly without flow."""
    h = 30 / 365
    assert flow_fade_weight(_ctx(), 1e-5, 1.0, h) == 1.0
    r = 1e-5 * 70_000.0 * 0.6 * math.sqrt(101.0) * h
    assert flow_fade_weight(_ctx(101.0, 0.1), 1e-5, 2.0, h) == pytest.approx(1 / (1 + r / 2))
    # Scalar and arrays alike.
    w = flow_fade_weight(_paths_ctx(), 1e-5, 2.0, h)
    assert w[0] == 1.0 and w[1] == pytest.approx(1 / (1 + r / 2), rel=1e-15)


def test_the_flow_widens_the_band_and_the_gate_limits_wide_jumps() -> None:
    policy = HedgerdPolicy(risk_aversion_per_usd=1e-5, flow_weight=1.0)
    plain = band_for(policy, _ctx()).lower
    small = band_for(policy, _ctx(101.0, 0.01)).lower
    huge = band_for(policy, _ctx(101.0, 50.0)).lower
    assert small > plain
    assert plain < huge < small


@settings(max_examples=100, deadline=None)
@given(trades=jumps, at=st.integers(0, 6 * DAY_MS))
def test_trades_fed_out_of_order_give_the_sorted_estimate(
    trades: list[tuple[int, float]], at: int
) -> None:
    """A seed from the venue's history lands after live trades: the estimator keeps its
    window in time order, whatever order the trades come in."""
    est = FlowEstimator(START_MS)
    for t, d in reversed(sorted(trades)):
        est.observe(d, START_MS + t)
    assert est.estimate(START_MS + at) == _fed(trades).estimate(START_MS + at)


def test_observed_since_moves_the_start_earlier_only() -> None:
    est = FlowEstimator(START_MS)
    est.observe(0.3, START_MS + 1_000)
    v_day, _ = est.estimate(START_MS + 2_000)  # the minimum span: a day
    est.observed_since(START_MS - FLOW_WINDOW_MS)  # a seed covered the whole window
    v_window, j = est.estimate(START_MS + 2_000)
    assert v_window == pytest.approx(v_day / 3.0)  # over 3 days, not 1
    assert j == pytest.approx(0.3)
    est.observed_since(START_MS)  # later: no change
    assert est.estimate(START_MS + 2_000) == (v_window, j)


class _CountingDeque(deque[tuple[int, float]]):
    passes = 0

    def __iter__(self) -> Iterator[tuple[int, float]]:
        _CountingDeque.passes += 1
        return super().__iter__()


def test_an_estimate_reads_the_jumps_again_only_when_they_changed() -> None:
    # The hedge loop asks on every evaluation of every underlying; a busy book holds tens
    # of thousands of jumps in its window (10,000 a day: ~1 ms an estimate read them all).
    est = FlowEstimator(START_MS)
    for i in range(1_000):
        est.observe(0.01 * (i % 7 - 3), START_MS + i * 60_000)
    now = START_MS + 1_000 * 60_000
    est._jumps._items = _CountingDeque(est._jumps._items)
    _CountingDeque.passes = 0
    first = est.estimate(now)
    assert [est.estimate(now + k) for k in range(1, 50)] == [first] * 49
    assert _CountingDeque.passes == 1
    est.observe(0.5, now + 60_000)  # a new jump: read again, once
    assert est.estimate(now + 60_000) == est.estimate(now + 60_001) != first
    assert _CountingDeque.passes == 2


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(0, 5 * DAY_MS), st.floats(-3.0, 3.0)),
        max_size=40,
    )
)
def test_an_estimator_asked_along_the_way_is_one_fed_at_once(
    steps: list[tuple[bool, int, float]],
) -> None:
    # Observations in any order of times (a clock stepped back), estimates between them (at
    # times that do not go back: an estimate forgets what left the window): each estimate
    # is that of a fresh estimator fed the same jumps in the same order.
    est = FlowEstimator(START_MS)
    fed: list[tuple[int, float]] = []
    asked = 0
    for observe, t, d in steps:
        if observe:
            est.observe(d, START_MS + t)
            fed.append((t, d))
        else:
            t = asked = max(t, asked)
            fresh = FlowEstimator(START_MS)
            for ft, fd in fed:
                fresh.observe(fd, START_MS + ft)
            assert est.estimate(START_MS + t) == fresh.estimate(START_MS + t)
