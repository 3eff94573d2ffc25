"""Cross-venue routing in one daemon with a Deribit and an OKX account against one simulator,
real ccxt clients (issue 17's "Must show"): depth on the cheaper venue too thin for the hedge
splits it over both accounts in one decision; a funding change that makes the cheaper venue
dearer sends the next hedge to the other one.

OKX's swap is the cheaper venue here (`two_venue_scenario`: 0.1 bps half spread and deep
levels against Deribit's 10 bps, no funding or basis on either). Each step is driven by the
operator's target (the control API's `set hedging.BTC.target_coin`) from a settled book, so the side
and size of the hedge are known; the simulator's positions are the truth.
"""

from __future__ import annotations

from e2e_support import (
    OKX_SWAP,
    TWO_VENUES,
    Decisions,
    Running,
    deribit_position,
    filled_by_venue,
    hedges_seen,
    move_target,
    okx_position,
    settle_two_venues,
    short_dir,
    sim_admin,
    start_daemon,
    two_venue_scenario,
    two_venue_simulator,
    two_venue_values,
    venue_fault,
    wait_for,
)

from hedgerd.model import AmountUnit

SPEED = 20.0
#: USD per OKX BTC-USD-SWAP contract.
OKX_CONTRACT_USD = 100.0


async def _settled(run: Running) -> Decisions:
    """Wait for the first hedges to be done and seen (`settle_two_venues`, whichever venue
    they went to); then record every trading decision from here on."""
    await settle_two_venues(run)
    decisions = Decisions()
    run.daemon.hedge_loop.observer = decisions
    return decisions


async def _idle(run: Running) -> None:
    """No hedge execution running, and its fills in the book as in the simulator."""
    await wait_for(lambda: hedges_seen(run.daemon, run.sim), 20.0, "the hedges done and seen")


async def test_depth_too_thin_on_the_cheaper_venue_splits_the_hedge_over_both() -> None:
    work = short_dir()
    async with two_venue_simulator(two_venue_scenario(seed=7, still=True), SPEED) as sim:
        run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
        decisions = await _settled(run)
        # OKX's swap book holds 60 contracts (6,000 USD, about 0.07 BTC) a side: the cheaper
        # venue cannot take a 2 BTC hedge alone.
        cap_contracts = 60.0
        await venue_fault(
            sim,
            "okx",
            {
                "kind": "thin_depth",
                "params": {"instruments": [OKX_SWAP], "depth_amount": cap_contracts},
            },
        )
        perp0, swap0 = deribit_position(sim), okx_position(sim)
        await move_target(run, work / "ctl.sock", 2.0)
        await wait_for(lambda: bool(decisions.trades), 20.0, "a hedge decision")
        first = decisions.trades[0]
        # One decision, legs on both accounts: OKX's thin book taken whole, the rest on Deribit.
        assert decisions.venues_of(first) == {"deribit", "okx"}, first.legs
        legs = {leg.venue: leg for leg in first.legs}
        okx_leg, deribit_leg = legs["okx"], legs["deribit"]
        assert okx_leg.amount_unit is AmountUnit.USD and deribit_leg.amount_unit is AmountUnit.USD
        # OKX's leg is what its thin book holds (60 contracts at most: less where the start's
        # hedge took some that has not refilled yet).
        assert 0 < okx_leg.amount <= cap_contracts * OKX_CONTRACT_USD
        assert deribit_leg.amount > okx_leg.amount  # the larger part where the depth is
        assert all(leg.delta_coin > 0 for leg in first.legs)
        # The legs add up to the hedge the decision wanted (to lot rounding, 1e-3 coin).
        traded = sum(leg.delta_coin for leg in first.legs)
        assert abs(traded - first.wanted_coin) < 1e-3, (traded, first.wanted_coin)
        assert abs(first.delta_after_coin - first.net_delta_coin - traded) < 1e-9
        # Both legs filled whole (the journal), and the simulator's positions moved by what
        # the hedges filled (a later decision may follow the market: counted too).
        await wait_for(
            lambda: okx_position(sim) != swap0 and deribit_position(sim) != perp0,
            20.0,
            "both legs filled",
        )
        await _idle(run)
        assert await filled_by_venue(run.daemon, [first]) == {
            "okx": okx_leg.amount,
            "deribit": deribit_leg.amount,
        }
        filled = await filled_by_venue(run.daemon, decisions.trades)
        assert (okx_position(sim) - swap0) * OKX_CONTRACT_USD == filled["okx"]
        assert deribit_position(sim) - perp0 == filled["deribit"]
        assert await run.shutdown() == 0


async def test_a_funding_change_makes_the_cheaper_venue_dearer_and_flips_the_choice() -> None:
    work = short_dir()
    async with two_venue_simulator(two_venue_scenario(seed=11, still=True), SPEED) as sim:
        run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
        decisions = await _settled(run)

        # No funding anywhere: the buy goes to OKX, the cheaper book; Deribit gets none.
        perp0, swap0 = deribit_position(sim), okx_position(sim)
        await move_target(run, work / "ctl.sock", 1.5)
        await wait_for(lambda: okx_position(sim) > swap0, 20.0, "a hedge on OKX")
        await _idle(run)
        assert deribit_position(sim) == perp0
        assert {v for d in decisions.trades for v in decisions.venues_of(d)} == {"okx"}

        # OKX's longs now pay 0.3 % per 8 h: a day's carry (0.9 %) dwarfs Deribit's wider
        # spread, so the next buy goes to Deribit and OKX's position stays.
        carry = await sim_admin(sim, "venues/okx/carry", {"funding_rate_8h": 0.003})
        assert carry["carry"]["funding_rate_8h"] == 0.003
        n = len(decisions.trades)
        perp1, swap1 = deribit_position(sim), okx_position(sim)
        await move_target(run, work / "ctl.sock", 1.5)
        await wait_for(lambda: deribit_position(sim) > perp1, 20.0, "a hedge on Deribit")
        await _idle(run)
        assert okx_position(sim) == swap1
        after = decisions.trades[n:]
        assert after and all(decisions.venues_of(d) == {"deribit"} for d in after)
        assert await run.shutdown() == 0
