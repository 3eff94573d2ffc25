"""A generic venue adapter over ccxt: `ccxt.async_support` for REST, `ccxt.pro` for streams.

What lives here is venue-neutral ccxt plumbing:

- `instrument_from_market`: a ccxt market dict → `Instrument` (contract size and its unit,
  inverse or linear, min amount, step, tick, fees, expiry, strike).
- `classify_error`: ccxt's exception hierarchy → `ErrorClass` (retryable, definitive,
  rate-limited, auth), with venue error codes where ccxt's mapping is too coarse.
- `configure_endpoints`: testnet through `set_sandbox_mode`, or a URL override that sets REST
  and WebSocket together (never leaving a production URL in place).
- `LaneLimiter`: rate limits declared as data (`RateLimit`) and enforced per lane with
  asyncio-throttle. ccxt's own limiter (`enableRateLimit`) is switched off: it is one leaky
  bucket per client, so a kill-switch cancel would queue behind reads, and two limiters in
  series only add latency.
- `Backoff`: capped exponential reconnect delays.
- `CcxtVenue`: the adapter, with hooks a venue package (`deribit/`, `okx/`) overrides.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import structlog
from asyncio_throttle.throttler import Throttler
from ccxt.async_support.base.ws.client import Client as WsClient

from hedgerd.config import VenueSettings
from hedgerd.model import (
    AmountUnit,
    Instrument,
    InstrumentKind,
    OptionType,
    PriceUnit,
)
from hedgerd.venues.base import (
    ConnectionEvent,
    ConnectionState,
    ErrorClass,
    Lane,
    RateLimit,
    RejectReason,
    VenueError,
    VenueErrorCode,
    VenueEvent,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

# ------------------------------------------------------------------------ normalisation


def instrument_from_market(venue: str, market: Mapping[str, Any]) -> Instrument | None:
    """A ccxt market dict → `Instrument`, or None for what hedgerd does not trade (combos,
    markets without a base/quote, non-positive sizes).

    Amount convention (Deribit's, and ccxt's `contracts` for it): inverse futures and
    perpetuals are sized in USD in multiples of `contractSize`; options, linear contracts and
    spot in coin. The step is ccxt's `precision.amount` (Deribit: `min_trade_amount`), the tick
    `precision.price` (TICK_SIZE precision mode).
    """
    info: Mapping[str, Any] = market.get("info") or {}
    kind_raw = str(info.get("kind", market.get("type", "")))
    if "combo" in kind_raw:
        return None
    base = market.get("base")
    quote = market.get("quote")
    if not base or not quote:
        return None
    mtype = market.get("type")
    if market.get("option"):
        kind = InstrumentKind.OPTION
    elif market.get("swap"):
        kind = InstrumentKind.PERPETUAL
    elif market.get("future"):
        kind = InstrumentKind.FUTURE
    elif market.get("spot") or mtype == "spot":
        kind = InstrumentKind.SPOT
    else:
        return None
    inverse = bool(market.get("inverse")) and kind is not InstrumentKind.SPOT
    settle = str(market.get("settle") or quote)
    if kind is InstrumentKind.OPTION:
        amount_unit = AmountUnit.COIN
        # Inverse options quote their premium in the coin they settle in.
        price_unit = PriceUnit.COIN if inverse else PriceUnit.USD
    elif inverse:
        amount_unit = AmountUnit.USD
        price_unit = PriceUnit.USD
    else:
        amount_unit = AmountUnit.COIN
        price_unit = PriceUnit.USD
    precision = market.get("precision") or {}
    limits = (market.get("limits") or {}).get("amount") or {}
    min_amount = _positive(limits.get("min")) or _positive(precision.get("amount"))
    step = _positive(precision.get("amount")) or min_amount
    tick = _positive(precision.get("price"))
    contract_size = _positive(market.get("contractSize")) or 1.0
    if min_amount is None or step is None or tick is None:
        return None
    expiry_ms = (
        market.get("expiry") if kind in (InstrumentKind.OPTION, InstrumentKind.FUTURE) else None
    )
    option_type: OptionType | None = None
    strike: float | None = None
    if kind is InstrumentKind.OPTION:
        ot = market.get("optionType")
        option_type = OptionType.CALL if ot == "call" else OptionType.PUT if ot == "put" else None
        strike = _positive(market.get("strike"))
    try:
        return Instrument(
            venue=venue,
            name=str(market["id"]),
            kind=kind,
            underlying=str(base),
            quote_currency=str(quote),
            settlement_currency=settle,
            inverse=inverse,
            contract_size=contract_size,
            amount_unit=amount_unit,
            min_amount=min_amount,
            amount_step=step,
            tick_size=tick,
            price_unit=price_unit,
            maker_fee=float(market.get("maker") or 0.0),
            taker_fee=float(market.get("taker") or 0.0),
            expiry_ms=int(expiry_ms) if expiry_ms is not None else None,
            strike_usd=strike,
            option_type=option_type,
        )
    except ValueError as exc:
        log.warning("venue.market_skipped", venue=venue, market=market.get("id"), error=str(exc))
        return None


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


# ------------------------------------------------------------------ error classification

#: Error-code tables by ccxt exchange id, filled by each venue package (`venues/deribit/`,
#: `venues/okx/`) when it is imported: the codes whose meaning ccxt's exception mapping blurs,
#: and hedgerd's neutral reject reasons. Shared code never names a venue's codes.
ERROR_CODES: dict[str, Mapping[int, VenueErrorCode]] = {}
_CODE_RE = re.compile(r'"code"\s*:\s*"?(-?\d+)"?')
# OKX: a per-order failure code inside `data[]` (its top-level code is then "1" or "2").
_SCODE_RE = re.compile(r'"sCode"\s*:\s*"?(-?\d+)"?')


def venue_error_code(exc: BaseException) -> int | None:
    """The venue's numeric error code inside a ccxt exception message, if any: a JSON
    number or numeric string under `code` (Deribit, OKX), or first a non-zero OKX `sCode`
    (the per-order code under a batch-level `"code":"1"`)."""
    text = str(exc)
    for s in _SCODE_RE.finditer(text):
        if int(s.group(1)) != 0:
            return int(s.group(1))
    m = _CODE_RE.search(text)
    return int(m.group(1)) if m else None


def classify_error(
    exc: BaseException,
    venue: str,
    *,
    mutating: bool = False,
    codes: Mapping[int, VenueErrorCode] | None = None,
) -> VenueError:
    """Map an exception from a ccxt call to a classified `VenueError`.

    `codes`: the venue's error-code table (default: `ERROR_CODES[venue]`, the table its
    package registered). `mutating` marks a state-changing request (place, cancel): a
    network failure after sending leaves its outcome unknown (`VenueError.outcome_unknown`).
    """
    if isinstance(exc, VenueError):
        return exc
    code = venue_error_code(exc)
    table = ERROR_CODES.get(venue, {}) if codes is None else codes
    mapped = table.get(code) if code is not None else None
    by_code = mapped.error_class if mapped is not None else None
    cls: ErrorClass
    if by_code is not None:
        cls = by_code
    elif isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        cls = ErrorClass.RATE_LIMITED
    elif isinstance(exc, ccxt.AuthenticationError):  # includes PermissionDenied
        cls = ErrorClass.AUTH
    elif isinstance(exc, ccxt.NetworkError | ccxt.BadResponse | ccxt.CancelPending | TimeoutError):
        cls = ErrorClass.RETRYABLE
    elif isinstance(exc, ccxt.ExchangeError):
        cls = ErrorClass.DEFINITIVE
    elif isinstance(exc, OSError | ConnectionError):
        cls = ErrorClass.RETRYABLE
    else:
        cls = ErrorClass.DEFINITIVE
    # A request that may have reached the venue: network trouble, not an explicit answer.
    unknown = mutating and cls is ErrorClass.RETRYABLE and by_code is None
    return VenueError(
        f"{venue}: {type(exc).__name__}: {exc}",
        error_class=cls,
        venue=venue,
        code=code,
        outcome_unknown=unknown,
        reason=mapped.reason if mapped is not None else _default_reason(exc, cls),
    )


def _default_reason(exc: BaseException, cls: ErrorClass) -> RejectReason | None:
    """The neutral reason ccxt's own exception class implies, for unmapped codes."""
    if cls is ErrorClass.RATE_LIMITED:
        return RejectReason.RATE_LIMITED
    if cls is ErrorClass.AUTH:
        return RejectReason.AUTH
    if isinstance(exc, ccxt.InsufficientFunds):
        return RejectReason.INSUFFICIENT_FUNDS
    if isinstance(exc, ccxt.OrderNotFound):
        return RejectReason.ORDER_NOT_FOUND
    if isinstance(exc, ccxt.BadSymbol):
        return RejectReason.UNKNOWN_INSTRUMENT
    if isinstance(exc, ccxt.InvalidOrder):
        return RejectReason.INVALID_ORDER
    return None


