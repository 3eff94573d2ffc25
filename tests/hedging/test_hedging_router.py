"""Routing: the cheaper instrument wins; depth forces a split; funding flips perp vs future."""

from __future__ import annotations

import pytest
from hedging_builders import SPOT, venue_state

from hedgerd.hedging.config import CostModelSettings, RouterSettings
from hedgerd.hedging.router import route_maker, route_taker
from hedgerd.model import HedgeStyle, InstrumentKind

COST = CostModelSettings(expected_holding_s=7 * 86400.0)
ROUTER = RouterSettings()


def test_cheaper_instrument_wins() -> None:
    cheap = venue_state("CHEAP-PERPETUAL", taker_fee=0.0002)
    dear = venue_state("DEAR-PERPETUAL", taker_fee=0.0005, venue="other")
    for venues in ([cheap, dear], [dear, cheap]):
        legs = route_taker(venues, 2.0, COST, ROUTER, SPOT)
        assert [venues[leg.candidate].name for leg in legs] == ["CHEAP-PERPETUAL"]
        assert legs[0].delta_coin == pytest.approx(2.0, abs=10 / SPOT)


def test_wider_spread_loses_even_with_equal_fees() -> None:
    tight = venue_state("A", half_spread_usd=0.5)
    wide = venue_state("B", half_spread_usd=20.0)
    legs = route_taker([wide, tight], -1.0, COST, ROUTER, SPOT)
    assert [leg.candidate for leg in legs] == [1]
    assert legs[0].delta_coin < 0


def test_depth_forces_a_split() -> None:
    # 3 coins wanted; the cheap venue has 1 coin a level with a steep book, the other is deep.
    thin = venue_state("THIN", taker_fee=0.0002, level_usd=SPOT * 1.0, level_step_usd=40.0)
    deep = venue_state("DEEP", taker_fee=0.0005, level_usd=SPOT * 100, venue="other")
    legs = route_taker([thin, deep], 3.0, COST, ROUTER, SPOT)
    by_name = {("THIN", "DEEP")[leg.candidate]: leg for leg in legs}
    assert set(by_name) == {"THIN", "DEEP"}
    assert sum(leg.delta_coin for leg in legs) == pytest.approx(3.0, abs=2 * 10 / SPOT)
    # the thin book is used only while its marginal level beats the deep touch
    assert 0.5 < by_name["THIN"].delta_coin < 2.5
    # one venue alone would cost more than the split
    split_cost = sum(leg.expected_cost_usd for leg in legs)
    deep_only = route_taker([deep], 3.0, COST, ROUTER, SPOT)
    assert split_cost < sum(leg.expected_cost_usd for leg in deep_only)


def test_position_limit_forces_a_split() -> None:
    a = venue_state("A", taker_fee=0.0002, max_position_amount=SPOT * 1.0)
    b = venue_state("B", taker_fee=0.0005, venue="other")
    legs = route_taker([a, b], 2.0, COST, ROUTER, SPOT)
    amounts = {leg.candidate: leg.amount for leg in legs}
    assert amounts[0] <= SPOT * 1.0
    assert sum(leg.delta_coin for leg in legs) == pytest.approx(2.0, abs=2 * 10 / SPOT)


@pytest.mark.parametrize(
    ("funding_8h", "side", "winner"),
    [
        (0.0003, +1.0, "FUTURE"),  # longs pay high funding: buy the future instead
        (-0.0003, +1.0, "PERPETUAL"),  # longs are paid funding: buy the perpetual
        (0.0003, -1.0, "PERPETUAL"),  # shorts receive high funding: sell the perpetual
        (0.00001, +1.0, "PERPETUAL"),  # funding below the basis: the perpetual is cheaper
    ],
)
def test_funding_flips_perpetual_and_future(funding_8h: float, side: float, winner: str) -> None:
    perp = venue_state("PERPETUAL", InstrumentKind.PERPETUAL, funding_8h=funding_8h)
    fut = venue_state("FUTURE", InstrumentKind.FUTURE, basis_annual=0.05)
    legs = route_taker([perp, fut], side * 1.0, COST, ROUTER, SPOT)
    assert [("PERPETUAL", "FUTURE")[leg.candidate] for leg in legs] == [winner]
    assert legs[0].side == side


def test_allowed_venues_and_taker_price_protection() -> None:
    from hedgerd.hedging.costs import allowed

    a = venue_state("A", taker_fee=0.0001, venue="blocked")
    b = venue_state("B", taker_fee=0.0005)
    ok = allowed([a, b], RouterSettings(allowed_venues=("deribit",)))
    assert [v.name for v in ok] == ["B"]
    (leg,) = route_taker(ok, 1.0, COST, ROUTER, SPOT)
    assert leg.style is HedgeStyle.TAKER
    assert leg.limit_price > b.quote.ask_price  # protection beyond the touch, never a bare market
    assert leg.limit_price < b.quote.ask_price * 1.01


def test_maker_goes_to_the_cheapest_expected_maker_cost() -> None:
    rebate = venue_state("REBATE", maker_fee=-0.0001, half_spread_usd=2.0)
    plain = venue_state("PLAIN", maker_fee=0.0002, venue="other")
    (leg,) = route_maker([plain, rebate], -0.5, COST, ROUTER, SPOT)
    assert leg.candidate == 1 and leg.style is HedgeStyle.MAKER
    assert leg.limit_price == rebate.quote.ask_price  # a sell rests at the ask
    assert leg.side == -1


def test_a_taker_hedge_walks_as_many_levels_as_it_needs() -> None:
    # 30 levels of 0.2 coin (10,000 USD at 50,000): a 5 coin hedge needs 25 of them. The
    # router once looked at the best 10 levels only and routed 2 coin (issue 19: a hedge
    # capped by the book it was shown took several decisions, each a delta-limit attempt).
    many = venue_state("MANY", level_usd=10_000.0, levels=30, level_step_usd=0.5)
    legs = route_taker([many], 5.0, COST, ROUTER, SPOT)
    assert sum(leg.delta_coin for leg in legs) == pytest.approx(5.0, abs=10 / SPOT)
    # A book thinner than the need still caps it: the rest waits for the next decision.
    legs = route_taker([many], 8.0, COST, ROUTER, SPOT)
    assert sum(leg.delta_coin for leg in legs) == pytest.approx(6.0, abs=10 / SPOT)
