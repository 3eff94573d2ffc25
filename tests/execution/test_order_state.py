"""The order state machine: transitions, fills by trade id, UNKNOWN, and invariants over random
event sequences (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.execution.order_state import (
    Acked,
    Cancelled,
    Filled,
    InvalidTransition,
    OrderEvent,
    OrderRecord,
    OrderStateError,
    OrderStyle,
    OverfillError,
    QueryResult,
    Rejected,
    Sent,
    TimedOut,
    apply,
    new_order,
    query_result_from_update,
)
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import OrderSide, OrderStatus, OrderUpdate

S = OrderStatus


def order(amount: float = 100.0) -> OrderRecord:
    return new_order(
        label="hg1-d1-0-0-0",
        decision_id="d1",
        venue="deribit",
        instrument="BTC-PERPETUAL",
        side=OrderSide.BUY,
        amount=amount,
        amount_unit=AmountUnit.USD,
        limit_price=50_000.0,
        style=OrderStyle.IOC_LIMIT,
        reduce_only=False,
        created_ms=1_000,
    )


def run(record: OrderRecord, *events: OrderEvent) -> OrderRecord:
    for event in events:
        record = apply(record, event)
    return record


def test_happy_path_new_sent_acked_partial_filled() -> None:
    r = order()
    assert r.status is S.NEW and r.open_amount == 100.0
    r = run(r, Sent(1_001), Acked(1_002, "o-1"))
    assert (r.status, r.venue_order_id, r.sent_ms, r.acked_ms) == (S.ACKED, "o-1", 1_001, 1_002)
    r = apply(r, Filled(1_003, "t-1", 30.0, 50_010.0))
    assert r.status is S.PARTIALLY_FILLED and r.filled_amount == 30.0 and r.open_amount == 70.0
    r = apply(r, Filled(1_004, "t-2", 70.0, 50_020.0))
    assert r.status is S.FILLED and r.closed_ms == 1_004 and r.open_amount == 0.0
    assert r.avg_price == pytest.approx((30 * 50_010 + 70 * 50_020) / 100)
    assert r.trade_ids == {"t-1", "t-2"}


def test_fill_before_ack_then_ack_does_not_move_back() -> None:
    r = run(order(), Sent(1), Filled(2, "t-1", 40.0, 1.0))
    assert r.status is S.PARTIALLY_FILLED and r.venue_order_id is None
    r = apply(r, Acked(3, "o-9"))
    assert r.status is S.PARTIALLY_FILLED and r.venue_order_id == "o-9" and r.acked_ms == 3
    r = run(order(), Sent(1), Filled(2, "t-1", 100.0, 1.0), Acked(3, "o-9"))
    assert r.status is S.FILLED and r.venue_order_id == "o-9"


def test_duplicate_trade_id_is_a_no_op_returning_the_same_object() -> None:
    r = run(order(), Sent(1), Filled(2, "t-1", 40.0, 1.0))
    assert apply(r, Filled(5, "t-1", 40.0, 1.0)) is r
    assert r.filled_amount == 40.0


def test_overfill_is_rejected_loudly_and_leaves_the_record_alone() -> None:
    r = run(order(), Sent(1), Filled(2, "t-1", 60.0, 1.0))
    with pytest.raises(OverfillError):
        apply(r, Filled(3, "t-2", 50.0, 1.0))
    assert r.filled_amount == 60.0
    with pytest.raises(OverfillError):
        apply(r, QueryResult(4, S.PARTIALLY_FILLED, filled_amount=120.0))


def test_timeout_makes_unknown_and_only_a_query_resolves_it() -> None:
    r = run(order(), Sent(1), TimedOut(2))
    assert r.status is S.UNKNOWN and r.open_amount == 100.0
    # an ack, a cancel or a reject does not resolve UNKNOWN; facts are still kept
    r2 = run(r, Acked(3, "o-1"), Cancelled(4), Rejected(5, "late"))
    assert r2.status is S.UNKNOWN and r2.venue_order_id == "o-1"
    r3 = apply(r2, Filled(6, "t-1", 100.0, 1.0))
    assert r3.status is S.UNKNOWN and r3.filled_amount == 100.0 and r3.open_amount == 0.0
    for reported in (S.ACKED, S.CANCELLED, S.REJECTED, S.FILLED):
        resolved = apply(r, QueryResult(7, reported, 0.0, "o-1"))
        assert resolved.status is reported
    assert apply(r3, QueryResult(7, S.FILLED, 100.0)).status is S.FILLED


def test_query_with_fills_on_acked_report_is_partial() -> None:
    r = run(order(), Sent(1), TimedOut(2))
    r = apply(r, QueryResult(3, S.ACKED, filled_amount=20.0, venue_order_id="o-1"))
    assert r.status is S.PARTIALLY_FILLED
    assert r.missing_fill_amount == 20.0 and r.open_amount == 80.0


def test_stale_query_never_moves_back_and_terminal_is_final() -> None:
    r = run(order(), Sent(1), Acked(2, "o-1"), Filled(3, "t-1", 50.0, 1.0))
    assert apply(r, QueryResult(4, S.ACKED, 0.0, "o-1")).status is S.PARTIALLY_FILLED
    done = apply(r, Cancelled(5, "ioc remainder"))
    assert done.status is S.CANCELLED and done.reason == "ioc remainder"
    for event in (
        Acked(6, "o-1"),
        Cancelled(6),
        Rejected(6, "x"),
        TimedOut(6),
        QueryResult(6, S.ACKED, 0.0, "o-1"),
    ):
        assert apply(done, event) is done
    # a terminal order still records what the venue says it filled; the status stays
    reported = apply(done, QueryResult(7, S.FILLED, 80.0, "o-1"))
    assert reported.status is S.CANCELLED and reported.venue_filled_amount == 80.0


def test_late_fill_on_cancelled_order_counts_but_status_stays() -> None:
    r = run(order(), Sent(1), Acked(2, "o-1"), Cancelled(3))
    r = apply(r, Filled(4, "t-1", 10.0, 1.0))
    assert r.status is S.CANCELLED and r.filled_amount == 10.0 and r.open_amount == 0.0


def test_impossible_events_raise() -> None:
    sent = run(order(), Sent(1))
    with pytest.raises(InvalidTransition):
        apply(sent, Sent(2))  # a label is sent once
    rejected = apply(sent, Rejected(2, "invalid amount", code=10002))
    assert rejected.status is S.REJECTED and rejected.reason == "10002: invalid amount"
    with pytest.raises(InvalidTransition):
        apply(rejected, Filled(3, "t-1", 1.0, 1.0))
    acked = apply(sent, Acked(2, "o-1"))
    with pytest.raises(InvalidTransition):
        apply(acked, Acked(3, "o-2"))  # two venue orders under one label
    with pytest.raises(InvalidTransition):
        apply(acked, Rejected(3, "no"))
    partial = apply(acked, Filled(3, "t-1", 1.0, 1.0))
    with pytest.raises(InvalidTransition):
        apply(partial, QueryResult(4, S.REJECTED, 1.0))


def test_new_order_never_sent_can_be_cancelled_rejected_or_made_unknown() -> None:
    assert apply(order(), Cancelled(2, "dry_run")).status is S.CANCELLED
    assert apply(order(), Rejected(2, "reduce_only gate")).status is S.REJECTED
    assert apply(order(), TimedOut(2, "restart")).status is S.UNKNOWN
    # an ack or fill proves the send even when Sent was never journalled (crash)
    assert apply(order(), Acked(2, "o-1")).status is S.ACKED
    assert apply(order(), Filled(2, "t-1", 100.0, 1.0)).status is S.FILLED


def test_ack_reporting_a_fill_moves_forward() -> None:
    r = run(order(), Sent(1), Acked(2, "o-1", filled_amount=100.0))
    assert r.status is S.FILLED and r.missing_fill_amount == 100.0


def test_event_validation() -> None:
    with pytest.raises(ValueError):
        Filled(1, "t", 0.0, 1.0)
    with pytest.raises(ValueError):
        Filled(1, "t", 1.0, float("nan"))
    with pytest.raises(ValueError):
        QueryResult(1, S.UNKNOWN, 0.0)
    with pytest.raises(ValueError):
        order(amount=-1.0)


def test_query_result_from_venue_update() -> None:
    update = OrderUpdate(
        venue="deribit",
        instrument="BTC-PERPETUAL",
        order_id="o-7",
        label="hg1-d1-0-0-0",
        side=OrderSide.BUY,
        status=S.PARTIALLY_FILLED,
        amount=100.0,
        filled_amount=30.0,
        price=50_000.0,
        average_price=50_000.0,
        ts_ms=9,
    )
    event = query_result_from_update(update)
    r = apply(run(order(), Sent(1), TimedOut(2)), event)
    assert r.status is S.PARTIALLY_FILLED and r.venue_order_id == "o-7"


# ------------------------------------------------------------------------------ properties

_TRADES = [f"t-{i}" for i in range(6)]
_events = st.one_of(
    st.builds(Sent, st.integers(1, 100)),
    st.builds(
        Acked, st.integers(1, 100), st.sampled_from(["o-1", "o-2"]), st.sampled_from([0.0, 25.0])
    ),
    st.builds(
        Filled,
        st.integers(1, 100),
        st.sampled_from(_TRADES),
        st.sampled_from([10.0, 25.0, 40.0]),
        st.floats(1.0, 2.0),
    ),
    st.builds(Cancelled, st.integers(1, 100)),
    st.builds(Rejected, st.integers(1, 100), st.just("r")),
    st.builds(TimedOut, st.integers(1, 100)),
    st.builds(
        QueryResult,
        st.integers(1, 100),
        st.sampled_from([S.ACKED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED]),
        st.sampled_from([0.0, 10.0, 50.0, 100.0]),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_events, max_size=25))
def test_invariants_over_random_event_sequences(events: list[OrderEvent]) -> None:
    r = order(amount=100.0)
    amounts: dict[str, float] = {}
    for event in events:
        before = r
        try:
            r = apply(r, event)
        except OrderStateError:
            assert r is before  # pure: a refused event changes nothing
            continue
        # nothing leaves a terminal state
        if before.is_terminal:
            assert r.status is before.status
        # only a query moves an order out of UNKNOWN
        if before.status is S.UNKNOWN and not isinstance(event, QueryResult):
            assert r.status is S.UNKNOWN
        # filled never exceeds the amount, and never decreases
        assert 0.0 <= r.filled_amount <= r.amount + 1e-9
        assert r.filled_amount >= before.filled_amount
        if isinstance(event, Filled) and event.trade_id not in before.trade_ids:
            amounts[event.trade_id] = event.amount
        # each trade id is counted once
        assert r.trade_ids == set(amounts)
        assert r.filled_amount == pytest.approx(sum(amounts.values()))
        assert r.open_amount >= 0.0
        if r.is_terminal:
            assert r.closed_ms is not None
