"""`hedgerd paper` holds the simulated clock at `--start-ms` until its daemon is READY: a
start-up slowed by the machine finds the market where it began and the run succeeds late,
instead of the stale-data checks seeing minutes of simulated time jump ("no ticker for
1042 s" at 60x) and the run failing its 60 s start-up limit. Nor does the hedge loop's
first evaluation find it moved: the loop starts with READY, before the clock is released."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar, cast

import pytest
from e2e_support import REPO, short_dir

from hedgerd import paper
from hedgerd.daemon import Daemon, DaemonError
from hedgerd.execution.executor import Executor
from hedgerd.model import HedgeDecision
from hedgerd.paper_config import load_paper_config
from hedgerd.portfolio.hedge_loop import HedgeLoop
from pinned_clock import TEST_START_MS

#: The start-up delay the test drives (wall seconds): 60 simulated seconds at 60x.
START_DELAY_S = 1.0


class _SlowStart(Daemon):
    """The paper daemon with an explicit start-up delay, noting the simulated time around it."""

    seen_ms: ClassVar[list[int]] = []

    async def _start_trading(self, executor: Executor) -> None:
        _SlowStart.seen_ms.append(self.clock_ms())
        await asyncio.sleep(START_DELAY_S)  # the delay under test, not a wait for luck
        _SlowStart.seen_ms.append(self.clock_ms())
        await super()._start_trading(executor)


async def test_a_slow_start_holds_the_market_at_its_start_and_succeeds_late(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work: Path = short_dir()
    base = load_paper_config(REPO / "config" / "paper.toml")
    config = base.model_copy(
        update={
            "journal": base.journal.model_copy(update={"path": work / "journal.sqlite"}),
            "control": base.control.model_copy(update={"socket_path": work / "ctl.sock"}),
        }
    )
    _SlowStart.seen_ms = []
    monkeypatch.setattr(paper, "Daemon", _SlowStart)
    first_evaluation_ms: list[int] = []
    evaluate = HedgeLoop.evaluate

    async def noted(loop: HedgeLoop, underlying: str) -> HedgeDecision | None:
        if not first_evaluation_ms:
            first_evaluation_ms.append(loop.clocks.clock_ms())
        return await evaluate(loop, underlying)

    monkeypatch.setattr(HedgeLoop, "evaluate", noted)
    # Start-up notes every 0.3 s: the delay outlasts several, and the run goes on.
    monkeypatch.setattr(paper, "READY_NOTE_S", 0.3)
    summary = await paper.run_paper(
        config,
        duration_s=1.0,
        speed=60.0,
        seed=1,
        start_ms=TEST_START_MS,
        exchanges=("deribit",),
    )
    assert _SlowStart.seen_ms == [TEST_START_MS, TEST_START_MS]
    # The first evaluation began at the start: no simulated time ran between READY and it.
    assert first_evaluation_ms[0] == TEST_START_MS
    assert summary["errors"] == []
    assert summary["state"] == "ACTIVE"
    assert summary["simulated_s"] > 0  # the clock runs once READY
    assert "the daemon is still starting" in capsys.readouterr().err


async def _stop_wait(stop: asyncio.Event) -> int:
    """A daemon task that is never READY and ends when stopped."""
    await stop.wait()
    return 0


async def test_a_stop_during_start_up_ends_the_wait() -> None:
    """Ctrl-C while the daemon is still starting ends the run there (no 600 s wait)."""
    daemon = cast(Daemon, SimpleNamespace(ready=asyncio.Event()))
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_stop_wait(stop))
    asyncio.get_running_loop().call_soon(stop.set)
    with pytest.raises(DaemonError, match="was stopped before it was ready"):
        await paper.await_ready(daemon, task, stop)
    assert task.done()


async def test_a_start_up_that_hangs_ends_after_the_ready_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paper, "READY_TIMEOUT_S", 0.05)
    daemon = cast(Daemon, SimpleNamespace(ready=asyncio.Event()))
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_stop_wait(stop))
    with pytest.raises(DaemonError, match="did not become ready within"):
        await paper.await_ready(daemon, task, stop)
    assert stop.is_set() and task.done()
