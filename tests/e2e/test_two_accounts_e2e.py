"""Two Deribit sub-accounts in one daemon, real ccxt clients against the simulator: the
options account's delta and the hedge account's hedges are one book (the summed delta is
hedged), each account's orders carry its own client-id tag, and `hedgerctl halt --venue X`
takes X out of routing while the other account keeps hedging."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from e2e_support import (
    MM_KEY,
    MM_SECRET,
    daemon_config,
    hedgerctl,
    in_band,
    short_dir,
    simulator,
    start_daemon,
    status,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

from hedgerd.execution.client_ids import account_tag, is_hedgerd_label
from hedgerd.paper import venue_summary
from hedgerd.risk.trading_state import ReasonCode, TradingState
from hedgerd.sim.scenario import AccountSpec

SPEED = 10.0
SUB_KEY, SUB_SECRET = "sim-sub-key", "sim-sub-secret"
#: The simulator's second client account: funded, flat.
SUB = AccountSpec(
    name="sub",
    api_key=SUB_KEY,
    api_secret=SUB_SECRET,
    balances={"BTC": 20.0, "ETH": 100.0, "USDC": 100_000.0},
)


def _two_accounts(work: Path) -> dict[str, Any]:
    """`main`: the market maker's options book (it may hedge too); `sub`: a hedge-only
    sub-account. BTC only, coin numeraire."""
    values = daemon_config(work)
    main = dict(values["venues"]["sim"], roles=["options", "hedge"])
    sub = dict(main, api_key=SUB_KEY, api_secret=SUB_SECRET, account="sub", roles=["hedge"])
    assert main["api_key"] == MM_KEY and main["api_secret"] == MM_SECRET
    values["venues"] = {"main": main, "sub": sub}
    return values


def _perp(sim: Any, account: str) -> float:
    """The simulator's own BTC-PERPETUAL position of `account` (USD): the truth."""
    pos = sim.engine.accounts[account].positions.get("BTC-PERPETUAL")
    return float(pos.size) if pos is not None else 0.0


async def _account_state_codes(port: int | None) -> dict[str, float]:
    """`hedgerd_account_trading_state_code` per venue account, from /metrics."""
    assert port is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    return {
        s.labels["venue"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "hedgerd_account_trading_state_code"
    }


async def test_summed_delta_is_hedged_and_a_halted_account_leaves_routing() -> None:
    work = short_dir()
    sock = work / "ctl.sock"
    async with simulator(SPEED, seed=5, accounts=[SUB]) as sim:
        run = await start_daemon(sim, _two_accounts(work), SPEED)
        daemon = run.daemon
        stats = daemon.stats.per_underlying["BTC"]
        assert set(daemon.accounts) == {"main", "sub"}

        await wait_for(
            lambda: in_band(stats), 30.0, "the first hedges to bring the summed delta into the band"
        )
        # One book: the portfolio's delta is the sum of the accounts' own books.
        by_account = dict(stats.delta_by_account)
        assert set(by_account) == {"main", "sub"}
        assert abs(sum(by_account.values()) - daemon.hedge_loop.book_delta_coin("BTC")) < 1e-9

        # Halt `sub`: it leaves routing; `main` keeps hedging a new target.
        code, out = await hedgerctl(sock, "halt", "--venue", "sub", "--reason", "drill")
        assert code == 0, out
        st = await status(sock)
        assert st["state"] == "ACTIVE"
        assert st["accounts"]["sub"]["state"] == "HALTED"
        assert st["account_states"]["sub"]["effective_state"] == "HALTED"
        assert st["accounts"]["main"]["effective_state"] == "ACTIVE"
        assert await _account_state_codes(daemon.ops_port) == {"main": 0.0, "sub": 2.0}
        sub_before, main_before = _perp(sim, "sub"), _perp(sim, "mm")
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "2.5")
        assert code == 0, out
        await wait_for(lambda: stats.last_delta_coin > 1.5, 30.0, "delta near the new target")
        assert _perp(sim, "sub") == sub_before  # nothing went to the halted account
        assert _perp(sim, "mm") != main_before  # the other account hedged
        assert daemon.hedge_loop.excluded.get("sub") == "halted"

        # The other way round: `main` halted, `sub` resumed and hedging back to 0.
        code, out = await hedgerctl(sock, "halt", "--venue", "main")
        assert code == 0, out
        code, out = await hedgerctl(sock, "resume", "--venue", "sub")
        assert code == 0, out
        sub_before, main_before = _perp(sim, "sub"), _perp(sim, "mm")
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "0")
        assert code == 0, out
        await wait_for(lambda: abs(stats.last_delta_coin) < 1.0, 30.0, "delta back near 0")
        assert _perp(sim, "mm") == main_before
        assert _perp(sim, "sub") != sub_before
        st = await status(sock)
        assert st["state"] == "ACTIVE"  # no portfolio switch tripped (divergence, mismatch)
        assert st["accounts"]["main"]["state"] == "HALTED"
        assert st["accounts"]["sub"]["state"] == "ACTIVE"
        assert "BTC-PERPETUAL" in st["accounts"]["sub"]["hedge_positions"]
        code, out = await hedgerctl(sock, "status")
        assert code == 0, out
        rows: dict[str, list[str]] = {}
        for line in out.splitlines():
            if line.split()[:1]:
                rows.setdefault(line.split()[0], []).append(line)
        state_row, funds_row = rows["main"]
        assert "HALTED" in state_row and "out: halted" in state_row, out
        # ... and why, under the accounts' rows (`sub` is ACTIVE: nothing to say).
        assert [r.strip().split(" (")[0] for r in rows["-"]] == ["- main: operator"], out
        state_row, funds_row = rows["sub"]
        assert "ACTIVE" in state_row and "BTC-PERPETUAL" in funds_row, out

        # Flatten one account (in any state): its hedge closes, the other account's stays.
        code, out = await hedgerctl(sock, "halt", "--venue", "sub")
        assert code == 0, out
        main_before = _perp(sim, "mm")
        assert _perp(sim, "sub") != 0.0
        code, out = await hedgerctl(sock, "flatten", "BTC", "--confirm", "--venue", "sub")
        assert code == 0, out
        await wait_for(lambda: _perp(sim, "sub") == 0.0, 20.0, "sub's hedge flattened")
        assert _perp(sim, "mm") == main_before

        # Every order carries its account's client-id tag (ids unique across accounts).
        assert daemon.journal is not None
        fills = [f for f in await daemon.journal.fills_since(0) if is_hedgerd_label(f.label)]
        tags = {"main": account_tag("main"), "sub": account_tag("sub")}
        assert {f.venue for f in fills} == {"main", "sub"}
        for f in fills:
            assert f.label is not None and f.label.startswith(f"hg2-{tags[f.venue]}-0-"), f
        assert await run.shutdown() == 0


