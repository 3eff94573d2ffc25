"""A local HTTPS alert receiver for the webhook tests: aiohttp on 127.0.0.1 (port 0) with a
certificate from a throwaway CA (trustme) that only the test's client trusts (`ca_file`)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

HOST = "127.0.0.1"


@dataclass
class HttpsReceiver:
    """Records every POST (body, headers). `statuses` are answered in turn (then 200); while
    `hang` is set, each request is held until `release` is set (a receiver that never
    answers)."""

    url: str = ""
    ca_file: Path = Path()
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def attempts(self) -> int:
        return len(self.bodies)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        self.arrived.set()
        if self.hang:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "nope")


def write_ca(ca: trustme.CA, directory: Path) -> Path:
    path = directory / "receiver-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@contextlib.asynccontextmanager
async def https_receiver(
    directory: Path, path: str = "/services/T0/B0/hook"
) -> AsyncIterator[HttpsReceiver]:
    """An `HttpsReceiver` serving POST `path` over TLS; its CA's PEM is written to
    `directory` (`receiver.ca_file`)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_ctx)
    receiver = HttpsReceiver(ca_file=write_ca(ca, directory))
    app = web.Application()
    app.router.add_post(path, receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"https://{HOST}:{port}{path}"
    try:
        yield receiver
    finally:
        receiver.release.set()  # let held requests finish so the server stops at once
        await runner.cleanup()
