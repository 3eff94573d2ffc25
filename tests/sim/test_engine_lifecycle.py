"""Engine: settlement, listing, funding, option flow, linear accounting (priority 4)."""

from __future__ import annotations

from typing import Any

import pytest
from _sim_engine_calls import quiet, to

from hedgerd.sim.deribit.instruments import format_expiry
from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.scenario import Scenario

EXPIRY_5JAN = 1_767_600_000_000  # 2026-01-05T08:00Z, the first daily of the default start


def test_option_settles_in_coin_at_0800_and_new_expiries_list() -> None:
    ex = SimExchange(quiet())
    a = ex.add_account("k", "s")
    name = f"BTC-{format_expiry(EXPIRY_5JAN)}-88000-C"
    r = ex.dispatch("private/buy", {"instrument_name": name, "amount": 2, "type": "market"}, a)
    t = r["trades"][0]
    after_buy = ex.dispatch("private/get_account_summary", {"currency": "BTC"}, a)["balance"]
    # inside the 30-minute window the expiring delta decays in delta_total
    to(ex, EXPIRY_5JAN - 15 * 60_000)
    s = ex.dispatch("private/get_account_summary", {"currency": "BTC"}, a)
    (p,) = ex.dispatch("private/get_positions", {"currency": "BTC"}, a)
    ntd = p["delta"] - 2 * p["mark_price"]
    assert s["delta_total"] == pytest.approx(0.5 * ntd, rel=1e-6)
    assert s["projected_delta_total"] == 0
    to(ex, EXPIRY_5JAN + 5000)
    assert ex.dispatch("private/get_positions", {"currency": "BTC"}, a) == []
    value = ex.settlement_price(ex.catalog.get(name))  # type: ignore[arg-type]
    samples_avg = value  # payoff per coin, in coin
    assert samples_avg > 0
    bal = ex.dispatch("private/get_account_summary", {"currency": "BTC"}, a)["balance"]
    assert bal - after_buy == pytest.approx(2 * value, abs=1e-11)
    pos = ex.dispatch("private/get_position", {"instrument_name": name}, a)
    assert pos["size"] == 0
    assert pos["realized_profit_loss"] == pytest.approx(2 * (value - t["price"]), abs=1e-12)
    expired = ex.dispatch("public/get_instruments", {"currency": "BTC", "expired": True}, None)
    assert name in {i["instrument_name"] for i in expired}
    live = {
        i["instrument_name"]
        for i in ex.dispatch("public/get_instruments", {"currency": "BTC"}, None)
    }
    assert name not in live
    assert any(n.startswith("BTC-8JAN26-") for n in live)  # a new daily was listed
    with pytest.raises(Exception) as e:
        ex.dispatch("private/buy", {"instrument_name": name, "amount": 1, "type": "market"}, a)
    assert getattr(e.value, "code", None) == 10012


def test_open_orders_on_expiring_instrument_are_cancelled() -> None:
    ex = SimExchange(quiet())
    a = ex.add_account("k", "s")
    name = f"BTC-{format_expiry(EXPIRY_5JAN)}-90000-P"
    o = ex.dispatch(
        "private/buy", {"instrument_name": name, "amount": 1, "type": "limit", "price": 0.0001}, a
    )["order"]
    perp = ex.dispatch("public/ticker", {"instrument_name": "BTC-PERPETUAL"}, None)
    gtd = ex.dispatch(
        "private/buy",
        {
            "instrument_name": "BTC-PERPETUAL",
            "amount": 10,
            "type": "limit",
            "price": perp["best_bid_price"] - 5000,
            "time_in_force": "good_til_day",
        },
        a,
    )["order"]
    gtc = ex.dispatch(
        "private/buy",
        {
            "instrument_name": "BTC-PERPETUAL",
            "amount": 10,
            "type": "limit",
            "price": perp["best_bid_price"] - 5000,
        },
        a,
    )["order"]
    to(ex, EXPIRY_5JAN + 5000)
    st = ex.dispatch("private/get_order_state", {"order_id": o["order_id"]}, a)
    assert st["order_state"] == "cancelled" and st["cancel_reason"] == "settlement"
    st = ex.dispatch("private/get_order_state", {"order_id": gtd["order_id"]}, a)
    assert st["order_state"] == "cancelled"
    st = ex.dispatch("private/get_order_state", {"order_id": gtc["order_id"]}, a)
    assert st["order_state"] == "open"


