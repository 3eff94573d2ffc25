#!/usr/bin/env python3
"""Benchmarks of the Greeks engine: black76 against a plain numpy implementation of the same
formulas on the same mixed inputs in the same run (``numpy``: the ratio, which unlike an
absolute figure carries from machine to machine), ns per option for a full reprice (price
and all six Greeks) at several book sizes (``pricing``), the GreeksBook tick latency
(``book``) and where a tick's time goes (``book-steps``).

Run: ``.venv/bin/python scripts/bench_greeks.py [--sections numpy,pricing,...] [--threads N]``.
Each section is a function ``bench_<name>(args) -> None`` that prints its figures; ``main``
runs the selected ones (``book-steps`` only when named). Figures are wall-clock: on a shared
machine, run it on an idle one (the book section also prints per-tick CPU time, which
leaves out preemption by other processes; the numpy section alternates the two
implementations within each round, so load hits both alike).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import scipy
from scipy.special import ndtr

from hedgerd.pricing import Greeks, black76, black76_into
from hedgerd.pricing import black as _black

MINUTE_Y = 1.0 / (365.0 * 24 * 60)
DAY_Y = 1.0 / 365.0


INPUTS = (
    "calls and puts mixed at random, BTC forwards ~60k, tau 1 day..1 year (log-uniform),"
    " vol 30..120 %, strikes within +-4 sd, per-option discount exp(-r tau) with r 0..10 %;"
    " float64 contiguous arrays"
)


def make_option_inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A crypto-desk-like book (`INPUTS`): BTC forwards around 60k, expiries from one day to a
    year (log-uniform), vols 30..120 %, strikes within +-4 standard deviations, calls and
    puts at random, a discount factor per option (rates 0..10 %)."""
    rng = np.random.default_rng(seed)
    forward = 60_000.0 * np.exp(rng.normal(0.0, 0.01, n))
    tau = np.exp(rng.uniform(math.log(DAY_Y), math.log(1.0), n))
    vol = rng.uniform(0.3, 1.2, n)
    strike = forward * np.exp(rng.uniform(-4.0, 4.0, n) * vol * np.sqrt(tau))
    return {
        "is_call": rng.random(n) < 0.5,
        "forward": forward,
        "strike": strike,
        "tau": tau,
        "vol": vol,
        "discount": np.exp(-rng.uniform(0.0, 0.1, n) * tau),
    }


def black76_plain_numpy(
    is_call: np.ndarray,
    F: np.ndarray,
    K: np.ndarray,
    tau: np.ndarray,
    vol: np.ndarray,
    D: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The reference for the ``numpy`` section: Black-76 written the straightforward way with
    numpy and ``scipy.special.ndtr``, the same seven outputs in the same units as ``black76``
    (price in F's unit, delta, gamma, vega and vanna per 1.00 of vol, volga, theta per year
    with ``r = -ln(D)/tau``). Not tuned, not deliberately slow: one exp for the density,
    calls and puts by a sign array."""
    sqrt_tau = np.sqrt(tau)
    v = vol * sqrt_tau
    d1 = np.log(F / K) / v + 0.5 * v
    d2 = d1 - v
    sign = np.where(is_call, 1.0, -1.0)
    Nd1 = ndtr(sign * d1)
    Nd2 = ndtr(sign * d2)
    pdf = D * np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)  # D n(d1)
    price = D * sign * (F * Nd1 - K * Nd2)
    delta = D * sign * Nd1
    gamma = pdf / (F * v)
    vega = F * pdf * sqrt_tau
    theta = -F * pdf * vol / (2.0 * sqrt_tau) - np.log(D) / tau * price
    vanna = -pdf * d2 / vol
    volga = vega * d1 * d2 / vol
    return price, delta, gamma, vega, theta, vanna, volga


def time_call(
    fn: Callable[[], object],
    min_seconds: float = 0.3,
    repeats: int = 7,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds per call for ``repeats`` batches, each batch running ``fn`` for >= min_seconds
    total (at least once), measured with ``clock`` (wall clock by default)."""
    fn()  # warm-up: thread pool, caches
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    number = max(1, int(min_seconds / repeats / one))
    out = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(number):
            fn()
        out.append((clock() - t0) / number)
    return out


def runtime_note() -> str:
    """numpy, scipy and numba versions, the BLAS numpy was built with and the thread
    settings."""
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]  # type: ignore[attr-defined]
        blas_name = f"{blas['name']} {blas.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        blas_name = "unknown"
    env = " ".join(
        f"{k}={os.environ.get(k, 'unset')}"
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"numpy {np.__version__}, scipy {scipy.__version__}, numba {numba.__version__},"
        f" Python {sys.version.split()[0]};"
        f" BLAS {blas_name} (not used here: element-wise ufuncs only, single-threaded; {env});"
        f" cpus {os.cpu_count()}, load average {load:.1f}"
    )


