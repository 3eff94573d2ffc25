"""Thin adapter: the GreeksBook's `UnderlyingGreeks` -> the controller's `UnderlyingRisk`.

The book reports the total delta and, inside the settlement window, a projected delta that
leaves the settling expiry out; the controller instead takes the total plus the settling part
(`expiring_delta_coin`) and decays that part linearly over its `settlement_window_s`, as the
settlement average fixes. The representative time to expiry is the |gamma|-weighted expiry of
the book's buckets; the representative vol is the caller's (e.g. the ATM mark IV), or the
book's own gamma-weighted implied vol through `underlying_risk` (what the daemon uses).
"""

from __future__ import annotations

import math
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


_MIN_VOL = 0.05
_MAX_VOL = 3.0
_DEFAULT_VOL = 0.5
_DEFAULT_TAU_YEARS = 30.0 / 365.0


def representative_vol_tau(
    snap: UnderlyingGreeks, now_ms: int, numeraire: str
) -> tuple[float, float]:
    """The book's gamma-weighted implied vol (fraction) and time to expiry (years).

    Per expiry bucket, vol is backed out of Black-Scholes' vega = gamma · S² · σ · τ (both
    from the book); buckets are weighted by |gamma|. Without gamma: 50 % and 30 days."""
    table = snap.by_expiry
    gname = "gamma_usdnum_coin_per_usd" if numeraire == "usd" else "gamma_coinnum_coin_per_usd"
    gammas = table.field(gname)
    vegas = table.field("vega_usd_per_vol")
    s = snap.index_price_usd
    w_sum = tau_sum = vol_sum = 0.0
    for i in range(len(table)):
        expiry = table.expiry(i)
        g = abs(float(gammas[i]))
        if expiry is None or expiry <= now_ms or g <= 0 or not math.isfinite(g):
            continue
        tau = (expiry - now_ms) / MS_PER_YEAR
        vol = abs(float(vegas[i])) / (g * s * s * tau)
        if not math.isfinite(vol):
            continue
        w_sum += g
        tau_sum += g * tau
        vol_sum += g * min(max(vol, _MIN_VOL), _MAX_VOL)
    if w_sum <= 0:
        return _DEFAULT_VOL, _DEFAULT_TAU_YEARS
    return vol_sum / w_sum, tau_sum / w_sum


def underlying_risk(snap: UnderlyingGreeks, now_ms: int, numeraire: str) -> UnderlyingRisk:
    """The controller's `UnderlyingRisk` from a book snapshot, in `numeraire` ("usd"/"coin"),
    through the hedging package's adapter, with the book's gamma-weighted implied vol."""
    num: Literal["usd", "coin"] = "usd" if numeraire == "usd" else "coin"
    vol, _tau = representative_vol_tau(snap, now_ms, num)
    return risk_from_book(snap, num, vol)
