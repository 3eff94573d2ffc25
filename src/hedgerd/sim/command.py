"""`hedgerd exchange-sim` and the in-process API to start and stop the simulator.

    async with running_simulator(scenario=None, seed=7, stepped=True,
                                 accounts=[("key", "secret")]) as sim:
        exchange.urls["api"] = {"rest": sim.rest_url, "ws": sim.ws_url}
        ...
        sim.advance(1_000)          # stepped time: one simulated second

Both venues on one port (Deribit under /api/v2, OKX under /api/v5 and /ws/v5/...):

    async with running_simulator(venues=("deribit", "okx"), stepped=True,
                                 accounts=[("key", "secret")], api_passphrase="pass") as sim:
        okx = ccxt.async_support.okx({"apiKey": "key", "secret": "secret",
                                      "password": "pass"})
        okx.urls["api"] = sim.okx_urls()     # {"rest": "http://127.0.0.1:P",
                                             #  "ws": "ws://127.0.0.1:P/ws/v5"}
        sim.world.okx                        # the OKX venue (engine side)

Each client account exists on every served venue under the same key and secret (OKX: 10 BTC,
100 ETH, 100,000 USDT, no positions, passphrase `api_passphrase`, default
`OKX_DEFAULT_PASSPHRASE`).

Port 0 (the default here) picks a free port. The server refuses to listen on anything but a
loopback address unless `allow_remote=True` (`--allow-remote`): it has no real security.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from hedgerd.sim.clock import SimClock
from hedgerd.sim.deribit.ratelimit import RateLimitConfig
from hedgerd.sim.faults import FaultInjector
from hedgerd.sim.protocol import Account, SimEngine
from hedgerd.sim.scenario import AccountSpec, OkxAccountSpec, Scenario, load_scenario
from hedgerd.sim.server import SimServer

if TYPE_CHECKING:
    from hedgerd.sim.okx.venue import OkxVenue
    from hedgerd.sim.world import SimWorld

log = structlog.get_logger(__name__)

AccountLike = Account | AccountSpec | tuple[str, str] | tuple[str, str, str]
OKX_DEFAULT_PASSPHRASE = "sim-passphrase"


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _account_specs(accounts: Iterable[AccountLike], taken: set[str]) -> list[AccountSpec]:
    """Trading accounts for clients: 10 BTC, 100 ETH, 100,000 USDC, no positions."""
    out: list[AccountSpec] = []
    for i, a in enumerate(accounts):
        if isinstance(a, AccountSpec):
            spec = a
        elif isinstance(a, Account):
            spec = AccountSpec(name=a.account_id, api_key=a.api_key, api_secret=a.api_secret)
        else:
            key, secret = a[0], a[1]
            spec = AccountSpec(
                name=f"client{i + 1}" if i else "client", api_key=key, api_secret=secret
            )
        if spec.api_key in taken:
            continue
        taken.add(spec.api_key)
        out.append(spec)
    return out


def build_scenario(
    scenario: Scenario | str | Path | None,
    *,
    seed: int | None = None,
    accounts: Iterable[AccountLike] = (),
    start_ms: int | str | None = None,
    tick_ms: int | None = None,
    flow_rate_per_min: float | None = None,
    api_passphrase: str | None = None,
) -> Scenario:
    """The scenario (default when None) with `seed`, `start_ms` (UTC epoch ms, or "now": the
    wall clock rounded down to the second), `tick_ms` (the market step, simulated ms),
    `flow_rate_per_min` (client option trades per simulated minute; 0 keeps the books still)
    and the extra client accounts applied."""
    if isinstance(scenario, Scenario):
        sc = scenario if seed is None else scenario.model_copy(update={"seed": seed})
    else:
        sc = load_scenario(scenario, seed=seed)
    if start_ms is not None:
        start = int(time.time()) * 1000 if start_ms == "now" else int(start_ms)
        sc = sc.model_copy(update={"start_ms": start})
    if tick_ms is not None:
        # Validated like the file's own value (1 ms .. 60 s).
        sc = Scenario.model_validate({**sc.model_dump(), "tick_ms": tick_ms})
    if flow_rate_per_min is not None:
        flow = {**sc.flow.model_dump(), "rate_per_min": flow_rate_per_min}
        sc = Scenario.model_validate({**sc.model_dump(), "flow": flow})
    accounts = list(accounts)
    extra = _account_specs(accounts, {a.api_key for a in sc.accounts})
    if extra:
        sc = Scenario.model_validate({**sc.model_dump(), "accounts": [*sc.accounts, *extra]})
    okx_extra = _okx_account_specs(
        accounts, {a.api_key for a in sc.venues.okx.accounts}, api_passphrase
    )
    if okx_extra:
        data = sc.model_dump()
        data["venues"]["okx"]["accounts"] += [a.model_dump() for a in okx_extra]
        sc = Scenario.model_validate(data)
    return sc


def _okx_account_specs(
    accounts: Iterable[AccountLike], taken: set[str], passphrase: str | None
) -> list[OkxAccountSpec]:
    """The OKX twins of the client accounts: same key and secret, the passphrase of a
    (key, secret, passphrase) triple or `passphrase`, funded with 10 BTC, 100 ETH and
    100,000 USDT."""
    out: list[OkxAccountSpec] = []
    for i, a in enumerate(accounts):
        if isinstance(a, AccountSpec | Account):
            key, secret, name = a.api_key, a.api_secret, getattr(a, "name", None)
            phrase = passphrase
        else:
            key, secret = a[0], a[1]
            phrase = a[2] if len(a) > 2 else passphrase
            name = None
        if key in taken:
            continue
        taken.add(key)
        out.append(
            OkxAccountSpec(
                name=name or (f"client{i + 1}" if i else "client"),
                api_key=key,
                api_secret=secret,
                passphrase=phrase or OKX_DEFAULT_PASSPHRASE,
            )
        )
    return out


def build_engine(
    scenario: Scenario, clock: SimClock, venues: Sequence[str] = ("deribit",)
) -> SimEngine:
    """The engine (`SimExchange`, the Deribit venue of a `SimWorld` with `venues`; the world
    is its `.world`) for a scenario, on `clock`; the clock is held at most a few market
    steps (or half a wall second at its speed) ahead of the engine's market time."""
    from hedgerd.sim.world import SimWorld

    exchange = SimWorld.build(scenario, clock, venues).deribit
    # An engine that falls behind slows the clock instead of blocking to catch up.
    clock.limit_lead(lambda: exchange.market_ms, min_lead_ms=4 * scenario.tick_ms)
    engine: SimEngine = exchange
    return engine


