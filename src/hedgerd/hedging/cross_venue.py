"""Cross-venue routing terms: what the cost model adds when candidates sit on several accounts.

The cost model (`hedging.costs`) prices a trade on each candidate all-in: fee tier, half
spread and depth walk, maker fill probability with its taker fallback, and carry (funding to
the expected holding time, or the future's basis to the index). Across accounts two more
things matter, and they live here:

- **The cost of moving the hedge later.** A trade that grows the position on a candidate
  leaves a position there that some later trade has to close: that venue's taker fee plus
  half spread (fraction of notional), weighted by `CostModelSettings.move_later_weight`. A
  trade that shrinks a position there is that later close, already paid for at its opening.
  So the part of a trade that reduces a position is priced without it and the growing part
  with it: the router prefers unwinding a hedge where it sits to opening an opposite one on
  another venue or instrument. One rule for one account and several (and the backtest):
  without it one account's router sells the instrument paying the most funding and buys the
  one of least carry, a calendar spread rather than a hedge.
- **How long the carry runs** (`carry_holds_s`). A unit on the hedge's own side is held as
  long as the exposure it hedges: the book's horizon (its gamma-weighted time to expiry,
  passed in by the caller), not the short `CostModelSettings.expected_holding_s`. So the
  part of a trade that grows the hedge, and the part of a trade against it that reduces it,
  carry over the horizon; a unit against the hedge's side (the part of a reducing trade that
  opens an opposite position, or of a growing trade that closes one) is a spread leg closed
  at the next rebalance, and carries over the short expected holding time.
- **Margin headroom per account.** Every candidate of one account and settlement currency
  draws on the same free collateral (`HedgeVenueState.margin_available_usd`, USD): the part
  of a trade that grows a position there needs `initial_margin_frac x spot` USD per coin of
  delta, and no split may take the account past what it has (`split_with_headroom`).
  Reducing trades need none: an account short of funds still takes hedges that shrink its
  positions.

All sizes are coin of delta; costs fractions of notional; money USD.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from hedgerd.hedging.inputs import HedgeVenueState
from hedgerd.model import InstrumentKind, PriceUnit, Ticker

#: Seconds per year for annualised carry (`hedging.costs` uses the same, from here).
SECONDS_PER_YEAR = 365.0 * 86400.0

#: (account, settlement currency): the pool of free collateral a candidate draws on.
HeadroomKey = tuple[str, str]


def several_accounts(venues: Sequence[HedgeVenueState]) -> bool:
    """Whether the candidates sit on more than one account (only then do the cross-venue
    terms apply)."""
    return len({v.venue for v in venues}) > 1


def move_later_frac(v: HedgeVenueState, weight: float) -> float:
    """Cost of closing later, on this candidate's venue, a unit of position a trade leaves
    there (fraction of notional): `weight x (taker fee + half spread)`."""
    q = v.quote
    mid = 0.5 * (q.bid_price + q.ask_price)
    return weight * (v.instrument.taker_fee + (q.ask_price - q.bid_price) / (2.0 * mid))


def reducing_coin(v: HedgeVenueState, side: int) -> float:
    """Coin of delta a trade on `side` (+1 buy, -1 sell) can take before it stops shrinking
    this candidate's position (0 when it grows it from the first unit)."""
    return max(-side * v.position_amount, 0.0) * v.delta_coin_per_amount


def carry_holds(side: Any, hedge_coin: Any, short: Any, horizon: Any) -> tuple[Any, Any]:
    """(growing part, reducing part): how long the carry of each part of a trade on `side`
    (+1 buy, -1 sell) runs, for a hedge of `hedge_coin` (its whole position, coin of delta).
    A part that leaves or removes a unit on the hedge's side (a flat hedge: the trade's)
    holds it for `horizon` (the book's remaining life; `short` when not positive), a part
    against it for `short`. Any time unit; floats, or arrays of paths (the backtest)."""
    if isinstance(hedge_coin, np.ndarray):
        held = np.where(np.isfinite(horizon) & (horizon > 0.0), horizon, short)
        grows = side * hedge_coin >= 0.0
        return np.where(grows, held, short), np.where(grows, short, held)
    held = horizon if horizon is not None and math.isfinite(horizon) and horizon > 0.0 else short
    return (held, short) if side * hedge_coin >= 0.0 else (short, held)


