"""Put a separate process's wall clock on a simulator's calendar.

`hedgerd run` reads the wall clock (it trades a real venue). A simulator started at a pinned
time (tests, drills) is months away from it, so such a process would see every price as
stale. libfaketime (Debian's `faketime` package), preloaded into the process, starts the
process's wall clock at the simulator's time; both then advance at wall speed, so the
simulator must run at speed 1. Monotonic time stays real (asyncio's timers run on it).
"""

from __future__ import annotations

import glob
from datetime import UTC, datetime

from hedgerd.sim.command import Simulator

#: Where Debian's libfaketime lives (the MT build: hedgerd runs threads).
LIBFAKETIME_GLOB = "/usr/lib/*/faketime/libfaketimeMT.so.1"


class FaketimeMissingError(RuntimeError):
    """libfaketime is not installed (Debian: `apt-get install faketime`)."""


def libfaketime() -> str | None:
    """The path of libfaketime, or None where it is not installed."""
    found = sorted(glob.glob(LIBFAKETIME_GLOB))
    return found[0] if found else None


def on_sim_calendar(sim: Simulator) -> dict[str, str]:
    """Environment variables that start a child process's wall clock at `sim`'s current
    time (UTC). From this call on, `sim` also checks request signatures against its own
    clock, as the venue it stands for checks them against its own: the child signs with the
    faked time. Raises `FaketimeMissingError` without libfaketime, `ValueError` unless `sim`
    runs at speed 1 and unstepped (the faked clock cannot follow anything else)."""
    lib = libfaketime()
    if lib is None:
        raise FaketimeMissingError(
            "libfaketime is not installed (Debian: apt-get install faketime)"
        )
    if sim.clock.stepped or sim.clock.speed != 1.0:
        raise ValueError("a faked wall clock runs at wall speed: start the simulator at speed 1")
    sim.server.auth.wall_ms = lambda: int(sim.now_ms())
    start = datetime.fromtimestamp(sim.now_ms() / 1000, tz=UTC)
    return {
        "LD_PRELOAD": lib,
        "FAKETIME": start.strftime("@%Y-%m-%d %H:%M:%S.%f"),
        "TZ": "UTC",  # libfaketime reads FAKETIME as local time
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


__all__ = ["LIBFAKETIME_GLOB", "FaketimeMissingError", "libfaketime", "on_sim_calendar"]
