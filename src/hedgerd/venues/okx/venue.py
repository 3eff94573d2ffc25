"""OKX (API v5) through ccxt: `ccxt.okx` for REST, `ccxt.pro.okx` for WebSocket.

What this adds on top of the generic `CcxtVenue`:

- Instruments from OKX's own fields (`contracts.instrument_from_okx`): ccxt's `contractSize` is
  `ctVal` and ignores `ctMult`, so its BTC option contract is 100 times too large. Orders and
  positions are converted between contracts (OKX `sz`, `pos`) and hedgerd amounts here, at the
  edge; nothing past the adapter sees a contract.
- `clOrdId` is hedgerd's client id (the journal's label, made by
  `execution.client_ids.OkxClOrdIds`): checked (1-32 letters and digits) before anything is
  sent. OKX refuses a duplicate only among open orders (51016), so the journal, not the venue,
  prevents a re-send; an order whose outcome is unknown is found by `clOrdId`
  (`order_by_label`).
- The dead-man switch is `trade/cancel-all-after` (OKX has no per-connection
  cancel-on-disconnect): armed at connect with `dead_man_s` and renewed every third of it;
  `order_path_ready` is True only while the countdown is known to be armed.
- Private streams ride ccxt.pro's `watch_orders`, `watch_positions` and `watch_balance`
  (login, subscribe, text ping/pong, reconnect); their raw pushes are read here (`OkxWsHooks`)
  rather than from ccxt's caches, which keep the last state of an order and so merge two fills
  that arrive between two reads.
- Market data: top of book from ccxt.pro's `watch_tickers` (OKX `tickers` carries no mark or
  index), marks, index, option IV and funding polled over REST (`public/mark-price`,
  `market/index-tickers`, `public/opt-summary`, `public/funding-rate`).
- Demo trading (`mode = "testnet"`): ccxt's sandbox, which sends `x-simulated-trading: 1` on
  every request; with a URL override (a simulator running as a demo venue) the override is
  installed as the sandbox URL so the header is still sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from asyncio_throttle.throttler import Throttler

from hedgerd.config import VenueSettings
from hedgerd.model import (
    Balance,
    BookLevel,
    Fill,
    IndexPrice,
    Instrument,
    InstrumentKind,
    OptionTrade,
    OrderBookSnapshot,
    OrderType,
    OrderUpdate,
    Quote,
    Ticker,
    TimeInForce,
    UnknownInstrumentError,
)
from hedgerd.venues.base import (
    BalanceEvent,
    ErrorClass,
    FillEvent,
    IndexEvent,
    Lane,
    MarginSummary,
    OrderEvent,
    OrderRequest,
    PositionEvent,
    QuoteEvent,
    RejectReason,
    TickerEvent,
    Venue,
    VenueCapabilities,
    VenueError,
    VenueGreeks,
    history_from,
)
from hedgerd.venues.ccxt_venue import Backoff, CcxtVenue, guarded_ws_exchange, now_ms
from hedgerd.venues.json_values import as_float
from hedgerd.venues.okx import errors as _errors  # noqa: F401  (registers the codes)
from hedgerd.venues.okx.contracts import ContractSizeError, amount_to_contracts, instrument_from_okx
from hedgerd.venues.okx.limits import ARRIVAL_JITTER_S, ENDPOINT_LIMITS
from hedgerd.venues.okx.names import format_expiry, parse_instrument_name
from hedgerd.venues.okx.payloads import (
    BadOkxPayloadError,
    balances_from_okx,
    equity_of,
    fill_from_okx,
    greeks_from_okx,
    option_trade_from_okx,
    order_ack,
    order_from_okx,
    position_from_okx,
    quote_from_okx,
    ticker_from_okx,
    unified_available,
)
from hedgerd.venues.units import depth_to_notional

log = structlog.get_logger(__name__)

CAPABILITIES = VenueCapabilities(
    position_stream=True,
    fill_stream=True,
    order_stream=True,
    cancel_on_disconnect=True,  # as a cancel-all-after countdown renewed on a timer
    heartbeat=True,  # ccxt's text ping/pong
    client_order_id=True,
    venue_greeks=True,
    mark_iv=True,
    funding=True,
    reports_testnet=False,
)

#: OKX `clOrdId`: 1 to 32 case-sensitive letters and digits.
CLORDID_RE = re.compile(r"[A-Za-z0-9]{1,32}")
#: OKX instrument types, in the order fills and order histories are searched.
INST_TYPES = ("SWAP", "OPTION", "FUTURES", "SPOT")
_KIND_TYPES = {
    InstrumentKind.PERPETUAL: "SWAP",
    InstrumentKind.OPTION: "OPTION",
    InstrumentKind.FUTURE: "FUTURES",
    InstrumentKind.SPOT: "SPOT",
}
#: Pages of 100 fills read at most by one `fetch_fills`.
MAX_FILL_PAGES = 50
#: Pages of 100 terminal orders of one instrument type read at most by `order_by_label`.
MAX_HISTORY_PAGES = 100
#: OKX's funding period today (okx.md §5: "currently set at 8 hours"), ms.
EIGHT_HOURS_MS = 8 * 3_600_000
#: The index history's bar (`market/history-index-candles`): 15 minutes, the finest of
#: OKX's bars the jump estimator (10-minute samples) takes each of; 100 candles a page.
INDEX_BAR = "15m"
INDEX_BAR_MS = 900_000
INDEX_MAX_PAGES = 30  # a 28-day window and its hour before: 27 pages


def inst_type(instrument: Instrument) -> str:
    """OKX's `instType` of an instrument (SWAP, OPTION, FUTURES, SPOT)."""
    return _KIND_TYPES[instrument.kind]


