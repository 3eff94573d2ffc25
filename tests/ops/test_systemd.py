"""hedgerd.ops.systemd: sd_notify datagrams arrive on a real AF_UNIX socket; the watchdog
pings only while healthy; everything is a no-op outside systemd."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hedgerd.ops.systemd import (
    SystemdNotifier,
    notify_address,
    run_watchdog,
    watchdog_interval_s,
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def _drain(sock: socket.socket) -> list[str]:
    out: list[str] = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(2.0)


def test_messages_arrive_on_a_path_socket(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("reconciling deribit")
    assert notifier.watchdog()
    assert notifier.stopping("cancelling hedge orders")
    assert notifier.extend_timeout(30)
    assert notifier.reloading()
    notifier.close()
    got = [sock.recv(4096).decode() for _ in range(6)]
    assert got[:5] == [
        "READY=1",
        "STATUS=reconciling deribit",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=cancelling hedge orders",
        "EXTEND_TIMEOUT_USEC=30000000",
    ]
    reload_lines = got[5].split("\n")
    assert reload_lines[0] == "RELOADING=1"
    assert reload_lines[1].startswith("MONOTONIC_USEC=")
    assert int(reload_lines[1].split("=")[1]) > 0


def test_abstract_namespace_socket() -> None:
    name = f"hedgerd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        assert notify_address({"NOTIFY_SOCKET": "@" + name}) == "\0" + name
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready("up")
        assert sock.recv(4096).decode() == "READY=1\nSTATUS=up"
        notifier.close()
    finally:
        sock.close()


def test_status_text_cannot_inject_assignments(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = SystemdNotifier(path)
    notifier.status("halted\nREADY=1\nWATCHDOG=1")
    assert sock.recv(4096).decode() == "STATUS=halted READY=1 WATCHDOG=1"
    notifier.close()


def test_no_op_outside_systemd() -> None:
    notifier = SystemdNotifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_send_to_a_vanished_socket_returns_false(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert notifier.ready() is False  # logged, never raised
    notifier.close()


def test_watchdog_interval() -> None:
    pid = os.getpid()
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "nope"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None


class _StopError(Exception):
    pass


class _Loop:
    def __init__(self, states: list[bool]) -> None:
        self.states = states
        self.i = 0

    def healthy(self) -> bool:
        return self.states[self.i]


async def test_watchdog_pings_only_while_healthy(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = SystemdNotifier(path)
    # One entry per beat: (loop monitor healthy, health callback result).
    beats = [(True, True), (True, False), (True, False), (False, True), (True, True)]
    loop = _Loop([b[0] for b in beats])
    sleeps: list[float] = []

    def health() -> bool:
        return beats[loop.i][1]

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        loop.i += 1
        if loop.i == len(beats):
            raise _StopError

    with pytest.raises(_StopError):
        await run_watchdog(notifier, health, loop_monitor=loop, interval_s=7.5, sleep=fake_sleep)
    notifier.close()
    assert sleeps == [7.5] * len(beats)
    assert _drain(sock) == [
        "WATCHDOG=1",  # beat 0: healthy
        "STATUS=watchdog withheld: health check failed",  # beat 1: withheld, said once
        # beat 2: still failing: nothing sent
        # beat 3: callback ok but the loop monitor is not: still withheld, nothing sent
        "WATCHDOG=1",  # beat 4: healthy again
        "STATUS=healthy",
    ]


async def test_watchdog_health_that_raises_withholds(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = SystemdNotifier(path)
    calls = [0]

    def health() -> bool:
        raise RuntimeError("boom")

    async def fake_sleep(seconds: float) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise _StopError

    with pytest.raises(_StopError):
        await run_watchdog(notifier, health, interval_s=1.0, sleep=fake_sleep)
    notifier.close()
    assert _drain(sock) == ["STATUS=watchdog withheld: health check raised RuntimeError"]


async def test_watchdog_returns_at_once_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    async def never(seconds: float) -> None:
        raise AssertionError("must not sleep")

    await run_watchdog(SystemdNotifier(None), lambda: True, interval_s=1.0, sleep=never)
    await run_watchdog(SystemdNotifier("/nonexistent"), lambda: True, sleep=never)


async def test_watchdog_from_the_environment_on_a_real_timer(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole path as systemd drives it: $NOTIFY_SOCKET and $WATCHDOG_USEC (20 ms, so a ping
    # every 10 ms), real asyncio.sleep; waits for datagrams, bounded by a generous timeout.
    sock, path = receiver
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = SystemdNotifier.from_env()
    task = asyncio.create_task(run_watchdog(notifier, lambda: True))
    loop = asyncio.get_running_loop()
    try:
        got = [
            (await asyncio.wait_for(loop.sock_recv(sock, 4096), 10.0)).decode() for _ in range(3)
        ]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        notifier.close()
    assert got == ["WATCHDOG=1"] * 3
