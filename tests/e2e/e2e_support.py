"""Helpers of the whole-daemon tests: a simulator plus a `Daemon` in-process, the control API
over its Unix socket, `hedgerctl` as the operator runs it, and bounded waits on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from hedgerd.book.greeks_book import GreeksBook
from hedgerd.config import HedgerdConfig, VenueSettings
from hedgerd.daemon import Daemon
from hedgerd.execution.journal import Journal
from hedgerd.hedging.inputs import UnderlyingRisk
from hedgerd.model import HedgeDecision
from hedgerd.model.orders import Fill
from hedgerd.paper import paper_config
from hedgerd.risk.kill_switches import KillSwitchBoard
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import TradingStateMachine
from hedgerd.sim import wall_clock
from hedgerd.sim.command import OKX_DEFAULT_PASSPHRASE, Simulator, running_simulator
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.venues.deribit.names import parse_instrument_name
from pinned_clock import TEST_START_MS

MM_KEY, MM_SECRET = "sim-mm-key", "sim-mm-secret"
REPO = Path(__file__).resolve().parents[2]


def short_dir() -> Path:
    """A short private directory (Unix socket paths are limited to ~108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="hgd-", dir="/tmp"))


def hedgerd_env(work: Path) -> dict[str, str]:
    """The environment of a `hedgerd` subprocess: this checkout's code, the journal and the
    control socket in `work`, JSON logs."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "HEDGERD_JOURNAL__PATH": str(work / "journal.sqlite"),
        "HEDGERD_CONTROL__SOCKET_PATH": str(work / "ctl.sock"),
        "HEDGERD_LOG__FORMAT": "json",
    }


def paper_argv(*args: str) -> list[str]:
    """`hedgerd paper --config config/paper.toml ARGS...` as a subprocess's argv, its
    simulator started at `TEST_START_MS`."""
    config = str(REPO / "config" / "paper.toml")
    pin = ("--start-ms", str(TEST_START_MS))
    return [sys.executable, "-m", "hedgerd.cli", "paper", "--config", config, *pin, *args]


def daemon_config(
    workdir: Path,
    *,
    rest_url: str | None = None,
    ws_url: str | None = None,
    underlyings: tuple[str, ...] = ("BTC",),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Config values for a daemon on the simulator's market maker account (BTC only by
    default: half the work for the tests)."""
    venue: dict[str, Any] = {
        "mode": "sim",
        "account": "mm",
        "api_key": MM_KEY,
        "api_secret": MM_SECRET,
        "underlyings": list(underlyings),
        "request_timeout_s": 5.0,
    }
    if rest_url is not None:
        venue["rest_url"] = rest_url
        venue["ws_url"] = ws_url
    values: dict[str, Any] = {
        "numeraire": "coin",
        "log": {"level": "warning", "format": "json"},
        "venues": {"sim": venue},
        "journal": {"path": str(workdir / "journal.sqlite")},
        "control": {"socket_path": str(workdir / "ctl.sock")},
        "metrics": {"port": 0},
        "daemon": {
            "evaluate_interval_s": 1.0,
            "status_line": False,
            "hedge_instruments": {"BTC": ["BTC-PERPETUAL"], "ETH": ["ETH-PERPETUAL"]},
            "shutdown_timeout_s": 5.0,
        },
        "hedging": {
            "default_policy": "t",
            "policies": {
                "t": {
                    "kind": "hedgerd",
                    "risk_aversion_per_usd": 0.05,
                    "rebalance_to": "target",
                    "min_halfwidth_coin": 0.5,
                }
            },
        },
    }
    for key, value in (extra or {}).items():
        values[key] = value
    return values


def toml_text(values: dict[str, object]) -> str:
    """A config as TOML (for a `hedgerd` subprocess): one line per top-level key, tables inline."""
    return "".join(f"{json.dumps(k)} = {_toml_inline(v)}\n" for k, v in values.items())


