"""Backtest reporting: per-run statistics, cost-versus-risk frontiers, matched-risk comparison.

Matched risk: each policy's sweep gives points (std of P&L, mean cost). Its frontier is the set
of points no other point of the same policy beats on both; between two neighbouring frontier
points the cost at a given std is interpolated in log(std)-log(cost) by a monotone cubic
(PCHIP, Fritsch–Carlson) through the frontier's points (no extrapolation: a std outside a
policy's range has no cost for it). Two policies are compared at the same std ("matched
risk"): ratio = cost of the default / cost of the baseline.

Why not the straight chord between neighbouring points: a frontier is convex in log-log (it
bends hardest near its risk floor), so the chord overstates the cost between points, by about
1 % of cost at the 1.5x risk-aversion steps of the built-in sweeps (docs/backtest.md,
"Volatility regimes"), more for a target mid-way between points than for one near a point; a
comparison at a std where one policy has a point and the other does not leaned on where the
points fell. The monotone cubic follows the bend, goes through every point and never
overshoots them (cost stays decreasing in std); with two points it is the chord.

Matched cost, the second reading: the same curve read along cost (`frontier_std_curve`, its
inverse; cost is strictly decreasing in std on a frontier) gives each policy's std at a cost,
and the default's relative std excess at equal cost (std excess = default std / baseline std
- 1). Where every policy's std sits on a floor (a vega floor) the frontiers are nearly
vertical and the cost ratio at matched std divides costs read a hundredth of a percent of std
apart; the std at matched cost is the well-conditioned reading there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq

from hedgerd.backtest.runner import RunResult
from hedgerd.ops.plots import pyplot

MATCHED_RISK_METHOD = (
    "each policy's sweep traces points (std of P&L, mean cost); its frontier keeps the points "
    "no other point of the same policy beats on both; costs are interpolated in "
    "log(std)-log(cost) by a monotone cubic (PCHIP) through the frontier points, never "
    "extrapolated; policies are compared at equal std (ratio = default cost / baseline cost)"
)

MATCHED_COST_METHOD = (
    "the same frontier curves read along cost (their inverse; never extrapolated); policies "
    "are compared at equal cost (std excess = default std / baseline std - 1, a fraction)"
)


@dataclass(frozen=True, slots=True)
class RunStats:
    policy: str
    family: str
    params: dict[str, Any]
    baseline: bool
    mean_cost: float
    std_pnl: float
    cvar95: float
    mean_pnl: float
    carry: float
    trades: float
    turnover: float
    max_abs_delta: float
    #: Mean traded notional per path on each venue (report unit), where the scenario names
    #: venues; empty otherwise.
    venue_volume: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **({"venue_volume": self.venue_volume} if self.venue_volume else {}),
            "policy": self.policy,
            "family": self.family,
            "params": self.params,
            "mean_cost": self.mean_cost,
            "std_pnl": self.std_pnl,
            "cvar95": self.cvar95,
            "mean_pnl": self.mean_pnl,
            "carry": self.carry,
            "trades": self.trades,
            "turnover": self.turnover,
            "max_abs_delta": self.max_abs_delta,
        }


def stats(result: RunResult, scale: float, venues: Sequence[str] = ()) -> RunStats:
    """Statistics of one run; money divided by `scale` (e.g. premium/100 for % of premium).
    `venues`: each instrument's venue (the scenario's order), for `venue_volume`.

    cvar95: mean loss over the worst 5 % of paths (positive = loss); trades: mean count per
    path; turnover: mean traded notional per path (report unit); max_abs_delta: mean over paths
    of the largest |net delta| after each decision (coin).
    """
    pnl = result.pnl_usd / scale
    worst = np.sort(pnl)[: max(1, math.ceil(0.05 * pnl.size))]
    return RunStats(
        policy=result.run.name,
        family=result.run.family,
        params=result.run.params,
        baseline=result.run.baseline,
        mean_cost=float(np.mean(result.cost_usd) / scale),
        std_pnl=float(np.std(pnl, ddof=1)),
        cvar95=float(-np.mean(worst)),
        mean_pnl=float(np.mean(pnl)),
        carry=float(np.mean(result.carry_usd) / scale),
        trades=float(np.mean(result.trades)),
        turnover=float(np.mean(result.turnover_usd) / scale),
        max_abs_delta=float(np.mean(result.max_abs_delta_coin)),
        venue_volume=_venue_volume(result, scale, venues),
    )


def _venue_volume(result: RunResult, scale: float, venues: Sequence[str]) -> dict[str, float]:
    """Mean traded notional per path on each venue (report unit)."""
    per = result.turnover_by_instrument_usd
    if per is None or not venues or len(venues) != per.shape[1]:
        return {}
    out: dict[str, float] = {}
    for i, venue in enumerate(venues):
        out[venue] = out.get(venue, 0.0) + float(np.mean(per[:, i]) / scale)
    return out


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pareto frontier of (std, cost) points, sorted by std (cost strictly decreasing)."""
    out: list[tuple[float, float]] = []
    for std, cost in sorted(points):
        if not (math.isfinite(std) and math.isfinite(cost)):
            continue
        if out and cost >= out[-1][1]:
            continue
        out.append((std, cost))
    return out


