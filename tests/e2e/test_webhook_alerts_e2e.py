"""A webhook receiver that hangs never delays a hedge: the whole daemon on the simulator (its
clock the simulator's, started at a fixed time) with `[risk.alerts.webhook]` pointed at a local
HTTPS receiver that takes every request and never answers. The test drives the daemon's hedge
evaluations itself and times them (decision latency, wall clock) first with the webhook idle
and no alert (as without a webhook), then with its delivery task stuck on the receiver, its
queue full, and an alert raised inside every timed pass; then a trade
the daemon did not cause must be hedged (the order reaches the simulator) while the webhook is
still stuck, and the daemon must shut down promptly."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from e2e_support import (
    admin_trade,
    atm_call,
    daemon_config,
    orders_received,
    short_dir,
    simulator,
    start_daemon,
    wait_for,
)

from hedgerd.daemon import Daemon
from hedgerd.risk.alerts import Alert, AlertDispatcher
from pinned_clock import TEST_START_MS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "risk"))
from webhook_receiver import HOST, https_receiver

SPEED = 1.0
SAMPLES = 30
QUEUE = 8
HOOK_TIMEOUT_S = 60.0  # far beyond the test: the delivery task stays stuck throughout


async def _decision_latencies_s(
    daemon: Daemon, n: int, alerts: AlertDispatcher | None = None
) -> list[float]:
    """Wall seconds of `n` hedge evaluations of BTC, one after the other; with `alerts`, each
    raises an alert first, inside the timed pass (as a kill switch does in its own pass)."""
    out: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        if alerts is not None:
            assert alerts.notify(Alert("test", f"in_pass_{i}", "halted", "x", TEST_START_MS + i))
        decision = await daemon.evaluate("BTC")
        out.append(time.perf_counter() - started)
        assert decision is not None
    return out


async def test_a_hanging_webhook_never_delays_a_hedge(tmp_path: Path) -> None:
    async with (
        https_receiver(tmp_path) as receiver,
        simulator(SPEED, seed=5) as sim,
    ):
        receiver.hang = True
        values = daemon_config(short_dir())
        # The controller's own loop evaluates once at start; every later evaluation is the
        # test's, so the timings are of decisions alone.
        values["daemon"]["evaluate_interval_s"] = 3600.0
        values["risk"] = {
            "alerts": {
                "min_interval_s": 0.0,
                "max_per_hour": 10_000,
                "webhook": {
                    "url": receiver.url,
                    "allowed_hosts": [HOST],
                    "ca_file": str(receiver.ca_file),
                    "format": "slack",
                    "timeout_s": HOOK_TIMEOUT_S,
                    "retries": 0,
                    "max_per_minute": 10_000,
                    "queue_size": QUEUE,
                },
            }
        }
        run = await start_daemon(sim, values, SPEED)
        daemon = run.daemon
        try:
            alerts, stats = daemon.alerts, daemon.stats
            assert alerts is not None and alerts.webhook is not None
            sink = alerts.webhook
            await wait_for(lambda: stats.evaluations >= 1, 20.0, "the start-up evaluation")
            await wait_for(lambda: not daemon._exec_tasks, 20.0, "start-up hedges to end")

            idle = await _decision_latencies_s(daemon, SAMPLES)

            # The first alert is taken and held by the receiver; then twice as many as the
            # queue holds (the oldest dropped).
            assert alerts.notify(Alert("test", "flood", "halted", "x", TEST_START_MS))
            await wait_for(lambda: receiver.attempts >= 1, 10.0, "the receiver to hold a POST")
            for i in range(2 * QUEUE):
                assert alerts.notify(Alert("test", f"flood_{i}", "halted", "x", TEST_START_MS + i))
            stuck = await _decision_latencies_s(daemon, SAMPLES, alerts)
            assert sink.pending == 1 + QUEUE and sink.stats.dropped == QUEUE + SAMPLES
            assert alerts.stats.delivered == 0 and receiver.attempts == 1  # still stuck

            # A trade the daemon did not cause (about -10 coin of delta) is hedged while the
            # webhook is stuck: from the first evaluation that trades to the order at the venue.
            sent = orders_received(sim)
            await admin_trade(sim, atm_call(sim), "sell", 20.0)
            deadline = time.monotonic() + 20.0
            while True:
                started = time.perf_counter()
                decision = await daemon.evaluate("BTC")
                if decision is not None and decision.trades:
                    break
                assert time.monotonic() < deadline, "the option trade never reached the book"
                # A hold may do no I/O at all: let the simulator and the streams run, or
                # the trade is never delivered (nothing else gets the event loop).
                await asyncio.sleep(0.01)
            await wait_for(lambda: orders_received(sim) > sent, 5.0, "the hedge at the venue")
            hedge_s = time.perf_counter() - started
            assert receiver.attempts == 1 and alerts.stats.delivered == 0  # still stuck
        finally:
            shutdown_started = time.perf_counter()
            await run.shutdown()
            shutdown_s = time.perf_counter() - shutdown_started

    p50_idle, p50_stuck = statistics.median(idle), statistics.median(stuck)
    print(
        f"\ndecision latency ms: idle p50 {p50_idle * 1e3:.2f} max {max(idle) * 1e3:.2f}; "
        f"webhook stuck p50 {p50_stuck * 1e3:.2f} max {max(stuck) * 1e3:.2f}; "
        f"trade to order at venue {hedge_s * 1e3:.1f} ms; shutdown {shutdown_s:.2f} s"
    )
    # Comparable to the idle case (a generous allowance for a shared machine), and nowhere
    # near the webhook's timeout, which a decision waiting on the receiver would take.
    assert p50_stuck <= 3 * p50_idle + 0.02
    assert max(stuck) < HOOK_TIMEOUT_S / 30  # 2 s: room for a loaded machine, not for a wait
    assert hedge_s < 5.0
    assert shutdown_s < 10.0
