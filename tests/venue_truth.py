"""An account's delta as the simulator's engines hold it (the truth a book is checked against),
by hedgerd's two conventions (`book/valuation.py`): coin numeraire `dV/dS - V/S`, USD
numeraire `dV/dS`. Read from the engines directly, never through an adapter.

Exact only in a market with no futures basis and no perpetual premium (then the venues'
option delta, dV/dF, and the book's, dV/dS, coincide, and a swap's mark is the index)."""

from __future__ import annotations

from typing import Any

from hedgerd.sim.command import Simulator
from hedgerd.sim.okx import views
from hedgerd.sim.okx.accounts import OkxAccount


def deribit_truth(sim: Simulator, api_key: str, currency: str = "BTC") -> tuple[float, float]:
    """(coin-numeraire, USD-numeraire) delta of the Deribit account of `api_key`:
    `delta_total` and `delta_total + equity` of its account summary."""
    engine: Any = sim.engine
    acct = engine.account_for_key(api_key)
    s = engine.dispatch(
        "private/get_account_summary", {"currency": currency, "extended": True}, acct
    )
    return float(s["delta_total"]), float(s["delta_total"]) + float(s["equity"])


def okx_account(sim: Simulator, api_key: str) -> OkxAccount:
    """The simulator's OKX account of `api_key`."""
    return next(a for a in sim.okx.accounts.values() if a.creds.api_key == api_key)


def okx_truth(sim: Simulator, acct: OkxAccount, currency: str = "BTC") -> tuple[float, float]:
    """(coin-numeraire, USD-numeraire) delta of an OKX account, from the venue's own figures:
    USD numeraire `deltaPA + eq` (Deribit's `delta_total + equity`); coin numeraire `dV/dS -
    V/S`, which for a linear swap is its coin size less its floating USDT P&L over the index:
    OKX's `deltaPA` counts the contracts' coin alone, so the floating P&L is taken out here
    (the linear swap's realised USDT is cash, outside both)."""
    g = views.account_greeks_json(sim.okx, acct, currency)
    pa = float(g["deltaPA"])
    index = sim.okx.index_price(currency)
    linear_upl_usd = 0.0
    for inst_id, pos in acct.positions.items():
        inst = sim.okx.instruments[inst_id]
        if inst.base == currency and inst.inst_type == "SWAP" and not inst.inverse:
            assert sim.okx.mark_price(inst) == index, "a swap basis: the truth is not exact"
            linear_upl_usd += sim.okx.upl(inst, pos)
    return pa - linear_upl_usd / index, pa + sim.okx.eq(acct, currency)