def bench_numpy(args: argparse.Namespace) -> None:
    """black76 against `black76_plain_numpy` on the same mixed inputs, in one run: ns per
    option of each, and their ratio (the figure that carries across machines)."""
    n = args.numpy_size
    inp = make_option_inputs(n, seed=12345)
    call, F, K, T, V, D = (
        inp[k] for k in ("is_call", "forward", "strike", "tau", "vol", "discount")
    )
    threads = _black._workers.threads
    out = Greeks.empty(n)

    def plain() -> object:
        return black76_plain_numpy(call, F, K, T, V, D)

    def fast() -> object:
        return black76(call, F, K, T, V, D)

    def fast_into() -> object:
        return black76_into(out, call, F, K, T, V, D)

    ref = plain()
    t0 = time.perf_counter()
    got = fast()  # the process's first black76 call: compiles the kernel or loads its cache
    first_call = time.perf_counter() - t0
    assert isinstance(ref, tuple) and isinstance(got, Greeks)
    # same quantities: max difference relative to each value (floored at 1e-9 of the output's
    # largest magnitude, for Greeks that cross zero)
    agree = max(
        float(np.max(np.abs(a - b) / (np.abs(b) + 1e-9 * np.max(np.abs(b)))))
        for a, b in zip(ref, got.arrays(), strict=True)
    )
    if not agree < 1e-8:
        raise SystemExit(f"black76 and the plain numpy reference disagree: {agree:.1e}")
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("plain numpy + scipy ndtr", plain, 1),
        ("black76, 1 thread", fast, 1),
        ("black76_into (preallocated outputs), 1 thread", fast_into, 1),
    ]
    if threads > 1:
        cases.append((f"black76, {threads} threads (default pool)", fast, threads))
    malloc_note = keep_freed_memory() if args.malloc == "keep" else "default malloc settings"
    for _, fn, t in cases:  # warm-up: pool threads, caches, allocator
        _black.set_threads(t)
        fn()
    # times[case][round] = seconds of each call in that round
    times: list[list[list[float]]] = [[] for _ in cases]
    number = 5
    try:
        for _ in range(args.numpy_rounds):  # alternate within a round: load hits all alike
            for i, (_, fn, t) in enumerate(cases):
                _black.set_threads(t)
                calls = []
                for _ in range(number):
                    t0 = time.perf_counter()
                    fn()
                    calls.append(time.perf_counter() - t0)
                times[i].append(calls)
    finally:
        _black.set_threads(threads)
    print("== numpy: black76 vs plain numpy on the same mixed inputs, ns per option ==")
    print(f"   inputs: {n} options, {INPUTS}")
    print(
        "   reference: scripts/bench_greeks.py black76_plain_numpy, textbook Black-76 in numpy"
        " with scipy.special.ndtr: price, delta, gamma, vega, theta, vanna, volga in black76's"
        f" units (agree to {agree:.0e} relative)"
    )
    print(f"   {runtime_note()}; {malloc_note}")
    print(
        f"   black76's first call in this process {first_call:.2f} s (compiles the numba kernel,"
        " or loads it from its on-disk cache: hedgerd/pricing/__pycache__ or NUMBA_CACHE_DIR);"
        " not in the figures below"
    )
    print(
        f"   wall clock per call, {args.numpy_rounds} rounds x {number} calls of each, the"
        " implementations alternating within each round; best = fastest call, ratio = best /"
        " best of plain numpy; paired median: median over rounds of the ratio of round medians"
    )
    header = ("", "best", "median", "ratio", "paired median")
    print("   {:<48} {:>8} {:>8} {:>7} {:>13}".format(*header))
    base = np.array(times[0])
    for (label, _, _), ts in zip(cases, times, strict=True):
        arr = np.array(ts)
        best, med = 1e9 * arr.min() / n, 1e9 * float(np.median(arr)) / n
        ratio = arr.min() / base.min()
        paired = float(np.median(np.median(arr, axis=1) / np.median(base, axis=1)))
        print(f"   {label:<48} {best:>8.1f} {med:>8.1f} {ratio:>7.2f} {paired:>13.2f}")
    one = np.array(times[1])
    print(
        f"   ratio black76 / plain numpy, both on one thread: {one.min() / base.min():.2f}"
        " (issue 15 item 7 asks <= 0.5)"
    )


