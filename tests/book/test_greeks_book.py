"""GreeksBook against a row-by-row reference built from `valuation` (the spec), incremental
updates against a fresh rebuild, the settlement window, quarantine and the scenario grid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from hedgerd.book import valuation as va
from hedgerd.book.greeks_book import (
    GREEK_FIELDS,
    NO_EXPIRY,
    BadMarketDataError,
    BookError,
    GreeksBook,
    UnknownInstrumentError,
)
from hedgerd.model import AmountUnit, Instrument, Position
from hedgerd.pricing import black76
from hedgerd.venues.deribit.names import option_name, parse_expiry_ms, parse_instrument_name

NOW = parse_expiry_ms("20NOV26") + 3 * 3_600_000  # Fri 20 Nov 2026 11:00 UTC
EXPIRIES = ["21NOV26", "27NOV26", "4DEC26", "25DEC26", "26MAR27"]
RNG_SEED = 7


@dataclass
class State:
    """What the book was told, for the reference valuation."""

    index: dict[str, float] = field(default_factory=dict)
    ratio: dict[tuple[str, int], float] = field(default_factory=dict)
    qty: dict[str, float] = field(default_factory=dict)
    entry: dict[str, float] = field(default_factory=dict)
    vol: dict[str, float] = field(default_factory=dict)
    balances: dict[str, float] = field(default_factory=dict)


def greek_row(v: va.Valuation, is_option: bool, vanna: float = 0.0) -> np.ndarray:
    """One position's GREEK_FIELDS from its `valuation` (theta per day; `vanna` USD-numeraire
    coin per vol, 0 where the reference leaves it out)."""
    vals = {
        "value_usd": float(v.value_usd),
        "delta_usdnum_coin": float(v.delta_usdnum_coin),
        "delta_coinnum_coin": float(v.delta_coinnum_coin),
        "gamma_usdnum_coin_per_usd": float(v.gamma_usdnum_coin_per_usd),
        "gamma_coinnum_coin_per_usd": float(v.gamma_coinnum_coin_per_usd),
        "vega_usd_per_vol": float(v.vega_usd_per_vol),
        "theta_usd_per_day": float(v.theta_usd_per_year) / 365.0,
        "vanna_usdnum_coin_per_vol": vanna,
    }
    prefix = "options_" if is_option else "hedge_"
    vals[prefix + "delta_usdnum_coin"] = vals["delta_usdnum_coin"]
    vals[prefix + "delta_coinnum_coin"] = vals["delta_coinnum_coin"]
    row = np.zeros(len(GREEK_FIELDS))
    for k, x in vals.items():
        row[GREEK_FIELDS.index(k)] = x
    return row


def reference(state: State, underlying: str, now_ms: int) -> dict[int, np.ndarray]:
    """Per bucket: GREEK_FIELDS values summed from per-row `valuation` calls."""
    S = state.index[underlying]
    out: dict[int, np.ndarray] = {}

    def add(bucket: int, v: va.Valuation, is_option: bool) -> None:
        row = greek_row(v, is_option)
        out[bucket] = out.get(bucket, np.zeros(len(GREEK_FIELDS))) + row

    for name, q in state.qty.items():
        inst = parse_instrument_name(name)
        if inst.underlying != underlying or q == 0:
            continue
        kind = va.row_kind(inst)
        e = inst.expiry_ms
        b = state.ratio.get((underlying, e), 1.0) if e is not None else 1.0
        if kind.is_option:
            assert e is not None
            tau = (e - now_ms) / va.MS_PER_YEAR
            v = va.option_valuation(inst.is_call, q, S, inst.strike_usd, tau, state.vol[name], b)
            add(e, v, True)
            continue
        entry = state.entry[name]
        if kind in (va.RowKind.INVERSE_PERPETUAL, va.RowKind.INVERSE_FUTURE):
            v = va.inverse_future_valuation(q, S, entry, b)
        elif kind in (va.RowKind.LINEAR_PERPETUAL, va.RowKind.LINEAR_FUTURE):
            v = va.linear_future_valuation(q, S, entry, b)
        else:
            v = va.spot_valuation(q, S, entry)
        add(NO_EXPIRY if e is None else e, v, False)
    if state.balances.get(underlying):
        add(NO_EXPIRY, va.collateral_valuation(state.balances[underlying], S), False)
    return out


def vanna_reference(state: State, underlying: str, now_ms: int) -> float:
    S = state.index[underlying]
    total = 0.0
    for name, q in state.qty.items():
        inst = parse_instrument_name(name)
        if inst.underlying != underlying or not inst.is_option or q == 0:
            continue
        assert inst.expiry_ms is not None
        b = state.ratio.get((underlying, inst.expiry_ms), 1.0)
        tau = (inst.expiry_ms - now_ms) / va.MS_PER_YEAR
        g = black76(inst.is_call, b * S, inst.strike_usd, tau, state.vol[name])
        total += q * b * float(g.vanna)
    return total


def assert_matches(book: GreeksBook, state: State, underlying: str, now_ms: int) -> None:
    snap = book.underlying_snapshot(underlying, now_ms)
    ref = reference(state, underlying, now_ms)
    table = snap.by_expiry
    assert sorted(ref) == [int(e) for e in table.expiry_ms if int(e) in ref]
    for i, e in enumerate(table.expiry_ms.tolist()):
        want = ref.get(e, np.zeros(len(GREEK_FIELDS)))
        got = table.values[:, i]
        # scale per field: the bucket's gross size keeps near-zero nets honest
        for f, name in enumerate(GREEK_FIELDS):
            if name == "vanna_usdnum_coin_per_vol":
                continue
            tol = 1e-10 * max(
                1.0,
                abs(want[f]),
                abs(want[GREEK_FIELDS.index("value_usd")]) / state.index[underlying],
            )
            assert abs(got[f] - want[f]) <= tol, (name, e, got[f], want[f])
    total = sum(ref.values())
    for f, name in enumerate(GREEK_FIELDS):
        if name == "vanna_usdnum_coin_per_vol":
            continue
        assert getattr(snap.total, name) == pytest.approx(total[f], rel=1e-10, abs=1e-8), name
    assert snap.total.vanna_usdnum_coin_per_vol == pytest.approx(
        vanna_reference(state, underlying, now_ms), rel=1e-9, abs=1e-9
    )


def option_names(rng: np.random.Generator, underlying: str, S: float, count: int) -> list[str]:
    names: set[str] = set()
    for _ in range(100 * count):
        if len(names) == count:
            break
        exp = EXPIRIES[rng.integers(len(EXPIRIES))]
        step = 1000 if underlying == "BTC" else 50
        strike = int(round(S * math.exp(rng.normal(0, 0.35)) / step) * step)
        names.add(f"{underlying}-{exp}-{max(strike, step)}-{'CP'[rng.integers(2)]}")
    assert len(names) == count, "not enough distinct strikes for the requested count"
    return sorted(names)


HEDGES = {
    "BTC": ["BTC-PERPETUAL", "BTC-27NOV26", "BTC-26MAR27", "BTC_USDC-PERPETUAL", "BTC_USDC"],
    "ETH": ["ETH-PERPETUAL", "ETH-25DEC26", "ETH_USDC-PERPETUAL"],
}


def build(rng: np.random.Generator, n_opts: int = 150) -> tuple[GreeksBook, State]:
    book = GreeksBook()
    state = State()
    for und, S in (("BTC", 91_000.0), ("ETH", 3_050.0)):
        book.set_index(und, S)
        state.index[und] = S
        for e in EXPIRIES[1:]:
            r = float(rng.uniform(0.995, 1.03))
            book.set_forward(und, parse_expiry_ms(e), r * S)
            state.ratio[(und, parse_expiry_ms(e))] = r
        names = option_names(rng, und, S, n_opts)
        for name in names:
            inst = parse_instrument_name(name)
            book.add_instrument(inst)
            q = float(rng.choice([-1, 1]) * rng.integers(1, 200) * inst.min_amount)
            vol = float(rng.uniform(0.35, 1.2))
            book.set_option_vol(name, vol)
            book.set_position(name, q, AmountUnit.COIN)
            state.qty[name], state.vol[name] = q, vol
        for name in HEDGES[und]:
            inst = parse_instrument_name(name)
            book.add_instrument(inst)
            q = float(rng.uniform(-50, 50) * (inst.contract_size * 1000 if inst.inverse else 1))
            entry = float(S * rng.uniform(0.9, 1.1))
            book.set_position(name, q, inst.amount_unit, average_price=entry)
            state.qty[name], state.entry[name] = q, entry
        bal = float(rng.uniform(1, 100))
        book.set_balance(und, bal)
        state.balances[und] = bal
    return book, state


def test_book_matches_row_by_row_reference() -> None:
    book, state = build(np.random.default_rng(RNG_SEED))
    for und in ("BTC", "ETH"):
        assert_matches(book, state, und, NOW)
    snap = book.snapshot(NOW)
    assert [u.underlying for u in snap.underlyings] == ["BTC", "ETH"]
    assert all(u.complete for u in snap.underlyings)


def test_incremental_updates_match_reference_and_fresh_rebuild() -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    book, state = build(rng, n_opts=40)  # 40 < initial capacity; inserts force growth
    now = NOW
    for step in range(300):
        und = "BTC" if rng.random() < 0.6 else "ETH"
        r = rng.random()
        if r < 0.3:
            S = state.index[und] * float(math.exp(rng.normal(0, 0.01)))
            book.set_index(und, S)
            state.index[und] = S
        elif r < 0.55:
            name = option_names(rng, und, state.index[und], 1)[0]
            inst = parse_instrument_name(name)
            book.add_instrument(inst)
            vol = float(rng.uniform(0.3, 1.5))
            book.set_option_vol(name, vol)
            q = float(rng.integers(-30, 30) * inst.min_amount)
            book.set_position(name, q, AmountUnit.COIN)
            state.vol[name], state.qty[name] = vol, q
        elif r < 0.75:
            opts = [n for n in state.vol if n.startswith(und + "-")]
            name = opts[rng.integers(len(opts))]
            vol = float(rng.uniform(0.3, 1.5))
            book.set_option_vol(name, vol)
            state.vol[name] = vol
        elif r < 0.85:
            name = HEDGES[und][rng.integers(len(HEDGES[und]))]
            inst = parse_instrument_name(name)
            q = float(rng.integers(-100, 100) * inst.amount_step)
            book.set_position(name, q, inst.amount_unit, average_price=state.index[und])
            state.qty[name], state.entry[name] = q, state.index[und]
        elif r < 0.92:
            e = parse_expiry_ms(EXPIRIES[rng.integers(1, len(EXPIRIES))])
            ratio = float(rng.uniform(0.99, 1.04))
            book.set_forward_ratio(und, e, ratio)
            state.ratio[(und, e)] = ratio
        else:
            now += int(rng.integers(1, 60_000))
        if step % 25 == 0:
            assert_matches(book, state, und, now)
    for und in ("BTC", "ETH"):
        assert_matches(book, state, und, now)
    # a fresh book with the final state agrees
    fresh = GreeksBook()
    for und, S in state.index.items():
        fresh.set_index(und, S)
        fresh.set_balance(und, state.balances[und])
    for (und, e), ratio in state.ratio.items():
        fresh.set_forward_ratio(und, e, ratio)
    for name, q in state.qty.items():
        inst = parse_instrument_name(name)
        fresh.add_instrument(inst)
        if inst.is_option:
            fresh.set_option_vol(name, state.vol[name])
        fresh.set_position(name, q, inst.amount_unit, average_price=state.entry.get(name))
    for und in ("BTC", "ETH"):
        a, b = book.underlying_snapshot(und, now), fresh.underlying_snapshot(und, now)
        np.testing.assert_allclose(a.by_expiry.values, b.by_expiry.values, rtol=1e-9, atol=1e-9)


def _small_book() -> GreeksBook:
    book = GreeksBook()
    for name in ("BTC-21NOV26-90000-C", "BTC-27NOV26-95000-P", "BTC-PERPETUAL", "BTC-21NOV26"):
        book.add_instrument(parse_instrument_name(name))
    book.set_index("BTC", 90_000.0)
    book.set_option_vol("BTC-21NOV26-90000-C", 0.5)
    book.set_option_vol("BTC-27NOV26-95000-P", 0.55)
    book.set_position("BTC-21NOV26-90000-C", 10.0, AmountUnit.COIN)
    book.set_position("BTC-27NOV26-95000-P", -5.0, AmountUnit.COIN)
    book.set_position("BTC-PERPETUAL", -200_000.0, AmountUnit.USD)
    book.set_position("BTC-21NOV26", 90_000.0, AmountUnit.USD)
    return book


def test_settlement_window_projects_delta_without_expiring_contracts() -> None:
    book = _small_book()
    expiry = parse_expiry_ms("21NOV26")
    before = book.underlying_snapshot("BTC", expiry - 31 * 60_000)
    assert not before.in_settlement_window
    assert before.projected_delta_usdnum_coin == before.total.delta_usdnum_coin
    assert before.next_expiry_ms == expiry
    inside = book.underlying_snapshot("BTC", expiry - 29 * 60_000)
    assert inside.in_settlement_window
    table = inside.by_expiry
    i = table.expiry_ms.tolist().index(expiry)
    assert table.in_settlement_window[i] and table.in_settlement_window.sum() == 1
    for num in ("usd", "coin"):
        expiring = table.greeks(i).delta_coin(num)  # type: ignore[arg-type]
        assert expiring != 0.0
        assert inside.delta_coin(num) == pytest.approx(  # type: ignore[arg-type]
            inside.total.delta_coin(num) - expiring, rel=1e-12
        )  # type: ignore[arg-type]
        # Deribit's own figure decays the expiring delta linearly: 29 of 30 minutes left
        assert inside.venue_delta_coin(num) == pytest.approx(  # type: ignore[arg-type]
            inside.total.delta_coin(num) - expiring / 30, rel=1e-12
        )  # type: ignore[arg-type]
    assert before.venue_delta_coin("usd") == before.total.delta_usdnum_coin
    after = book.underlying_snapshot("BTC", expiry)
    assert not after.complete
    assert {q.instrument for q in after.quarantined} == {"BTC-21NOV26-90000-C", "BTC-21NOV26"}
    assert {q.reason for q in after.quarantined} == {"expired"}
    j = after.by_expiry.expiry_ms.tolist().index(expiry)
    assert np.all(after.by_expiry.values[:, j] == 0.0)
    assert after.next_expiry_ms == parse_expiry_ms("27NOV26")


def test_bad_input_is_refused_or_quarantined() -> None:
    book = _small_book()
    good = book.underlying_snapshot("BTC", NOW)
    for bad in (math.nan, 0.0, -1.0, math.inf):
        with pytest.raises(BadMarketDataError):
            book.set_index("BTC", bad)
    assert book.index_price("BTC") == 90_000.0
    with pytest.raises(UnknownInstrumentError, match="BTC-FOO"):
        book.set_position("BTC-FOO", 1.0, AmountUnit.COIN)
    with pytest.raises(BookError, match="amount is in usd"):
        book.set_position("BTC-PERPETUAL", 1.0, AmountUnit.COIN)
    with pytest.raises(BookError, match="finite"):
        book.set_position("BTC-PERPETUAL", math.nan, AmountUnit.USD)
    with pytest.raises(BadMarketDataError):
        book.set_forward("BTC", parse_expiry_ms("27NOV26"), -5.0)
    assert book.underlying_snapshot("BTC", NOW).total == good.total
    # a NaN vol quarantines that option: left out, flagged, never NaN in the totals
    book.set_option_vol("BTC-27NOV26-95000-P", math.nan)
    snap = book.underlying_snapshot("BTC", NOW)
    assert not snap.complete
    assert snap.quarantined[0].instrument == "BTC-27NOV26-95000-P"
    assert all(math.isfinite(getattr(snap.total, f)) for f in GREEK_FIELDS)
    # an option position with no vol yet is quarantined as well
    name = "BTC-4DEC26-100000-C"
    book.add_instrument(parse_instrument_name(name))
    book.set_position(name, 1.0, AmountUnit.COIN)
    reasons = dict(
        (q.instrument, q.reason) for q in book.underlying_snapshot("BTC", NOW).quarantined
    )
    assert reasons[name] == "no mark vol"
    book.set_option_vol(name, 0.6)
    book.set_option_vol("BTC-27NOV26-95000-P", 0.55)
    assert book.underlying_snapshot("BTC", NOW).complete
    # positions without an index price are reported as unpriced, not valued
    book.add_instrument(parse_instrument_name("ETH-PERPETUAL"))
    with pytest.raises(BookError, match="average_price"):
        book.set_position("ETH-PERPETUAL", 100.0, AmountUnit.USD)
    book.set_position("ETH-PERPETUAL", 100.0, AmountUnit.USD, average_price=3000.0)
    assert [q.instrument for q in book.snapshot(NOW).unpriced] == ["ETH"]


def test_deribit_conventions_inverse_perp_and_collateral() -> None:
    book = GreeksBook(
        [parse_instrument_name("BTC-PERPETUAL"), parse_instrument_name("BTC-27NOV26-100000-C")]
    )
    book.set_index("BTC", 100_000.0)
    book.set_balance("BTC", 2.0)
    book.apply_position(
        Position(
            "deribit",
            "main",
            "BTC-PERPETUAL",
            -50_000.0,
            AmountUnit.USD,
            NOW,
            average_price=80_000.0,
        )
    )
    snap = book.underlying_snapshot("BTC", NOW)
    perp = {h.kind: h for h in snap.hedges}
    # coin numeraire: size_currency = size / price, independent of the entry
    assert perp[va.RowKind.INVERSE_PERPETUAL].delta_coinnum_coin == pytest.approx(-0.5)
    assert perp[va.RowKind.INVERSE_PERPETUAL].delta_usdnum_coin == pytest.approx(-50_000 / 80_000)
    assert perp[va.RowKind.COLLATERAL].delta_usdnum_coin == 2.0
    assert perp[va.RowKind.COLLATERAL].delta_coinnum_coin == 0.0
    # a long inverse call: coin numeraire delta = BS delta - premium in coin
    book.set_option_vol("BTC-27NOV26-100000-C", 0.5)
    book.set_position("BTC-27NOV26-100000-C", 1.0, AmountUnit.COIN)
    snap2 = book.underlying_snapshot("BTC", NOW)
    tau = (parse_expiry_ms("27NOV26") - NOW) / va.MS_PER_YEAR
    g = black76(True, 100_000.0, 100_000.0, tau, 0.5)
    assert snap2.total.options_delta_usdnum_coin == pytest.approx(float(g.delta), rel=1e-12)
    assert snap2.total.options_delta_coinnum_coin == pytest.approx(
        float(g.delta) - float(g.price) / 100_000.0, rel=1e-12
    )


def test_mark_price_implies_the_vol() -> None:
    name = "BTC-27NOV26-100000-P"
    book = GreeksBook([parse_instrument_name(name)])
    book.set_index("BTC", 95_000.0)
    tau = (parse_expiry_ms("27NOV26") - NOW) / va.MS_PER_YEAR
    premium_coin = float(black76(False, 95_000.0, 100_000.0, tau, 0.62).price) / 95_000.0
    vol = book.set_option_mark_price(name, premium_coin, NOW)
    assert vol == pytest.approx(0.62, rel=1e-8)
    book.set_position(name, 3.0, AmountUnit.COIN)
    assert book.underlying_snapshot("BTC", NOW).total.value_usd == pytest.approx(
        3 * premium_coin * 95_000.0, rel=1e-9
    )
    # below intrinsic: no vol, quarantined with the reason
    assert math.isnan(book.set_option_mark_price(name, 0.0, NOW))
    (q,) = book.underlying_snapshot("BTC", NOW).quarantined
    assert "below_intrinsic" in q.reason


def test_scenario_grid() -> None:
    book, state = build(np.random.default_rng(RNG_SEED + 2), n_opts=60)
    grid = book.scenario_grid("BTC", NOW)
    j0, s0 = grid.vol_shocks.index(0.0), grid.spot_shocks.index(0.0)
    assert grid.pnl_usd.shape == (5, 9)
    assert grid.pnl_usd[j0, s0] == pytest.approx(0.0, abs=1e-6)
    in_snap = book.snapshot(NOW, with_scenarios=True).scenario("BTC")
    np.testing.assert_array_equal(in_snap.pnl_usd, grid.pnl_usd)
    # full revaluation: compare one corner against the reference at shocked inputs
    shocked = State(**{k: dict(v) for k, v in state.__dict__.items()})
    shocked.index["BTC"] *= 1.10
    shocked.vol = {n: max(v - 0.10, 0.01) for n, v in state.vol.items()}
    base_v = sum(reference(state, "BTC", NOW).values())[0]
    shocked_v = sum(reference(shocked, "BTC", NOW).values())[0]
    j, s = grid.vol_shocks.index(-0.10), grid.spot_shocks.index(0.10)
    assert grid.pnl_usd[j, s] == pytest.approx(shocked_v - base_v, rel=1e-9)
    assert grid.pnl_coin[j, s] == pytest.approx(
        shocked_v / shocked.index["BTC"] - base_v / state.index["BTC"], rel=1e-9
    )
    np.testing.assert_allclose(
        grid.by_expiry_pnl_usd.sum(axis=0), grid.pnl_usd, rtol=1e-10, atol=1e-6
    )
    # small spot shocks agree with delta and gamma (USD numeraire)
    snap = book.underlying_snapshot("BTC", NOW)
    tiny = book.scenario_grid("BTC", NOW, spot_shocks=(-1e-4, 1e-4), vol_shocks=(0.0,))
    S = state.index["BTC"]
    fd_delta = (tiny.pnl_usd[0, 1] - tiny.pnl_usd[0, 0]) / (2e-4 * S)
    assert fd_delta == pytest.approx(snap.total.delta_usdnum_coin, rel=1e-5, abs=1e-4)


def test_collateral_only_grid_is_linear_in_usd_and_flat_in_coin() -> None:
    book = GreeksBook()
    book.set_index("ETH", 3_000.0)
    book.set_balance("ETH", 10.0)
    grid = book.scenario_grid("ETH", NOW)
    np.testing.assert_allclose(grid.pnl_usd[2], 10.0 * 3_000.0 * np.array(grid.spot_shocks))
    np.testing.assert_allclose(grid.pnl_coin, 0.0, atol=1e-12)


def test_many_rows_and_growth_keep_name_index_consistent() -> None:
    rng = np.random.default_rng(3)
    book = GreeksBook()
    book.set_index("BTC", 90_000.0)
    names = option_names(rng, "BTC", 90_000.0, 500)
    rng.shuffle(names)  # inserted out of expiry order
    for i, name in enumerate(names):
        book.add_instrument(parse_instrument_name(name))
        book.set_option_vol(name, 0.5)
        book.set_position(name, float(i + 1) / 10, AmountUnit.COIN)
    for i, name in enumerate(names):
        assert book.position(name) == pytest.approx(float(i + 1) / 10)
    exp = book._und["BTC"].options.exp[:500]
    assert np.all(np.diff(exp) >= 0)


def test_caching_respects_changes_and_time_tolerance() -> None:
    book = _small_book()
    book.time_tolerance_ms = 1_000
    a = book.underlying_snapshot("BTC", NOW)
    assert book.underlying_snapshot("BTC", NOW + 500) is a
    assert book.underlying_snapshot("BTC", NOW + 1_500) is not a
    b = book.underlying_snapshot("BTC", NOW + 1_500)
    book.set_index("BTC", 91_000.0)
    assert book.underlying_snapshot("BTC", NOW + 1_500) is not b
    assert isinstance(Instrument, type)


def test_threaded_reprice_gives_identical_numbers() -> None:
    from hedgerd.book import greeks_book as gb

    rng = np.random.default_rng(11)
    book = GreeksBook()
    book.set_index("BTC", 90_000.0)
    names = {
        option_name("BTC", parse_expiry_ms(EXPIRIES[i % 5]), 40_000 + 10 * i, bool(i % 3))
        for i in range(5_000)
    }
    for name in sorted(names):
        book.add_instrument(parse_instrument_name(name))
        book.set_option_vol(name, float(rng.uniform(0.3, 1.2)))
        book.set_position(name, float(rng.integers(-50, 50)) / 10, AmountUnit.COIN)
    one = book.underlying_snapshot("BTC", NOW).by_expiry.values
    try:
        gb.set_threads(2)
        two = book.underlying_snapshot("BTC", NOW + 1).by_expiry.values
        back = book.underlying_snapshot("BTC", NOW).by_expiry.values
    finally:
        gb.set_threads(1)
    np.testing.assert_array_equal(one, back)
    np.testing.assert_allclose(one, two, rtol=1e-6)  # 1 ms later: close, not equal
    with pytest.raises(ValueError):
        gb.set_threads(0)


def test_closed_positions_leave_the_snapshot() -> None:
    name = "ETH-27NOV26-3000-C"
    book = GreeksBook([parse_instrument_name(name)])
    book.set_index("ETH", 3_000.0)
    book.set_option_vol(name, 0.7)
    assert book.snapshot(NOW).underlyings == ()
    book.set_position(name, 2.0, AmountUnit.COIN)
    book.set_position(name, 3.0, AmountUnit.COIN)
    assert [u.underlying for u in book.snapshot(NOW).underlyings] == ["ETH"]
    book.set_position(name, 0.0, AmountUnit.COIN)
    assert book.snapshot(NOW).underlyings == ()
    assert book.position(name) == 0.0


def test_closed_rows_are_compacted_and_the_book_stays_right() -> None:
    rng = np.random.default_rng(5)
    book, state = build(rng, n_opts=600)
    opts = book._und["BTC"].options
    btc = [n for n in state.vol if n.startswith("BTC-")]
    rng.shuffle(btc)
    for name in btc[:400]:
        book.set_position(name, 0.0, AmountUnit.COIN)
        state.qty[name] = 0.0
    assert opts.n < 600  # compacted at least once
    assert_matches(book, state, "BTC", NOW)
    for name in btc[400:]:
        assert book.position(name) == state.qty[name]
    # a closed option comes back: quarantined until its vol arrives again, then exact
    name = btc[0]
    book.set_position(name, 1.0, AmountUnit.COIN)
    state.qty[name] = 1.0
    reasons = {q.instrument: q.reason for q in book.underlying_snapshot("BTC", NOW).quarantined}
    if name not in reasons:  # its row survived (not compacted yet)
        assert opts.row_of(name) is not None
    book.set_option_vol(name, state.vol[name])
    assert_matches(book, state, "BTC", NOW)


# ---- the tick path is a full reprice: exact against the row-by-row reference ---------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DELTA_FIELDS = [f for f in GREEK_FIELDS if "delta" in f]
_GAMMA_FIELDS = [f for f in GREEK_FIELDS if "gamma" in f]


def reference_with_scale(
    state: State, underlying: str, now_ms: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per bucket: (GREEK_FIELDS summed row by row from `valuation` and black76 for vanna,
    the scale of rounding in that sum). The book sums ``q b S N(d1)``, ``q K N(d2)`` and
    ``alpha S``, ``beta`` before they cancel, so the scale adds those notionals."""
    S = state.index[underlying]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    fields = {f: i for i, f in enumerate(GREEK_FIELDS)}

    def add(bucket: int, v: va.Valuation, vanna: float, notional_usd: float, opt: bool) -> None:
        row = greek_row(v, opt, vanna)
        scale = np.abs(row)
        scale[fields["value_usd"]] += notional_usd
        for f in _DELTA_FIELDS:
            scale[fields[f]] += notional_usd / S
        for f in _GAMMA_FIELDS:
            scale[fields[f]] += notional_usd / S**2
        total, gross = out.get(bucket, (np.zeros_like(row), np.zeros_like(row)))
        out[bucket] = (total + row, gross + scale)

    for name, q in state.qty.items():
        inst = parse_instrument_name(name)
        if inst.underlying != underlying or q == 0:
            continue
        kind = va.row_kind(inst)
        e = inst.expiry_ms
        b = state.ratio.get((underlying, e), 1.0) if e is not None else 1.0
        if kind.is_option:
            assert e is not None and inst.strike_usd is not None
            tau = (e - now_ms) / va.MS_PER_YEAR
            vol = state.vol[name]
            v = va.option_valuation(inst.is_call, q, S, inst.strike_usd, tau, vol, b)
            vanna = q * b * float(black76(inst.is_call, b * S, inst.strike_usd, tau, vol).vanna)
            add(e, v, vanna, abs(q) * (b * S + inst.strike_usd), True)
            continue
        entry = state.entry[name]
        if kind in (va.RowKind.INVERSE_PERPETUAL, va.RowKind.INVERSE_FUTURE):
            v = va.inverse_future_valuation(q, S, entry, b)
        elif kind in (va.RowKind.LINEAR_PERPETUAL, va.RowKind.LINEAR_FUTURE):
            v = va.linear_future_valuation(q, S, entry, b)
        else:
            v = va.spot_valuation(q, S, entry)
        alpha, beta = va.affine_coefficients(kind, q, entry, b)
        add(NO_EXPIRY if e is None else e, v, 0.0, abs(float(alpha)) * S + abs(float(beta)), False)
    if state.balances.get(underlying):
        bal = state.balances[underlying]
        add(NO_EXPIRY, va.collateral_valuation(bal, S), 0.0, abs(bal) * S, False)
    return out


