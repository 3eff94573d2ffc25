"""Crash drills for the executor: a small process that runs the real executor against a venue
(the simulator) and can be SIGKILLed at a chosen point, then restarted.

    python -m hedgerd.execution.drill --rest http://127.0.0.1:PORT \
        --ws ws://127.0.0.1:PORT/ws/api/v2 --key K --secret S --journal /tmp/j.sqlite \
        --decision-id d1 --side buy --amount 1000

Each run: connect, start-up reconciliation (in-doubt orders queried by label, missed fills
applied), load the executor, execute the decision if one is given (a TAKER leg on
BTC-PERPETUAL priced from the venue's mid), reconcile again, print a JSON summary on stdout.
With `HGD_DRILL_KILL_AT=after_intent` (journalled, not sent) or `after_send` (sent and
answered, the answer not journalled) the process SIGKILLs itself at that point.

`rig(...)` builds the same parts in-process for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hedgerd.config import VenueSettings
from hedgerd.execution.executor import DecisionResult, Executor, ExecutorSettings
from hedgerd.execution.journal import Journal
from hedgerd.execution.reconcile import (
    ForeignOrderPolicy,
    Reconciler,
    ReconcileReport,
    ReconcileSettings,
)
from hedgerd.model import (
    AmountUnit,
    HedgeDecision,
    HedgeLeg,
    HedgeStyle,
    HedgeTrigger,
    OrderSide,
    PriceUnit,
)
from hedgerd.risk.trading_state import TradingStateMachine
from hedgerd.venues.ccxt_venue import Backoff
from hedgerd.venues.deribit import DeribitVenue

if TYPE_CHECKING:
    from hedgerd.sim.command import Simulator

VENUE_NAME = "deribit-sim"
PERP = "BTC-PERPETUAL"


@dataclass(slots=True)
class Rig:
    venue: DeribitVenue
    journal: Journal
    trading: TradingStateMachine
    executor: Executor
    reconciler: Reconciler
    pump: asyncio.Task[None] | None = None

    async def start(self, *, stream: bool = True) -> ReconcileReport:
        """Connect, reconcile at start-up, load the executor, feed it the venue's stream
        (unless `stream` is False: then only answers and queries update orders)."""
        await self.venue.connect()
        report = await self.reconciler.reconcile(startup=True)
        await self.executor.load()
        if stream:
            self.pump = asyncio.get_running_loop().create_task(self._pump(), name="drill-pump")
        return report

    async def _pump(self) -> None:
        async for ev in self.venue.events():
            await self.executor.handle_event(ev)

    async def stop_pump(self) -> None:
        """Stop feeding the executor the venue's stream (tests of the query-only paths)."""
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pump
            self.pump = None

    async def close(self) -> None:
        await self.stop_pump()
        await self.venue.close()
        await self.trading.flush()
        await self.journal.close()


async def rig(
    *,
    rest_url: str,
    ws_url: str,
    key: str,
    secret: str,
    journal_path: str | Path,
    clock_ms: Callable[[], int],
    sleep_ms: Callable[[int], Awaitable[None]] | None = None,
    settings: ExecutorSettings | None = None,
    reconcile: ReconcileSettings | None = None,
    request_timeout_s: float = 2.0,
    cancel_on_disconnect: bool = True,
) -> Rig:
    """The executor's parts against one Deribit-speaking venue (not started: `await
    rig.start()`). With `cancel_on_disconnect` False the adapter sends orders through ccxt's
    REST client instead of the private WebSocket session."""
    venue = DeribitVenue(
        VENUE_NAME,
        VenueSettings(
            mode="sim",
            rest_url=rest_url,
            ws_url=ws_url,
            api_key=key,
            api_secret=secret,
            underlyings=("BTC",),
            request_timeout_s=request_timeout_s,
            cancel_on_disconnect=cancel_on_disconnect,
        ),
        clock_ms=clock_ms,
        backoff=Backoff(initial_s=0.05, max_s=0.2),
    )
    journal = await Journal.open(journal_path)
    trading = await TradingStateMachine.restore(journal, clock_ms=clock_ms)
    kw: dict[str, Any] = {}
    if sleep_ms is not None:
        kw["sleep_ms"] = sleep_ms
    executor = Executor(
        {VENUE_NAME: venue}, journal, trading, settings=settings, clock_ms=clock_ms, **kw
    )
    reconciler = Reconciler(
        venue,
        journal,
        underlyings=("BTC",),
        settings=reconcile or ReconcileSettings(),
        clock_ms=clock_ms,
        on_record=executor.note_record,
    )
    return Rig(venue, journal, trading, executor, reconciler)


DRILL_KEY, DRILL_SECRET = "exec-key", "exec-secret"


async def sim_rig(sim: Simulator, journal_path: str | Path, **kw: Any) -> Rig:
    """`rig` for the drill account (`DRILL_KEY`) of a running simulator, on its clock; `kw`
    as for `rig`."""
    return await rig(
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        key=DRILL_KEY,
        secret=DRILL_SECRET,
        journal_path=journal_path,
        clock_ms=sim.now_ms,
        **kw,
    )


