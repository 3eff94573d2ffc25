"""Numeraire helpers: coin-numeraire delta = dV/dS - V/S, checked against finite differences
of value functions (DESIGN.md "Units and conventions")."""

from __future__ import annotations

import numpy as np

from hedgerd.pricing import (
    black_scholes,
    coin_numeraire_delta,
    coin_to_usd,
    usd_numeraire_delta,
    usd_to_coin,
)


def coin_delta_fd(value_usd, S: np.ndarray, h: float = 1e-4) -> np.ndarray:  # type: ignore[no-untyped-def]
    """S * d(V_usd / S)/dS by central differences."""
    dS = h * S
    return S * (value_usd(S + dS) / (S + dS) - value_usd(S - dS) / (S - dS)) / (2 * dS)


def test_coin_collateral_is_one_in_usd_and_zero_in_coin() -> None:
    S = np.array([30_000.0, 60_000.0, 90_000.0])
    qty_coin = 2.5
    usd_delta = np.full(3, qty_coin)  # d(q S)/dS
    np.testing.assert_allclose(coin_numeraire_delta(usd_delta, qty_coin * S, S), 0.0, atol=1e-12)
    np.testing.assert_allclose(coin_delta_fd(lambda s: qty_coin * s, S), 0.0, atol=1e-9)


def test_option_coin_delta_is_bs_delta_minus_premium_in_coin() -> None:
    rng = np.random.default_rng(8)
    S = rng.uniform(20_000, 100_000, 50)
    K = S * np.exp(rng.uniform(-0.5, 0.5, 50))
    tau = rng.uniform(0.01, 1.0, 50)
    vol = rng.uniform(0.3, 1.0, 50)
    call = rng.random(50) < 0.5

    def value_usd(s: np.ndarray) -> np.ndarray:
        return black_scholes(call, s, K, tau, vol).price

    g = black_scholes(call, S, K, tau, vol)
    coin = coin_numeraire_delta(g.delta, g.price, S)
    np.testing.assert_allclose(coin, g.delta - g.price / S, rtol=1e-15, atol=0)
    np.testing.assert_allclose(coin, coin_delta_fd(value_usd, S), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(usd_numeraire_delta(coin, g.price, S), g.delta, atol=1e-15)


def test_conversions_and_bad_spot() -> None:
    np.testing.assert_allclose(usd_to_coin(120.0, 60_000.0), 0.002)
    np.testing.assert_allclose(coin_to_usd(0.002, 60_000.0), 120.0)
    for bad in (0.0, -1.0, np.nan):
        assert np.isnan(coin_numeraire_delta(0.5, 100.0, bad))
        assert np.isnan(usd_to_coin(1.0, bad))
        assert np.isnan(coin_to_usd(1.0, bad))
