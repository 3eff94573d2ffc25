"""The cross-venue router: a hedge priced and split over candidates on several accounts
(Deribit inverse perpetual in 10 USD, OKX inverse swap in 100 USD contracts and linear swap
in 0.01 BTC), within each account's margin headroom, lots and position limits."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from hedging_builders import NOW_MS, SPOT, venue_state
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.hedging.config import CostModelSettings, RouterSettings
from hedgerd.hedging.cross_venue import reducing_coin, with_carry
from hedgerd.hedging.inputs import HedgeVenueState
from hedgerd.hedging.router import RoutedLeg, route_maker, route_taker
from hedgerd.model import (
    AmountUnit,
    BookLevel,
    InstrumentKind,
    OrderBookSnapshot,
    Quote,
    Ticker,
)
from hedgerd.portfolio.routing import hedge_accounts
from hedgerd.risk.trading_state import TradingState

COST = CostModelSettings()
ROUTER = RouterSettings()


def okx_inverse(**kw: object) -> HedgeVenueState:
    """OKX BTC-USD-SWAP: inverse, amounts in USD, 100 USD contracts."""
    v = venue_state("BTC-USD-SWAP", venue="okx", **kw)  # type: ignore[arg-type]
    inst = replace(v.instrument, contract_size=100.0, min_amount=100.0, amount_step=100.0)
    return replace(v, instrument=inst)


def okx_linear(
    taker_fee: float = 0.0005, level_coin: float = 20.0, position_coin: float = 0.0
) -> HedgeVenueState:
    """OKX BTC-USDT-SWAP: linear, amounts in coin, 0.01 BTC lots, USDT collateral."""
    base = venue_state("BTC-USDT-SWAP", venue="okx", taker_fee=taker_fee)
    inst = replace(
        base.instrument,
        inverse=False,
        settlement_currency="USDT",
        quote_currency="USDT",
        contract_size=0.01,
        amount_unit=AmountUnit.COIN,
        min_amount=0.01,
        amount_step=0.01,
    )
    bid, ask = SPOT - 0.5, SPOT + 0.5
    asks = tuple(BookLevel(ask + i * 5.0, level_coin) for i in range(5))
    bids = tuple(BookLevel(bid - i * 5.0, level_coin) for i in range(5))
    return replace(
        base,
        instrument=inst,
        quote=Quote("okx", inst.name, bid, level_coin, ask, level_coin, NOW_MS),
        book=OrderBookSnapshot("okx", inst.name, bids, asks, NOW_MS),
        delta_coin_per_amount=1.0,
        position_amount=position_coin,
    )


def with_margin(v: HedgeVenueState, free_usd: float, im_frac: float = 0.1) -> HedgeVenueState:
    return replace(v, margin_available_usd=free_usd, initial_margin_frac=im_frac)


def lot_coin(v: HedgeVenueState) -> float:
    return max(v.instrument.amount_step, v.instrument.min_amount) * v.delta_coin_per_amount


def by_account(legs: list[RoutedLeg], venues: list[HedgeVenueState]) -> dict[str, float]:
    out: dict[str, float] = {}
    for leg in legs:
        name = venues[leg.candidate].venue
        out[name] = out.get(name, 0.0) + leg.delta_coin
    return out


qty = st.floats(min_value=-30.0, max_value=30.0).filter(lambda q: abs(q) > 1e-3)
fee = st.sampled_from([0.0002, 0.0003, 0.0005, 0.00075])
depth_usd = st.sampled_from([20_000.0, 200_000.0, 2_000_000.0])
position = st.sampled_from([-500_000.0, -10_000.0, 0.0, 20_000.0, 300_000.0])


@st.composite
def candidates(draw: st.DrawFn) -> list[HedgeVenueState]:
    deribit = venue_state(
        "BTC-PERPETUAL",
        taker_fee=draw(fee),
        level_usd=draw(depth_usd),
        position_amount=draw(position),
    )
    okx_inv = okx_inverse(
        taker_fee=draw(fee), level_usd=draw(depth_usd), position_amount=draw(position)
    )
    okx_lin = okx_linear(
        taker_fee=draw(fee),
        level_coin=draw(st.sampled_from([0.3, 4.0, 40.0])),
        position_coin=draw(st.sampled_from([-3.0, 0.0, 2.0])),
    )
    return [deribit, okx_inv, okx_lin]


@settings(max_examples=200, deadline=None)
@given(candidates(), qty)
def test_a_split_sums_to_the_wanted_delta_within_lot_rounding(
    venues: list[HedgeVenueState], q: float
) -> None:
    legs = route_taker(venues, q, COST, ROUTER, SPOT)
    traded = sum(leg.delta_coin for leg in legs)
    assert traded * q >= 0.0 and abs(traded) <= abs(q) + 1e-9  # never more than wanted
    depth = sum(
        sum(lvl.amount for lvl in (v.book.asks if q > 0 else v.book.bids)) * v.delta_coin_per_amount
        for v in venues
        if v.book is not None
    )
    if depth >= abs(q) * 1.01:
        # What is left is only what lot rounding cut: less than a lot per candidate.
        assert abs(q) - abs(traded) <= sum(lot_coin(v) for v in venues) + 1e-9
    for leg in legs:
        v = venues[leg.candidate]
        lots = leg.amount / v.instrument.amount_step
        assert abs(lots - round(lots)) < 1e-6 and leg.amount >= v.instrument.min_amount - 1e-9


@settings(max_examples=200, deadline=None)
@given(
    candidates(),
    qty,
    st.sampled_from([0.0, 500.0, 20_000.0, 150_000.0]),
    st.sampled_from([0.0, 1_000.0, 60_000.0]),
)
def test_no_split_takes_an_account_past_its_margin_headroom(
    venues: list[HedgeVenueState], q: float, free_deribit_usd: float, free_okx_usd: float
) -> None:
    im = 0.1
    deribit, okx_inv, okx_lin = venues
    venues = [
        with_margin(deribit, free_deribit_usd, im),
        with_margin(okx_inv, free_okx_usd, im),
        with_margin(okx_lin, free_okx_usd, im),
    ]
    side = 1 if q > 0 else -1
    legs = route_taker(venues, q, COST, ROUTER, SPOT)
    used: dict[tuple[str, str], float] = {}
    for leg in legs:
        v = venues[leg.candidate]
        grows = max(abs(leg.delta_coin) - reducing_coin(v, side), 0.0)
        key = (v.venue, v.instrument.settlement_currency)
        used[key] = used.get(key, 0.0) + grows * im * SPOT
    for (venue, ccy), usd in used.items():
        free = next(
            v.margin_available_usd
            for v in venues
            if v.venue == venue and v.instrument.settlement_currency == ccy
        )
        assert free is not None and usd <= free + 1e-6


@settings(max_examples=100, deadline=None)
@given(fee, st.sampled_from([0.0001, 0.0002, 0.0004]), st.floats(min_value=0.05, max_value=10.0))
def test_the_cheaper_venue_gets_the_flow_when_its_depth_allows(
    cheap_fee: float, extra_fee: float, q: float
) -> None:
    cheap = okx_inverse(taker_fee=cheap_fee)
    dear = venue_state("BTC-PERPETUAL", taker_fee=cheap_fee + extra_fee)
    for venues in ([cheap, dear], [dear, cheap]):
        for signed in (q, -q):
            legs = route_taker(venues, signed, COST, ROUTER, SPOT)
            assert legs and {venues[leg.candidate].venue for leg in legs} == {"okx"}


def test_depth_forces_a_split_onto_the_dearer_venue() -> None:
    cheap = okx_inverse(taker_fee=0.0002, level_usd=20_000.0, levels=2)  # 0.8 BTC of asks
    dear = venue_state("BTC-PERPETUAL", taker_fee=0.0005)
    legs = route_taker([cheap, dear], 2.0, COST, ROUTER, SPOT)
    split = by_account(legs, [cheap, dear])
    assert split["okx"] > 0.5 and split["deribit"] > 0.5
    assert abs(sum(split.values()) - 2.0) < 0.01


def test_a_funding_or_basis_change_flips_the_choice() -> None:
    okx = okx_inverse(taker_fee=0.0005)
    deribit = venue_state("BTC-PERPETUAL", taker_fee=0.0005, funding_8h=0.0001)
    legs = route_taker([okx, deribit], 1.0, COST, ROUTER, SPOT)  # a long pays funding on deribit
    assert by_account(legs, [okx, deribit]).keys() == {"okx"}
    deribit = replace(deribit, funding_8h=-0.0001)  # now a long earns it there
    legs = route_taker([okx, deribit], 1.0, COST, ROUTER, SPOT)
    assert by_account(legs, [okx, deribit]).keys() == {"deribit"}


def test_an_account_short_of_funds_gets_only_the_hedge_that_reduces_its_position() -> None:
    # OKX holds a short hedge and has no free collateral; Deribit is a bit dearer, flat, funded.
    okx = with_margin(okx_inverse(taker_fee=0.0003, position_amount=-50_000.0), 0.0)
    deribit = with_margin(venue_state("BTC-PERPETUAL", taker_fee=0.0005), 1e6)
    buy = by_account(route_taker([okx, deribit], 3.0, COST, ROUTER, SPOT), [okx, deribit])
    assert abs(buy["okx"] - 1.0) < 1e-9  # exactly its short bought back, nothing more
    assert abs(buy["deribit"] - 2.0) < 0.01
    sell = by_account(route_taker([okx, deribit], -1.0, COST, ROUTER, SPOT), [okx, deribit])
    assert sell.keys() == {"deribit"}  # growing the short there needs margin it lacks


def test_moving_the_hedge_later_favours_unwinding_where_it_sits() -> None:
    # Same fees and books; Deribit holds a long hedge. A sell reduces it there rather than
    # opening a short on OKX (which would later have to be closed too).
    okx = okx_inverse(taker_fee=0.0005)
    deribit = venue_state("BTC-PERPETUAL", taker_fee=0.0005, position_amount=100_000.0)
    for venues in ([okx, deribit], [deribit, okx]):
        sell = by_account(route_taker(venues, -1.5, COST, ROUTER, SPOT), venues)
        assert sell.keys() == {"deribit"}
        maker = route_maker(venues, -1.5, COST, ROUTER, SPOT)
        assert [venues[leg.candidate].venue for leg in maker] == ["deribit"]
    # With the term switched off the tie is decided by the order of the candidates only.
    off = COST.model_copy(update={"move_later_weight": 0.0})
    assert route_taker([okx, deribit], -1.5, off, ROUTER, SPOT)


def test_one_account_prices_reducing_against_growing_as_across_accounts() -> None:
    # One rule for one account and several: the perpetual holds a long hedge; a sell reduces
    # it there (no later close to pay) rather than opening a short on the future, whose
    # lower taker fee does not cover closing that short later.
    perp = venue_state("BTC-PERPETUAL", taker_fee=0.0005, position_amount=100_000.0)
    fut = venue_state("BTC-FUT", kind=InstrumentKind.FUTURE, taker_fee=0.0004)
    assert [leg.candidate for leg in route_taker([perp, fut], -1.0, COST, ROUTER, SPOT)] == [0]
    assert [leg.candidate for leg in route_maker([perp, fut], -1.0, COST, ROUTER, SPOT)] == [0]
    # Growing the hedge, the cheaper future is the choice, as it was.
    assert [leg.candidate for leg in route_taker([perp, fut], 1.0, COST, ROUTER, SPOT)] == [1]
    # Without the term the router ignores where the hedge sits.
    off = COST.model_copy(update={"move_later_weight": 0.0})
    assert [leg.candidate for leg in route_taker([perp, fut], -1.0, off, ROUTER, SPOT)] == [1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list(TradingState)), min_size=2, max_size=4))
def test_a_halted_account_is_never_routed_to(own: list[TradingState]) -> None:
    names = [f"acct{i}" for i in range(len(own))]
    accounts: Any = {
        n: SimpleNamespace(
            name=n,
            settings=SimpleNamespace(hedges=True),
            underlyings=("BTC",),
            venue=object(),
            feed=object(),
            orders_blocked=lambda: False,
            disconnected=lambda: False,
            awaiting_data=lambda: False,
        )
        for n in names
    }
    accounts_state: dict[str, TradingState] = dict(zip(names, own, strict=True))
    states: Any = SimpleNamespace(
        accounts={n: SimpleNamespace(state=s) for n, s in accounts_state.items()},
        per_account=True,
        state=accounts_state.__getitem__,
    )
    for route in hedge_accounts(accounts, states, "BTC"):
        halted = accounts_state[route.account.name] is TradingState.HALTED
        assert route.routable is not halted
        assert route.reducing_only is (
            accounts_state[route.account.name] is TradingState.REDUCE_ONLY
        )


def test_carry_from_the_venue_ticker_funding_for_a_perpetual_basis_for_a_future() -> None:
    perp = venue_state("BTC-PERPETUAL")
    tick = Ticker("deribit", "BTC-PERPETUAL", SPOT * 1.001, SPOT, NOW_MS, funding_8h=0.0002)
    assert with_carry(perp, tick, NOW_MS).funding_8h == 0.0002
    fut = venue_state("BTC-FUT", kind=InstrumentKind.FUTURE)
    assert fut.instrument.expiry_ms is not None
    years = (fut.instrument.expiry_ms - NOW_MS) / 1000.0 / (365.0 * 86400.0)
    tick = Ticker("deribit", "BTC-FUT", SPOT * 1.01, SPOT, NOW_MS)
    got = with_carry(fut, tick, NOW_MS).basis_annual
    assert got is not None and abs(got - 0.01 / years) < 1e-12
    # A future whose mark cannot be read keeps no basis (the cost model then counts none).
    bad = Ticker("deribit", "BTC-FUT", math.nan, SPOT, NOW_MS)
    assert with_carry(fut, bad, NOW_MS).basis_annual is None


def test_an_instrument_needing_no_initial_margin_shares_its_accounts_pool() -> None:
    # Two instruments of one account and currency: the perpetual reports free collateral and
    # a margin fraction, the future none (0). The pool is tracked for the account; the
    # future's growing levels take nothing from it (they divided by its 0 before).
    perp = with_margin(venue_state("BTC-PERPETUAL", taker_fee=0.0005), 1_000.0, 0.1)
    future = with_margin(
        venue_state("BTC-27DEC26", InstrumentKind.FUTURE, taker_fee=0.0002), 1_000.0, 0.0
    )
    legs = route_taker([perp, future], 5.0, COST, ROUTER, SPOT)
    got = {perp.instrument.name: 0.0, future.instrument.name: 0.0}
    for leg in legs:
        got[[perp, future][leg.candidate].instrument.name] += leg.delta_coin
    assert math.isclose(sum(got.values()), 5.0, abs_tol=1e-6)
    # The perpetual's growing part stays within its 1,000 USD at 10 %.
    assert got["BTC-PERPETUAL"] * 0.1 * SPOT <= 1_000.0 + 1e-6
