"""Trading state per venue account, under the portfolio's.

Each `[venues.NAME]` account has its own `TradingStateMachine` (ACTIVE / REDUCE_ONLY / HALTED,
same rules: switches only tighten, only the operator loosens), persisted in the journal's
`account_trading_state` tables and restored at start. An order to an account passes the
portfolio's gate *and* the account's: the state that applies is the tighter of the two.

Which kill switch judges what:

- account switches (`ACCOUNT_CODES`): stale data, venue disconnected (auth errors too), reject
  streak, insufficient funds, margin, clock skew. They describe one account's link or funds;
  with several accounts they trip that account only, which takes it out of hedge routing
  (HALTED) or lets only position-reducing hedges go there (REDUCE_ONLY) while the other
  accounts keep hedging.
- portfolio switches (every other code): delta limit, daily loss, Greeks divergence, position
  mismatch, order and notional rates, price sanity, component crash: they judge the whole
  book (or the daemon itself) and trip the portfolio state.

Of the account switches, the link conditions (`LINK_CODES`: stale data, venue
disconnected) clear by themselves: the board trips them with `LINK_ACTOR`, and once the
account's link has been healthy (streams connected, fresh market data since the
reconnection) for `risk.link_recover_after_s` it removes them (`KillSwitchBoard.recover_links`)
and the account rejoins routing. Funds, reject streak, margin and clock skew latch (the
operator resumes the account), and so does anything the operator set: an operator's HALT
stays HALTED whatever the link does. A VENUE_DISCONNECTED from an auth failure (the
executor's) latches too.

With one account every trip goes to the portfolio state, exactly as before accounts existed
(the account's own machine then changes only on `hedgerctl ... --venue NAME`), and latches:
with no other venue to take the hedges, a link that flaps would otherwise resume the whole
desk by itself, over and over; the operator judges whether the venue is fit again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hedgerd.execution.journal import Journal, TradingStateRecord
from hedgerd.risk.trading_state import (
    GateResult,
    OrderKind,
    ReasonCode,
    TradingState,
    TradingStateMachine,
    TradingStateSnapshot,
    allows,
    tightest,
)

#: The reason codes that judge one account (see the module doc).
ACCOUNT_CODES: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.STALE_DATA,
        ReasonCode.VENUE_DISCONNECTED,
        ReasonCode.REJECT_STREAK,
        ReasonCode.INSUFFICIENT_FUNDS,
        ReasonCode.MARGIN,
        ReasonCode.CLOCK_SKEW,
    }
)

#: The account codes that clear by themselves once the account's link is healthy again.
LINK_CODES: frozenset[ReasonCode] = frozenset(
    {ReasonCode.STALE_DATA, ReasonCode.VENUE_DISCONNECTED}
)


class AccountStateStore:
    """`TradingStateStore` over the journal for one account's machine."""

    def __init__(self, journal: Journal, account: str) -> None:
        self.journal = journal
        self.account = account

    async def last_trading_state(self) -> TradingStateRecord | None:
        return await self.journal.last_trading_state(self.account)

    async def save_trading_state(self, record: TradingStateRecord) -> None:
        await self.journal.save_trading_state(record, self.account)


class AccountStates:
    """The portfolio's machine and one machine per account (by account name)."""

    def __init__(
        self, portfolio: TradingStateMachine, accounts: Mapping[str, TradingStateMachine]
    ) -> None:
        self.portfolio = portfolio
        self.accounts = dict(accounts)

    @classmethod
    async def restore(
        cls,
        journal: Journal,
        portfolio: TradingStateMachine,
        names: Iterable[str],
        *,
        clock_ms: Callable[[], int],
    ) -> AccountStates:
        machines = {
            name: await TradingStateMachine.restore(
                AccountStateStore(journal, name), clock_ms=clock_ms
            )
            for name in names
        }
        return cls(portfolio, machines)

    @property
    def per_account(self) -> bool:
        """Whether account switches trip accounts (several accounts) or the portfolio."""
        return len(self.accounts) > 1

    def machine(self, account: str) -> TradingStateMachine:
        try:
            return self.accounts[account]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise KeyError(f"unknown account {account!r}; accounts: {known}") from None

    def state(self, account: str) -> TradingState:
        """The state orders to `account` are judged in: the tighter of the portfolio's and
        the account's (the portfolio's for an account this object does not know)."""
        own = self.accounts.get(account)
        if own is None:
            return self.portfolio.state
        return tightest(self.portfolio.state, own.state)

    def check(
        self,
        account: str,
        order_kind: OrderKind,
        delta_before_coin: float,
        delta_after_coin: float,
        *,
        is_cancel: bool = False,
        is_operator_flatten: bool = False,
    ) -> GateResult:
        """`allows` in `state(account)` (see `trading_state.allows`)."""
        result = allows(
            self.state(account),
            order_kind,
            delta_before_coin,
            delta_after_coin,
            is_cancel=is_cancel,
            is_operator_flatten=is_operator_flatten,
        )
        if result.allowed or self.portfolio.state is self.state(account):
            return result
        return GateResult(False, f"account {account}: {result.reason}")

    def machine_for(self, code: ReasonCode, account: str | None) -> TradingStateMachine:
        """The machine a trip of `code` about `account` tightens (see the module doc)."""
        if self.per_account and code in ACCOUNT_CODES and account in self.accounts:
            return self.accounts[account]
        return self.portfolio

    async def trip(
        self,
        account: str | None,
        code: ReasonCode,
        detail: str,
        *,
        state: TradingState | None = None,
    ) -> bool:
        return await self.machine_for(code, account).trip(code, detail, state=state)

    def snapshots(self) -> dict[str, TradingStateSnapshot]:
        return {name: m.snapshot for name, m in self.accounts.items()}


__all__ = ["ACCOUNT_CODES", "LINK_CODES", "AccountStateStore", "AccountStates"]
