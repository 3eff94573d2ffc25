"""Engine: orders, matching, accounts and inverse accounting (issue 3, priority 2)."""

from __future__ import annotations

from typing import Any

import pytest
from _sim_engine_calls import call, err

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import Account, DeribitError
from hedgerd.sim.scenario import Scenario


@pytest.fixture
def ex() -> SimExchange:
    return SimExchange(Scenario(seed=11, accounts=[]))


@pytest.fixture
def acct(ex: SimExchange) -> Account:
    return ex.add_account("key-1", "secret-1")


def btc(ex: SimExchange, acct: Account) -> float:
    return float(call(ex, "private/get_account_summary", acct, currency="BTC")["balance"])


def test_new_account_is_funded(ex: SimExchange, acct: Account) -> None:
    s = call(ex, "private/get_account_summaries", acct)
    bal = {x["currency"]: x["balance"] for x in s["summaries"]}
    assert bal == {"BTC": 10, "ETH": 100, "USDC": 100_000}
    assert call(ex, "private/get_positions", acct, currency="BTC") == []
    assert ex.account_for_key("key-1") == acct
    assert ex.account_for_key("nope") is None


def test_inverse_round_trip_is_exact(ex: SimExchange, acct: Account) -> None:
    before = btc(ex, acct)
    r1 = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=1000,
        type="market",
        label="open",
    )
    assert r1["order"]["order_state"] == "filled" and r1["order"]["label"] == "open"
    ex.clock.advance(3_600_000)
    ex.advance_to(ex.now_ms())
    r2 = call(
        ex,
        "private/sell",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount="1000",
        type="market",
        reduce_only="true",
    )
    fees = sum(t["fee"] for t in r1["trades"] + r2["trades"])
    # entry/exit are the harmonic averages of the fills (what Deribit reports)
    entry = r1["order"]["average_price"]
    exit_ = r2["order"]["average_price"]
    assert entry != exit_
    expected = 1000 * (1 / entry - 1 / exit_) - fees
    funding = call(ex, "private/get_position", acct, instrument_name="BTC-PERPETUAL")[
        "realized_funding"
    ]
    assert btc(ex, acct) - before == pytest.approx(expected + funding, abs=1e-11)
    pos = call(ex, "private/get_position", acct, instrument_name="BTC-PERPETUAL")
    assert pos["size"] == 0 and pos["direction"] == "zero"
    assert pos["realized_profit_loss"] == pytest.approx(1000 * (1 / entry - 1 / exit_), abs=1e-12)
    assert fees == pytest.approx(1000 / entry * 0.0005 + 1000 / exit_ * 0.0005)


def test_inverse_round_trip_without_funding_exact() -> None:
    ex = SimExchange(
        Scenario.model_validate({"seed": 5, "accounts": [], "funding": {"premium_vol_bps": 0}})
    )
    a = ex.add_account("k", "s")
    before = btc(ex, a)
    r1 = call(ex, "private/buy", a, instrument_name="BTC-PERPETUAL", amount=50_000, type="market")
    assert len(r1["trades"]) > 1  # walked several levels
    ex.clock.advance(600_000)
    ex.advance_to(ex.now_ms())
    r2 = call(ex, "private/sell", a, instrument_name="BTC-PERPETUAL", amount=50_000, type="market")
    fees = sum(t["fee"] for t in r1["trades"] + r2["trades"])
    entry, exit_ = r1["order"]["average_price"], r2["order"]["average_price"]
    assert btc(ex, a) - before == pytest.approx(50_000 * (1 / entry - 1 / exit_) - fees, abs=1e-12)


def test_position_fields(ex: SimExchange, acct: Account) -> None:
    call(ex, "private/sell", acct, instrument_name="BTC-PERPETUAL", amount=2000, type="market")
    (p,) = call(ex, "private/get_positions", acct, currency="BTC", kind="future")
    assert p["direction"] == "sell" and p["size"] == -2000
    assert p["size_currency"] == pytest.approx(-2000 / p["mark_price"])
    assert p["delta"] == pytest.approx(p["size_currency"])
    s = call(ex, "private/get_account_summary", acct, currency="BTC", extended="true")
    assert s["delta_total"] == pytest.approx(p["delta"])
    assert s["equity"] == pytest.approx(s["balance"] + p["floating_profit_loss"])
    assert s["initial_margin"] > 0 and s["available_funds"] < s["equity"]


