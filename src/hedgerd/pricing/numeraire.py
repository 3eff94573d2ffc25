"""Numeraire conversions between USD and coin P&L (see DESIGN.md "Units and conventions").

Delta is reported in coin of the underlying. For a position whose USD value is
``V_usd(S)`` at index price ``S`` (USD per coin):

- USD numeraire (USD P&L neutral): ``delta_coin = dV_usd/dS``.
- coin numeraire (coin P&L neutral): ``delta_coin = S * d(V_usd/S)/dS = dV_usd/dS - V_usd/S``.

So an inverse option's coin-numeraire delta is its Black-Scholes delta minus its premium in
coin, and coin collateral (``V_usd = q S``) has delta ``q`` in USD and 0 in coin. The
per-instrument valuation lives in the book; these helpers are the generic algebra. All
functions broadcast over numpy arrays and propagate NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def coin_numeraire_delta(
    usd_delta_coin: ArrayLike, value_usd: ArrayLike, spot_usd: ArrayLike
) -> FloatArray:
    """Coin-numeraire delta ``dV_usd/dS - V_usd/S`` in coin.

    ``usd_delta_coin`` is ``dV_usd/dS`` (coin), ``value_usd`` the position's value in USD and
    ``spot_usd`` the index price in USD per coin. A non-positive or NaN spot gives NaN.
    """
    d = np.asarray(usd_delta_coin, dtype=np.float64)
    v = np.asarray(value_usd, dtype=np.float64)
    s = np.asarray(spot_usd, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = d - v / np.where(s > 0, s, np.nan)
    return np.asarray(out, dtype=np.float64)


def usd_numeraire_delta(
    coin_delta_coin: ArrayLike, value_usd: ArrayLike, spot_usd: ArrayLike
) -> FloatArray:
    """Inverse of ``coin_numeraire_delta``: ``dV_usd/dS = coin delta + V_usd/S`` in coin."""
    d = np.asarray(coin_delta_coin, dtype=np.float64)
    v = np.asarray(value_usd, dtype=np.float64)
    s = np.asarray(spot_usd, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = d + v / np.where(s > 0, s, np.nan)
    return np.asarray(out, dtype=np.float64)


def usd_to_coin(amount_usd: ArrayLike, spot_usd: ArrayLike) -> FloatArray:
    """USD amount to coin at ``spot_usd`` (USD per coin); non-positive or NaN spot gives NaN."""
    a = np.asarray(amount_usd, dtype=np.float64)
    s = np.asarray(spot_usd, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = a / np.where(s > 0, s, np.nan)
    return np.asarray(out, dtype=np.float64)


def coin_to_usd(amount_coin: ArrayLike, spot_usd: ArrayLike) -> FloatArray:
    """Coin amount to USD at ``spot_usd``; non-positive or NaN spot gives NaN."""
    a = np.asarray(amount_coin, dtype=np.float64)
    s = np.asarray(spot_usd, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = a * np.where(s > 0, s, np.nan)
    return np.asarray(out, dtype=np.float64)
