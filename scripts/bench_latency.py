#!/usr/bin/env python3
"""Latency benchmarks. Each section is one function `section_*` printing its figures.

    .venv/bin/python scripts/bench_latency.py [--cpu] [SECTION ...]

`--cpu`: time the decision sections in this thread's CPU time instead of the wall clock (on a
shared machine: the other jobs' preemption is left out, their cache pressure is not).

decision: the hedge controller's decision for one underlying of a 10k-position book
(target: p99 <= 100 us). It times `hedging.controller.decide` on the book's aggregated risk
(two candidate instruments with 10-level books, in-flight orders), and separately the
aggregation of 10k positions' cached Greeks into that risk plus the decision, the path a
price tick takes once the book has revalued.

decision-two-accounts (also run by `decision`): the same 10k positions split across two
accounts (a Deribit account with the inverse perpetual and future, an OKX account with the
linear USDT swap), the path of `portfolio.hedge_loop`: each account's risk, their sum
(`portfolio.book.sum_risks`), and `decide` routing across the four candidate instruments of
both venues with the default cost model and router. Target p99 <= 100 us; figures, with the
load average they were measured at and how (`chrt -f 50`: no preemption by the machine's
other jobs): docs/backtest.md, "Latency of a decision".
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
#: What the sections time with: the wall clock, or with `--cpu` this thread's CPU time (a
#: figure that a shared machine's other jobs do not inflate by preempting the benchmark).
_clock_ns: Callable[[], int] = time.perf_counter_ns
SPOT = 60_000.0


def _percentiles(ns: list[int]) -> str:
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return (
        f"p50 {p50:.1f} us  p90 {p90:.1f} us  p99 {p99:.1f} us  p99.9 {p999:.1f} us  "
        f"max {a.max():.1f} us  (n={a.size})"
    )


def _venue(
    name: str,
    kind: InstrumentKind,
    fee: float,
    hs: float,
    level: float,
    account: str = "deribit",
) -> HedgeVenueState:
    """An inverse Deribit-style hedge instrument (amounts in USD, 10 USD contracts) on
    `account`, with a 10-level book of `level` USD a level and half-spread `hs` USD."""
    inst = Instrument(
        venue=account,
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
        quote=Quote(account, name, SPOT - hs, level, SPOT + hs, level, NOW_MS),
        delta_coin_per_amount=1.0 / SPOT,
        book=OrderBookSnapshot(account, name, bids, asks, NOW_MS),
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
            t = _clock_ns()
            d = decide(r, venues, flying, "hedgerd", policy, state, NOW_MS + i)
            ns.append(_clock_ns() - t)
            trades += d.trades
        agg_ns: list[int] = []
        for i in range(min(iterations, 5000)):
            t = _clock_ns()
            r = aggregate(float(shifts[i]))
            decide(r, venues, flying, "hedgerd", policy, state, NOW_MS + i)
            agg_ns.append(_clock_ns() - t)
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


def _linear_venue(account: str, hs: float, level_coin: float) -> HedgeVenueState:
    """An OKX-style linear USDT swap on `account` (amounts in coin, 0.01 BTC lots), with a
    10-level book of `level_coin` BTC a level and half-spread `hs` USD."""
    name = "BTC-USDT-SWAP"
    inst = Instrument(
        venue=account,
        name=name,
        kind=InstrumentKind.PERPETUAL,
        underlying="BTC",
        quote_currency="USDT",
        settlement_currency="USDT",
        inverse=False,
        contract_size=0.01,
        amount_unit=AmountUnit.COIN,
        min_amount=0.01,
        amount_step=0.01,
        tick_size=0.1,
        price_unit=PriceUnit.USD,
        maker_fee=0.0002,
        taker_fee=0.0005,
    )
    asks = tuple(BookLevel(SPOT + hs + 0.5 * i, level_coin) for i in range(10))
    bids = tuple(BookLevel(SPOT - hs - 0.5 * i, level_coin) for i in range(10))
    return HedgeVenueState(
        instrument=inst,
        quote=Quote(account, name, SPOT - hs, level_coin, SPOT + hs, level_coin, NOW_MS),
        delta_coin_per_amount=1.0,
        book=OrderBookSnapshot(account, name, bids, asks, NOW_MS),
        funding_8h=0.00008,
        margin_available_usd=2_000_000.0,
        initial_margin_frac=0.01,
    )


def section_decision_two_accounts(n_positions: int = 10_000, iterations: int = 20_000) -> None:
    """The portfolio path of one evaluation with the 10k-position book split across two
    accounts (half each): per-account risk, `sum_risks`, then `decide` over both venues'
    instruments with the default cost model and router. Latencies in microseconds."""
    from hedgerd.hedging.config import CostModelSettings, RouterSettings
    from hedgerd.portfolio.book import sum_risks

    rng = np.random.default_rng(5)
    book = _book(n_positions, rng)
    g = black76(book["is_call"], SPOT, book["strike"], book["tau"], book["vol"])
    q = book["qty"]
    delta, gamma, vanna = g.delta * q, g.gamma * q, g.vanna * q
    expiring = book["tau"] <= 1 / 365.0
    # Which account holds each position (half each, interleaved at random).
    on_okx = rng.random(n_positions) < 0.5
    accounts = {"deribit-main": ~on_okx, "okx-main": on_okx}
    venues = [
        _venue("BTC-PERPETUAL", InstrumentKind.PERPETUAL, 0.0005, 0.25, 200_000.0, "deribit-main"),
        _venue("BTC-FUTURE", InstrumentKind.FUTURE, 0.0005, 2.5, 50_000.0, "deribit-main"),
        _linear_venue("okx-main", 0.05, 3.0),
    ]
    flying = [
        InFlightOrder(
            "deribit-main", "BTC-PERPETUAL", f"hg2-d-{i}-0", 0.05, HedgeStyle.MAKER, NOW_MS
        )
        for i in range(2)
    ] + [InFlightOrder("okx-main", "BTC-USDT-SWAP", "hg2o1x0", 0.05, HedgeStyle.MAKER, NOW_MS)]
    policy = HedgerdPolicy(risk_aversion_per_usd=1e-5, maker=MakerSettings(enabled=True))
    state = PolicyState(last_hedge_ms=NOW_MS - 60_000, last_hedge_spot_usd=SPOT)
    cost = CostModelSettings()
    router = RouterSettings()

    def account_risk(mask: np.ndarray, shift: float) -> UnderlyingRisk:
        ag = np.abs(gamma[mask])
        w = ag / ag.sum()
        return UnderlyingRisk(
            underlying="BTC",
            spot_usd=SPOT,
            net_delta_coin=float(delta[mask].sum()) + shift,
            gamma_coin_per_usd=float(gamma[mask].sum()),
            vol=float(w @ book["vol"][mask]),
            tau_years=float(w @ book["tau"][mask]),
            vanna_coin_per_vol=float(vanna[mask].sum()),
            expiring_delta_coin=float(delta[mask & expiring].sum()),
            next_settlement_ms=NOW_MS + 3_600_000,
        )

    base = {name: account_risk(mask, 0.0) for name, mask in accounts.items()}
    shifts = rng.normal(0.0, 3.0, iterations)

    def shifted(s: float) -> dict[str, UnderlyingRisk]:
        # The book's delta moved by s coin, half on each account (most leave the band).
        return {
            name: UnderlyingRisk(
                r.underlying,
                r.spot_usd,
                s / 2.0,
                r.gamma_coin_per_usd,
                r.vol,
                r.tau_years,
                r.vanna_coin_per_vol,
                0.0,
                r.expiring_delta_coin,
                r.next_settlement_ms,
            )
            for name, r in base.items()
        }

    per_account = [shifted(float(s)) for s in shifts]

    def one(risks: dict[str, UnderlyingRisk], now: int) -> int:
        total = sum_risks(risks).total
        return decide(total, venues, flying, "hedgerd", policy, state, now, cost, router).trades

    for r in per_account[:500]:  # warm up
        one(r, NOW_MS)
    gc.collect()
    gc.disable()
    ns: list[int] = []
    trades = 0
    agg_ns: list[int] = []
    try:
        for i, r in enumerate(per_account):
            t = _clock_ns()
            trades += one(r, NOW_MS + i)
            ns.append(_clock_ns() - t)
        for i in range(min(iterations, 5000)):
            t = _clock_ns()
            s = float(shifts[i])
            one({n: account_risk(m, s / 2.0) for n, m in accounts.items()}, NOW_MS + i)
            agg_ns.append(_clock_ns() - t)
    finally:
        gc.enable()
    sizes = ", ".join(f"{n} {int(m.sum())}" for n, m in accounts.items())
    print(
        f"decision latency, {n_positions} positions on two accounts ({sizes}), "
        f"{len(venues)} instruments on 2 venues x 10 levels, {len(flying)} orders in flight "
        f"({trades} of {iterations} decisions trade):"
    )
    print(f"  sum_risks() + decide():                     {_percentiles(ns)}")
    print(f"  per-account aggregate + sum_risks + decide: {_percentiles(agg_ns)}")
    p99 = float(np.percentile(np.asarray(ns) / 1000.0, 99))
    print(f"  target p99 <= 100 us: {'PASS' if p99 <= 100.0 else 'FAIL'} ({p99:.1f} us)")


def section_options(sizes: tuple[int, ...] = (100, 1_000, 10_000), evaluations: int = 40) -> None:
    """The band's averaged gamma per evaluation (`hedge_loop`: every account's options of the
    underlying side by side, then `kernel.gamma_ahead` with the default policy's key: its
    horizon, "abs" average and shortest time to expiry) for books of `sizes` options split
    across two accounts, in process CPU time (the pricing kernel may use threads). Before:
    the arrays cut from each book and concatenated on every evaluation (as before
    `portfolio.book.BookOptions`). After: the cache, with the index moving on every
    evaluation (positions and marks unchanged: the arrays are kept, the gamma is
    recomputed), and with nothing changed (all kept)."""
    from hedgerd.book.greeks_book import GreeksBook, _live_options
    from hedgerd.hedging.kernel import OptionArrays, gamma_ahead, gamma_ahead_key
    from hedgerd.portfolio.book import BookOptions, concat_options
    from hedgerd.venues.deribit.names import option_name, parse_instrument_name

    key = gamma_ahead_key(HedgerdPolicy(risk_aversion_per_usd=1e-5))  # the default's, floor too
    assert key is not None
    day = 86_400_000
    expiries = [NOW_MS + d * day for d in (1, 2, 7, 14, 28, 56, 91, 182)]

    def books_of(n: int) -> list[GreeksBook]:
        rng = np.random.default_rng(11)
        out = []
        for account in range(2):
            book = GreeksBook()
            book.set_index("BTC", SPOT)
            for i in range(n // 2):
                exp = expiries[i % len(expiries)]
                strike = 20_000.0 + 1_000.0 * (i // (2 * len(expiries)))
                call = (i // len(expiries)) % 2 == 0
                name = option_name("BTC", exp, strike, call)
                book.add_instrument(parse_instrument_name(name, f"acct{account}"))
                book.set_option_vol(name, float(rng.uniform(0.45, 0.8)))
                book.set_position(name, float(rng.normal(0.0, 2.0)), AmountUnit.COIN)
            out.append(book)
        return out

    def uncached(book: GreeksBook, now: int) -> OptionArrays:
        live = _live_options(book._u("BTC").options, now)[1]
        return OptionArrays(
            live.is_call, live.strike_usd, (live.exp - now) / 31_536_000_000.0, live.qty_coin,
            live.vol,
        )  # fmt: skip

    print(
        f"averaged gamma per evaluation (key {key}), two accounts, process CPU time, "
        f"mean of {evaluations} evaluations:"
    )

    def measure(n: int) -> dict[str, float]:
        books = books_of(n)
        cache = BookOptions("BTC")
        spots = SPOT * (1.0 + 0.001 * np.sin(np.arange(evaluations)))

        def before(i: int) -> float:
            options = concat_options([uncached(b, NOW_MS + i) for b in books])
            return float(gamma_ahead(key, options, float(spots[i]), 0.6))

        def after(i: int) -> float:
            return cache.gamma_ahead(key, books, NOW_MS + i, float(spots[i]), 0.6)

        def unchanged(i: int) -> float:
            return cache.gamma_ahead(key, books, NOW_MS, SPOT, 0.6)

        figures = {}
        for name, f in (("before", before), ("after", after), ("unchanged", unchanged)):
            f(0)  # warm up (the pricing kernel's compilation, the cache's first fill)
            t = time.process_time()
            for i in range(evaluations):
                f(i)
            figures[name] = (time.process_time() - t) / evaluations * 1e3
        assert before(3) == after(3)
        return figures

    for n in sizes:
        figures = measure(n)
        print(
            f"  {n:>6} options: before {figures['before']:.3f} ms, after (index moved) "
            f"{figures['after']:.3f} ms, after (nothing changed) {figures['unchanged']:.4f} ms"
        )


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


def section_decision_all() -> None:
    """`decision`: the single-account book, then the same book split across two accounts."""
    section_decision()
    section_decision_two_accounts()


SECTIONS: dict[str, Callable[[], None]] = {
    "decision": section_decision_all,
    "decision-two-accounts": section_decision_two_accounts,
    "options": section_options,
    "wire": bench_wire_latency,
}


def main(argv: list[str]) -> int:
    global _clock_ns
    if "--cpu" in argv:
        # CPU time of this thread (`decision*` sections; the wire section keeps the wall
        # clock: its stamps are compared with the executor's).
        _clock_ns = time.thread_time_ns
        argv = [a for a in argv if a != "--cpu"]
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
