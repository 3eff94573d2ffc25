"""Per-venue safety in one daemon with a Deribit and an OKX account against one simulator, real
ccxt clients (issue 17's "Must show"): a venue that fails (its WebSockets dropped and every
REST call answered 503 for 60 simulated seconds) is out of routing within two evaluations,
hedges go to the other venue and nothing is sent twice, and when it recovers routing takes it
back by itself (with the normal 5 s stale-data limit: the account's own stale-data and
disconnection HALTs clear once its link has been healthy for `risk.link_recover_after_s`);
an operator's HALT of one venue leaves the other trading; a REDUCE_ONLY venue gets only
hedges that shrink its position, the growing ones go to the other venue.

OKX's swap is the cheaper venue (`two_venue_scenario`), so without a failure or an operator's
state every hedge would go there: a hedge on Deribit is the router's answer to the state."""

from __future__ import annotations

import math
from pathlib import Path

from e2e_support import (
    TWO_VENUES,
    Decisions,
    Running,
    duplicate_orders,
    hedge_and_see,
    hedgerctl,
    okx_position,
    settle_two_venues,
    short_dir,
    sim_admin,
    start_daemon,
    status,
    two_venue_scenario,
    two_venue_simulator,
    two_venue_values,
    wait_for,
)

from hedgerd.risk.trading_state import ReasonCode, TradingState, TradingStateSnapshot

SPEED = 20.0
#: The failure's length, simulated seconds.
OUTAGE_S = 60.0
#: The failure's test runs slower: the kill switches judge in wall seconds, and its 60
#: simulated seconds must outlast the normal 5 s stale-data limit (10 wall seconds here), so
#: that OKX's own stale-data HALT is what has to clear by itself.
OUTAGE_SPEED = 6.0
#: OKX's reconnect backoff cap and the healthy-link time before its HALTs clear (wall
#: seconds; defaults 15 and 10): with the defaults, the backoff grown over the outage's
#: failed reconnects plus 10 s of healthy link made the recovery the test's longest step
#: (13 s of its 23 s wait). Still longer than the 2 s between the outage's drops.
RECONNECT_MAX_S = 2.0
LINK_RECOVER_AFTER_S = 4.0


async def _hedge(run: Running, work: Path, coin: float, moved: str, still: str) -> None:
    await hedge_and_see(run, work / "ctl.sock", coin, moved, still)


async def _no_duplicates(run: Running, decisions: Decisions) -> None:
    """Nothing sent twice: every journalled order of the recorded decisions has its own
    client id, and the simulator received and accepted each id at most once (both venues)."""
    assert run.daemon.journal is not None
    labels = [
        o.label
        for d in decisions.trades
        for o in await run.daemon.journal.orders_for_decision(d.decision_id)
    ]
    assert labels and len(labels) == len(set(labels)), labels
    assert duplicate_orders(run.sim) == set()


