"""The hedge controller: when, how much, where and how to hedge, as pure functions.

- `config`: policies (timer, fixed/asymmetric band, Whalley–Wilmott, Zakamouline, hedgerd),
  cost model and router settings: the `[hedging]` config section.
- `inputs`: the controller's frozen inputs (`UnderlyingRisk`, `HedgeVenueState`,
  `InFlightOrder`, `PolicyState`).
- `kernel`: the band, trigger, sizing, depth and routing math, vectorised; the backtest runs
  these same functions over paths.
- `costs`, `router`: expected all-in cost per instrument and the split that minimises it.
- `controller.decide`: inputs -> `model.HedgeDecision`.
"""

from hedgerd.hedging.config import (
    CostModelSettings,
    FixedBandPolicy,
    HedgerdPolicy,
    HedgingConfig,
    HedgingConfigError,
    MakerSettings,
    PolicyConfig,
    RouterSettings,
    TimerPolicy,
    WhalleyWilmottPolicy,
    ZakamoulinePolicy,
    load_hedging_config,
)
from hedgerd.hedging.controller import after, decide, decision_id
from hedgerd.hedging.inputs import HedgeVenueState, InFlightOrder, PolicyState, UnderlyingRisk

__all__ = [
    "CostModelSettings",
    "FixedBandPolicy",
    "HedgeVenueState",
    "HedgerdPolicy",
    "HedgingConfig",
    "HedgingConfigError",
    "InFlightOrder",
    "MakerSettings",
    "PolicyConfig",
    "PolicyState",
    "RouterSettings",
    "TimerPolicy",
    "UnderlyingRisk",
    "WhalleyWilmottPolicy",
    "ZakamoulinePolicy",
    "after",
    "decide",
    "decision_id",
    "load_hedging_config",
]