def cost_at(front: Sequence[tuple[float, float]], std: float) -> float | None:
    """Cost on the frontier at `std`, None outside its range: a monotone cubic (PCHIP) through
    the points in log(std)-log(cost); the straight chord where there are only two points, and
    linear in std and cost between points where a cost is not positive (maker rebates)."""
    return frontier_curve(front)(std)


def frontier_curve(front: Sequence[tuple[float, float]]) -> Callable[[float], float | None]:
    """`cost_at` for one frontier, its cubic built once (for many stds on the same frontier)."""
    pts = list(front)
    if len(pts) > 2 and all(c > 0 for _, c in pts):
        x = np.log([s for s, _ in pts])
        cubic = PchipInterpolator(x, np.log([c for _, c in pts]))
        lo, hi = pts[0][0], pts[-1][0]

        def on_cubic(std: float) -> float | None:
            if not lo <= std <= hi:
                return None
            # Clipped: math.log and np.log may differ in the last bit at an end point.
            return float(np.exp(cubic(min(max(math.log(std), x[0]), x[-1]))))

        return on_cubic
    return lambda std: _chord_at(pts, std)


def frontier_std_curve(front: Sequence[tuple[float, float]]) -> Callable[[float], float | None]:
    """The frontier read along cost: the std at which `frontier_curve(front)` gives `cost`
    (report unit), None outside the frontier's cost range. The inverse of the one curve
    `cost_at` reads (cost is strictly decreasing in std on a frontier, and the monotone cubic
    and the chord keep it so between points), found by root bracketing between the two
    frontier points whose costs enclose `cost`; a frontier point's own cost gives its own std
    exactly."""
    pts = list(front)
    curve = frontier_curve(pts)
    own = {c: s for s, c in pts}

    def gap(std: float, cost: float) -> float:
        got = curve(std)
        assert got is not None  # std lies between two frontier points
        return got - cost

    def std_at(cost: float) -> float | None:
        if cost in own:
            return own[cost]
        for (s0, c0), (s1, c1) in itertools.pairwise(pts):
            if c1 < cost < c0:
                # The cubic at a point may differ from the point's cost in the last bit.
                if gap(s0, cost) <= 0.0:
                    return s0
                if gap(s1, cost) >= 0.0:
                    return s1
                return float(brentq(gap, s0, s1, args=(cost,), xtol=1e-14 * s1))
        return None

    return std_at


