"""Engine driven by the real ccxt deribit client, in process: ccxt's `fetch` is routed to
`SimExchange.dispatch` (no sockets; the network server has its own end-to-end tests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt_async
import pytest

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import DeribitError
from hedgerd.sim.scenario import Scenario


class InProcessDeribit(ccxt_async.deribit):  # type: ignore[misc,name-defined]
    engine: SimExchange

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        parts = urlsplit(url)
        path = parts.path.removeprefix("/api/v2/")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        account = None
        auth = (headers or {}).get("Authorization", "")
        if auth.startswith("deri-hmac-sha256 "):
            fields = dict(kv.split("=", 1) for kv in auth.split(" ", 1)[1].split(","))
            account = self.engine.account_for_key(fields["id"])
        envelope: dict[str, Any] = {
            "jsonrpc": "2.0",
            "usIn": 0,
            "usOut": 0,
            "usDiff": 0,
            "testnet": True,
        }
        try:
            envelope["result"] = self.engine.dispatch(path, params, account)
        except DeribitError as e:
            envelope["error"] = e.to_json()
            text = json.dumps(envelope)
            self.handle_errors(
                400, "Bad Request", url, method, headers, text, envelope, headers, body
            )
            raise AssertionError("ccxt did not raise for " + text) from None
        # what the wire would carry: JSON text, parsed back
        return json.loads(json.dumps(envelope))


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    ex = SimExchange(Scenario(seed=13, accounts=[]))
    ex.add_account("ccxt-key", "ccxt-secret")
    c = InProcessDeribit({"apiKey": "ccxt-key", "secret": "ccxt-secret", "enableRateLimit": False})
    c.engine = ex
    c.urls["api"] = {"rest": "http://sim.invalid", "ws": "ws://sim.invalid/ws/api/v2"}
    try:
        yield c
    finally:
        await c.close()


async def test_load_markets(client: Any) -> None:
    markets = await client.load_markets()
    perp = markets["BTC/USD:BTC"]
    assert perp["id"] == "BTC-PERPETUAL" and perp["swap"] and perp["inverse"]
    assert perp["contractSize"] == 10 and perp["precision"]["price"] == 0.5
    assert perp["limits"]["amount"]["min"] == 10
    lin = markets["BTC/USDC:USDC"]
    assert lin["linear"] and lin["id"] == "BTC_USDC-PERPETUAL"
    opts = [m for m in markets.values() if m["option"] and m["base"] == "BTC"]
    assert opts
    o = opts[0]
    assert o["strike"] > 0 and o["optionType"] in ("call", "put") and o["expiry"] > 0
    assert o["inverse"] and o["settle"] == "BTC"
    assert any(m["future"] and m["id"] == "BTC-27MAR26" for m in markets.values())


async def test_ticker_book_balance(client: Any) -> None:
    await client.load_markets()
    t = await client.fetch_ticker("BTC/USD:BTC")
    assert t["bid"] < t["ask"] and t["markPrice"] > 0
    ob = await client.fetch_order_book("BTC/USD:BTC", 5)
    assert len(ob["bids"]) == 5 and ob["bids"][0][0] == t["bid"]
    bal = await client.fetch_balance({"code": "BTC"})
    assert bal["BTC"]["total"] == 10
    bal = await client.fetch_balance()
    assert bal["USDC"]["total"] == 100_000


async def test_orders_positions_trades(client: Any) -> None:
    await client.load_markets()
    t = await client.fetch_ticker("BTC/USD:BTC")
    o = await client.create_order(
        "BTC/USD:BTC", "limit", "buy", 100, t["bid"] - 100, {"postOnly": True, "label": "h1"}
    )
    assert o["status"] == "open" and o["postOnly"] is True
    opens = await client.fetch_open_orders(params={"code": "BTC"})
    assert [x["id"] for x in opens] == [o["id"]]
    c = await client.cancel_order(o["id"])
    assert c["status"] == "canceled"
    m = await client.create_order("BTC/USD:BTC", "market", "buy", 200)
    assert m["status"] == "closed" and m["filled"] == 200
    (pos,) = await client.fetch_positions(params={"currency": "BTC"})
    assert pos["side"] == "long" and pos["contracts"] == 200
    r = await client.create_order("BTC/USD:BTC", "market", "sell", 200, None, {"reduceOnly": True})
    assert r["filled"] == 200
    trades = await client.fetch_my_trades(params={"code": "BTC"})
    assert len(trades) == 2 and {x["side"] for x in trades} == {"buy", "sell"}
    await client.create_order("BTC/USD:BTC", "limit", "sell", 10, t["ask"] + 100)
    await client.cancel_all_orders()
    assert await client.fetch_open_orders(params={"code": "BTC"}) == []


async def test_errors_map_to_ccxt_exceptions(client: Any) -> None:
    await client.load_markets()
    t = await client.fetch_ticker("BTC/USD:BTC")
    with pytest.raises(ccxt_async.InsufficientFunds):
        await client.create_order("BTC/USD:BTC", "market", "buy", 100_000_000)
    with pytest.raises(ccxt_async.InvalidOrder):
        await client.create_order(
            "BTC/USD:BTC",
            "limit",
            "buy",
            10,
            t["ask"] + 5,
            {"postOnly": True, "reject_post_only": True},
        )
    with pytest.raises(ccxt_async.OrderNotFound):
        await client.cancel_order("123")
