"""`ha.positions.compare`: the venue's positions at a takeover against the previous
takeover's reading plus the journal's fills since."""

from __future__ import annotations

from hedgerd.ha.positions import PositionMismatch, compare, journal_positions
from hedgerd.model import Fill, OrderSide

PERP = "BTC-PERPETUAL"
OPTION = "BTC-27MAR26-90000-C"


def fill(trade_id: str, side: OrderSide, amount: float, instrument: str = PERP) -> Fill:
    return Fill(
        venue="sim", instrument=instrument, trade_id=trade_id, order_id="o", label=None,
        side=side, amount=amount, price=90_000.0, fee=0.0, fee_currency="BTC", ts_ms=1,
    )  # fmt: skip


def never(_name: str) -> bool:
    return False


def test_fills_since_the_last_reading_explain_the_positions() -> None:
    fills = [fill("1", OrderSide.BUY, 30.0), fill("2", OrderSide.SELL, 10.0)]
    assert journal_positions({PERP: -100.0}, fills) == {PERP: -80.0}
    assert compare("sim", {PERP: -100.0}, fills, {PERP: -80.0}, expired=never) == []
    # A position closed to zero is absent at the venue: the same as 0.
    closing = [fill("3", OrderSide.BUY, 100.0)]
    assert compare("sim", {PERP: -100.0}, closing, {}, expired=never) == []


def test_a_fill_the_journal_missed_or_doubled_is_reported() -> None:
    missed = compare("sim", {PERP: 0.0}, [], {PERP: 20.0}, expired=never)
    assert missed == [PositionMismatch("sim", PERP, 20.0, 0.0)]
    doubled = [fill("1", OrderSide.BUY, 20.0), fill("1b", OrderSide.BUY, 20.0)]
    assert compare("sim", {}, doubled, {PERP: 20.0}, expired=never) == [
        PositionMismatch("sim", PERP, 20.0, 40.0)
    ]


def test_expired_instruments_are_not_compared() -> None:
    # Settlement removes an expired option's position without a fill.
    assert compare("sim", {OPTION: 1.0}, [], {}, expired=lambda n: n == OPTION) == []
    assert compare("sim", {OPTION: 1.0}, [], {}, expired=never) == [
        PositionMismatch("sim", OPTION, 0.0, 1.0)
    ]


def test_float_sums_within_tolerance_match() -> None:
    fills = [fill(str(i), OrderSide.BUY, 0.1, OPTION) for i in range(10)]
    assert compare("sim", {}, fills, {OPTION: 1.0}, expired=never) == []
