"""WebSocket subscriptions: Deribit channel names, routing of the engine's notifications to
subscribers, and the `.100ms` / `.agg2` conflation.

The engine publishes on interval-less channels (see `EventSink`): `book.BTC-PERPETUAL`,
`ticker.X`, `deribit_price_index.btc_usd`, `user.orders.{kind}.{CCY}`,
`user.trades.{kind}.{CCY}`, `user.changes.{kind}.{CCY}`, `user.portfolio.{ccy}`. A client
subscribes with Deribit's names, which may carry an interval (`.raw`, `.100ms`, `.agg2`), a
`kind`/currency wildcard (`user.orders.any.any.raw`), or an instrument
(`user.trades.BTC-PERPETUAL.raw`); notifications carry the name the client subscribed with,
which is what ccxt.pro matches on.

`.raw` notifications go out as the engine publishes them. `.100ms`/`.agg2` ones are collected
and flushed every 100 ms of wall time: the latest state for tickers, index and portfolio; merged
levels for books (change ids chained); lists for orders and trades (`user.orders.*.100ms`
carries a list of orders, as on Deribit).
"""

from __future__ import annotations

from collections.abc import Callable, KeysView
from dataclasses import dataclass, field
from typing import Any, Protocol

try:  # orjson comes with ccxt; the stdlib is the fallback
    import orjson

    def dumps(obj: Any) -> str:
        """Compact JSON text."""
        try:
            return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:
            return _std_dumps(obj)

except ImportError:  # pragma: no cover

    def dumps(obj: Any) -> str:
        """Compact JSON text."""
        return _std_dumps(obj)


import json


def _default(o: Any) -> Any:
    item = getattr(o, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _std_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_default)


INTERVALS = frozenset({"raw", "100ms", "agg2"})
KINDS = frozenset({"any", "future", "option", "spot", "future_combo", "option_combo", "combo"})
# Public market-data families that `freeze_market_data` silences.
MARKET_FAMILIES = frozenset(
    {
        "book",
        "ticker",
        "quote",
        "deribit_price_index",
        "trades",
        "markprice",
        "perpetual",
    }
)
# Families that need an interval and may use `.raw` only on an authorised connection.
_INTERVAL_FAMILIES = frozenset({"book", "ticker", "trades"})


class ChannelError(ValueError):
    """A channel name that is not one of Deribit's."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed subscription name.

    `route` is the engine channel it listens to (public), or the user family (`orders`,
    `trades`, `changes`, `portfolio`) for private ones; `kind`, `currency` (upper case or
    `any`) and `instrument` narrow private ones.
    """

    name: str
    family: str
    route: str
    interval: str | None = None
    private: bool = False
    kind: str | None = None
    currency: str | None = None
    instrument: str | None = None

    @property
    def conflated(self) -> bool:
        return self.interval in ("100ms", "agg2")

    @property
    def instrument_of_public(self) -> str | None:
        if self.family in ("book", "ticker", "quote", "trades"):
            return self.route.split(".", 1)[1]
        return None