def keep_freed_memory() -> str:
    """Ask glibc's malloc to keep freed memory (no trimming, no mmap for large blocks), so
    that neither implementation pays page faults for memory it freed a call earlier: plain
    numpy's temporaries otherwise fault in up to ~2600 pages a call, depending on what else
    the process allocated, and its time swings by ~40 %. Returns a note for the printout."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "malloc settings unchanged (not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_trim_threshold, 1 << 30) == 1 and mallopt(m_mmap_threshold, 1 << 30) == 1
    return "glibc malloc keeps freed memory" if ok else "malloc settings unchanged (refused)"


def bench_pricing(args: argparse.Namespace) -> None:
    """ns per option for black76_into (price + delta, gamma, vega, theta, vanna, volga) on
    `make_option_inputs` books of several sizes (outputs preallocated, as the book does)."""
    sizes = [int(s) for s in args.sizes.split(",")]
    print("== pricing: black76 full reprice (price + 6 Greeks), ns per option ==")
    print(f"   inputs: {INPUTS}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"   threads={_black._workers.threads} cpus={os.cpu_count()} load average {load:.1f}"
        " (wall clock; best and median; other load inflates them)"
    )
    header = ("options", "best", "median", "1-thread best", "1-thread CPU")
    print("   {:>9} {:>8} {:>8}   {:>14} {:>13}".format(*header))
    for n in sizes:
        inp = make_option_inputs(n, seed=n)
        out = Greeks.empty(n)

        def run(inp: dict[str, np.ndarray] = inp, out: Greeks = out) -> None:
            black76_into(
                out,
                *(inp[k] for k in ("is_call", "forward", "strike", "tau", "vol", "discount")),
            )

        times = time_call(run)
        threads = _black._workers.threads
        _black.set_threads(1)
        single = time_call(run)
        single_cpu = time_call(run, clock=time.thread_time)  # robust to other processes
        _black.set_threads(threads)
        best, med, one, cpu = (
            1e9 * t / n
            for t in (min(times), statistics.median(times), min(single), min(single_cpu))
        )
        print(f"   {n:>9} {best:>8.1f} {med:>8.1f}   {one:>14.1f} {cpu:>13.1f}")
        if not np.all(np.isfinite(out.price)):
            raise SystemExit("non-finite price in benchmark output")
    # Stress: expiries down to a minute and strikes to +-30 sd, where many prices take the
    # slower cancellation-free (erfcx) path.
    n = 100_000
    rng = np.random.default_rng(7)
    tau = np.exp(rng.uniform(math.log(MINUTE_Y), math.log(1.0), n))
    vol = rng.uniform(0.3, 1.2, n)
    fwd = np.full(n, 60_000.0)
    strike = fwd * np.exp(rng.uniform(-30.0, 30.0, n) * vol * np.sqrt(tau))
    call = rng.random(n) < 0.5
    out = Greeks.empty(n)
    times = time_call(lambda: black76_into(out, call, fwd, strike, tau, vol))
    print(f"   stress grid (1 minute..1 year, +-30 sd), {n}: best {1e9 * min(times) / n:.1f}")


BOOK_EXPIRIES = (
    "21NOV26",
    "22NOV26",
    "23NOV26",
    "27NOV26",
    "4DEC26",
    "11DEC26",
    "25DEC26",
    "29JAN27",
    "26FEB27",
    "26MAR27",
    "25JUN27",
    "24SEP27",
)
BOOK_SPOTS = {"BTC": 91_000.0, "ETH": 3_050.0}


def book_now0_ms() -> int:
    """The book benches' start time: 20 Nov 2026 11:00 UTC (UTC epoch ms)."""
    from hedgerd.venues.deribit.names import parse_expiry_ms

    return parse_expiry_ms("20NOV26") + 3 * 3_600_000


