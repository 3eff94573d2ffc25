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

The core here is pure: no files, no clock; `command.py` reads the files and times the run.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import compare, stats
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
class VariantResult:
    variant: Variant
    unit: str
    steps: int
    ratios: tuple[tuple[float, dict[str, float | None]], ...]  # (std, baseline -> ratio)
    worst: dict[str, Worst | None]  # None: no std reached by both


@dataclass(frozen=True, slots=True)
class FamilyWorst:
    family: str
    baseline: str
    variant: str | None  # None: no variant of the family had an overlapping std
    worst: Worst | None
    variants: int
    compared: int  # variants with an overlapping std


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
    paths and find the default's worst ratio at matched std against each baseline."""
    sc = variant.scenario
    runs = expand(builtin_policies(sc), [default, *baselines])
    results, _ = run_backtest(sc, runs, paths, seed)
    if sc.report.unit == "pct_premium":
        scale, unit = premium_usd(sc) / 100.0, "% of premium"
    else:
        scale, unit = 1.0, "USD"
    rows = [stats(r, scale) for r in results]
    comps, _ = compare(rows, default, [])
    # The targets are the std of the default's frontier points: which run each one is.
    own = {r.std_pnl: k for k, r in enumerate(x for x in rows if x.policy == default)}
    worst: dict[str, Worst | None] = {}
    at: dict[str, tuple[float, float, int]] = {}
    for b in baselines:
        got = [(r, c.std) for c in comps if (r := c.ratios.get(b)) is not None]
        if got:
            ratio, std = max(got)
            at[b] = (ratio, std, own[std])
    ses = _bootstrap_se(results, scale, default, at, bootstrap, seed)
    for b in baselines:
        worst[b] = Worst(at[b][0], at[b][1], ses.get(b)) if b in at else None
    ratios = tuple((c.std, {b: c.ratios.get(b) for b in baselines}) for c in comps)
    return VariantResult(variant, unit, sc.market.steps, ratios, worst)


def _bootstrap_se(
    results: Sequence[RunResult],
    scale: float,
    default: str,
    at: Mapping[str, tuple[float, float, int]],
    reps: int,
    seed: int,
) -> dict[str, float | None]:
    """Bootstrap standard error of the default's ratio to each baseline at its worst point.

    The point is the default's run (sweep value) that gave the worst ratio: in each resample
    the ratio is taken at that run's resampled std, so the target moves with the default's
    own frontier and stays inside it. A resample where the baseline's frontier does not
    reach it gives no ratio; with fewer than half the resamples answering, the error is not
    known (None)."""
    if reps < 2 or not at or not results:
        return {b: None for b in at}
    n = results[0].pnl_usd.size
    rng = np.random.default_rng([seed, 19])
    draws: dict[str, list[float]] = {b: [] for b in at}
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        rows = [stats(_resampled(r, idx), scale) for r in results]
        own = [r.std_pnl for r in rows if r.policy == default]
        targets = {b: own[k] for b, (_, _, k) in at.items()}
        comps, _ = compare(rows, default, list(targets.values()))
        for b, c in zip(targets, comps, strict=True):
            r = c.ratios.get(b)
            if r is not None:
                draws[b].append(r)
    return {
        b: (float(np.std(d, ddof=1)) if len(d) >= max(2, reps // 2) else None)
        for b, d in draws.items()
    }


def family_worst(results: Sequence[VariantResult], baselines: Sequence[str]) -> list[FamilyWorst]:
    """Per family and baseline: the variant with the largest worst ratio."""
    return worst_by_family(
        [(r.variant.family, r.variant.name, r.worst) for r in results], baselines
    )


def worst_by_family(
    variants: Sequence[tuple[str, str, Mapping[str, Worst | None]]], baselines: Sequence[str]
) -> list[FamilyWorst]:
    """`family_worst` of (family, variant name, baseline -> worst) triples, in family order."""
    out: list[FamilyWorst] = []
    for fam in dict.fromkeys(f for f, _, _ in variants):
        mine = [(name, worst) for f, name, worst in variants if f == fam]
        for b in baselines:
            cands = [(w, name) for name, worst in mine if (w := worst.get(b)) is not None]
            if cands:
                w, name = max(cands, key=lambda c: c[0].ratio)
                out.append(FamilyWorst(fam, b, name, w, len(mine), len(cands)))
            else:
                out.append(FamilyWorst(fam, b, None, None, len(mine), 0))
    return out


def worst_json(x: Worst | None) -> dict[str, Any] | None:
    """A worst ratio as the sweep's JSON holds it (std in the report unit)."""
    return None if x is None else {"ratio": x.ratio, "std_pnl": x.std, "se": x.se}


def family_json(r: FamilyWorst) -> dict[str, Any]:
    """One family-and-baseline row as the sweep's JSON holds it."""
    return {
        "family": r.family,
        "baseline": r.baseline,
        "variant": r.variant,
        "worst": worst_json(r.worst),
        "variants": r.variants,
        "compared": r.compared,
    }


def _cell(fw: FamilyWorst) -> str:
    if fw.worst is None:
        return "no overlap"
    se = f" ± {fw.worst.se:.3f}" if fw.worst.se is not None else " ± n/a"
    miss = "" if fw.compared == fw.variants else f" ({fw.compared}/{fw.variants})"
    return f"{fw.worst.ratio:.3f}{se} `{fw.variant}`{miss}"


def render_table(rows: Sequence[FamilyWorst], baselines: Sequence[str]) -> str:
    """Markdown: a row per family, a column per baseline (worst ratio ± SE, its variant)."""
    fams = list(dict.fromkeys(r.family for r in rows))
    cell = {(r.family, r.baseline): r for r in rows}
    lines = [
        "| family | " + " | ".join(baselines) + " |",
        "|---" * (len(baselines) + 1) + "|",
    ]
    for f in fams:
        lines.append(f"| {f} | " + " | ".join(_cell(cell[f, b]) for b in baselines) + " |")
    return "\n".join(lines)


def render_variants(results: Sequence[VariantResult], baselines: Sequence[str]) -> str:
    """One line per variant: the worst ratio against each baseline and where it occurs."""
    head = f"{'family':<16}{'variant':<34}{'steps':>6}" + "".join(f"{b:>13}" for b in baselines)
    lines = [head]
    for r in results:
        cells = "".join(
            f"{w.ratio:>13.3f}" if (w := r.worst.get(b)) is not None else f"{'-':>13}"
            for b in baselines
        )
        lines.append(f"{r.variant.family:<16}{r.variant.name:<34}{r.steps:>6}" + cells)
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
        },
    }
