"""The hedge loop feeds the option flow estimator from the books' option position changes,
the first load of each account's book excluded (it is the book, not flow)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.hedging.flow import FlowEstimator
from hedgerd.model import AmountUnit
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.venues.deribit.names import parse_expiry_ms, parse_instrument_name

NOW = parse_expiry_ms("20NOV26") + 3 * 3_600_000
NAME = "BTC-27NOV26-95000-C"


def _loop() -> SimpleNamespace:
    # The two methods under test read only these attributes.
    # (An account with no venue: nothing to seed from, `test_flow_seed.py` seeds.)
    loop = SimpleNamespace(
        _flow={}, _flow_taken={}, _flow_seeds=None, accounts={"main": SimpleNamespace(venue=None)}
    )
    loop._flow_estimator = lambda u, now: HedgeLoop._flow_estimator(loop, u, now)  # type: ignore[arg-type]
    loop._observe_jumps = lambda a, u, now, jumps: HedgeLoop._observe_jumps(  # type: ignore[arg-type]
        loop, a, u, now, jumps
    )
    loop._take_and_seed = lambda a, b, u, now, since: HedgeLoop._take_and_seed(  # type: ignore[arg-type]
        loop, a, b, u, now, since
    )
    return loop


def test_the_first_load_is_not_flow_and_later_fills_are() -> None:
    book = GreeksBook()
    book.add_instrument(parse_instrument_name(NAME))
    book.set_option_vol(NAME, 0.55)
    book.set_index("BTC", 90_000.0)
    book.set_position(NAME, -10.0, AmountUnit.COIN)  # the positions as loaded
    loop = _loop()
    HedgeLoop._note_option_trades(loop, "main", book, "BTC", NOW)  # type: ignore[arg-type]
    est: FlowEstimator = loop._flow["BTC"] if "BTC" in loop._flow else FlowEstimator(NOW)
    assert est.estimate(NOW) == (0.0, 0.0)
    book.set_position(NAME, -11.0, AmountUnit.COIN)  # a client buys one call from the book
    HedgeLoop._note_option_trades(loop, "main", book, "BTC", NOW + 60_000)  # type: ignore[arg-type]
    v, j = loop._flow["BTC"].estimate(NOW + 60_000)
    assert 0.0 < j < 1.0  # one call's delta
    assert v == pytest.approx(j * j * 365.0)  # one jump over the minimum span of a day
