"""Supervisor: a crash halts (on_crash), restarts with backoff; stop() ends everything."""

from __future__ import annotations

import asyncio
import contextlib

from hedgerd.ops.supervisor import Backoff, Part, Supervisor


async def test_crash_calls_hook_and_restarts_with_backoff() -> None:
    crashes: list[str] = []
    delays: list[float] = []
    runs = {"flaky": 0}
    steady_started = asyncio.Event()
    recovered = asyncio.Event()

    async def on_crash(name: str, exc: BaseException) -> None:
        crashes.append(f"{name}:{exc}")

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def flaky() -> None:
        runs["flaky"] += 1
        if runs["flaky"] <= 3:
            raise ValueError(f"boom {runs['flaky']}")
        recovered.set()
        await asyncio.Event().wait()

    async def steady() -> None:
        steady_started.set()
        await asyncio.Event().wait()

    sup = Supervisor(on_crash, Backoff(initial_s=1.0, max_s=3.0), sleep=fake_sleep)
    runner = asyncio.create_task(sup.run([Part("flaky", flaky), Part("steady", steady)]))
    await asyncio.wait_for(recovered.wait(), 5)
    await asyncio.wait_for(steady_started.wait(), 5)
    sup.stop()
    await asyncio.wait_for(runner, 5)
    assert crashes == ["flaky:boom 1", "flaky:boom 2", "flaky:boom 3"]
    assert delays == [1.0, 2.0, 3.0]
    assert sup.crashes == {"flaky": 3}


async def test_unexpected_return_is_a_crash() -> None:
    crashes: list[str] = []
    calls = 0
    again = asyncio.Event()

    async def on_crash(name: str, exc: BaseException) -> None:
        crashes.append(name)

    async def returns() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            again.set()
            await asyncio.Event().wait()

    async def no_sleep(seconds: float) -> None:
        return None

    sup = Supervisor(on_crash, sleep=no_sleep)
    runner = asyncio.create_task(sup.run([Part("p", returns)]))
    await asyncio.wait_for(again.wait(), 5)
    sup.stop()
    await asyncio.wait_for(runner, 5)
    assert crashes == ["p"]


def test_backoff_doubles_and_caps() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0)
    assert [b.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


async def test_a_part_that_ignores_its_cancellation_does_not_hold_up_the_stop() -> None:
    """Shutdown must reach the cancel-all: a part stuck past `stop_grace_s` is logged and left
    behind, the others stop as usual."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    async def polite() -> None:
        await asyncio.Event().wait()

    async def on_crash(name: str, exc: BaseException) -> None:
        raise AssertionError(f"{name} crashed: {exc!r}")

    sup = Supervisor(on_crash, stop_grace_s=0.05)
    runner = asyncio.create_task(sup.run([Part("stubborn", stubborn), Part("polite", polite)]))
    await asyncio.wait_for(started.wait(), 5)
    sup.stop()
    await asyncio.wait_for(runner, 5)  # returns although "stubborn" is still running
    assert sup.stuck == ["stubborn"]
    release.set()
