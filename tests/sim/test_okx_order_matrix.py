"""`create_order` through the real ccxt OKX client on every kind of OKX contract the simulator
lists: limit (found by id and by clOrdId, listed open, cancelled), IOC, post-only, market and
reduce-only on BTC options, the inverse and the linear swap and a dated future. OKX takes no
market and no reduce-only orders on options, and the simulator answers as OKX does (51000,
"Parameter ordType error" / "Parameter reduceOnly error", which ccxt raises as BadRequest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import ccxt
import pytest
from _okx_ccxt import okx_client, okx_simulator

from hedgerd.sim.command import Simulator

KINDS = ("option", "inverse swap", "linear swap", "future")


@pytest.fixture
async def ex() -> AsyncIterator[tuple[Any, Simulator]]:
    async with okx_simulator(seed=17) as sim, okx_client(sim) as client:
        yield client, sim


def _symbol(ex: Any, kind: str, now_ms: int) -> str:
    if kind == "inverse swap":
        return "BTC/USD:BTC"
    if kind == "linear swap":
        return "BTC/USDT:USDT"
    if kind == "future":
        futs = [m for m in ex.markets.values() if m["future"] and m["base"] == "BTC"]
        return str(min(futs, key=lambda m: m["expiry"])["symbol"])
    opts = [
        m for m in ex.markets.values()
        if m["option"] and m["base"] == "BTC" and m["id"].endswith("-C")
        and m["expiry"] - now_ms >= 86_400_000
    ]  # fmt: skip
    expiry = min(m["expiry"] for m in opts)
    same = sorted((m for m in opts if m["expiry"] == expiry), key=lambda m: m["strike"])
    return str(same[len(same) // 2]["symbol"])


@pytest.mark.parametrize("kind", KINDS)
async def test_order_types_on_every_contract_kind(ex: tuple[Any, Simulator], kind: str) -> None:
    client, sim = ex
    sym = _symbol(client, kind, sim.now_ms())
    lot = float(client.market(sym)["limits"]["amount"]["min"])
    book = await client.fetch_order_book(sym, 5)
    bid, ask = book["bids"][0][0], book["asks"][0][0]
    assert 0 < bid < ask
    # limit, resting: found by id and by clOrdId, listed open, then cancelled
    far = float(client.price_to_precision(sym, bid * 0.5))
    cl = "mx" + kind.replace(" ", "")[:8]
    rest = await client.create_order(sym, "limit", "buy", lot, far, {"clientOrderId": cl})
    got = await client.fetch_order(rest["id"], sym)
    assert (got["status"], got["amount"], got["price"]) == ("open", lot, far)
    assert (await client.fetch_order(None, sym, {"clOrdId": cl}))["id"] == rest["id"]
    assert [o["id"] for o in await client.fetch_open_orders(sym)] == [rest["id"]]
    await client.cancel_order(rest["id"], sym)
    assert (await client.fetch_order(rest["id"], sym))["status"] == "canceled"
    assert await client.fetch_open_orders(sym) == []
    # post-only at the ask would take: cancelled, not filled
    po = await client.create_order(sym, "limit", "buy", lot, ask, {"postOnly": True})
    po_state = await client.fetch_order(po["id"], sym)
    assert (po_state["status"], po_state["filled"]) == ("canceled", 0)
    # IOC at the ask fills against the book
    ioc = await client.create_order(sym, "limit", "buy", 2 * lot, ask, {"timeInForce": "IOC"})
    assert (await client.fetch_order(ioc["id"], sym))["filled"] == 2 * lot
    if kind == "option":
        # OKX takes neither market nor reduce-only orders on options (okx.md §1: reduceOnly is
        # for MARGIN, FUTURES and SWAP); both are refused before anything is placed
        with pytest.raises(ccxt.BadRequest, match=r"51000.*ordType"):
            await client.create_order(sym, "market", "buy", lot)
        with pytest.raises(ccxt.BadRequest, match=r"51000.*reduceOnly"):
            await client.create_order(sym, "limit", "sell", lot, bid, {"reduceOnly": True})
        assert await client.fetch_open_orders(sym) == []
        closing = await client.create_order(
            sym, "limit", "sell", 2 * lot, book["bids"][-1][0], {"timeInForce": "IOC"}
        )
        assert (await client.fetch_order(closing["id"], sym))["filled"] == 2 * lot
        held = 2 * lot
    else:
        mkt = await client.create_order(sym, "market", "buy", lot)
        assert (await client.fetch_order(mkt["id"], sym))["filled"] == lot
        # reduce-only is capped at the position, and refused once flat
        closing = await client.create_order(
            sym, "market", "sell", 9 * lot, None, {"reduceOnly": True}
        )
        held = 3 * lot
        assert (await client.fetch_order(closing["id"], sym))["filled"] == pytest.approx(held)
        with pytest.raises(ccxt.ExchangeError, match="51169"):
            await client.create_order(sym, "limit", "sell", lot, bid, {"reduceOnly": True})
    trades = await client.fetch_my_trades(sym)
    assert sum(t["amount"] for t in trades) == pytest.approx(2 * held)
    assert {t["side"] for t in trades} == {"buy", "sell"}
    positions = [p for p in await client.fetch_positions([sym]) if p["contracts"]]
    assert positions == []
