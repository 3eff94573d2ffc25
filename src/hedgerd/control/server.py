"""The control API: HTTP over a Unix socket (owner-only), and optionally over TCP on 127.0.0.1
with a bearer token. Both surfaces call the same `ControlCommands`.

Two locks on the Unix socket: the file is created 0600 inside a 0700 directory, and every
request's peer uid (SO_PEERCRED) must be in `allowed_uids` (default: our own uid and root).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from hedgerd.control.commands import Caller, CommandRefusedError, ControlCommands

log = structlog.get_logger(__name__)

_CALLER_KEY = web.RequestKey("caller", Caller)
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlServerError(Exception):
    """The control API cannot start (unsafe settings, socket in use)."""


class EventHub:
    """Fan-out of audit events to `events --follow` clients; slow clients lose old events
    rather than growing memory."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._max_queue = max_queue

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._max_queue)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


def _peer_caller(request: web.Request) -> Caller:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return Caller(surface="tcp")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _gid = _PEERCRED.unpack(raw)
    return Caller(surface="unix", uid=uid, pid=pid)


def _unix_guard(allowed_uids: frozenset[int]) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        caller = _peer_caller(request)
        if caller.uid not in allowed_uids:
            log.warning("control_refused", reason="peer uid not allowed", uid=caller.uid)
            return web.json_response({"error": "forbidden"}, status=403)
        request[_CALLER_KEY] = caller
        return await handler(request)

    return guard


