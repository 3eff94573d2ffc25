"""One account's market read model: the quotes and marks its streams brought, and the
position amounts its feed holds. What the executor and the hedge loop see of the account."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from hedgerd.accounts.parts import AccountParts
from hedgerd.model import AmountUnit, Quote


class MarketCache:
    """Latest quote and mark per instrument of one account (fed by `AccountRuntime`'s event
    routing). The `(venue, instrument)` lookups are the executor's callbacks."""

    def __init__(self, account: AccountParts, clock_ms: Callable[[], int]) -> None:
        self.account = account
        self.clock_ms = clock_ms
        self.quotes: dict[str, Quote] = {}
        #: The venue's mark price per instrument (its price unit), for the daily hedge P&L.
        self.marks: dict[str, float] = {}

    def position_amount(self, venue: str, instrument: str) -> float | None:
        feed = self.account.feed
        if feed is None:
            return None
        pos = feed.positions.get(instrument)
        return pos.amount if pos is not None else 0.0

    def fresh_quote(self, venue: str, instrument: str) -> Quote | None:
        q = self.quotes.get(instrument)
        if q is None:
            return None
        age_s = (self.clock_ms() - q.ts_ms) / 1000.0
        return q if age_s <= self.account.settings.stale_market_s else None

    def coin_per_amount(self, venue: str, instrument: str) -> float | None:
        assert self.account.venue is not None
        inst = self.account.venue.instruments().get(instrument)
        if inst is None:
            return None
        if inst.amount_unit is not AmountUnit.USD:
            return 1.0
        q = self.quotes.get(instrument)
        if q is not None and q.mid_price > 0:
            return 1.0 / q.mid_price
        book = self.account.book
        if book is not None:
            s = book.index_price(inst.underlying)
            if math.isfinite(s) and s > 0:
                return 1.0 / s
        return None


class AccountMarkets:
    """The executor's `(venue, instrument)` callbacks over every account's `MarketCache`
    (`venue` is the account name an order or leg carries)."""

    def __init__(self, markets: Mapping[str, MarketCache]) -> None:
        self.markets = dict(markets)

    def position_amount(self, venue: str, instrument: str) -> float | None:
        m = self.markets.get(venue)
        return m.position_amount(venue, instrument) if m is not None else None

    def fresh_quote(self, venue: str, instrument: str) -> Quote | None:
        m = self.markets.get(venue)
        return m.fresh_quote(venue, instrument) if m is not None else None

    def coin_per_amount(self, venue: str, instrument: str) -> float | None:
        m = self.markets.get(venue)
        return m.coin_per_amount(venue, instrument) if m is not None else None
