"""Customer option flow: a seeded Poisson stream of client trades against the market maker's
account, so its option inventory (and so its delta) changes with time, not only with price.

On Deribit (`OptionFlow`) each trade is booked as a filled maker order of the market maker
(label `sim-flow`) with its trade, and published on the account's `user.*` channels like any
fill. On OKX (`OkxOptionFlow`, when the world serves OKX) the same kind of stream, drawn from
its own random stream (Deribit's draws do not change with the venues served), trades against
the OKX account it is given (`hedgerd paper`: the market maker's OKX twin) through
`OkxVenue.book_trade_at`: its options book changes over a run too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hedgerd.sim.scenario import FlowSpec

if TYPE_CHECKING:
    from hedgerd.sim.deribit.instruments import SimInstrument
    from hedgerd.sim.exchange import SimExchange
    from hedgerd.sim.okx.venue import OkxVenue

FLOW_LABEL = "sim-flow"


@dataclass(frozen=True, slots=True)
class ClientTrade:
    """One drawn client trade, from the market maker's side: `direction` its side, `amount`
    coin of the underlying, `price` coin per coin (the world's option, mark plus edge)."""

    inst: SimInstrument
    direction: str
    amount: float
    price: float


class OptionFlow:
    """Generates the client trades of one scenario (see `FlowSpec`) on Deribit."""

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
            trade = self._draw(t)
            if trade is not None and self._book(trade, t):
                self.count += 1

    def _draw(self, t: int) -> ClientTrade | None:
        spec = self.spec
        ex = self.ex
        ccys = [c for c in spec.currencies if c in ex.markets]
        u_ccy = float(self.rng.random())
        u_type = float(self.rng.random())
        u_side = float(self.rng.random())
        u_size = float(self.rng.random())
        u_pick = float(self.rng.random())
        if not ccys:
            return None
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
        if not candidates or self._account_id() is None:
            return None
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
        return ClientTrade(inst, mm_direction, amount, price)

    def _book(self, trade: ClientTrade, t: int) -> bool:
        aid = self._account_id()
        if aid is None:
            return False
        ex = self.ex
        ex.book_fill(
            ex.accounts[aid], trade.inst, trade.direction, trade.amount, trade.price, FLOW_LABEL, t
        )
        return True


class OkxOptionFlow(OptionFlow):
    """The client option flow on OKX: drawn like Deribit's over the world's options (its
    own random stream), booked on the OKX account named by `account_id` (None, the default:
    the draws happen, nothing trades; `hedgerd paper` names the market maker's OKX twin, so
    scenarios and tests that open OKX accounts keep still books unless they ask)."""

    def __init__(
        self, ex: SimExchange, venue: OkxVenue, spec: FlowSpec, rng: np.random.Generator
    ) -> None:
        super().__init__(ex, spec, rng)
        self.venue = venue
        self.account_id: str | None = None

    def _okx_account(self) -> str | None:
        aid = self.account_id
        return aid if aid is not None and aid in self.venue.accounts else None

    def _book(self, trade: ClientTrade, t: int) -> bool:
        account = self._okx_account()
        if account is None:
            return False
        twin = next(
            (
                i
                for i in self.venue.instruments.values()
                if i.deribit_name == trade.inst.name and i.is_option and i.state == "live"
            ),
            None,
        )
        if twin is None:
            return False
        lots = math.floor(trade.amount / twin.ct_mult / twin.lot_sz + 1e-9)
        contracts = max(1, lots) * twin.lot_sz
        tick = twin.tick_sz
        ticks = trade.price / tick
        price = math.ceil(ticks - 1e-9) if trade.direction == "sell" else math.floor(ticks + 1e-9)
        # At the tick's time, not via `book_trade` (which first brings the venue up to now:
        # from inside the world's tick that would step the world again).
        self.venue.book_trade_at(
            account, twin.inst_id, trade.direction, contracts, max(price, 1) * tick, t
        )
        return True
