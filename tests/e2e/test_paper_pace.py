"""`hedgerd paper` paces the simulator by its daemon's evaluations (`EvaluationPace`): a
starved hedge loop slows simulated time down instead of evaluating each simulated minute
less often (issue 17)."""

from __future__ import annotations

from hedgerd.paper import EvaluationPace, paper_tick_ms


def test_no_cap_before_the_first_evaluation_then_lead_past_the_last_one() -> None:
    evaluations, market, wall = [0], [1_000], [0.0]
    pace = EvaluationPace(
        lambda: evaluations[0], lambda: market[0], 3_000, release_s=2.0, wall_s=lambda: wall[0]
    )
    assert pace.cap_ms() is None
    evaluations[0] = 1
    assert pace.cap_ms() == 4_000  # the market time it was seen at + 3 s
    market[0] = 3_750
    wall[0] = 1.5
    assert pace.cap_ms() == 4_000  # no new evaluation: the cap stays
    evaluations[0] = 3
    assert pace.cap_ms() == 6_750


def test_a_daemon_that_stops_evaluating_releases_the_clock() -> None:
    """Halted, stopping, or a hedge loop that waits on the market: after `release_s` wall
    seconds without an evaluation the clock runs free (a slow-down, never a freeze)."""
    evaluations, wall = [1], [0.0]
    pace = EvaluationPace(
        lambda: evaluations[0], lambda: 0, 3_000, release_s=2.0, wall_s=lambda: wall[0]
    )
    assert pace.cap_ms() == 3_000
    wall[0] = 2.5
    assert pace.cap_ms() is None
    evaluations[0] = 2
    assert pace.cap_ms() == 3_000


def test_the_market_step_is_coarser_at_high_speed() -> None:
    assert [paper_tick_ms(x) for x in (1, 10, 20, 30, 40, 100)] == [
        250,
        250,
        500,
        750,
        1000,
        1000,
    ]
