"""How long the carry of a hedge runs: the book's horizon for the hedge's own side
(`cross_venue.carry_holds_s`), so a venue cheap to trade but dear to hold loses a hedge held to
the options' expiry; and a router that may use a second venue routes as on the first alone when
the second offers nothing cheaper."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hedging_builders import NOW_MS, SPOT, instrument, risk, venue_state
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import CostModelSettings, HedgerdPolicy, RouterSettings
from hedgerd.hedging.controller import decide
from hedgerd.hedging.cross_venue import carry_holds_s
from hedgerd.hedging.inputs import HedgeVenueState, PolicyState
from hedgerd.hedging.kernel import hedge_lambda
from hedgerd.hedging.router import RoutedLeg, route_maker, route_taker
from hedgerd.model import InstrumentKind

COST = CostModelSettings()  # expected_holding_s: one day
ROUTER = RouterSettings()
DAY_S = 86_400.0
MONTH_S = 30 * DAY_S


def per_8h(annual: float) -> float:
    """Funding per 8 h for an annual rate."""
    return annual / (3.0 * 365.0)


def deribit_perp(position_amount: float = 0.0) -> HedgeVenueState:
    """Taker 5 bp, funding 1.1 %/year (the two-venue scenario's Deribit perpetual)."""
    return venue_state(
        "BTC-PERPETUAL", taker_fee=0.0005, funding_8h=per_8h(0.011), position_amount=position_amount
    )


def okx_swap() -> HedgeVenueState:
    """Taker 4 bp, funding 3.3 %/year: cheaper to trade, dearer to hold long."""
    return venue_state("BTC-USD-SWAP", taker_fee=0.0004, funding_8h=per_8h(0.033), venue="okx")


def venues_of(legs: list[RoutedLeg], venues: list[HedgeVenueState]) -> set[str]:
    return {venues[leg.candidate].venue for leg in legs}


def test_a_hedge_held_to_expiry_goes_where_it_is_cheap_to_hold() -> None:
    venues = [okx_swap(), deribit_perp()]
    # Held a day, OKX's lower taker fee wins (0.9 bp of funding against 0.3 bp).
    assert venues_of(route_taker(venues, 1.0, COST, ROUTER, SPOT), venues) == {"okx"}
    assert venues_of(route_maker(venues, 1.0, COST, ROUTER, SPOT), venues) == {"okx"}
    # Held to an expiry a month away, OKX's funding (27 bp against 9 bp) outweighs it.
    legs = route_taker(venues, 1.0, COST, ROUTER, SPOT, horizon_s=MONTH_S)
    assert venues_of(legs, venues) == {"deribit"}
    assert venues_of(route_maker(venues, 1.0, COST, ROUTER, SPOT, MONTH_S), venues) == {"deribit"}


def test_decide_takes_the_horizon_from_the_book() -> None:
    venues = [okx_swap(), deribit_perp()]

    def venue(tau_years: float) -> set[str]:
        d = decide(
            risk(-5.0, tau_years=tau_years),
            venues,
            (),
            "hedgerd",
            HedgerdPolicy(),
            PolicyState(),
            NOW_MS,
            COST,
            ROUTER,
        )
        assert d.legs
        return {leg.venue for leg in d.legs}

    assert venue(1.0 / 365.0) == {"okx"}
    assert venue(30.0 / 365.0) == {"deribit"}


def test_a_unit_against_the_hedge_carries_only_to_the_next_rebalance() -> None:
    # Deribit holds the long hedge; a sell reduces it. Opening a short on OKX's swap instead
    # would earn its high funding only until the hedge grows again (a spread leg): priced over
    # the book's horizon it would look like 27 bp of income and win.
    off = COST.model_copy(update={"move_later_weight": 0.0})  # isolate the carry
    venues = [okx_swap(), deribit_perp(position_amount=100_000.0)]
    legs = route_taker(venues, -1.0, off, ROUTER, SPOT, horizon_s=MONTH_S)
    assert venues_of(legs, venues) == {"deribit"}
    grow, reduce = carry_holds_s(venues, -1, COST.expected_holding_s, MONTH_S)
    assert (grow, reduce) == (COST.expected_holding_s, MONTH_S)
    assert carry_holds_s(venues, 1, COST.expected_holding_s, MONTH_S) == (
        MONTH_S,
        COST.expected_holding_s,
    )
    # No horizon (or none left): the configured expected holding time.
    assert carry_holds_s(venues, 1, COST.expected_holding_s, 0.0) == (DAY_S, DAY_S)


@settings(max_examples=200, deadline=None)
@given(
    qty=st.floats(min_value=-30.0, max_value=30.0).filter(lambda q: abs(q) > 0.01),
    perp_pos=st.floats(min_value=-2e6, max_value=2e6),
    fut_pos=st.floats(min_value=-2e6, max_value=2e6),
    funding=st.floats(min_value=-5e-5, max_value=5e-5),
    basis=st.floats(min_value=-0.05, max_value=0.05),
    horizon_days=st.one_of(st.none(), st.floats(min_value=0.0, max_value=90.0)),
)
def test_a_second_venue_offering_nothing_cheaper_changes_nothing(
    qty: float,
    perp_pos: float,
    fut_pos: float,
    funding: float,
    basis: float,
    horizon_days: float | None,
) -> None:
    deep = 1e8  # USD a level: every trade fills at the touch
    perp = venue_state(
        "BTC-PERPETUAL", level_usd=deep, funding_8h=funding, position_amount=perp_pos
    )
    fut = venue_state(
        "BTC-FUT",
        kind=InstrumentKind.FUTURE,
        level_usd=deep,
        taker_fee=0.0004,
        basis_annual=basis,
        position_amount=fut_pos,
    )
    # OKX: the perpetual's book and funding at higher fees, flat.
    other = venue_state("BTC-USD-SWAP", level_usd=deep, funding_8h=funding, venue="okx")
    dearer = instrument("BTC-USD-SWAP", taker_fee=0.0007, maker_fee=0.0002, venue="okx")
    other = replace(other, instrument=dearer)
    horizon = None if horizon_days is None else horizon_days * DAY_S
    alone = [perp, fut]
    both = [perp, fut, other]
    for route in (route_taker, route_maker):
        one = route(alone, qty, COST, ROUTER, SPOT, horizon)
        two = route(both, qty, COST, ROUTER, SPOT, horizon)
        assert [(leg.candidate, leg.amount) for leg in two] == [
            (leg.candidate, leg.amount) for leg in one
        ]


def test_the_band_is_sized_for_the_instrument_the_hedge_is_held_on() -> None:
    # Touch: OKX's swap is cheapest (4.5 bp against 5.5); held long a month, its funding
    # (27 bp against 9) makes Deribit's perpetual the hedge's instrument. The backtest's arrays
    # of paths and the live lists give the same choice.
    fee, half, carry = [0.0005, 0.0004], [0.00005, 0.00005], [0.011, 0.033]
    month = 30.0 / 365.0
    assert hedge_lambda(fee, half, carry, 0.0, month) == (fee[1] + half[1], 0.033)
    assert hedge_lambda(fee, half, carry, 1.0, month) == (fee[0] + half[0], 0.011)
    assert hedge_lambda(fee, half, carry, 1.0, 1.0 / 365.0) == (fee[1] + half[1], 0.033)
    lam, c = hedge_lambda(
        np.array(fee),
        np.array(half),
        np.array(carry),
        np.array([0.0, 1.0, 1.0, -1.0]),
        np.array([month, month, 1.0 / 365.0, month]),
    )
    assert np.allclose(lam, [0.00045, 0.00055, 0.00045, 0.00045])
    assert np.allclose(c, [0.033, 0.011, 0.033, 0.033])
