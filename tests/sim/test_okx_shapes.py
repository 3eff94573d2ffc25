"""The OKX dialect's replies carry the fields of ccxt's recorded OKX captures, with numbers as
strings (`tests/sim/data/okx-capture-keys.json` lists the key sets and their source)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _okx_ccxt import KEY, PASSPHRASE, SECRET, okx_client

from hedgerd.sim.command import running_simulator

CAPTURES = json.loads((Path(__file__).parent / "data" / "okx-capture-keys.json").read_text())
NON_STRING = set(CAPTURES["non_string"])


@pytest.fixture
async def ex() -> AsyncIterator[Any]:
    async with (
        running_simulator(
            stepped=True, venues=("deribit", "okx"), accounts=[(KEY, SECRET)],
            api_passphrase=PASSPHRASE,
        ) as sim,
        okx_client(sim, load_markets=False) as client,
    ):  # fmt: skip
        yield client


def _covers(obj: dict[str, Any], name: str) -> None:
    missing = [k for k in CAPTURES[name] if k not in obj]
    assert not missing, f"{name}: missing {missing}"
    for k in CAPTURES[name]:
        if k not in NON_STRING:
            assert isinstance(obj[k], str), f"{name}.{k} is {obj[k]!r}, not a string"


async def test_shapes_match_the_captures(ex: Any) -> None:
    bal = await ex.private_get_account_balance()
    assert bal["code"] == "0" and bal["msg"] == ""
    _covers(bal["data"][0], "balance.data")
    for d in bal["data"][0]["details"]:
        _covers(d, "balance.detail")
    (cfg,) = (await ex.private_get_account_config())["data"]
    _covers(cfg, "config.data")
    for t in ("SPOT", "SWAP", "FUTURES"):
        for inst in (await ex.public_get_public_instruments({"instType": t}))["data"]:
            _covers(inst, "instrument")
    opts = await ex.public_get_public_instruments({"instType": "OPTION", "uly": "ETH-USD"})
    assert opts["data"] and all(i["uly"] == "ETH-USD" for i in opts["data"])
    _covers(opts["data"][0], "instrument")
    placed = await ex.private_post_trade_order(
        {"instId": "BTC-USD-SWAP", "side": "buy", "ordType": "market", "sz": "1",
         "tdMode": "cross"}
    )  # fmt: skip
    assert set(placed) == set(CAPTURES["createOrder.envelope"])
    _covers(placed["data"][0], "createOrder.item")
    assert set(placed["data"][0]) == set(CAPTURES["createOrder.item"])
    positions = (await ex.private_get_account_positions())["data"]
    assert [p["instId"] for p in positions] == ["BTC-USD-SWAP"]
    for pos in positions:
        _covers(pos, "position")
