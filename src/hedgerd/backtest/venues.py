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

The default also runs on a fictitious single venue, `best-of` (`best_of`): per instrument kind
the best of every venue on each parameter. Its cost divided by the best single venue's is a
practical lower bound on what any router over the real venues could reach with this policy
(the `bound` of each row): a router can at best trade every unit at the better venue's terms.

The core here is pure: no files, no clock; `command.py` reads the file and times the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import RunStats, compare, stats
from hedgerd.backtest.runner import run_backtest
from hedgerd.backtest.scenario import (
    InstrumentSpec,
    Scenario,
    ScenarioError,
    initial_options,
    premium_usd,
)

#: The baseline a single venue's default is also measured against (what desks run today).
TIMER = "timer"
#: The fictitious venue with the best of every venue's terms (`best_of`).
BEST_OF = "best-of"


def venue_names(sc: Scenario) -> list[str]:
    """The scenario's venues, in the order their first instrument appears."""
    return list(dict.fromkeys(i.venue or i.name for i in sc.instruments))


def single_venue(sc: Scenario, venue: str) -> Scenario:
    """The scenario with only `venue`'s instruments (its outage kept)."""
    mine = tuple(i for i in sc.instruments if (i.venue or i.name) == venue)
    if not mine:
        raise ScenarioError(f"{sc.name}: no instrument on venue {venue!r}")
    return sc.model_copy(update={"instruments": mine, "name": f"{sc.name}@{venue}"})


def hedge_side(sc: Scenario) -> int:
    """+1 when the initial book's delta is short (the hedge is long), -1 when long; +1 for a
    book without delta at the start (option flow only)."""
    delta_coin = sum(qty * delta for qty, _, delta in initial_options(sc))
    return -1 if delta_coin > 0.0 else 1


def best_of(sc: Scenario) -> Scenario:
    """The scenario on one fictitious venue whose instrument of each kind has the best of
    every venue's instruments of that kind on each parameter: the lowest taker and maker
    fee, half spread, level step, lot and minimum size; the most levels and the largest
    level size and position limit; the carry cheapest for the hedge's side (`hedge_side`:
    the least funding or basis for a long hedge, the most for a short one; a future keeps
    its own expiry with it); posting allowed where any allows it; down only when every one
    is down over the same window. Each parameter may come from a different venue: no real
    venue offers this, so its cost bounds what routing over the real ones can reach."""
    side = hedge_side(sc)
    kinds: dict[str, list[InstrumentSpec]] = {}
    for i in sc.instruments:
        kinds.setdefault(i.kind, []).append(i)
    out = []
    for kind, group in kinds.items():
        # Ranked by the carry charged (`carry_annual`): funding per 8 h and a basis per year
        # do not add, and the field a kind is not charged must not rank it.
        carry = min(group, key=lambda i: side * i.carry_annual)
        windows = {(i.down_from_days, i.down_hours) for i in group}
        down = windows.pop() if len(windows) == 1 else (None, 0.0)
        limits = [i.max_position_coin for i in group]
        out.append(
            InstrumentSpec(
                name=f"BEST-OF-{kind.upper()}",
                venue=BEST_OF,
                kind=kind,
                taker_fee=min(i.taker_fee for i in group),
                maker_fee=min(i.maker_fee for i in group),
                half_spread=min(i.half_spread for i in group),
                depth_levels=max(i.depth_levels for i in group),
                level_size_coin=max(i.level_size_coin for i in group),
                level_step=min(i.level_step for i in group),
                funding_8h=carry.funding_8h,
                basis_annual=carry.basis_annual,
                expiry_days=carry.expiry_days,
                amount_step_coin=min(i.amount_step_coin for i in group),
                min_amount_coin=min(i.min_amount_coin for i in group),
                max_position_coin=None if None in limits else max(x or 0.0 for x in limits),
                maker_allowed=any(i.maker_allowed for i in group),
                down_from_days=down[0],
                down_hours=down[1],
            )
        )
    return sc.model_copy(update={"instruments": tuple(out), "name": f"{sc.name}@{BEST_OF}"})


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
    #: The default on the best-of venue / the best single venue's default: the lower bound.
    bound: float | None = None


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
    runs = [
        ("", sc, policies),
        *((f"@{v}", single_venue(sc, v), policies) for v in venues),
        (f"@{BEST_OF}", best_of(sc), [default]),
    ]
    for label, scen, names in runs:
        results, _ = run_backtest(scen, expand(specs, names), paths, seed)
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
        floor, own = c.costs.get(f"{default}@{BEST_OF}"), best[default]
        bound = floor / own.cost if floor is not None and own is not None and own.cost > 0 else None
        table.append(VenueRow(c.std, c.costs, best, ratio, bound))
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
        f"| {d} / best single-venue {TIMER} | {d}@{BEST_OF} / best single-venue {d} |",
        "|" + "---:|" * (len(names) + 4),
    ]
    for row in vc.table:
        cells = [_num(row.costs[n]) for n in names]
        ratios = []
        for p in (d, TIMER):
            b, r = row.best[p], row.ratio[p]
            ratios.append(f"{r:.3f} ({b.venue})" if r is not None and b is not None else "-")
        ratios.append(_num(row.bound))
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
                "best_of_to_best_single_venue": row.bound,
            }
            for row in vc.table
        ],
    }