def test_option_premium_and_fee_in_coin(ex: SimExchange, acct: Account) -> None:
    inst = next(
        i
        for i in call(ex, "public/get_instruments", currency="BTC", kind="option")
        if i["option_type"] == "call" and i["strike"] == 90_000
    )
    name = inst["instrument_name"]
    before = btc(ex, acct)
    r = call(ex, "private/buy", acct, instrument_name=name, amount=1.5, type="market")
    (t,) = r["trades"]
    assert t["fee_currency"] == "BTC" and "iv" in t and "underlying_price" in t
    assert t["fee"] == pytest.approx(min(0.0003 * 1.5, 0.125 * t["price"] * 1.5))
    assert btc(ex, acct) - before == pytest.approx(-1.5 * t["price"] - t["fee"], abs=1e-12)
    (p,) = call(ex, "private/get_positions", acct, currency="BTC", kind="option")
    assert p["size"] == 1.5 and p["average_price"] == t["price"]
    tick = call(ex, "public/ticker", instrument_name=name)
    assert p["delta"] == pytest.approx(1.5 * tick["greeks"]["delta"], rel=1e-4)
    assert p["gamma"] > 0 and p["vega"] > 0 and p["theta"] < 0
    s = call(ex, "private/get_account_summary", acct, currency="BTC")
    assert s["options_value"] == pytest.approx(1.5 * p["mark_price"])
    assert s["options_delta"] == pytest.approx(p["delta"])
    # net transaction delta: BS delta minus the premium in coin
    assert s["delta_total"] == pytest.approx(p["delta"] - 1.5 * p["mark_price"], rel=1e-6)
    # selling it back: the balance moves by the premium received less the fee
    mid = btc(ex, acct)
    r2 = call(ex, "private/sell", acct, instrument_name=name, amount=1.5, type="market")
    (t2,) = r2["trades"]
    assert btc(ex, acct) - mid == pytest.approx(1.5 * t2["price"] - t2["fee"], abs=1e-12)


def test_limit_order_rests_then_cancels(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    px = t["best_bid_price"] - 50
    r = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=100,
        type="limit",
        price=px,
        label="hedge-1",
        post_only=True,
    )
    o = r["order"]
    assert o["order_state"] == "open" and r["trades"] == [] and o["price"] == px
    book = call(ex, "public/get_order_book", instrument_name="BTC-PERPETUAL", depth=20)
    assert any(p == px and a >= 100 for p, a in book["bids"])
    opens = call(ex, "private/get_open_orders_by_currency", acct, currency="BTC")
    assert [x["order_id"] for x in opens] == [o["order_id"]]
    by_label = call(ex, "private/get_open_orders_by_label", acct, currency="BTC", label="hedge-1")
    assert len(by_label) == 1
    st = call(ex, "private/get_order_state_by_label", acct, currency="BTC", label="hedge-1")
    assert st[0]["order_id"] == o["order_id"]
    c = call(ex, "private/cancel", acct, order_id=o["order_id"])
    assert c["order_state"] == "cancelled" and c["cancel_reason"] == "user_request"
    assert (
        call(ex, "private/get_order_state", acct, order_id=o["order_id"])["order_state"]
        == "cancelled"
    )
    assert err(ex, "private/cancel", acct, order_id=o["order_id"]) == 11044
    assert err(ex, "private/cancel", acct, order_id="123") == 10004


def test_post_only_crossing(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    ask = t["best_ask_price"]
    assert (
        err(
            ex,
            "private/buy",
            acct,
            instrument_name="BTC-PERPETUAL",
            amount=10,
            type="limit",
            price=ask + 10,
            post_only=True,
            reject_post_only=True,
        )
        == 11054
    )
    r = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=10,
        type="limit",
        price=ask + 10,
        post_only=True,
    )
    assert r["order"]["order_state"] == "open" and r["order"]["price"] == ask - 0.5


