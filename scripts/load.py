#!/usr/bin/env python3
"""Load drill: the daemon's book and controller driven directly with a book of `--options`
option positions over BTC and ETH and `--rate` market updates per second (index ticks and
option vol marks) for `--seconds` wall seconds.

Updates go through a coalescing queue (latest value per key: an index, an option's vol), so
the queue is bounded by the number of keys however far the consumer falls behind. The
consumer applies what is pending to the GreeksBook, then for each touched underlying takes the
snapshot, builds the risk and runs the controller's `decide` (the daemon's evaluation path
without I/O).

Prints (and writes with `--json OUT`): updates produced and applied, CPU use (process
user+system over wall), decision latency p50/p99 (from taking the pending updates to the
decision), event lag p50/p99/max (from an update's arrival to the decision that saw it) and
the largest queue depth seen.

    .venv/bin/python scripts/load.py --options 10000 --rate 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.hedging.adapter import underlying_risk
from hedgerd.hedging.config import FixedBandPolicy
from hedgerd.hedging.controller import decide
from hedgerd.hedging.inputs import HedgeVenueState, PolicyState
from hedgerd.model import AmountUnit, Quote
from hedgerd.venues.deribit.names import option_name, parse_expiry_ms, parse_instrument_name

SPOTS = {"BTC": 91_000.0, "ETH": 3_050.0}
EXPIRIES = ("21NOV26", "22NOV26", "27NOV26", "4DEC26", "25DEC26", "29JAN27", "26MAR27", "25JUN27")
NOW0_MS = parse_expiry_ms("20NOV26") + 3 * 3_600_000


def build_book(n_options: int, seed: int) -> tuple[GreeksBook, dict[str, list[str]]]:
    """`n_options` option positions split over BTC and ETH, plus a perpetual hedge each."""
    rng = np.random.default_rng(seed)
    book = GreeksBook()
    names_by: dict[str, list[str]] = {}
    expiries = [parse_expiry_ms(e) for e in EXPIRIES]
    for k, (und, spot) in enumerate(SPOTS.items()):
        n = n_options // 2 + (n_options % 2 if k == 0 else 0)
        book.set_index(und, spot)
        names: set[str] = set()
        while len(names) < n:
            e = expiries[int(rng.integers(len(expiries)))]
            strike = round(spot * math.exp(rng.normal(0.0, 0.4)), 1)
            names.add(option_name(und, e, strike, bool(rng.integers(2))))
        for name in sorted(names):
            book.add_instrument(parse_instrument_name(name))
            book.set_option_vol(name, float(rng.uniform(0.3, 1.2)))
            book.set_position(name, float(rng.integers(-500, 500)) / 10.0 or 0.1, AmountUnit.COIN)
        perp = parse_instrument_name(f"{und}-PERPETUAL")
        book.add_instrument(perp)
        book.set_position(perp.name, 0.0, perp.amount_unit, spot)
        book.set_balance(und, 50.0)
        names_by[und] = sorted(names)
    return book, names_by


@dataclass(slots=True)
class Coalescer:
    """Latest value per key with the arrival time of the oldest update not yet taken."""

    pending: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    max_depth: int = 0
    produced: int = 0
    coalesced: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, kind: str, key: str, value: float, t: float) -> None:
        self.produced += 1
        old = self.pending.get((kind, key))
        if old is not None:
            self.coalesced += 1
            t = old[1]
        self.pending[(kind, key)] = (value, t)
        self.max_depth = max(self.max_depth, len(self.pending))
        self.wake.set()

    def take(self) -> dict[tuple[str, str], tuple[float, float]]:
        out, self.pending = self.pending, {}
        self.wake.clear()
        return out


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return float(np.percentile(np.asarray(xs), q * 100))


async def run_load(n_options: int, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    """Run the drill; returns the figures (milliseconds for latencies)."""
    t_build = time.perf_counter()
    book, names = build_book(n_options, seed)
    build_s = time.perf_counter() - t_build
    rng = np.random.default_rng(seed + 1)
    q = Coalescer()
    done = asyncio.Event()
    policy = FixedBandPolicy(halfwidth_coin=5.0, rebalance_to="target")
    states = {u: PolicyState() for u in SPOTS}
    spots = dict(SPOTS)
    latencies: list[float] = []
    lags: list[float] = []
    applied = 0
    decisions = 0

    async def produce() -> None:
        t0 = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - t0 < seconds:
            due = int((now - t0) * rate)
            for _ in range(due - sent):
                und = "BTC" if rng.random() < 0.5 else "ETH"
                if rng.random() < 0.2:
                    spots[und] *= math.exp(rng.normal(0.0, 2e-4))
                    q.put("index", und, spots[und], now)
                else:
                    name = names[und][int(rng.integers(len(names[und])))]
                    q.put("vol", name, float(rng.uniform(0.3, 1.2)), now)
            sent = due
            await asyncio.sleep(0.005)
        done.set()
        q.wake.set()

    async def consume() -> None:
        nonlocal applied, decisions
        while not (done.is_set() and not q.pending):
            await q.wake.wait()
            batch = q.take()
            if not batch:
                continue
            t_take = time.perf_counter()
            oldest: dict[str, float] = {}
            for (kind, key), (value, t) in batch.items():
                if kind == "index":
                    book.set_index(key, value)
                    und = key
                else:
                    book.set_option_vol(key, value)
                    und = key.split("-")[0]
                oldest[und] = min(oldest.get(und, t), t)
                applied += 1
            now_ms = NOW0_MS + int((t_take - t_start) * 1000)
            for und, t_first in oldest.items():
                snap = book.underlying_snapshot(und, now_ms)
                risk = underlying_risk(snap, now_ms, "coin")
                s = spots[und]
                perp = parse_instrument_name(f"{und}-PERPETUAL")
                quote = Quote("load", perp.name, s - 0.5, 1e6, s + 0.5, 1e6, now_ms)
                venue = HedgeVenueState(instrument=perp, quote=quote, delta_coin_per_amount=1 / s)
                decide(risk, [venue], [], "load", policy, states[und], now_ms)
                decisions += 1
                t_done = time.perf_counter()
                latencies.append((t_done - t_take) * 1000)
                lags.append((t_done - t_first) * 1000)
            await asyncio.sleep(0)  # let the producer run between batches

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.perf_counter()
    await asyncio.gather(produce(), consume())
    wall = time.perf_counter() - t_start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "options": n_options,
        "underlyings": list(SPOTS),
        "rate_per_s": rate,
        "seconds": seconds,
        "build_s": round(build_s, 2),
        "wall_s": round(wall, 2),
        "updates_produced": q.produced,
        "updates_applied": applied,
        "updates_coalesced": q.coalesced,
        "achieved_rate_per_s": round(q.produced / wall, 1),
        "decisions": decisions,
        "cpu_pct": round(100 * cpu / wall, 1),
        "decision_latency_ms": {"p50": _r(pct(latencies, 0.5)), "p99": _r(pct(latencies, 0.99))},
        "event_lag_ms": {
            "p50": _r(pct(lags, 0.5)),
            "p99": _r(pct(lags, 0.99)),
            "max": _r(max(lags) if lags else None),
        },
        "max_queue_depth": q.max_depth,
        "queue_bound": n_options + len(SPOTS),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def render(r: dict[str, Any]) -> str:
    d, lag = r["decision_latency_ms"], r["event_lag_ms"]
    return "\n".join(
        [
            f"load: {r['options']} option positions over {'+'.join(r['underlyings'])}, "
            f"{r['updates_produced']} market updates in {r['wall_s']} s "
            f"({r['achieved_rate_per_s']}/s, target {r['rate_per_s']:g}/s); book built in "
            f"{r['build_s']} s",
            f"  CPU: {r['cpu_pct']} % of one core",
            f"  decisions: {r['decisions']}; decision latency p50 {d['p50']} ms p99 {d['p99']} ms",
            f"  event lag p50 {lag['p50']} ms p99 {lag['p99']} ms max {lag['max']} ms",
            f"  queue: max depth {r['max_queue_depth']} (bound {r['queue_bound']}: coalesced "
            f"{r['updates_coalesced']} updates), applied {r['updates_applied']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--options", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=1000.0, help="market updates per wall second")
    p.add_argument("--seconds", type=float, default=20.0, help="wall seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = p.parse_args(argv)
    r = asyncio.run(run_load(a.options, a.rate, a.seconds, a.seed))
    print(render(r), flush=True)
    if a.json is not None:
        a.json.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    return 0 if r["max_queue_depth"] <= r["queue_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())
