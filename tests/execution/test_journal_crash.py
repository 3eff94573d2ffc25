"""Crash safety: a process journalling intents, updates and fills is SIGKILLed mid-stream; on
reopen every intent it was told was committed is there, and the file is consistent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hedgerd.execution.client_ids import client_label
from hedgerd.execution.journal import JournalStore
from hedgerd.model.orders import OrderStatus

ACK = re.compile(r"d[0-9]+")
CHILD = r"""
import asyncio, sys
from hedgerd.execution.client_ids import client_label
from hedgerd.execution.journal import DecisionRecord, Journal
from hedgerd.execution.order_state import OrderStyle, Sent, new_order
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import Fill, OrderSide


async def main(path: str) -> None:
    journal = await Journal.open(path)
    i = 0
    while True:
        did = f"d{i}"
        legs = [
            new_order(
                label=client_label(did, leg), decision_id=did, venue="deribit",
                instrument="BTC-PERPETUAL", side=OrderSide.BUY, amount=100.0,
                amount_unit=AmountUnit.USD, limit_price=50_000.0,
                style=OrderStyle.IOC_LIMIT, reduce_only=False, created_ms=i,
            )
            for leg in range(2)
        ]
        await journal.record_intents(legs, DecisionRecord(did, i, "BTC", "crash", {"i": i}))
        print(did, flush=True)  # acknowledged: the intents are committed
        await journal.apply_event(legs[0].label, Sent(i))
        await journal.record_fill(Fill(
            venue="deribit", instrument="BTC-PERPETUAL", trade_id=f"t{i}", order_id=f"o{i}",
            label=legs[0].label, side=OrderSide.BUY, amount=40.0, price=50_000.0,
            fee=0.0, fee_currency="BTC", ts_ms=i,
        ))
        i += 1


asyncio.run(main(sys.argv[1]))
"""


def run_and_kill(path: Path, after_acks: int, delay_s: float = 0.0) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    acked: list[str] = []
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while len(acked) < after_acks:
            line = proc.stdout.readline()
            assert line, "child exited early"
            if ACK.fullmatch(line.strip()):  # (stdout also carries log lines)
                acked.append(line.strip())
            assert time.monotonic() < deadline
        time.sleep(delay_s)  # shifts the kill to another point of the write stream
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child is busy writing
        proc.wait(timeout=10)
        acked.extend(x.strip() for x in proc.stdout.read().splitlines() if ACK.fullmatch(x.strip()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize(("after_acks", "delay_s"), [(3, 0.0), (25, 0.0), (10, 0.005), (5, 0.02)])
def test_sigkill_loses_no_acknowledged_intent(
    tmp_path: Path, after_acks: int, delay_s: float
) -> None:
    path = tmp_path / "journal.sqlite"
    acked = run_and_kill(path, after_acks, delay_s)
    store = JournalStore(path)  # the dead writer's lock is gone
    try:
        assert store.integrity_check() == "ok"
        for did in acked:
            orders = store.orders_for_decision(did)
            assert [o.label for o in orders] == [client_label(did, 0), client_label(did, 1)]
        # whatever was committed is whole: every decision has both legs, every applied fill
        # is counted in its order exactly once
        decisions = [r[0] for r in store.iter_rows("SELECT decision_id FROM decisions")]
        assert len(decisions) >= len(acked)
        for did in decisions:
            assert len(store.orders_for_decision(did)) == 2
        for row in store.iter_rows("SELECT label FROM orders"):
            order = store.order(row[0])
            assert order is not None
            assert order.filled_amount == 40.0 * len(order.trade_ids)
            if order.trade_ids:
                assert order.status is OrderStatus.PARTIALLY_FILLED
        # restart recovery sees every unfinished intent as still in flight
        assert len(store.open_orders()) == 2 * len(decisions)
    finally:
        store.close()
