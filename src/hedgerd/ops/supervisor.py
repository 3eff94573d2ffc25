"""Supervised tasks: a part that crashes halts trading (through `on_crash`), is logged with
its traceback, and is restarted with exponential backoff, instead of dying silently or trading
on. All parts stop together; a part that does not end within `stop_grace_s` of being cancelled
is logged (`part_stuck`) and left behind, so that shutdown still reaches the cancel-all of the
hedger's orders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Part:
    """One long-running part of the daemon. `run` is called again after every crash."""

    name: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays in seconds: initial_s, doubling up to max_s; back to initial_s after a
    part stayed up for healthy_after_s."""

    initial_s: float = 0.5
    max_s: float = 30.0
    healthy_after_s: float = 60.0

    def delay_s(self, consecutive_crashes: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** max(0, consecutive_crashes - 1)))


class Supervisor:
    """Runs parts until `stop()`; `on_crash(part, exc)` is awaited before each restart."""

    def __init__(
        self,
        on_crash: Callable[[str, BaseException], Awaitable[None]],
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] | None = None,
        stop_grace_s: float = 5.0,
    ) -> None:
        self._on_crash = on_crash
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._monotonic = monotonic or asyncio.get_running_loop().time
        self._stopping = asyncio.Event()
        self._stop_grace_s = stop_grace_s
        self.crashes: dict[str, int] = {}
        #: Parts that had not ended `stop_grace_s` after being cancelled (last `run`).
        self.stuck: list[str] = []

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, parts: Sequence[Part]) -> None:
        """Run every part until `stop()` is called; then cancel them and return once they
        ended, or after `stop_grace_s` (wall seconds) with the stragglers logged."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._keep(part), name=part.name) for part in parts]
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            _done, pending = await asyncio.wait(tasks, timeout=self._stop_grace_s)
            self.stuck = sorted(t.get_name() for t in pending)
            if pending:
                # A part that swallows its cancellation (or waits on something that cannot be
                # cancelled) must not keep the daemon from cancelling its orders.
                log.error("part_stuck", parts=self.stuck, grace_s=self._stop_grace_s)

    async def _keep(self, part: Part) -> None:
        consecutive = 0
        while not self._stopping.is_set():
            started = self._monotonic()
            try:
                await part.run()
                if self._stopping.is_set():
                    return
                raise RuntimeError(f"part {part.name} returned unexpectedly")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._monotonic() - started >= self._backoff.healthy_after_s:
                    consecutive = 0
                consecutive += 1
                self.crashes[part.name] = self.crashes.get(part.name, 0) + 1
                delay_s = self._backoff.delay_s(consecutive)
                log.error(
                    "part_crashed",
                    part=part.name,
                    error=repr(exc),
                    restart_in_s=delay_s,
                    crashes=self.crashes[part.name],
                    exc_info=exc,
                )
                try:
                    await self._on_crash(part.name, exc)
                except Exception as hook_exc:
                    log.error("crash_hook_failed", part=part.name, error=repr(hook_exc))
                await self._sleep(delay_s)
                log.info("part_restarting", part=part.name)
