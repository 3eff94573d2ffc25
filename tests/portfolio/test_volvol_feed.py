"""The hedge loop feeds the vol-of-vol estimator the book's mark vol at every evaluation and
puts its estimate and the book's vega into the risk the band takes (`vov_ref`)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from hedgerd.hedging.config import HedgerdPolicy, WhalleyWilmottPolicy
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.volvol_seed import VolOfVolSeeds

NOW = 1_790_000_000_000  # any fixed instant: the estimator reads no clock
MIN_MS = 60_000
POLICY = HedgerdPolicy(vov_ref=0.3)


def _risk(vol: float) -> UnderlyingRisk:
    return UnderlyingRisk("BTC", 90_000.0, -0.2, -1e-5, vol, 20 / 365)


def _loop() -> SimpleNamespace:
    """The hedge loop's vol-of-vol parts, without a journal."""
    return SimpleNamespace(
        _volvol={},
        _volvol_seeds=VolOfVolSeeds(),
        _volvol_live={},
        _jumps={},
        _jump_proxy={},
        _keep_volvol_sample=lambda *a: None,
    )


def _feed(loop: SimpleNamespace, vol: float, at: int, policy: object = POLICY) -> UnderlyingRisk:
    return HedgeLoop._with_vol_of_vol(loop, "BTC", policy, _risk(vol), at)  # type: ignore[arg-type]


def test_constant_marks_leave_the_risk_as_it_is_then_a_move_is_seen() -> None:
    loop = _loop()
    for i in range(30):
        assert _feed(loop, 0.6, NOW + i * MIN_MS) == _risk(0.6)
    moved = _feed(loop, 0.9, NOW + 30 * MIN_MS)
    # One change of ln 1.5 over the minimum span of a day.
    assert moved.vol_of_vol_per_sqrt_year == pytest.approx(math.sqrt(math.log(1.5) ** 2 * 365))
    assert moved.vol == 0.9


def test_marks_are_sampled_every_ten_minutes() -> None:
    """A mark moving at every evaluation is compared once per sample: its noise between
    evaluations is not summed."""
    loop = _loop()
    _feed(loop, 0.6, NOW)
    for i in range(1, 9):  # a minute apart: inside the sample, skipped
        assert _feed(loop, 0.6 + 0.01 * (i % 2), NOW + i * MIN_MS).vol_of_vol_per_sqrt_year == 0.0
    assert _feed(loop, 0.61, NOW + 10 * MIN_MS).vol_of_vol_per_sqrt_year > 0.0


def test_a_new_window_starts_the_history_again_and_other_policies_use_the_default() -> None:
    loop = _loop()
    _feed(loop, 0.6, NOW)
    assert _feed(loop, 0.9, NOW + 10 * MIN_MS).vol_of_vol_per_sqrt_year > 0.0
    other = HedgerdPolicy(vov_ref=0.3, vov_window_s=86_400.0)
    assert _feed(loop, 0.9, NOW + 20 * MIN_MS, other).vol_of_vol_per_sqrt_year == 0.0
    ww = WhalleyWilmottPolicy()
    assert _feed(loop, 0.6, NOW + 30 * MIN_MS, ww).vol_of_vol_per_sqrt_year == 0.0
    assert _feed(loop, 0.9, NOW + 40 * MIN_MS, ww).vol_of_vol_per_sqrt_year > 0.0


def test_the_samples_feed_the_index_jump_ratio_and_are_kept_with_the_index() -> None:
    """Each recorded sample carries the index (`risk.spot_usd`) to the jump variance
    estimator and to the journal: a 1 % gap between quiet samples puts the ratio above 1."""
    kept: list[tuple[object, ...]] = []
    loop = _loop()
    loop._keep_volvol_sample = lambda *a: kept.append(a)
    spots = [90_000.0, 90_000.0, 90_900.0, 90_900.0]
    got = []
    for i, s in enumerate(spots):
        r = dataclasses.replace(_risk(0.6), spot_usd=s)
        got.append(HedgeLoop._with_vol_of_vol(loop, "BTC", POLICY, r, NOW + i * 10 * MIN_MS))  # type: ignore[arg-type]
    assert [g.jump_var_ratio for g in got[:2]] == [1.0, 1.0]
    assert [g.jump_skew for g in got[:2]] == [0.0, 0.0]
    mv = 0.36 * 30 * MIN_MS / (365 * 86_400_000)
    # 30 minutes of the first day's ramp: 1 + (1/48) x (ln 1.01)^2 / the marks' variance.
    assert got[3].jump_var_ratio == pytest.approx(1.0 + math.log(1.01) ** 2 / mv / 48)
    # The lean likewise ramped: (1/48) x (ln 1.01)^3 / (the marks' variance + the jump's).
    r = math.log(1.01)
    assert got[3].jump_skew == pytest.approx(r**3 / (mv + r**2) / 48)
    assert [(a[1], a[3]) for a in kept] == [(NOW + i * 10 * MIN_MS, s) for i, s in enumerate(spots)]


def test_a_gap_down_leans_the_risk_down_and_the_early_return_keeps_its_defaults() -> None:
    """The jumps' sign reaches the risk: a 1 % gap down a lean below 0, as much as the gap
    up's above (the cube's sign); and constant marks and index leave the risk as it is
    (the vol-of-vol 0, the ratio 1 and the skew 0: the early return)."""
    leans = []
    for gap in (1.01, 1 / 1.01):
        loop = _loop()
        for i, s in enumerate([90_000.0, 90_000.0, 90_000.0 * gap, 90_000.0 * gap]):
            r = dataclasses.replace(_risk(0.6), spot_usd=s)
            got = HedgeLoop._with_vol_of_vol(loop, "BTC", POLICY, r, NOW + i * 10 * MIN_MS)  # type: ignore[arg-type]
        leans.append(got.jump_skew)
    assert leans[0] > 0.0 > leans[1]
    assert leans[1] == pytest.approx(-leans[0], rel=1e-9)
    loop = _loop()
    risk = _risk(0.6)
    for i in range(5):
        got = HedgeLoop._with_vol_of_vol(loop, "BTC", POLICY, risk, NOW + i * 10 * MIN_MS)  # type: ignore[arg-type]
        assert got is risk
