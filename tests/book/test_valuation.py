"""Every instrument kind's delta and gamma against finite differences of its own value
function, in both numeraires (DESIGN.md, "Units and conventions")."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from hedgerd.book import valuation as va
from hedgerd.pricing import black76

RNG = np.random.default_rng(20261121)
N_CASES = 400

Value = Callable[[np.ndarray], np.ndarray]


def _fd_check(
    value: Value,
    val: va.Valuation,
    S: np.ndarray,
    h: np.ndarray,
    delta_of: Callable[[np.ndarray], va.Valuation] | None = None,
) -> None:
    """delta_usdnum = dV/dS; delta_coinnum = S d(V/S)/dS; gammas = d(delta)/dS."""
    up, dn = value(S + h), value(S - h)
    fd_usd = (up - dn) / (2 * h)
    fd_coin = S * (up / (S + h) - dn / (S - h)) / (2 * h)
    scale = np.abs(val.delta_usdnum_coin) + np.abs(val.value_usd / S) + 1e-12
    np.testing.assert_allclose(val.value_usd, value(S), rtol=1e-12, atol=0)
    assert np.all(np.abs(fd_usd - val.delta_usdnum_coin) <= 1e-6 * scale)
    assert np.all(np.abs(fd_coin - val.delta_coinnum_coin) <= 1e-6 * scale)
    if delta_of is not None:
        vu, vd = delta_of(S + h), delta_of(S - h)
        fg_usd = (vu.delta_usdnum_coin - vd.delta_usdnum_coin) / (2 * h)
        fg_coin = (vu.delta_coinnum_coin - vd.delta_coinnum_coin) / (2 * h)
        gscale = np.abs(val.gamma_usdnum_coin_per_usd) + scale / S
        assert np.all(np.abs(fg_usd - val.gamma_usdnum_coin_per_usd) <= 1e-5 * gscale)
        assert np.all(np.abs(fg_coin - val.gamma_coinnum_coin_per_usd) <= 1e-5 * gscale)


def _option_grid() -> dict[str, np.ndarray]:
    S = RNG.uniform(1_000, 120_000, N_CASES)
    minute = 1 / (365 * 24 * 60)
    tau = np.exp(RNG.uniform(np.log(minute), np.log(2.0), N_CASES))
    vol = RNG.uniform(0.15, 2.0, N_CASES)
    # strikes from deep ITM to deep OTM, in standard deviations of the forward
    z = RNG.uniform(-6, 6, N_CASES)
    b = RNG.uniform(0.97, 1.08, N_CASES)
    K = b * S * np.exp(z * vol * np.sqrt(tau))
    return {
        "is_call": RNG.random(N_CASES) < 0.5,
        "qty": RNG.choice([-1, 1], N_CASES) * RNG.uniform(0.1, 50, N_CASES),
        "S": S,
        "K": K,
        "tau": tau,
        "vol": vol,
        "b": b,
    }


@pytest.mark.parametrize("kind", [va.RowKind.INVERSE_OPTION, va.RowKind.LINEAR_OPTION])
def test_option_delta_and_gamma_match_finite_differences(kind: va.RowKind) -> None:
    g = _option_grid()

    # Inverse and linear options have the same USD value; the inverse case is driven from the
    # coin premium to show the coin-numeraire delta is Black-Scholes delta minus premium.
    def value(S: np.ndarray) -> np.ndarray:
        return va.option_value_usd(g["is_call"], g["qty"], S, g["K"], g["tau"], g["vol"], g["b"])

    def at(S: np.ndarray) -> va.Valuation:
        return va.option_valuation(g["is_call"], g["qty"], S, g["K"], g["tau"], g["vol"], g["b"])

    S = g["S"]
    h = S * g["vol"] * np.sqrt(g["tau"]) * 1e-4
    val = at(S)
    _fd_check(value, val, S, h, at)
    if kind is va.RowKind.INVERSE_OPTION:
        premium_coin = va.inverse_premium_coin(val.value_usd, g["qty"], S)
        bs_delta = black76(g["is_call"], g["b"] * S, g["K"], g["tau"], g["vol"]).delta * g["b"]
        np.testing.assert_allclose(
            val.delta_coinnum_coin,
            g["qty"] * (bs_delta - premium_coin),
            rtol=1e-12,
            atol=1e-12 * np.abs(g["qty"]).max(),
        )


def test_option_vega_and_theta_match_finite_differences() -> None:
    g = _option_grid()
    val = va.option_valuation(g["is_call"], g["qty"], g["S"], g["K"], g["tau"], g["vol"], g["b"])
    dv = 1e-6
    fv = (
        va.option_value_usd(g["is_call"], g["qty"], g["S"], g["K"], g["tau"], g["vol"] + dv, g["b"])
        - va.option_value_usd(
            g["is_call"], g["qty"], g["S"], g["K"], g["tau"], g["vol"] - dv, g["b"]
        )
    ) / (2 * dv)
    notional = np.abs(g["qty"]) * g["S"]
    assert np.all(
        np.abs(fv - val.vega_usd_per_vol)
        <= 1e-6 * np.abs(val.vega_usd_per_vol)
        + 1e-9 * notional
        + 1e-14 * np.abs(val.value_usd) / dv
    )  # FD rounding
    dt = g["tau"] * 1e-5
    ft = -(
        va.option_value_usd(g["is_call"], g["qty"], g["S"], g["K"], g["tau"] + dt, g["vol"], g["b"])
        - va.option_value_usd(
            g["is_call"], g["qty"], g["S"], g["K"], g["tau"] - dt, g["vol"], g["b"]
        )
    ) / (2 * dt)
    assert np.all(
        np.abs(ft - val.theta_usd_per_year)
        <= 1e-6 * np.abs(val.theta_usd_per_year)
        + 1e-9 * notional / g["tau"]
        + 1e-14 * np.abs(val.value_usd) / dt
    )


def _hedge_grid() -> dict[str, np.ndarray]:
    S = RNG.uniform(500, 150_000, N_CASES)
    return {
        "S": S,
        "qty": RNG.uniform(-1e6, 1e6, N_CASES),
        "entry": S * RNG.uniform(0.7, 1.3, N_CASES),
        "b": RNG.uniform(0.95, 1.1, N_CASES),
    }


@pytest.mark.parametrize("kind", [va.RowKind.INVERSE_PERPETUAL, va.RowKind.INVERSE_FUTURE])
def test_inverse_future_deltas(kind: va.RowKind) -> None:
    g = _hedge_grid()
    b = np.ones(N_CASES) if kind is va.RowKind.INVERSE_PERPETUAL else g["b"]

    def value(S: np.ndarray) -> np.ndarray:
        return va.inverse_future_value_usd(g["qty"], S, g["entry"], b)

    def at(S: np.ndarray) -> va.Valuation:
        return va.inverse_future_valuation(g["qty"], S, g["entry"], b)

    val = at(g["S"])
    _fd_check(value, val, g["S"], g["S"] * 1e-4, at)
    # coin numeraire: N / F, Deribit's size_currency, whatever the entry price
    np.testing.assert_allclose(val.delta_coinnum_coin, g["qty"] / (b * g["S"]), rtol=1e-12)
    # USD numeraire: N / entry (the floating coin P&L is itself coin, worth delta)
    np.testing.assert_allclose(val.delta_usdnum_coin, g["qty"] / g["entry"], rtol=1e-12)
    _affine_matches(kind, g["qty"], g["entry"], b, g["S"], val)


@pytest.mark.parametrize("kind", [va.RowKind.LINEAR_PERPETUAL, va.RowKind.LINEAR_FUTURE])
def test_linear_future_deltas(kind: va.RowKind) -> None:
    g = _hedge_grid()
    b = np.ones(N_CASES) if kind is va.RowKind.LINEAR_PERPETUAL else g["b"]

    def value(S: np.ndarray) -> np.ndarray:
        return va.linear_future_value_usd(g["qty"], S, g["entry"], b)

    def at(S: np.ndarray) -> va.Valuation:
        return va.linear_future_valuation(g["qty"], S, g["entry"], b)

    val = at(g["S"])
    _fd_check(value, val, g["S"], g["S"] * 1e-4, at)
    np.testing.assert_allclose(val.delta_usdnum_coin, g["qty"] * b, rtol=1e-12)
    _affine_matches(kind, g["qty"], g["entry"], b, g["S"], val)


def test_spot_deltas() -> None:
    g = _hedge_grid()

    def value(S: np.ndarray) -> np.ndarray:
        return va.spot_value_usd(g["qty"], S, g["entry"])

    def at(S: np.ndarray) -> va.Valuation:
        return va.spot_valuation(g["qty"], S, g["entry"])

    val = at(g["S"])
    _fd_check(value, val, g["S"], g["S"] * 1e-4, at)
    # bought at the current price: delta N in both numeraires
    at_mark = va.spot_valuation(g["qty"], g["S"], g["S"])
    np.testing.assert_allclose(at_mark.delta_coinnum_coin, g["qty"], rtol=1e-12)
    _affine_matches(va.RowKind.SPOT, g["qty"], g["entry"], 1.0, g["S"], val)


def test_coin_collateral_is_delta_one_in_usd_and_zero_in_coin() -> None:
    g = _hedge_grid()

    def value(S: np.ndarray) -> np.ndarray:
        return va.collateral_value_usd(g["qty"], S)

    def at(S: np.ndarray) -> va.Valuation:
        return va.collateral_valuation(g["qty"], S)

    val = at(g["S"])
    _fd_check(value, val, g["S"], g["S"] * 1e-4, at)
    np.testing.assert_array_equal(val.delta_usdnum_coin, g["qty"])
    np.testing.assert_allclose(val.delta_coinnum_coin, 0.0, atol=1e-9 * np.abs(g["qty"]).max())
    _affine_matches(va.RowKind.COLLATERAL, g["qty"], np.nan, 1.0, g["S"], val)


def _affine_matches(
    kind: va.RowKind,
    qty: np.ndarray,
    entry: np.ndarray | float,
    b: np.ndarray | float,
    S: np.ndarray,
    val: va.Valuation,
) -> None:
    alpha, beta = va.affine_coefficients(kind, qty, entry, b)
    inverse = kind in (va.RowKind.INVERSE_PERPETUAL, va.RowKind.INVERSE_FUTURE)
    delta_scale = np.abs(qty) / S if inverse else np.abs(qty)
    assert np.all(np.abs(alpha * S + beta - val.value_usd) <= 1e-9 * S * delta_scale)
    np.testing.assert_allclose(alpha, val.delta_usdnum_coin, rtol=1e-12)
    assert np.all(np.abs(-beta / S - val.delta_coinnum_coin) <= 1e-9 * delta_scale)


def test_row_kind_of_deribit_names() -> None:
    from hedgerd.venues.deribit.names import parse_instrument_name as p

    assert va.row_kind(p("BTC-PERPETUAL")) is va.RowKind.INVERSE_PERPETUAL
    assert va.row_kind(p("ETH-27DEC26")) is va.RowKind.INVERSE_FUTURE
    assert va.row_kind(p("BTC-27DEC26-100000-C")) is va.RowKind.INVERSE_OPTION
    assert va.row_kind(p("BTC_USDC-27DEC26-100000-P")) is va.RowKind.LINEAR_OPTION
    assert va.row_kind(p("BTC_USDC-PERPETUAL")) is va.RowKind.LINEAR_PERPETUAL
    assert va.row_kind(p("BTC_USDC")) is va.RowKind.SPOT


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(va.HEDGE_KINDS),
    qty=st.floats(-1e7, 1e7, allow_nan=False).filter(lambda x: abs(x) > 1e-6),
    S=st.floats(0.01, 1e6),
    entry_ratio=st.floats(0.2, 5.0),
    b=st.floats(0.5, 2.0),
)
def test_numeraire_identity_for_every_hedge_kind(
    kind: va.RowKind, qty: float, S: float, entry_ratio: float, b: float
) -> None:
    """delta_usdnum − delta_coinnum = V/S, and V = alpha·S + beta, for every hedge kind."""
    entry = S * entry_ratio
    if kind in (va.RowKind.INVERSE_PERPETUAL, va.RowKind.INVERSE_FUTURE):
        val = va.inverse_future_valuation(qty, S, entry, b)
    elif kind in (va.RowKind.LINEAR_PERPETUAL, va.RowKind.LINEAR_FUTURE):
        val = va.linear_future_valuation(qty, S, entry, b)
    elif kind is va.RowKind.SPOT:
        val, b = va.spot_valuation(qty, S, entry), 1.0
    else:
        val, b = va.collateral_valuation(qty, S), 1.0
    scale = abs(qty) * (1 / min(S, entry) if kind.name.startswith("INVERSE") else 1.0)
    diff = float(val.delta_usdnum_coin - val.delta_coinnum_coin)
    assert abs(diff - float(val.value_usd) / S) <= 1e-9 * scale * (1 + 1 / b)
    alpha, beta = va.affine_coefficients(kind, qty, entry, b)
    assert abs(float(alpha * S + beta - val.value_usd)) <= 1e-9 * scale * S * (1 + 1 / b)
