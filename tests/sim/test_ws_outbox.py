"""`WsOutbox` over a real aiohttp WebSocket on 127.0.0.1: frames go out in the order queued,
a full queue cuts the client off without a close frame (and says so once), `close` sends
what is queued then a close frame, and nothing is queued once closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from hedgerd.sim.ws_outbox import WsOutbox


@dataclass
class Rig:
    """A server whose handler builds one `WsOutbox` per connection, and a client session."""

    url: str
    http: aiohttp.ClientSession
    max_queue: int = 1000
    outboxes: asyncio.Queue[WsOutbox] = field(default_factory=asyncio.Queue)
    overflows: list[int] = field(default_factory=list)

    async def connect(self) -> tuple[aiohttp.ClientWebSocketResponse, WsOutbox]:
        client = await self.http.ws_connect(self.url)
        return client, await asyncio.wait_for(self.outboxes.get(), 5)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    holder: list[Rig] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        r = holder[0]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        outbox = WsOutbox(
            ws, request, max_queue=r.max_queue, name="test-outbox", on_overflow=r.overflows.append
        )
        r.outboxes.put_nowait(outbox)
        try:
            async for _ in ws:
                pass
        finally:
            outbox.stop()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        holder.append(Rig(f"http://127.0.0.1:{port}/ws", http))
        yield holder[0]
    await runner.cleanup()


async def _receive_all(client: aiohttp.ClientWebSocketResponse) -> tuple[list[str], WSMsgType]:
    """The text frames until the connection ends, and how it ended."""
    texts: list[str] = []
    while True:
        msg = await asyncio.wait_for(client.receive(), 5)
        if msg.type != WSMsgType.TEXT:
            return texts, msg.type
        texts.append(msg.data)


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_frames_go_out_in_order_and_close_sends_them_first(rig: Rig) -> None:
    client, outbox = await rig.connect()
    for i in range(300):  # queued in one go of the loop, written by the one task
        outbox.send_text(str(i))
    await outbox.close()
    assert outbox.closed
    texts, end = await _receive_all(client)
    assert texts == [str(i) for i in range(300)]
    assert end == WSMsgType.CLOSE  # a close frame, after every queued frame
    assert rig.overflows == []


async def test_nothing_is_queued_once_closed(rig: Rig) -> None:
    client, outbox = await rig.connect()
    outbox.send_text("before")
    await outbox.close()
    outbox.send_text("after")
    assert outbox.queued == 0
    texts, _ = await _receive_all(client)
    assert texts == ["before"]


async def test_a_full_queue_aborts_without_a_close_frame(rig: Rig) -> None:
    rig.max_queue = 5
    client, outbox = await rig.connect()
    for i in range(8):  # more than the queue holds before the writer runs
        outbox.send_text(str(i))
    assert outbox.closed
    assert rig.overflows == [5]  # said once, with what was queued, before the abort
    _, end = await _receive_all(client)
    assert end in (WSMsgType.CLOSED, WSMsgType.ERROR)  # the transport dropped, no close frame
    assert client.close_code != 1000


async def test_a_client_that_keeps_up_is_never_cut_off(rig: Rig) -> None:
    rig.max_queue = 5
    client, outbox = await rig.connect()
    got: list[str] = []
    for i in range(20):  # never more than the queue holds at once
        outbox.send_text(str(i))
        msg = await asyncio.wait_for(client.receive(), 5)
        got.append(msg.data)
    assert got == [str(i) for i in range(20)] and not outbox.closed
    assert rig.overflows == []
    await outbox.drain()
    assert outbox.queued == 0


async def test_abort_and_stop_end_sending(rig: Rig) -> None:
    client, outbox = await rig.connect()
    outbox.abort()
    assert outbox.closed
    outbox.abort()  # twice is harmless
    outbox.send_text("dropped")
    assert outbox.queued == 0
    _, end = await _receive_all(client)
    assert end in (WSMsgType.CLOSED, WSMsgType.ERROR)
    client2, outbox2 = await rig.connect()
    outbox2.stop()
    assert outbox2.closed
    await _until(lambda: outbox2._writer.done())
    await client2.close()
