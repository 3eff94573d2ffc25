"""Value functions and their deltas per instrument kind, in both numeraires.

This module is the book's specification (DESIGN.md, "Units and conventions"): every function
takes numpy arrays (broadcasting) and returns USD values and sensitivities. The GreeksBook's
fast tick path is tested against it.

Symbols: ``S`` the underlying's index price in USD per coin; ``b`` the forward ratio
``F / S`` of the instrument's expiry (held fixed when ``S`` moves: ``F = b S``; 1 for
perpetuals, spot and collateral); ``N`` the signed position in the venue's amount unit.

Value of each kind, in USD (``V``), with its USD-numeraire delta ``dV/dS``:

==================  =================  ===========================  ==================
kind                N in               V (USD)                      dV/dS (coin)
==================  =================  ===========================  ==================
option (inv. / lin)  coin              ``N · Black76(F, K, τ, σ)``  ``N · b · Δ_BS``
inverse perp/future  USD               ``N·S/entry − N/b``          ``N / entry``
linear perp/future   coin              ``N · (b·S − entry)``        ``N · b``
spot (vs USDC)       coin              ``N · (S − entry)``          ``N``
coin collateral      coin              ``N · S``                    ``N``
==================  =================  ===========================  ==================

An inverse option's USD value is the same Black-76 value as a linear one (it pays
``max(S_T − K, 0) / S_T`` coin, worth ``max(S_T − K, 0)`` USD); only its premium is quoted in
coin: ``premium_coin = V / (N · S)``. An inverse future's value is its coin P&L
``N · (1/entry − 1/F)`` converted at the index. Spot is a coin bought against USDC at
``entry`` (the USDC leg included), so it hedges like a linear perpetual without basis.
Floating P&L of futures and spot is part of ``V``: balances given to the book are cash
balances without it (Deribit's ``balance``, not ``equity``).

Deltas are in coin. The coin-numeraire delta is ``S · d(V/S)/dS = dV/dS − V/S``:

- inverse option: ``N (b Δ_BS − premium_coin)``: Deribit's "net transaction delta";
- inverse perp/future: ``N / F`` (Deribit's ``size_currency``), whatever the entry price;
- coin collateral: 0.

Gamma is ``d(delta)/dS`` in coin per USD in each numeraire:
``gamma_coinnum = gamma_usdnum − delta_usdnum / S + V / S²``. Vega is USD per 1.00 of vol,
theta USD per year at fixed forward (the book uses zero rates: Deribit prices off the forward
with no discounting). Every hedge kind's value is affine in ``S``: ``V = α S + β``
(`affine_coefficients`), which the book uses to value hedges in O(1) per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hedgerd.model.instruments import Instrument, InstrumentKind
from hedgerd.pricing import black76

FloatArray = NDArray[np.float64]

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000
"""Year fraction convention: ACT/365 in milliseconds (Deribit's)."""


class RowKind(IntEnum):
    """How the book values a row. Options first; everything else is a hedge instrument."""

    INVERSE_OPTION = 0
    LINEAR_OPTION = 1
    INVERSE_PERPETUAL = 2
    INVERSE_FUTURE = 3
    LINEAR_PERPETUAL = 4
    LINEAR_FUTURE = 5
    SPOT = 6
    COLLATERAL = 7

    @property
    def is_option(self) -> bool:
        return self in (RowKind.INVERSE_OPTION, RowKind.LINEAR_OPTION)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    RowKind.INVERSE_OPTION: "inverse options",
    RowKind.LINEAR_OPTION: "linear options",
    RowKind.INVERSE_PERPETUAL: "inverse perpetual",
    RowKind.INVERSE_FUTURE: "inverse futures",
    RowKind.LINEAR_PERPETUAL: "linear perpetual",
    RowKind.LINEAR_FUTURE: "linear futures",
    RowKind.SPOT: "spot",
    RowKind.COLLATERAL: "coin collateral",
}

HEDGE_KINDS: tuple[RowKind, ...] = tuple(k for k in RowKind if not k.is_option)


