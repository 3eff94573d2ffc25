"""OKX `books` across reconnects: the socket is dropped through the simulator's admin and faults
APIs naming venue okx; the new connection gets a fresh snapshot (`prevSeqId` -1), the updates
chain from it again (`prevSeqId` = the previous `seqId`) and every checksum, recomputed from
OKX's documented rule on the book kept from the wire, matches; the real `ccxt.pro.okx` keeps
watching through the drop without a nonce error and its book's checksum matches the venue's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro
import pytest
from _okx_ccxt import okx_client, okx_dialect, okx_simulator
from test_okx_ws import WAIT_S, _crc, _recv, ccxt_book_checksum_matches_the_feed

from hedgerd.sim.command import Simulator

ARG = {"channel": "books", "instId": "BTC-USD-SWAP"}
INV_SWAP = "BTC/USD:BTC"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with okx_simulator(seed=23) as s:
        yield s


def _sorted(book: dict[str, str], bids: bool) -> list[tuple[str, str]]:
    return sorted(book.items(), key=lambda x: -float(x[0]) if bids else float(x[0]))


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, object]]:
    """The `books` updates pushed until the socket goes quiet for 0.3 s (wall clock: the
    simulator pushes right after a step, so quiet means nothing more is coming)."""
    out = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), 0.3)
        except TimeoutError:
            return out
        up = json.loads(msg.data)
        assert up["action"] == "update" and up["arg"] == ARG
        out.append(up["data"][0])


async def _follow(ws: aiohttp.ClientWebSocketResponse, sim: Simulator, rounds: int) -> int:
    """Subscribe, take the snapshot, then follow `rounds` steps of updates checking the chain
    and the checksum of each message; the number of updates seen."""
    await ws.send_str(json.dumps({"op": "subscribe", "args": [ARG]}))
    ack = await _recv(ws)
    assert ack["event"] == "subscribe" and ack["arg"] == ARG
    snap = await _recv(ws)
    assert snap["action"] == "snapshot"
    d = snap["data"][0]
    assert d["prevSeqId"] == -1
    bids = {lv[0]: lv[1] for lv in d["bids"]}
    asks = {lv[0]: lv[1] for lv in d["asks"]}
    assert d["checksum"] == _crc(_sorted(bids, True), _sorted(asks, False))
    seq, updates = d["seqId"], 0
    for _ in range(rounds):
        sim.advance(3_000)
        for d in await _drain(ws):
            assert d["prevSeqId"] == seq and d["seqId"] > seq
            seq = d["seqId"]
            for side, book in (("bids", bids), ("asks", asks)):
                book.update((px, sz) for px, sz, _, _ in d[side])
                for px in [px for px, sz in book.items() if sz == "0"]:
                    del book[px]
            assert d["checksum"] == _crc(_sorted(bids, True), _sorted(asks, False))
            updates += 1
    return updates


async def test_books_resnapshot_and_chain_after_admin_and_fault_drops(sim: Simulator) -> None:
    admin = sim.rest_url + "/sim/admin"
    async with aiohttp.ClientSession() as http:
        for how in ("admin", "fault", None):
            async with http.ws_connect(sim.okx_ws_url + "/public") as ws:
                assert await _follow(ws, sim, 3) >= 2
                if how == "admin":
                    async with http.post(admin + "/ws/drop?venue=okx") as r:
                        assert (await r.json())["dropped"] >= 1
                elif how == "fault":
                    fault = {"kind": "ws_drop", "venue": "okx"}
                    async with http.post(admin + "/faults", json=fault) as r:
                        assert r.status == 200, await r.text()
                    sim.advance(250)
                if how is not None:
                    msg = await asyncio.wait_for(ws.receive(), WAIT_S)
                    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert okx_dialect(sim).counters.ws_dropped >= 2


async def test_ccxt_watch_order_book_survives_drops_with_its_checksum(sim: Simulator) -> None:
    async with okx_client(sim, cls=ccxt_pro.okx) as pro:
        for _ in range(2):
            ob = await asyncio.wait_for(pro.watch_order_book(INV_SWAP), WAIT_S)
            for _ in range(3):
                sim.advance(3_000)
                ob = await asyncio.wait_for(pro.watch_order_book(INV_SWAP), WAIT_S)
            await ccxt_book_checksum_matches_the_feed(sim, pro, ob)
            # drop through the faults API; the pending watch fails, the next one reconnects
            waiting = asyncio.ensure_future(pro.watch_order_book(INV_SWAP))
            await asyncio.sleep(0.05)
            sim.faults.add({"kind": "ws_drop", "venue": "okx"}, sim.now_ms())
            sim.advance(250)
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(waiting, WAIT_S)
            sim.faults.clear()
