"""The daily hedge loss: the day's hedge P&L from the journal's fills, marked at the hedge
instruments' latest mids, fed to the daily-loss kill switch (portfolio-wide)."""

from __future__ import annotations

import math

import structlog

from hedgerd.model import Instrument
from hedgerd.portfolio.scope import PortfolioService
from hedgerd.risk.kill_switches import day_start_ms, hedge_pnl_usd

log = structlog.get_logger(__name__)


class DailyLossCheck(PortfolioService):
    """Run by the daemon's venue-check loop after the account's own checks."""

    async def check(self) -> None:
        """The day's hedge P&L from the journal's fills, marked at the hedge instruments'
        latest mids (fetched when no quote streams for one). Positions carried into the day
        are not counted (only the day's trades)."""
        assert self.shared.board is not None and self.shared.journal is not None
        now = self.clocks.clock_ms()
        settings = self.shared.board.settings.daily_loss
        if not settings.enabled:
            return
        fills = await self.shared.journal.fills_since(
            day_start_ms(now, settings.day_start_hour_utc)
        )
        # Each account's hedges marked on that account; one instrument name on two accounts
        # (BTC-PERPETUAL on two Deribit sub-accounts) is one market: one mark.
        instruments: dict[str, Instrument] = {}
        marks: dict[str, float] = {}
        by_account: dict[str, set[str]] = {}
        for f in fills:
            by_account.setdefault(f.venue, set()).add(f.instrument)
        for name, names in by_account.items():
            account = self.account_of(name)
            assert account.venue is not None
            known = await account.instruments_of(names)
            for inst_name in names:
                inst = known.get(inst_name)
                if inst is None:
                    continue
                instruments.setdefault(inst_name, inst)
                if inst.is_option or inst_name in marks:
                    continue
                mark = account.market.marks.get(inst_name, math.nan)
                if not (math.isfinite(mark) and mark > 0):
                    q = account.market.quotes.get(inst_name)
                    mark = q.mid_price if q is not None else math.nan
                if not (math.isfinite(mark) and mark > 0):
                    mark = (await account.venue.fetch_ticker(inst_name)).mark_price
                marks[inst_name] = mark
        index = {u: self._index(u) for u in self.underlyings}
        for name in marks:  # hedges of an underlying the book does not follow (or no index yet)
            u = instruments[name].underlying
            if not (math.isfinite(index.get(u, math.nan)) and index[u] > 0):
                assert self.account.venue is not None
                index[u] = (await self.account.venue.fetch_index(u)).price_usd
        # Judged on the fills read above (`check_daily_loss` would read them again, and a
        # fill landing in between would have no mark).
        estimate = hedge_pnl_usd(fills, instruments, marks, index)
        self.shared.board.on_daily_pnl(now, estimate)
        log.debug(
            "daemon.daily_pnl", pnl_usd=estimate.pnl_usd, missing=estimate.missing, marks=marks
        )

    def _index(self, underlying: str) -> float:
        for account in self.accounts.values():
            if account.book is not None and underlying in account.underlyings:
                return account.book.index_price(underlying)
        return math.nan
