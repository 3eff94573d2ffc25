"""The option flow term end to end: a daemon's band takes the option trades its account
received, including those before it started (seeded from the venue's trade history through
the real ccxt client, `portfolio.flow_seed`), each counted once across the cut-over, and a
daemon whose account receives none keeps the plain band.

The simulator's option flow is off except in the last test (the trades are the test's own,
booked through the admin API at known times); the controller's timer is an hour, so the
evaluations are the test's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    MM_KEY,
    TWO_VENUES,
    Running,
    admin_trade,
    daemon_config,
    decide,
    loop_running,
    short_dir,
    simulator,
    start_daemon,
    two_venue_scenario,
    two_venue_simulator,
    two_venue_values,
    venue_fault,
    wait_for,
)

from hedgerd.book.greeks_book import option_delta_change
from hedgerd.hedging import controller
from hedgerd.hedging.flow import FLOW_WINDOW_MS
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.hedging.kernel import Band, BandContext, flow_gamma, ww_halfwidth
from hedgerd.sim.command import Simulator
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.venues.deribit.names import parse_instrument_name
from hedgerd.venues.okx.names import parse_instrument_name as parse_okx_name

pytestmark = pytest.mark.usefixtures("patient_seeds")

SPEED = 1.0
TRADES = "private/get_user_trades_by_currency_and_time"
YEAR_MS = 365.0 * 86_400_000.0


def _scenario(flow_per_min: float = 0.0) -> Scenario:
    """The default world; its client option flow on BTC at `flow_per_min` (0: off)."""
    scenario = load_scenario(None, seed=3)
    flow = scenario.flow.model_copy(
        update={"enabled": flow_per_min > 0, "rate_per_min": flow_per_min, "currencies": ["BTC"]}
    )
    return scenario.model_copy(update={"flow": flow})


def _values(work: Path, interval_s: float = 3_600.0) -> dict[str, Any]:
    values = daemon_config(work)
    values["daemon"]["evaluate_interval_s"] = interval_s  # evaluations are the test's
    # No floor under the band: the market maker's book is near flat in gamma, and the flow
    # term widens the gamma term's width, which a floor of 0.5 coin would hide.
    values["hedging"]["policies"]["t"]["min_halfwidth_coin"] = 0.0
    return values


def _options(sim: Simulator, count: int) -> list[str]:
    """`count` BTC options a week or more out, near the money, calls and puts alternating."""
    engine: Any = sim.engine
    index = engine.index_price("BTC")
    later = sim.now_ms() + 7 * 86_400_000
    out: list[str] = []
    for kind in ("call", "put") * count:
        pool = [
            i
            for i in engine.catalog.active()
            if i.is_option
            and i.currency == "BTC"
            and i.option_type == kind
            and i.expiry_ms >= later
            and i.name not in out
        ]
        out.append(min(pool, key=lambda i: (i.expiry_ms, abs(i.strike - index))).name)
        if len(out) == count:
            break
    return out


def _venue_jumps(sim: Simulator, account: str = "mm") -> list[tuple[int, float]]:
    """Each BTC option trade of `account` as the simulator recorded it (unrounded vol, index,
    forward) priced as the book prices a position change: (time ms, delta change coin)."""
    engine: Any = sim.engine
    out: list[tuple[int, float]] = []
    for t in engine.accounts[account].trades:
        if not (t.inst.is_option and t.inst.currency == "BTC"):
            continue
        inst = parse_instrument_name(t.inst.name)
        assert inst.strike_usd is not None and inst.expiry_ms is not None
        signed = t.amount if t.direction == "buy" else -t.amount
        d = option_delta_change(
            inst.is_call,
            inst.strike_usd,
            inst.expiry_ms,
            signed,
            t.index_price,
            t.underlying_price / t.index_price,
            t.iv,
            t.timestamp,
        )
        assert d is not None
        out.append((t.timestamp, d))
    return out


def _expected(jumps: list[tuple[int, float]]) -> tuple[float, float]:
    """(v, J) of `jumps` over a whole window (the seed covers one)."""
    sq = math.fsum(d * d for _, d in jumps)
    return sq / (FLOW_WINDOW_MS / YEAR_MS), math.sqrt(sq / len(jumps))


_decide = decide


async def _trade(sim: Simulator, instrument: str, side: str, amount: float) -> None:
    await admin_trade(sim, instrument, side, amount)


async def test_a_daemon_started_after_option_trades_has_their_flow_at_its_first_decision() -> None:
    async with simulator(SPEED, scenario=_scenario()) as sim:
        names = _options(sim, 3)
        for name, side, amount in zip(names, ("sell", "buy", "sell"), (2.0, 1.0, 3.0), strict=True):
            await _trade(sim, name, side, amount)
        run = await start_daemon(sim, _values(short_dir()), SPEED)
        try:
            _, risk = await _decide(run)
            v, j = _expected(_venue_jumps(sim))
            assert risk.flow_var_coin2_per_year > 0.0
            # The venue's iv has two decimals of a percent: the delta to about 1e-4.
            assert risk.flow_var_coin2_per_year == pytest.approx(v, rel=1e-3)
            assert risk.flow_jump_coin == pytest.approx(j, rel=1e-3)
        finally:
            await run.shutdown()


async def test_no_option_trades_leave_the_band_plain() -> None:
    async with simulator(SPEED, scenario=_scenario()) as sim:
        run = await start_daemon(sim, _values(short_dir()), SPEED)
        try:
            _, risk = await _decide(run)
            assert (risk.flow_var_coin2_per_year, risk.flow_jump_coin) == (0.0, 0.0)
            assert not run.daemon.hedge_loop._flow_seeds  # the (empty) seed was applied
        finally:
            await run.shutdown()


def _count(risk: UnderlyingRisk) -> int:
    """How many jumps the estimate holds (v x window / J^2: the seed spans a whole window)."""
    sq = risk.flow_var_coin2_per_year * FLOW_WINDOW_MS / YEAR_MS
    return round(sq / risk.flow_jump_coin**2)


async def test_restart_during_flow_counts_each_trade_once() -> None:
    async with simulator(SPEED, scenario=_scenario()) as sim:
        work = short_dir()
        names = _options(sim, 4)
        await _trade(sim, names[0], "sell", 2.0)
        await _trade(sim, names[1], "buy", 1.0)
        first = await start_daemon(sim, _values(work), SPEED)
        try:
            _, risk = await _decide(first)
            assert _count(risk) == 2  # seeded
            await _trade(sim, names[2], "sell", 1.5)  # live: a position change
            await wait_for(lambda: _seen(first, sim, names[2]), 10.0, "the live trade's position")
            _, risk = await _decide(first)
            assert _count(risk) == 3  # two seeded, one live: none twice
        finally:
            await first.shutdown()
        await _trade(sim, names[3], "buy", 0.5)  # while down
        second = await start_daemon(sim, _values(work), SPEED)
        try:
            _, risk = await _decide(second)
            v, j = _expected(_venue_jumps(sim))
            assert _count(risk) == 4  # all four from the venue's history, each once
            assert risk.flow_var_coin2_per_year == pytest.approx(v, rel=1e-3)
            assert risk.flow_jump_coin == pytest.approx(j, rel=1e-3)
        finally:
            await second.shutdown()


async def test_a_trade_after_the_cut_over_is_counted_live_not_seeded() -> None:
    """The venue holds the seed's fetch (latency) while a trade happens after the account's
    first evaluation (the cut-over): the seed leaves it out (it ends at the cut), the book's
    position change counts it: once."""
    async with simulator(SPEED, scenario=_scenario()) as sim:
        names = _options(sim, 2)
        await _trade(sim, names[0], "sell", 2.0)
        await venue_fault(sim, "deribit", {"kind": "latency", "ms": 1_500, "methods": [TRADES]})
        run = await start_daemon(sim, _values(short_dir()), SPEED)
        loop = run.daemon.hedge_loop
        try:

            async def first_take() -> None:
                while ("sim", "BTC") not in loop._flow_taken:
                    await run.daemon.evaluate("BTC")  # waits for the seed once it began
                    await asyncio.sleep(0.05)

            evaluating = asyncio.get_running_loop().create_task(first_take())
            await wait_for(lambda: ("sim", "BTC") in loop._flow_taken, 20.0, "the first take")
            assert loop._flow_seeds, "the seed's fetch is held by the venue"
            await _trade(sim, names[1], "buy", 1.0)  # after the cut, before the seed lands
            await evaluating
            await wait_for(lambda: _seen(run, sim, names[1]), 10.0, "the live trade's position")
            await _seed_landed(run)
            _, risk = await _decide(run)
            assert _count(risk) == 2  # one seeded, one live
        finally:
            await run.shutdown()


async def test_option_flow_in_the_simulator_widens_the_band_by_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The simulator's client option flow trades against the account while the daemon runs
    (1 s evaluations): a decision is reached with v > 0, and its band is the kernel's band
    of that decision's inputs, wider than the same inputs' band without the flow."""
    seen: list[tuple[Any, BandContext, Band]] = []
    real = controller.band_for_floats

    def spy(policy: Any, ctx: BandContext) -> Band:
        band = real(policy, ctx)
        seen.append((policy, dataclasses.replace(ctx), dataclasses.replace(band)))
        return band

    monkeypatch.setattr(controller, "band_for_floats", spy)
    async with simulator(5.0, scenario=_scenario(flow_per_min=6.0)) as sim:
        run = await start_daemon(sim, _values(short_dir(), interval_s=1.0), 5.0)
        try:

            def flow_decided() -> bool:
                return any(c.flow_var_coin2_per_year > 0.0 for _, c, _ in seen)

            await wait_for(flow_decided, 60.0, "a decision with option flow")
            policy, ctx, band = next(x for x in seen if x[1].flow_var_coin2_per_year > 0.0)
            plain_ctx = dataclasses.replace(ctx, flow_var_coin2_per_year=0.0, flow_jump_coin=0.0)
            plain = real(policy, plain_ctx)
            assert (band.lower, band.upper) == (
                real(policy, ctx).lower,
                real(policy, ctx).upper,
            )
            assert band.lower + band.upper > plain.lower + plain.upper
            # The width's gamma term by the kernel's formula: sqrt(G^2 + w v g / (S s)^2).
            g = policy.risk_aversion_per_usd
            h = ww_halfwidth(ctx, g, policy.gamma_exponent)
            gate = min(1.0, h * h / ctx.flow_jump_coin**2)
            add = policy.flow_weight * ctx.flow_var_coin2_per_year / (ctx.spot_usd * ctx.vol) ** 2
            eff = math.sqrt(ctx.gamma_coin_per_usd**2 + add * gate)
            assert flow_gamma(
                ctx, g, policy.gamma_exponent, ctx.gamma_coin_per_usd, policy.flow_weight
            ) == pytest.approx(eff, rel=1e-12)
            assert ww_halfwidth(ctx, g, policy.gamma_exponent, eff) > h
            engine: Any = sim.engine
            assert engine.flow.count > 0
        finally:
            await run.shutdown()


