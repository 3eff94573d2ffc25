"""Deribit: what ccxt lacks, on top of the generic `CcxtVenue`.

- A private JSON-RPC WebSocket session (`DeribitSession`): `public/auth` (client_signature),
  `public/set_heartbeat` answered with `public/test` on every `test_request`,
  `private/enable_cancel_on_disconnect` with scope `account`, subscriptions to
  `user.changes.any.{CCY}.raw` (trades, orders and positions together) and
  `user.portfolio.{ccy}` (the venue's account Greeks), reconnect with backoff and resubscribe.
  ccxt.pro cannot do this: it raises NotSupported on `user.changes` and ignores heartbeats.
- `label` as the client order id: place, cancel by label and query by label.
- Positions in the venue's units plus coin (`size_currency` for inverse futures) and the
  venue's own per-position delta and account `delta_total` for cross-checks.
- The environment check: every Deribit response carries `testnet`; a venue whose flag
  contradicts the configured mode is refused (`VenueModeMismatchError`).

Market data (tickers with mark, index, mark IV, funding, top of book) streams through
ccxt.pro's `watch_tickers`; snapshots go through ccxt's REST client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import structlog

from hedgerd.config import VenueSettings
from hedgerd.model import (
    AmountUnit,
    Balance,
    BookLevel,
    Fill,
    IndexPrice,
    Instrument,
    OptionTrade,
    OrderBookSnapshot,
    OrderType,
    OrderUpdate,
    Quote,
    Ticker,
)
from hedgerd.venues.base import (
    BalanceEvent,
    ConnectionEvent,
    ConnectionState,
    ErrorClass,
    FillEvent,
    IndexEvent,
    Lane,
    MarginSummary,
    OrderEvent,
    OrderRequest,
    PortfolioEvent,
    PositionEvent,
    QuoteEvent,
    TickerEvent,
    Venue,
    VenueCapabilities,
    VenueError,
    VenueGreeks,
    history_from,
)
from hedgerd.venues.ccxt_venue import Backoff, CcxtVenue, classify_error, now_ms
from hedgerd.venues.deribit import errors as _errors  # noqa: F401  (registers the codes)
from hedgerd.venues.deribit import limits as _limits  # noqa: F401  (registers the lanes)
from hedgerd.venues.deribit.payloads import (
    FAR_FUTURE_MS,
    LINEAR_SETTLEMENT,
    BadPayloadError,
    balance_from_summary,
    check_environment,
    fill_from_deribit,
    greeks_from_summary,
    index_name,
    option_trade_from_deribit,
    order_from_deribit,
    position_from_deribit,
    quote_from_deribit,
    resolve_instrument,
    ticker_from_deribit,
)
from hedgerd.venues.deribit.session import DeribitSession, SessionClosedError
from hedgerd.venues.json_values import as_float
from hedgerd.venues.units import depth_to_notional

log = structlog.get_logger(__name__)

_P = TypeVar("_P")  # what a ticker parser reads from `public/ticker`

CAPABILITIES = VenueCapabilities(
    position_stream=True,
    fill_stream=True,
    order_stream=True,
    cancel_on_disconnect=True,
    heartbeat=True,
    client_order_id=True,
    venue_greeks=True,
    mark_iv=True,
    funding=True,
    reports_testnet=True,
)

#: The market watchdog's default silence limit, in `stale_market_s` windows.
MARKET_SILENCE_STALE_WINDOWS = 3.0

# ------------------------------------------------------------------------------ venue


#: DVOL's resolution for the vol-of-vol seed: hourly (s), a 30-day window in one page; and the
#: most pages asked (a longer window).
VOL_INDEX_RESOLUTION = "3600"
VOL_INDEX_RESOLUTION_MS = 3_600_000
VOL_INDEX_MAX_PAGES = 4
#: `public/get_index_chart_data`'s ranges, each the span (ms) it reaches back from the
#: venue's now, smallest first ("1m" taken as 30 days; "all" covers any span).
INDEX_CHART_RANGES: tuple[tuple[str, int], ...] = (
    ("1h", 3_600_000),
    ("1d", 86_400_000),
    ("2d", 2 * 86_400_000),
    ("1m", 30 * 86_400_000),
    ("1y", 365 * 86_400_000),
)


class DeribitVenue(CcxtVenue):
    """A Deribit account through ccxt (REST + ccxt.pro tickers) and a private session."""

    def __init__(
        self,
        name: str,
        settings: VenueSettings,
        *,
        clock_ms: Callable[[], int] = now_ms,
        backoff: Backoff | None = None,
        private_stream: bool = True,
        market_silence_s: float | None = None,
        market_watchdog_poll_s: float = 0.5,
    ) -> None:
        """`market_silence_s`: the market stream is restarted (ccxt's client closed, the
        tickers resubscribed) once no ticker has come for this long on `clock_ms` (the
        daemon's clock: accelerated in paper mode); default `MARKET_SILENCE_STALE_WINDOWS`
        times the settings' `stale_market_s`: the data has been stale for a while by then, so
        the STALE_DATA switch sees a silent venue first and the restart is the recovery.
        Restarts in a row that bring back no more than one ticker (a subscription snapshot)
        double the limit each time. `market_watchdog_poll_s`: how often (wall seconds) the
        market step wakes up to check."""
        if settings.exchange != "deribit":
            # Guard for callers that build the Deribit adapter directly instead of through
            # `hedgerd.venues.registry.make_venue`.
            raise ValueError(
                f"venue {name!r} is on exchange {settings.exchange!r}, not Deribit: build it "
                "with hedgerd.venues.registry.make_venue"
            )
        super().__init__(name, settings, clock_ms=clock_ms, backoff=backoff)
        self.market_silence_s = (
            market_silence_s
            if market_silence_s is not None
            else MARKET_SILENCE_STALE_WINDOWS * settings.stale_market_s
        )
        self._market_restarts_in_row = 0
        #: Times ccxt's `watch_tickers` returned since the last restart.
        self.market_updates_since_restart = 0
        self.market_watchdog_poll_s = market_watchdog_poll_s
        #: Times the market stream was restarted for silence (`venue.market_stream_restarted`).
        self.market_restarts = 0
        self._market_watch: asyncio.Task[Any] | None = None
        self._market_seen_ms: int | None = None
        self._private_stream = private_stream
        self.session: DeribitSession | None = None
        self.market_names: set[str] = set()
        self.server_offset_ms = 0
        self._ticker_seen: dict[Any, tuple[Any, Any]] = {}  # instrument: (ts, mark)
        self._market_task: asyncio.Task[None] | None = None
        #: `market_names` still unknown after a markets reload (not asked about again).
        self._market_unknown: set[str] = set()
        #: Names whose last ticker was refused (logged once until a good one).
        self._tickers_refused: set[str] = set()
        #: Private-stream entries (a trade, order or position of a `user.changes` batch, the
        #: balance or Greeks of a portfolio) refused as unreadable; the rest was applied.
        self.refused_entries = 0

    @property
    def capabilities(self) -> VenueCapabilities:
        return CAPABILITIES

    # ----------------------------------------------------------------------- connect
    def check_testnet(self, testnet: Any, where: str = "REST API") -> None:
        check_environment(self.name, self.settings.mode, testnet, where)

    async def connect(self) -> None:
        """Check the environment, load instruments, start the private session (if the
        account has keys and `private_stream`) and wait for it to be subscribed."""
        raw = await self.call(Lane.READS, lambda: self.rest.publicGetGetTime())
        self.check_testnet(raw.get("testnet") if isinstance(raw, Mapping) else None)
        server_ms = raw.get("result") if isinstance(raw, Mapping) else None
        if isinstance(server_ms, int | float) and server_ms > 0:
            self.server_offset_ms = int(server_ms) - self.clock_ms()
        await self.reload_instruments()
        creds = self.settings.credentials()
        if creds is None or not self._private_stream:
            return
        channels = [f"user.changes.any.{c}.raw" for c in self.settlement_currencies]
        channels += [f"user.portfolio.{c.lower()}" for c in self.settlement_currencies]
        self.session = DeribitSession(
            name=f"{self.name}:private",
            ws_url=str(self.rest_ws_url()),
            api_key=creds[0].get_secret_value(),
            api_secret=creds[1].get_secret_value(),
            channels=channels,
            on_message=self._on_private,
            on_state=self._on_session_state,
            heartbeat_s=self.settings.heartbeat_s,
            cancel_on_disconnect=self.settings.cancel_on_disconnect and not self.dead_man_by_role,
            cod_scope="connection" if self.dead_man_by_role else "account",
            backoff=self.backoff,
            call_timeout_s=self.settings.request_timeout_s,
            check_testnet=lambda flag: self.check_testnet(flag, "WebSocket API"),
        )
        session = self.session
        run_task = self.spawn(session.run(), "private-session")
        waiter = asyncio.ensure_future(session.connected.wait())
        done, _ = await asyncio.wait(
            {waiter, run_task},
            timeout=self.settings.request_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if waiter not in done:
            waiter.cancel()
            if session.fatal is not None:
                raise session.fatal
            raise VenueError(
                f"{self.name}: private session did not connect within "
                f"{self.settings.request_timeout_s} s",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )

    # --------------------------------------------------------------- neutral seam
    async def server_time_ms(self) -> int:
        """Deribit's `public/get_time` (UTC epoch ms), through the reads lane."""
        raw = await self.call(Lane.READS, lambda: self.rest.publicGetGetTime())
        server_ms = raw.get("result") if isinstance(raw, Mapping) else None
        if not isinstance(server_ms, int | float) or isinstance(server_ms, bool):
            raise VenueError(
                f"{self.name}: unreadable server time {str(raw)[:100]}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return int(server_ms)

    async def margin_summaries(self) -> list[MarginSummary]:
        """Equity and maintenance margin (`private/get_account_summary`) per settlement
        currency, each in that currency."""
        out = []
        for ccy in self.settlement_currencies:
            data = await self._summary(ccy)
            out.append(
                MarginSummary(
                    venue=self.name,
                    currency=ccy,
                    equity=as_float(data.get("equity"), 0.0),
                    maintenance_margin=as_float(data.get("maintenance_margin"), 0.0),
                    ts_ms=self.venue_time_ms(),
                    available=as_float(data.get("available_funds"), math.nan),
                )
            )
        return out

    async def set_dead_man(self, armed: bool) -> None:
        """HA (`dead_man_by_role`): cancel-on-disconnect of this node's session, scope
        "connection", on while it leads (see `DeadManVenue`)."""
        if self.settings.cancel_on_disconnect and self.session is not None:
            await self.session.set_cancel_on_disconnect(armed)

    def order_path_ready(self) -> bool:
        """With cancel-on-disconnect, orders must go over the private session (the REST
        fallback's order requests are GETs that aiohttp may re-send when a connection
        drops): ready only while it is up. Without it, always ready."""
        if not self.settings.cancel_on_disconnect:
            return True
        return self.session is not None and self.session.connected.is_set()

    def resolve_instrument(self, name: str) -> Instrument | None:
        return resolve_instrument(self._instruments, name, self.name)

    def venue_time_ms(self) -> int:
        """The venue's clock (UTC ms) estimated from `public/get_time` at connect: our clock
        (`clock_ms`, the wall clock by default) plus the measured offset (a simulator may run
        at another date)."""
        return self.clock_ms() + self.server_offset_ms

    def rest_ws_url(self) -> str:
        return str(self.ws.urls["api"]["ws"])

    def _on_session_state(self, state: ConnectionState, reason: str) -> None:
        self.emit(
            ConnectionEvent(
                self.name, self.account, "private", state, self.venue_time_ms(), reason=reason[:200]
            )
        )

    def _on_private(self, channel: str, data: Any) -> None:
        """One private notification. Each entry of a `user.changes` batch (trade, order,
        position) and each part of a `user.portfolio` summary (cash balance, Greeks) is read
        on its own: a bad one is refused and logged (`deribit.private_entry_refused`), the
        valid rest applied. A batch or summary that is not an object raises
        (`BadPayloadError`: the session counts and logs it)."""
        ts = self.venue_time_ms()
        if channel.startswith("user.changes."):
            data = _payload_mapping("user.changes", data)
            for trade in self._entries(channel, data, "trades"):
                self._refusing(channel, "trade", trade, functools.partial(self._emit_fill, trade))
            for order in self._entries(channel, data, "orders"):
                self._refusing(channel, "order", order, functools.partial(self._emit_order, order))
            for pos in self._entries(channel, data, "positions"):
                self._refusing(
                    channel, "position", pos, functools.partial(self._emit_position, pos, ts)
                )
        elif channel.startswith("user.portfolio."):
            data = _payload_mapping("user.portfolio", data)
            ccy = channel.split(".")[2].upper()
            named = data.get("currency")
            if isinstance(named, str) and named and named.upper() != ccy:
                # Filed under another currency than its channel's: neither part is trusted.
                raise BadPayloadError(f"portfolio (currency {named!r} on {channel})", data)
            self._refusing(
                channel,
                "balance",
                data,
                lambda: self.emit(
                    BalanceEvent(balance_from_summary(self.name, self.account, ccy, data, ts))
                ),
            )
            self._refusing(
                channel,
                "greeks",
                data,
                lambda: self.emit(
                    PortfolioEvent(greeks_from_summary(self.name, self.account, ccy, data, ts))
                ),
            )

    def _entries(self, channel: str, data: Mapping[str, Any], key: str) -> list[Any]:
        """The list under `key` of a `user.changes` batch (absent or null: none). Another
        shape cannot be split into entries: refused (counted, logged), the other keys read."""
        value = data.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self._refusing(
            channel, key, value, functools.partial(_refuse, f"user.changes ({key})", value)
        )
        return []

    def _emit_fill(self, trade: Any) -> None:
        self.emit(FillEvent(fill_from_deribit(self.name, trade)))

    def _emit_order(self, order: Any) -> None:
        self.emit(OrderEvent(order_from_deribit(self.name, order)))

    def _emit_position(self, pos: Any, ts_ms: int) -> None:
        name = pos.get("instrument_name") if isinstance(pos, Mapping) else None
        inst = (
            resolve_instrument(self._instruments, name, self.name)
            if isinstance(name, str)
            else None
        )
        self.emit(position_from_deribit(self.name, self.account, pos, inst, ts_ms))

    def _refusing(self, channel: str, kind: str, entry: Any, parse: Callable[[], None]) -> None:
        """Run `parse` (which emits one entry's event); a payload it refuses is counted in
        `refused_entries` and logged with its reason, and the batch goes on."""
        try:
            parse()
        except BadPayloadError as exc:
            self.refused_entries += 1
            log.warning(
                "deribit.private_entry_refused",
                venue=self.name,
                channel=channel,
                kind=kind,
                reason=str(exc)[:300],
            )
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            # A parser bug on a hostile shape: refused the same way, with the type for triage.
            self.refused_entries += 1
            log.warning(
                "deribit.private_entry_refused",
                venue=self.name,
                channel=channel,
                kind=kind,
                reason=f"{type(exc).__name__}: {exc}"[:300],
                entry=str(entry)[:200],
            )

    # --------------------------------------------------------------------- snapshots
    @property
    def settlement_currencies(self) -> tuple[str, ...]:
        """Currencies Deribit files positions, trades and summaries under: each followed
        underlying (inverse products) and USDC (linear products of every underlying)."""
        return (*(u.upper() for u in self.settings.underlyings), LINEAR_SETTLEMENT)

    def _belongs(self, instrument_name: str, currency: str, underlying: str) -> bool:
        """Whether a position or trade filed under `currency` is on `underlying`."""
        if currency != LINEAR_SETTLEMENT:
            return True
        return instrument_name.startswith(f"{underlying.upper()}_")

    async def fetch_positions(self, underlying: str) -> list[PositionEvent]:
        """Non-zero positions on `underlying`: its inverse products (filed under the coin)
        and its linear ones (filed under USDC)."""
        ts = self.venue_time_ms()
        out = []
        for ccy in (underlying.upper(), LINEAR_SETTLEMENT):
            result = await self._result(Lane.READS, "privateGetGetPositions", {"currency": ccy})
            for pos in result or ():
                name = str(pos["instrument_name"])
                if not self._belongs(name, ccy, underlying):
                    continue
                inst = resolve_instrument(self._instruments, name, self.name)
                ev = position_from_deribit(self.name, self.account, pos, inst, ts)
                if ev.position.amount != 0:
                    out.append(ev)
        return out

    async def _summary(self, currency: str) -> Mapping[str, Any]:
        result = await self._result(
            Lane.READS, "privateGetGetAccountSummary", {"currency": currency, "extended": "true"}
        )
        return result if isinstance(result, Mapping) else {}

    async def fetch_balances(self) -> list[Balance]:
        """Cash balances (Deribit `balance`) of every settlement currency."""
        out = []
        for ccy in self.settlement_currencies:
            data = await self._summary(ccy)
            out.append(
                balance_from_summary(self.name, self.account, ccy, data, self.venue_time_ms())
            )
        return out

    async def fetch_venue_greeks(self, underlying: str) -> VenueGreeks | None:
        """The account summary Greeks of the coin-settled (inverse) products of
        `underlying`; linear products are filed under USDC and not included."""
        data = await self._summary(underlying.upper())
        return greeks_from_summary(self.name, self.account, underlying, data, self.venue_time_ms())

    async def fetch_fills(self, underlying: str, since_ms: int) -> list[Fill]:
        """Our trades on `underlying` since `since_ms` (UTC ms), oldest first, paging
        through `has_more`; unique by trade id."""
        unique: dict[str, Fill] = {}
        for ccy in (underlying.upper(), LINEAR_SETTLEMENT):
            start = since_ms
            for _ in range(100):  # bounded: 100 pages of 1000 trades
                params = {
                    "currency": ccy,
                    "start_timestamp": start,
                    "end_timestamp": FAR_FUTURE_MS,
                    "count": 1000,
                    "sorting": "asc",
                }
                result = await self._result(
                    Lane.READS, "privateGetGetUserTradesByCurrencyAndTime", params
                )
                if not isinstance(result, Mapping):
                    break
                trades = result.get("trades") or []
                for t in trades:
                    if self._belongs(str(t.get("instrument_name", "")), ccy, underlying):
                        fill = fill_from_deribit(self.name, t)
                        unique.setdefault(fill.trade_id, fill)
                if not result.get("has_more") or not trades:
                    break
                start = int(trades[-1]["timestamp"])
        return sorted(unique.values(), key=lambda f: f.ts_ms)

    async def fetch_option_trades(
        self, underlying: str, since_ms: int, until_ms: int, limit: int
    ) -> list[OptionTrade]:
        """Our option trades on `underlying` in [since_ms, until_ms] (UTC ms), the newest
        `limit` at most, oldest first, unique by trade id: `private/
        get_user_trades_by_currency_and_time` with `kind=option` per settlement currency,
        from both of Deribit's stores (by default the last 24 h only; `historical` the
        older, lagging by its indexing), newest first, paged back through `has_more` by
        the last page's oldest time (a page repeats the trades of that millisecond: unique
        by id). A trade without its iv, index or forward is left out
        (`option_trade_from_deribit`)."""
        unique: dict[str, OptionTrade] = {}
        for ccy in (underlying.upper(), LINEAR_SETTLEMENT):
            for historical in (False, True):
                await self._option_trades_from(
                    unique, underlying, ccy, historical, since_ms, until_ms, limit
                )
        return sorted(unique.values(), key=lambda f: (f.ts_ms, f.trade_id))[-limit:]

    async def _option_trades_from(
        self,
        into: dict[str, OptionTrade],
        underlying: str,
        ccy: str,
        historical: bool,
        since_ms: int,
        until_ms: int,
        limit: int,
    ) -> None:
        end, seen = until_ms, 0
        for _ in range(limit // 1000 + 2):  # bounded: `limit` trades and a spare page
            params = {
                "currency": ccy,
                "kind": "option",
                "start_timestamp": since_ms,
                "end_timestamp": end,
                "count": 1000,
                "sorting": "desc",
                "historical": "true" if historical else "false",
            }
            result = await self._result(
                Lane.READS, "privateGetGetUserTradesByCurrencyAndTime", params
            )
            if not isinstance(result, Mapping):
                return
            trades = result.get("trades") or []
            for t in trades:
                trade = option_trade_from_deribit(self.name, t)
                name = str(t.get("instrument_name", ""))
                if trade is not None and self._belongs(name, ccy, underlying):
                    into.setdefault(trade.trade_id, trade)
            seen += len(trades)
            if not trades or not result.get("has_more") or seen >= limit:
                return
            end = int(trades[-1]["timestamp"])

    async def _raw_ticker(self, instrument: str) -> Mapping[str, Any]:
        result = await self._result(Lane.READS, "publicGetTicker", {"instrument_name": instrument})
        if not isinstance(result, Mapping):
            raise VenueError(
                f"{self.name}: empty ticker for {instrument}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return result

    async def _parsed_ticker(
        self,
        instrument: str,
        parse: Callable[[str, Mapping[str, Any]], _P | None],
        refused: str,
    ) -> _P:
        """`public/ticker` of `instrument` read by `parse`; a retryable VenueError saying
        `refused` where it reads nothing usable."""
        parsed = parse(self.name, await self._raw_ticker(instrument))
        if parsed is None:
            raise VenueError(
                f"{self.name}: {refused}", error_class=ErrorClass.RETRYABLE, venue=self.exchange_id
            )
        return parsed

    async def fetch_ticker(self, instrument: str) -> Ticker:
        return await self._parsed_ticker(
            instrument, ticker_from_deribit, f"ticker of {instrument} has no valid mark/index"
        )

    async def fetch_quote(self, instrument: str) -> Quote:
        return await self._parsed_ticker(
            instrument, quote_from_deribit, f"{instrument} has an empty or crossed top of book"
        )

    async def fetch_index(self, underlying: str) -> IndexPrice:
        result = await self._result(
            Lane.READS, "publicGetGetIndexPrice", {"index_name": index_name(underlying)}
        )
        price = as_float((result if isinstance(result, Mapping) else {}).get("index_price"))
        if not price > 0:
            raise VenueError(
                f"{self.name}: bad index price for {underlying}: {price}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return IndexPrice(self.name, underlying.upper(), price, self.venue_time_ms())

    async def fetch_order_book(
        self, instrument: str, depth_notional_usd: float
    ) -> OrderBookSnapshot:
        """Depth through ccxt's unified `fetch_order_book`, cut at `depth_notional_usd`."""
        inst = self.instrument(instrument)
        symbol = self.symbol(instrument)
        book = await self.call(Lane.READS, lambda: self.rest.fetch_order_book(symbol, 50))
        index = None
        if inst.amount_unit is AmountUnit.COIN:
            index = (await self.fetch_index(inst.underlying)).price_usd
        ref = index or 1.0
        bids = depth_to_notional(
            inst, [(float(p), float(a)) for p, a, *_ in book["bids"]], depth_notional_usd, ref
        )
        asks = depth_to_notional(
            inst, [(float(p), float(a)) for p, a, *_ in book["asks"]], depth_notional_usd, ref
        )
        return OrderBookSnapshot(
            venue=self.name,
            instrument=instrument,
            bids=tuple(BookLevel(p, a) for p, a in bids),
            asks=tuple(BookLevel(p, a) for p, a in asks),
            ts_ms=int(book.get("timestamp") or self.venue_time_ms()),
        )

    async def fetch_vol_index(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        """DVOL (Deribit's 30-day ATM implied vol index, published in vol points) of
        `underlying`: (time, UTC epoch ms; value, a vol fraction: points / 100), hourly
        closes, oldest first: every close stamped in (since_ms, until_ms], after the last
        one stamped at or before `since_ms` (the first change's predecessor, as the
        journal's samples give it; with `since_ms` on the hour, the close stamped at
        `since_ms` itself, and nothing older). `public/get_volatility_index_data`, paged
        back through `continuation` (1,000 candles a page; a 30-day window is one).

        A candle is stamped with its open time (Deribit's `[timestamp, open, high, low,
        close]`), and its close is the index at the hour's end: each close is stamped there,
        the time it was observed (stamped at the open, every value was an hour early and
        the last one, from after `until_ms`, overlapped what came after it). The candle still
        forming (its hour not over) is left out: its close is no hour's end."""
        out: dict[int, float] = {}
        # The candle that closes at or before `since_ms` opened up to two hours before it.
        end, start = until_ms, since_ms - 2 * VOL_INDEX_RESOLUTION_MS
        for _ in range(VOL_INDEX_MAX_PAGES):
            params = {
                "currency": underlying.upper(),
                "start_timestamp": start,
                "end_timestamp": end,
                "resolution": VOL_INDEX_RESOLUTION,
            }
            result = await self._result(Lane.READS, "publicGetGetVolatilityIndexData", params)
            if not isinstance(result, Mapping):
                break
            for candle in result.get("data") or []:
                t, close = int(candle[0]) + VOL_INDEX_RESOLUTION_MS, float(candle[4])
                if t <= until_ms and math.isfinite(close) and close > 0.0:
                    out[t] = close / 100.0
            more = result.get("continuation")
            if not isinstance(more, int | float) or more < start or more >= end:
                break
            end = int(more)
        return history_from(out, since_ms)

    async def fetch_index_history(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        """Deribit's index (`{underlying}_usd`, USD) history: (time, UTC epoch ms; index USD)
        oldest first, every point stamped in (since_ms, until_ms] after the last one at or
        before `since_ms` (the first return's predecessor). `public/get_index_chart_data`,
        one call with the smallest `range` that reaches back from the venue's now over
        `since_ms` (a jump window of 28 days and its hour before: "1m").

        Deribit documents the ranges but not their points' step; its example of "1m" has
        hourly points, and each value is the index "at that timestamp" (said to be an
        average: if over the step before it, a jump inside an hour is shared by two hourly
        returns, which hides part of it from realised-minus-bipower: the proxy's ratio errs
        toward 1, never above). The points are taken at whatever step comes; the jump
        estimator samples every 10 minutes at most and takes no return across more than an
        hour, so a coarser step gives it nothing rather than a wrong return."""
        span = self.venue_time_ms() - since_ms
        range_name = next((r for r, ms in INDEX_CHART_RANGES if ms >= span), "all")
        params = {"index_name": index_name(underlying), "range": range_name}
        result = await self._result(Lane.READS, "publicGetGetIndexChartData", params)
        out: dict[int, float] = {}
        for point in result if isinstance(result, list) else []:
            if not isinstance(point, list | tuple) or len(point) < 2:
                continue
            t, value = int(point[0]), as_float(point[1])
            if t <= until_ms and math.isfinite(value) and value > 0.0:
                out[t] = value
        return history_from(out, since_ms)

    async def _result(
        self,
        lane: Lane,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        mutating: bool = False,
    ) -> Any:
        """One JSON-RPC call through ccxt's implicit `method` (e.g. "privateGetGetPositions")
        in `lane`: the envelope checked (testnet flag, shape), its `result` returned."""
        fn = getattr(self.rest, method)
        args = () if params is None else (dict(params),)
        raw = await self.call(lane, functools.partial(fn, *args), mutating=mutating)
        self._check_raw(raw)
        return raw.get("result")

    def _check_raw(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            raise VenueError(
                f"{self.name}: unexpected response {str(raw)[:100]}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        if "testnet" in raw:
            self.check_testnet(raw["testnet"])

    # ------------------------------------------------------------------------ orders
    def _order_session(self) -> DeribitSession | None:
        """The private session when orders should go over it: cancel-on-disconnect only
        covers orders created on the connection that enabled it (Deribit's rule), so with
        it on, orders go over the session whenever it is up, and over REST otherwise."""
        s = self.session
        if s is not None and self.settings.cancel_on_disconnect and s.connected.is_set():
            return s
        return None

    async def _session_call(
        self, session: DeribitSession, lane: Lane, method: str, params: Mapping[str, Any]
    ) -> Any:
        await self.limiter.acquire(lane)
        try:
            return await session.call(method, params)
        except (SessionClosedError, TimeoutError, OSError, aiohttp.ClientError) as exc:
            # Sent (or maybe sent) and no answer: the venue may have acted on it. A write to a
            # closing socket raises aiohttp's ClientConnectionResetError (an OSError).
            raise VenueError(
                f"{self.name}: {method} got no answer ({type(exc).__name__}: {exc})",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
                outcome_unknown=True,
            ) from exc

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Place an order with Deribit's `label` as the client id: over the private session
        (so cancel-on-disconnect covers it) when it is up, else through ccxt `create_order`.

        No answer raises VenueError with `outcome_unknown`: ask `order_by_label`."""
        symbol = self.symbol(request.instrument)
        params: dict[str, Any] = {
            "label": request.label,
            "time_in_force": str(request.time_in_force),
        }
        if request.post_only:
            params["post_only"] = True
        if request.reduce_only:
            params["reduce_only"] = True
        if request.valid_until_ms is not None:
            # The matching engine refuses it after this instant (`timed_out`, 13888).
            params["valid_until"] = int(request.valid_until_ms)
        price = request.price if request.order_type is OrderType.LIMIT else None
        session = self._order_session()
        if session is not None:
            rpc = dict(
                params,
                instrument_name=request.instrument,
                amount=request.amount,
                type=str(request.order_type),
            )
            if price is not None:
                rpc["price"] = price
            result = await self._session_call(session, Lane.ORDERS, f"private/{request.side}", rpc)
            return order_from_deribit(self.name, _order_info({"info": result}))
        order = await self.call(
            Lane.ORDERS,
            lambda: self.rest.create_order(
                symbol,
                str(request.order_type),
                str(request.side),
                request.amount,
                price,
                params,
            ),
            mutating=True,
        )
        return order_from_deribit(self.name, _order_info(order))

    async def cancel_order(self, order_id: str) -> OrderUpdate:
        session = self._order_session()
        if session is not None:
            result = await self._session_call(
                session, Lane.CANCELS, "private/cancel", {"order_id": order_id}
            )
            return order_from_deribit(self.name, _order_info({"info": result}))
        order = await self.call(
            Lane.CANCELS, lambda: self.rest.cancel_order(order_id), mutating=True
        )
        return order_from_deribit(self.name, _order_info(order))

    async def cancel_by_label(self, label: str, underlying: str | None = None) -> int:
        params: dict[str, Any] = {"label": label}
        if underlying is not None:
            params["currency"] = underlying
        result = await self._result(Lane.CANCELS, "privateGetCancelByLabel", params, mutating=True)
        return int(result or 0)

    async def cancel_all(self, underlying: str | None = None) -> int:
        if underlying is None:
            result = await self._result(Lane.CANCELS, "privateGetCancelAll", mutating=True)
        else:
            result = await self._result(
                Lane.CANCELS,
                "privateGetCancelAllByCurrency",
                {"currency": underlying},
                mutating=True,
            )
        return int(result or 0)

    async def fetch_open_orders(self, underlying: str) -> list[OrderUpdate]:
        """Open orders on `underlying`'s inverse products (filed under the coin), venue
        units."""
        result = await self._result(
            Lane.READS, "privateGetGetOpenOrdersByCurrency", {"currency": underlying.upper()}
        )
        return [order_from_deribit(self.name, o) for o in result or ()]

    async def fetch_order_fills(self, order_id: str) -> list[Fill]:
        """The trades of one order (`private/get_user_trades_by_order`), oldest first, venue
        units. Deribit answers with a list; an object with `trades` is accepted too."""
        result = await self._result(
            Lane.READS, "privateGetGetUserTradesByOrder", {"order_id": order_id, "sorting": "asc"}
        )
        trades = result.get("trades") if isinstance(result, Mapping) else result
        fills = [fill_from_deribit(self.name, t) for t in trades or () if isinstance(t, Mapping)]
        return sorted(fills, key=lambda f: f.ts_ms)

    async def order_by_label(self, label: str) -> list[OrderUpdate]:
        out: list[OrderUpdate] = []
        for u in self.settings.underlyings:
            result = await self._result(
                Lane.READS, "privateGetGetOrderStateByLabel", {"currency": u, "label": label}
            )
            out.extend(order_from_deribit(self.name, o) for o in result or ())
        return out

    # ---------------------------------------------------------------------- streams
    async def subscribe_market(self, instruments: list[str]) -> None:
        """Stream tickers (mark, index, IV, funding, top of book) of these instruments too,
        through ccxt.pro's `watch_tickers`, supervised: reconnect with backoff and
        resubscribe. Additive: the set only grows; the stream starts on the first call."""
        for name in instruments:
            self.symbol(name)  # unknown instruments are refused here
            self.market_names.add(name)
        if self._market_task is None and self.market_names:

            async def step() -> None:
                symbols = await self._market_symbols()
                woke = await self._watch_tickers(symbols)
                # ccxt.pro returns only the notification that woke this call; others that
                # arrived meanwhile are only in its cache, and so is one that arrived while
                # no watch was registered (between a watch's return and the next one's
                # subscription: ccxt resolves no future then). So the one that woke it, then
                # the cache after every wait, woken or not: such a ticker is out within one
                # poll.
                for ticker in (*woke.values(), *(self.ws.tickers.get(s) for s in symbols)):
                    info = ticker.get("info") if isinstance(ticker, Mapping) else None
                    if isinstance(info, Mapping):
                        self._on_ticker_if_new(info)

            self._market_task = self.spawn(self.supervise("market", step), "market")

    async def _watch_tickers(self, symbols: list[str]) -> Mapping[str, Any]:
        """Wait (at most `market_watchdog_poll_s`) for ccxt's `watch_tickers`; the tickers it
        returned by ccxt symbol (empty when it did not return). A watch outlives a step that
        timed out (the next step goes on waiting for it). The watchdog: a stream silent for
        longer than `market_silence_s` on `clock_ms` is restarted (`restart_market_stream`),
        whatever silenced it (a socket that stopped reading without closing, a lost
        subscription)."""
        now = self.clock_ms()
        if self._market_seen_ms is None:
            self._market_seen_ms = now
        watch = self._market_watch
        if watch is None:
            watch = self._market_watch = asyncio.ensure_future(self.ws.watch_tickers(symbols))
        done, _ = await asyncio.wait({watch}, timeout=self.market_watchdog_poll_s)
        if watch in done:
            self._market_watch = None
            if watch.cancelled():  # ccxt cancelled its futures (its client closed)
                raise ConnectionResetError(f"{self.name}: market watch cancelled")
            try:
                got = watch.result()  # a ccxt error: the supervisor reconnects with backoff
            except Exception as exc:
                # A socket that is still open (the venue refused the subscription) keeps
                # ccxt's record of it, and the next watch would not subscribe again: drop
                # it, the reconnect opens a new one. A closed one ccxt has dropped already.
                await self._drop_market_client(f"watch failed: {str(exc)[:200]}")
                if classify_error(exc, self.exchange_id).error_class is ErrorClass.AUTH:
                    # Public data needs no key: an "auth" refusal on this socket is the
                    # venue's confusion, not a reason to stop the market data for good.
                    # (The venue's text, logged above, would classify as auth again.)
                    raise ConnectionResetError(
                        f"market watch refused ({type(exc).__name__})"
                    ) from exc
                raise
            self._market_seen_ms = self.clock_ms()
            self.market_updates_since_restart += 1
            if self.market_updates_since_restart > 1:  # streaming again, not just a snapshot
                self._market_restarts_in_row = 0
            return got if isinstance(got, Mapping) else {}
        silent_s = (self.clock_ms() - self._market_seen_ms) / 1000.0
        limit_s = self.market_silence_s * 2 ** min(self._market_restarts_in_row, 6)
        if silent_s > limit_s:
            await self.restart_market_stream(
                f"no ticker for {silent_s:.1f} s (limit {limit_s:g} s)"
            )
        return {}

    async def restart_market_stream(self, reason: str) -> None:
        """Close ccxt's market-data connection and drop its client, so that the next watch
        opens a new one and resubscribes; logged (`venue.market_stream_restarted`) with
        `reason`."""
        self.market_restarts += 1
        self._market_restarts_in_row += 1
        self.market_updates_since_restart = 0
        log.warning(
            "venue.market_stream_restarted",
            venue=self.name,
            reason=reason,
            restarts=self.market_restarts,
        )
        watch, self._market_watch = self._market_watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        await self._drop_market_client(reason, log_it=False)
        self._market_seen_ms = self.clock_ms()

    async def _drop_market_client(self, reason: str, log_it: bool = True) -> None:
        """Close and forget ccxt's market-data client, if it still has one (the next watch
        opens a new connection and subscribes again)."""
        url = self.rest_ws_url()
        client = (self.ws.clients or {}).pop(url, None)
        if client is None:
            return
        if log_it:
            log.warning("venue.market_client_dropped", venue=self.name, reason=reason)
        # Marked as closed by us: ccxt's on_close would otherwise drop the client under
        # this URL from its table, by then the new one.
        client.error = client.error or ConnectionResetError(f"restarted: {reason}")
        with contextlib.suppress(Exception):
            await client.close()

    async def _market_symbols(self) -> list[str]:
        """The ccxt symbols of the `market_names` this venue knows. A name it does not know
        (an instrument listed since the markets were loaded, added by the book feed) reloads
        the markets once; a name still unknown is left out and logged once. One bad name must
        not stop the ticker stream: a step that raised would reconnect at once, forever."""
        fresh = {n for n in self.market_names if n not in self._symbols} - self._market_unknown
        if fresh:
            await self.reload_instruments()  # a failure: the supervisor backs off and retries
            still = {n for n in fresh if n not in self._symbols}
            if still:
                log.warning(
                    "deribit.market_names_unknown", venue=self.name, names=sorted(still)[:20]
                )
            self._market_unknown |= still
        return sorted(self._symbols[n] for n in self.market_names if n in self._symbols)

    def _on_ticker_if_new(self, data: Mapping[str, Any]) -> None:
        """`_on_ticker` for a ticker not taken yet (the cache is read after every wait: the
        same ticker is seen many times)."""
        name = data.get("instrument_name")
        stamp = (data.get("timestamp"), data.get("mark_price"))
        if self._ticker_seen.get(name) == stamp:
            return
        self._ticker_seen[name] = stamp
        self._on_ticker(data)

    def _on_ticker(self, data: Mapping[str, Any]) -> None:
        ticker = ticker_from_deribit(self.name, data)
        name = str(data.get("instrument_name"))
        if ticker is None:
            # Once per instrument until a good one: a worthless option's mark rounds to 0 on
            # every tick (10 a second) for as long as it is held.
            if name not in self._tickers_refused:
                self._tickers_refused.add(name)
                log.warning("deribit.ticker_refused", venue=self.name, instrument=name)
            return
        self._tickers_refused.discard(name)
        self.emit(TickerEvent(ticker))
        inst = self._instruments.get(ticker.instrument)
        if inst is not None:
            self.emit(
                IndexEvent(
                    IndexPrice(self.name, inst.underlying, ticker.index_price_usd, ticker.ts_ms)
                )
            )
        quote = quote_from_deribit(self.name, data)
        if quote is not None:
            self.emit(QuoteEvent(quote))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        await super().close()
        watch, self._market_watch = self._market_watch, None
        if watch is not None:  # not one of the spawned tasks: the market step outlives it
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch


def _payload_mapping(what: str, data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise BadPayloadError(what, data)
    return data


def _refuse(what: str, data: Any) -> None:
    raise BadPayloadError(what, data)


def _order_info(order: Any) -> Mapping[str, Any]:
    info = order.get("info") if isinstance(order, Mapping) else None
    if isinstance(info, Mapping) and "order" in info and isinstance(info["order"], Mapping):
        return info["order"]
    if isinstance(info, Mapping):
        return info
    raise VenueError(
        f"deribit: unexpected order response {str(order)[:100]}",
        error_class=ErrorClass.RETRYABLE,
        venue="deribit",
        outcome_unknown=True,
    )


def make_venue(name: str, settings: VenueSettings, **kwargs: Any) -> DeribitVenue:
    """The Deribit adapter for a configured venue account (`hedgerd.venues.registry`
    chooses the adapter by `settings.exchange`)."""
    if settings.exchange != "deribit":
        raise ValueError(f"not a Deribit account: exchange {settings.exchange!r}")
    return DeribitVenue(name, settings, **kwargs)


__all__ = [
    "CAPABILITIES",
    "DeribitSession",
    "DeribitVenue",
    "SessionClosedError",
    "as_venue",
    "balance_from_summary",
    "check_environment",
    "fill_from_deribit",
    "greeks_from_summary",
    "make_venue",
    "order_from_deribit",
    "position_from_deribit",
    "quote_from_deribit",
    "resolve_instrument",
    "ticker_from_deribit",
]


def as_venue(venue: DeribitVenue) -> Venue:
    """`DeribitVenue` seen through the `Venue` protocol (mypy checks the conformance here)."""
    return venue
