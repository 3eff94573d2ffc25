"""The whole daemon against the simulator, operated with `hedgerctl`: halt (orders stop at
once, the hedger's open orders are cancelled, the halt survives a restart), resume, and
REDUCE_ONLY judged by the underlying's net delta."""

from __future__ import annotations

import math
import time
from typing import Any

from e2e_support import (
    MM_KEY,
    daemon_config,
    hedgerctl,
    mm_open_orders,
    orders_received,
    short_dir,
    simulator,
    start_daemon,
    status,
    wait_for,
)

from hedgerd.execution.client_ids import client_label
from hedgerd.hedging.jumps import JUMP_SKEW_MAX

SPEED = 10.0


def _resting_hedger_order(sim: Any) -> str:
    """A post-only buy far below the market with a hedgerd label, placed on the market maker's
    account straight in the engine (as if an earlier run had left it)."""
    label = client_label("e2e" + "0" * 13, 0)
    account = sim.engine.account_for_key(MM_KEY)
    index = sim.engine.admin_state()["index"]["BTC"]
    price = round(index * 0.7 / 0.5) * 0.5
    sim.engine.dispatch(
        "private/buy",
        {
            "instrument_name": "BTC-PERPETUAL",
            "amount": 100,
            "type": "limit",
            "price": price,
            "post_only": True,
            "label": label,
        },
        account,
    )
    return label


async def test_halt_cancels_survives_restart_and_resume_hedges_again() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED) as sim:
        values = daemon_config(work)
        run = await start_daemon(sim, values, SPEED)
        # The demo book starts outside its band: the first hedge goes out at once.
        await wait_for(lambda: orders_received(sim) > 0, 20.0, "the first hedge")
        st = await status(sock)
        assert st["state"] == "ACTIVE"
        btc = st["underlyings"]["BTC"]
        for key in ("delta", "gamma", "vega", "theta", "band"):
            assert key in btc, key
        _check_band_inputs(btc["band_inputs"])
        # The same figures as the risk the last evaluation decided on (read in one step: no
        # evaluation between the document and the risk).
        doc, risk = run.daemon.status(), run.daemon.stats.per_underlying["BTC"].last_risk
        assert risk is not None
        assert doc["underlyings"]["BTC"]["band_inputs"] == {
            "vol": risk.vol,
            "vol_of_vol_per_sqrt_year": risk.vol_of_vol_per_sqrt_year,
            "jump_var_ratio": risk.jump_var_ratio,
            "jump_skew": risk.jump_skew,
            "jump_rate_per_year": risk.jump_rate_per_year,
            "gamma_coherence": risk.gamma_coherence,
            "gamma_ahead_coin_per_usd": risk.gamma_ahead_coin_per_usd,
            "flow_var_coin2_per_year": risk.flow_var_coin2_per_year,
        }
        assert isinstance(st["open_orders"], list) and "orders_sent_total" in st

        label = _resting_hedger_order(sim)
        assert run.daemon.reconciler is not None and run.daemon.executor is not None
        await run.daemon.reconciler.reconcile()  # adopts it: now the hedger's open order
        assert any(r.label == label for r in run.daemon.executor.open_records())

        code, out = await hedgerctl(sock, "halt", "--reason", "e2e test")
        assert code == 0, out
        sent_at_halt = orders_received(sim)
        await wait_for(
            lambda: all(o.label != label for o in mm_open_orders(sim)),
            1.0,
            "the hedger's open order to be cancelled within 1 s",
        )
        # Make the controller want to trade: a target far from the delta. Nothing may go out.
        stats = run.daemon.stats.per_underlying["BTC"]
        blocked = stats.blocked_legs
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "3")
        assert code == 0, out
        await wait_for(lambda: stats.blocked_legs > blocked, 10.0, "a refused hedge")
        assert orders_received(sim) == sent_at_halt
        assert (await status(sock))["state"] == "HALTED"
        assert await run.shutdown() == 0

        # Restart on the same journal: still HALTED.
        run = await start_daemon(sim, values, SPEED)
        st = await status(sock)
        assert st["state"] == "HALTED"
        assert [r["code"] for r in st["reasons"]] == ["operator"]
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "3")
        assert code == 0, out
        sent = orders_received(sim)
        start = time.monotonic()
        code, out = await hedgerctl(sock, "resume")
        assert code == 0, out
        await wait_for(lambda: orders_received(sim) > sent, 15.0, "hedging to resume")
        assert time.monotonic() - start < 15.0
        assert (await status(sock))["state"] == "ACTIVE"
        assert await run.shutdown() == 0


