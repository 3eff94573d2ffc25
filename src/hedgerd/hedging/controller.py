"""The hedge controller: a pure function from risk and market state to a `HedgeDecision`.

`decide` does no I/O and reads no clock: `now_ms` is an argument. It

1. projects the net delta (expiring options decay over the settlement window), adds the delta
   of every order in flight (so a slow fill never causes a second hedge),
2. asks the policy for its band (`kernel.band_for`, cost lambda from the live cost model of
   the cheapest allowed instrument) and its triggers and size (`kernel.plan_trades`),
3. routes the trade (`router`) and rounds it to lots (what rounding leaves is carried: it stays
   in the net delta of the next decision),
4. returns the legs, the expected cost and a reason with the numbers, under a decision id
   hashed from all inputs.

The backtest runs the same kernel functions on arrays of paths.
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hedgerd.hedging.config import CostModelSettings, PolicyConfig, RouterSettings
from hedgerd.hedging.costs import candidate_quotes
from hedgerd.hedging.cross_venue import SECONDS_PER_YEAR
from hedgerd.hedging.inputs import HedgeVenueState, InFlightOrder, PolicyState, UnderlyingRisk
from hedgerd.hedging.kernel import (
    TRIG_BAND,
    TRIG_MAKER,
    TRIG_NONE,
    TRIG_SAFETY,
    TRIG_TIMER,
    BandContext,
    band_for_floats,
    hedge_lambda,
    maker_drift,
    plan_trades_floats,
    policy_numbers,
    projected_delta,
)
from hedgerd.hedging.router import RoutedLeg, route_maker, route_taker
from hedgerd.model import HedgeDecision, HedgeLeg, HedgeStyle, HedgeTrigger, OrderSide

_TRIGGERS = {
    TRIG_NONE: HedgeTrigger.NONE,
    TRIG_BAND: HedgeTrigger.BAND,
    TRIG_TIMER: HedgeTrigger.TIMER,
    TRIG_SAFETY: HedgeTrigger.SAFETY_TIMER,
    TRIG_MAKER: HedgeTrigger.MAKER_ZONE,
}
_SECONDS_PER_YEAR = 365.0 * 86400.0
_fingerprints: dict[int, tuple[object, str]] = {}
_DEFAULT_COST = CostModelSettings()
_DEFAULT_ROUTER = RouterSettings()
# Enum members bound once: `Enum.MEMBER` is a class attribute lookup through the enum's
# metaclass (~0.15 us on Python 3.11), made several times on every decision.
_MAKER = HedgeStyle.MAKER
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_HOLD = HedgeTrigger.NONE
_prefixes: dict[tuple[str, str, int], tuple[object, Any]] = {}
_BIG_ENDIAN = sys.byteorder == "big"


def _policy_fingerprint(policy: PolicyConfig) -> str:
    # Policies are frozen; keep a reference so the id cannot be reused while cached.
    hit = _fingerprints.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    fp = policy.model_dump_json()
    if len(_fingerprints) > 256:
        _fingerprints.clear()
    _fingerprints[id(policy)] = (policy, fp)
    return fp


def _id_prefix(underlying: str, policy_name: str, policy: PolicyConfig) -> Any:
    """The decision id's hash state after its first names (underlying, policy name, policy
    fingerprint: the same for every decision of an underlying under one policy), to copy.
    Hashing is streaming, so the id is that of the whole input hashed at once."""
    key = (underlying, policy_name, id(policy))
    hit = _prefixes.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    h = hashlib.blake2b(digest_size=16)
    h.update("\x1f".join((underlying, policy_name, _policy_fingerprint(policy))).encode())
    if len(_prefixes) > 256:
        _prefixes.clear()
    _prefixes[key] = (policy, h)
    return h


def decision_id(
    risk: UnderlyingRisk,
    venues: Sequence[HedgeVenueState],
    in_flight: Sequence[InFlightOrder],
    policy_name: str,
    policy: PolicyConfig,
    state: PolicyState,
    now_ms: int,
) -> str:
    """A hash of every input: the same inputs give the same id (and client order ids), in
    any process. Numbers are hashed as IEEE doubles, names as UTF-8; a depth snapshot by its
    timestamp, length and touch."""
    # None is hashed as NaN; written inline (no helper call per field): this runs on every
    # evaluation of every underlying. (Packed in one call: a `Struct` per block and an
    # `attrgetter` per record measured slower, though fewer bytecodes.) Integers (times,
    # lengths) go to the packing as they are: its `d` converts them as `float()` does.
    nan = math.nan
    nums: list[float] = [
        now_ms,
        risk.spot_usd,
        risk.net_delta_coin,
        risk.gamma_coin_per_usd,
        risk.vol,
        risk.tau_years,
        risk.vanna_coin_per_vol,
        risk.rate,
        risk.expiring_delta_coin,
        risk.options_delta_coin,
        nan if risk.gamma_ahead_coin_per_usd is None else risk.gamma_ahead_coin_per_usd,
        nan if risk.next_settlement_ms is None else risk.next_settlement_ms,
        nan if state.last_hedge_ms is None else state.last_hedge_ms,
        nan if state.last_hedge_spot_usd is None else state.last_hedge_spot_usd,
    ]
    if risk.flow_var_coin2_per_year != 0.0 or risk.flow_jump_coin != 0.0:
        # Only when there is option flow: every id without it stays as it was (pinned).
        nums += (risk.flow_var_coin2_per_year, risk.flow_jump_coin)
    if risk.vol_of_vol_per_sqrt_year != 0.0:
        # Likewise only when the marks move.
        nums += (risk.vol_of_vol_per_sqrt_year,)
    if risk.gamma_coherence is not None:
        # Likewise only when computed (the hedgerd band's `shift_coherence`).
        nums += (risk.gamma_coherence,)
    if risk.jump_var_ratio != 1.0:
        # Likewise only when the index jumped (the hedgerd band's `jump_shift_power`).
        nums += (risk.jump_var_ratio,)
    if risk.jump_skew != 0.0:
        # Likewise only when the jumps lean one way (the hedgerd band's `jump_skew_weight`).
        nums += (risk.jump_skew,)
    if risk.jump_rate_per_year != 0.0:
        # Likewise only when a jump was found (the hedgerd band's `jump_life_weight`).
        nums += (risk.jump_rate_per_year,)
    names: list[str] = []
    for v in venues:
        q = v.quote
        inst = v.instrument
        names += (inst.venue, inst.name)
        nums += (
            q.bid_price,
            q.bid_amount,
            q.ask_price,
            q.ask_amount,
            q.ts_ms,
            v.delta_coin_per_amount,
            v.position_amount,
            nan if v.funding_8h is None else v.funding_8h,
            nan if v.basis_annual is None else v.basis_annual,
            nan if v.max_position_amount is None else v.max_position_amount,
            nan if v.margin_available_usd is None else v.margin_available_usd,
            v.initial_margin_frac,
        )
        b = v.book
        if b is not None:
            # A venue's book is identified by its timestamp and its touch (not every level).
            bids, asks = b.bids, b.asks
            nums += (b.ts_ms, len(bids), len(asks))
            if bids:
                nums += (bids[0].price, bids[0].amount)
            if asks:
                nums += (asks[0].price, asks[0].amount)
    for o in in_flight:
        names.append(o.label)
        nums += (o.delta_coin, o.placed_ms)
    # The names after the fixed prefix (underlying, policy name, policy fingerprint), whose
    # hash state is cached: hashing is streaming, so the id is that of the whole input.
    h: hashlib._Hash = _id_prefix(risk.underlying, policy_name, policy).copy()
    if names:
        h.update(("\x1f" + "\x1f".join(names)).encode())
    # The numbers as little-endian IEEE doubles (as `struct.pack("<...d")` wrote them, the
    # ids pinned in tests/hedging/test_hedging_fast_paths.py): an `array` of doubles is that
    # buffer on a little-endian machine, without the pack's format string and its call
    # with every number as an argument. (An integer converts as `float()` does.)
    packed = array("d", nums)
    if _BIG_ENDIAN:
        packed.byteswap()
    h.update(packed)
    return h.hexdigest()


def decide(
    risk: UnderlyingRisk,
    venues: Sequence[HedgeVenueState],
    in_flight: Sequence[InFlightOrder],
    policy_name: str,
    policy: PolicyConfig,
    state: PolicyState,
    now_ms: int,
    cost: CostModelSettings | None = None,
    router: RouterSettings | None = None,
) -> HedgeDecision:
    """Decide the hedge of one underlying at `now_ms` (UTC epoch ms). Pure.

    `venues` are the candidate hedge instruments of this underlying; `in_flight` the orders
    sent and not yet terminal (their remaining delta counts as hedged); `state` what the policy
    remembers (update it with `after` when the decision's orders are sent).
    """
    cost = cost or _DEFAULT_COST
    router = router or _DEFAULT_ROUTER
    did = decision_id(risk, venues, in_flight, policy_name, policy, state, now_ms)
    numbers = policy_numbers(policy)  # the policy's settings in slots (no pydantic reads)
    # The usable candidates and their quote terms, once for the band and the router.
    quotes = candidate_quotes(venues, router)
    usable = quotes.venues
    now_s = now_ms / 1000.0

    to_settle_s = (
        (risk.next_settlement_ms - now_ms) / 1000.0
        if risk.next_settlement_ms is not None
        else math.inf
    )
    book_delta = projected_delta(
        risk.net_delta_coin, risk.expiring_delta_coin, to_settle_s, numbers.settlement_window_s
    )
    # Plain loops, not comprehensions or generators, on this path (each is a call), summing
    # in `sum`'s order and from its int 0 (a decision without legs keeps the int 0 as its
    # expected cost, as before: decisions pinned in tests/hedging/test_decision_pins.py).
    pending = 0.0
    for o in in_flight:
        pending += o.delta_coin
    net = book_delta + pending
    # The band's cost and carry: the instrument the hedge would be held on to the horizon.
    hedge_side = (
        -1.0 if risk.options_delta_coin > 0 else (1.0 if risk.options_delta_coin < 0 else 0.0)
    )
    lam, carry = hedge_lambda(
        quotes.taker_fee, quotes.half_spread, quotes.carry_annual, hedge_side, risk.tau_years
    )
    # Positional arguments on this path (fields in declaration order): a keyword call
    # matches each name against the parameters'.
    ctx = BandContext(
        risk.spot_usd,
        risk.gamma_coin_per_usd,
        risk.vanna_coin_per_vol,
        risk.vol,
        risk.tau_years,
        risk.rate,
        lam,
        carry,  # carry_annual
        risk.options_delta_coin,
        risk.gamma_ahead_coin_per_usd,
        risk.flow_var_coin2_per_year,
        risk.flow_jump_coin,
        risk.vol_of_vol_per_sqrt_year,
        risk.gamma_coherence,
        risk.jump_var_ratio,
        risk.jump_skew,
        risk.jump_rate_per_year,
    )
    band = band_for_floats(policy, ctx)
    centre, lower, upper = band.centre, band.lower, band.upper
    last_s = state.last_hedge_ms / 1000.0 if state.last_hedge_ms is not None else math.nan
    last_spot = state.last_hedge_spot_usd if state.last_hedge_spot_usd is not None else math.nan
    drift = maker_drift(ctx, cost.maker_fill_delay_s)  # maker_drift_coin
    # Resting maker orders working against the plan are cancelled with its legs, and a
    # cancel usually lands first: the legs are sized without them, planned again (planned
    # with them, every cancel that landed left the delta overshot by its order's rest, then a
    # round trip). One that fills before its cancel leaves the delta short of the plan by its
    # fill, which the next evaluation sees as a fill and hedges.
    cancelling: list[str] = []
    while True:
        plan = plan_trades_floats(
            policy, band, net, now_s, last_s, risk.spot_usd, last_spot, True, drift, numbers
        )
        taker_q = float(plan.taker_coin)
        maker_q = float(plan.maker_coin)
        if cancelling:
            break
        wanted = taker_q + maker_q
        for o in in_flight:
            if o.style is _MAKER and o.delta_coin * wanted < 0.0:
                cancelling.append(o.label)
                pending -= o.delta_coin
        if not cancelling:
            break
        net = book_delta + pending
    trigger = _TRIGGERS[int(plan.trigger)]
    if not math.isfinite(taker_q + maker_q):
        # A non-finite net delta (an in-flight order's NaN or infinite rest: not validated)
        # plans a non-finite size (the plan's "0" is 0 x net), and the router's split never
        # reaches a NaN quantity's end: it took every level shown. Never trade on it: a hold.
        taker_q = maker_q = 0.0

    routed: list[RoutedLeg] = []
    # The hedge's own side is held as long as the book it hedges: its carry runs that long.
    horizon_s = risk.tau_years * SECONDS_PER_YEAR
    if taker_q != 0.0:
        routed = route_taker(usable, taker_q, cost, router, risk.spot_usd, horizon_s, quotes)
    elif maker_q != 0.0:
        routed = route_maker(usable, maker_q, cost, router, risk.spot_usd, horizon_s, quotes)

    timeout_s = numbers.maker.timeout_s
    built: list[HedgeLeg] = []
    traded: float = 0
    expected_cost: float = 0
    for r in routed:
        leg = _leg(usable[r.candidate], r, now_ms, timeout_s)
        built.append(leg)
        traded += leg.delta_coin
        expected_cost += leg.expected_cost_usd
    legs = tuple(built)
    wanted = taker_q + maker_q
    cancels = tuple(cancelling)
    if not legs and taker_q == 0.0 and maker_q == 0.0:
        trigger = _HOLD
    return HedgeDecision(
        did,
        risk.underlying,
        policy_name,
        now_ms,  # ts_ms
        trigger,
        net,  # net_delta_coin
        book_delta,  # book_delta_coin
        pending,  # in_flight_delta_coin
        centre,  # target_delta_coin
        centre - lower,  # band_lower_coin
        centre + upper,  # band_upper_coin
        wanted,  # wanted_coin
        net + traded,  # delta_after_coin
        legs,
        expected_cost,  # expected_cost_usd
        lam,  # lambda_frac
        risk.gamma_coin_per_usd,
        risk.spot_usd,
        cancels,  # cancel_labels
    )


def after(state: PolicyState, decision: HedgeDecision, spot_usd: float) -> PolicyState:
    """The policy state once `decision`'s orders are sent (unchanged for a hold)."""
    if not decision.trades:
        return state
    return replace(state, last_hedge_ms=decision.ts_ms, last_hedge_spot_usd=spot_usd)


def _leg(v: HedgeVenueState, r: RoutedLeg, now_ms: int, timeout_s: float) -> HedgeLeg:
    inst = v.instrument
    style = r.style
    return HedgeLeg(
        inst.venue,
        inst.name,
        _BUY if r.side > 0 else _SELL,
        r.amount,
        inst.amount_unit,
        r.delta_coin,
        style,
        _round_price(r.limit_price, inst.tick_size, r.side, style),
        inst.price_unit,
        r.expected_cost_usd,
        now_ms + int(timeout_s * 1000) if style is _MAKER else None,
    )


def _round_price(price: float, tick: float, side: int, style: HedgeStyle) -> float:
    """Taker protection rounds away from the touch (more room); a maker price toward it."""
    n = price / tick
    if style is _MAKER:
        n = math.floor(n + 1e-9) if side > 0 else math.ceil(n - 1e-9)
    else:
        n = math.ceil(n - 1e-9) if side > 0 else math.floor(n + 1e-9)
    return float(round(n * tick, 12))


def should_log(decision: HedgeDecision, hold_sample_rate: float = 0.01) -> bool:
    """Log every decision that trades, and a deterministic sample (by decision id) of holds."""
    if decision.trades:
        return True
    return int(decision.decision_id[:8], 16) < hold_sample_rate * 0x1_0000_0000
