"""What every portfolio service runs over, and their common base.

One `PortfolioScope` per daemon: the config, the clocks, the shared parts, the statistics and
the account(s) the portfolio trades on (one today: `account`; the multi-account step makes
it a collection here, in one place).
"""

from __future__ import annotations

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
    account: AccountRuntime


class PortfolioService:
    """A portfolio service's view of its scope, as attributes its methods use."""

    def __init__(self, scope: PortfolioScope) -> None:
        self.config = scope.config
        self.clocks = scope.clocks
        self.shared = scope.shared
        self.stats = scope.stats
        self.account = scope.account
        self.underlyings = scope.account.underlyings