# ----------------------------------------------------------------------------- endpoints


def configure_endpoints(exchange: Any, mode: str, rest_url: str | None, ws_url: str | None) -> None:
    """Point a ccxt client at the right environment.

    - URL override (the simulator): `urls['api']` is replaced by exactly `{'rest', 'ws'}`,
      so no production URL is left behind, and `set_sandbox_mode` is never called afterwards
      (it would swap the override for `urls['test']` wholesale).
    - `testnet`: `set_sandbox_mode(True)`.
    - `live`: ccxt's production URLs, untouched.
    """
    if rest_url is not None or ws_url is not None:
        if rest_url is None or ws_url is None:
            raise ValueError("rest_url and ws_url must be overridden together")
        if mode == "live":
            raise ValueError("mode 'live' cannot use URL overrides")
        exchange.urls["api"] = {"rest": rest_url.rstrip("/"), "ws": ws_url}
        if not _tls(rest_url) and not _tls(ws_url):
            # ccxt's `close` sleeps this long (250 ms) so TLS transports can finish closing;
            # plain TCP (the simulator on 127.0.0.1) has nothing to wait for.
            exchange.timeout_on_exit = 0
        return
    if mode == "testnet":
        exchange.set_sandbox_mode(True)
        return
    if mode == "sim":
        raise ValueError("mode 'sim' needs rest_url and ws_url (the simulator's address)")


