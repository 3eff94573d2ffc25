"""Maker fills measured through the real order path: post-only orders on one instrument at
fixed distances from the touch, each resting until it fills or a timeout, with the fill and
its time taken from the venue's own trades.

Used by `scripts/maker_fills.py`. The probe talks to a `DeribitVenue` (ccxt underneath) the
way the executor does: `OrderRequest(post_only=True, time_in_force=GTC)` for the order,
`cancel_order` at the timeout, `fetch_order_fills` (Deribit `get_user_trades_by_order`) for
what it traded. The touch is the book's best price without our own resting orders, so probes
placed earlier (and any other order of the account) do not move where later ones go.

Times are the venue's (simulated) UTC epoch ms; distances in ticks of the instrument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hedgerd.model import OrderSide, OrderStatus, OrderType, TimeInForce
from hedgerd.model.orders import Fill
from hedgerd.venues.base import OrderRequest, VenueError
from hedgerd.venues.deribit import DeribitVenue

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Probe:
    """One post-only order placed: `distance_ticks` behind the touch on `side`. `price` and
    `touch` in the instrument's price unit (USD for BTC-PERPETUAL), `amount` in its amount unit
    (USD of contracts for an inverse perpetual), `placed_ms` UTC epoch ms (simulated)."""

    label: str
    order_id: str
    side: OrderSide
    distance_ticks: int
    price: float
    amount: float
    touch: float
    placed_ms: int


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """How a probe ended. `first_fill_ms` / `full_fill_ms`: the venue's trade times (None: no
    fill, or not full, before the timeout); `filled_amount` in the instrument's amount unit."""

    probe: Probe
    activity: str
    filled_amount: float
    first_fill_ms: int | None
    full_fill_ms: int | None

    @property
    def filled(self) -> bool:
        return self.first_fill_ms is not None

    @property
    def full(self) -> bool:
        return self.full_fill_ms is not None

    @property
    def partial(self) -> bool:
        return self.filled and not self.full

    @property
    def time_to_fill_s(self) -> float | None:
        """Seconds from placement to the first fill."""
        if self.first_fill_ms is None:
            return None
        return (self.first_fill_ms - self.probe.placed_ms) / 1000.0


@dataclass(frozen=True, slots=True)
class CellStats:
    """Fill statistics of one (activity, distance) cell."""

    activity: str
    distance_ticks: int
    distance_bp: float  # mean distance from the touch, basis points of the touch
    n: int
    filled: int
    partial: int
    p_fill: float
    se: float  # binomial standard error of p_fill
    median_s: float | None
    p90_s: float | None


