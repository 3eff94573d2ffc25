"""Configured secrets never leave the daemon: `hedgerd run` against the simulator with a
distinctive API key (from a file), API secret and control token (from the environment),
operated with `hedgerctl` over the Unix socket and the token-guarded TCP listener (halt with a
reason, set, reduce-only, resume, status and events as tables and JSON); then every byte it and
`hedgerctl` wrote (stdout, stderr with the debug log, the journal's files) is searched for the
secrets, also base64- and hex-encoded. In process, the HTTPS alert webhook's token and URL path
are searched for too, after an alert carrying secrets failed to reach it."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
from collections.abc import Awaitable
from pathlib import Path

from e2e_support import (
    REPO,
    daemon_config,
    hedgerctl,
    on_sim_calendar,
    short_dir,
    start_daemon,
    status,
    toml_text,
    wait_for,
)
from structlog.testing import capture_logs

from hedgerd.risk.alerts import Alert
from hedgerd.sim.command import running_simulator
from hedgerd.sim.scenario import AccountSpec, PositionSpec
from pinned_clock import TEST_START_MS

# Distinctive values: nothing else in the output can contain them by chance.
API_KEY = "hgd-e2e-apikey-Q7vZ3kP9"
API_SECRET = "hgd-e2e-apisecret-X4mT8wL2"
CONTROL_TOKEN = "hgd-e2e-ctltoken-R6nY1cJ5"
HOOK_TOKEN = "hgd-e2e-hooktoken-V5cF2hK8"
HOOK_PATH_SECRET = "hgd-e2e-hookpath-P3sD6fG1"  # a Slack URL's path is its credential
SECRETS = (API_KEY, API_SECRET, CONTROL_TOKEN, HOOK_TOKEN, HOOK_PATH_SECRET)


def _encodings(secret: str) -> set[bytes]:
    """The secret as it could appear in output: clear, base64 (standard, URL-safe, without
    padding), hex (both cases), and inside an HTTP Basic credential with the other half."""
    raw = secret.encode()
    out = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out.add(enc)
        out.add(enc.rstrip(b"="))
    basic = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode())
    out.add(basic)
    return out


def _leaks(name: str, data: bytes) -> list[str]:
    """Which secrets (by position in SECRETS) `data` holds in any encoding."""
    return [
        f"{name}: secret #{i} ({'encoded' if enc != s.encode() else 'clear'})"
        for i, s in enumerate(SECRETS)
        for enc in _encodings(s)
        if enc in data
    ]


def _journal_files(work: Path) -> dict[str, bytes]:
    """The journal's database and its WAL/SHM files, by name."""
    return {p.name: p.read_bytes() for p in sorted(work.glob("journal.sqlite*"))}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ctl(env: dict[str, str], *args: str) -> tuple[int, str]:
    """`hedgerctl ARGS...` with `env` (the TCP token comes from the environment)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hedgerd.ctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30.0)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def test_the_search_finds_what_it_looks_for() -> None:
    """The leak search itself can fail: each secret is found clear and encoded."""
    for s in SECRETS:
        assert _leaks("x", b"..." + s.encode() + b"...")
        assert _leaks("x", base64.b64encode(s.encode()))
        assert _leaks("x", s.encode().hex().encode())
    assert _leaks("x", b"Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()))
    assert not _leaks("x", b"hgd-e2e-apikey-**********")


def _account() -> AccountSpec:
    """The simulator's account for the distinctive key: short calls, so that the daemon
    hedges and its order, fill and reconciliation paths log too."""
    return AccountSpec(
        name="leaky",
        api_key=API_KEY,
        api_secret=API_SECRET,
        balances={"BTC": 20.0, "ETH": 0.0, "USDC": 0.0},
        positions=[
            PositionSpec(currency="BTC", option_type="call", expiry_rank=3, size=-8.0),
        ],
    )


async def test_secrets_never_in_structlog_events_status_or_events() -> None:
    """In process, structlog's events as the code emits them (before the redactor): a secret
    the redactor would have to scrub is a leak waiting for a log set-up without it."""
    work = short_dir()
    sock = work / "ctl.sock"
    async with running_simulator(
        host="127.0.0.1", port=0, seed=5, speed=10.0, start_ms=TEST_START_MS, accounts=[_account()]
    ) as sim:
        values = daemon_config(work, rest_url=sim.rest_url, ws_url=sim.ws_url)
        values["venues"]["sim"].update(
            {"api_key": API_KEY, "api_secret": API_SECRET, "account": "leaky"}
        )
        values["control"].update({"tcp_port": _free_port(), "token": CONTROL_TOKEN})
        values["log"]["level"] = "debug"
        # The HTTPS webhook, at a port nobody listens on: its failure is logged too.
        values["risk"] = {
            "alerts": {
                "webhook": {
                    "url": f"https://127.0.0.1:{_free_port()}/services/{HOOK_PATH_SECRET}",
                    "allowed_hosts": ["127.0.0.1"],
                    "token": HOOK_TOKEN,
                    "retries": 1,
                    "backoff_initial_s": 0.1,
                    "timeout_s": 2.0,
                }
            }
        }
        outputs: dict[str, bytes] = {}
        with capture_logs() as logs:
            run = await start_daemon(sim, values, 10.0)
            stats = run.daemon.stats.per_underlying["BTC"]
            await wait_for(lambda: stats.hedges > 0, 20.0, "a hedge")
            alerts = run.daemon.alerts
            assert alerts is not None
            leaky = f"venue said {API_SECRET}; hook {HOOK_PATH_SECRET} token {HOOK_TOKEN}"
            assert alerts.notify(Alert("test", "leak_probe", "halted", leaky, 0))
            await wait_for(lambda: alerts.stats.failed == 1, 20.0, "the webhook to give up")
            for args in (
                ("halt", "--reason", "secret search"),
                ("--json", "status"),
                ("set", "hedging.BTC.target_coin", "0.5"),
                ("resume",),
                ("--json", "events"),
            ):
                code, out = await hedgerctl(sock, *args)
                assert code == 0, (args, out)
                outputs[" ".join(args)] = out.encode()
            outputs["status"] = repr(await status(sock)).encode()
            assert await run.shutdown() == 0
        assert any(e["event"] == "operator_command" for e in logs)
        assert any(e["event"] == "alert_failed" for e in logs)
        outputs["structlog"] = "\n".join(repr(e) for e in logs).encode()
        outputs.update(_journal_files(work))
    leaks = [leak for name, data in outputs.items() for leak in _leaks(name, data)]
    assert leaks == []


async def test_secrets_never_appear_in_output_logs_status_or_events() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    tcp_port = _free_port()
    async with running_simulator(
        host="127.0.0.1", port=0, seed=5, speed=1.0, start_ms=TEST_START_MS, accounts=[_account()]
    ) as sim:
        values = daemon_config(work, rest_url=sim.rest_url, ws_url=sim.ws_url)
        venue = values["venues"]["sim"]
        del venue["api_key"], venue["api_secret"]
        key_file = work / "api_key"
        key_file.write_text(API_KEY + "\n", encoding="utf-8")
        key_file.chmod(0o600)
        venue["api_key_file"] = str(key_file)
        venue["account"] = "leaky"
        values["control"]["tcp_port"] = tcp_port
        config_path = work / "hedgerd.toml"
        config_path.write_text(toml_text(values), encoding="utf-8")
        assert not _leaks("config file", config_path.read_bytes())

        base_env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),
        }
        daemon_env = {
            **base_env,
            "HEDGERD_VENUES__SIM__API_SECRET": API_SECRET,
            "HEDGERD_CONTROL__TOKEN": CONTROL_TOKEN,
            "HEDGERD_LOG__LEVEL": "debug",
            "HEDGERD_LOG__FORMAT": "json",
        }
        faked_env = on_sim_calendar(sim)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hedgerd.cli",
            "run",
            "--config",
            str(config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**daemon_env, **faked_env},
        )
        outputs: dict[str, bytes] = {}
        try:

            async def hedged() -> bool:
                assert proc.returncode is None
                if not sock.exists():
                    return False
                try:
                    st = await status(sock)
                except OSError:
                    return False
                return bool(st["state"] == "ACTIVE" and st["orders_sent_total"] > 0)

            await wait_for(hedged, 45.0, "hedgerd run to serve its socket and hedge")

            tcp = ("--tcp", str(tcp_port))
            tcp_env = {**base_env, "HEDGERCTL_TOKEN": CONTROL_TOKEN}
            wrong_env = {**base_env, "HEDGERCTL_TOKEN": CONTROL_TOKEN[:-1] + "X"}
            # Commands that change state one after the other; the readers of each state at
            # once (each hedgerctl is a process: ~1 s of start-up).
            steps: list[list[tuple[str, Awaitable[tuple[int, str]]]]] = [
                [("halt", hedgerctl(sock, "halt", "--reason", "secret search: operator halt"))],
                [
                    ("status", hedgerctl(sock, "status")),
                    ("--json status", hedgerctl(sock, "--json", "status")),
                    # The socket path from the config file: hedgerctl loads it with the
                    # daemon's environment (secrets and all), as an operator on the host would.
                    ("--config status", _ctl(daemon_env, "--config", str(config_path), "status")),
                ],
                [("set", hedgerctl(sock, "set", "hedging.BTC.target_coin", "0.5"))],
                [("reduce-only", hedgerctl(sock, "reduce-only"))],
                [("resume", hedgerctl(sock, "resume"))],
                [
                    ("events", hedgerctl(sock, "events")),
                    ("--json events", hedgerctl(sock, "--json", "events", "--limit", "200")),
                    # The TCP listener: the right token, then a wrong one (refused, and the
                    # refusal echoes nothing).
                    ("tcp status", _ctl(tcp_env, *tcp, "--json", "status")),
                    ("tcp events", _ctl(tcp_env, *tcp, "events")),
                    ("tcp wrong", _ctl(wrong_env, *tcp, "status")),
                ],
            ]
            runs: list[tuple[str, tuple[int, str]]] = []
            for step in steps:
                results = await asyncio.gather(*(aw for _name, aw in step))
                runs.extend(zip((name for name, _aw in step), results, strict=True))
            for name, (code, text) in runs:
                if name == "tcp wrong":
                    assert code != 0, text
                else:
                    assert code == 0, (name, text)
                outputs[f"hedgerctl {name}"] = text.encode()
            # The commands went through and were audited (so the search saw real output).
            events = outputs["hedgerctl --json events"].decode()
            for word in ("halt", "secret search: operator halt", "set", "reduce-only", "resume"):
                assert word in events, word
            assert "ACTIVE" in outputs["hedgerctl tcp status"].decode()

            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 20.0)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()[-3000:]
        assert b"kill_switch" in err or b"daemon.stopped" in err  # the debug log was captured
        outputs["hedgerd stdout"] = out
        outputs["hedgerd stderr"] = err
        outputs.update(_journal_files(work))
        assert "journal.sqlite" in outputs

    leaks = [leak for name, data in outputs.items() for leak in _leaks(name, data)]
    assert leaks == []
