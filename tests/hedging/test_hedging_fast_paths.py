"""The decision's scalar fast paths (issue 17's latency) give what the general paths give.

`kernel.plan_trades` and `kernel.round_to_lots` take plain floats for one decision and arrays
for the backtest: the scalar branch must agree with the array branch on the same inputs,
bit for bit. `controller.decision_id` packs its numbers block by block and hashes from a
cached prefix: the id must be that of the whole input hashed at once (the former code, kept
here as the reference), so ids (and client order ids) do not change across the rewrite.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields, replace
from typing import Any

import numpy as np
import pytest
from hedging_builders import NOW_MS, SPOT, risk, venue_state
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging import controller, kernel
from hedgerd.hedging.config import (
    CostModelSettings,
    FixedBandPolicy,
    HedgerdPolicy,
    MakerSettings,
    PolicyConfig,
    RouterSettings,
)
from hedgerd.hedging.controller import decision_id
from hedgerd.hedging.costs import candidate_quotes
from hedgerd.hedging.inputs import HedgeVenueState, InFlightOrder, PolicyState, UnderlyingRisk
from hedgerd.hedging.kernel import (
    Band,
    BandContext,
    MakerNumbers,
    PolicyNumbers,
    band_for,
    plan_trades,
    policy_numbers,
    round_to_lots,
)
from hedgerd.hedging.router import route_maker, route_taker
from hedgerd.model import BookLevel, HedgeStyle, InstrumentKind, OrderBookSnapshot

finite = st.floats(-5.0, 5.0, allow_nan=False)
width = st.floats(0.0, 3.0, allow_nan=False)


@st.composite
def policies(draw: st.DrawFn) -> PolicyConfig:
    maker = MakerSettings(
        enabled=draw(st.booleans()),
        band_fraction=draw(st.floats(0.1, 1.0)),
        target_fraction=draw(st.floats(0.0, 1.0)),
    )
    common = {
        "maker": maker,
        "rebalance_to": draw(st.sampled_from(["edge", "target"])),
        "hedge_ratio": draw(st.floats(0.1, 1.0)),
        "max_interval_s": draw(st.one_of(st.none(), st.floats(1.0, 600.0))),
        "price_move_filter_frac": draw(st.sampled_from([0.0, 0.001, 0.01])),
        "min_trade_coin": draw(st.sampled_from([0.0, 0.001, 0.1])),
    }
    if draw(st.booleans()):
        return FixedBandPolicy(halfwidth_coin=draw(st.floats(0.01, 2.0)), **common)
    return HedgerdPolicy(risk_aversion_per_usd=1e-5, **common)


@settings(max_examples=400, deadline=None)
@given(
    policy=policies(),
    centre=finite,
    lower=width,
    upper=width,
    net=st.floats(-10.0, 10.0, allow_nan=False),
    elapsed=st.one_of(st.just(math.nan), st.floats(0.0, 1_000.0)),
    move=st.one_of(st.just(math.nan), st.floats(-0.02, 0.02)),
    maker_allowed=st.booleans(),
    drift=st.floats(0.0, 1.0),
)
def test_scalar_plan_is_the_array_plan(
    policy: PolicyConfig,
    centre: float,
    lower: float,
    upper: float,
    net: float,
    elapsed: float,
    move: float,
    maker_allowed: bool,
    drift: float,
) -> None:
    now_s = 1_800_000.0
    last_s = now_s - elapsed
    last_spot = SPOT * (1.0 + move)

    def arr(x: float) -> np.ndarray:
        return np.array([x])

    got = plan_trades(
        policy,
        Band(centre, lower, upper),
        net,
        now_s,
        last_s,
        SPOT,
        last_spot,
        maker_allowed,
        drift,
    )
    assert type(got.taker_coin) is float and type(got.trigger) is int  # the scalar path
    want = plan_trades(
        policy,
        Band(arr(centre), arr(lower), arr(upper)),
        arr(net),
        arr(now_s),
        arr(last_s),
        arr(SPOT),
        arr(last_spot),
        maker_allowed,
        arr(drift),
    )
    assert got.taker_coin == float(want.taker_coin[0])
    assert got.maker_coin == float(want.maker_coin[0])
    assert got.trigger == int(want.trigger[0])


@settings(max_examples=300, deadline=None)
@given(
    qty=st.floats(-1e6, 1e6, allow_nan=False),
    step=st.sampled_from([10.0, 1.0, 0.01, 0.001, 0.1]),
    minimum=st.sampled_from([10.0, 1.0, 0.01, 0.001, 0.0]),
)
def test_scalar_lot_rounding_is_the_array_rounding(qty: float, step: float, minimum: float) -> None:
    got = round_to_lots(qty, step, minimum)
    want = round_to_lots(np.array([qty]), np.array([step]), np.array([minimum]))
    assert got == float(want[0])


class _GeneralPathPolicy(HedgerdPolicy):
    """The hedgerd policy as `band_for`'s general path sees it (the scalar branch takes the
    class itself only): the reference, its element-wise helpers on the same floats."""


@settings(max_examples=400, deadline=None)
@given(
    knobs=st.fixed_dictionaries(
        {
            "risk_aversion_per_usd": st.floats(1e-7, 1e-3),
            "ww_weight": st.sampled_from([1.0, 0.0, 0.8]),
            "gamma_exponent": st.sampled_from([2.0 / 3.0, 0.5, 1.0, 1.5]),
            "h0_weight": st.sampled_from([1.5, 0.0, 1.0]),
            "horizon_side": st.sampled_from(["under", "both"]),
            "h0_cap_coin": st.sampled_from([0.5, 3.0]),
            "k_prefactor": st.sampled_from([4.76, 0.0]),
            "shift_cap_hw": st.sampled_from([0.0, 1.0, 0.25]),
            "shift_cap_vov_ref": st.sampled_from([0.0, 0.3, 0.05]),
            "shift_coherence": st.sampled_from([0.0, 1.0, 2.0, 0.5]),
            "min_halfwidth_coin": st.sampled_from([0.0, 0.05, 5.0]),
            "gamma_horizon_s": st.sampled_from([10_800.0, 0.0]),
            "asymmetry": st.sampled_from([0.0, 0.3, -0.5]),
            "unwind_weight": st.sampled_from([0.0, 1.0]),
            "carry_weight": st.sampled_from([0.0, 0.5]),
            "flow_weight": st.sampled_from([0.0, 1.0, 0.5]),
            "gamma_average": st.sampled_from(["abs", "signed"]),
            "vov_ref": st.sampled_from([0.0, 1.0, 0.3]),
            "vov_scope": st.sampled_from(["both", "shift", "horizon", "all"]),
            "vov_horizon_s": st.sampled_from([86_400.0, 2_592_000.0]),
            "flow_fade_ref": st.sampled_from([0.0, 1.0, 30.0]),
            "jump_shift_power": st.sampled_from([0.0, 1.0, 0.5, 2.0]),
            "jump_skew_weight": st.sampled_from([0.0, 1.0, 0.5]),
            "jump_cap_hw": st.sampled_from([None, 0.0, 1.0, 0.25]),
            "jump_life_weight": st.booleans(),
            "target_delta_coin": st.sampled_from([0.0, -0.4]),
        }
    ),
    gamma=st.floats(-1e-3, 1e-3, allow_nan=False),
    vanna=st.one_of(st.just(0.0), finite),
    vol=st.floats(0.05, 2.0),
    tau=st.one_of(st.just(0.0), st.floats(0.0, 2.0)),
    rate=st.sampled_from([0.0, 0.03, -0.01]),
    lam=st.floats(0.0, 0.01),
    carry=st.floats(-0.5, 0.5),
    options_delta=st.one_of(st.just(0.0), finite),
    ahead=st.one_of(st.none(), st.floats(-1e-3, 1e-3, allow_nan=False)),
    flow_var=st.one_of(st.just(0.0), st.floats(0.0, 500.0)),
    flow_jump=st.one_of(st.just(0.0), st.floats(0.0, 2.0)),
    xi=st.one_of(st.just(0.0), st.floats(0.0, 50.0)),
    coherence=st.one_of(st.none(), st.just(1.0), st.just(0.0), st.floats(0.0, 1.0)),
    jump_ratio=st.one_of(st.just(1.0), st.floats(1.0, 5.0)),
    jump_skew=st.one_of(st.just(0.0), st.floats(-0.2, 0.2)),
    jump_rate=st.one_of(st.just(0.0), st.floats(0.0, 1000.0)),
)
def test_scalar_hedgerd_band_is_the_general_band(
    knobs: dict[str, Any],
    gamma: float,
    vanna: float,
    vol: float,
    tau: float,
    rate: float,
    lam: float,
    carry: float,
    options_delta: float,
    ahead: float | None,
    flow_var: float,
    flow_jump: float,
    xi: float,
    coherence: float | None,
    jump_ratio: float,
    jump_skew: float,
    jump_rate: float,
) -> None:
    ctx = BandContext(
        SPOT,
        gamma,
        vanna,
        vol,
        tau,
        rate,
        lam,
        carry,
        options_delta,
        ahead,
        flow_var,
        flow_jump,
        xi,
        coherence,
        jump_ratio,
        jump_skew,
        jump_rate,
    )
    got = band_for(HedgerdPolicy(**knobs), ctx)
    want = band_for(_GeneralPathPolicy(**knobs), ctx)
    # Bit for bit (NaN where both give NaN: a zero gamma's cube root of 0 / 0 is not one).
    for a, b in ((got.centre, want.centre), (got.lower, want.lower), (got.upper, want.upper)):
        assert type(a) is type(b)
        assert a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("cap", [None, 1.0, 0.1])
@pytest.mark.parametrize("coherence", [None, 1.0, 0.5])
@pytest.mark.parametrize("beyond", [True, False])
def test_scalar_jump_terms_are_the_general_ones_where_their_caps_bind(
    cap: float | None, coherence: float | None, beyond: bool
) -> None:
    """Explicit cases the sampled test rarely reaches: a long-gamma book whose jump terms
    (ratio 4, a lean) are far beyond either cap, or a lean alone within them, on a mixed
    book (coherence 0.5: the own cap's c^2) and a one-signed one."""
    ctx = BandContext(SPOT, 2e-5, 40.0 if beyond else 0.0, 0.6, 0.1, 0.0, 0.0005, 0.0, 0.3)
    ratio, skew = (4.0, -0.05) if beyond else (1.0, -0.002)
    ctx.gamma_coherence, ctx.jump_var_ratio, ctx.jump_skew = coherence, ratio, skew
    ctx.jump_rate_per_year = 24.0  # the life weight 1 - exp(-2.4)
    knobs = {"jump_shift_power": 1.0, "jump_skew_weight": 1.0, "jump_cap_hw": cap}
    got = band_for(HedgerdPolicy(**knobs), ctx)
    want = band_for(_GeneralPathPolicy(**knobs), ctx)
    assert (got.centre, got.lower, got.upper) == (want.centre, want.lower, want.upper)
    off = band_for(HedgerdPolicy(jump_shift_power=0.0), ctx)
    assert got.centre != off.centre  # the terms do move it


def _id_inputs(
    net: float, n_venues: int, n_orders: int, optional: bool, one_sided: str, now_offset: int
) -> tuple[
    UnderlyingRisk,
    list[HedgeVenueState],
    list[InFlightOrder],
    str,
    PolicyConfig,
    PolicyState,
    int,
]:
    r = risk(
        net,
        gamma_ahead_coin_per_usd=-1e-5 if optional else None,  # type: ignore[arg-type]
        next_settlement_ms=NOW_MS + 3_600_000 if optional else None,  # type: ignore[arg-type]
    )
    venues = []
    for i in range(n_venues):
        v = venue_state(
            f"V{i}",
            InstrumentKind.FUTURE if i == 1 else InstrumentKind.PERPETUAL,
            funding_8h=0.0001 if optional else None,
            basis_annual=0.05 if optional and i == 1 else None,
            max_position_amount=1e6 if optional else None,
            position_amount=float(i * 100),
            venue=f"acct{i % 2}",
        )
        if one_sided != "both" and v.book is not None:
            bids: tuple[BookLevel, ...] = v.book.bids if one_sided == "bids" else ()
            asks: tuple[BookLevel, ...] = v.book.asks if one_sided == "asks" else ()
            book = None if one_sided == "no book" else OrderBookSnapshot("x", "y", bids, asks, 7)
            v = HedgeVenueState(
                v.instrument, v.quote, v.delta_coin_per_amount, v.position_amount, book
            )
        venues.append(v)
    orders = [
        InFlightOrder("acct0", "V0", f"hd-{i}", 0.01 * i, HedgeStyle.MAKER, NOW_MS - i)
        for i in range(n_orders)
    ]
    policy = HedgerdPolicy(risk_aversion_per_usd=1e-5)
    state = PolicyState(NOW_MS - 5_000, SPOT) if optional else PolicyState()
    return r, venues, orders, "hedgerd", policy, state, NOW_MS + now_offset


# Ids computed by `decision_id` as it was before the block-wise packing and the cached prefix
# (main at 404772c), with the policy's fingerprint fixed (so that a new policy field does not
# change them): the rewrite must not change one (client order ids derive from them).
PINNED_IDS = [
    ((0.5, 0, 0, False, "both", 0), "69bf650c80af48f824f3556dbfe5ef5b"),
    ((-1.25, 1, 0, True, "both", 17), "0247065de807830f45a55f08526022b4"),
    ((2.0, 3, 3, True, "both", 123_456), "bfbfebba6ef9956c9f35077583f50dbe"),
    ((0.0, 3, 2, False, "bids", 1), "43f0c3f5638688b1ff6a145473d2eccd"),
    ((-3.5, 2, 1, True, "asks", 999), "69e322bb1feaef43927740cc8b1e38bf"),
    ((1.0, 2, 0, False, "none", 5), "6d115f1c8e328dd671af332678ca3b1c"),
    ((0.75, 3, 1, True, "no book", 10**9), "456533f926e0130679d1978c33c38885"),
]


@pytest.mark.parametrize(("inputs", "want"), PINNED_IDS)
def test_decision_ids_are_unchanged(
    inputs: tuple[Any, ...], want: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller, "_policy_fingerprint", lambda policy: "policy-fingerprint")
    assert decision_id(*_id_inputs(*inputs)) == want


@settings(max_examples=100, deadline=None)
@given(
    net=finite,
    n_venues=st.integers(0, 3),
    n_orders=st.integers(0, 3),
    optional=st.booleans(),
    one_sided=st.sampled_from(["both", "bids", "asks", "none", "no book"]),
    now_offset=st.integers(0, 10**9),
)
def test_decision_ids_follow_every_input_and_the_policy(
    net: float, n_venues: int, n_orders: int, optional: bool, one_sided: str, now_offset: int
) -> None:
    args = _id_inputs(net, n_venues, n_orders, optional, one_sided, now_offset)
    r, venues, orders, name, policy, state, now = args
    did = decision_id(*args)
    assert did == decision_id(*args)  # from the cached prefix: the same
    # The cached prefix is per policy and name: another gives another id.
    other = HedgerdPolicy(risk_aversion_per_usd=2e-5)
    assert decision_id(r, venues, orders, name, other, state, now) != did
    assert decision_id(r, venues, orders, "other", policy, state, now) != did
    assert decision_id(r, venues, orders, name, policy, state, now + 1) != did


# Every number field of `UnderlyingRisk` (the underlying's name and the settlement time aside).
_RISK_FIELDS = [
    f.name for f in fields(UnderlyingRisk) if f.name not in ("underlying", "next_settlement_ms")
]


@pytest.mark.parametrize("name", _RISK_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_underlying_risk_refuses_every_non_finite_field(name: str, bad: float) -> None:
    """`UnderlyingRisk`'s check is one sum of its fields: a NaN or an infinity anywhere still
    refuses (the averaged gamma included: the former early return let a NaN one through)."""
    fields: dict[str, Any] = {
        "underlying": "BTC",
        "spot_usd": SPOT,
        "net_delta_coin": 0.1,
        "gamma_coin_per_usd": -2e-5,
        "vol": 0.6,
        "tau_years": 0.1,
        name: bad,
    }
    with pytest.raises(ValueError, match=name):
        UnderlyingRisk(**fields)


def test_underlying_risk_takes_finite_fields_whose_sum_overflows() -> None:
    r = risk(1e308, gamma=1e308, spot=1e308, vol=1e308, tau_years=1e308)
    assert r.net_delta_coin == 1e308
    with pytest.raises(ValueError, match="vol"):
        risk(0.1, vol=0.0)


@st.composite
def _candidates(draw: st.DrawFn) -> list[HedgeVenueState]:
    """One to four candidates with drawn quotes, books, positions, limits, margin and carry
    (the state a decision sees, as it changes from one quote to the next)."""
    out = []
    # Margin per account, as the hedge loop sets it (every candidate of an account the same).
    margin = {a: draw(st.one_of(st.none(), st.floats(-100.0, 1e6))) for a in ("acct0", "acct1")}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from([InstrumentKind.PERPETUAL, InstrumentKind.FUTURE]))
        v = venue_state(
            f"V{i}",
            kind,
            mid=SPOT * (1.0 + draw(st.floats(-0.01, 0.01))),
            half_spread_usd=draw(st.floats(0.05, 20.0)),
            level_usd=draw(st.sampled_from([10_000.0, 100_000.0, 1_000_000.0])),
            levels=draw(st.integers(1, 10)),
            taker_fee=draw(st.sampled_from([0.0005, 0.0003])),
            maker_fee=draw(st.sampled_from([0.0, -0.0001])),
            funding_8h=draw(st.one_of(st.none(), st.floats(-0.001, 0.001))),
            basis_annual=draw(st.one_of(st.none(), st.floats(-0.1, 0.1))),
            position_amount=draw(st.sampled_from([0.0, 50_000.0, -200_000.0])),
            max_position_amount=draw(st.one_of(st.none(), st.just(300_000.0))),
            venue=f"acct{draw(st.integers(0, 1))}",
        )
        free = margin[v.venue]
        if free is not None:
            v = replace(v, margin_available_usd=free, initial_margin_frac=0.05)
        if draw(st.booleans()):
            v = replace(v, book=None)
        out.append(v)
    return out


@settings(max_examples=300, deadline=None)
@given(
    venues=_candidates(),
    qty=st.floats(-20.0, 20.0, allow_nan=False).filter(lambda q: q != 0.0),
    horizon=st.one_of(st.none(), st.floats(0.0, 1e8)),
)
def test_the_decisions_quote_terms_route_as_the_routers_own(
    venues: list[HedgeVenueState], qty: float, horizon: float | None
) -> None:
    """`decide` computes the candidates' quote terms once (`costs.candidate_quotes`) and hands
    them to the router; the router without them computes its own from the same states: the
    legs are the same, field for field, whatever the quotes, books, positions and limits."""
    quotes = candidate_quotes(venues)
    for route in (route_taker, route_maker):
        shared = route(venues, qty, CostModelSettings(), RouterSettings(), SPOT, horizon, quotes)
        own = route(venues, qty, CostModelSettings(), RouterSettings(), SPOT, horizon)
        assert repr(shared) == repr(own)


@settings(max_examples=50, deadline=None)
@given(policy=policies())
def test_policy_numbers_are_the_policys_and_follow_a_new_policy(policy: PolicyConfig) -> None:
    """`kernel.policy_numbers` copies a policy's settings once per policy object: every field
    equals the policy's own, and another policy object (a reload) gets its own copy, never the
    cached one of a policy it equals in id only."""
    # An empty cache: it is emptied whole when it passes 256 policies, and where the other
    # tests left it 255 full the reload's entry emptied it between the two lookups below.
    kernel._numbers.clear()
    numbers = policy_numbers(policy)
    assert policy_numbers(policy) is numbers  # kept for the same object
    hedgerd = isinstance(policy, HedgerdPolicy)
    for f in fields(PolicyNumbers):
        if f.name == "maker":
            continue
        if hedgerd or f.default is MISSING:  # the policy's own setting
            assert getattr(numbers, f.name) == getattr(policy, f.name)
        else:  # a hedgerd band field of another kind: the default (never read)
            assert getattr(numbers, f.name) == f.default
    m = policy.maker
    assert numbers.maker == MakerNumbers(m.enabled, m.band_fraction, m.target_fraction, m.timeout_s)
    reloaded = policy.model_copy(update={"min_trade_coin": policy.min_trade_coin + 0.5})
    assert policy_numbers(reloaded).min_trade_coin == policy.min_trade_coin + 0.5
    assert policy_numbers(policy) is numbers
