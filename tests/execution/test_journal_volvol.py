"""The journal's vol-of-vol samples (`volvol_samples`, what seeds the hedge loop's estimator
at each start), on SQLite and on PostgreSQL (`journal_backend`): kept, read back with the
window's first change's predecessor, pruned to a window, written by the async journal
without the caller waiting, and read by a second node on the same database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hedgerd.execution import journal_schema
from hedgerd.execution.journal import Journal, JournalStore
from hedgerd.execution.journal_db import JournalLocation
from journal_backends import JournalBackend, raw

DAY_MS = 86_400_000
T0 = 1_790_000_000_000
SAMPLE_MS = 600_000
WINDOW_MS = 2 * DAY_MS


@pytest.fixture
def location(journal_backend: JournalBackend) -> Iterator[JournalLocation]:
    with journal_backend.fresh() as loc:
        yield loc


def _samples(n: int, start_ms: int = T0) -> list[tuple[int, float]]:
    return [(start_ms + i * SAMPLE_MS, 0.5 + 0.001 * (i % 17)) for i in range(n)]


def test_samples_round_trip_with_the_predecessor_and_are_pruned_to_a_window(
    location: JournalLocation,
) -> None:
    samples = _samples(3 * 144)  # three days of 10-minute samples
    store = JournalStore(location)
    try:
        for t, v in samples:
            store.record_volvol_sample("BTC", t, v, t - WINDOW_MS)
        store.record_volvol_sample("ETH", T0, 0.7, T0 - WINDOW_MS)
        now = samples[-1][0]
        got = store.volvol_samples("BTC", now - WINDOW_MS, now)
        # The window's samples after the last one at or before its start, which leads.
        inside = [s for s in samples if s[0] > now - WINDOW_MS]
        pred = max(s for s in samples if s[0] <= now - WINDOW_MS)
        assert got == [pred, *inside]
        # Pruned: nothing older than the predecessor is kept (bounded: a window's worth).
        kept = [
            tuple(r)
            for r in store.iter_rows("SELECT ts_ms FROM volvol_samples WHERE underlying = 'BTC'")
        ]
        assert len(kept) == len(inside) + 1
        assert store.volvol_samples("ETH", now - WINDOW_MS, now) == [(T0, 0.7)]
        # The same time again (another node's write on a shared journal): the first stands.
        store.record_volvol_sample("BTC", now, 9.0, now - WINDOW_MS)
        assert store.volvol_samples("BTC", now - 1, now)[-1] == (now, samples[-1][1])
        # Nothing after `until`; nothing for an unknown underlying.
        assert store.volvol_samples("BTC", now - WINDOW_MS, now - WINDOW_MS) == [pred]
        assert store.volvol_samples("SOL", 0, now) == []
    finally:
        store.close()
    # A restart (another process, or the standby of a shared PostgreSQL) reads the same.
    again = JournalStore(location)
    try:
        assert again.volvol_samples("BTC", now - WINDOW_MS, now) == [pred, *inside]
    finally:
        again.close()


async def test_the_async_journal_queues_a_sample_without_waiting(location: JournalLocation) -> None:
    journal = await Journal.open(location)
    try:
        writes = [
            journal.record_volvol_sample_soon("BTC", t, v, t - WINDOW_MS) for t, v in _samples(5)
        ]
        # Queued in order on the journal thread: a read awaited after them sees them all.
        assert await journal.volvol_samples("BTC", T0 - WINDOW_MS, T0 + DAY_MS) == _samples(5)
        assert all(w.done() and w.exception() is None for w in writes)
    finally:
        await journal.close()


def test_samples_carry_the_index_for_the_jump_variance(location: JournalLocation) -> None:
    """Schema 6: the index beside the mark vol (the jump variance's seed); a row written
    without it (before version 6) is a vol-of-vol sample only."""
    store = JournalStore(location)
    try:
        store.record_volvol_sample("BTC", T0, 0.5, T0 - WINDOW_MS)  # no index
        rows = [(T0 + i * SAMPLE_MS, 0.5, 60_000.0 + i) for i in range(1, 4)]
        for t, v, s in rows:
            store.record_volvol_sample("BTC", t, v, t - WINDOW_MS, index_usd=s)
        now = rows[-1][0]
        assert store.index_samples("BTC", T0 - 1, now) == [(t, s, v) for t, v, s in rows]
        # After the two at or before the start (the window's first return's and its
        # bipower pair's): the row without an index is not one of them.
        assert store.index_samples("BTC", T0, now) == [(t, s, v) for t, v, s in rows]
        assert store.index_samples("BTC", rows[1][0], now) == [(t, s, v) for t, v, s in rows]
        assert store.index_samples("BTC", now, now) == [(t, s, v) for t, v, s in rows[1:]]
        assert store.volvol_samples("BTC", T0 - 1, now) == [
            (T0, 0.5),
            *((t, v) for t, v, _ in rows),
        ]
        assert store.index_samples("ETH", 0, now) == []
    finally:
        store.close()


def test_a_version_5_sample_survives_the_migration(location: JournalLocation) -> None:
    """A journal of schema 5 with samples opens at 6: the samples stay, without an index."""
    with raw(location) as db:
        assert journal_schema.migrate(db, target=5) == (0, 5)
        db.execute(
            "INSERT INTO volvol_samples (underlying, ts_ms, mark_vol, recorded_ms) "
            f"VALUES ('BTC', {T0}, 0.5, {T0})"
        )
    store = JournalStore(location)
    try:
        assert store.schema_version == 6
        assert store.volvol_samples("BTC", T0 - 1, T0) == [(T0, 0.5)]
        assert store.index_samples("BTC", T0 - 1, T0) == []
    finally:
        store.close()
