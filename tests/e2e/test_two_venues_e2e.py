"""A Deribit and an OKX account in one daemon against one simulator (both APIs on one port),
real ccxt clients: hedges go to the venue that is cheaper all-in, and when that venue goes
down (its WebSocket drops and every REST call gets 503) its account leaves routing and the
other venue takes the hedges."""

from __future__ import annotations

from e2e_support import (
    TWO_VENUES,
    deribit_position,
    hedgerctl,
    hedges_seen,
    okx_position,
    short_dir,
    start_daemon,
    two_venue_scenario,
    two_venue_simulator,
    two_venue_values,
    venue_fault,
    wait_for,
)

from hedgerd.paper import venue_summary

SPEED = 10.0


async def test_the_cheaper_venue_hedges_and_a_venue_down_leaves_routing() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with two_venue_simulator(two_venue_scenario(), SPEED) as sim:
        run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
        daemon = run.daemon
        stats = daemon.stats.per_underlying["BTC"]
        perp_start = deribit_position(sim)

        # The options book's delta is hedged on OKX, the cheaper venue; Deribit gets none.
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "2.0")
        assert code == 0, out
        await wait_for(lambda: abs(stats.last_delta_coin - 2.0) < 1.0, 40.0, "delta at 2 BTC")
        # The delta counts the order in flight; the hedge counts once its execution is done.
        await wait_for(lambda: hedges_seen(daemon, sim), 20.0, "the hedge done and seen")
        assert okx_position(sim) != 0.0
        assert deribit_position(sim) == perp_start
        assert stats.by_account["okx"].hedges > 0 and "deribit" not in stats.by_account
        okx_contracts = okx_position(sim)

        # OKX goes down: within a few evaluations its account is out of routing, and the
        # next hedge goes to Deribit; OKX's position does not move.
        await venue_fault(sim, "okx", {"kind": "http_5xx", "params": {"status": 503}})
        await venue_fault(sim, "okx", {"kind": "ws_drop", "params": {"every_s": 2.0}})
        await wait_for(lambda: "okx" in daemon.hedge_loop.excluded, 30.0, "okx out of routing")
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "-1.0")
        assert code == 0, out
        await wait_for(lambda: deribit_position(sim) != perp_start, 40.0, "a hedge on Deribit")
        # Its execution done (the hedge counts when its decision is), the fills in the book.
        await wait_for(lambda: hedges_seen(daemon, sim), 20.0, "the hedge done and seen")
        assert okx_position(sim) == okx_contracts
        assert stats.by_account["deribit"].hedges > 0
        assert daemon.parts.states is not None
        assert daemon.parts.states.portfolio.state.value == "active"  # the desk keeps going

        # The paper summary's per-venue section counts the same (hedges, orders, cost).
        venues = venue_summary(daemon)
        assert set(venues) == {"deribit", "okx"}
        for name in venues:
            v = venues[name]
            assert v["hedges"] > 0 and v["orders"] >= v["hedges"] and v["hedge_cost_usd"] > 0
        assert venues["okx"]["exchange"] == "okx" and venues["deribit"]["state"] == "ACTIVE"
        await run.shutdown()
