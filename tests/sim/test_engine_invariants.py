"""Engine: accounting invariants under random trading (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.scenario import Scenario

trades = st.lists(
    st.tuples(st.booleans(), st.integers(1, 50), st.integers(1, 30)), min_size=1, max_size=12
)


@settings(max_examples=40, deadline=None)
@given(
    seq=trades, instrument=st.sampled_from(["BTC-PERPETUAL", "BTC-27MAR26", "BTC_USDC-PERPETUAL"])
)
def test_trades_between_two_accounts_are_zero_sum(
    seq: list[tuple[bool, int, int]], instrument: str
) -> None:
    """Whatever they trade with each other, the two accounts' equity (balance + floating
    P&L at the same mark) only changes by the fees they paid."""
    ex = SimExchange(Scenario(seed=1, accounts=[]))
    a = ex.add_account("a", "a")
    b = ex.add_account("b", "b")
    inst = ex.catalog.get(instrument)
    assert inst is not None
    ccy = inst.settlement_currency
    step = inst.contract_size

    def equity() -> float:
        return sum(
            float(ex.dispatch("private/get_account_summary", {"currency": ccy}, x)["equity"])
            for x in (a, b)
        )

    start = equity()
    fees = 0.0
    for a_buys, lots, ticks_in in seq:
        t = ex.dispatch("public/ticker", {"instrument_name": instrument}, None)
        bid, ask = t["best_bid_price"], t["best_ask_price"]
        n_ticks = round((ask - bid) / inst.tick_size)
        if n_ticks < 2:
            continue
        price = round(bid + inst.tick_size * (1 + ticks_in % (n_ticks - 1)), 10)
        amount = round(lots * step, 10)
        maker_side = "private/sell" if a_buys else "private/buy"
        taker_side = "private/buy" if a_buys else "private/sell"
        r1 = ex.dispatch(
            maker_side,
            {
                "instrument_name": instrument,
                "amount": amount,
                "type": "limit",
                "price": price,
                "post_only": True,
            },
            b,
        )
        assert r1["order"]["price"] == price and not r1["trades"]
        r2 = ex.dispatch(
            taker_side,
            {"instrument_name": instrument, "amount": amount, "type": "limit", "price": price},
            a,
        )
        assert r2["order"]["order_state"] == "filled"
        assert [x["price"] for x in r2["trades"]] == [price]
        fees += sum(x["fee"] for x in r2["trades"])
        st_b = ex.dispatch("private/get_order_state", {"order_id": r1["order"]["order_id"]}, b)
        assert st_b["order_state"] == "filled"
        fees += float(st_b["commission"])
    pa = ex.dispatch("private/get_position", {"instrument_name": instrument}, a)["size"]
    pb = ex.dispatch("private/get_position", {"instrument_name": instrument}, b)["size"]
    assert pa == -pb
    assert equity() + fees == pytest.approx(start, rel=1e-12, abs=1e-9)
