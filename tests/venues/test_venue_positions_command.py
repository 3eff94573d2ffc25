"""`hedgerd positions`: run as a separate process against the in-process simulator, read-only.

The lead wires `add_parser` into cli.py; until then the test builds the same argparse tree."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from hedgerd.sim.command import running_simulator
from hedgerd.sim.scenario import Scenario
from hedgerd.venues import positions_command

KEY, SECRET = "pos-key", "pos-secret"

_RUNNER = (
    "import argparse, sys\n"
    "from hedgerd.venues import positions_command\n"
    "p = argparse.ArgumentParser(prog='hedgerd'); sub = p.add_subparsers()\n"
    "positions_command.add_parser(sub)\n"
    "args = p.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)


def _scenario(testnet: bool = True) -> Scenario:
    return Scenario.model_validate(
        {
            "seed": 5,
            "testnet": testnet,
            "underlyings": [
                {
                    "currency": "BTC",
                    "spot": 90_000.0,
                    "basis_per_year": 0.0,
                    "chain": {
                        "dailies": 1,
                        "weeklies": 1,
                        "monthlies": 1,
                        "quarterlies": 0,
                        "strikes_each_side": 3,
                    },
                }
            ],
            "funding": {"premium_mean_bps": 0.0, "premium_vol_bps": 0.0},
            "flow": {"enabled": False},
            "accounts": [
                {
                    "name": "mm",
                    "api_key": KEY,
                    "api_secret": SECRET,
                    "positions": [
                        {"instrument": "BTC-PERPETUAL", "size": -20_000.0},
                        {"currency": "BTC", "option_type": "call", "expiry_rank": 1, "size": 1.5},
                    ],
                }
            ],
        }
    )


async def _run(tmp_path: Path, sim: Any, *extra: str) -> tuple[int, str, str]:
    cfg = tmp_path / "hedgerd.toml"
    cfg.write_text(
        f'[venues.deribit]\nmode = "sim"\nrest_url = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n'
        f'api_key = "{KEY}"\napi_secret = "{SECRET}"\nunderlyings = ["BTC"]\n'
        '[log]\nlevel = "warning"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUNNER,
        "positions",
        "--config",
        str(cfg),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_positions_json_matches_the_venue(tmp_path: Path) -> None:
    async with running_simulator(scenario=_scenario(), stepped=True) as sim:
        code, out, err = await _run(tmp_path, sim, "--json")
        assert code == 0, err
        report = json.loads(out)
        (acct,) = report["accounts"]
        (btc,) = acct["underlyings"]
        names = {p["instrument"] for p in btc["positions"]}
        assert "BTC-PERPETUAL" in names and len(names) == 2
        perp = next(p for p in btc["positions"] if p["instrument"] == "BTC-PERPETUAL")
        assert perp["amount"] == -20_000.0 and perp["amount_unit"] == "usd"
        assert -0.23 < perp["qty_coin"] < -0.21  # size_currency: 20,000 USD at ~90,000
        checks = {d["numeraire"]: d for d in btc["venue_vs_hedgerd"]}
        assert set(checks) == {"coin", "usd"}
        for d in checks.values():
            assert abs(d["diff_coin"]) < 1e-6 and not d["exceeded"], d
        assert btc["complete"] and btc["by_expiry"] and btc["hedges"]
        # Read-only: no private session was opened, so nothing could have been traded.
        engine: Any = sim.engine
        acct_obj = engine.account_for_key(KEY)
        trades = engine.dispatch(
            "private/get_user_trades_by_currency", {"currency": "BTC"}, acct_obj
        )["trades"]
        assert trades == []
        text = positions_command.render_text(report)
        assert "venue vs hedgerd (coin numeraire)" in text and "BTC-PERPETUAL" in text
        assert "DIVERGES" not in text


async def test_positions_refuses_a_testnet_live_mismatch(tmp_path: Path) -> None:
    async with running_simulator(scenario=_scenario(testnet=False), stepped=True) as sim:
        code, out, err = await _run(tmp_path, sim)
        assert code == 1 and out == ""
        assert "refused" in err and "mode 'sim'" in err and "PRODUCTION" in err


def test_parser_registers_positions() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    positions_command.add_parser(sub)
    args = p.parse_args(["positions", "--config", "x.toml", "--json"])
    assert args.func is positions_command.run and args.json and args.config == Path("x.toml")
    args = p.parse_args(["positions", "--config", "/nonexistent/h.toml"])
    assert args.func(args) == 2