def parse_channel(name: str) -> Channel:
    """Parse one of Deribit's channel names; raises `ChannelError` for anything else."""
    if not isinstance(name, str) or not name or len(name) > 256:
        raise ChannelError("invalid channel")
    parts = name.split(".")
    fam = parts[0]
    if fam == "user":
        if len(parts) < 3:
            raise ChannelError("invalid channel")
        sub = parts[1]
        if sub == "portfolio" and len(parts) == 3:
            return Channel(name, "user.portfolio", "portfolio", None, True, None, parts[2].upper())
        if sub in ("orders", "trades", "changes"):
            if len(parts) == 5:
                kind, ccy, interval = parts[2], parts[3], parts[4]
                if kind not in KINDS or interval not in INTERVALS:
                    raise ChannelError("invalid channel")
                return Channel(name, "user." + sub, sub, interval, True, kind, ccy.upper())
            if len(parts) == 4:
                inst, interval = parts[2], parts[3]
                if interval not in INTERVALS or "-" not in inst:
                    raise ChannelError("invalid channel")
                return Channel(name, "user." + sub, sub, interval, True, None, None, inst)
        raise ChannelError("invalid channel")
    if fam in _INTERVAL_FAMILIES:
        if len(parts) != 3 or parts[2] not in INTERVALS or not parts[1]:
            raise ChannelError("invalid channel")
        return Channel(name, fam, f"{fam}.{parts[1]}", parts[2])
    if fam == "quote":
        if len(parts) != 2 or not parts[1]:
            raise ChannelError("invalid channel")
        # quote.X is derived from ticker.X (best bid/ask only)
        return Channel(name, "quote", f"ticker.{parts[1]}", "raw")
    if fam == "deribit_price_index" and len(parts) == 2 and parts[1]:
        return Channel(name, fam, name)
    if fam in ("markprice", "estimated_expiration_price", "perpetual", "platform_state"):
        return Channel(name, fam, name.removesuffix(".raw").removesuffix(".100ms"))
    raise ChannelError("invalid channel")


class Subscriber(Protocol):
    """A WebSocket connection, as the hub sees it."""

    conn_id: int

    @property
    def account_id(self) -> str | None: ...

    def send_text(self, text: str) -> None:
        """Queue a frame; must not block (drops the connection on overflow)."""
        ...


def notification(channel: str, data: Any) -> str:
    return dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


def _quote_of(ticker: Any) -> Any:
    if not isinstance(ticker, dict):
        return ticker
    return {
        "timestamp": ticker.get("timestamp"),
        "instrument_name": ticker.get("instrument_name"),
        "best_bid_price": ticker.get("best_bid_price"),
        "best_bid_amount": ticker.get("best_bid_amount"),
        "best_ask_price": ticker.get("best_ask_price"),
        "best_ask_amount": ticker.get("best_ask_amount"),
    }


