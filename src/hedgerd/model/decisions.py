"""Hedge decisions: what the controller wants done for one underlying, and why.

A `HedgeDecision` is the controller's whole output for one evaluation. It trades when it has
legs; a decision with no legs is a hold (logged sampled). Quantities name their units: a leg's
`amount` is in its instrument's `amount_unit` (USD for inverse futures and perpetuals, coin
otherwise) and `delta_coin` is the change of the underlying's net delta it buys, in coin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hedgerd.model.fast_init import fast_frozen_init
from hedgerd.model.instruments import AmountUnit, PriceUnit
from hedgerd.model.orders import OrderSide


class HedgeStyle(StrEnum):
    """How a leg should be executed.

    TAKER: an immediate-or-cancel limit at `limit_price` (price protection, never a bare market
    order). MAKER: post-only at `limit_price`, replaced by a taker order at `fallback_after_ms`
    if still unfilled and still needed. SLICED: taker in slices (the executor paces them), used
    when one sweep would walk too far into the book.
    """

    TAKER = "taker"
    MAKER = "maker"
    SLICED = "sliced"


class HedgeTrigger(StrEnum):
    """What made the controller trade (or NONE for a hold)."""

    NONE = "none"
    BAND = "band"
    TIMER = "timer"
    SAFETY_TIMER = "safety_timer"
    MAKER_ZONE = "maker_zone"
    SETTLEMENT = "settlement"


@fast_frozen_init  # built on every decision that trades (issue 17's latency)
@dataclass(frozen=True, slots=True)
class HedgeLeg:
    """One order of a decision.

    `amount` (> 0) is in `amount_unit` and already rounded to the instrument's step and at
    least its minimum; `delta_coin` is the signed change of net delta it brings (coin).
    `limit_price` is in `price_unit`: the worst price the executor may accept (IOC for TAKER,
    the resting price for MAKER). `expected_cost_usd` is the leg's expected all-in cost (fees,
    spread and depth walk, carry over the expected holding time), USD.
    """

    venue: str
    instrument: str
    side: OrderSide
    amount: float
    amount_unit: AmountUnit
    delta_coin: float
    style: HedgeStyle
    limit_price: float
    price_unit: PriceUnit
    expected_cost_usd: float
    fallback_after_ms: int | None = None


@fast_frozen_init  # built on every decision (issue 17's latency)
@dataclass(frozen=True, slots=True)
class HedgeDecision:
    """The controller's decision for one underlying at `ts_ms` (UTC epoch ms).

    Deltas are in coin of the underlying, in the configured numeraire, and include orders in
    flight: `net_delta_coin` is the delta the controller judged (`book_delta_coin`, projected
    over the settlement window, plus `in_flight_delta_coin`), `band_lower_coin`/
    `band_upper_coin` the no-trade band around `target_delta_coin`, `wanted_coin` what the
    policy asked for before routing and lot rounding, and `delta_after_coin` the net delta once
    every leg fills (the difference to the target is carried). `cancel_labels` are resting
    maker orders (client ids) working against this decision's direction, to cancel: the
    executor cancels them with the legs and stops the legs that sent them. The legs are sized
    without them: `net_delta_coin` and `in_flight_delta_coin` leave them out. `lambda_frac`
    is the one-way cost the band used. `decision_id` is a hash of every input, so the same
    inputs always give the same id (and the same client order ids). `reason` renders all of it
    as one line.
    """

    decision_id: str
    underlying: str
    policy: str
    ts_ms: int
    trigger: HedgeTrigger
    net_delta_coin: float
    book_delta_coin: float
    in_flight_delta_coin: float
    target_delta_coin: float
    band_lower_coin: float
    band_upper_coin: float
    wanted_coin: float
    delta_after_coin: float
    legs: tuple[HedgeLeg, ...]
    expected_cost_usd: float
    lambda_frac: float
    gamma_coin_per_usd: float
    spot_usd: float
    cancel_labels: tuple[str, ...] = ()

    @property
    def trades(self) -> bool:
        return bool(self.legs)

    @property
    def delta_traded_coin(self) -> float:
        return sum(leg.delta_coin for leg in self.legs)

    @property
    def reason(self) -> str:
        """Why, with the numbers (rendered on demand: the hot path only stores them)."""
        head = (
            f"{self.policy}: net {self.net_delta_coin:+.6f} coin (book "
            f"{self.book_delta_coin:+.6f}, in flight {self.in_flight_delta_coin:+.6f}) vs band "
            f"[{self.band_lower_coin:+.6f}, {self.band_upper_coin:+.6f}] around "
            f"{self.target_delta_coin:+.6f}; lambda {self.lambda_frac * 1e4:.2f} bp, gamma "
            f"{self.gamma_coin_per_usd:.3g} coin/USD, S {self.spot_usd:.2f}"
        )
        if not self.legs:
            if self.wanted_coin == 0.0:
                return f"{head}; hold"
            return (
                f"{head}; wanted {self.wanted_coin:+.6f} coin but no leg reaches a minimum "
                "size within depth and limits (carried)"
            )
        parts = [
            f"{leg.side.value} {leg.amount:g} {leg.amount_unit.value} {leg.venue}:"
            f"{leg.instrument} {leg.style.value} @{leg.limit_price:g} ({leg.delta_coin:+.6f} "
            f"coin, ~{leg.expected_cost_usd:.4f} USD)"
            for leg in self.legs
        ]
        return (
            f"{head}; {self.trigger.value} wanted {self.wanted_coin:+.6f} -> "
            + "; ".join(parts)
            + f"; after {self.delta_after_coin:+.6f}, expected cost "
            f"{self.expected_cost_usd:.4f} USD"
        )

    def client_order_id(self, leg_index: int, attempt: int = 0) -> str:
        """The client order id (Deribit `label`) of leg `leg_index`, derived from the decision
        id so a retried decision maps to the same orders. `attempt` distinguishes a maker
        leg's taker fallback (1) from its first order (0)."""
        if not 0 <= leg_index < len(self.legs):
            raise IndexError(f"decision {self.decision_id} has no leg {leg_index}")
        return f"hd-{self.decision_id[:16]}-{leg_index}-{attempt}"
