"""Matching: walking a book for a taker order, and the post-only and fill-or-kill rules.

Pure functions over an `InstrumentBook`: they decide which liquidity an order takes; the
exchange applies the fills to accounts. Resting client orders at a price go before the
synthetic liquidity at that price; an account never trades with its own resting orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from hedgerd.sim.deribit.accounts import Order
from hedgerd.sim.orderbook import InstrumentBook, SynthLevel


@dataclass(slots=True)
class Fill:
    """A match: `amount` at `price` against a resting order (`maker`) or synthetic level."""

    price: float
    amount: float
    maker: Order | None = None
    level: SynthLevel | None = None


def _crosses(direction: str, limit: float | None, price: float) -> bool:
    if limit is None:
        return True
    return price <= limit + 1e-12 if direction == "buy" else price >= limit - 1e-12


def opposite_liquidity(
    book: InstrumentBook, direction: str, account_id: str, now_ms: int
) -> list[tuple[float, int, float, Order | None, SynthLevel | None]]:
    """The liquidity a `direction` taker can hit, best first: (price, priority, amount,
    maker order or None, synthetic level or None)."""
    side = "asks" if direction == "buy" else "bids"
    sign = 1.0 if direction == "buy" else -1.0
    out: list[tuple[float, int, float, Order | None, SynthLevel | None]] = []
    for o in book.asks_orders if direction == "buy" else book.bids_orders:
        if o.account_id != account_id and o.price is not None and o.remaining > 0:
            out.append((o.price, o.seq, o.remaining, o, None))
    for lvl in book.asks_synth if direction == "buy" else book.bids_synth:
        amt = book.remaining(side, lvl, now_ms)
        if amt > 0:
            out.append((lvl.price, 1 << 62, amt, None, lvl))
    out.sort(key=lambda x: (sign * x[0], x[1]))
    return out


def best_opposite(
    book: InstrumentBook, direction: str, account_id: str, now_ms: int
) -> float | None:
    """Best price a `direction` order would trade against, or None if that side is empty."""
    liq = opposite_liquidity(book, direction, account_id, now_ms)
    return liq[0][0] if liq else None


def plan_fills(
    book: InstrumentBook,
    direction: str,
    limit: float | None,
    amount: float,
    account_id: str,
    now_ms: int,
    step: float,
) -> list[Fill]:
    """Walk the opposite side for up to `amount` (multiples of `step`) within `limit`
    (None: any price). Does not change the book."""
    fills: list[Fill] = []
    left = amount
    for price, _prio, avail, maker, lvl in opposite_liquidity(book, direction, account_id, now_ms):
        if left <= 1e-12 or not _crosses(direction, limit, price):
            break
        take = min(left, avail)
        take = float(f"{round(take / step) * step:.10g}") if take < left else take
        if take <= 0:
            continue
        fills.append(Fill(price=price, amount=take, maker=maker, level=lvl))
        left = float(f"{left - take:.10g}")
    return fills


def post_only_price(book: InstrumentBook, order: Order, now_ms: int) -> tuple[float | None, bool]:
    """For a post-only limit order: (price to rest at, whether it would have crossed).

    A crossing buy is moved to one tick below the best ask (a sell: above the best bid), as
    Deribit does when `reject_post_only` is false."""
    assert order.price is not None
    best = best_opposite(book, order.direction, order.account_id, now_ms)
    if best is None or not _crosses(order.direction, order.price, best):
        return order.price, False
    inst = order.inst
    if order.direction == "buy":
        p = inst.round_price(best - inst.tick_for(best), "down")
        return (p if p > 0 else None), True
    return inst.round_price(best + inst.tick_for(best), "up"), True
