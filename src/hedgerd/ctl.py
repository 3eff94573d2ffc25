"""`hedgerctl`: the operator's tool. Talks HTTP to the daemon's control API over its Unix
socket (owner-only), or over TCP on 127.0.0.1 with a bearer token from the environment.

Exit codes: 0 done; 1 the daemon refused the command (e.g. invalid value); 2 usage or config
error; 3 the daemon could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from hedgerd.config import ConfigError, load_config

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
TOKEN_ENV = "HEDGERCTL_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hedgerctl", description="Operate a running hedgerd.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help="control socket (default: from --config)")
    where.add_argument("--tcp", metavar="PORT", type=int, help="control port on 127.0.0.1")
    parser.add_argument("--config", type=Path, help="hedgerd config file (for the socket path)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="trading state, risk per underlying, orders, data freshness")
    halt = sub.add_parser("halt", help="stop trading now and cancel the hedger's orders")
    halt.add_argument("--reason", default="operator halt", help="recorded in the journal")
    sub.add_parser("resume", help="return to ACTIVE")
    sub.add_parser("reduce-only", help="only orders that reduce |net delta| pass")
    flatten = sub.add_parser("flatten", help="close hedge positions (never options)")
    flatten.add_argument("underlying", nargs="?", help="only this underlying (default: all)")
    flatten.add_argument("--confirm", action="store_true", required=True, help="required")
    sub.add_parser("cancel-all", help="cancel every open order of the hedger")
    sub.add_parser("reconcile", help="reconcile orders and fills with the venue now")
    events = sub.add_parser("events", help="the audit trail")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--limit", type=int, default=50, help="how many recent events")
    setp = sub.add_parser("set", help="change a live-tunable parameter")
    setp.add_argument("key", help="e.g. hedging.BTC.band_coin")
    setp.add_argument("value")
    return parser


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """The HTTP method, path and JSON body of a command."""
    match args.command:
        case "status":
            return "GET", "/v1/status", None
        case "halt":
            return "POST", "/v1/halt", {"reason": args.reason}
        case "resume" | "reduce-only" | "cancel-all" | "reconcile":
            return "POST", f"/v1/{args.command}", {}
        case "flatten":
            return "POST", "/v1/flatten", {"underlying": args.underlying, "confirm": True}
        case "events":
            return "GET", f"/v1/events?limit={args.limit}&follow={int(args.follow)}", None
        case "set":
            return "POST", "/v1/set", {"key": args.key, "value": args.value}
    raise ValueError(args.command)


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    return load_config(args.config).control.socket_path


async def _call(args: argparse.Namespace) -> tuple[int, Any]:
    method, path, body = _request(args)
    headers: dict[str, str] = {}
    connector: aiohttp.BaseConnector
    if args.tcp is not None:
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise ConfigError(f"--tcp needs the control token in ${TOKEN_ENV}")
        headers["Authorization"] = f"Bearer {token}"
        connector = aiohttp.TCPConnector()
        base = f"http://127.0.0.1:{args.tcp}"
    else:
        connector = aiohttp.UnixConnector(path=str(_socket_path(args)))
        base = "http://hedgerd"
    timeout = aiohttp.ClientTimeout(total=None if args.command == "events" else args.timeout)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session,
        session.request(method, base + path, json=body) as resp,
    ):
        if args.command == "events" and args.follow:
            async for line in resp.content:
                print(line.decode().rstrip(), flush=True)
            return resp.status, None
        return resp.status, await resp.json(content_type=None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status, payload = asyncio.run(_call(args))
    except ConfigError as exc:
        print(f"hedgerctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"hedgerctl: cannot reach hedgerd: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if payload is not None:
        print(json.dumps(payload, indent=2) if args.json else _render(payload))
    return EXIT_OK if status < 400 else EXIT_REFUSED


def _render(payload: Any) -> str:
    """A readable rendering: nested mappings as indented key/value lines."""
    lines: list[str] = []

    def walk(value: Any, indent: int) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict | list) and item:
                    lines.append(f"{pad}{key}:")
                    walk(item, indent + 1)
                else:
                    lines.append(f"{pad}{key}: {item}")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    lines.append(f"{pad}-")
                    walk(item, indent + 1)
                else:
                    lines.append(f"{pad}- {item}")
        else:
            lines.append(f"{pad}{value}")

    walk(payload, 0)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
