"""`PathGenerator.expected_vol`: the implied vol a market that knows the process would quote,
checked against its limits and against the realised variance of simulated paths."""

from __future__ import annotations

import numpy as np
import pytest

from hedgerd.backtest.paths import PathGenerator
from hedgerd.backtest.scenario import MarketSpec

REGIMES = MarketSpec(
    process="regimes",
    regime_vols=(0.6, 0.35, 0.9),
    regime_switch_per_year=24.0,
    horizon_days=30.0,
    step_minutes=60.0,
)


def test_expected_vol_limits() -> None:
    gen = PathGenerator(REGIMES, 3, np.random.default_rng(1))
    gen.regime = np.array([0, 1, 2])
    now = np.array([0.6, 0.35, 0.9])
    assert gen.expected_vol(1e-9) == pytest.approx(now, rel=1e-6)
    mean = np.sqrt(np.mean(now**2))
    assert gen.expected_vol(1e3) == pytest.approx(np.full(3, mean), rel=1e-3)
    # In between it lies between the two, and the low regime expects more vol than it has.
    mid = gen.expected_vol(30.0 / 365.0)
    assert mid[1] > 0.35 and mid[1] < mean and mid[2] < 0.9 and mid[2] > mean


@pytest.mark.parametrize("start", [0, 1, 2])
def test_expected_vol_matches_the_realised_variance_of_the_paths(start: int) -> None:
    """Mean realised variance over 30 days of 4,000 seeded paths from one regime agrees with
    the formula to 2 % (the sampling error is about 0.5 %)."""
    n = 4000
    gen = PathGenerator(REGIMES, n, np.random.default_rng(7 + start))
    gen.regime = np.full(n, start, dtype=np.intp)
    gen.state.vol = gen.regime_vols[gen.regime]
    tau = REGIMES.steps * REGIMES.dt_years
    want = float(gen.expected_vol(tau)[0] ** 2)
    acc = np.zeros(n)
    for _ in range(REGIMES.steps):
        acc += gen.state.vol**2  # the variance each step diffuses with
        gen.step()
    got = float(np.mean(acc) / REGIMES.steps)
    assert got == pytest.approx(want, rel=0.02)


def test_expected_vol_of_gbm_is_its_vol() -> None:
    gen = PathGenerator(MarketSpec(vol=0.45), 2, np.random.default_rng(1))
    assert gen.expected_vol(0.1) == pytest.approx([0.45, 0.45])