def row_kind(instrument: Instrument) -> RowKind:
    """The valuation kind of a venue instrument (collateral is not an instrument)."""
    kind = instrument.kind
    if kind is InstrumentKind.OPTION:
        return RowKind.INVERSE_OPTION if instrument.inverse else RowKind.LINEAR_OPTION
    if kind is InstrumentKind.PERPETUAL:
        return RowKind.INVERSE_PERPETUAL if instrument.inverse else RowKind.LINEAR_PERPETUAL
    if kind is InstrumentKind.FUTURE:
        return RowKind.INVERSE_FUTURE if instrument.inverse else RowKind.LINEAR_FUTURE
    if kind is InstrumentKind.SPOT:
        if instrument.inverse:
            raise ValueError(f"{instrument.name}: inverse spot is not a thing")
        return RowKind.SPOT
    raise ValueError(f"{instrument.name}: unknown instrument kind {kind}")


@dataclass(frozen=True, slots=True)
class Valuation:
    """Per-row value and sensitivities (arrays of the broadcast shape).

    ``usdnum`` / ``coinnum``: USD numeraire (USD P&L neutral) / coin numeraire (coin P&L
    neutral). Deltas in coin, gammas in coin per USD, vega in USD per 1.00 of vol, theta in USD
    per year.
    """

    value_usd: FloatArray
    delta_usdnum_coin: FloatArray
    delta_coinnum_coin: FloatArray
    gamma_usdnum_coin_per_usd: FloatArray
    gamma_coinnum_coin_per_usd: FloatArray
    vega_usd_per_vol: FloatArray
    theta_usd_per_year: FloatArray


