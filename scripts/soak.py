#!/usr/bin/env python3
"""Soak drill: the daemon in this process for `--sim-hours` simulated hours (accelerated by
`--speed`) against `hedgerd exchange-sim` in a child process (so the simulator's own growing
history, its trades and order books, is not counted), sampling this process's RSS.

Prints (and writes with `--json OUT`): RSS over time (simulated hour, MB), RSS at the end of
the warm-up (the first `--warmup-frac` of the run), at the end, and the growth after warm-up
in percent (target <= 10 %), with the daemon's evaluations, orders and errors.

    .venv/bin/python scripts/soak.py --sim-hours 24 --speed 60 --json var/soak.json

The daemon's clock is the simulator's, polled every 0.1 s and extrapolated: at `speed` x the
poll lag is `speed` times larger in simulated time, and market data stamped more than 60 s
ahead of the daemon's clock is refused (then the data goes stale and the daemon halts, which
is no soak). 60x keeps the lag near 10 s; the figures say whether the daemon stayed ACTIVE and
how many evaluations it ran against how many the interval asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import chaos_config, quiet_logs, start_daemon
from hedgerd.config import HedgerdConfig

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """This process's resident set size, MB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


_DRAINS: set[asyncio.Task[None]] = set()  # strong references to the drain tasks


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def _start_sim(
    speed: float, seed: int, tick_ms: int, flow_rate: float | None
) -> tuple[asyncio.subprocess.Process, str, str]:
    flow = [] if flow_rate is None else ["--flow-rate", str(flow_rate)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hedgerd.sim.command",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--seed",
        str(seed),
        "--speed",
        str(speed),
        "--start-ms",
        "now",
        "--tick-ms",
        str(tick_ms),
        *flow,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.stdout is not None
    m = None
    line = ""
    for _ in range(50):  # its log lines come first, on stdout too
        line = (await asyncio.wait_for(proc.stdout.readline(), 60.0)).decode()
        m = re.search(r"REST (\S+)\s+WebSocket (\S+)", line)
        if m is not None or not line:
            break
    # Keep reading its stdout so that the child never blocks on a full pipe.
    _DRAINS.add(asyncio.get_running_loop().create_task(_drain(proc.stdout)))
    if m is None:
        proc.kill()
        raise RuntimeError(f"exchange-sim did not print its URLs: {line!r}")
    return proc, m.group(1), m.group(2)


async def _stop_child(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it lingers (a day of simulated history is slow to drop)."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10.0)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def _sim_now_ms(rest: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{rest}/sim/admin/state") as resp,
    ):
        data = await resp.json()
        return int(data["now_ms"])


