"""The venue adapter's own overhead, per update, in microseconds (p50 / p99 / mean).

What is timed is hedgerd's code between a decoded Deribit notification and the GreeksBook
holding its effect; the network, JSON decoding and ccxt's own parsing are not included:

- position update: a `user.changes` notification (one trade, one order, one position) →
  parsed to events → fill de-duplicated, position applied to the book;
- book update: a `ticker` notification of an option → Ticker, Index and Quote events →
  vol implied from the mark, forward, index and vol applied to the book;
- depth update: 20 levels a side cut at a USD notional (`depth_to_notional`).

No sockets are opened. Usage: `.venv/bin/python scripts/bench_adapter.py [--n 20000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Callable

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.book.valuation import MS_PER_YEAR
from hedgerd.config import VenueSettings
from hedgerd.pricing import black76
from hedgerd.venues.book_feed import BookFeed
from hedgerd.venues.deribit import DeribitVenue
from hedgerd.venues.deribit.names import option_name, parse_instrument_name
from hedgerd.venues.units import depth_to_notional

NOW_MS = 1_767_571_200_000  # 2026-01-05T00:00Z
EXPIRY_MS = 1_769_760_000_000  # 2026-01-30T08:00Z


def _percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    s = sorted(samples_ns)
    p50 = s[len(s) // 2] / 1000
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))] / 1000
    return p50, p99, statistics.fmean(s) / 1000


def _time(n: int, fn: Callable[[int], None]) -> tuple[float, float, float]:
    for i in range(min(1000, n)):  # warm-up
        fn(i)
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(i)
        out.append(clock() - t0)
    return _percentiles(out)


async def main(n: int) -> None:
    settings = VenueSettings(
        mode="sim",
        rest_url="http://127.0.0.1:9",
        ws_url="ws://127.0.0.1:9/ws",
        underlyings=("BTC",),
    )
    venue = DeribitVenue("deribit", settings, clock_ms=lambda: NOW_MS)
    strikes = [80_000.0 + 1_000.0 * k for k in range(21)]
    names = ["BTC-PERPETUAL"] + [
        option_name("BTC", EXPIRY_MS, k, call) for k in strikes for call in (True, False)
    ]
    venue._instruments = {name: parse_instrument_name(name) for name in names}
    book = GreeksBook(venue._instruments.values())
    feed = BookFeed(venue, book, clock_ms=lambda: NOW_MS)
    book.set_index("BTC", 90_000.0)
    opts = names[1:]
    for name in opts:
        book.set_option_vol(name, 0.6)

    def drain() -> None:
        q = venue._queue
        while not q.empty():
            feed.apply(q.get_nowait())

    def position_update(i: int) -> None:
        name = opts[i % len(opts)]
        data = {
            "instrument_name": name,
            "trades": [
                {
                    "trade_id": f"t{i}",
                    "order_id": f"o{i}",
                    "instrument_name": name,
                    "direction": "sell",
                    "amount": 0.1,
                    "price": 0.02,
                    "fee": 3e-5,
                    "fee_currency": "BTC",
                    "timestamp": NOW_MS,
                    "label": "sim-flow",
                }
            ],
            "orders": [
                {
                    "order_id": f"o{i}",
                    "instrument_name": name,
                    "direction": "sell",
                    "order_state": "filled",
                    "amount": 0.1,
                    "filled_amount": 0.1,
                    "price": 0.02,
                    "average_price": 0.02,
                    "label": "sim-flow",
                    "last_update_timestamp": NOW_MS,
                }
            ],
            "positions": [
                {
                    "instrument_name": name,
                    "kind": "option",
                    "direction": "sell",
                    "size": -0.1 * (1 + i % 7),
                    "size_currency": -0.1 * (1 + i % 7),
                    "average_price": 0.02,
                    "delta": -0.05,
                    "mark_price": 0.02,
                }
            ],
        }
        venue._on_private("user.changes.option.BTC.raw", data)
        drain()

    # Marks as Deribit sends them: premium in coin rounded to 1e-8, mark_iv in percent
    # rounded to 0.01, from a smile around 60 %.
    tau = (EXPIRY_MS - NOW_MS) / MS_PER_YEAR
    marks: dict[str, tuple[float, float]] = {}
    for name in opts:
        inst = venue._instruments[name]
        assert inst.strike_usd is not None
        vol = 0.6 + 0.1 * math.log(inst.strike_usd / 90_000.0) ** 2
        price = float(black76(inst.is_call, 90_000.0, inst.strike_usd, tau, vol).price)
        marks[name] = (round(price / 90_000.0, 8), round(vol * 100, 2))

    def book_update(i: int) -> None:
        name = opts[i % len(opts)]
        mark, iv_pct = marks[name]
        data = {
            "instrument_name": name,
            "timestamp": NOW_MS,
            "mark_price": mark,
            "index_price": 90_000.0,
            "underlying_price": 90_000.0,
            "mark_iv": iv_pct,
            "best_bid_price": mark * 0.99,
            "best_bid_amount": 5,
            "best_ask_price": mark * 1.01,
            "best_ask_amount": 5,
            "greeks": {"delta": 0.5},
        }
        venue._on_ticker(data)
        drain()

    perp = venue._instruments["BTC-PERPETUAL"]
    bids = [(90_000.0 - 0.5 * k, 10_000.0 * (k + 1)) for k in range(20)]

    def depth_update(i: int) -> None:
        depth_to_notional(perp, bids, 250_000.0, 90_000.0)

    print(f"hedgerd venue adapter overhead, n={n} per case (µs per update)")
    print(f"{'case':<48} {'p50':>8} {'p99':>8} {'mean':>8}")
    for label, fn in (
        ("position update (user.changes → book)", position_update),
        ("book update (option ticker → vol/forward/index)", book_update),
        ("depth update (20 levels cut at 250k USD)", depth_update),
    ):
        p50, p99, mean = _time(n, fn)
        print(f"{label:<48} {p50:8.1f} {p99:8.1f} {mean:8.1f}")
    print(f"(fills recorded {feed.stats.fills}, refused {feed.stats.refused})")
    await venue.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="updates timed per case")
    asyncio.run(main(ap.parse_args().n))
