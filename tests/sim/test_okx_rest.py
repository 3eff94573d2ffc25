"""The real ccxt OKX REST client (`ccxt.async_support.okx`) against the simulator's OKX
dialect: markets, market data, the unified account, orders, fills, positions with Greeks,
the dead-man timer, authentication and rate limits; unmodified except for `urls['api']`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest
from _okx_ccxt import KEY, PASSPHRASE, SECRET, okx_client, okx_dialect, okx_simulator

from hedgerd.sim.command import Simulator, running_simulator
from pinned_clock import TEST_START_MS

START_MS = TEST_START_MS  # a calendar test: scripts/calendar_check runs it at other starts
INV_SWAP = "BTC/USD:BTC"
LIN_SWAP = "BTC/USDT:USDT"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with okx_simulator(seed=11) as s:
        yield s


@pytest.fixture
async def ex(sim: Simulator) -> AsyncIterator[Any]:
    async with okx_client(sim) as client:
        yield client


def _option(ex: Any, now_ms: int, base: str = "BTC", cp: str = "C") -> dict[str, Any]:
    """A liquid option: the nearest expiry a day or more away, the middle strike."""
    opts = [
        m
        for m in ex.markets.values()
        if m["option"] and m["base"] == base and m["id"].endswith(f"-{cp}")
    ]
    expiry = min(m["expiry"] for m in opts if m["expiry"] - now_ms >= 86_400_000)
    same = sorted((m for m in opts if m["expiry"] == expiry), key=lambda m: m["strike"])
    return same[len(same) // 2]


async def test_load_markets_all_four_types(ex: Any) -> None:
    types = {m["type"] for m in ex.markets.values()}
    assert {"spot", "swap", "future", "option"} <= types
    inv = ex.market(INV_SWAP)
    assert inv["id"] == "BTC-USD-SWAP" and inv["inverse"] and inv["contractSize"] == 100
    lin = ex.market(LIN_SWAP)
    assert lin["id"] == "BTC-USDT-SWAP" and lin["linear"] and lin["contractSize"] == 0.01
    assert ex.market("ETH/USD:ETH")["contractSize"] == 10
    assert ex.market("ETH/USDT:USDT")["contractSize"] == 0.1
    assert ex.market("BTC/USDT")["spot"] and ex.market("ETH/USDT")["spot"]
    futures = [m for m in ex.markets.values() if m["future"] and m["base"] == "BTC"]
    assert futures and all(m["inverse"] and m["contractSize"] == 100 for m in futures)
    for base, mult in (("BTC", "0.01"), ("ETH", "0.1")):
        opts = [m for m in ex.markets.values() if m["option"] and m["base"] == base]
        assert len(opts) > 20
        for m in opts[:40]:
            # ccxt takes ctVal (1) as the contract size and ignores ctMult (okx.md §1)
            assert m["contractSize"] == 1 and m["inverse"] and m["settle"] == base
            assert m["info"]["ctMult"] == mult and m["info"]["uly"] == f"{base}-USD"
            assert m["symbol"].startswith(f"{base}/USD:{base}-")
            expiry = datetime.fromtimestamp(m["expiry"] / 1000, tz=UTC)
            assert (expiry.hour, expiry.minute) == (8, 0)


async def test_ticker_tickers_book(ex: Any, sim: Simulator) -> None:
    t = await ex.fetch_ticker(LIN_SWAP)
    assert 0 < t["bid"] < t["ask"] and t["low"] <= t["last"] <= t["high"]
    ts = await ex.fetch_tickers([INV_SWAP, LIN_SWAP])
    assert set(ts) == {INV_SWAP, LIN_SWAP}
    book = await ex.fetch_order_book(INV_SWAP, 5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    opt = _option(ex, sim.now_ms())
    ob = await ex.fetch_order_book(opt["symbol"], 3)
    assert 0 < ob["bids"][0][0] < ob["asks"][0][0] < 1  # premium in coin


async def test_balance_of_a_new_account(ex: Any) -> None:
    bal = await ex.fetch_balance()
    assert bal["total"] == {"BTC": 10, "ETH": 100, "USDT": 100_000}
    assert bal["free"] == bal["total"]


async def test_orders_limit_ioc_post_only_reduce_only(ex: Any, sim: Simulator) -> None:
    book = await ex.fetch_order_book(INV_SWAP, 1)
    bid, ask = book["bids"][0][0], book["asks"][0][0]
    # a resting limit far below the bid, found by id and by clOrdId, then cancelled
    rest = await ex.create_order(
        INV_SWAP, "limit", "buy", 3, round(bid * 0.9, 1), {"clientOrderId": "rest1"}
    )
    got = await ex.fetch_order(rest["id"], INV_SWAP)
    assert got["status"] == "open" and got["amount"] == 3 and got["clientOrderId"] == "rest1"
    by_cl = await ex.fetch_order(None, INV_SWAP, {"clOrdId": "rest1"})
    assert by_cl["id"] == rest["id"]
    assert [o["id"] for o in await ex.fetch_open_orders(INV_SWAP)] == [rest["id"]]
    await ex.cancel_order(rest["id"], INV_SWAP)
    assert (await ex.fetch_order(rest["id"], INV_SWAP))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order(rest["id"], INV_SWAP)
    # IOC at the ask fills; a post-only buy at the ask is cancelled, not filled
    ioc = await ex.create_order(INV_SWAP, "limit", "buy", 5, ask, {"timeInForce": "IOC"})
    assert (await ex.fetch_order(ioc["id"], INV_SWAP))["filled"] == 5
    po = await ex.create_order(INV_SWAP, "limit", "buy", 1, ask, {"postOnly": True})
    po_state = await ex.fetch_order(po["id"], INV_SWAP)
    assert po_state["status"] == "canceled" and po_state["filled"] == 0
    # reduce-only: capped at the position, refused without one or in its direction
    red = await ex.create_order(INV_SWAP, "market", "sell", 9, None, {"reduceOnly": True})
    assert (await ex.fetch_order(red["id"], INV_SWAP))["filled"] == 5
    with pytest.raises(ccxt.ExchangeError, match="51169"):
        await ex.create_order(INV_SWAP, "market", "sell", 1, None, {"reduceOnly": True})
    # a market order on the linear swap, and trades listed in fills-history
    await ex.create_order(LIN_SWAP, "market", "buy", 0.5)
    trades = await ex.fetch_my_trades(LIN_SWAP)
    assert len(trades) == 1 and trades[0]["amount"] == 0.5 and trades[0]["side"] == "buy"
    assert trades[0]["fee"]["currency"] == "USDT" and trades[0]["fee"]["cost"] > 0
    positions = {p["symbol"]: p for p in await ex.fetch_positions()}
    assert set(positions) == {LIN_SWAP}
    assert positions[LIN_SWAP]["contracts"] == 0.5 and positions[LIN_SWAP]["side"] == "long"


async def test_order_errors(ex: Any) -> None:
    bid = (await ex.fetch_order_book(INV_SWAP, 1))["bids"][0][0]
    px = round(bid * 0.9, 1)
    await ex.create_order(INV_SWAP, "limit", "buy", 1, px, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.InvalidOrder, match="51016"):
        await ex.create_order(INV_SWAP, "limit", "buy", 1, px, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.BadRequest, match="clOrdId"):
        await ex.create_order(INV_SWAP, "limit", "buy", 1, px, {"clientOrderId": "hg1-a-b"})
    with pytest.raises(ccxt.BadRequest, match="clOrdId"):
        await ex.create_order(INV_SWAP, "limit", "buy", 1, px, {"clientOrderId": "x" * 33})
    with pytest.raises(ccxt.InsufficientFunds, match="51008"):
        await ex.create_order(INV_SWAP, "market", "buy", 1_000_000)
    with pytest.raises(ccxt.OrderNotFound, match="51603"):
        await ex.fetch_order("123", INV_SWAP)


async def test_option_position_greeks(ex: Any, sim: Simulator) -> None:
    opt = _option(ex, sim.now_ms())
    ask = (await ex.fetch_order_book(opt["symbol"], 1))["asks"][0][0]
    await ex.create_order(opt["symbol"], "limit", "buy", 10, ask, {"timeInForce": "IOC"})
    (pos,) = await ex.fetch_positions([opt["symbol"]])
    info = pos["info"]
    assert pos["contracts"] == 10 and info["pos"] == "10"
    coin = 10 * 0.01  # contracts * ctMult
    delta_bs, delta_pa = float(info["deltaBS"]), float(info["deltaPA"])
    assert 0 < delta_bs < coin
    mark = float(info["markPx"])
    assert delta_pa == pytest.approx(delta_bs - mark * coin, abs=1e-9)  # coin numeraire
    for k in ("gammaBS", "vegaBS", "thetaBS", "gammaPA", "vegaPA", "thetaPA"):
        assert info[k] != ""
    (g,) = (await ex.private_get_account_greeks({"ccy": "BTC"}))["data"]
    assert float(g["deltaBS"]) == pytest.approx(delta_bs, abs=1e-9)
    bal = await ex.fetch_balance()
    premium = ask * coin
    assert bal["total"]["BTC"] < 10  # premium and fee paid, the option's value added back
    assert bal["total"]["BTC"] == pytest.approx(10 - premium + mark * coin, abs=1e-3)


async def test_cancel_all_after_fires_on_the_simulated_clock(ex: Any, sim: Simulator) -> None:
    bid = (await ex.fetch_order_book(INV_SWAP, 1))["bids"][0][0]
    o = await ex.create_order(INV_SWAP, "limit", "buy", 1, round(bid * 0.9, 1))
    reply = await ex.cancel_all_orders_after(10_000)
    trigger = int(reply["data"][0]["triggerTime"])
    assert trigger == sim.now_ms() + 10_000
    sim.advance(9_000)
    assert (await ex.fetch_order(o["id"], INV_SWAP))["status"] == "open"
    await ex.cancel_all_orders_after(10_000)  # renewed: the countdown restarts
    sim.advance(9_000)
    assert (await ex.fetch_order(o["id"], INV_SWAP))["status"] == "open"
    sim.advance(1_500)
    assert (await ex.fetch_order(o["id"], INV_SWAP))["status"] == "canceled"
    with pytest.raises(ccxt.BadRequest, match="timeOut"):
        await ex.cancel_all_orders_after(5_000)  # OKX: 0 or 10..120 s


async def test_bad_signature_and_stale_timestamp(sim: Simulator) -> None:
    async with okx_client(sim, secret="wrong", load_markets=False) as bad:
        with pytest.raises(ccxt.AuthenticationError, match="50113"):
            await bad.fetch_balance()
    async with okx_client(sim, passphrase="wrong", load_markets=False) as bad:
        with pytest.raises(ccxt.AuthenticationError, match="50105"):
            await bad.fetch_balance()
    async with okx_client(sim, load_markets=False) as late:
        late.options["timeDifference"] += 10 * 60_000  # signs ten minutes in the past
        with pytest.raises(ccxt.InvalidNonce, match="50102"):
            await late.fetch_balance()
    # strict mode: only the simulated clock counts (a stepped clock far from the wall's)
    okx_dialect(sim).auth_clock = "sim"
    async with okx_client(sim, load_markets=False) as ok:
        sim.advance(60_000)  # a minute of simulated time the client has not seen
        with pytest.raises(ccxt.InvalidNonce):
            await ok.fetch_balance()
        await ok.load_time_difference()
        assert (await ok.fetch_balance())["total"]["BTC"] == 10


async def test_order_rate_limit_answers_50011(ex: Any, sim: Simulator) -> None:
    okx_dialect(sim).limiter.now = lambda: 1000.0  # a frozen wall clock: one 2 s window
    bid = (await ex.fetch_order_book(INV_SWAP, 1))["bids"][0][0]
    px = round(bid * 0.8, 1)
    for _ in range(60):
        await ex.create_order(INV_SWAP, "limit", "buy", 1, px)
    with pytest.raises(ccxt.RateLimitExceeded, match="50011"):
        await ex.create_order(INV_SWAP, "limit", "buy", 1, px)
    # per instrument: another one still has room
    lin_bid = (await ex.fetch_order_book(LIN_SWAP, 1))["bids"][0][0]
    await ex.create_order(LIN_SWAP, "limit", "buy", 1, round(lin_bid * 0.8, 1))


async def test_funding_every_eight_hours() -> None:
    # minute ticks: up to eight simulated hours pass in a fraction of a second
    async with okx_simulator(tick_ms=60_000) as sim, okx_client(sim) as ex:
        await _funding_every_eight_hours(ex, sim)


async def _funding_every_eight_hours(ex: Any, sim: Simulator) -> None:
    await ex.create_order(INV_SWAP, "market", "buy", 100)
    venue = sim.okx
    acct = venue.accounts["client"]
    before = acct.cash["BTC"]
    rate = venue.spec.funding_rate_8h
    nxt = venue.next_funding_ms()
    sim.advance(nxt - sim.now_ms() - 1_000)
    assert acct.cash["BTC"] == before
    inst = venue.instruments["BTC-USD-SWAP"]
    sim.advance(1_000)
    # funding at the mark of the funding instant: 100 contracts x 100 USD / mark x rate
    mark = venue.mark_price(inst)
    assert acct.cash["BTC"] == pytest.approx(before - 100 * 100 / mark * rate, rel=1e-9)
    rates = await ex.fetch_funding_rate(INV_SWAP)
    assert rates["fundingRate"] == rate and rates["fundingTimestamp"] == nxt + 8 * 3_600_000


async def test_one_index_two_venues(sim: Simulator) -> None:
    world = sim.world
    assert world.okx is sim.okx
    async with okx_client(sim, load_markets=False) as okx:
        deribit = ccxt_async.deribit()
        deribit.urls["api"] = sim.ccxt_urls()
        try:
            for _ in range(5):
                o = await okx.public_get_market_index_tickers({"instId": "BTC-USD"})
                d = await deribit.public_get_get_index_price({"index_name": "btc_usd"})
                assert float(o["data"][0]["idxPx"]) == d["result"]["index_price"]
                assert sim.okx.index_price("ETH") == world.deribit.index_price("ETH")
                sim.advance(37_000)
        finally:
            await deribit.close()


async def test_demo_venue_needs_the_simulated_trading_header() -> None:
    async with running_simulator(
        stepped=True,
        venues=("deribit", "okx"),
        accounts=[(KEY, SECRET)],
        api_passphrase=PASSPHRASE,
        okx_demo=True,
    ) as sim:
        async with okx_client(sim, load_markets=False) as live:
            with pytest.raises(ccxt.AuthenticationError, match="50101"):
                await live.fetch_balance()
        demo = ccxt_async.okx({"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE})
        demo.urls["test"] = sim.okx_urls()
        demo.set_sandbox_mode(True)  # demo URLs (ours) and x-simulated-trading: 1
        try:
            await demo.load_time_difference()
            assert (await demo.fetch_balance())["total"]["USDT"] == 100_000
        finally:
            await demo.close()


async def test_timeout_after_accept_and_thin_depth_faults(ex: Any, sim: Simulator) -> None:
    sim.faults.add(
        {"kind": "timeout_after_accept", "venue": "okx", "count": 1, "hold_s": 5}, sim.now_ms()
    )
    ex.timeout = 1_000  # ms: the client gives up; the order exists all the same
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(INV_SWAP, "limit", "buy", 2, 1_000.0, {"clientOrderId": "lost1"})
    found = await ex.fetch_order(None, INV_SWAP, {"clOrdId": "lost1"})
    assert found["status"] == "open" and found["amount"] == 2
    sim.faults.add(
        {"kind": "thin_depth", "venue": "okx", "instruments": ["BTC-USD-SWAP"],
         "depth_amount": 3, "side": "asks"},
        sim.now_ms(),
    )  # fmt: skip
    sim.advance(250)
    book = await ex.fetch_order_book(INV_SWAP, 50)
    assert sum(a[1] for a in book["asks"]) == 3
    ioc = await ex.create_order(
        INV_SWAP, "limit", "buy", 10, round(book["asks"][-1][0] * 1.01, 1), {"timeInForce": "IOC"}
    )
    got = await ex.fetch_order(ioc["id"], INV_SWAP)
    assert got["filled"] == 3 and got["status"] == "canceled"


async def test_spot_orders_move_both_balances(ex: Any, sim: Simulator) -> None:
    ask = (await ex.fetch_order_book("BTC/USDT", 1))["asks"][0][0]
    await ex.create_order("BTC/USDT", "market", "buy", 0.01)  # ccxt: tgtCcy base_ccy
    bal = await ex.fetch_balance()
    fee = 0.01 * sim.okx.spec.spot_taker  # a buyer pays the fee in the coin
    assert bal["total"]["BTC"] == pytest.approx(10 + 0.01 - fee, abs=1e-12)
    assert bal["total"]["USDT"] == pytest.approx(100_000 - 0.01 * ask, abs=1e-6)
    await ex.create_order("BTC/USDT", "limit", "sell", 0.005, round(ask * 1.05, 1))
    bal = await ex.fetch_balance()
    assert bal["free"]["BTC"] == pytest.approx(bal["total"]["BTC"] - 0.005, abs=1e-12)
    # OKX's own default for a market buy: sz in the quote currency
    await ex.create_order("BTC/USDT", "market", "buy", 500, None, {"tgtCcy": "quote_ccy"})
    costs = sorted(t["cost"] for t in await ex.fetch_my_trades("BTC/USDT"))
    assert len(costs) == 2 and costs[0] == pytest.approx(500, rel=1e-3)


async def test_deep_books_come_from_books_full(ex: Any) -> None:
    book = await ex.fetch_order_book(INV_SWAP, 500)  # ccxt: > 400 levels -> market/books-full
    assert len(book["bids"]) == len(book["asks"]) == 10  # the scenario's synthetic levels


async def test_history_lists_page_back_by_id(ex: Any) -> None:
    """OKX pages `trade/fills-history` by `billId` and `trade/orders-history` /
    `orders-pending` by `ordId` (`after` = older than it). A dialect that ignores `after`
    answers page 1 again: a client paging back loops on the same page (the adapter's
    fill and order searches) and never sees older records."""
    ask = (await ex.fetch_order_book(INV_SWAP, 1))["asks"][0][0]
    for _ in range(3):
        await ex.create_order(INV_SWAP, "limit", "buy", 1, ask * 1.01, {"timeInForce": "IOC"})
    for method, key in (
        (ex.private_get_trade_fills_history, "billId"),
        (ex.private_get_trade_orders_history, "ordId"),
    ):
        first = (await method({"instType": "SWAP", "limit": "2"}))["data"]
        rest = (await method({"instType": "SWAP", "limit": "2", "after": first[-1][key]}))["data"]
        ids = [r[key] for r in first + rest]
        assert len(first) == 2 and len(ids) == len(set(ids)) >= 3, (method, ids)
        assert all(int(r[key]) < int(first[-1][key]) for r in rest)