def _toml_inline(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{json.dumps(k)} = {_toml_inline(v)}" for k, v in value.items())
            + " }"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    return json.dumps(value)


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = 0.02,
) -> None:
    """Poll `predicate` (every `interval_s`) until it holds; fail with `what` after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def orders_received(sim: Simulator) -> int:
    """Orders the simulator received from any client (ground truth of "an order was sent")."""
    return sum(sim.server.counters.orders_received.values())


def mm_open_orders(sim: Simulator) -> list[Any]:
    accounts: Any = getattr(sim.engine, "accounts", {})
    return list(accounts["mm"].open_orders.values())


@dataclass
class Running:
    sim: Simulator
    daemon: Daemon
    stop: asyncio.Event
    task: asyncio.Task[int]

    async def shutdown(self, timeout_s: float = 15.0) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, timeout_s)


@contextlib.asynccontextmanager
async def simulator(
    speed: float, seed: int | None = 3, accounts: Sequence[Any] = (), **kw: Any
) -> AsyncIterator[Simulator]:
    """The simulator on 127.0.0.1 (port 0), started at the pinned `TEST_START_MS`;
    `accounts`: extra client accounts; `kw`: more of `sim.command.start_simulator`'s
    arguments (scenario, venues)."""
    async with running_simulator(
        host="127.0.0.1",
        port=0,
        seed=seed,
        speed=speed,
        start_ms=TEST_START_MS,
        accounts=accounts,
        **kw,
    ) as sim:
        yield sim


def on_sim_calendar(sim: Simulator) -> dict[str, str]:
    """Environment additions that run a `hedgerd run` process on the simulator's calendar
    (`hedgerd.sim.wall_clock`); skips where libfaketime is absent."""
    try:
        return wall_clock.on_sim_calendar(sim)
    except wall_clock.FaketimeMissingError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")


async def start_daemon(
    sim: Simulator,
    values: dict[str, Any],
    speed: float,
    exchanges: Sequence[str] = ("deribit",),
) -> Running:
    """A `Daemon` on `sim` (clock: the simulator's), started and READY; `exchanges`: the
    venues `sim` serves (an OKX account needs "okx")."""
    config = paper_config(HedgerdConfig(**values), sim, exchanges, speed)
    daemon = Daemon(
        config,
        clock_ms=lambda: int(sim.engine.now_ms()),
        speed=speed,
        board_clock_ms=lambda: time.time_ns() // 1_000_000,
    )
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(daemon.run(stop))

    async def ready() -> bool:
        if task.done():
            task.result()  # raise the start-up error
        return daemon.ready.is_set()

    await wait_for(ready, 40.0, "the daemon to become ready")
    return Running(sim, daemon, stop, task)


async def loop_running(run: Running) -> None:
    """Wait for the daemon's hedge loop to run: its start resets the flow and vol-of-vol
    seeds, so an evaluation begun before it may decide without them."""
    await wait_for(run.daemon.hedge_loop.running.is_set, 20.0, "the hedge loop to run")


async def decide(run: Running, underlying: str = "BTC") -> tuple[HedgeDecision, UnderlyingRisk]:
    """One evaluation of `underlying` with a decision (the book complete: evaluations are
    asked again until one decides; the hedge loop's start round over), and the risk it was
    made on. The start round's evaluation, left to run beside the test's, could be slowed
    on a loaded machine past the test's next step and read the clock and the marks there:
    a vol-of-vol sample kept from the marks half moved, and `last_risk` not the test's (CI,
    2026-12-07)."""
    await loop_running(run)
    loop = run.daemon.hedge_loop
    await wait_for(lambda: loop.rounds >= 1, 20.0, "the hedge loop's start round")
    got: list[HedgeDecision] = []

    async def decided() -> bool:
        d = await run.daemon.evaluate(underlying)
        if d is not None:
            got.append(d)
        return bool(got)

    await wait_for(decided, 20.0, "a decision", interval_s=0.1)
    risk = run.daemon.stats.per_underlying[underlying].last_risk
    assert risk is not None
    return got[0], risk


async def status(socket_path: Path) -> dict[str, Any]:
    """`GET /v1/status` over the control socket."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get("http://hedgerd/v1/status") as resp,
    ):
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def hedgerctl(socket_path: Path, *args: str) -> tuple[int, str]:
    """Run `hedgerctl --socket PATH ARGS...` as the operator would; (exit code, stdout)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hedgerd.ctl",
        "--socket",
        str(socket_path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30.0)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def admin_trade(sim: Simulator, instrument: str, side: str, amount: float) -> None:
    """A trade on the market maker's account that the daemon did not cause (another client
    hit its quote), booked through the simulator's admin API."""
    body = {"account": "mm", "instrument": instrument, "side": side, "amount": amount}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/sim/admin/accounts/trade", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


