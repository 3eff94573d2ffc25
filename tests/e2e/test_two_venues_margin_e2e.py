"""No free margin on one venue, in one daemon with a Deribit and an OKX account against one
simulator, real ccxt clients (issue 17's "Must show": an account with no free margin gets no
position-growing hedge; a reducing one is still allowed there, and the other venue takes the
growing ones).

The venue raises the starved account's initial margin (`/sim/admin/accounts/margin`): its free
margin (OKX `availEq`, Deribit `available_funds`) goes below zero while its maintenance margin
stays, so no margin switch trips and the account stays ACTIVE: what keeps growing hedges away
is routing's reading of the venue's own free margin, before the venue has to refuse one (twice
over: `portfolio.routing.short_of_funds` limits the account to reducing hedges, and the
cross-venue router's margin headroom leaves it none; with both disabled this test fails on
the growing order OKX receives). The starved venue is the cheaper one each time, so a hedge
on the other venue is the router's answer to the margin, and the truth of "no growing order
reached it" is the simulator's own count of the orders it received, not the journal."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from e2e_support import (
    MM_KEY,
    TWO_VENUES,
    Running,
    deribit_position,
    duplicate_orders,
    hedge_and_see,
    okx_position,
    settle_two_venues,
    short_dir,
    sim_admin,
    start_daemon,
    two_venue_scenario,
    two_venue_simulator,
    two_venue_values,
    wait_for,
)

from hedgerd.risk.trading_state import TradingState
from hedgerd.sim.command import Simulator

SPEED = 20.0
#: Far more initial margin than either account holds (coin): its free margin goes negative.
STARVE_BTC = 1_000.0


def _okx_account_id(sim: Simulator) -> str:
    (acct,) = [a for a in sim.okx.accounts.values() if a.creds.api_key == MM_KEY]
    return str(acct.account_id)


def _received(sim: Simulator, venue: str) -> set[str]:
    """The client ids of every order request the simulator received on `venue`, counted on
    arrival, before any check (a cancel by client id counts under its order's id: a new
    order is a new id)."""
    if venue == "okx":
        return set(sim.server.dialects["okx"].counters.received_by_cl_ord_id)
    return set(sim.server.counters.orders_received)


def _directions(sim: Simulator, venue: str, labels: set[str]) -> list[str]:
    """The side of each of `labels`' orders as the simulator booked it ("buy"/"sell");
    "refused" for one it refused before booking it (funds, for one)."""
    if venue == "okx":
        by_label = {o.cl_ord_id: o.direction for o in sim.okx.orders.values()}
    else:
        by_label = {o.label: o.direction for o in sim.engine.orders.values()}
    return [by_label.get(label, "refused") for label in labels]


async def _starve(run: Running, venue: str) -> None:
    """The venue raises `venue`'s BTC initial margin; wait until the daemon's margin check
    reads no free BTC collateral there."""
    sim = run.sim
    account = _okx_account_id(sim) if venue == "okx" else "mm"
    body = {"venue": venue, "account": account, "currency": "BTC", "initial_margin_add": STARVE_BTC}
    answer = await sim_admin(sim, "accounts/margin", body)
    assert answer["available"] < 0.0, answer
    checks = run.daemon.accounts[venue].checks
    await wait_for(
        lambda: checks.available.get("BTC", math.nan) <= 0.0, 20.0, f"{venue}'s margin check"
    )


async def _starved_venue_gets_only_reducing_hedges(
    run: Running, work: Path, starved: str, other: str, position: Callable[[], float]
) -> None:
    """`starved` (the cheaper venue, holding the start's hedge) has no free margin: a hedge
    that would grow its position goes to `other` and no order at all reaches `starved`; one
    that shrinks it goes to `starved`, only reducing orders, never past flat."""
    sim, sock = run.sim, work / "ctl.sock"
    states = run.daemon.parts.states
    assert states is not None
    held = position()
    assert held != 0.0, f"the start's hedge went to {starved}, the cheaper venue"
    side = math.copysign(1.0, held)
    await _starve(run, starved)

    # A growing hedge: the other venue takes it; the starved one receives nothing.
    received = _received(sim, starved)
    await hedge_and_see(run, sock, side * 1.0, other, starved)
    assert _received(sim, starved) == received, _received(sim, starved) - received
    assert position() == held

    # A shrinking hedge (half the position at most): the starved venue, still the cheaper,
    # unless the start's hedge was split and the other venue's share is as cheap to reduce
    # (seen at one pinned start): then only the starved venue's orders are judged.
    index = run.daemon.hedge_loop.index_price("BTC")
    held_coin = abs(held) * (100.0 if starved == "okx" else 1.0) / index
    other_held = okx_position(sim) if other == "okx" else deribit_position(sim)
    split = other_held * held > 0.0
    await hedge_and_see(
        run,
        sock,
        -side * min(1.0, 0.5 * held_coin),
        None if split else starved,
        None if split else other,
    )
    new = _received(sim, starved) - received
    reducing = "sell" if held > 0 else "buy"
    assert set(_directions(sim, starved, new)) <= {reducing}, new  # only reducing orders
    if not split:
        assert new and 0.0 < abs(position()) < abs(held)
    assert abs(position()) <= abs(held)
    assert position() == 0.0 or math.copysign(1.0, position()) == side  # never flipped

    # Kept out before the venue refused anything: no funds trip, no state change, anywhere.
    assert states.machine(starved).state is TradingState.ACTIVE, states.machine(starved).reasons
    assert states.machine(other).state is TradingState.ACTIVE
    assert states.portfolio.state is TradingState.ACTIVE
    assert duplicate_orders(sim) == set()
    assert await run.shutdown() == 0


async def test_okx_without_free_margin_gets_only_reducing_hedges_deribit_the_growing() -> None:
    """OKX (the cheaper venue) has no free margin: OKX `availEq` below zero in BTC, and the
    account's own (USD) too."""
    work = short_dir()
    async with two_venue_simulator(two_venue_scenario(seed=5, still=True), SPEED) as sim:
        run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
        await settle_two_venues(run)
        await _starved_venue_gets_only_reducing_hedges(
            run, work, "okx", "deribit", lambda: okx_position(sim)
        )


async def test_deribit_without_free_margin_gets_only_reducing_hedges_okx_the_growing() -> None:
    """The mirror: Deribit made the cheaper venue (OKX's spread widened), then its
    `available_funds` below zero; OKX takes the growing hedge."""
    work = short_dir()
    scenario = two_venue_scenario(seed=5, still=True, half_spread_bps=12.0)
    async with two_venue_simulator(scenario, SPEED) as sim:
        run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
        await settle_two_venues(run)
        await _starved_venue_gets_only_reducing_hedges(
            run, work, "deribit", "okx", lambda: deribit_position(sim)
        )