def test_ioc_fok_and_partial_fills(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    ask, ask_amt = t["best_ask_price"], t["best_ask_amount"]
    r = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=ask_amt + 1000,
        type="limit",
        price=ask,
        time_in_force="immediate_or_cancel",
    )
    assert r["order"]["order_state"] == "cancelled"
    assert r["order"]["filled_amount"] == ask_amt
    r = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=10_000_000,
        type="limit",
        price=ask,
        time_in_force="fill_or_kill",
    )
    assert r["order"]["order_state"] == "cancelled" and r["trades"] == []
    # GTC partial: fills what is at the price and rests the rest
    b = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    r = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=b["best_ask_amount"] + 500,
        type="limit",
        price=b["best_ask_price"],
    )
    assert r["order"]["order_state"] == "open"
    assert r["order"]["filled_amount"] == b["best_ask_amount"]
    assert (
        len(
            call(ex, "private/get_user_trades_by_currency", acct, currency="BTC", count=100)[
                "trades"
            ]
        )
        == 2
    )


def test_level_refills_over_time(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=t["best_ask_amount"],
        type="market",
    )
    depleted = call(ex, "public/get_order_book", instrument_name="BTC-PERPETUAL", depth=1)
    assert depleted["asks"][0][0] > t["best_ask_price"]
    ex.clock.advance(11_000)  # refill_s = 10
    ex.advance_to(ex.now_ms())
    after = call(ex, "public/get_order_book", instrument_name="BTC-PERPETUAL", depth=1)
    assert after["asks"][0][1] == t["best_ask_amount"]


def test_reduce_only(ex: SimExchange, acct: Account) -> None:
    assert (
        err(
            ex,
            "private/sell",
            acct,
            instrument_name="BTC-PERPETUAL",
            amount=10,
            type="market",
            reduce_only=True,
        )
        == 11098
    )
    call(ex, "private/buy", acct, instrument_name="BTC-PERPETUAL", amount=100, type="market")
    r = call(
        ex,
        "private/sell",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=500,
        type="market",
        reduce_only=True,
    )
    assert r["order"]["filled_amount"] == 100
    assert call(ex, "private/get_positions", acct, currency="BTC") == []


def test_close_position(ex: SimExchange, acct: Account) -> None:
    call(ex, "private/sell", acct, instrument_name="ETH-PERPETUAL", amount=37, type="market")
    r = call(ex, "private/close_position", acct, instrument_name="ETH-PERPETUAL", type="market")
    assert r["order"]["direction"] == "buy" and r["order"]["filled_amount"] == 37
    assert r["trades"][0]["trade_id"].startswith("ETH-")


def test_edit(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    o = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=100,
        type="limit",
        price=t["best_bid_price"] - 100,
    )["order"]
    r = call(
        ex, "private/edit", acct, order_id=o["order_id"], amount=200, price=t["best_bid_price"] - 50
    )
    assert r["order"]["order_id"] == o["order_id"] and r["order"]["replaced"] is True
    assert r["order"]["amount"] == 200 and r["order"]["price"] == t["best_bid_price"] - 50
    r = call(
        ex, "private/edit", acct, order_id=o["order_id"], amount=200, price=t["best_ask_price"]
    )
    assert r["order"]["order_state"] == "filled" and r["trades"]


def test_cancel_variants(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    e = call(ex, "public/ticker", instrument_name="ETH-PERPETUAL")
    for i in range(3):
        call(
            ex,
            "private/buy",
            acct,
            instrument_name="BTC-PERPETUAL",
            amount=10,
            type="limit",
            price=t["best_bid_price"] - 10 * (i + 1),
            label=f"b{i % 2}",
        )
    call(
        ex,
        "private/buy",
        acct,
        instrument_name="ETH-PERPETUAL",
        amount=1,
        type="limit",
        price=round(e["best_bid_price"] - 5, 2),
        label="e",
    )
    assert call(ex, "private/cancel_by_label", acct, label="b1") == 1
    assert call(ex, "private/cancel_all_by_instrument", acct, instrument_name="BTC-PERPETUAL") == 2
    assert call(ex, "private/cancel_all_by_currency", acct, currency="ETH") == 1
    call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=10,
        type="limit",
        price=t["best_bid_price"] - 10,
    )
    assert call(ex, "private/cancel_all", acct) == 1
    assert ex.cancel_all_for_account(acct.account_id) == 0


