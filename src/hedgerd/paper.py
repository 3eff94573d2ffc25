"""`hedgerd paper`: the whole daemon against the built-in exchange simulator.

The simulator starts in-process (the demo scenario: a market maker `mm` with a short-gamma BTC
and ETH options book across expiries, and client option flow against it), at `--speed`
simulated seconds per wall second, from the current time (or `--start-ms`). The daemon then
runs exactly as `hedgerd run` would, through the real ccxt client and the Deribit WebSocket
session, with its control socket up (it prints the `hedgerctl` line that reaches it;
`hedgerctl status` from the same directory finds it too).

At the end (after `--duration` wall seconds, or Ctrl-C) it prints a summary and, with
`--summary-json PATH`, writes it as JSON: `hedges`, `hedge_cost_usd`, `time_in_band` and
`max_abs_delta` (per underlying, coin), `errors`, and `pnl_usd` per underlying split into
options, hedges, fees and funding. With `--plot OUT.png` it also draws, per underlying, every
evaluation's net delta against its band and target over time with the hedge fills marked, and
the cumulative hedge cost (the summary's `hedge_cost_usd`: fees + distance from the mid).
`--start-ms` pins the simulated start (UTC epoch ms) instead of now, for a run that repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from hedgerd.config import ConfigError, HedgerdConfig, VenueSettings
from hedgerd.control.locate import hedgerctl_line
from hedgerd.control.server import ControlServerError
from hedgerd.daemon import EXIT_CONFIG, EXIT_FAILED, Daemon, DaemonError, install_signals
from hedgerd.execution.journal import JournalError
from hedgerd.model import AmountUnit, Fill, HedgeDecision, InstrumentKind
from hedgerd.ops.plots import (
    DeltaPoint,
    HedgeMark,
    PlotUnavailableError,
    UnderlyingSeries,
    pyplot,
    write_hedge_plot,
)
from hedgerd.paper_config import BUILTIN_PAPER_CONFIG, DEFAULT_CONFIG, load_paper_config
from hedgerd.paper_journal import set_aside_journal
from hedgerd.sim.command import (
    OKX_DEFAULT_PASSPHRASE,
    Simulator,
    start_ms_arg,
    start_simulator,
)
from hedgerd.sim.okx.starting_options import open_paper_twin
from hedgerd.venues.base import VenueError

log = structlog.get_logger(__name__)

#: How the paper picture measures a hedge's cost (the daemon's own count, as in the summary).
PAPER_COST_LABEL = "fees + distance from the mid at the fill"

#: How long the daemon may take to connect, reconcile and build its book (wall seconds)
#: before the run gives up: a bound on a start-up that hangs, not on a slow one. The
#: simulated clock is held until READY, so a start slowed by a loaded machine (a minute and
#: more at load 10+ on 2 cores) costs only wall time and succeeds late.
READY_TIMEOUT_S = 600.0
#: Every so many wall seconds of a start-up still under way, `run_paper` says so on stderr.
READY_NOTE_S = 30.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def paper_config(
    config: HedgerdConfig,
    sim: Simulator,
    exchanges: Sequence[str] = ("deribit",),
    speed: float = 1.0,
) -> HedgerdConfig:
    """`config` with its venue accounts (each a simulator account, by its keys) pointed at
    the running simulator. With "okx" in `exchanges` and no OKX account in `config`, an OKX
    hedge account is added (`okx_hedge_account`): the market maker's OKX twin on the same
    simulator."""
    if not config.venues:
        raise DaemonError("paper mode needs a [venues.NAME] section (the simulator)")
    venues = {}
    for name, venue in config.venues.items():
        if venue.mode != "sim":
            raise DaemonError(f"paper mode needs venues.{name}.mode = 'sim', got {venue.mode!r}")
        if venue.exchange not in exchanges:
            raise DaemonError(
                f"venues.{name} is on {venue.exchange}: run paper with --venues "
                f"{','.join([*exchanges, venue.exchange])}"
            )
        ws = sim.okx_ws_url if venue.exchange == "okx" else sim.ws_url
        venues[name] = venue.model_copy(update={"rest_url": sim.rest_url, "ws_url": ws})
    if "okx" in exchanges and not any(v.exchange == "okx" for v in venues.values()):
        first = next(iter(venues.values()))
        okx = okx_hedge_account(first, speed)
        venues[PAPER_OKX_ACCOUNT] = okx.model_copy(
            update={"rest_url": sim.rest_url, "ws_url": sim.okx_ws_url}
        )
    return config.model_copy(update={"venues": venues})


#: Market steps per wall second `hedgerd paper` keeps to by default (`paper_tick_ms`).
PAPER_TICKS_PER_WALL_S = 40.0
#: The default scenario's market step, and the coarsest `paper_tick_ms` picks (simulated ms):
#: the daemon's evaluation interval, so that no evaluation sees a market a step behind.
SCENARIO_TICK_MS = 250
MAX_PAPER_TICK_MS = 1000


def paper_tick_ms(speed: float) -> int:
    """The market step (simulated ms) for a paper run at `speed`: the scenario's 250 ms up
    to 10x, coarser above (multiples of 250 ms, at most `PAPER_TICKS_PER_WALL_S` steps per
    wall second, at most 1 s). Why: every step moves every subscribed book and ticker on
    both venues; at 30x, 250 ms steps are 120 a wall second, and their fan-out (simulator and
    daemon share one process and one event loop) took most of the CPU, leaving the hedge
    loop fewer evaluations per simulated minute than it has at 1x (issue 17)."""
    want = speed * 1000.0 / PAPER_TICKS_PER_WALL_S
    steps = max(1, math.ceil(want / SCENARIO_TICK_MS - 1e-9))
    return min(MAX_PAPER_TICK_MS, steps * SCENARIO_TICK_MS)


#: How far (in the daemon's evaluation intervals of simulated time) the simulator may run
#: ahead of the daemon's last evaluation (`EvaluationPace`).
PACE_EVALUATIONS = 1
#: Wall seconds without an evaluation after which the pace lets the clock run: a daemon
#: halted, stopping or whose hedge loop waits on the market must not freeze it. Under the
#: stale-data kill switch's default 5 s: a clock held longer would stop the market data and
#: halt the daemon. (A starved round of two accounts took seconds: catching up with each
#: account's event stream waits up to 0.25 s each.)
PACE_RELEASE_S = 4.0


class EvaluationPace:
    """The simulator's clock cap (`SimClock.limit_to`): at most `lead_ms` of simulated time
    past the market time at which the daemon last began an evaluation.

    Why: simulator and daemon share one process. On a loaded machine the hedge loop got
    fewer evaluations per wall second while the simulator kept its `--speed`, so it hedged
    each simulated minute less often and the paper run measured the machine, not the
    policy (issue 17: two venues at 30x, 91.8-94.0 % of BTC evaluations in band). Paced,
    a starved run simulates fewer minutes in its wall time and the minutes it simulates
    are evaluated as at full speed. No cap before the first evaluation, nor after
    `release_s` wall seconds without one (the daemon halted, stopping, or waiting on the
    market itself)."""

    def __init__(
        self,
        evaluations: Callable[[], int],
        market_ms: Callable[[], int],
        lead_ms: int,
        release_s: float = PACE_RELEASE_S,
        wall_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._evaluations = evaluations
        self._market_ms = market_ms
        self._lead_ms = lead_ms
        self._release_s = release_s
        self._wall_s = wall_s
        self._seen = 0
        self._at_ms = 0
        self._at_wall_s = 0.0

    def cap_ms(self) -> int | None:
        n = self._evaluations()
        if n == 0:
            return None
        wall = self._wall_s()
        if n != self._seen:
            self._seen, self._at_ms, self._at_wall_s = n, self._market_ms(), wall
        if wall - self._at_wall_s > self._release_s:
            return None
        return self._at_ms + self._lead_ms


#: The venues `hedgerd paper` serves by default: Deribit and OKX, the market maker's account
#: on each with options and client option flow, hedges routed by all-in cost (issue 17).
#: `--venues deribit` runs the Deribit account alone.
PAPER_VENUES: tuple[str, ...] = ("deribit", "okx")
#: The `[venues.NAME]` of the OKX account `hedgerd paper --venues deribit,okx` adds.
PAPER_OKX_ACCOUNT = "okx"
#: Each underlying's OKX hedge: the inverse swap (100 USD contracts), margined in the coin
#: like Deribit's perpetual, so the two compete on fees, depth, funding and basis alone.
PAPER_OKX_HEDGES = {"BTC": ("BTC-USD-SWAP",), "ETH": ("ETH-USD-SWAP",)}


def okx_hedge_account(deribit: VenueSettings, speed: float = 1.0) -> VenueSettings:
    """The market maker's OKX account in the simulator (same key and secret, the simulator's
    default passphrase), options and hedges: `run_paper` books its starting options
    (`PAPER_OKX_OPTIONS`) before the daemon starts, and the simulator's client option flow
    trades against it as against the Deribit account (`sim.flow.OkxOptionFlow`). Its
    dead-man countdown is renewed every third of `dead_man_s` on the simulated clock: at
    `speed` x, as long as OKX's 1 request/s on cancel-all-after allows (a renewal every 2
    wall seconds, up to the 120 s cap)."""
    dead_man_s = min(120, max(30, math.ceil(6.0 * speed)))
    return VenueSettings(
        exchange="okx",
        mode="sim",
        account="mm-okx",
        api_key=deribit.api_key,
        api_secret=deribit.api_secret,
        api_passphrase=SecretStr(OKX_DEFAULT_PASSPHRASE),
        roles=("options", "hedge"),
        underlyings=deribit.underlyings,
        hedge_instruments={u: PAPER_OKX_HEDGES[u] for u in deribit.underlyings},
        cancel_on_disconnect=deribit.cancel_on_disconnect,
        dead_man_s=dead_man_s,
        delta_tolerance_coin=deribit.delta_tolerance_coin,
    )


@dataclass(slots=True)
class _Start:
    """What the summary compares the end with, per underlying."""

    value_usd: dict[str, float] = field(default_factory=dict)
    funding_coin: dict[str, float] = field(default_factory=dict)
    sim_ms: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    #: The same three when the run ended (before the daemon's shutdown; 0: not yet).
    end_sim_ms: int = 0
    end_wall_s: float = 0.0
    end_cpu_s: float = 0.0

    def end(self, sim_ms: int) -> None:
        self.end_sim_ms = sim_ms
        self.end_wall_s = time.monotonic()
        self.end_cpu_s = time.process_time()


def _funding_coin(sim: Simulator, account: str) -> dict[str, float]:
    """Funding realized so far on the account's perpetuals, per underlying, in coin (the
    simulator's own bookkeeping; negative when paid)."""
    out: dict[str, float] = {}
    accounts = getattr(sim.engine, "accounts", None)
    acct = accounts.get(account) if isinstance(accounts, dict) else None
    if acct is None:
        return out
    for name, pos in acct.positions.items():
        if name.endswith("-PERPETUAL") and "_" not in name:
            u = name.split("-")[0]
            out[u] = out.get(u, 0.0) + float(pos.realized_funding)
    return out


