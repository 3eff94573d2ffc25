"""`hedgerd backtest --scenario FILE --policy NAME[,NAME...] [--paths N] [--seed S]
[--json OUT] [--plot OUT.png]`, `hedgerd backtest --scenario FILE --compare-venues [--paths N]
[--seed S] [--json OUT]`, or `hedgerd backtest --sweep FILE [--family NAME[,NAME...]]
[--variant NAME ...] [--paths N] [--seed S] [--json OUT]`.

Runs the named policies (each over its parameter sweep) on the scenario's simulated paths,
prints per-run statistics and the default policy's cost against each baseline at matched std
of P&L, and optionally writes JSON and a frontier plot (matplotlib: the `plot` extra).

With --sweep, expands the sweep file's base scenario into families of variants (`sweep.py`),
runs the default and the sweep's baselines on each, and prints per family the default's worst
ratio at matched std against each baseline (a Markdown table), with the variant and its
bootstrap standard error; beside it, a second table of the default's worst std excess at
matched cost (default std / baseline std - 1, in %), the well-conditioned reading where every
policy's std sits on a floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hedgerd.backtest.families import BASELINES, DEFAULT_POLICY, builtin_policies, expand
from hedgerd.backtest.report import compare, plot, render, stats, to_json
from hedgerd.backtest.runner import run_backtest
from hedgerd.backtest.scenario import (
    ScenarioError,
    load_scenario,
    premium_usd,
    read_scenario_toml,
)
from hedgerd.backtest.sweep import (
    evaluate,
    expand_sweep,
    family_worst,
    parse_sweep,
    render_excess_table,
    render_table,
    render_variants,
)
from hedgerd.backtest.sweep import to_json as sweep_json
from hedgerd.backtest.venues import compare_venues, render_venues, venues_json
from hedgerd.ops.plots import PlotUnavailableError

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_USAGE = 2


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "backtest",
        help="run hedge policies over simulated paths and compare cost at matched risk",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--scenario", type=Path, help="scenario TOML file")
    what.add_argument("--sweep", type=Path, help="sweep TOML file (config/sweeps/)")
    p.add_argument(
        "--family",
        default="",
        help="with --sweep: comma-separated families to run [all]",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="with --sweep: only the variant of this name (repeatable; names may hold commas) "
        "[all]",
    )
    p.add_argument(
        "--policy",
        default=None,
        help="comma-separated policy names (built-in: timer, band_centre, band_edge, ww, "
        "zakamouline, exact, exact_mv, hedgerd; plus the scenario's own) "
        "[default: baselines + hedgerd]",
    )
    p.add_argument("--paths", type=int, default=None, help="number of paths [scenario's]")
    p.add_argument("--seed", type=int, default=None, help="random seed [scenario's]")
    p.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write the frontier plot (PNG)")
    p.add_argument(
        "--compare-venues",
        action="store_true",
        help="with --scenario over several venues: the default and the timer routing across "
        "venues against each on one venue alone, at matched std (backtest/venues.py)",
    )
    p.set_defaults(func=run)


def execute(
    scenario_path: Path, policies: list[str], paths: int | None, seed: int | None
) -> tuple[dict[str, Any], str]:
    """Run a backtest; returns the JSON document and the printed report."""
    sc = load_scenario(scenario_path)
    n = paths if paths is not None else sc.paths
    s = seed if seed is not None else sc.seed
    specs = builtin_policies(sc)
    runs = expand(specs, policies)
    results, _ = run_backtest(sc, runs, n, s)
    if sc.report.unit == "pct_premium":
        prem = premium_usd(sc)
        scale, unit = prem / 100.0, "% of premium"
    else:
        prem, scale, unit = None, 1.0, "USD"
    venues = [i.venue or i.name for i in sc.instruments]
    rows = [stats(r, scale, venues) for r in results]
    default = sc.report.default_policy
    comparisons, fronts = compare(rows, default, list(sc.report.std_targets))
    baselines = [p for p in policies if p != default and specs[p].baseline]
    text = render(sc.name, unit, rows, comparisons, default, baselines)
    doc = to_json(sc.name, unit, prem, n, s, rows, comparisons, default)
    doc["_fronts"] = fronts
    return doc, text


def execute_venues(
    scenario_path: Path, paths: int | None, seed: int | None
) -> tuple[dict[str, Any], str]:
    """`--compare-venues`: cross-venue against single-venue hedging at matched std."""
    sc = load_scenario(scenario_path)
    n = paths if paths is not None else sc.paths
    s = seed if seed is not None else sc.seed
    vc = compare_venues(sc, n, s)
    return venues_json(vc), render_venues(vc)


def execute_sweep(
    sweep_path: Path,
    families: list[str],
    paths: int | None,
    seed: int | None,
    only: list[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run a sweep (only the variants named `only` if given); returns the JSON document and
    the printed report."""
    spec = parse_sweep(read_scenario_toml(sweep_path), str(sweep_path))
    base_path = (sweep_path.parent / spec.base).resolve()
    variants = expand_sweep(spec, read_scenario_toml(base_path), families, only or ())
    n = paths if paths is not None else spec.paths
    s = seed if seed is not None else spec.seed
    results = []
    for v in variants:
        t0 = time.perf_counter()
        r = evaluate(v, spec.default_policy, spec.baselines, n, s, spec.bootstrap)
        results.append(r)
        worst = ", ".join(f"{b} {w.ratio:.3f}" for b, w in r.worst.items() if w is not None)
        exc = ", ".join(f"{b} {e.excess:+.2%}" for b, e in r.excess.items() if e is not None)
        print(
            f"{v.family}/{v.name}: {r.steps} steps, {time.perf_counter() - t0:.1f} s; {worst}; "
            f"std excess at matched cost {exc}",
            file=sys.stderr,
            flush=True,
        )
    rows = family_worst(results, spec.baselines)
    text = "\n".join(
        [
            f"sweep {spec.name}: {spec.default_policy}'s worst cost ratio at matched std per "
            f"family ({n} paths per variant, seed {s}, bootstrap {spec.bootstrap})",
            "",
            render_variants(results, spec.baselines),
            "",
            render_table(rows, spec.baselines),
            "",
            f"the second reading, beside the ratio: {spec.default_policy}'s worst std excess at "
            "matched cost per family (default std / baseline std - 1, % ± SE)",
            "",
            render_excess_table(rows, spec.baselines),
        ]
    )
    return sweep_json(spec, results, rows, n, s), text


