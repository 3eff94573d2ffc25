"""`hedgerd paper --duration` is a hard stop: the daemon gets a bounded time to stop after
the run (then it is cancelled), and the process exits a bounded time after its summary, or
after the run's deadline, whatever its event loop is doing (issue 17: a paper run under load
that never exited)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from hedgerd import paper
from hedgerd.paper import BUILTIN_PAPER_CONFIG, await_chain, run_deadline_s, stop_daemon
from hedgerd.paper_config import load_paper_config


async def test_a_daemon_that_stops_is_waited_for() -> None:
    stop = asyncio.Event()

    async def daemon() -> int:
        await stop.wait()
        return 0

    task = asyncio.get_running_loop().create_task(daemon())
    assert await stop_daemon(task, stop, 5.0) is None
    assert stop.is_set() and task.result() == 0


async def test_a_daemon_error_surfaces() -> None:
    stop = asyncio.Event()

    async def daemon() -> int:
        await stop.wait()
        raise OSError("venue gone")

    task = asyncio.get_running_loop().create_task(daemon())
    with pytest.raises(OSError, match="venue gone"):
        await stop_daemon(task, stop, 5.0)


async def test_a_daemon_that_does_not_stop_is_cancelled_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deaf to `stop`, and it swallows its first cancel (as a part stuck in a close did):
    stop_daemon still returns after the budget plus the cancel wait, with the error."""
    monkeypatch.setattr(paper, "CANCEL_WAIT_S", 0.2)
    stop = asyncio.Event()
    hang = asyncio.Event()

    async def daemon() -> int:
        try:
            await hang.wait()
        except asyncio.CancelledError:
            await hang.wait()  # swallowed: never ends on its own
        return 0

    task = asyncio.get_running_loop().create_task(daemon())
    await asyncio.sleep(0)  # the task starts waiting
    chain = await_chain(task)  # what the overdue stop's log shows
    assert "<locals>.daemon:" in chain[0] and chain[1].startswith("Event.wait:")
    began = time.monotonic()
    why = await stop_daemon(task, stop, 0.3)
    assert why == "the daemon did not stop within 0.3 s of the end of the run"
    assert time.monotonic() - began < 0.3 + 0.2 + 1.0
    hang.set()
    await task


def test_the_run_deadline_covers_every_stop_budget() -> None:
    config = load_paper_config(None)
    assert config.daemon.shutdown_timeout_s == 10.0
    # 10 s of run + the daemon's 10 s + 10 s grace + two 3 s cancel waits + 30 s margin.
    assert run_deadline_s(10.0, config) == pytest.approx(66.0)
    assert BUILTIN_PAPER_CONFIG["daemon"]["evaluate_interval_s"] == 1.0


def test_the_backstop_exits_a_process_whose_loop_never_returns() -> None:
    """A process that would never exit on its own (a sleeping main thread standing in for a
    stuck asyncio.run clean-up) exits with the backstop's code, its output flushed."""
    code = (
        "import time\n"
        "from hedgerd.paper import ExitBackstop\n"
        "b = ExitBackstop()\n"
        "b.arm(60.0, 1, 'not this one')\n"
        "b.arm(0.2, 3, 'stuck')\n"  # moved: the first deadline is gone
        "print('summary', flush=False)\n"
        "time.sleep(120)\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3
    assert done.stdout == "summary\n"
    assert "hedgerd paper: stuck; exiting" in done.stderr
    assert time.monotonic() - began < 30.0
