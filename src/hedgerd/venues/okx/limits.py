"""OKX's rate limits as lanes (okx.md §4). Placing: 60 requests / 2 s per instrument, shared
by REST and WebSocket, 1000 / 2 s per sub-account; cancelling 60 / 2 s; account reads
(balance, positions, greeks, fills-history) 10 / 2 s each; cancel-all-after 1 / s. hedgerd
stays well inside: a hedge is a handful of orders, and the lanes keep a kill-switch cancel
from queueing behind reads."""

from __future__ import annotations

from hedgerd.venues.base import Lane, RateLimit
from hedgerd.venues.ccxt_venue import RATE_LIMITS

#: Seconds added to each endpoint window below on our side: OKX counts a window by when the
#: requests arrive, and a request that waited longer on the way than the next one did (a
#: loaded host, a slow network) would otherwise put two of them in one venue window (50011).
ARRIVAL_JITTER_S = 0.25

#: Endpoints with a tighter limit than their lane, as (requests, seconds) on top of it:
#: ccxt implicit method → limit. OKX's windows are 2 s: these count over the same 2 s and
#: keep a fifth of it as margin (8 of 10). Not 4 / 1 s, which allows the same 8 in any 2 s
#: but made a start-up's fifth fills-history call (reconciliation, then the book) wait.
ENDPOINT_LIMITS: dict[str, tuple[int, float]] = {
    "privatePostTradeCancelAllAfter": (1, 1.0),  # 1 / s per user (okx.md §4)
    "privateGetTradeFillsHistory": (8, 2.0),  # 10 / 2 s
    "privateGetAccountBalance": (8, 2.0),
    "privateGetAccountPositions": (8, 2.0),
    "privateGetAccountGreeks": (8, 2.0),
    "publicGetPublicMarkPrice": (8, 2.0),
    "publicGetPublicFundingRate": (8, 2.0),
    "publicGetPublicTime": (8, 2.0),
    "publicGetMarketHistoryIndexCandles": (8, 2.0),  # 10 / 2 s
}

LIMITS: tuple[RateLimit, ...] = (
    RateLimit(Lane.ORDERS, 20, 1.0),
    RateLimit(Lane.CANCELS, 20, 1.0),
    RateLimit(Lane.READS, 20, 1.0),  # the tight endpoints have their own windows below it
)

RATE_LIMITS["okx"] = LIMITS

__all__ = ["ARRIVAL_JITTER_S", "ENDPOINT_LIMITS", "LIMITS"]
