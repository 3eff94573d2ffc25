"""The simulator's network server: Deribit's API v2 over HTTP and WebSocket (aiohttp).

- HTTP: `GET|POST /api/v2/{public|private}/{method}` (query string, JSON or form body) and
  `POST /api/v2` with a JSON-RPC body. Private calls authenticate with ccxt's
  `deri-hmac-sha256` signature, a Bearer token or HTTP Basic.
- WebSocket: `/ws/api/v2`, JSON-RPC 2.0 both ways; `public/auth`, subscriptions, heartbeats,
  cancel-on-disconnect.
- Every reply carries Deribit's envelope: `jsonrpc`, `id` (when the request had one),
  `result` or `error{code,message,data}`, `usIn`, `usOut`, `usDiff` (microseconds; `usIn` is
  simulated time, `usDiff` the real processing time) and `testnet`.

The engine is synchronous (`SimEngine`); the server authenticates, rate-limits, injects
faults and calls `engine.dispatch`. Errors are Deribit's error objects with HTTP 400 (401 for
authentication, 429 for rate limits), never a 500 or a traceback: an unexpected exception in
the engine becomes error 11094 `internal_server_error`, is logged, and is counted in
`counters.internal_errors` so that tests can insist on zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from aiohttp import WSMsgType, web

from hedgerd.sim.deribit.auth import Authenticator
from hedgerd.sim.deribit.ratelimit import RateLimitConfig, RateLimiter
from hedgerd.sim.deribit.subscriptions import (
    Channel,
    ChannelError,
    SubscriptionHub,
    dumps,
    parse_channel,
)
from hedgerd.sim.faults import DepthCap, FaultInjector, RequestFaults, offset_summary
from hedgerd.sim.protocol import (
    ERR_INTERNAL,
    ERR_INVALID_ARGUMENTS,
    ERR_INVALID_CREDENTIALS,
    ERR_INVALID_REQUEST,
    ERR_METHOD_NOT_FOUND,
    ERR_PARSE_ERROR,
    ERR_TIMED_OUT,
    ERR_TOO_MANY_REQUESTS,
    ERR_UNAUTHORIZED,
    Account,
    DeribitError,
    SimEngine,
)
from hedgerd.sim.ws_outbox import WsOutbox

try:
    import orjson

    _loads: Callable[[str | bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSON_ERRORS = (ValueError,)

log = structlog.get_logger(__name__)

API_VERSION = "1.2.26"
CONFLATION_S = 0.1  # `.100ms` channels: wall-clock flush period
CATCH_UP_SLICE_MS = 1_000  # simulated ms advanced between two yields to the event loop
ERR_MUST_BE_WEBSOCKET = 10030
ERR_RAW_UNAUTHORIZED = 13778
ERR_AUTHORIZATION_REQUIRED = 10000  # authorization_required
_AUTH_CODES = frozenset({ERR_UNAUTHORIZED, ERR_INVALID_CREDENTIALS, ERR_AUTHORIZATION_REQUIRED})

WS_ONLY = frozenset(
    {
        "public/set_heartbeat",
        "public/disable_heartbeat",
        "public/subscribe",
        "public/unsubscribe",
        "public/unsubscribe_all",
        "private/subscribe",
        "private/unsubscribe",
        "private/unsubscribe_all",
        "private/logout",
        "public/hello",
    }
)
ORDER_METHODS = frozenset({"private/buy", "private/sell"})
#: Methods that take `valid_until` (request expiry).
EXPIRING_METHODS = ORDER_METHODS | {"private/edit"}
SUMMARY_METHODS = frozenset({"private/get_account_summary", "private/get_account_summaries"})

# Query-string values arrive as text; these names are numbers or booleans in Deribit's API.
_NUMBER_PARAMS = frozenset(
    {
        "amount",
        "contracts",
        "price",
        "trigger_price",
        "trigger_offset",
        "max_show",
        "depth",
        "count",
        "offset",
        "start_timestamp",
        "end_timestamp",
        "timestamp",
        "valid_until",
        "interval",
        "start_seq",
        "end_seq",
        "strike",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "post_only",
        "reject_post_only",
        "reduce_only",
        "extended",
        "include_old",
        "historical",
        "invalidate_token",
        "detailed",
        "expired",
        "include_unfilled",
        "mmp",
        "with_portfolio",
    }
)


def coerce_param(name: str, value: str) -> Any:
    """A query-string value as the JSON value Deribit would read (text if it does not parse,
    so that the engine reports the bad value)."""
    if name in _BOOL_PARAMS:
        low = value.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        return value
    if name in _NUMBER_PARAMS:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            f = float(value)
        except ValueError:
            return value
        return f if f == f and f not in (float("inf"), float("-inf")) else value
    return value


def params_from_query(
    query: Mapping[str, str], multi: Callable[[str], list[str]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in query:
        if key in out:
            continue
        values = multi(key)
        name = key.removesuffix("[]")
        if len(values) > 1 or key.endswith("[]") or name == "channels":
            out[name] = [coerce_param(name, v) for v in values]
        else:
            out[name] = coerce_param(name, values[0])
    return out


class NoReplyError(Exception):
    """The reply never comes (fault `timeout_after_accept`, `ws_drop`)."""

    def __init__(self, mode: str, hold_s: float = 0.0) -> None:
        super().__init__(mode)
        self.mode = mode
        self.hold_s = hold_s


class HttpFaultError(Exception):
    """Fault `http_5xx`: the HTTP request gets this status instead of a JSON-RPC reply."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class TerminateSessionError(Exception):
    """Reply with this error, then end the WebSocket session (rate limit exhausted)."""

    def __init__(self, error: DeribitError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class Counters:
    """What the drills read from `GET /sim/admin/state`."""

    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    orders_received: Counter[str] = field(default_factory=Counter)  # by label ("" = none)
    orders_accepted: Counter[str] = field(default_factory=Counter)
    #: Order requests refused because their expiry (`valid_until`) had passed on arrival.
    requests_expired: int = 0
    internal_errors: int = 0
    ws_connections: int = 0
    ws_dropped: int = 0
    ws_overflows: int = 0
    heartbeat_timeouts: int = 0
    cod_cancelled_orders: int = 0
    rate_limited: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "errors": {str(k): v for k, v in self.errors.items()},
            "orders_received": dict(self.orders_received),
            "orders_accepted": dict(self.orders_accepted),
            "orders_received_total": sum(self.orders_received.values()),
            "orders_accepted_total": sum(self.orders_accepted.values()),
            "requests_expired": self.requests_expired,
            "internal_errors": self.internal_errors,
            "ws_connections": self.ws_connections,
            "ws_dropped": self.ws_dropped,
            "ws_overflows": self.ws_overflows,
            "heartbeat_timeouts": self.heartbeat_timeouts,
            "cod_cancelled_orders": self.cod_cancelled_orders,
            "rate_limited": self.rate_limited,
        }


