"""OKX's rate limits as lanes (okx.md §4). Placing: 60 requests / 2 s per instrument, shared
by REST and WebSocket, 1000 / 2 s per sub-account; cancelling 60 / 2 s; account reads
(balance, positions, greeks, fills-history) 10 / 2 s each; cancel-all-after 1 / s. hedgerd
stays well inside: a hedge is a handful of orders, and the lanes keep a kill-switch cancel
from queueing behind reads."""

from __future__ import annotations

from hedgerd.venues.base import Lane, RateLimit
from hedgerd.venues.ccxt_venue import RATE_LIMITS

LIMITS: tuple[RateLimit, ...] = (
    RateLimit(Lane.ORDERS, 20, 1.0),
    RateLimit(Lane.CANCELS, 20, 1.0),
    RateLimit(Lane.READS, 8, 1.0),
)

RATE_LIMITS["okx"] = LIMITS

__all__ = ["LIMITS"]
