"""A real Prometheus scraping a running `hedgerd paper` with the shipped scrape config and alert
rules: `hedgerctl halt` makes HedgerdHalted fire, `hedgerctl resume` clears it.

Skipped, with the reason, where the `prometheus` binary is not installed (Debian:
`apt-get install prometheus`). Prometheus runs on its own free loopback port with its own
temporary storage, so a Prometheus service on the machine (port 9090) is neither used nor
disturbed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from e2e_support import REPO, hedgerctl, hedgerd_env, paper_argv, short_dir, wait_for

from pinned_clock import TEST_START_MS

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (Debian: apt-get install prometheus)"
)

DEPLOY = REPO / "deploy" / "prometheus"
#: Scrape and rule evaluation every second (the shipped config: 5 s and 15 s) so an alert
#: with `for: 0m` shows within a few seconds of the halt.
INTERVAL = "1s"
ALERT = "HedgerdHalted"
#: Poll ten times a second (a shared 2-core machine: not every 20 ms).
POLL_S = 0.1


@dataclass
class Paper:
    """`hedgerd paper` as a subprocess, with its JSON log lines kept (for the metrics port,
    and for the failure message)."""

    proc: asyncio.subprocess.Process
    socket: Path
    lines: list[str] = field(default_factory=list)
    metrics_port: int | None = None
    reader: asyncio.Task[None] | None = None

    async def read_stderr(self) -> None:
        # Read to the end: a full pipe would block the daemon's logging.
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if '"daemon.ready"' in line:
                with contextlib.suppress(ValueError):
                    self.metrics_port = int(json.loads(line)["metrics_port"])

    def tail(self) -> str:
        return "\n".join(self.lines[-30:])


@contextlib.asynccontextmanager
async def running_paper(work: Path) -> AsyncIterator[Paper]:
    """`hedgerd paper --config config/paper.toml` until the block ends (SIGTERM), its
    journal, control socket and metrics listener (any free port) in `work`."""
    env = {
        **hedgerd_env(work),
        "HEDGERD_METRICS__PORT": "0",
        # daemon.ready (an info line) carries the metrics port the listener got.
        "HEDGERD_LOG__LEVEL": "info",
        "HEDGERD_DAEMON__STATUS_LINE": "false",
    }
    # --duration 0: until SIGTERM; --speed 1: the alert needs no market activity (least CPU).
    argv = paper_argv("--duration", "0", "--speed", "1", "--seed", "1")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(work),
    )
    paper = Paper(proc, work / "ctl.sock")
    paper.reader = asyncio.get_running_loop().create_task(paper.read_stderr())
    try:

        def ready() -> bool:
            assert proc.returncode is None, f"hedgerd paper exited:\n{paper.tail()}"
            return paper.metrics_port is not None

        await wait_for(ready, 60.0, "hedgerd paper to become ready", interval_s=POLL_S)
        yield paper
    finally:
        await _stop(proc, signal.SIGTERM, 20.0)
        await asyncio.wait_for(paper.reader, 5.0)


async def _stop(proc: asyncio.subprocess.Process, sig: signal.Signals, timeout_s: float) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prometheus_config(metrics_port: int) -> dict[str, Any]:
    """The shipped prometheus.yml, scraping `metrics_port` every second, with the rules
    beside it."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text("utf-8"))
    config["global"].update(
        scrape_interval=INTERVAL, scrape_timeout=INTERVAL, evaluation_interval=INTERVAL
    )
    config["rule_files"] = ["alerts.yml"]
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    static["targets"] = [f"127.0.0.1:{metrics_port}"]
    return config


