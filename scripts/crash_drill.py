#!/usr/bin/env python3
"""Crash drill: `hedgerd run` as a subprocess against a simulator this script runs in-process
(loopback, a free port, simulated time = wall time), SIGKILLed at random moments `--restarts`
times and restarted on the same journal. Before each kill the index may be gapped (so the
daemon is hedging when it dies) and, now and then, trading is halted through the control
socket: the restarted daemon must come back in the state it died in (HALTED stays HALTED).

Prints (and writes with `--json OUT`): restarts, kills, duplicate orders (a label received or
accepted twice by the simulator, or a decision leg filled beyond what it asked: must be 0),
lost fills and double fills (simulator trades of hedgerd's orders against the journal: must be
0), and how often the trading state was preserved across a kill (must be every time).

    .venv/bin/python scripts/crash_drill.py --restarts 50 --seed 3 --json var/crash.json

`--venues deribit,okx`: two accounts, the Deribit market maker (options and hedges) and its
OKX twin (hedges on the inverse swap), in one daemon; the halts before a kill are now and
then of one account only (`/v1/halt` with its venue), and each account's own trading state
must come back as it was (`state_preserved` counts kills with every account's preserved). The
audit covers both venues (OKX: client ids received or accepted twice, fills by trade id).
`--venues deribit,okx --restarts 8 --seed 25 --max-life-s 4` (2026-12-06, 143.5 s wall): 8
kills (4 while halted, 1 with one account halted), states preserved 8/8, 0 duplicates, 0 lost,
0 double (Deribit 11 fills, OKX 3: few orders, the check is thin on OKX).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import audit, okx_audit, quiet_logs
from hedgerd.paper import PAPER_OKX_HEDGES
from hedgerd.sim.command import (
    OKX_DEFAULT_PASSPHRASE,
    Simulator,
    running_simulator,
    start_ms_arg,
)
from hedgerd.sim.wall_clock import on_sim_calendar

REPO = Path(__file__).resolve().parents[1]


def _toml(values: dict[str, Any]) -> str:
    """`values` as TOML: one line per top-level key, tables inline."""
    return "".join(f"{json.dumps(k)} = {_inline(v)}\n" for k, v in values.items())


def _inline(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value)


#: The OKX account's name in the two-account drill.
OKX_ACCOUNT = "okx"


def drill_config(
    work: Path, sim: Simulator, venues: tuple[str, ...] = ("deribit",)
) -> dict[str, Any]:
    """The daemon's config: BTC on the simulator's market maker, a narrow band (it hedges);
    with "okx" in `venues` also the market maker's OKX twin, hedge-only on the inverse swap."""
    config = _deribit_config(work, sim)
    if "okx" in venues:
        config["venues"][OKX_ACCOUNT] = {
            "exchange": "okx",
            "mode": "sim",
            "account": "mm-okx",
            "api_key": "sim-mm-key",
            "api_secret": "sim-mm-secret",
            "api_passphrase": OKX_DEFAULT_PASSPHRASE,
            "roles": ["hedge"],
            "underlyings": ["BTC"],
            "hedge_instruments": {"BTC": list(PAPER_OKX_HEDGES["BTC"])},
            "rest_url": sim.rest_url,
            "ws_url": sim.okx_ws_url,
            "request_timeout_s": 5.0,
            "cancel_on_disconnect": True,
        }
    return config


def _deribit_config(work: Path, sim: Simulator) -> dict[str, Any]:
    return {
        "numeraire": "coin",
        "log": {"level": "error", "format": "json"},
        "venues": {
            "sim": {
                "mode": "sim",
                "account": "mm",
                "api_key": "sim-mm-key",
                "api_secret": "sim-mm-secret",
                "underlyings": ["BTC"],
                "rest_url": sim.rest_url,
                "ws_url": sim.ws_url,
                "request_timeout_s": 5.0,
                "cancel_on_disconnect": True,
            }
        },
        "journal": {"path": str(work / "journal.sqlite")},
        "control": {"socket_path": str(work / "ctl.sock")},
        "metrics": {"enabled": False, "port": 0},
        "daemon": {
            "evaluate_interval_s": 0.5,
            "status_line": False,
            "hedge_instruments": {"BTC": ["BTC-PERPETUAL"]},
            "shutdown_timeout_s": 5.0,
        },
        "hedging": {
            "default_policy": "t",
            "policies": {
                "t": {
                    "kind": "hedgerd",
                    "risk_aversion_per_usd": 0.05,
                    "rebalance_to": "target",
                    "min_halfwidth_coin": 0.3,
                }
            },
        },
    }


