"""`hedgerctl flatten --confirm` against a running daemon and the simulator: a halted daemon's
hedge position is closed with reduce-only IOC orders, options are left alone, the state stays
HALTED, and the command and its orders are in the journal."""

from __future__ import annotations

import json
from typing import Any

from e2e_support import (
    daemon_config,
    hedgerctl,
    mm_open_orders,
    short_dir,
    simulator,
    start_daemon,
    status,
    wait_for,
)
from test_daemon_control import _resting_hedger_order

SPEED = 10.0
PERP = "BTC-PERPETUAL"


def _mm_positions(sim: Any) -> dict[str, float]:
    """The market maker account's non-zero positions on the simulator (instrument -> size)."""
    accounts: Any = sim.engine.accounts
    return {n: p.size for n, p in accounts["mm"].positions.items() if p.size != 0}


async def test_flatten_closes_the_hedge_only_and_passes_halted() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED, seed=7) as sim:
        run = await start_daemon(sim, daemon_config(work), SPEED)
        stats = run.daemon.stats.per_underlying["BTC"]
        # The demo book starts outside its band: the daemon hedges with the perpetual.
        await wait_for(
            lambda: stats.hedges > 0 and _mm_positions(sim).get(PERP, 0.0) != 0,
            20.0,
            "a hedge position",
        )
        code, out = await hedgerctl(sock, "halt", "--reason", "flatten test")
        assert code == 0, out
        await wait_for(lambda: not run.daemon._exec_tasks, 10.0, "hedges in flight to end")
        before = _mm_positions(sim)
        options = {n: s for n, s in before.items() if n != PERP and n.count("-") == 3}
        assert options, before  # the book: options the flatten must not touch
        assert before[PERP] != 0

        code, out = await hedgerctl(sock, "--json", "flatten", "BTC", "--confirm")
        assert code == 0, out
        sent = json.loads(out)["underlyings"]["BTC"]
        assert sent["decision_id"].startswith("flatten-BTC-")
        assert [leg["instrument"] for leg in sent["legs"]] == [PERP]
        assert sent["legs"][0]["filled_amount"] > 0, sent

        # Lot rounding aside (the perpetual trades in steps of 10 USD), nothing is left.
        await wait_for(
            lambda: abs(_mm_positions(sim).get(PERP, 0.0)) < 10, 10.0, "the perpetual flat"
        )
        after = _mm_positions(sim)
        assert {n: after.get(n) for n in options} == options  # options untouched
        assert (await status(sock))["state"] == "HALTED"

        # Journalled like any order: a decision, reduce-only IOC intents under its labels.
        journal = run.daemon.journal
        assert journal is not None
        orders = await journal.orders_for_decision(sent["decision_id"])
        assert orders and all(o.reduce_only for o in orders)
        assert all(str(o.style) == "ioc_limit" for o in orders), [o.style for o in orders]
        assert sorted(o.label for o in orders) == sorted(sent["legs"][0]["labels"])
        # The command is in the audit log, with its arguments.
        audit = [e for e in await journal.audit_since(0) if e.command == "flatten"]
        assert audit and dict(audit[-1].args) == {"underlying": "BTC", "confirm": True}

        # Without --confirm the command line refuses before anything is sent.
        code, out = await hedgerctl(sock, "flatten", "BTC")
        assert code != 0
        assert await run.shutdown() == 0


async def test_flatten_while_active_cancels_the_resting_orders_first() -> None:
    """ACTIVE, a hedger's order resting on the venue (left by an earlier run, adopted at
    start-up): the flatten cancels it before it sends the flattening orders and says so
    (before: it kept resting, and its fill after the flatten would open delta again)."""
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED, seed=7) as sim:
        label = _resting_hedger_order(sim)
        run = await start_daemon(sim, daemon_config(work), SPEED)
        executor = run.daemon.executor
        assert executor is not None and executor.record(label) is not None, "adopted"
        assert (await status(sock))["state"] == "ACTIVE"
        code, out = await hedgerctl(sock, "--json", "flatten", "BTC", "--confirm")
        assert code == 0, out
        assert all(o.label != label for o in mm_open_orders(sim))
        assert label in json.loads(out)["cancelled_orders"]
        rec = await run.daemon.journal.order(label) if run.daemon.journal else None
        assert rec is not None and str(rec.status) == "cancelled"
        assert await run.shutdown() == 0