def _tls(url: str) -> bool:
    return url.startswith(("https://", "wss://"))


# ---------------------------------------------------------------------------- rate limits

#: Declared limits per ccxt exchange id, filled by each venue package when it is imported
#: (`venues/deribit/limits.py`, `venues/okx/limits.py`); others get `DEFAULT_RATE_LIMITS`.
RATE_LIMITS: dict[str, tuple[RateLimit, ...]] = {}
DEFAULT_RATE_LIMITS = (
    RateLimit(Lane.ORDERS, 5, 1.0),
    RateLimit(Lane.CANCELS, 5, 1.0),
    RateLimit(Lane.READS, 10, 1.0),
)


class LaneLimiter:
    """One sliding-window throttle per lane: waiting in one lane never delays another."""

    def __init__(self, limits: Iterable[RateLimit]) -> None:
        self.limits: dict[Lane, RateLimit] = {}
        # asyncio-throttle is untyped: keep its objects behind Any.
        self._throttlers: dict[Lane, Any] = {}
        for rl in limits:
            self.limits[rl.lane] = rl
            self._throttlers[rl.lane] = Throttler(
                rate_limit=rl.limit, period=rl.interval_s, retry_interval=0.005
            )
        for lane in Lane:
            if lane not in self._throttlers:
                raise ValueError(f"no rate limit declared for lane {lane}")

    async def acquire(self, lane: Lane) -> None:
        """Wait until one more request fits in `lane`'s window."""
        await self._throttlers[lane].acquire()


