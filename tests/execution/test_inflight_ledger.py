"""The one in-flight rule (`execution.inflight`): over every interleaving of order updates,
trades and position snapshots of 1-3 concurrent orders on one instrument, the book's position
plus what is in flight is, after every event, the position the orders will leave: never a
fill counted twice or not at all, whichever of its three reports came first."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.execution.inflight import InFlightLedger
from hedgerd.execution.order_state import (
    Filled,
    OrderRecord,
    OrderStyle,
    QueryResult,
    Sent,
    apply,
    new_order,
)
from hedgerd.model import AmountUnit, OrderSide, OrderStatus

VENUE, INST = "deribit-a", "BTC-PERPETUAL"
STEP = 10.0  # USD: amounts are whole lots, so sums are exact


def _intent(label: str, side: OrderSide, amount: float) -> OrderRecord:
    """An IOC order on the one instrument, journalled and not yet sent."""
    return new_order(
        label=label, decision_id=label, venue=VENUE, instrument=INST, side=side,
        amount=amount, amount_unit=AmountUnit.USD, limit_price=None,
        style=OrderStyle.IOC_LIMIT, reduce_only=False, created_ms=0,
    )  # fmt: skip


@dataclass(frozen=True)
class _Order:
    side: OrderSide
    amount: float
    chunks: tuple[float, ...]  # its trades, in order; sum: its final fill

    @property
    def final(self) -> float:
        return sum(self.chunks)


@st.composite
def _orders(draw: st.DrawFn) -> list[_Order]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        lots = draw(st.integers(1, 10))
        filled = draw(st.integers(0, lots))
        cuts = sorted(draw(st.lists(st.integers(1, max(filled - 1, 1)), max_size=2)))
        bounds = [0, *(c for c in cuts if 0 < c < filled), filled] if filled else [0]
        chunks = tuple(STEP * (b - a) for a, b in itertools.pairwise(bounds) if b > a)
        side = draw(st.sampled_from([OrderSide.BUY, OrderSide.SELL]))
        out.append(_Order(side, STEP * lots, chunks))
    return out


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[float, list[_Order], list[tuple[str, int, int]]]:
    """A base position, the orders, and what hedgerd sees in what order: ("reg", order, -1)
    when it journals and sends an order, ("pos", k, -1) the position after the venue's k-th
    fill, ("trade", order, j) its j-th trade, ("upd", order, j) its cumulative fill after
    trade j (j = number of trades: the terminal report)."""
    base = STEP * draw(st.integers(-20, 20))
    orders = draw(_orders())
    # The venue's sequence: each order sent (registered), then its fills, then its end.
    queues = [[("reg", i, -1)] + [("fill", i, j) for j in range(len(o.chunks))]
              for i, o in enumerate(orders)]  # fmt: skip
    venue: list[tuple[str, int, int]] = []
    while any(queues):
        i = draw(st.sampled_from([i for i, q in enumerate(queues) if q]))
        venue.append(queues[i].pop(0))
    # Each report is emitted at its venue step and delivered after a delay, in order on its
    # own stream (positions; trades; each order's updates): any such merge can happen.
    timed: list[tuple[int, int, str, int, int]] = []  # (slot, kind rank, kind, a, b)
    last: dict[object, int] = {}
    fills = 0

    def emit(stream: object, step: int, kind: str, a: int, b: int) -> None:
        slot = max(last.get(stream, 0), step + draw(st.integers(0, 6)))
        last[stream] = slot
        timed.append((slot, 1, kind, a, b))

    for step, (kind, i, j) in enumerate(venue):
        if kind == "reg":
            timed.append((step, 0, "reg", i, -1))
            if not orders[i].chunks:  # nothing fills: its end is reported right away
                emit(("upd", i), step, "upd", i, 0)
            continue
        fills += 1
        if fills == sum(len(o.chunks) for o in orders) or draw(st.booleans()):
            emit("pos", step, "pos", fills, -1)  # snapshots may be conflated; never the last
        emit("trade", step, "trade", i, j)
        emit(("upd", i), step, "upd", i, j + 1)
    timed.sort(key=lambda t: (t[0], t[1]))
    return base, orders, [(k, a, b) for _, _, k, a, b in timed]


def _positions(
    base: float, orders: list[_Order], events: list[tuple[str, int, int]]
) -> list[float]:
    """The venue's position after each of its fills, in its own order (prefix sums)."""
    order: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for kind, i, j in events:  # the trades stream is in venue order
        if kind == "trade" and (i, j) not in seen:
            seen.add((i, j))
            order.append((i, j))
    out = [base]
    for i, j in order:
        out.append(out[-1] + orders[i].side.sign * orders[i].chunks[j])
    return out


