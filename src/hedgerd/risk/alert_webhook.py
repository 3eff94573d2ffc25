"""The HTTPS webhook alert target: alerts for people, on Slack or any JSON receiver.

`WebhookSink.submit` is synchronous and never touches the network: it rate-limits the alert
(by the alert's own time, like the dispatcher), renders it and appends it to a bounded queue
(full: the oldest waiting alert is dropped and counted). One background task delivers the
queue in order over one HTTPS session: each POST is bounded by `timeout_s`, failures (no
answer, timeout, HTTP 429 or 5xx) are retried `retries` times with doubling waits, and then
the alert is given up and reported as failed. A receiver that hangs therefore delays only the
alerts behind it, never the caller.

Redaction: the URL is a secret (a Slack URL's path is its credential): logs name only the host.
The token, the URL and its path are scrubbed from every body and error text on top of the
dispatcher's redaction of the configured secrets.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

from hedgerd import __version__
from hedgerd.ops.logging import SecretRedactor
from hedgerd.ops.metrics import AlertOutcome, Metrics
from hedgerd.risk.limits import WebhookSettings
from hedgerd.risk.trips import MINUTE_MS, SlidingWindow

log = structlog.get_logger(__name__)

TARGET = "https_webhook"
_ERROR_CHARS = 300

# (alert code, error or None on success): how the sink reports each alert's outcome.
OutcomeHook = Callable[[str, str | None], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Queued:
    code: str
    body: bytes


@dataclass(slots=True)
class WebhookStats:
    """Counters of the sink: alerts queued, held back by its rate limit, dropped from a full
    queue; alerts delivered and given up; POST attempts (first tries and retries)."""

    queued: int = 0
    suppressed: int = 0
    dropped: int = 0
    delivered: int = 0
    failed: int = 0
    attempts: int = 0


def _retryable(status: int) -> bool:
    # 429 and 5xx may pass later; any other refusal (400, 403, 404) will not.
    return status == 429 or status >= 500


def slack_text(payload: Mapping[str, Any], held_back: int) -> str:
    """One Slack message for the alert `payload` (`Alert.to_json()`, already redacted), with
    Slack's control characters escaped (&, <, >)."""
    values = payload.get("values") or {}
    ts_ms = payload.get("ts_ms")
    when = (
        datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(ts_ms, int | float)
        else "?"
    )
    head = (
        f"hedgerd {payload.get('kind', 'alert')} {payload.get('code', '?')} -> "
        f"{str(payload.get('state', '?')).upper()}: {payload.get('detail', '')}"
    )
    tail = [", ".join(f"{k}={v}" for k, v in values.items())] if values else []
    tail.append(when)
    suppressed = payload.get("suppressed") or 0
    if suppressed:
        tail.append(f"{suppressed} earlier alert(s) of this code suppressed")
    if held_back:
        tail.append(f"{held_back} alert(s) held back by the webhook rate limit")
    text = head + "\n" + " | ".join(tail)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookSink:
    """Delivers alerts to `[risk.alerts.webhook]` in the background. Build it on the event
    loop's side; `aclose()` at shutdown. `sleep` (the backoff wait) is injectable for tests."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        on_outcome: OutcomeHook | None = None,
        metrics: Metrics | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if settings.url is None:
            raise ValueError("WebhookSink needs settings.url")
        self.settings = settings
        self.host = settings.host
        self.stats = WebhookStats()
        self._url = settings.url.get_secret_value()
        self._own_secrets = SecretRedactor(settings.secret_values())
        self._on_outcome = on_outcome
        self._metrics = metrics
        self._sleep = sleep
        self._headers = self._make_headers(settings)
        # Built now, so a bad ca_file fails at start-up rather than at the first alert.
        self._ssl = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None
        )
        self._minute = SlidingWindow(MINUTE_MS)
        self._held_back = 0
        self._queue: deque[_Queued] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._delivering = False
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def _make_headers(settings: WebhookSettings) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": f"hedgerd/{__version__}"}
        if settings.token is not None:
            token = settings.token.get_secret_value()
            is_auth = settings.token_header.lower() == "authorization"
            headers[settings.token_header] = f"Bearer {token}" if is_auth else token
        return headers

    # ---------------------------------------------------------------------- accepting

    def submit(self, payload: Mapping[str, Any], ts_ms: int) -> bool:
        """Queue `payload` (an alert's JSON, redacted by the dispatcher) sent at `ts_ms` (UTC
        epoch ms); returns whether it was queued. Never awaits, never raises."""
        try:
            return self._submit(payload, ts_ms)
        except Exception:
            log.exception("alert_submit_failed", target=TARGET, host=self.host)
            return False

    def _submit(self, payload: Mapping[str, Any], ts_ms: int) -> bool:
        code = str(payload.get("code", ""))
        if self._minute.total(ts_ms) >= self.settings.max_per_minute:
            self._held_back += 1
            self.stats.suppressed += 1
            self._count(AlertOutcome.SUPPRESSED)
            log.info("alert_suppressed", target=TARGET, code=code, held_back=self._held_back)
            return False
        self._minute.add(ts_ms, 1)
        held_back, self._held_back = self._held_back, 0
        body = self._render(payload, held_back)
        if len(self._queue) >= self.settings.queue_size:
            oldest = self._queue.popleft()
            self.stats.dropped += 1
            self._count(AlertOutcome.DROPPED)
            log.error("alert_dropped", target=TARGET, code=oldest.code, queue_full=True)
        self._queue.append(_Queued(code, body))
        self.stats.queued += 1
        self._idle.clear()
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        return True

    def _render(self, payload: Mapping[str, Any], held_back: int) -> bytes:
        clean = dict(self._own_secrets(None, "alert", dict(payload)))
        if self.settings.format == "slack":
            doc: dict[str, Any] = {"text": slack_text(clean, held_back)}
        else:
            doc = {**clean, "rate_limited": held_back}
        return json.dumps(doc, default=str).encode()

    # ---------------------------------------------------------------------- delivering

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            self._delivering = True
            try:
                await self._deliver(item)
            except Exception as exc:  # a bug here must not stop later alerts
                self.stats.failed += 1
                self._report(item.code, f"internal error {type(exc).__name__}")
                log.exception("alert_webhook_error", target=TARGET, host=self.host)
            finally:
                self._delivering = False

    async def _deliver(self, item: _Queued) -> None:
        s = self.settings
        delay = s.backoff_initial_s
        error = ""
        tried = 0
        while tried <= s.retries:
            if tried:
                log.info(
                    "alert_retry",
                    target=TARGET,
                    host=self.host,
                    code=item.code,
                    attempt=tried + 1,
                    wait_s=delay,
                    error=error,
                )
                await self._sleep(delay)
                delay = min(delay * 2, s.backoff_max_s)
            tried += 1
            self.stats.attempts += 1
            status, error = await self._post(item.body)
            if status is not None and status < 300:
                self.stats.delivered += 1
                self._report(item.code, None)
                return
            if status is not None and not _retryable(status):
                break
        self.stats.failed += 1
        self._report(item.code, f"{error}; gave up after {tried} attempt(s)")

    async def _post(self, body: bytes) -> tuple[int | None, str]:
        """One POST: (HTTP status or None when there was no answer, error text)."""
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=1),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            )
        try:
            async with session.post(
                self._url,
                data=body,
                headers=self._headers,
                allow_redirects=False,  # a redirect could lead off the allowed hosts
            ) as response:
                return response.status, f"HTTP {response.status}"
        except TimeoutError:
            return None, f"timed out after {self.settings.timeout_s} s"
        except (aiohttp.ClientError, OSError) as exc:
            return None, self._scrub(f"{type(exc).__name__}: {exc}")

    def _scrub(self, text: str) -> str:
        return self._own_secrets.redact_text(text)[:_ERROR_CHARS]

    def _count(self, outcome: AlertOutcome, n: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.record_alert(TARGET, outcome, n)

    def _report(self, code: str, error: str | None) -> None:
        if self._on_outcome is not None:
            self._on_outcome(code, error)

    # ------------------------------------------------------------------------ shutdown

    @property
    def pending(self) -> int:
        """Alerts queued or being delivered."""
        return len(self._queue) + (1 if self._delivering else 0)

    async def drain(self) -> None:
        """Wait until every alert queued so far is delivered or given up."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Stop delivering (the alert being sent and those queued are dropped, counted) and
        close the session."""
        lost = self.pending
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        self._queue.clear()
        if lost:
            self.stats.dropped += lost
            self._count(AlertOutcome.DROPPED, lost)
            log.warning("alerts_cancelled_at_shutdown", target=TARGET, dropped=lost)
        self._idle.set()
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["TARGET", "WebhookSink", "WebhookStats", "slack_text"]
