"""Compare candidate shapes of the default policy against the sweep's baselines (issue 19).

    .venv/bin/python scripts/policy_explore.py --paths 500 \
        --family "mixed gamma" --cand 'base={}' --cand 'zakw={"hw_weight": 1.0}'

Each candidate is a `hedgerd` policy config (JSON overrides of the default) swept over the
default's risk aversions; all candidates and the baselines run on the same paths of each
variant. Prints, per variant and candidate, the worst ratio at matched std against each
baseline (as `sweep.evaluate` does for the default), and beside each the worst std
excess at matched cost (`std+x%@cost`, `sweep.evaluate`'s second reading); then the worst ratio
per candidate over all variants. With `--moves` (and `--baselines ''` to skip the baselines),
how far each candidate's sweep points move from the first candidate's: the footprint of a
default change on variants where it should do (nearly) nothing. A tool for shaping the
default, not part of the product.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import RunStats, compare, compare_at_cost, stats
from hedgerd.backtest.runner import RunResult, run_backtest
from hedgerd.backtest.scenario import (
    PolicySpec,
    SweepSpec,
    book_scale_coin,
    load_scenario,
    premium_usd,
    read_scenario_toml,
)
from hedgerd.backtest.sweep import expand_sweep, parse_sweep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=Path("config/sweeps/default.toml"))
    ap.add_argument("--scenario", type=Path, default=None, help="one scenario instead")
    ap.add_argument("--family", action="append", default=[], help="family (repeatable)")
    ap.add_argument("--variant", action="append", default=[], help="variant name substring")
    ap.add_argument("--paths", type=int, default=500)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cand", action="append", default=[], help="NAME=JSON overrides")
    ap.add_argument("--baselines", default="timer,band_centre,band_edge,ww,zakamouline")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ra", default="", help="risk aversions for every gamma sweep (x g0)")
    ap.add_argument("--points", action="store_true", help="print every sweep point")
    ap.add_argument("--split", default="", help="baseline to split the variance against")
    ap.add_argument(
        "--targets", default="", help="also print each ratio at these stds (comma-separated)"
    )
    ap.add_argument(
        "--moves",
        action="store_true",
        help="print how far each candidate's sweep points move from the first's",
    )
    args = ap.parse_args(argv)
    spec = parse_sweep(read_scenario_toml(args.sweep), str(args.sweep))
    base = read_scenario_toml((args.sweep.parent / spec.base).resolve())
    variants = expand_sweep(spec, base, args.family)
    if args.scenario is not None:
        one = load_scenario(args.scenario)
        variants = [SimpleNamespace(family="scenario", name=one.name, scenario=one)]
    if args.variant:
        variants = [v for v in variants if any(s in v.name for s in args.variant)]
    cands = {}
    for c in args.cand or ["base={}"]:
        name, _, js = c.partition("=")
        cands[name] = json.loads(js or "{}")
    baselines = [b for b in args.baselines.split(",") if b]
    seed = args.seed if args.seed is not None else spec.seed
    if args.scenario is not None and args.seed is None:
        seed = variants[0].scenario.seed
    worst_all: dict[str, dict[str, tuple[float, str]]] = {c: {} for c in cands}
    out = []
    for v in variants:
        t0 = time.perf_counter()
        sc = v.scenario
        specs = builtin_policies(sc)
        if args.ra:
            g0 = 1.0 / (book_scale_coin(sc) * sc.market.spot_usd)
            ras = tuple(g0 * float(x) for x in args.ra.split(","))
            for k, sp in list(specs.items()):
                if sp.sweep.param == "risk_aversion_per_usd" and not sp.exact:
                    specs[k] = sp.model_copy(
                        update={"sweep": SweepSpec(param=sp.sweep.param, values=ras)}
                    )
        own = specs["hedgerd"]
        for name, over in cands.items():
            specs[f"c:{name}"] = PolicySpec(
                family=name, config={**own.config, **over}, sweep=own.sweep
            )
        runs = expand(specs, [*baselines, *(f"c:{n}" for n in cands)])
        results, _ = run_backtest(sc, runs, args.paths, seed)
        scale = premium_usd(sc) / 100.0 if sc.report.unit == "pct_premium" else 1.0
        rows = [stats(res, scale) for res in results]
        line = [f"{v.family}/{v.name} ({time.perf_counter() - t0:.0f}s)"]
        if args.split:
            line += _variance_split(results, args.split, scale)
        if args.moves:
            line += _moves(rows, list(cands))
        if args.points:
            for row in rows:
                p = ",".join(f"{k}={x:.4g}" for k, x in row.params.items())
                line.append(
                    f"    {row.policy:<12} {p:<32} std {row.std_pnl:8.4f}"
                    f"  cost {row.mean_cost:7.4f}  trades {row.trades:7.1f}"
                    f"  turnover {row.turnover:9.2f}"
                )
        for name in cands:
            sub = [r for r in rows if r.policy in baselines or r.policy == f"c:{name}"]
            comps, fronts = compare(sub, f"c:{name}", [])
            by_cost = compare_at_cost(fronts, f"c:{name}")
            cells = []
            for b in baselines:
                got = [(r, c.std) for c in comps if (r := c.ratios.get(b)) is not None]
                if not got:
                    cells.append(f"{b[:5]} -")
                    continue
                r, s = max(got)
                more = [(e, c.cost) for c in by_cost if (e := c.excess.get(b)) is not None]
                exc = "" if not more else " std{:+.2%}@{:.3g}".format(*max(more))
                cells.append(f"{b[:5]} {r:.3f}@{s:.3g}{exc}")
                prev = worst_all[name].get(b)
                if prev is None or r > prev[0]:
                    worst_all[name][b] = (r, v.name)
            line.append(f"  {name:<12} " + "  ".join(cells))
            if args.targets:
                at, _ = compare(sub, f"c:{name}", [float(x) for x in args.targets.split(",")])
                for b in baselines:
                    got = [f"{r:.3f}" if (r := c.ratios.get(b)) else "-" for c in at]
                    line.append(f"  {name:<12} {b[:5]} at {args.targets}: " + " / ".join(got))
            out.append(
                {
                    "variant": f"{v.family}/{v.name}",
                    "cand": name,
                    "ratios": [[c.std, c.ratios] for c in comps],
                    "excess": [[c.cost, c.excess] for c in by_cost],
                }
            )
        print("\n".join(line), flush=True)
    print("\nworst over variants:")
    for name in cands:
        cells = "  ".join(f"{b[:5]} {r:.3f} ({vn})" for b, (r, vn) in worst_all[name].items())
        print(f"  {name:<12} {cells}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


def _moves(rows: list[RunStats], cands: list[str]) -> list[str]:
    """Lines of `--moves`: per candidate after the first, the largest relative change over
    the sweep's points (same parameters, same paths) of the std and of the mean cost from the
    first candidate's (absolute where the first's is 0). A ratio against a baseline moves by
    about the cost's change plus the baseline frontier's elasticity (d ln cost / d ln std)
    times the std's: small moves leave the ratios alone except near a std floor, where the
    variant wants reading whole."""
    first = [r for r in rows if r.policy == f"c:{cands[0]}"]
    out = []
    for name in cands[1:]:
        mine = [r for r in rows if r.policy == f"c:{name}"]
        d_std = max(
            abs(m.std_pnl / f.std_pnl - 1.0) if f.std_pnl else abs(m.std_pnl)
            for f, m in zip(first, mine, strict=True)
        )
        d_cost = max(
            abs(m.mean_cost / f.mean_cost - 1.0) if f.mean_cost else abs(m.mean_cost)
            for f, m in zip(first, mine, strict=True)
        )
        out.append(f"  moves {name:<10} std {d_std:.2e}  cost {d_cost:.2e} (of {cands[0]})")
    return out


def _variance_split(results: list[RunResult], baseline: str, scale: float) -> list[str]:
    """Lines of `--split`: each candidate point against the baseline point of the same
    parameters, var(cand) - var(base) = var(D) + 2 cov(base, D), the covariance split into
    cost (-dC) and hedge P&L (report unit squared)."""
    base = {json.dumps(r.run.params, sort_keys=True): r for r in results if r.run.name == baseline}
    out = []
    for r in results:
        b = base.get(json.dumps(r.run.params, sort_keys=True))
        if b is None or not r.run.name.startswith("c:"):
            continue
        pb, pc = b.pnl_usd / scale, r.pnl_usd / scale
        d, dc = pc - pb, -(r.cost_usd - b.cost_usd) / scale
        cov_cost = 2.0 * float(np.cov(pb, dc)[0, 1])
        cov_hedge = 2.0 * float(np.cov(pb, d - dc)[0, 1])
        p = ",".join(f"{k}={x:.4g}" for k, x in r.run.params.items())
        out.append(
            f"    split {r.run.name:<10} {p:<32} var diff {pc.var(ddof=1) - pb.var(ddof=1):+7.3f}"
            f" = var(D) {d.var(ddof=1):6.3f} + 2cov cost {cov_cost:+6.3f} hedge {cov_hedge:+6.3f}"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