def build_book(counts: dict[str, int], seed: int) -> tuple[Any, int]:
    """A GreeksBook with ``counts[underlying]`` options (random expiries and strikes, vols
    30..120 %), four hedges and coin collateral per underlying; returns it and its rows."""
    from hedgerd.book.greeks_book import GreeksBook
    from hedgerd.model import AmountUnit
    from hedgerd.venues.deribit.names import option_name, parse_expiry_ms, parse_instrument_name

    expiries = [parse_expiry_ms(e) for e in BOOK_EXPIRIES]
    rng = np.random.default_rng(seed)
    book = GreeksBook()
    rows = 0
    for und, n in counts.items():
        S = BOOK_SPOTS[und]
        book.set_index(und, S)
        names: set[str] = set()
        while len(names) < n:
            e = expiries[int(rng.integers(len(expiries)))]
            strike = round(S * math.exp(rng.normal(0.0, 0.4)), 1)
            names.add(option_name(und, e, strike, bool(rng.integers(2))))
        for name in sorted(names):
            book.add_instrument(parse_instrument_name(name))
            book.set_option_vol(name, float(rng.uniform(0.3, 1.2)))
            book.set_position(name, float(rng.integers(1, 500)) / 10.0, AmountUnit.COIN)
        hedges = [f"{und}-PERPETUAL", f"{und}-27NOV26", f"{und}-26MAR27", f"{und}_USDC-PERPETUAL"]
        for h in hedges:
            inst = parse_instrument_name(h)
            book.add_instrument(inst)
            book.set_position(h, inst.amount_step * 1000, inst.amount_unit, S)
        book.set_balance(und, 50.0)
        rows += n + len(hedges) + 1
    return book, rows


