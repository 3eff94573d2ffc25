"""`POST /sim/admin/venues/okx/carry`: OKX's funding and swap basis change while the simulator
runs, and OKX's public API answers the new figures at once (funding rate) or at the next tick
(the swap's mark over the index); bad requests are refused with 400 and change nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hedgerd.sim.command import Simulator, running_simulator
from pinned_clock import TEST_START_MS

SWAP = "BTC-USD-SWAP"


async def _post(sim: Simulator, path: str, body: object) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.rest_url}/sim/admin/{path}", json=body) as resp,
    ):
        return resp.status, await resp.json()


async def _okx(sim: Simulator, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.rest_url}/api/v5/{path}") as resp:
        assert resp.status == 200
        data: dict[str, Any] = (await resp.json())["data"][0]
        return data


async def test_okx_carry_is_set_through_the_admin_api() -> None:
    async with running_simulator(
        stepped=True, start_ms=TEST_START_MS, venues=("deribit", "okx"), flow_rate_per_min=0
    ) as sim:
        before = float((await _okx(sim, f"public/funding-rate?instId={SWAP}"))["fundingRate"])
        status, body = await _post(
            sim, "venues/okx/carry", {"funding_rate_8h": 0.003, "swap_basis_bps": 25.0}
        )
        assert status == 200, body
        assert body["carry"]["funding_rate_8h"] == 0.003 and before != 0.003
        assert body["carry"]["swap_basis_bps"] == 25.0
        funding = await _okx(sim, f"public/funding-rate?instId={SWAP}")
        assert float(funding["fundingRate"]) == 0.003
        sim.advance(1_000)  # the next tick marks the swap at the new basis
        mark = float((await _okx(sim, f"public/mark-price?instType=SWAP&instId={SWAP}"))["markPx"])
        index = sim.okx.index_price("BTC")
        assert mark == pytest.approx(index * (1 + 25e-4), rel=1e-6)

        # Refused, and nothing changed: an unknown field, a non-number, Deribit.
        for path, bad in (
            ("venues/okx/carry", {"half_spread_bps": 1.0}),
            ("venues/okx/carry", {"funding_rate_8h": "high"}),
            ("venues/okx/carry", [0.1]),
            ("venues/deribit/carry", {"funding_rate_8h": 0.01}),
        ):
            status, body = await _post(sim, path, bad)
            assert status == 400 and "error" in body, (path, bad, body)
        assert sim.okx.spec.funding_rate_8h == 0.003
        assert sim.okx.spec.swap_basis_bps == 25.0
