"""The API methods `SimExchange.dispatch` serves: parameter parsing and result shapes.

Everything ccxt's deribit client calls for markets, tickers, books, balances, positions,
orders and trades is here, plus the rest of the methods issue 3 lists.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hedgerd.sim.deribit.accounts import AccountState, Order, Trade
from hedgerd.sim.deribit.params import get_bool, get_int, get_str, invalid, req_str
from hedgerd.sim.deribit.portfolio import account_fields, account_summary, position_json
from hedgerd.sim.index_history import CHART_RANGES, chart_times
from hedgerd.sim.orderbook import num
from hedgerd.sim.protocol import DeribitError
from hedgerd.sim.vol_index import RESOLUTIONS_S, candle, candle_times

if TYPE_CHECKING:
    from hedgerd.sim.exchange import SimExchange

Handler = Callable[[Mapping[str, Any], AccountState | None], Any]
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
INDEX_NAMES = ("btc_usd", "eth_usd", "btc_usdc", "eth_usdc")
#: `get_user_trades_*` without `historical`: the trades of the last 24 h (Deribit's
#: real-time store); with it, the indexed store, whose newest trades lag by the indexing
#: (here a minute).
RECENT_TRADES_MS = 86_400_000
HISTORY_INDEX_DELAY_MS = 60_000


def _acct(a: AccountState | None) -> AccountState:
    assert a is not None  # dispatch checks private methods
    return a


def table(ex: SimExchange) -> dict[str, Handler]:
    """Method name -> handler(params, account)."""

    # ---------------------------------------------------------------- public
    def get_time(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.now_ms()

    def test(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return {"version": "1.2.26"}

    def status(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return {"locked": "false", "locked_indices": []}

    def get_currencies(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.currencies_json()

    def get_instruments(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=True, required=False)
        kind = get_str(p, "kind")
        if kind is not None and kind not in (
            "future",
            "option",
            "spot",
            "future_combo",
            "option_combo",
        ):
            raise invalid("kind", "invalid kind")
        expired = get_bool(p, "expired", False)
        out = []
        for inst in ex.catalog.by_name.values():
            if inst.is_active == expired:
                continue
            # USDC lists the linear products and the spot pairs; a spot pair is also
            # listed under its coin (BTC_USDC under BTC)
            if ccy is not None and ccy not in inst.currencies:
                continue
            if kind is not None and inst.kind != kind:
                continue
            out.append(inst.to_json())
        return out

    def get_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex_inst(p).to_json()

    def ex_inst(p: Mapping[str, Any]) -> Any:
        return ex.lookup(p)

    def ticker(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.ticker(ex_inst(p))

    def get_order_book(p: Mapping[str, Any], a: AccountState | None) -> Any:
        inst = ex_inst(p)
        depth = get_int(p, "depth", default=10, lo=1, hi=10000)
        assert depth is not None
        return ex.order_book(inst, depth)

    def get_index_price(p: Mapping[str, Any], a: AccountState | None) -> Any:
        name = req_str(p, "index_name")
        ccy = name.split("_")[0].upper()
        if name not in INDEX_NAMES or ccy not in ex.markets:
            raise invalid("index_name", "invalid index name")
        px = ex.index_price(ccy)
        return {"index_price": num(round(px, 4)), "estimated_delivery_price": num(round(px, 4))}

    def get_volatility_index_data(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=False)
        assert ccy is not None
        if ccy not in ex.markets:
            raise invalid("currency", "no volatility index")
        # A number (JSON-RPC) or its digits (a GET's query string), or "1D".
        raw = p.get("resolution")
        res = RESOLUTIONS_S.get(str(int(raw)) if isinstance(raw, int | float) else str(raw))
        if res is None:
            raise invalid("resolution", "unsupported resolution")
        start = get_int(p, "start_timestamp", required=True)
        end = get_int(p, "end_timestamp", required=True)
        assert start is not None and end is not None
        now = ex.now_ms()
        times, more = candle_times(start, min(end, now), res)
        level = functools.partial(ex.vol_index, ccy)
        return {"data": [candle(level, t, res, now) for t in times], "continuation": more}

    def get_index_chart_data(p: Mapping[str, Any], a: AccountState | None) -> Any:
        name = req_str(p, "index_name")
        ccy = name.split("_")[0].upper()
        if name not in INDEX_NAMES or ccy not in ex.markets:
            raise invalid("index_name", "invalid index name")
        range_name = req_str(p, "range", choices=tuple(CHART_RANGES))
        return [[t, ex.index_at(ccy, t)] for t in chart_times(range_name, ex.now_ms())]

    def get_index_price_names(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return [n for n in INDEX_NAMES if n.split("_")[0].upper() in ex.markets]

    def get_contract_size(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return {"contract_size": num(ex_inst(p).contract_size)}

    def get_book_summary_by_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return [_summary(ex, ex_inst(p))]

    def get_book_summary_by_currency(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=False)
        kind = ex.check_kind(p)
        return [
            _summary(ex, i)
            for i in ex.catalog.active()
            if ccy in i.currencies and (kind is None or i.kind == kind)
        ]

    def get_last_trades_by_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        inst = ex_inst(p)
        count = get_int(p, "count", default=10, lo=1, hi=1000)
        start_ts = get_int(p, "start_timestamp")
        end_ts = get_int(p, "end_timestamp")
        sorting = get_str(p, "sorting", default="desc", choices=("asc", "desc", "default"))
        assert count is not None
        rows = ex.last_trades(inst)
        if start_ts is not None:
            rows = [r for r in rows if r["timestamp"] >= start_ts]
        if end_ts is not None:
            rows = [r for r in rows if r["timestamp"] <= end_ts]
        chosen = rows[:count] if sorting == "asc" else list(reversed(rows))[:count]
        return {"trades": chosen, "has_more": len(rows) > count}

    def get_funding_rate_value(p: Mapping[str, Any], a: AccountState | None) -> Any:
        inst = ex_inst(p)
        if not inst.perpetual:
            raise invalid("instrument_name", "not a perpetual")
        return num(round(ex.markets[inst.currency].funding_8h(), 8))

    # ---------------------------------------------------------------- private: trading
    def buy(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.place(p, _acct(a), "buy")

    def sell(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.place(p, _acct(a), "sell")

    def edit(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.edit(p, _acct(a))

    def edit_by_label(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        label = req_str(p, "label", max_len=64)
        inst = ex_inst(p)
        matches = [o for o in acct.open_orders.values() if o.label == label and o.inst is inst]
        if len(matches) != 1:
            raise DeribitError(10004, "order_not_found", {"param": "label"})
        q = dict(p)
        q["order_id"] = matches[0].order_id
        return ex.edit(q, acct)

    def cancel(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.cancel(p, _acct(a))

    def cancel_all(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.cancel_where(_acct(a), lambda o: True)

    def cancel_all_by_currency(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=True)
        kind = ex.check_kind(p)
        typ = _order_type_filter(p)
        return ex.cancel_where(_acct(a), lambda o: _match(o, ccy, kind, typ))

    def cancel_all_by_kind_or_type(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=True)
        kind = ex.check_kind(p)
        typ = _order_type_filter(p)
        return ex.cancel_where(_acct(a), lambda o: _match(o, ccy, kind, typ))

    def cancel_all_by_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        inst = ex_inst(p)
        typ = _order_type_filter(p)
        return ex.cancel_where(
            _acct(a), lambda o: o.inst is inst and (typ is None or o.order_type == typ)
        )

    def cancel_by_label(p: Mapping[str, Any], a: AccountState | None) -> Any:
        label = req_str(p, "label", max_len=64)
        ccy = ex.check_currency(p, allow_any=True, required=False)
        return ex.cancel_where(_acct(a), lambda o: o.label == label and _match(o, ccy, None, None))

    def close_position(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.close_position(p, _acct(a))

    # ---------------------------------------------------------------- private: orders
    def get_open_orders(p: Mapping[str, Any], a: AccountState | None) -> Any:
        kind = ex.check_kind(p)
        typ = _open_type_filter(p)
        return _orders_json(_acct(a).open_orders.values(), lambda o: _match(o, None, kind, typ))

    def get_open_orders_by_currency(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=True)
        kind = ex.check_kind(p)
        typ = _open_type_filter(p)
        return _orders_json(_acct(a).open_orders.values(), lambda o: _match(o, ccy, kind, typ))

    def get_open_orders_by_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        inst = ex_inst(p)
        typ = _open_type_filter(p)
        return _orders_json(
            _acct(a).open_orders.values(),
            lambda o: o.inst is inst and (typ is None or o.order_type == typ),
        )

    def get_open_orders_by_label(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=True)
        label = get_str(p, "label", max_len=64)
        return _orders_json(
            _acct(a).open_orders.values(),
            lambda o: (label is None or o.label == label) and _match(o, ccy, None, None),
        )

    def get_order_state(p: Mapping[str, Any], a: AccountState | None) -> Any:
        return ex.order_of(_acct(a), p).to_json()

    def get_order_state_by_label(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        ccy = ex.check_currency(p, allow_any=True)
        label = req_str(p, "label", max_len=64)
        return _orders_json(
            (o for o in ex.orders.values() if o.account_id == acct.account_id),
            lambda o: o.label == label and _match(o, ccy, None, None),
        )

    def get_order_history_by_currency(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        ccy = ex.check_currency(p, allow_any=True)
        kind = ex.check_kind(p)
        count = get_int(p, "count", default=20, lo=1, hi=10000)
        offset = get_int(p, "offset", default=0, lo=0)
        assert count is not None and offset is not None
        rows = [
            o
            for o in ex.orders.values()
            if o.account_id == acct.account_id and not o.is_open and _match(o, ccy, kind, None)
        ]
        rows.sort(key=lambda o: (o.last_update_ms, o.order_id), reverse=True)
        return [o.to_json() for o in rows[offset : offset + count]]

    def get_order_history_by_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        inst = ex_inst(p)
        count = get_int(p, "count", default=20, lo=1, hi=10000)
        offset = get_int(p, "offset", default=0, lo=0)
        assert count is not None and offset is not None
        rows = [
            o
            for o in ex.orders.values()
            if o.account_id == acct.account_id and not o.is_open and o.inst is inst
        ]
        rows.sort(key=lambda o: (o.last_update_ms, o.order_id), reverse=True)
        return [o.to_json() for o in rows[offset : offset + count]]

    # ---------------------------------------------------------------- private: trades
    def trades_query(
        p: Mapping[str, Any], acct: AccountState, pred: Callable[[Trade], bool], wrap: bool
    ) -> Any:
        count = get_int(p, "count", default=10, lo=1, hi=1000)
        assert count is not None
        start_ts = get_int(p, "start_timestamp")
        end_ts = get_int(p, "end_timestamp")
        start_id = get_str(p, "start_id")
        end_id = get_str(p, "end_id")
        sorting = get_str(p, "sorting", default="desc", choices=("asc", "desc", "default"))
        rows = [t for t in acct.trades if pred(t)]
        # Deribit's two stores: by default the real-time one (trades of the last 24 h),
        # with `historical` the indexed one (everything but the last moments).
        now = ex.now_ms()
        if get_bool(p, "historical"):
            rows = [t for t in rows if t.timestamp <= now - HISTORY_INDEX_DELAY_MS]
        else:
            rows = [t for t in rows if t.timestamp >= now - RECENT_TRADES_MS]
        if start_ts is not None:
            rows = [t for t in rows if t.timestamp >= start_ts]
        if end_ts is not None:
            rows = [t for t in rows if t.timestamp <= end_ts]
        if start_id is not None or end_id is not None:
            seqs = {t.trade_id: i for i, t in enumerate(acct.trades)}
            lo = seqs.get(start_id, -1) if start_id is not None else -1
            hi = seqs.get(end_id, len(acct.trades)) if end_id is not None else len(acct.trades)
            rows = [t for t in rows if lo <= seqs[t.trade_id] <= hi]
        if sorting == "asc" or (start_ts is not None and sorting == "default"):
            chosen = rows[:count]
        else:
            chosen = list(reversed(rows))[:count]
        out = [t.to_json() for t in chosen]
        if wrap:
            return {"trades": out, "has_more": len(rows) > count}
        return out

    def get_user_trades_by_currency(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=True)
        kind = ex.check_kind(p)
        return trades_query(p, _acct(a), lambda t: _match(t.order, ccy, kind, None), True)

    def get_user_trades_by_instrument(p: Mapping[str, Any], a: AccountState | None) -> Any:
        inst = ex_inst(p)
        return trades_query(p, _acct(a), lambda t: t.inst is inst, True)

    def get_user_trades_by_order(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        o = ex.order_of(acct, p)
        sorting = get_str(p, "sorting", default="asc", choices=("asc", "desc", "default"))
        rows = [t.to_json() for t in acct.trades if t.order is o]
        return list(reversed(rows)) if sorting == "desc" else rows

    # ---------------------------------------------------------------- private: account
    def get_positions(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        ccy = ex.check_currency(p, allow_any=True, required=False)
        kind = get_str(p, "kind")
        if kind is not None and kind not in (
            "future",
            "option",
            "future_combo",
            "option_combo",
            "any",
        ):
            raise invalid("kind", "invalid kind")
        if kind == "any":
            kind = None
        return [
            position_json(pos, ex)
            for pos in acct.positions.values()
            if pos.size != 0
            and (ccy is None or pos.inst.settlement_currency == ccy)
            and (kind is None or pos.inst.kind == kind)
        ]

    def get_position(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        inst = ex_inst(p)
        if inst.is_spot:  # spot settles at once: there is never a position
            raise invalid("instrument_name", "spot instruments have no positions")
        pos = acct.positions.get(inst.name)
        if pos is None:
            from hedgerd.sim.deribit.accounts import Position

            pos = Position(inst)
        return position_json(pos, ex)

    def get_account_summary(p: Mapping[str, Any], a: AccountState | None) -> Any:
        ccy = ex.check_currency(p, allow_any=False)
        assert ccy is not None
        extended = get_bool(p, "extended", False)
        return account_summary(_acct(a), ccy, ex, extended)

    def get_account_summaries(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        extended = get_bool(p, "extended", False)
        out = dict(account_fields(acct))
        out["summaries"] = [account_summary(acct, c, ex, extended) for c in ("BTC", "ETH", "USDC")]
        return out

    def get_subaccounts(p: Mapping[str, Any], a: AccountState | None) -> Any:
        acct = _acct(a)
        f = account_fields(acct)
        return [
            {
                "id": f["id"],
                "email": f["email"],
                "username": f["username"],
                "type": "main",
                "is_password": False,
                "login_enabled": False,
                "receive_notifications": False,
                "system_name": f["system_name"],
                "security_keys_enabled": False,
                "security_keys_assignments": [],
                "proof_id": None,
                "proof_id_signature": None,
            }
        ]

    methods: dict[str, Handler] = {
        "public/get_time": get_time,
        "public/test": test,
        "public/status": status,
        "public/get_currencies": get_currencies,
        "public/get_instruments": get_instruments,
        "public/get_instrument": get_instrument,
        "public/ticker": ticker,
        "public/get_order_book": get_order_book,
        "public/get_index_price": get_index_price,
        "public/get_index_price_names": get_index_price_names,
        "public/get_index_chart_data": get_index_chart_data,
        "public/get_volatility_index_data": get_volatility_index_data,
        "public/get_contract_size": get_contract_size,
        "public/get_book_summary_by_instrument": get_book_summary_by_instrument,
        "public/get_book_summary_by_currency": get_book_summary_by_currency,
        "public/get_funding_rate_value": get_funding_rate_value,
        "public/get_last_trades_by_instrument": get_last_trades_by_instrument,
        "public/get_last_trades_by_instrument_and_time": get_last_trades_by_instrument,
        "private/buy": buy,
        "private/sell": sell,
        "private/edit": edit,
        "private/edit_by_label": edit_by_label,
        "private/cancel": cancel,
        "private/cancel_all": cancel_all,
        "private/cancel_all_by_currency": cancel_all_by_currency,
        "private/cancel_all_by_kind_or_type": cancel_all_by_kind_or_type,
        "private/cancel_all_by_instrument": cancel_all_by_instrument,
        "private/cancel_by_label": cancel_by_label,
        "private/close_position": close_position,
        "private/get_open_orders": get_open_orders,
        "private/get_open_orders_by_currency": get_open_orders_by_currency,
        "private/get_open_orders_by_instrument": get_open_orders_by_instrument,
        "private/get_open_orders_by_label": get_open_orders_by_label,
        "private/get_order_state": get_order_state,
        "private/get_order_state_by_label": get_order_state_by_label,
        "private/get_order_history_by_currency": get_order_history_by_currency,
        "private/get_order_history_by_instrument": get_order_history_by_instrument,
        "private/get_user_trades_by_currency": get_user_trades_by_currency,
        "private/get_user_trades_by_currency_and_time": get_user_trades_by_currency,
        "private/get_user_trades_by_instrument": get_user_trades_by_instrument,
        "private/get_user_trades_by_instrument_and_time": get_user_trades_by_instrument,
        "private/get_user_trades_by_order": get_user_trades_by_order,
        "private/get_positions": get_positions,
        "private/get_position": get_position,
        "private/get_account_summary": get_account_summary,
        "private/get_account_summaries": get_account_summaries,
        "private/get_subaccounts": get_subaccounts,
    }
    return methods


def _order_type_filter(p: Mapping[str, Any]) -> str | None:
    typ = get_str(p, "type", default="all")
    if typ not in (
        "all",
        "limit",
        "market",
        "trigger_all",
        "stop",
        "take",
        "trailing_stop",
        "stop_limit",
        "stop_market",
        "take_limit",
        "take_market",
    ):
        raise invalid("type", "invalid type")
    return None if typ == "all" else typ


def _open_type_filter(p: Mapping[str, Any]) -> str | None:
    typ = get_str(p, "type", default="all")
    if typ not in (
        "all",
        "limit",
        "trigger_all",
        "stop_all",
        "stop_limit",
        "stop_market",
        "take_all",
        "take_limit",
        "take_market",
        "trailing_all",
        "trailing_stop",
    ):
        raise invalid("type", "invalid type")
    return None if typ == "all" else typ


def _match(o: Order, ccy: str | None, kind: str | None, typ: str | None) -> bool:
    return (
        (ccy is None or ccy in o.inst.currencies)
        and (kind is None or o.inst.kind == kind)
        and (typ is None or o.order_type == typ)
    )


def _orders_json(orders: Any, pred: Callable[[Order], bool]) -> list[dict[str, Any]]:
    rows = [o for o in orders if pred(o)]
    rows.sort(key=lambda o: (o.creation_ms, o.order_id))
    return [o.to_json() for o in rows]


def _summary(ex: SimExchange, inst: Any) -> dict[str, Any]:
    """`public/get_book_summary_by_*` entry."""
    t = ex.ticker(inst)
    out: dict[str, Any] = {
        "instrument_name": inst.name,
        "base_currency": inst.currency,
        "quote_currency": inst.quote_currency,
        "volume": t["stats"]["volume"],
        "volume_usd": t["stats"]["volume_usd"],
        "price_change": t["stats"]["price_change"],
        "high": t["stats"]["high"],
        "low": t["stats"]["low"],
        "last": t["last_price"],
        "bid_price": t["best_bid_price"] or None,
        "ask_price": t["best_ask_price"] or None,
        "mid_price": num((t["best_bid_price"] + t["best_ask_price"]) / 2)
        if t["best_bid_price"] and t["best_ask_price"]
        else None,
        "mark_price": t["mark_price"],
        "open_interest": t["open_interest"],
        "creation_timestamp": t["timestamp"],
        "estimated_delivery_price": t["estimated_delivery_price"],
    }
    if inst.is_option:
        out["underlying_price"] = t["underlying_price"]
        out["underlying_index"] = t["underlying_index"]
        out["mark_iv"] = t["mark_iv"]
        out["interest_rate"] = 0
    if inst.perpetual:
        out["current_funding"] = t["current_funding"]
        out["funding_8h"] = t["funding_8h"]
    return out
