"""Cost model: the expected all-in cost of trading on each candidate instrument.

For a taker trade the cost per unit of each book level is `fee + |level - mid| / mid + carry`,
where carry is the funding (perpetual) or basis (dated future) a position pays over the time
it is held (`cross_venue.carry_holds_s`: the book's horizon for the hedge's own side),
signed by the trade's direction (a buy adds a long that pays positive funding; a sell earns
it), plus, on the part that grows a position, the cost of moving it later. A maker trade
posts at the touch: with probability p it fills and earns the half spread at the maker fee,
otherwise it ends as a taker trade.

All costs are fractions of notional; sizes are in coin of delta (|amount x delta per amount|).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hedgerd.hedging.config import CostModelSettings, RouterSettings
from hedgerd.hedging.cross_venue import SECONDS_PER_YEAR, carry_holds
from hedgerd.hedging.inputs import HedgeVenueState
from hedgerd.hedging.kernel import cap_levels
from hedgerd.model.instruments import AmountUnit, PriceUnit
from hedgerd.model.orders import Fill

MAX_LEVELS = 10


@dataclass(slots=True)  # not frozen: built on every decision, frozen init is slow
class CandidateLevels:
    """One side of the candidates' books, as flat lists for `kernel.route_greedy`.

    `prices`/`offsets`/`sizes_coin`/`marginal`/`owner` have one entry per level (all
    candidates' levels concatenated; `owner` is the candidate index). `mid`, `half_spread`,
    `taker_fee`, `maker_fee`, `carry` (signed for this side, over the growing part's holding
    time; `carry_reduce` the reducing part's) and
    `capacity_coin` (what position and margin limits leave) have one entry per candidate.
    Plain lists: a decision touches a few dozen numbers, where numpy's per-call cost dominates.
    Every field is passed (no defaults: a default factory costs a test per field per build).
    """

    side: int
    prices: list[float]
    offsets: list[float]
    sizes_coin: list[float]
    marginal: list[float]
    owner: list[int]
    mid: list[float]
    half_spread: list[float]
    taker_fee: list[float]
    maker_fee: list[float]
    carry: list[float]
    capacity_coin: list[float]
    #: Per level: whether it grows the candidate's position (past the part that reduces it).
    growing: list[bool]
    #: Per candidate: the cost of moving later what a trade leaves there (`cross_venue`),
    #: charged on growing levels.
    move_later: list[float]
    #: Per candidate: the carry (signed for this side) of the part that reduces a position.
    carry_reduce: list[float]
    #: Per candidate: where its levels start in the per-level lists (they are contiguous,
    #: candidate after candidate), and one past the last at the end.
    starts: list[int]
    #: Per candidate: `cross_venue.reducing_coin` on this side (coin a trade takes before it
    #: stops shrinking the candidate's position).
    reducing: list[float]

    def levels_of(self, k: int) -> tuple[list[float], list[float]]:
        """(offsets, sizes) of candidate k's levels, best first."""
        a, z = self.starts[k], self.starts[k + 1]
        return self.offsets[a:z], self.sizes_coin[a:z]


def allowed(venues: Sequence[HedgeVenueState], router: RouterSettings) -> list[HedgeVenueState]:
    """The candidates the config lets us trade, with a sane two-sided quote."""
    return candidate_quotes(venues, router).venues


@dataclass(slots=True)  # not frozen: built on every decision, frozen init is slow
class CandidateQuotes:
    """One decision's candidates (`venues`) and their side-independent terms, one entry per
    candidate: computed once per decision (`candidate_quotes`) and shared by the band's
    lambda and the router (each computed them from the quotes again: issue 17's latency).
    `mid` (price unit), `half_spread` (fraction of mid), `taker_fee`/`maker_fee`,
    `carry_annual` (`HedgeVenueState.carry_annual`); `hedge_coin` the candidates' positions
    summed, in coin of delta (`cross_venue.carry_holds`' hedge). Read-only once built:
    `CandidateLevels` shares its lists."""

    venues: list[HedgeVenueState]
    mid: list[float]
    half_spread: list[float]
    taker_fee: list[float]
    maker_fee: list[float]
    carry_annual: list[float]
    hedge_coin: float


def candidate_quotes(
    venues: Sequence[HedgeVenueState], router: RouterSettings | None = None
) -> CandidateQuotes:
    """`CandidateQuotes` of `venues` (in their order); with `router`, of those it allows
    (`allowed`: the config's venues, a sane two-sided quote) only."""
    only = None if router is None else router.allowed_venues
    out: list[HedgeVenueState] = []
    mids: list[float] = []
    halves: list[float] = []
    fees: list[float] = []
    maker_fees: list[float] = []
    carries: list[float] = []
    hedge: float = 0  # summed as `sum` does (from the int 0, in order): no list, no call
    for v in venues:  # one pass, locals: runs on every decision
        inst = v.instrument
        if only is not None and inst.venue not in only:
            continue
        q = v.quote
        bid, ask = q.bid_price, q.ask_price
        dpa = v.delta_coin_per_amount
        if router is not None and not (bid > 0 and ask > bid and dpa > 0):
            continue  # crossed, empty or unusable: refuse, never trade on it
        out.append(v)
        mid = 0.5 * (bid + ask)
        mids.append(mid)
        halves.append((ask - bid) / (2.0 * mid))
        fees.append(inst.taker_fee)
        maker_fees.append(inst.maker_fee)
        carries.append(v.carry_annual)
        hedge += v.position_amount * dpa
    return CandidateQuotes(out, mids, halves, fees, maker_fees, carries, hedge)


def capacity_coin(v: HedgeVenueState, side: int, router: RouterSettings, spot_usd: float) -> float:
    """Largest coin delta a trade on `side` (+1 buy, -1 sell) may add on this candidate."""
    if (
        v.max_position_amount is None
        and v.margin_available_usd is None
        and (not router.max_position)
    ):
        return math.inf
    cap = math.inf
    limit = router.max_position.get(v.instrument.name, v.max_position_amount)
    if limit is not None:
        room_amount = max(limit - side * v.position_amount, 0.0)
        cap = room_amount * v.delta_coin_per_amount
    if v.margin_available_usd is not None and v.initial_margin_frac > 0.0:
        # Reducing the position frees margin; only the part that adds exposure needs it.
        reducing = max(-side * v.position_amount, 0.0) * v.delta_coin_per_amount
        adding = max(v.margin_available_usd, 0.0) / (v.initial_margin_frac * spot_usd)
        cap = min(cap, reducing + adding)
    return float(cap)


def candidate_levels(
    venues: Sequence[HedgeVenueState],
    side: int,
    cost: CostModelSettings,
    router: RouterSettings,
    spot_usd: float,
    need_coin: float | None = None,
    depth: bool = True,
    horizon_s: float | None = None,
    quotes: CandidateQuotes | None = None,
) -> CandidateLevels:
    """The levels a taker trade on `side` (+1 buy, -1 sell) could take, with their costs.

    With `need_coin`, each candidate's levels stop once they alone could fill it (deeper
    levels can never be part of the cheapest split), however many that takes; without it, at
    most `MAX_LEVELS` levels. `depth=False` gives only the per-candidate terms (the per-level
    lists stay empty): a maker order posts at the touch and walks no level. `horizon_s`: the
    book's remaining life (s), over which the hedge's own side carries (`carry_holds`).
    `quotes`: `candidate_quotes(venues)` when the caller has it (the decision's).
    """
    if quotes is None:
        quotes = candidate_quotes(venues)
    hold_g, hold_r = carry_holds(side, quotes.hedge_coin, cost.expected_holding_s, horizon_s)
    years_g, years_r = float(hold_g) / SECONDS_PER_YEAR, float(hold_r) / SECONDS_PER_YEAR
    weight = cost.move_later_weight
    moves = weight > 0.0
    # Per-candidate lists filled in one pass; locals, not attribute lookups, in the loop: this
    # runs on every decision that trades (issue 17's latency budget).
    mids, spreads, fees = quotes.mid, quotes.half_spread, quotes.taker_fee
    limits = bool(router.max_position)
    carry_annual = quotes.carry_annual
    carries: list[float] = []
    carries_r: list[float] = []
    caps: list[float] = []
    move_later: list[float] = []
    reducing: list[float] = []
    prices_all: list[float] = []
    offsets_all: list[float] = []
    sizes_all: list[float] = []
    marginal: list[float] = []
    owner: list[int] = []
    growing: list[bool] = []
    starts: list[int] = []
    for i, v in enumerate(venues):
        mid = mids[i]
        fee = fees[i]
        signed = side * carry_annual[i]
        carry = signed * years_g
        carry_r = signed * years_r
        if v.max_position_amount is None and v.margin_available_usd is None and not limits:
            cap = math.inf  # `capacity_coin`'s first test, without its call
        else:
            cap = capacity_coin(v, side, router, spot_usd)
        carries.append(carry)
        carries_r.append(carry_r)
        caps.append(cap)
        # `cross_venue.move_later_frac`, from the half spread.
        move = weight * (fee + spreads[i]) if moves else 0.0
        move_later.append(move)
        dpa = v.delta_coin_per_amount
        # `cross_venue.reducing_coin`, written out (max as the builtin picks).
        to_flat = -side * v.position_amount
        reduce_left = (0.0 if to_flat < 0.0 else to_flat) * dpa
        reducing.append(reduce_left)
        if not depth:
            continue
        book = v.book
        book_side = None if book is None else (book.asks if side > 0 else book.bids)
        if book_side and need_coin is not None and reduce_left <= 0.0:
            # The usual taker case (a book, every level grows the position), in one pass:
            # the steps of the general path below, in its order, without its lists per
            # candidate and their comprehensions (calls, on Python 3.11). `|p - mid|` as
            # `abs` gives it (p - mid is never -0.0: mid > 0).
            a = len(prices_all)
            starts.append(a)
            grow_base = fee + carry + move
            cum = 0.0
            for lvl in book_side:
                p = lvl.price
                size = lvl.amount * dpa
                d = p - mid
                off = (d if d >= 0.0 else -d) / mid
                prices_all.append(p)
                offsets_all.append(off)
                sizes_all.append(size)
                marginal.append(grow_base + off)
                cum += size
                if cum >= need_coin:
                    break
            n = len(prices_all) - a
            if cap < cum:  # (`sum` of the sizes, in its order) within the limits, as is
                sizes_all[a:] = cap_levels(sizes_all[a:], cap)
            owner += [i] * n
            growing += [True] * n
            continue
        if book_side:
            # A taker trade walks as deep as it needs (the snapshot is already cut at the
            # depth fetched for it): a cap on levels would cap the hedge, and the remainder
            # would wait for later decisions (issue 19). MAX_LEVELS bounds only the rest.
            if need_coin is None:
                lv = book_side[:MAX_LEVELS]
                prices = [lvl.price for lvl in lv]
                raw = [lvl.amount * dpa for lvl in lv]
            else:
                prices, raw, cum = [], [], 0.0
                for lvl in book_side:
                    size = lvl.amount * dpa
                    prices.append(lvl.price)
                    raw.append(size)
                    cum += size
                    if cum >= need_coin:
                        break
        else:
            q = v.quote
            prices = [q.ask_price if side > 0 else q.bid_price]
            raw = [(q.ask_amount if side > 0 else q.bid_amount) * dpa]
        if cap < sum(raw):  # (inf when unlimited) within the limits, the levels are as is
            raw = cap_levels(raw, cap)
        offs = [abs(p - mid) / mid for p in prices]
        starts.append(len(prices_all))
        if reduce_left <= 0.0:
            # Every level grows the position (the usual case): one entry per level, built
            # list-wise.
            grow_base = fee + carry + move
            n = len(prices)
            prices_all += prices
            offsets_all += offs
            sizes_all += raw
            marginal += [grow_base + off for off in offs]
            owner += [i] * n
            growing += [True] * n
            continue
        # Each level split where the trade stops shrinking the position and starts growing
        # it: the growing part also bears the cost of moving it later (cross_venue).
        for p, off, size in zip(prices, offs, raw, strict=True):
            r = min(size, reduce_left)
            reduce_left -= r
            for part, grows in ((r, False), (size - r, True)):
                if part <= 0.0 and not (grows and r <= 0.0):
                    continue  # keep one entry per level even when it is empty
                prices_all.append(p)
                offsets_all.append(off)
                sizes_all.append(part)
                marginal.append(fee + off + (carry + move if grows else carry_r))
                owner.append(i)
                growing.append(grows)
    if depth:
        starts.append(len(prices_all))
    return CandidateLevels(
        side,
        prices_all,
        offsets_all,
        sizes_all,
        marginal,
        owner,
        mids,
        spreads,
        fees,
        quotes.maker_fee,
        carries,
        caps,
        growing,
        move_later,
        carries_r,
        starts,
        reducing,
    )


@dataclass(frozen=True, slots=True)
class FillCost:
    """What one hedge fill cost, USD. `fee_usd` is the fee (negative: a rebate);
    `slippage_usd` the fill price's distance from the reference price, signed against us
    (positive when we bought above it or sold below it); `notional_usd` is unsigned."""

    fee_usd: float
    slippage_usd: float
    notional_usd: float

    @property
    def cost_usd(self) -> float:
        """Fee plus slippage (USD)."""
        return self.fee_usd + self.slippage_usd


def fill_cost(
    fill: Fill,
    *,
    underlying: str,
    amount_unit: AmountUnit,
    price_unit: PriceUnit,
    index_usd: float,
    reference_price: float,
) -> FillCost:
    """The realized cost of `fill` against `reference_price` (in the instrument's price unit:
    the mid at the fill for the daemon's own count). `index_usd` (USD per coin) converts coin
    prices and coin fees. An inverse contract's amount is USD, so its slippage is that amount's
    change in coin value, in USD. A fee that is not a number counts as 0."""
    price_usd = fill.price * index_usd if price_unit is PriceUnit.COIN else fill.price
    ref_usd = reference_price * index_usd if price_unit is PriceUnit.COIN else reference_price
    sign = fill.side.sign
    if amount_unit is AmountUnit.USD:
        notional = fill.amount
        slip = sign * notional * (price_usd - ref_usd) / price_usd
    else:
        notional = fill.amount * price_usd
        slip = sign * fill.amount * (price_usd - ref_usd)
    fee_usd = fill.fee * index_usd if fill.fee_currency.upper() == underlying else fill.fee
    if not math.isfinite(fee_usd):
        fee_usd = 0.0
    return FillCost(fee_usd=fee_usd, slippage_usd=slip, notional_usd=abs(notional))