def okx_ws_class() -> type[Any]:
    """ccxt.pro's okx class (guarded against undecodable frames, see `guarded_ws_exchange`)
    with hooks that hand each raw private or ticker push to `raw_sink(channel, message)`
    before ccxt's own handling. A sink that raises is logged, never ccxt's problem."""
    base = guarded_ws_exchange("okx")

    def hooked(method: str) -> Callable[..., Any]:
        def handle(self: Any, client: Any, message: Any) -> Any:
            sink = getattr(self, "raw_sink", None)
            if sink is not None:
                try:
                    sink(method, message)
                except Exception as exc:  # the adapter's bug must not stop ccxt's stream
                    log.warning("okx.raw_sink_failed", method=method, error=str(exc)[:200])
            return getattr(base, method)(self, client, message)

        return handle

    attrs: dict[str, Any] = {
        m: hooked(m)
        for m in ("handle_orders", "handle_positions", "handle_balance", "handle_ticker")
    }
    attrs["raw_sink"] = None
    return type("OkxWsHooks", (base,), attrs)


#: The place endpoint ccxt's `create_order` uses (one order in a batch).
_PLACE_PATH = "trade/batch-orders"


def exp_time_as_header(rest: Any) -> None:
    """Make `rest` (a ccxt okx client) send an order's `expTime` param as the REST header
    OKX reads it from ("Request effective deadline", ms): ccxt would put it in the order's
    JSON body, and has no per-request headers. Only `trade/batch-orders` carries it; the
    body is signed without it."""
    sign = rest.sign

    def sign_with_exp_time(
        path: str, api: Any = ("public",), method: str = "GET", params: Any = None
    ) -> Any:
        exp_time = None
        if path == _PLACE_PATH and isinstance(params, list):
            entries = []
            for entry in params:
                if isinstance(entry, dict) and "expTime" in entry:
                    entry = dict(entry)
                    exp_time = entry.pop("expTime")
                entries.append(entry)
            params = entries
        out = sign(path, list(api), method, {} if params is None else params)
        if exp_time is not None:
            out["headers"] = {**(out.get("headers") or {}), "expTime": str(exp_time)}
        return out

    rest.sign = sign_with_exp_time