async def run_soak(
    sim_hours: float,
    speed: float,
    seed: int,
    evaluate_s: float,
    samples: int,
    warmup_frac: float,
    tick_ms: int = 1000,
    flow_rate: float | None = None,
) -> dict[str, Any]:
    """Run the drill; returns the figures (MB, percent). `tick_ms`: the simulator's market
    step (simulated ms); `flow_rate`: the simulator's client option trades per simulated
    minute (None: its default, 2; they grow the book all day)."""
    work = Path(tempfile.mkdtemp(prefix="hgd-soak-", dir="/tmp"))
    proc, rest, ws = await _start_sim(speed, seed, tick_ms, flow_rate)
    try:
        base = chaos_config(work, evaluate_s)
        name, venue = next(iter(base.venues.items()))
        venue = venue.model_copy(update={"rest_url": rest, "ws_url": ws})
        # The clock-skew switch compares the daemon's clock with the venue's in simulated ms;
        # a round trip to a busy simulator is `speed` times longer in simulated time, so its
        # limit is scaled like the accelerated clock (1 s of wall time).
        skew = base.risk.clock_skew.model_copy(
            update={"skew_limit_ms": max(base.risk.clock_skew.skew_limit_ms, 1000.0 * speed)}
        )
        risk = base.risk.model_copy(update={"clock_skew": skew})
        config: HedgerdConfig = base.model_copy(update={"venues": {name: venue}, "risk": risk})
        last = [await _sim_now_ms(rest), time.monotonic()]
        w0 = time.monotonic()

        issued = [int(last[0])]

        def clock_ms() -> int:
            # The simulator's clock: its last reading, anchored at the middle of the request
            # and run on at `speed` (both processes share the wall clock); never backwards.
            # A simulator that falls behind its nominal speed is caught at the next poll.
            now = int(last[0] + (time.monotonic() - last[1]) * 1000.0 * speed)
            issued[0] = max(issued[0], now)
            return issued[0]

        async def poll_clock() -> None:
            while True:
                with contextlib.suppress(OSError, aiohttp.ClientError, ValueError, KeyError):
                    sent = time.monotonic()
                    ms = await _sim_now_ms(rest)
                    last[:] = [ms, (sent + time.monotonic()) / 2.0]
                await asyncio.sleep(0.1)

        poller = asyncio.get_running_loop().create_task(poll_clock())
        daemon, stop, task = await start_daemon(config, clock_ms, speed)
        # The run starts at the first evaluation (READY comes before it; on a loaded machine a
        # few simulated minutes can pass in between, and a short run then measured nothing).
        first_by = time.monotonic() + 60.0
        while daemon.stats.evaluations == 0 and not task.done():
            if time.monotonic() > first_by:
                break
            await asyncio.sleep(0.05)
        t0 = clock_ms()
        total_ms = sim_hours * 3_600_000
        series: list[tuple[float, float]] = []
        instruments: list[int] = []  # known to the book at each sample (listings add)
        for i in range(samples + 1):
            target = t0 + total_ms * i / samples
            while clock_ms() < target and not task.done():  # noqa: ASYNC110 (sim time)
                await asyncio.sleep(min(0.5, max(0.01, (target - clock_ms()) / speed / 1000)))
            if task.done():
                break
            gc.collect()  # RSS of live objects, not of garbage waiting for a collection
            series.append((round((clock_ms() - t0) / 3_600_000, 3), round(rss_mb(), 2)))
            held = daemon.book.instrument_count if daemon.book is not None else 0
            instruments.append(held)
            print(
                f"soak: {series[-1][0]:g} sim h: RSS {series[-1][1]} MB, {held} instruments",
                file=sys.stderr,
            )
        stop.set()
        await asyncio.wait_for(task, 60.0)
        poller.cancel()
        status = daemon.status()
        state = daemon.trading.state.value if daemon.trading is not None else "unknown"
        reasons = (
            [f"{r.code.value}: {r.detail}" for r in daemon.trading.reasons]
            if daemon.trading is not None
            else []
        )
        evaluations = daemon.stats.evaluations
        n_underlyings = len(daemon.stats.per_underlying)
        errors = list(daemon.stats.errors)
    finally:
        await _stop_child(proc)
    k = max(1, int(len(series) * warmup_frac))
    warm = statistics.mean(r for _, r in series[max(0, k - 2) : k + 1])
    end = statistics.mean(r for _, r in series[-3:])
    return {
        "sim_hours": sim_hours,
        "speed": speed,
        "seed": seed,
        "tick_ms": tick_ms,
        "flow_rate": flow_rate,
        "wall_s": round(time.monotonic() - w0, 1),
        "rss_mb": series,
        "instruments": instruments,
        "warmup_end_h": series[min(k, len(series) - 1)][0],
        "rss_warm_mb": round(warm, 2),
        "rss_end_mb": round(end, 2),
        "rss_max_mb": max(r for _, r in series),
        "growth_after_warmup_pct": round(100.0 * (end - warm) / warm, 2),
        "evaluations": evaluations,
        "expected_evaluations": int(n_underlyings * sim_hours * 3600 / evaluate_s),
        "state": state,
        "reasons": reasons,
        "orders": status["orders_sent_total"],
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def render(r: dict[str, Any]) -> str:
    step = max(1, len(r["rss_mb"]) // 12)
    shown = r["rss_mb"][::step]
    return "\n".join(
        [
            f"soak: {r['sim_hours']:g} simulated h in {r['wall_s']} s wall (speed {r['speed']:g},"
            f" market step {r['tick_ms']} ms),"
            f" {r['evaluations']} evaluations of {r['expected_evaluations']} asked for,"
            f" {r['orders']} orders, {r['errors']} errors, trading state at the end {r['state']}"
            + (f" ({r['reasons']})" if r["reasons"] else ""),
            "  RSS over time (sim h: MB): " + ", ".join(f"{h:g}: {m:.1f}" for h, m in shown),
            f"  instruments known to the book (listed and held): {r['instruments'][0]} at the "
            f"start, {r['instruments'][-1]} at the end",
            f"  RSS after warm-up ({r['warmup_end_h']} h) {r['rss_warm_mb']} MB, at the end "
            f"{r['rss_end_mb']} MB, max {r['rss_max_mb']} MB: growth "
            f"{r['growth_after_warmup_pct']} % (target <= 10 %)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sim-hours", type=float, default=24.0)
    p.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated s per wall s (above about 120 the clock's poll lag makes the daemon "
        "refuse market data as stamped in the future)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--tick-ms",
        type=int,
        default=1000,
        help="the simulator's market step (sim ms); its default 250 ms is four times the work "
        "per simulated second, and a simulator that falls behind stretches the day",
    )
    p.add_argument("--evaluate-s", type=float, default=10.0, help="evaluation interval (sim s)")
    p.add_argument("--samples", type=int, default=48, help="RSS samples over the run")
    p.add_argument("--warmup-frac", type=float, default=0.1, help="share of the run as warm-up")
    p.add_argument(
        "--flow-rate",
        type=float,
        default=None,
        help="the simulator's client option trades per simulated minute (default 2: the book "
        "grows all day; 0: a still book, so RSS growth is the daemon's own)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = p.parse_args(argv)
    quiet_logs()
    r = asyncio.run(
        run_soak(
            a.sim_hours,
            a.speed,
            a.seed,
            a.evaluate_s,
            a.samples,
            a.warmup_frac,
            a.tick_ms,
            a.flow_rate,
        )
    )
    print(render(r), flush=True)
    if a.json is not None:
        a.json.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    # a daemon that halted or barely evaluated (a starved simulator) has not been soaked
    ran = r["state"] == "active" and r["evaluations"] >= r["expected_evaluations"] // 10
    return 0 if r["growth_after_warmup_pct"] <= 10.0 and ran else 1


if __name__ == "__main__":
    sys.exit(main())
