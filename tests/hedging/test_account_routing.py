"""The routing seam before the cost router: which hedge accounts are offered, and a
reduce-only account limited to position-reducing hedges (what the router may then take)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hedging_builders import SPOT, venue_state

from hedgerd.hedging.config import RouterSettings
from hedgerd.hedging.costs import capacity_coin
from hedgerd.portfolio.routing import hedge_accounts, limit_to_reducing, short_of_funds
from hedgerd.risk.trading_state import TradingState

A, R, H = TradingState.ACTIVE, TradingState.REDUCE_ONLY, TradingState.HALTED


def test_a_reduce_only_account_takes_only_reducing_trades_down_to_flat() -> None:
    long = limit_to_reducing(venue_state("BTC-PERPETUAL", position_amount=50_000.0))
    router = RouterSettings()
    assert capacity_coin(long, +1, router, SPOT) == 0.0  # growing the long: no room
    assert capacity_coin(long, -1, router, SPOT) == pytest.approx(50_000.0 / SPOT)  # to flat
    flat = limit_to_reducing(venue_state("BTC-PERPETUAL"))
    assert capacity_coin(flat, +1, router, SPOT) == capacity_coin(flat, -1, router, SPOT) == 0.0


class _States:
    """`AccountStates`' reading side: each account's own state and the portfolio's."""

    def __init__(self, own: dict[str, TradingState], portfolio: TradingState = A) -> None:
        self.accounts = {k: SimpleNamespace(state=v) for k, v in own.items()}
        self.portfolio = SimpleNamespace(state=portfolio)
        self.per_account = len(own) > 1

    def state(self, name: str) -> TradingState:
        own: TradingState = self.accounts[name].state
        return max(own, self.portfolio.state, key=lambda s: s.severity)


def _account(
    name: str,
    roles: tuple[str, ...],
    blocked: bool = False,
    down: bool = False,
    waiting: bool = False,
) -> Any:
    return SimpleNamespace(
        name=name,
        settings=SimpleNamespace(hedges="hedge" in roles),
        underlyings=("BTC",),
        venue=object(),
        feed=object(),
        orders_blocked=lambda: blocked,
        disconnected=lambda: down,
        awaiting_data=lambda: waiting,
    )


def test_halted_or_session_down_accounts_leave_routing_reduce_only_stays_limited() -> None:
    accounts = {
        "opts": _account("opts", ("options",)),
        "a": _account("a", ("hedge",)),
        "b": _account("b", ("hedge", "options")),
        "c": _account("c", ("hedge",)),
        "d": _account("d", ("hedge",), blocked=True),
        # A stream down (its WebSocket dropped): out at once, still ACTIVE (the disconnection
        # switch halts it only after its limit).
        "e": _account("e", ("hedge",), down=True),
        # Reconnected, no fresh data yet (its subscription may still fail): out as well.
        "f": _account("f", ("hedge",), waiting=True),
    }
    states: Any = _States({"opts": A, "a": H, "b": R, "c": A, "d": A, "e": A, "f": A})
    routes = {r.account.name: r for r in hedge_accounts(accounts, states, "BTC")}
    assert set(routes) == {"a", "b", "c", "d", "e", "f"}  # an options-only account is never offered
    assert routes["a"].excluded == "halted"
    assert routes["d"].excluded == "order session down"
    assert routes["e"].excluded == "disconnected" and routes["e"].state is A
    assert routes["f"].excluded == "awaiting data" and routes["f"].state is A
    assert routes["b"].routable and routes["b"].reducing_only
    assert routes["c"].routable and not routes["c"].reducing_only
    assert hedge_accounts(accounts, states, "ETH") == []


def test_one_account_is_judged_by_the_portfolio_gate_as_before() -> None:
    accounts = {"only": _account("only", ("options", "hedge"), blocked=True)}
    states: Any = _States({"only": H})
    (route,) = hedge_accounts(accounts, states, "BTC")
    assert route.routable and not route.reducing_only and route.state is H


def test_no_free_collateral_in_the_settlement_currency_means_short_of_funds() -> None:
    perp = venue_state("BTC-PERPETUAL")  # inverse: settles in BTC
    assert short_of_funds({"BTC": 0.0}, perp)
    assert short_of_funds({"BTC": -0.2, "USDC": 5_000.0}, perp)
    assert not short_of_funds({"BTC": 0.01}, perp)
    assert not short_of_funds({"USDC": 0.0}, perp)  # another currency's funds
    assert not short_of_funds({}, perp)  # not known yet: not judged
    assert not short_of_funds({"BTC": float("nan")}, perp)