class PaperRecorder:
    """The daemon's evaluations and hedge fills as the picture's series (a `HedgeObserver`).

    Every evaluation is kept (one small frozen record each, some 200 bytes), so `hedgerd paper`
    passes one to the daemon only under `--plot`.
    """

    def __init__(self) -> None:
        self._points: dict[str, list[DeltaPoint]] = {}
        self._hedges: dict[str, list[HedgeMark]] = {}

    def on_decision(self, decision: HedgeDecision) -> None:
        self._points.setdefault(decision.underlying, []).append(
            DeltaPoint(
                ts_ms=decision.ts_ms,
                delta_coin=decision.net_delta_coin,
                band_lower_coin=decision.band_lower_coin,
                target_coin=decision.target_delta_coin,
                band_upper_coin=decision.band_upper_coin,
            )
        )

    def on_hedge_fill(self, underlying: str, fill: Fill, cost_usd: float) -> None:
        self._hedges.setdefault(underlying, []).append(
            HedgeMark(ts_ms=fill.ts_ms, side=fill.side, cost_usd=cost_usd)
        )

    def series(self, underlyings: Sequence[str]) -> list[UnderlyingSeries]:
        """One series per underlying, in the given order (empty when nothing was seen)."""
        return [
            UnderlyingSeries(u, tuple(self._points.get(u, ())), tuple(self._hedges.get(u, ())))
            for u in underlyings
        ]