async def test_a_failed_venue_leaves_routing_within_two_evaluations_and_comes_back() -> None:
    work = short_dir()
    async with two_venue_simulator(two_venue_scenario(seed=7, still=True), OUTAGE_SPEED) as sim:
        values = two_venue_values(
            work, extra={"risk": {"link_recover_after_s": LINK_RECOVER_AFTER_S}}
        )
        values["venues"]["okx"]["reconnect_max_s"] = RECONNECT_MAX_S
        run = await start_daemon(sim, values, OUTAGE_SPEED, TWO_VENUES)
        loop = run.daemon.hedge_loop
        await settle_two_venues(run)
        decisions = Decisions()
        loop.observer = decisions
        states = run.daemon.parts.states
        assert states is not None
        okx_states: list[TradingStateSnapshot] = []
        states.machine("okx").add_listener(okx_states.append)

        # OKX fails: every REST call 503, every WebSocket dropped (and again every 2 s).
        # One request: the failure starts whole.
        outage = {"venue": "okx", "after_s": 0.0, "duration_s": OUTAGE_S}
        start = loop.evaluations_started
        over_ms = sim.engine.now_ms() + OUTAGE_S * 1000.0
        await sim_admin(
            sim,
            "faults",
            [
                {**outage, "kind": "http_5xx", "params": {"status": 503}},
                {**outage, "kind": "ws_drop", "params": {"every_s": 2.0}},
            ],
        )
        await wait_for(lambda: "okx" in loop.excluded, 10.0, "okx out of routing")
        assert loop.excluded_at["okx"] - start <= 2, (start, loop.excluded_at, loop.excluded)

        # The hedges go to Deribit meanwhile; OKX's position does not move.
        await _hedge(run, work, 1.2, "deribit", "okx")
        assert decisions.trades and all(
            decisions.venues_of(d) == {"deribit"} for d in decisions.trades
        )

        # OKX recovers: routing takes it back, and the next hedge goes there (cheaper).
        # (Between two drops the WebSocket reconnects: wait for the outage's end.)
        okx = run.daemon.accounts["okx"]

        def recovered() -> bool:
            over = sim.engine.now_ms() > over_ms and not okx.disconnected()
            return over and not okx.orders_blocked() and "okx" not in loop.excluded

        await wait_for(recovered, 30.0, "okx back in routing after the outage")
        # OKX's own stale-data switch HALTED it during the outage (5 s wall limit); that HALT
        # cleared by itself once the link was healthy again, with no operator.
        halts = [s for s in okx_states if s.state is TradingState.HALTED]
        assert any(ReasonCode.STALE_DATA in s.reason_codes for s in halts), okx_states
        assert states.machine("okx").state is TradingState.ACTIVE, states.machine("okx").reasons
        await _hedge(run, work, 1.2, "okx", "deribit")
        await _no_duplicates(run, decisions)
        assert run.daemon.parts.states is not None
        assert run.daemon.parts.states.portfolio.state is TradingState.ACTIVE
        assert await run.shutdown() == 0


async def test_halt_and_reduce_only_on_one_venue_leave_the_other_trading() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with two_venue_simulator(two_venue_scenario(seed=5, still=True), SPEED) as sim:
        run = await start_daemon(sim, two_venue_values(work), SPEED, TWO_VENUES)
        assert run.daemon.parts.states is not None
        states = run.daemon.parts.states
        await settle_two_venues(run)
        decisions = Decisions()
        run.daemon.hedge_loop.observer = decisions

        # HALT OKX: the next hedge goes to Deribit, OKX stays as it is.
        code, out = await hedgerctl(sock, "halt", "--venue", "okx", "--reason", "drill")
        assert code == 0, out
        await _hedge(run, work, 1.0, "deribit", "okx")
        assert run.daemon.hedge_loop.excluded.get("okx") == "halted"
        assert states.portfolio.state is TradingState.ACTIVE

        # OKX resumed, then REDUCE_ONLY: it holds a position (the start's hedge went there,
        # the cheaper venue); a hedge that would grow it goes to Deribit instead ...
        code, out = await hedgerctl(sock, "resume", "--venue", "okx")
        assert code == 0, out
        code, out = await hedgerctl(sock, "reduce-only", "--venue", "okx")
        assert code == 0, out
        st = await status(sock)
        assert st["accounts"]["okx"]["state"] == "REDUCE_ONLY" and st["state"] == "ACTIVE"
        held = okx_position(sim)
        assert held != 0.0, "the start's hedge went to OKX"
        side = math.copysign(1.0, held)
        n = len(decisions.trades)
        await _hedge(run, work, side * 1.0, "deribit", "okx")

        # ... and one that shrinks it goes to OKX (cheaper), as reduce-only orders.
        shrink_coin = min(1.0, 0.5 * abs(held) * 100.0 / run.daemon.hedge_loop.index_price("BTC"))
        await _hedge(run, work, -side * shrink_coin, "okx", "deribit")
        assert 0.0 < abs(okx_position(sim)) < abs(held)
        assert math.copysign(1.0, okx_position(sim)) == side  # reduced, never flipped
        assert run.daemon.journal is not None
        okx_orders = [
            o
            for d in decisions.trades[n:]
            for o in await run.daemon.journal.orders_for_decision(d.decision_id)
            if o.venue == "okx"
        ]
        assert okx_orders and all(o.reduce_only for o in okx_orders), okx_orders
        assert states.machine("okx").state is TradingState.REDUCE_ONLY
        assert states.portfolio.state is TradingState.ACTIVE
        await _no_duplicates(run, decisions)
        assert await run.shutdown() == 0
