"""The backtest harness: scenarios load (errors name the key), the command writes the JSON
the issue specifies, accounting is consistent, and hedgerd beats the baselines on a short
version of the reference scenario at matched risk."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hedgerd.backtest import command
from hedgerd.backtest.families import builtin_policies, expand
from hedgerd.backtest.report import compare, cost_at, frontier, stats
from hedgerd.backtest.runner import PolicyRun, run_backtest
from hedgerd.backtest.scenario import (
    PolicySpec,
    Scenario,
    ScenarioError,
    SweepSpec,
    load_scenario,
    parse_scenario,
    premium_usd,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "config" / "scenarios"


@pytest.mark.parametrize(
    "name",
    ["reference", "two-instruments", "jumps", "regime-shift", "option-flow"],
)
def test_scenarios_load(name: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    assert sc.instruments and sc.market.steps > 0
    specs = builtin_policies(sc)
    assert {"timer", "band_centre", "band_edge", "ww", "hedgerd"} <= set(specs)


def test_scenario_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[market]\nvol = -1\n[[instruments]]\nname = "S"\ntaker_fe = 1\n')
    with pytest.raises(ScenarioError) as e:
        load_scenario(bad)
    msg = str(e.value)
    assert "market.vol = -1" in msg
    assert "instruments.0.taker_fe: unknown key" in msg
    bad.write_text(
        'name = "x"\n[[instruments]]\nname = "S"\n[[options]]\ntype = "call"\n'
        "strike_usd = 1\nexpiry_days = 1\nqty_coin = 1\n"
        '[policies.p]\nfamily = "f"\nconfig = {kind = "band", halfwidth_coin = -2}\n'
        'sweep = {param = "halfwidth_coin", values = [1.0]}\n'
    )
    with pytest.raises(ScenarioError) as e:
        load_scenario(bad)
    assert "policies.p.config.halfwidth_coin = -2" in str(e.value)


def _short_reference(days: float = 5.0) -> Scenario:
    sc = load_scenario(SCENARIOS / "reference.toml")
    m = sc.market.model_copy(update={"horizon_days": days})
    opts = tuple(o.model_copy(update={"expiry_days": days}) for o in sc.options)
    return sc.model_copy(update={"market": m, "options": opts})


def test_accounting_mean_cost_matches_mean_pnl() -> None:
    """With a fairly priced book and no drift, mean cost = -mean P&L up to sampling error."""
    sc = _short_reference()
    runs = expand(builtin_policies(sc), ["timer"])[:1] + expand(builtin_policies(sc), ["ww"])[:1]
    results, opt = run_backtest(sc, runs, paths=400, seed=5)
    for r in results:
        se = r.pnl_usd.std(ddof=1) / np.sqrt(r.pnl_usd.size)
        assert abs(-r.pnl_usd.mean() - r.cost_usd.mean()) < 4 * se
        assert r.cost_usd.min() > 0 and r.trades.min() > 0
    assert abs(opt.mean()) < 0.2 * premium_usd(sc)  # premium received - payoff, before hedging


def test_maker_accounting_counts_adverse_selection() -> None:
    sc = load_scenario(SCENARIOS / "two-instruments.toml")
    m = sc.market.model_copy(update={"horizon_days": 3.0})
    opts = tuple(o.model_copy(update={"expiry_days": 3.0}) for o in sc.options)
    sc = sc.model_copy(update={"market": m, "options": opts})
    runs = expand(builtin_policies(sc), ["hedgerd"])[3:4]
    (r,), _ = run_backtest(sc, runs, paths=400, seed=2)
    se = r.pnl_usd.std(ddof=1) / np.sqrt(r.pnl_usd.size)
    assert abs(-r.pnl_usd.mean() - r.cost_usd.mean()) < 4 * se


def test_frontier_and_interpolation() -> None:
    f = frontier([(1.0, 5.0), (2.0, 3.0), (2.5, 3.5), (4.0, 1.0)])
    assert f == [(1.0, 5.0), (2.0, 3.0), (4.0, 1.0)]
    assert cost_at(f, 2.0) == pytest.approx(3.0)
    assert cost_at(f, 0.5) is None and cost_at(f, 5.0) is None
    # Two points: the chord in log-log.
    two = [(1.0, 5.0), (2.0, 3.0)]
    assert cost_at(two, 1.5) == pytest.approx(5.0 * 0.6 ** (np.log(1.5) / np.log(2)))
    # A power law is a straight line in log-log: the monotone cubic gives it exactly.
    law = [(s, 7.0 * s**-2.5) for s in (1.0, 1.5, 2.25, 4.0, 6.0)]
    for s in (1.2, 2.0, 3.0, 5.5):
        assert cost_at(law, s) == pytest.approx(7.0 * s**-2.5, rel=1e-12)
    # Non-positive costs (maker rebates): linear in std and cost between the two points.
    reb = [(1.0, 2.0), (2.0, 0.5), (3.0, -0.5)]
    assert cost_at(reb, 2.5) == pytest.approx(0.0)


def test_interpolation_returns_every_frontier_point_itself() -> None:
    """At a point's own std (the sweep's targets are the default's own points, its end points
    among them) the cost is the point's, finite: no last-bit step outside the cubic's range."""
    rng = np.random.default_rng(19)
    for _ in range(300):
        stds = np.sort(rng.uniform(0.1, 50.0, 6))
        costs = np.sort(rng.uniform(0.01, 5.0, 6))[::-1]
        f = frontier(list(zip(stds.tolist(), costs.tolist(), strict=True)))
        assert [cost_at(f, s) for s, _ in f] == pytest.approx([c for _, c in f], rel=1e-12)


def test_interpolation_follows_a_frontier_bent_toward_its_floor() -> None:
    """Near a risk floor the frontier is convex in log-log (cost ~ 1 / (std - floor)): the
    chord between sparse points overstated the cost between them (about 1 % on the regime
    scenario); the monotone cubic goes through every point, stays decreasing and is closer."""
    floor = 22.0

    def true_cost(s: float) -> float:
        return 1.0 / (s - floor)

    stds = [22.3, 22.6, 23.2, 24.4, 26.8, 31.6]
    f = frontier([(s, true_cost(s)) for s in stds])
    assert [cost_at(f, s) for s in stds] == pytest.approx([true_cost(s) for s in stds])
    grid = np.linspace(stds[0], stds[-1], 200)
    got = np.array([cost_at(f, float(s)) for s in grid])
    assert np.all(np.diff(got) < 0)  # never overshoots a neighbour
    for a, b in itertools.pairwise(stds):
        mid = float(np.sqrt(a * b))  # half-way in log(std)
        chord = float(np.sqrt(true_cost(a) * true_cost(b)))  # half-way in log(cost)
        got_mid = cost_at(f, mid)
        assert got_mid is not None
        over = np.log(chord / true_cost(mid))
        assert over > 0 and abs(np.log(got_mid / true_cost(mid))) < over


def test_hedgerd_beats_timer_and_ww_at_matched_risk_short_reference() -> None:
    sc = _short_reference()
    specs = builtin_policies(sc)
    g0 = 1.0 / 100.0
    specs["ww"] = PolicySpec(
        family="ww",
        config={"kind": "whalley_wilmott"},
        sweep=SweepSpec(
            param="risk_aversion_per_usd", values=tuple(g0 * x for x in (5, 20, 80, 320))
        ),
        baseline=True,
    )
    specs["hedgerd"] = PolicySpec(
        family="hedgerd",
        config={"kind": "hedgerd"},
        sweep=SweepSpec(
            param="risk_aversion_per_usd", values=tuple(g0 * x for x in (5, 20, 80, 320))
        ),
    )
    specs["timer"] = PolicySpec(
        family="timer",
        config={"kind": "timer"},
        sweep=SweepSpec(param="interval_s", values=(600, 1200, 2400, 4800, 9600, 19200)),
        baseline=True,
    )
    runs = expand(specs, ["timer", "ww", "hedgerd"])
    results, _ = run_backtest(sc, runs, paths=300, seed=3)
    rows = [stats(r, premium_usd(sc) / 100) for r in results]
    comps, _ = compare(rows, "hedgerd", [])
    timer = [r for c in comps if (r := c.ratios.get("timer")) is not None]
    ww = [r for c in comps if (r := c.ratios.get("ww")) is not None]
    assert timer and len(ww) >= 3
    assert max(timer) < 0.75
    # The default (HedgerdPolicy()) costs less than Whalley–Wilmott at every matched std.
    assert max(ww) < 1.0, ww


def test_command_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = _short_reference(2.0)
    path = tmp_path / "s.toml"
    # Re-serialise the short scenario as TOML by hand (only the fields we changed).
    text = (SCENARIOS / "reference.toml").read_text()
    text = text.replace("horizon_days = 30.0", "horizon_days = 2.0").replace(
        "expiry_days = 30.0", "expiry_days = 2.0"
    )
    path.write_text(text)
    assert sc.market.horizon_days == 2.0
    out = tmp_path / "r.json"
    parser = __import__("argparse").ArgumentParser()
    sub = parser.add_subparsers()
    command.add_parser(sub)
    args = parser.parse_args(
        [
            "backtest",
            "--scenario",
            str(path),
            "--policy",
            "timer,band_edge,hedgerd",
            "--paths",
            "40",
            "--seed",
            "1",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "frontier.png"),
        ]
    )
    assert args.func(args) == 0
    # The frontier is drawn through the shared matplotlib set-up (hedgerd.ops.plots).
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(out.read_text())
    assert doc["scenario"] == "reference" and doc["unit"] == "% of premium"
    row = doc["results"][0]
    for key in (
        "policy",
        "params",
        "mean_cost",
        "std_pnl",
        "cvar95",
        "trades",
        "turnover",
        "max_abs_delta",
    ):
        assert key in row
    assert {r["policy"] for r in doc["results"]} == {"timer", "band_edge", "hedgerd"}
    assert "method" in doc["matched_risk"]
    printed = capsys.readouterr().out
    assert "matched risk" in printed and "hedgerd vs timer" in printed
    bad = parser.parse_args(["backtest", "--scenario", str(path), "--policy", "nope"])
    assert bad.func(bad) == 2


def test_maker_and_routing_halve_the_timer_cost_short_two_instruments() -> None:
    sc = load_scenario(SCENARIOS / "two-instruments.toml")
    m = sc.market.model_copy(update={"horizon_days": 4.0})
    opts = tuple(o.model_copy(update={"expiry_days": 4.0}) for o in sc.options)
    sc = sc.model_copy(update={"market": m, "options": opts})
    specs = builtin_policies(sc)
    g0 = 1.0 / (20 * 100.0)
    specs["hedgerd"] = PolicySpec(
        family="hedgerd",
        config={"kind": "hedgerd", "maker": {"enabled": True}},
        sweep=SweepSpec(param="risk_aversion_per_usd", values=tuple(g0 * x for x in (0.1, 1, 10))),
    )
    specs["timer"] = PolicySpec(
        family="timer",
        config={"kind": "timer"},
        sweep=SweepSpec(param="interval_s", values=(600, 1800, 5400, 16200, 48600)),
        baseline=True,
    )
    results, _ = run_backtest(sc, expand(specs, ["timer", "hedgerd"]), paths=200, seed=4)
    rows = [stats(r, premium_usd(sc) / 100) for r in results]
    timer_front = frontier([(r.std_pnl, r.mean_cost) for r in rows if r.policy == "timer"])
    ours = [r for r in rows if r.policy == "hedgerd"]
    compared = [(r, c) for r in ours if (c := cost_at(timer_front, r.std_pnl)) is not None]
    assert compared, (timer_front, [(r.std_pnl, r.mean_cost) for r in ours])
    assert all(r.mean_cost < 0.5 * c for r, c in compared)


def test_the_close_at_the_end_takes_the_whole_hedge_past_the_listed_depth() -> None:
    """A hedge larger than the listed book is closed in full at the end, each further book of
    the same depth walked again (it used to stop at the listed depth and mark the rest at mid
    for free: a hedge on one thin book closed cheaper than one over two deep books)."""
    fee, half, step = 0.0005, 0.0001, 0.0001
    sc = parse_scenario(
        {
            "name": "thin",
            "market": {"vol": 0.01, "horizon_days": 1.0, "step_minutes": 60.0},
            # Deep in the money: the hedge is +20 coin, bought 2 coin (the depth) a step.
            "options": [{"type": "call", "strike_usd": 50.0, "expiry_days": 1.0, "qty_coin": -20}],
            "instruments": [
                {
                    "name": "PERP",
                    "kind": "perpetual",
                    "taker_fee": fee,
                    "half_spread": half,
                    "depth_levels": 2,
                    "level_size_coin": 1.0,
                    "level_step": step,
                }
            ],
            "report": {"unit": "usd"},
        },
        "thin",
    )
    runs = expand(builtin_policies(sc), ["timer"])[:1]
    (r,), _ = run_backtest(sc, runs, paths=20, seed=1)
    # 20 coin bought and 20 sold near 100 USD: each coin pays the fee and, on average over
    # each 2-coin book, the half spread plus half a level step.
    per_coin = (fee + half + 0.5 * step) * 100.0
    assert r.turnover_usd == pytest.approx(np.full(20, 4000.0), rel=0.01)
    assert r.cost_usd == pytest.approx(np.full(20, 40 * per_coin), rel=0.01)


def _with_flow(runs: list[PolicyRun], weight: float) -> list[PolicyRun]:
    return [
        replace(
            r, name=f"{r.name}-flow", config=r.config.model_copy(update={"flow_weight": weight})
        )
        for r in runs
    ]


def test_the_flow_term_moves_only_books_with_option_flow() -> None:
    """`flow_weight` widens the band from the arrivals seen so far (option flow), and
    without option flow the run is the plain one bit for bit."""
    flow = load_scenario(SCENARIOS / "option-flow.toml")
    m = flow.market.model_copy(update={"horizon_days": 3.0})
    flow = flow.model_copy(update={"market": m})
    for sc, moves in ((flow, True), (_short_reference(3.0), False)):
        plain = _with_flow(expand(builtin_policies(sc), ["hedgerd"])[2:3], 0.0)
        (a, b), _ = run_backtest(sc, plain + _with_flow(plain, 1.0), paths=60, seed=3)
        if moves:
            assert b.trades.mean() < a.trades.mean()  # a wider band: fewer trades
        else:
            assert np.array_equal(a.pnl_usd, b.pnl_usd) and np.array_equal(a.trades, b.trades)


def _with_vov(runs: list[PolicyRun], ref: float) -> list[PolicyRun]:
    over = {"vov_ref": ref, "vov_scope": "all", "vov_horizon_s": 2_592_000.0}
    return [
        replace(r, name=f"{r.name}-vov{ref}", config=r.config.model_copy(update=over)) for r in runs
    ]


def test_the_vol_of_vol_weight_moves_only_books_whose_marks_move() -> None:
    """`vov_ref` fades the constant-vol refinements once the marks have moved (regime
    shifts), and under a constant vol the run is the plain one bit for bit."""
    regimes = load_scenario(SCENARIOS / "regime-shift.toml")
    m = regimes.market.model_copy(update={"horizon_days": 3.0, "regime_switch_per_year": 200.0})
    regimes = regimes.model_copy(update={"market": m})
    for sc, moves in ((regimes, True), (_short_reference(3.0), False)):
        runs = expand(builtin_policies(sc), ["hedgerd"])[9:10]  # a high risk aversion (88 g0)
        (a, b), _ = run_backtest(sc, _with_vov(runs, 0.0) + _with_vov(runs, 0.3), paths=40, seed=3)
        if moves:
            assert not np.array_equal(a.pnl_usd, b.pnl_usd)
        else:
            assert np.array_equal(a.pnl_usd, b.pnl_usd) and np.array_equal(a.trades, b.trades)
            assert np.array_equal(a.cost_usd, b.cost_usd)


def test_the_flow_fade_moves_only_books_with_option_flow() -> None:
    """`flow_fade_ref` fades the flow term once option trades arrive, and without option
    flow the run is the one without the fade bit for bit."""
    flow = load_scenario(SCENARIOS / "option-flow.toml")
    m = flow.market.model_copy(update={"horizon_days": 3.0})
    flow = flow.model_copy(update={"market": m})
    off = {"flow_fade_ref": 0.0}
    over = {"flow_fade_ref": 3.0}
    for sc, moves in ((flow, True), (_short_reference(3.0), False)):
        runs = expand(builtin_policies(sc), ["hedgerd"])[9:10]  # a high risk aversion (88 g0)
        runs = [replace(r, config=r.config.model_copy(update=off)) for r in runs]
        faded = [
            replace(r, name=f"{r.name}-ff", config=r.config.model_copy(update=over)) for r in runs
        ]
        (a, b), _ = run_backtest(sc, runs + faded, paths=40, seed=3)
        if moves:
            assert not np.array_equal(a.pnl_usd, b.pnl_usd)
        else:
            assert np.array_equal(a.pnl_usd, b.pnl_usd) and np.array_equal(a.trades, b.trades)
            assert np.array_equal(a.cost_usd, b.cost_usd)
