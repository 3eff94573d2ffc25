"""A Deribit and an OKX account in one daemon against one simulator (both APIs on one port),
real ccxt clients: hedges go to the venue that is cheaper all-in, and when that venue goes
down (its WebSocket drops and every REST call gets 503) its account leaves routing and the
other venue takes the hedges."""

from __future__ import annotations

from typing import Any

import aiohttp
from e2e_support import (
    MM_KEY,
    MM_SECRET,
    daemon_config,
    hedgerctl,
    short_dir,
    start_daemon,
    wait_for,
)

from hedgerd.paper import venue_summary
from hedgerd.sim.command import OKX_DEFAULT_PASSPHRASE, Simulator, running_simulator
from hedgerd.sim.scenario import Scenario, load_scenario
from pinned_clock import TEST_START_MS

SPEED = 10.0
EXCHANGES = ("deribit", "okx")


def _scenario() -> Scenario:
    """OKX's swap far cheaper to trade than Deribit's perpetual (0.1 bps half spread and deep
    levels against 10 bps), with no funding or basis on OKX to blur the comparison."""
    data = load_scenario(None, seed=7).model_dump()
    data["book"]["future_half_spread_bps"] = 10.0
    data["venues"]["okx"].update(
        half_spread_bps=0.1,
        level_step_bps=0.1,
        swap_size_0_contracts=2_000.0,
        funding_rate_8h=0.0,
        swap_basis_bps=0.0,
    )
    return Scenario.model_validate(data)


def _values(work: Any) -> dict[str, Any]:
    values = daemon_config(work)
    deribit = dict(values["venues"]["sim"], roles=["options", "hedge"])
    okx = {
        "exchange": "okx",
        "mode": "sim",
        "account": "mm-okx",
        "api_key": MM_KEY,
        "api_secret": MM_SECRET,
        "api_passphrase": OKX_DEFAULT_PASSPHRASE,
        "roles": ["hedge"],
        "underlyings": ["BTC"],
        "hedge_instruments": {"BTC": ["BTC-USD-SWAP"]},
        "request_timeout_s": 5.0,
        "dead_man_s": 60,
    }
    values["venues"] = {"deribit": deribit, "okx": okx}
    return values


def _deribit_perp(sim: Simulator) -> float:
    """The market maker's BTC-PERPETUAL on Deribit (USD), the simulator's truth."""
    pos = sim.engine.accounts["mm"].positions.get("BTC-PERPETUAL")
    return float(pos.size) if pos is not None else 0.0


def _okx_swap(sim: Simulator) -> float:
    """The market maker's BTC-USD-SWAP on OKX (contracts), the simulator's truth."""
    for acct in sim.okx.accounts.values():
        if acct.creds.api_key == MM_KEY:
            pos = acct.positions.get("BTC-USD-SWAP")
            return float(pos.size) if pos is not None else 0.0
    raise AssertionError("no OKX twin of the market maker")


async def _okx_fault(sim: Simulator, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/sim/admin/faults", json={"venue": "okx", **body}) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_the_cheaper_venue_hedges_and_a_venue_down_leaves_routing() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with running_simulator(
        host="127.0.0.1",
        port=0,
        scenario=_scenario(),
        speed=SPEED,
        start_ms=TEST_START_MS,
        venues=EXCHANGES,
        accounts=[(MM_KEY, MM_SECRET, OKX_DEFAULT_PASSPHRASE)],
    ) as sim:
        run = await start_daemon(sim, _values(work), SPEED, EXCHANGES)
        daemon = run.daemon
        stats = daemon.stats.per_underlying["BTC"]
        perp_start = _deribit_perp(sim)

        # The options book's delta is hedged on OKX, the cheaper venue; Deribit gets none.
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "2.0")
        assert code == 0, out
        await wait_for(lambda: abs(stats.last_delta_coin - 2.0) < 1.0, 40.0, "delta at 2 BTC")
        assert _okx_swap(sim) != 0.0
        assert _deribit_perp(sim) == perp_start
        assert stats.by_account["okx"].hedges > 0 and "deribit" not in stats.by_account
        okx_contracts = _okx_swap(sim)

        # OKX goes down: within a few evaluations its account is out of routing, and the
        # next hedge goes to Deribit; OKX's position does not move.
        await _okx_fault(sim, {"kind": "http_5xx", "params": {"status": 503}})
        await _okx_fault(sim, {"kind": "ws_drop", "params": {"every_s": 2.0}})
        await wait_for(lambda: "okx" in daemon.hedge_loop.excluded, 30.0, "okx out of routing")
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "-1.0")
        assert code == 0, out
        await wait_for(lambda: _deribit_perp(sim) != perp_start, 40.0, "a hedge on Deribit")
        assert _okx_swap(sim) == okx_contracts
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