@dataclass(slots=True)
class Simulator:
    """A running simulator: URLs for clients, the engine, faults and time control."""

    server: SimServer
    scenario: Scenario | None

    @property
    def rest_url(self) -> str:
        return self.server.rest_url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def engine(self) -> SimEngine:
        return self.server.engine

    @property
    def faults(self) -> FaultInjector:
        return self.server.faults

    @property
    def clock(self) -> Any:
        return self.server.clock

    @property
    def port(self) -> int:
        return self.server.port

    def advance(self, ms: int) -> int:
        """Move simulated time forward by `ms` (stepped or not); returns the new time, UTC ms."""
        return self.server.advance(ms)

    def now_ms(self) -> int:
        return int(self.server.engine.now_ms())

    def state(self) -> dict[str, Any]:
        from hedgerd.sim.admin import state_of

        return state_of(self.server)

    def ccxt_urls(self) -> dict[str, str]:
        """What to put in a ccxt deribit client's `urls['api']`."""
        return {"rest": self.rest_url, "ws": self.ws_url}

    @property
    def world(self) -> SimWorld:
        """The shared market and its venues (`world.deribit`, `world.okx`)."""
        world = getattr(self.server.engine, "world", None)
        assert world is not None, "the engine was not built by a SimWorld"
        return world  # type: ignore[no-any-return]

    @property
    def okx(self) -> OkxVenue:
        """The OKX venue (engine side); the simulator must serve okx."""
        venue = self.world.okx
        if venue is None:
            raise RuntimeError("this simulator does not serve okx (venues=('deribit', 'okx'))")
        return venue

    @property
    def okx_ws_url(self) -> str:
        """The OKX WebSocket base: ccxt appends /public, /private or /business."""
        return self.ws_url.replace("/ws/api/v2", "/ws/v5")

    def okx_urls(self) -> dict[str, str]:
        """What to put in a ccxt okx client's `urls['api']` (and `urls['test']` in sandbox
        mode): REST without /api/v5 (ccxt adds it), WS without the scope."""
        return {"rest": self.rest_url, "ws": self.okx_ws_url}

    async def stop(self) -> None:
        await self.server.stop()