def _token_guard(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        # Constant time: the comparison must not reveal how much of the token matched.
        if not hmac.compare_digest(given, expected):
            log.warning("control_refused", reason="missing or wrong token", peer=request.remote)
            return web.json_response({"error": "unauthorized"}, status=401)
        request[_CALLER_KEY] = Caller(surface="tcp")
        return await handler(request)

    return guard


def _routes(commands: ControlCommands, hub: EventHub) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    def publish(event: dict[str, Any]) -> None:
        # Stamped like the journal's entries, so `events --follow` can show when.
        hub.publish({**event, "ts_ms": commands.clock_ms()})

    async def body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except json.JSONDecodeError:
            raise CommandRefusedError("request body is not JSON") from None
        if not isinstance(data, dict):
            raise CommandRefusedError("request body must be a JSON object")
        return data

    @routes.get("/v1/status")
    async def status(request: web.Request) -> web.StreamResponse:
        return web.json_response(await commands.status())

    def venue_of(data: dict[str, Any]) -> dict[str, str]:
        """`{"venue": NAME}` when the body names one venue account (else empty)."""
        venue = data.get("venue")
        if venue is None:
            return {}
        if not isinstance(venue, str) or not venue:
            raise CommandRefusedError("venue must be a venue account's name")
        return {"venue": venue}

    @routes.post("/v1/halt")
    async def halt(request: web.Request) -> web.StreamResponse:
        data = await body(request)
        reason = str(data.get("reason") or "operator halt")[:200]
        where = venue_of(data)
        result = await commands.halt(reason, request[_CALLER_KEY], **where)
        publish({"event": "halt", "reason": reason, **where})
        return web.json_response(result)

    @routes.post("/v1/resume")
    async def resume(request: web.Request) -> web.StreamResponse:
        where = venue_of(await body(request))
        result = await commands.resume(request[_CALLER_KEY], **where)
        publish({"event": "resume", **where})
        return web.json_response(result)

    @routes.post("/v1/reduce-only")
    async def reduce_only(request: web.Request) -> web.StreamResponse:
        where = venue_of(await body(request))
        result = await commands.reduce_only(request[_CALLER_KEY], **where)
        publish({"event": "reduce-only", **where})
        return web.json_response(result)

    @routes.post("/v1/cancel-all")
    async def cancel_all(request: web.Request) -> web.StreamResponse:
        where = venue_of(await body(request))
        result = await commands.cancel_all(request[_CALLER_KEY], **where)
        publish({"event": "cancel-all", **where, **result})
        return web.json_response(result)

    @routes.post("/v1/handoff")
    async def handoff(request: web.Request) -> web.StreamResponse:
        result = await commands.hand_off(request[_CALLER_KEY])
        publish({"event": "handoff", **result})
        return web.json_response(result)

    @routes.post("/v1/reconcile")
    async def reconcile(request: web.Request) -> web.StreamResponse:
        result = await commands.reconcile(request[_CALLER_KEY])
        publish({"event": "reconcile"})
        return web.json_response(result)

    @routes.post("/v1/flatten")
    async def flatten(request: web.Request) -> web.StreamResponse:
        data = await body(request)
        underlying = data.get("underlying")
        if underlying is not None and not isinstance(underlying, str):
            raise CommandRefusedError("underlying must be a string")
        where = venue_of(data)
        result = await commands.flatten(
            underlying, data.get("confirm") is True, request[_CALLER_KEY], **where
        )
        publish({"event": "flatten", "underlying": underlying, **where})
        return web.json_response(result)

    @routes.post("/v1/set")
    async def set_param(request: web.Request) -> web.StreamResponse:
        data = await body(request)
        key, value = data.get("key"), data.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            raise CommandRefusedError("set needs string 'key' and 'value'")
        result = await commands.set(key, value, request[_CALLER_KEY])
        publish({"event": "set", "key": key})
        return web.json_response(result)

    @routes.get("/v1/events")
    async def events(request: web.Request) -> web.StreamResponse:
        try:
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            raise CommandRefusedError("limit must be an integer") from None
        recent = [dict(e) for e in await commands.events(limit)]
        if request.query.get("follow") not in ("1", "true"):
            return web.json_response(recent)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        with hub.subscribe() as queue:
            for event in recent:
                await resp.write((json.dumps(event, default=str) + "\n").encode())
            while True:
                event = await queue.get()
                await resp.write((json.dumps(event, default=str) + "\n").encode())

    return routes


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CommandRefusedError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("control_command_failed", path=request.path)
        return web.json_response({"error": "internal error; see the daemon log"}, status=500)


@dataclass
class ControlServer:
    socket_path: Path
    tcp_port: int | None
    hub: EventHub


def _prepare_socket_path(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ControlServerError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale socket of a process that is gone
        else:
            raise ControlServerError(f"{path} is in use: is another hedgerd running?")
        finally:
            probe.close()


@contextlib.asynccontextmanager
async def serve_control(
    commands: ControlCommands,
    socket_path: Path,
    tcp_port: int | None = None,
    token: str | None = None,
    allowed_uids: Iterable[int] | None = None,
    hub: EventHub | None = None,
) -> AsyncIterator[ControlServer]:
    """Serve the control API until the context exits. `tcp_port=0` picks a free port."""
    if tcp_port is not None and not token:
        raise ControlServerError("the TCP control listener needs a token; refusing to start it")
    hub = hub or EventHub()
    uids = frozenset(allowed_uids) if allowed_uids is not None else frozenset({os.getuid(), 0})
    routes = _routes(commands, hub)
    unix_app = web.Application(middlewares=[_unix_guard(uids), _errors])
    unix_app.add_routes(routes)
    runners: list[web.AppRunner] = []
    unix_runner = web.AppRunner(unix_app, access_log=None, handle_signals=False)
    await unix_runner.setup()
    runners.append(unix_runner)
    bound_port: int | None = None
    try:
        _prepare_socket_path(socket_path)
        # umask at bind time so the socket never exists with looser permissions.
        old_umask = os.umask(0o177)
        try:
            site = web.UnixSite(unix_runner, str(socket_path))
            await site.start()
        finally:
            os.umask(old_umask)
        os.chmod(socket_path, 0o600)
        if tcp_port is not None and token:
            tcp_app = web.Application(middlewares=[_token_guard(token), _errors])
            tcp_app.add_routes(routes)
            tcp_runner = web.AppRunner(tcp_app, access_log=None, handle_signals=False)
            await tcp_runner.setup()
            runners.append(tcp_runner)
            tcp_site = web.TCPSite(tcp_runner, "127.0.0.1", tcp_port)
            await tcp_site.start()
            server = tcp_site._server
            assert isinstance(server, asyncio.base_events.Server)
            bound_port = int(server.sockets[0].getsockname()[1])
        log.info("control_listening", socket=str(socket_path), tcp_port=bound_port)
        yield ControlServer(socket_path=socket_path, tcp_port=bound_port, hub=hub)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        # Removing a socket file is a metadata-only call: not worth a thread hop.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
