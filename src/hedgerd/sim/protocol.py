"""The seam between the simulator's engine (`sim/exchange.py` and what it uses) and its
network server (`sim/server.py`).

The engine is synchronous and knows no sockets: the server decodes JSON-RPC, authenticates,
rate-limits and injects faults, then calls `SimEngine.dispatch`; the engine publishes
notifications through an `EventSink` that the server implements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class DeribitError(Exception):
    """An error in Deribit's JSON-RPC shape: `{"code": .., "message": .., "data": ..}`."""

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = dict(data) if data is not None else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


# Deribit's error codes that the simulator uses (docs: "Error codes").
ERR_UNAUTHORIZED = 13009
ERR_INVALID_CREDENTIALS = 13004
ERR_INVALID_ARGUMENTS = -32602
ERR_METHOD_NOT_FOUND = -32601
ERR_PARSE_ERROR = -32700
ERR_INVALID_REQUEST = -32600
ERR_INTERNAL = 11094
ERR_ORDER_NOT_FOUND = 10004
ERR_NOT_ENOUGH_FUNDS = 10009
ERR_TOO_MANY_REQUESTS = 10028
ERR_SETTLEMENT_IN_PROGRESS = 10041
ERR_NOT_OPEN_ORDER = 11044
ERR_INVALID_AMOUNT = 10002  # qty_too_low
ERR_POST_ONLY_REJECT = 11054
ERR_REDUCE_ONLY = 11098
#: `timed_out`: the request's `valid_until` passed before the matching engine took it.
ERR_TIMED_OUT = 13888
# Corrected by the engine side (values were 10006/10007): Deribit's price_too_high is 10007
# and price_too_low is 10005 (10006/10008 are the "...4idx" variants).
ERR_PRICE_TOO_HIGH = 10007
ERR_PRICE_TOO_LOW = 10005
ERR_BAD_ARGUMENT = 11050
ERR_NOT_ALLOWED_IN_MODE = 11091
ERR_INVALID_INSTRUMENT = 10020  # invalid_or_unsupported_instrument
ERR_TRADING_DISABLED = 10008
# Added by the engine side.
ERR_BOOK_CLOSED = 10012  # book_closed: the instrument expired
ERR_PRICE_WRONG_TICK = 10043  # price_wrong_tick
ERR_UNSUPPORTED_ARG_COMBINATION = 11047


@dataclass(frozen=True, slots=True)
class Account:
    """A simulator account: API key, secret and an id the engine keys balances on."""

    account_id: str
    api_key: str
    api_secret: str


class EventSink(Protocol):
    """Where the engine sends subscription notifications.

    `channel` is Deribit's channel name WITHOUT the interval suffix (the server maps `.raw`,
    `.100ms` and `.agg2` subscriptions onto it), e.g. `book.BTC-PERPETUAL`,
    `ticker.BTC-PERPETUAL`, `deribit_price_index.btc_usd`, `user.orders.future.BTC`,
    `user.trades.any.BTC`, `user.portfolio.btc`, `user.changes.option.BTC`. `account_id` is set
    for private (user.*) channels and None for public ones. `data` is exactly Deribit's
    notification `params.data`.
    """

    def wants(self, channel: str, account_id: str | None = None) -> bool:
        """True if anyone is subscribed; lets the engine skip building unwanted payloads."""
        ...

    def publish(self, channel: str, data: Any, account_id: str | None = None) -> None: ...


class SimEngine(Protocol):
    """What the server needs from the engine."""

    def dispatch(self, method: str, params: Mapping[str, Any], account: Account | None) -> Any:
        """Run one API method (e.g. "public/ticker", "private/buy") and return its `result`.

        Raises `DeribitError` for every bad request; never anything else for bad input.
        `account` is None for public calls.
        """
        ...

    def account_for_key(self, api_key: str) -> Account | None: ...

    def now_ms(self) -> int:
        """The simulated clock, UTC epoch milliseconds."""
        ...

    def advance_to(self, now_ms: int) -> None:
        """Move market processes, expiries, funding and option flow forward to `now_ms`."""
        ...

    def cancel_all_for_account(self, account_id: str) -> int:
        """Cancel-on-disconnect: cancel every open order of the account; returns the count."""
        ...


