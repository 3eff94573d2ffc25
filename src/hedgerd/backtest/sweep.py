"""Scenario coverage: a sweep file expands one base scenario into families of variants; each
variant runs the default policy and every baseline over the same paths, and the default's
worst cost ratio at matched std against each baseline is reported per family.

A sweep file (TOML):

    name = "default"
    base = "../scenarios/reference.toml"   # relative to the sweep file
    paths = 200
    seed = 7
    baselines = ["timer", "band_centre", "band_edge", "ww", "zakamouline"]
    patch = { "market.horizon_days" = 7.0 }   # applied to the base for every variant

    [[families]]
    name = "costs"
    patch = { ... }                             # applied to every variant of the family
    axes = { "instruments.0.taker_fee" = [0.0001, 0.002] }   # cartesian product
    variants = [ { name = "spread", patch = { "instruments.0.half_spread" = 0.0002 } } ]

A patch maps keys of the scenario table to values. A key may be dotted, with integer
segments indexing arrays (`instruments.0.taker_fee`); a table value is merged into the table
it replaces, any other value (an array such as `options`) replaces it. Variants are the product
of the family's axes with its variants (each alone if the other is empty). Every variant is
validated by the scenario model itself (`scenario.parse_scenario`), so a typo names its key.

Matched std (`report.compare`): a variant's targets are the std of the default's own frontier
points; at each the default's cost is divided by the baseline's frontier cost interpolated
in log-log by a monotone cubic (`report.cost_at`, never extrapolated). The worst ratio is the
largest over the targets both reach. Its Monte Carlo standard error comes from a bootstrap
over paths: the same resampled paths for every policy (common random numbers kept), the ratio
recomputed at the resampled std of the default's run that gave the worst ratio.
The maximum over targets is biased upward by the noise of each ratio (a few standard errors
at most), i.e. against the default.

Matched cost, the second reading (`report.compare_at_cost`), reported beside the ratio: the
targets are the costs of the default's own frontier points; at each, the default's std is
divided by the baseline's std at that cost (the baseline's frontier curve read along cost, the
same curve as above) less 1. The worst std excess is the largest over the targets inside the
baseline's cost range; none there (the two frontiers' cost ranges do not overlap at any of the
default's points) gives no reading, as a ratio with no std in common does. Its standard error
is bootstrapped like the ratio's, at the resampled cost of the default's run that gave it (kept
inside the default's resampled frontier's cost range). On a
floor (every policy's std within a fraction of a percent over a wide cost range) the cost
ratio at matched std is ill-conditioned and this reading is the well-conditioned one.

The core here is pure: no files, no clock; `command.py` reads the files and times the run.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import compare, compare_at_cost, stats
from hedgerd.backtest.runner import RunResult, run_backtest
from hedgerd.backtest.scenario import (
    Scenario,
    ScenarioError,
    parse_scenario,
    premium_usd,
)
from hedgerd.hedging.config import describe_validation_error

#: The baselines of issue 19: timer, band to centre, band to edge, Whalley–Wilmott, Zakamouline.
SWEEP_BASELINES = ("timer", "band_centre", "band_edge", "ww", "zakamouline")


class SweepError(ScenarioError):
    """A sweep file that cannot be used; names the family, variant and key."""


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantSpec(_S):
    name: str = Field(min_length=1, description="Variant name (unique in its family).")
    patch: dict[str, Any] = Field(default_factory=dict, description="Changes to the base.")


class FamilySpec(_S):
    name: str = Field(min_length=1, description="Family name (a row of the table).")
    description: str = Field("", description="What the family covers.")
    patch: dict[str, Any] = Field(
        default_factory=dict, description="Changes to the base for every variant."
    )
    axes: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict, description="Key -> values; variants are their product."
    )
    variants: tuple[VariantSpec, ...] = Field((), description="Named variants.")

    @model_validator(mode="after")
    def _check(self) -> FamilySpec:
        if not self.axes and not self.variants:
            raise ValueError("a family needs axes or variants")
        if any(len(v) == 0 for v in self.axes.values()):
            raise ValueError("an axis needs at least one value")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique within a family")
        return self


class SweepSpec(_S):
    name: str = Field(description="Sweep name.")
    description: str = Field("", description="What the sweep covers.")
    base: str = Field(description="Base scenario file (relative to the sweep file).")
    patch: dict[str, Any] = Field(
        default_factory=dict, description="Changes to the base for every family."
    )
    paths: int = Field(200, ge=2, description="Paths per variant.")
    seed: int = Field(7, description="Seed (every variant uses it; its policies share paths).")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for standard errors.")
    default_policy: str = Field("hedgerd", description="The policy compared.")
    baselines: tuple[str, ...] = Field(SWEEP_BASELINES, min_length=1, description="Baselines.")
    families: tuple[FamilySpec, ...] = Field(min_length=1, description="Scenario families.")

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        names = [f.name for f in self.families]
        if len(set(names)) != len(names):
            raise ValueError("family names must be unique")
        if self.default_policy in self.baselines:
            raise ValueError("the default policy cannot be its own baseline")
        return self


@dataclass(frozen=True, slots=True)
class Variant:
    family: str
    name: str
    patch: dict[str, Any]  # everything applied to the base (sweep, family, axes, variant)
    scenario: Scenario


@dataclass(frozen=True, slots=True)
class Worst:
    """The default's worst cost ratio against one baseline in one variant."""

    ratio: float
    std: float  # the matched std where it occurs (report unit)
    se: float | None  # bootstrap standard error of the ratio at that std


