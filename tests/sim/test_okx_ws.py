"""The real ccxt.pro OKX client (and a raw WebSocket where the test checks the wire itself)
against the simulator's OKX dialect: books chained by seqId with a true CRC32 checksum,
tickers, private orders/positions/account streams, orders over WebSocket, ping/pong,
login failures, the shared order rate limit and the wire faults."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro
import pytest
from _okx_ccxt import okx_client, okx_dialect, okx_simulator

from hedgerd.sim.command import Simulator, running_simulator
from pinned_clock import TEST_START_MS

START_MS = TEST_START_MS  # a calendar test: scripts/calendar_check runs it at other starts
INV_SWAP = "BTC/USD:BTC"
LIN_SWAP = "BTC/USDT:USDT"
WAIT_S = 10.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with okx_simulator(seed=5) as s:
        yield s


@pytest.fixture
async def pro(sim: Simulator) -> AsyncIterator[Any]:
    async with okx_client(sim, cls=ccxt_pro.okx) as client:
        yield client


@pytest.fixture
async def rest(sim: Simulator) -> AsyncIterator[Any]:
    async with okx_client(sim) as client:
        yield client


def _crc(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's checksum, written from its documentation (okx.md §3), not from the simulator:
    25 levels interleaved bid px:sz, ask px:sz, missing levels skipped; signed CRC32."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    value = zlib.crc32(":".join(parts).encode())
    return value - 2**32 if value > 2**31 - 1 else value


async def _recv(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await asyncio.wait_for(ws.receive(), WAIT_S)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.data if msg.data in ("pong",) else json.loads(msg.data)


async def ccxt_book_checksum_matches_the_feed(sim: Simulator, pro: Any, ob: Any) -> None:
    """Catch ccxt's BTC-USD-SWAP book up with the last update the venue sent, then check that
    ccxt's pre-4.5.60 checksum of its parsed book (computed exactly as it did) equals the
    checksum recomputed (okx.md) from the levels the venue sent."""
    feed = okx_dialect(sim).ws._books[("books", "BTC-USD-SWAP")]
    while ob["nonce"] != feed.seq_id:
        ob = await asyncio.wait_for(pro.watch_order_book(INV_SWAP), WAIT_S)
    parts: list[Any] = []
    for i in range(25):
        for side in ("bids", "asks"):
            if i < len(ob[side]):
                parts += [pro.number_to_string(x) for x in ob[side][i][:2]]
    sent_b = sorted(((p, lv[1]) for p, lv in feed.bids.items()), key=lambda x: -float(x[0]))
    sent_a = sorted(((p, lv[1]) for p, lv in feed.asks.items()), key=lambda x: float(x[0]))
    assert pro.crc32(":".join(parts), True) == _crc(sent_b, sent_a)


async def test_books_snapshot_updates_checksum_on_the_wire(sim: Simulator, rest: Any) -> None:
    arg = {"channel": "books", "instId": "BTC-USD-SWAP"}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.okx_ws_url + "/public") as ws,
    ):
        await ws.send_str(json.dumps({"op": "subscribe", "args": [arg]}))
        ack = await _recv(ws)
        assert ack["event"] == "subscribe" and ack["arg"] == arg and ack["connId"]
        snap = await _recv(ws)
        assert snap["arg"] == arg and snap["action"] == "snapshot"
        data = snap["data"][0]
        assert data["prevSeqId"] == -1
        bids = {lv[0]: lv[1] for lv in data["bids"]}
        asks = {lv[0]: lv[1] for lv in data["asks"]}
        seq = data["seqId"]
        updates = 0
        for _ in range(6):
            sim.advance(2_000)
            await rest.create_order(INV_SWAP, "market", "buy", 50)  # eats the best ask
            sim.advance(250)
            while True:
                try:
                    msg = await asyncio.wait_for(ws.receive(), 0.5)
                except TimeoutError:
                    break
                up = json.loads(msg.data)
                assert up["action"] == "update" and up["arg"] == arg
                d = up["data"][0]
                assert d["prevSeqId"] == seq and d["seqId"] > seq  # the chain holds
                seq = d["seqId"]
                for side, book in (("bids", bids), ("asks", asks)):
                    for px, sz, _, _ in d[side]:
                        if sz == "0":
                            book.pop(px)
                        else:
                            book[px] = sz
                top_b = sorted(bids.items(), key=lambda x: -float(x[0]))
                top_a = sorted(asks.items(), key=lambda x: float(x[0]))
                assert d["checksum"] == _crc(top_b, top_a)
                updates += 1
        assert updates >= 6
        # the book kept from the stream is the venue's book
        full = await rest.fetch_order_book(INV_SWAP, 400)
        assert [float(p) for p, _ in top_b[:20]] == [b[0] for b in full["bids"][:20]]
        assert [float(p) for p, _ in top_a[:20]] == [a[0] for a in full["asks"][:20]]
        # text ping, text pong
        await ws.send_str("ping")
        while (reply := await _recv(ws)) != "pong":
            assert isinstance(reply, dict)


async def test_watch_order_book_across_updates_and_reconnects(sim: Simulator, pro: Any) -> None:
    ob = await pro.watch_order_book(INV_SWAP)
    first = ob["nonce"]
    for _ in range(3):
        sim.advance(3_000)
        ob = await pro.watch_order_book(INV_SWAP)
    assert ob["nonce"] > first and ob["bids"][0][0] < ob["asks"][0][0]
    await ccxt_book_checksum_matches_the_feed(sim, pro, ob)
    assert okx_dialect(sim).drop_ws() >= 1  # the connection drops; ccxt reconnects
    await asyncio.sleep(0.2)
    ob = await pro.watch_order_book(INV_SWAP)
    sim.advance(3_000)
    ob = await pro.watch_order_book(INV_SWAP)
    assert ob["bids"][0][0] < ob["asks"][0][0]


async def test_watch_ticker(sim: Simulator, pro: Any) -> None:
    t = await pro.watch_ticker(LIN_SWAP)
    assert t["symbol"] == LIN_SWAP and 0 < t["bid"] < t["ask"]
    sim.advance(5_000)
    t2 = await pro.watch_ticker(LIN_SWAP)
    assert t2["timestamp"] > t["timestamp"]


async def test_orders_trades_positions_balance_streams(sim: Simulator, pro: Any, rest: Any) -> None:
    positions = await asyncio.wait_for(pro.watch_positions(), WAIT_S)  # snapshot on subscribe
    assert positions == [] or all(p["contracts"] == 0 for p in positions)
    balance = await asyncio.wait_for(pro.watch_balance(), WAIT_S)
    assert balance["total"]["USDT"] == 100_000
    orders_w = asyncio.ensure_future(pro.watch_orders())
    trades_w = asyncio.ensure_future(pro.watch_my_trades())
    positions_w = asyncio.ensure_future(pro.watch_positions())
    balance_w = asyncio.ensure_future(pro.watch_balance())
    await asyncio.sleep(0.2)
    placed = await pro.create_order_ws(INV_SWAP, "market", "buy", 7)
    orders = await asyncio.wait_for(orders_w, WAIT_S)
    assert orders[-1]["id"] == placed["id"] and orders[-1]["filled"] == 7
    assert orders[-1]["status"] == "closed"
    trades = await asyncio.wait_for(trades_w, WAIT_S)
    assert sum(t["amount"] for t in trades) == 7 and trades[0]["order"] == placed["id"]
    positions = await asyncio.wait_for(positions_w, WAIT_S)
    by_symbol = {p["symbol"]: p for p in positions if p["contracts"]}
    assert by_symbol[INV_SWAP]["contracts"] == 7
    balance = await asyncio.wait_for(balance_w, WAIT_S)
    assert balance["total"]["BTC"] < 10  # the taker fee
    # positions are also pushed every 5 simulated seconds
    positions_w = asyncio.ensure_future(pro.watch_positions())
    await asyncio.sleep(0.1)
    sim.advance(5_000)
    assert await asyncio.wait_for(positions_w, WAIT_S)
    # a resting order over WebSocket, cancelled over WebSocket
    bid = (await rest.fetch_order_book(INV_SWAP, 1))["bids"][0][0]
    resting = await pro.create_order_ws(INV_SWAP, "limit", "buy", 1, round(bid * 0.9, 1))
    assert (await rest.fetch_order(resting["id"], INV_SWAP))["status"] == "open"
    await pro.cancel_order_ws(resting["id"], INV_SWAP)
    assert (await rest.fetch_order(resting["id"], INV_SWAP))["status"] == "canceled"


async def test_ws_login_failure(sim: Simulator) -> None:
    async with okx_client(sim, cls=ccxt_pro.okx) as bad:
        bad.secret = "bad"  # markets loaded; the WebSocket login signs with a wrong secret
        with pytest.raises(ccxt.AuthenticationError, match="60009"):
            await asyncio.wait_for(bad.watch_balance(), WAIT_S)


async def test_ws_orders_share_the_rest_rate_limit(sim: Simulator, pro: Any, rest: Any) -> None:
    okx_dialect(sim).limiter.now = lambda: 50.0  # one frozen 2 s window
    bid = (await rest.fetch_order_book(INV_SWAP, 1))["bids"][0][0]
    px = round(bid * 0.8, 1)
    for _ in range(30):
        await rest.create_order(INV_SWAP, "limit", "buy", 1, px)
    for _ in range(30):
        await pro.create_order_ws(INV_SWAP, "limit", "buy", 1, px)
    with pytest.raises(ccxt.RateLimitExceeded):
        await pro.create_order_ws(INV_SWAP, "limit", "buy", 1, px)
    with pytest.raises(ccxt.RateLimitExceeded):
        await rest.create_order(INV_SWAP, "limit", "buy", 1, px)


async def test_okx_faults_name_their_venue(sim: Simulator, pro: Any, rest: Any) -> None:
    faults = sim.faults
    # a Deribit fault (the default venue) leaves OKX alone
    faults.add({"kind": "order_reject", "count": 1}, sim.now_ms())
    await rest.create_order(INV_SWAP, "market", "buy", 1)
    faults.clear()
    faults.add({"kind": "order_reject", "venue": "okx", "count": 1}, sim.now_ms())
    with pytest.raises(ccxt.BadRequest, match="51000"):
        await rest.create_order(INV_SWAP, "market", "buy", 1)
    await rest.create_order(INV_SWAP, "market", "buy", 1)  # count 1: spent
    faults.add({"kind": "http_5xx", "venue": "okx", "count": 1}, sim.now_ms())
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await rest.fetch_balance()
    faults.add(
        {"kind": "order_reject", "venue": "okx", "count": 1, "transport": "ws"}, sim.now_ms()
    )
    with pytest.raises(ccxt.ExchangeError):
        await pro.create_order_ws(INV_SWAP, "market", "buy", 1)
    faults.add({"kind": "portfolio_delta_offset", "venue": "okx", "offset_coin": 0.5}, sim.now_ms())
    (g,) = (await rest.private_get_account_greeks({"ccy": "BTC"}))["data"]
    pos_delta = 2 * 100 / sim.okx.mark_price(sim.okx.instruments["BTC-USD-SWAP"])
    assert float(g["deltaPA"]) == pytest.approx(pos_delta + 0.5, rel=1e-9)


async def test_ws_drop_fault_closes_okx_sessions(sim: Simulator, pro: Any) -> None:
    await pro.watch_ticker(LIN_SWAP)
    assert okx_dialect(sim).ws.sessions
    sim.faults.add({"kind": "ws_drop", "venue": "okx"}, sim.now_ms())
    sim.advance(250)
    await asyncio.sleep(0.1)
    assert okx_dialect(sim).counters.ws_dropped >= 1


async def test_both_venues_in_one_process_from_the_cli_options() -> None:
    import argparse

    from hedgerd.sim.command import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["exchange-sim", "--venues", "deribit,okx", "--api-key", "k", "--api-secret", "s",
         "--api-passphrase", "p"]
    )  # fmt: skip
    assert args.venues == "deribit,okx" and args.api_passphrase == "p"
    async with running_simulator(
        stepped=True, venues=args.venues, accounts=[("k", "s")], api_passphrase="p"
    ) as sim:
        assert sim.okx.credentials_for_key("k") is not None
        assert sim.world.deribit.account_for_key("k") is not None