async def test_reduce_only_passes_reducing_hedge_and_blocks_growing_one() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED, seed=5) as sim:
        run = await start_daemon(sim, daemon_config(work), SPEED)
        stats = run.daemon.stats.per_underlying["BTC"]

        def settled() -> bool:
            lo, _target, hi = stats.last_band
            return stats.hedges > 0 and lo <= stats.last_delta_coin <= hi

        await wait_for(settled, 20.0, "the first hedges to bring delta into the band")
        await _check_metrics(run.daemon.ops_port)

        # REDUCE_ONLY, then a target that needs |delta| to grow: refused, nothing sent.
        code, out = await hedgerctl(sock, "reduce-only")
        assert code == 0, out
        # A hedge already journalled before REDUCE_ONLY (the gate judges an order when it is
        # journalled) may still be on the wire: count from when nothing is in flight.
        executor = run.daemon.executor
        assert executor is not None
        await wait_for(lambda: not executor.in_flight_orders("BTC"), 10.0, "no hedge in flight")
        journal: Any = run.daemon.journal
        assert executor.journal is journal  # the spy below sees what the executor journals
        intents: list[Any] = []
        record_intents, record_intent = journal.record_intents, journal.record_intent

        async def seen_many(orders: Any, *args: Any, **kw: Any) -> None:
            intents.extend(orders)
            await record_intents(orders, *args, **kw)

        async def seen_one(order: Any, *args: Any, **kw: Any) -> None:
            intents.append(order)
            await record_intent(order, *args, **kw)

        journal.record_intents, journal.record_intent = seen_many, seen_one
        blocked = stats.blocked_legs
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "2.5")
        assert code == 0, out
        await wait_for(lambda: stats.blocked_legs > blocked, 10.0, "the growing hedge refused")
        # Nothing that grows went out. A reducing hedge may (the market moved the delta out
        # of its band on the reducing side: seen at the year-end start): reduce-only orders.
        assert all(r.reduce_only for r in intents), intents
        journal.record_intents, journal.record_intent = record_intents, record_intent
        assert (await status(sock))["state"] == "REDUCE_ONLY"

        # ACTIVE: the delta goes to the new target.
        code, out = await hedgerctl(sock, "resume")
        assert code == 0, out
        await wait_for(lambda: stats.last_delta_coin > 1.5, 20.0, "delta near the new target")

        # REDUCE_ONLY again and the target back to 0: the hedge reduces |delta|, so it passes.
        code, out = await hedgerctl(sock, "reduce-only")
        assert code == 0, out
        sent = orders_received(sim)
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "0")
        assert code == 0, out
        await wait_for(lambda: orders_received(sim) > sent, 10.0, "the reducing hedge sent")
        await wait_for(lambda: abs(stats.last_delta_coin) < 1.0, 20.0, "delta back near 0")
        assert (await status(sock))["state"] == "REDUCE_ONLY"
        assert await run.shutdown() == 0


async def test_crashed_part_halts_trading_and_restarts() -> None:
    work = short_dir()
    async with simulator(SPEED, seed=9) as sim:
        run = await start_daemon(sim, daemon_config(work), SPEED)
        daemon = run.daemon
        real = daemon.hedge_loop.hedge_states
        crashed: list[bool] = []

        async def failing_once(underlying: str) -> Any:
            if not crashed:
                crashed.append(True)
                raise RuntimeError("injected controller failure")
            return await real(underlying)

        daemon.hedge_loop.hedge_states = failing_once  # type: ignore[method-assign]
        assert daemon.trading is not None
        trading = daemon.trading
        await wait_for(
            lambda: (
                trading.state.value == "halted"
                and [r.code.value for r in trading.reasons] == ["component_crash"]
            ),
            10.0,
            "COMPONENT_CRASH to halt trading",
        )
        evaluations = daemon.stats.evaluations
        # The controller was restarted (with backoff) and evaluates again, without trading.
        sent = orders_received(sim)
        await wait_for(lambda: daemon.stats.evaluations > evaluations + 3, 10.0, "restart")
        assert orders_received(sim) == sent
        assert any("injected" in e for e in daemon.stats.errors)
        assert await run.shutdown() == 0


