"""A simulated venue's outbound WebSocket frames, shared by the Deribit and OKX dialects.

Pushes come from synchronous code (the engine's tick, a matched order), so sending must never
block or await: frames queue here and one writer task sends them in order. A client that
falls `max_queue` frames behind is cut off without a close frame, as a venue does with a slow
consumer (the loop is never held up by it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from aiohttp import web


class WsOutbox:
    """One connection's queued frames, its writer task and how it ends (`abort`, `close`)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        max_queue: int,
        name: str,
        on_overflow: Callable[[int], None],
    ) -> None:
        """`on_overflow(queued)` runs when a frame finds the queue full, before the abort."""
        self.ws = ws
        self.request = request
        self.max_queue = max_queue
        self.closed = False
        self._on_overflow = on_overflow
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name=name)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send_text(self, text: str) -> None:
        """Queue a frame (dropped once closed); a full queue aborts the connection."""
        if self.closed:
            return
        if len(self._queue) >= self.max_queue:
            self._on_overflow(len(self._queue))
            self.abort()
            return
        self._queue.append(text)
        self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    text = self._queue.popleft()
                    if self.ws.closed:
                        return
                    await self.ws.send_str(text)
                self._drained.set()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def drain(self, timeout_s: float = 1.0) -> None:
        """Wait (briefly) for queued frames to go out."""
        if self._queue and not self.ws.closed:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._drained.wait()

    def abort(self) -> None:
        """Drop the connection without a close frame (a network failure)."""
        if self.closed:
            return
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """Close the connection with a close frame, after what is queued."""
        if self.closed:
            return
        await self.drain()
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close()

    def stop(self) -> None:
        """The connection is over (its handler returned): stop sending."""
        self.closed = True
        self._writer.cancel()
