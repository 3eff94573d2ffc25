"""Order books: synthetic depth around the mark (configurable spread and depth profile) that
refills after being hit, plus resting client orders; Deribit `book.*` snapshot and change
notifications with `change_id` / `prev_change_id`.

Synthetic level i (0 = best) on each side holds `size_0 * size_growth**i`; what takers remove
from a level comes back linearly over `refill_s` (the full level size per `refill_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hedgerd.sim.deribit.instruments import OPTION_TICK_HIGH, OPTION_TICK_STEP_ABOVE, SimInstrument
from hedgerd.sim.scenario import BookSpec

if TYPE_CHECKING:
    from hedgerd.sim.deribit.accounts import Order


def num(x: float) -> float | int:
    """JSON number as Deribit writes it: integral values without a fraction (so that ccxt's
    string arithmetic sees '10', not '10.0'), others rounded off binary noise."""
    if x == 0:
        return 0
    if float(x).is_integer() and abs(x) < 1e15:
        return int(x)
    return float(f"{x:.15g}")


def _lvl(x: float) -> float | int:
    """`num` for book levels, which are already rounded: integral values as int."""
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


@dataclass(slots=True)
class SynthLevel:
    price: float
    size: float  # full (refilled) size, amount units
    index: int  # level number from the best


@dataclass(slots=True)
class _Depletion:
    taken: float
    at_ms: int


@dataclass(slots=True)
class InstrumentBook:
    """One instrument's book. Synthetic levels are rebuilt by `rebuild` each tick; resting
    client orders are kept price-time sorted per side (best first)."""

    inst: SimInstrument
    spec: BookSpec
    bids_synth: list[SynthLevel] = field(default_factory=list)
    asks_synth: list[SynthLevel] = field(default_factory=list)
    bids_orders: list[Order] = field(default_factory=list)
    asks_orders: list[Order] = field(default_factory=list)
    depletion: dict[tuple[str, int], _Depletion] = field(default_factory=dict)
    change_id: int = 0
    published: tuple[dict[float, float], dict[float, float]] | None = None
    built_ms: int = -1
    built_mark: float = math.nan
    _sizes: list[float] | None = None
    built_half: float = math.nan
    built_step: float = math.nan
    dirty: bool = True  # levels may differ from `published`

    # -- synthetic depth ------------------------------------------------------------------
    def rebuild(self, now_ms: int, mark: float, half_spread: float, level_step: float) -> None:
        """Place the synthetic levels around `mark` (in the instrument's price unit) with the
        given half spread and level step (price units); levels at least one tick apart."""
        inst = self.inst
        sizes = self._sizes
        if sizes is None:
            sizes = self._sizes = self._level_sizes()
        low_tick = inst.tick_size
        high_tick = OPTION_TICK_HIGH if inst.is_option else low_tick
        step_above = OPTION_TICK_STEP_ABOVE if inst.is_option else math.inf
        floor = math.floor
        ceil = math.ceil
        bids: list[SynthLevel] = []
        asks: list[SynthLevel] = []
        last_bid = math.inf
        last_ask = -math.inf
        for i, size in enumerate(sizes):
            off = half_spread + i * level_step
            x = mark - off
            tick = high_tick if x > step_above else low_tick
            bp = round(floor(x / tick + 1e-9) * tick, 10)
            if bp >= last_bid:
                tick = high_tick if last_bid > step_above else low_tick
                bp = round(floor(last_bid / tick + 1e-9) * tick - tick, 10)
            x = mark + off
            tick = high_tick if x > step_above else low_tick
            ap = round(ceil(x / tick - 1e-9) * tick, 10)
            if ap <= last_ask:
                tick = high_tick if last_ask > step_above else low_tick
                ap = round(ceil(last_ask / tick - 1e-9) * tick + tick, 10)
            if bp > 0:
                bids.append(SynthLevel(bp, size, i))
                last_bid = bp
            asks.append(SynthLevel(ap, size, i))
            last_ask = ap
        if not self.dirty:
            old_b = [lv.price for lv in self.bids_synth]
            old_a = [lv.price for lv in self.asks_synth]
            if old_b != [lv.price for lv in bids] or old_a != [lv.price for lv in asks]:
                self.dirty = True
        self.bids_synth = bids
        self.asks_synth = asks
        self.built_ms = now_ms
        self.built_mark = mark
        self.built_half = half_spread
        self.built_step = level_step

    def _level_sizes(self) -> list[float]:
        inst = self.inst
        spec = self.spec
        if inst.is_option:
            size0 = spec.option_size_0_coin
        elif inst.inverse:
            size0 = spec.future_size_0_usd
        else:
            size0 = spec.linear_size_0_coin
        step_amt = inst.min_trade_amount if inst.is_option else inst.contract_size
        out = []
        for i in range(spec.levels):
            size = max(step_amt, math.floor(size0 * spec.size_growth**i / step_amt) * step_amt)
            out.append(round(size, 10))
        return out

    def remaining(self, side: str, lvl: SynthLevel, now_ms: int) -> float:
        """What is left on a synthetic level at `now_ms` after refill."""
        d = self.depletion.get((side, lvl.index))
        if d is None:
            return lvl.size
        refilled = lvl.size * (now_ms - d.at_ms) / (self.spec.refill_s * 1000.0)
        out = d.taken - refilled
        if out <= 1e-12:
            del self.depletion[(side, lvl.index)]
            return lvl.size
        step_amt = self.inst.min_trade_amount if self.inst.is_option else self.inst.contract_size
        left = lvl.size - out
        # show whole contracts only
        return max(0.0, round(math.floor(left / step_amt + 1e-9) * step_amt, 10))

    def take(self, side: str, lvl: SynthLevel, amount: float, now_ms: int) -> None:
        """Record that a taker removed `amount` from a synthetic level."""
        key = (side, lvl.index)
        self.dirty = True
        left_before = self.remaining(side, lvl, now_ms)
        self.depletion[key] = _Depletion(taken=lvl.size - left_before + amount, at_ms=now_ms)

    # -- resting client orders -------------------------------------------------------------
    def add_order(self, order: Order, seq: int) -> bool:
        """Rest `order` in price-time priority (`seq` stamps its time unless it rests
        already); returns whether it was new."""
        side = self.bids_orders if order.direction == "buy" else self.asks_orders
        self.dirty = True
        new = order not in side
        if new:
            order.seq = seq
            side.append(order)
        sign = -1.0 if order.direction == "buy" else 1.0
        side.sort(key=lambda o: (sign * (o.price or 0.0), o.seq))
        return new

    def remove_order(self, order: Order) -> bool:
        """Take `order` off the book; returns whether the book now holds no client order."""
        side = self.bids_orders if order.direction == "buy" else self.asks_orders
        if order in side:
            side.remove(order)
            self.dirty = True
        return not self.bids_orders and not self.asks_orders

    # -- views ----------------------------------------------------------------------------
    def side_levels(self, side: str, now_ms: int) -> dict[float, float]:
        """Aggregated {price: amount} of one side ('bids'/'asks'), synthetic and resting."""
        out: dict[float, float] = {}
        synth = self.bids_synth if side == "bids" else self.asks_synth
        if not self.depletion:
            for lvl in synth:
                out[lvl.price] = lvl.size  # levels have distinct prices
        else:
            for lvl in synth:
                amt = self.remaining(side, lvl, now_ms)
                if amt > 0:
                    out[lvl.price] = amt
        orders = self.bids_orders if side == "bids" else self.asks_orders
        if not orders:
            return out
        for o in orders:
            rem = o.amount - o.filled_amount
            if rem > 0 and o.price is not None:
                out[o.price] = out.get(o.price, 0.0) + rem
        return {p: round(a, 10) for p, a in out.items()}

    def depth(
        self, now_ms: int, depth: int
    ) -> tuple[list[list[float | int]], list[list[float | int]]]:
        """([[price, amount], ...] bids best first, asks best first), `depth` levels each."""
        bids = self.side_levels("bids", now_ms)
        asks = self.side_levels("asks", now_ms)
        b = [[num(p), num(bids[p])] for p in sorted(bids, reverse=True)[:depth]]
        a = [[num(p), num(asks[p])] for p in sorted(asks)[:depth]]
        return b, a

    def best(self, now_ms: int) -> tuple[float, float, float, float]:
        """(best_bid_price, best_bid_amount, best_ask_price, best_ask_amount); 0 when empty."""
        bids = self.side_levels("bids", now_ms)
        asks = self.side_levels("asks", now_ms)
        bb = max(bids) if bids else 0.0
        ba = min(asks) if asks else 0.0
        return bb, bids.get(bb, 0.0), ba, asks.get(ba, 0.0)

    # -- notifications --------------------------------------------------------------------
    def snapshot(self, now_ms: int) -> dict[str, Any]:
        """A `book.{instrument}` snapshot notification; later changes continue from it."""
        bids = self.side_levels("bids", now_ms)
        asks = self.side_levels("asks", now_ms)
        self.change_id += 1
        self.published = (bids, asks)
        self.dirty = bool(self.depletion)
        return {
            "type": "snapshot",
            "timestamp": now_ms,
            "instrument_name": self.inst.name,
            "change_id": self.change_id,
            "bids": [["new", num(p), num(bids[p])] for p in sorted(bids, reverse=True)],
            "asks": [["new", num(p), num(asks[p])] for p in sorted(asks)],
        }

    def change(self, now_ms: int) -> dict[str, Any] | None:
        """The `book.{instrument}` change notification since the last snapshot or change, or
        None when nothing changed (or no snapshot was taken yet)."""
        if self.published is None:
            return None
        if not self.dirty and not self.depletion:
            return None
        self.dirty = bool(self.depletion)  # refills keep changing the book
        old_b, old_a = self.published
        bids = self.side_levels("bids", now_ms)
        asks = self.side_levels("asks", now_ms)
        db = _diff(old_b, bids, reverse=True)
        da = _diff(old_a, asks, reverse=False)
        if not db and not da:
            return None
        prev = self.change_id
        self.change_id += 1
        self.published = (bids, asks)
        return {
            "type": "change",
            "timestamp": now_ms,
            "prev_change_id": prev,
            "instrument_name": self.inst.name,
            "change_id": self.change_id,
            "bids": db,
            "asks": da,
        }


def _diff(old: dict[float, float], new: dict[float, float], reverse: bool) -> list[list[Any]]:
    """Deribit's level actions turning `old` into `new`, best price first."""
    out: list[tuple[float, str, float]] = []
    for p, a_old in old.items():
        a_new = new.get(p)
        if a_new is None:
            out.append((p, "delete", 0.0))
        elif a_new != a_old:
            out.append((p, "change", a_new))
    for p, a_new in new.items():
        if p not in old:
            out.append((p, "new", a_new))
    out.sort(reverse=reverse)
    return [[action, _lvl(p), _lvl(a)] for p, action, a in out]