def assert_exact(book: GreeksBook, state: State, underlying: str, now_ms: int) -> None:
    """Every field of every bucket and the totals within 1e-12 of the rounding scale."""
    snap = book.underlying_snapshot(underlying, now_ms)
    ref = reference_with_scale(state, underlying, now_ms)
    table = snap.by_expiry
    zero = np.zeros(len(GREEK_FIELDS))
    total, gross = zero.copy(), zero.copy()
    for i, e in enumerate(table.expiry_ms.tolist()):
        want, scale = ref.get(e, (zero, zero))
        err = np.abs(table.values[:, i] - want)
        bad = err > 1e-12 * scale + 1e-300
        assert not bad.any(), [
            (GREEK_FIELDS[f], e, table.values[f, i], want[f], scale[f]) for f in np.flatnonzero(bad)
        ]
        total, gross = total + want, gross + scale
    got_total = np.array([getattr(snap.total, f) for f in GREEK_FIELDS])
    assert np.all(np.abs(got_total - total) <= 1e-12 * gross + 1e-300)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    n_opts=st.integers(1, 60),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["BTC", "ETH"]),
            st.floats(-0.3, 0.3),  # log move of the index
            st.integers(0, 9_000_000),  # ms of clock: 8 steps stay before the first expiry
            st.integers(0, 9),  # an update between ticks (6..9) or none
            st.floats(0.0, 1.0),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_tick_path_equals_a_full_reprice_on_random_books_and_ticks(
    seed: int, n_opts: int, steps: list[tuple[str, float, int, int, float]]
) -> None:
    rng = np.random.default_rng(seed)
    book, state = build(rng, n_opts=n_opts)
    now = NOW
    for und, move, dt, op, x in steps:
        if op == 6:  # a mark vol (Deribit vols span ~5 % to 300 %)
            name = sorted(n for n in state.vol if n.startswith(und + "-"))[int(x * n_opts * 0.99)]
            vol = 0.05 + 2.95 * x
            book.set_option_vol(name, vol)
            state.vol[name] = vol
        elif op == 7:  # a position, possibly closed (its row may be compacted later)
            name = sorted(n for n in state.vol if n.startswith(und + "-"))[int(x * n_opts * 0.99)]
            q = round((x - 0.5) * 40.0, 1)
            book.set_position(name, q, AmountUnit.COIN)
            state.qty[name] = q
        elif op == 8:  # an expiry's forward
            e = parse_expiry_ms(EXPIRIES[1 + int(x * (len(EXPIRIES) - 1.01))])
            book.set_forward_ratio(und, e, 0.98 + 0.06 * x)
            state.ratio[(und, e)] = 0.98 + 0.06 * x
        elif op == 9:  # a hedge
            name = HEDGES[und][int(x * (len(HEDGES[und]) - 0.01))]
            inst = parse_instrument_name(name)
            q = round((x - 0.5) * 100) * inst.amount_step
            book.set_position(name, q, inst.amount_unit, average_price=state.index[und] * 1.01)
            state.qty[name], state.entry[name] = q, state.index[und] * 1.01
        S = state.index[und] * math.exp(move)
        book.set_index(und, S)
        state.index[und] = S
        now += dt
        assert_exact(book, state, und, now)
    assert_exact(book, state, "ETH" if steps[-1][0] == "BTC" else "BTC", now)


