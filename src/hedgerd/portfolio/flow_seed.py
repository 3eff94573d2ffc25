"""The option flow estimate seeded from the venue's own trade history (issue 19's gap: the
estimate lived in memory, so a restart or an HA failover lost it and the band stayed
narrower than the flow called for until a new window of trades had been seen, up to 3 days).

The venue is the source of truth (the journal holds our hedges, not the options clients
trade with us): at an account's first evaluation the hedge loop asks the venue for the
account's option trades over the estimator's window up to that instant (`OptionHistoryVenue.
fetch_option_trades`, the newest `SEED_MAX_TRADES` at most), prices each one's change of the
book's delta at its own time with its own vol, index and forward (`option_delta_change`, the
formula of the live flow) and feeds them with their times.

The cut-over is by time: the first evaluation of an account takes its book's option
position changes as its loading, not flow, at `cut_ms` (the daemon's clock); a trade at or
before `cut_ms` is in that loading, so it is seeded; one after it arrives as a position
change and is counted live (`GreeksBook.take_option_trades`). The fetch ends at `cut_ms`
and the seed keeps only trades at or before it, so a trade is counted on one side only. The
one inexactness is a trade within a stream's lag of the cut (its position update not yet in
the book at the first evaluation): seeded and, when its update arrives, counted again.

A fetch that fails (venue down, refused, bad payload) logs `daemon.option_flow_seed_failed`
and seeds nothing: the estimate starts empty as before, hedging is never held for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from hedgerd.book.greeks_book import option_delta_change
from hedgerd.hedging.flow import FLOW_WINDOW_MS
from hedgerd.model import Instrument, OptionTrade
from hedgerd.venues.base import OptionHistoryVenue

log = structlog.get_logger(__name__)

#: The most option trades fetched for a seed (the newest): 10 pages of Deribit's 1,000,
#: 100 of OKX's 100. At the flow rates the band cares about (a dozen a day) a 3-day window
#: holds some 40; a book trading more than this has its observed span start at the oldest
#: trade kept, so the rate stays right.
SEED_MAX_TRADES = 10_000


@dataclass(frozen=True, slots=True)
class FlowSeed:
    """The delta jumps of an account's option trades before the cut-over: (time ms, change
    of the book's delta coin), oldest first; `start_ms` when the history they cover begins
    (the estimator's observation start); `trades` fetched, `unpriced` of them left out."""

    jumps: tuple[tuple[int, float], ...]
    start_ms: int
    cut_ms: int
    trades: int
    unpriced: int


def seed_from_trades(
    trades: Sequence[OptionTrade],
    instrument: Callable[[str], Instrument | None],
    since_ms: int,
    cut_ms: int,
    limit: int = SEED_MAX_TRADES,
) -> FlowSeed:
    """The seed of `trades` (oldest first) fetched over [since_ms, cut_ms]: each trade's
    change of the book's delta at its time; trades after `cut_ms` are the live flow's and
    left out. When the fetch hit `limit` the history seen starts at its oldest trade."""
    jumps: list[tuple[int, float]] = []
    unpriced = 0
    kept = [t for t in trades if since_ms <= t.ts_ms <= cut_ms]
    for t in kept:
        inst = instrument(t.instrument)
        d = None
        if inst is not None and inst.is_option:
            assert inst.strike_usd is not None and inst.expiry_ms is not None
            d = option_delta_change(
                inst.is_call,
                inst.strike_usd,
                inst.expiry_ms,
                t.amount_coin,
                t.index_usd,
                t.forward_usd / t.index_usd,
                t.vol,
                t.ts_ms,
            )
        if d is None:
            unpriced += 1
        else:
            jumps.append((t.ts_ms, d))
    start = since_ms if len(trades) < limit or not kept else kept[0].ts_ms
    return FlowSeed(tuple(jumps), start, cut_ms, len(kept), unpriced)


async def fetch_seed(
    venue: OptionHistoryVenue,
    account: str,
    underlying: str,
    instrument: Callable[[str], Instrument | None],
    cut_ms: int,
    window_ms: int = FLOW_WINDOW_MS,
    limit: int = SEED_MAX_TRADES,
) -> FlowSeed | None:
    """The seed of `account`'s option trades on `underlying` over the window up to
    `cut_ms`; None (logged) when the venue could not give it."""
    since = cut_ms - window_ms
    try:
        trades = await venue.fetch_option_trades(underlying, since, cut_ms, limit)
    except Exception as exc:  # any failure: start empty, never hold hedging for it
        log.warning(
            "daemon.option_flow_seed_failed",
            venue=account,
            underlying=underlying,
            error_type=type(exc).__name__,
            error=str(exc),
        )
        return None
    return seed_from_trades(trades, instrument, since, cut_ms, limit)
