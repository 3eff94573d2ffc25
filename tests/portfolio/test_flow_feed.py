"""The hedge loop feeds the option flow estimator from the books' option position changes,
the first load of each account's book excluded (it is the book, not flow)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.hedging.flow import FlowEstimator
from hedgerd.model import AmountUnit
from hedgerd.portfolio.flow_seed import SeedFetches
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.volvol_seed import VolOfVolSeeds
from hedgerd.venues.deribit.names import parse_expiry_ms, parse_instrument_name

NOW = parse_expiry_ms("20NOV26") + 3 * 3_600_000
NAME = "BTC-27NOV26-95000-C"


def _loop() -> SimpleNamespace:
    # The two methods under test read only these attributes.
    # (An account with no venue: nothing to seed from, `test_flow_seed.py` seeds.)
    loop = SimpleNamespace(
        _flow={},
        _flow_taken={},
        _flow_gap={},
        _flow_seeds=SeedFetches(),
        _volvol={},
        _volvol_live={},
        _jumps={},
        _jump_proxy={},
        _volvol_seeds=VolOfVolSeeds(),
        accounts={"main": SimpleNamespace(venue=None)},
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


class _StopError(Exception):
    pass


async def test_changes_made_while_the_loop_was_stopped_are_not_flow() -> None:
    # An HA node that loses its lease stops its controller part (`HaNode.gate`) while its
    # books stay live; when it is active again `run` starts on the same loop. The changes
    # made meanwhile (days of a standby, up to the book's bound) have no time the loop knows:
    # stamped at the restart they read as a burst for the next three days and widen the band.
    book = GreeksBook()
    book.add_instrument(parse_instrument_name(NAME))
    book.set_option_vol(NAME, 0.55)
    book.set_index("BTC", 90_000.0)
    book.set_position(NAME, -10.0, AmountUnit.COIN)
    loop = _loop()
    HedgeLoop._note_option_trades(loop, "main", book, "BTC", NOW)  # type: ignore[arg-type]
    for k in range(200):  # five days of standby: the other node hedged these
        book.set_position(NAME, -10.0 - (k % 2), AmountUnit.COIN)
    later = NOW + 5 * 86_400_000

    async def evaluate(underlying: str) -> None:
        HedgeLoop._note_option_trades(loop, "main", book, underlying, later)  # type: ignore[arg-type]

    async def stop(_s: float) -> None:
        raise _StopError

    loop.config = SimpleNamespace(daemon=SimpleNamespace(evaluate_interval_s=1.0))
    loop._reload_requested = asyncio.Event()
    loop.underlyings = ["BTC"]
    loop.evaluate = evaluate
    loop.clocks = SimpleNamespace(sleep_daemon_s=stop)
    loop.running = asyncio.Event()
    with pytest.raises(_StopError):
        await HedgeLoop.run(loop)  # type: ignore[arg-type]
    assert not loop.running.is_set()  # stopped: an evaluation must wait for the next start
    est = loop._flow.get("BTC") or FlowEstimator(later)
    assert est.estimate(later) == (0.0, 0.0)
    # Changes from then on are flow again.
    book.set_position(NAME, -12.0, AmountUnit.COIN)
    HedgeLoop._note_option_trades(loop, "main", book, "BTC", later + 1_000)  # type: ignore[arg-type]
    assert loop._flow["BTC"].estimate(later + 1_000)[1] > 0.0
