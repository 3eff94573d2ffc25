"""`POST /sim/admin/accounts/margin`: a venue raises an account's initial margin requirement
while the simulator runs. The account's free margin (OKX `availEq`, Deribit
`available_funds`) falls by the add-on and its maintenance margin stays, as the venues report
them to a real ccxt client; a position-growing order is then refused for funds (OKX 51008,
Deribit 10009) and a reducing one still trades. OKX's unified account modes also judge the
account's own available equity (top-level `availEq`, USD)."""

from __future__ import annotations

from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
from _okx_ccxt import KEY, SECRET, okx_client, okx_simulator
from _sim_ccxt import ccxt_client

from hedgerd.sim.command import Simulator

INV_SWAP = "BTC/USD:BTC"  # BTC-USD-SWAP, 100 USD contracts
PERP = "BTC/USD:BTC"  # Deribit's BTC-PERPETUAL in ccxt's terms


async def _margin(sim: Simulator, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/sim/admin/accounts/margin", json=body) as resp,
    ):
        return resp.status, await resp.json()


def _okx_account_id(sim: Simulator) -> str:
    (acct,) = [a for a in sim.okx.accounts.values() if a.creds.api_key == KEY]
    return str(acct.account_id)


def _deribit_account_id(sim: Simulator) -> str:
    (name,) = [n for n, a in sim.engine.accounts.items() if a.api_key == KEY]
    return str(name)


async def _balance(ex: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """OKX `account/balance`: (the account's figures, BTC's detail)."""
    top = (await ex.privateGetAccountBalance())["data"][0]
    (btc,) = [d for d in top["details"] if d["ccy"] == "BTC"]
    return top, btc


async def test_okx_initial_margin_add_on_lowers_avail_eq_and_refuses_growth() -> None:
    async with okx_simulator() as sim, okx_client(sim) as ex:
        await ex.create_order(INV_SWAP, "market", "buy", 10)
        top0, btc0 = await _balance(ex)
        status, body = await _margin(
            sim,
            {"venue": "okx", "account": _okx_account_id(sim), "currency": "btc",
             "initial_margin_add": 20.0},
        )  # fmt: skip
        assert status == 200, body
        top1, btc1 = await _balance(ex)
        index = sim.okx.index_price("BTC")
        # The currency's free equity fell by the add-on, its equity did not (10 BTC funded).
        assert float(btc1["availEq"]) == pytest.approx(float(btc0["availEq"]) - 20.0)
        assert float(btc1["availEq"]) < 0.0 and body["available"] == pytest.approx(
            float(btc1["availEq"])
        )
        assert float(btc1["eq"]) == pytest.approx(float(btc0["eq"]))
        assert float(btc1["frozenBal"]) == pytest.approx(float(btc0["frozenBal"]) + 20.0)
        # Multi-currency mode: the account's initial margin (USD) carries it, not the
        # maintenance margin.
        assert float(top1["imr"]) == pytest.approx(float(top0["imr"]) + 20.0 * index)
        assert float(top1["mmr"]) == pytest.approx(float(top0["mmr"]))
        assert float(top1["availEq"]) == pytest.approx(float(top0["availEq"]) - 20.0 * index)

        with pytest.raises(ccxt.InsufficientFunds, match="51008"):
            await ex.create_order(INV_SWAP, "market", "buy", 1)  # grows the long
        sold = await ex.create_order(INV_SWAP, "market", "sell", 5)  # shrinks it
        assert sold["id"]
        (pos,) = [p for p in await ex.fetch_positions() if p["contracts"]]
        assert pos["contracts"] == 5 and pos["side"] == "long"

        # Back to 0: the growing order passes again.
        status, body = await _margin(
            sim,
            {"venue": "okx", "account": _okx_account_id(sim), "currency": "BTC",
             "initial_margin_add": 0.0},
        )  # fmt: skip
        assert status == 200 and body["available"] > 0, body
        assert (await ex.create_order(INV_SWAP, "market", "buy", 1))["id"]


async def test_okx_unified_account_judges_the_accounts_available_equity() -> None:
    """The BTC swap's own currency has room, but the account as a whole has none (its USDT
    is tied up): a unified account refuses the growing order; a Futures-mode account
    (`acctLv` 2, margined per currency) takes it."""
    async with okx_simulator() as sim, okx_client(sim) as ex:
        account = _okx_account_id(sim)
        status, body = await _margin(
            sim,
            {"venue": "okx", "account": account, "currency": "USDT",
             "initial_margin_add": 10_000_000.0},
        )  # fmt: skip
        assert status == 200, body
        top, btc = await _balance(ex)
        assert float(btc["availEq"]) > 1.0 and float(top["availEq"]) < 0.0
        with pytest.raises(ccxt.InsufficientFunds, match="51008"):
            await ex.create_order(INV_SWAP, "market", "buy", 1)
        sim.okx.accounts[account].acct_lv = "2"
        assert (await ex.create_order(INV_SWAP, "market", "buy", 1))["id"]


async def test_deribit_initial_margin_add_on_lowers_available_funds_and_refuses_growth() -> None:
    async with okx_simulator() as sim, ccxt_client(sim, KEY, SECRET) as ex:
        await ex.create_order(PERP, "market", "buy", 1_000)
        before = (await ex.privateGetGetAccountSummary({"currency": "BTC"}))["result"]
        status, body = await _margin(
            sim,
            {"account": _deribit_account_id(sim), "currency": "BTC", "initial_margin_add": 50.0},
        )
        assert status == 200, body
        after = (await ex.privateGetGetAccountSummary({"currency": "BTC"}))["result"]
        assert after["available_funds"] == pytest.approx(before["available_funds"] - 50.0)
        assert after["available_funds"] < 0.0 and body["available"] == pytest.approx(
            after["available_funds"]
        )
        assert after["initial_margin"] == pytest.approx(before["initial_margin"] + 50.0)
        assert after["maintenance_margin"] == pytest.approx(before["maintenance_margin"])
        assert after["equity"] == pytest.approx(before["equity"])
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order(PERP, "market", "buy", 100)
        assert (await ex.create_order(PERP, "market", "sell", 500))["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"venue": "okx", "account": "nobody", "currency": "BTC", "initial_margin_add": 1.0},
        {"account": "mm", "currency": "BTC", "initial_margin_add": -1.0},
        {"venue": "bybit", "account": "mm", "currency": "BTC", "initial_margin_add": 1.0},
        {"account": "mm", "currency": "BTC"},
    ],
)
async def test_bad_requests_are_refused(body: dict[str, Any]) -> None:
    async with okx_simulator() as sim:
        status, answer = await _margin(sim, body)
        assert status == 400 and "error" in answer, answer
