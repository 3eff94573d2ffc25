"""Position mismatch: timer reconciliations (and divergence refreshes) that must correct the book
trip the kill switch; start-up and post-reconnect corrections (recovery) do not."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from e2e_support import NOW_MS, make_book, wired

from hedgerd.daemon import position_diffs_coin
from hedgerd.model import Fill, OrderSide
from hedgerd.risk.trading_state import ReasonCode, TradingState
from hedgerd.venues.book_feed import ReconcileReport


def report(reason: str, corrected: tuple[tuple[str, float, float], ...]) -> ReconcileReport:
    return ReconcileReport(reason, NOW_MS, corrected, (), 0)


def test_diffs_are_in_coin_at_the_index() -> None:
    diffs = position_diffs_coin(report("timer", (("BTC-PERPETUAL", 1000.0, 0.0),)), make_book())
    assert len(diffs) == 1
    assert diffs[0].ours_coin == pytest.approx(0.01)
    assert diffs[0].venue_coin == 0.0


def test_unknown_instrument_is_a_nan_mismatch() -> None:
    diffs = position_diffs_coin(report("timer", (("BTC-NOPE", 1.0, 0.0),)), make_book())
    assert math.isnan(diffs[0].diff_coin)


@pytest.mark.parametrize(
    ("reason", "trips"),
    # A refresh the delta divergence asked for checks the stream as a timer run does.
    [("timer", True), ("divergence", True), ("reconnect", False), ("start", False)],
)
async def test_two_timer_mismatches_halt(tmp_path: Path, reason: str, trips: bool) -> None:
    async with wired(tmp_path) as (daemon, machine):
        bad = report(reason, (("BTC-PERPETUAL", 1000.0, 0.0),))
        daemon._on_reconcile(bad)
        assert machine.state is TradingState.ACTIVE  # one run may be a fill racing the snapshot
        daemon._on_reconcile(bad)
        if trips:
            assert machine.state is TradingState.HALTED
            assert ReasonCode.POSITION_MISMATCH in {r.code for r in machine.reasons}
        else:
            assert machine.state is TradingState.ACTIVE


async def test_a_reconnect_between_two_mismatches_starts_the_count_over(tmp_path: Path) -> None:
    async with wired(tmp_path) as (daemon, machine):
        bad = report("divergence", (("BTC-PERPETUAL", 1000.0, 0.0),))
        daemon._on_reconcile(bad)
        daemon._on_reconcile(report("reconnect", ()))  # a new position stream
        daemon._on_reconcile(bad)
        assert machine.state is TradingState.ACTIVE
        daemon._on_reconcile(report("timer", (("BTC-PERPETUAL", 1000.0, 0.0),)))
        assert machine.state is TradingState.HALTED  # the new stream lost two in a row


def _fill(amount: float, side: OrderSide) -> Fill:
    return Fill(
        "deribit", "BTC-PERPETUAL", "t1", "o1", None, side, amount, 100_000.0, 0.0, "BTC", 0
    )


@pytest.mark.parametrize("reason", ["fill_repair", "timer", "divergence"])
@pytest.mark.parametrize(
    ("venue_amount", "trips"),
    [
        (1000.0, False),  # the pass found the repaired fill (a 1,000 USD buy) and nothing else
        (3000.0, True),  # ... and 2,000 USD more the stream lost: a mismatch, twice in a row
    ],
)
async def test_a_pass_counts_only_what_the_repairs_do_not_explain(
    tmp_path: Path, venue_amount: float, trips: bool, reason: str
) -> None:
    async with wired(tmp_path) as (daemon, machine):
        for _ in range(2):
            daemon._on_fill_repaired(_fill(1000.0, OrderSide.BUY))  # no feed: no refresh runs
            daemon._on_reconcile(report(reason, (("BTC-PERPETUAL", 0.0, venue_amount),)))
            assert daemon._repaired_pending == {}
        expected = TradingState.HALTED if trips else TradingState.ACTIVE
        assert machine.state is expected
