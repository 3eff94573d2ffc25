"""Faults on the venue's state, against the real engine over the wire: private notifications
dropped (`drop_notifications`), wrong account Greeks (`portfolio_delta_offset`), thin books
(`thin_depth`), and the admin API's booked trades that provoke them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _sim_ccxt import ccxt_client

from hedgerd.sim.command import Simulator, running_simulator

KEY, SECRET = "state-fault-key", "state-fault-secret"
PERP = "BTC-PERPETUAL"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        stepped=True, seed=11, accounts=[(KEY, SECRET)], rate_limits=False
    ) as s:
        yield s


@pytest.fixture
async def rest(sim: Simulator) -> AsyncIterator[Any]:
    async with ccxt_client(sim, KEY, SECRET, load_markets=False) as client:
        yield client


def account_id(sim: Simulator) -> str:
    acct = sim.engine.account_for_key(KEY)
    assert acct is not None
    return acct.account_id


async def admin(sim: Simulator, path: str, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/sim/admin/{path}", json=body) as r,
    ):
        return r.status, await r.json()


async def trade(sim: Simulator, instrument: str, side: str, amount: float) -> dict[str, Any]:
    status, res = await admin(
        sim,
        "accounts/trade",
        {"account": account_id(sim), "instrument": instrument, "side": side, "amount": amount},
    )
    assert status == 200, res
    return dict(res)


class Private:
    """A raw WebSocket session subscribed to the account's private channels (ccxt.pro has no
    `user.changes`); collects notifications by channel."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.got: dict[str, list[Any]] = {}
        self._id = 0

    async def call(self, method: str, **params: Any) -> Any:
        self._id += 1
        await self.ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        )
        while True:
            msg = await self._next(5.0)
            if msg is not None and msg.get("id") == self._id:
                assert "result" in msg, msg
                return msg["result"]

    async def _next(self, timeout_s: float) -> dict[str, Any] | None:
        try:
            msg: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.ws.receive_str(), timeout_s)
            )
        except TimeoutError:
            return None
        if msg.get("method") == "subscription":
            p = msg["params"]
            self.got.setdefault(p["channel"], []).append(p["data"])
        return msg

    async def drain(self, timeout_s: float = 0.3) -> None:
        """Read what arrives until the line has been quiet for `timeout_s` (wall)."""
        while await self._next(timeout_s) is not None:
            pass


@pytest.fixture
async def private(sim: Simulator) -> AsyncIterator[Private]:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        p = Private(ws)
        await p.call(
            "public/auth", grant_type="client_credentials", client_id=KEY, client_secret=SECRET
        )
        await p.call(
            "private/subscribe", channels=["user.changes.any.BTC.raw", "user.portfolio.btc"]
        )
        await p.drain()
        yield p


async def test_admin_trade_books_a_position_and_refuses_nonsense(sim: Simulator, rest: Any) -> None:
    res = await trade(sim, PERP, "sell", 1_000)
    assert res["order"]["order_state"] == "filled" and res["order"]["label"] == "sim-admin"
    positions = await rest.privateGetGetPositions({"currency": "BTC"})
    assert {p["instrument_name"]: p["size"] for p in positions["result"]} == {PERP: -1000}
    for body, words in (
        ({"account": "nobody", "instrument": PERP, "side": "buy", "amount": 10}, "account"),
        ({"account": account_id(sim), "instrument": PERP, "side": "up", "amount": 10}, "direction"),
        ({"account": account_id(sim), "instrument": PERP, "side": "buy", "amount": 5}, "amount"),
        ({"account": account_id(sim), "instrument": "BTC-NOPE", "side": "buy", "amount": 10}, ""),
        ({"account": account_id(sim), "side": "buy", "amount": 10}, "instrument"),
    ):
        status, out = await admin(sim, "accounts/trade", body)
        assert status == 400 and words in out["error"], (body, out)


async def test_dropped_notifications_leave_the_client_unaware(
    sim: Simulator, rest: Any, private: Private
) -> None:
    await trade(sim, PERP, "buy", 500)
    await private.drain()
    heard = private.got.pop("user.changes.any.BTC.raw")
    assert heard[-1]["positions"][0]["size"] == 500  # without the fault: heard at once
    private.got.clear()

    status, res = await admin(sim, "faults", {"kind": "drop_notifications"})
    assert status == 200 and res["added"][0]["kind"] == "drop_notifications"
    await trade(sim, PERP, "buy", 700)
    sim.advance(3_000)  # portfolio pushes are due every simulated second
    await private.drain()
    assert private.got.get("user.changes.any.BTC.raw") is None
    assert private.got.get("user.portfolio.btc") is None
    # The venue's state changed all the same: REST tells the truth.
    positions = await rest.privateGetGetPositions({"currency": "BTC"})
    assert positions["result"][0]["size"] == 1200
    assert sim.state()["faults_fired"]["drop_notifications"] >= 2

    # Another account's notifications only: ours flow again.
    sim.faults.clear()
    sim.faults.add({"kind": "drop_notifications", "account": "mm"}, sim.now_ms())
    await trade(sim, PERP, "sell", 200)
    await private.drain()
    assert private.got["user.changes.any.BTC.raw"][-1]["positions"][0]["size"] == 1000