def atm_call(sim: Simulator) -> str:
    """A BTC call a few weeks out, struck nearest the index (delta about 0.5)."""
    engine: Any = sim.engine
    index = engine.index_price("BTC")
    calls = [
        i
        for i in engine.catalog.active()
        if i.is_option and i.currency == "BTC" and i.option_type == "call"
    ]
    expiries = sorted({i.expiry_ms for i in calls})
    expiry = expiries[min(3, len(expiries) - 1)]
    return str(
        min((i for i in calls if i.expiry_ms == expiry), key=lambda i: abs(i.strike - index)).name
    )


NOW_MS = 1_790_000_000_000


def make_book() -> GreeksBook:
    book = GreeksBook()
    book.add_instrument(parse_instrument_name("BTC-PERPETUAL"))
    book.set_index("BTC", 100_000.0)
    return book


@contextlib.asynccontextmanager
async def wired(tmp_path: Path) -> AsyncIterator[tuple[Daemon, TradingStateMachine]]:
    """A daemon with only the parts `_on_reconcile` uses (nothing connected), and its
    trading state machine."""
    journal = await Journal.open(tmp_path / "j.sqlite")
    try:
        machine = await TradingStateMachine.restore(journal, clock_ms=lambda: NOW_MS)
        daemon = Daemon(HedgerdConfig(venues={"deribit": VenueSettings()}), clock_ms=lambda: NOW_MS)
        daemon.board = KillSwitchBoard(KillSwitchSettings(), machine)
        daemon.book = make_book()
        daemon.venue = SimpleNamespace(name="deribit")  # type: ignore[assignment]
        yield daemon, machine
        await machine.flush()
    finally:
        await journal.close()


# --------------------------------------------------------------- a Deribit and an OKX account
#: The venues of the two-venue tests (both APIs on the simulator's one port).
TWO_VENUES = ("deribit", "okx")
#: OKX's hedge instrument in these tests: the inverse swap (100 USD contracts).
OKX_SWAP = "BTC-USD-SWAP"


def two_venue_scenario(seed: int = 7, *, still: bool = False, **okx: float) -> Scenario:
    """OKX's swap far cheaper to trade than Deribit's perpetual (0.1 bps half spread and deep
    levels against 10 bps), with no funding or basis on either venue to blur the comparison
    (Deribit's perpetual premium held at 0); `okx`: `OkxVenueSpec` fields to change.
    `still`: no option flow and no jumps, so the book's delta moves only with the index's
    diffusion and the test's own trades (each hedge is one the test asked for)."""
    data = load_scenario(None, seed=seed).model_dump()
    if still:
        data["flow"]["rate_per_min"] = 0.0
        for u in data["underlyings"]:
            u["jumps"]["intensity_per_day"] = 0.0
    data["book"]["future_half_spread_bps"] = 10.0
    data["funding"].update(premium_mean_bps=0.0, premium_vol_bps=0.0)
    data["venues"]["okx"].update(
        half_spread_bps=0.1,
        level_step_bps=0.1,
        swap_size_0_contracts=2_000.0,
        funding_rate_8h=0.0,
        swap_basis_bps=0.0,
    )
    data["venues"]["okx"].update(okx)
    return Scenario.model_validate(data)


