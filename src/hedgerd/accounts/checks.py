"""One account's venue checks: the daemon's clock against the venue's server time, and the
maintenance margin per settlement currency. Each feeds its kill switch on the board."""

from __future__ import annotations

import math
from typing import Any

import structlog

from hedgerd.accounts.parts import AccountParts
from hedgerd.portfolio.parts import Clocks, PortfolioParts
from hedgerd.risk.kill_switches import MarginInputs
from hedgerd.venues.base import VenueError

log = structlog.get_logger(__name__)


class AccountChecks:
    """Clock skew and margin of one account (run by the daemon's venue-check loop)."""

    def __init__(self, account: AccountParts, shared: PortfolioParts, clocks: Clocks) -> None:
        self.account = account
        self.shared = shared
        self.clocks = clocks
        #: The last account summary per settlement currency: equity and maintenance margin,
        #: in that currency (for status).
        self.margin: dict[str, tuple[float, float]] = {}
        #: The last free collateral per settlement currency (the summary's
        #: `available_funds`, in that currency): routing's margin headroom.
        self.available: dict[str, float] = {}

    async def check_clock_skew(self) -> None:
        """The daemon's clock against the venue's server time (`public/get_time`), corrected
        by half the round trip. In paper mode the daemon's clock is the simulator's, so an
        accelerated simulator is not "skewed"."""
        venue, board = self.account.venue, self.shared.board
        assert venue is not None and board is not None
        clock_ms = self.clocks.clock_ms
        sent_ms = 0

        sent_ms = clock_ms()
        try:
            # The adapter's own time call (Deribit public/get_time, OKX public/time); the
            # lane's throttle is inside the timed trip, which only widens the tolerance.
            server_ms = await venue.server_time_ms()
        except VenueError as exc:
            log.warning("daemon.venue_time_unreadable", venue=self.account.name, error=str(exc))
            return
        received_ms = clock_ms()
        # The venue stamped its time somewhere within the round trip: the skew is at least
        # the midpoint's offset less half the trip (an event-loop stall on either leg, worse
        # with an accelerated paper clock, must not read as skew).
        mid = (sent_ms + received_ms) / 2.0 - float(server_ms)
        half_trip = max(received_ms - sent_ms, 0) / 2.0
        skew_ms = math.copysign(max(abs(mid) - half_trip, 0.0), mid)
        board.on_clock_skew(self.clocks.board_clock_ms(), self.account.name, skew_ms)

    async def check_margin(self) -> None:
        """Maintenance margin / equity per settlement currency (the venue's account summary).
        A currency with no equity and no margin (nothing held there) is not judged."""
        venue, board, book = self.account.venue, self.shared.board, self.account.book
        assert venue is not None and board is not None
        for summary in await venue.margin_summaries():
            ccy, equity, mm = summary.currency, summary.equity, summary.maintenance_margin
            self.margin[ccy] = (equity, mm)
            self.available[ccy] = summary.available_funds
            if equity == 0.0 and mm == 0.0:
                continue
            index = book.index_price(ccy) if book is not None else math.nan
            board.on_margin(
                self.clocks.board_clock_ms(),
                MarginInputs(
                    venue=self.account.name,
                    currency=ccy,
                    equity=equity,
                    maintenance_margin=mm,
                    index_price_usd=index if math.isfinite(index) else None,
                ),
            )


def _float(x: Any) -> float:
    """A venue figure as a float (NaN when it is not a number)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan
