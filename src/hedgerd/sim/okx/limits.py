"""OKX's per-endpoint rate limits (okx.md §4): N requests per 2 s window, keyed by user (or
client address when public) and, for order placement, by instrument as well; REST and
WebSocket orders share the order bucket. A refused request gets 50011 (HTTP 429 on REST).

Windows run on the wall clock, as Deribit's credit buckets do: limits protect the venue's CPU,
not simulated time."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 2.0
ORDERS_PER_INSTRUMENT = 60
# requests per 2 s per endpoint; missing: DEFAULT_LIMIT
LIMITS: dict[str, int] = {
    "trade/order": ORDERS_PER_INSTRUMENT,
    "trade/batch-orders": 300,
    "trade/cancel-order": 60,
    "trade/cancel-batch-orders": 300,
    "trade/amend-order": 60,
    "trade/orders-pending": 60,
    "trade/fills": 60,
    "trade/fills-history": 10,
    "trade/cancel-all-after": 2,
    "account/balance": 10,
    "account/positions": 10,
    "account/greeks": 10,
    "account/config": 5,
    "account/set-position-mode": 5,
    "public/instruments": 20,
    "market/ticker": 20,
    "market/tickers": 20,
    "market/index-tickers": 20,
    "market/index-candles": 20,
    "market/history-index-candles": 10,
    "public/opt-summary": 20,
    "market/books": 40,
    "public/time": 10,
    "public/funding-rate": 10,
    "public/mark-price": 10,
    "asset/currencies": 12,
}
DEFAULT_LIMIT = 20
ORDER_ENDPOINTS = frozenset({"trade/order", "trade/batch-orders"})


@dataclass(slots=True)
class OkxRateLimiter:
    """Sliding 2 s windows. `enabled=False` admits everything; `now` is injectable."""

    enabled: bool = True
    now: Callable[[], float] = time.monotonic
    _hits: dict[tuple[str, str, str], deque[float]] = field(default_factory=dict)

    def admit(self, who: str, endpoint: str, inst_id: str = "") -> bool:
        """Count one request; False when the window is full (nothing counted then)."""
        if not self.enabled:
            return True
        limit = LIMITS.get(endpoint, DEFAULT_LIMIT)
        if endpoint in ORDER_ENDPOINTS:
            endpoint = "order"  # place-order shares one bucket per instrument, REST and WS
            limit = ORDERS_PER_INSTRUMENT
        key = (who, endpoint, inst_id)
        now = self.now()
        q = self._hits.setdefault(key, deque())
        while q and now - q[0] >= WINDOW_S:
            q.popleft()
        if len(q) >= limit:
            return False
        q.append(now)
        return True

    def reset(self) -> None:
        self._hits.clear()
