#!/usr/bin/env python3
"""Latency benchmarks. Each section is one function `section_*` printing its figures.

    .venv/bin/python scripts/bench_latency.py [SECTION ...]

decision: the hedge controller's decision for one underlying of a 10k-position book
(target: p99 <= 100 us). It times `hedging.controller.decide` on the book's aggregated risk
(two candidate instruments with 10-level books, in-flight orders), and separately the
aggregation of 10k positions' cached Greeks into that risk plus the decision, the path a
price tick takes once the book has revalued.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable

import numpy as np

from hedgerd.hedging.config import HedgerdPolicy, MakerSettings
from hedgerd.hedging.controller import decide
from hedgerd.hedging.inputs import HedgeVenueState, InFlightOrder, PolicyState, UnderlyingRisk
from hedgerd.model import (
    AmountUnit,
    BookLevel,
    HedgeStyle,
    Instrument,
    InstrumentKind,
    OrderBookSnapshot,
    PriceUnit,
    Quote,
)
from hedgerd.pricing.black import black76

NOW_MS = 1_800_000_000_000
SPOT = 60_000.0


def _percentiles(ns: list[int]) -> str:
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return (
        f"p50 {p50:.1f} us  p90 {p90:.1f} us  p99 {p99:.1f} us  p99.9 {p999:.1f} us  "
        f"max {a.max():.1f} us  (n={a.size})"
    )


def _venue(name: str, kind: InstrumentKind, fee: float, hs: float, level: float) -> HedgeVenueState:
    inst = Instrument(
        venue="deribit",
        name=name,
        kind=kind,
        underlying="BTC",
        quote_currency="USD",
        settlement_currency="BTC",
        inverse=True,
        contract_size=10.0,
        amount_unit=AmountUnit.USD,
        min_amount=10.0,
        amount_step=10.0,
        tick_size=0.5,
        price_unit=PriceUnit.USD,
        maker_fee=0.0,
        taker_fee=fee,
        expiry_ms=NOW_MS + 40 * 86_400_000 if kind is InstrumentKind.FUTURE else None,
    )
    asks = tuple(BookLevel(SPOT + hs + 2.5 * i, level) for i in range(10))
    bids = tuple(BookLevel(SPOT - hs - 2.5 * i, level) for i in range(10))
    return HedgeVenueState(
        instrument=inst,
        quote=Quote("deribit", name, SPOT - hs, level, SPOT + hs, level, NOW_MS),
        delta_coin_per_amount=1.0 / SPOT,
        book=OrderBookSnapshot("deribit", name, bids, asks, NOW_MS),
        funding_8h=0.0001 if kind is InstrumentKind.PERPETUAL else None,
        basis_annual=0.05 if kind is InstrumentKind.FUTURE else None,
    )


def _book(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    expiries = np.array([1, 2, 7, 14, 28, 56, 91, 182]) / 365.0
    return {
        "is_call": rng.random(n) < 0.5,
        "strike": np.round(SPOT * rng.uniform(0.6, 1.5, n), -3),
        "tau": expiries[rng.integers(0, expiries.size, n)],
        "vol": rng.uniform(0.45, 0.8, n),
        "qty": rng.normal(0.0, 2.0, n),
    }


def section_decision(n_positions: int = 10_000, iterations: int = 20_000) -> None:
    rng = np.random.default_rng(5)
    book = _book(n_positions, rng)
    t0 = time.perf_counter()
    g = black76(book["is_call"], SPOT, book["strike"], book["tau"], book["vol"])
    reval_us = (time.perf_counter() - t0) * 1e6
    q = book["qty"]
    delta, gamma, vanna = g.delta * q, g.gamma * q, g.vanna * q
    expiring = book["tau"] <= 1 / 365.0
    venues = [
        _venue("BTC-PERPETUAL", InstrumentKind.PERPETUAL, 0.0005, 0.25, 200_000.0),
        _venue("BTC-FUTURE", InstrumentKind.FUTURE, 0.0005, 2.5, 50_000.0),
    ]
    flying = [
        InFlightOrder("deribit", "BTC-PERPETUAL", f"hd-x-{i}-0", 0.05, HedgeStyle.MAKER, NOW_MS)
        for i in range(3)
    ]
    policy = HedgerdPolicy(risk_aversion_per_usd=1e-5, maker=MakerSettings(enabled=True))
    state = PolicyState(last_hedge_ms=NOW_MS - 60_000, last_hedge_spot_usd=SPOT)

    def aggregate(shift: float) -> UnderlyingRisk:
        ag = np.abs(gamma)
        w = ag / ag.sum()
        return UnderlyingRisk(
            underlying="BTC",
            spot_usd=SPOT,
            net_delta_coin=float(delta.sum()) + shift,
            gamma_coin_per_usd=float(gamma.sum()),
            vol=float(w @ book["vol"]),
            tau_years=float(w @ book["tau"]),
            vanna_coin_per_vol=float(vanna.sum()),
            expiring_delta_coin=float(delta[expiring].sum()),
            next_settlement_ms=NOW_MS + 3_600_000,
        )

    base = aggregate(0.0)
    shifts = rng.normal(0.0, 3.0, iterations)
    # Shifted deltas: most leave the band (a trading decision is the slower case).
    risks = [
        UnderlyingRisk(
            base.underlying,
            base.spot_usd,
            -base.net_delta_coin * 0 + s,
            base.gamma_coin_per_usd,
            base.vol,
            base.tau_years,
            base.vanna_coin_per_vol,
            0.0,
            base.expiring_delta_coin,
            base.next_settlement_ms,
        )
        for s in shifts
    ]
    for r in risks[:500]:  # warm up
        decide(r, venues, flying, "hedgerd", policy, state, NOW_MS)
    gc.collect()
    gc.disable()
    ns: list[int] = []
    trades = 0
    try:
        for i, r in enumerate(risks):
            t = time.perf_counter_ns()
            d = decide(r, venues, flying, "hedgerd", policy, state, NOW_MS + i)
            ns.append(time.perf_counter_ns() - t)
            trades += d.trades
        agg_ns: list[int] = []
        for i in range(min(iterations, 5000)):
            t = time.perf_counter_ns()
            r = aggregate(float(shifts[i]))
            decide(r, venues, flying, "hedgerd", policy, state, NOW_MS + i)
            agg_ns.append(time.perf_counter_ns() - t)
    finally:
        gc.enable()
    print(
        f"decision latency, {n_positions} positions, 2 instruments x 10 levels, "
        f"{len(flying)} orders in flight ({trades} of {iterations} decisions trade):"
    )
    print(f"  decide():                 {_percentiles(ns)}")
    print(f"  aggregate 10k + decide(): {_percentiles(agg_ns)}")
    print(
        f"  (book revaluation of {n_positions} options with black76, for scale: "
        f"{reval_us:.0f} us once)"
    )
    p99 = float(np.percentile(np.asarray(ns) / 1000.0, 99))
    print(f"  target p99 <= 100 us: {'PASS' if p99 <= 100.0 else 'FAIL'} ({p99:.1f} us)")


# ------------------------------------------------------------------ wire (execution helper)


def bench_wire_latency(n_orders: int = 200) -> None:
    """Decision-to-order-on-the-wire latency against the simulator on loopback.

    `Executor.execute` on one-leg IOC decisions (10 USD on BTC-PERPETUAL, alternating sides);
    the simulator (in this process) stamps each order request as it arrives. Split: hedgerd's
    own time (risk gate, labels, the journal intent committed with fsync, up to the venue
    adapter call) and the time in the adapter + transport + network until the request reaches
    the server; plus the full answer round trip. Two transports: the Deribit private WebSocket
    session (the adapter's default: cancel-on-disconnect covers its orders) and ccxt's REST
    `create_order`. The lanes' throttle is set wide so no request queues (queueing is the rate
    limit's job, measured by the 10028 test, not latency).
    """
    import asyncio
    import tempfile
    from pathlib import Path
    from typing import Any

    from hedgerd.execution.drill import (
        DRILL_KEY,
        DRILL_SECRET,
        PERP,
        perp_decision,
        rig,
        sim_scenario,
    )
    from hedgerd.model import OrderSide
    from hedgerd.sim.command import running_simulator
    from hedgerd.venues.base import Lane, RateLimit
    from hedgerd.venues.ccxt_venue import LaneLimiter

    async def run(transport: str, tmp: Path) -> None:
        async with running_simulator(
            scenario=sim_scenario(vol=0.05),
            stepped=True,
            rate_limits=False,
            accounts=[(DRILL_KEY, DRILL_SECRET)],
        ) as sim:
            arrived: dict[str, int] = {}
            server: Any = sim.server
            inner = server.call

            async def stamp(method: str, params: dict[str, Any], ctx: Any) -> Any:
                if method in ("private/buy", "private/sell"):
                    arrived[str(params.get("label", ""))] = time.perf_counter_ns()
                return await inner(method, params, ctx)

            server.call = stamp
            r = await rig(
                rest_url=sim.rest_url,
                ws_url=sim.ws_url,
                key=DRILL_KEY,
                secret=DRILL_SECRET,
                journal_path=tmp / f"{transport}.sqlite",
                clock_ms=sim.now_ms,
                cancel_on_disconnect=transport == "ws",
            )
            r.venue.limiter = LaneLimiter(
                (
                    RateLimit(Lane.ORDERS, 10_000, 1.0),
                    RateLimit(Lane.CANCELS, 10_000, 1.0),
                    RateLimit(Lane.READS, 10_000, 1.0),
                )
            )
            await r.start()
            try:
                mid = (await r.venue.fetch_quote(PERP)).mid_price
                for i in range(n_orders + 20):
                    side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
                    d = perp_decision(
                        f"bench-{transport}-{i}", side, 10.0, mid_usd=mid, ts_ms=sim.now_ms()
                    )
                    await r.executor.execute(d)
                timings = list(r.executor.timings)[20:]  # after warm-up
            finally:
                await r.close()
        own = [t.send_ns - t.decision_ns for t in timings]
        fsync = [t.journal_ns for t in timings]
        rest = [t.send_ns - t.decision_ns - t.journal_ns for t in timings]
        wire = [arrived[t.label] - t.send_ns for t in timings]
        total = [arrived[t.label] - t.decision_ns for t in timings]
        answer = [t.answer_ns - t.send_ns for t in timings]
        print(f"  transport {transport} ({len(timings)} orders):")
        print(f"    decision -> on the wire (total):  {_percentiles(total)}")
        print(f"    hedgerd own (gate, label, journal fsync): {_percentiles(own)}")
        print(f"      of which the intent commit:     {_percentiles(fsync)}")
        print(f"      the rest (gate, labels, tasks): {_percentiles(rest)}")
        print(f"    adapter + transport + network:    {_percentiles(wire)}")
        print(f"    send -> answer back (round trip): {_percentiles(answer)}")

    print("wire latency against the simulator on 127.0.0.1 (measured under shared load):")
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run("ws", Path(d)))
        asyncio.run(run("rest", Path(d)))


SECTIONS: dict[str, Callable[[], None]] = {
    "decision": section_decision,
    "wire": bench_wire_latency,
}


def main(argv: list[str]) -> int:
    names = argv or list(SECTIONS)
    for name in names:
        if name not in SECTIONS:
            print(f"unknown section {name!r}; known: {', '.join(SECTIONS)}", file=sys.stderr)
            return 2
        print(f"== {name}")
        SECTIONS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
