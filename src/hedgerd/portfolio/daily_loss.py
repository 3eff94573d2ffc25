"""The daily hedge loss: the day's hedge P&L from the journal's fills, marked at the hedge
instruments' latest mids, fed to the daily-loss kill switch (portfolio-wide)."""

from __future__ import annotations

import math

import structlog

from hedgerd.portfolio.scope import PortfolioService
from hedgerd.risk.kill_switches import day_start_ms, hedge_pnl_usd

log = structlog.get_logger(__name__)


class DailyLossCheck(PortfolioService):
    """Run by the daemon's venue-check loop after the account's own checks."""

    async def check(self) -> None:
        """The day's hedge P&L from the journal's fills, marked at the hedge instruments'
        latest mids (fetched when no quote streams for one). Positions carried into the day
        are not counted (only the day's trades)."""
        assert (
            self.account.venue is not None
            and self.shared.board is not None
            and self.shared.journal is not None
        )
        now = self.clocks.clock_ms()
        settings = self.shared.board.settings.daily_loss
        if not settings.enabled:
            return
        fills = await self.shared.journal.fills_since(
            day_start_ms(now, settings.day_start_hour_utc)
        )
        instruments = await self.account.instruments_of({f.instrument for f in fills})
        marks: dict[str, float] = {}
        for name in {f.instrument for f in fills}:
            inst = instruments.get(name)
            if inst is None or inst.is_option:
                continue
            mark = self.account.market.marks.get(name, math.nan)
            if not (math.isfinite(mark) and mark > 0):
                q = self.account.market.quotes.get(name)
                mark = q.mid_price if q is not None else math.nan
            if not (math.isfinite(mark) and mark > 0):
                mark = (await self.account.venue.fetch_ticker(name)).mark_price
            marks[name] = mark
        index = {
            u: self.account.book.index_price(u) if self.account.book is not None else math.nan
            for u in self.underlyings
        }
        for name in marks:  # hedges of an underlying the book does not follow (or no index yet)
            u = instruments[name].underlying
            if not (math.isfinite(index.get(u, math.nan)) and index[u] > 0):
                index[u] = (await self.account.venue.fetch_index(u)).price_usd
        # Judged on the fills read above (`check_daily_loss` would read them again, and a
        # fill landing in between would have no mark).
        estimate = hedge_pnl_usd(fills, instruments, marks, index)
        self.shared.board.on_daily_pnl(now, estimate)
        log.debug(
            "daemon.daily_pnl", pnl_usd=estimate.pnl_usd, missing=estimate.missing, marks=marks
        )
