"""Router: where a hedge of a given size goes, at the least expected cost.

Taker trades are split over instruments by filling the globally cheapest book levels first
(`cross_venue.split_with_headroom`), within depth, position and margin limits (each account's
free collateral shared by its instruments) and the allowed venues; legs below an instrument's
minimum are dropped (the remainder is carried to the next decision). A maker trade goes whole
to the candidate with the lowest expected maker cost. The part of a trade that grows a
position also bears the cost of moving it later, and the hedge's own side carries over the
book's horizon `horizon_s` (`hedging.cross_venue`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hedgerd.hedging.config import CostModelSettings, RouterSettings
from hedgerd.hedging.costs import CandidateLevels, CandidateQuotes, candidate_levels
from hedgerd.hedging.cross_venue import split_with_headroom
from hedgerd.hedging.inputs import HedgeVenueState
from hedgerd.hedging.kernel import maker_cost_frac, round_to_lots
from hedgerd.model import HedgeStyle

# Enum members bound once: `Enum.MEMBER` is a class attribute lookup through the enum's
# metaclass (~0.15 us on Python 3.11), made several times on every decision.
_SLICED = HedgeStyle.SLICED
_TAKER = HedgeStyle.TAKER
_MAKER = HedgeStyle.MAKER


@dataclass(slots=True)  # not frozen: built on every decision, frozen init is slow
class RoutedLeg:
    """A sized leg before it becomes a `HedgeLeg`: amount (> 0) in the amount unit."""

    candidate: int
    side: int
    amount: float
    delta_coin: float
    style: HedgeStyle
    limit_price: float
    expected_cost_usd: float
    cost_frac: float


def _limit_price(levels: CandidateLevels, k: int, worst_offset: float, protect: float) -> float:
    return levels.mid[k] * (1.0 + levels.side * (worst_offset + protect))


def _carry(lv: CandidateLevels, k: int, q_coin: float, reducing: float) -> float:
    """Carry per unit of a `q_coin` trade on candidate k whose first `reducing` coin shrink
    its position: each part over its own holding time."""
    r = min(reducing, q_coin)
    return (r * lv.carry_reduce[k] + (q_coin - r) * lv.carry[k]) / q_coin


def route_taker(
    venues: Sequence[HedgeVenueState],
    qty_coin: float,
    cost: CostModelSettings,
    router: RouterSettings,
    spot_usd: float,
    horizon_s: float | None = None,
    quotes: CandidateQuotes | None = None,
) -> list[RoutedLeg]:
    """Split a signed taker trade of `qty_coin` over the candidates. `horizon_s`: the book's
    remaining life (s), over which the hedge's own side carries; `quotes`: the decision's
    `costs.candidate_quotes(venues)`, if it has them."""
    if qty_coin == 0.0 or not venues:
        return []
    side = 1 if qty_coin > 0 else -1
    lv = candidate_levels(
        venues, side, cost, router, spot_usd, abs(qty_coin), True, horizon_s, quotes
    )
    per = split_with_headroom(
        abs(qty_coin), lv.marginal, lv.sizes_coin, lv.owner, lv.growing, venues, spot_usd
    )
    # Largest first, ties in candidate order (a reversed sort is stable too).
    order = sorted(range(len(per)), key=per.__getitem__, reverse=True)[: router.max_legs]
    legs: list[RoutedLeg] = []
    for k in order:
        q = per[k]
        if q <= 0.0:
            continue
        v = venues[k]
        amount = float(
            round_to_lots(
                q / v.delta_coin_per_amount, v.instrument.amount_step, v.instrument.min_amount
            )
        )
        if amount <= 0.0:
            continue
        q_coin = amount * v.delta_coin_per_amount
        # Walk this instrument's own levels for the rounded size (a handful: plain Python).
        left, walk, worst, first = q_coin, 0.0, 0.0, None
        a, z = lv.starts[k], lv.starts[k + 1]  # `lv.levels_of(k)`, without its call
        for off, size in zip(lv.offsets[a:z], lv.sizes_coin[a:z], strict=True):
            if first is None:
                first = off
            if left <= 0.0:
                break
            take = size if size < left else left
            if take > 0.0:
                walk += take * off
                worst = off
                left -= take
        frac = walk / q_coin + lv.taker_fee[k] + _carry(lv, k, q_coin, lv.reducing[k])
        beyond_touch = worst - (first or 0.0)
        style = _SLICED if beyond_touch > cost.slice_above_frac else _TAKER
        legs.append(
            RoutedLeg(  # positional (declaration order): no keyword matching
                k,  # candidate
                side,
                amount,
                side * q_coin,  # delta_coin
                style,
                _limit_price(lv, k, worst, cost.price_protection_frac),
                frac * q_coin * lv.mid[k],  # expected_cost_usd
                frac,  # cost_frac
            )
        )
    return legs


def route_maker(
    venues: Sequence[HedgeVenueState],
    qty_coin: float,
    cost: CostModelSettings,
    router: RouterSettings,
    spot_usd: float,
    horizon_s: float | None = None,
    quotes: CandidateQuotes | None = None,
) -> list[RoutedLeg]:
    """A post-only order at the touch on the candidate with the lowest expected maker cost.
    `horizon_s` and `quotes` as for `route_taker`."""
    if qty_coin == 0.0 or not venues:
        return []
    side = 1 if qty_coin > 0 else -1
    size = abs(qty_coin)
    lv = candidate_levels(venues, side, cost, router, spot_usd, None, False, horizon_s, quotes)
    reducing = lv.reducing
    # The expected maker cost (`maker_cost_frac`) is linear in the carry: its growing-part
    # carry swapped for the blend.
    p = cost.maker_fill_probability
    carry = lv.carry
    mc: list[float] = []
    for j, (mf, tf, hs) in enumerate(zip(lv.maker_fee, lv.taker_fee, lv.half_spread, strict=True)):
        c = carry[j]
        mc.append(maker_cost_frac(p, mf, tf, hs, c) - c + _carry(lv, j, size, reducing[j]))
    # The cheapest candidate with room (the first of equals, as `min` picks): the growing
    # part of the trade also bears the cost of moving it later.
    k, best = -1, 0.0
    for j, cap in enumerate(lv.capacity_coin):
        if not cap >= size:
            continue
        over = size - reducing[j]
        c = mc[j] + ((0.0 if over < 0.0 else over) / size) * lv.move_later[j]
        if k < 0 or c < best:
            k, best = j, c
    if k < 0:
        return []
    v = venues[k]
    amount = float(
        round_to_lots(
            abs(qty_coin) / v.delta_coin_per_amount,
            v.instrument.amount_step,
            v.instrument.min_amount,
        )
    )
    if amount <= 0.0:
        return []
    q_coin = amount * v.delta_coin_per_amount
    touch = v.quote.bid_price if side > 0 else v.quote.ask_price
    return [
        RoutedLeg(  # positional (declaration order): no keyword matching
            k,  # candidate
            side,
            amount,
            side * q_coin,  # delta_coin
            _MAKER,  # style
            touch,  # limit_price
            mc[k] * q_coin * lv.mid[k],  # expected_cost_usd
            mc[k],  # cost_frac
        )
    ]
