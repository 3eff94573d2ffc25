"""The venue seam: what the rest of the daemon sees of an exchange account.

Everything here is venue-neutral. A venue adapter (`CcxtVenue`, `DeribitVenue`) implements
`Venue`; the book feed and the executor only use this protocol, the `model/` vocabulary and
the event types below. Amounts are in the instrument's `amount_unit`, prices in its
`price_unit`, times in UTC epoch milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hedgerd.model import (
    Balance,
    Fill,
    IndexPrice,
    Instrument,
    OptionTrade,
    OrderBookSnapshot,
    OrderSide,
    OrderType,
    OrderUpdate,
    Position,
    Quote,
    Ticker,
    TimeInForce,
)

if TYPE_CHECKING:
    from hedgerd.config import VenueSettings

# ---------------------------------------------------------------------------------- errors


class ErrorClass(StrEnum):
    """What the caller may do after a failed venue call.

    - RETRYABLE: transient (network, 5xx, maintenance); the same call may be retried after a
      backoff. For a call that changes state (place, cancel) see `VenueError.outcome_unknown`.
    - DEFINITIVE: the venue understood and refused (bad order, no funds, unknown order);
      retrying the same call gives the same answer.
    - RATE_LIMITED: slow down; on Deribit the session may also have been terminated.
    - AUTH: credentials or permissions are wrong; nothing will work until an operator acts.
    """

    RETRYABLE = "retryable"
    DEFINITIVE = "definitive"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"


class RejectReason(StrEnum):
    """Why a venue refused, in hedgerd's words, so that callers (the executor's kill
    switches, reconciliation) never test a venue's numeric codes. Each venue maps its own
    codes (`VenueErrorCode`); a refusal it does not map has no reason (None)."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    RATE_LIMITED = "rate_limited"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"
    REDUCE_ONLY = "reduce_only"
    POST_ONLY = "post_only"
    INVALID_ORDER = "invalid_order"
    ORDER_NOT_FOUND = "order_not_found"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    AUTH = "auth"
    #: The request's expiry (`valid_until`, `expTime`) passed before the venue took it:
    #: definitively not processed.
    REQUEST_EXPIRED = "request_expired"


@dataclass(frozen=True, slots=True)
class VenueErrorCode:
    """What one of a venue's error codes means: its class and, for refusals, the reason."""

    error_class: ErrorClass
    reason: RejectReason | None = None


