"""The executor against the exchange simulator, real ccxt and the Deribit adapter underneath:
timeout after accept, partial fills, re-pricing and the taker fallback, dry run, rejects.

Simulated time is stepped: the executor's waits (`sleep_ms`) move the simulator's clock, so the
market moves exactly as far as the executor waits and nothing depends on wall-clock luck.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hedgerd.execution.drill import (
    DRILL_KEY,
    DRILL_SECRET,
    PERP,
    Rig,
    perp_decision,
    rig,
    sim_scenario,
)
from hedgerd.execution.executor import Executor, ExecutorSettings, LegOutcome, OrderRejection
from hedgerd.execution.journal import Journal
from hedgerd.execution.reconcile import ReconcileSettings
from hedgerd.model import HedgeDecision, HedgeStyle, OrderSide, OrderStatus
from hedgerd.risk.kill_switches import KillSwitchBoard
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import ReasonCode, TradingState
from hedgerd.risk.trips import OrderCheck
from hedgerd.sim.command import Simulator, running_simulator

KEY, SECRET = DRILL_KEY, DRILL_SECRET


def scenario(vol: float = 0.8) -> Any:
    return sim_scenario(vol)


@dataclass
class Env:
    sim: Simulator
    rig: Rig
    sleeps: list[int]
    on_sleep: list[Callable[[], Awaitable[None]]]

    def account(self) -> Any:
        engine: Any = self.sim.engine
        return engine.account_for_key(KEY)

    def venue_trades(self) -> list[dict[str, Any]]:
        engine: Any = self.sim.engine
        rows = engine.dispatch(
            "private/get_user_trades_by_currency",
            {"currency": "BTC", "count": 1000, "sorting": "asc"},
            self.account(),
        )["trades"]
        return list(rows)

    def perp_position_usd(self) -> float:
        engine: Any = self.sim.engine
        rows = engine.dispatch("private/get_positions", {"currency": "BTC"}, self.account())
        return sum(float(p["size"]) for p in rows if p["instrument_name"] == PERP)

    def received(self) -> dict[str, int]:
        counters: Any = self.sim.server.counters
        return dict(counters.orders_received)


async def make_env(
    tmp_path: Path, settings: ExecutorSettings, *, cancel_on_disconnect: bool = True, **sim_kw: Any
) -> AsyncIterator[Env]:
    async with running_simulator(
        scenario=sim_kw.pop("scenario", scenario()),
        stepped=True,
        accounts=[(KEY, SECRET)],
        **sim_kw,
    ) as sim:
        sleeps: list[int] = []
        on_sleep: list[Callable[[], Awaitable[None]]] = []

        async def sleep_ms(ms: int) -> None:
            sleeps.append(ms)
            for hook in on_sleep:
                await hook()
            sim.advance(max(ms, 0))
            await asyncio.sleep(0)

        r = await rig(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            key=KEY,
            secret=SECRET,
            journal_path=tmp_path / "journal.sqlite",
            clock_ms=sim.now_ms,
            sleep_ms=sleep_ms,
            settings=settings,
            reconcile=ReconcileSettings(not_found_grace_ms=1_000),
            request_timeout_s=0.5,
            cancel_on_disconnect=cancel_on_disconnect,
        )
        await r.start()
        try:
            yield Env(sim, r, sleeps, on_sleep)
        finally:
            await r.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in make_env(tmp_path, ExecutorSettings(unknown_query_interval_ms=200)):
        yield e


async def mid(env: Env) -> float:
    return (await env.rig.venue.fetch_quote(PERP)).mid_price


async def resting_buy(env: Env, decision_id: str, fallback_in_ms: int = 60_000) -> HedgeDecision:
    """A maker buy of 10,000 USD priced 1 % under the bid (it rests), falling back to a taker
    order `fallback_in_ms` after now."""
    q = await env.rig.venue.fetch_quote(PERP)
    now = env.sim.now_ms()
    return perp_decision(
        decision_id,
        OrderSide.BUY,
        10_000.0,
        mid_usd=q.mid_price,
        ts_ms=now,
        style=HedgeStyle.MAKER,
        limit_price=round(q.bid_price * 0.99),
        fallback_after_ms=now + fallback_in_ms,
    )


def sliced_sell(env: Env, decision_id: str, mid_usd: float) -> HedgeDecision:
    """A sliced sell of 55,000 USD (about 0.61 BTC: four slices of at most 0.2 BTC)."""
    return perp_decision(
        decision_id,
        OrderSide.SELL,
        55_000.0,
        mid_usd=mid_usd,
        ts_ms=env.sim.now_ms(),
        style=HedgeStyle.SLICED,
    )


def labels_once(env: Env, labels: tuple[str, ...]) -> None:
    got = env.received()
    assert all(got.get(lb, 0) == 1 for lb in labels), {lb: got.get(lb) for lb in labels}


async def test_timeout_after_accept_no_duplicate_found_by_label_fill_counted_once(
    env: Env,
) -> None:
    # No stream: only the query by label can tell what happened (the stream may or may not
    # beat the timeout; without it the test is deterministic).
    await env.rig.stop_pump()
    # The venue takes the order, the reply never comes (WebSocket: dropped).
    env.sim.faults.add({"kind": "timeout_after_accept", "count": 1}, env.sim.now_ms())
    d = perp_decision(
        "tmo-1", OrderSide.BUY, 2_000.0, mid_usd=await mid(env), ts_ms=env.sim.now_ms()
    )
    res = await env.rig.executor.execute(d)
    (leg,) = res.legs
    assert leg.outcome is LegOutcome.DONE and leg.filled_amount == 2_000.0, leg
    assert len(leg.labels) == 1, "found by its label, never sent again"
    (label,) = leg.labels
    labels_once(env, leg.labels)
    counters: Any = env.sim.server.counters
    assert counters.orders_accepted[label] == 1
    # The journal went through UNKNOWN and the query resolved it.
    events = await env.rig.journal.events_since()
    statuses = [e.payload.get("status_after") for e in events if e.ref == label]
    assert "unknown" in statuses and statuses[-1] == "filled", statuses
    # Its fill is counted once, whether it came from the stream, the executor's repair (the
    # query showed it filled, no trade had come: fetched by order) or reconciliation.
    await env.rig.executor.flush()
    assert env.rig.executor.fills_repaired == 1
    report = await env.rig.reconciler.reconcile()
    again = await env.rig.reconciler.reconcile()
    venue_ids = sorted(t["trade_id"] for t in env.venue_trades() if t.get("label") == label)
    journal_ids = sorted(f.trade_id for f in await env.rig.journal.fills_for_order(label))
    assert venue_ids and journal_ids == venue_ids
    assert not again.missed_fills and not report.missed_fills
    # The same trade from the stream later is a duplicate.
    fill = (await env.rig.journal.fills_for_order(label))[0]
    assert (await env.rig.executor.on_fill(fill)).duplicate
    rec = await env.rig.journal.order(label)
    assert rec is not None and rec.status is OrderStatus.FILLED and rec.filled_amount == 2_000.0
    assert env.perp_position_usd() == 2_000.0
    assert env.rig.executor.in_flight_delta_coin("BTC") == 0.0


async def test_partial_ioc_fills_end_with_exactly_the_decided_amount(tmp_path: Path) -> None:
    # 1.5 bp of protection reaches only the best level (20,000 USD at 1 bp): a 70,000 USD
    # buy fills in parts; the remainder is re-sent (new attempt, new label) as liquidity refills.
    settings = ExecutorSettings(
        max_slippage_bps=1.5, slice_interval_ms=3_000, max_orders_per_leg=20
    )
    # A quiet market (1 % vol): the protected price stays between the first and second level.
    async for env in make_env(tmp_path, settings, scenario=scenario(vol=0.01)):
        m = await mid(env)
        d = perp_decision(
            "part-1",
            OrderSide.BUY,
            70_000.0,
            mid_usd=m,
            ts_ms=env.sim.now_ms(),
            limit_price=m * 1.00015,
        )
        res = await env.rig.executor.execute(d)
        (leg,) = res.legs
        assert leg.outcome is LegOutcome.DONE, leg
        assert len(leg.labels) > 1, "the first IOC was partial"
        labels_once(env, leg.labels)
        recs = [await env.rig.journal.order(lb) for lb in leg.labels]
        assert any(
            r is not None and r.status is OrderStatus.CANCELLED and r.venue_filled_amount > 0
            for r in recs
        ), "at least one IOC was cut after a partial fill"
        assert sum(r.venue_filled_amount for r in recs if r) == 70_000.0
        assert env.perp_position_usd() == 70_000.0


async def test_sliced_leg_paced_and_exact(tmp_path: Path) -> None:
    settings = ExecutorSettings(max_slice_delta_coin=0.2, slice_interval_ms=1_000)
    async for env in make_env(tmp_path, settings):
        m = await mid(env)
        d = sliced_sell(env, "slice-1", m)
        res = await env.rig.executor.execute(d)
        (leg,) = res.legs
        assert leg.outcome is LegOutcome.DONE and leg.filled_amount == 55_000.0
        # 55,000 USD ~ 0.61 BTC in slices of at most 0.2 BTC: 4 slices (last one carries).
        recs = [await env.rig.journal.order(lb) for lb in leg.labels]
        assert len(recs) == 4 and all(r and r.amount <= 0.2 * m + 10 for r in recs)
        assert [lb.split("-")[-2] for lb in leg.labels] == ["0", "1", "2", "3"]
        assert env.sleeps.count(1_000) >= 3, "slices are paced"
        assert env.perp_position_usd() == -55_000.0


async def test_a_taker_leg_worth_more_than_the_order_notional_cap_goes_in_slices(
    tmp_path: Path,
) -> None:
    # Under max_slice_delta_coin (5 coin), over the notional cap: before the cap, one order
    # worth the whole leg, which the order-notional kill switch refuses (and halts on) once
    # hedges are sized for a whole breach (issue 19).
    settings = ExecutorSettings(max_slice_notional_usd=20_000.0, slice_interval_ms=1_000)
    async for env in make_env(tmp_path, settings):
        m = await mid(env)
        d = perp_decision("notional-1", OrderSide.BUY, 50_000.0, mid_usd=m, ts_ms=env.sim.now_ms())
        res = await env.rig.executor.execute(d)
        (leg,) = res.legs
        assert leg.outcome is LegOutcome.DONE and leg.filled_amount == 50_000.0
        recs = [await env.rig.journal.order(lb) for lb in leg.labels]
        # 50,000 USD in slices of 16,660 USD (a third, on the 10 USD step) and what rounding
        # leaves: every order within the cap.
        amounts = [r.amount if r else None for r in recs]
        assert amounts == [16_660.0, 16_660.0, 16_660.0, 20.0], amounts
        assert env.perp_position_usd() == 50_000.0


async def test_maker_reprices_then_taker_fallback_exact_quantity(tmp_path: Path) -> None:
    settings = ExecutorSettings(reprice_interval_ms=1_000, max_orders_per_leg=40)
    async for env in make_env(tmp_path, settings):
        ex = env.rig.executor
        q = await env.rig.venue.fetch_quote(PERP)
        now = env.sim.now_ms()
        d = perp_decision(
            "mk-1",
            OrderSide.BUY,
            30_000.0,
            mid_usd=q.mid_price,
            ts_ms=now,
            style=HedgeStyle.MAKER,
            limit_price=q.bid_price,
            fallback_after_ms=now + 8_000,
        )
        seen: list[float] = []

        async def sample(ex: Executor, seen: list[float]) -> None:
            while True:  # in flight at every step: the leg's whole rest
                seen.append(ex.in_flight_delta_coin("BTC"))
                await asyncio.sleep(0)

        sampler = asyncio.get_running_loop().create_task(sample(ex, seen))
        try:
            res = await ex.execute(d)
        finally:
            sampler.cancel()
        (leg,) = res.legs
        assert leg.outcome is LegOutcome.DONE, leg
        recs = [r for r in [await env.rig.journal.order(lb) for lb in leg.labels] if r]
        styles = [str(r.style) for r in recs]
        assert styles[0] == "post_only"
        assert styles.count("post_only") >= 2, f"re-priced as the touch moved: {styles}"
        labels_once(env, leg.labels)
        total = sum(max(r.filled_amount, r.venue_filled_amount) for r in recs)
        assert total == 30_000.0 and env.perp_position_usd() == 30_000.0
        if "ioc_limit" in styles:  # the fallback took what the maker orders had not
            assert styles[-1] == "ioc_limit"
        assert seen and max(seen) <= d.legs[0].delta_coin + 1e-12
        assert ex.in_flight_delta_coin("BTC") == 0.0


async def test_taker_fallback_when_the_maker_never_fills(tmp_path: Path) -> None:
    settings = ExecutorSettings(reprice_interval_ms=1_000)
    async for env in make_env(tmp_path, settings):
        # Far below the touch and never re-priced up to it before the deadline (1 s away).
        d = await resting_buy(env, "mk-2", 1_000)
        res = await env.rig.executor.execute(d)
        (leg,) = res.legs
        assert leg.outcome is LegOutcome.DONE and leg.filled_amount == 10_000.0
        recs = [r for r in [await env.rig.journal.order(lb) for lb in leg.labels] if r]
        assert [str(r.style) for r in recs] == ["post_only", "ioc_limit"]
        assert recs[0].status is OrderStatus.CANCELLED and recs[0].venue_filled_amount == 0
        assert recs[1].status is OrderStatus.FILLED
        assert env.perp_position_usd() == 10_000.0


async def test_dry_run_journals_and_sends_nothing(tmp_path: Path) -> None:
    async for env in make_env(tmp_path, ExecutorSettings(dry_run=True)):
        d = perp_decision(
            "dry-1", OrderSide.BUY, 1_000.0, mid_usd=await mid(env), ts_ms=env.sim.now_ms()
        )
        res = await env.rig.executor.execute(d)
        (leg,) = res.legs
        assert leg.outcome is LegOutcome.DRY_RUN
        assert await env.rig.journal.decision("dry-1") is not None
        rec = await env.rig.journal.order(leg.labels[0])
        assert rec is not None and rec.status is OrderStatus.CANCELLED and rec.reason == "dry_run"
        assert env.received() == {}


async def test_invalid_order_rejected_once_fed_back_and_funds_trip(env: Env) -> None:
    got: list[OrderRejection] = []
    env.rig.executor.on_reject = got.append
    m = await mid(env)
    # Not a multiple of the contract size: refused by the venue, never retried.
    d = perp_decision("bad-1", OrderSide.BUY, 15.0, mid_usd=m, ts_ms=env.sim.now_ms())
    res = await env.rig.executor.execute(d)
    (leg,) = res.legs
    assert leg.outcome is LegOutcome.REJECTED and len(leg.labels) == 1
    assert len(got) == 1 and got[0].label == leg.labels[0] and got[0].code is not None
    labels_once(env, leg.labels)
    assert env.rig.trading.state is TradingState.ACTIVE
    # Not enough funds: REJECTED and the kill switch (REDUCE_ONLY by default).
    env.sim.faults.add(
        {"kind": "order_reject", "code": 10009, "message": "not_enough_funds", "count": 1},
        env.sim.now_ms(),
    )
    d2 = perp_decision("funds-1", OrderSide.BUY, 100.0, mid_usd=m, ts_ms=env.sim.now_ms())
    (leg2,) = (await env.rig.executor.execute(d2)).legs
    assert leg2.outcome is LegOutcome.REJECTED and got[-1].code == 10009
    assert ReasonCode.INSUFFICIENT_FUNDS in env.rig.trading.snapshot.reason_codes
    assert env.rig.trading.state is TradingState.REDUCE_ONLY
    # REDUCE_ONLY now: a buy that grows |delta| is blocked by the gate, nothing sent.
    before = env.received()
    d3 = perp_decision(
        "grow-1", OrderSide.BUY, 100.0, mid_usd=m, ts_ms=env.sim.now_ms(), net_delta_coin=0.5
    )
    (leg3,) = (await env.rig.executor.execute(d3)).legs
    assert leg3.outcome is LegOutcome.BLOCKED and env.received() == before
    # ... and the same decision id is never executed twice.
    (dup,) = (await env.rig.executor.execute(d)).legs
    assert dup.outcome is LegOutcome.DUPLICATE and env.received() == before


async def test_halt_cancels_the_resting_order_and_stops_the_leg(tmp_path: Path) -> None:
    async for env in make_env(tmp_path, ExecutorSettings(reprice_interval_ms=1_000)):
        ex = env.rig.executor
        d = await resting_buy(env, "halt-1")

        async def halt_once(env: Env = env) -> None:  # the operator halts while it rests
            if env.rig.trading.state is not TradingState.HALTED:
                await env.rig.trading.halt(actor="uid:0", text="test")
                await env.rig.executor.flush()  # the cancel-on-halt it started
                assert not env.rig.executor.open_records()

        env.on_sleep.append(halt_once)
        (leg,) = (await ex.execute(d)).legs
        assert leg.outcome is LegOutcome.PARTIAL and leg.filled_amount == 0.0
        (label,) = leg.labels
        rec = await env.rig.journal.order(label)
        assert rec is not None and rec.status is OrderStatus.CANCELLED
        (state,) = await env.rig.venue.order_by_label(label)
        assert state.status is OrderStatus.CANCELLED
        assert ex.in_flight_delta_coin("BTC") == 0.0


async def test_an_intent_whose_request_expired_before_the_send_is_not_sent(env: Env) -> None:
    """HA's request expiry (`request_ttl_ms`): the process stalls between journalling an
    intent and sending it, past the intent's expiry. It must not send that request (a new
    leader may already count on its expiry): the intent is closed unsent
    (`request_expired`) and the leg goes on with a new intent (new label, new expiry)."""
    executor = env.rig.executor
    executor.request_ttl_ms = 1_000
    journal: Any = env.rig.journal
    record_intents = journal.record_intents
    stalls = [1_500]

    async def stall_after_commit(*args: Any, **kw: Any) -> Any:
        out = await record_intents(*args, **kw)
        if stalls:
            env.sim.advance(stalls.pop())  # paused right after the commit
        return out

    journal.record_intents = stall_after_commit
    m = await mid(env)
    d = perp_decision("expiry-1", OrderSide.BUY, 1_000.0, mid_usd=m, ts_ms=env.sim.now_ms(),
                      limit_price=m * 1.01)  # fmt: skip
    (leg,) = (await executor.execute(d)).legs
    assert leg.outcome is LegOutcome.DONE, leg
    first, second = leg.labels
    assert first not in env.received()  # never sent
    labels_once(env, (second,))
    rec = await env.rig.journal.order(first)
    assert rec is not None and rec.status is OrderStatus.CANCELLED
    assert rec.reason == "request_expired" and rec.valid_until_ms is not None
    again = await env.rig.journal.order(second)
    assert again is not None and again.valid_until_ms == again.created_ms + 1_000
    assert env.perp_position_usd() == 1_000.0


async def test_stop_sending_ends_a_sliced_leg_after_the_slice_on_the_wire(
    tmp_path: Path,
) -> None:
    """SIGTERM's first step: the slice already sent completes, no further slice goes out
    (an order sent after shutdown's cancel-all would be left behind)."""
    settings = ExecutorSettings(max_slice_delta_coin=0.2, slice_interval_ms=1_000)
    async for env in make_env(tmp_path, settings):
        ex = env.rig.executor

        async def stop(ex: Executor = ex) -> None:  # shutdown starts between two slices
            ex.stop_sending()

        env.on_sleep.append(stop)
        d = sliced_sell(env, "stop-1", await mid(env))
        (leg,) = (await ex.execute(d)).legs
        assert leg.outcome is LegOutcome.PARTIAL
        (label,) = leg.labels  # one slice, then nothing
        assert env.received() == {label: 1}
        assert 0 < leg.filled_amount < 55_000.0
        assert env.perp_position_usd() == -leg.filled_amount
        assert ex.open_records() == []
        assert await ex.cancel_all_verified() == (0, [])


async def test_stop_sending_cancels_the_resting_maker_order_and_sends_no_other(
    tmp_path: Path,
) -> None:
    async for env in make_env(tmp_path, ExecutorSettings(reprice_interval_ms=1_000)):
        ex = env.rig.executor
        d = await resting_buy(env, "stop-2")

        async def stop(ex: Executor = ex) -> None:  # shutdown starts while it rests
            ex.stop_sending()

        env.on_sleep.append(stop)
        (leg,) = (await ex.execute(d)).legs
        assert leg.outcome is LegOutcome.PARTIAL and leg.filled_amount == 0.0
        (label,) = leg.labels  # cancelled by its leg; no re-price, no taker fallback
        assert env.received() == {label: 1}
        (state,) = await env.rig.venue.order_by_label(label)
        assert state.status is OrderStatus.CANCELLED
        assert ex.open_records() == []


async def test_cancel_all_verified_finds_a_resting_order_whose_answer_never_came(
    env: Env,
) -> None:
    """Shutdown cancelled an execution while its send was on the wire: the venue took the
    order, the executor has no venue id for it. The checked cancel-all looks it up by its
    label and cancels it; nothing is left open."""
    await env.rig.stop_pump()  # no stream: only the query can tell the order rests
    env.sim.faults.add({"kind": "timeout_after_accept", "count": 1}, env.sim.now_ms())
    ex = env.rig.executor
    d = await resting_buy(env, "stop-3")
    counters: Any = env.sim.server.counters
    accepted = asyncio.Event()

    class _Seen(Counter[str]):  # the simulator counts the order it takes: tell the test
        def __setitem__(self, key: str, value: int) -> None:
            super().__setitem__(key, value)
            accepted.set()

    counters.orders_accepted = _Seen()
    task = asyncio.get_running_loop().create_task(ex.execute(d))
    await asyncio.wait_for(accepted.wait(), 5.0)
    ex.stop_sending()
    task.cancel()  # what shutdown does to an execution past its half of the budget
    with pytest.raises(asyncio.CancelledError):
        await task
    (label,) = counters.orders_accepted
    (rec,) = ex.open_records()
    assert rec.label == label and rec.venue_order_id is None
    cancelled, left = await ex.cancel_all_verified()
    assert (cancelled, left) == (1, [])
    (state,) = await env.rig.venue.order_by_label(label)
    assert state.status is OrderStatus.CANCELLED
    assert env.received() == {label: 1}


async def test_halt_cancels_a_resting_order_whose_send_outcome_stayed_unknown(env: Env) -> None:
    """The operator's halt (and `hedgerctl cancel-all`, the same `cancel_all_open`) must cancel
    every order that can rest, also one the executor has no venue id for: its send timed out
    after the venue took it and every query by label failed, so it is UNKNOWN (in flight, not
    guessed). Skipping it left a post-only order resting on the venue while HALTED."""
    await env.rig.stop_pump()  # no stream: only a query can tell the order rests
    now = env.sim.now_ms()
    env.sim.faults.add({"kind": "timeout_after_accept", "count": 1}, now)
    env.sim.faults.add(
        {"kind": "http_5xx", "count": 4, "methods": ["private/get_order_state_by_label"]}, now
    )
    ex = env.rig.executor
    d = await resting_buy(env, "halt-unknown-1")
    (leg,) = (await ex.execute(d)).legs
    assert leg.outcome is LegOutcome.UNKNOWN, leg
    (label,) = leg.labels
    (rec,) = ex.open_records()
    assert rec.status is OrderStatus.UNKNOWN and rec.venue_order_id is None
    await env.rig.trading.halt(actor="uid:0", text="test")
    await ex.flush()  # the cancel-on-halt it started
    (state,) = await env.rig.venue.order_by_label(label)
    assert state.status is OrderStatus.CANCELLED, state
    assert ex.open_records() == []
    assert env.received() == {label: 1}


async def test_a_maker_order_the_halt_could_not_see_is_cancelled_by_its_leg(
    tmp_path: Path,
) -> None:
    """A halt that lands while a post-only order is on the wire: the halt's cancel-all asks
    the venue by label before the venue has the order, so only the leg can cancel it. It
    must do so at once (as on shutdown), not leave it resting while HALTED until the maker
    deadline (a minute here)."""
    async for env in make_env(tmp_path, ExecutorSettings(reprice_interval_ms=1_000)):
        await _halt_races_the_maker_send(env)


async def _halt_races_the_maker_send(env: Env) -> None:
    ex, venue = env.rig.executor, env.rig.venue
    d = await resting_buy(env, "halt-race-1")
    place = venue.place_order

    async def halt_then_place(request: Any) -> Any:  # the halt races the send
        await env.rig.trading.halt(actor="uid:0", text="test")
        await ex.flush()  # its cancel-all: the venue does not know the order yet
        return await place(request)

    venue.place_order = halt_then_place  # type: ignore[method-assign]
    resting_while_halted: list[int] = []

    async def watch() -> None:
        for rec in ex.open_records():
            (state,) = await venue.order_by_label(rec.label)
            if state.status is OrderStatus.ACKED:
                resting_while_halted.append(env.sim.now_ms())

    env.on_sleep.append(watch)
    (leg,) = (await ex.execute(d)).legs
    assert not resting_while_halted, resting_while_halted
    assert leg.outcome is LegOutcome.PARTIAL and leg.filled_amount == 0.0, leg
    (label,) = leg.labels  # cancelled by its leg; no re-price, no taker fallback
    (state,) = await venue.order_by_label(label)
    assert state.status is OrderStatus.CANCELLED
    assert env.received() == {label: 1}
    assert ex.open_records() == []


def break_parse_order_once(env: Env) -> list[int]:
    """ccxt's REST client fails once on the venue's answer to an order request, after the
    venue acted on it (a parser's TypeError, not a ccxt error); empty once it has failed."""
    rest: Any = env.rig.venue.rest
    parse_order = rest.parse_order
    broken = [1]

    def parse_once_broken(*args: Any, **kw: Any) -> Any:
        if broken:
            broken.pop()
            raise TypeError("unsupported operand type(s) for *: 'NoneType' and 'float'")
        return parse_order(*args, **kw)

    rest.parse_order = parse_once_broken
    return broken


async def test_an_answer_the_adapter_cannot_read_is_an_unknown_outcome(tmp_path: Path) -> None:
    """The venue took the order, then ccxt failed on its answer with an error that is not a
    venue error (a parser's TypeError). The send's outcome is unknown: the order is asked
    for by its label like a timeout, never left NEW (the running reconciliation skips NEW
    orders as about to be sent: it stayed in flight for good) and never sent again."""
    settings = ExecutorSettings(unknown_query_interval_ms=200)
    async for env in make_env(tmp_path, settings, cancel_on_disconnect=False):
        await _unreadable_answer(env)


async def _unreadable_answer(env: Env) -> None:
    await env.rig.stop_pump()  # no stream: only the query can tell what happened
    broken = break_parse_order_once(env)
    ex = env.rig.executor
    d = perp_decision("unreadable-1", OrderSide.BUY, 2_000.0, mid_usd=await mid(env),
                      ts_ms=env.sim.now_ms())  # fmt: skip
    (leg,) = (await ex.execute(d)).legs
    assert not broken  # the adapter's parser did fail
    assert leg.outcome is LegOutcome.DONE and leg.filled_amount == 2_000.0, leg
    (label,) = leg.labels
    labels_once(env, leg.labels)
    rec = await env.rig.journal.order(label)
    assert rec is not None and rec.status is OrderStatus.FILLED
    events = await env.rig.journal.events_since()
    statuses = [e.payload.get("status_after") for e in events if e.ref == label]
    assert "unknown" in statuses, statuses
    assert env.perp_position_usd() == 2_000.0


async def test_a_cancel_answer_the_adapter_cannot_read_does_not_end_the_cancel_all(
    tmp_path: Path,
) -> None:
    """The halt's cancel-all meets a cancel whose answer ccxt fails to parse (a TypeError,
    not a venue error): that order is asked for by label and the cancel-all goes on to the
    next order. It ended there, in a task whose failure nobody saw, leaving the second
    order resting while HALTED."""
    settings = ExecutorSettings(unknown_query_interval_ms=200)
    async for env in make_env(tmp_path, settings, cancel_on_disconnect=False):
        await _cancel_all_past_an_unreadable_answer(env)


async def _cancel_all_past_an_unreadable_answer(env: Env) -> None:
    await env.rig.stop_pump()
    ex = env.rig.executor
    labels = []
    for i in range(2):  # two orders resting on the venue, UNKNOWN to the executor
        now = env.sim.now_ms()
        # The answer never comes (held past the client's timeout: a closed connection would
        # have the GET re-sent by aiohttp, the REST path's known hazard).
        env.sim.faults.add({"kind": "timeout_after_accept", "hold_s": 1.0, "count": 1}, now)
        env.sim.faults.add(
            {"kind": "http_5xx", "count": 4, "methods": ["private/get_order_state_by_label"]},
            now,
        )
        (leg,) = (await ex.execute(await resting_buy(env, f"ca-{i}"))).legs
        assert leg.outcome is LegOutcome.UNKNOWN, leg
        labels.extend(leg.labels)
    broken = break_parse_order_once(env)
    await env.rig.trading.halt(actor="uid:0", text="test")
    await ex.flush()  # the cancel-on-halt it started
    assert not broken  # the first cancel's answer did fail to parse
    for label in labels:
        (state,) = await env.rig.venue.order_by_label(label)
        assert state.status is OrderStatus.CANCELLED, (label, state)
    assert ex.open_records() == []


@pytest.mark.parametrize(
    ("field", "bad"),
    [("delta_coin", math.nan), ("delta_coin", math.inf), ("limit_price", math.inf)],
)
async def test_a_leg_with_a_non_finite_number_is_refused_unsent(
    env: Env, field: str, bad: float
) -> None:
    """A leg is not validated where it is built (`HedgeLeg` is a plain record): the executor
    refuses one whose amount, delta or price is not a finite number, sends nothing and counts
    nothing in flight. A NaN delta went out (the amount and price were fine), and every order
    of the leg then counted NaN in flight (|delta| / amount per unit), the net delta with it."""
    d = await resting_buy(env, f"nan-leg-{field}-{bad}")
    (leg,) = d.legs
    d = dataclasses.replace(d, legs=(dataclasses.replace(leg, **{field: bad}),))
    seen: list[float] = []

    async def in_flight(ex: Executor = env.rig.executor) -> None:
        seen.append(ex.in_flight_delta_coin("BTC"))

    env.on_sleep.append(in_flight)
    (res,) = (await env.rig.executor.execute(d)).legs
    assert res.outcome is LegOutcome.REJECTED and res.labels == (), res
    assert env.received() == {}
    assert all(math.isfinite(x) for x in seen), seen
    assert env.rig.executor.in_flight_delta_coin("BTC") == 0.0


def _next_order(board: KillSwitchBoard, sim: Simulator, flatten: bool) -> OrderCheck:
    return board.check_next_order(sim.now_ms(), is_operator_flatten=flatten)


async def test_the_order_rate_budget_counts_every_slice_on_the_wire(tmp_path: Path) -> None:
    """A leg sent in four slices with a budget of two orders a minute: the pre-trade check
    counts the leg's first order (as the hedge loop's does), the executor asks the board for
    each later one right before sending it; the third is refused (and trips, as any order
    over the budget), the leg ends PARTIAL and two orders reached the venue (before: every
    slice went out, four orders in a minute against a budget of two)."""
    settings = ExecutorSettings(max_slice_delta_coin=0.2, slice_interval_ms=1_000)
    async for env in make_env(tmp_path, settings):
        ex = env.rig.executor
        limits = KillSwitchSettings.model_validate(
            {"order_rate": {"max_orders_per_minute": 2}, "price_sanity": {"enabled": False}}
        )
        board = KillSwitchBoard(limits, env.rig.trading)
        ex.order_budget = functools.partial(_next_order, board, env.sim)
        m = await mid(env)
        d = sliced_sell(env, "rate-1", m)
        first = board.check_order(
            now_ms=env.sim.now_ms(),
            notional_usd=0.2 * m,
            added_notional_usd=55_000.0,
            price_usd=m,
            reference_price_usd=m,
            delta_before_coin=d.net_delta_coin,
            delta_after_coin=d.delta_after_coin,
        )
        assert first.allowed, first
        (leg,) = (await ex.execute(d)).legs
        assert leg.outcome is LegOutcome.PARTIAL and "order budget" in leg.detail, leg
        sent = env.received()
        assert len(sent) == 2 and all(n == 1 for n in sent.values()), sent
        assert board.rates.counts(env.sim.now_ms())["minute"][0] == 2
        assert env.perp_position_usd() == -leg.filled_amount
        # The refused slice was journalled as an intent and closed unsent.
        refused = await env.rig.journal.order(leg.labels[-1])
        assert refused is not None and refused.status is OrderStatus.CANCELLED
        assert leg.labels[-1] not in sent
        assert ReasonCode.ORDER_RATE in env.rig.trading.snapshot.reason_codes
        assert ex.open_records() == []
        # A restart: the rate windows come back from the journal, the two orders sent and not
        # the refused intent (before: three, one more than went on the wire, so a restarted
        # daemon refused or halted on orders it never sent).
        await ex.flush()
        await env.rig.journal.close()
        async with await Journal.open(tmp_path / "journal.sqlite") as journal:
            restarted = KillSwitchBoard(limits, env.rig.trading)
            assert await restarted.restore_rates(journal, env.sim.now_ms()) == 2
            assert restarted.rates.counts(env.sim.now_ms())["minute"][0] == 2
            await restarted.flush()


async def test_a_decision_cancels_its_cancel_labels_and_stops_their_leg(tmp_path: Path) -> None:
    """A resting maker buy, then a decision that sells and names the buy in `cancel_labels`
    (the controller's: a resting order working against its direction): the buy is cancelled
    on the venue with the sell, journalled, and its leg ends without re-posting at the touch
    (before: nothing read `cancel_labels`, the buy kept resting and re-posting)."""
    async for env in make_env(tmp_path, ExecutorSettings(reprice_interval_ms=1_000)):
        ex = env.rig.executor
        resting = await resting_buy(env, "cancel-1")
        rests, release = asyncio.Event(), asyncio.Event()

        # Every wait holds at the maker leg's first pause (its order rests); the sell never
        # waits (one IOC order).
        async def hold(rests: asyncio.Event = rests, release: asyncio.Event = release) -> None:
            rests.set()
            await release.wait()

        env.on_sleep.append(hold)
        holder = [asyncio.get_running_loop().create_task(ex.execute(resting))]
        try:
            await asyncio.wait_for(rests.wait(), 10.0)
            (label,) = [r.label for r in ex.open_records()]
            sell = dataclasses.replace(
                perp_decision(
                    "cancel-2",
                    OrderSide.SELL,
                    2_000.0,
                    mid_usd=await mid(env),
                    ts_ms=env.sim.now_ms(),
                ),
                cancel_labels=(label,),
            )
            res = await ex.execute(sell)
            (state,) = await env.rig.venue.order_by_label(label)
            assert state.status is OrderStatus.CANCELLED
            assert res.legs[0].outcome is LegOutcome.DONE
            assert res.cancelled == (label,)
            rec = await env.rig.journal.order(label)
            assert rec is not None and rec.status is OrderStatus.CANCELLED
        finally:
            release.set()
            ex.stop_sending()  # the test's end either way: no leg left running
            first = await asyncio.wait_for(holder[0], 30.0)
        (leg,) = first.legs
        assert leg.outcome is LegOutcome.PARTIAL and "superseded by decision cancel-2" in leg.detail
        assert leg.labels == (label,), "never re-posted at the touch"
        assert env.received().get(label) == 1
        assert ex.open_records() == []


async def test_a_leg_stopped_while_its_intent_waits_to_be_sent_never_sends_it(
    tmp_path: Path,
) -> None:
    """The operator's flatten (`cancel_orders` of the account) lands while a taker leg's
    journalled intent waits for a send slot: the cancels cannot see an order not yet on the
    venue (looked up by label: not found), so the leg itself must not send it (before: it
    went out after the flatten had read the positions, and its fill opened the delta
    again)."""
    async for env in make_env(tmp_path, ExecutorSettings(max_concurrent_orders=1)):
        ex = env.rig.executor
        d = perp_decision(
            "stop-1", OrderSide.SELL, 2_000.0, mid_usd=await mid(env), ts_ms=env.sim.now_ms()
        )
        slot = ex._sem  # the one send slot, held: the leg's intent waits for it
        await slot.acquire()
        task = asyncio.get_running_loop().create_task(ex.execute(d))
        try:
            for _ in range(10_000):  # the journal thread answers: yield until the intent is in
                if ex.open_records():
                    break
                await asyncio.sleep(0)
            (rec,) = ex.open_records()
            assert await ex.cancel_orders("operator flatten (test)", venue=rec.venue) == []
        finally:
            slot.release()
        (leg,) = (await asyncio.wait_for(task, 30.0)).legs
        assert env.received() == {}, "sent after the flatten stopped its leg"
        assert leg.outcome is LegOutcome.PARTIAL and "operator flatten" in leg.detail, leg
        closed = await env.rig.journal.order(rec.label)
        assert closed is not None and closed.status is OrderStatus.CANCELLED
        assert env.perp_position_usd() == 0.0
        assert ex.open_records() == [] and ex.in_flight_delta_coin("BTC") == 0.0


async def test_cancel_orders_returns_once_the_stopped_legs_orders_on_the_wire_are_answered(
    tmp_path: Path,
) -> None:
    """The operator's flatten (`cancel_orders` of the account) lands while a taker leg's
    order is on the wire, not yet on the venue: its label's look-up finds nothing. The
    cancels return only once that send is answered, so the flatten's position read that
    follows sees its fill (before: they returned at once, the flatten read the positions
    without it, and the IOC filled after: the delta opened again)."""
    async for env in make_env(tmp_path, ExecutorSettings()):
        await _flatten_races_the_taker_send(env)


async def _flatten_races_the_taker_send(env: Env) -> None:
    ex, venue = env.rig.executor, env.rig.venue
    d = perp_decision(
        "wire-1", OrderSide.SELL, 2_000.0, mid_usd=await mid(env), ts_ms=env.sim.now_ms()
    )
    place = venue.place_order
    on_wire, release = asyncio.Event(), asyncio.Event()

    async def held_place(request: Any) -> Any:  # the request travels: not at the venue
        on_wire.set()
        await release.wait()
        return await place(request)

    venue.place_order = held_place  # type: ignore[method-assign]
    task = asyncio.get_running_loop().create_task(ex.execute(d))
    await asyncio.wait_for(on_wire.wait(), 10.0)
    (rec,) = ex.open_records()
    at_return: list[dict[str, int]] = []
    cancels = asyncio.get_running_loop().create_task(
        ex.cancel_orders("operator flatten (test)", venue=rec.venue)
    )
    cancels.add_done_callback(lambda _: at_return.append(env.received()))
    # A bound, not luck: the fixed cancels wait for the answer whatever this lasts; the
    # old ones returned within it (one look-up on the local simulator).
    await asyncio.wait({cancels}, timeout=1.0)
    release.set()
    assert await asyncio.wait_for(cancels, 30.0) == []
    assert at_return == [{rec.label: 1}], "returned while the order was on the wire"
    (leg,) = (await asyncio.wait_for(task, 30.0)).legs
    assert leg.outcome is LegOutcome.DONE, leg  # the one IOC filled it, nothing more
    assert env.perp_position_usd() == -2_000.0
    assert ex.open_records() == []
