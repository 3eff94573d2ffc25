"""`hedgerctl`: the operator's tool. Talks HTTP to the daemon's control API over its Unix
socket (owner-only), or over TCP on 127.0.0.1 with a bearer token from the environment.

Global options (--socket, --tcp, --config, --json, --timeout) go before or after the command.
Without --socket, --tcp or --config, hedgerctl finds the socket of a daemon started from the
current directory (`hedgerd.control.locate`). Output is tables and one-line confirmations for
people (`hedgerd.control.render`); `--json` prints the daemon's full documents for scripts.

Exit codes: 0 done; 1 the daemon refused the command (e.g. invalid value); 2 usage or config
error; 3 the daemon could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from hedgerd.control.locate import (
    SocketAmbiguousError,
    SocketNotFoundError,
    locate,
    socket_candidates,
)
from hedgerd.control.render import render_event, render_events, render_result, render_status
from hedgerd.control.watch import WatchRefusedError, WatchSettings, watch
from hedgerd.validation_errors import ConfigError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
TOKEN_ENV = "HEDGERCTL_TOKEN"


def _global_options(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes. The subcommands' copy has no defaults (SUPPRESS), so
    an option given before the command is not reset by the subcommand's parse."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser = argparse.ArgumentParser(add_help=False)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--socket",
        type=Path,
        default=default(None),
        help="control socket (default: from --config, else found from this directory)",
    )
    where.add_argument(
        "--tcp",
        metavar="PORT",
        type=int,
        default=default(None),
        help=f"control port on 127.0.0.1 (token in ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--config", type=Path, default=default(None), help="hedgerd config file (its socket)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the daemon's JSON instead of tables",
    )
    parser.add_argument(
        "--timeout", type=float, default=default(10.0), help="seconds to wait for an answer"
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hedgerctl",
        description="Operate a running hedgerd.",
        epilog="Options go before or after COMMAND. Without --socket, --tcp or --config, the "
        "socket of a daemon started from this directory is found. Exit codes: 0 done, 1 "
        "refused by the daemon, 2 usage or config error, 3 daemon unreachable.",
        parents=[_global_options(defaults=True)],
    )
    common = [_global_options(defaults=False)]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=common)

    add("status", "trading state, risk per underlying, orders, data freshness")
    view = add("watch", "the status table, refreshed in place (Ctrl-C ends)")
    view.add_argument("--interval", type=float, default=1.0, help="wall seconds per refresh")
    view.add_argument("--count", type=int, default=None, help="stop after N refreshes")
    halt = add("halt", "stop trading now and cancel the hedger's orders")
    halt.add_argument("--reason", default="operator halt", help="recorded in the journal")
    resume = add("resume", "return to ACTIVE")
    reduce_only = add("reduce-only", "only orders that reduce |net delta| pass")
    flatten = add("flatten", "close hedge positions (never options)")
    flatten.add_argument("underlying", nargs="?", help="only this underlying (default: all)")
    flatten.add_argument("--confirm", action="store_true", required=True, help="required")
    cancel_all = add("cancel-all", "cancel every open order of the hedger")
    for p in (halt, resume, reduce_only, flatten, cancel_all):
        p.add_argument(
            "--venue",
            metavar="NAME",
            default=None,
            help="only this venue account ([venues.NAME]); default: all of them",
        )
    add("reconcile", "reconcile orders and fills with the venue now")
    add("handoff", "HA: hand the leader lease to the standby now (this node stops hedging)")
    events = add("events", "the audit trail, one line per event (UTC times)")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--limit", type=int, default=50, help="how many recent events")
    setp = add("set", "change a live-tunable parameter")
    setp.add_argument("key", help="e.g. hedging.BTC.band_coin")
    setp.add_argument("value")
    return parser


def _venue(args: argparse.Namespace) -> dict[str, Any]:
    venue = getattr(args, "venue", None)
    return {} if venue is None else {"venue": venue}


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """The HTTP method, path and JSON body of a command."""
    match args.command:
        case "status" | "watch":
            return "GET", "/v1/status", None
        case "halt":
            return "POST", "/v1/halt", {"reason": args.reason, **_venue(args)}
        case "resume" | "reduce-only" | "cancel-all":
            return "POST", f"/v1/{args.command}", _venue(args)
        case "reconcile" | "handoff":
            return "POST", f"/v1/{args.command}", {}
        case "flatten":
            body = {"underlying": args.underlying, "confirm": True, **_venue(args)}
            return "POST", "/v1/flatten", body
        case "events":
            return "GET", f"/v1/events?limit={args.limit}&follow={int(args.follow)}", None
        case "set":
            return "POST", "/v1/set", {"key": args.key, "value": args.value}
    raise ValueError(args.command)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the daemon listens: its Unix socket, or a TCP port on 127.0.0.1."""

    socket_path: Path | None = None
    tcp_port: int | None = None

    def __str__(self) -> str:
        return f"127.0.0.1:{self.tcp_port}" if self.tcp_port is not None else str(self.socket_path)