async def _ctl(sock: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    connector = aiohttp.UnixConnector(path=str(sock))
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s,
        s.request(method, f"http://hedgerd{path}", json=body) as resp,
    ):
        return await resp.json()


async def _state(sock: Path) -> str | None:
    got = await _states(sock)
    return None if got is None else got[0]


async def _states(sock: Path) -> tuple[str, dict[str, str]] | None:
    """The portfolio's trading state and each account's own (by account name; empty with one
    account), or None while the control socket does not answer."""
    try:
        data = await _ctl(sock, "GET", "/v1/status")
    except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
        return None
    state = data.get("state") if isinstance(data, dict) else None
    if not state:
        return None
    accounts = data.get("account_states") or {}
    return str(state), {str(k): str(v["state"]) for k, v in accounts.items()}


def _err_file(work: Path) -> Any:
    return (work / "daemon.err").open("ab")  # the child writes to it


async def _start(
    config_path: Path, work: Path, clock_env: dict[str, str]
) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **clock_env}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hedgerd.cli",
        "run",
        "--config",
        str(config_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=_err_file(work),
        env=env,
    )


async def _wait_up(
    proc: asyncio.subprocess.Process, sock: Path, timeout_s: float
) -> tuple[str, dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"hedgerd run exited with {proc.returncode} during start-up")
        states = await _states(sock)  # None until the socket answers
        if states is not None:
            return states
        await asyncio.sleep(0.1)
    raise RuntimeError(f"hedgerd run not up within {timeout_s} s")


