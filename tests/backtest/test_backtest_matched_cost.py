"""The second reading of a comparison: the default's std excess at matched cost (the frontier
curve read along cost), beside the cost ratio at matched std; on a floor the first is
well-conditioned where the second is not (issue 19)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedgerd.backtest.report import (
    RunStats,
    compare,
    compare_at_cost,
    cost_at,
    frontier,
    frontier_std_curve,
)
from hedgerd.backtest.sweep import (
    StdExcess,
    Worst,
    family_json,
    render_excess_table,
    render_table,
    worst_by_family,
)

ROOT = Path(__file__).resolve().parents[2]


def _rows(policy: str, points: list[tuple[float, float]]) -> list[RunStats]:
    return [
        RunStats(policy, policy, {"k": k}, False, c, s, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for k, (s, c) in enumerate(points)
    ]


def _std_at(front: list[tuple[float, float]], cost: float) -> float | None:
    return frontier_std_curve(front)(cost)


# ------------------------------------------------------------------ the curve read along cost


def test_std_at_cost_is_the_inverse_of_the_cost_curve() -> None:
    # Two points: the chord in log-log, c = 4 / s^2, so s = 2 / sqrt(c).
    two = [(1.0, 4.0), (2.0, 1.0)]
    assert _std_at(two, 2.0) == pytest.approx(math.sqrt(2.0), rel=1e-12)
    assert _std_at(two, 4.0) == 1.0 and _std_at(two, 1.0) == 2.0  # its own points, exactly
    assert _std_at(two, 4.5) is None and _std_at(two, 0.9) is None  # never extrapolated
    # A power law is exact on the monotone cubic, so its inverse is too.
    law = [(s, 7.0 * s**-2.5) for s in (1.0, 1.5, 2.25, 4.0, 6.0)]
    for c in (6.0, 2.0, 0.5, 0.1):
        assert _std_at(law, c) == pytest.approx((7.0 / c) ** (1 / 2.5), rel=1e-10)
    # Non-positive costs (maker rebates): linear in std and cost, as `cost_at`.
    reb = [(1.0, 2.0), (2.0, 0.5), (3.0, -0.5)]
    assert _std_at(reb, 0.0) == pytest.approx(2.5)
    # A single point answers only its own cost.
    assert _std_at([(3.0, 1.0)], 1.0) == 3.0 and _std_at([(3.0, 1.0)], 1.1) is None


def test_a_hand_built_pair_with_a_known_excess() -> None:
    """Baseline c = 4 / s^2 (two points); the default's points at costs 2 and 1.5: the
    baseline's std there is 2 / sqrt(c), the excess std / that - 1."""
    base = [(1.0, 4.0), (2.0, 1.0)]
    mine = [(1.6, 2.0), (1.5, 3.0), (2.5, 0.5)]  # the last is outside the baseline's costs
    fronts = {"d": frontier(mine), "b": base}
    got = compare_at_cost(fronts, "d")
    assert [c.cost for c in got] == [3.0, 2.0, 0.5]
    want = [1.5 / (2 / math.sqrt(3.0)) - 1, 1.6 / math.sqrt(2.0) - 1, None]
    ex = [c.excess["b"] for c in got]
    assert ex[:2] == pytest.approx(want[:2], rel=1e-10) and ex[2] is None
    assert ex[1] == pytest.approx(0.131371, abs=1e-6)
    assert got[0].stds["d"] == 1.5  # the default's own point, not interpolated


def test_on_a_floor_the_ratio_is_large_and_the_std_excess_small() -> None:
    """A vega floor: every std within 34.5-34.8 % of premium over a 2:1 cost range. The
    default's frontier is the baseline's with 0.1 % more std: at matched std its cost is a
    third higher, at matched cost its std is 0.1 % higher."""
    base = [(34.55, 2.0), (34.58, 1.6), (34.63, 1.3), (34.72, 1.0)]
    mine = [(s * 1.001, c) for s, c in base]
    rows = _rows("d", mine) + _rows("b", base)
    comps, fronts = compare(rows, "d", [])
    ratios = [r for c in comps if (r := c.ratios["b"]) is not None]
    assert max(ratios) > 1.2  # ill-conditioned: +0.1 % std reads as +20 % cost
    by_cost = compare_at_cost(fronts, "d")
    excess = [c.excess["b"] for c in by_cost]
    assert excess == pytest.approx([0.001] * 4, rel=1e-9)


