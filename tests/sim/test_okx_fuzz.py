"""OKX dialect: bad input gets OKX's error envelopes, never a crash. The venue's order and
cancel paths under hypothesis; the REST routes and WebSocket ops with hostile frames."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import build_scenario, running_simulator
from hedgerd.sim.okx.dialect import OkxDialect
from hedgerd.sim.okx.errors import OrderRejectedError
from hedgerd.sim.world import SimWorld

SC = build_scenario(None, seed=4, flow_rate_per_min=0)
WORLD = SimWorld.build(SC, SimClock(SC.start_ms, stepped=True), ("deribit", "okx"))
assert WORLD.okx is not None
OKX = WORLD.okx
OKX.add_account("fuzz", "fuzz", "fuzz", name="fuzz")
ACCT = OKX.accounts["fuzz"]
INST_IDS = [
    "BTC-USD-SWAP",
    "BTC-USDT-SWAP",
    "ETH-USDT",
    "BTC-USD-SWAP ",
    "",
    "NOPE",
    "btc-usd-swap",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "0", "1", "-1", "1e9", "0.0001", "nan", "inf", "abc", "true"]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
ORDERS = st.fixed_dictionaries(
    {},
    optional={
        "instId": st.one_of(st.sampled_from(INST_IDS), VALUES),
        "side": st.one_of(st.sampled_from(["buy", "sell", "BUY"]), VALUES),
        "ordType": st.one_of(
            st.sampled_from(["market", "limit", "post_only", "ioc", "fok", "optimal_limit_ioc"]),
            VALUES,
        ),
        "tdMode": st.one_of(st.sampled_from(["cross", "cash", "isolated"]), VALUES),
        "sz": VALUES,
        "px": VALUES,
        "clOrdId": VALUES,
        "tag": VALUES,
        "reduceOnly": VALUES,
        "posSide": VALUES,
        "ordId": VALUES,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=st.one_of(ORDERS, VALUES))
def test_orders_and_cancels_fail_only_with_okx_codes(req: Any) -> None:
    for op in (OKX.place, OKX.cancel):
        try:
            op(ACCT, req)
        except OrderRejectedError as err:
            assert err.s_code.isdigit() and len(err.s_code) == 5 and err.s_msg


HOSTILE_BODIES = ["", "{", "[]", "[1]", "null", '"x"', '{"instId": 5}', "[{}]" * 1, "{}" * 2]


async def test_rest_and_ws_answer_hostile_input_with_envelopes() -> None:
    async with running_simulator(
        stepped=True, venues=("deribit", "okx"), accounts=[("k", "s")], api_passphrase="p"
    ) as sim:
        dialect = sim.server.dialects["okx"]
        assert isinstance(dialect, OkxDialect)
        dialect.auth_clock = "sim"
        dialect.limiter.enabled = False
        api = dialect.rest
        async with aiohttp.ClientSession() as http:
            for (method, path), (private, _) in api.routes.items():
                for body in HOSTILE_BODIES if method == "POST" else [""]:
                    url = f"{sim.rest_url}/api/v5/{path}?instId=%00&instType=X&limit=zz"
                    async with http.request(method, url, data=body) as r:
                        reply = await r.json(content_type=None)
                    assert isinstance(reply["code"], str) and isinstance(reply["data"], list)
                    assert reply["code"] != "50026", (method, path, body, reply)
                    if private:
                        assert reply["code"] == "50103" and r.status == 401
                    del r
            async with http.get(f"{sim.rest_url}/api/v5/nope/nothing") as r:
                assert r.status == 404 and (await r.json())["code"] == "50014"
            for scope in ("public", "private", "business"):
                async with http.ws_connect(f"{sim.okx_ws_url}/{scope}") as ws:
                    frames: list[Any] = [
                        "{", "[]", "null", {"op": 5}, {"op": "subscribe"},
                        {"op": "subscribe", "args": [1, {"channel": 2}, {"channel": "books"}]},
                        {"op": "subscribe", "args": [{"channel": "books", "instId": "NOPE"}]},
                        {"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]},
                        {"op": "login", "args": []}, {"op": "login", "args": [{"apiKey": 1}]},
                        {"op": "order", "id": "1", "args": [{}]}, {"op": "nope", "args": []},
                    ]  # fmt: skip
                    for f in frames:
                        await ws.send_str(f if isinstance(f, str) else json.dumps(f))
                        reply = json.loads((await ws.receive(timeout=5)).data)
                        assert reply.get("event") == "error" or reply.get("code") not in (
                            None,
                            "0",
                        ), (f, reply)
                        assert reply.get("code") != "50026", (f, reply)
        assert dialect.counters.internal_errors == 0