def _target(args: argparse.Namespace) -> Target:
    if args.tcp is not None:
        return Target(tcp_port=args.tcp)
    return Target(socket_path=locate(socket_candidates(args.socket, args.config)))


class ControlClient:
    """One HTTP session to the daemon's control API. Connection failures surface as OSError
    (ConnectionError), whatever aiohttp raised."""

    def __init__(self, target: Target, timeout_s: float | None) -> None:
        headers: dict[str, str] = {}
        connector: aiohttp.BaseConnector
        if target.tcp_port is not None:
            token = os.environ.get(TOKEN_ENV)
            if not token:
                raise ConfigError(f"--tcp needs the control token in ${TOKEN_ENV}")
            headers["Authorization"] = f"Bearer {token}"
            connector = aiohttp.TCPConnector()
            self._base = f"http://127.0.0.1:{target.tcp_port}"
        else:
            connector = aiohttp.UnixConnector(path=str(target.socket_path))
            self._base = "http://hedgerd"
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), headers=headers
        )

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.close()

    async def call(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON answer)."""
        try:
            async with self._session.request(method, self._base + path, json=body) as resp:
                return resp.status, await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc

    async def stream(self, path: str, on_line: Callable[[str], None]) -> tuple[int, Any]:
        """GET a streamed answer (`events --follow`), each non-empty line to `on_line` as it
        comes; (HTTP status, the decoded error when the daemon refused, else None)."""
        try:
            async with self._session.get(self._base + path) as resp:
                if resp.status >= 400:
                    return resp.status, await resp.json(content_type=None)
                async for raw in resp.content:
                    if line := raw.decode().rstrip():
                        on_line(line)
                return resp.status, None
        except aiohttp.ClientError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc


def _print_event(as_json: bool, line: str) -> None:
    """One line of `events --follow`: the daemon's JSON, or the human line."""
    print(line if as_json else render_event(json.loads(line)), flush=True)


async def _call(args: argparse.Namespace, target: Target) -> tuple[int, Any]:
    method, path, body = _request(args)
    streaming = args.command == "events" and args.follow
    timeout = None if args.command == "events" else args.timeout
    async with ControlClient(target, timeout) as client:
        if streaming:
            return await client.stream(path, partial(_print_event, args.json))
        return await client.call(method, path, body)


async def _watch(args: argparse.Namespace, target: Target) -> None:
    async with ControlClient(target, args.timeout) as client:

        async def fetch() -> Mapping[str, Any]:
            code, payload = await client.call("GET", "/v1/status", None)
            if code >= 400 or not isinstance(payload, Mapping):
                error = payload.get("error") if isinstance(payload, Mapping) else payload
                raise WatchRefusedError(str(error))
            return payload

        settings = WatchSettings(
            interval_s=args.interval, count=args.count, tty=sys.stdout.isatty()
        )
        await watch(fetch, sys.stdout, settings, asyncio.sleep)


def _print(args: argparse.Namespace, code: int, payload: Any) -> None:
    if args.json:
        print(json.dumps(payload, indent=2))
    elif code >= 400:
        error = payload.get("error") if isinstance(payload, Mapping) else payload
        print(f"hedgerctl: {args.command} refused: {error}", file=sys.stderr)
    elif args.command == "status":
        print(render_status(payload))
    elif args.command == "events":
        print(render_events(payload))
    else:
        print(render_result(args.command, payload))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before and after the command land in one namespace: the group cannot see both.
    if args.socket is not None and args.tcp is not None:
        parser.error("--socket and --tcp: give one")
    if args.command == "watch" and not (
        args.interval > 0 and (args.count is None or args.count > 0)
    ):
        parser.error("watch: --interval and --count must be positive")
    target: Target | None = None
    try:
        target = _target(args)
        if args.command == "watch":
            asyncio.run(_watch(args, target))
            return EXIT_OK
        code, payload = asyncio.run(_call(args, target))
    except KeyboardInterrupt:
        return EXIT_OK  # how `watch` and `events --follow` end
    except (ConfigError, SocketAmbiguousError) as exc:
        print(f"hedgerctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SocketNotFoundError as exc:
        print(f"hedgerctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except WatchRefusedError as exc:
        print(f"hedgerctl: status refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, TimeoutError) as exc:
        print(f"hedgerctl: cannot reach hedgerd at {target}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if payload is not None:
        _print(args, code, payload)
    return EXIT_OK if code < 400 else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
