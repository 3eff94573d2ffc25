"""SimClock.limit_lead: an engine that falls behind slows the clock down (monotonic, backlog
dropped) instead of owing a catch-up; explicit advances are honoured in full."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.sim.clock import SimClock


def make(
    speed: float = 100.0, lead_wall_s: float = 0.5, min_lead_ms: int = 1_000
) -> tuple[SimClock, list[float], list[int]]:
    wall = [1_000.0]  # 1,000 s: exact binary fractions below keep the arithmetic exact
    floor = [0]
    clock = SimClock(0, speed=speed, wall_s=lambda: wall[0])
    clock.limit_lead(lambda: floor[0], lead_wall_s=lead_wall_s, min_lead_ms=min_lead_ms)
    return clock, wall, floor


def test_an_engine_that_keeps_up_sees_nominal_speed() -> None:
    clock, wall, floor = make()
    for _ in range(10):
        wall[0] += 0.125
        floor[0] = clock.now_ms()  # the engine processed everything
    assert clock.now_ms() == 125_000  # 1.25 s wall at 100x


def test_a_stalled_engine_caps_the_clock_and_the_backlog_is_dropped() -> None:
    clock, wall, floor = make()
    wall[0] += 60.0  # a minute of wall time with the engine stuck at 0
    assert clock.now_ms() == 50_000  # lead: 0.5 s wall at 100x
    floor[0] = 50_000  # the engine catches up to the cap ...
    wall[0] += 0.015625
    assert clock.now_ms() == 51_562  # ... and time runs on from there, not from 6,000,000


def test_min_lead_applies_at_low_speed() -> None:
    clock, wall, _ = make(speed=1.0, min_lead_ms=2_000)
    wall[0] += 10.0
    assert clock.now_ms() == 2_000


def test_explicit_advance_is_honoured_beyond_the_lead() -> None:
    clock, wall, _ = make()
    assert clock.advance(3_600_000) == 3_600_000
    assert clock.now_ms() == 3_600_000
    wall[0] += 0.0009765625
    assert clock.now_ms() >= 3_600_000


@settings(max_examples=200, derandomize=True)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 5.0), st.integers(0, 400_000), st.integers(0, 10_000)),
        min_size=1,
        max_size=40,
    )
)
def test_time_never_goes_backwards(steps: list[tuple[float, int, int]]) -> None:
    """Whatever the wall clock, the engine's progress and explicit advances do."""
    clock, wall, floor = make()
    last = clock.now_ms()
    for dwall, engine_ms, advance_ms in steps:
        wall[0] += dwall
        floor[0] = max(floor[0], min(engine_ms, last))  # the engine never passes the clock
        if advance_ms % 7 == 0:
            clock.advance(advance_ms)
        now = clock.now_ms()
        assert now >= last
        last = now


def test_a_cap_holds_the_clock_and_time_resumes_from_it() -> None:
    """`limit_to` (the paper run's pace): held at the cap, never back, and on from the cap
    once it moves (the held wall time is dropped); None from the cap: no cap."""
    clock, wall, floor = make()
    cap: list[int | None] = [2_000]
    clock.limit_to(lambda: cap[0])
    wall[0] += 0.125
    floor[0] = 12_500
    assert clock.now_ms() == 2_000  # 12,500 at 100x, held at 2,000
    wall[0] += 10.0
    cap[0] = 1_000  # a cap behind the clock does not move it back
    assert clock.now_ms() == 2_000
    cap[0] = None
    wall[0] += 0.015625
    assert clock.now_ms() == 3_562  # from the cap at 100x, not from 1,000 s of wall time
    clock.limit_to(None)
    wall[0] += 0.015625
    floor[0] = 10_000
    assert clock.now_ms() == 5_125