async def test_portfolio_delta_offset_in_rest_and_stream(
    sim: Simulator, rest: Any, private: Private
) -> None:
    await trade(sim, PERP, "buy", 9_000)

    async def summary(ccy: str = "BTC") -> dict[str, Any]:
        out = await rest.privateGetGetAccountSummary({"currency": ccy})
        return dict(out["result"])

    true, true_eth = await summary(), await summary("ETH")
    sim.faults.add({"kind": "portfolio_delta_offset", "offset_coin": 2.5}, sim.now_ms())
    wrong = await summary()
    for key in ("delta_total", "options_delta", "projected_delta_total"):
        assert wrong[key] == pytest.approx(true[key] + 2.5), key
    assert wrong["delta_total_map"]["btc_usd"] == pytest.approx(
        true["delta_total_map"]["btc_usd"] + 2.5
    )
    assert wrong["equity"] == true["equity"]  # only the Greeks are wrong
    assert (await summary("ETH"))["delta_total"] == pytest.approx(true_eth["delta_total"] + 2.5)

    sim.faults.clear()  # narrowed to another account: ours is right again
    sim.faults.add({"kind": "portfolio_delta_offset", "account": "mm"}, sim.now_ms())
    assert (await summary())["delta_total"] == pytest.approx(true["delta_total"])

    sim.faults.clear()  # narrowed to BTC: ETH is right, the BTC stream is wrong
    sim.faults.add(
        {"kind": "portfolio_delta_offset", "offset_coin": -4.0, "currency": "btc"}, sim.now_ms()
    )
    assert (await summary("ETH"))["delta_total"] == pytest.approx(true_eth["delta_total"])
    await private.drain()
    private.got.clear()
    sim.advance(1_000)
    await private.drain()
    pushed = private.got["user.portfolio.btc"][-1]
    assert pushed["delta_total"] == pytest.approx(true["delta_total"] - 4.0, abs=0.05)


async def test_thin_depth_caps_the_book_and_takers_fill_partly(sim: Simulator, rest: Any) -> None:
    full = await rest.publicGetGetOrderBook({"instrument_name": PERP, "depth": 5})
    assert sum(a for _p, a in full["result"]["asks"]) > 1_000
    # Liquidity taken before the cap comes back at the capped level's pace (within the
    # book's refill time), not the full level's.
    best_ask = full["result"]["asks"][0]
    await rest.privateGetBuy(
        {
            "instrument_name": PERP,
            "amount": best_ask[1] - 10,
            "type": "limit",
            "price": best_ask[0],
            "time_in_force": "immediate_or_cancel",
        }
    )
    sim.faults.add(
        {"kind": "thin_depth", "instruments": ["BTC-PERP*"], "depth_amount": 30}, sim.now_ms()
    )
    sim.advance(10_000)  # the server applies it on its next step; the book refills
    thin = await rest.publicGetGetOrderBook({"instrument_name": PERP, "depth": 5})
    assert sum(a for _p, a in thin["result"]["asks"]) == 30
    assert sum(a for _p, a in thin["result"]["bids"]) == 30
    other = await rest.publicGetGetOrderBook({"instrument_name": "BTC_USDC-PERPETUAL"})
    assert sum(a for _p, a in other["result"]["asks"]) > 0.5  # not matched: untouched

    ask = thin["result"]["asks"][-1][0]
    order = await rest.privateGetBuy(
        {
            "instrument_name": PERP,
            "amount": 1_000,
            "type": "limit",
            "price": ask,
            "time_in_force": "immediate_or_cancel",
        }
    )
    o = order["result"]["order"]
    assert o["filled_amount"] == 30 and o["order_state"] == "cancelled"

    sim.faults.clear()
    sim.faults.add({"kind": "thin_depth", "side": "asks"}, sim.now_ms())  # 0: no asks at all
    sim.advance(250)
    empty = await rest.publicGetGetOrderBook({"instrument_name": PERP})
    assert empty["result"]["asks"] == [] and empty["result"]["bids"]
    sim.faults.clear()
    sim.advance(250)
    back = await rest.publicGetGetOrderBook({"instrument_name": PERP, "depth": 5})
    assert sum(a for _p, a in back["result"]["asks"]) > 1_000
