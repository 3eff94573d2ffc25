"""At a takeover: each account's positions at the venue against what the journal explains.

The journal holds every fill of the account (ours and not ours; a standby records them too),
not positions, so positions are compared between two takeovers: each takeover journals the
venue's positions (`POSITIONS_EVENT`, per account, with the instant they were read), and the
next one expects, per instrument, that snapshot plus the journal's fills since it. A
difference means the journal missed or doubled a fill (or something moved positions without
a fill the journal saw): `ha_position_mismatch` alert and a `position_mismatch` journal
event per instrument. Trading goes on: hedges follow the venue's positions, which are the
truth; the journal is what an operator reconciles (docs/ha.md).

Not compared: instruments that expired by the second snapshot (settlement moves positions
without a fill), and anything before the first takeover (nothing to compare with). Amounts in
each instrument's amount unit; times UTC ms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hedgerd.model import Fill, OrderSide

#: The journal event that holds an account's venue positions read at a takeover.
POSITIONS_EVENT = "ha_positions"
#: The journal event of one instrument whose position the journal does not explain.
MISMATCH_EVENT = "position_mismatch"
#: Relative tolerance of the comparison (sums of floats).
REL_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class PositionMismatch:
    """Account `account`'s position in `instrument`: `venue_amount` at the venue, while the
    previous snapshot and the journal's fills since add up to `journal_amount`."""

    account: str
    instrument: str
    venue_amount: float
    journal_amount: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def journal_positions(before: Mapping[str, float], fills: Iterable[Fill]) -> dict[str, float]:
    """`before` moved by `fills` (buys add, sells subtract)."""
    out = dict(before)
    for f in fills:
        signed = f.amount if f.side is OrderSide.BUY else -f.amount
        out[f.instrument] = out.get(f.instrument, 0.0) + signed
    return out


def compare(
    account: str,
    before: Mapping[str, float],
    fills: Iterable[Fill],
    now: Mapping[str, float],
    *,
    expired: Callable[[str], bool],
) -> list[PositionMismatch]:
    """The instruments whose position `now` differs from `before` plus `fills` (those of
    this account between the two snapshots); `expired(name)`: skip it."""
    expected = journal_positions(before, fills)
    out = []
    for name in sorted(expected.keys() | now.keys()):
        if expired(name):
            continue
        venue_amount, journal_amount = now.get(name, 0.0), expected.get(name, 0.0)
        scale = max(1.0, abs(venue_amount), abs(journal_amount))
        if not math.isclose(venue_amount, journal_amount, rel_tol=0, abs_tol=REL_TOLERANCE * scale):
            out.append(PositionMismatch(account, name, venue_amount, journal_amount))
    return out


__all__ = [
    "MISMATCH_EVENT",
    "POSITIONS_EVENT",
    "PositionMismatch",
    "compare",
    "journal_positions",
]