def carry_holds_s(
    venues: Sequence[HedgeVenueState],
    side: int,
    expected_holding_s: float,
    horizon_s: float | None,
) -> tuple[float, float]:
    """`carry_holds` (s) for a trade over these candidates (the hedge: their positions)."""
    hedge = sum([v.position_amount * v.delta_coin_per_amount for v in venues])
    grow, reduce = carry_holds(side, hedge, expected_holding_s, horizon_s)
    return float(grow), float(reduce)


def headroom_usd(venues: Sequence[HedgeVenueState]) -> dict[HeadroomKey, float]:
    """Free collateral (USD) per (account, settlement currency), from the candidates that
    report it (the smallest figure when candidates disagree; a negative one counts as 0)."""
    out: dict[HeadroomKey, float] = {}
    for v in venues:
        if v.margin_available_usd is None or v.initial_margin_frac <= 0.0:
            continue
        inst = v.instrument  # (`v.venue` is a property: a call)
        key = (inst.venue, inst.settlement_currency)
        free = max(v.margin_available_usd, 0.0)
        out[key] = min(out.get(key, math.inf), free)
    return out


def split_with_headroom(
    qty_coin: float,
    marginal: Sequence[float],
    sizes_coin: Sequence[float],
    owner: Sequence[int],
    growing: Sequence[bool],
    venues: Sequence[HedgeVenueState],
    spot_usd: float,
) -> list[float]:
    """Split `qty_coin` (>= 0, coin of delta) over the candidates' levels, cheapest first,
    with no account's growing part using more free collateral than it has.

    The levels are `hedging.costs.CandidateLevels`' (`marginal` all-in cost per unit,
    `sizes_coin`, `owner` candidate index, `growing` whether the level grows the candidate's
    position). Returns coin of delta per candidate; the total is at most `qty_coin`.
    """
    room = headroom_usd(venues)
    # Each candidate's pool, looked up once (not per level): None where its account's
    # collateral is not tracked.
    keys: list[HeadroomKey | None] = [None] * len(venues)
    if room:
        for k, v in enumerate(venues):
            inst = v.instrument
            key = (inst.venue, inst.settlement_currency)
            keys[k] = key if key in room else None
    per = [0.0] * len(venues)
    left = float(qty_coin)
    for j in sorted(range(len(marginal)), key=marginal.__getitem__):
        if left <= 0.0:
            break
        size = sizes_coin[j]
        take = left if left < size else size  # min(size, left)
        k = owner[j]
        pool = keys[k]
        usd_per_coin = venues[k].initial_margin_frac * spot_usd
        # A candidate that needs no initial margin takes nothing from its pool (the pool
        # may be tracked for another instrument of the same account and currency).
        if pool is not None and growing[j] and usd_per_coin > 0.0:
            take = min(take, room[pool] / usd_per_coin)
            room[pool] = max(room[pool] - take * usd_per_coin, 0.0)
        if take > 0.0:
            per[k] += take
            left -= take
    return per


def with_carry(v: HedgeVenueState, ticker: Ticker, now_ms: int) -> HedgeVenueState:
    """`v` with the carry its venue's marks imply: a perpetual's funding (fraction of notional
    per 8 h, as the venue reports it), a dated future's basis to the index, annualised to its
    expiry (the premium a long loses as the future converges). Unchanged when the ticker
    gives neither."""
    if v.instrument.kind is InstrumentKind.PERPETUAL and ticker.funding_8h is not None:
        if math.isfinite(ticker.funding_8h):
            return replace(v, funding_8h=ticker.funding_8h)
        return v
    expiry = v.instrument.expiry_ms
    index, mark = ticker.index_price_usd, ticker.mark_price
    if (
        v.instrument.kind is InstrumentKind.FUTURE
        and expiry is not None
        and expiry > now_ms
        and v.instrument.price_unit is PriceUnit.USD
        and math.isfinite(index)
        and index > 0.0
        and math.isfinite(mark)
        and mark > 0.0
    ):
        years = (expiry - now_ms) / 1000.0 / SECONDS_PER_YEAR
        return replace(v, basis_annual=(mark / index - 1.0) / years)
    return v


__all__ = [
    "HeadroomKey",
    "carry_holds",
    "carry_holds_s",
    "headroom_usd",
    "move_later_frac",
    "reducing_coin",
    "several_accounts",
    "split_with_headroom",
    "with_carry",
]
