"""Thin adapter: the GreeksBook's `UnderlyingGreeks` -> the controller's `UnderlyingRisk`.

The book reports the total delta and, inside the settlement window, a projected delta that
leaves the settling expiry out; the controller instead takes the total plus the settling part
(`expiring_delta_coin`) and decays that part linearly over its `settlement_window_s`, as the
settlement average fixes. The representative time to expiry is the |gamma|-weighted expiry of
the book's buckets; the representative vol is the caller's (e.g. the ATM mark IV).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from hedgerd.book.greeks_book import NO_EXPIRY, UnderlyingGreeks
from hedgerd.hedging.inputs import UnderlyingRisk

MS_PER_YEAR = 365.0 * 86_400_000.0


def risk_from_book(
    ug: UnderlyingGreeks,
    numeraire: Literal["usd", "coin"],
    vol: float,
    rate: float = 0.0,
) -> UnderlyingRisk:
    """The controller's view of one underlying of a book snapshot (see the module doc)."""
    total = ug.total
    delta = total.delta_coin(numeraire)
    projected = ug.delta_coin(numeraire, projected=True)
    options = (
        total.options_delta_usdnum_coin if numeraire == "usd" else total.options_delta_coinnum_coin
    )
    table = ug.by_expiry
    expiry = np.asarray(table.expiry_ms, dtype=np.int64)
    live = expiry != NO_EXPIRY
    gamma_field = (
        "gamma_usdnum_coin_per_usd" if numeraire == "usd" else "gamma_coinnum_coin_per_usd"
    )
    weights = np.abs(table.field(gamma_field)) * live
    tau = np.maximum(expiry - ug.valued_at_ms, 0) / MS_PER_YEAR
    if weights.sum() > 0:
        tau_years = float(weights @ np.where(live, tau, 0.0) / weights.sum())
    else:
        tau_years = float(tau[live].min()) if live.any() else 0.0
    return UnderlyingRisk(
        underlying=ug.underlying,
        spot_usd=ug.index_price_usd,
        net_delta_coin=delta,
        gamma_coin_per_usd=total.gamma_coin_per_usd(numeraire),
        vol=vol,
        tau_years=tau_years,
        vanna_coin_per_vol=total.vanna_usdnum_coin_per_vol,
        rate=rate,
        expiring_delta_coin=delta - projected,
        next_settlement_ms=ug.next_expiry_ms if ug.in_settlement_window else None,
        options_delta_coin=options,
    )
