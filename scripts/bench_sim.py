#!/usr/bin/env python3
"""Throughput of the exchange simulator, measured from a separate client process.

1. Order-book updates per second delivered to one WebSocket subscriber: the simulator runs
   in accelerated time (`--speed`, as fast as the engine goes), the client subscribes to
   `book.{instrument}.raw` for every BTC, ETH and USDC instrument of `--kind` (default:
   futures and perpetuals, whose books move every tick) and counts `change` notifications
   and the levels they carry for `--seconds`. The engine's market step is the limit: with
   every option book subscribed it runs far fewer ticks per second.
2. Orders per second over HTTP: a stepped simulator without rate limits; `--workers`
   concurrent keep-alive connections send signed `private/buy` / `private/sell` market orders
   (10 USD on BTC-PERPETUAL) for `--seconds`; every reply is checked.

Targets from issue 3: >= 2,000 book updates/s and >= 200 orders/s. Run:
    .venv/bin/python scripts/bench_sim.py

`--venue okx` measures the OKX dialect the same way with both venues served (issue 16): `books`
updates of every swap, future and spot instrument on /ws/v5/public, and signed `trade/order`
market orders on BTC-USD-SWAP (1 contract) over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from typing import Any

import aiohttp

from hedgerd.sim.deribit.auth import sign_client_signature, sign_rest
from hedgerd.sim.okx.auth import sign as okx_sign

KEY, SECRET, PASSPHRASE = "bench-key", "bench-secret", "benchPass"
BOTH = ("--venues", "deribit,okx", "--api-passphrase", PASSPHRASE)
_BACKGROUND: set[asyncio.Task[None]] = set()


async def start_server(*extra: str) -> tuple[asyncio.subprocess.Process, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hedgerd.sim.command", "--port", "0",
        "--api-key", KEY, "--api-secret", SECRET, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=None,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError("the simulator exited before listening")
        m = re.search(r"REST (\S+)\s+WebSocket (\S+)", line)
        if m:
            _BACKGROUND.add(asyncio.create_task(_drain(proc.stdout)))
            return proc, m.group(1), m.group(2)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()


def _deribit_change(data: dict[str, Any]) -> dict[str, Any] | None:
    if data.get("method") != "subscription":
        return None
    d: dict[str, Any] = data["params"]["data"]
    return d if d.get("type") == "change" else None


def _okx_update(data: dict[str, Any]) -> dict[str, Any] | None:
    return data["data"][0] if data.get("action") == "update" else None


async def count_book_updates(
    ws: aiohttp.ClientWebSocketResponse,
    seconds: float,
    update_of: Any,
) -> tuple[int, int]:
    """(book updates, level changes) received over `seconds` after a one-second warm-up;
    `update_of(message)` gives a message's book update (with `bids`/`asks`) or None."""
    warm_until = time.monotonic() + 1.0
    n_notes = n_levels = 0
    t_end = None
    async for msg in ws:
        now = time.monotonic()
        if now < warm_until:
            continue
        if t_end is None:
            t_end = now + seconds
        d = update_of(json.loads(msg.data))
        if d is not None:
            n_notes += 1
            n_levels += len(d["bids"]) + len(d["asks"])
        if now >= t_end:
            break
    return n_notes, n_levels


async def bench_book(seconds: float, speed: float, kind: str) -> dict[str, Any]:
    proc, rest, ws_url = await start_server("--speed", str(speed), "--no-rate-limits")
    try:
        async with aiohttp.ClientSession() as http:
            names: list[str] = []
            for ccy in ("BTC", "ETH", "USDC"):
                url = f"{rest}/api/v2/public/get_instruments?currency={ccy}&kind={kind}"
                async with http.get(url) as r:
                    names += [i["instrument_name"] for i in (await r.json())["result"]]
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                ts = int(time.time() * 1000)
                auth = {
                    "grant_type": "client_signature", "client_id": KEY, "timestamp": ts,
                    "nonce": "b", "data": "", "signature": sign_client_signature(SECRET, ts, "b"),
                }  # fmt: skip
                await ws.send_json(
                    {"jsonrpc": "2.0", "id": 1, "method": "public/auth", "params": auth}
                )
                for i in range(0, len(names), 200):
                    chans = [f"book.{n}.raw" for n in names[i : i + 200]]
                    await ws.send_json(
                        {
                            "jsonrpc": "2.0",
                            "id": 2 + i,
                            "method": "public/subscribe",
                            "params": {"channels": chans},
                        }
                    )
                n_notes, n_levels = await count_book_updates(ws, seconds, _deribit_change)
        return {
            "instruments": len(names),
            "book_notifications_per_s": n_notes / seconds,
            "level_updates_per_s": n_levels / seconds,
        }
    finally:
        await stop_server(proc)