def sim_scenario(vol: float = 0.8, seed: int = 21) -> Any:
    """A small simulator scenario for drills and tests: BTC only (perpetual and one daily
    option expiry), no customer flow, no funding premium; `vol` is the index's annual vol."""
    from hedgerd.sim.scenario import Scenario

    return Scenario.model_validate(
        {
            "seed": seed,
            "underlyings": [
                {
                    "currency": "BTC",
                    "spot": 90_000.0,
                    "vol": vol,
                    "basis_per_year": 0.0,
                    "jumps": {"intensity_per_day": 0.0},
                    "chain": {
                        "dailies": 1,
                        "weeklies": 0,
                        "monthlies": 0,
                        "quarterlies": 0,
                        "strikes_each_side": 1,
                        "futures": False,
                    },
                    "linear_perpetual": False,
                }
            ],
            "flow": {"enabled": False},
            "funding": {"premium_mean_bps": 0.0, "premium_vol_bps": 0.0},
        }
    )


def perp_decision(
    decision_id: str,
    side: OrderSide,
    amount_usd: float,
    *,
    mid_usd: float,
    ts_ms: int,
    style: HedgeStyle = HedgeStyle.TAKER,
    limit_price: float | None = None,
    slippage_frac: float = 0.0025,
    fallback_after_ms: int | None = None,
    net_delta_coin: float | None = None,
) -> HedgeDecision:
    """A one-leg decision on BTC-PERPETUAL (inverse: amount in USD, delta = amount / price)."""
    delta = side.sign * amount_usd / mid_usd
    if limit_price is None:
        limit_price = mid_usd * (1 + side.sign * slippage_frac)
    net = -delta if net_delta_coin is None else net_delta_coin
    leg = HedgeLeg(
        venue=VENUE_NAME,
        instrument=PERP,
        side=side,
        amount=amount_usd,
        amount_unit=AmountUnit.USD,
        delta_coin=delta,
        style=style,
        limit_price=limit_price,
        price_unit=PriceUnit.USD,
        expected_cost_usd=0.0,
        fallback_after_ms=fallback_after_ms,
    )
    values: dict[str, Any] = {
        "decision_id": decision_id,
        "underlying": "BTC",
        "policy": "drill",
        "ts_ms": ts_ms,
        "trigger": HedgeTrigger.BAND,
        "net_delta_coin": net,
        "book_delta_coin": net,
        "in_flight_delta_coin": 0.0,
        "target_delta_coin": 0.0,
        "band_lower_coin": 0.01,
        "band_upper_coin": 0.01,
        "wanted_coin": delta,
        "delta_after_coin": net + delta,
        "legs": (leg,),
        "expected_cost_usd": 0.0,
        "spot_usd": mid_usd,
        "reason": "drill",
    }
    # Only the fields this version of HedgeDecision has; other numbers (costs, gamma) are 0.
    names = {f.name for f in dataclasses.fields(HedgeDecision)}
    kwargs = {k: v for k, v in values.items() if k in names}
    for name in names - kwargs.keys():
        kwargs[name] = 0.0
    return HedgeDecision(**kwargs)


def result_json(result: DecisionResult | None) -> Any:
    if result is None:
        return None
    return {
        "decision_id": result.decision_id,
        "legs": [
            {
                "leg": leg.leg,
                "outcome": str(leg.outcome),
                "target": leg.target_amount,
                "filled": leg.filled_amount,
                "labels": list(leg.labels),
                "detail": leg.detail,
            }
            for leg in result.legs
        ],
    }


def report_json(report: ReconcileReport) -> Any:
    return {
        "recovered_unknown": report.recovered_unknown,
        "resolved": report.resolved,
        "not_found": report.not_found,
        "still_unknown": report.still_unknown,
        "missed_fills": report.missed_fills,
        "adopted": report.adopted,
        "errors": report.errors,
    }


@contextlib.asynccontextmanager
async def started(r: Rig, *, stream: bool = True) -> AsyncIterator[ReconcileReport]:
    try:
        yield await r.start(stream=stream)
    finally:
        await r.close()


async def _main(args: argparse.Namespace) -> int:
    offset = int(args.clock_offset_ms)

    def clock_ms() -> int:
        return time.time_ns() // 1_000_000 + offset

    r = await rig(
        rest_url=args.rest,
        ws_url=args.ws,
        key=args.key,
        secret=args.secret,
        journal_path=args.journal,
        clock_ms=clock_ms,
        reconcile=ReconcileSettings(
            not_found_grace_ms=int(args.grace_ms), foreign_orders=ForeignOrderPolicy.ADOPT
        ),
    )
    out: dict[str, Any] = {}
    async with started(r, stream=not args.no_stream) as startup:
        out["startup"] = report_json(startup)
        if args.decision_id:
            q = await r.venue.fetch_quote(PERP)
            decision = perp_decision(
                args.decision_id,
                OrderSide(args.side),
                float(args.amount),
                mid_usd=q.mid_price,
                ts_ms=clock_ms(),
            )
            out["result"] = result_json(await r.executor.execute(decision))
        out["after"] = report_json(await r.reconciler.reconcile())
        out["open"] = [o.label for o in await r.journal.open_orders()]
    print(json.dumps(out), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hedgerd.execution.drill")
    p.add_argument("--rest", required=True)
    p.add_argument("--ws", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--journal", required=True)
    p.add_argument("--decision-id", default="")
    p.add_argument("--side", default="buy", choices=("buy", "sell"))
    p.add_argument("--amount", default="1000", help="USD, a multiple of 10")
    p.add_argument("--clock-offset-ms", default="0", help="venue clock minus wall clock")
    p.add_argument("--grace-ms", default="500", help="reconciler's not-found grace")
    p.add_argument(
        "--no-stream", action="store_true", help="do not feed the executor the order stream"
    )
    args = p.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
