"""The server with the real engine: scheduled faults from the scenario, seeded fault
decisions, the command line and the admin reset."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from hedgerd.sim.command import build_scenario, main, running_simulator
from hedgerd.sim.scenario import FaultSpec, Scenario


def _small(**kw: object) -> Scenario:
    """The default market with a short option chain and no option flow (fast to build)."""
    base = Scenario().model_dump()
    for u in base["underlyings"]:
        u["chain"].update(dailies=1, weeklies=1, monthlies=1, quarterlies=1, strikes_each_side=2)
    base["flow"]["enabled"] = False
    base.update(kw)
    return Scenario.model_validate(base)


async def test_scenario_faults_start_and_end_in_simulated_time() -> None:
    faults = [
        FaultSpec(
            after_s=10,
            duration_s=20,
            kind="http_5xx",
            params={"status": 502, "methods": ["public/*"]},
        ),
        FaultSpec(after_s=5, kind="price_gap", params={"currency": "BTC", "pct": -10.0}),
    ]
    async with (
        running_simulator(scenario=_small(faults=faults), stepped=True) as sim,
        aiohttp.ClientSession() as http,
    ):
        # the engine applies scheduled price gaps itself; the server must not apply them again
        assert [f["kind"] for f in sim.faults.to_json()] == ["http_5xx"]
        url = f"{sim.rest_url}/api/v2/public/get_index_price?index_name=btc_usd"
        async with http.get(url) as r:
            assert r.status == 200
            before = (await r.json())["result"]["index_price"]
        sim.advance(10_000)
        async with http.get(url) as r:
            assert r.status == 502
        sim.advance(20_000)
        async with http.get(url) as r:
            assert r.status == 200
            after = (await r.json())["result"]["index_price"]
        assert after / before == pytest.approx(0.9, abs=0.02)  # one gap of -10 %, not two
        assert sim.state()["faults"] == []


async def fault_pattern(seed: int) -> list[int]:
    async with (
        running_simulator(scenario=_small(seed=seed), stepped=True, rate_limits=False) as sim,
        aiohttp.ClientSession() as http,
    ):
        sim.faults.add(
            {"kind": "http_5xx", "probability": 0.5, "methods": ["public/get_time"]}, sim.now_ms()
        )
        statuses = []
        for _ in range(24):
            async with http.get(f"{sim.rest_url}/api/v2/public/get_time") as r:
                statuses.append(r.status)
        return statuses


async def test_fault_decisions_follow_the_seed() -> None:
    a, b, c = await fault_pattern(3), await fault_pattern(3), await fault_pattern(4)
    assert a == b and a != c
    assert 0 < a.count(503) < len(a)


async def test_reset_starts_over_from_the_scenario() -> None:
    async with (
        running_simulator(scenario=_small(), stepped=True, accounts=[("k", "s")]) as sim,
        aiohttp.ClientSession() as http,
    ):
        t0 = sim.now_ms()
        sim.advance(60_000)
        async with http.post(f"{sim.rest_url}/sim/admin/reset") as r:
            assert r.status == 200 and (await r.json())["now_ms"] == t0
        assert sim.now_ms() == t0
        async with http.get(f"{sim.rest_url}/api/v2/public/get_time") as r:
            assert (await r.json())["result"] == t0


def test_build_scenario_adds_client_accounts_once() -> None:
    sc = build_scenario(_small(), seed=9, accounts=[("k1", "s1"), ("k1", "s1"), ("k2", "s2")])
    assert sc.seed == 9
    keys = [a.api_key for a in sc.accounts]
    assert keys.count("k1") == 1 and "k2" in keys
    client = next(a for a in sc.accounts if a.api_key == "k1")
    assert (
        client.balances == {"BTC": 10.0, "ETH": 100.0, "USDC": 100_000.0} and not client.positions
    )


def test_start_now_follows_the_wall_clock() -> None:
    before = int(time.time()) * 1000
    sc = build_scenario(_small(), start_ms="now")
    assert before <= sc.start_ms <= int(time.time()) * 1000
    assert build_scenario(_small(), start_ms=1_800_000_000_000).start_ms == 1_800_000_000_000


def test_command_line_refuses_a_public_address_and_half_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert main(["--port", "0", "--api-key", "only-the-key"]) == 2


async def test_user_changes_quote_and_instrument_channels_with_the_engine() -> None:
    async with (
        running_simulator(scenario=_small(), stepped=True, accounts=[("k", "s")]) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.ws_url) as ws,
    ):
        inbox: list[dict[str, Any]] = []

        async def call(rid: int, method: str, **params: Any) -> dict[str, Any]:
            await ws.send_json({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            while True:
                msg = json.loads(await ws.receive_str(timeout=5))
                if msg.get("id") == rid:
                    return msg
                inbox.append(msg)

        async def note(channel: str) -> Any:
            while True:
                for i, msg in enumerate(inbox):
                    if msg.get("params", {}).get("channel") == channel:
                        del inbox[i]
                        return msg["params"]["data"]
                inbox.append(json.loads(await ws.receive_str(timeout=5)))

        auth = await call(
            1, "public/auth", grant_type="client_credentials", client_id="k", client_secret="s"
        )
        assert "result" in auth
        chans = [
            "user.changes.any.BTC.raw",
            "quote.BTC-PERPETUAL",
            "user.orders.BTC-PERPETUAL.100ms",
        ]
        assert (await call(2, "private/subscribe", channels=chans))["result"] == chans
        quote = await note("quote.BTC-PERPETUAL")
        assert set(quote) == {
            "timestamp", "instrument_name", "best_bid_price", "best_bid_amount",
            "best_ask_price", "best_ask_amount",
        }  # fmt: skip
        res = await call(
            3, "private/buy", instrument_name="BTC-PERPETUAL", amount=20, type="market"
        )
        oid = res["result"]["order"]["order_id"]
        changes = await note("user.changes.any.BTC.raw")
        assert changes["instrument_name"] == "BTC-PERPETUAL"
        assert changes["orders"][0]["order_id"] == oid and changes["trades"][0]["order_id"] == oid
        assert changes["positions"][0]["size"] == 20
        orders = await note("user.orders.BTC-PERPETUAL.100ms")
        assert isinstance(orders, list) and orders[-1]["order_id"] == oid