def _quantile(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def cell_stats(results: Iterable[ProbeResult]) -> list[CellStats]:
    """Per (activity, distance): n, fills, the fill probability within the timeout with its
    binomial standard error sqrt(p (1 - p) / n), median and p90 time to the first fill of the
    filled ones (s)."""
    groups: dict[tuple[str, int], list[ProbeResult]] = {}
    for r in results:
        groups.setdefault((r.activity, r.probe.distance_ticks), []).append(r)
    out = []
    for (act, d), rs in groups.items():
        n = len(rs)
        k = sum(r.filled for r in rs)
        p = k / n
        times = [t for r in rs if (t := r.time_to_fill_s) is not None]
        out.append(
            CellStats(
                act,
                d,
                sum(abs(r.probe.price - r.probe.touch) / r.probe.touch for r in rs) * 1e4 / n,
                n,
                k,
                sum(r.partial for r in rs),
                p,
                math.sqrt(p * (1.0 - p) / n),
                _quantile(times, 0.5),
                _quantile(times, 0.9),
            )
        )
    return out


class MakerProbe:
    """Places, expires and reads back post-only probes on one instrument of one venue."""

    def __init__(
        self,
        venue: DeribitVenue,
        instrument: str,
        *,
        amount: float,
        timeout_ms: int,
        clock_ms: Callable[[], int],
        activity: str = "",
        label_prefix: str = "mkp",
    ) -> None:
        self.venue = venue
        self.instrument = instrument
        self.amount = amount
        self.timeout_ms = timeout_ms
        self.clock_ms = clock_ms
        self.activity = activity
        self.label_prefix = label_prefix
        self.open: dict[str, Probe] = {}  # order id -> probe still resting (as far as we know)
        self.results: list[ProbeResult] = []
        self._seq = 0

    async def _own(self) -> dict[tuple[OrderSide, float], float]:
        """The account's resting amount per (side, price) on the instrument: the probes and
        anything else it has there (the executor's maker orders when they share it)."""
        out: dict[tuple[OrderSide, float], float] = {}
        underlying = self.venue.instrument(self.instrument).underlying
        for o in await self.venue.fetch_open_orders(underlying):
            if o.instrument == self.instrument and o.price is not None:
                key = (o.side, o.price)
                out[key] = out.get(key, 0.0) + max(o.amount - o.filled_amount, 0.0)
        return out

    async def touch(self) -> tuple[float, float]:
        """(best bid, best ask) of the book without the account's own resting orders."""
        book = await self.venue.fetch_order_book(self.instrument, math.inf)
        own = await self._own()
        b, s = OrderSide.BUY, OrderSide.SELL
        bid = next(
            (lv.price for lv in book.bids if lv.amount - own.get((b, lv.price), 0.0) > _EPS),
            math.nan,
        )
        ask = next(
            (lv.price for lv in book.asks if lv.amount - own.get((s, lv.price), 0.0) > _EPS),
            math.nan,
        )
        return bid, ask

    async def place(
        self, sides: Sequence[OrderSide], distances_ticks: Sequence[int]
    ) -> list[Probe]:
        """One probe per (side, distance), all priced from one look at the touch."""
        inst = self.venue.instrument(self.instrument)
        tick = inst.tick_size
        bid, ask = await self.touch()
        placed: list[Probe] = []
        for side in sides:
            touch = bid if side is OrderSide.BUY else ask
            if not math.isfinite(touch):
                continue
            for d in distances_ticks:
                price = round(touch - side.sign * d * tick, 10)
                self._seq += 1
                label = f"{self.label_prefix}-{self._seq}"
                update = await self.venue.place_order(
                    OrderRequest(
                        instrument=self.instrument,
                        side=side,
                        amount=self.amount,
                        label=label,
                        order_type=OrderType.LIMIT,
                        price=price,
                        time_in_force=TimeInForce.GTC,
                        post_only=True,
                    )
                )
                p = Probe(label, update.order_id, side, d, price, self.amount, touch, update.ts_ms)
                self.open[p.order_id] = p
                placed.append(p)
        return placed

    async def expire(self, now_ms: int | None = None, *, every: bool = False) -> list[ProbeResult]:
        """Close the probes whose timeout has passed (all of them with `every`): cancel what
        still rests, then read the order's trades from the venue."""
        now = self.clock_ms() if now_ms is None else now_ms
        due = [p for p in self.open.values() if every or now - p.placed_ms >= self.timeout_ms]
        out = []
        for p in due:
            try:
                update = await self.venue.cancel_order(p.order_id)
                done = update.status in (OrderStatus.FILLED, OrderStatus.CANCELLED)
            except VenueError:
                done = True  # not open any more (filled): its trades tell
            fills = await self.venue.fetch_order_fills(p.order_id) if done else []
            r = self.result(p, fills)
            del self.open[p.order_id]
            self.results.append(r)
            out.append(r)
        return out

    def result(self, p: Probe, fills: Sequence[Fill]) -> ProbeResult:
        """The probe's outcome from its trades: only those within the timeout count."""
        end = p.placed_ms + self.timeout_ms
        got = 0.0
        first: int | None = None
        full: int | None = None
        for f in sorted(fills, key=lambda f: f.ts_ms):
            if f.ts_ms > end:
                break
            got += f.amount
            first = f.ts_ms if first is None else first
            if full is None and got >= p.amount - _EPS:
                full = f.ts_ms
        return ProbeResult(p, self.activity, got, first, full)
