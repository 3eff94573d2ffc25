"""Alert hooks against real targets: an aiohttp server on 127.0.0.1 (port 0), one on a Unix
socket, and a real command (a Python one-liner writing its environment to a file). Failures
are logged and counted, never raised; rate limits use the alert's own time."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from hedgerd.execution.journal import Journal
from hedgerd.ops.logging import REDACTED, SecretRedactor
from hedgerd.risk.alerts import MAX_IN_FLIGHT, Alert, AlertDispatcher
from hedgerd.risk.kill_switches import KillSwitchBoard, Trip
from hedgerd.risk.limits import AlertSettings, KillSwitchSettings
from hedgerd.risk.trading_state import ReasonCode, TradingState, TradingStateMachine

T0 = 1_700_000_000_000
SECRET = "s3cr3t-api-secret-value"


@dataclass
class Receiver:
    """A local HTTP server that records the JSON it is POSTed; `gate` (when set) holds each
    request until released; `status` is what it answers."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    status: int = 200
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        return web.Response(status=self.status, text="ok")


async def _serve(receiver: Receiver, site_factory: Any) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/alert", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = site_factory(runner)
    await site.start()
    return runner


@pytest.fixture(autouse=True)
def _default_logging(default_logging: None) -> None:
    """Every test here asserts on logs (the root conftest's `default_logging`)."""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    runner = await _serve(r, lambda run: web.TCPSite(run, "127.0.0.1", 0))
    host, port = runner.addresses[0][:2]
    r.url = f"http://{host}:{port}/alert"
    yield r
    if r.gate is not None:
        r.gate.set()
    await runner.cleanup()


