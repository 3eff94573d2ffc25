"""Deribit's rate limits as lanes. The matching engine (buy, sell, edit, cancel) allows about
5 requests/s with a burst of 20 in one credit pool, other calls about 20/s. The
matching-engine pool is split between orders (3/s) and cancels (2/s) so that a cancel never
queues behind an order and the two together never exceed the pool. Reads: 18/s over a 2 s
window, so a start-up's 20-30 reads (markets, positions, balances, open orders, fills, a
ticker per held instrument) go out at once instead of waiting a second for the window:
never more than 36 at once, well inside the pool's burst (the simulator models Deribit's
credit bucket as 20/s with a burst of 100), and never more than 18/s sustained."""

from __future__ import annotations

from hedgerd.venues.base import Lane, RateLimit
from hedgerd.venues.ccxt_venue import RATE_LIMITS

LIMITS: tuple[RateLimit, ...] = (
    RateLimit(Lane.ORDERS, 12, 4.0),
    RateLimit(Lane.CANCELS, 8, 4.0),
    RateLimit(Lane.READS, 36, 2.0),
)

RATE_LIMITS["deribit"] = LIMITS

__all__ = ["LIMITS"]