class OkxVenue(CcxtVenue):
    """An OKX account (unified account, net position mode) through ccxt."""

    def __init__(
        self,
        name: str,
        settings: VenueSettings,
        *,
        clock_ms: Callable[[], int] = now_ms,
        backoff: Backoff | None = None,
        private_stream: bool = True,
        market_poll_s: float | None = None,
        dead_man_poll_s: float = 0.5,
    ) -> None:
        """`private_stream`: stream orders, positions and balances (and arm the dead-man
        switch when `settings.cancel_on_disconnect`) at `connect`; False for read-only use
        (`hedgerd positions`). `market_poll_s`: wall seconds between REST polls of marks and
        indexes (default a quarter of `stale_market_s`, at least 0.5 s). `dead_man_poll_s`:
        wall seconds between checks whether the dead-man countdown is due for renewal (due
        every third of `dead_man_s` on `clock_ms`, the daemon's clock: accelerated in paper
        mode, as the simulator's countdown is)."""
        if settings.exchange != "okx":
            raise ValueError(f"venue {name!r} is on exchange {settings.exchange!r}, not OKX")
        super().__init__(name, settings, clock_ms=clock_ms, backoff=backoff)
        self.ws.raw_sink = self._on_raw
        exp_time_as_header(self.rest)
        phrase = settings.passphrase()
        for client in (self.rest, self.ws):
            if phrase is not None:
                client.password = phrase.get_secret_value()
            self._configure(client)
        self._private_stream = private_stream
        self.market_poll_s = (
            market_poll_s if market_poll_s is not None else max(0.5, settings.stale_market_s / 4)
        )
        self.market_names: set[str] = set()
        self.server_offset_ms = 0
        #: ordId → instId and clOrdId → instId of orders seen (cancels and queries need it).
        self._order_inst: dict[str, str] = {}
        self._label_inst: dict[str, str] = {}
        #: Until when (our clock, ms) the cancel-all-after countdown is known to be armed.
        self.dead_man_until_ms = 0
        self.dead_man_renewals = 0
        self.dead_man_poll_s = dead_man_poll_s
        self._dead_man_armed_ms = 0
        #: Set on every successful arming (tests and operators wait on it).
        self.dead_man_armed = asyncio.Event()
        self._dead_man_task: asyncio.Task[None] | None = None
        self._market_task: asyncio.Task[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        #: Pushes refused as unreadable (logged); the rest of each push was applied.
        self.refused_entries = 0
        # asyncio-throttle is untyped: keep its objects behind Any.
        self._endpoint_throttles: dict[str, Any] = {
            m: Throttler(rate_limit=n, period=s + ARRIVAL_JITTER_S, retry_interval=0.005)
            for m, (n, s) in ENDPOINT_LIMITS.items()
        }

    async def _endpoint_slot(self, method: str) -> None:
        """Wait for the endpoint's own window (`limits.ENDPOINT_LIMITS`), if it has one."""
        throttle = self._endpoint_throttles.get(method)
        if throttle is not None:
            await throttle.acquire()

    def ws_class(self) -> type[Any]:
        return okx_ws_class()

    def _configure(self, client: Any) -> None:
        """Demo trading with a URL override: the override becomes the sandbox URL, then
        ccxt's sandbox mode adds `x-simulated-trading: 1` (set_sandbox_mode would otherwise
        swap the override for OKX's real demo URLs). The base class installed the override
        (or, without one, the sandbox) already."""
        if self.settings.mode == "testnet" and self.settings.rest_url is not None:
            client.urls["test"] = dict(client.urls["api"])
            client.set_sandbox_mode(True)

    @property
    def capabilities(self) -> VenueCapabilities:
        return CAPABILITIES

    # ------------------------------------------------------------------------ connect
    async def connect(self) -> None:
        """Measure the server clock, load instruments, then (with keys) check the account is
        in net position mode and (with `private_stream`) arm the dead-man switch and start
        the private streams."""
        self.server_offset_ms = await self.server_time_ms() - self.clock_ms()
        await self.reload_instruments()
        if self.settings.credentials() is None:
            return
        await self.check_position_mode()
        if not self._private_stream:
            return
        if self.settings.cancel_on_disconnect and not self.dead_man_by_role:
            await self.start_dead_man()
        for session, watch in (
            ("orders", lambda: self.ws.watch_orders()),
            ("positions", lambda: self.ws.watch_positions()),
            ("balance", lambda: self.ws.watch_balance()),
        ):
            self.spawn(self.supervise(session, functools.partial(self._watch, watch)), session)

    async def check_position_mode(self) -> None:
        """Refuse an account not in net mode (`account/config` `posMode`): positions are read
        as net (`pos` signed) and orders carry no `posSide`. In long/short mode a long and a
        short of one instrument are two entries, and the book would keep only one of them."""
        data = await self._data(Lane.READS, "privateGetAccountConfig")
        mode = data[0].get("posMode") if data and isinstance(data[0], Mapping) else None
        if mode != "net_mode":
            raise VenueError(
                f"{self.name}: OKX account is in position mode {mode!r}; hedgerd needs "
                "net_mode (set it on OKX: Trade > Settings > Position mode)",
                error_class=ErrorClass.DEFINITIVE,
                venue=self.exchange_id,
            )

    @staticmethod
    async def _watch(watch: Callable[[], Any]) -> None:
        # The pushes themselves are read by the raw hooks (`_on_raw`); the watch keeps
        # ccxt's subscription alive and surfaces its errors to the supervisor.
        await watch()

    def venue_time_ms(self) -> int:
        """Our clock plus the offset to OKX's `public/time` measured at connect (UTC ms)."""
        return self.clock_ms() + self.server_offset_ms

    # ------------------------------------------------------------------ instruments
    def _instrument_from_market(self, market: Mapping[str, Any]) -> Instrument | None:
        """Normalised from OKX's own fields (`ctMult` included), not ccxt's contract size."""
        info = market.get("info") or {}
        return instrument_from_okx(
            self.name, info, float(market.get("maker") or 0.0), float(market.get("taker") or 0.0)
        )

    def resolve_instrument(self, name: str) -> Instrument | None:
        inst = self._instruments.get(name)
        if inst is not None:
            return inst
        try:
            return parse_instrument_name(name, self.name)
        except UnknownInstrumentError:
            return None

    def _resolved(self, what: str, data: Mapping[str, Any]) -> Instrument:
        name = data.get("instId")
        inst = self.resolve_instrument(name) if isinstance(name, str) else None
        if inst is None:
            raise BadOkxPayloadError(f"{what} (unknown instId)", data)
        return inst

    # ------------------------------------------------------------------ neutral seam
    async def _data(
        self, lane: Lane, method: str, params: Mapping[str, Any] | None = None,
        *, mutating: bool = False,
    ) -> list[Any]:  # fmt: skip
        """One call of ccxt's implicit `method` (e.g. "privateGetAccountPositions"): its
        `data` list (ccxt has raised on a non-zero `code` already)."""
        fn = getattr(self.rest, method)
        await self._endpoint_slot(method)
        raw = await self.call(lane, functools.partial(fn, dict(params or {})), mutating=mutating)
        data = raw.get("data") if isinstance(raw, Mapping) else None
        if not isinstance(data, list):
            raise VenueError(
                f"{self.name}: unexpected {method} response {str(raw)[:100]}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
                outcome_unknown=mutating,
            )
        return data

    async def server_time_ms(self) -> int:
        data = await self._data(Lane.READS, "publicGetPublicTime")
        ts = as_float(data[0].get("ts")) if data and isinstance(data[0], Mapping) else math.nan
        if not ts > 0:
            raise VenueError(
                f"{self.name}: unreadable server time {str(data)[:100]}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return int(ts)

    async def margin_summaries(self) -> list[MarginSummary]:
        """Per currency: equity `eq` and maintenance margin `mmr`, both in that currency
        (OKX fills `details[].mmr` in Futures mode only, 0 here otherwise), and the free
        collateral routing judges growing hedges by: the currency's `availEq`, in a unified
        account also capped by the account's (`unified_available`); and for a
        Multi-currency or Portfolio margin account, which OKX margins as a whole, one "USD"
        summary: adjusted equity `adjEq`, maintenance margin `mmr` and `availEq`, in USD."""
        data = await self._data(Lane.READS, "privateGetAccountBalance")
        ts = self.venue_time_ms()
        out = []
        top = data[0] if data and isinstance(data[0], Mapping) else {}
        account_mmr = as_float(top.get("mmr"))
        # Account-level figures ("" in Futures mode): the account is margined as a whole.
        unified = not math.isnan(account_mmr)
        account_avail = as_float(top.get("availEq")) if unified else math.nan
        for d in top.get("details") or []:
            if isinstance(d, Mapping) and d.get("ccy"):
                out.append(
                    MarginSummary(
                        venue=self.name,
                        currency=str(d["ccy"]).upper(),
                        equity=as_float(d.get("eq"), 0.0),
                        maintenance_margin=as_float(d.get("mmr"), 0.0),
                        ts_ms=ts,
                        available=unified_available(d, account_avail),
                        margined=not unified,
                    )
                )
        if unified:
            # The account-level figures ("" in Futures mode): what liquidation judges in the
            # unified modes. Adjusted equity is the collateral after OKX's discounts.
            equity = as_float(top.get("adjEq"))
            out.append(
                MarginSummary(
                    venue=self.name,
                    currency="USD",
                    equity=equity if not math.isnan(equity) else as_float(top.get("totalEq"), 0.0),
                    maintenance_margin=account_mmr,
                    ts_ms=ts,
                    available=account_avail,
                )
            )
        return out

    def order_path_ready(self) -> bool:
        """With the dead-man switch on, ready while the countdown is armed (renewed within
        its timeout); without it, always."""
        if not self.settings.cancel_on_disconnect:
            return True
        return self.clock_ms() < self.dead_man_until_ms

    # ----------------------------------------------------------------- dead-man switch
    async def arm_dead_man(self, timeout_s: int | None = None) -> None:
        """`trade/cancel-all-after` with `timeout_s` (default `settings.dead_man_s`; 0
        disarms): OKX cancels every open order of the account when the countdown runs out."""
        seconds = self.settings.dead_man_s if timeout_s is None else timeout_s
        await self._endpoint_slot("privatePostTradeCancelAllAfter")
        sent_ms = self.clock_ms()
        await self.call(
            Lane.CANCELS, lambda: self.rest.cancel_all_orders_after(seconds * 1000), mutating=True
        )
        self.dead_man_until_ms = sent_ms + seconds * 1000 if seconds else 0
        self._dead_man_armed_ms = sent_ms
        self.dead_man_renewals += 1
        self.dead_man_armed.set()

    async def start_dead_man(self) -> None:
        """Arm the countdown now and keep renewing it (`connect` does this when
        `settings.cancel_on_disconnect`)."""
        await self.arm_dead_man()
        self._dead_man_task = self.spawn(self._dead_man_loop(), "dead-man")

    async def set_dead_man(self, armed: bool) -> None:
        """HA (`dead_man_by_role`): the countdown armed and renewed while this node leads;
        disarmed (timeOut 0, renewals stopped) otherwise (see `DeadManVenue`). The countdown
        is the account's: a new leader's arming replaces a dead leader's."""
        if not self.settings.cancel_on_disconnect:
            return
        task = self._dead_man_task
        if armed:
            if task is None or task.done():
                await self.start_dead_man()
            else:
                await self.arm_dead_man()
            return
        if task is not None:
            task.cancel()
            self._dead_man_task = None
        await self.arm_dead_man(0)

    async def _dead_man_loop(self) -> None:
        """Renew the countdown every third of it on `clock_ms`; a failed renewal is logged
        and tried again at the next check (the countdown still covers two more thirds)."""
        interval_ms = self.settings.dead_man_s * 1000 / 3.0
        while not self._closed:
            await asyncio.sleep(self.dead_man_poll_s)
            if self.clock_ms() < self._dead_man_armed_ms + interval_ms:
                continue
            try:
                await self.arm_dead_man()
            except VenueError as exc:
                log.warning("okx.dead_man_renew_failed", venue=self.name, error=str(exc)[:200])

    # --------------------------------------------------------------------- snapshots
    async def fetch_positions(self, underlying: str) -> list[PositionEvent]:
        """Non-zero positions on `underlying` (every settlement currency), hedgerd units."""
        data = await self._data(Lane.READS, "privateGetAccountPositions")
        ts = self.venue_time_ms()
        out = []
        for pos in data:
            inst = self._resolved("position", pos)
            if inst.underlying != underlying.upper():
                continue
            ev = position_from_okx(self.name, self.account, pos, inst, ts)
            if ev.position.amount != 0:
                out.append(ev)
        return out

    async def fetch_balances(self) -> list[Balance]:
        data = await self._data(Lane.READS, "privateGetAccountBalance")
        if not data:
            return []
        return balances_from_okx(self.name, self.account, data[0], self.venue_time_ms())

    async def fetch_venue_greeks(self, underlying: str) -> VenueGreeks | None:
        """`account/greeks` of the coin, with its `eq` from `account/balance`."""
        ccy = underlying.upper()
        greeks = await self._data(Lane.READS, "privateGetAccountGreeks", {"ccy": ccy})
        if not greeks:
            return None
        balance = await self._data(Lane.READS, "privateGetAccountBalance", {"ccy": ccy})
        equity = equity_of(balance[0], ccy) if balance else 0.0
        return greeks_from_okx(
            self.name, self.account, ccy, greeks[0], equity, self.venue_time_ms()
        )

    async def fetch_fills(self, underlying: str, since_ms: int) -> list[Fill]:
        """Our fills on `underlying` at or after `since_ms` (`trade/fills-history`, every
        instrument type, newest first, paged by `billId`), oldest first, unique by trade."""
        unique: dict[str, Fill] = {}
        for itype in INST_TYPES:
            for raw in await self._fills_history({"instType": itype, "begin": str(since_ms - 1)}):
                inst = self.resolve_instrument(str(raw.get("instId", "")))
                if inst is None or inst.underlying != underlying.upper():
                    continue
                fill = fill_from_okx(self.name, raw, inst)
                if fill.ts_ms >= since_ms:
                    unique.setdefault(fill.trade_id, fill)
        return sorted(unique.values(), key=lambda f: f.ts_ms)

    async def fetch_option_trades(
        self, underlying: str, since_ms: int, until_ms: int, limit: int
    ) -> list[OptionTrade]:
        """Our option trades on `underlying` in [since_ms, until_ms] (UTC ms), the newest
        `limit` at most, oldest first, unique by trade: `trade/fills-history` with
        `instType=OPTION` (newest first, paged by `billId`). A fill without its mark vol,
        index or forward is left out (`option_trade_from_okx`)."""
        query = {"instType": "OPTION", "begin": str(since_ms - 1), "end": str(until_ms)}
        unique: dict[str, OptionTrade] = {}
        for raw in await self._fills_history(query, pages=-(-limit // 100)):
            inst = self.resolve_instrument(str(raw.get("instId", "")))
            if inst is None or inst.underlying != underlying.upper() or not inst.is_option:
                continue
            trade = option_trade_from_okx(self.name, raw, inst)
            if trade is not None and since_ms <= trade.ts_ms <= until_ms:
                unique.setdefault(trade.trade_id, trade)
        return sorted(unique.values(), key=lambda f: (f.ts_ms, f.trade_id))[-limit:]

    async def _fills_history(
        self, params: Mapping[str, Any], pages: int = MAX_FILL_PAGES
    ) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        query = dict(params, limit="100")
        for _ in range(pages):
            page = [f for f in await self._data(Lane.READS, "privateGetTradeFillsHistory", query)
                    if isinstance(f, Mapping)]  # fmt: skip
            out.extend(page)
            if len(page) < 100 or not page[-1].get("billId"):
                break
            query["after"] = str(page[-1]["billId"])
        return out

    async def fetch_order_fills(self, order_id: str) -> list[Fill]:
        """The fills of one order, oldest first, hedgerd units."""
        inst_id = self._order_inst.get(order_id)
        types = (
            (inst_type(self.instrument(inst_id)),) if inst_id in self._instruments else INST_TYPES
        )
        fills: list[Fill] = []
        for itype in types:
            for raw in await self._fills_history({"instType": itype, "ordId": order_id}):
                inst = self.resolve_instrument(str(raw.get("instId", "")))
                if inst is not None and str(raw.get("ordId")) == order_id:
                    fills.append(fill_from_okx(self.name, raw, inst))
            if fills:
                break
        return sorted(fills, key=lambda f: f.ts_ms)

    async def fetch_quote(self, instrument: str) -> Quote:
        inst = self.instrument(instrument)
        data = await self._data(Lane.READS, "publicGetMarketTicker", {"instId": instrument})
        quote = quote_from_okx(self.name, data[0], inst) if data else None
        if quote is None:
            raise VenueError(
                f"{self.name}: {instrument} has an empty or crossed top of book",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return quote

    async def fetch_index(self, underlying: str) -> IndexPrice:
        ccy = underlying.upper()
        data = await self._data(Lane.READS, "publicGetMarketIndexTickers", {"instId": f"{ccy}-USD"})
        first = data[0] if data and isinstance(data[0], Mapping) else {}
        price = as_float(first.get("idxPx"))
        if not price > 0:
            raise VenueError(
                f"{self.name}: bad index price for {ccy}: {price}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return IndexPrice(self.name, ccy, price, self.venue_time_ms())

    async def fetch_index_history(
        self, underlying: str, since_ms: int, until_ms: int
    ) -> list[tuple[int, float]]:
        """OKX's index (`{underlying}-USD`, USD) history: (time, UTC epoch ms; index USD)
        oldest first, every close stamped in (since_ms, until_ms] after the last one at or
        before `since_ms` (the first return's predecessor). `market/history-index-candles`
        at `INDEX_BAR`, paged back with `after` (candles opened before it, newest first).

        A candle is stamped with its open time (`[ts, o, h, l, c, confirm]`), its close the
        index at the bar's end: each close is stamped there, as DVOL's are
        (`DeribitVenue.fetch_vol_index`); the candle still forming (`confirm` "0") is left
        out."""
        out: dict[int, float] = {}
        # Candles that close at or before `until_ms`; the oldest needed closes at or before
        # `since_ms`.
        after = until_ms - INDEX_BAR_MS + 1
        params = {"instId": f"{underlying.upper()}-USD", "bar": INDEX_BAR, "limit": "100"}
        for _ in range(INDEX_MAX_PAGES):
            page = await self._data(
                Lane.READS, "publicGetMarketHistoryIndexCandles", {**params, "after": str(after)}
            )
            opens = []
            for c in page:
                if not isinstance(c, Sequence) or isinstance(c, str) or len(c) < 5:
                    continue
                t, close = int(as_float(c[0], 0.0)), as_float(c[4])
                opens.append(t)
                done = len(c) < 6 or str(c[5]) != "0"
                end = t + INDEX_BAR_MS
                if done and end <= until_ms and math.isfinite(close) and close > 0.0:
                    out[end] = close
            if not opens or min(opens) + INDEX_BAR_MS <= since_ms or min(opens) >= after:
                break
            after = min(opens)
        return history_from(out, since_ms)

    async def fetch_ticker(self, instrument: str) -> Ticker:
        """Mark (`public/mark-price`), index, and for options the mark IV and forward
        (`public/opt-summary`), for swaps the funding rate per 8 h."""
        inst = self.instrument(instrument)
        itype = inst_type(inst)
        # With its family: a venue may answer instId alone with the whole instType.
        family = "-".join(instrument.split("-")[:2])
        marks = await self._data(
            Lane.READS,
            "publicGetPublicMarkPrice",
            {"instType": itype, "instFamily": family, "instId": instrument},
        )
        index = await self.fetch_index(inst.underlying)
        option = None
        if inst.is_option and inst.expiry_ms is not None:
            summary = await self._data(
                Lane.READS,
                "publicGetPublicOptSummary",
                {"uly": f"{inst.underlying}-USD", "expTime": format_expiry(inst.expiry_ms)},
            )
            option = next(
                (s for s in summary if isinstance(s, Mapping) and s.get("instId") == instrument),
                None,
            )
        funding = None
        if inst.kind is InstrumentKind.PERPETUAL:
            funding = await self._funding_8h(instrument)
        # The entry of this instrument, not the first: a venue may answer a filtered query
        # with more than asked (the simulator lists every option for instType OPTION).
        mark = next(
            (m for m in marks if isinstance(m, Mapping) and m.get("instId") == instrument), {}
        )
        ticker = ticker_from_okx(
            self.name, inst, mark, index.price_usd, self.venue_time_ms(), option, funding
        )
        if ticker is None:
            raise VenueError(
                f"{self.name}: ticker of {instrument} has no valid mark/index",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            )
        return ticker

    async def _funding_8h(self, instrument: str) -> float | None:
        """`fundingRate` per period, scaled to 8 h by the period (`nextFundingTime -
        fundingTime`; 8 h when unreadable)."""
        data = await self._data(Lane.READS, "publicGetPublicFundingRate", {"instId": instrument})
        if not data or not isinstance(data[0], Mapping):
            return None
        rate = as_float(data[0].get("fundingRate"))
        if math.isnan(rate):
            return None
        period = as_float(data[0].get("nextFundingTime")) - as_float(data[0].get("fundingTime"))
        return rate * EIGHT_HOURS_MS / period if period > 0 else rate

    async def fetch_order_book(
        self, instrument: str, depth_notional_usd: float
    ) -> OrderBookSnapshot:
        """Depth through ccxt's `fetch_order_book` (sizes in contracts → hedgerd amounts),
        cut at `depth_notional_usd`."""
        inst = self.instrument(instrument)
        symbol = self.symbol(instrument)
        book = await self.call(Lane.READS, lambda: self.rest.fetch_order_book(symbol, 50))
        ref = 1.0
        if inst.amount_unit.value == "coin":
            ref = (await self.fetch_index(inst.underlying)).price_usd
        cs = inst.contract_size

        def side(levels: Any) -> list[tuple[float, float]]:
            return depth_to_notional(
                inst, [(float(p), float(a) * cs) for p, a, *_ in levels], depth_notional_usd, ref
            )

        return OrderBookSnapshot(
            venue=self.name,
            instrument=instrument,
            bids=tuple(BookLevel(p, a) for p, a in side(book["bids"])),
            asks=tuple(BookLevel(p, a) for p, a in side(book["asks"])),
            ts_ms=int(book.get("timestamp") or self.venue_time_ms()),
        )

    # ------------------------------------------------------------------------ orders
    def _refuse(self, message: str, reason: RejectReason) -> VenueError:
        return VenueError(
            f"{self.name}: {message}",
            error_class=ErrorClass.DEFINITIVE,
            venue=self.exchange_id,
            reason=reason,
        )

    def order_params(self, request: OrderRequest, inst: Instrument) -> dict[str, Any]:
        """ccxt `create_order` params for `request`: `clOrdId`, `tdMode` (spot `cash`, else
        `cross`: the unified account), post-only / IOC / FOK, `reduceOnly` (swaps and futures
        only: OKX takes it nowhere else in net mode). Raises VenueError (definitive, nothing
        sent) for what OKX cannot do."""
        if CLORDID_RE.fullmatch(request.label) is None:
            raise self._refuse(
                f"client id {request.label!r} is not an OKX clOrdId (1-32 letters and digits)",
                RejectReason.INVALID_ORDER,
            )
        params: dict[str, Any] = {
            "clientOrderId": request.label,
            "tdMode": "cash" if inst.kind is InstrumentKind.SPOT else "cross",
        }
        if request.post_only:
            gtc = request.time_in_force is TimeInForce.GTC
            if request.order_type is OrderType.MARKET or not gtc:
                raise self._refuse("post-only needs a good-til-cancelled limit order",
                                   RejectReason.INVALID_ORDER)  # fmt: skip
            params["postOnly"] = True
        elif request.time_in_force is TimeInForce.IOC:
            params["timeInForce"] = "IOC"
        elif request.time_in_force is TimeInForce.FOK:
            params["timeInForce"] = "FOK"
        if request.reduce_only:
            if inst.kind not in (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE):
                raise self._refuse(
                    f"reduce-only is for swaps and futures on OKX, not {inst.kind} {inst.name}",
                    RejectReason.INVALID_ORDER,
                )
            params["reduceOnly"] = True
        if inst.kind is InstrumentKind.SPOT:
            # `sz` in coin of the base: OKX reads a spot market buy's size in the quote
            # currency unless told (ccxt 4.5.90 sends base_ccy by default; not left to it).
            params["tgtCcy"] = "base_ccy"
        if request.order_type is OrderType.MARKET and inst.is_option:
            raise self._refuse(f"OKX takes no market orders on options ({inst.name})",
                               RejectReason.INVALID_ORDER)  # fmt: skip
        if request.valid_until_ms is not None:
            # Sent as the `expTime` header (`exp_time_as_header`): OKX does not process the
            # request after it.
            params["expTime"] = str(int(request.valid_until_ms))
        return params

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Place through ccxt `create_order` (`trade/batch-orders`, one order) with
        `clOrdId` = `request.label`. The amount must be a whole number of lots (hedgerd
        units; converted to contracts here). OKX answers a placement with ids only: an IOC,
        FOK or market order is then read back (`trade/order`) so the answer carries its fills
        like Deribit's. No answer raises VenueError with `outcome_unknown`: ask
        `order_by_label`."""
        inst = self.instrument(request.instrument)
        symbol = self.symbol(request.instrument)
        params = self.order_params(request, inst)
        try:
            contracts = amount_to_contracts(inst, request.amount)
        except ContractSizeError as exc:
            raise self._refuse(str(exc), RejectReason.INVALID_ORDER) from None
        price = request.price if request.order_type is OrderType.LIMIT else None
        if request.order_type is OrderType.LIMIT and not (price is not None and price > 0):
            raise self._refuse(f"limit order needs a positive price, got {price!r}",
                               RejectReason.INVALID_ORDER)  # fmt: skip
        self._label_inst[request.label] = inst.name
        order = await self.call(
            Lane.ORDERS,
            lambda: self.rest.create_order(
                symbol, str(request.order_type), str(request.side), contracts, price, params
            ),
            mutating=True,
        )
        info = order.get("info") if isinstance(order, Mapping) else None
        if not isinstance(info, Mapping) or not info.get("ordId"):
            raise BadOkxPayloadError("order answer", order)
        ack = order_ack(
            self.name, info, inst, request.side, request.amount, price, self.venue_time_ms()
        )
        self._order_inst[ack.order_id] = inst.name
        immediate = (
            request.order_type is OrderType.MARKET or request.time_in_force is not TimeInForce.GTC
        )
        if immediate:
            with contextlib.suppress(VenueError):
                return await self._order(inst.name, {"ordId": ack.order_id})
        return ack

    async def _order(self, inst_id: str, ids: Mapping[str, str]) -> OrderUpdate:
        data = await self._data(Lane.READS, "privateGetTradeOrder", dict(ids, instId=inst_id))
        if not data:
            raise VenueError(
                f"{self.name}: no order {dict(ids)} on {inst_id}",
                error_class=ErrorClass.DEFINITIVE,
                venue=self.exchange_id,
                reason=RejectReason.ORDER_NOT_FOUND,
            )
        return self._order_update(data[0])

    def _order_update(self, data: Mapping[str, Any]) -> OrderUpdate:
        upd = order_from_okx(self.name, data, self._resolved("order", data))
        self._order_inst[upd.order_id] = upd.instrument
        if upd.label:
            self._label_inst[upd.label] = upd.instrument
        return upd

    async def _inst_of_order(self, order_id: str) -> str:
        inst_id = self._order_inst.get(order_id)
        if inst_id is None:
            for o in await self._pending({}):
                if o.order_id == order_id:
                    return o.instrument
            raise VenueError(
                f"{self.name}: order {order_id} is not open and its instrument is unknown",
                error_class=ErrorClass.DEFINITIVE,
                venue=self.exchange_id,
                reason=RejectReason.ORDER_NOT_FOUND,
            )
        return inst_id

    async def cancel_order(self, order_id: str) -> OrderUpdate:
        """Cancel by `ordId` (OKX needs the `instId` too: known from placements, streams and
        queries, else looked up among open orders); returns the order read back."""
        inst_id = await self._inst_of_order(order_id)
        await self._data(
            Lane.CANCELS, "privatePostTradeCancelOrder", {"instId": inst_id, "ordId": order_id},
            mutating=True,
        )  # fmt: skip
        try:
            return await self._order(inst_id, {"ordId": order_id})
        except VenueError as exc:
            # Accepted, but its state unread: what filled before the cancel is not known, so
            # no state is made up (a partial fill not yet streamed would read as unfilled);
            # the caller asks by label.
            raise VenueError(
                f"{self.name}: order {order_id} cancelled, its state unread: {exc}",
                error_class=ErrorClass.RETRYABLE,
                venue=self.exchange_id,
            ) from exc

    async def _pending(self, params: Mapping[str, Any]) -> list[OrderUpdate]:
        out: list[OrderUpdate] = []
        query = dict(params, limit="100")
        for _ in range(40):  # OKX allows 4,000 pending orders: 40 pages of 100
            page = await self._data(Lane.READS, "privateGetTradeOrdersPending", query)
            out.extend(self._order_update(o) for o in page if isinstance(o, Mapping))
            if len(page) < 100:
                break
            query["after"] = str(page[-1].get("ordId"))
        return out

    async def fetch_open_orders(self, underlying: str) -> list[OrderUpdate]:
        """Open orders on `underlying`, hedgerd units."""
        return [
            o for o in await self._pending({})
            if self._instruments.get(o.instrument) is not None
            and self._instruments[o.instrument].underlying == underlying.upper()
        ]  # fmt: skip

    async def _cancel_many(self, orders: list[OrderUpdate]) -> int:
        """Cancel these orders in batches of 20 (`trade/cancel-batch-orders`); how many OKX
        accepted to cancel."""
        done = 0
        for i in range(0, len(orders), 20):
            batch = [{"instId": o.instrument, "ordId": o.order_id} for o in orders[i : i + 20]]
            fn = self.rest.privatePostTradeCancelBatchOrders
            raw = await self.call(Lane.CANCELS, functools.partial(fn, batch), mutating=True)
            for item in (raw.get("data") if isinstance(raw, Mapping) else None) or ():
                if isinstance(item, Mapping) and str(item.get("sCode")) == "0":
                    done += 1
        return done

    async def cancel_all(self, underlying: str | None = None) -> int:
        orders = (
            await self._pending({}) if underlying is None
            else await self.fetch_open_orders(underlying)
        )  # fmt: skip
        return await self._cancel_many(orders)

    async def cancel_by_label(self, label: str, underlying: str | None = None) -> int:
        orders = [o for o in await self._pending({}) if o.label == label]
        if underlying is not None:
            orders = [
                o for o in orders
                if (found := self.resolve_instrument(o.instrument)) is not None
                and found.underlying == underlying.upper()
            ]  # fmt: skip
        return await self._cancel_many(orders)

    async def order_by_label(self, label: str) -> list[OrderUpdate]:
        """The orders carrying `clOrdId` = `label`: asked directly (`trade/order`) when this
        process knows its instrument, else searched among open orders and the last 7 days'
        history of every instrument type. Empty when the order never arrived."""
        inst_id = self._label_inst.get(label)
        if inst_id is not None:
            try:
                return [await self._order(inst_id, {"clOrdId": label})]
            except VenueError as exc:
                if exc.reason is not RejectReason.ORDER_NOT_FOUND:
                    raise
                return []
        found = {o.order_id: o for o in await self._pending({}) if o.label == label}
        for itype in INST_TYPES:
            # Every page back to the 7 days OKX keeps: the first 100 terminal orders of a
            # busy account may all be newer than the lost one, and "not found" is taken for
            # "never arrived" (the reconciler closes it as cancelled with nothing filled).
            query = {"instType": itype, "limit": "100"}
            for _ in range(MAX_HISTORY_PAGES):
                page = [
                    o
                    for o in await self._data(Lane.READS, "privateGetTradeOrdersHistory", query)
                    if isinstance(o, Mapping)
                ]
                for o in page:
                    if o.get("clOrdId") == label:
                        upd = self._order_update(o)
                        found.setdefault(upd.order_id, upd)
                if len(page) < 100 or not page[-1].get("ordId"):
                    break
                query["after"] = str(page[-1]["ordId"])
        return list(found.values())

    # ---------------------------------------------------------------------- streams
    def _on_raw(self, method: str, message: Any) -> None:
        """A raw push ccxt.pro is about to handle (see `okx_ws_class`): each item read on its
        own, a bad one refused (counted, logged) and the rest applied."""
        if not isinstance(message, Mapping):
            return
        data = message.get("data")
        if not isinstance(data, list):
            return
        ts = self.venue_time_ms()
        for item in data:
            try:
                if not isinstance(item, Mapping):
                    raise BadOkxPayloadError(method, item)
                if method == "handle_orders":
                    # The fill before the order state it led to, as Deribit's `user.changes`
                    # lists trades before orders: a FILLED order is never seen without it.
                    upd = self._order_update(item)
                    if item.get("tradeId"):
                        inst = self._resolved("fill", item)
                        self.emit(FillEvent(fill_from_okx(self.name, item, inst)))
                    self.emit(OrderEvent(upd))
                elif method == "handle_positions":
                    inst = self._resolved("position", item)
                    self.emit(position_from_okx(self.name, self.account, item, inst, ts))
                elif method == "handle_balance":
                    for bal in balances_from_okx(self.name, self.account, item, ts):
                        self.emit(BalanceEvent(bal))
                elif method == "handle_ticker":
                    known = self._instruments.get(str(item.get("instId", "")))
                    quote = quote_from_okx(self.name, item, known) if known is not None else None
                    if quote is not None:
                        self.emit(QuoteEvent(quote))
            except (VenueError, TypeError, ValueError, KeyError) as exc:
                self.refused_entries += 1
                log.warning("okx.push_refused", venue=self.name, method=method,
                            reason=str(exc)[:300])  # fmt: skip

    async def subscribe_market(self, instruments: list[str]) -> None:
        """Stream top of book of these instruments (ccxt.pro `watch_tickers`) and poll their
        marks and indexes over REST; additive, supervised (reconnect with backoff)."""
        for name in instruments:
            self.symbol(name)  # unknown instruments are refused here
            self.market_names.add(name)
        if self._market_task is None and self.market_names:

            async def step() -> None:
                symbols = sorted(self._symbols[n] for n in self.market_names if n in self._symbols)
                await self.ws.watch_tickers(symbols)

            self._market_task = self.spawn(self.supervise("market", step), "market")
            self._poll_task = self.spawn(self._poll_marks(), "marks")
            self.spawn(self._poll_indexes(), "indexes")

    async def _poll_indexes(self) -> None:
        """Each streamed underlying's index (`market/index-tickers`, one request each) every
        `market_poll_s`, on its own: the marks' round (`poll_tickers`: a few requests per
        family and one per option expiry) also brings the index, but a loaded process took
        longer than the index's staleness limit over one round and halted the account
        (two-venue paper, issue 17). A failure is logged and retried at the next poll."""
        while not self._closed:
            names = sorted({i.underlying for n, i in self._instruments.items()
                            if n in self.market_names})  # fmt: skip
            for u in names:
                try:
                    self.emit(IndexEvent(await self.fetch_index(u)))
                except VenueError as exc:
                    log.warning("okx.index_poll_failed", venue=self.name, underlying=u,
                                error=str(exc)[:200])  # fmt: skip
            await asyncio.sleep(self.market_poll_s)

    async def _poll_marks(self) -> None:
        """Tickers (mark, index, IV, funding) of the streamed instruments every
        `market_poll_s` (`poll_tickers`); a failure is logged and retried at the next poll."""
        while not self._closed:
            for ticker in await self.poll_tickers(sorted(self.market_names)):
                self.emit(TickerEvent(ticker))
                inst = self._instruments[ticker.instrument]
                self.emit(IndexEvent(IndexPrice(self.name, inst.underlying,
                                                ticker.index_price_usd, ticker.ts_ms)))  # fmt: skip
            await asyncio.sleep(self.market_poll_s)

    async def poll_tickers(self, names: Sequence[str]) -> list[Ticker]:
        """The tickers of `names`, a few requests per instrument family, not per instrument:
        one `public/mark-price` per (instType, instFamily), one `public/opt-summary` per
        option expiry, one index per underlying, the funding rate per
        perpetual. Polled one by one, each option cost the whole family's marks and its
        expiry's summary (OKX filters `mark-price` by family only): the options the client
        flow left on the account made one poll round outlast the index's staleness limit
        (a HALT) and starved the event loop. A family whose request fails is logged and
        skipped (the others still arrive)."""
        groups: dict[tuple[str, str], list[Instrument]] = {}
        for name in names:
            inst = self._instruments.get(name)
            if inst is not None:
                family = "-".join(name.split("-")[:2])
                groups.setdefault((inst_type(inst), family), []).append(inst)
        indexes: dict[str, float] = {}
        out: list[Ticker] = []
        for (itype, family), members in sorted(groups.items()):
            try:
                u = members[0].underlying
                if u not in indexes:
                    indexes[u] = (await self.fetch_index(u)).price_usd
                marks = await self._data(
                    Lane.READS,
                    "publicGetPublicMarkPrice",
                    {"instType": itype, "instFamily": family},
                )
                options: list[Any] = []
                for expiry in sorted({i.expiry_ms for i in members if i.is_option and i.expiry_ms}):
                    options += await self._data(
                        Lane.READS,
                        "publicGetPublicOptSummary",
                        {"instFamily": family, "expTime": format_expiry(expiry)},
                    )
                out += await self._family_tickers(members, marks, options, indexes[u])
            except VenueError as exc:
                log.warning("okx.mark_poll_failed", venue=self.name, family=family,
                            inst_type=itype, error=str(exc)[:200])  # fmt: skip
        return out

    async def _family_tickers(
        self, members: list[Instrument], marks: list[Any], options: list[Any], index: float
    ) -> list[Ticker]:
        by_id = {m.get("instId"): m for m in marks if isinstance(m, Mapping)}
        summary = {o.get("instId"): o for o in options if isinstance(o, Mapping)}
        out: list[Ticker] = []
        for inst in members:
            funding = None
            if inst.kind is InstrumentKind.PERPETUAL:
                funding = await self._funding_8h(inst.name)
            ticker = ticker_from_okx(
                self.name, inst, by_id.get(inst.name, {}), index, self.venue_time_ms(),
                summary.get(inst.name) if inst.is_option else None, funding,
            )  # fmt: skip
            if ticker is not None:
                out.append(ticker)
        return out

    async def close(self) -> None:
        """Stop streams and clients. An armed cancel-all-after countdown is left running:
        open orders go when it runs out, as they would had the process died (disarming is
        an operator's choice: `arm_dead_man(0)`)."""
        await super().close()


def make_venue(name: str, settings: VenueSettings, **kwargs: Any) -> OkxVenue:
    """The OKX adapter for a configured venue account."""
    if settings.exchange != "okx":
        raise ValueError(f"not an OKX account: exchange {settings.exchange!r}")
    return OkxVenue(name, settings, **kwargs)


def as_venue(venue: OkxVenue) -> Venue:
    """`OkxVenue` seen through the `Venue` protocol (mypy checks the conformance here)."""
    return venue


__all__ = [
    "CAPABILITIES",
    "CLORDID_RE",
    "OkxVenue",
    "as_venue",
    "inst_type",
    "make_venue",
    "okx_ws_class",
]
