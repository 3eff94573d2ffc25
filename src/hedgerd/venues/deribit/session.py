"""A Deribit JSON-RPC WebSocket session: auth, heartbeat, cancel-on-disconnect,
subscriptions, reconnect with backoff.

ccxt.pro cannot carry hedgerd's private streams on Deribit: it raises NotSupported on
`user.changes` and ignores `test_request` heartbeats, so this thin session does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
import structlog

from hedgerd.venues.base import (
    ConnectionState,
    ErrorClass,
    VenueError,
    VenueModeMismatchError,
)
from hedgerd.venues.ccxt_venue import Backoff, now_ms
from hedgerd.venues.deribit.errors import CODES
from hedgerd.venues.deribit.payloads import BadPayloadError

log = structlog.get_logger(__name__)


# ---------------------------------------------------------------------------- session


class SessionClosedError(Exception):
    """The WebSocket closed (or never opened) while a call waited for its answer."""


class DeribitSession:
    """One authenticated JSON-RPC WebSocket session with heartbeat, cancel-on-disconnect,
    subscriptions, and reconnect with backoff (resubscribing every time).

    `on_message(channel, data)` gets every subscription notification; `on_state(state,
    reason)` every connect / disconnect / reconnect. The owner takes a fresh snapshot after
    each reconnect: what happened while disconnected is not replayed by the venue.
    """

    def __init__(
        self,
        *,
        name: str,
        ws_url: str,
        api_key: str,
        api_secret: str,
        channels: Sequence[str],
        on_message: Callable[[str, Any], None],
        on_state: Callable[[ConnectionState, str], None],
        heartbeat_s: int = 10,
        cancel_on_disconnect: bool = True,
        cod_scope: str = "account",
        backoff: Backoff | None = None,
        call_timeout_s: float = 10.0,
        check_testnet: Callable[[Any], None] | None = None,
    ) -> None:
        self.name = name
        self.ws_url = ws_url
        self._key = api_key
        self._secret = api_secret
        self.channels = tuple(channels)
        self._on_message = on_message
        self._on_state = on_state
        self.heartbeat_s = heartbeat_s
        self.cancel_on_disconnect = cancel_on_disconnect
        #: Deribit's COD scope: "account" (every order of the account) or "connection"
        #: (the orders created through this session: what an HA node uses, so that one
        #: node's disconnect never cancels the other's orders).
        self.cod_scope = cod_scope
        self.backoff = backoff or Backoff()
        self.call_timeout_s = call_timeout_s
        self._check_testnet = check_testnet
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self.connected = asyncio.Event()
        self.connects = 0
        self.heartbeats_answered = 0
        #: Frames dropped unread (not JSON, not a JSON-RPC object, malformed params) and
        #: notifications whose handler raised: logged, counted, never fatal to the session.
        self.bad_frames = 0
        self.failed_notifications = 0
        self.fatal: BaseException | None = None

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send one JSON-RPC request on the live socket and wait (bounded) for its result.

        Raises VenueError (classified) for a JSON-RPC error, SessionClosedError if the socket
        drops first."""
        ws = self._ws
        if ws is None or ws.closed:
            raise SessionClosedError(f"{self.name}: not connected")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            await ws.send_str(
                json.dumps(
                    {"jsonrpc": "2.0", "id": req_id, "method": method, "params": dict(params or {})}
                )
            )
            async with asyncio.timeout(self.call_timeout_s):
                return await fut
        finally:
            self._pending.pop(req_id, None)

    async def run(self) -> None:
        """Connect and stay connected until `close()`; reconnect with backoff."""
        attempt = 0
        ever = False
        self._http = aiohttp.ClientSession()
        try:
            while not self._closed:
                reason = ""
                try:
                    async with self._http.ws_connect(self.ws_url, autoping=True) as ws:
                        self._ws = ws
                        reader = asyncio.create_task(self._read(ws))
                        try:
                            await self._setup()
                            self.connects += 1
                            attempt = 0
                            self.connected.set()
                            self._on_state(
                                ConnectionState.RECONNECTED if ever else ConnectionState.CONNECTED,
                                "",
                            )
                            ever = True
                            await reader
                            reason = "socket closed"
                        finally:
                            reader.cancel()
                            with contextlib.suppress(asyncio.CancelledError, Exception):
                                await reader
                except asyncio.CancelledError:
                    raise
                except VenueModeMismatchError as exc:
                    self.fatal = exc
                    log.error("deribit.session_refused", session=self.name, error=str(exc))
                    self._on_state(ConnectionState.DISCONNECTED, str(exc))
                    return
                except VenueError as exc:
                    reason = str(exc)
                    if exc.error_class is ErrorClass.AUTH:
                        self.fatal = exc
                        log.error("deribit.session_auth_failed", session=self.name, error=reason)
                        self._on_state(ConnectionState.DISCONNECTED, reason)
                        return
                except (aiohttp.ClientError, OSError, SessionClosedError, TimeoutError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                self._ws = None
                self._fail_pending()
                if self.connected.is_set():
                    self.connected.clear()
                    self._on_state(ConnectionState.DISCONNECTED, reason)
                if self._closed:
                    break
                delay = self.backoff.delay_s(attempt)
                attempt += 1
                log.warning(
                    "deribit.session_reconnecting",
                    session=self.name,
                    attempt=attempt,
                    delay_s=delay,
                    reason=reason[:200],
                )
                await asyncio.sleep(delay)
        finally:
            self._ws = None
            self._fail_pending()
            await self._http.close()

    async def _setup(self) -> None:
        ts = now_ms()
        nonce = secrets.token_hex(8)
        sig = hmac.new(
            self._secret.encode(), f"{ts}\n{nonce}\n".encode(), hashlib.sha256
        ).hexdigest()
        await self.call(
            "public/auth",
            {
                "grant_type": "client_signature",
                "client_id": self._key,
                "timestamp": ts,
                "nonce": nonce,
                "signature": sig,
                "data": "",
            },
        )
        await self.call("public/set_heartbeat", {"interval": self.heartbeat_s})
        if self.cancel_on_disconnect:
            await self.call("private/enable_cancel_on_disconnect", {"scope": self.cod_scope})
        if self.channels:
            await self.call("private/subscribe", {"channels": list(self.channels)})

    async def set_cancel_on_disconnect(self, on: bool) -> None:
        """Enable or disable cancel-on-disconnect now (when connected) and at every later
        login."""
        self.cancel_on_disconnect = on
        if self.connected.is_set():
            method = "enable" if on else "disable"
            await self.call(f"private/{method}_cancel_on_disconnect", {"scope": self.cod_scope})

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
                    continue
                try:
                    body = json.loads(msg.data)
                except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                    self._bad_frame("not JSON", msg.data)
                    continue
                if not isinstance(body, Mapping):
                    self._bad_frame("not a JSON-RPC object", msg.data)
                    continue
                self._dispatch(ws, body)
        finally:
            # Calls waiting for an answer learn now that none will come (not at timeout).
            self._fail_pending()

    def _bad_frame(self, why: str, data: Any) -> None:
        """Drop one frame the session cannot read (logged and counted, never raised: whatever
        the socket carries, the receive loop goes on)."""
        self.bad_frames += 1
        log.warning("deribit.bad_frame", session=self.name, why=why, data=str(data)[:200])

    def _dispatch(self, ws: aiohttp.ClientWebSocketResponse, body: Mapping[str, Any]) -> None:
        method = body.get("method")
        params = body.get("params")
        if method == "subscription":
            if not isinstance(params, Mapping):
                self._bad_frame("notification without params", body)
                return
            channel = params.get("channel")
            if not isinstance(channel, str) or not channel:
                self._bad_frame("notification without a channel", body)
                return
            try:
                self._on_message(channel, params.get("data"))
            except BadPayloadError as exc:  # refused by the parser: no traceback needed
                self.failed_notifications += 1
                log.warning(
                    "deribit.payload_refused", session=self.name, channel=channel, error=str(exc)
                )
            except Exception:  # a bad payload must not kill the session
                self.failed_notifications += 1
                log.exception("deribit.notification_failed", session=self.name, channel=channel)
            return
        if method == "heartbeat":
            if isinstance(params, Mapping) and params.get("type") == "test_request":
                # Answer without waiting: a missed answer closes the session (and fires
                # cancel-on-disconnect).
                self.heartbeats_answered += 1
                task = asyncio.get_running_loop().create_task(
                    ws.send_str(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": next(self._ids),
                                "method": "public/test",
                                "params": {},
                            }
                        )
                    )
                )
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            return
        req_id = body.get("id")
        # bool is an int to Python: `"id": true` must not answer request 1.
        fut = (
            self._pending.get(req_id)
            if isinstance(req_id, int) and not isinstance(req_id, bool)
            else None
        )
        if fut is None or fut.done():
            return
        if self._check_testnet is not None and "testnet" in body:
            try:
                self._check_testnet(body.get("testnet"))
            except VenueModeMismatchError as exc:
                fut.set_exception(exc)
                return
        err = body.get("error")
        if err is not None:
            code = err.get("code") if isinstance(err, Mapping) else None
            fut.set_exception(_rpc_error(self.name, err, code))
        else:
            fut.set_result(body.get("result"))

    def _fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SessionClosedError(f"{self.name}: connection lost"))
        self._pending.clear()

    async def drop(self) -> None:
        """Close the socket (tests and operators); the run loop reconnects."""
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()


def _rpc_error(name: str, err: Any, code: Any) -> VenueError:
    """A JSON-RPC error → VenueError, classified by Deribit's code table (an unmapped code is
    a definitive refusal: the venue understood and said no)."""
    ccode = int(code) if isinstance(code, int) and not isinstance(code, bool) else None
    mapped = CODES.get(ccode) if ccode is not None else None
    return VenueError(
        f"{name}: {err}",
        error_class=mapped.error_class if mapped is not None else ErrorClass.DEFINITIVE,
        venue="deribit",
        code=ccode,
        reason=mapped.reason if mapped is not None else None,
    )


__all__ = ["DeribitSession", "SessionClosedError"]
