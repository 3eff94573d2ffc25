"""The OKX venue of the simulated world without the wire: one index for both venues, each
venue's own basis and funding, exact P&L in the settlement currency for inverse and linear
swaps, futures and options (to expiry), and the admin API naming the venue."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import build_scenario, running_simulator
from hedgerd.sim.okx.venue import OkxVenue
from hedgerd.sim.scenario import load_scenario
from hedgerd.sim.world import SimWorld, parse_venues
from pinned_clock import TEST_START_MS

HOUR_MS = 3_600_000


def _world(tick_ms: int = 60_000, **okx: object) -> tuple[SimWorld, OkxVenue]:
    sc = build_scenario(None, seed=3, tick_ms=tick_ms, flow_rate_per_min=0, start_ms=TEST_START_MS)
    if okx:
        data = sc.model_dump()
        data["venues"]["okx"].update(okx)
        sc = type(sc).model_validate(data)
    world = SimWorld.build(sc, SimClock(sc.start_ms, stepped=True), ("deribit", "okx"))
    assert world.okx is not None
    world.okx.add_account("k", "s", "p", name="acct")
    return world, world.okx


def _advance(world: SimWorld, ms: int) -> None:
    world.clock.advance(ms)
    world.deribit.advance_to(world.clock.now_ms())


def test_one_index_at_every_instant_and_each_venue_its_own_basis() -> None:
    world, okx = _world(tick_ms=1_000, swap_basis_bps=12.0)
    seen: list[tuple[float, float]] = []
    world.deribit.followers.append(
        lambda t: seen.append((okx.index_price("BTC"), world.deribit.index_price("BTC")))
    )
    _advance(world, 600_000)
    assert len(seen) == 600 and all(a == b for a, b in seen)
    assert len({a for a, _ in seen}) > 100  # the index moved
    idx = world.index_price("BTC")
    swap = okx.instruments["BTC-USD-SWAP"]
    assert okx.mark_price(swap) == pytest.approx(idx * 1.0012, rel=1e-12)
    perp = world.deribit.catalog.get("BTC-PERPETUAL")
    assert perp is not None and world.deribit.mark_price(perp) != okx.mark_price(swap)


def test_venues_from_the_scenario_file(tmp_path: Path) -> None:
    f = tmp_path / "two.toml"
    f.write_text("[venues.okx]\nswap_basis_bps = 7.5\nfunding_rate_8h = -0.0002\n")
    sc = load_scenario(f)
    assert sc.venues.okx.swap_basis_bps == 7.5 and sc.venues.okx.funding_rate_8h == -0.0002
    assert load_scenario().venues.okx.swap_basis_bps == 1.5  # absent: the defaults
    assert parse_venues("okx") == ("deribit", "okx")
    with pytest.raises(ValueError, match="bybit"):
        parse_venues("deribit,bybit")


def test_inverse_and_linear_swap_pnl_exact() -> None:
    _, okx = _world()
    acct = okx.accounts["acct"]
    fee_inv, fee_lin = okx.spec.swap_maker, okx.spec.swap_maker
    okx.book_trade("acct", "BTC-USD-SWAP", "buy", 30, 90_000.0)
    okx.book_trade("acct", "BTC-USD-SWAP", "sell", 30, 91_500.5)
    want_btc = 10 + 30 * 100 * (1 / 90_000 - 1 / 91_500.5)
    want_btc -= 30 * 100 / 90_000 * fee_inv + 30 * 100 / 91_500.5 * fee_inv
    assert acct.cash["BTC"] == pytest.approx(want_btc, abs=1e-12)
    okx.book_trade("acct", "BTC-USDT-SWAP", "sell", 2.5, 92_000.0)
    okx.book_trade("acct", "BTC-USDT-SWAP", "buy", 2.5, 90_100.3)
    want_usdt = 100_000 + 2.5 * 0.01 * (92_000 - 90_100.3)
    want_usdt -= 2.5 * 0.01 * (92_000 + 90_100.3) * fee_lin
    assert acct.cash["USDT"] == pytest.approx(want_usdt, abs=1e-9)
    assert all(p.size == 0 for p in acct.positions.values())


def test_future_and_option_pnl_to_expiry_exact() -> None:
    world, okx = _world()
    acct = okx.accounts["acct"]
    now = world.clock.now_ms()
    first = min(i.expiry_ms for i in okx.live() if i.expiry_ms and i.is_option)
    call = min(
        (i for i in okx.live() if i.is_option and i.expiry_ms == first and i.opt_type == "C"),
        key=lambda i: abs((i.strike or 0) - world.index_price("BTC") * 0.97),
    )
    fut = min(
        (i for i in okx.live() if i.inst_type == "FUTURES" and (i.expiry_ms or 0) > first),
        key=lambda i: i.expiry_ms or 0,
    )
    okx.book_trade("acct", call.inst_id, "buy", 20, 0.0312)
    okx.book_trade("acct", fut.inst_id, "sell", 7, 91_000.0)
    assert first - now <= 24 * HOUR_MS
    _advance(world, first - now + 60_000)
    delivery = world.deribit.delivery_prices[("BTC", first)]
    assert call.state == "expired" and acct.positions[call.inst_id].size == 0
    k = call.strike or 0.0
    opt_fee = min(okx.spec.option_maker * 20 * 0.01, 0.125 * 0.0312 * 20 * 0.01)
    fut_fee = 7 * 100 / 91_000 * okx.spec.future_maker
    want = 10 - 20 * 0.01 * 0.0312 - opt_fee + 20 * 0.01 * max(0.0, delivery - k) / delivery
    want -= fut_fee
    # the future is still open: its floating P&L is in eq, not in cash
    assert acct.cash["BTC"] == pytest.approx(want, abs=1e-12)
    pos = acct.positions[fut.inst_id]
    mark = okx.mark_price(fut)
    assert okx.eq(acct, "BTC") == pytest.approx(
        want + pos.size * 100 * (1 / 91_000 - 1 / mark), abs=1e-12
    )


async def test_admin_names_the_venue() -> None:
    async with running_simulator(
        stepped=True, venues=("deribit", "okx"), accounts=[("k", "s")], api_passphrase="p"
    ) as sim:
        base = sim.rest_url + "/sim/admin"
        async with aiohttp.ClientSession() as http:
            body = {
                "venue": "okx",
                "account": "client",
                "instrument": "BTC-USD-SWAP",
                "side": "sell",
                "amount": 4,
                "price": 90_000,
            }
            async with http.post(base + "/accounts/trade", json=body) as r:
                assert r.status == 200, await r.text()
            assert sim.okx.accounts["client"].positions["BTC-USD-SWAP"].size == -4
            async with http.get(base + "/state") as r:
                state = await r.json()
            assert set(state["venues"]) == {"deribit", "okx"}
            assert state["venues"]["okx"]["engine"]["fills"] == 1
            async with http.post(base + "/ws/drop?venue=okx") as r:
                assert (await r.json())["dropped"] == 0
            async with http.post(base + "/ws/drop?venue=bybit") as r:
                assert r.status == 400
            async with http.post(base + "/faults", json={"kind": "latency", "venue": "x"}) as r:
                assert r.status == 400


def test_option_greeks_match_black76_and_hedgerds_numeraire_algebra() -> None:
    from hedgerd.pricing.black import black76
    from hedgerd.pricing.numeraire import coin_numeraire_delta
    from hedgerd.sim.okx import views

    world, okx = _world()
    now = world.clock.now_ms()
    for cp in ("C", "P"):
        opt = min(
            (
                i
                for i in okx.live()
                if i.is_option and i.opt_type == cp and (i.expiry_ms or 0) - now > 3 * 86_400_000
            ),
            key=lambda i: abs((i.strike or 0) - world.index_price("BTC") * 1.03),
        )
        okx.book_trade("acct", opt.inst_id, "sell", 40, None)
        acct = okx.accounts["acct"]
        pos = views.position_json(okx, acct, opt, acct.positions[opt.inst_id])
        r = okx.option_risk(opt)
        tau = world.deribit.markets["BTC"].tau_years(opt.expiry_ms or 0)
        g = black76(cp == "C", r.forward, opt.strike, tau, r.iv)
        coin = -40 * 0.01
        # BS: the Black-76 delta of the position's coin (USD numeraire)
        assert float(pos["deltaBS"]) == pytest.approx(float(g.delta) * coin, rel=1e-6)
        # PA: hedgerd's coin-numeraire delta of the same position, from the venue's figures
        idx = float(pos["idxPx"])
        value_usd = float(pos["optVal"]) * idx
        want_pa = coin_numeraire_delta(float(pos["deltaBS"]), value_usd, idx)
        assert float(pos["deltaPA"]) == pytest.approx(float(want_pa), abs=1e-9)