def start_ms_arg(text: str) -> int | str:
    """A `--start-ms` command-line value: UTC epoch ms (> 0), or "now" (the wall clock)."""
    if text == "now":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected UTC epoch ms or 'now', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected UTC epoch ms > 0, got {value}")
    return value


async def start_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    scenario: Scenario | str | Path | None = None,
    seed: int | None = None,
    accounts: Sequence[AccountLike] = (),
    speed: float = 1.0,
    stepped: bool = False,
    start_ms: int | str | None = None,
    tick_ms: int | None = None,
    flow_rate_per_min: float | None = None,
    rate_limits: RateLimitConfig | bool | None = True,
    engine: SimEngine | None = None,
    engine_factory: Callable[[], SimEngine] | None = None,
    allow_remote: bool = False,
    venues: Sequence[str] = ("deribit",),
    api_passphrase: str | None = None,
    okx_demo: bool | None = None,
    **server_kw: Any,
) -> Simulator:
    """Start a simulator and return it (call `await sim.stop()`).

    `scenario`: a Scenario, a TOML path or None (the default BTC + ETH market); `seed`
    overrides its seed; `accounts`: extra client accounts (`(key, secret)` pairs, `Account`s
    or `AccountSpec`s), funded with 10 BTC, 100 ETH and 100,000 USDC. `speed`: simulated
    seconds per wall second; `stepped`: time moves only through `sim.advance(ms)` or the
    admin API; `start_ms`: simulated start (UTC epoch ms, or "now" so that simulated time
    matches the wall clock, as paper trading wants; default: the scenario's); `tick_ms`: the
    market step in simulated ms (default: the scenario's; coarser lets high `speed` keep up);
    `flow_rate_per_min`: client option trades per simulated minute (default: the scenario's).
    `rate_limits`: True for Deribit's defaults, False/None to switch them off, or a
    `RateLimitConfig`. `engine`/`engine_factory` replace the default engine (tests).
    `server_kw` go to `SimServer` (tick_s, heartbeat_scale, max_queue, cod_cancels, ...).
    `venues`: the venues served on the port (`("deribit", "okx")` adds OKX API v5; every
    client account then also exists on OKX with passphrase `api_passphrase`); `okx_demo`:
    True makes OKX a demo venue that refuses requests without `x-simulated-trading: 1`
    (default: the scenario's `venues.okx.require_simulated_header`).
    """
    from hedgerd.sim.world import parse_venues

    venue_names = parse_venues(venues)
    if not allow_remote and not is_loopback_host(host):
        raise ValueError(
            f"refusing to listen on {host}: the simulator is for loopback use "
            "(pass allow_remote=True / --allow-remote to override)"
        )
    if rate_limits is True:
        limits = RateLimitConfig()
    elif rate_limits is False or rate_limits is None:
        limits = RateLimitConfig.disabled()
    else:
        limits = rate_limits
    sc: Scenario | None = None
    if engine is None and engine_factory is None:
        sc = build_scenario(
            scenario,
            seed=seed,
            accounts=accounts,
            start_ms=start_ms,
            tick_ms=tick_ms,
            flow_rate_per_min=flow_rate_per_min,
            api_passphrase=api_passphrase,
        )
        scenario_fixed = sc

        def factory() -> SimEngine:
            clock = SimClock(scenario_fixed.start_ms, speed=speed, stepped=stepped)
            return build_engine(scenario_fixed, clock, venue_names)

        engine_factory = factory
    if engine is None:
        assert engine_factory is not None
        engine = engine_factory()
    faults = FaultInjector(seed=sc.seed if sc is not None else (seed or 0))
    server = SimServer(
        engine,
        rate_limits=limits,
        faults=faults,
        testnet=sc.testnet if sc is not None else True,
        engine_factory=engine_factory,
        admin_remote=allow_remote,
        **server_kw,
    )
    if sc is not None:
        _schedule_scenario_faults(server, sc)
    if "okx" in venue_names:
        from hedgerd.sim.okx.dialect import OkxDialect

        OkxDialect(server, rate_limits=limits.enabled, require_simulated_header=okx_demo)
    await server.start(host, port)
    return Simulator(server, sc)