def _chord_at(front: Sequence[tuple[float, float]], std: float) -> float | None:
    """The chord between the neighbouring points: in log-log, or linear where a cost is not
    positive; a single point answers only its own std."""
    if len(front) == 1:
        return front[0][1] if math.isclose(front[0][0], std, rel_tol=1e-9) else None
    for (s0, c0), (s1, c1) in itertools.pairwise(front):
        if s0 <= std <= s1:
            if c0 <= 0 or c1 <= 0:
                w = (std - s0) / (s1 - s0)
                return c0 + w * (c1 - c0)
            w = (math.log(std) - math.log(s0)) / (math.log(s1) - math.log(s0))
            return math.exp(math.log(c0) + w * (math.log(c1) - math.log(c0)))
    return None


@dataclass(frozen=True, slots=True)
class Comparison:
    std: float
    costs: dict[str, float | None]
    ratios: dict[str, float | None]


def compare(
    rows: Sequence[RunStats], default: str, targets: Sequence[float]
) -> tuple[list[Comparison], dict[str, list[tuple[float, float]]]]:
    """Cost of every policy at each target std, and the default's ratio to each baseline."""
    fronts: dict[str, list[tuple[float, float]]] = {}
    for name in dict.fromkeys(r.policy for r in rows):
        fronts[name] = frontier([(r.std_pnl, r.mean_cost) for r in rows if r.policy == name])
    if not targets and default in fronts:
        targets = [s for s, _ in fronts[default]]
    curves = {name: frontier_curve(f) for name, f in fronts.items()}
    out = []
    for std in targets:
        costs = {name: curve(std) for name, curve in curves.items()}
        base = costs.get(default)
        ratios = {
            name: (base / c if base is not None and c is not None and c > 0 else None)
            for name, c in costs.items()
            if name != default
        }
        out.append(Comparison(std, costs, ratios))
    return out, fronts


@dataclass(frozen=True, slots=True)
class CostComparison:
    """Every policy's std at one cost (report unit), and the default's relative std excess
    over each baseline there (a fraction: 0.01 = the default's std is 1 % higher)."""

    cost: float
    stds: dict[str, float | None]
    excess: dict[str, float | None]


def compare_at_cost(
    fronts: Mapping[str, Sequence[tuple[float, float]]],
    default: str,
    targets: Sequence[float] = (),
) -> list[CostComparison]:
    """Std of every policy's frontier (`compare`'s `fronts`) at each target cost, and the
    default's std excess over each baseline (None where either frontier does not reach the
    cost). Targets default to the costs of the default's own frontier points, as `compare`'s
    default to their stds."""
    if not targets and default in fronts:
        targets = [c for _, c in fronts[default]]
    curves = {name: frontier_std_curve(f) for name, f in fronts.items()}
    out = []
    for cost in targets:
        stds = {name: curve(cost) for name, curve in curves.items()}
        base = stds.get(default)
        excess = {
            name: (base / s - 1.0 if base is not None and s is not None and s > 0 else None)
            for name, s in stds.items()
            if name != default
        }
        out.append(CostComparison(cost, stds, excess))
    return out


