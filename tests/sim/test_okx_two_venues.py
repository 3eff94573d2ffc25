"""One index, two venues, each with its own configured perpetual basis and funding: at every
simulated tick both venues' BTC index agree; OKX's swap marks at its `swap_basis_bps` over
that index and Deribit's perpetual at its own premium; over a funding day each venue's long
perpetual pays that venue's funding, and only it (OKX: `funding_rate_8h` at 00/08/16 UTC on
its swap's notional at the mark; Deribit: the premium beyond the dead zone, accrued every
tick at the index)."""

from __future__ import annotations

import pytest

from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import build_scenario
from hedgerd.sim.settlement import EIGHT_HOURS_MS
from hedgerd.sim.world import SimWorld
from pinned_clock import TEST_START_MS

OKX_BASIS_BPS, OKX_FUNDING_8H = 12.0, -0.0003  # OKX: shorts pay
DERIBIT_PREMIUM_BPS = 30.0  # Deribit: a fixed premium (no premium noise), longs pay


def _world() -> tuple[SimWorld, float]:
    sc = build_scenario(None, seed=7, tick_ms=60_000, flow_rate_per_min=0, start_ms=TEST_START_MS)
    data = sc.model_dump()
    data["venues"]["okx"].update(swap_basis_bps=OKX_BASIS_BPS, funding_rate_8h=OKX_FUNDING_8H)
    data["funding"].update(premium_mean_bps=DERIBIT_PREMIUM_BPS, premium_vol_bps=0.0)
    sc = type(sc).model_validate(data)
    world = SimWorld.build(sc, SimClock(sc.start_ms, stepped=True), ("deribit", "okx"))
    assert world.okx is not None
    world.okx.add_account("k", "s", "p", name="acct")
    return world, sc.funding.dead_zone


def test_one_index_each_venue_its_basis_and_its_funding() -> None:
    world, dz = _world()
    okx, deribit = world.okx, world.deribit
    assert okx is not None
    swap = okx.instruments["BTC-USD-SWAP"]
    perp = deribit.catalog.get("BTC-PERPETUAL")
    assert perp is not None
    d_name = deribit.add_account("dk", "ds").account_id
    d_acct = deribit.accounts[d_name]
    o_acct = okx.accounts["acct"]
    okx.book_trade("acct", "BTC-USD-SWAP", "buy", 50, okx.mark_price(swap))  # 5,000 USD
    deribit.book_trade(d_name, "BTC-PERPETUAL", "buy", 5_000)  # 5,000 USD
    deribit_rate = DERIBIT_PREMIUM_BPS * 1e-4 - dz
    o_cash, d_cash = o_acct.cash["BTC"], d_acct.balances["BTC"]
    ticks: list[tuple[int, float]] = []
    okx_paid: list[float] = []
    deribit_paid: list[float] = []

    def each_tick(t: int) -> None:
        nonlocal o_cash, d_cash
        idx = deribit.index_price("BTC")
        assert okx.index_price("BTC") == idx  # one index
        assert okx.mark_price(swap) == pytest.approx(idx * (1 + OKX_BASIS_BPS * 1e-4), rel=1e-12)
        assert deribit.mark_price(perp) == pytest.approx(
            idx * (1 + DERIBIT_PREMIUM_BPS * 1e-4), rel=1e-12
        )
        ticks.append((t, idx))
        okx_paid.append(o_acct.cash["BTC"] - o_cash)
        deribit_paid.append(d_acct.balances["BTC"] - d_cash)
        o_cash, d_cash = o_acct.cash["BTC"], d_acct.balances["BTC"]

    deribit.followers.append(each_tick)
    start = world.clock.now_ms()
    world.clock.advance(24 * 3_600_000)
    deribit.advance_to(world.clock.now_ms())
    assert len(ticks) == 24 * 60 and len({i for _, i in ticks}) > 100  # the index moved
    # OKX: three fundings in a day, each of 50 x 100 USD / mark x rate; shorts pay, so the
    # long receives; nothing between them
    okx_events = [(t, p) for (t, _), p in zip(ticks, okx_paid, strict=True) if p != 0]
    assert len(okx_events) == 3
    for t, paid in okx_events:
        assert t % EIGHT_HOURS_MS == 0
        assert paid > 0
        idx_t = dict(ticks)[t]
        want = -50 * 100 / (idx_t * (1 + OKX_BASIS_BPS * 1e-4)) * OKX_FUNDING_8H
        assert paid == pytest.approx(want, rel=1e-9), t
    # Deribit: every tick, 5,000 USD / index x its rate x the tick's share of 8 h; longs pay
    prev = start
    for (t, idx), paid in zip(ticks, deribit_paid, strict=True):
        want = -5_000 / idx * deribit_rate * (t - prev) / EIGHT_HOURS_MS
        assert paid == pytest.approx(want, rel=1e-9)
        prev = t
    assert sum(deribit_paid) < 0 < sum(okx_paid)
