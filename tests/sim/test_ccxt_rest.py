"""The real ccxt REST client (`ccxt.async_support.deribit`) against the simulator: markets,
market data, balances, positions, orders and Deribit's errors, unmodified except for
`urls['api']`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from _sim_ccxt import ccxt_client

from hedgerd.sim.command import Simulator, running_simulator

KEY, SECRET = "ccxt-key", "ccxt-secret"
PERP = "BTC/USD:BTC"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(stepped=True, seed=11, accounts=[(KEY, SECRET)]) as s:
        yield s


@pytest.fixture
async def ex(sim: Simulator) -> AsyncIterator[Any]:
    async with ccxt_client(sim, KEY, SECRET) as client:
        yield client


async def test_load_markets(ex: Any) -> None:
    perp = ex.market(PERP)
    assert perp["id"] == "BTC-PERPETUAL" and perp["swap"] and perp["inverse"] and not perp["linear"]
    assert perp["contractSize"] == 10 and perp["settle"] == "BTC"
    assert perp["precision"]["amount"] == 10 and perp["precision"]["price"] == 0.5
    eth = ex.market("ETH/USD:ETH")
    assert eth["contractSize"] == 1 and eth["inverse"]
    linear = ex.markets_by_id["BTC_USDC-PERPETUAL"][0]
    assert linear["linear"] and not linear["inverse"] and linear["settle"] == "USDC"
    futures = [m for m in ex.markets.values() if m["future"] and m["base"] == "BTC"]
    assert futures and all(m["inverse"] and m["contractSize"] == 10 for m in futures)
    options = [m for m in ex.markets.values() if m["option"] and m["base"] == "BTC"]
    assert len(options) > 20
    for m in options[:50]:
        name = m["id"]  # e.g. BTC-6JAN26-90000-C
        _, _, strike, cp = name.split("-")
        assert m["strike"] == float(strike)
        assert m["optionType"] == {"C": "call", "P": "put"}[cp]
        expiry = datetime.fromtimestamp(m["expiry"] / 1000, tz=UTC)
        assert (expiry.hour, expiry.minute) == (8, 0)  # Deribit settles at 08:00 UTC
        assert m["contractSize"] == 1 and m["inverse"] and m["settle"] == "BTC"
        assert m["precision"]["amount"] == 0.1 and m["limits"]["amount"]["min"] == 0.1


async def test_ticker_book_balance(ex: Any) -> None:
    t = await ex.fetch_ticker(PERP)
    assert t["bid"] < t["ask"] and t["markPrice"] > 0 and t["indexPrice"] > 0
    assert "current_funding" in t["info"] and "funding_8h" in t["info"]
    book = await ex.fetch_order_book(PERP)
    bids, asks = book["bids"], book["asks"]
    assert bids[0][0] == t["bid"] and asks[0][0] == t["ask"]
    assert [b[0] for b in bids] == sorted((b[0] for b in bids), reverse=True)
    assert [a[0] for a in asks] == sorted(a[0] for a in asks)
    opt = next(m for m in ex.markets.values() if m["option"] and m["base"] == "BTC")
    ot = await ex.fetch_ticker(opt["symbol"])
    assert ot["info"]["mark_iv"] > 0 and set(ot["info"]["greeks"]) >= {
        "delta",
        "gamma",
        "vega",
        "theta",
    }
    bal = await ex.fetch_balance({"code": "BTC"})
    assert bal["BTC"]["total"] == 10
    eth = await ex.fetch_balance({"code": "ETH"})
    assert eth["ETH"]["total"] == 100


async def test_orders_round_trip_positions_and_trades(ex: Any) -> None:
    before = (await ex.fetch_balance({"code": "BTC"}))["BTC"]["total"]
    # a resting post-only bid below the market, with a label
    t = await ex.fetch_ticker(PERP)
    bid_px = t["bid"] - 500
    resting = await ex.create_order(
        PERP, "limit", "buy", 50, bid_px, {"postOnly": True, "label": "hedge-1"}
    )
    assert resting["status"] == "open" and resting["info"]["label"] == "hedge-1"
    assert resting["info"]["post_only"] is True
    open_orders = await ex.fetch_open_orders(PERP)
    assert [o["id"] for o in open_orders] == [resting["id"]]
    cancelled = await ex.cancel_order(resting["id"], PERP)
    assert cancelled["status"] == "canceled"
    assert await ex.fetch_open_orders(PERP) == []
    # a market round trip: the BTC balance moves by amount * (1/entry - 1/exit) - fees
    buy = await ex.create_order(PERP, "market", "buy", 100, None, {"label": "rt-buy"})
    assert buy["status"] == "closed" and buy["filled"] == 100
    positions = await ex.fetch_positions([PERP])
    assert positions[0]["contracts"] == 100 and positions[0]["side"] == "long"
    assert positions[0]["info"]["size"] == 100
    sell = await ex.create_order(
        PERP, "market", "sell", 100, None, {"reduceOnly": True, "label": "rt-sell"}
    )
    assert sell["status"] == "closed" and sell["info"]["reduce_only"] is True
    trades = await ex.fetch_my_trades(PERP)
    assert sorted(tr["info"]["label"] for tr in trades) == ["rt-buy", "rt-sell"]
    entry = next(tr["price"] for tr in trades if tr["side"] == "buy")
    exit_ = next(tr["price"] for tr in trades if tr["side"] == "sell")
    fees = sum(tr["fee"]["cost"] for tr in trades)
    after = (await ex.fetch_balance({"code": "BTC"}))["BTC"]["total"]
    assert after - before == pytest.approx(100 * (1 / entry - 1 / exit_) - fees, abs=1e-10)
    positions = await ex.fetch_positions([PERP])
    assert not positions or positions[0]["contracts"] in (0, None)
    # cancel_all_orders
    for px in (bid_px, bid_px - 100):
        await ex.create_order(PERP, "limit", "buy", 10, px)
    await ex.cancel_all_orders(PERP)
    assert await ex.fetch_open_orders(PERP) == []


async def test_bad_requests_get_deribit_errors(ex: Any) -> None:
    with pytest.raises(ccxt_async.ExchangeError) as unknown:
        await ex.public_get_ticker({"instrument_name": "BTC-NOPE"})
    body = json.loads(str(unknown.value).removeprefix("deribit "))
    # Deribit answers an unknown name with "Invalid params" on instrument_name (or 10020)
    assert body["error"]["code"] in (-32602, 10020) and body["testnet"] is True
    with pytest.raises(ccxt_async.BadRequest):  # not a multiple of the 10 USD contract
        await ex.private_get_buy(
            {"instrument_name": "BTC-PERPETUAL", "amount": 15, "type": "market"}
        )
    with pytest.raises(ccxt_async.InsufficientFunds):
        await ex.private_get_buy(
            {"instrument_name": "BTC-PERPETUAL", "amount": 100_000_000, "type": "market"}
        )
    t = await ex.fetch_ticker(PERP)
    with pytest.raises(ccxt_async.InvalidOrder):  # a post-only buy at the ask would take
        await ex.create_order(
            PERP, "limit", "buy", 10, t["ask"], {"postOnly": True, "reject_post_only": True}
        )
    with pytest.raises(ccxt_async.BadRequest):
        await ex.private_get_buy(
            {"instrument_name": "BTC-PERPETUAL", "amount": "ten", "type": "market"}
        )
    with pytest.raises(ccxt_async.OrderNotFound):
        await ex.cancel_order("999999", PERP)
    bad = ccxt_async.deribit({"apiKey": KEY, "secret": "wrong"})
    bad.urls["api"] = dict(ex.urls["api"])
    try:
        with pytest.raises(ccxt_async.AuthenticationError):
            await bad.private_get_get_account_summary({"currency": "BTC"})
    finally:
        await bad.close()