class WsSession:
    """One WebSocket connection: its outbound queue, auth, heartbeat and cancel-on-disconnect."""

    def __init__(
        self, server: SimServer, conn_id: int, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.server = server
        self.conn_id = conn_id
        self.ws = ws
        self.request = request
        self.account: Account | None = None
        self.remote = request.remote or "?"
        self.cod_enabled = False
        self.cod_orders: set[str] = set()
        self.logged_out = False
        self.heartbeat_s: float | None = None
        self.awaiting_test = False
        self.outbox = WsOutbox(
            ws, request, max_queue=server.max_queue, name=f"sim-ws-writer-{conn_id}",
            on_overflow=self._overflowed,
        )  # fmt: skip
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def account_id(self) -> str | None:
        return self.account.account_id if self.account is not None else None

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    def send_text(self, text: str) -> None:
        self.outbox.send_text(text)

    def _overflowed(self, queued: int) -> None:
        # A client that cannot keep up is cut off, as a venue would: never block the loop.
        self.server.counters.ws_overflows += 1
        log.warning("sim_ws_send_queue_overflow", conn_id=self.conn_id, queued=queued)

    def abort(self) -> None:
        """Drop the connection without a close frame (a network failure)."""
        self.outbox.abort()

    async def close(self) -> None:
        """Close the connection with a close frame, after what is queued."""
        await self.outbox.close()

    def set_heartbeat(self, interval_s: float | None) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self.heartbeat_s = interval_s
        self.awaiting_test = False
        if interval_s is not None:
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(interval_s))

    async def _heartbeat_loop(self, interval_s: float) -> None:
        wall_s = interval_s * self.server.heartbeat_scale
        while not self.closed:
            await asyncio.sleep(wall_s)
            if self.closed:
                return
            if self.awaiting_test:
                # No public/test since the last test_request: the venue hangs up (and
                # cancel-on-disconnect fires).
                self.server.counters.heartbeat_timeouts += 1
                log.info("sim_ws_heartbeat_missed", conn_id=self.conn_id)
                self.abort()
                return
            self.awaiting_test = True
            self.send_text(
                '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
            )

    def stop_tasks(self) -> None:
        self.outbox.stop()
        if self._heartbeat is not None:
            self._heartbeat.cancel()


@dataclass(slots=True)
class CallContext:
    transport: str  # "http" | "ws"
    account: Account | None
    remote: str
    session: WsSession | None = None
    # run after the reply is queued (initial notifications come after the subscribe reply)
    after_reply: list[Callable[[], None]] = field(default_factory=list)