class VenueError(Exception):
    """A failed venue call, classified. `code` is the venue's own error code when known,
    `reason` hedgerd's neutral name for a refusal (None when the venue's code is unmapped).

    `outcome_unknown` is True when a state-changing request may have reached the venue (a
    timeout or dropped connection after sending): the order must stay in flight until a query
    by client id resolves it; it is never assumed cancelled.
    """

    def __init__(
        self,
        message: str,
        *,
        error_class: ErrorClass,
        venue: str,
        code: int | None = None,
        outcome_unknown: bool = False,
        reason: RejectReason | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.venue = venue
        self.code = code
        self.outcome_unknown = outcome_unknown
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.error_class in (ErrorClass.RETRYABLE, ErrorClass.RATE_LIMITED)


class VenueModeMismatchError(Exception):
    """The venue's reported environment (e.g. Deribit's `testnet` flag) contradicts the
    configured mode. Refusing is the only safe answer."""


# ------------------------------------------------------------------------------ rate limits


class Lane(StrEnum):
    """Separate rate-limit queues. A cancel (kill switch) never waits behind reads."""

    ORDERS = "orders"
    CANCELS = "cancels"
    READS = "reads"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` requests per `interval_s` seconds in `lane`."""

    lane: Lane
    limit: int
    interval_s: float

    def __post_init__(self) -> None:
        if self.limit <= 0 or not self.interval_s > 0:
            raise ValueError(f"rate limit {self.lane}: limit and interval_s must be positive")


# ---------------------------------------------------------------------------- capabilities


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """What an adapter can do, so callers branch on data rather than on venue names."""

    position_stream: bool
    fill_stream: bool
    order_stream: bool
    cancel_on_disconnect: bool
    heartbeat: bool
    client_order_id: bool
    venue_greeks: bool
    mark_iv: bool
    funding: bool
    reports_testnet: bool


# -------------------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to send. `amount` is in the instrument's amount unit (USD for inverse futures,
    coin otherwise), already on the venue's step; `price` in its price unit (None for market);
    `label` is hedgerd's client order id (journalled before sending); `valid_until_ms` (UTC
    ms, None: none) the journalled request expiry: the venue must refuse the request if it
    arrives later (Deribit `valid_until`, OKX `expTime`), so a process paused between its
    journal write and its send cannot place it after its lease is gone (docs/ha.md)."""

    instrument: str
    side: OrderSide
    amount: float
    label: str
    order_type: OrderType = OrderType.LIMIT
    price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    valid_until_ms: int | None = None


# -------------------------------------------------------------------------------- events


class StreamSource(StrEnum):
    """Independent data sources whose freshness is tracked separately."""

    POSITIONS = "positions"
    PORTFOLIO = "portfolio"
    FILLS = "fills"
    ORDERS = "orders"
    TICKERS = "tickers"
    BOOKS = "books"
    INDEX = "index"


class ConnectionState(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A stream session changed state. After RECONNECTED the consumer must take a fresh
    snapshot: anything that happened while disconnected is only in the snapshot."""

    venue: str
    account: str
    session: str
    state: ConnectionState
    ts_ms: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PositionEvent:
    position: Position
    #: The position in coin of the underlying as the venue computes it (Deribit
    #: `size_currency` for inverse futures, `size` otherwise); None when not reported.
    venue_qty_coin: float | None = None


@dataclass(frozen=True, slots=True)
class BalanceEvent:
    """A cash balance (without floating P&L) in one currency."""

    balance: Balance


@dataclass(frozen=True, slots=True)
class FillEvent:
    fill: Fill


@dataclass(frozen=True, slots=True)
class OrderEvent:
    order: OrderUpdate


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    quote: Quote


@dataclass(frozen=True, slots=True)
class TickerEvent:
    ticker: Ticker


@dataclass(frozen=True, slots=True)
class IndexEvent:
    index: IndexPrice


@dataclass(frozen=True, slots=True)
class VenueGreeks:
    """The venue's own account-level Greeks for one underlying, for cross-checks.

    Deribit: `delta_total` (futures in coin plus option "net transaction delta", i.e.
    Black-Scholes delta minus the premium in coin: the coin-numeraire delta), `options_delta`
    (Black-Scholes), `equity_coin` (collateral). All in coin of the underlying."""

    venue: str
    account: str
    underlying: str
    delta_total_coin: float
    options_delta_coin: float
    equity_coin: float
    ts_ms: int
    projected_delta_total_coin: float | None = None
    options_gamma: float | None = None
    options_vega_usd: float | None = None


@dataclass(frozen=True, slots=True)
class MarginSummary:
    """An account's equity and maintenance margin in one settlement currency, both in that
    currency (coin for inverse products, USD-like for linear ones)."""

    venue: str
    currency: str
    equity: float
    maintenance_margin: float
    ts_ms: int
    available: float = math.nan
    """Free collateral in that currency (what new positions may still use); NaN when the
    venue did not say."""
    margined: bool = True
    """Whether the venue margins this currency on its own, so the margin switch judges it.
    False for a currency inside an account margined as a whole (OKX Multi-currency and
    Portfolio margin): a borrowed currency's negative equity there is not a margin call, the
    account's own summary is what liquidation judges."""


@dataclass(frozen=True, slots=True)
class PortfolioEvent:
    greeks: VenueGreeks


VenueEvent = (
    ConnectionEvent
    | PositionEvent
    | BalanceEvent
    | FillEvent
    | OrderEvent
    | QuoteEvent
    | TickerEvent
    | IndexEvent
    | PortfolioEvent
)


# ------------------------------------------------------------------------------ protocol


@runtime_checkable
class OptionHistoryVenue(Protocol):
    """A venue that reports our option trades with the market they were made in (Deribit
    and OKX): what seeds the option flow estimate at start (`portfolio.flow_seed`)."""

    async def fetch_option_trades(
        self, underlying: str, since_ms: int, until_ms: int, limit: int
    ) -> list[OptionTrade]:
        """Our option trades on `underlying` in [since_ms, until_ms] (UTC ms), the newest
        `limit` at most, oldest first."""
        ...


@runtime_checkable
class VolIndexVenue(Protocol):
    """A venue that publishes a volatility index's history (Deribit's DVOL; OKX has none):
    what fills the vol-of-vol estimate's window where the journal's own samples do not
    reach (`portfolio.volvol_seed`)."""

    async def fetch_vol_index(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        """(time ms, index as a vol fraction) in (since_ms, until_ms] (UTC ms), oldest first,
        after the last point at or before `since_ms` (the first change's predecessor, as the
        journal's samples give it)."""
        ...


def history_from(points: Mapping[int, float], since_ms: int) -> list[tuple[int, float]]:
    """A venue history's (time ms, value) points, oldest first, from the last one at or
    before `since_ms` on (the first change's predecessor; all of them when none is): the
    shape `VolIndexVenue` and `IndexHistoryVenue` return."""
    ordered = sorted(points.items())
    first = max((i for i, (t, _) in enumerate(ordered) if t <= since_ms), default=0)
    return ordered[first:]


@runtime_checkable
class IndexHistoryVenue(Protocol):
    """A venue that publishes its underlying index's history (Deribit's index chart, OKX's
    index candles): what fills the jump variance estimate's window where the journal's own
    index samples do not reach (`portfolio.volvol_seed`)."""

    async def fetch_index_history(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        """(time ms, index USD) in (since_ms, until_ms] (UTC ms), oldest first, after the
        last point at or before `since_ms` (the first return's predecessor), at the venue's
        own step (an hour at most where it has finer)."""
        ...


@runtime_checkable
class DeadManVenue(Protocol):
    """A venue whose dead-man switch (Deribit cancel-on-disconnect, OKX cancel-all-after)
    can follow an HA node's role: with `dead_man_by_role` set before `connect`, `connect`
    does not arm it; `set_dead_man(True)` arms it (the node leads), `set_dead_man(False)`
    disarms it (standby, fenced, handed off). A standby's switch must not be armed: OKX's
    countdown and Deribit's account-scope cancel would cancel the leader's orders when the
    standby dies."""

    dead_man_by_role: bool

    async def set_dead_man(self, armed: bool) -> None: ...


@runtime_checkable
class Venue(Protocol):
    """One account on one exchange, as the daemon sees it. Implementations are async and
    safe to call from several tasks; every method raises `VenueError` (classified) on
    failure and nothing else for venue-side problems."""

    @property
    def name(self) -> str:
        """The configured name of this venue account (e.g. 'deribit-main')."""
        ...

    @property
    def account(self) -> str: ...

    @property
    def capabilities(self) -> VenueCapabilities: ...

    async def connect(self) -> None:
        """Load instruments, check the environment (testnet vs live), start streams."""
        ...

    async def close(self) -> None: ...

    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by venue name, as loaded by `connect` or `reload_instruments`."""
        ...

    async def reload_instruments(self) -> Mapping[str, Instrument]: ...

    async def fetch_positions(self, underlying: str) -> list[PositionEvent]:
        """Every non-zero position on `underlying` (e.g. 'BTC'), one REST snapshot."""
        ...

    async def fetch_balances(self) -> list[Balance]: ...

    async def fetch_venue_greeks(self, underlying: str) -> VenueGreeks | None:
        """The venue's account Greeks, or None if the venue reports none."""
        ...

    async def fetch_fills(self, underlying: str, since_ms: int) -> list[Fill]:
        """Our trades on `underlying` at or after `since_ms` (to recover an outage)."""
        ...

    async def fetch_quote(self, instrument: str) -> Quote: ...

    async def fetch_order_book(
        self, instrument: str, depth_notional_usd: float
    ) -> OrderBookSnapshot:
        """Depth on each side until `depth_notional_usd` of cumulative notional (USD)."""
        ...

    async def fetch_ticker(self, instrument: str) -> Ticker:
        """Mark, index, funding and option mark IV (fraction) of one instrument."""
        ...

    async def fetch_index(self, underlying: str) -> IndexPrice: ...

    async def place_order(self, request: OrderRequest) -> OrderUpdate: ...

    async def cancel_order(self, order_id: str) -> OrderUpdate: ...

    async def cancel_all(self, underlying: str | None = None) -> int:
        """Cancel every open order (of one underlying); returns how many were cancelled."""
        ...

    async def cancel_by_label(self, label: str, underlying: str | None = None) -> int:
        """Cancel the open orders carrying client id `label`; returns how many."""
        ...

    async def order_by_label(self, label: str) -> list[OrderUpdate]:
        """The venue's orders carrying client id `label` (empty if it never arrived)."""
        ...

    def events(self) -> AsyncIterator[VenueEvent]:
        """The merged stream of events from this venue's sessions, in arrival order."""
        ...

    async def subscribe_market(self, instruments: list[str]) -> None:
        """Stream tickers and top of book of these instruments (and their indexes)."""
        ...

    # The venue-neutral seam: what callers used to read off a Deribit adapter's internals.
    async def server_time_ms(self) -> int:
        """The venue's server clock (UTC epoch ms), one request (Deribit `public/get_time`,
        OKX `public/time`)."""
        ...

    async def margin_summaries(self) -> list[MarginSummary]:
        """Equity and maintenance margin per settlement currency the account uses."""
        ...

    def order_path_ready(self) -> bool:
        """Whether an order sent now goes where the dead-man switch covers it (Deribit: the
        cancel-on-disconnect session is up; OKX: the cancel-all-after timer is armed).
        Always True for a venue that has no such switch configured."""
        ...

    def resolve_instrument(self, name: str) -> Instrument | None:
        """The instrument by venue name: the loaded markets first, else the venue's name
        parser (an expired or newly listed instrument); None if hedgerd cannot value it."""
        ...


class FeedVenue(Venue, Protocol):
    """What `BookFeed` needs of a venue beyond `Venue`: its settings (staleness and
    reconciliation defaults), the instruments it streams, and its clock."""

    @property
    def settings(self) -> VenueSettings: ...

    #: Instruments whose market data is streamed; the feed adds the ones it needs.
    market_names: set[str]

    def venue_time_ms(self) -> int:
        """The venue's clock (UTC epoch ms) as this adapter keeps it."""
        ...

    def pending_events(self) -> int:
        """Events received and not yet read from `events()`."""
        ...


__all__ = [
    "BalanceEvent",
    "ConnectionEvent",
    "ConnectionState",
    "ErrorClass",
    "FeedVenue",
    "FillEvent",
    "IndexEvent",
    "Lane",
    "MarginSummary",
    "OrderEvent",
    "OrderRequest",
    "PortfolioEvent",
    "PositionEvent",
    "QuoteEvent",
    "RateLimit",
    "RejectReason",
    "StreamSource",
    "TickerEvent",
    "Venue",
    "VenueCapabilities",
    "VenueError",
    "VenueErrorCode",
    "VenueEvent",
    "VenueGreeks",
    "VenueModeMismatchError",
]