async def test_dead_book_feed_halts_and_is_rebuilt() -> None:
    work = short_dir()
    async with simulator(SPEED, seed=11) as sim:
        run = await start_daemon(sim, daemon_config(work), SPEED)
        feed = run.daemon.feed
        trading = run.daemon.trading
        assert feed is not None and trading is not None
        old_tasks = list(feed._tasks)
        old_tasks[0].cancel()  # the stream consumer dies
        await wait_for(
            lambda: "component_crash" in [r.code.value for r in trading.reasons],
            10.0,
            "COMPONENT_CRASH",
        )
        await wait_for(
            lambda: (
                bool(feed._tasks) and all(t not in old_tasks and not t.done() for t in feed._tasks)
            ),
            10.0,
            "the feed restarted",
        )
        events = feed.stats.events
        await wait_for(lambda: feed.stats.events > events, 10.0, "the stream flowing again")
        assert await run.shutdown() == 0


def _check_band_inputs(inputs: dict[str, Any]) -> None:
    """The hedge band's market inputs in the status document after real evaluations: every
    one the test policy computes (a hedgerd band: averaged gamma ahead, and a coherence for
    the demo book's vanna) present, finite and in its range."""
    assert set(inputs) == {
        "vol",
        "vol_of_vol_per_sqrt_year",
        "jump_var_ratio",
        "jump_skew",
        "jump_rate_per_year",
        "gamma_coherence",
        "gamma_ahead_coin_per_usd",
        "flow_var_coin2_per_year",
    }
    for name, value in inputs.items():
        assert isinstance(value, float) and math.isfinite(value), (name, value)
    assert 0.05 < inputs["vol"] < 3.0  # fraction per year, not per cent
    assert inputs["vol_of_vol_per_sqrt_year"] >= 0.0
    assert inputs["jump_var_ratio"] >= 1.0
    assert -JUMP_SKEW_MAX <= inputs["jump_skew"] <= JUMP_SKEW_MAX
    assert inputs["jump_rate_per_year"] >= 0.0
    assert 0.0 <= inputs["gamma_coherence"] <= 1.0
    assert inputs["gamma_ahead_coin_per_usd"] != 0.0
    assert inputs["flow_var_coin2_per_year"] >= 0.0


async def _check_metrics(port: int | None) -> None:
    """/metrics parses with prometheus_client's parser and carries the hedge's figures."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    assert port is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    samples = {
        (s.name, s.labels.get("underlying")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    names = {name for name, _ in samples}
    assert any(n.endswith("delta_target_coin") for n in names), sorted(names)[:20]
    hedges = [v for (n, u), v in samples.items() if n.endswith("hedges_total") and u == "BTC"]
    assert hedges and hedges[0] >= 1
    # The band's market inputs, set with the band on each evaluation.
    assert 0.05 < samples[("hedgerd_mark_vol", "BTC")] < 3.0
    assert math.isfinite(samples[("hedgerd_vol_of_vol_per_sqrt_year", "BTC")])
    assert samples[("hedgerd_vol_of_vol_per_sqrt_year", "BTC")] >= 0.0
    assert math.isfinite(samples[("hedgerd_jump_var_ratio", "BTC")])
    assert samples[("hedgerd_jump_var_ratio", "BTC")] >= 1.0
    assert -JUMP_SKEW_MAX <= samples[("hedgerd_jump_skew", "BTC")] <= JUMP_SKEW_MAX


async def test_no_order_goes_out_while_the_order_session_is_down() -> None:
    """Orders go over the private WebSocket session only (never the REST fallback, whose GETs
    aiohttp may re-send): while it is down, hedges wait."""
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED, seed=13) as sim:
        run = await start_daemon(sim, daemon_config(work), SPEED)
        stats = run.daemon.stats.per_underlying["BTC"]
        await wait_for(lambda: stats.hedges > 0, 20.0, "the first hedge")
        # Its last slice may still be on the wire: counted before the drop, it would read as
        # an order sent while the session was down.
        await wait_for(lambda: not run.daemon._exec_tasks, 10.0, "the first hedge done")
        assert run.daemon.venue is not None and run.daemon.venue.session is not None
        connected = run.daemon.venue.session.connected
        connected.clear()  # as the session sees a dropped connection
        sent, blocked = orders_received(sim), stats.blocked_legs
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "2")
        assert code == 0, out
        await wait_for(lambda: stats.blocked_legs > blocked, 10.0, "the hedge held back")
        assert orders_received(sim) == sent
        connected.set()
        await wait_for(lambda: orders_received(sim) > sent, 10.0, "the hedge sent")
        assert await run.shutdown() == 0