def _snapshot_values(daemon: Daemon) -> dict[str, float]:
    out: dict[str, float] = {}
    for u, st in daemon.stats.per_underlying.items():
        if st.last_greeks is not None:
            out[u] = st.last_greeks.total.value_usd
    return out


def hedge_pnl_usd(daemon: Daemon, underlying: str) -> float:
    """Mark-to-market of this run's hedge fills at the last mid (USD, fees excluded)."""
    st = daemon.stats.per_underlying[underlying]
    index = st.last_greeks.index_price_usd if st.last_greeks is not None else math.nan
    total = 0.0
    for fill in st.fills:
        account = daemon.accounts.get(fill.venue, daemon.account)
        if account.venue is None:
            continue
        inst = account.venue.instruments().get(fill.instrument)
        q = account.market.quotes.get(fill.instrument)
        if inst is None or q is None:
            continue
        end = q.mid_price
        sign = fill.side.sign
        if inst.amount_unit is AmountUnit.USD:  # inverse: coin P&L of a USD amount
            total += sign * fill.amount * (1.0 / fill.price - 1.0 / end) * index
        else:
            total += sign * fill.amount * (end - fill.price)
    return total


def build_summary(
    daemon: Daemon, sim: Simulator, start: _Start, *, speed: float, seed: int, account: str
) -> dict[str, Any]:
    """The paper run's figures (see the module doc). Deltas in coin, money in USD."""
    stats = daemon.stats
    end_values = _snapshot_values(daemon)
    end_funding = _funding_coin(sim, account)
    per: dict[str, Any] = {}
    pnl: dict[str, Any] = {}
    for u, st in stats.per_underlying.items():
        index = st.last_greeks.index_price_usd if st.last_greeks is not None else math.nan
        hedges_usd = hedge_pnl_usd(daemon, u)
        fees_usd = -st.fees_usd
        funding_usd = (end_funding.get(u, 0.0) - start.funding_coin.get(u, 0.0)) * index
        total = end_values.get(u, math.nan) - start.value_usd.get(u, math.nan)
        pnl[u] = {
            "total_usd": _f(total),
            # The rest of the book's value change: option marks and client flow premiums, and
            # the coin collateral's revaluation (what the hedges offset in the usd numeraire).
            "options_usd": _f(total - hedges_usd - fees_usd - funding_usd),
            "hedges_usd": _f(hedges_usd),
            "fees_usd": _f(fees_usd),
            "funding_usd": _f(funding_usd),
        }
        lo, target, hi = st.last_band
        per[u] = {
            "hedges": st.hedges,
            "hedge_cost_usd": st.hedge_cost_usd,
            "hedge_notional_usd": st.hedge_notional_usd,
            "fees_usd": st.fees_usd,
            "time_in_band": st.in_band_samples / st.samples if st.samples else None,
            "max_abs_delta_coin": st.max_abs_delta_coin,
            "final_delta_coin": _f(st.last_delta_coin),
            "band_coin": {"lower": _f(lo), "target": _f(target), "upper": _f(hi)},
            "evaluations": st.samples,
            "skipped_incomplete": st.skipped_incomplete,
            "blocked_legs": st.blocked_legs,
        }
    if start.wall_s and not start.end_wall_s:
        start.end(sim.now_ms())
    sim_s = (start.end_sim_ms - start.sim_ms) / 1000.0 if start.sim_ms else 0.0
    return {
        "speed": speed,
        "seed": seed,
        "wall_s": round(start.end_wall_s - start.wall_s, 3) if start.wall_s else 0.0,
        "simulated_s": round(sim_s, 3),
        # The process's CPU time over the run (simulator and daemon share it): what a
        # simulated minute costs, whatever the machine's load did to the wall time.
        "cpu_s": round(start.end_cpu_s - start.cpu_s, 3) if start.wall_s else 0.0,
        "numeraire": daemon.config.numeraire,
        "state": daemon.trading.state.value.upper() if daemon.trading else None,
        "reasons": [r.to_json() for r in daemon.trading.reasons] if daemon.trading else [],
        "hedges": sum(st.hedges for st in stats.per_underlying.values()),
        "hedge_cost_usd": sum(st.hedge_cost_usd for st in stats.per_underlying.values()),
        "time_in_band": {u: p["time_in_band"] for u, p in per.items()},
        "max_abs_delta": {u: p["max_abs_delta_coin"] for u, p in per.items()},
        "orders_sent": daemon.status()["orders_sent_total"],
        "errors": list(stats.errors),
        "pnl_usd": pnl,
        "underlyings": per,
        "venues": venue_summary(daemon),
    }