class SimServer:
    """Deribit API v2 in front of a `SimEngine`.

    `clock` is the engine's `SimClock` (default: `engine.clock`) for time control; `tick_s` the
    wall-clock period of the loop that advances the engine and flushes conflated channels;
    `heartbeat_scale` wall seconds per heartbeat second (tests shrink it); `max_queue` frames a
    WebSocket may have waiting before it is dropped; `cod_cancels` what cancel-on-disconnect
    cancels: `connection` (Deribit: the orders placed over that connection) or `account`
    (`engine.cancel_all_for_account`).
    """

    def __init__(
        self,
        engine: SimEngine,
        *,
        clock: Any = None,
        rate_limits: RateLimitConfig | None = None,
        faults: FaultInjector | None = None,
        testnet: bool = True,
        tick_s: float = 0.1,
        heartbeat_scale: float = 1.0,
        max_queue: int = 20_000,
        cod_cancels: str = "connection",
        auth_window_ms: int = 60_000,
        engine_factory: Callable[[], SimEngine] | None = None,
        admin_remote: bool = False,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self.faults = faults if faults is not None else FaultInjector()
        self.limiter = RateLimiter(rate_limits if rate_limits is not None else RateLimitConfig())
        self.auth = Authenticator(lookup=self._lookup, window_ms=auth_window_ms)
        self.testnet = testnet
        self.tick_s = tick_s
        self.heartbeat_scale = heartbeat_scale
        self.max_queue = max_queue
        self.cod_cancels = cod_cancels
        self.engine_factory = engine_factory
        self.admin_remote = admin_remote
        self.counters = Counters()
        self.hub = SubscriptionHub(
            market_frozen=self._market_frozen, private_filter=self._private_filter
        )
        self._depth_caps: tuple[DepthCap, ...] = ()
        self.sessions: dict[int, WsSession] = {}
        self._cod_accounts: set[str] = set()
        self._market_held = False
        self._stepped_to = 0
        self._conn_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self.host = ""
        self.port = 0
        # Other wire dialects served on this port (e.g. `okx.dialect.OkxDialect`), by venue
        # name; each adds its routes to `app` before `start` and hears `step`, `drop_ws`,
        # `reset`.
        self.dialects: dict[str, Any] = {}
        self._attach_engine(engine)
        self.app = self._build_app()

    # ------------------------------------------------------------------ wiring
    def _attach_engine(self, engine: SimEngine) -> None:
        setter = getattr(engine, "set_event_sink", None)
        if callable(setter):
            setter(self.hub)
        elif hasattr(engine, "sink"):
            engine.sink = self.hub

    def _lookup(self, key: str) -> Account | None:
        return self.engine.account_for_key(key)

    @property
    def clock(self) -> Any:
        return self._clock if self._clock is not None else getattr(self.engine, "clock", None)

    def _market_frozen(self) -> bool:
        return self.faults.market_frozen(self.engine.now_ms())

    def _private_filter(self, channel: str, account_id: str, data: Any) -> Any:
        """Faults on private notifications: dropped (`drop_notifications`) or, for
        `user.portfolio`, wrong account Greeks (`portfolio_delta_offset`)."""
        now = int(self.engine.now_ms())
        if self.faults.drop_notification(channel, account_id, now):
            return None
        if channel.startswith("user.portfolio.") and isinstance(data, dict):
            offset = self.faults.delta_offset_coin(channel.split(".")[2], account_id, now)
            if offset:
                return offset_summary(data, offset)
        return data

    def _offset_summaries(self, method: str, result: Any, account: Account | None) -> Any:
        """`portfolio_delta_offset` on the REST account summaries."""
        if account is None or not isinstance(result, dict):
            return result
        now = int(self.engine.now_ms())

        def one(summary: Any) -> Any:
            if not isinstance(summary, dict):
                return summary
            ccy = str(summary.get("currency", ""))
            offset = self.faults.delta_offset_coin(ccy, account.account_id, now)
            return offset_summary(summary, offset) if offset else summary

        if method == "private/get_account_summary":
            return one(result)
        summaries = result.get("summaries")
        if isinstance(summaries, list):
            return {**result, "summaries": [one(x) for x in summaries]}
        return result

    def _build_app(self) -> web.Application:
        from hedgerd.sim.admin import add_admin_routes

        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("GET", "/api/v2/{scope:public|private}/{method}", self._http_method)
        app.router.add_route("POST", "/api/v2/{scope:public|private}/{method}", self._http_method)
        app.router.add_route("POST", "/api/v2", self._http_rpc)
        app.router.add_route("POST", "/api/v2/", self._http_rpc)
        app.router.add_route("GET", "/ws/api/v2", self._ws_handler)
        app.router.add_route("GET", "/ws/api/v2/", self._ws_handler)
        add_admin_routes(app, self)
        app.on_shutdown.append(self._on_shutdown)
        return app

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on host:port (port 0 picks a free port); returns the bound address."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.host, self.port = host, sock.getsockname()[1]
        self._stepped_to = int(self.engine.now_ms())
        self._tick_task = asyncio.create_task(self._tick_loop(), name="sim-tick")
        log.info("sim_server_listening", host=self.host, port=self.port, testnet=self.testnet)
        return self.host, self.port

    async def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_shutdown(self, app: web.Application) -> None:
        for s in list(self.sessions.values()):
            s.logged_out = True  # a server shutdown is not a client disconnect
            await s.close()

    @property
    def rest_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/ws/api/v2"

    # ------------------------------------------------------------------ time
    async def _tick_loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            # Catch up in slices of simulated time so that sockets are served in between when
            # the engine runs behind the clock (high --speed, many subscriptions).
            target = int(self.engine.now_ms())
            done = self._stepped_to
            while done + CATCH_UP_SLICE_MS < target:
                done += CATCH_UP_SLICE_MS
                self.step(done)
                await asyncio.sleep(0)
            self._stepped_to = target
            self.step(target)
            now = time.monotonic()
            if now - last_flush >= CONFLATION_S:
                last_flush = now
                self.hub.flush()

    def step(self, upto_ms: int | None = None) -> None:
        """Run the faults that are due and advance the engine to the clock (or `upto_ms`)."""
        try:
            now = self.engine.now_ms() if upto_ms is None else upto_ms
            eff = self.faults.tick(now)
            if eff.drop_all_ws:
                self.drop_ws()
            for name, dialect in self.dialects.items():
                dialect.on_step(now, eff, name in eff.drop_ws_venues)
            for ccy, pct in eff.price_gaps:
                self.price_gap(ccy, pct)
            caps = self.faults.depth_caps(now)
            if caps != self._depth_caps:
                set_caps = getattr(self.engine, "set_depth_caps", None)
                if callable(set_caps):
                    set_caps(caps)
                self._depth_caps = caps
            stale = self.faults.market_stale(now)
            hold = getattr(self.engine, "hold_market", None)
            if callable(hold) and stale != self._market_held:
                hold(stale)
                self._market_held = stale
            if not stale:
                self.engine.advance_to(now)
        except Exception:
            self.counters.internal_errors += 1
            log.exception("sim_engine_advance_failed")

    def advance(self, ms: int) -> int:
        """Move simulated time forward by `ms` and let the engine catch up."""
        clock = self.clock
        if clock is None:
            raise RuntimeError("the engine exposes no clock")
        clock.advance(int(ms))
        self.step()
        self._stepped_to = int(self.engine.now_ms())
        return int(self.engine.now_ms())

    def price_gap(self, currency: str, pct: float) -> None:
        gap = getattr(self.engine, "price_gap", None)
        if not callable(gap):
            raise RuntimeError("the engine does not support price gaps")
        gap(currency, pct)

    def drop_ws(self, account_id: str | None = None) -> int:
        n = 0
        for s in list(self.sessions.values()):
            if account_id is None or s.account_id == account_id:
                s.abort()
                n += 1
        self.counters.ws_dropped += n
        return n

    def reset(self) -> None:
        """Start over from a fresh engine (needs `engine_factory`)."""
        if self.engine_factory is None:
            raise RuntimeError("no engine factory: reset is not available")
        for s in list(self.sessions.values()):
            s.logged_out = True
            s.abort()
        self.engine = self.engine_factory()
        self._market_held = False
        self._depth_caps = ()
        self._stepped_to = int(self.engine.now_ms())
        self._attach_engine(self.engine)
        for dialect in self.dialects.values():
            dialect.reset()
        self.counters = Counters()
        self.limiter.reset()
        self.auth.clear()
        self._cod_accounts.clear()

    # ------------------------------------------------------------------ envelopes
    def _now_us(self) -> int:
        return int(self.engine.now_ms()) * 1000

    def _envelope(
        self,
        req_id: Any,
        us_in: int,
        t0: float,
        *,
        result: Any = None,
        error: DeribitError | None = None,
        include_id: bool = True,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"jsonrpc": "2.0"}
        if include_id:
            out["id"] = req_id
        if error is not None:
            out["error"] = error.to_json()
        else:
            out["result"] = result
        diff = max(0, int((time.perf_counter() - t0) * 1e6))
        out["usIn"] = us_in
        out["usOut"] = us_in + diff
        out["usDiff"] = diff
        out["testnet"] = self.testnet
        return out

    # ------------------------------------------------------------------ the pipeline
    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> Any:
        """Run one request: faults, rate limit, auth check, then the server's own methods or
        the engine. Raises DeribitError, NoReplyError, HttpFaultError or TerminateSessionError."""
        self.counters.requests[method] += 1
        token = params.pop("access_token", None)
        if isinstance(token, str) and token:
            ctx.account = self.auth.account_for_token(token)
        if method in ORDER_METHODS and ctx.account is not None:
            self.counters.orders_received[str(params.get("label", ""))] += 1
        faults = self.faults.for_request(method, ctx.transport, self.engine.now_ms())
        if faults.fired:
            await self._apply_faults_before(faults, ctx)
        if not method.startswith(("public/", "private/")):
            raise DeribitError(ERR_METHOD_NOT_FOUND, "Method not found")
        key = ctx.account.api_key if ctx.account is not None else f"ip:{ctx.remote}"
        try:
            self.limiter.check(key, method)
        except DeribitError as exc:
            self.counters.rate_limited += 1
            if ctx.session is not None:
                raise TerminateSessionError(exc) from None
            raise
        if method.startswith("private/") and ctx.account is None:
            raise DeribitError(ERR_UNAUTHORIZED, "unauthorized")
        if faults.reject is not None:
            r = faults.reject
            raise DeribitError(int(r["code"]), str(r["message"]), r.get("data"))
        if method in EXPIRING_METHODS:
            self._check_valid_until(params)
        handler = self._local.get(method)
        if handler is not None:
            result = await handler(self, params, ctx)
        else:
            result = self._dispatch(method, params, ctx.account)
        if method in ORDER_METHODS:
            self.counters.orders_accepted[str(params.get("label", ""))] += 1
        if method in SUMMARY_METHODS and self.faults:
            result = self._offset_summaries(method, result, ctx.account)
        if ctx.session is not None and isinstance(result, dict):
            order = result.get("order")
            if isinstance(order, dict) and order.get("order_state") in ("open", "untriggered"):
                ctx.session.cod_orders.add(str(order.get("order_id")))
        if faults.timeout_mode is not None:
            raise NoReplyError(faults.timeout_mode, faults.hold_s)
        return result

    def _check_valid_until(self, params: Mapping[str, Any]) -> None:
        """Deribit's `valid_until` (ms, venue time): "server will start processing request
        in Matching Engine only before given timestamp, in other cases `timed_out` error will
        be responded" (buy, sell, edit). Checked after the request's network faults (a
        delayed request arrives late) and before the engine sees it."""
        raw = params.get("valid_until")
        if raw is None:
            return
        try:
            valid_until = int(raw)
        except (TypeError, ValueError):
            raise DeribitError(
                ERR_INVALID_ARGUMENTS, "Invalid params", {"param": "valid_until"}
            ) from None
        if self.engine.now_ms() >= valid_until:
            self.counters.requests_expired += 1
            raise DeribitError(ERR_TIMED_OUT, "timed_out", {"valid_until": valid_until})

    async def _apply_faults_before(self, faults: RequestFaults, ctx: CallContext) -> None:
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        if faults.ws_drop and ctx.session is not None:
            self.counters.ws_dropped += 1
            ctx.session.abort()
            raise NoReplyError("drop")
        if faults.http_status is not None:
            if ctx.session is None:
                raise HttpFaultError(faults.http_status)
            raise DeribitError(ERR_INTERNAL, "internal_server_error")
        if faults.rate_limit:
            self.counters.rate_limited += 1
            exc = DeribitError(ERR_TOO_MANY_REQUESTS, "too_many_requests")
            if ctx.session is not None and faults.terminate:
                raise TerminateSessionError(exc)
            raise exc

    def _dispatch(self, method: str, params: Mapping[str, Any], account: Account | None) -> Any:
        try:
            return self.engine.dispatch(method, params, account)
        except DeribitError:
            raise
        except Exception:
            self.counters.internal_errors += 1
            log.exception("sim_engine_dispatch_failed", method=method)
            raise DeribitError(ERR_INTERNAL, "internal_server_error") from None

    # ------------------------------------------------------------------ server-side methods
    async def _m_auth(self, params: dict[str, Any], ctx: CallContext) -> Any:
        sid = ctx.session.conn_id if ctx.session is not None else None
        account, result = self.auth.public_auth(params, sid)
        if ctx.session is not None:
            if ctx.session.account is not None and ctx.session.account != account:
                self.hub.remove_all(ctx.session)  # another account: its channels go
            ctx.session.account = account
            if account.account_id in self._cod_accounts:
                ctx.session.cod_enabled = True
        ctx.account = account
        return result

    async def _m_logout(self, params: dict[str, Any], ctx: CallContext) -> Any:
        session = self._ws_only("private/logout", ctx)
        session.logged_out = True
        if params.get("invalidate_token", True) is not False:
            self.auth.revoke_session(session.conn_id)
        raise NoReplyError("logout")

    async def _m_set_heartbeat(self, params: dict[str, Any], ctx: CallContext) -> Any:
        session = self._ws_only("public/set_heartbeat", ctx)
        interval = params.get("interval")
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise _invalid("interval", "value required" if interval is None else "must be a number")
        if interval < 10:
            raise _invalid("interval", "must be at least 10 seconds")
        session.set_heartbeat(float(interval))
        return "ok"

    async def _m_disable_heartbeat(self, params: dict[str, Any], ctx: CallContext) -> Any:
        self._ws_only("public/disable_heartbeat", ctx).set_heartbeat(None)
        return "ok"

    async def _m_test(self, params: dict[str, Any], ctx: CallContext) -> Any:
        if ctx.session is not None:
            ctx.session.awaiting_test = False
        if params.get("expected_result") == "exception":
            raise DeribitError(ERR_INTERNAL, "internal_server_error", {"reason": "expected_result"})
        return {"version": API_VERSION}

    async def _m_hello(self, params: dict[str, Any], ctx: CallContext) -> Any:
        self._ws_only("public/hello", ctx)
        return {"version": API_VERSION}

    async def _m_get_time(self, params: dict[str, Any], ctx: CallContext) -> Any:
        return int(self.engine.now_ms())

    async def _m_subscribe(self, params: dict[str, Any], ctx: CallContext, private: bool) -> Any:
        method = "private/subscribe" if private else "public/subscribe"
        session = self._ws_only(method, ctx)
        channels = _channels_param(params)
        if private and session.account is None:
            raise DeribitError(ERR_UNAUTHORIZED, "unauthorized")
        parsed: list[Channel] = []
        for name in channels:
            try:
                ch = parse_channel(name)
            except ChannelError:
                continue  # Deribit leaves out what it cannot subscribe
            if ch.private and (not private or session.account is None):
                continue
            if (
                ch.interval == "raw"
                and not ch.private
                and ch.family != "quote"
                and session.account is None
            ):
                raise DeribitError(
                    ERR_RAW_UNAUTHORIZED, "raw_subscriptions_not_available_for_unauthorized"
                )
            inst = ch.instrument_of_public
            if inst is not None and not self._instrument_exists(inst):
                continue
            parsed.append(ch)
        out: list[str] = []
        for ch in parsed:
            if ch.name not in self.hub.channels_of(session):
                # Joined after the reply, with its snapshot first: nothing reaches the session
                # on the channel before its snapshot (a book's changes then continue the
                # snapshot's change_id; a pushed or injected ticker cannot precede the older
                # snapshot).
                ctx.after_reply.append(functools.partial(self._join, session, ch))
            out.append(ch.name)
        return out

    def _join(self, session: WsSession, ch: Channel) -> None:
        if session.closed or not self.hub.add(session, ch):
            return
        self._initial_notification(session, ch)

    async def _m_public_subscribe(self, params: dict[str, Any], ctx: CallContext) -> Any:
        return await self._m_subscribe(params, ctx, private=False)

    async def _m_private_subscribe(self, params: dict[str, Any], ctx: CallContext) -> Any:
        return await self._m_subscribe(params, ctx, private=True)

    async def _m_unsubscribe(self, params: dict[str, Any], ctx: CallContext) -> Any:
        session = self._ws_only("public/unsubscribe", ctx)
        return [name for name in _channels_param(params) if self.hub.remove(session, name)]

    async def _m_unsubscribe_all(self, params: dict[str, Any], ctx: CallContext) -> Any:
        self.hub.remove_all(self._ws_only("public/unsubscribe_all", ctx))
        return "ok"

    def _cod_scope(self, params: Mapping[str, Any], ctx: CallContext) -> str:
        scope = params.get("scope", "connection")
        if scope not in ("connection", "account"):
            raise _invalid("scope", "must be connection or account")
        if scope == "connection" and ctx.session is None:
            raise DeribitError(ERR_MUST_BE_WEBSOCKET, "must_be_websocket_request")
        return str(scope)

    async def _m_enable_cod(self, params: dict[str, Any], ctx: CallContext) -> Any:
        return self._set_cod(params, ctx, True)

    async def _m_disable_cod(self, params: dict[str, Any], ctx: CallContext) -> Any:
        return self._set_cod(params, ctx, False)

    def _set_cod(self, params: Mapping[str, Any], ctx: CallContext, on: bool) -> str:
        scope = self._cod_scope(params, ctx)
        assert ctx.account is not None
        if scope == "account":
            if on:
                self._cod_accounts.add(ctx.account.account_id)
            else:
                self._cod_accounts.discard(ctx.account.account_id)
        if ctx.session is not None:
            ctx.session.cod_enabled = on
        return "ok"

    async def _m_get_cod(self, params: dict[str, Any], ctx: CallContext) -> Any:
        scope = self._cod_scope(params, ctx)
        assert ctx.account is not None
        if scope == "account":
            enabled = ctx.account.account_id in self._cod_accounts
        else:
            enabled = ctx.session is not None and ctx.session.cod_enabled
        return {"scope": scope, "enabled": enabled}

    _local: ClassVar[dict[str, Any]] = {
        "public/auth": _m_auth,
        "private/logout": _m_logout,
        "public/set_heartbeat": _m_set_heartbeat,
        "public/disable_heartbeat": _m_disable_heartbeat,
        "public/test": _m_test,
        "public/hello": _m_hello,
        "public/get_time": _m_get_time,
        "public/subscribe": _m_public_subscribe,
        "private/subscribe": _m_private_subscribe,
        "public/unsubscribe": _m_unsubscribe,
        "private/unsubscribe": _m_unsubscribe,
        "public/unsubscribe_all": _m_unsubscribe_all,
        "private/unsubscribe_all": _m_unsubscribe_all,
        "private/enable_cancel_on_disconnect": _m_enable_cod,
        "private/disable_cancel_on_disconnect": _m_disable_cod,
        "private/get_cancel_on_disconnect": _m_get_cod,
    }

    @staticmethod
    def _ws_only(method: str, ctx: CallContext) -> WsSession:
        if ctx.session is None:
            raise DeribitError(
                ERR_MUST_BE_WEBSOCKET, "must_be_websocket_request", {"method": method}
            )
        return ctx.session

    def _instrument_exists(self, name: str) -> bool:
        try:
            self.engine.dispatch("public/get_instrument", {"instrument_name": name}, None)
        except DeribitError as exc:
            return exc.code == ERR_METHOD_NOT_FOUND  # an engine without the method: trust it
        except Exception:
            log.exception("sim_instrument_lookup_failed", instrument=name)
            return False
        return True

    def _initial_notification(self, session: WsSession, ch: Channel) -> None:
        """Deribit opens a book subscription with a snapshot; tickers, index and portfolio
        start with the current state."""
        try:
            data: Any = None
            snapshot = getattr(self.engine, "book_snapshot", None)
            if ch.family == "book" and callable(snapshot):
                data = snapshot(ch.route.split(".", 1)[1])
            elif ch.family == "book":
                inst = ch.route.split(".", 1)[1]
                book = self.engine.dispatch(
                    "public/get_order_book", {"instrument_name": inst, "depth": 10_000}, None
                )
                data = {
                    "type": "snapshot",
                    "timestamp": book.get("timestamp"),
                    "instrument_name": inst,
                    "change_id": book.get("change_id", 0),
                    "bids": [["new", p, a] for p, a in book.get("bids", [])],
                    "asks": [["new", p, a] for p, a in book.get("asks", [])],
                }
            elif ch.family in ("ticker", "quote"):
                inst = ch.route.split(".", 1)[1]
                data = self.engine.dispatch("public/ticker", {"instrument_name": inst}, None)
            elif ch.family == "deribit_price_index":
                index_name = ch.name.split(".", 1)[1]
                px = self.engine.dispatch(
                    "public/get_index_price", {"index_name": index_name}, None
                )
                data = {
                    "timestamp": self.engine.now_ms(),
                    "price": px.get("index_price"),
                    "index_name": index_name,
                }
            elif ch.family == "user.portfolio" and ch.currency is not None:
                data = self.engine.dispatch(
                    "private/get_account_summary", {"currency": ch.currency}, session.account
                )
            if data is not None:
                self.hub.deliver_initial(session, ch.name, data)
        except DeribitError:
            pass  # nothing to start with (e.g. a currency without an account summary)
        except Exception:
            self.counters.internal_errors += 1
            log.exception("sim_initial_notification_failed", channel=ch.name)

    # ------------------------------------------------------------------ HTTP
    async def _http_method(self, request: web.Request) -> web.StreamResponse:
        method = f"{request.match_info['scope']}/{request.match_info['method']}"
        return await self._http(request, method)

    async def _http_rpc(self, request: web.Request) -> web.StreamResponse:
        return await self._http(request, None)

    async def _http(self, request: web.Request, method: str | None) -> web.StreamResponse:
        """One HTTP request; `method` None: a JSON-RPC body names it."""
        by_path = method is not None
        t0 = time.perf_counter()
        us_in = self._now_us()
        req_id: Any = None
        include_id = False
        try:
            body = await request.text() if request.can_read_body else ""
            params: dict[str, Any] = params_from_query(request.query, request.query.getall)
            if body:
                parsed = self._parse_http_body(request, body)
                if not by_path:
                    if not isinstance(parsed, dict) or not isinstance(parsed.get("method"), str):
                        raise DeribitError(ERR_INVALID_REQUEST, "Invalid Request")
                    req_id = parsed.get("id")
                    include_id = "id" in parsed
                    method = parsed["method"]
                    parsed = parsed.get("params", {})
                if parsed is None:
                    parsed = {}
                if not isinstance(parsed, dict):
                    raise DeribitError(ERR_INVALID_ARGUMENTS, "Invalid params")
                params.update(parsed)
            elif not by_path:
                raise DeribitError(ERR_INVALID_REQUEST, "Invalid Request")
            assert method is not None
            account: Account | None = None
            if method.startswith("private/") and "access_token" not in params:
                account = self.auth.http_account(
                    request.headers.get("Authorization"), request.method, request.raw_path, body
                )
            ctx = CallContext("http", account, request.remote or "?")
            result = await self.call(method, params, ctx)
            payload = self._envelope(req_id, us_in, t0, result=result, include_id=include_id)
            return web.Response(text=dumps(payload), content_type="application/json")
        except DeribitError as exc:
            self.counters.errors[exc.code] += 1
            status = (
                401
                if exc.code in _AUTH_CODES
                else 429
                if exc.code == ERR_TOO_MANY_REQUESTS
                else 400
            )
            payload = self._envelope(req_id, us_in, t0, error=exc, include_id=include_id)
            return web.Response(status=status, text=dumps(payload), content_type="application/json")
        except TerminateSessionError as exc:  # pragma: no cover - only raised for sessions
            payload = self._envelope(req_id, us_in, t0, error=exc.error, include_id=include_id)
            return web.Response(status=429, text=dumps(payload), content_type="application/json")
        except HttpFaultError as exc:
            return web.Response(
                status=exc.status, text=f"{exc.status} simulated upstream failure\n"
            )
        except NoReplyError as exc:
            return await self._http_no_reply(request, exc)

    @staticmethod
    def _parse_http_body(request: web.Request, body: str) -> Any:
        ctype = request.content_type
        if ctype == "application/x-www-form-urlencoded":
            from urllib.parse import parse_qsl

            pairs = parse_qsl(body, keep_blank_values=True)
            return {k: coerce_param(k, v) for k, v in pairs}
        try:
            return _loads(body)
        except _JSON_ERRORS:
            raise DeribitError(ERR_PARSE_ERROR, "Parse error") from None

    async def _http_no_reply(self, request: web.Request, exc: NoReplyError) -> web.StreamResponse:
        transport = request.transport
        if exc.mode == "close" or transport is None:
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the request quietly
        deadline = time.monotonic() + exc.hold_s
        while time.monotonic() < deadline:
            t = request.transport
            if t is None or t.is_closing():
                break
            await asyncio.sleep(0.05)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError

    # ------------------------------------------------------------------ WebSocket
    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = WsSession(self, next(self._conn_ids), ws, request)
        self.sessions[session.conn_id] = session
        self.counters.ws_connections += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._ws_message(session, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._ws_message(session, msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.ERROR:
                    break
                if session.closed:
                    break
        finally:
            self._ws_closed(session)
        return ws

    async def _ws_message(self, session: WsSession, text: str) -> None:
        t0 = time.perf_counter()
        us_in = self._now_us()
        req_id: Any = None
        try:
            try:
                msg = _loads(text)
            except _JSON_ERRORS:
                raise DeribitError(ERR_PARSE_ERROR, "Parse error") from None
            if not isinstance(msg, dict):
                raise DeribitError(ERR_INVALID_REQUEST, "Invalid Request")
            req_id = msg.get("id")
            method = msg.get("method")
            if method is None and ("result" in msg or "error" in msg):
                return  # a client's reply to something we sent; nothing to do
            if not isinstance(method, str):
                raise DeribitError(ERR_INVALID_REQUEST, "Invalid Request")
            params = msg.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise DeribitError(ERR_INVALID_ARGUMENTS, "Invalid params")
            if method == "heartbeat":
                return
            ctx = CallContext("ws", session.account, session.remote, session)
            result = await self.call(method, dict(params), ctx)
            session.send_text(dumps(self._envelope(req_id, us_in, t0, result=result)))
            for fn in ctx.after_reply:
                fn()
        except DeribitError as exc:
            self.counters.errors[exc.code] += 1
            session.send_text(dumps(self._envelope(req_id, us_in, t0, error=exc)))
        except TerminateSessionError as exc:
            self.counters.errors[exc.error.code] += 1
            session.send_text(dumps(self._envelope(req_id, us_in, t0, error=exc.error)))
            await session.close()
        except NoReplyError as exc:
            if exc.mode == "close":
                session.abort()
            elif exc.mode == "logout":
                await session.close()

    def _ws_closed(self, session: WsSession) -> None:
        session.stop_tasks()
        self.hub.remove_all(session)
        self.sessions.pop(session.conn_id, None)
        if session.logged_out or not session.cod_enabled or session.account is None:
            return
        self._cancel_on_disconnect(session)

    def _cancel_on_disconnect(self, session: WsSession) -> None:
        account = session.account
        assert account is not None
        try:
            if self.cod_cancels == "account":
                n = self.engine.cancel_all_for_account(account.account_id)
            else:
                n = 0
                for oid in sorted(session.cod_orders):
                    try:
                        self.engine.dispatch("private/cancel", {"order_id": oid}, account)
                        n += 1
                    except DeribitError:
                        pass  # filled or cancelled already
        except Exception:
            self.counters.internal_errors += 1
            log.exception("sim_cancel_on_disconnect_failed", conn_id=session.conn_id)
            return
        self.counters.cod_cancelled_orders += n
        log.info("sim_cancel_on_disconnect", conn_id=session.conn_id, cancelled=n)


def _invalid(param: str, reason: str) -> DeribitError:
    return DeribitError(ERR_INVALID_ARGUMENTS, "Invalid params", {"reason": reason, "param": param})


def _channels_param(params: Mapping[str, Any]) -> list[str]:
    channels = params.get("channels")
    if isinstance(channels, str):
        channels = [channels]
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) for c in channels)
    ):
        raise _invalid(
            "channels", "value required" if channels is None else "must be a list of strings"
        )
    return channels
