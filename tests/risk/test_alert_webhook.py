"""The HTTPS webhook alert target against a real TLS receiver on 127.0.0.1 whose certificate
comes from a throwaway CA the client is told to trust (`ca_file`): Slack and JSON bodies,
redaction, retries then give-up, the rate limit, the bounded queue, a receiver that hangs, and
the config rules (https only, allow-listed host, the URL kept secret)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs
from webhook_receiver import HOST, HttpsReceiver, https_receiver

from hedgerd.cli import main as hedgerd_main
from hedgerd.config import ConfigError, HedgerdConfig, load_config
from hedgerd.ops.logging import REDACTED, SecretRedactor
from hedgerd.ops.metrics import Metrics
from hedgerd.risk.alert_webhook import TARGET
from hedgerd.risk.alerts import Alert, AlertDispatcher
from hedgerd.risk.limits import AlertSettings, WebhookSettings

T0 = 1_767_571_200_000  # 2026-01-05 00:00:00 UTC
API_SECRET = "hgd-test-apisecret-K2pW9xQ4"
TOKEN = "hgd-test-hooktoken-M8vB3nZ7"
HOOK_PATH = "/services/T0/B0/hook"


@pytest.fixture(autouse=True)
def _default_logging(default_logging: None) -> None:
    """Every test here asserts on logs (the root conftest's `default_logging`)."""


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[HttpsReceiver]:
    async with https_receiver(tmp_path, HOOK_PATH) as r:
        yield r


class Sleeps:
    """The sink's backoff wait, recorded and not waited: retries run at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def hook(receiver: HttpsReceiver, **kw: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "url": receiver.url,
        "allowed_hosts": [HOST],
        "ca_file": receiver.ca_file,
        "timeout_s": 5.0,
        "retries": 0,
    }
    values.update(kw)
    return WebhookSettings(**values)


def dispatcher(
    webhook: WebhookSettings, sleeps: Sleeps | None = None, metrics: Metrics | None = None
) -> AlertDispatcher:
    """Only the HTTPS webhook, with the dispatcher's own limits out of the way; the configured
    secrets are the API secret and the webhook's own, as `HedgerdConfig.secret_values()`
    gives them to the daemon's dispatcher."""
    return AlertDispatcher(
        AlertSettings(webhook=webhook, min_interval_s=0.0, max_per_hour=10_000),
        secrets=SecretRedactor([API_SECRET, *webhook.secret_values()]),
        metrics=metrics,
        webhook_sleep=sleeps if sleeps is not None else Sleeps(),
    )


def counted(metrics: Metrics, outcome: str, target: str = TARGET) -> float | None:
    return metrics.registry.get_sample_value(
        "hedgerd_alerts_total", {"target": target, "outcome": outcome}
    )


def alert(code: str = "clock_skew", detail: str = "clock is off", ts_ms: int = T0) -> Alert:
    return Alert("kill_switch", code, "halted", detail, ts_ms, {"skew_ms": 1500.0})


# --------------------------------------------------------------------------- delivery


async def test_slack_message_over_https_and_notify_never_waits(receiver: HttpsReceiver) -> None:
    receiver.hang = True
    alerts = dispatcher(hook(receiver, format="slack", token=TOKEN))
    assert alerts.notify(alert(detail="clock <is> off & late")) is True
    # notify is synchronous and returned with nothing sent: the POST is the worker's.
    assert alerts.in_flight == 1 and receiver.attempts == 0
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    assert alerts.stats.delivered == 0  # the receiver still holds it
    receiver.release.set()
    await asyncio.wait_for(alerts.drain(), 5)
    assert alerts.stats.delivered == 1 and alerts.stats.failed == 0
    ((body,), (headers,)) = receiver.bodies, receiver.headers
    assert list(body) == ["text"]
    assert body["text"] == (
        "hedgerd kill_switch clock_skew -&gt; HALTED: clock &lt;is&gt; off &amp; late\n"
        "skew_ms=1500.0 | 2026-01-05 00:00:00 UTC"
    )
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"
    await alerts.aclose()


async def test_json_body_is_the_alert_and_a_custom_token_header(receiver: HttpsReceiver) -> None:
    alerts = dispatcher(hook(receiver, format="json", token=TOKEN, token_header="X-Hook-Token"))
    assert alerts.notify(alert())
    await asyncio.wait_for(alerts.drain(), 5)
    # The alert's JSON as every other hook gets it, plus the webhook's own rate-limit count.
    assert receiver.bodies == [{**alert().to_json(), "rate_limited": 0}]
    assert receiver.headers[0]["X-Hook-Token"] == TOKEN
    assert "Authorization" not in receiver.headers[0]
    await alerts.aclose()


async def test_an_untrusted_certificate_is_refused(receiver: HttpsReceiver) -> None:
    """Verification is on: without the receiver's CA (system CAs only) nothing is sent."""
    alerts = dispatcher(hook(receiver, ca_file=None))
    with capture_logs() as logs:
        assert alerts.notify(alert())
        await asyncio.wait_for(alerts.drain(), 10)
    assert receiver.attempts == 0
    assert alerts.stats.failed == 1 and alerts.stats.delivered == 0
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert "certificate" in failed["error"].lower()
    await alerts.aclose()


# -------------------------------------------------------------------------- redaction


async def test_secrets_are_redacted_from_bodies_and_logs(receiver: HttpsReceiver) -> None:
    receiver.statuses = [500]  # one failure, so the error path logs too
    alerts = dispatcher(hook(receiver, format="slack", token=TOKEN, retries=1))
    leaky = Alert(
        "kill_switch",
        "reject_streak",
        "halted",
        f"venue said: bad key {API_SECRET}; hook {receiver.url} token {TOKEN}",
        T0,
        {"last": f"auth {API_SECRET}", "api_token": "tok-123456"},
    )
    with capture_logs() as logs:
        assert alerts.notify(leaky)
        await asyncio.wait_for(alerts.drain(), 5)
        await alerts.aclose()
    assert alerts.stats.delivered == 1 and receiver.attempts == 2
    sent = json.dumps(receiver.bodies)
    for secret in (API_SECRET, TOKEN, "tok-123456", HOOK_PATH):
        assert secret not in sent
    assert REDACTED in receiver.bodies[0]["text"]
    logged = json.dumps(logs, default=str)
    for secret in (API_SECRET, TOKEN, HOOK_PATH, receiver.url):
        assert secret not in logged
    sent_events = [e for e in logs if e["event"] == "alert_sent"]
    assert sent_events == [
        {"event": "alert_sent", "target": TARGET, "code": "reject_streak", "log_level": "info"}
    ]
    assert any(e["event"] == "alert_retry" and e["host"] == HOST for e in logs)


def test_the_url_and_token_are_secrets_of_the_config(tmp_path: Path) -> None:
    token_file = tmp_path / "hook-token"
    token_file.write_text(TOKEN + "\n")
    url = "https://hooks.slack.com/services/T1/B2/sEcReTpArT"
    config = HedgerdConfig(
        risk={
            "alerts": {
                "webhook": {
                    "url": url,
                    "allowed_hosts": ["hooks.slack.com"],
                    "format": "slack",
                    "token_file": str(token_file),
                }
            }
        }
    )
    webhook = config.risk.alerts.webhook
    assert webhook.token is not None and webhook.token.get_secret_value() == TOKEN
    secrets = config.secret_values()
    assert {TOKEN, url, "/services/T1/B2/sEcReTpArT"} <= set(secrets)
    shown = repr(config) + str(config.model_dump())
    assert TOKEN not in shown and "sEcReTpArT" not in shown


# ----------------------------------------------------------------- retries and give-up


async def test_retries_with_doubling_waits_then_gives_up(receiver: HttpsReceiver) -> None:
    receiver.statuses = [500] * 10
    sleeps = Sleeps()
    metrics = Metrics(process_metrics=False)
    settings = hook(receiver, retries=3, backoff_initial_s=0.5, backoff_max_s=1.5)
    alerts = dispatcher(settings, sleeps, metrics)
    assert counted(metrics, "failed") == 0.0  # the series exist from the start
    assert alerts.webhook is not None
    with capture_logs() as logs:
        assert alerts.notify(alert())
        await asyncio.wait_for(alerts.drain(), 10)
    assert receiver.attempts == 4  # the first try and 3 retries
    assert sleeps.asked == [0.5, 1.0, 1.5]
    assert alerts.stats.failed == 1 and alerts.stats.delivered == 0
    assert alerts.webhook.stats.attempts == 4
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["target"] == TARGET
    assert failed["error"] == "HTTP 500; gave up after 4 attempt(s)"
    assert (counted(metrics, "failed"), counted(metrics, "sent")) == (1.0, 0.0)
    await alerts.aclose()


async def test_a_retry_that_succeeds_and_a_refusal_that_is_not_retried(
    receiver: HttpsReceiver,
) -> None:
    receiver.statuses = [503, 429, 200, 404]
    alerts = dispatcher(hook(receiver, retries=5))
    assert alerts.notify(alert("a", ts_ms=T0))
    await asyncio.wait_for(alerts.drain(), 10)
    assert (receiver.attempts, alerts.stats.delivered) == (3, 1)
    assert alerts.notify(alert("b", ts_ms=T0 + 1))  # answered 404: will not get better
    await asyncio.wait_for(alerts.drain(), 10)
    assert (receiver.attempts, alerts.stats.failed) == (4, 1)
    await alerts.aclose()


async def test_a_hanging_receiver_times_out_and_never_holds_the_caller(
    receiver: HttpsReceiver,
) -> None:
    receiver.hang = True
    alerts = dispatcher(hook(receiver, timeout_s=0.3, retries=1))
    with capture_logs() as logs:
        assert alerts.notify(alert())
        await asyncio.wait_for(alerts.drain(), 10)  # two timeouts of 0.3 s
    assert receiver.attempts == 2 and alerts.stats.failed == 1
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"] == "timed out after 0.3 s; gave up after 2 attempt(s)"


# ------------------------------------------------------------ rate limit and the queue


async def test_rate_limit_per_minute_counts_what_it_held_back(receiver: HttpsReceiver) -> None:
    metrics = Metrics(process_metrics=False)
    alerts = dispatcher(hook(receiver, max_per_minute=2), metrics=metrics)
    assert alerts.webhook is not None
    sent = [alerts.notify(alert(f"c{i}", ts_ms=T0 + i * 1_000)) for i in range(5)]
    # The dispatcher accepted all five (other targets would get them); the webhook held 3.
    assert sent == [True] * 5
    assert alerts.webhook.stats.suppressed == 3 and alerts.webhook.stats.queued == 2
    assert alerts.notify(alert("late", ts_ms=T0 + 60_000))  # the window moved on
    await asyncio.wait_for(alerts.drain(), 10)
    assert [(b["code"], b["rate_limited"]) for b in receiver.bodies] == [
        ("c0", 0),
        ("c1", 0),
        ("late", 3),
    ]
    assert (counted(metrics, "suppressed"), counted(metrics, "sent")) == (3.0, 3.0)


async def test_a_full_queue_drops_the_oldest_and_counts_it(receiver: HttpsReceiver) -> None:
    receiver.hang = True
    metrics = Metrics(process_metrics=False)
    alerts = dispatcher(hook(receiver, queue_size=2, timeout_s=30.0), metrics=metrics)
    sink = alerts.webhook
    assert sink is not None
    assert alerts.notify(alert("c0", ts_ms=T0))
    await asyncio.wait_for(receiver.arrived.wait(), 5)  # c0 is being delivered (held)
    with capture_logs() as logs:
        for i in range(1, 5):
            assert alerts.notify(alert(f"c{i}", ts_ms=T0 + i))
    assert sink.stats.dropped == 2 and sink.pending == 3  # c1, c2 dropped; c0 held, c3, c4
    dropped = [e["code"] for e in logs if e["event"] == "alert_dropped"]
    assert dropped == ["c1", "c2"]
    assert counted(metrics, "dropped") == 2.0
    receiver.release.set()
    await asyncio.wait_for(alerts.drain(), 10)
    assert [b["code"] for b in receiver.bodies] == ["c0", "c3", "c4"]
    await alerts.aclose()


async def test_close_gives_up_on_a_stuck_receiver_at_once(receiver: HttpsReceiver) -> None:
    receiver.hang = True
    alerts = dispatcher(hook(receiver, timeout_s=60.0))
    for i in range(3):
        assert alerts.notify(alert(f"c{i}", ts_ms=T0 + i))
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    started = time.perf_counter()
    await alerts.aclose(timeout_s=0.2)
    assert time.perf_counter() - started < 5.0  # not the 60 s timeout
    assert alerts.in_flight == 0
    assert alerts.webhook is not None and alerts.webhook.stats.dropped == 3  # 1 held, 2 queued


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("url", "hosts", "expected"),
    [
        ("http://hooks.example.com/x", ["hooks.example.com"], "must be https://"),
        ("https://evil.example.net/x", ["hooks.example.com"], "is not in allowed_hosts"),
        ("https://hooks.example.com/x", [], "is not in allowed_hosts"),
        ("https://u:p@hooks.example.com/x", ["hooks.example.com"], "must not carry"),
        ("https://hooks.example.com:99999/x", ["hooks.example.com"], "bad port"),
    ],
)
def test_config_refuses_urls_outside_the_rules(url: str, hosts: list[str], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookSettings(url=url, allowed_hosts=hosts)
    assert expected in str(info.value)


def test_allowed_hosts_are_names_without_scheme_or_port() -> None:
    for bad in ("https://hooks.example.com", "hooks.example.com:443", "a b"):
        with pytest.raises(ValidationError):
            WebhookSettings(allowed_hosts=[bad])
    w = WebhookSettings(url="https://[::1]:8443/x", allowed_hosts=["Hooks.Example.com", "[::1]"])
    assert w.allowed_hosts == ("hooks.example.com", "::1") and w.host == "::1"


def test_url_and_token_from_the_environment_join_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's set-up: format and hosts in the file, the secret URL and token from the
    environment."""
    url = "https://hooks.slack.com/services/T1/B2/sEcReTpArT"
    monkeypatch.setenv("HEDGERD_RISK__ALERTS__WEBHOOK__URL", url)
    monkeypatch.setenv("HEDGERD_RISK__ALERTS__WEBHOOK__TOKEN", TOKEN)
    path = tmp_path / "c.toml"
    path.write_text(
        '[risk.alerts.webhook]\nformat = "slack"\nallowed_hosts = ["hooks.slack.com"]\n'
    )
    webhook = load_config(path).risk.alerts.webhook
    assert webhook.url is not None and webhook.url.get_secret_value() == url
    assert webhook.token is not None and webhook.token.get_secret_value() == TOKEN
    assert (webhook.format, webhook.host) == ("slack", "hooks.slack.com")


def test_check_config_prints_neither_url_nor_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[risk.alerts.webhook]\n"
        'url = "https://hooks.slack.com/services/T1/B2/sEcReTpArT"\n'
        'allowed_hosts = ["hooks.slack.com"]\n'
        f'token = "{TOKEN}"\n'
    )
    assert hedgerd_main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    shown = json.loads(out.out)["risk"]["alerts"]["webhook"]
    assert shown["allowed_hosts"] == ["hooks.slack.com"]
    assert "sEcReTpArT" not in out.out + out.err and TOKEN not in out.out + out.err


def test_a_config_error_names_the_host_never_the_secret_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "[risk.alerts.webhook]\n"
        'url = "https://hooks.slack.com/services/T1/B2/sEcReTpArT"\n'
        'allowed_hosts = ["hooks.example.com"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "risk.alerts.webhook" in text and "'hooks.slack.com'" in text
    assert "sEcReTpArT" not in text


def test_a_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for ca_file in (tmp_path / "missing.pem", junk):
        with pytest.raises(ValidationError, match="cannot load"):
            WebhookSettings(ca_file=ca_file)


def test_an_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[risk.alerts.webhook]\ntoken_file = "{tmp_path / "missing"}"\n')
    with pytest.raises(ConfigError, match="cannot read secret file"):
        load_config(path)
