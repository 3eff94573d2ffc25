"""Trading state per venue account under the portfolio's, with a real journal: the gate
judges the tighter of both, account switches trip the account they name (several accounts)
or the portfolio (one account), portfolio switches always the portfolio, and every account's
state survives a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hedgerd.execution.journal import Journal
from hedgerd.risk.account_state import ACCOUNT_CODES, AccountStates
from hedgerd.risk.kill_switches import KillSwitchBoard, MarginInputs
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import OrderKind, ReasonCode, TradingState, TradingStateMachine

T0 = 1_700_000_000_000
A, R, H = TradingState.ACTIVE, TradingState.REDUCE_ONLY, TradingState.HALTED


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await Journal.open(tmp_path / "journal.sqlite", clock_ms=lambda: T0)
    yield j
    await j.close()


async def _states(journal: Journal, names: tuple[str, ...]) -> AccountStates:
    portfolio = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
    return await AccountStates.restore(journal, portfolio, names, clock_ms=lambda: T0)


async def test_the_tighter_of_portfolio_and_account_applies(journal: Journal) -> None:
    states = await _states(journal, ("main", "sub"))
    assert states.per_account
    await states.machine("sub").reduce_only(actor="uid:1")
    assert (states.state("main"), states.state("sub")) == (A, R)
    # REDUCE_ONLY on `sub`: |delta| must shrink there; `main` passes anything.
    assert states.check("main", OrderKind.NEW, 1.0, 2.0).allowed
    refused = states.check("sub", OrderKind.NEW, 1.0, 2.0)
    assert not refused.allowed and refused.reason.startswith("account sub:")
    assert states.check("sub", OrderKind.NEW, 1.0, 0.5).allowed
    assert states.check("sub", OrderKind.CANCEL, 0.0, 0.0, is_cancel=True).allowed
    # The portfolio HALTED: every account is.
    await states.portfolio.halt(actor="uid:1")
    assert (states.state("main"), states.state("sub")) == (H, H)
    assert not states.check("main", OrderKind.NEW, 1.0, 0.5).allowed
    assert states.check("main", OrderKind.NEW, 1.0, 0.5, is_operator_flatten=True).allowed
    with pytest.raises(KeyError, match="unknown account 'x'"):
        states.machine("x")


async def test_account_switches_trip_the_account_portfolio_switches_the_portfolio(
    journal: Journal,
) -> None:
    states = await _states(journal, ("main", "sub"))
    board = KillSwitchBoard(KillSwitchSettings(), states.portfolio)
    board.accounts = states
    board.register_venue("main", T0)
    board.register_venue("sub", T0)
    board.on_connection("main", True, T0)
    board.on_connection("sub", True, T0)
    # `sub` disconnected past the limit: `sub` HALTED, `main` and the portfolio trade on.
    board.on_connection("sub", False, T0 + 1_000)
    board.tick(T0 + 600_000)
    assert states.machine("sub").state is H
    assert states.machine("sub").reasons[0].code is ReasonCode.VENUE_DISCONNECTED
    assert (states.portfolio.state, states.machine("main").state) == (A, A)
    # Margin on `main`: REDUCE_ONLY there only.
    board.on_margin(T0, MarginInputs(venue="main", currency="BTC", equity=1.0,
                                     maintenance_margin=0.99))  # fmt: skip
    assert (states.machine("main").state, states.portfolio.state) == (R, A)
    # A reject streak on `main` trips `main`; accepted orders on `sub` do not reset it.
    for _ in range(KillSwitchSettings().reject_streak.streak_limit):
        board.on_order_outcome(T0, False, "rejected", "main")
        board.on_order_outcome(T0, True, "", "sub")
    assert ReasonCode.REJECT_STREAK in states.machine("main").snapshot.reason_codes
    # The delta limit judges the whole book: the portfolio.
    for _ in range(20):
        board.on_hedge_sent("BTC")
        board.on_delta(T0, "BTC", 1e6, 90_000.0)
    board.tick(T0 + 3_600_000)
    assert states.portfolio.state is H
    assert states.portfolio.reasons[0].code is ReasonCode.DELTA_LIMIT
    await board.flush()
    for m in states.accounts.values():
        await m.flush()
    # Restart: every state comes back from the journal.
    again = await _states(journal, ("main", "sub"))
    assert again.machine("sub").state is H
    assert (
        again.machine("main").snapshot.reason_codes == states.machine("main").snapshot.reason_codes
    )
    assert again.portfolio.state is H


async def test_one_account_trips_the_portfolio_as_before(journal: Journal) -> None:
    states = await _states(journal, ("only",))
    assert not states.per_account
    for code in ACCOUNT_CODES:
        assert states.machine_for(code, "only") is states.portfolio
    await states.trip("only", ReasonCode.INSUFFICIENT_FUNDS, "no funds")
    assert states.portfolio.state is R and states.machine("only").state is A