async def test_an_account_without_funds_gets_no_growing_hedge_the_other_hedges() -> None:
    """`poor` (listed first: the router's tie goes to it) has almost no collateral: its hedge
    is refused for funds, or (the router sizes a leg within the free margin it last read)
    fills and uses its margin up; either puts that account alone in REDUCE_ONLY. From there
    it gets no growing hedge at all, and the options account's own hedges bring the delta
    in."""
    work = short_dir()
    sock = work / "ctl.sock"
    poor = AccountSpec(
        name="poor",
        api_key=SUB_KEY,
        api_secret=SUB_SECRET,
        balances={"BTC": 0.0005, "ETH": 0.0, "USDC": 0.0},
    )
    values = _two_accounts(work)
    values["venues"] = {"poor": values["venues"]["sub"], "main": values["venues"]["main"]}
    async with simulator(SPEED, seed=5, accounts=[poor]) as sim:
        run = await start_daemon(sim, values, SPEED)
        daemon = run.daemon
        assert daemon.journal is not None and daemon.parts.states is not None
        states, journal = daemon.parts.states, daemon.journal
        stats = daemon.stats.per_underlying["BTC"]

        def poor_reduce_only() -> bool:
            codes = states.machine("poor").snapshot.reason_codes
            return ReasonCode.INSUFFICIENT_FUNDS in codes or ReasonCode.MARGIN in codes

        def poor_settled() -> bool:
            # Either the account ran out (refused, or its margin used up: REDUCE_ONLY), or
            # the router sized its legs within the free margin it had read (a fresh margin
            # read before the first decision) and the other account brought delta in.
            return poor_reduce_only() or (in_band(stats) and _perp(sim, "poor") != 0.0)

        await wait_for(poor_settled, 30.0, "the poor account out of funds, or hedged within them")
        if not poor_reduce_only():
            # Within its means: never refused for funds, still ACTIVE, the portfolio in band.
            assert states.machine("poor").state is TradingState.ACTIVE
            assert states.portfolio.state is TradingState.ACTIVE
            assert await journal.count_intents_since(0, venue="poor") >= 1
            assert await run.shutdown() == 0
            return
        assert states.machine("poor").state is TradingState.REDUCE_ONLY
        assert states.portfolio.state is TradingState.ACTIVE  # the portfolio trades on

        await wait_for(
            lambda: in_band(stats), 30.0, "the other account's hedges to bring delta into the band"
        )
        sent_poor = await journal.count_intents_since(0, venue="poor")
        assert sent_poor >= 1  # the refused or filled one(s), journalled first
        poor_perp = _perp(sim, "poor")
        code, out = await hedgerctl(sock, "set", "hedging.BTC.target_coin", "2.5")
        assert code == 0, out
        await wait_for(lambda: stats.last_delta_coin > 1.5, 30.0, "delta near the new target")
        # Nothing grew there: only a reducing order may go to a REDUCE_ONLY account.
        after = _perp(sim, "poor")
        assert abs(after) <= abs(poor_perp) and after * poor_perp >= 0.0, (poor_perp, after)
        if poor_perp == 0.0:  # flat: nothing to reduce, so nothing was sent at all
            assert await journal.count_intents_since(0, venue="poor") == sent_poor
        st = await status(sock)
        assert st["accounts"]["poor"]["state"] == "REDUCE_ONLY"
        assert st["state"] == "ACTIVE"
        # The paper summary says why (code: detail), as hedgerctl status does.
        poor = venue_summary(daemon)["poor"]
        assert poor["state"] == "REDUCE_ONLY"
        assert {r["code"] for r in poor["reasons"]} & {"insufficient_funds", "margin"}
        assert all(r["detail"] for r in poor["reasons"])
        assert await run.shutdown() == 0
