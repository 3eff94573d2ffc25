"""Control API: one command layer, owner-only socket, token-guarded TCP, audit of every call."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hedgerd.control.commands import (
    Caller,
    ControlCommands,
    Tunable,
    parse_positive_float,
)
from hedgerd.control.server import ControlServerError, serve_control
from hedgerd.ctl import main as ctl_main

TOKEN = "ctl-token-1b4f0e9851971998e732078544c96b36"


class Trading:
    def __init__(self) -> None:
        self.state = "ACTIVE"
        self.reasons: list[str] = []

    async def operator_halt(self, reason: str, actor: str) -> None:
        self.state, self.reasons = "HALTED", [f"operator: {reason}"]

    async def operator_resume(self, actor: str) -> None:
        self.state, self.reasons = "ACTIVE", []

    async def operator_reduce_only(self, reason: str, actor: str) -> None:
        self.state, self.reasons = "REDUCE_ONLY", [f"operator: {reason}"]

    def describe(self) -> Mapping[str, Any]:
        return {"state": self.state, "reasons": list(self.reasons)}


class Orders:
    def __init__(self) -> None:
        self.cancel_calls = 0

    async def cancel_all(self, actor: str) -> int:
        self.cancel_calls += 1
        return 3

    async def flatten(self, underlying: str | None, actor: str) -> Mapping[str, Any]:
        return {"flattened": underlying or "all"}


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record_operator_command(
        self, command: str, args: Mapping[str, Any], caller: Caller, ts_ms: int
    ) -> None:
        self.entries.append({"command": command, "args": dict(args), "uid": caller.uid})

    async def recent_events(self, limit: int) -> list[Mapping[str, Any]]:
        return self.entries[-limit:]


def make_commands() -> tuple[ControlCommands, Trading, Orders, Audit, dict[str, float]]:
    trading, orders, audit = Trading(), Orders(), Audit()
    params = {"band": 1.0}

    async def set_band(value: float) -> None:
        params["band"] = value

    commands = ControlCommands(
        trading=trading,
        orders=orders,
        audit=audit,
        status_source=lambda: {"underlyings": {"BTC": {"delta": 0.1}}, "open_orders": []},
        clock_ms=lambda: 1_700_000_000_000,
        tunables={
            "hedging.BTC.band_coin": Tunable(
                "hedging.BTC.band_coin", "band", parse_positive_float, set_band
            )
        },
    )
    return commands, trading, orders, audit, params


async def ctl(*argv: str) -> int:
    # hedgerctl runs its own event loop: run it in a thread as an operator's shell would.
    return await asyncio.to_thread(ctl_main, list(argv))


async def test_socket_is_owner_only_and_commands_are_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands, trading, orders, audit, params = make_commands()
    sock = tmp_path / "run" / "hedgerd.sock"
    async with serve_control(commands, sock):
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        assert await ctl("--socket", str(sock), "--json", "halt", "--reason", "drill") == 0
        assert trading.state == "HALTED" and orders.cancel_calls == 1
        assert await ctl("--socket", str(sock), "--json", "status") == 0
        assert await ctl("--socket", str(sock), "resume") == 0
        assert trading.state == "ACTIVE"
        assert await ctl("--socket", str(sock), "set", "hedging.BTC.band_coin", "2.5") == 0
        assert params["band"] == 2.5
        assert await ctl("--socket", str(sock), "set", "hedging.BTC.band_coin", "-1") == 1
        assert params["band"] == 2.5
        assert await ctl("--socket", str(sock), "set", "nope", "1") == 1
    assert [e["command"] for e in audit.entries] == ["halt", "resume", "set", "set", "set"]
    assert audit.entries[0]["uid"] == os.getuid()
    assert audit.entries[0]["args"] == {"reason": "drill"}
    assert not sock.exists()


async def test_status_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands, *_ = make_commands()
    sock = tmp_path / "c.sock"
    async with serve_control(commands, sock):
        capsys.readouterr()
        assert await ctl("--socket", str(sock), "--json", "status") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "ACTIVE" and status["reasons"] == []
    assert status["underlyings"]["BTC"]["delta"] == 0.1


async def test_peer_uid_not_allowed_is_refused(tmp_path: Path) -> None:
    commands, trading, *_ = make_commands()
    sock = tmp_path / "c.sock"
    async with serve_control(commands, sock, allowed_uids={os.getuid() + 12345}):
        assert await ctl("--socket", str(sock), "halt") == 1
    assert trading.state == "ACTIVE"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
async def test_other_user_cannot_connect(tmp_path: Path) -> None:
    commands, *_ = make_commands()
    sock = tmp_path / "c.sock"
    os.chmod(tmp_path, 0o755)
    async with serve_control(commands, sock):
        code = (
            "import os, socket, sys\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(7)\n"
            "sys.exit(0)\n"
        )
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", code, str(sock)], check=False
        )
    assert proc.returncode == 7


async def test_tcp_requires_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands, trading, *_ = make_commands()
    with pytest.raises(ControlServerError, match="needs a token"):
        async with serve_control(commands, tmp_path / "a.sock", tcp_port=0, token=None):
            pass
    async with serve_control(commands, tmp_path / "b.sock", tcp_port=0, token=TOKEN) as server:
        url = f"http://127.0.0.1:{server.tcp_port}/v1/halt"
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with session.post(url, headers=headers, json={}) as resp:
                    assert resp.status == 401
            assert trading.state == "ACTIVE"
            monkeypatch.setenv("HEDGERCTL_TOKEN", TOKEN)
            assert await ctl("--tcp", str(server.tcp_port), "halt") == 0
            assert trading.state == "HALTED"


async def test_flatten_needs_confirm_and_bad_bodies_are_400(tmp_path: Path) -> None:
    commands, *_ = make_commands()
    sock = tmp_path / "c.sock"
    async with serve_control(commands, sock):
        conn = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=conn) as session:
            async with session.post("http://h/v1/flatten", json={"underlying": "BTC"}) as resp:
                assert resp.status == 400
                assert "confirm" in (await resp.json())["error"]
            async with session.post("http://h/v1/halt", data=b"{not json") as resp:
                assert resp.status == 400
            async with session.post(
                "http://h/v1/flatten", json={"underlying": "BTC", "confirm": True}
            ) as resp:
                assert resp.status == 200 and (await resp.json()) == {"flattened": "BTC"}


async def test_socket_in_use_or_not_a_socket_is_refused(tmp_path: Path) -> None:
    commands, *_ = make_commands()
    sock = tmp_path / "c.sock"
    async with serve_control(commands, sock):
        with pytest.raises(ControlServerError, match="in use"):
            async with serve_control(commands, sock):
                pass
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(ControlServerError, match="not a socket"):
        async with serve_control(commands, plain):
            pass
