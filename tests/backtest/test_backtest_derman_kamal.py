"""The simulator reproduces the Derman–Kamal discrete-hedging error (no costs).

S = K = 100, tau = 1/12, vol 20 %, r = 5 %, rebalanced N times: published simulation std
0.426 / 0.218 / 0.110 for N = 21 / 84 / 336 (formula sqrt(pi/4) vega sigma / sqrt(N):
0.443 / 0.222 / 0.111). We require 5 %.
"""

from __future__ import annotations

import math

import pytest

from hedgerd.backtest.runner import PolicyRun, run_backtest
from hedgerd.backtest.scenario import Scenario
from hedgerd.hedging.config import TimerPolicy
from hedgerd.pricing.black import black_scholes

HORIZON_DAYS = 365.0 / 12.0


def _scenario(n_hedges: int) -> Scenario:
    return Scenario.model_validate(
        {
            "name": f"derman-kamal-{n_hedges}",
            "market": {
                "spot_usd": 100.0,
                "rate": 0.05,
                "horizon_days": HORIZON_DAYS,
                "step_minutes": HORIZON_DAYS * 1440.0 / n_hedges,
                "vol": 0.2,
            },
            "options": [
                {"type": "call", "strike_usd": 100.0, "expiry_days": HORIZON_DAYS, "qty_coin": 1.0}
            ],
            "instruments": [{"name": "S", "taker_fee": 0.0, "depth_levels": 1}],
            "report": {"unit": "usd"},
        }
    )


@pytest.mark.parametrize(("n_hedges", "published"), [(21, 0.426), (84, 0.218), (336, 0.110)])
def test_discrete_hedging_error_matches_derman_kamal(n_hedges: int, published: float) -> None:
    sc = _scenario(n_hedges)
    interval = sc.market.step_minutes * 60.0
    run = PolicyRun("timer", "timer", {}, TimerPolicy(interval_s=interval))
    (res,), _ = run_backtest(sc, [run], paths=4000, seed=11)
    std = float(res.pnl_usd.std(ddof=1))
    assert abs(std / published - 1.0) < 0.05, std
    # and close to the formula, which is a large-N approximation
    vega = float(black_scholes(True, 100.0, 100.0, 1 / 12, 0.2, 0.05).vega)
    formula = math.sqrt(math.pi / 4) * vega * 0.2 / math.sqrt(n_hedges)
    assert abs(std / formula - 1.0) < 0.08
    # one rebalance per interval (fewer where the delta no longer moves) plus the unwind
    assert 0.9 * n_hedges < res.trades.mean() <= n_hedges + 1
    assert float(res.cost_usd.max()) == 0.0
