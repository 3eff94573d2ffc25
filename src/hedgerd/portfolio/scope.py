"""What every portfolio service runs over, and their common base.

One `PortfolioScope` per daemon: the config, the clocks, the shared parts, the statistics and
the venue accounts the portfolio trades on (`accounts`, by `[venues.NAME]` name, in config
order; `account` is the first, the one a single-account config has).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hedgerd.accounts.runtime import AccountRuntime
from hedgerd.config import HedgerdConfig
from hedgerd.portfolio.parts import Clocks, PortfolioParts
from hedgerd.portfolio.stats import DaemonStats


@dataclass(frozen=True, slots=True)
class PortfolioScope:
    config: HedgerdConfig
    clocks: Clocks
    shared: PortfolioParts
    stats: DaemonStats
    accounts: Mapping[str, AccountRuntime]

    @property
    def account(self) -> AccountRuntime:
        """The first account (the only one of a single-account config)."""
        return next(iter(self.accounts.values()))


def portfolio_underlyings(accounts: Mapping[str, AccountRuntime]) -> tuple[str, ...]:
    """Every account's underlyings, once each, in config order."""
    return tuple(dict.fromkeys(u for a in accounts.values() for u in a.underlyings))


class PortfolioService:
    """A portfolio service's view of its scope, as attributes its methods use."""

    def __init__(self, scope: PortfolioScope) -> None:
        self.config = scope.config
        self.clocks = scope.clocks
        self.shared = scope.shared
        self.stats = scope.stats
        self.accounts = scope.accounts
        self.account = scope.account
        self.underlyings = portfolio_underlyings(scope.accounts)

    def account_of(self, venue: str) -> AccountRuntime:
        """The account named `venue` (an order's, a fill's or a leg's `venue`); the first
        account for a name no account has (records of an account since removed)."""
        return self.accounts.get(venue, self.account)
