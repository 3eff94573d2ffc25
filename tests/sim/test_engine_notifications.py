"""Engine: notifications through the EventSink (issue 3, priority 3)."""

from __future__ import annotations

from typing import Any

import pytest

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import Account
from hedgerd.sim.scenario import Scenario


class RecordingSink:
    """Subscribed to a fixed set of channels; records what is published."""

    def __init__(self, channels: set[str], private: set[tuple[str, str]] | None = None) -> None:
        self.channels = channels
        self.private = private or set()  # (account_id, family)
        self.got: list[tuple[str, Any, str | None]] = []

    def wants(self, channel: str, account_id: str | None = None) -> bool:
        if account_id is None:
            return channel in self.channels
        return (account_id, channel.split(".")[1]) in self.private

    def publish(self, channel: str, data: Any, account_id: str | None = None) -> None:
        assert self.wants(channel, account_id), f"published unwanted {channel}"
        self.got.append((channel, data, account_id))

    def on(self, channel: str) -> list[Any]:
        return [d for c, d, _ in self.got if c == channel]


@pytest.fixture
def ex() -> SimExchange:
    return SimExchange(Scenario(seed=4, accounts=[]))


def step(ex: SimExchange, ms: int) -> None:
    ex.clock.advance(ms)
    ex.advance_to(ex.now_ms())


def apply(book: dict[float, float], levels: list[list[Any]]) -> None:
    for action, price, amount in levels:
        if action == "delete":
            del book[price]
        else:
            assert (action == "new") == (price not in book)
            book[price] = amount


def test_book_changes_chain_from_the_rest_snapshot(ex: SimExchange) -> None:
    sink = RecordingSink({"book.BTC-PERPETUAL"})
    ex.set_sink(sink)
    snap = ex.dispatch(
        "public/get_order_book", {"instrument_name": "BTC-PERPETUAL", "depth": 10000}, None
    )
    bids = {p: a for p, a in snap["bids"]}
    asks = {p: a for p, a in snap["asks"]}
    change_id = snap["change_id"]
    a = ex.add_account("k", "s")
    for i in range(40):
        step(ex, 250)
        if i == 10:
            ex.dispatch(
                "private/buy",
                {"instrument_name": "BTC-PERPETUAL", "amount": 30_000, "type": "market"},
                a,
            )
    changes = sink.on("book.BTC-PERPETUAL")
    assert len(changes) > 10
    for ch in changes:
        assert ch["type"] == "change" and ch["prev_change_id"] == change_id
        change_id = ch["change_id"]
        apply(bids, ch["bids"])
        apply(asks, ch["asks"])
    now = ex.dispatch(
        "public/get_order_book", {"instrument_name": "BTC-PERPETUAL", "depth": 10000}, None
    )
    assert now["change_id"] == change_id
    assert sorted(bids.items(), reverse=True) == [tuple(x) for x in now["bids"]]
    assert sorted(asks.items()) == [tuple(x) for x in now["asks"]]


def test_book_snapshot_method(ex: SimExchange) -> None:
    sink = RecordingSink({"book.ETH-PERPETUAL"})
    ex.set_sink(sink)
    snap = ex.book_snapshot("ETH-PERPETUAL")
    assert snap["type"] == "snapshot" and all(x[0] == "new" for x in snap["bids"])
    step(ex, 1000)
    first = sink.on("book.ETH-PERPETUAL")[0]
    assert first["prev_change_id"] == snap["change_id"]


def test_ticker_and_index_notifications(ex: SimExchange) -> None:
    sink = RecordingSink({"ticker.BTC-PERPETUAL", "deribit_price_index.btc_usd"})
    ex.set_sink(sink)
    step(ex, 1000)
    ticks = sink.on("ticker.BTC-PERPETUAL")
    idx = sink.on("deribit_price_index.btc_usd")
    assert len(ticks) == 4 and len(idx) == 4
    assert ticks[-1]["instrument_name"] == "BTC-PERPETUAL" and "mark_price" in ticks[-1]
    assert set(idx[-1]) == {"timestamp", "price", "index_name"}
    assert not sink.on("ticker.ETH-PERPETUAL")


