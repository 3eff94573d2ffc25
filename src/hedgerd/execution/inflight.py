"""The executor's one in-flight rule: an order's fill counts in flight until the book's
position shows it.

Fills reach hedgerd on up to three paths that race each other: the order's answer and order
updates (the venue's cumulative filled amount), the trades (journalled by trade id), and the
positions (the book; on OKX a stream of its own, on Deribit the position notifications).
Counting a fill in flight until one of the first two reports it, and in the book once the
position moves, counts it twice or not at all whenever those paths disagree, which they do
for a while after every fill. So the ledger keys every order by instrument and account and
compares the book's position with what the orders filled:

- per (account, instrument), a `base`: the book's position when the first order being
  tracked there was registered (before it was sent);
- per order: its side, the amount sent, `prior` (what it had filled before hedgerd tracked
  it: an order loaded from the journal, whose fills the start-up reconciliation put in the
  book), the amount the venue reports filled (order updates or trades, the larger), whether
  it is terminal, and when it first reported a fill;
- `absorbed`: the book's move since `base`, attributed to the orders first by their reported
  fills, earliest fill first and at most each order's reported fill (so two concurrent
  orders on one instrument are each credited with their own fills only), then whatever of the
  move is left to the unreported rest of the orders still open (the positions stream ran
  ahead of the trades and order updates: an OKX `positions` push before the `orders` one);
- in flight: an open order's amount sent less absorbed, a terminal one's filled less absorbed.

So book + in flight is the position the orders will leave, at every instant at which the book
shows a prefix of the venue's fills (the venue's reports are consistent), whatever reached
hedgerd first. Orders leave the ledger when terminal and fully absorbed (from the front of
the fill order, moving `base` by their fills: the attribution of the others is unchanged),
and when terminal and still not absorbed `timeout_s` wall seconds later: the book is then
believed (by then a reconciliation has corrected a position the stream lost; a position
moved by something else than these orders would otherwise be "in flight" for good).

Without a known position (no book for the account) an order's trades are taken to be in the
book once journalled (`filled_amount`): what the venue reported filled without its trades
still counts in flight.

Units: amounts in the instrument's amount unit; positions signed, same unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hedgerd.execution.order_state import OrderRecord

_EPS = 1e-9


@dataclass(slots=True)
class _Entry:
    label: str
    sign: int
    amount: float
    prior: float
    seq: int
    fill_seq: int | None = None
    terminal_s: float | None = None


@dataclass(slots=True)
class _Instrument:
    base: float | None
    entries: list[_Entry] = field(default_factory=list)


def reported_fill(rec: OrderRecord) -> float:
    """What the venue reports `rec` filled (amount unit): trades or order updates, the larger."""
    return max(rec.filled_amount, rec.venue_filled_amount)


class InFlightLedger:
    """Orders by (account, instrument) and what of their fills the book shows (module doc).

    `position(venue, instrument)`: the book's signed position, amount unit (None: unknown).
    `wall_s`: a monotonic wall clock, seconds (the streams' lag is wall time)."""

    def __init__(
        self,
        position: Callable[[str, str], float | None] | None,
        *,
        timeout_s: float,
        wall_s: Callable[[], float],
    ) -> None:
        self._position = position
        self.timeout_s = timeout_s
        self._wall_s = wall_s
        self._books: dict[tuple[str, str], _Instrument] = {}
        self._where: dict[str, tuple[str, str]] = {}
        self._seq = 0

    def __contains__(self, label: str) -> bool:
        return label in self._where

    def labels(self) -> Iterable[str]:
        return self._where.keys()

    def _pos(self, key: tuple[str, str]) -> float | None:
        return self._position(*key) if self._position is not None else None

    def register(self, rec: OrderRecord, *, prior: float = 0.0) -> None:
        """Track `rec` from now on (before it is sent: the base is read now). `prior`: what it
        filled before (already in the book)."""
        if rec.label in self._where:
            return
        key = (rec.venue, rec.instrument)
        inst = self._books.get(key)
        if inst is None:
            inst = self._books[key] = _Instrument(self._pos(key))
        self._seq += 1
        inst.entries.append(_Entry(rec.label, rec.side.sign, rec.amount, prior, self._seq))
        self._where[rec.label] = key
        self.observe(rec)

    def observe(self, rec: OrderRecord) -> None:
        """The order's newest record: when it first reported a fill, and became terminal."""
        key = self._where.get(rec.label)
        if key is None:
            return
        for e in self._books[key].entries:
            if e.label == rec.label:
                if e.fill_seq is None and reported_fill(rec) > e.prior + _EPS:
                    self._seq += 1
                    e.fill_seq = self._seq
                if e.terminal_s is None and rec.is_terminal:
                    e.terminal_s = self._wall_s()
                return

    def absorbed(self, records: Callable[[str], OrderRecord | None]) -> dict[str, float]:
        """Per tracked order: what of its fills (beyond `prior`) the book shows, amount unit.
        Also drops the orders that are done (module doc)."""
        out: dict[str, float] = {}
        for key in list(self._books):
            inst = self._books[key]
            got = _attribute(inst, self._pos(key), records)
            self._fold(key, inst, got, records)
            out.update(got)
        return out

    def in_flight(self, label: str, rec: OrderRecord, absorbed: float) -> float:
        """What of order `label` still counts in flight (unsigned, amount unit): amount sent
        (open) or filled (terminal), less `prior` and `absorbed`."""
        e = self._entry(label)
        prior = e.prior if e is not None else 0.0
        whole = reported_fill(rec) if rec.is_terminal else rec.amount
        return max(whole - prior - absorbed, 0.0)

    def held(self, label: str, rec: OrderRecord | None, absorbed: float) -> float:
        """What of order `label`'s amount the book holds (amount unit): `prior` plus
        `absorbed` while tracked, its whole reported fill once it left the ledger."""
        e = self._entry(label)
        if e is not None:
            return e.prior + absorbed
        return reported_fill(rec) if rec is not None else 0.0

    def _entry(self, label: str) -> _Entry | None:
        key = self._where.get(label)
        if key is None:
            return None
        return next((e for e in self._books[key].entries if e.label == label), None)

    def _fold(
        self,
        key: tuple[str, str],
        inst: _Instrument,
        got: dict[str, float],
        records: Callable[[str], OrderRecord | None],
    ) -> None:
        now = self._wall_s()
        keep: list[_Entry] = []
        front = True
        for e in _fill_order(inst.entries):
            rec = records(e.label)
            if rec is None:  # forgotten by the executor: nothing of it can be judged
                self._where.pop(e.label, None)
                continue
            filled = max(reported_fill(rec) - e.prior, 0.0)
            done = rec.is_terminal and got.get(e.label, 0.0) >= filled - _tol(e.amount)
            expired = (
                rec.is_terminal
                and e.terminal_s is not None
                and now - e.terminal_s >= self.timeout_s
            )
            if (done and front) or expired:
                # Its fill is in the book (absorbed, or believed so): `base` moves with it.
                if inst.base is not None:
                    inst.base += e.sign * filled
                self._where.pop(e.label, None)
                got.pop(e.label, None)
                continue
            front = front and done
            keep.append(e)
        inst.entries = sorted(keep, key=lambda e: e.seq)
        if not inst.entries:
            del self._books[key]


def _tol(amount: float) -> float:
    return 1e-9 * max(1.0, abs(amount))


def _fill_order(entries: Iterable[_Entry]) -> list[_Entry]:
    """Earliest reported fill first; orders with none yet after, in registration order."""
    return sorted(entries, key=lambda e: (e.fill_seq is None, e.fill_seq or 0, e.seq))


def _prefix_explaining(
    ordered: list[_Entry], bounds: list[float], move: float
) -> tuple[int, float] | None:
    """(k, x): the book's `move` is the first k orders' reported fills (in fill order) in
    full and `x` of order k's, the longest such prefix; None when no prefix explains it."""
    sums = [0.0]
    for e, b in zip(ordered, bounds, strict=True):
        sums.append(sums[-1] + e.sign * b)
    tol = _tol(max((abs(v) for v in sums), default=1.0))
    for k in range(len(ordered), -1, -1):
        left = move - sums[k]
        if abs(left) <= tol:
            return k, 0.0
        if k < len(ordered):
            part = ordered[k].sign * left
            if 0.0 < part <= bounds[k] + tol:
                return k, min(part, bounds[k])
    return None


def _attribute(
    inst: _Instrument, position: float | None, records: Callable[[str], OrderRecord | None]
) -> dict[str, float]:
    """The book's move since `inst.base` attributed to its orders (module doc). Each step
    only takes in the direction the move has left, so a move the orders can explain (within
    minus every sell's and plus every buy's bound) is explained in full."""
    got: dict[str, float] = {}
    recs = {e.label: records(e.label) for e in inst.entries}
    if inst.base is None or position is None or not math.isfinite(position):
        for e in inst.entries:
            rec = recs[e.label]
            got[e.label] = max(rec.filled_amount - e.prior, 0.0) if rec is not None else 0.0
        return got
    rest = position - inst.base
    ordered = _fill_order(inst.entries)
    bounds = []
    for e in ordered:
        rec = recs[e.label]
        bounds.append(max(reported_fill(rec) - e.prior, 0.0) if rec is not None else 0.0)
    prefix = _prefix_explaining(ordered, bounds, rest)
    if prefix is not None:
        # The book shows the fills in order up to the k-th, and part x of the next one: a
        # buy and a sell whose fills net out are both in the book (the step below would
        # credit neither of them with what the other took back).
        k, x = prefix
        for i, e in enumerate(ordered):
            got[e.label] = bounds[i] if i < k else (x if i == k else 0.0)
        rest = 0.0
    else:
        for e, bound in zip(ordered, bounds, strict=True):
            take = min(max(e.sign * rest, 0.0), bound)
            got[e.label] = take
            rest -= e.sign * take
    for e in sorted(inst.entries, key=lambda e: e.seq):
        rec = recs[e.label]
        if rec is None or rec.is_terminal or abs(rest) <= _EPS:
            continue
        # The position ran ahead of the order's reports: its unreported rest may be filled.
        bound = max(rec.amount - max(reported_fill(rec), e.prior), 0.0)
        take = min(max(e.sign * rest, 0.0), bound)
        got[e.label] += take
        rest -= e.sign * take
    return got


__all__ = ["InFlightLedger", "reported_fill"]
