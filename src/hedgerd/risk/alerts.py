"""Alert hooks: tell someone when a kill switch trips, without ever getting in trading's way.

Targets (any combination, from `AlertSettings`):
- a command, run as an argv list (no shell) with the alert in `HEDGERD_ALERT_*` environment
  variables and a minimal environment (PATH, HOME, LANG; never the daemon's, which may hold
  API secrets), killed after `command_timeout_s`;
- a JSON POST to a webhook on 127.0.0.1, localhost or [::1] (other hosts are refused when the
  settings are validated);
- a JSON POST to an HTTP server on a Unix socket;
- an HTTPS webhook for people (`[risk.alerts.webhook]`: Slack-compatible or JSON, to an
  allow-listed host; `risk/alert_webhook.py`), delivered from a bounded queue by one task with
  retries and its own per-minute limit.

`notify` is synchronous and returns at once: delivery runs in background tasks on the running
loop. Failures (unreachable, non-2xx, timeout, non-zero exit) are logged and counted, never
raised. Alerts are rate-limited with the alert's own timestamp (no clock read): one per reason
code per `min_interval_s` (the next one carries the number suppressed meanwhile) and at most
`max_per_hour` in any hour. Every payload passes the secret redactor before it leaves.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from hedgerd.ops.logging import SecretRedactor, redactor
from hedgerd.ops.metrics import AlertOutcome, Metrics
from hedgerd.risk.alert_webhook import TARGET as WEBHOOK_TARGET
from hedgerd.risk.alert_webhook import Sleep, WebhookSink
from hedgerd.risk.limits import AlertSettings
from hedgerd.risk.trading_state import ReasonCode, TradingStateSnapshot
from hedgerd.risk.trips import HOUR_MS, Number, SlidingWindow, Trip

log = structlog.get_logger(__name__)

ENV_PREFIX = "HEDGERD_ALERT_"
# Background deliveries beyond this are dropped (logged): a hung target must not pile up tasks.
MAX_IN_FLIGHT = 16
_STDERR_TAIL_CHARS = 300
_MINIMAL_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
# Reasons raised outside the kill-switch board (the supervisor, the executor).
BOARDLESS_CODES = frozenset({ReasonCode.COMPONENT_CRASH, ReasonCode.INSUFFICIENT_FUNDS})


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: what happened (`kind`, e.g. "kill_switch"), its reason code, the trading state
    asked for, a detail for people, the numbers behind it, when (UTC epoch ms), and how many
    alerts of this code were suppressed by the rate limit since the last one sent."""

    kind: str
    code: str
    state: str
    detail: str
    ts_ms: int
    values: Mapping[str, Number] = field(default_factory=dict)
    suppressed: int = 0

    @classmethod
    def of_trip(cls, trip: Trip, ts_ms: int) -> Alert:
        return cls(
            kind="kill_switch",
            code=trip.code.value,
            state=trip.state.value,
            detail=trip.detail,
            ts_ms=ts_ms,
            values=dict(trip.values),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": "hedgerd",
            "kind": self.kind,
            "code": self.code,
            "state": self.state,
            "detail": self.detail,
            "ts_ms": self.ts_ms,
            "values": dict(self.values),
            "suppressed": self.suppressed,
        }


@dataclass(slots=True)
class AlertStats:
    """Counters: alerts accepted for delivery, suppressed by the rate limit, dropped (too many
    in flight); deliveries that succeeded and failed (per target)."""

    accepted: int = 0
    suppressed: int = 0
    dropped: int = 0
    delivered: int = 0
    failed: int = 0