def venue_summary(daemon: Daemon) -> dict[str, dict[str, Any]]:
    """Per account (its `[venues.NAME]`): `hedges` (decisions that filled there;
    `split_hedges` of them also filled on another account, so the accounts' `hedges` add up
    to more than the portfolio's), `orders`
    sent there, its fills' `hedge_cost_usd` (fee + distance from the mid, USD) and
    `hedge_notional_usd`, and its `state` (its own trading state; the portfolio's with one
    account) with the `reasons` behind it (each `Reason.to_json()`: code, detail, ...), summed
    over the underlyings; `option_positions`: options it holds at the end."""
    states = daemon.parts.states
    out: dict[str, dict[str, Any]] = {}
    for name in daemon.accounts:
        shares = [
            st.by_account[name]
            for st in daemon.stats.per_underlying.values()
            if name in st.by_account
        ]
        own = states.accounts.get(name) if states is not None else None
        machine = own if own is not None and states is not None and states.per_account else None
        judge = machine if machine is not None else daemon.trading
        state = judge.state if judge is not None else None
        out[name] = {
            "exchange": daemon.accounts[name].settings.exchange,
            "hedges": sum(s.hedges for s in shares),
            "split_hedges": sum(s.split_hedges for s in shares),
            "hedge_cost_usd": sum(s.hedge_cost_usd for s in shares),
            "hedge_notional_usd": sum(s.hedge_notional_usd for s in shares),
            "orders": sum(s.orders for s in shares),
            "state": state.value.upper() if state is not None else None,
            "reasons": [r.to_json() for r in judge.reasons] if judge is not None else [],
            "option_positions": _option_positions(daemon, name),
        }
    return out


def _option_positions(daemon: Daemon, account: str) -> int:
    """How many options the account's book holds (0 with no feed)."""
    feed = daemon.accounts[account].parts.feed
    if feed is None:
        return 0
    return sum(
        1 for name in feed.positions if feed.book.instrument(name).kind is InstrumentKind.OPTION
    )


