"""`hedgerctl reconcile`: the operator runs the order and fill reconciliation now; the command
is audited like every other, and refused (exit 1) by a daemon that offers none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hedgerd.control.commands import Caller, ControlCommands
from hedgerd.control.server import serve_control
from hedgerd.ctl import main as ctl_main


class _Trading:
    async def operator_halt(self, reason: str, actor: str) -> None: ...
    async def operator_resume(self, actor: str) -> None: ...
    async def operator_reduce_only(self, reason: str, actor: str) -> None: ...

    def describe(self) -> Mapping[str, Any]:
        return {"state": "ACTIVE", "reasons": []}


class _Orders:
    async def cancel_all(self, actor: str) -> int:
        return 0

    async def flatten(self, underlying: str | None, actor: str) -> Mapping[str, Any]:
        return {}


class _Audit:
    def __init__(self) -> None:
        self.commands: list[str] = []

    async def record_operator_command(
        self, command: str, args: Mapping[str, Any], caller: Caller, ts_ms: int
    ) -> None:
        self.commands.append(command)

    async def recent_events(self, limit: int) -> list[Mapping[str, Any]]:
        return []


def _commands(audit: _Audit, reconciler: Any) -> ControlCommands:
    return ControlCommands(
        trading=_Trading(),
        orders=_Orders(),
        audit=audit,
        status_source=dict,
        clock_ms=lambda: 1_700_000_000_000,
        reconciler=reconciler,
    )


async def _ctl(*argv: str) -> int:
    return await asyncio.to_thread(ctl_main, list(argv))


async def test_reconcile_runs_the_pass_and_is_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passes: list[int] = []

    async def reconciler() -> Mapping[str, Any]:
        passes.append(1)
        return {"venue": "sim", "missed_fills": ["t-1"], "errors": []}

    audit = _Audit()
    sock = tmp_path / "c.sock"
    async with serve_control(_commands(audit, reconciler), sock):
        capsys.readouterr()
        assert await _ctl("--socket", str(sock), "--json", "reconcile") == 0
    assert passes == [1]
    out = capsys.readouterr().out  # the daemon side's log lines come first
    assert json.loads(out[out.index("{\n") :])["missed_fills"] == ["t-1"]
    assert audit.commands == ["reconcile"]


async def test_reconcile_without_a_reconciler_is_refused_but_audited(tmp_path: Path) -> None:
    audit = _Audit()
    sock = tmp_path / "c.sock"
    async with serve_control(_commands(audit, None), sock):
        assert await _ctl("--socket", str(sock), "reconcile") == 1
    assert audit.commands == ["reconcile"]