class AlertDispatcher:
    """Sends alerts to the configured targets in the background. Build it on the event loop's
    side (it schedules tasks on the running loop); `aclose()` at shutdown."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        secrets: SecretRedactor | None = None,
        metrics: Metrics | None = None,
        webhook_sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`metrics` counts every outcome per target (`hedgerd_alerts_total`);
        `webhook_sleep` is the HTTPS webhook's backoff wait (a test records it instead)."""
        self.settings = settings
        self.stats = AlertStats()
        self._redactor = secrets if secrets is not None else redactor()
        self._last_sent_ms: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._hour = SlidingWindow(HOUR_MS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics
        self.webhook: WebhookSink | None = None
        if settings.webhook.url is not None:
            self.webhook = WebhookSink(
                settings.webhook,
                on_outcome=self._webhook_outcome,
                metrics=metrics,
                sleep=webhook_sleep,
            )
        if metrics is not None:
            for target in ("all", *self._targets()):
                for outcome in AlertOutcome:
                    metrics.record_alert(target, outcome, 0)

    def _targets(self) -> list[str]:
        s = self.settings
        out = ["command"] if s.command else []
        out += ["webhook"] if s.webhook_url is not None else []
        out += ["unix_socket"] if s.unix_socket_path is not None else []
        return out + ([WEBHOOK_TARGET] if self.webhook is not None else [])

    # ---------------------------------------------------------------------- accepting

    def notify_trip(self, trip: Trip, ts_ms: int) -> None:
        """`AlertHook` for `KillSwitchBoard`."""
        self.notify(Alert.of_trip(trip, ts_ms))

    def state_listener(
        self, codes: Iterable[ReasonCode] = BOARDLESS_CODES
    ) -> Callable[[TradingStateSnapshot], None]:
        """A `TradingStateMachine` listener that alerts when a reason in `codes` starts to
        hold. By default the codes no kill switch of the board raises (a component crash,
        insufficient funds): the board alerts for its own trips, with their numbers."""
        watched = frozenset(codes)
        seen: set[ReasonCode] = set()

        def listener(snapshot: TradingStateSnapshot) -> None:
            current = {r.code: r for r in snapshot.reasons}
            for code in sorted(watched & (current.keys() - seen)):
                reason = current[code]
                self.notify(
                    Alert(
                        kind="trading_state",
                        code=code.value,
                        state=reason.state.value,
                        detail=reason.detail,
                        ts_ms=snapshot.ts_ms,
                        values={"actor": reason.actor, "since_ms": reason.since_ms},
                    )
                )
            seen.clear()
            seen.update(current.keys())

        return listener

    def notify_text(self, kind: str, detail: str, ts_ms: int = 0) -> bool:
        """An alert that is no kill switch's (HA: failover, fenced, database unreachable)."""
        return self.notify(Alert(kind=kind, code=kind, state="", detail=detail, ts_ms=ts_ms))

    def notify(self, alert: Alert) -> bool:
        """Queue `alert` for every target unless rate-limited; returns whether it was queued.
        Never blocks, never raises."""
        try:
            return self._notify(alert)
        except Exception:
            log.exception("alert_notify_failed", code=alert.code)
            return False

    def _notify(self, alert: Alert) -> bool:
        s = self.settings
        if not s.any_target:
            return False
        last = self._last_sent_ms.get(alert.code)
        limited = last is not None and alert.ts_ms - last < s.min_interval_s * 1000
        if limited or self._hour.total(alert.ts_ms) >= s.max_per_hour:
            self._suppressed[alert.code] = self._suppressed.get(alert.code, 0) + 1
            self.stats.suppressed += 1
            self._count("all", AlertOutcome.SUPPRESSED)
            log.info("alert_suppressed", code=alert.code, rate_limited=limited)
            return False
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.stats.dropped += 1
            self._count("all", AlertOutcome.DROPPED)
            log.error("alert_dropped", code=alert.code, in_flight=len(self._tasks))
            return False
        suppressed = self._suppressed.pop(alert.code, 0)
        self._last_sent_ms[alert.code] = alert.ts_ms
        self._hour.add(alert.ts_ms, 1)
        self.stats.accepted += 1
        payload = self._clean({**alert.to_json(), "suppressed": alert.suppressed + suppressed})
        loop = asyncio.get_running_loop()
        if s.command:
            self._spawn(loop, self._run_command(payload))
        if s.webhook_url is not None:
            self._spawn(loop, self._post("webhook", s.webhook_url, payload, None))
        if s.unix_socket_path is not None:
            url = f"http://localhost{s.unix_socket_url_path}"
            self._spawn(loop, self._post("unix_socket", url, payload, str(s.unix_socket_path)))
        if self.webhook is not None:
            self.webhook.submit(payload, alert.ts_ms)
        return True

    def _clean(self, payload: dict[str, Any]) -> dict[str, Any]:
        cleaned = self._redactor(None, "alert", payload)
        return dict(cleaned)

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------------- delivering

    def _count(self, target: str, outcome: AlertOutcome) -> None:
        if self._metrics is not None:
            self._metrics.record_alert(target, outcome)

    def _ok(self, target: str, code: str) -> None:
        self.stats.delivered += 1
        self._count(target, AlertOutcome.SENT)
        log.info("alert_sent", target=target, code=code)

    def _failed(self, target: str, code: str, error: str) -> None:
        self.stats.failed += 1
        self._count(target, AlertOutcome.FAILED)
        log.warning(
            "alert_failed", target=target, code=code, error=self._redactor.redact_text(error)
        )

    def _webhook_outcome(self, code: str, error: str | None) -> None:
        if error is None:
            self._ok(WEBHOOK_TARGET, code)
        else:
            self._failed(WEBHOOK_TARGET, code, error)

    async def _run_command(self, payload: dict[str, Any]) -> None:
        code = str(payload.get("code", ""))
        env = {k: os.environ[k] for k in _MINIMAL_ENV_KEYS if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            {
                f"{ENV_PREFIX}KIND": str(payload.get("kind", "")),
                f"{ENV_PREFIX}CODE": code,
                f"{ENV_PREFIX}STATE": str(payload.get("state", "")),
                f"{ENV_PREFIX}DETAIL": str(payload.get("detail", "")),
                f"{ENV_PREFIX}TS_MS": str(payload.get("ts_ms", "")),
                f"{ENV_PREFIX}SUPPRESSED": str(payload.get("suppressed", 0)),
                f"{ENV_PREFIX}JSON": json.dumps(payload, sort_keys=True, default=str),
            }
        )
        argv = self.settings.command
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C for the daemon is not the hook's
            )
        except OSError as exc:
            self._failed("command", code, f"cannot start {argv[0]!r}: {exc}")
            return
        try:
            _, stderr = await asyncio.wait_for(
                proc.communicate(), timeout=self.settings.command_timeout_s
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self._failed("command", code, f"timed out after {self.settings.command_timeout_s} s")
            return
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace")[-_STDERR_TAIL_CHARS:].strip()
            self._failed("command", code, f"exit {proc.returncode}: {tail}")
            return
        self._ok("command", code)

    async def _post(
        self, target: str, url: str, payload: dict[str, Any], unix_path: str | None
    ) -> None:
        code = str(payload.get("code", ""))
        timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout_s)
        connector = aiohttp.UnixConnector(path=unix_path) if unix_path is not None else None
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
                session.post(
                    url,
                    data=json.dumps(payload, default=str),
                    headers={"Content-Type": "application/json"},
                    allow_redirects=False,  # a redirect could lead off the loopback
                ) as response,
            ):
                if response.status >= 300:
                    self._failed(target, code, f"HTTP {response.status}")
                    return
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(target, code, f"{type(exc).__name__}: {exc}")
            return
        self._ok(target, code)

    # ------------------------------------------------------------------------ shutdown

    @property
    def in_flight(self) -> int:
        """Deliveries started and not finished (the webhook's queue included)."""
        return len(self._tasks) + (self.webhook.pending if self.webhook is not None else 0)

    async def drain(self) -> None:
        """Wait for every delivery started so far (each is bounded by its timeout and, for
        the HTTPS webhook, its retries)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
        if self.webhook is not None:
            await self.webhook.drain()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Give deliveries in flight up to `timeout_s`, then cancel the rest."""
        try:
            await asyncio.wait_for(self.drain(), timeout=timeout_s)
        except TimeoutError:
            for task in tuple(self._tasks):
                task.cancel()
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
            log.warning("alerts_cancelled_at_shutdown")
        if self.webhook is not None:
            await self.webhook.aclose()


__all__ = [
    "BOARDLESS_CODES",
    "ENV_PREFIX",
    "MAX_IN_FLIGHT",
    "Alert",
    "AlertDispatcher",
    "AlertStats",
]
