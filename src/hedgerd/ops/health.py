"""The operations HTTP listener: `/metrics`, `/healthz` and `/readyz` on a loopback address.

- `/metrics`: Prometheus exposition (text format, or OpenMetrics when the scraper asks) from
  the `Metrics` registry.
- `/healthz` (liveness): 200 while the process answers and the event loop keeps up (the
  `LoopMonitor` measured lag under its limit); 503 otherwise. A blocked loop does not answer
  at all, which a prober sees as a timeout. Liveness never depends on venues: restarting the
  daemon does not fix an exchange outage.
- `/readyz` (readiness): 200 only when every registered check passes (venues connected, book
  fresh, journal open...), else 503 with a JSON body listing the failing checks.

The listener refuses any non-loopback address: metrics reveal positions and must not leave the
host (Prometheus in a container shares the daemon's network namespace, see deploy/).

`python -m hedgerd.ops.health [--url URL]` probes /healthz and exits 0 (healthy) or 1: the
Docker HEALTHCHECK, with nothing but the standard library at probe time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import ipaddress
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from hedgerd.config import MetricsSettings
from hedgerd.ops.metrics import Metrics

log = structlog.get_logger(__name__)

DEFAULT_PORT: Final = 9464


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one readiness check; `detail` says why it fails (or what it saw)."""

    ok: bool
    detail: str = ""


CheckOutcome = bool | CheckResult
CheckFn = Callable[[], CheckOutcome | Awaitable[CheckOutcome]]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """All checks' results at one evaluation, in registration order."""

    checks: tuple[tuple[str, CheckResult], ...]

    @property
    def ready(self) -> bool:
        return all(result.ok for _, result in self.checks)

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(name for name, result in self.checks if not result.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "failing": [
                {"check": name, "detail": result.detail}
                for name, result in self.checks
                if not result.ok
            ],
            "checks": {
                name: {"ok": result.ok, "detail": result.detail} for name, result in self.checks
            },
        }


class Readiness:
    """Named readiness checks.

    A check is either pulled (`add_check(name, fn)`: `fn` returns bool or `CheckResult`, sync
    or async, and is called at each /readyz) or pushed (`set(name, ok, detail)` records the
    latest state, e.g. "journal_open" set once at start-up). A check that raises or takes
    longer than `check_timeout_s` fails. With no check registered the daemon is ready; the
    daemon registers a "startup" flag that is False until start-up reconciliation is done.
    """

    def __init__(self, *, check_timeout_s: float = 1.0) -> None:
        self._checks: dict[str, CheckFn] = {}
        self._flags: dict[str, CheckResult] = {}
        self._timeout_s = check_timeout_s

    @property
    def names(self) -> tuple[str, ...]:
        return (*self._checks, *(n for n in self._flags if n not in self._checks))

    def add_check(self, name: str, check: CheckFn) -> None:
        """Register a pulled check. Raises ValueError if `name` is taken."""
        if name in self._checks or name in self._flags:
            raise ValueError(f"readiness check {name!r} already registered")
        self._checks[name] = check

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a pushed check's current state (registers it on first use)."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is a pulled check")
        self._flags[name] = CheckResult(ok, detail)

    def remove(self, name: str) -> None:
        """Forget a check (pulled or pushed); unknown names are ignored."""
        self._checks.pop(name, None)
        self._flags.pop(name, None)

    async def evaluate(self) -> ReadinessReport:
        """Run every pulled check (concurrently, each bounded by the timeout) and collect
        the pushed ones."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(n, self._checks[n]) for n in names))
        pulled = list(zip(names, results, strict=True))
        return ReadinessReport((*pulled, *self._flags.items()))

    async def _run(self, name: str, check: CheckFn) -> CheckResult:
        try:
            outcome = check()
            if inspect.isawaitable(outcome):
                async with asyncio.timeout(self._timeout_s):
                    outcome = await outcome
        except TimeoutError:
            return CheckResult(False, f"check timed out after {self._timeout_s} s")
        except Exception as exc:
            # The message may carry venue text: the class name is enough for a probe.
            log.warning("readiness_check_failed", check=name, error=repr(exc))
            return CheckResult(False, f"check raised {type(exc).__name__}")
        if isinstance(outcome, CheckResult):
            return outcome
        return CheckResult(bool(outcome))


class LoopMonitor:
    """Measures event-loop lag: a task sleeps `interval_s` and records how late it woke.

    `healthy()` holds while the latest lag is at most `max_lag_s` and the latest tick is
    recent (a loop blocked longer than that has not ticked). Feeds the event_loop_lag_seconds
    gauge, /healthz and the systemd watchdog. `clock` is monotonic seconds.
    """

    def __init__(
        self,
        metrics: Metrics | None = None,
        *,
        interval_s: float = 0.5,
        max_lag_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0.0 or max_lag_s <= 0.0:
            raise ValueError("interval_s and max_lag_s must be > 0")
        self._metrics = metrics
        self.interval_s = interval_s
        self.max_lag_s = max_lag_s
        self._clock = clock
        self._last_tick_s = clock()
        self.last_lag_s = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def observe(self, lag_s: float, now_s: float) -> None:
        """Record one measurement (the run loop calls this; tests drive it directly)."""
        self.last_lag_s = max(0.0, lag_s)
        self._last_tick_s = now_s
        if self._metrics is not None:
            self._metrics.set_event_loop_lag(self.last_lag_s)

    def problem(self, now_s: float | None = None) -> str | None:
        """Why the loop is unhealthy, or None when it is healthy."""
        now = self._clock() if now_s is None else now_s
        since = now - self._last_tick_s
        if since > self.interval_s + self.max_lag_s:
            return f"event loop has not ticked for {since:.3f} s"
        if self.last_lag_s > self.max_lag_s:
            return f"event loop lag {self.last_lag_s:.3f} s > {self.max_lag_s} s"
        return None

    def healthy(self, now_s: float | None = None) -> bool:
        return self.problem(now_s) is None

    async def run(self) -> None:
        """Measure forever (until cancelled)."""
        while True:
            start = self._clock()
            await asyncio.sleep(self.interval_s)
            now = self._clock()
            self.observe(now - start - self.interval_s, now)

    def start(self) -> None:
        """Start the measuring task on the running loop (idempotent)."""
        if not self.running:
            self._last_tick_s = self._clock()
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="hedgerd-loop-monitor"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def loopback_host(host: str) -> str:
    """The address to bind for `host`; raises ValueError unless it is a loopback address.
    "localhost" binds 127.0.0.1 only (one address, so port 0 gives one port)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics host {host!r}: not an IP address or 'localhost'") from None
    if not address.is_loopback:
        raise ValueError(f"metrics host {host!r}: only loopback addresses are allowed")
    return str(address)