@pytest.mark.parametrize("S", [1e-30, 1e-3, 1e3, 1e30])
def test_extreme_index_and_tiny_vol_at_the_last_millisecond_stay_finite(S: float) -> None:
    """|d| up to ~1e11 (vol 1e-4, 1 ms to expiry, absurd index): saturated, never NaN."""
    book = GreeksBook()
    call, put = "BTC-21NOV26-90000-C", "BTC-21NOV26-90000-P"
    for name in (call, put):
        book.add_instrument(parse_instrument_name(name))
        book.set_option_vol(name, 1e-4)
        book.set_position(name, 1.0, AmountUnit.COIN)
    book.set_index("BTC", S)
    snap = book.underlying_snapshot("BTC", parse_expiry_ms("21NOV26") - 1)
    t = snap.total
    assert all(math.isfinite(getattr(t, f)) for f in GREEK_FIELDS)
    # call + put on the same strike: delta 2 N(d1) - 1 = ±1, value |S - K|
    assert t.options_delta_usdnum_coin == (1.0 if S > 90_000 else -1.0)
    assert t.value_usd == pytest.approx(abs(S - 90_000.0), rel=1e-12)


def test_option_arrays_give_the_books_own_gamma() -> None:
    # Black–Scholes on the index over `option_arrays` (strike / forward ratio, quantity x
    # ratio, each option's vol) is the book's USD-numeraire option gamma: the averaged-gamma
    # band (`hedging.kernel.horizon_gamma`) at a zero horizon sees what the snapshot reports.
    from hedgerd.hedging.kernel import gamma_ahead

    book, _state = build(np.random.default_rng(RNG_SEED + 7), n_opts=60)
    for und in ("BTC", "ETH"):
        snap = book.underlying_snapshot(und, NOW)
        o = book.option_arrays(und, NOW)
        assert len(o.qty_coin) > 0 and np.all(o.tau_years > 0)
        got = gamma_ahead((0.0, "signed"), o, snap.index_price_usd, 0.5)
        # hedges (perpetuals, futures, collateral) have no gamma in the USD numeraire
        assert got == pytest.approx(snap.total.gamma_usdnum_coin_per_usd, rel=1e-9)
        # later than every expiry: nothing left
        assert len(book.option_arrays(und, NOW + 10 * 365 * 86_400_000).qty_coin) == 0