@contextlib.asynccontextmanager
async def two_venue_simulator(scenario: Scenario, speed: float) -> AsyncIterator[Simulator]:
    """The simulator serving Deribit and OKX on 127.0.0.1 from `TEST_START_MS`; the market
    maker's account exists on both (same key and secret)."""
    twin = (MM_KEY, MM_SECRET, OKX_DEFAULT_PASSPHRASE)
    async with simulator(speed, None, [twin], scenario=scenario, venues=TWO_VENUES) as sim:
        yield sim


def two_venue_values(
    work: Path, *, okx_roles: Sequence[str] = ("hedge",), extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Config values of a daemon with two accounts: `deribit` (the market maker's options
    book, hedging on BTC-PERPETUAL) and `okx` (its OKX twin, hedging on the inverse swap).
    BTC only, coin numeraire."""
    values = daemon_config(work, extra=extra)
    deribit = dict(values["venues"]["sim"], roles=["options", "hedge"])
    okx = {
        "exchange": "okx",
        "mode": "sim",
        "account": "mm-okx",
        "api_key": MM_KEY,
        "api_secret": MM_SECRET,
        "api_passphrase": OKX_DEFAULT_PASSPHRASE,
        "roles": list(okx_roles),
        "underlyings": ["BTC"],
        "hedge_instruments": {"BTC": [OKX_SWAP]},
        "request_timeout_s": 5.0,
        "dead_man_s": 60,
    }
    values["venues"] = {"deribit": deribit, "okx": okx}
    return values


def deribit_position(sim: Simulator, instrument: str = "BTC-PERPETUAL") -> float:
    """The market maker's Deribit position (its amount unit: USD for the perpetual), the
    simulator's truth."""
    pos = sim.engine.accounts["mm"].positions.get(instrument)
    return float(pos.size) if pos is not None else 0.0


def okx_position(sim: Simulator, inst_id: str = OKX_SWAP) -> float:
    """The market maker's OKX position (contracts), the simulator's truth."""
    for acct in sim.okx.accounts.values():
        if acct.creds.api_key == MM_KEY:
            pos = acct.positions.get(inst_id)
            return float(pos.size) if pos is not None else 0.0
    raise AssertionError("no OKX twin of the market maker")


async def sim_admin(sim: Simulator, path: str, body: object = None) -> Any:
    """POST `body` (JSON) to the simulator's `/sim/admin/PATH`; its JSON answer (asserts 200)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/sim/admin/{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def venue_fault(sim: Simulator, venue: str, body: dict[str, Any]) -> int:
    """Add one fault on `venue`'s wire (`hedgerd.sim.faults`); its id."""
    added = await sim_admin(sim, "faults", {"venue": venue, **body})
    return int(added["added"][0]["id"])


def duplicate_orders(sim: Simulator) -> set[str]:
    """Client ids the simulator received or accepted more than once, on either venue (the
    chaos drill's duplicate check)."""
    c = sim.server.counters
    counts = [c.orders_received, c.orders_accepted]
    for dialect in sim.server.dialects.values():
        counts += [dialect.counters.received_by_cl_ord_id, dialect.counters.accepted_by_cl_ord_id]
    return {k for counter in counts for k, n in counter.items() if k and n > 1}


class Decisions:
    """A `HedgeObserver` that keeps every decision with legs (install on
    `daemon.hedge_loop.observer`)."""

    def __init__(self) -> None:
        self.trades: list[HedgeDecision] = []

    def on_decision(self, decision: HedgeDecision) -> None:
        if decision.legs:
            self.trades.append(decision)

    def on_hedge_fill(self, underlying: str, fill: Fill, cost_usd: float) -> None:
        return None

    def venues_of(self, decision: HedgeDecision) -> set[str]:
        return {leg.venue for leg in decision.legs}


def in_band(stats: Any) -> bool:
    """Whether an underlying's stats (`daemon.stats.per_underlying[U]`) show a hedge done and
    the delta of the last evaluation inside its band."""
    lo, _target, hi = stats.last_band
    return bool(stats.hedges > 0 and lo <= stats.last_delta_coin <= hi)


async def filled_by_venue(daemon: Daemon, decisions: Sequence[HedgeDecision]) -> dict[str, float]:
    """Signed filled amount (the instrument's amount unit) per account over the orders of
    `decisions`, from the journal."""
    assert daemon.journal is not None
    out: dict[str, float] = {}
    for d in decisions:
        for order in await daemon.journal.orders_for_decision(d.decision_id):
            signed = order.side.sign * order.filled_amount
            out[order.venue] = out.get(order.venue, 0.0) + signed
    return out


def hedges_seen(daemon: Daemon, sim: Simulator) -> bool:
    """Whether the daemon's book holds both hedge positions as the simulator does (Deribit's
    perpetual in USD, OKX's swap in contracts of 100 USD) and no execution is running."""
    perp = daemon.accounts["deribit"].market.position_amount("deribit", "BTC-PERPETUAL")
    swap = daemon.accounts["okx"].market.position_amount("okx", OKX_SWAP)
    return (
        not daemon.hedge_loop.exec_tasks
        and perp == deribit_position(sim)
        and swap == okx_position(sim) * 100.0
    )


async def settle_two_venues(run: Running, quiet_evaluations: int = 3) -> None:
    """Wait until the first hedges are done and seen: the delta in its band, both hedge
    positions in the book as in the simulator, nothing executing, for `quiet_evaluations`
    evaluations in a row (the start's hedge may be sliced; the book must have caught up with
    every slice before a test's own step)."""
    stats = run.daemon.stats.per_underlying["BTC"]
    quiet: list[int] = []

    def calm() -> bool:
        if not (in_band(stats) and hedges_seen(run.daemon, run.sim)):
            quiet.clear()
            return False
        n = run.daemon.stats.evaluations
        if not quiet or quiet[-1] != n:
            quiet.append(n)
        return len(quiet) > quiet_evaluations

    await wait_for(calm, 40.0, "the first hedges done and in the book")


async def control_post(socket_path: Path, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """`POST /v1/PATH` over the control socket (what `hedgerctl` sends, without its process
    start: a few wall seconds each on a loaded machine)."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(f"http://hedgerd/v1/{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def move_target(run: Running, socket_path: Path, coin: float) -> float:
    """Set BTC's target `coin` away from the last evaluation's delta (positive: a buy
    hedge of about `coin`), as `hedgerctl set hedging.BTC.target_coin` does; the target."""
    stats = run.daemon.stats.per_underlying["BTC"]
    # From an evaluation begun after this call: the last one may have read the books before
    # the hedge just done reached them (its delta is then a hedge behind).
    seen = stats.samples
    await wait_for(lambda: stats.samples >= seen + 2, 20.0, "a fresh evaluation of BTC")
    target = round(stats.last_delta_coin + coin, 3)
    await control_post(socket_path, "set", {"key": "hedging.BTC.target_coin", "value": str(target)})
    return target


async def hedge_and_see(
    run: Running, socket_path: Path, coin: float, moved: str | None, still: str | None
) -> None:
    """Move BTC's target `coin` from the current delta (positive: a buy hedge); wait until
    the hedge moved account `moved`'s position ("deribit" or "okx"; None: either venue's)
    and is seen in the book; `still`'s position (None: no check) did not move."""
    sim = run.sim
    pos = {"deribit": lambda: deribit_position(sim), "okx": lambda: okx_position(sim)}
    before = {name: get() for name, get in pos.items()}
    moving = list(pos) if moved is None else [moved]
    await move_target(run, socket_path, coin)
    await wait_for(
        lambda: any(pos[name]() != before[name] for name in moving),
        20.0,
        f"a hedge on {moved or 'either venue'}",
    )
    await wait_for(lambda: hedges_seen(run.daemon, sim), 20.0, "the hedge done and seen")
    if still is not None:
        assert pos[still]() == before[still], f"{still} traded"