def trip(code: ReasonCode = ReasonCode.CLOCK_SKEW, detail: str = "clock is off") -> Trip:
    return Trip(code, TradingState.HALTED, detail, {"skew_ms": 1500.0, "venue": "deribit"})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_gets_the_json_and_notify_never_waits(receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()
    alerts = AlertDispatcher(AlertSettings(webhook_url=receiver.url))
    assert alerts.notify(Alert.of_trip(trip(), T0)) is True
    assert alerts.in_flight == 1  # queued; notify returned without waiting
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    assert alerts.stats.delivered == 0  # the server still holds the request
    receiver.gate.set()
    await alerts.drain()
    assert alerts.stats.delivered == 1 and alerts.stats.failed == 0
    (body,) = receiver.received
    assert body == {
        "source": "hedgerd",
        "kind": "kill_switch",
        "code": "clock_skew",
        "state": "halted",
        "detail": "clock is off",
        "ts_ms": T0,
        "values": {"skew_ms": 1500.0, "venue": "deribit"},
        "suppressed": 0,
    }


async def test_unix_socket_target(tmp_path: Path) -> None:
    r = Receiver()
    path = tmp_path / "alerts.sock"
    runner = await _serve(r, lambda run: web.UnixSite(run, str(path)))
    try:
        alerts = AlertDispatcher(AlertSettings(unix_socket_path=path))
        assert alerts.notify(Alert.of_trip(trip(), T0))
        await alerts.drain()
    finally:
        await runner.cleanup()
    assert alerts.stats.delivered == 1
    assert r.received[0]["code"] == "clock_skew"


SCRIPT = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


async def test_command_gets_the_alert_in_env_and_never_the_daemons_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEDGERD_VENUES__MAIN__API_SECRET", SECRET)
    out = tmp_path / "env.json"
    alerts = AlertDispatcher(AlertSettings(command=(sys.executable, "-c", SCRIPT, str(out))))
    assert alerts.notify(Alert.of_trip(trip(ReasonCode.MARGIN, "margin thin"), T0))
    await alerts.drain()
    assert alerts.stats.delivered == 1, alerts.stats
    env = json.loads(out.read_text())
    assert env["HEDGERD_ALERT_CODE"] == "margin"
    assert env["HEDGERD_ALERT_STATE"] == "halted"
    assert env["HEDGERD_ALERT_DETAIL"] == "margin thin"
    assert env["HEDGERD_ALERT_TS_MS"] == str(T0)
    assert env["HEDGERD_ALERT_SUPPRESSED"] == "0"
    assert json.loads(env["HEDGERD_ALERT_JSON"])["values"]["skew_ms"] == 1500.0
    assert "HEDGERD_VENUES__MAIN__API_SECRET" not in env
    assert SECRET not in out.read_text()


async def test_secrets_never_leave_in_payloads(tmp_path: Path, receiver: Receiver) -> None:
    out = tmp_path / "env.json"
    alerts = AlertDispatcher(
        AlertSettings(command=(sys.executable, "-c", SCRIPT, str(out)), webhook_url=receiver.url),
        secrets=SecretRedactor([SECRET]),
    )
    leaky = Trip(
        ReasonCode.REJECT_STREAK,
        TradingState.HALTED,
        f"venue said: invalid key {SECRET}",
        {"last": f"auth {SECRET}", "api_token": "tok-123456"},
    )
    alerts.notify_trip(leaky, T0)
    await alerts.drain()
    assert alerts.stats.delivered == 2
    sent = json.dumps(receiver.received)
    assert SECRET not in sent and "tok-123456" not in sent and REDACTED in sent
    assert receiver.received[0]["values"]["api_token"] == REDACTED
    text = out.read_text()
    assert SECRET not in text and "tok-123456" not in text and REDACTED in text


async def test_rate_limit_per_code_counts_what_it_suppressed(receiver: Receiver) -> None:
    alerts = AlertDispatcher(
        AlertSettings(webhook_url=receiver.url, min_interval_s=300.0, max_per_hour=30)
    )
    with capture_logs() as logs:
        assert alerts.notify(Alert.of_trip(trip(), T0))
        for i in range(1, 4):  # a flapping switch
            assert not alerts.notify(Alert.of_trip(trip(), T0 + i * 1_000))
        assert alerts.notify(Alert.of_trip(trip(ReasonCode.MARGIN), T0 + 5_000))  # other code
        assert not alerts.notify(Alert.of_trip(trip(), T0 + 299_999))
        assert alerts.notify(Alert.of_trip(trip(), T0 + 300_000))
    await alerts.drain()
    # Deliveries run concurrently: compare without their arrival order.
    assert sorted((b["code"], b["suppressed"], b["ts_ms"]) for b in receiver.received) == [
        ("clock_skew", 0, T0),
        ("clock_skew", 4, T0 + 300_000),
        ("margin", 0, T0 + 5_000),
    ]
    assert alerts.stats.suppressed == 4
    assert sum(e["event"] == "alert_suppressed" for e in logs) == 4


async def test_rate_limit_per_hour_all_codes(receiver: Receiver) -> None:
    alerts = AlertDispatcher(
        AlertSettings(webhook_url=receiver.url, min_interval_s=0.0, max_per_hour=2)
    )
    codes = [ReasonCode.MARGIN, ReasonCode.CLOCK_SKEW, ReasonCode.STALE_DATA]
    sent = [alerts.notify(Alert.of_trip(trip(c), T0 + i)) for i, c in enumerate(codes)]
    assert sent == [True, True, False]
    assert alerts.notify(Alert.of_trip(trip(ReasonCode.STALE_DATA), T0 + 3_600_000))
    await alerts.drain()
    stale = [b for b in receiver.received if b["code"] == "stale_data"]
    assert [b["suppressed"] for b in stale] == [1]


async def test_failures_are_logged_never_raised(tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 500
    settings = [
        AlertSettings(webhook_url=f"http://127.0.0.1:{closed_port()}/alert"),
        AlertSettings(webhook_url=receiver.url),  # answers 500
        AlertSettings(unix_socket_path=tmp_path / "nobody-listens.sock"),
        AlertSettings(command=(sys.executable, "-c", "import sys; sys.exit('bad day')")),
        AlertSettings(command=(str(tmp_path / "no-such-program"),)),
    ]
    with capture_logs() as logs:
        for s in settings:
            alerts = AlertDispatcher(s)
            assert alerts.notify(Alert.of_trip(trip(), T0))
            await alerts.drain()
            assert alerts.stats.failed == 1 and alerts.stats.delivered == 0, s
    errors = [e["error"] for e in logs if e["event"] == "alert_failed"]
    assert len(errors) == 5
    assert "HTTP 500" in errors[1]
    assert "exit 1" in errors[3] and "bad day" in errors[3]
    assert "cannot start" in errors[4]


async def test_a_hung_command_is_killed_at_its_timeout() -> None:
    alerts = AlertDispatcher(
        AlertSettings(
            command=(sys.executable, "-c", "import time; time.sleep(60)"),
            command_timeout_s=0.3,
        )
    )
    with capture_logs() as logs:
        assert alerts.notify(Alert.of_trip(trip(), T0))
        await asyncio.wait_for(alerts.drain(), 10)  # well below the command's 60 s
    assert alerts.stats.failed == 1
    assert any("timed out" in e.get("error", "") for e in logs)


async def test_in_flight_deliveries_are_bounded_and_closed(receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()  # never released: every request hangs
    alerts = AlertDispatcher(
        AlertSettings(webhook_url=receiver.url, min_interval_s=0.0, max_per_hour=1_000)
    )
    accepted = [alerts.notify(Alert("test", f"c{i}", "halted", "", T0 + i)) for i in range(20)]
    assert accepted.count(True) == MAX_IN_FLIGHT
    assert alerts.stats.dropped == 20 - MAX_IN_FLIGHT
    await alerts.aclose(timeout_s=0.2)
    assert alerts.in_flight == 0


async def test_no_target_means_no_alert() -> None:
    alerts = AlertDispatcher(AlertSettings())
    assert alerts.notify(Alert.of_trip(trip(), T0)) is False
    assert alerts.in_flight == 0


async def test_board_trip_reaches_the_webhook(tmp_path: Path, receiver: Receiver) -> None:
    async with await Journal.open(tmp_path / "j.sqlite") as journal:
        machine = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
        alerts = AlertDispatcher(AlertSettings(webhook_url=receiver.url))
        board = KillSwitchBoard(KillSwitchSettings(), machine, alerts=alerts)
        board.on_clock(T0 + 2_000, "deribit", T0)
        await board.flush()
        await alerts.drain()
    (body,) = receiver.received
    assert body["code"] == "clock_skew" and body["state"] == "halted"
    assert body["values"]["skew_ms"] == 2000.0 and body["ts_ms"] == T0 + 2_000


async def test_state_listener_alerts_for_reasons_the_board_does_not_raise(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with await Journal.open(tmp_path / "j.sqlite") as journal:
        machine = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
        alerts = AlertDispatcher(AlertSettings(webhook_url=receiver.url, min_interval_s=0.0))
        machine.add_listener(alerts.state_listener())
        board = KillSwitchBoard(KillSwitchSettings(), machine, alerts=alerts)
        await machine.trip(ReasonCode.COMPONENT_CRASH, "venue task died")
        await machine.trip(ReasonCode.COMPONENT_CRASH, "again")  # already holds: no change
        board.on_clock(T0 + 2_000, "deribit", T0)  # the board's own alert, once
        await machine.trip(ReasonCode.INSUFFICIENT_FUNDS, "no funds")
        await board.flush()
        await alerts.drain()
    assert sorted((b["kind"], b["code"]) for b in receiver.received) == [
        ("kill_switch", "clock_skew"),
        ("trading_state", "component_crash"),
        ("trading_state", "insufficient_funds"),
    ]
    crash = next(b for b in receiver.received if b["code"] == "component_crash")
    assert crash["values"]["actor"] == "auto" and crash["detail"] == "venue task died"
