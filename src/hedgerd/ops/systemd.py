"""systemd notifications (sd_notify) without a dependency.

Under a `Type=notify` unit systemd sets `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
namespace); the daemon writes datagrams such as `READY=1`, `STATUS=...`, `WATCHDOG=1` and
`STOPPING=1` to it. Outside systemd there is no socket and every call is a no-op returning
False. Notifications never raise and never block the event loop: a failed send is logged and
reported as False (losing a STATUS line must not stop trading; a lost WATCHDOG ping is
covered by the next one).

`run_watchdog` pings at half of `$WATCHDOG_USEC`, and only while the event loop keeps up and
the daemon's health callback is True, so a wedged daemon is killed and restarted by systemd
(`Restart=on-failure`), where the journal restores its trading state.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class _Health(Protocol):
    def healthy(self) -> bool: ...


def notify_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The AF_UNIX address from `$NOTIFY_SOCKET` (`@name` mapped to the abstract namespace,
    `\\0name`), or None when unset or of a kind this module does not speak (e.g. vsock)."""
    env = os.environ if environ is None else environ
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return None
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    log.warning("sd_notify_socket_unsupported", notify_socket=raw)
    return None


def watchdog_interval_s(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between watchdog pings: half of `$WATCHDOG_USEC`, or None when the watchdog
    is off or meant for another process (`$WATCHDOG_PID` set to another pid)."""
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    watchdog_pid = env.get("WATCHDOG_PID", "")
    if watchdog_pid and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        log.warning("sd_watchdog_usec_invalid", watchdog_usec=usec_text)
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000.0


def _one_line(text: str) -> str:
    # A newline would start another assignment (a STATUS text could otherwise say READY=1).
    return " ".join(text.split())


class SystemdNotifier:
    """Sends sd_notify messages to `address` (from `$NOTIFY_SOCKET` when not given)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        return cls(notify_address(environ))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=VALUE` lines as one datagram; True when it was handed to the socket."""
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            log.warning(
                "sd_notify_failed", message=assignments[0] if assignments else "", error=repr(exc)
            )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (systemd then considers the unit started)."""
        if status is None:
            return self.send("READY=1")
        return self.send("READY=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status`."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Keep-alive ping for `WatchdogSec=`."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Graceful shutdown has begun."""
        if status is None:
            return self.send("STOPPING=1")
        return self.send("STOPPING=1", f"STATUS={_one_line(status)}")

    def reloading(self) -> bool:
        """A configuration reload (SIGHUP) has begun; send `ready()` when it is done."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before systemd gives up on start-up or shutdown (e.g.
        during a long start-up reconciliation)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


async def run_watchdog(
    notifier: SystemdNotifier,
    healthy: Callable[[], bool],
    *,
    loop_monitor: _Health | None = None,
    interval_s: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Ping the systemd watchdog every `interval_s` (default: half of `$WATCHDOG_USEC`) while
    `healthy()` is True and `loop_monitor` (if given) is healthy; withhold the ping otherwise,
    so systemd restarts a daemon that stays unhealthy for `WatchdogSec`.

    `healthy` should mean "this process works" (supervised tasks alive, loop responsive), not
    "the venue is up": an exchange outage is a kill-switch matter, not a restart. Returns at
    once when there is no notify socket or no watchdog; otherwise runs until cancelled.
    """
    interval = watchdog_interval_s() if interval_s is None else interval_s
    if not notifier.enabled or interval is None:
        log.debug("sd_watchdog_off", notify=notifier.enabled, interval_s=interval)
        return
    log.info("sd_watchdog_started", interval_s=interval)
    withheld = False
    while True:
        problem = _problem(healthy, loop_monitor)
        if problem is None:
            notifier.watchdog()
            if withheld:
                log.info("sd_watchdog_resumed")
                notifier.status("healthy")
                withheld = False
        elif not withheld:
            log.warning("sd_watchdog_withheld", problem=problem)
            notifier.status(f"watchdog withheld: {problem}")
            withheld = True
        await sleep(interval)


def _problem(healthy: Callable[[], bool], loop_monitor: _Health | None) -> str | None:
    if loop_monitor is not None and not loop_monitor.healthy():
        return "event loop unresponsive"
    try:
        ok = healthy()
    except Exception as exc:
        log.warning("sd_watchdog_health_raised", error=repr(exc))
        return f"health check raised {type(exc).__name__}"
    return None if ok else "health check failed"


__all__ = ["SystemdNotifier", "notify_address", "run_watchdog", "watchdog_interval_s"]