def _f(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def coin_numeraire(
    value_usd: ArrayLike, delta_usdnum: ArrayLike, gamma_usdnum: ArrayLike, index_usd: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """USD-numeraire delta and gamma → coin-numeraire delta and gamma.

    ``delta_coinnum = dV/dS − V/S``; ``gamma_coinnum = d(delta_coinnum)/dS
    = d²V/dS² − (dV/dS)/S + V/S²``.
    """
    V, D, G, S = _f(value_usd), _f(delta_usdnum), _f(gamma_usdnum), _f(index_usd)
    return D - V / S, G - D / S + V / (S * S)


def _valuation(
    value: FloatArray,
    delta: FloatArray,
    gamma: FloatArray,
    index: FloatArray,
    vega: FloatArray | None = None,
    theta: FloatArray | None = None,
) -> Valuation:
    dc, gc = coin_numeraire(value, delta, gamma, index)
    zero = np.zeros_like(value)
    return Valuation(
        value_usd=value,
        delta_usdnum_coin=delta,
        delta_coinnum_coin=dc,
        gamma_usdnum_coin_per_usd=gamma,
        gamma_coinnum_coin_per_usd=gc,
        vega_usd_per_vol=zero if vega is None else vega,
        theta_usd_per_year=zero if theta is None else theta,
    )


# ---- options (inverse and linear: same USD value) ----------------------------------------


def option_value_usd(
    is_call: ArrayLike,
    qty_coin: ArrayLike,
    index_usd: ArrayLike,
    strike_usd: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    forward_ratio: ArrayLike = 1.0,
) -> FloatArray:
    """USD value of ``qty_coin`` options (Black-76 on ``F = forward_ratio · index_usd``)."""
    S = _f(index_usd)
    g = black76(is_call, _f(forward_ratio) * S, strike_usd, tau_years, vol)
    return _f(qty_coin) * g.price


def option_valuation(
    is_call: ArrayLike,
    qty_coin: ArrayLike,
    index_usd: ArrayLike,
    strike_usd: ArrayLike,
    tau_years: ArrayLike,
    vol: ArrayLike,
    forward_ratio: ArrayLike = 1.0,
) -> Valuation:
    """Value and Greeks of ``qty_coin`` options, inverse or linear (see module docstring)."""
    S, b, N = _f(index_usd), _f(forward_ratio), _f(qty_coin)
    g = black76(is_call, b * S, strike_usd, tau_years, vol)
    value = N * g.price
    return _valuation(
        value,
        N * b * g.delta,
        N * b * b * g.gamma,
        np.broadcast_to(S, value.shape),
        vega=N * g.vega,
        theta=N * g.theta,
    )


def inverse_premium_coin(
    value_usd: ArrayLike, qty_coin: ArrayLike, index_usd: ArrayLike
) -> FloatArray:
    """An inverse option's premium in coin per coin of underlying: ``V / (N · S)``."""
    return _f(value_usd) / (_f(qty_coin) * _f(index_usd))


# ---- inverse perpetuals and futures (sized in USD) ----------------------------------------


def inverse_future_value_usd(
    size_usd: ArrayLike,
    index_usd: ArrayLike,
    entry_price_usd: ArrayLike,
    forward_ratio: ArrayLike = 1.0,
) -> FloatArray:
    """USD value of the coin P&L ``N (1/entry − 1/F)`` at the index: ``N S/entry − N/b``."""
    N, S, e, b = _f(size_usd), _f(index_usd), _f(entry_price_usd), _f(forward_ratio)
    return S * N * (1.0 / e - 1.0 / (b * S))


def inverse_future_valuation(
    size_usd: ArrayLike,
    index_usd: ArrayLike,
    entry_price_usd: ArrayLike,
    forward_ratio: ArrayLike = 1.0,
) -> Valuation:
    N, S, e, b = np.broadcast_arrays(
        _f(size_usd), _f(index_usd), _f(entry_price_usd), _f(forward_ratio)
    )
    value = inverse_future_value_usd(N, S, e, b)
    return _valuation(value, N / e, np.zeros_like(value), S)


# ---- linear perpetuals and futures, spot (sized in coin, settled in USDC) ------------------


def linear_future_value_usd(
    qty_coin: ArrayLike,
    index_usd: ArrayLike,
    entry_price_usd: ArrayLike,
    forward_ratio: ArrayLike = 1.0,
) -> FloatArray:
    """USD floating P&L ``N (F − entry)``, ``F = b S``."""
    N, S, e, b = _f(qty_coin), _f(index_usd), _f(entry_price_usd), _f(forward_ratio)
    return N * (b * S - e)


def linear_future_valuation(
    qty_coin: ArrayLike,
    index_usd: ArrayLike,
    entry_price_usd: ArrayLike,
    forward_ratio: ArrayLike = 1.0,
) -> Valuation:
    N, S, e, b = np.broadcast_arrays(
        _f(qty_coin), _f(index_usd), _f(entry_price_usd), _f(forward_ratio)
    )
    value = linear_future_value_usd(N, S, e, b)
    return _valuation(value, N * b, np.zeros_like(value), S)


def spot_value_usd(
    qty_coin: ArrayLike, index_usd: ArrayLike, entry_price_usd: ArrayLike
) -> FloatArray:
    """``N`` coin bought against USDC at ``entry``: ``N (S − entry)``."""
    return linear_future_value_usd(qty_coin, index_usd, entry_price_usd, 1.0)


def spot_valuation(
    qty_coin: ArrayLike, index_usd: ArrayLike, entry_price_usd: ArrayLike
) -> Valuation:
    return linear_future_valuation(qty_coin, index_usd, entry_price_usd, 1.0)


# ---- coin collateral ------------------------------------------------------------------------


def collateral_value_usd(qty_coin: ArrayLike, index_usd: ArrayLike) -> FloatArray:
    return _f(qty_coin) * _f(index_usd)


def collateral_valuation(qty_coin: ArrayLike, index_usd: ArrayLike) -> Valuation:
    N, S = np.broadcast_arrays(_f(qty_coin), _f(index_usd))
    value = collateral_value_usd(N, S)
    return _valuation(value, N.astype(np.float64), np.zeros_like(value), S)


# ---- hedge kinds as affine functions of S ------------------------------------------------


def affine_coefficients(
    kind: RowKind, qty: ArrayLike, entry_price_usd: ArrayLike, forward_ratio: ArrayLike = 1.0
) -> tuple[FloatArray, FloatArray]:
    """``(α, β)`` with ``V_usd = α S + β`` for a hedge kind: so ``dV/dS = α`` (USD
    numeraire delta), ``delta_coinnum = −β / S``, ``gamma_coinnum = β / S²``.

    ``qty`` in the kind's amount unit (USD for inverse, coin otherwise).
    """
    N, e, b = _f(qty), _f(entry_price_usd), _f(forward_ratio)
    if kind in (RowKind.INVERSE_PERPETUAL, RowKind.INVERSE_FUTURE):
        return N / e, -N / b
    if kind in (RowKind.LINEAR_PERPETUAL, RowKind.LINEAR_FUTURE):
        return N * b, -N * e
    if kind is RowKind.SPOT:
        return N, -N * e
    if kind is RowKind.COLLATERAL:
        return N, np.zeros_like(N)
    raise ValueError(f"{kind!r} is not a hedge kind")
