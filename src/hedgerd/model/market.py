"""Market data snapshots. Prices are in the instrument's `price_unit`; amounts in its
`amount_unit`; times are UTC epoch milliseconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IndexPrice:
    """The venue's index of an underlying, in USD per coin."""

    venue: str
    underlying: str
    price_usd: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book. `*_price` in the instrument's price unit, `*_amount` in its amount unit."""

    venue: str
    instrument: str
    bid_price: float
    bid_amount: float
    ask_price: float
    ask_amount: float
    ts_ms: int

    @property
    def mid_price(self) -> float:
        return 0.5 * (self.bid_price + self.ask_price)


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: float
    amount: float


@dataclass(frozen=True, slots=True)
class OrderBookSnapshot:
    """Depth, best first on each side."""

    venue: str
    instrument: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Ticker:
    """The venue's marks for one instrument.

    `mark_price` is in the instrument's price unit (coin for inverse options); `mark_iv` is a
    fraction (0.6 = 60 %), None where the venue gives none; `funding_8h` is a fraction of
    notional per 8 hours (perpetuals only).
    """

    venue: str
    instrument: str
    mark_price: float
    index_price_usd: float
    ts_ms: int
    underlying_price_usd: float | None = None
    mark_iv: float | None = None
    funding_8h: float | None = None
    venue_delta: float | None = None