@dataclass(frozen=True, slots=True)
class StdExcess:
    """The default's worst relative std excess at matched cost against one baseline in one
    variant: default std / baseline std - 1 (a fraction; 0.004 = 0.4 % more std)."""

    excess: float
    cost: float  # the matched cost where it occurs (report unit)
    se: float | None  # bootstrap standard error of the excess at that cost


@dataclass(frozen=True, slots=True)
class VariantResult:
    variant: Variant
    unit: str
    steps: int
    ratios: tuple[tuple[float, dict[str, float | None]], ...]  # (std, baseline -> ratio)
    worst: dict[str, Worst | None]  # None: no std reached by both
    #: The std excess at matched cost per baseline (None: no cost reached by both).
    excess: dict[str, StdExcess | None] = field(default_factory=dict)
    #: (cost, baseline -> std excess) at each of the default's frontier points.
    excesses: tuple[tuple[float, dict[str, float | None]], ...] = ()


@dataclass(frozen=True, slots=True)
class FamilyWorst:
    family: str
    baseline: str
    variant: str | None  # None: no variant of the family had an overlapping std
    worst: Worst | None
    variants: int
    compared: int  # variants with an overlapping std
    #: The variant with the largest std excess at matched cost (None: no variant had an
    #: overlapping cost), that excess, and how many variants had an overlapping cost.
    excess_variant: str | None = None
    excess: StdExcess | None = None
    excess_compared: int = 0


def parse_sweep(raw: dict[str, Any], where: str) -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise SweepError(f"{where}:\n" + describe_validation_error(exc, "")) from None


