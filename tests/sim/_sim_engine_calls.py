"""Helpers of the engine tests: a quiet scenario, moving time, and calling methods the way
the server does (`SimExchange.dispatch`)."""

from __future__ import annotations

from typing import Any

import pytest

from hedgerd.sim.exchange import SimExchange
from hedgerd.sim.protocol import Account, DeribitError
from hedgerd.sim.scenario import Scenario


def quiet(**extra: Any) -> Scenario:
    """BTC only, no jumps, no option flow, no accounts, 15 s steps; `extra` replaces
    top-level keys."""
    data: dict[str, Any] = {
        "seed": 21,
        "accounts": [],
        "tick_ms": 15_000,
        "flow": {"enabled": False},
        "underlyings": [
            {"currency": "BTC", "spot": 90000, "vol": 0.3, "jumps": {"intensity_per_day": 0}}
        ],
    }
    data.update(extra)
    return Scenario.model_validate(data)


def to(ex: SimExchange, t: int) -> None:
    """Set the clock to `t` (UTC ms) and let the market catch up."""
    ex.clock.set(t)
    ex.advance_to(t)


def call(ex: SimExchange, method: str, acct: Account | None = None, **params: Any) -> Any:
    return ex.dispatch(method, params, acct)


def err(ex: SimExchange, method: str, acct: Account | None = None, **params: Any) -> int:
    """The Deribit error code `method` fails with (the test fails if it succeeds)."""
    with pytest.raises(DeribitError) as e:
        ex.dispatch(method, params, acct)
    return e.value.code
