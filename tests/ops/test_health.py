"""hedgerd.ops.health: the loopback ops listener (/metrics, /healthz, /readyz) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hedgerd.config import MetricsSettings
from hedgerd.ops.health import (
    CheckResult,
    LoopMonitor,
    Readiness,
    loopback_host,
    probe,
    probe_main,
    serve_ops,
)
from hedgerd.ops.metrics import Metrics
from hedgerd.risk.trading_state import ReasonCode, TradingState

LOCAL = MetricsSettings(host="127.0.0.1", port=0)


async def _get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_metrics_endpoint_parses_with_prometheus_parser() -> None:
    metrics = Metrics(underlyings=["BTC"], venues=["deribit"])
    metrics.set_greeks(
        "BTC", delta_coin=0.3, gamma_coin_per_usd=2e-5, vega_usd=100.0, theta_usd_per_day=-5.0
    )
    metrics.observe_order_latency("deribit", "wire_to_ack", 0.05)
    metrics.set_trading_state(TradingState.HALTED, [ReasonCode.STALE_DATA])
    refreshed: list[int] = []
    metrics.add_scrape_hook(lambda: refreshed.append(1))
    async with serve_ops(LOCAL, metrics) as server:
        assert server.port > 0
        status, content_type, body = await _get(server.url("/metrics"))
    assert status == 200
    assert content_type.startswith("text/plain")
    assert refreshed == [1]
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert "hedgerd_delta_coin" in families
    assert "process_cpu_seconds" in families
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert values[("hedgerd_delta_coin", (("underlying", "BTC"),))] == 0.3
    assert values[("hedgerd_kill_switch_tripped", (("reason", "stale_data"),))] == 1.0
    assert values[("hedgerd_trading_state_code", ())] == 2.0
    key = ("hedgerd_order_latency_seconds_count", (("stage", "wire_to_ack"), ("venue", "deribit")))
    assert values[key] == 1.0


async def test_metrics_endpoint_speaks_openmetrics_when_asked() -> None:
    async with serve_ops(LOCAL, Metrics(process_metrics=False)) as server:
        status, content_type, body = await _get(
            server.url("/metrics"), accept="application/openmetrics-text; version=1.0.0"
        )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


async def test_healthz_is_200_while_the_loop_keeps_up() -> None:
    async with serve_ops(LOCAL, Metrics(process_metrics=False)) as server:
        status, _, body = await _get(server.url("/healthz"))
    assert status == 200
    assert json.loads(body)["status"] == "ok"


async def test_healthz_is_503_when_the_monitor_saw_a_stall() -> None:
    now = [1000.0]
    monitor = LoopMonitor(interval_s=0.5, max_lag_s=2.0, clock=lambda: now[0])
    monitor.observe(3.5, now[0])  # the loop woke 3.5 s late
    async with serve_ops(LOCAL, Metrics(process_metrics=False), loop_monitor=monitor) as server:
        status, _, body = await _get(server.url("/healthz"))
        assert status == 503
        assert "lag" in json.loads(body)["problem"]
        monitor.observe(0.01, now[0])
        status, _, _ = await _get(server.url("/healthz"))
        assert status == 200


def test_loop_monitor_flags_a_loop_that_stopped_ticking() -> None:
    now = [0.0]
    metrics = Metrics(process_metrics=False)
    monitor = LoopMonitor(metrics, interval_s=0.5, max_lag_s=2.0, clock=lambda: now[0])
    monitor.observe(0.1, 10.0)
    assert monitor.healthy(10.0)
    assert monitor.healthy(12.5)  # within interval + max lag
    assert not monitor.healthy(12.6)
    assert "not ticked" in (monitor.problem(13.0) or "")
    assert metrics.registry.get_sample_value("hedgerd_event_loop_lag_seconds") == 0.1


async def test_loop_monitor_run_measures_lag_from_its_clock() -> None:
    # Each clock read advances 0.5 s, so every tick (one read before the 0.01 s sleep, one
    # after) sees exactly 0.5 - 0.01 = 0.49 s of lag, however the machine is loaded.
    t = [0.0]

    def clock() -> float:
        t[0] += 0.5
        return t[0]

    metrics = Metrics(process_metrics=False)
    monitor = LoopMonitor(metrics, interval_s=0.01, max_lag_s=1.0, clock=clock)
    ticks: list[float] = []
    three = asyncio.Event()
    original = monitor.observe

    def observe(lag_s: float, now_s: float) -> None:
        ticks.append(lag_s)
        original(lag_s, now_s)
        if len(ticks) >= 3:
            three.set()

    monitor.observe = observe  # type: ignore[method-assign]
    monitor.start()
    monitor.start()  # idempotent
    await asyncio.wait_for(three.wait(), 10.0)
    await monitor.stop()
    assert not monitor.running
    assert ticks[:3] == pytest.approx([0.49, 0.49, 0.49])
    assert metrics.registry.get_sample_value("hedgerd_event_loop_lag_seconds") == (
        pytest.approx(0.49)
    )


async def test_readyz_lists_failing_checks_then_becomes_ready() -> None:
    readiness = Readiness(check_timeout_s=0.2)
    venue_up = [False]
    readiness.add_check("venue_deribit", lambda: CheckResult(venue_up[0], "streams"))

    async def book_fresh() -> bool:
        return True

    readiness.add_check("book_fresh", book_fresh)
    readiness.set("journal_open", False, "opening")
    async with serve_ops(LOCAL, Metrics(process_metrics=False), readiness) as server:
        status, content_type, body = await _get(server.url("/readyz"))
        assert status == 503
        assert content_type.startswith("application/json")
        doc = json.loads(body)
        assert doc["status"] == "not_ready"
        assert [f["check"] for f in doc["failing"]] == ["venue_deribit", "journal_open"]
        assert doc["checks"]["book_fresh"] == {"ok": True, "detail": ""}
        venue_up[0] = True
        readiness.set("journal_open", True)
        status, _, body = await _get(server.url("/readyz"))
        assert status == 200
        assert json.loads(body) == {
            "status": "ready",
            "failing": [],
            "checks": {
                "venue_deribit": {"ok": True, "detail": "streams"},
                "book_fresh": {"ok": True, "detail": ""},
                "journal_open": {"ok": True, "detail": ""},
            },
        }


async def test_readiness_check_that_raises_or_hangs_fails_without_leaking_text() -> None:
    readiness = Readiness(check_timeout_s=0.05)

    def raises() -> bool:
        raise RuntimeError("secret-ish venue message")

    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    readiness.add_check("raises", raises)
    readiness.add_check("hangs", hangs)
    report = await readiness.evaluate()
    assert not report.ready
    assert report.failing == ("raises", "hangs")
    text = json.dumps(report.to_json())
    assert "secret-ish" not in text
    assert "RuntimeError" in text
    assert "timed out" in text
    with pytest.raises(ValueError, match="already registered"):
        readiness.add_check("raises", raises)
    readiness.remove("raises")
    readiness.remove("hangs")
    assert (await readiness.evaluate()).ready


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
async def test_non_loopback_host_is_refused(host: str) -> None:
    # model_construct skips the config's own Literal check: serve_ops must refuse by itself.
    settings = MetricsSettings.model_construct(enabled=True, host=host, port=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metrics host"):
        async with serve_ops(settings, Metrics(process_metrics=False)):
            pass


def test_loopback_host_mapping() -> None:
    assert loopback_host("localhost") == "127.0.0.1"
    assert loopback_host("127.0.0.1") == "127.0.0.1"
    assert loopback_host("::1") == "::1"


async def test_port_in_use_raises_and_listener_closes_on_exit() -> None:
    metrics = Metrics(process_metrics=False)
    async with serve_ops(LOCAL, metrics) as first:
        port = first.port
        taken = MetricsSettings(host="127.0.0.1", port=port)
        with pytest.raises(OSError):
            async with serve_ops(taken, metrics):
                pass
    # After exit nothing listens there any more.
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(f"http://127.0.0.1:{port}/healthz")


async def test_disabled_listener_serves_nothing() -> None:
    settings = MetricsSettings(enabled=False, port=0)
    async with serve_ops(settings, Metrics(process_metrics=False)) as server:
        assert not server.listening
        assert server.loop_monitor.running
        with pytest.raises(RuntimeError, match="disabled"):
            _ = server.port
    assert not server.loop_monitor.running


async def test_probe_cli_against_a_live_listener(capsys: pytest.CaptureFixture[str]) -> None:
    async with serve_ops(LOCAL, Metrics(process_metrics=False)) as server:
        url = server.url("/healthz")
        ok, body = await asyncio.to_thread(probe, url, 2.0)
        assert ok and json.loads(body)["status"] == "ok"
        code = await asyncio.to_thread(probe_main, ["--url", url, "--timeout", "2"])
        assert code == 0
        bad = await asyncio.to_thread(probe_main, ["--url", server.url("/readyz-nope")])
        assert bad == 1
    # structlog's default logger also prints to stdout: keep the probe's JSON lines.
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith('{"ok"')]
    assert [json.loads(ln)["ok"] for ln in lines] == [True, False]
