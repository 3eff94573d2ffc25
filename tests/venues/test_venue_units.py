"""Market normalisation (through ccxt's real Deribit market parser) and unit conversions for
every instrument kind: inverse perpetual, inverse future, linear perpetual, inverse option,
linear option, spot."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from _venue_deribit_json import instrument_json
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.model import AmountUnit, Instrument, PriceUnit
from hedgerd.pricing import black76
from hedgerd.pricing.implied import implied_vol_with_reason
from hedgerd.venues.book_feed import polish_vol
from hedgerd.venues.ccxt_venue import instrument_from_market
from hedgerd.venues.deribit import position_from_deribit
from hedgerd.venues.deribit.names import parse_instrument_name
from hedgerd.venues.units import (
    amount_to_qty_coin,
    depth_to_notional,
    notional_usd,
    price_to_coin,
    price_to_usd,
    qty_coin_to_amount,
    round_to_step,
)

KINDS = {
    "inverse perpetual": "BTC-PERPETUAL",
    "inverse future": "BTC-27DEC26",
    "linear perpetual": "BTC_USDC-PERPETUAL",
    "inverse option": "BTC-27DEC26-100000-C",
    "linear option": "BTC_USDC-27DEC26-100000-P",
    "spot": "BTC_USDC",
}


async def _ccxt_markets(payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ccxt's own Deribit `fetch_markets` parser over `payload` (HTTP replaced only)."""
    ex = ccxt_async.deribit()

    async def get_instruments(params: Any = None) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "result": payload, "testnet": True}

    ex.publicGetGetInstruments = get_instruments
    try:
        markets: list[dict[str, Any]] = await ex.fetch_markets()
        return markets
    finally:
        await ex.close()


async def test_ccxt_markets_normalise_to_the_names_parser() -> None:
    expected = {n: parse_instrument_name(n) for n in KINDS.values()}
    markets = await _ccxt_markets([instrument_json(i) for i in expected.values()])
    got = {m["id"]: instrument_from_market("deribit", m) for m in markets}
    assert set(got) == set(expected)
    for name, inst in expected.items():
        assert got[name] == inst, name


