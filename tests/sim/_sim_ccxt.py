"""A real ccxt Deribit client pointed at a running simulator (both URLs replaced, never
`set_sandbox_mode`, which would swap them back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ccxt.async_support as ccxt_async

from hedgerd.sim.command import Simulator


@asynccontextmanager
async def ccxt_client(
    sim: Simulator, key: str, secret: str, *, cls: Any = None, load_markets: bool = True
) -> AsyncIterator[Any]:
    """`cls` (default `ccxt.async_support.deribit`; `ccxt.pro.deribit` for WebSockets) with
    the account's keys, markets loaded unless told not to; closed on exit."""
    client = (cls or ccxt_async.deribit)({"apiKey": key, "secret": secret})
    client.urls["api"] = sim.ccxt_urls()
    try:
        if load_markets:
            await client.load_markets()
        yield client
    finally:
        await client.close()
