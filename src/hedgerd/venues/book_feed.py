"""Feeding the GreeksBook from a venue: snapshot at start, streams, reconciliation.

- `rebuild`: the book is rebuilt from the venue's REST snapshot (instruments, positions,
  cash balances, index, tickers of every instrument held, the venue's Greeks).
- `apply`: stream events update it (positions are absolute, so a repeated event is harmless;
  fills are de-duplicated by venue trade id).
- `reconcile`: on a timer and after every reconnect, positions are compared with a fresh
  snapshot; the venue is the truth. The comparison waits (bounded, `catch_up_s`) until the
  stream has applied what it had received by then (`wait_caught_up`): a starved process's
  stream lags the venue, and a snapshot compared with a book a batch behind it found "lost"
  updates that were only queued (the failover drill's and chaos's position-mismatch trips).
  A position that changed on the stream meanwhile is left alone (the stream is newer); every
  other difference is corrected, and counted and logged as a correction when the stream had
  caught up (`unconfirmed` when it had not); fills made while disconnected are fetched and
  de-duplicated.
- Staleness is tracked per source (positions, portfolio, each ticker, each index) and
  reported by `health`; `cross_check` compares hedgerd's delta with the venue's in both
  numeraires and flags divergences beyond tolerance for the kill switch.

The feed is the only writer of the book; it runs in one task, so events are applied in
arrival order and never concurrently with each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import structlog

from hedgerd.book.greeks_book import BadMarketDataError, BookError, GreeksBook
from hedgerd.book.valuation import MS_PER_YEAR
from hedgerd.model import Fill, Instrument, Position, PriceUnit, Ticker
from hedgerd.pricing.implied import implied_vol_with_reason
from hedgerd.venues.base import (
    BalanceEvent,
    ConnectionEvent,
    ConnectionState,
    FeedVenue,
    FillEvent,
    IndexEvent,
    OrderEvent,
    PortfolioEvent,
    PositionEvent,
    QuoteEvent,
    StreamSource,
    TickerEvent,
    VenueError,
    VenueEvent,
    VenueGreeks,
)

log = structlog.get_logger(__name__)

Numeraire = Literal["usd", "coin"]

#: Fills are re-fetched from this long before the last one seen (clock skew, same-ms trades).
FILL_OVERLAP_MS = 5_000
#: Trade ids remembered for de-duplication (recovery only reaches back FILL_OVERLAP_MS).
MAX_FILLS_KEPT = 100_000
#: Market data stamped further ahead of the feed's clock than this (ms) is refused: "newest
#: wins" bookkeeping would otherwise keep a far-future index for good (every true update then
#: looks older) and never see it go stale. Clock skew proper is the clock-skew switch's job.
MAX_AHEAD_MS = 60_000
#: Wall seconds a reconciliation or a fetch of the venue's Greeks waits for the stream to
#: apply what it had received (`wait_caught_up`) before comparing with the book.
CATCH_UP_S = 2.0
#: An index outside this range (USD per coin) is refused as no coin's price: finite and
#: positive is not enough, 1e-300 overflows the book's 1/S² terms (ZeroDivisionError).
INDEX_RANGE_USD = (1e-6, 1e12)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Freshness of one data source (`key`: instrument or underlying, '' for account-wide).

    `age_s` is None when nothing was ever received. `stale` when older than `threshold_s`
    or when the session carrying it is disconnected."""

    source: StreamSource
    key: str
    age_s: float | None
    threshold_s: float
    connected: bool
    stale: bool


@dataclass(frozen=True, slots=True)
class DeltaDivergence:
    """hedgerd's delta against the venue's for one underlying, in coin.

    `numeraire` coin compares with Deribit's `delta_total`; usd with `delta_total + equity`
    (Deribit's advice for USD P&L neutrality). `exceeded` is the kill-switch input."""

    underlying: str
    numeraire: Numeraire
    hedgerd_delta_coin: float
    venue_delta_coin: float
    diff_coin: float
    tolerance_coin: float
    exceeded: bool
    ts_ms: int


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """One reconciliation: positions corrected (name, book amount before, venue amount)."""

    reason: str
    ts_ms: int
    corrected: tuple[tuple[str, float, float], ...]
    skipped_newer: tuple[str, ...]
    fills_recovered: int
    #: Differences found while the stream was still behind (not caught up within
    #: `catch_up_s`): applied like the corrections, but the stream's backlog may explain
    #: them, so they are not counted as lost updates.
    unconfirmed: tuple[tuple[str, float, float], ...] = ()


