"""Which accounts a hedge may go to, and on what terms: the seam between the accounts' health
and the cost-based router.

Every evaluation asks `hedge_accounts(underlying)`: each account with the 'hedge' role that
follows the underlying, with the state orders to it are judged in (the tighter of the
portfolio's and its own) and whether it is routable. An account is left out of routing, for
this evaluation, when it is HALTED (a switch on its stale data, its disconnection, a reject
streak, or the operator), when its order session is down, when one of its streams is down (at
once, long before the disconnection switch halts it), when its streams reconnected but no fresh
market data has come since (a subscription that fails right after the reconnect), or before its
feed is running; the others keep hedging. A HALT from the account's stale data or disconnection
clears by itself once its link has been healthy for `risk.link_recover_after_s`
(`KillSwitchBoard.recover_links`): routing takes the account back. An account whose own state
is REDUCE_ONLY (margin, insufficient funds, the operator's `--venue`) stays in, but only for
hedges that shrink the position it holds (`limit_to_reducing`): an account short of funds gets
no position-growing hedge. So does an account whose last margin check showed no free collateral
in the hedge's settlement currency (`short_of_funds`), before the venue refuses one. (With one
account the portfolio's gate and the venue judge every order, as before accounts existed: the
decision is made and logged, and a refused leg is counted as blocked.)

The candidates of every routable account then go to the controller together
(`hedging.router`), which already prices each one all-in (fee tier, half-spread and depth
walk, funding, basis) and picks or splits by cost: with several hedge accounts, the cheapest
healthy one wins. The full cross-venue router (fill probability, cost of moving the hedge
later, margin headroom per account) replaces `hedging.router`'s pick behind the same inputs:
a list of `HedgeVenueState`s, one per (account, instrument).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hedgerd.accounts.runtime import AccountRuntime
from hedgerd.hedging.inputs import HedgeVenueState
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.trading_state import TradingState


@dataclass(frozen=True, slots=True)
class AccountRoute:
    """One hedge account as routing sees it: the state its orders are judged in, why it is
    out of routing (None: routable), and whether only hedges that shrink its positions may
    go there (its own state is REDUCE_ONLY, with several accounts)."""

    account: AccountRuntime
    state: TradingState
    excluded: str | None
    reducing_only: bool = False

    @property
    def routable(self) -> bool:
        return self.excluded is None


def hedge_accounts(
    accounts: Mapping[str, AccountRuntime], states: AccountStates | None, underlying: str
) -> list[AccountRoute]:
    """Every hedge account of `underlying`, routable or not (see the module doc)."""
    out: list[AccountRoute] = []
    for name, account in accounts.items():
        if not account.settings.hedges or underlying not in account.underlyings:
            continue
        state = states.state(name) if states is not None else TradingState.ACTIVE
        excluded: str | None = None
        per_account = states is not None and states.per_account
        own = states.accounts.get(name) if states is not None else None
        reducing_only = per_account and own is not None and own.state is TradingState.REDUCE_ONLY
        if account.venue is None or account.feed is None:
            excluded = "not started"
        elif state is TradingState.HALTED and per_account:
            # With one account the portfolio gate judges (as before accounts): the decision
            # is still made and logged, and refused before sending.
            excluded = "halted"
        elif account.orders_blocked() and per_account:
            excluded = "order session down"
        elif account.disconnected() and per_account:
            # A stream down: the venue is failing now (its orders, fills and positions may
            # not be heard), so hedges go elsewhere from this evaluation on.
            excluded = "disconnected"
        elif account.awaiting_data() and per_account:
            # Connected again, but no fresh data yet: the subscription may still fail.
            excluded = "awaiting data"
        out.append(AccountRoute(account, state, excluded, reducing_only))
    return out


def short_of_funds(available: Mapping[str, float], candidate: HedgeVenueState) -> bool:
    """Whether the account has no free collateral (`available_funds`, the last margin check's,
    per settlement currency) in the candidate's settlement currency: then only reducing
    hedges go there, before the venue has to refuse one. Unknown funds are not judged."""
    free = available.get(candidate.instrument.settlement_currency)
    return free is not None and math.isfinite(free) and free <= 0.0


def limit_to_reducing(candidate: HedgeVenueState) -> HedgeVenueState:
    """`candidate` restricted to trades that shrink its position, at most to flat
    (REDUCE_ONLY account): a position limit of 0 leaves the router room for |position| on
    the reducing side and none on the other (`hedging.costs.capacity_coin`)."""
    return replace(candidate, max_position_amount=0.0)


__all__ = ["AccountRoute", "hedge_accounts", "limit_to_reducing", "short_of_funds"]