def test_funding_accrues_on_perpetuals() -> None:
    ex = SimExchange(quiet(funding={"premium_mean_bps": 20, "premium_vol_bps": 0}))
    a = ex.add_account("k", "s")
    t = ex.dispatch("public/ticker", {"instrument_name": "BTC-PERPETUAL"}, None)
    assert t["funding_8h"] == pytest.approx(0.002 - 0.00025)
    ex.dispatch(
        "private/buy", {"instrument_name": "BTC-PERPETUAL", "amount": 100_000, "type": "market"}, a
    )
    to(ex, ex.now_ms() + 3_600_000)
    pos = ex.dispatch("private/get_position", {"instrument_name": "BTC-PERPETUAL"}, a)
    expected = -100_000 / 90_000 * 0.00175 / 8
    assert pos["realized_funding"] == pytest.approx(expected, rel=0.05)


def test_linear_perpetual_pnl_in_usdc() -> None:
    ex = SimExchange(quiet(funding={"premium_vol_bps": 0}))
    a = ex.add_account("k", "s")
    usdc0 = ex.dispatch("private/get_account_summary", {"currency": "USDC"}, a)["balance"]
    r1 = ex.dispatch(
        "private/buy",
        {"instrument_name": "BTC_USDC-PERPETUAL", "amount": "0.5", "type": "market"},
        a,
    )
    to(ex, ex.now_ms() + 600_000)
    r2 = ex.dispatch(
        "private/sell",
        {"instrument_name": "BTC_USDC-PERPETUAL", "amount": 0.5, "type": "market"},
        a,
    )
    assert r1["trades"][0]["fee_currency"] == "USDC"
    fees = sum(x["fee"] for x in r1["trades"] + r2["trades"])
    pnl = 0.5 * (r2["order"]["average_price"] - r1["order"]["average_price"])
    usdc1 = ex.dispatch("private/get_account_summary", {"currency": "USDC"}, a)["balance"]
    assert usdc1 - usdc0 == pytest.approx(pnl - fees, abs=1e-8)
    with pytest.raises(Exception) as e:
        ex.dispatch(
            "private/buy",
            {"instrument_name": "BTC_USDC-PERPETUAL", "amount": 0.0005, "type": "market"},
            a,
        )
    assert getattr(e.value, "code", None) == -32602


def test_option_flow_changes_the_market_makers_book() -> None:
    def run() -> tuple[list[Any], int]:
        ex = SimExchange(
            Scenario.model_validate({"seed": 8, "tick_ms": 1000, "flow": {"rate_per_min": 30}})
        )
        mm = ex.account_for_key("sim-mm-key")
        assert mm is not None
        before = ex.dispatch("private/get_positions", {"currency": "BTC", "kind": "option"}, mm)
        to(ex, ex.now_ms() + 600_000)
        after = ex.dispatch("private/get_positions", {"currency": "BTC", "kind": "option"}, mm)
        assert after != before
        trades = ex.dispatch(
            "private/get_user_trades_by_currency", {"currency": "BTC", "count": 1000}, mm
        )["trades"]
        assert trades and all(t["label"] == "sim-flow" for t in trades)
        assert {t["liquidity"] for t in trades} == {"M"}
        return after, ex.flow.count

    a1, n1 = run()
    a2, n2 = run()
    assert a1 == a2 and n1 == n2 and n1 > 100


def test_price_gap_fault_from_scenario() -> None:
    ex = SimExchange(
        quiet(
            faults=[{"after_s": 10, "kind": "price_gap", "params": {"currency": "BTC", "pct": -10}}]
        )
    )
    to(ex, ex.now_ms() + 5000)
    before = ex.index_price("BTC")
    to(ex, ex.now_ms() + 10_000)
    assert ex.index_price("BTC") < before * 0.93
    ex.price_gap("BTC", 5)
    assert ex.admin_state()["index"]["BTC"] == ex.index_price("BTC")
