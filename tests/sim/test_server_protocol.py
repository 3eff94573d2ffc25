"""The network server against a tiny fake engine: envelopes, auth, subscriptions, heartbeat,
cancel-on-disconnect, rate limits, faults and the admin API (the engine's own behaviour is
tested elsewhere; here only what the server adds)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import Simulator, is_loopback_host, running_simulator
from hedgerd.sim.deribit.auth import sign_client_signature, sign_rest
from hedgerd.sim.deribit.ratelimit import BucketSpec, RateLimitConfig
from hedgerd.sim.protocol import Account, DeribitError, EventSink

KEY, SECRET = "testkey", "testsecret"


class FakeEngine:
    """One instrument, one account; publishes a book change on every advance."""

    def __init__(self) -> None:
        self.clock = SimClock(1_767_571_200_000, stepped=True)
        self.sink: EventSink | None = None
        self.acct = Account("acct1", KEY, SECRET)
        self.orders: dict[str, dict[str, Any]] = {}
        self.change_id = 100
        self.last_ms = self.clock.now_ms()
        self.gaps: list[tuple[str, float]] = []
        self.calls: list[str] = []

    def set_event_sink(self, sink: EventSink) -> None:
        self.sink = sink

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def account_for_key(self, api_key: str) -> Account | None:
        return self.acct if api_key == KEY else None

    def price_gap(self, currency: str, pct: float) -> None:
        self.gaps.append((currency, pct))

    def advance_to(self, now_ms: int) -> None:
        if now_ms <= self.last_ms:
            return
        self.last_ms = now_ms
        assert self.sink is not None
        if self.sink.wants("book.BTC-PERPETUAL"):
            self.change_id += 1
            self.sink.publish(
                "book.BTC-PERPETUAL",
                {
                    "type": "change",
                    "timestamp": now_ms,
                    "instrument_name": "BTC-PERPETUAL",
                    "prev_change_id": self.change_id - 1,
                    "change_id": self.change_id,
                    "bids": [["change", 99.5, float(self.change_id)]],
                    "asks": [],
                },
            )

    def cancel_all_for_account(self, account_id: str) -> int:
        n = 0
        for o in self.orders.values():
            if o["order_state"] == "open":
                o["order_state"] = "cancelled"
                n += 1
        return n

    def dispatch(self, method: str, params: Mapping[str, Any], account: Account | None) -> Any:
        self.calls.append(method)
        if method == "public/get_instrument":
            if params.get("instrument_name") != "BTC-PERPETUAL":
                raise DeribitError(10020, "invalid_instrument_name")
            return {"instrument_name": "BTC-PERPETUAL"}
        if method == "public/ticker":
            return {"instrument_name": "BTC-PERPETUAL", "best_bid_price": 99.5, "timestamp": 1}
        if method == "public/get_order_book":
            return {
                "timestamp": self.now_ms(),
                "change_id": self.change_id,
                "bids": [[99.5, 10.0]],
                "asks": [[100.5, 20.0]],
            }
        if method == "private/get_account_summary":
            return {"currency": params["currency"], "balance": 1.0, "equity": 1.0}
        if method in ("private/buy", "private/sell"):
            amount = params.get("amount")
            if not isinstance(amount, int | float) or amount <= 0:
                raise DeribitError(-32602, "Invalid params", {"param": "amount"})
            oid = f"ETH-{len(self.orders) + 1}"
            order = {
                "order_id": oid,
                "order_state": "open",
                "label": params.get("label", ""),
                "instrument_name": "BTC-PERPETUAL",
                "amount": amount,
            }
            self.orders[oid] = order
            assert self.sink is not None and account is not None
            self.sink.publish("user.orders.future.BTC", dict(order), account.account_id)
            self.sink.publish(
                "user.trades.future.BTC",
                [{"trade_id": "1", "instrument_name": "BTC-PERPETUAL"}],
                account.account_id,
            )
            return {"order": dict(order), "trades": []}
        if method == "private/cancel":
            o = self.orders.get(str(params.get("order_id")))
            if o is None or o["order_state"] != "open":
                raise DeribitError(10004, "order_not_found")
            o["order_state"] = "cancelled"
            return dict(o)
        if method == "private/boom":
            raise ZeroDivisionError("engine bug")
        raise DeribitError(-32601, "Method not found")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        engine=FakeEngine(), rate_limits=False, heartbeat_scale=0.01, tick_s=0.02
    ) as s:
        yield s


def _engine(sim: Simulator) -> FakeEngine:
    eng = sim.engine
    assert isinstance(eng, FakeEngine)
    return eng


def signed_headers(method: str, uri: str, body: str = "", secret: str = SECRET) -> dict[str, str]:
    ts = int(time.time() * 1000)
    nonce = "abc123"
    sig = sign_rest(secret, ts, nonce, method, uri, body)
    return {"Authorization": f"deri-hmac-sha256 id={KEY},ts={ts},sig={sig},nonce={nonce}"}


_SKIPPED: dict[int, list[dict[str, Any]]] = {}


async def ws_call(
    ws: aiohttp.ClientWebSocketResponse, req_id: int, method: str, **params: Any
) -> dict[str, Any]:
    """Send a request and return its reply; notifications that come first are kept for
    `next_notification`."""
    await ws.send_str(
        json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
    )
    while True:
        msg = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        if msg.get("id") == req_id:
            return msg
        _SKIPPED.setdefault(id(ws), []).append(msg)


async def ws_auth(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    ts = int(time.time() * 1000)
    sig = sign_client_signature(SECRET, ts, "n1", "")
    return await ws_call(
        ws,
        1,
        "public/auth",
        grant_type="client_signature",
        client_id=KEY,
        timestamp=ts,
        signature=sig,
        nonce="n1",
        data="",
    )


async def next_notification(ws: aiohttp.ClientWebSocketResponse, channel: str) -> Any:
    kept = _SKIPPED.get(id(ws), [])
    for i, msg in enumerate(kept):
        if msg.get("method") == "subscription" and msg["params"]["channel"] == channel:
            del kept[: i + 1]
            return msg["params"]["data"]
    kept.clear()
    while True:
        msg = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        if msg.get("method") == "subscription" and msg["params"]["channel"] == channel:
            return msg["params"]["data"]


# ---------------------------------------------------------------------------------- HTTP
async def test_http_public_envelope_and_unknown_method(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.rest_url}/api/v2/public/get_time") as r:
            assert r.status == 200
            body = await r.json()
        assert body["result"] == _engine(sim).now_ms()
        assert body["jsonrpc"] == "2.0" and body["testnet"] is True
        assert body["usOut"] - body["usIn"] == body["usDiff"] >= 0
        async with http.get(f"{sim.rest_url}/api/v2/public/no_such_method") as r:
            assert r.status == 400
            body = await r.json()
        assert body["error"]["code"] == -32601


async def test_http_private_signature_bearer_and_failures(sim: Simulator) -> None:
    uri = "/api/v2/private/buy?amount=10&instrument_name=BTC-PERPETUAL&label=a%3Ab&post_only=true"
    async with aiohttp.ClientSession() as http:
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert body["result"]["order"]["label"] == "a:b"
        assert body["result"]["order"]["amount"] == 10  # query text coerced to a number
        # wrong secret, unknown key, no header, stale timestamp: 13004/13009 with HTTP 401
        async with http.get(
            sim.rest_url + uri, headers=signed_headers("GET", uri, secret="x")
        ) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == 13004
        async with http.get(sim.rest_url + uri) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == 13009
        stale = sign_rest(SECRET, 1, "n", "GET", uri)
        hdr = {"Authorization": f"deri-hmac-sha256 id={KEY},ts=1,sig={stale},nonce=n"}
        async with http.get(sim.rest_url + uri, headers=hdr) as r:
            assert r.status == 401
        # client_credentials over HTTP, then a Bearer token
        q = f"grant_type=client_credentials&client_id={KEY}&client_secret={SECRET}"
        async with http.get(f"{sim.rest_url}/api/v2/public/auth?{q}") as r:
            tok = (await r.json())["result"]
        assert tok["token_type"] == "bearer" and tok["expires_in"] > 0 and tok["scope"]
        bearer = {"Authorization": f"Bearer {tok['access_token']}"}
        async with http.get(sim.rest_url + uri, headers=bearer) as r:
            assert r.status == 200
        async with http.get(
            f"{sim.rest_url}/api/v2/public/auth?grant_type=client_credentials&client_id={KEY}&client_secret=bad"
        ) as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == 13004
        # refresh_token grant gives a new pair; the old refresh token is spent
        rq = f"grant_type=refresh_token&refresh_token={tok['refresh_token']}"
        async with http.get(f"{sim.rest_url}/api/v2/public/auth?{rq}") as r:
            assert (
                r.status == 200
                and (await r.json())["result"]["access_token"] != tok["access_token"]
            )
        async with http.get(f"{sim.rest_url}/api/v2/public/auth?{rq}") as r:
            assert r.status == 401
    counters = sim.state()["counters"]
    assert counters["orders_received"] == {"a:b": 2} and counters["orders_accepted"] == {"a:b": 2}


async def test_http_jsonrpc_post_bad_json_and_engine_bug(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        rpc = {"jsonrpc": "2.0", "id": 42, "method": "public/test", "params": {}}
        async with http.post(f"{sim.rest_url}/api/v2", json=rpc) as r:
            body = await r.json()
        assert body["id"] == 42 and body["result"] == {"version": "1.2.26"}
        async with http.post(
            f"{sim.rest_url}/api/v2", data="{not json", headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == -32700
        uri = "/api/v2/private/boom"
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            assert r.status == 400
            body = await r.json()
        assert body["error"]["code"] == 11094 and "Traceback" not in json.dumps(body)
        uri = "/api/v2/private/buy?amount=abc&instrument_name=BTC-PERPETUAL"
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == -32602
        async with http.get(f"{sim.rest_url}/api/v2/public/set_heartbeat?interval=10") as r:
            assert (await r.json())["error"]["code"] == 10030
    assert sim.state()["counters"]["internal_errors"] == 1


# ---------------------------------------------------------------------------------- WebSocket
async def test_ws_auth_book_snapshot_then_changes_and_raw_needs_auth(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        err = await ws_call(ws, 2, "public/subscribe", channels=["book.BTC-PERPETUAL.raw"])
        assert err["error"]["code"] == 13778
        bad = await ws_call(
            ws, 3, "public/auth", grant_type="client_credentials", client_id=KEY, client_secret="no"
        )
        assert bad["error"]["code"] == 13004
        auth = await ws_auth(ws)
        assert auth["result"]["access_token"] and auth["testnet"] is True
        res = await ws_call(
            ws,
            4,
            "public/subscribe",
            channels=["book.BTC-PERPETUAL.raw", "book.NOPE-PERPETUAL.raw", "bogus"],
        )
        assert res["result"] == ["book.BTC-PERPETUAL.raw"]
        snap = await next_notification(ws, "book.BTC-PERPETUAL.raw")
        assert snap["type"] == "snapshot" and snap["bids"] == [["new", 99.5, 10.0]]
        sim.advance(1000)
        change = await next_notification(ws, "book.BTC-PERPETUAL.raw")
        assert change["type"] == "change" and change["prev_change_id"] == snap["change_id"]
        res = await ws_call(ws, 5, "public/unsubscribe", channels=["book.BTC-PERPETUAL.raw"])
        assert res["result"] == ["book.BTC-PERPETUAL.raw"]


async def test_ws_100ms_book_is_conflated_into_the_snapshot(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        res = await ws_call(ws, 2, "public/subscribe", channels=["book.BTC-PERPETUAL.100ms"])
        assert res["result"] == ["book.BTC-PERPETUAL.100ms"]
        sim.advance(100)
        sim.advance(100)  # two changes within one flush period...
        seen = [await next_notification(ws, "book.BTC-PERPETUAL.100ms")]
        while seen[-1]["change_id"] != 102:
            seen.append(await next_notification(ws, "book.BTC-PERPETUAL.100ms"))
        # ...come as one notification (folded into the snapshot if it had not gone out yet)
        assert len(seen) <= 2 and seen[0]["type"] == "snapshot"
        last = seen[-1]
        if last["type"] == "change":
            assert last["prev_change_id"] == 100 and last["bids"] == [["change", 99.5, 102.0]]
        else:
            assert last["bids"] == [["new", 99.5, 102.0]]


async def test_ws_private_wildcards_carry_the_subscribed_name(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        res = await ws_call(ws, 2, "private/subscribe", channels=["user.orders.any.any.raw"])
        assert res["error"]["code"] == 13009
        await ws_auth(ws)
        chans = [
            "user.orders.any.any.raw",
            "user.orders.option.any.raw",
            "user.trades.BTC-PERPETUAL.100ms",
            "user.portfolio.btc",
        ]
        res = await ws_call(ws, 3, "private/subscribe", channels=chans)
        assert res["result"] == chans
        portfolio = await next_notification(ws, "user.portfolio.btc")
        assert portfolio["currency"] == "BTC"
        res = await ws_call(
            ws, 4, "private/buy", instrument_name="BTC-PERPETUAL", amount=10, label="L1"
        )
        assert res["result"]["order"]["label"] == "L1"
        order = await next_notification(ws, "user.orders.any.any.raw")
        assert order["order_id"] == res["result"]["order"]["order_id"]  # raw: one object
        trades = await next_notification(ws, "user.trades.BTC-PERPETUAL.100ms")
        assert isinstance(trades, list) and trades[0]["instrument_name"] == "BTC-PERPETUAL"
        # the option-only subscription saw nothing: the next message is a fresh reply
        pong = await ws_call(ws, 5, "public/test")
        assert pong["result"]["version"]


async def test_heartbeat_miss_closes_and_cancels_on_disconnect(sim: Simulator) -> None:
    eng = _engine(sim)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_url)
        await ws_auth(ws)
        assert (await ws_call(ws, 2, "public/set_heartbeat", interval=5))["error"]["code"] == -32602
        assert (await ws_call(ws, 3, "private/enable_cancel_on_disconnect"))["result"] == "ok"
        got = await ws_call(ws, 4, "private/get_cancel_on_disconnect")
        assert got["result"] == {"scope": "connection", "enabled": True}
        res = await ws_call(ws, 5, "private/buy", instrument_name="BTC-PERPETUAL", amount=10)
        oid = res["result"]["order"]["order_id"]
        assert (await ws_call(ws, 6, "public/set_heartbeat", interval=10))["result"] == "ok"
        msg = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        assert msg == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
        # answered: the connection lives on
        await ws_call(ws, 7, "public/test")
        msg = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        assert msg["params"]["type"] == "test_request"
        # not answered: closed, and the order placed over it is cancelled
        closed = await asyncio.wait_for(ws.receive(), 5)
        assert closed.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        )
        await ws.close()
    for _ in range(100):
        if eng.orders[oid]["order_state"] == "cancelled":
            break
        await asyncio.sleep(0.01)
    assert eng.orders[oid]["order_state"] == "cancelled"
    assert sim.state()["counters"]["heartbeat_timeouts"] == 1


async def test_logout_does_not_cancel_and_other_connections_orders_survive(sim: Simulator) -> None:
    eng = _engine(sim)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_url)
        await ws_auth(ws)
        await ws_call(ws, 2, "private/enable_cancel_on_disconnect")
        res = await ws_call(ws, 3, "private/buy", instrument_name="BTC-PERPETUAL", amount=10)
        kept = res["result"]["order"]["order_id"]
        await ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": 4, "method": "private/logout", "params": {}})
        )
        await asyncio.wait_for(ws.receive(), 5)
        await ws.close()
        # A REST order is not the WebSocket's: a drop of the WebSocket leaves it alone.
        uri = "/api/v2/private/buy?amount=10&instrument_name=BTC-PERPETUAL"
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            rest_oid = (await r.json())["result"]["order"]["order_id"]
        ws2 = await http.ws_connect(sim.ws_url)
        await ws_auth(ws2)
        await ws_call(ws2, 2, "private/enable_cancel_on_disconnect")
        res = await ws_call(ws2, 3, "private/buy", instrument_name="BTC-PERPETUAL", amount=10)
        gone = res["result"]["order"]["order_id"]
        await ws2.close()
        await asyncio.sleep(0.05)
    assert eng.orders[kept]["order_state"] == "open"
    assert eng.orders[rest_oid]["order_state"] == "open"
    assert eng.orders[gone]["order_state"] == "cancelled"


async def test_rate_limit_10028_terminates_the_session() -> None:
    limits = RateLimitConfig(matching=BucketSpec(1.0, 3.0), other=BucketSpec(1.0, 5.0))
    async with (
        running_simulator(engine=FakeEngine(), rate_limits=limits) as sim,
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(sim.ws_url)
        await ws_auth(ws)
        codes = []
        for i in range(4):
            res = await ws_call(
                ws, 10 + i, "private/buy", instrument_name="BTC-PERPETUAL", amount=10
            )
            codes.append(res.get("error", {}).get("code"))
        assert codes == [None, None, None, 10028]
        closed = await asyncio.wait_for(ws.receive(), 5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        # HTTP gets the error too (HTTP 429), without a session to end
        uri = "/api/v2/private/buy?amount=10&instrument_name=BTC-PERPETUAL"
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            assert r.status == 429 and (await r.json())["error"]["code"] == 10028
        assert sim.state()["counters"]["orders_accepted_total"] == 3
        assert sim.state()["counters"]["orders_received_total"] == 5


async def test_slow_consumer_is_dropped_not_waited_for() -> None:
    async with (
        running_simulator(engine=FakeEngine(), rate_limits=False, max_queue=50) as sim,
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(sim.ws_url)
        await ws_call(ws, 1, "public/subscribe", channels=["book.BTC-PERPETUAL.100ms"])
        session = next(iter(sim.server.sessions.values()))
        for _ in range(60):  # more than the queue holds, in one go of the loop
            session.send_text("{}")
        assert session.closed
        assert sim.state()["counters"]["ws_overflows"] == 1
        await ws.close()


# ---------------------------------------------------------------------------------- faults
async def admin(
    http: aiohttp.ClientSession, sim: Simulator, method: str, path: str, body: Any = None
) -> Any:
    async with http.request(method, f"{sim.rest_url}/sim/admin/{path}", json=body) as r:
        return r.status, await r.json()


async def test_faults_reject_5xx_latency_and_timeout_after_accept(sim: Simulator) -> None:
    eng = _engine(sim)
    uri = "/api/v2/private/buy?amount=10&instrument_name=BTC-PERPETUAL&label=dup"
    async with aiohttp.ClientSession() as http:
        st, res = await admin(
            http,
            sim,
            "POST",
            "faults",
            {"kind": "order_reject", "count": 1, "code": 10009, "message": "not_enough_funds"},
        )
        assert st == 200 and res["added"][0]["methods"] == [
            "private/buy",
            "private/sell",
            "private/edit",
        ]
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            assert (await r.json())["error"]["code"] == 10009
        await admin(
            http,
            sim,
            "POST",
            "faults",
            {"kind": "http_5xx", "status": 502, "count": 1, "methods": ["public/*"]},
        )
        async with http.get(f"{sim.rest_url}/api/v2/public/test") as r:
            assert r.status == 502
        async with http.get(f"{sim.rest_url}/api/v2/public/test") as r:
            assert r.status == 200  # count 1: spent
        await admin(http, sim, "POST", "faults", {"kind": "latency", "ms": 200, "count": 1})
        t0 = time.monotonic()
        async with http.get(f"{sim.rest_url}/api/v2/public/test") as r:
            assert r.status == 200
        assert time.monotonic() - t0 >= 0.19
        # timeout after accept: the order exists, the reply never comes
        await admin(
            http,
            sim,
            "POST",
            "faults",
            {"kind": "timeout_after_accept", "count": 1, "mode": "hold"},
        )
        n_before = len(eng.orders)
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(
                sim.rest_url + uri,
                headers=signed_headers("GET", uri),
                timeout=aiohttp.ClientTimeout(total=0.3),
            ) as r:
                await r.read()
        assert len(eng.orders) == n_before + 1
        await admin(
            http,
            sim,
            "POST",
            "faults",
            {"kind": "timeout_after_accept", "count": 1, "mode": "close"},
        )
        # A POST: aiohttp would resend a GET by itself after the disconnect (see below).
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "private/buy",
                "params": {"instrument_name": "BTC-PERPETUAL", "amount": 10, "label": "dup"},
            }
        )
        hdrs = {**signed_headers("POST", "/api/v2", body), "Content-Type": "application/json"}
        with pytest.raises(aiohttp.ClientError):
            async with http.post(f"{sim.rest_url}/api/v2", data=body, headers=hdrs) as r:
                await r.read()
        assert len(eng.orders) == n_before + 2
        st, state = await admin(http, sim, "GET", "state")
        assert state["counters"]["orders_received"]["dup"] == 3
        assert state["counters"]["orders_accepted"]["dup"] == 2
        assert state["faults"] == []  # all spent
        assert state["faults_fired"] == {
            "order_reject": 1,
            "http_5xx": 1,
            "latency": 1,
            "timeout_after_accept": 2,
        }
        st, res = await admin(http, sim, "POST", "faults", {"kind": "nonsense"})
        assert st == 400 and "unknown fault kind" in res["error"]


async def test_close_after_accept_makes_aiohttp_resend_a_get(sim: Simulator) -> None:
    """A hazard for clients, shown here so nobody forgets it: aiohttp (under ccxt) retries an
    idempotent request once when the server disconnects, and ccxt sends Deribit orders as
    GETs. An order whose connection dies after acceptance is placed twice; only the label
    tells the copies apart."""
    eng = _engine(sim)
    uri = "/api/v2/private/buy?amount=10&instrument_name=BTC-PERPETUAL&label=twice"
    async with aiohttp.ClientSession() as http:
        await admin(
            http,
            sim,
            "POST",
            "faults",
            {"kind": "timeout_after_accept", "count": 1, "mode": "close"},
        )
        async with http.get(sim.rest_url + uri, headers=signed_headers("GET", uri)) as r:
            assert r.status == 200  # the retry's answer
    assert [o["label"] for o in eng.orders.values()] == ["twice", "twice"]
    counters = sim.state()["counters"]
    assert counters["orders_received"]["twice"] == 2 and counters["orders_accepted"]["twice"] == 2


async def test_faults_freeze_drop_gap_and_time_control(sim: Simulator) -> None:
    eng = _engine(sim)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_url)
        await ws_auth(ws)
        await ws_call(ws, 2, "public/subscribe", channels=["book.BTC-PERPETUAL.raw"])
        await next_notification(ws, "book.BTC-PERPETUAL.raw")
        st, res = await admin(
            http, sim, "POST", "faults", {"kind": "freeze_market_data", "duration_s": 1}
        )
        fid = res["added"][0]["id"]
        st, res = await admin(http, sim, "POST", "time/advance?ms=500")
        assert res["now_ms"] == eng.now_ms()
        st, res = await admin(http, sim, "POST", "time/advance?ms=600")  # the freeze ends
        change = await next_notification(ws, "book.BTC-PERPETUAL.raw")
        assert change["timestamp"] == eng.now_ms()  # the frozen update never came
        assert (await admin(http, sim, "DELETE", f"faults/{fid}"))[0] == 404  # expired already
        st, res = await admin(http, sim, "POST", "market/gap?currency=ETH&pct=-7.5")
        assert eng.gaps == [("ETH", -7.5)]
        st, res = await admin(http, sim, "POST", "faults", {"kind": "stale_market_data"})
        before = eng.last_ms
        sim.advance(1000)
        assert eng.last_ms == before  # the market does not move
        await admin(http, sim, "DELETE", "faults")
        st, res = await admin(http, sim, "POST", "faults", {"kind": "ws_drop"})
        closed = await asyncio.wait_for(ws.receive(), 5)
        while closed.type == aiohttp.WSMsgType.TEXT:  # pushes written before the drop
            closed = await asyncio.wait_for(ws.receive(), 5)
        assert closed.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        )
        await ws.close()
        st, res = await admin(http, sim, "POST", "time/speed?x=0")
        assert st == 400


def test_loopback_guard() -> None:
    assert (
        is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    )
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.1.2.3")


async def test_refuses_non_loopback_bind() -> None:
    with pytest.raises(ValueError, match="loopback"):
        async with running_simulator(engine=FakeEngine(), host="0.0.0.0"):
            pass