def apply_patch(raw: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with `patch` applied (see the module doc); `raw` is unchanged."""
    out = copy.deepcopy(dict(raw))
    for key, value in patch.items():
        _set(out, key.split("."), value, key)
    return out


def _set(node: Any, parts: list[str], value: Any, key: str) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        try:
            idx = int(head)
        except ValueError:
            raise SweepError(f"{key}: {head!r} indexes an array, it must be an integer") from None
        if not 0 <= idx < len(node):
            raise SweepError(f"{key}: index {idx} outside the array (length {len(node)})")
        if rest:
            _set(node[idx], rest, value, key)
        else:
            node[idx] = copy.deepcopy(value)
        return
    if not isinstance(node, dict):
        raise SweepError(f"{key}: {head!r} is inside a {type(node).__name__}, not a table")
    if rest:
        _set(node.setdefault(head, {}), rest, value, key)
    elif isinstance(value, dict) and isinstance(node.get(head), dict):
        for k, v in value.items():
            _set(node[head], k.split("."), v, f"{key}.{k}")
    else:
        node[head] = copy.deepcopy(value)


def _label(key: str, value: Any) -> str:
    v = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{key.rsplit('.', 1)[-1]}={v}"


def expand_sweep(
    spec: SweepSpec,
    base: Mapping[str, Any],
    families: Sequence[str] = (),
    variants: Sequence[str] = (),
) -> list[Variant]:
    """Every variant of the sweep (only `families` and, of those, only the variants named
    `variants` if given), validated as scenarios. Every variant runs on the sweep's seed, so a
    subset gives the same rows as the whole sweep (to confirm one cell at more paths)."""
    unknown = set(families) - {f.name for f in spec.families}
    if unknown:
        raise SweepError(f"unknown families: {', '.join(sorted(unknown))}")
    out = _expand(spec, base, families)
    if variants:
        missing = set(variants) - {v.name for v in out}
        if missing:
            raise SweepError(f"unknown variants: {', '.join(sorted(missing))}")
        out = [v for v in out if v.name in variants]
    return out


def _expand(spec: SweepSpec, base: Mapping[str, Any], families: Sequence[str]) -> list[Variant]:
    out: list[Variant] = []
    for fam in spec.families:
        if families and fam.name not in families:
            continue
        keys = list(fam.axes)
        combos = list(itertools.product(*(fam.axes[k] for k in keys))) if keys else [()]
        named: list[VariantSpec | None] = list(fam.variants) or [None]
        for combo, var in itertools.product(combos, named):
            patch: dict[str, Any] = {}
            labels: list[str] = []
            for k, v in zip(keys, combo, strict=True):
                patch[k] = v
                labels.append(_label(k, v))
            if var is not None:
                labels.insert(0, var.name)
            name = ",".join(labels)
            raw = apply_patch(base, spec.patch)
            try:
                raw = apply_patch(raw, fam.patch)
                raw = apply_patch(raw, patch)
                if var is not None:
                    raw = apply_patch(raw, var.patch)
            except SweepError as exc:
                raise SweepError(f"family {fam.name!r}, variant {name!r}: {exc}") from None
            raw["name"] = f"{fam.name}/{name}"
            sc = parse_scenario(raw, f"family {fam.name!r}, variant {name!r}")
            merged = {**spec.patch, **fam.patch, **patch, **(var.patch if var else {})}
            out.append(Variant(fam.name, name, merged, sc))
    return out


def _resampled(r: RunResult, idx: np.ndarray[Any, Any]) -> RunResult:
    return RunResult(
        r.run,
        r.pnl_usd[idx],
        r.cost_usd[idx],
        r.carry_usd[idx],
        r.trades[idx],
        r.turnover_usd[idx],
        r.max_abs_delta_coin[idx],
    )


def evaluate(
    variant: Variant,
    default: str,
    baselines: Sequence[str],
    paths: int,
    seed: int,
    bootstrap: int,
) -> VariantResult:
    """Run the default and the baselines (each over its built-in sweep) on one variant's
    paths and find the default's worst ratio at matched std against each baseline, and beside
    it its worst std excess at matched cost."""
    sc = variant.scenario
    runs = expand(builtin_policies(sc), [default, *baselines])
    results, _ = run_backtest(sc, runs, paths, seed)
    if sc.report.unit == "pct_premium":
        scale, unit = premium_usd(sc) / 100.0, "% of premium"
    else:
        scale, unit = 1.0, "USD"
    rows = [stats(r, scale) for r in results]
    comps, fronts = compare(rows, default, [])
    by_cost = compare_at_cost(fronts, default)
    # The targets are the std (cost) of the default's frontier points: which run each one is.
    mine = [x for x in rows if x.policy == default]
    own = {r.std_pnl: k for k, r in enumerate(mine)}
    own_cost = {r.mean_cost: k for k, r in enumerate(mine)}
    at: dict[str, tuple[float, float, int]] = {}
    at_cost: dict[str, tuple[float, float, int]] = {}
    for b in baselines:
        got = [(r, c.std) for c in comps if (r := c.ratios.get(b)) is not None]
        if got:
            ratio, std = max(got)
            at[b] = (ratio, std, own[std])
        more = [(e, c.cost) for c in by_cost if (e := c.excess.get(b)) is not None]
        if more:
            exc, cost = max(more)
            at_cost[b] = (exc, cost, own_cost[cost])
    ses, exc_ses = _bootstrap_se(results, scale, default, at, at_cost, bootstrap, seed)
    worst = {b: Worst(at[b][0], at[b][1], ses.get(b)) if b in at else None for b in baselines}
    excess = {
        b: StdExcess(at_cost[b][0], at_cost[b][1], exc_ses.get(b)) if b in at_cost else None
        for b in baselines
    }
    ratios = tuple((c.std, {b: c.ratios.get(b) for b in baselines}) for c in comps)
    excesses = tuple((c.cost, {b: c.excess.get(b) for b in baselines}) for c in by_cost)
    return VariantResult(variant, unit, sc.market.steps, ratios, worst, excess, excesses)


def _bootstrap_se(
    results: Sequence[RunResult],
    scale: float,
    default: str,
    at: Mapping[str, tuple[float, float, int]],
    at_cost: Mapping[str, tuple[float, float, int]],
    reps: int,
    seed: int,
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Bootstrap standard errors of the default's ratio to each baseline at its worst point
    (`at`) and of its std excess at matched cost at its worst point (`at_cost`).

    The point is the default's run (sweep value) that gave the worst ratio (excess): in each
    resample the ratio is taken at that run's resampled std (the excess at its resampled
    cost, clamped into the default's resampled frontier's cost range), so the target moves
    with the default's own frontier and stays inside it. A resample where the baseline's
    frontier does not reach it gives no value; with fewer than half the resamples answering,
    the error is not known (None)."""
    if reps < 2 or not (at or at_cost) or not results:
        return {b: None for b in at}, {b: None for b in at_cost}
    n = results[0].pnl_usd.size
    rng = np.random.default_rng([seed, 19])
    draws: dict[str, list[float]] = {b: [] for b in at}
    exc_draws: dict[str, list[float]] = {b: [] for b in at_cost}
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        rows = [stats(_resampled(r, idx), scale) for r in results]
        mine = [r for r in rows if r.policy == default]
        targets = {b: mine[k].std_pnl for b, (_, _, k) in at.items()}
        comps, fronts = compare(rows, default, list(targets.values()))
        # Strict where there are targets; with none `compare` answers at the default's own
        # points, which are not used.
        for b, c in zip(targets, comps, strict=bool(targets)):
            r = c.ratios.get(b)
            if r is not None:
                draws[b].append(r)
        # A run at the tight end of a floor often leaves the resampled frontier (another run
        # beats it on both by a hair), its cost then above the frontier's: the target is kept
        # inside the default's frontier, at its nearest end.
        own = fronts.get(default) or [(0.0, 0.0)]
        lo, hi = own[-1][1], own[0][1]
        costs = {b: min(max(mine[k].mean_cost, lo), hi) for b, (_, _, k) in at_cost.items()}
        if costs:
            by_cost = compare_at_cost(fronts, default, list(costs.values()))
            for b, cc in zip(costs, by_cost, strict=True):
                e = cc.excess.get(b)
                if e is not None:
                    exc_draws[b].append(e)

    def se(d: list[float]) -> float | None:
        return float(np.std(d, ddof=1)) if len(d) >= max(2, reps // 2) else None

    return {b: se(d) for b, d in draws.items()}, {b: se(d) for b, d in exc_draws.items()}


def family_worst(results: Sequence[VariantResult], baselines: Sequence[str]) -> list[FamilyWorst]:
    """Per family and baseline: the variant with the largest worst ratio, and the one with the
    largest std excess at matched cost."""
    return worst_by_family(
        [(r.variant.family, r.variant.name, r.worst, r.excess) for r in results], baselines
    )


def worst_by_family(
    variants: Sequence[tuple[str, str, Mapping[str, Worst | None], Mapping[str, StdExcess | None]]],
    baselines: Sequence[str],
) -> list[FamilyWorst]:
    """`family_worst` of (family, variant name, baseline -> worst ratio, baseline -> worst std
    excess) tuples, in family order (an empty excess mapping: a record without the reading)."""
    out: list[FamilyWorst] = []
    for fam in dict.fromkeys(v[0] for v in variants):
        mine = [(name, worst, exc) for f, name, worst, exc in variants if f == fam]
        for b in baselines:
            cands = [(w, name) for name, worst, _ in mine if (w := worst.get(b)) is not None]
            more = [(e, name) for name, _, exc in mine if (e := exc.get(b)) is not None]
            ev, ew = max(more, key=lambda c: c[0].excess) if more else (None, None)
            if cands:
                w, name = max(cands, key=lambda c: c[0].ratio)
                row = FamilyWorst(fam, b, name, w, len(mine), len(cands))
            else:
                row = FamilyWorst(fam, b, None, None, len(mine), 0)
            out.append(replace(row, excess_variant=ew, excess=ev, excess_compared=len(more)))
    return out


def worst_json(x: Worst | None) -> dict[str, Any] | None:
    """A worst ratio as the sweep's JSON holds it (std in the report unit)."""
    return None if x is None else {"ratio": x.ratio, "std_pnl": x.std, "se": x.se}


def excess_json(x: StdExcess | None) -> dict[str, Any] | None:
    """A worst std excess as the sweep's JSON holds it (a fraction; cost in the report unit)."""
    return None if x is None else {"std_excess": x.excess, "cost": x.cost, "se": x.se}


def excess_from_json(x: dict[str, Any] | None) -> StdExcess | None:
    """`excess_json` read back."""
    return None if x is None else StdExcess(x["std_excess"], x["cost"], x["se"])


def family_json(r: FamilyWorst) -> dict[str, Any]:
    """One family-and-baseline row as the sweep's JSON holds it (the std-excess keys are
    new beside the ratio's, which keep their names)."""
    return {
        "family": r.family,
        "baseline": r.baseline,
        "variant": r.variant,
        "worst": worst_json(r.worst),
        "variants": r.variants,
        "compared": r.compared,
        "excess_variant": r.excess_variant,
        "std_excess": excess_json(r.excess),
        "excess_compared": r.excess_compared,
    }


def _cell(fw: FamilyWorst) -> str:
    w = fw.worst
    if w is None:
        return "no overlap"
    se = f" ± {w.se:.3f}" if w.se is not None else " ± n/a"
    return _where(f"{w.ratio:.3f}{se}", fw.variant, fw.compared, fw.variants)


def _where(value: str, variant: str | None, compared: int, variants: int) -> str:
    """A family cell: the value, its variant, and how many variants answered if not all."""
    miss = "" if compared == variants else f" ({compared}/{variants})"
    return f"{value} `{variant}`{miss}"


def render_table(rows: Sequence[FamilyWorst], baselines: Sequence[str]) -> str:
    """Markdown: a row per family, a column per baseline (worst ratio ± SE, its variant)."""
    return _family_table(rows, baselines, "family", _cell)


def _excess_cell(fw: FamilyWorst) -> str:
    e = fw.excess
    if e is None:
        return "no overlap"
    se = f" ± {100 * e.se:.2f}" if e.se is not None else " ± n/a"
    return _where(
        f"{100 * e.excess:+.2f} %{se}", fw.excess_variant, fw.excess_compared, fw.variants
    )


def render_excess_table(rows: Sequence[FamilyWorst], baselines: Sequence[str]) -> str:
    """Markdown, the second reading beside `render_table`'s: a row per family, a column per
    baseline (the default's worst std excess at matched cost in % ± SE, its variant)."""
    return _family_table(rows, baselines, "family (std excess at matched cost)", _excess_cell)


def _family_table(
    rows: Sequence[FamilyWorst],
    baselines: Sequence[str],
    head: str,
    cell: Callable[[FamilyWorst], str],
) -> str:
    fams = list(dict.fromkeys(r.family for r in rows))
    at = {(r.family, r.baseline): r for r in rows}
    lines = [f"| {head} | " + " | ".join(baselines) + " |", "|---" * (len(baselines) + 1) + "|"]
    for f in fams:
        lines.append(f"| {f} | " + " | ".join(cell(at[f, b]) for b in baselines) + " |")
    return "\n".join(lines)


def render_variants(results: Sequence[VariantResult], baselines: Sequence[str]) -> str:
    """One line per variant: the worst ratio against each baseline; then, as a second block
    of the same rows, the worst std excess at matched cost (%)."""
    head = f"{'family':<16}{'variant':<34}{'steps':>6}" + "".join(f"{b:>13}" for b in baselines)

    def block(cell: Callable[[VariantResult, str], str | None]) -> list[str]:
        rows = [head]
        for r in results:
            cells = "".join(f"{c:>13}" if (c := cell(r, b)) is not None else f"{'-':>13}"
                            for b in baselines)  # fmt: skip
            rows.append(f"{r.variant.family:<16}{r.variant.name:<34}{r.steps:>6}" + cells)
        return rows

    def ratio(r: VariantResult, b: str) -> str | None:
        return None if (w := r.worst.get(b)) is None else f"{w.ratio:.3f}"

    def excess(r: VariantResult, b: str) -> str | None:
        return None if (e := r.excess.get(b)) is None else f"{100 * e.excess:+.2f}"

    lines = block(ratio)
    if any(r.excess for r in results):
        lines += ["", "std excess at matched cost (%: default std / baseline std - 1)"]
        lines += block(excess)
    return "\n".join(lines)


def to_json(
    spec: SweepSpec,
    results: Sequence[VariantResult],
    rows: Sequence[FamilyWorst],
    paths: int,
    seed: int,
) -> dict[str, Any]:
    return {
        "sweep": spec.name,
        "paths": paths,
        "seed": seed,
        "bootstrap": spec.bootstrap,
        "default_policy": spec.default_policy,
        "baselines": list(spec.baselines),
        "families": [family_json(r) for r in rows],
        "variants": [
            {
                "family": r.variant.family,
                "variant": r.variant.name,
                "patch": r.variant.patch,
                "unit": r.unit,
                "steps": r.steps,
                "worst": {b: worst_json(x) for b, x in r.worst.items()},
                "ratios": [
                    {"std_pnl": s, "ratio_default_to": {b: v for b, v in d.items()}}
                    for s, d in r.ratios
                ],
                "std_excess": {b: excess_json(x) for b, x in r.excess.items()},
                "excesses": [{"cost": c, "std_excess_default_to": dict(d)} for c, d in r.excesses],
            }
            for r in results
        ],
        "definitions": {
            "ratio": "default's mean cost / baseline's mean cost at the same std of P&L "
            "(report.compare: frontiers, monotone cubic log-log interpolation, no "
            "extrapolation)",
            "worst": "largest ratio over the std of the default's frontier points that the "
            "baseline's frontier also reaches",
            "se": "bootstrap standard error over paths (same resample for all policies)",
            "std_excess": "default's std of P&L / baseline's std - 1 (a fraction) at the same "
            "mean cost (report.compare_at_cost: the same frontier curves read along cost, no "
            "extrapolation); worst = largest over the costs of the default's frontier points "
            "that the baseline's frontier also reaches; None: no such cost; cost in the "
            "report unit",
        },
    }
