"""Book integrity of one account: what the book's reconciliations and delta cross-checks mean
for the kill switches, and the refresh of the book's positions when they look off.

The book is the venue account's truth as streamed; a reconciliation that must correct it
means the stream lost something (position-mismatch switch), and a delta that disagrees with
the venue's own figure is first repaired from the venue's snapshot, so only a divergence the
venue's positions confirm lasts long enough to trip the Greeks-divergence switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence

import structlog

from hedgerd.accounts.parts import AccountParts
from hedgerd.book.greeks_book import BookError, GreeksBook
from hedgerd.config import Numeraire
from hedgerd.model import Fill
from hedgerd.portfolio.parts import PortfolioParts
from hedgerd.risk.kill_switches import PositionDiff
from hedgerd.venues.base import VenueError
from hedgerd.venues.book_feed import DeltaDivergence, ReconcileReport
from hedgerd.venues.units import amount_to_qty_coin

log = structlog.get_logger(__name__)

#: Board seconds between two book refreshes asked for by a delta divergence.
DIVERGENCE_REFRESH_S = 10.0
#: Share of the Greeks-divergence limit from which a divergence refreshes the book.
DIVERGENCE_REFRESH_SHARE = 0.5


def position_diffs_coin(report: ReconcileReport, book: GreeksBook) -> list[PositionDiff]:
    """The corrections of a reconciliation as position differences in coin of the underlying:
    USD-sized (inverse) contracts converted at the underlying's index. A position the book
    cannot convert (no index) is reported as NaN, which the switch treats as a mismatch."""
    diffs: list[PositionDiff] = []
    for name, ours_amount, venue_amount in report.corrected:
        try:
            inst = book.instrument(name)
            index_usd = book.index_price(inst.underlying)
            ours = amount_to_qty_coin(inst, ours_amount, index_usd)
            theirs = amount_to_qty_coin(inst, venue_amount, index_usd)
        except (BookError, ValueError):
            ours, theirs = math.nan, math.nan
        diffs.append(PositionDiff(name, ours, theirs))
    return diffs


class BookIntegrity:
    """Judges one account's reconciliations and divergences, and refreshes its book."""

    def __init__(
        self,
        account: AccountParts,
        shared: PortfolioParts,
        *,
        numeraire: Numeraire,
        board_clock_ms: Callable[[], int],
    ) -> None:
        self.account = account
        self.shared = shared
        self.numeraire = numeraire
        self.board_clock_ms = board_clock_ms
        #: The book's position refresh after fills the stream missed, or when its delta
        #: disagrees with the venue's (one at a time; `_wanted` asks for one more pass when a
        #: request comes while one is under way).
        self._book_refresh: asyncio.Task[None] | None = None
        self._book_refresh_wanted = False
        #: Board-clock ms of the last refresh asked for by a delta divergence (rate limit).
        self.divergence_refresh_ms: int | None = None
        #: Underlyings whose delta diverged at the last cross-check.
        self._diverged: set[str] = set()
        #: Signed amounts (instrument's unit) of repaired fills the book's positions have not
        #: seen yet: what the next "fill_repair" refresh is expected to correct, and no more.
        self.repaired_pending: dict[str, float] = {}

    def on_reconcile(self, report: ReconcileReport) -> None:
        """A timer reconciliation that had to correct the book means the position stream lost
        an update: fed to the position-mismatch kill switch, as are the corrections of a
        refresh after a repaired fill or a delta divergence (those two only when they found
        something: they run because something is expected to be off). Corrections by the
        amount of a fill the executor repaired are that fill, whichever pass finds them.
        Start-up (the book was empty) and post-reconnect (the outage's fills are expected)
        corrections are recovery, not mismatches; a reconnect also starts the count over
        (runs counted before it judged a stream that is gone)."""
        board, book, venue = self.shared.board, self.account.book, self.account.venue
        if board is None or book is None or venue is None:
            return
        if self.shared.metrics is not None:
            self.shared.metrics.record_reconciliation(
                venue.name, position_mismatches=len(report.corrected)
            )
        # Every pass sets the book to the venue's positions: the repairs are in it now.
        report = self._unexplained_by_repairs(report)
        if report.reason in ("fill_repair", "divergence"):
            if not report.corrected:
                return  # found only what it was run for: neutral
        elif report.reason == "reconnect":
            # A new stream: what the old one lost says nothing of it.
            board.mismatch.restart(venue.name)
            return
        elif report.reason != "timer":
            return
        diffs = position_diffs_coin(report, book)
        board.on_reconciliation(self.board_clock_ms(), venue.name, diffs)

    def expect_repaired(self, fill: Fill) -> None:
        """A fill the executor repaired (already applied to the feed): the next refresh is
        expected to find it, and is asked for now rather than at the next timer run."""
        pending = self.repaired_pending
        pending[fill.instrument] = pending.get(fill.instrument, 0.0) + fill.side.sign * fill.amount
        self.want_refresh()

    def want_refresh(self) -> None:
        """Refresh the book's positions from the venue now (one pass at a time)."""
        self._book_refresh_wanted = True
        if self._book_refresh is None or self._book_refresh.done():
            self._book_refresh = asyncio.get_running_loop().create_task(
                self._refresh_book(), name="book-refresh"
            )

    def on_divergence(self, now_ms: int, divergences: Sequence[DeltaDivergence]) -> None:
        """The book's delta disagrees with the venue's own figure: most often a position
        update the stream lost (or a stale venue figure). A refresh from the venue's snapshot
        repairs either well before the Greeks-divergence switch's `min_duration_s` is up, so
        only a divergence the venue's own positions confirm keeps holding and trips it.
        Asked for when two cross-checks in a row (about 5 s apart) find the switch's
        numeraire off by half its limit or more: smaller or shorter gaps, such as the
        venue's figure lagging a hedge's fill, wait for the timer run. At most one per
        `DIVERGENCE_REFRESH_S`."""
        board = self.shared.board
        if board is None:
            return
        limits = board.divergence.settings
        exceeded = [
            d
            for d in divergences
            if d.numeraire == self.numeraire
            and abs(d.diff_coin) >= DIVERGENCE_REFRESH_SHARE * limits.limit_coin(d.underlying)
        ]
        held = [d for d in exceeded if d.underlying in self._diverged]
        self._diverged = {d.underlying for d in exceeded}
        if not held:
            return
        last = self.divergence_refresh_ms
        if last is not None and now_ms - last < DIVERGENCE_REFRESH_S * 1000:
            return
        self.divergence_refresh_ms = now_ms
        worst = max(held, key=lambda d: abs(d.diff_coin))
        log.warning(
            "daemon.book_refresh_divergence",
            venue=self.account.name,
            underlying=worst.underlying,
            numeraire=worst.numeraire,
            hedgerd_delta_coin=worst.hedgerd_delta_coin,
            venue_delta_coin=worst.venue_delta_coin,
        )
        self.want_refresh()

    def _unexplained_by_repairs(self, report: ReconcileReport) -> ReconcileReport:
        """The corrections of a reconciliation less the repaired fills' own amounts (which
        it consumes): whatever is left is a position the stream lost besides them, not the
        missed fills."""
        pending, self.repaired_pending = self.repaired_pending, {}
        left = []
        for name, ours, venue in report.corrected:
            expected = ours + pending.get(name, 0.0)
            if not math.isclose(venue, expected, rel_tol=1e-9, abs_tol=1e-9):
                left.append((name, expected, venue))
        return dataclasses.replace(report, corrected=tuple(left))

    async def _refresh_book(self) -> None:
        while self._book_refresh_wanted and self.account.feed is not None:
            self._book_refresh_wanted = False
            # Named for the log; `on_reconcile` matches repaired fills whatever the reason.
            reason = "fill_repair" if self.repaired_pending else "divergence"
            try:
                await self.account.feed.reconcile(reason)
            except VenueError as exc:
                log.warning("daemon.book_refresh_failed", error=str(exc)[:200])
                return

    async def close(self) -> None:
        """Cancel a refresh under way (shutdown)."""
        if self._book_refresh is not None:
            self._book_refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._book_refresh