async def test_trades_during_a_stream_gap_are_counted_each_not_netted() -> None:
    """Two trades on one option while the account's private notifications are lost, then a
    reconnection: the resync's snapshot moves the position by both at once (one netted
    jump); the daemon takes the gap's trades from the venue's history instead, each once."""
    async with simulator(SPEED, scenario=_scenario()) as sim:
        names = _options(sim, 2)
        await _trade(sim, names[0], "sell", 2.0)
        run = await start_daemon(sim, _values(short_dir()), SPEED)
        try:
            await _seed_landed(run)
            _, risk = await _decide(run)
            assert _count(risk) == 1
            await venue_fault(sim, "deribit", {"kind": "drop_notifications", "account": "mm"})
            await _trade(sim, names[1], "sell", 1.0)
            await _trade(sim, names[1], "sell", 2.0)
            _, risk = await _decide(run)
            assert not _seen(run, sim, names[1]) and _count(risk) == 1  # not heard yet
            await venue_fault(sim, "deribit", {"kind": "clear"})
            await venue_fault(sim, "deribit", {"kind": "ws_drop"})
            feed = run.daemon.feed
            assert feed is not None

            def resynced() -> bool:
                report = feed.last_reconcile
                return report is not None and report.reason == "reconnect"

            await wait_for(resynced, 20.0, "the reconnection's resync")
            assert _seen(run, sim, names[1])
            await _seed_landed(run)
            _, risk = await _decide(run)
            v, j = _expected(_venue_jumps(sim))
            assert _count(risk) == 3  # the gap's two trades, not one netted move
            assert risk.flow_var_coin2_per_year == pytest.approx(v, rel=1e-3)
            assert risk.flow_jump_coin == pytest.approx(j, rel=1e-3)
        finally:
            await run.shutdown()


