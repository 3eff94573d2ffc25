"""OKX's own swap deltas against hedgerd's (book/valuation.py), with a swap basis: the
differences are exactly what the conventions say. OKX's `deltaPA`/`deltaBS` of a swap is the
contracts' coin: inverse `sz x ctVal / mark`, linear `sz x ctVal`. hedgerd values perpetuals at
the index (`b` = 1): the inverse swap's coin-numeraire delta is `N / S`, the venue's times
(1 + basis); its USD-numeraire delta `N / entry` is the venue's `deltaPA` plus the swap's
floating coin P&L (what `eq` adds); the linear swap's USD-numeraire delta is the venue's
`deltaPA`, its coin-numeraire delta that less the floating USD P&L at the index over S."""

from __future__ import annotations

import pytest

from hedgerd.book.valuation import inverse_future_valuation, linear_future_valuation
from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import build_scenario
from hedgerd.sim.okx import views
from hedgerd.sim.world import SimWorld
from pinned_clock import TEST_START_MS

BASIS_BPS = 12.0


def test_swap_deltas_differ_from_hedgerds_by_the_conventions_only() -> None:
    sc = build_scenario(None, seed=9, tick_ms=60_000, flow_rate_per_min=0, start_ms=TEST_START_MS)
    data = sc.model_dump()
    data["venues"]["okx"].update(swap_basis_bps=BASIS_BPS)
    sc = type(sc).model_validate(data)
    world = SimWorld.build(sc, SimClock(sc.start_ms, stepped=True), ("deribit", "okx"))
    okx = world.okx
    assert okx is not None
    okx.add_account("k", "s", "p", name="acct")
    acct = okx.accounts["acct"]
    inv, lin = okx.instruments["BTC-USD-SWAP"], okx.instruments["BTC-USDT-SWAP"]
    okx.book_trade("acct", inv.inst_id, "buy", 50, 90_000.0)  # 5,000 USD
    okx.book_trade("acct", lin.inst_id, "sell", 2, 91_000.0)  # 0.02 BTC
    for _ in range(3):  # at several prices
        world.clock.advance(600_000)
        world.deribit.advance_to(world.clock.now_ms())
        S = okx.index_price("BTC")
        assert okx.mark_price(inv) == pytest.approx(S * (1 + BASIS_BPS * 1e-4), rel=1e-12)
        p_inv = views.position_json(okx, acct, inv, acct.positions[inv.inst_id])
        p_lin = views.position_json(okx, acct, lin, acct.positions[lin.inst_id])
        ours_inv = inverse_future_valuation(5_000.0, S, 90_000.0)
        ours_lin = linear_future_valuation(-0.02, S, 91_000.0)
        # inverse: the venue divides by its mark, hedgerd by the index
        # a swap position carries no Greeks (as in ccxt's OKX captures): its delta is the
        # part account/greeks adds for it
        assert p_inv["deltaPA"] == p_inv["deltaBS"] == p_lin["deltaPA"] == ""
        pa_inv = views.coin_delta(okx, inv, acct.positions[inv.inst_id].size)
        assert float(ours_inv.delta_coinnum_coin) == pytest.approx(
            pa_inv * (1 + BASIS_BPS * 1e-4), rel=1e-9
        )
        assert float(ours_inv.delta_usdnum_coin) == pytest.approx(
            pa_inv + okx.upl(inv, acct.positions[inv.inst_id]), rel=1e-9
        )
        # linear: the contracts' coin; hedgerd's coin numeraire takes out V/S
        pa_lin = views.coin_delta(okx, lin, acct.positions[lin.inst_id].size)
        assert pa_lin == pytest.approx(-0.02, rel=1e-12)
        assert float(ours_lin.delta_usdnum_coin) == pytest.approx(pa_lin, rel=1e-12)
        v_index = -0.02 * (S - 91_000.0)
        assert float(ours_lin.delta_coinnum_coin) == pytest.approx(pa_lin - v_index / S, rel=1e-9)
        g = views.account_greeks_json(okx, acct, "BTC")
        assert float(g["deltaPA"]) == float(g["deltaBS"])
        assert float(g["deltaPA"]) == pytest.approx(pa_inv + pa_lin, rel=1e-9)
