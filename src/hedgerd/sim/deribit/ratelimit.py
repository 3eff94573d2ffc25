"""Deribit-style credit buckets, one set per key (API key, or client address when anonymous).

Deribit gives each sub-account a credit pool per class of request: matching-engine requests
(buy, sell, edit, cancel, ...) refill at about 5 per second with a burst of 20; the others at
about 20 per second with a burst of 100 (50,000 credits at 500 each). A request that finds the
pool empty gets error 10028 `too_many_requests`, and on a WebSocket the session is terminated.

Buckets run on the wall clock: rate limits protect the venue's real CPU, not simulated time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hedgerd.sim.protocol import ERR_TOO_MANY_REQUESTS, DeribitError

MATCHING_ENGINE_METHODS = frozenset(
    {
        "private/buy",
        "private/sell",
        "private/edit",
        "private/edit_by_label",
        "private/cancel",
        "private/cancel_all",
        "private/cancel_all_by_currency",
        "private/cancel_all_by_currency_pair",
        "private/cancel_all_by_instrument",
        "private/cancel_all_by_kind_or_type",
        "private/cancel_by_label",
        "private/close_position",
        "private/mass_quote",
        "private/cancel_quotes",
    }
)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A credit bucket: refills `rate_per_s` requests per second up to `burst` requests."""

    rate_per_s: float
    burst: float


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Per-key limits. `enabled=False` turns every check into a no-op."""

    matching: BucketSpec = BucketSpec(rate_per_s=5.0, burst=20.0)
    other: BucketSpec = BucketSpec(rate_per_s=20.0, burst=100.0)
    enabled: bool = True

    @classmethod
    def disabled(cls) -> RateLimitConfig:
        return cls(enabled=False)


@dataclass(slots=True)
class _Bucket:
    spec: BucketSpec
    tokens: float
    last_s: float

    def take(self, now_s: float, cost: float = 1.0) -> bool:
        self.tokens = min(
            self.spec.burst, self.tokens + (now_s - self.last_s) * self.spec.rate_per_s
        )
        self.last_s = now_s
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def available(self, now_s: float) -> float:
        return min(self.spec.burst, self.tokens + (now_s - self.last_s) * self.spec.rate_per_s)


def too_many_requests() -> DeribitError:
    return DeribitError(ERR_TOO_MANY_REQUESTS, "too_many_requests")


@dataclass(slots=True)
class RateLimiter:
    config: RateLimitConfig = field(default_factory=RateLimitConfig)
    monotonic_s: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    rejected: int = 0

    @staticmethod
    def group_of(method: str) -> str:
        return "matching" if method in MATCHING_ENGINE_METHODS else "other"

    def check(self, key: str, method: str) -> None:
        """Take one credit for `method` from `key`'s pool, or raise error 10028."""
        if not self.config.enabled:
            return
        group = self.group_of(method)
        now = self.monotonic_s()
        bucket = self._buckets.get((key, group))
        if bucket is None:
            spec = self.config.matching if group == "matching" else self.config.other
            bucket = _Bucket(spec, spec.burst, now)
            self._buckets[(key, group)] = bucket
        if not bucket.take(now):
            self.rejected += 1
            raise too_many_requests()

    def limits(self, key: str) -> dict[str, dict[str, float]]:
        """What is left in `key`'s pools (for the admin state)."""
        now = self.monotonic_s()
        out: dict[str, dict[str, float]] = {}
        for (k, group), b in self._buckets.items():
            if k == key:
                out[group] = {"available": round(b.available(now), 3), **_spec_dict(b.spec)}
        return out

    def reset(self) -> None:
        self._buckets.clear()
        self.rejected = 0


def _spec_dict(spec: BucketSpec) -> dict[str, float]:
    return {"rate_per_s": spec.rate_per_s, "burst": spec.burst}
