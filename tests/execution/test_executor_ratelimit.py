"""A storm of Deribit 10028 `too_many_requests` (each also ends the WebSocket session): the
executor backs off, the private session is re-established (re-authenticated), every decision
still ends with its amount, no label is sent twice, and the order rate measured where it
lands (the simulator) never exceeds the configured orders lane.

The lanes are the venue adapter's (asyncio-throttle, `LaneLimiter`); the executor adds no
throttle of its own. Here the orders lane is set to 4 per second so the check runs in a few
seconds of wall time (the rate limit is wall-clock by nature).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hedgerd.execution.drill import DRILL_KEY as KEY
from hedgerd.execution.drill import DRILL_SECRET as SECRET
from hedgerd.execution.drill import PERP, perp_decision, rig, sim_scenario
from hedgerd.execution.executor import ExecutorSettings, LegOutcome
from hedgerd.model import OrderSide
from hedgerd.sim.command import running_simulator
from hedgerd.venues.base import Lane, RateLimit
from hedgerd.venues.ccxt_venue import LaneLimiter

ORDERS_PER_S = 4
WINDOW_S = 1.0
ORDER_METHODS = ("private/buy", "private/sell")


async def test_10028_storm_backs_off_reauthenticates_and_respects_the_orders_lane(
    tmp_path: Path,
) -> None:
    async with running_simulator(
        scenario=sim_scenario(vol=0.05), stepped=True, accounts=[(KEY, SECRET)]
    ) as sim:
        arrivals: list[tuple[float, str]] = []
        server: Any = sim.server
        inner = server.call

        async def recording_call(method: str, params: dict[str, Any], ctx: Any) -> Any:
            if method in ORDER_METHODS:
                arrivals.append((time.monotonic(), str(params.get("label", ""))))
            return await inner(method, params, ctx)

        server.call = recording_call
        backoffs: list[int] = []

        async def sleep_ms(ms: int) -> None:
            backoffs.append(ms)
            sim.advance(max(ms, 0))
            await asyncio.sleep(0)

        r = await rig(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            key=KEY,
            secret=SECRET,
            journal_path=tmp_path / "j.sqlite",
            clock_ms=sim.now_ms,
            sleep_ms=sleep_ms,
            settings=ExecutorSettings(
                max_concurrent_orders=4, rate_limit_initial_ms=200, rate_limit_max_ms=2_000
            ),
        )
        r.venue.limiter = LaneLimiter(
            (
                RateLimit(Lane.ORDERS, ORDERS_PER_S, WINDOW_S),
                RateLimit(Lane.CANCELS, 4, 1.0),
                RateLimit(Lane.READS, 50, 1.0),
            )
        )
        await r.start()
        try:
            session = r.venue.session
            assert session is not None and session.connects == 1
            m = (await r.venue.fetch_quote(PERP)).mid_price
            # The next 5 order requests are refused with 10028 and end the session.
            sim.faults.add(
                {"kind": "rate_limit", "methods": list(ORDER_METHODS), "count": 5}, sim.now_ms()
            )
            decisions = [
                perp_decision(
                    f"storm-{i}",
                    OrderSide.BUY if i % 2 else OrderSide.SELL,
                    100.0 * (i + 1),
                    mid_usd=m,
                    ts_ms=sim.now_ms(),
                )
                for i in range(8)
            ]
            results = await asyncio.gather(*(r.executor.execute(d) for d in decisions))
            # A request in flight on a session the venue ends has no known outcome: its leg
            # stays UNKNOWN (in flight) until the label is found or reconciliation closes it.
            redo = []
            for d, res in zip(decisions, results, strict=True):
                (leg,) = res.legs
                assert leg.outcome in (LegOutcome.DONE, LegOutcome.UNKNOWN), leg
                if leg.outcome is LegOutcome.DONE:
                    assert leg.filled_amount == d.legs[0].amount
                else:
                    redo.append(d)
            assert r.executor.rate_limited >= 1
            assert server.counters.rate_limited >= 5
            # Backed off (doubling), and the session came back re-authenticated.
            assert any(b >= 200 for b in backoffs)
            assert session.connects >= 2 and session.connected.is_set()
            # Nothing sent twice under one label; refused orders were re-sent as new attempts.
            labels = [lb for _, lb in arrivals]
            assert len(labels) == len(set(labels)), "a label went out twice"
            assert all(v <= 1 for v in server.counters.orders_accepted.values())
            # The measured rate: at most ORDERS_PER_S in any window of WINDOW_S (less 20 ms of
            # network jitter between the throttle and the server).
            times = [t for t, _ in arrivals]
            worst = max(sum(1 for u in times if t <= u < t + WINDOW_S - 0.02) for t in times)
            assert worst <= ORDERS_PER_S, worst
            # Reconciliation after its grace period closes what never reached the venue; the
            # controller then decides again (new decision ids) for what is still missing.
            sim.advance(10_000)
            report = await r.reconciler.reconcile()
            assert not report.still_unknown and not await r.journal.open_orders()
            for label in report.not_found:
                assert server.counters.orders_accepted.get(label, 0) == 0
            for d in redo:
                again = perp_decision(
                    f"{d.decision_id}-r",
                    d.legs[0].side,
                    d.legs[0].amount,
                    mid_usd=m,
                    ts_ms=sim.now_ms(),
                )
                (leg,) = (await r.executor.execute(again)).legs
                assert leg.outcome is LegOutcome.DONE
            engine: Any = sim.engine
            acct = engine.account_for_key(KEY)
            pos = engine.dispatch("private/get_positions", {"currency": "BTC"}, acct)
            venue_usd = sum(float(p["size"]) for p in pos if p["instrument_name"] == PERP)
            totals = await r.journal.fill_totals_since(0)
            assert [(t.instrument, t.net_amount) for t in totals] == [(PERP, venue_usd)]
            assert venue_usd == sum(d.legs[0].side.sign * d.legs[0].amount for d in decisions)
            # Afterwards orders go through the re-established session again.
            d = perp_decision("after-storm", OrderSide.BUY, 100.0, mid_usd=m, ts_ms=sim.now_ms())
            (leg,) = (await r.executor.execute(d)).legs
            assert leg.outcome is LegOutcome.DONE
        finally:
            await r.close()