# ------------------------------------------------------------------------------ backoff


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff: attempt n (0-based) waits min(max_s, initial_s*factor**n)."""

    initial_s: float = 0.1
    max_s: float = 10.0
    factor: float = 2.0

    def delay_s(self, attempt: int) -> float:
        return float(min(self.max_s, self.initial_s * self.factor ** max(0, attempt)))


# ------------------------------------------------------------------ guarded ws client


class _GuardedClient(WsClient):  # type: ignore[misc]  # ccxt is untyped
    """ccxt's WebSocket client, except that a frame it cannot handle is dropped (logged and
    counted), not fatal. ccxt decodes (orjson) and dispatches each frame inside a done
    callback of its receive task; an exception there (a NaN literal, truncated JSON, a
    JSON-RPC error the exchange class raises on) skips rescheduling the receive loop, and
    the stream then stops for good with the socket still open and no error to any waiter.

    A JSON-RPC error reply (an `error` answering a request `id`: on a market socket, a
    subscription the venue refused) also fails every pending watch with that error: the
    waiter learns at once that its data will not come, instead of from the silence."""

    on_dropped: Callable[[BaseException], None] | None = None

    def handle_text_or_binary_message(self, data: Any) -> None:
        try:
            super().handle_text_or_binary_message(data)
        except Exception as exc:
            if self.on_dropped is not None:
                self.on_dropped(exc)
            if _is_error_reply(data):
                self.reject(exc)


def _is_error_reply(data: Any) -> bool:
    """A JSON-RPC error reply: an object with `error` and the `id` of a request."""
    try:
        frame = json.loads(data)
    except (TypeError, ValueError):
        return False
    return isinstance(frame, dict) and "error" in frame and frame.get("id") is not None


def guarded_ws_exchange(exchange_id: str) -> type[Any]:
    """The ccxt.pro exchange class of `exchange_id`, subclassed so that every WebSocket
    client it opens drops undecodable or unhandled frames instead of dying on them (see
    `_GuardedClient`). Only instances of this subclass are affected: ccxt's globals are
    left alone. Its instances count dropped frames in `dropped_frames`."""
    base: type[Any] = getattr(ccxt_pro, exchange_id)

    def client(self: Any, url: str) -> Any:
        c = base.client(self, url)
        if type(c) is WsClient:  # a fresh client: same state, guarded dispatch
            c.__class__ = _GuardedClient
            c.on_dropped = functools.partial(_frame_dropped, self, url)
        return c

    return type(f"Guarded{base.__name__}", (base,), {"client": client, "dropped_frames": 0})


def _frame_dropped(exchange: Any, url: str, exc: BaseException) -> None:
    exchange.dropped_frames += 1
    # The frame itself is not logged: on a private client it may carry an access token.
    log.warning(
        "venue.ws_frame_dropped",
        exchange=exchange.id,
        url=url,
        error_type=type(exc).__name__,
        error=str(exc)[:200],
        dropped=exchange.dropped_frames,
    )


# -------------------------------------------------------------------------------- adapter


def now_ms() -> int:
    """Wall clock, UTC epoch milliseconds (venues are the edge: they may read the clock)."""
    return int(time.time() * 1000)


class CcxtVenue:
    """Generic ccxt-backed venue plumbing: clients, endpoints, lanes, error mapping, the
    event queue, and supervised stream loops that reconnect with backoff.

    Venue modules subclass it (`DeribitVenue`) to add what ccxt lacks.
    """

    exchange_id: str = ""
    #: HA: the dead-man switch follows the node's role, not `connect` (`DeadManVenue`).
    dead_man_by_role: bool = False

    def __init__(
        self,
        name: str,
        settings: VenueSettings,
        *,
        clock_ms: Callable[[], int] = now_ms,
        backoff: Backoff | None = None,
    ) -> None:
        self._name = name
        self.settings = settings
        self.exchange_id = settings.exchange
        self.clock_ms = clock_ms
        self.backoff = backoff or Backoff(
            initial_s=settings.reconnect_initial_s, max_s=settings.reconnect_max_s
        )
        self.limiter = LaneLimiter(RATE_LIMITS.get(self.exchange_id, DEFAULT_RATE_LIMITS))
        config: dict[str, Any] = {
            "enableRateLimit": False,  # our LaneLimiter enforces the venue's limits per lane
            "timeout": int(settings.request_timeout_s * 1000),
        }
        creds = settings.credentials()
        if creds is not None:
            config["apiKey"] = creds[0].get_secret_value()
            config["secret"] = creds[1].get_secret_value()
        self.rest: Any = getattr(ccxt_async, self.exchange_id)(dict(config))
        self.ws: Any = self.ws_class()(dict(config))
        for client in (self.rest, self.ws):
            configure_endpoints(client, settings.mode, settings.rest_url, settings.ws_url)
        self._instruments: dict[str, Instrument] = {}
        self._symbols: dict[str, str] = {}  # venue instrument name -> ccxt symbol
        self._queue: asyncio.Queue[VenueEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def ws_class(self) -> type[Any]:
        """The ccxt.pro class of this venue's WebSocket client (a venue module may hook its
        handlers); guarded against frames it cannot handle."""
        return guarded_ws_exchange(self.exchange_id)

    # -------------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self._name

    @property
    def account(self) -> str:
        return self.settings.account

    # ------------------------------------------------------------------ instruments
    def instruments(self) -> Mapping[str, Instrument]:
        return self._instruments

    def _instrument_from_market(self, market: Mapping[str, Any]) -> Instrument | None:
        """One ccxt market as an `Instrument` (None: not one hedgerd trades); a venue whose
        ccxt markets miss what hedgerd needs reads the venue's own fields instead."""
        return instrument_from_market(self._name, market)

    async def reload_instruments(self) -> Mapping[str, Instrument]:
        """Load markets through ccxt (REST) and normalise them; the WS client shares them."""
        markets = await self.call(Lane.READS, lambda: self.rest.load_markets(True))
        out: dict[str, Instrument] = {}
        symbols: dict[str, str] = {}
        for market in markets.values():
            inst = self._instrument_from_market(market)
            if inst is not None:
                out[inst.name] = inst
                symbols[inst.name] = str(market["symbol"])
        self.ws.set_markets(self.rest.markets, self.rest.currencies)
        self._instruments = out
        self._symbols = symbols
        log.info("venue.instruments_loaded", venue=self._name, count=len(out))
        return out

    def instrument(self, name: str) -> Instrument:
        try:
            return self._instruments[name]
        except KeyError:
            raise VenueError(
                f"{self._name}: unknown instrument {name!r}",
                error_class=ErrorClass.DEFINITIVE,
                venue=self._name,
            ) from None

    def symbol(self, name: str) -> str:
        self.instrument(name)
        return self._symbols[name]

    # ------------------------------------------------------------------------ calls
    async def call(
        self, lane: Lane, fn: Callable[[], Awaitable[T]], *, mutating: bool = False
    ) -> T:
        """Run one ccxt call in `lane` (rate-limited there), mapping failures to VenueError."""
        await self.limiter.acquire(lane)
        try:
            return await fn()
        except (TimeoutError, ccxt.BaseError, OSError) as exc:
            err = classify_error(exc, self.exchange_id, mutating=mutating)
            log.warning(
                "venue.call_failed",
                venue=self._name,
                lane=str(lane),
                error_class=str(err.error_class),
                code=err.code,
                outcome_unknown=err.outcome_unknown,
                error=str(exc)[:300],
            )
            raise err from exc

    # ----------------------------------------------------------------------- events
    def emit(self, event: VenueEvent) -> None:
        self._queue.put_nowait(event)

    async def events(self) -> AsyncIterator[VenueEvent]:
        while True:
            yield await self._queue.get()

    def pending_events(self) -> int:
        return self._queue.qsize()

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run(), name=f"{self._name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def supervise(
        self,
        session: str,
        step: Callable[[], Awaitable[None]],
        on_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run `step` forever; on a retryable failure emit DISCONNECTED, back off, call
        `on_connect` (resubscribe), emit RECONNECTED and go on. Auth failures stop the loop."""
        attempt = 0
        connected = False
        ever = False
        while not self._closed:
            try:
                if not connected:
                    if on_connect is not None:
                        await on_connect()
                    self.emit(
                        ConnectionEvent(
                            self._name,
                            self.account,
                            session,
                            ConnectionState.RECONNECTED if ever else ConnectionState.CONNECTED,
                            self.clock_ms(),
                        )
                    )
                    connected = ever = True
                await step()
                # The backoff resets on a step that worked, not on a connect: a stream that
                # connects and then fails at once every time must keep backing off (else it
                # reconnects every 0.2 s, each reconnect a full resync of the book).
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = classify_error(exc, self.exchange_id)
                if err.error_class is ErrorClass.AUTH or self._closed:
                    log.error(
                        "venue.stream_stopped",
                        venue=self._name,
                        session=session,
                        error=str(exc)[:300],
                    )
                    self.emit(
                        ConnectionEvent(
                            self._name,
                            self.account,
                            session,
                            ConnectionState.DISCONNECTED,
                            self.clock_ms(),
                            reason=str(err),
                        )
                    )
                    return
                if connected:
                    self.emit(
                        ConnectionEvent(
                            self._name,
                            self.account,
                            session,
                            ConnectionState.DISCONNECTED,
                            self.clock_ms(),
                            reason=str(err)[:200],
                        )
                    )
                connected = False
                delay = self.backoff.delay_s(attempt)
                attempt += 1
                log.warning(
                    "venue.stream_reconnecting",
                    venue=self._name,
                    session=session,
                    attempt=attempt,
                    delay_s=delay,
                    error=str(exc)[:200],
                )
                await asyncio.sleep(delay)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Both at once: each may wait out ccxt's `timeout_on_exit` (TLS endpoints).
        await asyncio.gather(self.rest.close(), self.ws.close(), return_exceptions=True)


__all__ = [
    "DEFAULT_RATE_LIMITS",
    "ERROR_CODES",
    "RATE_LIMITS",
    "Backoff",
    "CcxtVenue",
    "LaneLimiter",
    "classify_error",
    "configure_endpoints",
    "guarded_ws_exchange",
    "instrument_from_market",
    "venue_error_code",
]
