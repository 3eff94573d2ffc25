"""What the hedge loop saw, per underlying and in total: for status, the paper summary and
metrics. Portfolio-wide: one entry per underlying, whichever account its hedges trade on."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from hedgerd.book.greeks_book import UnderlyingGreeks
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.model import Fill, HedgeDecision


@dataclass(slots=True)
class AccountHedgeStats:
    """One account's share of an underlying's hedging: `hedges` decisions that filled there
    (`split_hedges` of them filled on another account too, so they count on both), `orders`
    sent there (every order a leg used), and its fills' cost (fee + distance from the mid,
    USD) and notional (USD)."""

    hedges: int = 0
    split_hedges: int = 0
    orders: int = 0
    hedge_cost_usd: float = 0.0
    hedge_notional_usd: float = 0.0


@dataclass(slots=True)
class UnderlyingStats:
    """What the controller saw of one underlying (for status, the paper summary, metrics).
    Deltas in coin; `in_band_samples` of `samples` evaluations had the net delta (orders in
    flight included) inside the band."""

    samples: int = 0
    in_band_samples: int = 0
    max_abs_delta_coin: float = 0.0
    hedges: int = 0
    hedge_cost_usd: float = 0.0
    hedge_notional_usd: float = 0.0
    fees_usd: float = 0.0
    skipped_incomplete: int = 0
    blocked_legs: int = 0
    last_delta_coin: float = math.nan
    last_band: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # lower, target, upper
    last_greeks: UnderlyingGreeks | None = None
    #: Each account's book snapshot and net delta (coin) at the last evaluation.
    greeks_by_account: dict[str, UnderlyingGreeks] = field(default_factory=dict)
    delta_by_account: dict[str, float] = field(default_factory=dict)
    last_decision: dict[str, Any] = field(default_factory=dict)
    #: The risk the last decision was made on (the band's inputs: gamma, vol, option flow).
    last_risk: UnderlyingRisk | None = None
    #: Hedge trades (signed amount in the instrument's unit, price, instrument), for P&L.
    fills: list[Fill] = field(default_factory=list)
    #: Where the hedging went, per account (the cross-venue router's choices).
    by_account: dict[str, AccountHedgeStats] = field(default_factory=dict)

    def count_hedge(self, filled_on: Collection[str]) -> None:
        """Count one decision's outcome: a hedge when any leg filled, on each account a leg
        filled on (a split hedge once on each, and marked as split there)."""
        if not filled_on:
            return
        self.hedges += 1
        split = len(filled_on) > 1
        for name in filled_on:
            share = self.account(name)
            share.hedges += 1
            share.split_hedges += split

    def account(self, name: str) -> AccountHedgeStats:
        """`name`'s share (created empty on first use)."""
        got = self.by_account.get(name)
        if got is None:
            got = self.by_account[name] = AccountHedgeStats()
        return got


class HedgeObserver(Protocol):
    """Sees each evaluation and each hedge fill as the daemon counts them (`hedgerd paper
    --plot` records them). Called on the event loop: must return at once, and must not raise."""

    def on_decision(self, decision: HedgeDecision) -> None:
        """Every decision, holds included (deltas in coin, `ts_ms` on the daemon's clock)."""

    def on_hedge_fill(self, underlying: str, fill: Fill, cost_usd: float) -> None:
        """A fill of one of the hedger's orders, once per trade id, with its cost (fee +
        distance from the mid, USD)."""


@dataclass(slots=True)
class DaemonStats:
    started_ms: int = 0
    evaluations: int = 0
    decisions_trading: int = 0
    errors: list[str] = field(default_factory=list)
    per_underlying: dict[str, UnderlyingStats] = field(default_factory=dict)

    def error(self, text: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(text[:300])
