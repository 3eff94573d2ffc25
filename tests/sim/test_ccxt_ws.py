"""The real ccxt.pro client (`ccxt.pro.deribit`) against the simulator's WebSocket: order book,
ticker, orders, own trades and balance streams, with `urls['api']` pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import ccxt.pro as ccxt_pro
import pytest

from hedgerd.sim.command import Simulator, running_simulator

KEY, SECRET = "pro-key", "pro-secret"
PERP = "BTC/USD:BTC"
T = TypeVar("T")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(stepped=True, seed=5, accounts=[(KEY, SECRET)]) as s:
        yield s


@pytest.fixture
async def pro(sim: Simulator) -> AsyncIterator[Any]:
    client = ccxt_pro.deribit({"apiKey": KEY, "secret": SECRET})
    client.urls["api"] = {"rest": sim.rest_url, "ws": sim.ws_url}
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


async def within(aw: Awaitable[T], seconds: float = 5.0) -> T:
    return await asyncio.wait_for(aw, seconds)


def btc_total(balance: dict[str, Any]) -> float:
    """ccxt.pro's deribit watch_balance files each currency's whole parsed balance under the
    currency code: `balance["BTC"]["BTC"]["total"]`."""
    return float(balance["BTC"]["BTC"]["total"])


async def subscribed(sim: Simulator, channel: str) -> None:
    """Wait until some connection has `channel` (the subscribe reply has been processed)."""
    for _ in range(500):
        if any(channel in c["channels"] for c in sim.state()["connections"]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never subscribed to {channel}")


async def test_watch_order_book_and_ticker(sim: Simulator, pro: Any) -> None:
    book = await within(pro.watch_order_book(PERP))
    rest = await pro.fetch_order_book(PERP)
    assert book["bids"][0][0] == rest["bids"][0][0] and book["asks"][0][0] == rest["asks"][0][0]
    ticker = await within(pro.watch_ticker(PERP))
    assert ticker["symbol"] == PERP and ticker["bid"] < ticker["ask"]
    # the market moves in simulated time; the streams follow (stepped time: watch, then step)
    next_ticker = asyncio.create_task(pro.watch_ticker(PERP))
    next_book = asyncio.create_task(pro.watch_order_book(PERP))
    await asyncio.sleep(0)
    sim.advance(60_000)
    ticker2 = await within(next_ticker)
    assert ticker2["timestamp"] == sim.now_ms() > ticker["timestamp"]
    book2 = await within(next_book)
    assert book2["bids"][0][0] < book2["asks"][0][0]
    rest2 = await pro.fetch_order_book(PERP)
    assert book2["bids"][:5] == [[*lv[:2], 1] for lv in rest2["bids"][:5]]


async def test_watch_orders_my_trades_and_balance(sim: Simulator, pro: Any) -> None:
    orders_task = asyncio.create_task(pro.watch_orders())
    await subscribed(sim, "user.orders.any.any.raw")
    trades_task = asyncio.create_task(pro.watch_my_trades())
    await subscribed(sim, "user.trades.any.any.raw")
    balance = await within(pro.watch_balance())  # starts with the current portfolio
    assert btc_total(balance) == 10
    t = await pro.fetch_ticker(PERP)
    placed = await pro.create_order(PERP, "limit", "buy", 20, t["bid"] - 200, {"label": "w1"})
    orders = await within(orders_task)
    assert orders[-1]["id"] == placed["id"] and orders[-1]["status"] == "open"
    balance_task = asyncio.create_task(pro.watch_balance())
    await asyncio.sleep(0)
    taken = await pro.create_order(PERP, "market", "buy", 30, None, {"label": "w2"})
    trades = await within(trades_task)
    assert trades[-1]["order"] == taken["id"] and trades[-1]["amount"] == 30
    assert trades[-1]["fee"]["currency"] == "BTC"
    balance = await within(balance_task)
    assert btc_total(balance) < 10  # the taker fee, paid in BTC
    orders_task = asyncio.create_task(pro.watch_orders())
    await asyncio.sleep(0)
    await pro.cancel_order(placed["id"], PERP)
    orders = await within(orders_task)
    assert any(o["id"] == placed["id"] and o["status"] == "canceled" for o in orders)