@dataclass(slots=True)
class FeedStats:
    """Counters exported as metrics."""

    events: int = 0
    positions: int = 0
    fills: int = 0
    duplicate_fills: int = 0
    tickers: int = 0
    refused: int = 0
    reconnects: int = 0
    reconciles: int = 0
    reconcile_corrections: int = 0
    unknown_instruments: set[str] = field(default_factory=set)


class BookFeed:
    """Keeps a `GreeksBook` equal to one venue account's truth.

    `clock_ms` is the time the book is valued at and staleness is measured against; by
    default the venue's clock as measured at connect (a simulator may run at another date)."""

    def __init__(
        self,
        venue: FeedVenue,
        book: GreeksBook,
        *,
        clock_ms: Callable[[], int] | None = None,
        reconcile_s: float | None = None,
        stale_positions_s: float | None = None,
        stale_market_s: float | None = None,
        delta_tolerance_coin: float | None = None,
        on_reconcile: Callable[[ReconcileReport], None] | None = None,
        on_event: Callable[[VenueEvent], Awaitable[None]] | None = None,
        index_check: Callable[[str, float], bool] | None = None,
        forward_check: Callable[[str, int, float, float], bool] | None = None,
        vol_check: Callable[[str, float], bool] | None = None,
        catch_up_s: float = CATCH_UP_S,
    ) -> None:
        s = venue.settings
        #: Wall seconds a venue snapshot (positions, Greeks) waits for the stream to apply
        #: what it had received before it is compared with the book.
        self.catch_up_s = catch_up_s
        #: Judges an index (underlying, price USD) before the book takes it (the daemon's
        #: PRICE_SANITY switch): a refused index is not applied, the last good one stays.
        self.index_check = index_check
        #: Judges a forward (underlying, expiry ms, forward USD, index USD) before the book
        #: takes it: a dated future's mark, an option expiry's underlying price. A refused
        #: ticker is not applied at all (its option vol was implied at that forward).
        self.forward_check = forward_check
        #: Judges an option's mark IV (instrument, vol) before the book takes it: a refused
        #: ticker is not applied, the book keeps the option's last good vol.
        self.vol_check = vol_check
        #: The last index judged per underlying: (price USD, time ms, accepted). A ticker and
        #: the index event it carries are one observation, judged once.
        self._index_judged: dict[str, tuple[float, int, bool]] = {}
        #: Awaited for every stream event after the book applied it (the daemon routes order
        #: and fill events to the executor: this feed is the stream's only reader).
        self.on_event = on_event
        self.venue = venue
        self.book = book
        self.clock_ms = clock_ms or venue.venue_time_ms
        self.underlyings = tuple(u.upper() for u in s.underlyings)
        self.reconcile_s = reconcile_s if reconcile_s is not None else s.reconcile_s
        self.stale_positions_s = (
            stale_positions_s if stale_positions_s is not None else s.stale_positions_s
        )
        self.stale_market_s = stale_market_s if stale_market_s is not None else s.stale_market_s
        self.delta_tolerance_coin = (
            delta_tolerance_coin if delta_tolerance_coin is not None else s.delta_tolerance_coin
        )
        self.stats = FeedStats()
        self.positions: dict[str, Position] = {}
        #: Positions in coin as the venue converts them (Deribit `size_currency`).
        self.venue_qty_coin: dict[str, float] = {}
        self.fills: dict[str, Fill] = {}  # trade id -> fill, in arrival order
        self.venue_greeks: dict[str, VenueGreeks] = {}
        self.last_reconcile: ReconcileReport | None = None
        self._on_reconcile = on_reconcile
        self.started_ms = 0
        self._pos_seq: dict[str, int] = {}
        self._positions_confirmed_ms: int | None = None
        self._portfolio_ms: int | None = None
        #: Per underlying: position changes the book has applied from the stream, and how
        #: many of them the venue's Greeks figure in hand had seen (`refresh_venue_greeks`).
        self._moves: dict[str, int] = {}
        self._greeks_basis: dict[str, int] = {}
        #: Per underlying: when (clock ms) the venue's Greeks in hand were received.
        self._greeks_ms: dict[str, int] = {}
        self._ticker_ms: dict[str, int] = {}
        self._index_ms: dict[str, int] = {}
        self._connected: dict[str, bool] = {}
        self._last_fill_ms = 0
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._aux: set[asyncio.Task[None]] = set()
        self._resync: asyncio.Event = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self.streaming = False
        #: An event is being applied or routed (`_consume` between reading and finishing it),
        #: and how many were finished.
        self._busy = False
        self._consumed = 0

    # ---------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Connect the venue (if not yet), rebuild the book, start streams and timers."""
        if not self.venue.instruments():
            await self.venue.connect()
        self.started_ms = self.clock_ms()
        await self.rebuild()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._consume(), name="book-feed"))
        self._tasks.append(loop.create_task(self._reconcile_loop(), name="book-reconcile"))

    async def stop(self) -> None:
        self._tasks.extend(self._aux)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    # ------------------------------------------------------------------------ rebuild
    async def rebuild(self, *, stream: bool = True) -> None:
        """Rebuild the book from the venue's snapshot (start-up). `stream` False: REST only
        (one-shot readers such as `hedgerd positions`)."""
        self.streaming = stream
        for inst in self.venue.instruments().values():
            self._add_instrument(inst)
        for u in self.underlyings:
            with _Refusing(self, "index"):
                self._apply_index(u, (await self.venue.fetch_index(u)).price_usd, self.clock_ms())
        for bal in await self.venue.fetch_balances():
            self._apply_event(BalanceEvent(bal))
        report = await self.reconcile("start")
        await self._refresh_tickers()
        if stream:
            await self.venue.subscribe_market(sorted(self.positions))
        log.info(
            "book_feed.rebuilt",
            venue=self.venue.name,
            positions=len(self.positions),
            corrected=len(report.corrected),
        )

    async def reconcile(self, reason: str) -> ReconcileReport:
        """Compare every position with a fresh venue snapshot and correct the book (the venue
        is the truth); recover fills made since the last one seen. One pass at a time: an
        older snapshot applied after a newer one would undo it."""
        async with self._reconcile_lock:
            return await self._reconcile(reason)

    async def _reconcile(self, reason: str) -> ReconcileReport:
        seq_before = dict(self._pos_seq)
        snapshot: dict[str, PositionEvent] = {}
        for u in self.underlyings:
            for ev in await self.venue.fetch_positions(u):
                snapshot[ev.position.instrument] = ev
        # Balances and the venue's Greeks: applied unless the stream updated them while the
        # snapshot was in flight (then the stream's value is the newer one).
        for bal in await self.venue.fetch_balances():
            if self._pos_seq.get(f"bal:{bal.currency}", 0) == seq_before.get(
                f"bal:{bal.currency}", 0
            ):
                self._apply_event(BalanceEvent(bal))
        fetched_greeks = [await self.venue.fetch_venue_greeks(u) for u in self.underlyings]
        recovered = 0
        since = max(self.started_ms, self._last_fill_ms - FILL_OVERLAP_MS)
        for u in self.underlyings:
            for fill in await self.venue.fetch_fills(u, since):
                recovered += self._record_fill(fill)
        # Only now, with the book caught up with the stream, is a difference the stream's loss
        # rather than its backlog (`moved` skips what the stream applied meanwhile).
        caught_up = await self.wait_caught_up(self.catch_up_s)
        for greeks in fetched_greeks:
            # Taken only with the book caught up (else it is ahead of the book's positions).
            if greeks is None or not caught_up:
                continue
            key = f"greeks:{greeks.underlying}"
            if self._pos_seq.get(key, 0) == seq_before.get(key, 0):
                self._apply_event(PortfolioEvent(greeks))
                self._greeks_basis[greeks.underlying] = self._moves.get(greeks.underlying, 0)
        corrected: list[tuple[str, float, float]] = []
        skipped: list[str] = []
        now = self.clock_ms()
        for name in sorted(set(snapshot) | set(self.positions)):
            if self._pos_seq.get(name, 0) != seq_before.get(name, 0):
                skipped.append(name)  # the stream moved it while the snapshot was in flight
                continue
            venue_amount = snapshot[name].position.amount if name in snapshot else 0.0
            held = self.positions.get(name)
            book_amount = held.amount if held is not None else 0.0
            try:
                if name in snapshot:
                    self._apply_position(snapshot[name].position, count=False)
                    self._note_qty_coin(snapshot[name])
                elif held is not None:
                    self._apply_position(_zero(held, now), count=False)
            except BookError as exc:  # an instrument hedgerd cannot value: refused, counted
                self.stats.refused += 1
                log.warning(
                    "book_feed.position_refused",
                    venue=self.venue.name,
                    instrument=name,
                    error=str(exc),
                )
                continue
            if not _same_amount(book_amount, venue_amount):
                corrected.append((name, book_amount, venue_amount))
        self._positions_confirmed_ms = now
        self.stats.reconciles += 1
        unconfirmed: list[tuple[str, float, float]] = []
        if not caught_up:
            corrected, unconfirmed = [], corrected
            if unconfirmed:
                log.info(
                    "book_feed.reconcile_behind_stream",
                    venue=self.venue.name,
                    reason=reason,
                    unconfirmed=[c[0] for c in unconfirmed][:20],
                    pending_events=self.venue.pending_events(),
                )
        self.stats.reconcile_corrections += len(corrected) if reason != "start" else 0
        report = ReconcileReport(
            reason, now, tuple(corrected), tuple(skipped), recovered, tuple(unconfirmed)
        )
        self.last_reconcile = report
        if self._on_reconcile is not None:
            self._on_reconcile(report)
        if corrected and reason not in ("start",):
            log.warning(
                "book_feed.reconcile_corrected",
                venue=self.venue.name,
                reason=reason,
                corrected=[c[0] for c in corrected][:20],
                count=len(corrected),
            )
        else:
            log.info(
                "book_feed.reconciled",
                venue=self.venue.name,
                reason=reason,
                positions=len(self.positions),
                fills_recovered=recovered,
            )
        await self._notify()
        return report

    def _follow(self, name: str) -> None:
        """A position in an instrument without market data: stream its ticker and fetch one
        now (an option without a vol is quarantined by the book until then)."""
        if not self.streaming:
            return  # REST-only: `_refresh_tickers` fetches every held instrument
        self.venue.market_names.add(name)

        async def fetch() -> None:
            with _Refusing(self, "ticker"):
                self._apply_event(TickerEvent(await self.venue.fetch_ticker(name)))
                await self.venue.subscribe_market([name])
                await self._notify()

        task = asyncio.get_running_loop().create_task(fetch(), name=f"ticker:{name}")
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)

    async def _refresh_tickers(self) -> None:
        """REST tickers of every instrument held (fresh marks after start or reconnect)."""
        for name in sorted(self.positions):
            with _Refusing(self, "ticker"):
                self._apply_event(TickerEvent(await self.venue.fetch_ticker(name)))

    async def _reconcile_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.reconcile_s):
                    await self._resync.wait()
            reason = "reconnect" if self._resync.is_set() else "timer"
            self._resync.clear()
            try:
                await self.reconcile(reason)
                if reason == "reconnect":
                    await self._refresh_tickers()
                    await self.venue.subscribe_market(sorted(self.positions))
            except VenueError as exc:
                log.warning("book_feed.reconcile_failed", venue=self.venue.name, error=str(exc))

    # -------------------------------------------------------------------------- stream
    async def _consume(self) -> None:
        async for ev in self.venue.events():
            self._busy = True
            try:
                self._apply_event(ev)
                await self._notify()
                if self.on_event is not None:
                    await self.on_event(ev)
            finally:
                self._busy = False
                self._consumed += 1
            await self._notify()

    def index_ms(self, underlying: str) -> int | None:
        """The time (the data's own, UTC ms) of the last index of `underlying` the book took."""
        return self._index_ms.get(underlying.upper())

    async def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait (bounded) until every event the venue had sent when called is applied and
        routed (the executor journalled its fills); True when it is. A venue snapshot taken
        before the call (positions, Greeks) is then comparable with the book: a starved
        stream lags the venue by whole batches, and the book then lacks positions the
        snapshot has without any update being lost. Events arriving meanwhile are not waited
        for (market data never stops). Immediately True when the stream is not being read.
        Never awaited by the stream's own reader (it would wait for itself)."""
        if not any(t.get_name() == "book-feed" and not t.done() for t in self._tasks):
            return True
        target = self._consumed + self.venue.pending_events() + (1 if self._busy else 0)
        return await self.wait_until(lambda: self._consumed >= target, timeout_s)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait (bounded) until `predicate()` holds, re-checking after every applied event or
        reconciliation. Returns whether it held."""

        # `asyncio.timeout`, not `wait_for`: Python 3.11's wait_for returns the result and drops
        # a cancel that lands as the wait completes, and the hedge loop calls this every
        # evaluation, so a shutdown's cancel of the loop was lost and the daemon never stopped.
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            return predicate()
        return True

    def apply(self, ev: VenueEvent) -> None:
        """Apply one venue event to the book (synchronous; for the consumer and tests)."""
        self._apply_event(ev)

    def _apply_event(self, ev: VenueEvent) -> None:
        self.stats.events += 1
        now = self.clock_ms()
        try:
            if isinstance(ev, PositionEvent):
                self._apply_position(ev.position, count=True)
                self._note_qty_coin(ev)
                self._positions_confirmed_ms = now
            elif isinstance(ev, FillEvent):
                self._record_fill(ev.fill)
            elif isinstance(ev, TickerEvent):
                self._apply_ticker(ev)
            elif isinstance(ev, IndexEvent):
                self._apply_index(ev.index.underlying, ev.index.price_usd, ev.index.ts_ms)
            elif isinstance(ev, BalanceEvent):
                self.book.apply_balance(ev.balance)
                self._bump(f"bal:{ev.balance.currency}")
            elif isinstance(ev, PortfolioEvent):
                g = ev.greeks
                self.venue_greeks[g.underlying] = g
                self._portfolio_ms = now
                self._greeks_ms[g.underlying] = now
                self._greeks_basis[g.underlying] = self._moves.get(g.underlying, 0)
                self._bump(f"greeks:{g.underlying}")
            elif isinstance(ev, ConnectionEvent):
                self._on_connection(ev)
            elif isinstance(ev, OrderEvent | QuoteEvent):
                pass  # the executor's business; the book only holds positions
        except BookError as exc:
            self.stats.refused += 1
            log.warning(
                "book_feed.event_refused",
                venue=self.venue.name,
                # Not `event=`: structlog's first argument is the event name, and the clash
                # raised TypeError out of the feed (its task died on the first refusal).
                event_type=type(ev).__name__,
                error=str(exc),
            )

    def _add_instrument(self, inst: Instrument) -> None:
        with contextlib.suppress(ValueError):
            self.book.add_instrument(inst)

    def _apply_position(self, pos: Position, *, count: bool) -> None:
        try:
            self.book.instrument(pos.instrument)
        except BookError:
            # Loaded markets first, else the venue's name parser (e.g. an expired instrument).
            inst = self.venue.resolve_instrument(pos.instrument)
            if inst is None:
                self.stats.unknown_instruments.add(pos.instrument)
                raise
            self._add_instrument(inst)
        self.book.apply_position(pos)
        if pos.amount != 0 and pos.instrument not in self.venue.market_names:
            self._follow(pos.instrument)
        if pos.amount == 0:
            self.positions.pop(pos.instrument, None)
        else:
            self.positions[pos.instrument] = pos
        if count:
            self.stats.positions += 1
            self._bump(pos.instrument)
            u = self.book.instrument(pos.instrument).underlying
            self._moves[u] = self._moves.get(u, 0) + 1

    def _bump(self, key: str) -> None:
        """Mark `key` (an instrument, 'bal:CCY' or 'greeks:U') as updated by the stream."""
        self._pos_seq[key] = self._pos_seq.get(key, 0) + 1

    def _note_qty_coin(self, ev: PositionEvent) -> None:
        name = ev.position.instrument
        if ev.position.amount == 0 or ev.venue_qty_coin is None:
            self.venue_qty_coin.pop(name, None)
        else:
            self.venue_qty_coin[name] = ev.venue_qty_coin

    def _record_fill(self, fill: Fill) -> int:
        if fill.trade_id in self.fills:
            self.stats.duplicate_fills += 1
            return 0
        self.fills[fill.trade_id] = fill
        if len(self.fills) > MAX_FILLS_KEPT:  # oldest first: dicts keep insertion order
            del self.fills[next(iter(self.fills))]
        self.stats.fills += 1
        # Capped at now: a fill stamped in the future would move the recovery window past
        # the fills it exists to find.
        self._last_fill_ms = max(self._last_fill_ms, min(fill.ts_ms, self.clock_ms()))
        return 1

    def _check_not_ahead(self, what: str, ts_ms: int) -> None:
        now = self.clock_ms()
        if ts_ms > now + MAX_AHEAD_MS:
            raise BadMarketDataError(
                f"{what}: stamped {ts_ms - now} ms ahead of the clock (limit {MAX_AHEAD_MS})"
            )

    def _apply_ticker(self, ev: TickerEvent) -> None:
        t = ev.ticker
        self._check_not_ahead(f"{t.instrument} ticker", t.ts_ms)
        self.stats.tickers += 1
        self._ticker_ms[t.instrument] = max(self._ticker_ms.get(t.instrument, 0), t.ts_ms)
        inst = self.venue.instruments().get(t.instrument)
        if inst is None:
            return
        self._add_instrument(inst)
        # The forward is judged before the index, and the index even when the forward was
        # refused: price sanity sees both every tick, so that in a gap each witnesses the
        # other (`risk.sanity`); the ticker is applied only when both are accepted.
        refused: BadMarketDataError | None = None
        if self.forward_check is not None and inst.expiry_ms is not None:
            fwd = t.underlying_price_usd if inst.is_option else t.mark_price
            # Only a usable number is judged: the book ignores a missing or non-positive
            # forward (and keeps the last good one) by itself.
            if (
                fwd is not None
                and math.isfinite(fwd)
                and fwd > 0
                and not self.forward_check(inst.underlying, inst.expiry_ms, fwd, t.index_price_usd)
            ):
                refused = BadMarketDataError(
                    f"{t.instrument}: forward {fwd!r} refused (price sanity)"
                )
        self._apply_index(inst.underlying, t.index_price_usd, t.ts_ms)
        if refused is not None:
            raise refused
        if inst.is_option:
            vol = option_vol(inst, t)
            if (
                self.vol_check is not None
                and vol is not None
                and math.isfinite(vol)
                and not self.vol_check(inst.name, vol)
            ):
                raise BadMarketDataError(f"{t.instrument}: IV {vol!r} refused (price sanity)")
            t = replace(t, mark_iv=vol)
        self.book.apply_ticker(t)

    def _apply_index(self, underlying: str, price_usd: float, ts_ms: int) -> None:
        self._check_not_ahead(f"{underlying} index", ts_ms)
        lo, hi = INDEX_RANGE_USD
        if not lo <= price_usd <= hi:
            raise BadMarketDataError(f"{underlying} index {price_usd!r} outside [{lo}, {hi}] USD")
        # Judged even when older than the index held (and then not applied): the switch
        # sees every index the venue sends.
        if self.index_check is not None:
            judged = self._index_judged.get(underlying)
            if judged is not None and judged[:2] == (price_usd, ts_ms):
                accepted = judged[2]
            else:
                accepted = self.index_check(underlying, price_usd)
                self._index_judged[underlying] = (price_usd, ts_ms, accepted)
            if not accepted:
                raise BadMarketDataError(f"{underlying} index {price_usd!r} refused (price sanity)")
        if ts_ms < self._index_ms.get(underlying, 0):
            return  # an older index than the one held (REST answer overtaken by the stream)
        self.book.set_index(underlying, price_usd)
        self._index_ms[underlying] = ts_ms

    def _on_connection(self, ev: ConnectionEvent) -> None:
        self._connected[ev.session] = ev.state is not ConnectionState.DISCONNECTED
        if ev.state is ConnectionState.RECONNECTED:
            self.stats.reconnects += 1
            self._resync.set()  # the reconcile task takes a fresh snapshot
        log.info(
            "book_feed.connection",
            venue=self.venue.name,
            session=ev.session,
            state=str(ev.state),
            reason=ev.reason,
        )

    # ---------------------------------------------------------------------- health
    def health(self, now_ms: int | None = None) -> list[SourceHealth]:
        """Freshness per source: positions, portfolio, the index of each underlying and the
        ticker of each instrument held."""
        now = self.clock_ms() if now_ms is None else now_ms
        private = self._connected.get("private", True)
        market = self._connected.get("market", True)
        out = [
            _health(
                StreamSource.POSITIONS,
                "",
                now,
                self._positions_confirmed_ms,
                self.stale_positions_s,
                private,
            ),
            _health(
                StreamSource.PORTFOLIO, "", now, self._portfolio_ms, self.stale_positions_s, private
            ),
        ]
        for u in self.underlyings:
            out.append(
                _health(
                    StreamSource.INDEX, u, now, self._index_ms.get(u), self.stale_market_s, market
                )
            )
        for name in sorted(self.positions):
            out.append(
                _health(
                    StreamSource.TICKERS,
                    name,
                    now,
                    self._ticker_ms.get(name),
                    self.stale_market_s,
                    market,
                )
            )
        return out

    def stale_sources(self, now_ms: int | None = None) -> list[SourceHealth]:
        return [h for h in self.health(now_ms) if h.stale]

    # ------------------------------------------------------------------ cross-check
    async def refresh_venue_greeks(self, max_age_ms: int, now_ms: int | None = None) -> int:
        """Fetch the venue's Greeks of each underlying whose figure in hand predates a
        position change the book has applied, or is older than `max_age_ms` (ms): the figure
        `cross_check` compares with. A venue that streams its Greeks (Deribit
        `user.portfolio`) keeps them fresh and is rarely asked; one that only answers requests
        (OKX `account/greeks`) would otherwise be compared, after every hedge, with a figure
        from the last reconciliation that lacks it (a false Greeks-divergence halt). Returns
        how many were fetched; a venue error propagates (the caller logs it)."""
        now = self.clock_ms() if now_ms is None else now_ms
        fetched = 0
        for u in self.underlyings:
            moved = self._moves.get(u, 0) != self._greeks_basis.get(u, 0)
            received = self._greeks_ms.get(u)
            if not moved and received is not None and now - received < max_age_ms:
                continue
            seq = self._pos_seq.get(f"greeks:{u}", 0)
            greeks = await self.venue.fetch_venue_greeks(u)
            # The figure is the venue's now: the book has the position changes it reflects
            # only once the stream applied what it had received (a starved stream lags it,
            # and the figure then is ahead of the book: not taken, so not compared).
            if greeks is None or not await self.wait_caught_up(self.catch_up_s):
                continue
            # The stream may have delivered a newer figure while the request was in flight.
            if self._pos_seq.get(f"greeks:{u}", 0) != seq:
                continue
            moves = self._moves.get(u, 0)
            self._apply_event(PortfolioEvent(greeks))
            self._greeks_basis[u] = moves  # the figure reflects these changes
            fetched += 1
        return fetched

    def greeks_current(self, underlying: str) -> bool:
        """Whether the venue's Greeks in hand reflect every position change the book applied
        (else the two cannot be compared: the figure lacks the book's latest trades)."""
        u = underlying.upper()
        return u in self.venue_greeks and self._moves.get(u, 0) == self._greeks_basis.get(u, 0)

    def cross_check(self, now_ms: int | None = None) -> list[DeltaDivergence]:
        """hedgerd's delta (coin-settled products and coin collateral) against the venue's
        account Greeks, per underlying, in both numeraires. Logs each divergence beyond
        tolerance (`book_feed.delta_divergence`)."""
        now = self.clock_ms() if now_ms is None else now_ms
        out: list[DeltaDivergence] = []
        for u in self.underlyings:
            g = self.venue_greeks.get(u)
            if g is None or not math.isfinite(self.book.index_price(u)):
                continue
            try:
                snap = self.book.underlying_snapshot(u, now)
            except BookError:
                continue
            pairs: tuple[tuple[Numeraire, float], ...] = (
                ("coin", g.delta_total_coin),
                ("usd", g.delta_total_coin + g.equity_coin),
            )
            for numeraire, venue_delta in pairs:
                ours = snap.delta_coin(numeraire, projected=False)
                diff = ours - venue_delta
                d = DeltaDivergence(
                    u,
                    numeraire,
                    ours,
                    venue_delta,
                    diff,
                    self.delta_tolerance_coin,
                    abs(diff) > self.delta_tolerance_coin,
                    now,
                )
                if d.exceeded:
                    log.warning(
                        "book_feed.delta_divergence",
                        venue=self.venue.name,
                        underlying=u,
                        numeraire=numeraire,
                        hedgerd=ours,
                        venue_delta=venue_delta,
                        diff=diff,
                    )
                out.append(d)
        return out

    def max_divergence_coin(self, now_ms: int | None = None) -> float:
        """The largest |hedgerd − venue| delta over underlyings and numeraires (0 if none):
        the value a kill switch compares with its threshold."""
        return max((abs(d.diff_coin) for d in self.cross_check(now_ms)), default=0.0)


def option_vol(inst: Instrument, ticker: Ticker) -> float | None:
    """The option's vol (fraction) implied from the venue's mark price, with the ticker's
    own index, forward and time; the venue's `mark_iv` where the mark carries no vol
    information.

    The mark is preferred because Deribit rounds `mark_iv` to 0.01 vol points, which moves a
    premium by up to vega × 5e-5 (about 1e-5 coin per coin on a month): the mark price is
    what the venue values the position at. `mark_iv` is within that rounding of the answer,
    so two Newton steps from it suffice (a few µs); the full solver runs only when there is
    no `mark_iv` or the polish does not converge.
    """
    assert inst.expiry_ms is not None and inst.strike_usd is not None
    fwd = ticker.underlying_price_usd or ticker.index_price_usd
    price_usd = (
        ticker.mark_price * ticker.index_price_usd
        if inst.price_unit is PriceUnit.COIN
        else ticker.mark_price
    )
    tau = max(0.0, (inst.expiry_ms - ticker.ts_ms) / MS_PER_YEAR)
    if ticker.mark_iv is not None:
        polished = polish_vol(inst.is_call, price_usd, fwd, inst.strike_usd, tau, ticker.mark_iv)
        if polished is not None:
            return polished
    vol, _reason = implied_vol_with_reason(inst.is_call, price_usd, fwd, inst.strike_usd, tau)
    v = float(vol)
    if math.isfinite(v) and v > 0:
        return v
    return ticker.mark_iv


_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def polish_vol(
    is_call: bool,
    price_usd: float,
    forward_usd: float,
    strike_usd: float,
    tau_years: float,
    vol_guess: float,
    steps: int = 2,
) -> float | None:
    """Newton steps on the undiscounted Black-76 price (USD) from `vol_guess` (a fraction).

    None when the price carries too little vega for the steps to be trusted (the caller
    then uses the full solver), or when they do not converge to 1e-12 of the forward."""
    if not (tau_years > 0 and vol_guess > 0 and forward_usd > 0 and strike_usd > 0):
        return None
    moneyness = forward_usd / strike_usd
    if not (math.isfinite(moneyness) and moneyness > 0):  # 5e-324 / 1e5 underflows to 0
        return None
    sqrt_t = math.sqrt(tau_years)
    log_fk = math.log(moneyness)
    vol = vol_guess
    for _ in range(steps + 1):
        sd = vol * sqrt_t
        d1 = log_fk / sd + 0.5 * sd
        d2 = d1 - sd
        if is_call:
            model = forward_usd * _ncdf(d1) - strike_usd * _ncdf(d2)
        else:
            model = strike_usd * _ncdf(-d2) - forward_usd * _ncdf(-d1)
        err = model - price_usd
        if abs(err) <= 1e-12 * forward_usd:
            return vol
        vega = forward_usd * _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1) * sqrt_t
        if vega < 1e-6 * forward_usd * sqrt_t:
            return None
        step = err / vega
        if abs(step) > 0.01:  # the guess was not a rounded version of the answer
            return None
        vol -= step
    return None


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _health(
    source: StreamSource,
    key: str,
    now_ms: int,
    last_ms: int | None,
    threshold_s: float,
    connected: bool,
) -> SourceHealth:
    age = None if last_ms is None else max(0.0, (now_ms - last_ms) / 1000.0)
    stale = (not connected) or age is None or age > threshold_s
    return SourceHealth(source, key, age, threshold_s, connected, stale)


def _zero(pos: Position, ts_ms: int) -> Position:
    return Position(pos.venue, pos.account, pos.instrument, 0.0, pos.amount_unit, ts_ms)


def _same_amount(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


class _Refusing(contextlib.AbstractContextManager[None]):
    """Log and count a refused REST value (bad index, empty ticker) instead of failing the
    whole rebuild: that source then shows as stale."""

    def __init__(self, feed: BookFeed, what: str) -> None:
        self.feed = feed
        self.what = what

    def __exit__(self, et: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, VenueError | BookError):
            self.feed.stats.refused += 1
            log.warning(
                "book_feed.refused", venue=self.feed.venue.name, what=self.what, error=str(exc)
            )
            return True
        return False


__all__ = [
    "BookFeed",
    "DeltaDivergence",
    "FeedStats",
    "ReconcileReport",
    "SourceHealth",
]