def render(
    scenario: str,
    unit: str,
    rows: Sequence[RunStats],
    comparisons: Sequence[Comparison],
    default: str,
    baselines: Sequence[str],
) -> str:
    lines = [f"scenario {scenario}  (costs and P&L in {unit})", ""]
    lines.append(
        f"{'policy':<14}{'params':<34}{'mean_cost':>10}{'std_pnl':>9}{'cvar95':>9}"
        f"{'mean_pnl':>9}{'trades':>9}{'turnover':>11}{'max|d|':>8}"
    )
    for r in rows:
        p = ",".join(f"{k}={v:.4g}" for k, v in r.params.items())
        lines.append(
            f"{r.policy:<14}{p:<34}{r.mean_cost:>10.4f}{r.std_pnl:>9.4f}{r.cvar95:>9.3f}"
            f"{r.mean_pnl:>9.3f}{r.trades:>9.1f}{r.turnover:>11.2f}{r.max_abs_delta:>8.3f}"
        )
    if any(len(r.venue_volume) > 1 for r in rows):
        lines += ["", "volume per venue (mean traded notional per path, share of the total)"]
        for r in rows:
            total = sum(r.venue_volume.values()) or 1.0
            cells = ", ".join(f"{v} {x:.2f} ({x / total:.0%})" for v, x in r.venue_volume.items())
            p = ",".join(f"{k}={v:.4g}" for k, v in r.params.items())
            lines.append(f"{r.policy:<14}{p:<34}{cells}")
    if comparisons:
        lines += ["", f"matched risk: {MATCHED_RISK_METHOD}", ""]
        names = list(comparisons[0].costs)
        lines.append(f"{'std':>9}" + "".join(f"{n:>13}" for n in names))
        for c in comparisons:
            cells = "".join(
                f"{c.costs[n]:>13.4f}" if c.costs[n] is not None else f"{'-':>13}" for n in names
            )
            lines.append(f"{c.std:>9.4f}" + cells)
        lines.append("")
        for b in baselines:
            rs = [(c.std, c.ratios.get(b)) for c in comparisons]
            got = [(s, r) for s, r in rs if r is not None]
            if not got:
                lines.append(f"{default} vs {b}: no overlapping std range")
                continue
            txt = ", ".join(f"{r:.3f}x @ std {s:.3g}" for s, r in got)
            verdict = "beats" if all(r < 1.0 for _, r in got) else "does NOT beat everywhere"
            lines.append(f"{default} vs {b}: {verdict}: {txt}")
        if "timer" in names:
            # Every family against the best fixed timer (e.g. how close `exact` gets).
            lines.append("")
            for n in names:
                if n == "timer":
                    continue
                parts: list[str] = []
                for c in comparisons:
                    own, tim = c.costs[n], c.costs["timer"]
                    q = f"{own / tim:.3f}" if own is not None and tim else "-"
                    parts.append(f"{q} @ std {c.std:.3g}")
                lines.append(f"{n} / best timer: " + ", ".join(parts))
    return "\n".join(lines)


def to_json(
    scenario: str,
    unit: str,
    premium_usd: float | None,
    paths: int,
    seed: int,
    rows: Sequence[RunStats],
    comparisons: Sequence[Comparison],
    default: str,
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "unit": unit,
        "premium_usd": premium_usd,
        "paths": paths,
        "seed": seed,
        "default_policy": default,
        "results": [r.to_json() for r in rows],
        "matched_risk": {
            "method": MATCHED_RISK_METHOD,
            "comparisons": [
                {"std_pnl": c.std, "cost": c.costs, "ratio_default_to": c.ratios}
                for c in comparisons
            ],
        },
        "definitions": {
            "mean_cost": "fees + execution price vs mid at decision + funding + basis carry, "
            "mean per path",
            "std_pnl": "std of the total hedged P&L per path (option book + hedges - costs)",
            "cvar95": "mean loss over the worst 5% of paths (positive = loss)",
            "trades": "mean orders filled per path",
            "turnover": "mean traded notional per path",
            "max_abs_delta": "mean over paths of the largest |net delta| after a decision, coin",
        },
    }


def plot(
    path: Path,
    unit: str,
    scenario: str,
    fronts: dict[str, list[tuple[float, float]]],
    rows: Sequence[RunStats],
) -> None:
    """Cost-vs-risk frontier per policy (needs matplotlib: the `plot` extra; raises
    `PlotUnavailableError` without it)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name in fronts:
        pts = sorted((r.std_pnl, r.mean_cost) for r in rows if r.policy == name)
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        line = ax.plot(xs, ys, "o", alpha=0.35, markersize=4)[0]
        f = fronts[name]
        ax.plot([p[0] for p in f], [p[1] for p in f], "-", color=line.get_color(), label=name)
    ax.set_xlabel(f"std of hedged P&L ({unit})")
    ax.set_ylabel(f"mean cost ({unit})")
    ax.set_title(f"{scenario}: cost vs risk")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
