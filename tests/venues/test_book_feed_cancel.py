"""`BookFeed.wait_until` never swallows a cancel: the hedge loop waits on it every evaluation,
and Python 3.11's `asyncio.wait_for` returns the result (dropping the cancel) when the cancel
lands as the wait completes, so a shutdown's cancel of the hedge loop was lost and the daemon
never stopped (CI: an HA e2e daemon that never reached its shutdown)."""

from __future__ import annotations

import asyncio

import pytest

from hedgerd.venues.book_feed import BookFeed


@pytest.mark.parametrize("yields_before_cancel", range(6))
async def test_a_cancel_landing_as_the_wait_completes_is_not_lost(
    yields_before_cancel: int,
) -> None:
    # Only the condition `wait_until` waits on: the rest of a feed plays no part here.
    feed = object.__new__(BookFeed)
    feed._changed = asyncio.Condition()
    ready = False

    async def evaluation() -> None:
        await feed.wait_until(lambda: ready, 5.0)
        await asyncio.Event().wait()  # where a lost cancel leaves the task

    task = asyncio.create_task(evaluation())
    for _ in range(2):
        await asyncio.sleep(0)  # the task is waiting
    ready = True
    await feed._notify()
    for _ in range(yields_before_cancel):
        await asyncio.sleep(0)
    task.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    assert task.cancelled()