@settings(max_examples=600, deadline=None)
@given(_scenario())
def test_book_plus_in_flight_is_the_final_position_after_every_event(
    scenario: tuple[float, list[_Order], list[tuple[str, int, int]]],
) -> None:
    base, orders, events = scenario
    venue_positions = _positions(base, orders, events)
    book, wall = {"pos": base}, {"s": 0.0}
    ledger = InFlightLedger(lambda v, i: book["pos"], timeout_s=3.0, wall_s=lambda: wall["s"])
    records: dict[str, OrderRecord] = {}
    labels = [f"o{i}" for i in range(len(orders))]

    def update(rec: OrderRecord) -> None:
        records[rec.label] = rec
        ledger.observe(rec)

    for n, (kind, i, j) in enumerate(events):
        if kind == "reg":
            o = orders[i]
            rec = _intent(labels[i], o.side, o.amount)
            records[rec.label] = rec
            ledger.register(rec)
            update(apply(rec, Sent(n)))
        elif kind == "pos":
            book["pos"] = venue_positions[i]
        elif kind == "trade":
            tid = f"t{i}-{j}"
            update(apply(records[labels[i]], Filled(n, tid, orders[i].chunks[j], 90_000.0)))
        else:
            o = orders[i]
            cum = sum(o.chunks[:j])
            done = j == len(o.chunks)
            status = (
                (OrderStatus.FILLED if cum == o.amount else OrderStatus.CANCELLED)
                if done
                else OrderStatus.PARTIALLY_FILLED
            )
            update(apply(records[labels[i]], QueryResult(n, status, cum, venue_order_id=f"v{i}")))
        absorbed = ledger.absorbed(records.get)
        in_flight = sum(
            rec.side.sign * ledger.in_flight(label, rec, absorbed.get(label, 0.0))
            for label, rec in records.items()
            if label in ledger
        )
        # What the orders registered so far will leave: a terminal one its fill, an open one
        # its whole amount (it may still fill).
        final = base + sum(
            rec.side.sign * (max(rec.filled_amount, rec.venue_filled_amount)
                             if rec.is_terminal else rec.amount)
            for rec in records.values()
        )  # fmt: skip
        assert book["pos"] + in_flight == final, (n, kind, i, j, book["pos"], in_flight)
    # Every report in: the orders of one side have all left the ledger; a buy and a sell
    # whose fills net out in the book cannot be told from two fills not shown yet, and leave
    # it at the timeout, the book believed (right: it shows them).
    assert book["pos"] == venue_positions[-1]
    if len({o.side for o in orders}) == 1:
        assert not list(ledger.labels())
    wall["s"] = 3.0
    ledger.absorbed(records.get)
    assert not list(ledger.labels())


def test_two_concurrent_orders_are_credited_with_their_own_fills_only() -> None:
    # Order A (buy 30) fills and reports; order B (buy 20), sent meanwhile, fills; the book
    # shows A's fill only. A is absorbed in full, B not at all: B stays in flight whole.
    book = {"pos": 0.0}
    ledger = InFlightLedger(lambda v, i: book["pos"], timeout_s=3.0, wall_s=lambda: 0.0)
    recs: dict[str, OrderRecord] = {}
    for label, amount in (("a", 30.0), ("b", 20.0)):
        rec = _intent(label, OrderSide.BUY, amount)
        recs[label] = rec
        ledger.register(rec)
    for label in ("a", "b"):
        recs[label] = apply(
            recs[label], QueryResult(1, OrderStatus.FILLED, recs[label].amount, f"v{label}")
        )
        ledger.observe(recs[label])
    book["pos"] = 30.0
    got = ledger.absorbed(recs.get)
    assert "a" not in ledger, "A's fill is in the book: A is done"
    assert got["b"] == 0.0 and ledger.in_flight("b", recs["b"], got["b"]) == 20.0


def test_a_buy_and_a_sell_whose_fills_net_out_both_leave_at_once() -> None:
    # A buy of 40 and a sell of 40 both fill; the book shows the net: no move at all. The
    # move is explained by both fills in full (the longest prefix), so both leave the ledger
    # now: crediting the earliest fill first would see 0 of the buy in the book and keep both
    # in flight until the timeout (the year-end REDUCE_ONLY e2e waited on that).
    book = {"pos": 100.0}
    ledger = InFlightLedger(lambda v, i: book["pos"], timeout_s=60.0, wall_s=lambda: 0.0)
    recs: dict[str, OrderRecord] = {}
    for label, side in (("buy", OrderSide.BUY), ("sell", OrderSide.SELL)):
        recs[label] = _intent(label, side, 40.0)
        ledger.register(recs[label])
    for label in ("buy", "sell"):
        recs[label] = apply(recs[label], QueryResult(1, OrderStatus.FILLED, 40.0, f"v{label}"))
        ledger.observe(recs[label])
    got = ledger.absorbed(recs.get)
    assert not list(ledger.labels()), got
    assert got == {}, "both absorbed in full and dropped"
    # And when the book shows only the buy (the sell's fill not yet in it): the buy leaves,
    # the sell's 40 stays in flight.
    recs2 = {label: _intent(f"{label}2", side, 40.0) for label, side in
             (("buy", OrderSide.BUY), ("sell", OrderSide.SELL))}  # fmt: skip
    for rec in recs2.values():
        ledger.register(rec)
    by_label: dict[str, OrderRecord] = {}
    for rec in recs2.values():
        by_label[rec.label] = apply(rec, QueryResult(1, OrderStatus.FILLED, 40.0, rec.label))
        ledger.observe(by_label[rec.label])
    book["pos"] = 140.0
    got = ledger.absorbed(by_label.get)
    assert "buy2" not in ledger and "sell2" in ledger
    assert ledger.in_flight("sell2", by_label["sell2"], got["sell2"]) == 40.0


def test_a_fill_the_book_never_shows_is_believed_gone_after_the_timeout() -> None:
    # The position stream lost the update (or something else moved the position back): after
    # `timeout_s` wall seconds the book is believed, the order no longer counts in flight.
    book, wall = {"pos": 0.0}, {"s": 0.0}
    ledger = InFlightLedger(lambda v, i: book["pos"], timeout_s=3.0, wall_s=lambda: wall["s"])
    rec = _intent("a", OrderSide.SELL, 50.0)
    ledger.register(rec)
    rec = apply(rec, QueryResult(1, OrderStatus.FILLED, 50.0, "v"))
    ledger.observe(rec)
    wall["s"] = 2.9
    got = ledger.absorbed({"a": rec}.get)
    assert ledger.in_flight("a", rec, got["a"]) == 50.0
    wall["s"] = 3.0
    ledger.absorbed({"a": rec}.get)
    assert "a" not in ledger
