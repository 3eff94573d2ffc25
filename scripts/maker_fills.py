#!/usr/bin/env python3
"""Maker fills measured live: post-only orders on BTC-PERPETUAL through hedgerd's DeribitVenue
(ccxt underneath) against the in-process simulator, at distances from the touch, under the
scenario's activity and a quieter and a busier variant of it (the BTC index vol scaled; the
perpetual's book moves only with its mark, so the option-flow rate does not change it).

Two kinds of order, both sides:

- static probes (`hedgerd.sim.maker_probe`): a cohort every `--every-s` simulated seconds, one
  post-only order per side and distance (ticks behind the touch), each resting until it fills
  or `--timeout-s` (the policy's `maker.timeout_s`, 600), then cancelled; the fill and its time
  come from the venue's trades of the order (`get_user_trades_by_order`);
- with `--peg` (the default), the executor's maker leg as the daemon sends it: post-only at the
  touch, re-priced when the touch moves away (`reprice_interval_ms`), taker fallback at the
  leg's `fallback_after_ms` (decision time + timeout). Recorded: the share of legs whose
  post-only orders filled in full before the fallback, and the time to that fill.

Prints a table per activity x distance: samples, fill probability within the timeout with its
binomial standard error, partial fills, median and p90 time to the first fill (s), then the
calibration of `hedging.cost.maker_fill_probability` / `maker_fill_delay_s` at the distance
the executor uses (0 ticks, pegged). Figures are in simulated time from the venue's
timestamps; overlapping probes share one price path, so the standard errors (independent
draws) understate the run-to-run spread: compare seeds.

    .venv/bin/python scripts/maker_fills.py --seed 7 [--hours 1 --speed 30] [--json OUT]

Loopback only; bounded in wall time (about activities x hours x 3600 / speed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, PERP, Rig, perp_decision, sim_rig
from hedgerd.execution.executor import ExecutorSettings
from hedgerd.execution.order_state import OrderStyle
from hedgerd.model import HedgeStyle, OrderSide
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.maker_probe import CellStats, MakerProbe, ProbeResult, cell_stats
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.venues.base import Lane, RateLimit
from hedgerd.venues.ccxt_venue import LaneLimiter

START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z, the scenarios' pinned start
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "config/scenarios/sim-default.toml"
#: activity name -> factor on the BTC index vol (every regime's)
ACTIVITIES: dict[str, float] = {"normal": 1.0, "quiet": 0.5, "busy": 2.0}
AMOUNT_USD = 10.0  # BTC-PERPETUAL's minimum: a probe fills whole when the market crosses it


@dataclass(frozen=True, slots=True)
class PegResult:
    """One executor maker leg: `maker_filled` of `amount` (USD) by its post-only orders before
    the fallback, `fill_s` seconds from the decision to the post-only fill that completed it
    (None: the fallback traded the rest), `orders` post-only orders it used (re-prices)."""

    activity: str
    side: str
    amount: float
    maker_filled: float
    fill_s: float | None
    orders: int
    fallback: bool


def scaled(sc: Scenario, factor: float) -> Scenario:
    """The scenario with the BTC index vol (and every regime's) multiplied by `factor`."""
    unders = []
    for u in sc.underlyings:
        if u.currency == "BTC":
            regimes = [r.model_copy(update={"vol": r.vol * factor}) for r in u.regimes]
            u = u.model_copy(update={"vol": u.vol * factor, "regimes": regimes})
        unders.append(u)
    return sc.model_copy(update={"underlyings": unders})


def btc_vols(sc: Scenario) -> str:
    u = next(u for u in sc.underlyings if u.currency == "BTC")
    if u.regimes:
        return "/".join(f"{r.name} {r.vol:.0%}" for r in u.regimes)
    return f"{u.vol:.0%}"


async def _until(sim: Simulator, t_ms: int, wall_end: float) -> bool:
    """Wait (polling the simulator's clock) until simulated `t_ms`; False past `wall_end`."""
    while sim.now_ms() < t_ms:
        if time.monotonic() > wall_end:
            return False
        await asyncio.sleep(0.01)
    return True


async def _peg_loop(
    r: Rig,
    sim: Simulator,
    side: OrderSide,
    activity: str,
    last_ms: int,
    timeout_ms: int,
    every_ms: int,
    wall_end: float,
    out: list[PegResult],
) -> None:
    i = 0
    while sim.now_ms() <= last_ms and time.monotonic() < wall_end:
        q = await r.venue.fetch_quote(PERP)
        now = sim.now_ms()
        d = perp_decision(
            f"mk{activity[0]}{side.value[0]}{i}",
            side,
            AMOUNT_USD,
            mid_usd=q.mid_price,
            ts_ms=now,
            style=HedgeStyle.MAKER,
            limit_price=q.bid_price if side is OrderSide.BUY else q.ask_price,
            fallback_after_ms=now + timeout_ms,
        )
        res = await r.executor.execute(d)
        (leg,) = res.legs
        recs = [x for x in [await r.journal.order(lb) for lb in leg.labels] if x is not None]
        posts = [x for x in recs if x.style is OrderStyle.POST_ONLY]
        fills = []
        for x in posts:
            if x.venue_order_id and max(x.filled_amount, x.venue_filled_amount) > 0:
                fills.extend(await r.venue.fetch_order_fills(x.venue_order_id))
        fills.sort(key=lambda f: f.ts_ms)
        got, done_ms = 0.0, None
        for f in fills:
            got += f.amount
            if done_ms is None and got >= AMOUNT_USD - 1e-9:
                done_ms = f.ts_ms
        out.append(
            PegResult(
                activity,
                side.value,
                AMOUNT_USD,
                got,
                None if done_ms is None else (done_ms - now) / 1000.0,
                len(posts),
                any(x.style is not OrderStyle.POST_ONLY for x in recs),
            )
        )
        i += 1
        await _until(sim, now + every_ms, wall_end)


async def run_activity(
    name: str, factor: float, args: argparse.Namespace
) -> tuple[list[ProbeResult], list[PegResult], dict[str, Any]]:
    sc = scaled(load_scenario(args.scenario, seed=args.seed), factor)
    timeout_ms = int(args.timeout_s * 1000)
    every_ms = int(args.every_s * 1000)
    speed = float(args.speed)
    tmp = Path(tempfile.mkdtemp(prefix="hgd-maker-", dir="/tmp"))
    wall0 = time.monotonic()
    wall_end = wall0 + 3 * args.hours * 3600 / speed + 60
    pegs: list[PegResult] = []

    async def sleep_ms(ms: int) -> None:  # the executor's waits, in simulated ms
        await asyncio.sleep(max(ms, 0) / 1000.0 / speed)

    async with running_simulator(
        host="127.0.0.1",
        port=0,
        scenario=sc,
        seed=args.seed,
        speed=speed,
        start_ms=args.start_ms,
        rate_limits=False,
        accounts=[(DRILL_KEY, DRILL_SECRET)],
    ) as sim:
        r = await sim_rig(
            sim,
            tmp / f"{name}.sqlite",
            sleep_ms=sleep_ms,
            settings=ExecutorSettings(maker_fallback_ms=timeout_ms),
            request_timeout_s=10.0,
        )
        # Compressed time: the venue's client-side lanes (Deribit's 5 orders/s, in wall
        # seconds) would throttle what is a few orders per simulated minute.
        r.venue.limiter = LaneLimiter(
            tuple(RateLimit(lane, 10_000, 1.0) for lane in (Lane.ORDERS, Lane.CANCELS, Lane.READS))
        )
        await r.start()
        try:
            t0 = sim.now_ms()
            end = t0 + int(args.hours * 3_600_000)
            last = end - timeout_ms  # the last cohort still gets its whole timeout
            probe = MakerProbe(
                r.venue,
                PERP,
                amount=AMOUNT_USD,
                timeout_ms=timeout_ms,
                clock_ms=sim.now_ms,
                activity=name,
            )
            peg_tasks = (
                [
                    asyncio.get_running_loop().create_task(
                        _peg_loop(r, sim, s, name, last, timeout_ms, every_ms, wall_end, pegs)
                    )
                    for s in (OrderSide.BUY, OrderSide.SELL)
                ]
                if args.peg
                else []
            )
            sides = (OrderSide.BUY, OrderSide.SELL)
            due = t0
            while due <= last and await _until(sim, due, wall_end):
                await probe.place(sides, args.distances)
                await probe.expire()
                due += every_ms
            if await _until(sim, end + 1_000, wall_end):
                await probe.expire()
            await probe.expire(every=True)
            for t in peg_tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(t, timeout=max(wall_end - time.monotonic(), 1.0))
            info = {
                "activity": name,
                "btc_vol": btc_vols(sc),
                "sim_hours": (sim.now_ms() - t0) / 3_600_000,
                "wall_s": time.monotonic() - wall0,
                "cohorts": (min(due, last + every_ms) - t0) // every_ms,
                "internal_errors": sim.state()["counters"].get("internal_errors", 0),
            }
        finally:
            await r.close()
    return probe.results, pegs, info


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def peg_stats(pegs: list[PegResult]) -> dict[str, Any]:
    n = len(pegs)
    k = sum(p.fill_s is not None for p in pegs)
    times = sorted(p.fill_s for p in pegs if p.fill_s is not None)
    p = k / n if n else math.nan
    return {
        "n": n,
        "filled": k,
        "p_fill": p,
        "se": math.sqrt(p * (1 - p) / n) if n else math.nan,
        "median_s": times[len(times) // 2] if times else None,
        "p90_s": times[min(int(0.9 * len(times)), len(times) - 1)] if times else None,
        "mean_s": sum(times) / len(times) if times else None,
        "orders_per_leg": sum(x.orders for x in pegs) / n if n else math.nan,
    }


def report(
    cells: list[CellStats],
    pegs: dict[str, dict[str, Any]],
    infos: list[dict[str, Any]],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"maker fills on {PERP}: seed {args.seed}, start {args.start_ms}, speed {args.speed:g}, "
        f"{args.hours:g} h per activity, a cohort every {args.every_s:g} s, "
        f"timeout {args.timeout_s:g} s",
    ]
    for i in infos:
        lines.append(
            f"  {i['activity']:<7} BTC vol {i['btc_vol']:<24} {i['sim_hours']:.2f} sim h in "
            f"{i['wall_s']:.0f} wall s, {i['cohorts']} cohorts, internal errors "
            f"{i['internal_errors']}"
        )
    lines += [
        "",
        "| activity | distance ticks (bp) | n | P(fill ≤ timeout) ± se | partial | median s "
        "| p90 s |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {a: i for i, a in enumerate(ACTIVITIES)}
    for c in sorted(cells, key=lambda c: (order.get(c.activity, 99), c.distance_ticks)):
        lines.append(
            f"| {c.activity} | {c.distance_ticks} ({c.distance_bp:.2f}) | {c.n} | "
            f"{c.p_fill:.3f} ± {c.se:.3f} | "
            f"{c.partial} | {_fmt(c.median_s)} | {_fmt(c.p90_s)} |"
        )
    for act, s in pegs.items():
        lines.append(
            f"| {act} | executor (pegged at 0) | {s['n']} | {s['p_fill']:.3f} ± {s['se']:.3f} | "
            f"- | {_fmt(s['median_s'])} | {_fmt(s['p90_s'])} |"
        )
    return "\n".join(lines)


def calibration(cells: list[CellStats], pegs: dict[str, dict[str, Any]]) -> str:
    """The cost model's maker figures at the executor's distance (the touch, pegged), from the
    normal activity; the static probe at 0 ticks beside it."""
    lines = ["", "calibration (normal activity; config hedging.cost):"]
    static = next((c for c in cells if c.activity == "normal" and c.distance_ticks == 0), None)
    peg = pegs.get("normal")
    if peg and peg["n"]:
        lines.append(
            f"  executor at the touch, pegged: maker_fill_probability = {peg['p_fill']:.3f} "
            f"(± {peg['se']:.3f}), maker_fill_delay_s = {_fmt(peg['mean_s'])} (mean; median "
            f"{_fmt(peg['median_s'])}, p90 {_fmt(peg['p90_s'])}), "
            f"{peg['orders_per_leg']:.1f} post-only orders per leg"
        )
        if peg["filled"] == peg["n"]:
            lines.append(
                f"  (no leg fell back to taker: P(fill) >= {1 - 3 / peg['n']:.3f} at 95 %, the "
                "rule of three)"
            )
    if static is not None:
        lines.append(
            f"  static at the touch: P(fill ≤ timeout) {static.p_fill:.3f} ± {static.se:.3f}, "
            f"median {_fmt(static.median_s)} s, p90 {_fmt(static.p90_s)} s"
        )
    lines.append("  backtest default: maker_fill_probability 0.6, maker_fill_delay_s 120")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: list[ProbeResult] = []
    peg_by: dict[str, dict[str, Any]] = {}
    infos = []
    raw_pegs: list[PegResult] = []
    for name in args.activities:
        res, pegs, info = await run_activity(name, ACTIVITIES[name], args)
        print(f"maker_fills: {name} done in {info['wall_s']:.0f} s", file=sys.stderr, flush=True)
        results += res
        raw_pegs += pegs
        if pegs:
            peg_by[name] = peg_stats(pegs)
        infos.append(info)
    cells = cell_stats(results)
    text = report(cells, peg_by, infos, args) + "\n" + calibration(cells, peg_by)
    print(text, flush=True)
    return {
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "runs": infos,
        "cells": [asdict(c) for c in cells],
        "executor": peg_by,
        "executor_legs": [asdict(p) for p in raw_pegs],
        "probes": [
            {
                "activity": r.activity,
                "side": r.probe.side.value,
                "distance_ticks": r.probe.distance_ticks,
                "placed_ms": r.probe.placed_ms,
                "price": r.probe.price,
                "touch": r.probe.touch,
                "filled_amount": r.filled_amount,
                "first_fill_ms": r.first_fill_ms,
                "full_fill_ms": r.full_fill_ms,
            }
            for r in results
        ],
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start-ms", type=int, default=START_MS, help="simulated start, UTC ms")
    p.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    p.add_argument("--hours", type=float, default=1.0, help="simulated hours per activity")
    p.add_argument("--speed", type=float, default=30.0, help="simulated s per wall s")
    p.add_argument("--timeout-s", type=float, default=600.0, help="the policy's maker timeout")
    p.add_argument("--every-s", type=float, default=30.0, help="simulated s between cohorts")
    p.add_argument(
        "--distances",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[0, 1, 2, 5, 10, 18, 36, 90, 180],
        help="ticks behind the touch (BTC-PERPETUAL: 0.5 USD; 18 ticks ~ 1 bp at 90,000)",
    )
    p.add_argument(
        "--activities",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(ACTIVITIES),
        help=f"comma-separated of {', '.join(f'{k} (vol x{v:g})' for k, v in ACTIVITIES.items())}",
    )
    p.add_argument("--no-peg", dest="peg", action="store_false", help="static probes only")
    p.add_argument("--json", default=None, help="write the figures and every probe here")
    args = p.parse_args(argv)
    bad = [a for a in args.activities if a not in ACTIVITIES]
    if bad:
        p.error(f"unknown activity {bad}")
    # ERROR: the executor warns when a re-price's cancel finds the order already filled.
    logging.basicConfig(level=logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    out = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
