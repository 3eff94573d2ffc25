"""The marks' vol-of-vol estimate kept across restarts and HA takeovers (the gap it closes:
the estimator lived in memory, so every start of the hedge loop began at xi = 0 and the band's
constant-vol refinements were fully on until the marks had moved again, for days).

Each sample the hedge loop's `VolOfVolEstimator` records (at most one per 10 minutes per
underlying: the book's |gamma|-weighted mark vol and its time) is written to the journal's
`volvol_samples` table (`JournalStore.record_volvol_sample`), queued on the journal thread
and not awaited: the decision never waits on the disk for it. Each write prunes the
underlying's samples before the window's first change's predecessor, so a table holds at most
one window of them (4,321 rows per underlying at the default 30 days).

At each start of the hedge loop (start-up, the supervisor's restart, an HA takeover: the
standby reads what the active node wrote to the shared PostgreSQL) the first evaluation of an
underlying reads the samples of its window from the journal and rebuilds the estimator from
them (`VolOfVolEstimator.seeded`: the estimate the estimator that sampled them live would
give, a gap while no loop ran being one change, as a live gap is). The evaluation waits for
the read `SEED_WAIT_S` (wall) at most; a later answer is applied at the evaluation that finds
it, with the samples recorded meanwhile after the stored ones. A read that fails logs
`daemon.vol_of_vol_seed_failed` and the estimate starts empty (as before the journal kept
them); a write that fails logs `daemon.vol_of_vol_sample_not_recorded` (the live estimate
is unaffected, the next start lacks that sample).

Where the journal's samples do not reach back over the window (a first start, a new
machine, a journal younger than the window), the part before its first sample is filled
from a venue's volatility index history (`VolIndexVenue`: Deribit's DVOL, hourly; OKX
publishes none, so an OKX-only portfolio has its own samples only). DVOL is the 30-day ATM
implied vol index, a proxy of the book's |gamma|-weighted mark vol, not the same level: its
changes are counted, never one across the joint of the two series
(`VolOfVolEstimator.seeded`'s `proxy`). A fetch that fails logs
`daemon.vol_of_vol_index_failed` and the journal's samples seed alone.

The samples carry the index (USD) beside the mark vol (journal schema 6): the same read
gives the jump variance estimator (`hedging.jumps`) its window's samples, so the index's
jump-to-marked variance ratio survives a restart or takeover too. Where they do not reach
back over its window (`JUMP_WINDOW_MS`: none, or the first after the window's start once
the leading samples no return joins are dropped), the part before their first is filled
from a venue's index history (`IndexHistoryVenue`: Deribit's index chart, hourly; OKX's
index candles), strictly before the journal's first index sample. It is the same quantity
(the underlying's index in USD), so the return across the joint of the two series counts
(when no more than `JUMP_MAX_GAP_MS` apart, as any return). A fetch that fails logs
`daemon.jump_index_history_failed` and the journal's samples seed alone (before them, the
estimate ramps in over a day as before).

The venue publishes no marks: the ratio's denominator for a proxy point takes, in order, the
last vol known at or before it (the journal's own marks where it recorded them, else the
venue's vol index fetched for the vol-of-vol, DVOL: the marks' level as near as the venue
gives it; `proxy_index_samples`), else the first one after it (the nearest level: a vol
moves little next to the index's jumps, and the ratio is a ratio of levels, not of their
changes), else, with no vol series at all (an OKX-only first start), the hedge loop's mark
vol at its first evaluation after the seed (the book's marks now, the only level there is:
`HedgeLoop._with_vol_of_vol` seeds the estimator with it there).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass

import structlog

from hedgerd.execution.journal import Journal
from hedgerd.hedging.jumps import JUMP_MAX_GAP_MS, JUMP_WINDOW_MS
from hedgerd.portfolio.flow_seed import SEED_WAIT_S
from hedgerd.venues.base import IndexHistoryVenue, VolIndexVenue

log = structlog.get_logger(__name__)

#: The oldest a stored sample at or before the window's start may be to stand as its first
#: change's predecessor: DVOL's step (its own predecessor is at most that old). A live
#: estimator's is a sampling step old; one much older is the last sample of a run that ended
#: before the window (the daemon was down longer than it): the change from it spans the
#: time before the window too (a year's move counted in 30 days).
PREDECESSOR_MAX_AGE_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class VolOfVolSeed:
    """`underlying`'s stored samples ((time ms, mark vol), oldest first) for an estimator of
    `window_ms`, read at `cut_ms` (the daemon's clock); `proxy`, the venue's vol index
    (time ms, vol fraction) over the part of the window before them; `index`, the samples
    of the jump variance's window (`JUMP_WINDOW_MS`) that carry the index ((time ms, index
    USD, mark vol), oldest first); `index_proxy`, the venue's index history (time ms, index
    USD) over the part of that window before them (strictly before their first)."""

    underlying: str
    samples: tuple[tuple[int, float], ...]
    window_ms: int
    cut_ms: int
    proxy: tuple[tuple[int, float], ...] = ()
    index: tuple[tuple[int, float, float], ...] = ()
    index_proxy: tuple[tuple[int, float], ...] = ()


async def read_seed(
    journal: Journal,
    venue: VolIndexVenue | None,
    underlying: str,
    window_ms: int,
    cut_ms: int,
    index_venue: IndexHistoryVenue | None = None,
) -> VolOfVolSeed | None:
    """The samples of `underlying`'s window up to `cut_ms`, and `venue`'s vol index before
    the first of them when they do not reach the window's start; likewise `index_venue`'s
    index history before the jump window's index samples; None (logged) when the journal
    could not give them."""
    since = cut_ms - window_ms
    try:
        samples = await journal.volvol_samples(underlying, since, cut_ms)
        index = await journal.index_samples(underlying, cut_ms - JUMP_WINDOW_MS, cut_ms)
    except Exception as exc:  # any failure: start empty, never hold hedging for it
        log.warning(
            "daemon.vol_of_vol_seed_failed",
            underlying=underlying,
            error_type=type(exc).__name__,
            error=str(exc)[:200],
        )
        return None
    if samples and samples[0][0] < since - PREDECESSOR_MAX_AGE_MS:
        samples = samples[1:]  # not the window's: the part before the next one is DVOL's
    proxy: list[tuple[int, float]] = []
    if venue is not None and (not samples or samples[0][0] > since):
        until = samples[0][0] - 1 if samples else cut_ms
        try:
            proxy = await venue.fetch_vol_index(underlying, since, until)
        except Exception as exc:  # the journal's samples seed alone
            log.warning(
                "daemon.vol_of_vol_index_failed",
                underlying=underlying,
                error_type=type(exc).__name__,
                error=str(exc)[:200],
            )
    index = _joined(index, cut_ms - JUMP_WINDOW_MS)
    index_proxy: list[tuple[int, float]] = []
    jump_since = cut_ms - JUMP_WINDOW_MS
    if index_venue is not None and (not index or index[0][0] > jump_since):
        until = index[0][0] - 1 if index else cut_ms
        try:
            # From an hour earlier: the window's first return and its bipower pair start
            # before it (as the journal's two samples before the window).
            got = await index_venue.fetch_index_history(
                underlying, jump_since - JUMP_MAX_GAP_MS, until
            )
        except Exception as exc:  # the journal's samples seed alone
            log.warning(
                "daemon.jump_index_history_failed",
                underlying=underlying,
                error_type=type(exc).__name__,
                error=str(exc)[:200],
            )
        else:
            index_proxy = [(t, s) for t, s in got if t <= until]
    return VolOfVolSeed(
        underlying,
        tuple(samples),
        window_ms,
        cut_ms,
        tuple(proxy),
        tuple(index),
        tuple(index_proxy),
    )


def _joined(index: list[tuple[int, float, float]], since_ms: int) -> list[tuple[int, float, float]]:
    """`index` without its samples at or before `since_ms` that no chain of returns (each
    across `JUMP_MAX_GAP_MS` at most) joins to the first after it: the estimator's window
    takes nothing from them (a new series starts after them), and the run of a daemon that
    stopped long before the window would say the samples reach back over it."""
    k = next((i for i, (t, _, _) in enumerate(index) if t > since_ms), len(index))
    if k == 0:
        return index
    if k == len(index) or index[k][0] - index[k - 1][0] > JUMP_MAX_GAP_MS:
        return index[k:]
    j = k - 1
    while j > 0 and index[j][0] - index[j - 1][0] <= JUMP_MAX_GAP_MS:
        j -= 1
    return index[j:]


def proxy_index_samples(
    seed: VolOfVolSeed, mark_vol: float | None = None
) -> list[tuple[int, float, float]] | None:
    """The seed's index proxy as the jump estimator's samples ((time ms, index USD, mark
    vol), oldest first), each point's vol the last one known at or before it (the journal's
    marks, its index samples' and DVOL's), else the first after it, else `mark_vol` (the
    hedge loop's now); None when a vol is needed and none is known."""
    if not seed.index_proxy:
        return []
    vols = sorted(
        [*seed.proxy, *seed.samples, *((t, v) for t, _, v in seed.index)],
        key=lambda tv: tv[0],
    )
    if not vols:
        return None if mark_vol is None else [(t, s, mark_vol) for t, s in seed.index_proxy]
    times = [t for t, _ in vols]
    return [(t, s, vols[max(bisect.bisect_right(times, t) - 1, 0)][1]) for t, s in seed.index_proxy]


class VolOfVolSeeds:
    """The journal reads in flight, one per underlying, each with the wall deadline
    (monotonic s) of the wait for it."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[asyncio.Task[VolOfVolSeed | None], float]] = {}

    def __contains__(self, underlying: object) -> bool:
        return underlying in self._tasks

    def cancel(self) -> None:
        """Cancel the reads in flight (the hedge loop stopped: nobody will take them)."""
        for task, _ in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    def start(
        self,
        journal: Journal,
        venue: VolIndexVenue | None,
        underlying: str,
        window_ms: int,
        cut_ms: int,
        index_venue: IndexHistoryVenue | None = None,
    ) -> None:
        """Read `underlying`'s samples of the window up to `cut_ms`, `venue`'s vol index
        and `index_venue`'s index history before them (replacing a read in flight: the
        window changed)."""
        old = self._tasks.pop(underlying, None)
        if old is not None:
            old[0].cancel()
        task = asyncio.get_running_loop().create_task(
            read_seed(journal, venue, underlying, window_ms, cut_ms, index_venue),
            name=f"volvol-seed:{underlying}",
        )
        self._tasks[underlying] = (task, time.monotonic() + SEED_WAIT_S)

    async def landed(self, underlying: str) -> VolOfVolSeed | None:
        """`underlying`'s seed if it has landed (once), waiting for it until its deadline;
        None while in flight, and for a failed read (`read_seed` logged it)."""
        got = self._tasks.get(underlying)
        if got is None:
            return None
        task, deadline = got
        wait_s = deadline - time.monotonic()
        if not task.done() and wait_s > 0.0:
            await asyncio.wait({task}, timeout=wait_s)
        # Once: two evaluations may have waited on it (the timer's and an operator's).
        if not task.done() or self._tasks.get(underlying) is not got:
            return None
        del self._tasks[underlying]
        return None if task.cancelled() else task.result()