async def bench_orders(seconds: float, workers: int) -> dict[str, Any]:
    proc, rest, _ = await start_server("--stepped", "--no-rate-limits")
    latencies: list[float] = []
    errors = 0
    try:
        conn = aiohttp.TCPConnector(limit=workers)
        async with aiohttp.ClientSession(connector=conn) as http:
            t_end = time.monotonic() + seconds

            async def worker(w: int) -> None:
                nonlocal errors
                i = 0
                while time.monotonic() < t_end:
                    side = "buy" if (i + w) % 2 == 0 else "sell"
                    i += 1
                    uri = (
                        f"/api/v2/private/{side}?amount=10&instrument_name=BTC-PERPETUAL"
                        f"&type=market&label=b{w}-{i}"
                    )
                    ts = int(time.time() * 1000)
                    sig = sign_rest(SECRET, ts, str(i), "GET", uri)
                    hdr = {
                        "Authorization": f"deri-hmac-sha256 id={KEY},ts={ts},sig={sig},nonce={i}"
                    }
                    t0 = time.perf_counter()
                    async with http.get(rest + uri, headers=hdr) as r:
                        body = await r.json()
                    latencies.append(time.perf_counter() - t0)
                    if r.status != 200 or body["result"]["order"]["order_state"] != "filled":
                        errors += 1

            await asyncio.gather(*(worker(w) for w in range(workers)))
        lat = sorted(latencies)
        return {
            "workers": workers,
            "orders_per_s": len(lat) / seconds,
            "errors": errors,
            "latency_ms_p50": 1000 * statistics.median(lat),
            "latency_ms_p99": 1000 * lat[int(0.99 * (len(lat) - 1))],
        }
    finally:
        await stop_server(proc)


async def bench_book_okx(seconds: float, speed: float) -> dict[str, Any]:
    proc, rest, ws_url = await start_server("--speed", str(speed), "--no-rate-limits", *BOTH)
    try:
        async with aiohttp.ClientSession() as http:
            ids: list[str] = []
            for t in ("SWAP", "FUTURES", "SPOT"):
                async with http.get(f"{rest}/api/v5/public/instruments?instType={t}") as r:
                    ids += [i["instId"] for i in (await r.json())["data"]]
            okx_ws = ws_url.replace("/ws/api/v2", "/ws/v5/public")
            async with http.ws_connect(okx_ws, max_msg_size=0) as ws:
                args = [{"channel": "books", "instId": i} for i in ids]
                await ws.send_json({"op": "subscribe", "args": args})
                n_notes, n_levels = await count_book_updates(ws, seconds, _okx_update)
        return {
            "instruments": len(ids),
            "book_notifications_per_s": n_notes / seconds,
            "level_updates_per_s": n_levels / seconds,
        }
    finally:
        await stop_server(proc)


async def bench_orders_okx(seconds: float, workers: int) -> dict[str, Any]:
    proc, rest, _ = await start_server("--stepped", "--no-rate-limits", *BOTH)
    latencies: list[float] = []
    errors = 0
    try:
        conn = aiohttp.TCPConnector(limit=workers)
        async with aiohttp.ClientSession(connector=conn) as http:
            t_end = time.monotonic() + seconds

            async def worker(w: int) -> None:
                nonlocal errors
                i = 0
                while time.monotonic() < t_end:
                    side = "buy" if (i + w) % 2 == 0 else "sell"
                    i += 1
                    body = json.dumps(
                        {"instId": "BTC-USD-SWAP", "side": side, "ordType": "market",
                         "sz": "1", "tdMode": "cross", "clOrdId": f"b{w}x{i}"},
                        separators=(",", ":"),
                    )  # fmt: skip
                    path = "/api/v5/trade/order"
                    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
                    hdr = {
                        "OK-ACCESS-KEY": KEY,
                        "OK-ACCESS-PASSPHRASE": PASSPHRASE,
                        "OK-ACCESS-TIMESTAMP": ts,
                        "OK-ACCESS-SIGN": okx_sign(SECRET, ts + "POST" + path + body),
                        "Content-Type": "application/json",
                    }
                    t0 = time.perf_counter()
                    async with http.post(rest + path, data=body, headers=hdr) as r:
                        reply = await r.json()
                    latencies.append(time.perf_counter() - t0)
                    if r.status != 200 or reply["data"][0]["sCode"] != "0":
                        errors += 1

            await asyncio.gather(*(worker(w) for w in range(workers)))
        lat = sorted(latencies)
        return {
            "workers": workers,
            "orders_per_s": len(lat) / seconds,
            "errors": errors,
            "latency_ms_p50": 1000 * statistics.median(lat),
            "latency_ms_p99": 1000 * lat[int(0.99 * (len(lat) - 1))],
        }
    finally:
        await stop_server(proc)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--speed", type=float, default=200.0, help="simulated s per wall s (book test)")
    ap.add_argument(
        "--kind", default="future", help="instruments whose books to watch: future|option|any"
    )
    ap.add_argument("--workers", type=int, default=4, help="concurrent HTTP connections")
    ap.add_argument("--venue", choices=("deribit", "okx"), default="deribit")
    args = ap.parse_args()
    if args.venue == "okx":
        book = await bench_book_okx(args.seconds, args.speed)
        args.kind = "OKX swap/future/spot"
    else:
        book = await bench_book(args.seconds, args.speed, args.kind)
    print(
        f"book updates delivered to one WebSocket subscriber: "
        f"{book['book_notifications_per_s']:,.0f} notifications/s "
        f"({book['level_updates_per_s']:,.0f} level updates/s) over {book['instruments']} "
        f"{args.kind} books at speed {args.speed:g}  [target >= 2,000/s]"
    )
    if args.venue == "okx":
        orders = await bench_orders_okx(args.seconds, args.workers)
    else:
        orders = await bench_orders(args.seconds, args.workers)
    print(
        f"orders over HTTP: {orders['orders_per_s']:,.0f} orders/s with {orders['workers']} "
        f"connections, p50 {orders['latency_ms_p50']:.1f} ms, "
        f"p99 {orders['latency_ms_p99']:.1f} ms, "
        f"{orders['errors']} errors  [target >= 200/s]"
    )


if __name__ == "__main__":
    asyncio.run(main())
