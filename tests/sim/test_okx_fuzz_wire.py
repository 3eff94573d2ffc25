"""Hypothesis over the OKX wire: every REST route with generated query parameters and JSON
bodies, signed by a real account (so the private handlers run, not just the auth check), and
WebSocket ops with generated args after a login. Every answer is an OKX envelope (REST: `code`
a string, `data` a list; WebSocket: an `event` error or ack, or an op reply with `code`), the
simulator never answers 50026 (its internal-error code) and counts no internal error."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.okx.auth import sign
from hedgerd.sim.okx.dialect import OkxDialect

KEY, SECRET, PASSPHRASE = "fz-key", "fz-secret", "fzPass1"
T = TypeVar("T")
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "1", "-1", "0.01", "BTC-USD-SWAP", "BTC-USDT-SWAP", "BTC-USDT",
                     "SWAP", "OPTION", "BTC-USD", "buy", "market", "limit", "cross", "nan"]),
    st.text(max_size=12),
)  # fmt: skip
QUERY_KEYS = ["instId", "instType", "uly", "instFamily", "ccy", "sz", "ordId", "clOrdId",
              "limit", "after", "before", "ordType", "state"]  # fmt: skip
BODY_KEYS = ["instId", "side", "ordType", "sz", "px", "tdMode", "clOrdId", "ordId",
             "reduceOnly", "timeOut", "posMode", "tgtCcy", "tag"]  # fmt: skip
QUERIES = st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=16), max_size=4)
ITEMS = st.dictionaries(st.sampled_from(BODY_KEYS), SCALARS, max_size=7)
BODIES = st.one_of(ITEMS, st.lists(ITEMS, max_size=3), SCALARS)
WS_OPS = st.sampled_from(
    ["subscribe", "unsubscribe", "order", "batch-orders", "cancel-order",
     "batch-cancel-orders", "amend-order", "login", "nope"]
)  # fmt: skip
WS_ARGS = st.one_of(
    SCALARS,
    st.lists(st.one_of(ITEMS, SCALARS, st.dictionaries(
        st.sampled_from(["channel", "instId", "instType", "uly"]),
        st.one_of(SCALARS, st.sampled_from(["books", "books5", "tickers", "orders",
                                            "positions", "account"])),
        max_size=3,
    )), max_size=3),
)  # fmt: skip


class _Wire:
    """A stepped simulator serving Deribit and OKX, run on its own event loop in a thread so
    that hypothesis (synchronous) can drive it example by example."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._cm = running_simulator(
            stepped=True, venues=("deribit", "okx"), accounts=[(KEY, SECRET)],
            api_passphrase=PASSPHRASE,
        )  # fmt: skip
        self.sim: Simulator = self.run(self._cm.__aenter__())
        self.dialect = self.sim.server.dialects["okx"]
        assert isinstance(self.dialect, OkxDialect)
        self.dialect.auth_clock = "sim"
        self.dialect.limiter.enabled = False
        self.http: aiohttp.ClientSession = self.run(self._session())
        self.ws: aiohttp.ClientWebSocketResponse = self.run(self._login())

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def _ts(self) -> str:
        now = datetime.fromtimestamp(self.sim.now_ms() / 1000, tz=UTC)
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

    async def _login(self) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(self.sim.okx_ws_url + "/private")
        ts = str(self.sim.now_ms() // 1000)
        arg = {"apiKey": KEY, "passphrase": PASSPHRASE, "timestamp": ts,
               "sign": sign(SECRET, ts + "GET" + "/users/self/verify")}  # fmt: skip
        await ws.send_str(json.dumps({"op": "login", "args": [arg]}))
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply["event"] == "login" and reply["code"] == "0", reply
        return ws

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def rest(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        qs = ("?" + urlencode(query)) if query else ""
        # sign the path exactly as it goes out (yarl may requote the query)
        url = URL(f"{self.sim.rest_url}/api/v5/{path}{qs}")
        req_path = url.raw_path_qs
        text = json.dumps(body) if method == "POST" else ""
        ts = self._ts()
        headers = {
            "OK-ACCESS-KEY": KEY, "OK-ACCESS-PASSPHRASE": PASSPHRASE, "OK-ACCESS-TIMESTAMP": ts,
            "OK-ACCESS-SIGN": sign(SECRET, ts + method + req_path + text),
            "Content-Type": "application/json",
        }  # fmt: skip
        async with self.http.request(method, url, data=text or None, headers=headers) as r:
            return await r.json(content_type=None)

    async def ws_op(self, frame: dict[str, Any]) -> list[Any]:
        """Send `frame`, then a text ping; every reply before the pong."""
        await self.ws.send_str(json.dumps(frame))
        await self.ws.send_str("ping")
        replies: list[Any] = []
        while True:
            msg = await self.ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if msg.data == "pong":
                return replies
            replies.append(json.loads(msg.data))

    def close(self) -> None:
        async def _close() -> None:
            await self.ws.close()
            await self.http.close()
            await self._cm.__aexit__(None, None, None)

        self.run(_close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def wire() -> Iterator[_Wire]:
    w = _Wire()
    try:
        yield w
    finally:
        w.close()


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), query=QUERIES, body=BODIES)  # fmt: skip
def test_signed_rest_calls_answer_with_okx_envelopes(
    wire: _Wire, data: st.DataObject, query: dict[str, str], body: Any
) -> None:
    method, path = data.draw(st.sampled_from(sorted(wire.dialect.rest.routes)))
    reply = wire.run(wire.rest(method, path, query, body))
    assert isinstance(reply, dict), reply
    assert isinstance(reply["code"], str) and reply["code"].isdigit(), reply
    assert isinstance(reply["data"], list) and isinstance(reply["msg"], str), reply
    assert reply["code"] != "50026", (method, path, query, body, reply)
    assert reply["code"] not in ("50113", "50102", "50103"), reply  # signed, on time
    assert wire.dialect.counters.internal_errors == 0


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(op=WS_OPS, args=WS_ARGS, req_id=st.one_of(st.none(), st.text(max_size=8), SCALARS))
def test_ws_ops_answer_with_okx_envelopes(wire: _Wire, op: str, args: Any, req_id: Any) -> None:
    frame: dict[str, Any] = {"op": op, "args": args}
    if req_id is not None:
        frame["id"] = req_id
    for reply in wire.run(wire.ws_op(frame)):
        assert isinstance(reply, dict), reply
        assert "event" in reply or "code" in reply or "arg" in reply, reply
        if "code" in reply:
            assert isinstance(reply["code"], str) and reply["code"] != "50026", (frame, reply)
        if reply.get("event") == "error":
            assert reply["code"].isdigit() and reply["msg"], reply
    assert wire.dialect.counters.internal_errors == 0
