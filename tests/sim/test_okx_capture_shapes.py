"""Every capture ccxt recorded from the real OKX, for every method the OKX dialect serves, walked
against the simulator's answer to the same call: the field names, their JSON types (numbers as
strings, booleans as booleans, arrays as arrays) and the envelope. The fixture is derived from
ccxt's `ts/src/test/static/response/okx.json` by `scripts/okx_capture_shapes.py` (its `_source`
names it); inputs on instruments the simulator does not list (LTC, ADA) are asked of the same
kind of instrument it does list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _okx_ccxt import KEY, PASSPHRASE, SECRET, okx_client

from hedgerd.sim.command import Simulator, running_simulator

FIXTURE = json.loads((Path(__file__).parent / "data" / "okx-capture-shapes.json").read_text())
# capture entries whose call the dialect does not serve, with why (every other entry is walked)
NOT_SERVED_ENTRIES = {
    ("fetchBalance", 0): "a funding-account balance: the simulated funding account holds nothing "
    "(everything trades in the unified account), its empty answer is entry 1, walked",
    ("createOrder", 1): "algo order (triggerPrice + stopLoss): trade/order-algo is not simulated",
    ("fetchOpenOrders", 0): "trigger orders: trade/orders-algo-pending is not simulated",
    ("fetchPositions", 1): "account/positions-history is not simulated",
}
LINEAR, INVERSE, SPOT = "BTC-USDT-SWAP", "BTC-USD-SWAP", "BTC-USDT"


def mismatches(want: Any, got: Any, path: str) -> list[str]:
    """Where `got` (the simulator's JSON) lacks a field of the capture shape `want` or carries it
    with another JSON type."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {type(got).__name__}, not an object"]
        out: list[str] = []
        for k, w in want.items():
            if k not in got:
                out.append(f"{path}.{k}: missing")
            else:
                out += mismatches(w, got[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: {type(got).__name__}, not an array"]
        if not want:
            return []
        if not got:
            return [f"{path}: empty, the capture has items"]
        return [m for i, g in enumerate(got) for m in mismatches(want[0], g, f"{path}[{i}]")]
    kind = {str: "str", bool: "bool", int: "num", float: "num", type(None): "null"}[type(got)]
    return [] if kind == want else [f"{path}: {kind}, the capture has {want}"]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        stepped=True, venues=("deribit", "okx"), accounts=[(KEY, SECRET)],
        api_passphrase=PASSPHRASE,
    ) as s:  # fmt: skip
        yield s


async def _answers(ex: Any) -> dict[tuple[str, int], Any]:
    """The simulator's raw answer to each capture entry's call (same method, same kind of
    instrument), after trades that give every list an item."""
    market = {"side": "buy", "ordType": "market", "tdMode": "cross"}
    placed = await ex.private_post_trade_order({"instId": LINEAR, "sz": "1", **market})
    await ex.private_post_trade_order({"instId": INVERSE, "sz": "1", **market})
    await ex.private_post_trade_order(
        {"instId": SPOT, "sz": "0.01", "tgtCcy": "base_ccy", **dict(market, tdMode="cash")}
    )
    book = (await ex.public_get_market_books({"instId": LINEAR, "sz": "5"}))["data"][0]
    far = f"{float(book['bids'][-1][0]) * 0.9:.1f}"
    await ex.private_post_trade_order(
        {"instId": LINEAR, "side": "buy", "ordType": "post_only", "px": far, "sz": "1",
         "tdMode": "cross"}
    )  # fmt: skip
    balance = await ex.private_get_account_balance()
    positions = await ex.private_get_account_positions({"instId": LINEAR})
    return {
        ("createOrder", 0): placed,
        ("fetchBalance", 1): await ex.private_get_asset_balances({"ccy": "TUSD"}),
        ("fetchBalance", 2): balance,
        ("fetchBalance", 3): balance,
        ("fetchTime", 0): await ex.public_get_public_time(),
        ("fetchAccounts", 0): await ex.private_get_account_config(),
        ("fetchOpenOrders", 1): await ex.private_get_trade_orders_pending(
            {"instType": "SWAP", "instId": LINEAR, "limit": "1"}
        ),
        ("fetchClosedOrders", 0): await ex.private_get_trade_orders_history(
            {"instType": "SWAP", "instId": LINEAR, "limit": "1"}
        ),
        ("fetchMyTrades", 0): await ex.private_get_trade_fills({"limit": "1"}),
        ("fetchPositions", 0): positions,
        ("fetchOrderBook", 0): await ex.public_get_market_books({"instId": LINEAR, "sz": "2"}),
        ("fetchOrderBook", 1): await ex.public_get_market_books({"instId": SPOT, "sz": "2"}),
        ("fetchTicker", 0): await ex.public_get_market_ticker({"instId": SPOT}),
        ("fetchOrder", 0): await ex.private_get_trade_order(
            {"instId": LINEAR, "ordId": placed["data"][0]["ordId"]}
        ),
        ("fetchPosition", 0): positions,
        ("fetchPosition", 1): await ex.private_get_account_positions({"instId": INVERSE}),
        ("fetchPosition", 2): await ex.private_get_account_positions({"instId": INVERSE}),
    }


async def test_every_served_capture_matches_the_simulators_answer(sim: Simulator) -> None:
    async with okx_client(sim, load_markets=False) as ex:
        answers = await _answers(ex)
    entries = {
        (m, i): e for m, es in FIXTURE["methods"].items() for i, e in enumerate(es)
    }  # fmt: skip
    # every entry is either walked or named as not served, and nothing is walked twice
    assert set(answers) | set(NOT_SERVED_ENTRIES) == set(entries)
    assert not set(answers) & set(NOT_SERVED_ENTRIES)
    assert len(answers) == 17
    problems = [
        m
        for key, got in answers.items()
        for m in mismatches(entries[key]["shape"], got, f"{key[0]}[{key[1]}]")
    ]
    assert not problems, "\n".join(problems)


def test_the_fixture_names_its_source_and_the_methods_left_out() -> None:
    assert "ccxt/ccxt ts/src/test/static/response/okx.json" in FIXTURE["_source"]
    assert "MIT" in FIXTURE["_source"]
    # methods of the captures whose endpoints the dialect does not serve (system status,
    # candles, deposit addresses, public trades, ledger, transfers, borrow rate, open
    # interest, algo cancels, taker volume)
    assert len(FIXTURE["not_served"]) == 13 and "fetchOHLCV" in FIXTURE["not_served"]


def test_the_comparison_finds_a_number_where_okx_sends_a_string() -> None:
    want = {"code": "str", "data": [{"px": "str", "ok": "bool", "l": []}]}
    assert mismatches(want, {"code": "0", "data": [{"px": "1", "ok": True, "l": []}]}, "r") == []
    assert mismatches(want, {"code": "0", "data": [{"px": 1, "ok": True, "l": []}]}, "r") == [
        "r.data[0].px: num, the capture has str"
    ]
    assert mismatches(want, {"code": "0", "data": []}, "r") == [
        "r.data: empty, the capture has items"
    ]