def state_reasons(reasons: Iterable[Mapping[str, Any]]) -> str:
    """` (margin: okx USD: maintenance margin is 50.14% of equity (limit 50%))`: why a state
    is not ACTIVE, each reason's code and detail (empty with none)."""
    parts = [f"{r['code']}: {r['detail']}" if r.get("detail") else str(r["code"]) for r in reasons]
    return f" ({'; '.join(parts)})" if parts else ""


def _f(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def render_summary(s: dict[str, Any]) -> str:
    """The summary for a human."""
    lines = [
        "",
        f"hedgerd paper: {s['simulated_s'] / 60:.1f} simulated minutes in {s['wall_s']:.0f} s "
        f"(speed {s['speed']:g}, seed {s['seed']}), numeraire {s['numeraire']}, "
        f"final state {s['state']}" + state_reasons(s.get("reasons") or ()),
        f"  hedges: {s['hedges']}   hedge cost: ${s['hedge_cost_usd']:,.2f} "
        "(fees + distance from mid)   orders sent: " + str(s["orders_sent"]),
    ]
    for u, p in s["underlyings"].items():
        tib = p["time_in_band"]
        band = p["band_coin"]
        lines.append(
            f"  {u}: |delta| in band {tib:.1%} of {p['evaluations']} evaluations, "
            f"max |delta| {p['max_abs_delta_coin']:.3f} {u}, final delta "
            f"{p['final_delta_coin']:+.4f} {u} (band {band['lower']:+.4f} .. "
            f"{band['upper']:+.4f}), "
            f"{p['hedges']} hedges costing ${p['hedge_cost_usd']:,.2f}"
            if tib is not None
            else f"  {u}: no evaluation"
        )
        # A figure is None (JSON null) when the run had no evaluation of `u` to value it by.
        pl = {k: "n/a" if v is None else f"{v:+,.2f}" for k, v in s["pnl_usd"][u].items()}
        lines.append(
            "      P&L USD: total {total_usd}, options {options_usd}, "
            "hedges {hedges_usd}, fees {fees_usd}, funding {funding_usd}".format(**pl)
        )
    for name, v in s.get("venues", {}).items():
        lines.append(
            f"  venue {name} ({v['exchange']}): {v['hedges']} hedges"
            + (f" ({v['split_hedges']} split with another venue)" if v.get("split_hedges") else "")
            + f", {v['orders']} orders, "
            f"cost ${v['hedge_cost_usd']:,.2f} on ${v['hedge_notional_usd']:,.0f}, "
            f"{v.get('option_positions', 0)} options held, state {v['state']}"
            + state_reasons(v.get("reasons") or ())
        )
    lines.append(f"  errors: {len(s['errors'])}" + (f" ({s['errors'][0]})" if s["errors"] else ""))
    return "\n".join(lines)


async def run_paper(
    config: HedgerdConfig,
    *,
    duration_s: float | None,
    speed: float,
    seed: int,
    config_path: Path | None = None,
    scenario: Path | None = None,
    stop: asyncio.Event | None = None,
    account: str = "mm",
    start_ms: int | str = "now",
    recorder: PaperRecorder | None = None,
    exchanges: Sequence[str] = PAPER_VENUES,
    backstop: ExitBackstop | None = None,
    tick_ms: int | None = None,
) -> dict[str, Any]:
    """Run the simulator and the daemon; returns the summary. Stops after `duration_s` wall
    seconds from READY (None: when `stop` is set, e.g. by Ctrl-C). `start_ms`: the simulated
    start (UTC epoch ms, or "now"). `recorder` sees every evaluation and hedge fill.
    `exchanges`: the venues the simulator serves (with "okx": an OKX hedge account beside
    the Deribit one, `paper_config`). `backstop`: armed at READY to end the process if the
    run has not ended `run_deadline_s` later (never with `duration_s` None). `tick_ms`: the
    market step (simulated ms; None: `paper_tick_ms(speed)`, or the `scenario`'s own)."""
    stop = stop or asyncio.Event()
    if config.journal.url is None:
        # A new simulator world each run: the last run's journal is set aside, not reused.
        prev = set_aside_journal(config.journal.path)
        if prev is not None:
            print(f"hedgerd paper: the previous run's journal is now {prev}", file=sys.stderr)
    twins = _okx_twins(config) if "okx" in exchanges else []
    sim = await start_simulator(
        host="127.0.0.1",
        port=0,
        scenario=scenario,
        seed=seed,
        speed=speed,
        start_ms=start_ms,
        venues=tuple(exchanges),
        accounts=twins,
        tick_ms=tick_ms if tick_ms is not None or scenario is not None else paper_tick_ms(speed),
        # Held at its start until the daemon is READY (`await_ready`): a start-up slowed by
        # the machine must not find the market minutes ahead (the stale-data checks saw
        # "no ticker for 1042 s" at 60x and the run failed), and the run then starts at
        # `start_ms` exactly, whatever the start-up took.
        stepped=True,
    )
    try:
        cfg = paper_config(config, sim, exchanges, speed)
        if twins:
            # Options on the OKX account too (the market maker's twin of the first account).
            # Funded like the Deribit market maker, whose client flow it shares (see
            # `open_paper_twin`), and the client option flow trades against it.
            key = twins[0][0]
            creds = sim.okx.credentials_for_key(key)
            if creds is not None:
                known = sim.scenario.accounts if sim.scenario is not None else []
                mm = next((a for a in known if a.api_key == key), None)
                open_paper_twin(sim.okx, creds.account_id, mm.balances if mm else None)
        daemon = Daemon(
            cfg,
            clock_ms=lambda: int(sim.engine.now_ms()),
            speed=speed,
            board_clock_ms=_wall_ms,
            config_path=config_path,
            observer=recorder,
        )
        interval_ms = int(cfg.daemon.evaluate_interval_s * 1000)
        pace = EvaluationPace(
            lambda: daemon.hedge_loop.evaluations_started,
            lambda: sim.world.deribit.market_ms,
            PACE_EVALUATIONS * interval_ms,
        )
        sim.world.clock.limit_to(pace.cap_ms)
        install_signals(daemon, stop)
        task = asyncio.get_running_loop().create_task(daemon.run(stop), name="daemon")
        start = _Start()
        await await_ready(daemon, task, stop)
        sim.world.clock.set_stepped(False)  # the market runs from here, at `speed`
        if daemon.trading is not None and daemon.trading.state.value != "active":
            print(
                f"hedgerd paper: trading state {daemon.trading.state.value.upper()} restored "
                "from the journal (halts survive restarts); "
                f"`{hedgerctl_line(config.control.socket_path, 'resume', sys.argv[0])}` to trade",
                file=sys.stderr,
            )
        if backstop is not None and duration_s is not None and duration_s > 0:
            limit = run_deadline_s(duration_s, cfg)
            backstop.arm(limit, EXIT_FAILED, f"the run did not end within {limit:g} s")
        start.sim_ms = sim.now_ms()
        start.wall_s = time.monotonic()
        start.cpu_s = time.process_time()
        start.funding_coin = _funding_coin(sim, account)
        # The book's value at the first evaluation of each underlying (bounded wait).
        deadline = time.monotonic() + 10.0
        while len(_snapshot_values(daemon)) < len(daemon.underlyings):
            if time.monotonic() > deadline or task.done():
                break
            await asyncio.sleep(0.05)
        start.value_usd = _snapshot_values(daemon)
        if duration_s is not None and duration_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await stop.wait()
        else:
            await asyncio.wait(
                {task, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED"
            )
        start.end(sim.now_ms())
        budget = cfg.daemon.shutdown_timeout_s + STOP_GRACE_S
        stuck = await stop_daemon(task, stop, budget)
        summary = build_summary(daemon, sim, start, speed=speed, seed=seed, account=account)
        if stuck is not None:
            summary["errors"].append(stuck)
    finally:
        # Bounded like the daemon's stop: a WebSocket handler that does not end would hold
        # the server's clean-up for its own 60 s.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_WAIT_S):
                await sim.stop()
    return summary


async def await_ready(daemon: Daemon, task: asyncio.Task[int], stop: asyncio.Event) -> None:
    """Wait for the daemon `task` to be READY, saying on stderr every `READY_NOTE_S` wall
    seconds that it is still starting; raises its start-up error if it ended first, or
    DaemonError when `stop` is set first (Ctrl-C) or after `READY_TIMEOUT_S` (then `stop` is
    set and the task given 10 s to end)."""
    began = time.monotonic()
    loop = asyncio.get_running_loop()
    ready = loop.create_task(daemon.ready.wait())
    stopped = loop.create_task(stop.wait())
    try:
        while not (ready.done() or task.done() or stopped.done()):
            waited = time.monotonic() - began
            if waited >= READY_TIMEOUT_S:
                break
            done, _ = await asyncio.wait(
                {task, ready, stopped},
                timeout=min(READY_NOTE_S, READY_TIMEOUT_S - waited),
                return_when="FIRST_COMPLETED",
            )
            if not done:  # the note's interval passed with the start-up still under way
                waited = time.monotonic() - began
                log.warning("paper.daemon_still_starting", wall_s=round(waited))
                print(
                    f"hedgerd paper: the daemon is still starting after {waited:.0f} s "
                    "(the simulated clock waits for it)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        ready.cancel()
        stopped.cancel()
    if daemon.ready.is_set():
        return
    why = (
        "was stopped before it was ready"
        if stop.is_set()
        else "ended before it was ready"
        if task.done()
        else f"did not become ready within {READY_TIMEOUT_S:.0f} s"
    )
    stop.set()
    if not task.done():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    if task.done() and not task.cancelled():
        task.result()  # raises the start-up error
    raise DaemonError(f"the daemon {why}")


#: Wall seconds `hedgerd paper` gives the daemon to stop after `--duration`, beyond its own
#: shutdown budget (`daemon.shutdown_timeout_s`): the supervisor's grace for its parts (5 s)
#: and closing the venue sessions. Past it the daemon task is cancelled.
STOP_GRACE_S = 10.0
#: Wall seconds a cancelled daemon task (or the simulator's stop) gets to end.
CANCEL_WAIT_S = 3.0
#: Wall seconds the process may take to exit once the summary is out (asyncio.run's own
#: clean-up: cancelling what is left, joining the journal's threads) before it exits anyway.
EXIT_GRACE_S = 10.0
#: Wall seconds for what a run does besides its duration and its stop: the wait for the
#: first evaluations (at most 10 s), building and writing the summary and the plot.
RUN_MARGIN_S = 30.0


def run_deadline_s(duration_s: float, config: HedgerdConfig) -> float:
    """The most wall seconds a paper run of `duration_s` may take from READY to its summary:
    the duration, the daemon's stop (`stop_daemon`'s budget and cancel wait), the
    simulator's stop and `RUN_MARGIN_S`."""
    stop = config.daemon.shutdown_timeout_s + STOP_GRACE_S + 2 * CANCEL_WAIT_S
    return duration_s + stop + RUN_MARGIN_S


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where `task` waits: each coroutine of its await chain, outermost first, as
    `qualname:line` (what a stuck stop is stuck on, for the log)."""
    out: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(out) < 50:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_qualname}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


async def stop_daemon(task: asyncio.Task[int], stop: asyncio.Event, budget_s: float) -> str | None:
    """Set `stop` and wait at most `budget_s` wall seconds for the daemon `task` to end; past
    it, cancel it and wait `CANCEL_WAIT_S` more. Returns None when it ended (re-raising its
    error), else what is wrong (for the summary's errors).

    Why: a paper run is bounded in wall time (`--duration` is a promise to whoever runs it,
    a test or a script); a daemon whose shutdown hangs (a session that does not close, a
    simulator too far behind to answer) must not keep the process alive."""
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=budget_s)
    if done:
        task.result()  # a start-up or run error surfaces as before
        return None
    log.error("paper.daemon_stop_overdue", budget_s=budget_s, awaiting=await_chain(task))
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
    return f"the daemon did not stop within {budget_s:g} s of the end of the run"


def _okx_twins(config: HedgerdConfig) -> list[tuple[str, str, str]]:
    """(key, secret, passphrase) of each paper account, for the simulator's OKX twins (the
    Deribit market maker's own key is already an account there; on OKX it is added)."""
    out: list[tuple[str, str, str]] = []
    for v in config.venues.values():
        if v.api_key is None or v.api_secret is None:
            continue
        phrase = v.api_passphrase.get_secret_value() if v.api_passphrase is not None else None
        out.append(
            (
                v.api_key.get_secret_value(),
                v.api_secret.get_secret_value(),
                phrase or OKX_DEFAULT_PASSPHRASE,
            )
        )
    return out


def _venues_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in ("deribit", "okx")]
    if not names or bad or names[0] != "deribit" or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"--venues: 'deribit' or 'deribit,okx' (the options book is on Deribit), got {text!r}"
        )
    return names


def _paper_command(args: argparse.Namespace) -> int:
    from hedgerd.ops.logging import configure_logging

    try:
        config = load_paper_config(args.config)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log.level, config.log.format, secrets=config.secret_values())
    print(
        f"hedgerd paper: simulator at {args.speed:g}x, "
        + (f"{args.duration:g} s" if args.duration else "until Ctrl-C")
        + f"; in another terminal: {hedgerctl_line(config.control.socket_path, argv0=sys.argv[0])}",
        file=sys.stderr,
        flush=True,
    )
    if args.plot is not None:
        try:
            pyplot()  # before the run: a missing matplotlib should not cost the whole run
        except PlotUnavailableError as exc:
            print(f"hedgerd paper: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    recorder = PaperRecorder() if args.plot is not None else None
    try:
        return asyncio.run(_paper_and_report(args, config, recorder))
    except (DaemonError, ConfigError, ControlServerError, JournalError, ValueError) as exc:
        print(f"hedgerd paper: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (VenueError, OSError) as exc:
        print(f"hedgerd paper: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _paper_and_report(
    args: argparse.Namespace, config: HedgerdConfig, recorder: PaperRecorder | None
) -> int:
    """The run, then its report (summary, JSON, plot) while the event loop still runs: what
    asyncio.run does after this returns (cancel what is left, join threads) has no bound of
    its own, so the process exits `EXIT_GRACE_S` later whatever is left (`ExitBackstop`).
    Until the summary is out, the backstop is the run's own: `--duration` plus every stop
    budget (`run_deadline_s`) after the daemon is READY."""
    backstop = ExitBackstop()
    summary = await run_paper(
        config,
        duration_s=args.duration,
        speed=args.speed,
        seed=args.seed,
        config_path=args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None),
        scenario=args.scenario,
        start_ms=args.start_ms,
        recorder=recorder,
        exchanges=args.venues,
        backstop=backstop,
        tick_ms=args.tick_ms,
    )
    code = _report(args, summary, recorder)
    backstop.arm(EXIT_GRACE_S, code, f"still running {EXIT_GRACE_S:g} s after the summary")
    return code


class ExitBackstop:
    """Exits the process (`os._exit`) when a deadline passes, from a daemon thread: the bound
    on a paper run's wall time that holds whatever the event loop does (a loop starved by
    the simulator, a task that swallows its cancel, asyncio.run's own unbounded clean-up).
    `arm` sets (or moves) the deadline; stdout and stderr are flushed before the exit."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    def arm(self, after_s: float, code: int, why: str) -> None:
        self.disarm()

        def hard_exit() -> None:
            print(f"hedgerd paper: {why}; exiting", file=sys.stderr)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

        timer = self._timer = threading.Timer(after_s, hard_exit)
        timer.daemon = True  # a normal exit does not wait for it
        timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _report(
    args: argparse.Namespace, summary: dict[str, Any], recorder: PaperRecorder | None
) -> int:
    """Print the summary, write `--summary-json` and `--plot`; the exit code."""
    print(render_summary(summary), flush=True)
    if args.summary_json is not None:
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if recorder is not None:
        series = recorder.series(list(summary["underlyings"]))
        try:
            write_hedge_plot(
                args.plot,
                series,
                title=f"hedgerd paper: seed {summary['seed']}, speed {summary['speed']:g}x, "
                f"numeraire {summary['numeraire']}",
                cost_label=PAPER_COST_LABEL,
            )
        except OSError as exc:
            print(f"hedgerd paper: --plot {args.plot}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        names = ", ".join(s.underlying for s in series)
        print(f"wrote {args.plot} ({names})", file=sys.stderr)
    return 0 if not summary["errors"] else EXIT_FAILED


def add_parser(sub: Any) -> Any:
    """Register `hedgerd paper`."""
    p = sub.add_parser(
        "paper",
        help="run the daemon against the built-in exchange simulator (demo options book)",
        description="Run hedgerd against an in-process Deribit simulator with a market "
        "maker's BTC and ETH options book and client flow; print a summary at the end.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"TOML config file (default: {DEFAULT_CONFIG} if present, else built-in)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="wall seconds to run (default or 0: until Ctrl-C)",
    )
    p.add_argument("--speed", type=float, default=20.0, help="simulated seconds per wall second")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument("--scenario", type=Path, default=None, help="simulator scenario TOML")
    # A fixed start makes a run repeatable (the option expiries and the path no longer
    # depend on the day it runs).
    p.add_argument(
        "--start-ms",
        type=start_ms_arg,
        default="now",
        help="simulated start: UTC epoch ms, or 'now' (default; a fixed start repeats a run)",
    )
    p.add_argument(
        "--tick-ms",
        type=int,
        default=None,
        help="market step in simulated ms (default: 250 up to --speed 10, coarser above: "
        "at most 40 steps per wall second, at most 1000; with --scenario: the scenario's)",
    )
    p.add_argument(
        "--venues",
        type=_venues_arg,
        default=PAPER_VENUES,
        help="venues the simulator serves: 'deribit,okx' (default: the market maker's Deribit "
        "account and its OKX twin, options and client option flow on both, hedges routed by "
        "all-in cost) or 'deribit' (the Deribit account alone)",
    )
    p.add_argument("--summary-json", type=Path, default=None, help="write the summary here")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="draw delta vs band with the hedges, and cumulative hedge cost, per underlying "
        "(PNG; needs matplotlib)",
    )
    p.set_defaults(func=_paper_command)
    return p


__all__ = [
    "BUILTIN_PAPER_CONFIG",
    "DEFAULT_CONFIG",
    "ExitBackstop",
    "PaperRecorder",
    "add_parser",
    "build_summary",
    "load_paper_config",
    "okx_hedge_account",
    "paper_config",
    "render_summary",
    "run_deadline_s",
    "run_paper",
    "stop_daemon",
    "venue_summary",
]
