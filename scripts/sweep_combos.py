"""Write `config/sweeps/combos.toml`: cross-family combinations of the default sweep (issue 19).

    .venv/bin/python scripts/sweep_combos.py            # (re)write config/sweeps/combos.toml
    .venv/bin/python scripts/sweep_combos.py --check    # exit 1 if the committed file differs
    .venv/bin/python scripts/sweep_combos.py --seed 23 --out config/sweeps/heldout-23.toml

`--seed` draws a held-back set the default was never tuned on (another seed than SEED, which
combos.toml's is): the same levels and cost cap, other combinations, named `heldout-SEED`, and
without the anchor (a scenario the default was tuned against is not held back).

`config/sweeps/default.toml` varies one factor at a time from a 7-day reference book; a
held-back scenario varies several at once (an earlier one: mixed gamma, jumps, higher costs
with a spread and 5-minute monitoring beat the then-default). This draws, with a fixed seed,
variants that each change 3 to 5 of the factors (the book is always one of them):

    book        short/long calls and puts in/at/out of the money, straddles, strangles,
                spreads, mixed gamma across expiries (default.toml's strangle against a far
                long option)
    process     jumps (default.toml's three), regime shifts (two), Heston, option flow
    costs       taker 1 / 2 / 10 / 20 bp, half spread 0 / 2 / 5 bp
    monitoring  1 / 2 / 5 / 15 / 30 minutes
    horizon     3 / 14 / 30 / 90 days (options expire at the horizon; far legs at 30/7 of it)
    vol         30 / 45 / 80 / 100 % (regime vols scaled with it)

Each factor's levels are dealt out in a shuffled cycle over the variants that change it, so
every level appears about equally often (not left to independent draws). The patches are
the families' own (default.toml) in the same keys.

Cost cap: a variant has at most MAX_STEPS decision steps (4,320, as default.toml's `days`).
The monitoring is drawn first, then a horizon that fits it (1-minute monitoring only on 3
days, 30 days at 10 minutes or coarser, 90 days at 30 minutes); a monitoring too fine for the
base 7 days without a drawn horizon shortens them to 3 (a sixth factor changed when five were
drawn), and a long drawn horizon without a drawn monitoring coarsens the 10-minute base to the
next level that fits. Option flow only goes with horizons up to 7 days and at most 2,016 steps
(its option count, hence its cost, grows with the horizon). Families group the variants by
the kind of book. One fixed variant (ANCHORS) is added to them: the kind of held-back scenario
that beat an earlier default.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "config" / "sweeps" / "combos.toml"
SEED = 19
MAX_STEPS = 4320
BASE_DAYS = 7.0  # default.toml's base horizon (and the base book's expiry)

Book = Callable[[float], list[dict[str, Any]]]


def _opt(kind: str, strike: float, days: float, qty: float) -> dict[str, Any]:
    return {"type": kind, "strike_usd": strike, "expiry_days": days, "qty_coin": qty}


def _far(h: float) -> float:
    """The far leg's expiry: default.toml's 30 days against a 7-day horizon, scaled."""
    return round(h * 30.0 / BASE_DAYS, 1)


def _mixed(far_kind: str, far_qty: float) -> Book:
    return lambda h: [
        _opt("put", 95.0, h, -1.0),
        _opt("call", 105.0, h, -1.0),
        _opt(far_kind, 100.0, _far(h), far_qty),
    ]


# Book classes (a family each): name -> (description, [(variant label, book)]).
BOOKS: dict[str, tuple[str, list[tuple[str, Book]]]] = {
    "short single": (
        "one short call or put, in / at / out of the money",
        [
            ("short call 90", lambda h: [_opt("call", 90.0, h, -1.0)]),
            ("short call 110", lambda h: [_opt("call", 110.0, h, -1.0)]),
            ("short put 100", lambda h: [_opt("put", 100.0, h, -1.0)]),
        ],
    ),
    "long single": (
        "one long call or put",
        [
            ("long call 100", lambda h: [_opt("call", 100.0, h, 1.0)]),
            ("long put 110", lambda h: [_opt("put", 110.0, h, 1.0)]),
            ("long call 90", lambda h: [_opt("call", 90.0, h, 1.0)]),
        ],
    ),
    "straddles": (
        "short straddle, short 95/105 strangle, long straddle",
        [
            (
                "short straddle",
                lambda h: [_opt("call", 100.0, h, -1.0), _opt("put", 100.0, h, -1.0)],
            ),
            (
                "short strangle",
                lambda h: [_opt("put", 95.0, h, -1.0), _opt("call", 105.0, h, -1.0)],
            ),
            (
                "long straddle",
                lambda h: [_opt("call", 100.0, h, 1.0), _opt("put", 100.0, h, 1.0)],
            ),
        ],
    ),
    "mixed gamma": (
        "near short 95/105 strangle against a far long ATM option (default.toml's shapes)",
        [
            ("strangle v 1 far call", _mixed("call", 1.0)),
            ("strangle v 3.5 far call", _mixed("call", 3.5)),
            ("strangle v 6 far put", _mixed("put", 6.0)),
            ("strangle v 2 far call", _mixed("call", 2.0)),
            ("strangle v 3.5 far put", _mixed("put", 3.5)),
        ],
    ),
    "spreads": (
        "same-expiry mixed gamma: call spread, risk reversal, calendar (short near, long far)",
        [
            (
                "short call spread",
                lambda h: [_opt("call", 100.0, h, -1.0), _opt("call", 110.0, h, 1.0)],
            ),
            (
                "risk reversal",
                lambda h: [_opt("put", 95.0, h, -1.0), _opt("call", 105.0, h, 1.0)],
            ),
            (
                "calendar",
                lambda h: [_opt("call", 100.0, h, -1.0), _opt("call", 100.0, _far(h), 1.0)],
            ),
        ],
    ),
}

# The processes, as default.toml's `jumps`, `regime shifts`, `stochastic vol`, `option flow`.
PROCESSES: list[tuple[str, dict[str, Any]]] = [
    (
        "jumps 24/y -1%±4%",
        {"process": "jumps", "jump_intensity_per_year": 24.0, "jump_mean": -0.01, "jump_std": 0.04},
    ),
    (
        "jumps 4/y -5%±10%",
        {"process": "jumps", "jump_intensity_per_year": 4.0, "jump_mean": -0.05, "jump_std": 0.10},
    ),
    (
        "jumps 200/y 0±1.5%",
        {"process": "jumps", "jump_intensity_per_year": 200.0, "jump_mean": 0.0, "jump_std": 0.015},
    ),
    ("regimes 24/y inst", {"process": "regimes", "regime_switch_per_year": 24.0}),
    (
        "regimes 24/y expected",
        {"process": "regimes", "regime_switch_per_year": 24.0, "greeks_vol": "expected"},
    ),
    (
        "heston xi 2 rho -0.7",
        {"process": "heston", "heston_xi": 2.0, "heston_rho": -0.7, "greeks_vol": "expected"},
    ),
    ("flow 4/day 60% short", {"flow": (4.0, 0.6)}),
    ("flow 8/day 30% short", {"flow": (8.0, 0.3)}),
]
REGIME_VOLS = (0.6, 0.35, 0.9)  # default.toml's, at vol 60 %: scaled with the vol level
COSTS = [(0.0001, 0.0), (0.0001, 0.0005), (0.0002, 0.0002), (0.001, 0.0), (0.001, 0.0005)]
COSTS += [(0.002, 0.0), (0.002, 0.0002), (0.0005, 0.0005)]
MONITORING = [1.0, 2.0, 5.0, 15.0, 30.0]
LADDER = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0]  # coarsening steps when a variant is too long
HORIZONS = [3.0, 14.0, 30.0, 90.0]
VOLS = [0.3, 0.45, 0.8, 1.0]
FACTORS = ("process", "costs", "monitoring", "horizon", "vol")
FLOW_MAX_DAYS = 7.0
FLOW_MAX_STEPS = 2016


# Fixed variants besides the drawn ones: the kind of held-back scenario that beat an earlier
# default (mixed gamma across expiries, jumps, higher costs with a spread, 5 minutes).
ANCHORS: dict[str, dict[str, Any]] = {
    "mixed gamma": {
        "name": "strangle v 3.5 far call, jumps 24/y -1%±4%, 10bp+5sp, 5min (anchor)",
        "patch": {
            "market": {"horizon_days": BASE_DAYS, "step_minutes": 5.0, "vol": 0.6}
            | PROCESSES[0][1],
            "options": _mixed("call", 3.5)(BASE_DAYS),
            "instruments.0.taker_fee": 0.001,
            "instruments.0.half_spread": 0.0005,
        },
        "steps": 2016,
    }
}


class _Deck:
    """Levels dealt in shuffled cycles: each appears about equally often."""

    def __init__(self, rng: random.Random, levels: list[Any]) -> None:
        self._rng, self._levels, self._left = rng, levels, list[Any]()

    def deal(self, ok: Callable[[Any], bool] = lambda _: True) -> Any:
        if not any(ok(x) for x in self._left):
            # A new cycle after the levels still owed (kept: a level that did not fit
            # earlier comes first when one fits).
            more = list(self._levels)
            self._rng.shuffle(more)
            self._left += more
        pick = next(x for x in self._left if ok(x))
        self._left.remove(pick)
        return pick


def _bp(x: float) -> str:
    return f"{x * 1e4:g}"


def _timing(decks: dict[str, _Deck], chosen: set[str], is_flow: bool) -> tuple[float, float]:
    """(horizon days, monitoring minutes) within the cost cap.

    The monitoring is drawn first (only levels that fit some allowed horizon), then a horizon
    that fits it; without a drawn horizon, a monitoring too fine for the base 7 days shortens
    them to 3; a long drawn horizon without a drawn monitoring coarsens the 10-minute base to
    the next level that fits."""
    cap = FLOW_MAX_STEPS if is_flow else MAX_STEPS
    days = [d for d in HORIZONS if d <= FLOW_MAX_DAYS] if is_flow else HORIZONS

    def fits(d: float, m: float) -> bool:
        return d * 1440.0 / m <= cap

    step = (
        decks["monitoring"].deal(lambda m: any(fits(d, m) for d in days))
        if "monitoring" in chosen
        else 10.0
    )
    if "horizon" in chosen:
        free = "monitoring" not in chosen
        h = decks["horizon"].deal(lambda d: d in days and (free or fits(d, step)))
    else:
        h = BASE_DAYS if fits(BASE_DAYS, step) else min(HORIZONS)
    while not fits(h, step):
        step = next(x for x in LADDER if x > step)
    return h, step


def generate(seed: int = SEED) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """[(family, description, [{name, patch, steps}])] in family order (ANCHORS only with SEED)."""
    rng = random.Random(seed)
    decks = {
        "process": _Deck(rng, PROCESSES),
        "costs": _Deck(rng, COSTS),
        "monitoring": _Deck(rng, MONITORING),
        "horizon": _Deck(rng, HORIZONS),
        "vol": _Deck(rng, VOLS),
    }
    sizes = _Deck(rng, [3, 4, 5])  # factors changed, the book included
    out = []
    for fam, (desc, books) in BOOKS.items():
        variants: list[dict[str, Any]] = []
        for label, book in books:
            k = sizes.deal()
            chosen = set(rng.sample(FACTORS, k - 1))
            proc = decks["process"].deal() if "process" in chosen else None
            is_flow = proc is not None and "flow" in proc[1]
            h, step = _timing(decks, chosen, is_flow)
            vol = decks["vol"].deal() if "vol" in chosen else 0.6
            fee, spread = decks["costs"].deal() if "costs" in chosen else (0.0005, 0.0)
            market: dict[str, Any] = {"horizon_days": h, "step_minutes": step, "vol": vol}
            patch: dict[str, Any] = {}
            names = [label]
            if proc is not None:
                pname, pp = proc
                names.append(pname)
                if is_flow:
                    rate, bias = pp["flow"]
                    patch["flow"] = {
                        "trades_per_day": rate,
                        "short_bias": bias,
                        "qty_coin_std": 0.5,
                        "moneyness": [0.85, 1.15],
                        "expiry_days": [7.0, 14.0, 30.0],
                        "max_trades": math.ceil(rate * h * 1.5) + 10,
                    }
                else:
                    market.update(pp)
                    if pp["process"] == "regimes":
                        market["regime_vols"] = [round(v * vol / 0.6, 4) for v in REGIME_VOLS]
            if fee != 0.0005 or spread != 0.0:
                names.append(f"{_bp(fee)}bp" + (f"+{_bp(spread)}sp" if spread else ""))
            if step != 10.0:
                names.append(f"{step:g}min")
            if h != BASE_DAYS:
                names.append(f"{h:g}d")
            if vol != 0.6:
                names.append(f"vol {vol * 100:g}%")
            patch["market"] = market
            patch["options"] = book(h)
            patch["instruments.0.taker_fee"] = fee
            patch["instruments.0.half_spread"] = spread
            steps = round(h * 1440.0 / step)
            variants.append({"name": ", ".join(names), "patch": patch, "steps": steps})
        if fam in ANCHORS and seed == SEED:
            variants.append(ANCHORS[fam])
        out.append((fam, desc, variants))
    return out


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def render(
    fams: list[tuple[str, str, list[dict[str, Any]]]], seed: int = SEED, out: Path = OUT
) -> str:
    total = sum(v["steps"] for _, _, vs in fams for v in vs)
    n = sum(len(vs) for _, _, vs in fams)
    held = seed != SEED
    rel = out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
    lines = [
        "# Cross-family combinations (issue 19): each variant changes 3 to 5 factors of the",
        "# 7-day reference book at once. GENERATED by scripts/sweep_combos.py (seed "
        f"{seed}); do not edit,",
        "# re-run the script. See its docstring for the levels and the cost cap",
        f"# ({MAX_STEPS:,} steps a variant: long horizons go with coarse monitoring).",
        f"# {n} variants, {total:,} decision steps in all.",
        "#",
    ]
    if held:
        lines += [
            f"# A held-back draw: seed {seed}, not the default's tuning seed {SEED}, no anchor.",
            f"#   .venv/bin/python scripts/sweep_combos.py --seed {seed} --out {rel}",
        ]
    name = f"heldout-{seed}" if held else "combos"
    lines += [
        f"#   hedgerd backtest --sweep {rel} --paths 1000 --json {name}.json",
        f"name = {_toml(name)}",
        'description = "cross-family combinations of book, process, costs, monitoring, horizon '
        "and vol" + (f" (held back, seed {seed})" if held else "") + '"',
        'base = "../scenarios/reference.toml"',
        "paths = 1000",
        "seed = 7",
        "bootstrap = 200",
        'default_policy = "hedgerd"',
        'baselines = ["timer", "band_centre", "band_edge", "ww", "zakamouline"]',
    ]
    for fam, desc, variants in fams:
        lines += ["", "[[families]]", f"name = {_toml(fam)}", f"description = {_toml(desc)}"]
        lines.append("variants = [")
        for v in variants:
            lines.append(f"    # {v['steps']:,} steps")
            lines.append(f"    {{ name = {_toml(v['name'])}, patch = {_toml(v['patch'])} }},")
        lines.append("]")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seed", type=int, default=SEED, help=f"draw seed [{SEED}: combos.toml]")
    ap.add_argument("--check", action="store_true", help="exit 1 if --out differs")
    args = ap.parse_args(argv)
    text = render(generate(args.seed), args.seed, args.out)
    if args.check:
        same = args.out.exists() and args.out.read_text() == text
        if not same:
            print(f"{args.out} is not what scripts/sweep_combos.py writes", file=sys.stderr)
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