def test_resting_order_fills_when_market_trades_through() -> None:
    ex = SimExchange(
        Scenario.model_validate(
            {
                "seed": 2,
                "accounts": [],
                "underlyings": [{"currency": "BTC", "spot": 90000, "vol": 2.0}],
            }
        )
    )
    a = ex.add_account("k", "s")
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    buy = call(
        ex,
        "private/buy",
        a,
        instrument_name="BTC-PERPETUAL",
        amount=10,
        type="limit",
        price=t["best_bid_price"] - 20,
    )["order"]
    sell = call(
        ex,
        "private/sell",
        a,
        instrument_name="BTC-PERPETUAL",
        amount=10,
        type="limit",
        price=t["best_ask_price"] + 20,
    )["order"]
    states = set()
    for _ in range(600):
        ex.clock.advance(1_000)
        ex.advance_to(ex.now_ms())
        states = {
            call(ex, "private/get_order_state", a, order_id=o["order_id"])["order_state"]
            for o in (buy, sell)
        }
        if "open" not in states:
            break
    assert "filled" in states
    tr = call(ex, "private/get_user_trades_by_currency", a, currency="BTC")["trades"]
    assert tr and all(x["liquidity"] == "M" for x in tr)


def test_two_accounts_trade_with_each_other(ex: SimExchange, acct: Account) -> None:
    other = ex.add_account("key-2", "secret-2")
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    px = t["best_ask_price"] - 0.5
    maker = call(
        ex,
        "private/sell",
        other,
        instrument_name="BTC-PERPETUAL",
        amount=30,
        type="limit",
        price=px,
        post_only=True,
    )["order"]
    r = call(ex, "private/buy", acct, instrument_name="BTC-PERPETUAL", amount=30, type="market")
    assert r["trades"][0]["price"] == px and r["trades"][0]["liquidity"] == "T"
    st = call(ex, "private/get_order_state", other, order_id=maker["order_id"])
    assert st["order_state"] == "filled"
    assert err(ex, "private/get_order_state", acct, order_id=maker["order_id"]) == 10004


def test_bad_orders_get_deribit_errors(ex: SimExchange, acct: Account) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    p = t["best_bid_price"] - 100
    bad = [
        (dict(instrument_name="BTC-PERPETUAL", amount=15, type="limit", price=p), -32602),
        (dict(instrument_name="BTC-NOPE", amount=10, type="limit", price=p), -32602),
        (dict(instrument_name="BTC-1JAN27-100000-C", amount=1, type="market"), 10020),
        (dict(instrument_name="BTC-PERPETUAL", amount=10, type="limit", price=p + 0.25), 10043),
        (dict(instrument_name="BTC-PERPETUAL", amount=10, type="limit"), -32602),
        (dict(instrument_name="BTC-PERPETUAL", amount="ten", type="limit", price=p), -32602),
        (
            dict(
                instrument_name="BTC-PERPETUAL", amount=10, type="limit", price=p, post_only="maybe"
            ),
            -32602,
        ),
        (dict(instrument_name="BTC-PERPETUAL", amount=-10, type="limit", price=p), -32602),
        (dict(instrument_name="BTC-PERPETUAL", amount=10, type="limit", price=-5), -32602),
    ]
    for params, code in bad:
        assert err(ex, "private/buy", acct, **params) == code, params
    r = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=10,
        type="limit",
        price=round(t["mark_price"] * 1.5),
    )
    assert r["order"]["price"] == t["max_price"]  # clamped to the band, as on Deribit
    assert (
        err(
            ex,
            "private/buy",
            acct,
            instrument_name="BTC-PERPETUAL",
            amount=100_000_000,
            type="market",
        )
        == 10009
    )
    assert (
        err(
            ex,
            "private/buy",
            acct,
            instrument_name="BTC-PERPETUAL",
            amount=10,
            type="stop_limit",
            price=p,
        )
        == -32602
    )
    assert (
        err(ex, "private/buy", None, instrument_name="BTC-PERPETUAL", amount=10, type="market")
        == 13009
    )


