"""Cross-venue routing against single-venue hedging at matched std (issue 17).

`hedgerd backtest --scenario FILE --compare-venues` runs the default policy and the fixed timer
three ways over the same paths (common random numbers: the paths, option flow and fill draws
depend on the seed and the market only, not on the instruments):

- on the whole scenario, routing across every venue (`<policy>`);
- on each venue alone: the scenario with only that venue's instruments, outages included
  (`<policy>@<venue>`): what a desk hedging on one exchange gets, with the same router (the
  cost of moving a position later priced on the part of a trade that grows it, on one venue
  as across venues). Without it a venue's router buys the instrument of least carry and
  sells the one of most, and builds a calendar spread that earns the funding difference: a
  carry trade whose income would count as a negative hedging cost (docs/backtest.md, "Two
  venues").

At each target std the default's cost is divided by the cheapest single-venue frontier of the
default and of the timer that reaches that std (a venue whose frontier does not reach it is
left out there, never extrapolated; `report.cost_at`).

The core here is pure: no files, no clock; `command.py` reads the file and times the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import RunStats, compare, stats
from hedgerd.backtest.runner import run_backtest
from hedgerd.backtest.scenario import Scenario, ScenarioError, premium_usd

#: The baseline a single venue's default is also measured against (what desks run today).
TIMER = "timer"


def venue_names(sc: Scenario) -> list[str]:
    """The scenario's venues, in the order their first instrument appears."""
    return list(dict.fromkeys(i.venue or i.name for i in sc.instruments))


def single_venue(sc: Scenario, venue: str) -> Scenario:
    """The scenario with only `venue`'s instruments (its outage kept)."""
    mine = tuple(i for i in sc.instruments if (i.venue or i.name) == venue)
    if not mine:
        raise ScenarioError(f"{sc.name}: no instrument on venue {venue!r}")
    return sc.model_copy(update={"instruments": mine, "name": f"{sc.name}@{venue}"})


@dataclass(frozen=True, slots=True)
class Best:
    """The cheapest single-venue frontier at one std."""

    venue: str
    cost: float


@dataclass(frozen=True, slots=True)
class VenueRow:
    """One target std: every frontier's cost, the cheapest single venue per policy, ratios."""

    std: float
    costs: dict[str, float | None]  # "<policy>" and "<policy>@<venue>" -> cost at std
    best: dict[str, Best | None]  # policy -> cheapest single venue reaching the std
    ratio: dict[str, float | None]  # policy -> default (cross-venue) / best single venue


@dataclass(frozen=True, slots=True)
class VenueComparison:
    scenario: str
    unit: str
    paths: int
    seed: int
    default: str
    venues: tuple[str, ...]
    rows: tuple[RunStats, ...]  # every run, policy names as in `VenueRow.costs`
    table: tuple[VenueRow, ...]


def compare_venues(
    sc: Scenario, paths: int, seed: int, targets: Sequence[float] = ()
) -> VenueComparison:
    """Run the default and the timer across venues and on each venue alone; compare."""
    default = sc.report.default_policy
    policies = [default, TIMER]
    specs = builtin_policies(sc)
    if sc.report.unit == "pct_premium":
        scale, unit = premium_usd(sc) / 100.0, "% of premium"
    else:
        scale, unit = 1.0, "USD"
    venues = venue_names(sc)
    if len(venues) < 2:
        raise ScenarioError(f"{sc.name}: --compare-venues needs instruments on two venues")
    rows: list[RunStats] = []
    for label, scen in [("", sc), *((f"@{v}", single_venue(sc, v)) for v in venues)]:
        results, _ = run_backtest(scen, expand(specs, policies), paths, seed)
        inst_venues = [i.venue or i.name for i in scen.instruments]
        for r in results:
            s = stats(r, scale, inst_venues)
            rows.append(replace(s, policy=s.policy + label))
    std = list(targets or sc.report.std_targets)
    comparisons, _ = compare(rows, default, std)
    table = []
    for c in comparisons:
        best: dict[str, Best | None] = {}
        ratio: dict[str, float | None] = {}
        base = c.costs.get(default)
        for p in policies:
            got = [(cost, v) for v in venues if (cost := c.costs.get(f"{p}@{v}")) is not None]
            b = Best(min(got)[1], min(got)[0]) if got else None
            best[p] = b
            ratio[p] = base / b.cost if base is not None and b is not None and b.cost > 0 else None
        table.append(VenueRow(c.std, c.costs, best, ratio))
    return VenueComparison(
        sc.name, unit, paths, seed, default, tuple(venues), tuple(rows), tuple(table)
    )


def render_venues(vc: VenueComparison) -> str:
    """The matched-std table (Markdown) and each frontier's volume per venue."""
    d = vc.default
    names = list(vc.table[0].costs) if vc.table else []
    lines = [
        f"scenario {vc.scenario}: {d} routing across {', '.join(vc.venues)} against each venue "
        f"alone ({vc.paths} paths, seed {vc.seed}; mean cost in {vc.unit} at matched std of "
        "P&L; -: that frontier does not reach the std)",
        "",
        "| std | " + " | ".join(names) + f" | {d} / best single-venue {d} "
        f"| {d} / best single-venue {TIMER} |",
        "|" + "---:|" * (len(names) + 3),
    ]
    for row in vc.table:
        cells = [_num(row.costs[n]) for n in names]
        ratios = []
        for p in (d, TIMER):
            b, r = row.best[p], row.ratio[p]
            ratios.append(f"{r:.3f} ({b.venue})" if r is not None and b is not None else "-")
        lines.append(f"| {row.std:g} | " + " | ".join(cells + ratios) + " |")
    lines += ["", "volume per venue of each run (mean traded notional per path, share)"]
    for run in vc.rows:
        if run.policy not in (d, TIMER) and not run.policy.startswith(f"{d}@"):
            continue
        total = sum(run.venue_volume.values()) or 1.0
        vols = ", ".join(f"{v} {x:.0f} ({x / total:.0%})" for v, x in run.venue_volume.items())
        params = ",".join(f"{k}={v:.4g}" for k, v in run.params.items())
        lines.append(
            f"{run.policy:<16}{params:<32} std {run.std_pnl:7.3f} cost {run.mean_cost:7.4f}  "
            + vols
        )
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return f"{x:.3f}" if x is not None else "-"


def venues_json(vc: VenueComparison) -> dict[str, Any]:
    return {
        "scenario": vc.scenario,
        "unit": vc.unit,
        "paths": vc.paths,
        "seed": vc.seed,
        "default_policy": vc.default,
        "venues": list(vc.venues),
        "results": [r.to_json() for r in vc.rows],
        "matched_std": [
            {
                "std_pnl": row.std,
                "cost": row.costs,
                "best_single_venue": {
                    p: ({"venue": b.venue, "cost": b.cost} if b is not None else None)
                    for p, b in row.best.items()
                },
                "ratio_to_best_single_venue": row.ratio,
            }
            for row in vc.table
        ],
    }
