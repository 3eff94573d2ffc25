"""The OKX adapter's round trips against the simulator on 127.0.0.1 (wall milliseconds):
connect (markets through ccxt), resting limit placements, cancel-all, IOC placements with
their read-back. The simulator's rate limits are off; the adapter's own lanes apply.

Usage: `.venv/bin/python scripts/bench_okx_adapter.py [--n 40]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from hedgerd.config import VenueSettings
from hedgerd.execution.client_ids import codec_for
from hedgerd.model import OrderSide, TimeInForce
from hedgerd.sim.command import running_simulator
from hedgerd.venues.base import OrderRequest
from hedgerd.venues.okx.venue import OkxVenue

SWAP = "BTC-USD-SWAP"


def _summary(what: str, seconds: list[float]) -> str:
    s = sorted(seconds)
    p50, p90 = s[len(s) // 2] * 1000, s[int(len(s) * 0.9)] * 1000
    return f"{what}: median {p50:.1f} ms, p90 {p90:.1f} ms over {len(s)}"


async def run(n: int) -> None:
    async with running_simulator(
        stepped=True, seed=11, venues=("deribit", "okx"), accounts=[("k", "s")],
        api_passphrase="p", rate_limits=False,
    ) as sim:  # fmt: skip
        settings = VenueSettings(
            exchange="okx", mode="sim", rest_url=sim.rest_url, ws_url=sim.okx_ws_url,
            api_key="k", api_secret="s", api_passphrase="p", underlyings=("BTC",),
        )  # fmt: skip
        venue = OkxVenue("okx", settings, clock_ms=sim.now_ms, private_stream=False)
        start = time.perf_counter()
        await venue.connect()
        print(f"connect: {time.perf_counter() - start:.2f} s, "
              f"{len(venue.instruments())} instruments")  # fmt: skip
        codec = codec_for("okx", "Bnch")
        quote = await venue.fetch_quote(SWAP)
        resting, ioc = [], []
        for i in range(n):
            start = time.perf_counter()
            await venue.place_order(OrderRequest(
                SWAP, OrderSide.BUY, 100.0, codec.client_id(f"rest{i}", 0).label,
                price=round(quote.bid_price * 0.8, 1)))  # fmt: skip
            resting.append(time.perf_counter() - start)
        print(_summary("resting limit place", resting))
        start = time.perf_counter()
        cancelled = await venue.cancel_all("BTC")
        print(f"cancel_all: {cancelled} orders in {(time.perf_counter() - start) * 1000:.0f} ms")
        for i in range(n):
            buy = i % 2 == 1
            start = time.perf_counter()
            await venue.place_order(OrderRequest(
                SWAP, OrderSide.BUY if buy else OrderSide.SELL, 100.0,
                codec.client_id(f"ioc{i}", 0).label,
                price=round(quote.ask_price * 1.02 if buy else quote.bid_price * 0.98, 1),
                time_in_force=TimeInForce.IOC))  # fmt: skip
            ioc.append(time.perf_counter() - start)
        print(_summary("IOC place + read-back", ioc))
        await venue.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="orders of each kind")
    asyncio.run(run(parser.parse_args().n))


if __name__ == "__main__":
    main()