def alert_rules() -> dict[str, Any]:
    """The shipped alerts.yml, with HedgerdHalted's `for:` cut to 0 s so the test takes
    seconds whatever the shipped duration (alerts_test.yml tests the real durations with
    `promtool test rules`). Every other rule is as shipped."""
    rules: dict[str, Any] = yaml.safe_load((DEPLOY / "alerts.yml").read_text("utf-8"))
    (halted,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    halted["for"] = "0s"
    return rules


@dataclass
class Prometheus:
    url: str
    log: Path
    http: aiohttp.ClientSession

    async def api(self, path: str, **params: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["status"] == "success", body
            return body["data"]

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts called `name`."""
        data = await self.api("alerts")
        return [a for a in data["alerts"] if a["labels"]["alertname"] == name]

    async def rule(self, name: str) -> dict[str, Any]:
        data = await self.api("rules", type="alert")
        (rule,) = [r for g in data["groups"] for r in g["rules"] if r["name"] == name]
        return dict(rule)


@contextlib.asynccontextmanager
async def running_prometheus(work: Path, metrics_port: int) -> AsyncIterator[Prometheus]:
    """The `prometheus` binary on a free 127.0.0.1 port with storage in `work`, serving
    until the block ends."""
    assert PROMETHEUS is not None
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(metrics_port)), encoding="utf-8")
    (work / "alerts.yml").write_text(yaml.safe_dump(alert_rules()), encoding="utf-8")
    log = work / "prometheus.log"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        # The port is free when picked but may be taken before Prometheus binds it (other
        # tests run beside this one): a Prometheus that exits at start gets another port.
        for _attempt in range(3):
            port = _free_port()
            with log.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            prom = Prometheus(f"http://127.0.0.1:{port}", log, http)

            async def ready(proc: asyncio.subprocess.Process = proc, url: str = prom.url) -> bool:
                if proc.returncode is not None:
                    return True  # exited: stop waiting, look at why below
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{url}/-/ready") as resp:
                        return resp.status == 200
                return False

            try:
                await wait_for(ready, 30.0, "Prometheus to be ready", interval_s=POLL_S)
                if proc.returncode is None:
                    yield prom
                    return
            finally:
                await _stop(proc, signal.SIGTERM, 10.0)
        raise AssertionError(f"Prometheus did not start:\n{log.read_text()[-3000:]}")


async def test_halted_alert_fires_in_prometheus_and_clears_on_resume() -> None:
    work = short_dir()
    try:
        await _halt_and_resume(work)
    finally:
        # Journal, socket, Prometheus storage and logs: a few hundred kB per run.
        shutil.rmtree(work, ignore_errors=True)


async def _halt_and_resume(work: Path) -> None:
    async with running_paper(work) as paper:
        assert paper.metrics_port is not None
        async with running_prometheus(work, paper.metrics_port) as prom:
            seen_at: list[float] = []

            async def scraped_active() -> bool:
                got = await prom.api("query", query="hedgerd_trading_state_code")
                values = [r["value"] for r in got["result"]]
                if values and values[0][1] == "0":
                    seen_at.append(values[0][0])  # the query's time: the sample was stored
                return bool(seen_at)

            async def evaluated_since() -> bool:
                rule = await prom.rule(ALERT)
                evaluated = datetime.fromisoformat(rule["lastEvaluation"]).timestamp()
                return bool(rule["health"] == "ok" and evaluated > seen_at[0])

            await wait_for(
                scraped_active, 20.0, f"{prom.url} to scrape an ACTIVE hedgerd", interval_s=POLL_S
            )
            # HedgerdHalted ran after that, so "not firing" below means the rule saw the
            # ACTIVE daemon, not that it had not run yet.
            await wait_for(evaluated_since, 10.0, f"{ALERT} to be evaluated", interval_s=POLL_S)
            assert await prom.alerts(ALERT) == []
            (up,) = (await prom.api("query", query='up{job="hedgerd"}'))["result"]
            assert up["value"][1] == "1"

            code, out = await hedgerctl(
                paper.socket, "--json", "halt", "--reason", "prometheus e2e"
            )
            assert code == 0, out
            (reason,) = json.loads(out)["reasons"]
            assert reason["code"] == "operator"
            # On the simulator's clock, which --start-ms pinned (minutes after TEST_START_MS).
            assert TEST_START_MS <= reason["since_ms"] < TEST_START_MS + 600_000, reason
            halted_at = time.monotonic()

            async def operator_switch() -> list[str]:
                alerts = await prom.alerts("HedgerdKillSwitchTripped")
                return [a["state"] for a in alerts if a["labels"]["reason"] == "operator"]

            async def firing() -> bool:
                return [a["state"] for a in await prom.alerts(ALERT)] == ["firing"]

            await wait_for(firing, 20.0, f"{ALERT} to fire", interval_s=POLL_S)
            fire_s = time.monotonic() - halted_at
            (alert,) = await prom.alerts(ALERT)
            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["job"] == "hedgerd"
            assert alert["annotations"]["summary"].startswith("hedgerd is HALTED")
            assert float(alert["value"]) == 2.0
            # The operator's halt is also a kill-switch reason, with its own alert (same
            # group, same evaluation).
            assert await operator_switch() == ["firing"]

            code, out = await hedgerctl(paper.socket, "resume")
            assert code == 0, out
            resumed_at = time.monotonic()

            async def cleared() -> bool:
                return await prom.alerts(ALERT) == [] and await operator_switch() == []

            await wait_for(cleared, 20.0, f"{ALERT} to clear", interval_s=POLL_S)
            clear_s = time.monotonic() - resumed_at
            code, out = await hedgerctl(paper.socket, "--json", "status")
            assert code == 0 and json.loads(out)["state"] == "ACTIVE", out
            print(f"{ALERT}: fired {fire_s:.1f} s after halt, cleared {clear_s:.1f} s after resume")
    assert paper.proc.returncode == 0, paper.tail()
