"""`hedgerd exchange-sim --tick-ms/--flow-rate`: overrides of the scenario, validated like the
file's own values, and the engine's clock held near its market time."""

from __future__ import annotations

import pydantic
import pytest

from hedgerd.sim.clock import SimClock
from hedgerd.sim.command import build_engine, build_scenario


def test_overrides_apply_and_leave_the_rest() -> None:
    base = build_scenario(None)
    sc = build_scenario(None, tick_ms=1000, flow_rate_per_min=0.0)
    assert (sc.tick_ms, sc.flow.rate_per_min) == (1000, 0.0)
    assert sc.flow.max_size_coin == base.flow.max_size_coin
    assert sc.accounts == base.accounts


@pytest.mark.parametrize(("tick_ms", "flow"), [(0, None), (60_001, None), (None, -1.0)])
def test_bad_overrides_are_refused(tick_ms: int | None, flow: float | None) -> None:
    with pytest.raises(pydantic.ValidationError):
        build_scenario(None, tick_ms=tick_ms, flow_rate_per_min=flow)


def test_the_engine_keeps_the_clock_near_its_market() -> None:
    wall = [1_000.0]
    sc = build_scenario(None, tick_ms=1000)
    clock = SimClock(sc.start_ms, speed=100.0, wall_s=lambda: wall[0])
    engine = build_engine(sc, clock)
    wall[0] += 3600.0  # an hour of wall time with nobody stepping the engine
    assert clock.now_ms() - sc.start_ms == 50_000  # 0.5 s wall at 100x, not 100 hours
    engine.advance_to(clock.now_ms())
    assert clock.now_ms() - sc.start_ms == 50_000