def test_user_channels(ex: SimExchange) -> None:
    a: Account = ex.add_account("k", "s")
    fams = {"orders", "trades", "changes", "portfolio"}
    sink = RecordingSink(set(), {(a.account_id, f) for f in fams})
    ex.set_sink(sink)
    t = ex.dispatch("public/ticker", {"instrument_name": "BTC-PERPETUAL"}, None)
    r = ex.dispatch(
        "private/buy",
        {
            "instrument_name": "BTC-PERPETUAL",
            "amount": 10,
            "type": "limit",
            "price": t["best_bid_price"] - 5,
            "label": "x",
        },
        a,
    )
    orders = sink.on("user.orders.future.BTC")
    assert orders[-1] == r["order"]
    ex.dispatch("private/cancel", {"order_id": r["order"]["order_id"]}, a)
    assert sink.on("user.orders.future.BTC")[-1]["order_state"] == "cancelled"
    r = ex.dispatch(
        "private/buy", {"instrument_name": "BTC-PERPETUAL", "amount": 20, "type": "market"}, a
    )
    trades = sink.on("user.trades.future.BTC")
    assert trades[-1] == r["trades"]
    change = sink.on("user.changes.future.BTC")[-1]
    assert change["instrument_name"] == "BTC-PERPETUAL"
    assert change["positions"][0]["size"] == 20 and change["trades"] == r["trades"]
    port = sink.on("user.portfolio.btc")
    assert port and port[-1]["currency"] == "BTC" and "delta_total" in port[-1]
    step(ex, 2000)
    assert len(sink.on("user.portfolio.btc")) > len(port)
    # nothing for accounts nobody listens to
    other = ex.add_account("k2", "s2")
    ex.dispatch(
        "private/buy", {"instrument_name": "ETH-PERPETUAL", "amount": 1, "type": "market"}, other
    )
    assert all(acc == a.account_id for _, _, acc in sink.got if acc is not None)


def test_linear_and_option_channel_names(ex: SimExchange) -> None:
    a = ex.add_account("k", "s")
    sink = RecordingSink(set(), {(a.account_id, "trades")})
    ex.set_sink(sink)
    ex.dispatch(
        "private/buy",
        {"instrument_name": "BTC_USDC-PERPETUAL", "amount": 0.01, "type": "market"},
        a,
    )
    assert sink.on("user.trades.future.USDC")
    opt = next(
        i
        for i in ex.dispatch("public/get_instruments", {"currency": "ETH", "kind": "option"}, None)
    )
    ex.dispatch(
        "private/buy", {"instrument_name": opt["instrument_name"], "amount": 1, "type": "market"}, a
    )
    assert sink.on("user.trades.option.ETH")


def test_late_subscriber_snapshot_then_changes_rebuild_the_book(ex: SimExchange) -> None:
    sink = RecordingSink({"book.BTC-PERPETUAL"})
    ex.set_sink(sink)
    ex.book_snapshot("BTC-PERPETUAL")
    a = ex.add_account("k", "s")
    step(ex, 2000)
    ex.dispatch(
        "private/sell", {"instrument_name": "BTC-PERPETUAL", "amount": 40_000, "type": "market"}, a
    )  # a pending change for everyone
    late = ex.book_snapshot("BTC-PERPETUAL")
    n_before = len(sink.on("book.BTC-PERPETUAL"))
    step(ex, 3000)
    bids = {p: q for _, p, q in late["bids"]}
    asks = {p: q for _, p, q in late["asks"]}
    prev = late["change_id"]
    for ch in sink.on("book.BTC-PERPETUAL")[n_before:]:
        assert ch["prev_change_id"] == prev
        prev = ch["change_id"]
        apply(bids, ch["bids"])
        apply(asks, ch["asks"])
    now = ex.dispatch(
        "public/get_order_book", {"instrument_name": "BTC-PERPETUAL", "depth": 10000}, None
    )
    assert sorted(bids.items(), reverse=True) == [tuple(x) for x in now["bids"]]
    assert sorted(asks.items()) == [tuple(x) for x in now["asks"]]


def test_public_trades_markprice_and_perpetual_channels(ex: SimExchange) -> None:
    a = ex.add_account("k", "s")
    sink = RecordingSink(
        {"trades.BTC-PERPETUAL", "markprice.options.btc_usd", "perpetual.BTC-PERPETUAL"}
    )
    ex.set_sink(sink)
    r = ex.dispatch(
        "private/buy", {"instrument_name": "BTC-PERPETUAL", "amount": 30, "type": "market"}, a
    )
    (pub,) = sink.on("trades.BTC-PERPETUAL")
    assert [t["trade_id"] for t in pub] == [t["trade_id"] for t in r["trades"]]
    assert "fee" not in pub[0] and "order_id" not in pub[0]
    last = ex.dispatch(
        "public/get_last_trades_by_instrument", {"instrument_name": "BTC-PERPETUAL"}, None
    )
    assert last["trades"] == pub[::-1] and last["has_more"] is False
    step(ex, 250)
    (marks,) = sink.on("markprice.options.btc_usd")
    assert marks and {"instrument_name", "mark_price", "iv", "timestamp"} == set(marks[0])
    (perp,) = sink.on("perpetual.BTC-PERPETUAL")
    assert set(perp) == {"timestamp", "interest", "index_price"}
