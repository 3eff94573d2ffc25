"""The real ccxt clients against the simulator's spot pairs and USDC linear perpetuals:
`load_markets` files every kind the way ccxt's Deribit parser does (spot; linear and inverse
swaps; futures; options), spot and linear orders go through `create_order`, and
`fetch_balance` shows the coin and USDC moving by exactly the trades' amounts and fees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import ccxt.pro as ccxt_pro
import pytest
from _sim_ccxt import ccxt_client

from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.scenario import load_scenario
from hedgerd.venues.ccxt_venue import instrument_from_market
from hedgerd.venues.deribit.names import parse_instrument_name

KEY, SECRET = "ccxt-spot-key", "ccxt-spot-secret"
SPOT, LINEAR, INVERSE = "BTC/USDC", "BTC/USDC:USDC", "BTC/USD:BTC"
SPOT_TAKER = 0.001
EXACT = 1e-9  # settlement-currency tolerance


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # the default scenario with a non-zero spot taker fee, so the fee's currency shows
    sc = load_scenario(seed=13)
    sc = sc.model_copy(update={"fees": sc.fees.model_copy(update={"spot_taker": SPOT_TAKER})})
    async with running_simulator(scenario=sc, stepped=True, accounts=[(KEY, SECRET)]) as s:
        yield s


@pytest.fixture
async def ex(sim: Simulator) -> AsyncIterator[Any]:
    async with ccxt_client(sim, KEY, SECRET) as client:
        yield client


async def test_load_markets_files_every_kind(ex: Any, sim: Simulator) -> None:
    types = {m["type"] for m in ex.markets.values()}
    assert types == {"spot", "swap", "future", "option"}
    for sym, base in ((SPOT, "BTC"), ("ETH/USDC", "ETH")):
        m = ex.market(sym)
        assert m["id"] == f"{base}_USDC" and m["spot"] and m["type"] == "spot"
        assert not (m["swap"] or m["future"] or m["option"] or m["contract"])
        assert (m["base"], m["quote"]) == (base, "USDC")
        assert m["linear"] is None and m["inverse"] is None  # ccxt sets these on contracts
        assert m["limits"]["amount"]["min"] == 0.0001 and m["contractSize"] == 0.0001
    lin = ex.market(LINEAR)
    assert lin["id"] == "BTC_USDC-PERPETUAL" and lin["swap"] and lin["type"] == "swap"
    assert lin["linear"] is True and lin["inverse"] is False
    assert lin["settle"] == "USDC" and lin["contractSize"] == 0.001
    assert ex.market("ETH/USDC:USDC")["contractSize"] == 0.01
    inv = ex.market(INVERSE)
    assert inv["swap"] and inv["inverse"] is True and inv["linear"] is False
    assert inv["settle"] == "BTC" and inv["contractSize"] == 10
    futures = [m for m in ex.markets.values() if m["future"]]
    assert futures and all(m["inverse"] and m["settle"] == m["base"] for m in futures)
    options = [m for m in ex.markets.values() if m["option"]]
    assert options and all(m["settle"] == m["base"] for m in options)
    # the daemon's normalisation reads every market; for spot, swaps and futures it agrees
    # with its name parser on everything but the fees (this scenario charges a spot taker
    # fee). Options are left out: the listing's tick is the low step of tick_size_steps.
    for m in ex.markets.values():
        inst = instrument_from_market("deribit", m)
        assert inst is not None, m["id"]
        if not m["option"]:
            parsed = parse_instrument_name(m["id"])
            assert inst == replace(parsed, maker_fee=inst.maker_fee, taker_fee=inst.taker_fee)
    # currencies: the venue's list, each accepted by get_instruments
    assert {"BTC", "ETH", "USDC", "USDT", "EURR"} <= set(ex.currencies)
    assert sim.state()["counters"]["internal_errors"] == 0


async def test_spot_ticker_and_book(ex: Any) -> None:
    t = await ex.fetch_ticker(SPOT)
    assert t["bid"] < t["markPrice"] < t["ask"] and t["markPrice"] == t["indexPrice"]
    assert t["low"] <= t["last"] <= t["high"]
    book = await ex.fetch_order_book(SPOT, 5)
    assert book["bids"][0][0] == t["bid"] and book["asks"][0][0] == t["ask"]


async def test_spot_orders_move_coin_and_usdc(ex: Any, sim: Simulator) -> None:
    b0 = await ex.fetch_balance()
    buy = await ex.create_order(SPOT, "market", "buy", 0.05)
    assert buy["status"] == "closed" and buy["filled"] == 0.05
    t = await ex.fetch_ticker(SPOT)
    sell = await ex.create_order(SPOT, "limit", "sell", 0.02, t["bid"])
    assert sell["status"] == "closed"
    trades = await ex.fetch_my_trades(SPOT)
    assert {tr["id"][: len("BTC_USDC-")] for tr in trades} == {"BTC_USDC-"}
    assert {tr["info"]["fee_currency"] for tr in trades} == {"USDC"}
    coin = sum(tr["amount"] * (1 if tr["side"] == "buy" else -1) for tr in trades)
    usdc = sum(tr["amount"] * tr["price"] * (-1 if tr["side"] == "buy" else 1) for tr in trades)
    fees = sum(float(tr["info"]["fee"]) for tr in trades)
    assert fees == pytest.approx(
        SPOT_TAKER * sum(tr["amount"] * tr["price"] for tr in trades), abs=EXACT
    )
    b1 = await ex.fetch_balance()
    assert coin == pytest.approx(0.03, abs=EXACT)
    assert b1["BTC"]["total"] - b0["BTC"]["total"] == pytest.approx(coin, abs=EXACT)
    assert b1["USDC"]["total"] - b0["USDC"]["total"] == pytest.approx(usdc - fees, abs=EXACT)
    assert b1["ETH"]["total"] == b0["ETH"]["total"]
    # a resting spot buy holds USDC: free falls, total does not
    low = t["bid"] - 2_000
    resting = await ex.create_order(SPOT, "limit", "buy", 0.1, low)
    assert resting["status"] == "open"
    b2 = await ex.fetch_balance()
    held = 0.1 * low * (1 + SPOT_TAKER)
    assert b2["USDC"]["total"] == b1["USDC"]["total"]
    assert b1["USDC"]["free"] - b2["USDC"]["free"] == pytest.approx(held, abs=EXACT)
    assert [o["id"] for o in await ex.fetch_open_orders(SPOT)] == [resting["id"]]
    await ex.cancel_order(resting["id"], SPOT)
    assert (await ex.fetch_balance())["USDC"]["free"] == pytest.approx(
        b1["USDC"]["free"], abs=EXACT
    )
    assert sim.state()["counters"]["internal_errors"] == 0


async def test_linear_perpetual_round_trip_in_usdc(ex: Any, sim: Simulator) -> None:
    b0 = await ex.fetch_balance()
    buy = await ex.create_order(LINEAR, "market", "buy", 0.02)
    assert buy["status"] == "closed" and buy["filled"] == 0.02
    positions = await ex.fetch_positions([LINEAR])
    assert [p["info"]["size"] for p in positions] == [0.02]  # coin
    assert positions[0]["side"] == "long" and positions[0]["symbol"] == LINEAR
    sim.advance(60_000)
    sell = await ex.create_order(LINEAR, "market", "sell", 0.02, None, {"reduceOnly": True})
    assert sell["status"] == "closed"
    trades = await ex.fetch_my_trades(LINEAR)
    assert {tr["info"]["fee_currency"] for tr in trades} == {"USDC"}
    entry = next(tr["price"] for tr in trades if tr["side"] == "buy")
    exit_ = next(tr["price"] for tr in trades if tr["side"] == "sell")
    fees = sum(float(tr["info"]["fee"]) for tr in trades)
    assert fees == pytest.approx(0.0005 * 0.02 * (entry + exit_), abs=EXACT)
    pos = await ex.private_get_get_position({"instrument_name": "BTC_USDC-PERPETUAL"})
    funding = pos["result"]["realized_funding"]
    b1 = await ex.fetch_balance()
    want = 0.02 * (exit_ - entry) - fees + funding
    assert b1["USDC"]["total"] - b0["USDC"]["total"] == pytest.approx(want, abs=EXACT)
    assert b1["BTC"]["total"] == b0["BTC"]["total"]  # USDC-margined: no coin moves


async def test_spot_over_the_websocket(sim: Simulator) -> None:
    async with ccxt_client(sim, KEY, SECRET, cls=ccxt_pro.deribit) as client:
        book = await asyncio.wait_for(client.watch_order_book(SPOT), 10)
        assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
        ticker = await asyncio.wait_for(client.watch_ticker(SPOT), 10)
        assert ticker["symbol"] == SPOT and ticker["low"] <= ticker["last"] <= ticker["high"]