def build_app(metrics: Metrics, readiness: Readiness, loop_monitor: LoopMonitor) -> web.Application:
    """The aiohttp application (without a listener), for embedding and tests."""

    async def metrics_handler(request: web.Request) -> web.Response:
        metrics.run_scrape_hooks()
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(metrics.registry)
        # content_type carries its own charset parameter; aiohttp wants it as a raw header.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(_: web.Request) -> web.Response:
        problem = loop_monitor.problem()
        body: dict[str, Any] = {
            "status": "ok" if problem is None else "unhealthy",
            "event_loop_lag_seconds": round(loop_monitor.last_lag_s, 6),
        }
        if problem is not None:
            body["problem"] = problem
        return web.json_response(body, status=200 if problem is None else 503)

    async def readyz(_: web.Request) -> web.Response:
        report = await readiness.evaluate()
        if not report.ready:
            log.info("readyz_not_ready", failing=list(report.failing))
        return web.json_response(report.to_json(), status=200 if report.ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@dataclass(slots=True)
class OpsServer:
    """A running ops listener. `port` is the bound port (useful with port 0)."""

    host: str
    _port: int | None
    readiness: Readiness
    loop_monitor: LoopMonitor

    @property
    def listening(self) -> bool:
        return self._port is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the ops listener is disabled (metrics.enabled = false)")
        return self._port

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve_ops(
    settings: MetricsSettings,
    metrics: Metrics,
    readiness: Readiness | None = None,
    *,
    loop_monitor: LoopMonitor | None = None,
) -> AsyncIterator[OpsServer]:
    """Serve /metrics, /healthz and /readyz on `settings.host:settings.port` for the duration
    of the block (port 0 picks a free port: read `server.port`).

    Starts `loop_monitor` (a new one if None) unless it already runs, and stops it on exit only
    if it started it. With `settings.enabled` false nothing listens (the monitor still runs,
    for the watchdog). Raises ValueError for a non-loopback host, OSError if the port is taken.
    """
    host = loopback_host(settings.host)
    readiness = readiness if readiness is not None else Readiness()
    monitor = loop_monitor if loop_monitor is not None else LoopMonitor(metrics)
    started_monitor = not monitor.running
    monitor.start()
    runner: web.AppRunner | None = None
    try:
        if not settings.enabled:
            log.info("ops_listener_disabled")
            yield OpsServer(host, None, readiness, monitor)
            return
        sock = _bind(host, settings.port)
        # A scrape in progress at shutdown gets 2 s, well inside systemd's TimeoutStopSec.
        runner = web.AppRunner(
            build_app(metrics, readiness, monitor),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            raise
        port = int(sock.getsockname()[1])
        log.info("ops_listener_started", host=host, port=port)
        yield OpsServer(host, port, readiness, monitor)
    finally:
        if runner is not None:
            await runner.cleanup()
            log.info("ops_listener_stopped")
        if started_monitor:
            await monitor.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def probe(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """GET `url` (blocking, standard library only); (True, body) on HTTP 200, else
    (False, what went wrong). For the Docker HEALTHCHECK and scripts, not the event loop."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = response.read().decode("utf-8", "replace")
            return response.status == 200, body
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"unreachable: {exc}"


def probe_main(argv: Sequence[str] | None = None) -> int:
    """`python -m hedgerd.ops.health`: exit 0 when /healthz answers 200, else 1."""
    default_port = os.environ.get("HEDGERD_METRICS__PORT", str(DEFAULT_PORT))
    parser = argparse.ArgumentParser(
        prog="python -m hedgerd.ops.health", description="Probe hedgerd's /healthz."
    )
    parser.add_argument(
        "--url",
        default=f"http://127.0.0.1:{default_port}/healthz",
        help="URL to probe (default: 127.0.0.1, port from HEDGERD_METRICS__PORT or 9464)",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    ok, detail = probe(args.url, args.timeout)
    print(json.dumps({"ok": ok, "url": args.url, "detail": detail[:500]}))
    return 0 if ok else 1


__all__ = [
    "CheckFn",
    "CheckResult",
    "LoopMonitor",
    "OpsServer",
    "Readiness",
    "ReadinessReport",
    "build_app",
    "loopback_host",
    "probe",
    "probe_main",
    "serve_ops",
]

if __name__ == "__main__":
    sys.exit(probe_main())