def _schedule_scenario_faults(server: SimServer, sc: Scenario) -> None:
    for spec in sc.faults:
        if spec.kind != "price_gap":  # the engine applies scheduled price gaps itself
            server.faults.add_scheduled(spec, sc.start_ms)


@contextlib.asynccontextmanager
async def running_simulator(**kwargs: Any) -> AsyncIterator[Simulator]:
    """`async with running_simulator(...) as sim:` — `start_simulator` and a sure stop."""
    sim = await start_simulator(**kwargs)
    try:
        yield sim
    finally:
        await sim.stop()


# ----------------------------------------------------------------------------------- CLI
def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `exchange-sim` on an argparse subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "exchange-sim",
        help="run the exchange simulator (Deribit API v2; OKX API v5 with --venues)",
        description="Deribit API v2 (and, with --venues deribit,okx, OKX API v5) simulator on "
        "HTTP and WebSocket over one simulated market, with fault injection and time control "
        "under /sim/admin/.",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (0: pick a free one)")
    p.add_argument("--scenario", default=None, help="scenario TOML file (default: BTC + ETH)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the scenario)")
    p.add_argument("--api-key", default=None, help="add a client trading account with this key")
    p.add_argument("--api-secret", default=None, help="... and this secret")
    p.add_argument(
        "--api-passphrase",
        default=None,
        help=f"the OKX passphrase of that account (default {OKX_DEFAULT_PASSPHRASE})",
    )
    p.add_argument(
        "--venues",
        default="deribit",
        help="venues served on the port, comma-separated: deribit (/api/v2), okx (/api/v5)",
    )
    p.add_argument(
        "--okx-demo",
        action="store_true",
        help="OKX as a demo venue: refuse requests without x-simulated-trading: 1",
    )
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("--stepped", action="store_true", help="time moves only via the admin API")
    p.add_argument(
        "--start-ms",
        type=start_ms_arg,
        default=None,
        help="simulated start: UTC epoch ms, or 'now' (default: the scenario's start_ms)",
    )
    p.add_argument(
        "--tick-ms",
        type=int,
        default=None,
        help="market step in simulated ms (default: the scenario's, 250); coarser steps let "
        "a high --speed keep up",
    )
    p.add_argument(
        "--flow-rate",
        type=float,
        default=None,
        help="client option trades per simulated minute against the market maker (default: "
        "the scenario's, 2); 0 keeps the books still",
    )
    p.add_argument(
        "--no-rate-limits", action="store_true", help="switch off Deribit's credit buckets"
    )
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (unsafe)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT/SIGTERM; returns the exit code."""
    if (args.api_key is None) != (args.api_secret is None):
        print("exchange-sim: --api-key and --api-secret go together", file=sys.stderr)
        return 2
    if not args.allow_remote and not is_loopback_host(args.host):
        print(
            f"exchange-sim: refusing to listen on {args.host} (loopback only; --allow-remote)",
            file=sys.stderr,
        )
        return 2
    accounts: list[AccountLike] = []
    if args.api_key is not None:
        accounts.append((args.api_key, args.api_secret))
    try:
        return asyncio.run(_serve(args, accounts))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"exchange-sim: {exc}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace, accounts: list[AccountLike]) -> int:
    sim = await start_simulator(
        host=args.host,
        port=args.port,
        scenario=args.scenario,
        seed=args.seed,
        accounts=accounts,
        speed=args.speed,
        stepped=args.stepped,
        start_ms=args.start_ms,
        tick_ms=args.tick_ms,
        flow_rate_per_min=args.flow_rate,
        rate_limits=not args.no_rate_limits,
        allow_remote=args.allow_remote,
        venues=args.venues,
        api_passphrase=args.api_passphrase,
        okx_demo=True if args.okx_demo else None,
    )
    print(f"exchange-sim: REST {sim.rest_url}  WebSocket {sim.ws_url}", flush=True)
    if sim.world.okx is not None:
        print(f"exchange-sim: OKX REST {sim.rest_url}/api/v5  WebSocket {sim.okx_ws_url}")
    print(f"exchange-sim: admin {sim.rest_url}/sim/admin/state", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hedgerd.sim.command ...`: the same options as `hedgerd exchange-sim`."""
    parser = argparse.ArgumentParser(prog="hedgerd")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["exchange-sim", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