def test_trades_and_history_queries(ex: SimExchange, acct: Account) -> None:
    for _ in range(3):
        call(ex, "private/buy", acct, instrument_name="BTC-PERPETUAL", amount=10, type="market")
        ex.clock.advance(1000)
    r = call(ex, "private/get_user_trades_by_currency", acct, currency="BTC", count=2)
    assert len(r["trades"]) == 2 and r["has_more"] is True
    asc = call(ex, "private/get_user_trades_by_currency", acct, currency="BTC", sorting="asc")
    assert [x["timestamp"] for x in asc["trades"]] == sorted(x["timestamp"] for x in asc["trades"])
    by_inst = call(
        ex, "private/get_user_trades_by_instrument", acct, instrument_name="BTC-PERPETUAL"
    )
    assert len(by_inst["trades"]) == 3
    hist = call(ex, "private/get_order_history_by_currency", acct, currency="BTC")
    assert len(hist) == 3 and all(o["order_state"] == "filled" for o in hist)


def test_same_seed_same_requests_same_results() -> None:
    def run() -> list[Any]:
        ex = SimExchange(Scenario(seed=99))
        a = ex.add_account("k", "s")
        mm = ex.account_for_key("sim-mm-key")
        out: list[Any] = []
        for i in range(30):
            ex.clock.advance(20_000)
            ex.advance_to(ex.now_ms())
            side = "private/buy" if i % 2 else "private/sell"
            out.append(
                ex.dispatch(
                    side, {"instrument_name": "BTC-PERPETUAL", "amount": 100, "type": "market"}, a
                )
            )
        out.append(ex.dispatch("private/get_account_summary", {"currency": "BTC"}, mm))
        out.append(ex.dispatch("private/get_positions", {}, mm))
        out.append(
            ex.dispatch(
                "private/get_user_trades_by_currency", {"currency": "BTC", "count": 1000}, mm
            )
        )
        return out

    assert run() == run()


def test_open_orders_hold_margin(ex: SimExchange, acct: Account) -> None:
    def im() -> float:
        return float(
            call(ex, "private/get_account_summary", acct, currency="BTC")["initial_margin"]
        )

    t = call(ex, "public/ticker", instrument_name="BTC-PERPETUAL")
    px = t["best_bid_price"] - 100
    o = call(
        ex,
        "private/buy",
        acct,
        instrument_name="BTC-PERPETUAL",
        amount=90_000,
        type="limit",
        price=px,
    )["order"]
    assert im() == pytest.approx(90_000 / px * 0.02)
    call(ex, "private/cancel", acct, order_id=o["order_id"])
    assert im() == 0
    # an account cannot rest more than its equity allows
    with pytest.raises(DeribitError) as e:
        for _ in range(10):
            call(
                ex,
                "private/buy",
                acct,
                instrument_name="BTC-PERPETUAL",
                amount=10_000_000,
                type="limit",
                price=px,
            )
    assert e.value.code == 10009


def test_equity_plus_delta_total_is_the_usd_delta(ex: SimExchange, acct: Account) -> None:
    """Deribit's rule: the USD value of the account moves with the index by
    equity + delta_total (coin). Checked by bumping the index."""
    opts = call(ex, "public/get_instruments", currency="BTC", kind="option")
    daily = min(o["expiration_timestamp"] for o in opts)
    near = [o for o in opts if o["expiration_timestamp"] == daily]
    call_opt = min(near, key=lambda o: abs(o["strike"] - 91_000) + (o["option_type"] != "call"))
    put_opt = min(near, key=lambda o: abs(o["strike"] - 89_000) + (o["option_type"] != "put"))
    call(
        ex,
        "private/buy",
        acct,
        instrument_name=call_opt["instrument_name"],
        amount=3,
        type="market",
    )
    call(
        ex,
        "private/sell",
        acct,
        instrument_name=put_opt["instrument_name"],
        amount=2,
        type="market",
    )
    call(ex, "private/sell", acct, instrument_name="BTC-PERPETUAL", amount=50_000, type="market")

    def usd_value() -> tuple[float, float, float]:
        s = call(ex, "private/get_account_summary", acct, currency="BTC")
        idx = ex.index_price("BTC")
        return s["equity"] * idx, idx, s["equity"] + s["delta_total"]

    v0, s0, d0 = usd_value()
    ex.price_gap("BTC", 0.01)
    v1, s1, d1 = usd_value()
    assert (v1 - v0) / (s1 - s0) == pytest.approx((d0 + d1) / 2, rel=2e-3)