def _attempt(
    label: str, work: Callable[[], tuple[dict[str, Any], str]]
) -> tuple[dict[str, Any], str] | None:
    """Run a backtest or a sweep; None (the error printed) if its file or a name is bad."""
    try:
        return work()
    except ScenarioError as exc:
        print(f"{label} error:\n{exc}", file=sys.stderr)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
    return None


def _write_json(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.sweep is not None:
        # The sweep file names its policies: a --policy here would be silently ignored.
        for flag, value in (
            ("--plot", args.plot),
            ("--policy", args.policy),
            ("--compare-venues", True if args.compare_venues else None),
        ):
            if value is not None:
                print(f"error: {flag} is for --scenario", file=sys.stderr)
                return EXIT_USAGE
        fams = _names(str(args.family))
        got = _attempt(
            "sweep",
            lambda: execute_sweep(args.sweep, fams, args.paths, args.seed, args.variant),
        )
    elif args.compare_venues:
        if args.family or args.variant or args.policy is not None or args.plot is not None:
            print(
                "error: --compare-venues runs its own policies; no "
                "--family/--variant/--policy/--plot",
                file=sys.stderr,
            )
            return EXIT_USAGE
        got = _attempt("scenario", lambda: execute_venues(args.scenario, args.paths, args.seed))
    else:
        if args.family or args.variant:
            print("error: --family and --variant are for --sweep", file=sys.stderr)
            return EXIT_USAGE
        names = _names(args.policy or ",".join((*BASELINES, DEFAULT_POLICY)))
        got = _attempt("scenario", lambda: execute(args.scenario, names, args.paths, args.seed))
    if got is None:
        return EXIT_USAGE
    doc, text = got
    if args.compare_venues:
        print(text)
        print(f"\n{doc['paths']} paths, seed {doc['seed']}, {time.perf_counter() - t0:.1f} s")
        _write_json(args.json, doc)
        return EXIT_OK
    if args.sweep is not None:
        doc["runtime_s"] = elapsed = time.perf_counter() - t0
        print(text)
        print(f"\n{len(doc['variants'])} variants, {elapsed:.0f} s")
        _write_json(args.json, doc)
        return EXIT_OK
    fronts = doc.pop("_fronts")
    print(text)
    print(f"\n{doc['paths']} paths, seed {doc['seed']}, {time.perf_counter() - t0:.1f} s")
    _write_json(args.json, doc)
    if args.plot is not None:
        try:
            rows = [_row(r) for r in doc["results"]]
            plot(args.plot, doc["unit"], doc["scenario"], fronts, rows)
        except PlotUnavailableError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
    return EXIT_OK


def _row(d: dict[str, Any]) -> Any:
    from hedgerd.backtest.report import RunStats

    return RunStats(
        policy=d["policy"],
        family=d["family"],
        params=d["params"],
        baseline=False,
        mean_cost=d["mean_cost"],
        std_pnl=d["std_pnl"],
        cvar95=d["cvar95"],
        mean_pnl=d["mean_pnl"],
        carry=d["carry"],
        trades=d["trades"],
        turnover=d["turnover"],
        max_abs_delta=d["max_abs_delta"],
    )


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (until cli.py wires the subcommand)."""
    parser = argparse.ArgumentParser(prog="hedgerd")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
