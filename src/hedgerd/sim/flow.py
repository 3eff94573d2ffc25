"""Customer option flow: a seeded Poisson stream of client trades against the market maker's
account, so its option inventory (and so its delta) changes with time, not only with price.

Each trade is booked as a filled maker order of the market maker (label `sim-flow`) with its
trade, and published on the account's `user.*` channels like any fill.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from hedgerd.sim.scenario import FlowSpec

if TYPE_CHECKING:
    from hedgerd.sim.exchange import SimExchange

FLOW_LABEL = "sim-flow"


class OptionFlow:
    """Generates the client trades of one scenario (see `FlowSpec`)."""

    def __init__(self, ex: SimExchange, spec: FlowSpec, rng: np.random.Generator) -> None:
        self.ex = ex
        self.spec = spec
        self.rng = rng
        self.count = 0

    def _account_id(self) -> str | None:
        if self.spec.account is not None:
            return self.spec.account if self.spec.account in self.ex.accounts else None
        scen = self.ex.scenario.accounts
        return scen[0].name if scen else None

    def on_tick(self, t: int, dt_ms: int) -> None:
        """Draw this tick's client trades (the draws happen even with no account, so the
        random stream does not depend on which accounts exist)."""
        if not self.spec.enabled or self.spec.rate_per_min <= 0 or dt_ms <= 0:
            return
        n = int(self.rng.poisson(self.spec.rate_per_min * dt_ms / 60_000.0))
        for _ in range(n):
            self._one(t)

    def _one(self, t: int) -> None:
        spec = self.spec
        ex = self.ex
        ccys = [c for c in spec.currencies if c in ex.markets]
        u_ccy = float(self.rng.random())
        u_type = float(self.rng.random())
        u_side = float(self.rng.random())
        u_size = float(self.rng.random())
        u_pick = float(self.rng.random())
        if not ccys:
            return
        ccy = ccys[min(int(u_ccy * len(ccys)), len(ccys) - 1)]
        want_call = u_type < spec.call_probability
        client_buys = u_side < spec.buy_probability
        m = ex.markets[ccy]
        marks = m.option_marks()
        candidates = []
        for i, name in enumerate(marks.names):
            inst = ex.catalog.get(name)
            if inst is None or not inst.is_active or inst.is_call != want_call:
                continue
            if inst.expiry_ms - t < 3_600_000:  # nobody trades the last hour here
                continue
            k = inst.strike or 0.0
            if abs(math.log(k / float(marks.forward[i]))) <= spec.max_log_moneyness:
                candidates.append((inst, i))
        aid = self._account_id()
        if not candidates or aid is None:
            return
        inst, i = candidates[min(int(u_pick * len(candidates)), len(candidates) - 1)]
        step = inst.min_trade_amount
        raw = spec.min_size_coin + u_size * (spec.max_size_coin - spec.min_size_coin)
        amount = max(step, float(f"{math.floor(raw / step + 1e-9) * step:.10g}"))
        mark = max(float(marks.price_coin[i]), inst.tick_size)
        edge = float(marks.vega[i]) / m.index_price * spec.edge_vol
        # the market maker sells what the client buys, a little above the mark
        mm_direction = "sell" if client_buys else "buy"
        price = mark + edge if mm_direction == "sell" else max(inst.tick_size, mark - edge)
        price = inst.round_price(price, "up" if mm_direction == "sell" else "down")
        ex.book_fill(ex.accounts[aid], inst, mm_direction, amount, price, FLOW_LABEL, t)
        self.count += 1
