"""SIGKILL drills: a real process running the executor (`python -m hedgerd.execution.drill`)
against a simulator in this test's loop is killed between the journal write and the send, and
between the send and the journalling of its answer, then restarted. Zero duplicate orders
(counted per label where they land), zero lost fills, and the venue's position equals the
journal's fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hedgerd.execution.drill import DRILL_KEY, DRILL_SECRET, PERP, sim_scenario
from hedgerd.execution.executor import DRILL_ENV
from hedgerd.execution.journal import JournalStore
from hedgerd.model import OrderStatus
from hedgerd.sim.command import Simulator, running_simulator

RUN_TIMEOUT_S = 40.0


async def drill(
    sim: Simulator,
    journal: Path,
    *,
    decision: str = "",
    amount: str = "1000",
    side: str = "buy",
    kill_at: str | None = None,
) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if k != DRILL_ENV}
    extra: list[str] = []
    if kill_at:
        env[DRILL_ENV] = kill_at
        # Without the stream, what is journalled at the kill does not race the notifications.
        extra.append("--no-stream")
    offset = sim.now_ms() - time.time_ns() // 1_000_000
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hedgerd.execution.drill",
        "--rest",
        sim.rest_url,
        "--ws",
        sim.ws_url,
        "--key",
        DRILL_KEY,
        "--secret",
        DRILL_SECRET,
        "--journal",
        str(journal),
        "--decision-id",
        decision,
        "--amount",
        amount,
        "--side",
        side,
        "--clock-offset-ms",
        str(offset),
        "--grace-ms",
        "300",
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    code = proc.returncode
    assert code is not None
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    summary = json.loads(lines[-1]) if lines and code == 0 else None
    if code not in (0, -signal.SIGKILL):
        raise AssertionError(f"drill exited {code}: {err.decode()[-2000:]}")
    return code, summary


@contextlib.contextmanager
def _ro(path: Path) -> Iterator[JournalStore]:
    store = JournalStore(path, readonly=True)
    try:
        yield store
    finally:
        store.close()


def venue_truth(sim: Simulator) -> tuple[float, dict[str, list[str]]]:
    engine: Any = sim.engine
    acct = engine.account_for_key(DRILL_KEY)
    pos = engine.dispatch("private/get_positions", {"currency": "BTC"}, acct)
    size = sum(float(p["size"]) for p in pos if p["instrument_name"] == PERP)
    trades = engine.dispatch(
        "private/get_user_trades_by_currency", {"currency": "BTC", "count": 1000}, acct
    )["trades"]
    by_label: dict[str, list[str]] = {}
    for t in trades:
        by_label.setdefault(str(t.get("label") or ""), []).append(str(t["trade_id"]))
    return size, by_label


async def test_sigkill_between_intent_and_send_and_between_send_and_ack(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.sqlite"
    async with running_simulator(
        scenario=sim_scenario(vol=0.05), accounts=[(DRILL_KEY, DRILL_SECRET)]
    ) as sim:
        counters: Any = sim.server.counters
        # 1. Killed after the intent is committed, before the send.
        code, _ = await drill(sim, journal, decision="k1", amount="1000", kill_at="after_intent")
        assert code == -signal.SIGKILL
        with _ro(journal) as store:
            (k1,) = store.orders_for_decision("k1")
            assert k1.status is OrderStatus.NEW
        assert counters.orders_received.get(k1.label, 0) == 0
        await asyncio.sleep(0.4)  # past the reconciler's not-found grace (venue time = wall)
        # 2. Restart (its start-up reconciliation closes k1: never reached the venue), then
        # killed after the venue answered k2 (it traded), before the answer is journalled.
        code, _ = await drill(sim, journal, decision="k2", amount="2000", kill_at="after_send")
        assert code == -signal.SIGKILL
        with _ro(journal) as store:
            rec1 = store.order(k1.label)
            assert rec1 is not None and rec1.status is OrderStatus.CANCELLED
            assert rec1.reason == "not_found"
            (k2,) = store.orders_for_decision("k2")
            assert k2.status is OrderStatus.NEW and not store.fills_for_order(k2.label)
        assert counters.orders_received.get(k1.label, 0) == 0
        assert counters.orders_accepted[k2.label] == 1
        # 3. Restart: start-up reconciliation asks the venue by label before sending anything,
        # and fetches the fill the killed process never journalled; then trading goes on.
        code, out = await drill(sim, journal, decision="k3", amount="3000", side="sell")
        assert code == 0, out
        assert out["startup"]["recovered_unknown"] == [k2.label]
        assert out["startup"]["resolved"] == [k2.label]
        assert out["startup"]["missed_fills"], "the fill is recovered"
        assert out["result"]["legs"][0]["outcome"] == "done"
        assert out["open"] == []
    # Zero duplicate orders: every label reached the venue at most once.
    assert all(n == 1 for lb, n in counters.orders_received.items() if lb.startswith("hg1-"))
    assert set(counters.orders_received) == {k2.label, out["result"]["legs"][0]["labels"][0]}
    # Zero lost fills, and the journal agrees with the venue's position.
    size, by_label = venue_truth(sim)
    with _ro(journal) as store:
        for label, trade_ids in by_label.items():
            assert sorted(f.trade_id for f in store.fills_for_order(label)) == sorted(trade_ids)
        totals = store.fill_totals_since(0)
        assert [(t.instrument, t.net_amount) for t in totals] == [(PERP, size)]
        assert size == 2_000.0 - 3_000.0
        rec = store.order(k2.label)
        assert rec is not None and rec.status is OrderStatus.FILLED
        assert rec.filled_amount == 2_000.0
        assert not store.open_orders()