def _items(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    return [data]


@dataclass(slots=True)
class _Sub:
    conn: Subscriber
    channel: Channel


def _merge_book(pending: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fold a later book notification into an earlier one (both Deribit book data)."""
    if new.get("type") == "snapshot":
        return new
    out = dict(pending)
    for side in ("bids", "asks"):
        levels: dict[float, list[Any]] = {lv[1]: list(lv) for lv in pending.get(side, [])}
        for lv in new.get(side, []):
            action, price, amount = lv[0], lv[1], lv[2]
            old = levels.get(price)
            if pending.get("type") == "snapshot":
                if action == "delete":
                    levels.pop(price, None)
                else:
                    levels[price] = ["new", price, amount]
            elif action == "delete":
                if old is not None and old[0] == "new":
                    levels.pop(price)  # appeared and went within the window
                else:
                    levels[price] = ["delete", price, 0]
            elif old is not None and old[0] == "delete":
                levels[price] = ["change", price, amount]
            else:
                levels[price] = [old[0] if old is not None else action, price, amount]
        rev = side == "bids"
        out[side] = sorted(levels.values(), key=lambda lv: lv[1], reverse=rev)
    out["timestamp"] = new.get("timestamp", pending.get("timestamp"))
    out["change_id"] = new.get("change_id", pending.get("change_id"))
    return out


def _merge_by_key(pending: list[Any], new: list[Any], key: str) -> list[Any]:
    out = list(pending)
    index = {item.get(key): i for i, item in enumerate(out) if isinstance(item, dict)}
    for item in new:
        k = item.get(key) if isinstance(item, dict) else None
        if k is not None and k in index:
            out[index[k]] = item
        else:
            index[k] = len(out)
            out.append(item)
    return out


def _merge_changes(pending: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        "instrument_name": new.get("instrument_name", pending.get("instrument_name")),
        "trades": list(pending.get("trades", [])) + list(new.get("trades", [])),
        "orders": _merge_by_key(pending.get("orders", []), new.get("orders", []), "order_id"),
        "positions": _merge_by_key(
            pending.get("positions", []), new.get("positions", []), "instrument_name"
        ),
    }


#: (engine channel, account id, data) -> the data to deliver, or None to drop it: how the
#: server's faults reach private notifications (see `SubscriptionHub.private_filter`).
PrivateFilter = Callable[[str, str, Any], Any]


@dataclass(slots=True)
class SubscriptionHub:
    """Implements `EventSink` for every WebSocket connection of one server.

    `private_filter` sees every private notification (engine channel such as
    `user.changes.future.BTC` or `user.portfolio.btc`, account, data) before it is routed, and
    the first `user.portfolio` notification of a subscription; it returns what to deliver, or
    None to drop it."""

    market_frozen: Callable[[], bool] = lambda: False
    private_filter: PrivateFilter | None = None
    _public: dict[str, list[_Sub]] = field(default_factory=dict)
    _private: dict[tuple[str, str], list[_Sub]] = field(default_factory=dict)
    _by_conn: dict[int, dict[str, _Sub]] = field(default_factory=dict)
    # conn_id -> {(channel name, part key) -> (sub, data)} awaiting the next flush
    _pending: dict[int, dict[tuple[str, str], tuple[_Sub, Any]]] = field(default_factory=dict)
    delivered: int = 0

    # ------------------------------------------------------------------- subscribe side
    def add(self, conn: Subscriber, channel: Channel) -> bool:
        """Subscribe `conn`; False if it already was."""
        subs = self._by_conn.setdefault(conn.conn_id, {})
        if channel.name in subs:
            return False
        sub = _Sub(conn, channel)
        subs[channel.name] = sub
        if channel.private:
            acct = conn.account_id
            assert acct is not None, "private channels need an authenticated connection"
            self._private.setdefault((acct, channel.route), []).append(sub)
        else:
            self._public.setdefault(channel.route, []).append(sub)
        return True

    def remove(self, conn: Subscriber, name: str) -> bool:
        subs = self._by_conn.get(conn.conn_id)
        if not subs or name not in subs:
            return False
        sub = subs.pop(name)
        if sub.channel.private:
            key = (conn.account_id or "", sub.channel.route)
            lst = self._private.get(key, [])
            if sub in lst:
                lst.remove(sub)
            if not lst:
                self._private.pop(key, None)
        else:
            lst = self._public.get(sub.channel.route, [])
            if sub in lst:
                lst.remove(sub)
            if not lst:
                self._public.pop(sub.channel.route, None)
        pend = self._pending.get(conn.conn_id)
        if pend:
            for k in [k for k in pend if k[0] == name]:
                del pend[k]
        return True

    def remove_all(self, conn: Subscriber) -> list[str]:
        names = list(self._by_conn.get(conn.conn_id, {}))
        for n in names:
            self.remove(conn, n)
        self._by_conn.pop(conn.conn_id, None)
        self._pending.pop(conn.conn_id, None)
        return names

    def channels_of(self, conn: Subscriber) -> list[str]:
        return list(self._by_conn.get(conn.conn_id, {}))

    def count(self) -> int:
        return sum(len(v) for v in self._by_conn.values())

    # ------------------------------------------------------------------- EventSink
    def public_channels(self) -> KeysView[str]:
        """The public engine channels with at least one subscriber (a live view), so that an
        engine can visit only those instead of asking `wants` for every instrument."""
        return self._public.keys()

    def wants(self, channel: str, account_id: str | None = None) -> bool:
        if account_id is None:
            return channel in self._public
        parts = channel.split(".", 2)
        return len(parts) >= 2 and (account_id, parts[1]) in self._private

    def publish(self, channel: str, data: Any, account_id: str | None = None) -> None:
        if account_id is None:
            subs = self._public.get(channel)
            if not subs:
                return
            if channel.split(".", 1)[0] in MARKET_FAMILIES and self.market_frozen():
                return
            texts: dict[str, str] = {}
            for sub in list(subs):
                ch = sub.channel
                payload = _quote_of(data) if ch.family == "quote" else data
                if ch.conflated:
                    self._stash(sub, "", payload)
                    continue
                text = texts.get(ch.name)
                if text is None:
                    text = texts[ch.name] = notification(ch.name, payload)
                sub.conn.send_text(text)
                self.delivered += 1
            return
        parts = channel.split(".")
        if len(parts) < 3:
            return
        family = parts[1]
        subs = self._private.get((account_id, family))
        if not subs:
            return
        if self.private_filter is not None:
            data = self.private_filter(channel, account_id, data)
            if data is None:
                return
        if family == "portfolio":
            ccy = parts[2].upper()
            for sub in list(subs):
                if sub.channel.currency == ccy:
                    self._send(sub, data)
            return
        kind = parts[2]
        ccy = parts[3].upper() if len(parts) > 3 else "ANY"
        for sub in list(subs):
            ch = sub.channel
            if ch.instrument is not None:
                payload = self._only_instrument(family, data, ch.instrument)
                if payload is None:
                    continue
            else:
                if ch.kind not in ("any", kind) or ch.currency not in ("ANY", ccy):
                    continue
                payload = data
            self._send_user(sub, family, payload)

    @staticmethod
    def _only_instrument(family: str, data: Any, instrument: str) -> Any:
        if family == "changes":
            return (
                data
                if isinstance(data, dict) and data.get("instrument_name") == instrument
                else None
            )
        items = [
            x
            for x in _items(data)
            if isinstance(x, dict) and x.get("instrument_name") == instrument
        ]
        if not items:
            return None
        return items if isinstance(data, list) else items[0]

    def _send_user(self, sub: _Sub, family: str, payload: Any) -> None:
        ch = sub.channel
        if family == "orders":
            if ch.conflated:
                self._stash(sub, "", _items(payload))
            else:
                for order in _items(payload):  # raw: one order per notification
                    self._send(sub, order)
            return
        if family == "changes" and ch.conflated and isinstance(payload, dict):
            self._stash(sub, str(payload.get("instrument_name", "")), payload)
            return
        if ch.conflated:
            self._stash(sub, "", payload)
        else:
            self._send(sub, payload)

    def _send(self, sub: _Sub, data: Any) -> None:
        sub.conn.send_text(notification(sub.channel.name, data))
        self.delivered += 1

    def deliver_initial(self, conn: Subscriber, name: str, data: Any) -> None:
        """Send the first notification of a new subscription (a book snapshot, the current
        ticker, the portfolio), through the conflation buffer when the channel has one."""
        sub = self._by_conn.get(conn.conn_id, {}).get(name)
        if sub is None:
            return
        if sub.channel.family == "quote":
            data = _quote_of(data)
        ch = sub.channel
        if ch.family == "user.portfolio" and self.private_filter is not None:
            data = self.private_filter(
                f"user.portfolio.{(ch.currency or '').lower()}", conn.account_id or "", data
            )
            if data is None:
                return
        if sub.channel.conflated:
            self._stash(sub, "", data)
        else:
            self._send(sub, data)

    # ------------------------------------------------------------------- conflation
    def _stash(self, sub: _Sub, part: str, data: Any) -> None:
        pend = self._pending.setdefault(sub.conn.conn_id, {})
        key = (sub.channel.name, part)
        prev = pend.get(key)
        if prev is None:
            pend[key] = (sub, data)
            return
        old = prev[1]
        fam = sub.channel.family
        if fam == "book" and isinstance(old, dict) and isinstance(data, dict):
            merged: Any = _merge_book(old, data)
        elif fam == "user.orders":
            merged = _merge_by_key(_items(old), _items(data), "order_id")
        elif fam in ("user.trades", "trades"):
            merged = _items(old) + _items(data)
        elif fam == "user.changes" and isinstance(old, dict) and isinstance(data, dict):
            merged = _merge_changes(old, data)
        else:
            merged = data  # state channels: the latest wins
        pend[key] = (sub, merged)

    def flush(self) -> int:
        """Send what the conflated channels collected; returns the number of notifications."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        n = 0
        for items in pending.values():
            for sub, data in items.values():
                self._send(sub, data)
                n += 1
        return n