def book_ticks(
    book: Any, und: str, n_ticks: int, seed: int, step: Callable[[float, int], object] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds per tick (index moves ~1e-4, clock 100 ms; set_index + snapshot, or
    ``step(S, now_ms)`` instead when given), wall clock and this thread's CPU time (which
    leaves out time the thread was preempted by other processes), warm-up tenth dropped."""
    rng = np.random.default_rng(seed)
    S, now = BOOK_SPOTS[und], book_now0_ms()
    wall = np.empty(n_ticks)
    cpu = np.empty(n_ticks)
    for i in range(n_ticks):
        S *= math.exp(rng.normal(0.0, 1e-4))
        now += 100
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        if step is None:
            book.set_index(und, S)
            snap = book.underlying_snapshot(und, now)
        else:
            snap = step(S, now)
        t1 = time.perf_counter_ns()
        cpu[i] = time.thread_time_ns() - c0
        wall[i] = t1 - t0
        if step is None and not math.isfinite(snap.total.delta_usdnum_coin):
            raise SystemExit("non-finite delta in benchmark")
    return wall[n_ticks // 10 :] / 1000.0, cpu[n_ticks // 10 :] / 1000.0


def bench_book_tick(args: argparse.Namespace) -> None:
    """GreeksBook tick-to-snapshot latency (index update of one underlying, then that
    underlying's snapshot) for a 10k-position book; p50/p99 over many ticks, 100 ms apart."""
    import gc

    from hedgerd.book import greeks_book as gb
    from hedgerd.model import AmountUnit

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("== book: GreeksBook tick-to-snapshot latency (set_index + underlying_snapshot) ==")
    print("   every tick moves the index and the clock (100 ms): all rows of the underlying")
    print(f"   are repriced (no caching); p50/p99 in microseconds, wall clock; load {load:.1f}")
    print("   (CPU: this thread's CPU time per tick, robust to preemption by other processes)")
    header = ("book", "rows", "repriced", "p50 us", "p99 us", "CPU p50", "CPU p99")
    print("   {:<44} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8}".format(*header))
    cases = [
        ("10k: BTC 6k + ETH 4k options, tick BTC", {"BTC": 5_995, "ETH": 3_995}, "BTC", 1),
        ("10k: all BTC (worst case), tick BTC", {"BTC": 9_995}, "BTC", 1),
        ("10k: all BTC, reprice split over 2 threads", {"BTC": 9_995}, "BTC", 2),
    ]
    for label, counts, und, threads in cases:
        book, rows = build_book(counts, seed=sum(counts.values()))
        gb.set_threads(threads)
        gc.collect()
        lat, cpu = book_ticks(book, und, args.book_ticks, seed=1)
        gb.set_threads(1)
        p50, p99 = np.percentile(lat, [50, 99])
        c50, c99 = np.percentile(cpu, [50, 99])
        print(
            f"   {label:<44} {rows:>6} {counts[und]:>9} {p50:>8.1f} {p99:>8.1f}"
            f" {c50:>8.1f} {c99:>8.1f}"
        )
    # for scale: one row changes and the on-demand scenario grid
    name = next(n for n in book._instruments if n.endswith("-C"))
    t_pos = []
    for i in range(2_000):
        t0 = time.perf_counter_ns()
        book.set_position(name, 1.0 + i % 7, AmountUnit.COIN)
        t_pos.append(time.perf_counter_ns() - t0)
    t_grid = time.perf_counter()
    book.scenario_grid("BTC", book_now0_ms())
    grid_ms = (time.perf_counter() - t_grid) * 1e3
    print(
        f"   position change (one row): p50 {np.percentile(t_pos, 50) / 1000:.1f} us;"
        f" scenario grid 9x5 on {rows} rows: {grid_ms:.1f} ms"
    )


def bench_book_steps(args: argparse.Namespace) -> None:
    """Where a tick of the 6k + 4k book goes: the option rows' reprice (d1, d2, exp, normal
    CDFs, products, segment sums), the rest of the snapshot, and the normal CDF kernel alone
    (the book's table + Taylor vs scipy's ndtr on the same d1, d2)."""
    from scipy.special import ndtr

    from hedgerd.book.valuation import MS_PER_YEAR
    from hedgerd.pricing.normal_cdf import ncdf_into

    book, _ = build_book({"BTC": 5_995, "ETH": 3_995}, seed=9_990)
    u = book._und["BTC"]
    opts = u.options
    n = opts.n
    ticks = args.book_ticks
    whole = np.percentile(book_ticks(book, "BTC", ticks, seed=1)[0], [50, 99])
    rows = np.percentile(book_ticks(book, "BTC", ticks, seed=1, step=opts.reprice)[0], [50, 99])
    # the book's own d1, d2 at the start: rows are sorted by expiry
    now = book_now0_ms()
    tau = (opts.exp[:n] - now) / MS_PER_YEAR
    sd = opts.sigma[:n] * np.sqrt(tau)
    d1 = np.log(opts.ratio[:n] * BOOK_SPOTS["BTC"] / opts.strike[:n]) / sd + 0.5 * sd
    d = np.stack([d1, d1 - sd])
    out, w1, w2, w3 = (np.empty_like(d) for _ in range(4))
    idx = np.empty(d.shape, np.int64)
    t_table = min(time_call(lambda: ncdf_into(d, out, w1, w2, w3, idx)))
    t_ndtr = min(time_call(lambda: ndtr(d, out=out)))
    print("== book steps: 6k + 4k book, tick BTC (5995 option rows), microseconds ==")
    print(f"   tick (set_index + underlying_snapshot)  p50 {whole[0]:7.1f}  p99 {whole[1]:7.1f}")
    print(f"   option rows reprice (incl. segment sums) p50 {rows[0]:7.1f}  p99 {rows[1]:7.1f}")
    print(
        f"   normal CDF of d1 and d2 ({2 * n} values): table+Taylor {1e6 * t_table:6.1f},"
        f" scipy ndtr {1e6 * t_ndtr:6.1f} (best of 7)"
    )


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "numpy": bench_numpy,
    "pricing": bench_pricing,
    "book": bench_book_tick,
    "book-steps": bench_book_steps,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sections", default="numpy,pricing,book", help=f"comma list of {sorted(SECTIONS)}"
    )
    parser.add_argument("--numpy-size", type=int, default=100_000, help="numpy: options")
    parser.add_argument("--numpy-rounds", type=int, default=15, help="numpy: timing rounds")
    parser.add_argument(
        "--malloc",
        choices=("keep", "default"),
        default="keep",
        help="numpy: keep freed memory in glibc (steady state, no page faults) or not",
    )
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="pricing: book sizes")
    parser.add_argument("--threads", type=int, default=None, help="pricing threads")
    parser.add_argument("--book-ticks", type=int, default=5_000, help="book: ticks to time")
    args = parser.parse_args(argv)
    if args.threads is not None:
        _black.set_threads(args.threads)
    for name in args.sections.split(","):
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; known: {sorted(SECTIONS)}")
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
