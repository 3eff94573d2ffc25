"""HELPERS in this tree now: read /work/main/HELPERS.md first (no git state changes; final report by 15:40 UTC).

The seam between the simulator's engine (`sim/exchange.py` and what it uses) and its
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
ERR_INVALID_AMOUNT = 10002
ERR_POST_ONLY_REJECT = 11054
ERR_REDUCE_ONLY = 11098
ERR_PRICE_TOO_HIGH = 10006
ERR_PRICE_TOO_LOW = 10007
ERR_BAD_ARGUMENT = 11050
ERR_NOT_ALLOWED_IN_MODE = 11091
ERR_INVALID_INSTRUMENT = 10020  # "invalid_instrument_name"? see docs; engine uses this code
ERR_TRADING_DISABLED = 10008


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