# --- Added by the server side (sim/server.py); optional engine capabilities --------------------
#
# What the server relies on in published payloads (EventSink.publish):
# - `book.X`: Deribit's raw book notification data, `{"type": "change", "timestamp",
#   "instrument_name", "prev_change_id", "change_id", "bids": [["new"|"change"|"delete", price,
#   amount], ...], "asks": [...]}`. A new subscriber gets `engine.book_snapshot(name)` when the
#   engine has it (else a snapshot built from `public/get_order_book` with its `change_id`),
#   then the changes that continue its `change_id`.
# - `ticker.X`: the `public/ticker` result shape; `deribit_price_index.btc_usd`:
#   `{"timestamp", "price", "index_name"}`.
# - `user.orders.{kind}.{CCY}`: one order object (or a list of them); the server sends one
#   notification per order on `.raw` subscriptions and lists on `.100ms` ones.
# - `user.trades.{kind}.{CCY}`: a list of trades. `user.changes.{kind}.{CCY}`:
#   `{"instrument_name", "trades", "orders", "positions"}`. `user.portfolio.{ccy}`: the
#   portfolio object (account-summary fields).
# Publishing happens synchronously inside `dispatch`/`advance_to`; the server serialises the
# payload at once, so the engine may reuse its objects afterwards.


class SimEngineExtras(Protocol):
    """Optional engine methods the server calls when the engine has them (`getattr`)."""

    def set_event_sink(self, sink: EventSink) -> None:
        """Where to publish notifications (the server's subscription hub)."""
        ...

    def price_gap(self, currency: str, pct: float) -> None:
        """Jump `currency`'s index by `pct` percent now (admin fault `price_gap`)."""
        ...

    def admin_state(self) -> dict[str, Any]:
        """Counts and figures for `GET /sim/admin/state` (JSON-serialisable)."""
        ...

    def book_snapshot(self, instrument_name: str) -> dict[str, Any]:
        """The `book.{instrument}` snapshot notification data (type "snapshot", all levels)
        that later `book.{instrument}` changes continue (their `prev_change_id`)."""
        ...

    # The server's sink also offers `public_channels() -> KeysView[str]`: the public channels
    # that have subscribers right now (cheaper than `wants` for every instrument per tick).

    def hold_market(self, on: bool) -> None:
        """Fault `stale_market_data`: while on, neither `advance_to` nor the catch-up inside
        `dispatch` moves the market (index, marks, books, ticker timestamps); the clock and
        request handling go on. Without it the server can only stop calling `advance_to`."""
        ...


# --- Engine side (sim/exchange.py `SimExchange`): what it publishes and offers -----------------
#
# - Channels are published per settlement currency: `user.orders.future.BTC` (inverse
#   BTC-PERPETUAL and dated futures), `user.orders.option.ETH`, `user.orders.future.USDC`
#   (BTC_USDC-PERPETUAL: linear instruments group under USDC, as Deribit's currency filters
#   do); `user.portfolio.{btc|eth|usdc}` about once a second of simulated time and after
#   every fill; `book.X` changes once per market tick (`scenario.tick_ms`, default 250 ms,
#   minimum 1) and after every order that changes the book; `ticker.X` and
#   `deribit_price_index.{btc|eth}_usd` once per tick.
# - `book_snapshot(instrument_name)` returns the snapshot a new `book.X` subscriber should get
#   (the state current subscribers were last sent; publishes nothing). `public/get_order_book`
#   carries the same `change_id` chain.
# - `subscriptions_changed()`: optional hint after (un)subscribes; the engine re-reads which
#   `book.X`/`ticker.X`/`perpetual.X` channels are wanted at most every 100 ms or 4 ticks of
#   simulated time otherwise (book subscriptions via `book_snapshot` are seen at once).
# - `set_sink`/`set_event_sink`, `price_gap(currency, pct)`, `admin_state()`,
#   `add_account(api_key, api_secret, balances=None)`, and `clock` (the `SimClock`).
# - Scheduled `price_gap` faults of the scenario are applied by the engine itself.