async def run_drill(
    restarts: int,
    seed: int,
    max_life_s: float = 6.0,
    start_ms: int | str = "now",
    venues: tuple[str, ...] = ("deribit",),
) -> dict[str, Any]:
    """Kill and restart the daemon `restarts` times; returns the figures. `start_ms`: the
    simulator's start (UTC epoch ms, or "now"); a pinned start puts each `hedgerd run`
    process's wall clock on the simulator's calendar with libfaketime. `venues`: with "okx",
    two accounts (module doc)."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="hgd-crash-", dir="/tmp"))
    sock = work / "ctl.sock"
    wall0 = time.monotonic()
    preserved = 0
    mismatches: list[dict[str, Any]] = []
    halted_kills = 0
    up_times: list[float] = []
    accounts_halted = 0
    async with running_simulator(
        host="127.0.0.1",
        port=0,
        seed=seed,
        speed=1.0,
        start_ms=start_ms,
        venues=venues,
        # the market maker's OKX twin (as `hedgerd paper --venues deribit,okx` adds it)
        accounts=[("sim-mm-key", "sim-mm-secret", OKX_DEFAULT_PASSPHRASE)]
        if "okx" in venues
        else [],
    ) as sim:
        config_path = work / "hedgerd.toml"
        config = drill_config(work, sim, venues)
        config_path.write_text(_toml(config), encoding="utf-8")
        names = list(config["venues"])
        expected: tuple[str, dict[str, str]] | None = None
        for i in range(restarts + 1):
            t_start = time.monotonic()
            # A pinned calendar: each process's faked clock starts at the simulator's time
            # of its own start (libfaketime starts counting when the process does).
            clock_env = {} if start_ms == "now" else on_sim_calendar(sim)
            proc = await _start(config_path, work, clock_env)
            try:
                state, per_account = await _wait_up(proc, sock, 60.0)
                up_times.append(time.monotonic() - t_start)
                if expected is not None:
                    if (state, per_account) == expected:
                        preserved += 1
                    else:
                        mismatches.append(
                            {
                                "restart": i,
                                "before": expected[0],
                                "after": state,
                                "accounts_before": expected[1],
                                "accounts_after": per_account,
                            }
                        )
                if state != "ACTIVE" or any(s != "ACTIVE" for s in per_account.values()):
                    # hedge again for the next round (every account)
                    await _ctl(sock, "POST", "/v1/resume", {})
                if i == restarts:  # the last one stops cleanly: its journal is complete
                    proc.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(proc.wait(), 30.0)
                    break
                if rng.random() < 0.7:  # move the market: the daemon hedges as it dies
                    pct = rng.choice([-3.0, -1.5, 1.5, 3.0])
                    sim.faults.add(
                        {"kind": "price_gap", "currency": "BTC", "pct": pct}, sim.now_ms()
                    )
                halt = rng.random() < 0.3
                await asyncio.sleep(rng.uniform(0.0, max_life_s))
                one = len(names) > 1 and halt and rng.random() < 0.5  # one account only
                if halt:
                    body: dict[str, Any] = {"reason": "crash drill"}
                    if one:
                        body["venue"] = rng.choice(names)
                        accounts_halted += 1
                    await _ctl(sock, "POST", "/v1/halt", body)
                    halted_kills += 1
                    await asyncio.sleep(rng.uniform(0.0, 0.5))
                expected = await _states(sock) or (
                    "HALTED" if halt and not one else "ACTIVE",
                    {},
                )
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                sock.unlink(missing_ok=True)  # a SIGKILLed daemon leaves its socket behind
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
        figures = audit(sim, work / "journal.sqlite")
        if "okx" in venues:
            okx = okx_audit(sim, work / "journal.sqlite")
            figures["venues"] = {"deribit": dict(figures), "okx": okx}
            for key in (
                "duplicate_orders",
                "lost_fills",
                "double_fills",
                "sim_trades",
                "journal_fills",
                "orders_received_total",
                "orders_accepted_total",
            ):
                figures[key] += okx[key]
    return {
        "restarts": restarts,
        "seed": seed,
        "wall_s": round(time.monotonic() - wall0, 1),
        "kills": restarts,
        "kills_while_halted": halted_kills,
        "kills_with_one_account_halted": accounts_halted,
        "accounts": names,
        **figures,
        "state_preserved": preserved,
        "state_mismatches": mismatches,
        "start_to_up_s_max": round(max(up_times), 2) if up_times else None,
        "last_exit_code": proc.returncode,
    }


def render(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"crash drill: {r['kills']} SIGKILLs ({r['kills_while_halted']} while HALTED) in "
            f"{r['wall_s']} s wall, seed {r['seed']}",
            f"  orders received by the simulator: {r['orders_received_total']} (accepted "
            f"{r['orders_accepted_total']}); sim trades {r['sim_trades']}, journal fills "
            f"{r['journal_fills']}",
            f"  duplicate orders: {r['duplicate_orders']}   lost fills: {r['lost_fills']}   "
            f"double fills: {r['double_fills']}",
            f"  trading state preserved: {r['state_preserved']}/{r['kills']}"
            + (f"  MISMATCHES {r['state_mismatches']}" if r["state_mismatches"] else ""),
            f"  slowest restart to control socket up: {r['start_to_up_s_max']} s",
        ]
        + [
            f"  {venue}: duplicates {v['duplicate_orders']}, lost {v['lost_fills']}, double "
            f"{v['double_fills']} (sim trades {v['sim_trades']}, journal fills "
            f"{v['journal_fills']})"
            for venue, v in (r.get("venues") or {}).items()
        ]
        + (
            [
                f"  accounts {', '.join(r['accounts'])}; "
                f"{r['kills_with_one_account_halted']} kills with one account halted"
            ]
            if len(r["accounts"]) > 1
            else []
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--restarts", type=int, default=50)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--max-life-s", type=float, default=6.0, help="longest life before a kill")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument(
        "--start-ms",
        type=start_ms_arg,
        default="now",
        help="the simulator's start: UTC epoch ms (needs Debian's faketime), or 'now'",
    )
    p.add_argument("--venues", default="deribit", help="deribit, or deribit,okx (two accounts)")
    a = p.parse_args(argv)
    venues = tuple(v.strip() for v in a.venues.split(",") if v.strip())
    if venues not in (("deribit",), ("deribit", "okx")):
        p.error(f"--venues: deribit, or deribit,okx (got {a.venues!r})")
    quiet_logs()
    r = asyncio.run(run_drill(a.restarts, a.seed, a.max_life_s, a.start_ms, venues))
    print(render(r), flush=True)
    if a.json is not None:
        a.json.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    ok = (
        r["duplicate_orders"] == 0
        and r["lost_fills"] == 0
        and r["double_fills"] == 0
        and r["state_preserved"] == r["kills"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
