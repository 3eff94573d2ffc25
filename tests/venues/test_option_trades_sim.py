"""`fetch_option_trades` (the option flow's seed, `portfolio.flow_seed`) with the real ccxt
clients against the simulator: Deribit's `get_user_trades_by_currency_and_time` with
`kind=option` from both of its stores (the last 24 h, and the historical one) and paged,
OKX's `fills-history` with `instType=OPTION` paged by `billId`; options only, each with the
vol, index and forward the venue reported, signed coin, bounded to the newest `limit`.

The simulator runs in stepped time (one-minute ticks) from the pinned test start; the truth
is its engine's own trade records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hedgerd.config import VenueSettings
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.venues.deribit import DeribitVenue
from hedgerd.venues.okx.venue import OkxVenue
from pinned_clock import TEST_START_MS

MM_KEY, MM_SECRET = "sim-mm-key", "sim-mm-secret"
OKX_KEY, OKX_SECRET, PASSPHRASE = "okx-key", "okx-secret", "okxPass1"
DAY_MS = 86_400_000
WINDOW_MS = 3 * DAY_MS


def _scenario() -> Scenario:
    scenario = load_scenario(None, seed=5)
    flow = scenario.flow.model_copy(update={"enabled": False})
    return scenario.model_copy(update={"flow": flow, "tick_ms": 60_000, "start_ms": TEST_START_MS})


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        scenario=_scenario(),
        stepped=True,
        venues=("deribit", "okx"),
        accounts=[(OKX_KEY, OKX_SECRET)],
        api_passphrase=PASSPHRASE,
    ) as s:
        yield s


def _btc_options(sim: Simulator, count: int) -> list[str]:
    """`count` BTC options a week or more out (Deribit names)."""
    engine: Any = sim.engine
    later = sim.now_ms() + 7 * DAY_MS
    names = sorted(
        i.name
        for i in engine.catalog.active()
        if i.is_option and i.currency == "BTC" and i.expiry_ms >= later
    )
    return names[:count]


async def test_deribit_option_trades_from_both_stores_paged_and_bounded(sim: Simulator) -> None:
    engine: Any = sim.engine
    names = _btc_options(sim, 3)
    engine.book_trade("mm", names[0], "sell", 2.0)  # to fall out of the 24 h store
    sim.advance(30 * 3_600_000)
    engine.book_trade("mm", "BTC-PERPETUAL", "buy", 1_000.0)  # not an option
    for i in range(1_100):  # more than a page of 1,000, a few to a minute
        engine.book_trade("mm", names[1 + i % 2], "buy" if i % 3 else "sell", 0.1)
        if i % 7 == 6:
            sim.advance(60_000)
    sim.advance(120_000)
    venue = DeribitVenue(
        "d",
        VenueSettings(
            mode="sim",
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            api_key=MM_KEY,
            api_secret=MM_SECRET,
            underlyings=("BTC",),
        ),
        clock_ms=sim.now_ms,
    )
    await venue.connect()
    try:
        now = sim.now_ms()
        got = await venue.fetch_option_trades("BTC", now - WINDOW_MS, now, 10_000)
        truth = [t for t in engine.accounts["mm"].trades if t.inst.is_option]
        assert [t.trade_id for t in got] == [t.trade_id for t in truth]
        for ours, t in zip(got, truth, strict=True):
            assert ours.instrument == t.inst.name and ours.ts_ms == t.timestamp
            assert ours.amount_coin == (t.amount if t.direction == "buy" else -t.amount)
            assert ours.vol == pytest.approx(t.iv, abs=5e-5)  # two decimals of a percent
            assert ours.index_usd == pytest.approx(t.index_price, rel=1e-12)
            assert ours.forward_usd == pytest.approx(t.underlying_price, rel=1e-12)
        newest = await venue.fetch_option_trades("BTC", now - WINDOW_MS, now, 500)
        assert [t.trade_id for t in newest] == [t.trade_id for t in truth[-500:]]
        before = await venue.fetch_option_trades("BTC", now - WINDOW_MS, truth[0].timestamp, 10)
        assert [t.trade_id for t in before] == [truth[0].trade_id]
    finally:
        await venue.close()


async def test_okx_option_fills_with_their_mark_vol_and_forward_paged(sim: Simulator) -> None:
    okx = sim.okx
    acct = next(a for a in okx.accounts.values() if a.creds.api_key == OKX_KEY)
    later = sim.now_ms() + 7 * DAY_MS
    options = sorted(
        i.inst_id
        for i in okx.instruments.values()
        if i.is_option and i.base == "BTC" and i.state == "live" and (i.expiry_ms or 0) >= later
    )[:2]
    okx.book_trade(acct.account_id, "BTC-USD-SWAP", "buy", 10, None)  # not an option
    for i in range(150):  # a page and a half of 100
        okx.book_trade(acct.account_id, options[i % 2], "sell" if i % 2 else "buy", 3, None)
        if i % 50 == 49:
            sim.advance(60_000)
    venue = OkxVenue(
        "o",
        VenueSettings(
            exchange="okx",
            mode="sim",
            rest_url=sim.rest_url,
            ws_url=sim.okx_ws_url,
            api_key=OKX_KEY,
            api_secret=OKX_SECRET,
            api_passphrase=PASSPHRASE,
            underlyings=("BTC",),
            account="okx-main",
        ),
        clock_ms=sim.now_ms,
        private_stream=False,
    )
    await venue.connect()
    try:
        now = sim.now_ms()
        got = await venue.fetch_option_trades("BTC", now - WINDOW_MS, now, 10_000)
        truth = [f for f in acct.fills if f.order.okx is not None and f.order.okx.is_option]
        assert [t.trade_id for t in got] == [f.trade_id for f in truth]
        for ours, f in zip(got, truth, strict=True):
            assert f.order.okx is not None and f.mark_vol is not None
            coin = f.sz * f.order.okx.ct_mult
            assert ours.amount_coin == pytest.approx(coin if f.side == "buy" else -coin)
            assert ours.vol == pytest.approx(f.mark_vol, rel=1e-9)
            assert ours.forward_usd == pytest.approx(f.fwd_px, rel=1e-9)
            assert ours.index_usd == pytest.approx(f.index_px, rel=1e-9)
        newest = await venue.fetch_option_trades("BTC", now - WINDOW_MS, now, 120)
        assert [t.trade_id for t in newest] == [f.trade_id for f in truth[-120:]]
    finally:
        await venue.close()
