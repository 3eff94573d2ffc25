"""Real ccxt OKX clients (`ccxt.async_support.okx`, `ccxt.pro.okx`) pointed at a running
simulator serving both venues: only `urls['api']` is replaced (okx.md §0)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ccxt.async_support as ccxt_async

from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.okx.dialect import OkxDialect
from pinned_clock import TEST_START_MS

KEY, SECRET, PASSPHRASE = "okx-key", "okx-secret", "okxPass1"


@asynccontextmanager
async def okx_client(
    sim: Simulator,
    key: str = KEY,
    secret: str = SECRET,
    passphrase: str = PASSPHRASE,
    *,
    cls: Any = None,
    load_markets: bool = True,
) -> AsyncIterator[Any]:
    """`cls` (default `ccxt.async_support.okx`; `ccxt.pro.okx` for WebSockets) with the
    account's credentials, its clock following the simulator's (`load_time_difference`,
    public/time) and markets loaded unless told not to; closed on exit."""
    client = (cls or ccxt_async.okx)({"apiKey": key, "secret": secret, "password": passphrase})
    client.urls["api"] = sim.okx_urls()
    try:
        await client.load_time_difference()
        if load_markets:
            await client.load_markets()
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def okx_simulator(seed: int = 11, **kw: Any) -> AsyncIterator[Simulator]:
    """A stepped simulator serving Deribit and OKX with the client account `KEY`, starting at
    the pinned test start (tests using it are calendar tests)."""
    async with running_simulator(
        stepped=True,
        start_ms=TEST_START_MS,
        seed=seed,
        venues=("deribit", "okx"),
        accounts=[(KEY, SECRET)],
        api_passphrase=PASSPHRASE,
        **kw,
    ) as sim:
        yield sim


def okx_dialect(sim: Simulator) -> OkxDialect:
    """The OKX wire of a simulator serving okx (its limiter, hub, counters, auth clock)."""
    d = sim.server.dialects["okx"]
    assert isinstance(d, OkxDialect)
    return d
