"""`OkxDialect`: the OKX wire (REST `/api/v5`, WebSocket `/ws/v5/...`) served on the same port
as the Deribit dialect, over the world's `OkxVenue` (`server.engine.world.okx`).

    dialect = OkxDialect(server, rate_limits=True)   # adds its routes to server.app
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hedgerd.sim.faults import RequestFaults, TickEffects
from hedgerd.sim.okx.accounts import OkxAccount
from hedgerd.sim.okx.limits import OkxRateLimiter
from hedgerd.sim.okx.rest import OkxRestApi
from hedgerd.sim.okx.venue import OkxVenue
from hedgerd.sim.okx.views import s

if TYPE_CHECKING:
    from hedgerd.sim.server import SimServer

VENUE = "okx"


@dataclass(slots=True)
class OkxCounters:
    """What `GET /sim/admin/state` reports under `venues.okx.counters`."""

    http_requests: int = 0
    ws_messages: int = 0
    ws_connections: int = 0
    ws_dropped: int = 0
    orders_received: int = 0
    orders_accepted: int = 0
    #: Place requests refused because their `expTime` had passed on arrival.
    requests_expired: int = 0
    rate_limited: int = 0
    internal_errors: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Order items by `clOrdId` ("" = none): received (past the rate limit) and accepted; the
    #: chaos drill's duplicate check (a client id received or accepted twice).
    received_by_cl_ord_id: Counter[str] = field(default_factory=Counter)
    accepted_by_cl_ord_id: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "ws_messages": self.ws_messages,
            "ws_connections": self.ws_connections,
            "ws_dropped": self.ws_dropped,
            "orders_received": self.orders_received,
            "orders_accepted": self.orders_accepted,
            "requests_expired": self.requests_expired,
            "rate_limited": self.rate_limited,
            "internal_errors": self.internal_errors,
            "errors": dict(self.errors),
        }


class OkxDialect:
    """OKX API v5 in front of the world's OKX venue, on `server`'s port and faults."""

    def __init__(
        self,
        server: SimServer,
        *,
        rate_limits: bool = True,
        require_simulated_header: bool | None = None,
        auth_clock: str = "both",
    ) -> None:
        if auth_clock not in ("both", "sim"):
            raise ValueError("auth_clock is 'both' (simulated or wall clock) or 'sim'")
        self.server = server
        self.auth_clock = auth_clock
        self.limiter = OkxRateLimiter(enabled=rate_limits)
        self._require_header = require_simulated_header
        self.counters = OkxCounters()
        self.rest = OkxRestApi(self)
        from hedgerd.sim.okx.ws import OkxWsHub  # late: the hub uses the dialect

        self.ws = OkxWsHub(self)
        self._caps: tuple[Any, ...] = ()
        server.dialects[VENUE] = self
        app = server.app
        app.router.add_route("GET", "/api/v5/{path:.+}", self.rest.handle)
        app.router.add_route("POST", "/api/v5/{path:.+}", self.rest.handle)
        for scope in ("public", "private", "business"):
            app.router.add_route("GET", f"/ws/v5/{scope}", self.ws.handler(scope))
        self.ws.attach(self.venue)

    @property
    def venue(self) -> OkxVenue:
        world = getattr(self.server.engine, "world", None)
        okx = getattr(world, "okx", None)
        if okx is None:
            raise RuntimeError("the engine's world has no OKX venue (venues must include okx)")
        assert isinstance(okx, OkxVenue)
        return okx

    @property
    def require_simulated_header(self) -> bool:
        if self._require_header is not None:
            return self._require_header
        return self.venue.spec.require_simulated_header

    def auth_clocks(self) -> tuple[int, ...]:
        """The clocks a signature timestamp may be near (UTC ms): see `okx.auth`."""
        sim = int(self.venue.now_ms())
        return (sim,) if self.auth_clock == "sim" else (sim, int(time.time() * 1000))

    def request_faults(self, method: str, transport: str, now_ms: int) -> RequestFaults:
        return self.server.faults.for_request(method, transport, now_ms, venue=VENUE)

    def delta_offset(self, ccy: str, account_id: str) -> float:
        """Fault `portfolio_delta_offset` (venue okx): coin added to the account's deltas."""
        return self.server.faults.delta_offset_coin(
            ccy, account_id, self.venue.now_ms(), venue=VENUE
        )

    def offset_greeks(self, item: dict[str, Any], account_id: str) -> dict[str, Any]:
        """An `account/greeks` item with the delta fault applied."""
        off = self.delta_offset(str(item.get("ccy", "")), account_id)
        if not off:
            return item
        return {**item, **{k: s(float(item[k]) + off) for k in ("deltaBS", "deltaPA")}}

    def offset_position(self, item: dict[str, Any], acct: OkxAccount) -> dict[str, Any]:
        """A position item with the delta fault applied (options carry the deltas)."""
        if not item.get("deltaPA"):
            return item
        off = self.delta_offset(item["instId"].split("-")[0], acct.account_id)
        if not off:
            return item
        return {**item, **{k: s(float(item[k]) + off) for k in ("deltaBS", "deltaPA")}}

    # ------------------------------------------------------------------ server hooks
    def on_step(self, now_ms: int, eff: TickEffects, drop_ws: bool) -> None:
        if drop_ws:
            self.ws.drop(None)
        caps = self.server.faults.depth_caps(now_ms, venue=VENUE)
        if caps != self._caps:
            self._caps = caps
            self.venue.set_depth_caps(caps)

    def drop_ws(self, account_id: str | None = None) -> int:
        return self.ws.drop(account_id)

    def reset(self) -> None:
        self.ws.drop(None)
        self.limiter.reset()
        self.counters = OkxCounters()
        self.ws.attach(self.venue)

    def state(self) -> dict[str, Any]:
        return {
            "counters": self.counters.to_json(),
            "ws_sessions": len(self.ws.sessions),
            "engine": self.venue.admin_state(),
        }