async def test_an_okx_account_started_after_option_trades_has_their_flow() -> None:
    """The same on OKX (`fills-history`, instType OPTION): the market maker's OKX twin as
    an options account beside Deribit's, its option trades booked before the start."""
    async with two_venue_simulator(two_venue_scenario(still=True), SPEED) as sim:
        okx = sim.okx
        acct = next(a for a in okx.accounts.values() if a.creds.api_key == MM_KEY)
        later = sim.now_ms() + 7 * 86_400_000
        options = sorted(
            (i for i in okx.instruments.values()
             if i.is_option and i.base == "BTC" and i.state == "live"
             and (i.expiry_ms or 0) >= later),
            key=lambda i: (i.expiry_ms or 0, abs((i.strike or 0) - okx.index_price("BTC"))),
        )[:2]  # fmt: skip
        okx.book_trade(acct.account_id, options[0].inst_id, "sell", 200, None)  # 2 BTC
        okx.book_trade(acct.account_id, options[1].inst_id, "buy", 50, None)
        values = two_venue_values(short_dir(), okx_roles=("options", "hedge"))
        values["daemon"]["evaluate_interval_s"] = 3_600.0
        run = await start_daemon(sim, values, SPEED, TWO_VENUES)
        try:
            await _seed_landed(run, ("deribit", "okx"))
            _, risk = await _decide(run)
            jumps = []
            for f in acct.fills:
                assert f.order.okx is not None
                if not f.order.okx.is_option:
                    continue  # the daemon's hedges
                assert f.mark_vol is not None and f.fwd_px is not None
                inst = parse_okx_name(f.order.okx.inst_id)
                assert inst.strike_usd is not None and inst.expiry_ms is not None
                coin = f.sz * f.order.okx.ct_mult
                d = option_delta_change(
                    inst.is_call, inst.strike_usd, inst.expiry_ms,
                    coin if f.side == "buy" else -coin, f.index_px, f.fwd_px / f.index_px,
                    f.mark_vol, f.ts,
                )  # fmt: skip
                assert d is not None
                jumps.append((f.ts, d))
            v, j = _expected(jumps)
            assert risk.flow_var_coin2_per_year == pytest.approx(v, rel=1e-9)
            assert risk.flow_jump_coin == pytest.approx(j, rel=1e-9)
        finally:
            await run.shutdown()


async def _seed_landed(run: Running, accounts: tuple[str, ...] = ("sim",)) -> None:
    """Evaluate until every seed fetched has been applied (an evaluation applies them)."""
    loop = run.daemon.hedge_loop
    await loop_running(run)

    async def landed() -> bool:
        await run.daemon.evaluate("BTC")
        seen = all((a, "BTC") in loop._flow_taken for a in accounts)
        return seen and not loop._flow_seeds

    await wait_for(landed, 30.0, "the seed to land", interval_s=0.1)


def _seen(run: Running, sim: Simulator, name: str) -> bool:
    """The daemon's feed holds `name`'s position as the simulator does."""
    engine: Any = sim.engine
    feed = run.daemon.feed
    pos = feed.positions.get(name) if feed is not None else None
    return pos is not None and pos.amount == engine.accounts["mm"].positions[name].size
