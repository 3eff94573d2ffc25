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

After a resync that moved option positions (a reconnection's snapshot, or a correction of
lost updates) the book's moves since the last evaluation may net several trades into one
jump. They are not taken as they are: the window's history is fetched again and each
option's move is replaced by the newest of its trades that sum to it (`gap_jumps`: the
stream delivers an option's trades in order, so the ones the book missed are its newest);
a move no run of trades explains counts as before, one jump.

A fetch that fails (venue down, refused, bad payload) logs `daemon.option_flow_seed_failed`
and seeds nothing: the estimate starts empty as before (a resync's moves count as they are),
hedging is never held for it.
"""

from __future__ import annotations

import asyncio
import time
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

#: Wall seconds the evaluation that started a seed waits for it: Deribit answers in a few
#: requests (two stores per settlement currency), OKX in one page per 100 trades (10 per
#: 2 s), so the start-up's (or a takeover's) first decision normally has the flow term; a
#: slower or failed venue delays the first decision by this at most, never more, and the
#: seed lands at a later evaluation.
SEED_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class FlowSeed:
    """An account's option trades in [since, cut] as the flow estimator takes them:
    `trades` (time ms, option, quantity coin signed, change of the book's delta coin or None
    where it cannot be priced), oldest first; `start_ms` when the history they cover begins
    (the estimator's observation start)."""

    trades: tuple[tuple[int, str, float, float | None], ...]
    start_ms: int
    cut_ms: int

    @property
    def jumps(self) -> list[tuple[int, float]]:
        """(time ms, delta change coin) of each trade that could be priced."""
        return [(t, d) for t, _, _, d in self.trades if d is not None]

    @property
    def unpriced(self) -> int:
        return sum(d is None for *_, d in self.trades)


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
    out: list[tuple[int, str, float, float | None]] = []
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
        out.append((t.ts_ms, t.instrument, t.amount_coin, d))
    start = since_ms if len(trades) < limit or not kept else kept[0].ts_ms
    return FlowSeed(tuple(out), start, cut_ms)


def gap_jumps(
    seed: FlowSeed, netted: Sequence[tuple[str, float, float | None]]
) -> tuple[list[tuple[int, float]], int]:
    """The delta jumps behind a resync's netted position moves (`netted`: each option's
    changes since the last evaluation, as `GreeksBook.take_option_changes` gives them), and
    how many options fell back to their netted move. A stream delivers an option's trades
    in order, so the ones the book had not seen are its newest: per option the shortest run
    of its newest trades in `seed` whose quantities sum to its net move (a sum to within
    1e-9 coin). An option with no such run (a trade the fetch left out) counts its net move
    as one jump, priced as the book prices it (today's behaviour without a seed)."""
    net: dict[str, float] = {}
    fallback: dict[str, float | None] = {}
    for name, dq, d in netted:
        net[name] = net.get(name, 0.0) + dq
        f = fallback.get(name, 0.0)
        fallback[name] = None if f is None or d is None else f + d
    by_name: dict[str, list[tuple[int, float, float | None]]] = {}
    for t, name, q, d in seed.trades:
        by_name.setdefault(name, []).append((t, q, d))
    out: list[tuple[int, float]] = []
    fell_back = 0
    for name, dq in net.items():
        if abs(dq) <= 1e-12:
            continue  # no net move: nothing the book can tell apart
        run: list[tuple[int, float, float | None]] = []
        total = 0.0
        for trade in reversed(by_name.get(name, [])):
            run.append(trade)
            total += trade[1]
            if abs(total - dq) <= 1e-9 * max(1.0, abs(dq)):
                break
        else:
            run = []
        if run:
            out.extend((t, d) for t, _, d in reversed(run) if d is not None)
            continue
        fell_back += 1
        f = fallback[name]
        if f is not None:
            out.append((seed.cut_ms, f))
    return out, fell_back


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


class SeedFetches:
    """The seed fetches in flight, by (account, underlying, cut), each with the wall
    deadline (monotonic s) of the wait for it."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, str, int], _Fetch] = {}

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def cancel(self) -> None:
        """Cancel the fetches in flight (the hedge loop stopped: nobody will take them)."""
        for f in self._tasks.values():
            f.task.cancel()
        self._tasks.clear()

    def start(
        self,
        venue: OptionHistoryVenue,
        account: str,
        underlying: str,
        instrument: Callable[[str], Instrument | None],
        cut_ms: int,
        since_ms: int,
        netted: Sequence[tuple[str, float, float | None]] | None = None,
    ) -> None:
        """Fetch `account`'s option trades of `underlying` in [since_ms, cut_ms]; `netted`:
        the moves of a resync the seed replaces (`gap_jumps`), None at the first take."""
        task = asyncio.get_running_loop().create_task(
            fetch_seed(venue, account, underlying, instrument, cut_ms, window_ms=cut_ms - since_ms),
            name=f"flow-seed:{account}:{underlying}",
        )
        deadline = time.monotonic() + SEED_WAIT_S
        self._tasks[(account, underlying, cut_ms)] = _Fetch(task, deadline, netted)

    async def landed(
        self, underlying: str
    ) -> list[tuple[str, FlowSeed, Sequence[tuple[str, float, float | None]] | None]]:
        """The seeds of `underlying` that have landed, each once: (account, seed, the
        netted moves it replaces); waits for those still in flight until their deadline. A
        failed fetch (`fetch_seed` logged it) seeds nothing; a resync's netted moves then
        count as they are."""
        pending = [(k, f) for k, f in self._tasks.items() if k[1] == underlying]
        waiting = {f.task for _, f in pending if not f.task.done()}
        wait_s = max((f.deadline - time.monotonic() for _, f in pending), default=0.0)
        if waiting and wait_s > 0.0:
            await asyncio.wait(waiting, timeout=wait_s)
        out: list[tuple[str, FlowSeed, Sequence[tuple[str, float, float | None]] | None]] = []
        for key, f in pending:
            # Once: two evaluations may have waited on it (the timer's and an operator's);
            # and only this fetch: a restart may have started another of the same key.
            if f.task.done() and self._tasks.get(key) is f:
                del self._tasks[key]
                seed = None if f.task.cancelled() else f.task.result()
                if seed is None and f.netted is not None:
                    seed = FlowSeed((), key[2], key[2])  # failed: the netted moves stand
                if seed is not None:
                    out.append((key[0], seed, f.netted))
        return out


@dataclass(frozen=True, slots=True)
class _Fetch:
    task: asyncio.Task[FlowSeed | None]
    deadline: float  # wall, monotonic s
    netted: Sequence[tuple[str, float, float | None]] | None
