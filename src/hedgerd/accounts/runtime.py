"""`AccountRuntime`: one venue account as the daemon runs it.

It owns the account's venue session, the start-up and timer order reconciliation, the book
and the feed that keeps it equal to the account, the market read model, the book's
integrity and the account's venue checks; it routes the account's stream events to the
portfolio's executor and kill-switch board. The portfolio services (hedge loop, fill ledger,
operator actions, status) see the account only through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence

import structlog

from hedgerd.accounts.checks import AccountChecks
from hedgerd.accounts.integrity import BookIntegrity
from hedgerd.accounts.market import MarketCache
from hedgerd.accounts.parts import AccountParts
from hedgerd.book.greeks_book import GreeksBook
from hedgerd.book.valuation import MS_PER_YEAR
from hedgerd.config import HedgerdConfig, VenueSettings
from hedgerd.delegate import Kept
from hedgerd.execution.journal import Journal
from hedgerd.execution.order_state import OrderRecord
from hedgerd.execution.reconcile import Reconciler, ReconcileSettings
from hedgerd.model import Fill, Instrument
from hedgerd.portfolio.parts import Clocks, PortfolioParts
from hedgerd.risk.sanity import GapWitness
from hedgerd.venues.base import (
    ConnectionEvent,
    ConnectionState,
    FeedVenue,
    FillEvent,
    IndexEvent,
    OrderEvent,
    PortfolioEvent,
    PositionEvent,
    QuoteEvent,
    TickerEvent,
    VenueError,
    VenueEvent,
)
from hedgerd.venues.book_feed import BookFeed, DeltaDivergence
from hedgerd.venues.registry import make_venue

log = structlog.get_logger(__name__)

#: The venue's own Greeks older than this (feed clock ms) are asked for again before a
#: cross-check (about every 5 s), as are those that predate a position change.
VENUE_GREEKS_MAX_AGE_MS = 4_000
#: Wall seconds a venue Greeks request may hold the daemon's tick loop.
VENUE_GREEKS_TIMEOUT_S = 2.0


class AccountStartError(Exception):
    """The account cannot start trading (start-up reconciliation failed)."""


class AccountRuntime:
    """One `[venues.NAME]` account: its session, feed, book, reconciliation and checks.

    `on_fill`: the portfolio's fill ledger (every fill of the account, streamed or repaired);
    `on_error`: where a failure that must not stop the stream is counted."""

    def __init__(
        self,
        name: str,
        settings: VenueSettings,
        config: HedgerdConfig,
        clocks: Clocks,
        shared: PortfolioParts,
        *,
        on_fill: Callable[[Fill], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.parts = AccountParts(name, settings)
        self.config = config
        self.clocks = clocks
        self.shared = shared
        self.underlyings = tuple(u.upper() for u in settings.underlyings)
        self._on_fill = on_fill
        self._on_error = on_error
        self.market = MarketCache(self.parts, clocks.clock_ms)
        self.integrity = BookIntegrity(
            self.parts, shared, numeraire=config.numeraire, board_clock_ms=clocks.board_clock_ms
        )
        self.checks = AccountChecks(self.parts, shared, clocks)
        #: Whether each of the venue's stream sessions is connected (by session name).
        self._sessions_up: dict[str, bool] = {}
        self._positions_seen_ms = 0
        #: Instrument names the markets were reloaded for once (`instruments_of`).
        self.reloaded_for: set[str] = set()

    @property
    def name(self) -> str:
        return self.parts.name

    @property
    def settings(self) -> VenueSettings:
        return self.parts.settings

    # The account's parts, as its services and the portfolio's read them.
    venue = Kept[FeedVenue | None]("parts")
    reconciler = Kept[Reconciler | None]("parts")
    book = Kept[GreeksBook | None]("parts")
    feed = Kept[BookFeed | None]("parts")

    # ------------------------------------------------------------------ building
    def build_venue(self) -> FeedVenue:
        if not self.settings.cancel_on_disconnect:
            # Orders then go out through ccxt's REST client as GETs, which aiohttp may re-send
            # when the connection drops: a possible double order. Say so loudly.
            log.warning("daemon.orders_over_rest", venue=self.name)
        # The adapter of the account's exchange (`venues/registry.py`).
        venue = self.parts.venue = make_venue(
            self.name, self.settings, clock_ms=self.clocks.clock_ms
        )
        return venue

    def build_reconciler(
        self, journal: Journal, on_record: Callable[[OrderRecord], None]
    ) -> Reconciler:
        assert self.parts.venue is not None
        reconciler = self.parts.reconciler = Reconciler(
            self.parts.venue,
            journal,
            underlyings=self.underlyings,
            settings=ReconcileSettings(
                not_found_grace_ms=int(5_000 * max(1.0, self.clocks.speed)),
                # The account may carry other systems' orders (an options market maker's
                # quotes): only orders with a hedgerd label are adopted, others left alone.
                foreign_hedgerd_only=True,
            ),
            clock_ms=self.clocks.clock_ms,
            on_record=on_record,
        )
        return reconciler

    # ------------------------------------------------------------------ start-up
    async def connect_and_reconcile(self, *, reconcile: bool = True) -> None:
        """Connect, then the start-up order reconciliation (in-doubt orders asked by label)
        before anything is sent. `reconcile=False`: an HA standby, which must not resolve
        the active's in-flight intents; it reconciles when it takes over."""
        venue, reconciler, board = self.parts.venue, self.parts.reconciler, self.shared.board
        assert venue is not None and reconciler is not None and board is not None
        await venue.connect()
        board.on_connection(self.name, True, self.clocks.board_clock_ms())
        if not reconcile:
            return
        report = await reconciler.reconcile(startup=True)
        if report.errors:
            raise AccountStartError(f"start-up reconciliation failed: {report.errors[0]}")

    async def start_feed(self) -> None:
        """The book rebuilt from the venue's positions and streamed; the hedge instruments'
        markets subscribed; the account's data sources registered with the board."""
        venue, board = self.parts.venue, self.shared.board
        assert venue is not None and board is not None
        board_clock_ms = self.clocks.board_clock_ms
        book = self.parts.book = GreeksBook()
        feed = self.parts.feed = BookFeed(
            venue,
            book,
            clock_ms=self.clocks.clock_ms,
            on_event=self.on_event,
            on_reconcile=self.integrity.on_reconcile,
            # PRICE_SANITY judges an index before the book takes it: a refused one never lands.
            # A gap is confirmed by the other feeds of the underlying (this venue's marks,
            # another venue's index).
            index_check=lambda u, price: (
                board.on_price(
                    board_clock_ms(),
                    f"{self.name}:index:{u}",
                    price,
                    witness=GapWitness(u, f"{self.name}:index"),
                ).accepted
            ),
            forward_check=self.forward_sane,
            vol_check=lambda name, vol: board.on_vol(
                board_clock_ms(), f"{self.name}:iv:{name}", vol
            ),
        )
        await feed.start()
        self._positions_seen_ms = board_clock_ms()
        hedge_names = [
            n
            for u in self.underlyings
            for n in self.config.hedge_instruments(self.name, u)
            if n in venue.instruments()
        ]
        if hedge_names:
            await venue.subscribe_market(hedge_names)
        now = board_clock_ms()
        for u in self.underlyings:
            board.register_feed(self.name, f"index:{u}", now)
        board.register_feed(self.name, "positions", now)

    async def feed_watch(self) -> None:
        """Supervise the book feed's tasks (stream consumer, position reconciliation): one
        that ends is a crash (trading halts); the restart rebuilds the book from the venue."""
        feed = self.parts.feed
        assert feed is not None
        tasks = list(feed._tasks)  # the feed's own tasks; it exposes no other handle
        if not tasks or any(t.done() for t in tasks):
            await feed.stop()
            await feed.start()
            tasks = list(feed._tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise RuntimeError(f"book feed task {t.get_name()} failed") from t.exception()
        raise RuntimeError("book feed stopped")

    async def close(self) -> None:
        """Stop the book's refresh and feed, close the venue session (shutdown)."""
        await self.integrity.close()
        if self.parts.feed is not None:
            await self.parts.feed.stop()
        if self.parts.venue is not None:
            with contextlib.suppress(Exception):
                await self.parts.venue.close()

    # -------------------------------------------------------------------- events
    async def on_event(self, ev: VenueEvent) -> None:
        """Every venue stream event, after the book applied it. Never raises."""
        try:
            await self._route(ev)
        except Exception as exc:  # the feed must keep reading whatever one event does
            log.exception("daemon.event_failed", event_type=type(ev).__name__)
            self._on_error(f"event {type(ev).__name__}: {exc!r}")

    async def _route(self, ev: VenueEvent) -> None:
        board, executor = self.shared.board, self.shared.executor
        assert board is not None and executor is not None
        now = self.clocks.board_clock_ms()
        if isinstance(ev, OrderEvent):
            await executor.handle_event(ev)
        elif isinstance(ev, FillEvent):
            await executor.handle_event(ev)
            self._on_fill(ev.fill)
        elif isinstance(ev, QuoteEvent):
            self.market.quotes[ev.quote.instrument] = ev.quote
        elif isinstance(ev, TickerEvent):
            self.market.marks[ev.ticker.instrument] = ev.ticker.mark_price
        elif isinstance(ev, IndexEvent):
            # Stamped with the data's own time (a ticker that keeps coming with a time that
            # no longer advances is stale), on the board's clock: its age on the daemon's
            # clock, in wall time when the daemon's clock is accelerated.
            age_ms = max(self.clocks.clock_ms() - ev.index.ts_ms, 0) / self.clocks.speed
            board.on_data(self.name, f"index:{ev.index.underlying}", int(now - age_ms))
            # Price sanity judged the index before the book applied it (BookFeed.index_check).
        elif isinstance(ev, PositionEvent | PortfolioEvent):
            board.on_data(self.name, "positions", now)
        elif isinstance(ev, ConnectionEvent):
            # The venue is connected when every one of its sessions (market data, private
            # orders) is: one reconnecting must not hide another that stays down.
            self._sessions_up[ev.session] = ev.state is not ConnectionState.DISCONNECTED
            board.on_connection(self.name, all(self._sessions_up.values()), now)

    def forward_sane(
        self, underlying: str, expiry_ms: int, forward_usd: float, index_usd: float
    ) -> bool:
        """PRICE_SANITY on a forward (BookFeed.forward_check): its jump per expiry, and its
        distance from the index within the basis its time to expiry allows."""
        board = self.shared.board
        if board is None:  # not trading yet: nothing may be judged good
            return False
        tau = max(expiry_ms - self.clocks.clock_ms(), 0) / MS_PER_YEAR
        verdict = board.on_price(
            self.clocks.board_clock_ms(),
            f"{self.name}:forward:{underlying}:{expiry_ms}",
            forward_usd,
            reference_price_usd=index_usd,
            reference_horizon_years=tau,
            witness=GapWitness(underlying, f"{self.name}:mark"),
        )
        return verdict.accepted

    def on_fill_repaired(self, fill: Fill) -> None:
        """A fill the executor fetched by order because the stream missed it (journalled):
        counted like a stream fill, and the book's positions refreshed from the venue at
        once rather than at the next timer or reconnect reconciliation."""
        if self.parts.feed is not None:
            self.parts.feed.apply(FillEvent(fill))
        self._on_fill(fill)
        self.integrity.expect_repaired(fill)

    # ------------------------------------------------------------- board ticks
    def note_positions_seen(self, now_ms: int) -> None:
        """A reconciliation confirmed every position (the stream only says changes)."""
        feed = self.parts.feed
        last = feed.last_reconcile if feed is not None else None
        if last is not None and last.ts_ms != self._positions_seen_ms:
            self._positions_seen_ms = last.ts_ms
            assert self.shared.board is not None
            self.shared.board.on_data(self.name, "positions", now_ms)

    async def refresh_venue_greeks(self) -> None:
        """Bring the venue's own Greeks up to the book's positions before `cross_check`
        (`BookFeed.refresh_venue_greeks`): a venue that does not stream them (OKX) is asked.
        A slow or failing venue leaves the figure in hand; the request never holds the
        caller longer than `VENUE_GREEKS_TIMEOUT_S`."""
        feed = self.parts.feed
        if feed is None:
            return
        try:
            async with asyncio.timeout(VENUE_GREEKS_TIMEOUT_S):
                await feed.refresh_venue_greeks(VENUE_GREEKS_MAX_AGE_MS)
        except (VenueError, TimeoutError) as exc:
            log.warning("account.venue_greeks_failed", venue=self.name, error=str(exc))

    def cross_check(self, now_ms: int) -> Sequence[DeltaDivergence]:
        """hedgerd's delta against the venue's own figure (Greeks-divergence switch); a
        divergence that holds refreshes the book first (`BookIntegrity.on_divergence`)."""
        feed, board = self.parts.feed, self.shared.board
        if feed is None:
            return ()
        assert board is not None
        # Only a venue figure that reflects every position change the book applied is judged:
        # one that predates the book's latest trades (its refresh failed or timed out, as it
        # does in a starved process, or was ahead of the stream and not taken) differs from
        # the book by those trades, not by anything lost (chaos's greeks_divergence trips).
        divergences = [d for d in feed.cross_check() if feed.greeks_current(d.underlying)]
        self.integrity.on_divergence(now_ms, divergences)
        for d in divergences:
            if d.numeraire == self.config.numeraire:
                board.on_greeks(
                    now_ms, self.name, d.underlying, d.hedgerd_delta_coin, d.venue_delta_coin
                )
        return divergences

    # ----------------------------------------------------------------- queries
    def disconnected(self) -> bool:
        """Whether one of the venue's stream sessions (market data, private) is down now, as
        its last connection event said: routing leaves the account out at once, long before
        the venue-disconnected switch's limit halts it."""
        return not all(self._sessions_up.values())

    def awaiting_data(self) -> bool:
        """Whether the streams reconnected but the link is not healthy yet: no fresh market
        data since the reconnection (a reconnect whose subscription then fails looks
        connected for an instant), or a feed past its limit (`KillSwitchBoard.link_healthy`).
        Routing leaves the account out meanwhile. (The first connection at start is judged by
        the stale-data switch's start-up grace, as before.)"""
        board = self.shared.board
        if board is None or board.disconnected.reconnected_since_ms(self.name) is None:
            return False  # down (`disconnected`), not reconnected yet: judged elsewhere
        return not board.link_healthy(self.name, self.clocks.board_clock_ms())

    def orders_blocked(self) -> bool:
        """Whether orders must wait: the venue's order path is not ready (Deribit: with
        cancel-on-disconnect, its order session is down and ccxt's REST fallback would send
        order requests as GETs that aiohttp may re-send; OKX: the dead-man countdown is not
        armed). No venue yet: wait."""
        venue = self.parts.venue
        return venue is None or not venue.order_path_ready()

    async def instruments_of(self, names: set[str]) -> Mapping[str, Instrument]:
        """The venue's instruments, covering `names` where they can be known: one reload of
        the markets for a name first seen (listed since the markets were loaded), then the
        name itself for an option (one that expired today is gone from the venue's list; the
        day's loss does not count options, it only needs to know they are options). A name
        still unknown stays out, and the day's loss cannot be computed."""
        venue = self.parts.venue
        assert venue is not None
        instruments: Mapping[str, Instrument] = venue.instruments()
        fresh = names - instruments.keys() - self.reloaded_for
        if fresh:
            instruments = await venue.reload_instruments()
            self.reloaded_for |= fresh  # only once it worked: a failed reload is tried again
        missing = names - instruments.keys()
        if not missing:
            return instruments
        out = dict(instruments)
        for name in missing:
            inst = venue.resolve_instrument(name)
            if inst is not None and inst.is_option:
                out[name] = inst
        return out
