"""Fault injection: what can go wrong between a client and the venue, switchable at run time.

A fault is a `kind` with parameters, an optional `probability` (per matching request, default
1.0), an optional `count` (how many times it may fire; None = unlimited), a `methods` filter
(shell patterns such as `private/buy` or `private/*`; empty = every method, except where the
kind says otherwise), a `transport` filter (`http`, `ws` or `any`), and a life span in
simulated time (`start_ms`, `until_ms`).

Kinds and their parameters:

- `latency`: `ms` (default 500), `jitter_ms` (default 0): the request waits before it is
  processed.
- `http_5xx`: `status` (default 503): an HTTP request gets that status and a plain-text body
  (over WebSocket: error 11094 internal_server_error).
- `rate_limit`: error 10028 too_many_requests; `terminate` (default true) closes a WebSocket
  session, as Deribit does.
- `timeout_after_accept`: default methods private/buy and private/sell. The request reaches
  the engine (the order exists), the reply never comes: `mode` `hold` (default; the HTTP
  request is held until the client gives up or `hold_s`, default 300 s, passes; over
  WebSocket the reply is dropped) or `close` (the connection is closed).
- `ws_drop`: with `methods`, a WebSocket is closed abruptly when a matching request arrives;
  without, every WebSocket is dropped when the fault starts and then every `every_s` seconds of
  simulated time while it lasts (default: once).
- `order_reject`: default methods private/buy, private/sell, private/edit; the order is refused
  before it reaches the engine with `code` (default 11030 other_reject), `message`, `data`.
- `freeze_market_data`: public market-data notifications (book, ticker, quote, index, trades,
  markprice) stop while it lasts; REST keeps answering.
- `stale_market_data`: the market stops moving (the engine is not advanced) while it lasts, so
  tickers keep old marks and timestamps.
- `price_gap`: `currency` (default BTC), `pct` (default -5.0): the engine jumps that index
  once when the fault starts.
- `drop_notifications`: private subscription notifications whose engine channel matches one
  of `channels` (shell patterns, default `user.changes.*` and `user.portfolio.*`), of
  `account` only when given, are silently dropped: the venue's state changes, the client never
  hears (it learns only by asking over REST). `probability` and `count` apply per
  notification.
- `portfolio_delta_offset`: the venue's account Greeks are wrong: `delta_total`,
  `projected_delta_total`, `delta_total_map` and `options_delta` of
  `private/get_account_summary(ies)` replies and `user.portfolio` notifications are shifted
  by `offset_coin` (default 1.0, coin of the currency) for `currency` (default every one) and
  `account` (default every one).
- `thin_depth`: the synthetic order book of the instruments matching `instruments` (shell
  patterns, default `*`) holds at most `depth_amount` (default 0, in the instrument's amount
  unit: USD for inverse futures, coin otherwise) on `side` (`both` (default), `bids` or
  `asks`), best levels first; 0 empties it. Takers (IOC hedges) then fill partly or not at
  all; other clients' resting orders stay. Depth is the market's, so the server hands the
  active caps to the engine (`set_depth_caps`), as it does price gaps.
- `clear`: removes every active fault when it starts.

Every fault names the venue whose wire it acts on: `venue` = `deribit` (the default, for
backwards compatibility) or `okx`. OKX faults match OKX method names: REST paths under
/api/v5 (`trade/batch-orders`, `account/balance`, ...) and WebSocket ops (`batch-orders`,
`order`, `cancel-order`, `subscribe`, `login`); their defaults for `timeout_after_accept` and
`order_reject` are the order-placing ones, `order_reject`'s default code is 51000 and
`drop_notifications` channels are OKX channel names (default `orders`, `positions`,
`account`); `portfolio_delta_offset` shifts `account/greeks` and the positions' `deltaPA`/
`deltaBS`. `price_gap` moves the shared index, so every venue sees it.

`drop_notifications`, `portfolio_delta_offset` and `thin_depth` ignore `methods` and
`transport` (they are not about requests). Decisions come from a seeded `random.Random`: the
same seed and the same requests fire the same faults.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hedgerd.sim.scenario import FaultKind

# One list of fault kinds: the scenario file's type is the source.
FAULT_KINDS: tuple[str, ...] = typing.get_args(FaultKind)
REQUEST_KINDS = frozenset(
    {"latency", "http_5xx", "rate_limit", "timeout_after_accept", "ws_drop", "order_reject"}
)
ONE_SHOT_KINDS = frozenset({"price_gap", "clear"})
DEFAULT_DROP_CHANNELS = ("user.changes.*", "user.portfolio.*")
_DEPTH_SIDES = ("both", "bids", "asks")
# Account-summary fields that carry the account's delta (shifted by `portfolio_delta_offset`).
_DELTA_FIELDS = ("delta_total", "projected_delta_total", "options_delta")
_DEFAULT_METHODS: dict[str, tuple[str, ...]] = {
    "timeout_after_accept": ("private/buy", "private/sell"),
    "order_reject": ("private/buy", "private/sell", "private/edit"),
}
_COMMON_KEYS = frozenset(
    {
        "kind",
        "probability",
        "count",
        "methods",
        "transport",
        "duration_s",
        "after_s",
        "at_ms",
        "params",
        "id",
        "venue",
    }
)
FAULT_VENUES = ("deribit", "okx")
_OKX_ORDER_METHODS = ("trade/order", "trade/batch-orders", "order", "batch-orders")
_OKX_DEFAULT_METHODS: dict[str, tuple[str, ...]] = {
    "timeout_after_accept": _OKX_ORDER_METHODS,
    "order_reject": _OKX_ORDER_METHODS,
}
OKX_DEFAULT_DROP_CHANNELS = ("orders", "positions", "account")


class FaultError(ValueError):
    """A fault description that cannot be used."""


@dataclass(frozen=True, slots=True)
class DepthCap:
    """Fault `thin_depth` as the engine applies it: the synthetic book of instruments matching
    `instruments` (shell patterns) holds at most `depth_amount` (instrument amount unit) on
    `side` (`both`, `bids` or `asks`)."""

    instruments: tuple[str, ...]
    depth_amount: float
    side: str

    def matches(self, instrument_name: str) -> bool:
        return any(fnmatch.fnmatchcase(instrument_name, pat) for pat in self.instruments)


def _patterns(value: Any, default: tuple[str, ...], name: str) -> tuple[str, ...]:
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise FaultError(f"{name} must be a pattern or a list of patterns")
    return tuple(value)


def _check_params(kind: str, p: Mapping[str, Any]) -> None:
    """Refuse unusable parameters of the state kinds when the fault is added, not later."""
    try:
        if kind == "drop_notifications":
            _patterns(p.get("channels"), DEFAULT_DROP_CHANNELS, "channels")
        elif kind == "portfolio_delta_offset":
            offset = float(p.get("offset_coin", 1.0))
            if offset != offset or offset in (float("inf"), float("-inf")):
                raise FaultError("offset_coin must be a finite number")
        elif kind == "thin_depth":
            _patterns(p.get("instruments"), ("*",), "instruments")
            depth = float(p.get("depth_amount", 0.0))
            if not depth >= 0.0:
                raise FaultError("depth_amount must be >= 0")
            if str(p.get("side", "both")) not in _DEPTH_SIDES:
                raise FaultError(f"side must be one of {', '.join(_DEPTH_SIDES)}")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(f"bad fault parameters: {exc}") from None


def offset_summary(summary: Mapping[str, Any], offset_coin: float) -> dict[str, Any]:
    """A copy of an account summary (`private/get_account_summary` result or `user.portfolio`
    data) with its delta fields shifted by `offset_coin` (coin of its currency)."""
    out = dict(summary)
    for key in _DELTA_FIELDS:
        value = out.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value + offset_coin
    dmap = out.get("delta_total_map")
    if isinstance(dmap, Mapping):
        # The currency's own index carries the error, so that the map still sums to delta_total.
        key = f"{str(out.get('currency', '')).lower()}_usd"
        shifted = dict(dmap)
        base = shifted.get(key, 0.0)
        shifted[key] = (base if isinstance(base, int | float) else 0.0) + offset_coin
        out["delta_total_map"] = shifted
    return out


class ScheduledFault(Protocol):
    """What `hedgerd.sim.scenario.FaultSpec` provides."""

    @property
    def kind(self) -> str: ...

    @property
    def params(self) -> dict[str, Any]: ...

    @property
    def duration_s(self) -> float | None: ...

    def due_ms(self, start_ms: int) -> int: ...


@dataclass(slots=True)
class Fault:
    id: int
    kind: str
    probability: float = 1.0
    count: int | None = None
    methods: tuple[str, ...] = ()
    transport: str = "any"
    params: dict[str, Any] = field(default_factory=dict)
    start_ms: int = 0
    until_ms: int | None = None
    fired: int = 0
    started: bool = False
    next_drop_ms: int | None = None
    venue: str = "deribit"

    def matches(self, method: str, transport: str) -> bool:
        if self.transport != "any" and self.transport != transport:
            return False
        if not self.methods:
            return True
        return any(fnmatch.fnmatchcase(method, pat) for pat in self.methods)

    def active(self, now_ms: int) -> bool:
        if now_ms < self.start_ms:
            return False
        if self.until_ms is not None and now_ms >= self.until_ms:
            return False
        return self.count is None or self.fired < self.count

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "probability": self.probability,
            "count": self.count,
            "fired": self.fired,
            "methods": list(self.methods),
            "transport": self.transport,
            "params": dict(self.params),
            "start_ms": self.start_ms,
            "until_ms": self.until_ms,
            "venue": self.venue,
        }


@dataclass(slots=True)
class RequestFaults:
    """What the server must do to one request. Empty (all defaults) when nothing fires."""

    latency_s: float = 0.0
    http_status: int | None = None
    rate_limit: bool = False
    terminate: bool = True
    reject: dict[str, Any] | None = None
    timeout_mode: str | None = None  # "hold" | "close"
    hold_s: float = 300.0
    ws_drop: bool = False
    fired: list[int] = field(default_factory=list)


@dataclass(slots=True)
class TickEffects:
    """One-shot effects of faults that started on this tick."""

    drop_all_ws: bool = False  # the Deribit venue's sessions
    drop_ws_venues: set[str] = field(default_factory=set)  # every venue whose sessions drop
    price_gaps: list[tuple[str, float]] = field(default_factory=list)  # (currency, pct)


class FaultInjector:
    """Holds the faults and decides, request by request, which fire."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._faults: dict[int, Fault] = {}
        self.fired_total: dict[str, int] = {}

    # ------------------------------------------------------------------------ management
    def add(self, spec: Mapping[str, Any], now_ms: int) -> Fault:
        """Add a fault from a JSON-like mapping (the admin API's body). Common keys: kind,
        probability, count, methods, transport, duration_s, after_s | at_ms; kind parameters
        either top-level or under `params`."""
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        params = dict(spec.get("params") or {})
        params.update({k: v for k, v in spec.items() if k not in _COMMON_KEYS})
        # Allow the common keys inside params too (the scenario's FaultSpec keeps them there).
        common = {k: params.pop(k) for k in list(params) if k in _COMMON_KEYS}
        merged = {**common, **{k: v for k, v in spec.items() if k in _COMMON_KEYS}}
        start_ms = now_ms
        if merged.get("at_ms") is not None:
            start_ms = int(merged["at_ms"])
        elif merged.get("after_s") is not None:
            start_ms = now_ms + int(float(merged["after_s"]) * 1000)
        duration = merged.get("duration_s")
        return self._insert(str(kind), merged, params, start_ms, duration)

    def add_scheduled(self, spec: ScheduledFault, scenario_start_ms: int) -> Fault:
        """Add a fault from the scenario's `faults` section."""
        params = dict(spec.params)
        common = {k: params.pop(k) for k in list(params) if k in _COMMON_KEYS}
        return self._insert(
            spec.kind, common, params, spec.due_ms(scenario_start_ms), spec.duration_s
        )

    def _insert(
        self,
        kind: str,
        common: Mapping[str, Any],
        params: dict[str, Any],
        start_ms: int,
        duration_s: Any,
    ) -> Fault:
        try:
            probability = float(common.get("probability", 1.0))
            count = None if common.get("count") is None else int(common["count"])
            venue = str(common.get("venue", "deribit"))
            defaults = _OKX_DEFAULT_METHODS if venue == "okx" else _DEFAULT_METHODS
            methods_in = common.get("methods") or defaults.get(kind, ())
            methods = (
                (methods_in,) if isinstance(methods_in, str) else tuple(str(m) for m in methods_in)
            )
            transport = str(common.get("transport", "any"))
            until_ms = None if duration_s is None else start_ms + int(float(duration_s) * 1000)
        except (TypeError, ValueError) as exc:
            raise FaultError(f"bad fault parameters: {exc}") from None
        if not 0.0 <= probability <= 1.0:
            raise FaultError("probability must be within [0, 1]")
        if count is not None and count < 0:
            raise FaultError("count must be >= 0")
        if transport not in ("any", "http", "ws"):
            raise FaultError("transport must be any, http or ws")
        if venue not in FAULT_VENUES:
            raise FaultError(f"venue must be one of {', '.join(FAULT_VENUES)}")
        _check_params(kind, params)
        fault = Fault(
            id=next(self._ids),
            kind=kind,
            probability=probability,
            count=count,
            methods=methods,
            transport=transport,
            params=params,
            start_ms=start_ms,
            until_ms=until_ms,
            venue=venue,
        )
        self._faults[fault.id] = fault
        return fault

    def remove(self, fault_id: int) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> int:
        n = len(self._faults)
        self._faults.clear()
        return n

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self._faults.values()]

    def __len__(self) -> int:
        return len(self._faults)

    # ------------------------------------------------------------------------ decisions
    def _fire(self, fault: Fault) -> bool:
        if fault.probability < 1.0 and self._rng.random() >= fault.probability:
            return False
        fault.fired += 1
        self.fired_total[fault.kind] = self.fired_total.get(fault.kind, 0) + 1
        return True

    def for_request(
        self, method: str, transport: str, now_ms: int, venue: str = "deribit"
    ) -> RequestFaults:
        out = RequestFaults()
        if not self._faults:
            return out
        for fault in list(self._faults.values()):
            if fault.kind not in REQUEST_KINDS or not fault.active(now_ms):
                continue
            if fault.venue != venue:
                continue
            if fault.kind == "ws_drop" and not fault.methods:
                continue  # a timed drop, handled by `tick`
            if not fault.matches(method, transport) or not self._fire(fault):
                continue
            out.fired.append(fault.id)
            if fault.count is not None and fault.fired >= fault.count:
                del self._faults[fault.id]  # spent
            p = fault.params
            if fault.kind == "latency":
                jitter = float(p.get("jitter_ms", 0.0))
                ms = float(p.get("ms", 500.0)) + (
                    self._rng.uniform(-jitter, jitter) if jitter else 0.0
                )
                out.latency_s += max(0.0, ms) / 1000.0
            elif fault.kind == "http_5xx":
                out.http_status = int(p.get("status", 503))
            elif fault.kind == "rate_limit":
                out.rate_limit = True
                out.terminate = bool(p.get("terminate", True))
            elif fault.kind == "timeout_after_accept":
                out.timeout_mode = str(p.get("mode", "hold"))
                out.hold_s = float(p.get("hold_s", 300.0))
            elif fault.kind == "ws_drop":
                out.ws_drop = True
            elif fault.kind == "order_reject":
                default_code, default_msg = (
                    (51000, "Parameter error") if venue == "okx" else (11030, "other_reject")
                )
                out.reject = {
                    "code": int(p.get("code", default_code)),
                    "message": str(p.get("message", default_msg)),
                    "data": p.get("data", {"reason": "injected fault"}),
                }
        return out

    def tick(self, now_ms: int) -> TickEffects:
        """Start due faults, run the one-shot ones, forget the finished ones."""
        eff = TickEffects()
        for fault in list(self._faults.values()):
            if now_ms < fault.start_ms:
                continue
            first = not fault.started
            fault.started = True
            if fault.kind in ONE_SHOT_KINDS:
                if first:
                    self._fire(fault)
                    if fault.kind == "price_gap":
                        p = fault.params
                        eff.price_gaps.append(
                            (str(p.get("currency", "BTC")), float(p.get("pct", -5.0)))
                        )
                    else:  # clear
                        for other in list(self._faults.values()):
                            if other.id != fault.id and now_ms >= other.start_ms:
                                self._faults.pop(other.id, None)
                self._faults.pop(fault.id, None)
                continue
            due_drop = first or (fault.next_drop_ms is not None and now_ms >= fault.next_drop_ms)
            if fault.kind == "ws_drop" and not fault.methods and due_drop and fault.active(now_ms):
                fault.fired += 1  # a timed drop ignores `probability`
                self.fired_total["ws_drop"] = self.fired_total.get("ws_drop", 0) + 1
                eff.drop_ws_venues.add(fault.venue)
                eff.drop_all_ws = eff.drop_all_ws or fault.venue == "deribit"
                every = fault.params.get("every_s")
                if every:
                    fault.next_drop_ms = now_ms + int(float(every) * 1000)
                else:
                    fault.next_drop_ms = None
                    fault.count = fault.fired  # once
            if not fault.active(now_ms) and (
                (fault.until_ms is not None and now_ms >= fault.until_ms)
                or (fault.count is not None and fault.fired >= fault.count)
            ):
                self._faults.pop(fault.id, None)
        return eff

    def _state_active(self, kind: str, now_ms: int) -> bool:
        return any(f.kind == kind and f.active(now_ms) for f in self._faults.values())

    def market_frozen(self, now_ms: int, venue: str = "deribit") -> bool:
        return bool(self._faults) and any(
            f.kind == "freeze_market_data" and f.venue == venue and f.active(now_ms)
            for f in self._faults.values()
        )

    def market_stale(self, now_ms: int) -> bool:
        return bool(self._faults) and self._state_active("stale_market_data", now_ms)

    def _active_for(
        self, kind: str, venue: str, account_id: str | None, now_ms: int
    ) -> list[Fault]:
        """The active faults of `kind` on `venue` whose `account` (when given) is
        `account_id` (a copy: firing one may end it)."""
        return [
            fault
            for fault in self._faults.values()
            if fault.kind == kind
            and fault.active(now_ms)
            and fault.venue == venue
            and (fault.params.get("account") is None or str(fault.params["account"]) == account_id)
        ]

    def drop_notification(
        self, channel: str, account_id: str | None, now_ms: int, venue: str = "deribit"
    ) -> bool:
        """Whether the private notification on engine channel `channel` (e.g.
        `user.changes.future.BTC`) for `account_id` is dropped (fault `drop_notifications`)."""
        if not self._faults:
            return False
        for fault in self._active_for("drop_notifications", venue, account_id, now_ms):
            p = fault.params
            default = OKX_DEFAULT_DROP_CHANNELS if venue == "okx" else DEFAULT_DROP_CHANNELS
            pats = _patterns(p.get("channels"), default, "channels")
            if any(fnmatch.fnmatchcase(channel, pat) for pat in pats) and self._fire(fault):
                return True
        return False

    def delta_offset_coin(
        self, currency: str, account_id: str | None, now_ms: int, venue: str = "deribit"
    ) -> float:
        """The sum of the active `portfolio_delta_offset` faults for `currency` and
        `account_id`, coin (0.0 when none)."""
        if not self._faults:
            return 0.0
        total = 0.0
        for fault in self._active_for("portfolio_delta_offset", venue, account_id, now_ms):
            p = fault.params
            if p.get("currency") is not None and str(p["currency"]).upper() != currency.upper():
                continue
            total += float(p.get("offset_coin", 1.0))
        return total

    def depth_caps(self, now_ms: int, venue: str = "deribit") -> tuple[DepthCap, ...]:
        """The active `thin_depth` faults, in the order they were added."""
        if not self._faults:
            return ()
        return tuple(
            DepthCap(
                _patterns(f.params.get("instruments"), ("*",), "instruments"),
                float(f.params.get("depth_amount", 0.0)),
                str(f.params.get("side", "both")),
            )
            for f in self._faults.values()
            if f.kind == "thin_depth" and f.venue == venue and f.active(now_ms)
        )

    def extend(self, specs: Iterable[Mapping[str, Any]], now_ms: int) -> list[Fault]:
        return [self.add(s, now_ms) for s in specs]