def test_option_trades_give_the_change_of_the_books_option_delta() -> None:
    # The option flow's delta jumps (`hedging.flow`): each option position change, priced
    # now, is the change of the snapshot's USD-numeraire options delta; taken once.
    book, _state = build(np.random.default_rng(RNG_SEED + 11), n_opts=30)
    book.take_option_trades("BTC", NOW)  # the load: not flow
    before = book.underlying_snapshot("BTC", NOW).total.options_delta_usdnum_coin
    name = option_name("BTC", parse_expiry_ms("27NOV26"), 95_123, True)
    book.add_instrument(parse_instrument_name(name))
    book.set_option_vol(name, 0.55)
    book.set_position(name, -2.0, AmountUnit.COIN)
    book.set_position(name, -3.0, AmountUnit.COIN)  # two fills before an evaluation
    after = book.underlying_snapshot("BTC", NOW).total.options_delta_usdnum_coin
    jumps = book.take_option_trades("BTC", NOW)
    assert len(jumps) == 2 and jumps[0] == pytest.approx(2.0 * jumps[1])
    assert sum(jumps) == pytest.approx(after - before, rel=1e-6)
    assert book.take_option_trades("BTC", NOW) == []


def test_option_trades_nobody_takes_are_bounded() -> None:
    # A book whose underlying is never evaluated keeps only the newest changes.
    from hedgerd.book import greeks_book

    book, _state = build(np.random.default_rng(RNG_SEED + 12), n_opts=5)
    book.take_option_trades("BTC", NOW)
    name = option_name("BTC", parse_expiry_ms("27NOV26"), 95_123, True)
    book.add_instrument(parse_instrument_name(name))
    book.set_option_vol(name, 0.55)
    for k in range(greeks_book._MAX_OPTION_TRADES + 5):
        book.set_position(name, float(k % 2 + 1), AmountUnit.COIN)
    assert len(book.take_option_trades("BTC", NOW)) == greeks_book._MAX_OPTION_TRADES
