"""Built-in policy families and their default sweeps, scaled to the scenario's book.

- `timer`: rebalance to delta every interval (what desks run today).
- `band_centre`, `band_edge`: fixed absolute band, trade to the centre / to the edge.
- `ww`: Whalley–Wilmott band, to the edge.
- `zakamouline`: Zakamouline band on the modified delta, to the edge.
- `exact`: the exponential-utility-optimal hedge of the static book (`exact_band`, solved by
  dynamic programming on the scenario's GBM at its vol), a band traded to its edge: what the
  best possible band achieves on the same paths (reference, not for live use).
- `exact_mv`: the same with the mean-variance criterion (costs + gamma/2 x variance), whose
  sweep traces the cost-versus-std frontier itself; on a `regimes` scenario it knows the
  regime (`exact_band.solve_regimes`).
- `hedgerd`: the default policy (`hedging.config.HedgerdPolicy`), with maker execution where
  the scenario allows it.

Band widths scale with the book's size (coin); risk aversions with 1/(size x spot). A
scenario's own `[policies.NAME]` entries override or add to these.
"""

from __future__ import annotations

import numpy as np

from hedgerd.backtest.exact_band import Criterion
from hedgerd.backtest.runner import PolicyRun
from hedgerd.backtest.scenario import (
    PolicySpec,
    Scenario,
    SweepSpec,
    book_scale_coin,
    materialise,
)

DEFAULT_POLICY = "hedgerd"
BASELINES = ("timer", "band_centre", "band_edge", "ww")

_TIMER_S = (600, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400)
_BAND = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.045, 0.065, 0.09, 0.13)
# Risk aversions (x 1 / (size x spot)) of every risk-aversion sweep but the exact DP's and the
# maker default's: 0.3-1000 in steps of 2.25x, halved to 1.5x from 17 up, where the frontiers
# bend hardest toward their risk floor (the regime scenario's vega floor) and the matched-risk
# comparisons near it need points close together. Shared by Whalley-Wilmott, Zakamouline and
# the default alike.
_GAMMA = tuple(
    float(x) for i, x in enumerate(np.geomspace(0.3, 1000.0, 21)) if i % 2 == 0 or i >= 10
)
_GAMMA_EXACT = (3.0, 8.0, 15.0, 30.0, 60.0, 120.0, 250.0, 500.0, 1000.0)  # one DP solve each
_GAMMA_MAKER = tuple(float(x) for x in np.geomspace(0.0005, 20.0, 12))


def builtin_policies(sc: Scenario) -> dict[str, PolicySpec]:
    scale = book_scale_coin(sc)
    g0 = 1.0 / (scale * sc.market.spot_usd)
    step_s = sc.market.step_minutes * 60.0
    timers = tuple(float(x) for x in _TIMER_S if x >= step_s - 1e-9) or (step_s,)
    bands = tuple(round(scale * x, 9) for x in _BAND)
    gammas = tuple(g0 * x for x in _GAMMA)
    # With maker execution the default reaches low risk cheaply: sweep it further out.
    own = tuple(g0 * x for x in (_GAMMA_MAKER if sc.execution.maker_allowed else _GAMMA))
    maker = {"enabled": bool(sc.execution.maker_allowed)}
    out = {
        "timer": PolicySpec(
            family="fixed timer",
            config={"kind": "timer"},
            sweep=SweepSpec(param="interval_s", values=timers),
            baseline=True,
        ),
        "band_centre": PolicySpec(
            family="band to centre",
            config={"kind": "band", "rebalance_to": "target"},
            sweep=SweepSpec(param="halfwidth_coin", values=bands),
            baseline=True,
        ),
        "band_edge": PolicySpec(
            family="band to edge",
            config={"kind": "band", "rebalance_to": "edge"},
            sweep=SweepSpec(param="halfwidth_coin", values=bands),
            baseline=True,
        ),
        "ww": PolicySpec(
            family="Whalley-Wilmott",
            config={"kind": "whalley_wilmott"},
            sweep=SweepSpec(param="risk_aversion_per_usd", values=gammas),
            baseline=True,
        ),
        "zakamouline": PolicySpec(
            family="Zakamouline",
            config={"kind": "zakamouline"},
            sweep=SweepSpec(param="risk_aversion_per_usd", values=gammas),
        ),
        "exact": _exact_spec("exact DP band", g0, "exp_utility"),
        "exact_mv": _exact_spec("exact DP band (mean-variance)", g0, "mean_variance"),
        "hedgerd": PolicySpec(
            family="hedgerd (default)",
            config={"kind": "hedgerd", "maker": maker},
            sweep=SweepSpec(param="risk_aversion_per_usd", values=own),
        ),
    }
    out.update(sc.policies)
    return out


def _exact_spec(family: str, g0_per_usd: float, criterion: Criterion) -> PolicySpec:
    """An exact-band family: its sweep is the DP's risk aversion (1/USD, scaled by the
    book's `g0_per_usd`); the band config only sets that trades go to the edge."""
    return PolicySpec(
        family=family,
        config={"kind": "band", "rebalance_to": "edge"},
        sweep=SweepSpec(
            param="risk_aversion_per_usd", values=tuple(g0_per_usd * x for x in _GAMMA_EXACT)
        ),
        exact=True,
        exact_criterion=criterion,
    )


def expand(specs: dict[str, PolicySpec], names: list[str]) -> list[PolicyRun]:
    """The runs of the named policies: one per sweep value."""
    runs: list[PolicyRun] = []
    for name in names:
        if name not in specs:
            raise KeyError(f"unknown policy {name!r}; known: {', '.join(sorted(specs))}")
        spec = specs[name]
        for v in spec.sweep.values:
            runs.append(
                PolicyRun(
                    name=name,
                    family=spec.family,
                    params={spec.sweep.param: v},
                    config=materialise(spec, v),
                    baseline=spec.baseline,
                    exact_risk_aversion=v if spec.exact else None,
                    exact_criterion=spec.exact_criterion,
                )
            )
    return runs