def test_frontiers_without_a_common_cost_give_no_excess() -> None:
    """Mirrors the ratio: a cost outside the baseline's cost range has no reading; no cost in
    common gives none at all. The readings are independent: two frontiers may share costs and
    no std (or the other way round)."""
    fronts = {"d": [(1.0, 9.0), (2.0, 6.0)], "b": [(1.0, 3.0), (2.0, 1.0)]}
    assert all(c.excess["b"] is None for c in compare_at_cost(fronts, "d"))
    # Shared costs, disjoint stds: no ratio at matched std, an excess at matched cost.
    d, b = [(5.0, 4.0), (6.0, 2.0)], [(1.0, 5.0), (2.0, 1.0)]
    comps, fronts = compare(_rows("d", d) + _rows("b", b), "d", [])
    assert all(c.ratios["b"] is None for c in comps)
    got = [c.excess["b"] for c in compare_at_cost(fronts, "d")]
    assert all(e is not None and e > 1.0 for e in got)


# ------------------------------------------------------------------ invariants


_front = st.lists(
    st.tuples(st.floats(0.5, 300.0), st.floats(0.01, 50.0)), min_size=1, max_size=9
).map(frontier)


@settings(max_examples=200, deadline=None)
@given(_front)
def test_identical_frontiers_give_exactly_zero(front: list[tuple[float, float]]) -> None:
    got = compare_at_cost({"d": front, "b": list(front)}, "d")
    assert [c.excess["b"] for c in got] == [0.0] * len(front)


@settings(max_examples=200, deadline=None)
@given(_front, st.floats(-0.3, 0.3))
def test_scaling_the_std_by_one_plus_e_gives_e(front: list[tuple[float, float]], e: float) -> None:
    mine = [(s * (1.0 + e), c) for s, c in front]
    got = compare_at_cost({"d": mine, "b": front}, "d")
    assert [c.excess["b"] for c in got] == pytest.approx([e] * len(front), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(_front.filter(lambda f: len(f) >= 2), st.floats(0.0, 1.0))
def test_the_std_curve_is_the_inverse_of_the_cost_curve(
    front: list[tuple[float, float]], w: float
) -> None:
    """cost at a std, then std at that cost, gives the std back (or, where the frontier is so
    flat that the std is not determined by the cost to that precision, a std with the same
    cost); std falls as cost rises."""
    s0, s1 = front[0][0], front[-1][0]
    std = s0 + w * (s1 - s0)
    got = cost_at(front, std)
    assert got is not None
    cost = min(max(got, front[-1][1]), front[0][1])  # the cubic's last bit at an end point
    back = _std_at(front, cost)
    assert back is not None and s0 <= back <= s1
    again = cost_at(front, back)
    assert again is not None
    assert back == pytest.approx(std, rel=1e-9) or again == pytest.approx(cost, rel=1e-9)
    curve = frontier_std_curve(front)
    stds = [curve(float(c)) for c in np.linspace(front[-1][1], front[0][1], 25)]
    assert all(a is not None and b is not None and a >= b * (1 - 1e-12) for a, b in
               itertools.pairwise(stds))  # fmt: skip


# ------------------------------------------------------------------ the family table


def test_the_family_keeps_its_largest_excess_beside_its_largest_ratio() -> None:
    """The family's worst std excess is its own variant's, not the worst ratio's; a baseline
    no variant shares a cost with is `no overlap`; the ratio's keys are unchanged."""
    variants = [
        ("f", "floor", {"b": Worst(1.30, 34.6, 0.05)}, {"b": StdExcess(0.001, 1.5, 0.0004)}),
        ("f", "loss", {"b": Worst(1.05, 200.0, 0.02)}, {"b": StdExcess(0.024, 420.0, None)}),
        ("f", "far", {"b": None}, {"b": None}),
        ("g", "old", {"b": Worst(0.9, 1.0, None)}, {}),  # a record without the reading
    ]
    rows = worst_by_family(variants, ["b"])
    f, g = rows
    assert (f.variant, f.worst) == ("floor", Worst(1.30, 34.6, 0.05))
    assert (f.excess_variant, f.excess, f.excess_compared) == (
        "loss",
        StdExcess(0.024, 420.0, None),
        2,
    )
    assert (g.excess, g.excess_variant, g.excess_compared) == (None, None, 0)
    js = family_json(f)
    assert js["worst"] == {"ratio": 1.30, "std_pnl": 34.6, "se": 0.05}
    assert js["std_excess"] == {"std_excess": 0.024, "cost": 420.0, "se": None}
    assert (js["excess_variant"], js["excess_compared"]) == ("loss", 2)
    table = render_excess_table(rows, ["b"])
    assert table.splitlines()[0] == "| family (std excess at matched cost) | b |"
    assert "| f | +2.40 % ± n/a `loss` (2/3) |" in table
    assert "| g | no overlap |" in table
    assert "| f | 1.300 ± 0.050 `floor` (2/3) |" in render_table(rows, ["b"])
