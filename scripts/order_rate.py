#!/usr/bin/env python3
"""Order-rate drill: how many orders a busy desk sends, to size the order-rate budgets
(`risk.order_rate`). `hedgerd paper` (the daemon against the in-process simulator, both
accounts: the market maker's Deribit account and its OKX twin, options and client option
flow on both) with maker execution on for every policy (post-only orders inside the band,
re-priced every 2 s while the touch moves away, then the taker fallback) and the order-rate
budgets lifted, so the run sends what it wants; then its orders per simulated minute, read
from its journal and counted as the budgets count them (`kill_switches.orders_sent_since`:
every order that may have reached the wire; the intents closed unsent are not).

Prints (and writes with `--json OUT`): orders sent over the simulated minutes, the mean per
minute, the busiest sliding 60 s, 3600 s and 86,400 s (the budgets' windows; the hour and day
only once the run is that long), per account and per style, the trading state at the end
(each account's with the reasons behind it when it is not ACTIVE).

    .venv/bin/python scripts/order_rate.py --duration 300 --speed 20

`--no-maker` runs the paper config as shipped (taker hedges only); `--budget N` keeps an
order budget of N a minute (hour and day scaled as the defaults are) to see whether it trips.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hedgerd.config import HedgerdConfig
from hedgerd.execution.journal import JournalStore
from hedgerd.ops.logging import configure_logging
from hedgerd.paper import run_paper, state_reasons
from hedgerd.paper_config import BUILTIN_PAPER_CONFIG
from hedgerd.risk.kill_switches import DAY_MS, HOUR_MS, MINUTE_MS, orders_sent_since
from hedgerd.risk.limits import OrderRateSettings
from hedgerd.risk.trips import SlidingWindow

#: Budgets no run of this drill reaches (per minute, hour, day): the rate it wants.
LIFTED = (1_000_000, 10_000_000, 100_000_000)


def drill_config(workdir: Path, *, maker: bool, budget: int | None) -> HedgerdConfig:
    """The paper config (built in) with its journal and socket in `workdir`, maker execution
    on every policy when `maker`, and an order budget of `budget` a minute (the hour's and
    the day's in the defaults' proportion) or lifted."""
    values = copy.deepcopy(BUILTIN_PAPER_CONFIG)
    values["log"] = {"level": "error", "format": "json"}
    values["journal"] = {"path": str(workdir / "journal.sqlite")}
    values["control"] = {"socket_path": str(workdir / "ctl.sock")}
    values["metrics"] = {"enabled": False, "port": 0}
    values["daemon"].update(status_line=False)
    if maker:
        for policy in values["hedging"]["policies"].values():
            policy["maker"] = {"enabled": True}
    if budget is None:
        minute, hour, day = LIFTED
    else:
        d = OrderRateSettings()
        per = d.max_orders_per_minute
        minute, hour, day = (
            budget,
            budget * d.max_orders_per_hour // per,
            budget * d.max_orders_per_day // per,
        )
    values.setdefault("risk", {})["order_rate"] = {
        "max_orders_per_minute": minute,
        "max_orders_per_hour": hour,
        "max_orders_per_day": day,
    }
    return HedgerdConfig(**values)


def busiest(times_ms: Sequence[int], window_ms: int) -> int:
    """The most of `times_ms` (sorted) in any `window_ms`, judged as the budgets judge it
    (`SlidingWindow`: at each order, those in (t - window_ms, t])."""
    window, best = SlidingWindow(window_ms), 0
    for t in times_ms:
        window.add(t, 1)
        best = max(best, window.total(t))
    return best


def rate_figures(journal: Path, simulated_s: float) -> dict[str, Any]:
    """The orders sent over a run of `simulated_s` whose journal is at `journal`."""
    store = JournalStore(journal, readonly=True)
    try:
        orders = orders_sent_since(store, 0)
    finally:
        store.close()
    times = [o.created_ms for o in orders]
    span_ms = 1000.0 * simulated_s
    minutes = span_ms / MINUTE_MS
    return {
        "orders": len(orders),
        "simulated_minutes": round(minutes, 2),
        "mean_per_minute": round(len(orders) / minutes, 2) if minutes > 0 else None,
        "busiest_minute": busiest(times, MINUTE_MS),
        "busiest_hour": busiest(times, HOUR_MS) if span_ms >= HOUR_MS else None,
        "busiest_day": busiest(times, DAY_MS) if span_ms >= DAY_MS else None,
        "by_account": dict(Counter(o.venue for o in orders)),
        "by_style": dict(Counter(o.style for o in orders)),
    }


async def run(a: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hgd-rate-", dir="/tmp"))
    config = drill_config(work, maker=a.maker, budget=a.budget)
    summary = await run_paper(
        config, duration_s=a.duration, speed=a.speed, seed=a.seed, start_ms=a.start_ms
    )
    return {
        "command": " ".join(["scripts/order_rate.py", *sys.argv[1:]]),
        "maker": a.maker,
        "budget_per_minute": a.budget,
        "speed": a.speed,
        "seed": a.seed,
        "wall_s": summary["wall_s"],
        **rate_figures(work / "journal.sqlite", summary["simulated_s"]),
        "hedges": summary["hedges"],
        "state": summary["state"],
        "account_states": {n: v["state"] for n, v in summary["venues"].items()},
        # Why an account is not ACTIVE: its reasons' code and detail (`paper.state_reasons`).
        "account_reasons": {
            n: state_reasons(v.get("reasons") or ()) for n, v in summary["venues"].items()
        },
        "errors": len(summary["errors"]),
    }


def render(r: dict[str, Any]) -> str:
    lines = [
        f"order rate: {r['orders']} orders in {r['simulated_minutes']} simulated minutes "
        f"({r['wall_s']} s wall, speed {r['speed']:g}, seed {r['seed']}, maker "
        f"{'on' if r['maker'] else 'off'}, budget "
        f"{r['budget_per_minute'] or 'lifted'}): mean {r['mean_per_minute']} a minute, "
        f"busiest 60 s {r['busiest_minute']}"
        + (f", busiest hour {r['busiest_hour']}" if r["busiest_hour"] is not None else "")
        + (f", busiest day {r['busiest_day']}" if r["busiest_day"] is not None else ""),
        f"  by account {r['by_account']}, by style {r['by_style']}",
        f"  {r['hedges']} hedges; trading state at the end {r['state']}, accounts "
        + ", ".join(
            f"{n} {state}{r['account_reasons'].get(n, '')}"
            for n, state in r["account_states"].items()
        )
        + f"; {r['errors']} errors",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=300.0, help="wall seconds of the run")
    p.add_argument("--speed", type=float, default=20.0, help="simulated s per wall s")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument(
        "--start-ms", default="now", help="simulated start (UTC ms; a fixed one repeats a run)"
    )
    p.add_argument("--no-maker", dest="maker", action="store_false", help="taker hedges only")
    p.add_argument(
        "--budget", type=int, default=None, help="keep this order budget a minute (default: lifted)"
    )
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = p.parse_args(argv)
    if a.start_ms != "now":
        a.start_ms = int(a.start_ms)
    configure_logging("error", "json")
    r = asyncio.run(run(a))
    print(render(r), flush=True)
    if a.json is not None:
        a.json.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