async def test_combos_and_nonsense_are_skipped() -> None:
    perp = instrument_json(parse_instrument_name("BTC-PERPETUAL"))
    combo = dict(perp, kind="future_combo", instrument_name="BTC-FS-27DEC26_PERP")
    broken = dict(perp, instrument_name="BTC-X", tick_size=0)
    markets = await _ccxt_markets([perp, combo, broken])
    out = [instrument_from_market("deribit", m) for m in markets]
    assert [i.name for i in out if i is not None] == ["BTC-PERPETUAL"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_unit_conversion_each_kind(kind: str) -> None:
    inst = parse_instrument_name(KINDS[kind])
    mark_usd = 50_000.0
    usd_sized = kind in ("inverse perpetual", "inverse future")
    assert inst.amount_unit is (AmountUnit.USD if usd_sized else AmountUnit.COIN)
    amount = -12_340.0 if usd_sized else -1.3
    qty = amount_to_qty_coin(inst, amount, mark_usd)
    assert qty == pytest.approx(amount / mark_usd if usd_sized else amount, rel=1e-15)
    assert qty_coin_to_amount(inst, qty, mark_usd) == pytest.approx(amount, rel=1e-12)
    # Notional is USD exposure whatever the sizing.
    assert notional_usd(inst, amount, mark_usd) == pytest.approx(abs(qty) * mark_usd)
    # Prices: inverse options quote coin premium; everything else USD.
    price_coin = kind == "inverse option"
    assert inst.price_unit is (PriceUnit.COIN if price_coin else PriceUnit.USD)
    p = 0.0125 if price_coin else 1_250.0
    usd = price_to_usd(inst, p, mark_usd)
    assert usd == pytest.approx(p * mark_usd if price_coin else p)
    if inst.is_option:
        assert price_to_coin(inst, p, mark_usd) == pytest.approx(p if price_coin else p / mark_usd)


@pytest.mark.parametrize("kind", list(KINDS))
def test_deribit_position_in_venue_units_and_coin(kind: str) -> None:
    """`size` in the amount unit, signed; coin from `size_currency` for inverse futures."""
    inst = parse_instrument_name(KINDS[kind])
    usd_sized = inst.amount_unit is AmountUnit.USD
    mark = 40_000.0
    size = -2_000.0 if usd_sized else -0.7
    payload = {
        "instrument_name": inst.name,
        "kind": "option" if inst.is_option else "spot" if kind == "spot" else "future",
        "direction": "sell",
        "size": size,
        "size_currency": size / mark if usd_sized else size,
        "average_price": 0.01 if inst.is_option else 41_000.0,
        "delta": -0.35 if inst.is_option else size / mark if usd_sized else size,
        "mark_price": mark,
    }
    ev = position_from_deribit("deribit", "acct", payload, inst, 7)
    assert ev.position.amount == size
    assert ev.position.amount_unit is inst.amount_unit
    assert ev.venue_qty_coin == pytest.approx(amount_to_qty_coin(inst, size, mark))
    assert ev.position.venue_delta_coin == payload["delta"]
    # Unsigned size with direction sell (some payloads) still comes out short.
    ev2 = position_from_deribit("deribit", "acct", dict(payload, size=abs(size)), inst, 7)
    assert ev2.position.amount == size


def test_conversion_refuses_bad_prices() -> None:
    perp = parse_instrument_name("BTC-PERPETUAL")
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            amount_to_qty_coin(perp, 100.0, bad)


@settings(max_examples=100, deadline=None)
@given(
    amount=st.floats(-1e7, 1e7, allow_nan=False),
    step=st.sampled_from([10.0, 1.0, 0.1, 0.001, 0.0001, 0.01]),
)
def test_round_to_step_keeps_the_remainder(amount: float, step: float) -> None:
    rounded, rest = round_to_step(amount, step)
    assert rounded + rest == pytest.approx(amount, abs=1e-9 * max(1.0, abs(amount)))
    assert abs(rounded) <= abs(amount) + 1e-9
    assert abs(rest) < step * (1 + 1e-6)
    n = rounded / step
    assert abs(n - round(n)) < 1e-6 * max(1.0, abs(n) * 1e-3)
    assert rounded == 0 or math.copysign(1, rounded) == math.copysign(1, amount)


def test_depth_cut_at_notional() -> None:
    perp = parse_instrument_name("BTC-PERPETUAL")
    levels = [(50_000.0 + i, 10_000.0) for i in range(10)]
    assert len(depth_to_notional(perp, levels, 25_000.0, 50_000.0)) == 3
    opt = parse_instrument_name("BTC-27DEC26-100000-C")
    # 2 coin per level at 50k = 100k USD per level.
    levels = [(0.01, 2.0)] * 5
    assert len(depth_to_notional(opt, levels, 150_000.0, 50_000.0)) == 2
    assert len(depth_to_notional(opt, levels, 1e9, 50_000.0)) == 5


def test_eth_inverse_contract_is_one_usd() -> None:
    inst = parse_instrument_name("ETH-PERPETUAL")
    assert (inst.contract_size, inst.amount_step, inst.amount_unit) == (1.0, 1.0, AmountUnit.USD)
    changed: Instrument = replace(inst, taker_fee=0.001)
    assert changed.taker_fee == 0.001


@settings(max_examples=60, deadline=None)
@given(
    moneyness=st.floats(0.7, 1.3),
    tau_days=st.floats(0.5, 180.0),
    vol=st.floats(0.2, 1.5),
    is_call=st.booleans(),
)
def test_vol_polish_from_rounded_mark_iv_matches_the_full_solver(
    moneyness: float, tau_days: float, vol: float, is_call: bool
) -> None:
    """Deribit rounds mark_iv to 0.01 vol points and the coin mark to 1e-8: the polished vol
    reprices the rounded mark like the full solver's vol does, or defers to it (None)."""
    forward, strike, tau = 90_000.0, 90_000.0 * moneyness, tau_days / 365.0
    mark_usd = round(float(black76(is_call, forward, strike, tau, vol).price) / forward, 8)
    mark_usd *= forward
    polished = polish_vol(is_call, mark_usd, forward, strike, tau, round(vol * 100, 2) / 100)
    full, _ = implied_vol_with_reason(is_call, mark_usd, forward, strike, tau)
    if polished is None:
        return
    if not math.isfinite(float(full)):
        # The rounded price alone carries no vol information (deep wings, hours to expiry):
        # the polish stays anchored on the venue's own mark_iv.
        assert abs(polished - round(vol * 100, 2) / 100) <= 0.01
        return
    # It reprices the venue's mark at least as well as the full solver's vol does.
    err_polished = abs(float(black76(is_call, forward, strike, tau, polished).price) - mark_usd)
    err_full = abs(float(black76(is_call, forward, strike, tau, float(full)).price) - mark_usd)
    assert err_polished <= err_full + 1e-9 * forward
    assert polished == pytest.approx(float(full), abs=1e-4)


def test_vol_polish_defers_when_the_guess_is_not_a_rounding() -> None:
    price = float(black76(True, 90_000.0, 90_000.0, 0.1, 0.6).price)
    assert polish_vol(True, price, 90_000.0, 90_000.0, 0.1, 0.9) is None
    assert polish_vol(True, price, 90_000.0, 90_000.0, 0.0, 0.6) is None
    assert polish_vol(True, price, 90_000.0, 90_000.0, 0.1, 0.6001) == pytest.approx(0.6)
