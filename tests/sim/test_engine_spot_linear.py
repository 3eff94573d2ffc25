"""Engine: spot pairs (BTC_USDC, ETH_USDC) and USDC linear perpetuals: listing, both balances
moving on a spot trade, spot reserves and funds checks, linear P&L and funding in USDC, and
the ticker's trailing 24 h stats (low <= last <= high, whatever the trades)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from _sim_engine_calls import call, err, quiet, to
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import Account
from hedgerd.sim.scenario import Scenario
from hedgerd.sim.stats import WINDOW_MS, TrailingStats

SPOT_TAKER = 0.001  # a non-zero spot fee, so that the fee's currency and size are checked
EXACT = 1e-9  # settlement-currency tolerance: float noise, never a unit or a fee


def scenario(**extra: Any) -> Scenario:
    """BTC and ETH, quiet, with a spot taker fee."""
    fields: dict[str, Any] = {
        "seed": 31,
        "fees": {"spot_taker": SPOT_TAKER, "spot_maker": 0.0},
        "underlyings": [_btc_only(), _eth_only()],
    }
    return quiet(**(fields | extra))


def balances(ex: SimExchange, acct: Account) -> dict[str, float]:
    s = call(ex, "private/get_account_summaries", acct)
    return {x["currency"]: float(x["balance"]) for x in s["summaries"]}


@pytest.fixture
def ex() -> SimExchange:
    return SimExchange(scenario())


@pytest.fixture
def acct(ex: SimExchange) -> Account:
    return ex.add_account("spot-key", "spot-secret")


def test_spot_pairs_are_listed_under_usdc_and_their_coin(ex: SimExchange) -> None:
    usdc_spot = call(ex, "public/get_instruments", currency="USDC", kind="spot")
    assert [i["instrument_name"] for i in usdc_spot] == ["BTC_USDC", "ETH_USDC"]
    btc_spot = call(ex, "public/get_instruments", currency="BTC", kind="spot")
    assert [i["instrument_name"] for i in btc_spot] == ["BTC_USDC"]
    linear = call(ex, "public/get_instruments", currency="USDC", kind="future")
    assert [i["instrument_name"] for i in linear] == ["BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL"]
    spot = usdc_spot[0]
    assert spot["kind"] == "spot" and spot["base_currency"] == "BTC"
    assert spot["quote_currency"] == spot["counter_currency"] == "USDC"
    assert spot["contract_size"] == spot["min_trade_amount"] == 0.0001  # coin
    assert spot["tick_size"] == 1  # USDC
    assert "settlement_period" not in spot and "settlement_currency" not in spot
    perp = linear[0]
    assert perp["instrument_type"] == "linear" and perp["settlement_currency"] == "USDC"
    assert perp["contract_size"] == 0.001 and perp["settlement_period"] == "perpetual"
    # inverse products stay under their coin only
    assert not [i for i in usdc_spot + linear if i["instrument_type"] == "reversed"]


def test_spot_ticker_marks_at_the_index_and_has_no_settlement(ex: SimExchange) -> None:
    t = call(ex, "public/ticker", instrument_name="BTC_USDC")
    assert t["mark_price"] == t["index_price"] == 90_000
    assert t["best_bid_price"] < t["mark_price"] < t["best_ask_price"]
    assert "settlement_price" not in t and "funding_8h" not in t
    book = call(ex, "public/get_order_book", instrument_name="BTC_USDC", depth=3)
    assert book["asks"][0][0] == t["best_ask_price"]
    # coin sizes in whole steps of 0.0001 BTC
    assert all(abs(a / 0.0001 - round(a / 0.0001)) < 1e-6 for _, a in book["bids"])


def test_a_spot_buy_and_sell_move_both_balances_exactly(ex: SimExchange, acct: Account) -> None:
    b0 = balances(ex, acct)
    buy = call(ex, "private/buy", acct, instrument_name="BTC_USDC", amount=0.75, type="market")
    assert buy["order"]["order_state"] == "filled" and buy["order"]["filled_amount"] == 0.75
    b1 = balances(ex, acct)
    spent = sum(t["amount"] * t["price"] for t in buy["trades"])
    fees = sum(t["fee"] for t in buy["trades"])
    assert all(t["fee_currency"] == "USDC" for t in buy["trades"])
    assert fees == pytest.approx(SPOT_TAKER * spent, abs=EXACT)
    assert b1["BTC"] - b0["BTC"] == pytest.approx(0.75, abs=EXACT)
    assert b1["USDC"] - b0["USDC"] == pytest.approx(-(spent + fees), abs=EXACT)
    assert b1["ETH"] == b0["ETH"]
    # a marketable limit sell at the bid gives coin back for USDC
    bid = call(ex, "public/ticker", instrument_name="BTC_USDC")["best_bid_price"]
    sell = call(
        ex, "private/sell", acct, instrument_name="BTC_USDC", amount=0.3, type="limit", price=bid
    )
    assert sell["order"]["order_state"] == "filled"
    got = sum(t["amount"] * t["price"] for t in sell["trades"])
    sell_fees = sum(t["fee"] for t in sell["trades"])
    b2 = balances(ex, acct)
    assert b2["BTC"] - b1["BTC"] == pytest.approx(-0.3, abs=EXACT)
    assert b2["USDC"] - b1["USDC"] == pytest.approx(got - sell_fees, abs=EXACT)
    # spot has no positions: nothing listed, and asking for one is an error
    assert call(ex, "private/get_positions", acct, currency="USDC") == []
    assert call(ex, "private/get_positions", acct, currency="BTC") == []
    assert err(ex, "private/get_position", acct, instrument_name="BTC_USDC") == -32602
    # the trades are filed under both currencies of the pair
    for ccy in ("BTC", "USDC"):
        rows = call(ex, "private/get_user_trades_by_currency", acct, currency=ccy, count=100)
        assert {t["instrument_name"] for t in rows["trades"]} == {"BTC_USDC"}
    assert rows["trades"][0]["trade_id"].startswith("BTC_USDC-")


def test_spot_orders_hold_what_they_would_spend(ex: SimExchange) -> None:
    acct = ex.add_account("poor", "poor", {"BTC": 0.5, "USDC": 10_000.0})
    usdc = call(ex, "private/get_account_summary", acct, currency="USDC")
    assert usdc["spot_reserve"] == 0 and usdc["available_funds"] == 10_000
    # a resting buy of 0.1 BTC at 80,000 holds 8,000 USDC and the taker fee on it
    buy = call(
        ex, "private/buy", acct, instrument_name="BTC_USDC", amount=0.1, type="limit", price=80_000
    )
    assert buy["order"]["order_state"] == "open"
    usdc = call(ex, "private/get_account_summary", acct, currency="USDC")
    held = 0.1 * 80_000 * (1 + SPOT_TAKER)
    assert usdc["spot_reserve"] == pytest.approx(held, abs=EXACT)
    assert usdc["available_funds"] == pytest.approx(10_000 - held, abs=EXACT)
    assert usdc["balance"] == 10_000 and usdc["initial_margin"] == 0  # held, not spent
    # what is held cannot be spent twice
    assert (
        err(
            ex,
            "private/buy",
            acct,
            instrument_name="BTC_USDC",
            amount=0.03,
            type="limit",
            price=80_000,
        )
        == 10009
    )
    # a sell holds the coin; selling more than is left is refused
    call(
        ex, "private/sell", acct, instrument_name="BTC_USDC", amount=0.4, type="limit", price=99_000
    )
    btc = call(ex, "private/get_account_summary", acct, currency="BTC")
    assert btc["spot_reserve"] == pytest.approx(0.4, abs=EXACT)
    assert btc["available_funds"] == pytest.approx(0.1, abs=EXACT)
    assert (
        err(ex, "private/sell", acct, instrument_name="BTC_USDC", amount=0.2, type="market")
        == 10009
    )
    # a market buy is checked at the top of the price band (0.022 BTC would fit at the
    # mark, 90,000, but not at 94,500), so walking the book cannot overdraw
    assert (
        err(ex, "private/buy", acct, instrument_name="BTC_USDC", amount=0.022, type="market")
        == 10009
    )
    # an edit must still be covered; a refused one leaves the order and what it holds
    oid = buy["order"]["order_id"]
    assert err(ex, "private/edit", acct, order_id=oid, amount=0.13, price=80_000) == 10009
    o = call(ex, "private/get_order_state", acct, order_id=oid)
    assert (o["order_state"], o["amount"], o["price"]) == ("open", 0.1, 80_000)
    usdc = call(ex, "private/get_account_summary", acct, currency="USDC")
    assert usdc["spot_reserve"] == pytest.approx(held, abs=EXACT)
    call(ex, "private/edit", acct, order_id=oid, amount=0.12, price=80_000)
    usdc = call(ex, "private/get_account_summary", acct, currency="USDC")
    assert usdc["spot_reserve"] == pytest.approx(0.12 * 80_000 * (1 + SPOT_TAKER), abs=EXACT)
    # cancelling releases everything held
    call(ex, "private/cancel_all", acct)
    for ccy in ("BTC", "USDC"):
        s = call(ex, "private/get_account_summary", acct, currency=ccy)
        assert s["spot_reserve"] == 0 and s["available_funds"] == s["balance"]


def test_a_resting_spot_order_fills_when_the_market_crosses_it(ex: SimExchange) -> None:
    acct = ex.add_account("maker", "maker")
    t = call(ex, "public/ticker", instrument_name="BTC_USDC")
    price = t["best_ask_price"] + 40  # buy above the ask: fills at once, as a taker
    r = call(
        ex, "private/buy", acct, instrument_name="BTC_USDC", amount=0.01, type="limit", price=price
    )
    assert r["order"]["order_state"] == "filled"
    b0 = balances(ex, acct)
    low = t["best_bid_price"] - 500
    r = call(
        ex, "private/buy", acct, instrument_name="BTC_USDC", amount=0.02, type="limit", price=low
    )
    oid = r["order"]["order_id"]
    ex.price_gap("BTC", -3.0)  # the market falls through the bid
    to(ex, ex.now_ms() + 15_000)
    o = call(ex, "private/get_order_state", acct, order_id=oid)
    assert o["order_state"] == "filled" and o["average_price"] == low
    b1 = balances(ex, acct)
    assert b1["BTC"] - b0["BTC"] == pytest.approx(0.02, abs=EXACT)
    assert b1["USDC"] - b0["USDC"] == pytest.approx(-0.02 * low, abs=EXACT)  # maker fee 0
    usdc = call(ex, "private/get_account_summary", acct, currency="USDC")
    assert usdc["spot_reserve"] == 0


def test_linear_perpetual_pnl_and_funding_are_usdc() -> None:
    """Open, hold through funding, close: the USDC balance moves by exactly the trades' P&L,
    less fees, plus the funding the position reports; the coin balances do not move."""
    ex = SimExchange(scenario(funding={"premium_vol_bps": 0, "premium_mean_bps": 10}))
    acct = ex.add_account("lin", "lin")
    b0 = balances(ex, acct)
    name = "BTC_USDC-PERPETUAL"
    buy = call(ex, "private/buy", acct, instrument_name=name, amount=0.25, type="market")
    to(ex, ex.now_ms() + 2 * 3_600_000)
    mid = call(ex, "private/get_position", acct, instrument_name=name)
    assert mid["size"] == 0.25 and mid["size_currency"] == 0.25  # coin
    assert mid["kind"] == "future" and mid["direction"] == "buy"
    sell = call(ex, "private/sell", acct, instrument_name=name, amount=0.25, type="market")
    pos = call(ex, "private/get_position", acct, instrument_name=name)
    assert pos["size"] == 0
    trades = buy["trades"] + sell["trades"]
    assert {t["fee_currency"] for t in trades} == {"USDC"}
    pnl = sum(t["amount"] * t["price"] for t in sell["trades"]) - sum(
        t["amount"] * t["price"] for t in buy["trades"]
    )
    fees = sum(t["fee"] for t in trades)
    assert fees == pytest.approx(0.0005 * sum(t["amount"] * t["price"] for t in trades), abs=EXACT)
    funding = pos["realized_funding"]
    # a long pays a positive rate: about size * index * 8h-rate * (2h / 8h)
    rate = call(ex, "public/get_funding_rate_value", instrument_name=name)
    assert funding < 0
    assert -funding == pytest.approx(0.25 * 90_000 * rate * 2 / 8, rel=0.05)
    assert pos["realized_profit_loss"] == pytest.approx(pnl, abs=EXACT)
    b1 = balances(ex, acct)
    assert b1["USDC"] - b0["USDC"] == pytest.approx(pnl - fees + funding, abs=EXACT)
    assert (b1["BTC"], b1["ETH"]) == (b0["BTC"], b0["ETH"])


# ------------------------------------------------------------------ trailing 24 h stats


@st.composite
def trade_tapes(draw: st.DrawFn) -> list[tuple[int, float, float]]:
    """(gap ms since the previous trade, price, size) rows: bursts, and gaps over a day."""
    n = draw(st.integers(0, 40))
    gaps = st.one_of(st.integers(0, 60_000), st.integers(0, 2 * WINDOW_MS))
    return [
        (
            draw(gaps),
            draw(st.floats(1.0, 200_000.0, allow_nan=False)),
            draw(st.floats(0.0001, 50.0, allow_nan=False)),
        )
        for _ in range(n)
    ]


@settings(max_examples=300)
@given(
    tape=trade_tapes(),
    mark=st.floats(1.0, 200_000.0, allow_nan=False),
    later=st.integers(0, 2 * WINDOW_MS),
)
def test_trailing_stats_match_a_brute_force_window(
    tape: list[tuple[int, float, float]], mark: float, later: int
) -> None:
    stats = TrailingStats()
    t = 1_767_571_200_000
    seen: list[tuple[int, float, float]] = []
    for gap, price, size in tape:
        t += gap
        stats.add(t, price, size, size * price)
        seen.append((t, price, size))
        _check_window(stats, seen, t, mark)
    _check_window(stats, seen, t + later, mark)


def _check_window(
    stats: TrailingStats, seen: list[tuple[int, float, float]], now: int, mark: float
) -> None:
    v = stats.view(now, mark)
    last = seen[-1][1] if seen else mark
    inside = [(p, s) for t, p, s in seen if t > now - WINDOW_MS]
    assert v.last == last
    assert v.low <= v.last <= v.high
    assert v.high == max([last] + [p for p, _ in inside])
    assert v.low == min([last] + [p for p, _ in inside])
    assert v.volume == pytest.approx(sum(s for _, s in inside), rel=1e-9, abs=1e-9)
    assert v.volume_usd == pytest.approx(sum(s * p for p, s in inside), rel=1e-9, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["BTC_USDC", "BTC-PERPETUAL", "BTC_USDC-PERPETUAL"]),
            st.sampled_from(["buy", "sell"]),
            st.integers(1, 40),  # in steps of the instrument's contract
            st.sampled_from([0, 15_000, 600_000, 6 * 3_600_000]),
            st.floats(-4.0, 4.0),  # index gap, percent, before the trade
        ),
        max_size=12,
    )
)
def test_ticker_low_last_high_hold_through_trading(
    steps: list[tuple[str, str, int, int, float]],
) -> None:
    """Whatever is traded, when, and however the market jumps: each instrument's ticker
    keeps `stats.low <= last_price <= stats.high`, and its volume is that of the trades of
    the last 24 hours."""
    ex = SimExchange(scenario(tick_ms=60_000, underlyings=[_btc_only()]))
    acct = ex.add_account("p", "p", {"BTC": 1_000.0, "USDC": 100_000_000.0})
    fills: dict[str, list[tuple[int, float, float]]] = {}
    for name, side, n, wait, gap in steps:
        if wait:
            to(ex, ex.now_ms() + wait)
        if gap:
            ex.price_gap("BTC", gap)
        amount = n * ex.lookup({"instrument_name": name}).contract_size
        r = call(ex, f"private/{side}", acct, instrument_name=name, amount=amount, type="market")
        for t in r["trades"]:
            fills.setdefault(name, []).append((t["timestamp"], t["price"], t["amount"]))
        for inst in ("BTC_USDC", "BTC-PERPETUAL", "BTC_USDC-PERPETUAL"):
            tk = call(ex, "public/ticker", instrument_name=inst)
            s = tk["stats"]
            assert s["low"] <= tk["last_price"] <= s["high"], (inst, tk)
            rows = [f for f in fills.get(inst, []) if f[0] > ex.now_ms() - WINDOW_MS]
            if inst == "BTC-PERPETUAL":  # USD amounts: volume in coin, volume_usd the amount
                want, want_usd = sum(a / p for _, p, a in rows), sum(a for _, _, a in rows)
            else:
                want, want_usd = sum(a for _, _, a in rows), sum(a * p for _, p, a in rows)
            assert s["volume"] == pytest.approx(want, rel=1e-9, abs=1e-12)
            assert s["volume_usd"] == pytest.approx(want_usd, rel=1e-9, abs=1e-9)
            if rows:
                assert tk["last_price"] == rows[-1][1]
                assert s["high"] >= max(p for _, p, _ in rows)
                assert s["low"] <= min(p for _, p, _ in rows)
            assert math.isfinite(s["high"]) and s["low"] > 0


def _btc_only() -> dict[str, Any]:
    return {"currency": "BTC", "spot": 90_000, "vol": 0.3, "jumps": {"intensity_per_day": 0}}


def _eth_only() -> dict[str, Any]:
    return {"currency": "ETH", "spot": 3_000, "vol": 0.5, "jumps": {"intensity_per_day": 0}}
