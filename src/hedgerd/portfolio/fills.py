"""The portfolio's fill ledger: every fill of the hedger's own orders, from any account,
counted once per trade id, with its cost (fee + distance from the mid) per underlying."""

from __future__ import annotations

import math
from collections import deque

import structlog

from hedgerd.execution.executor import OrderRejection
from hedgerd.hedging.costs import fill_cost
from hedgerd.model import Fill
from hedgerd.portfolio.scope import PortfolioScope, PortfolioService
from hedgerd.portfolio.stats import HedgeObserver

log = structlog.get_logger(__name__)


class FillLedger(PortfolioService):
    """Hedge cost, fees and notional per underlying (`DaemonStats`), hedge metrics and the
    observer's fills."""

    def __init__(self, scope: PortfolioScope, observer: HedgeObserver | None) -> None:
        super().__init__(scope)
        self.observer = observer
        self._recent_fills: deque[str] = deque(maxlen=10_000)
        self._seen_fills: set[str] = set()

    def note_fill(self, fill: Fill) -> None:
        """A fill of one of the hedger's orders: hedge cost (fee + distance from the mid),
        counted once per trade id."""
        if (
            self.shared.executor is None
            or fill.label is None
            or self.shared.executor.record(fill.label) is None
        ):
            return
        if fill.trade_id in self._seen_fills:
            return
        self._seen_fills.add(fill.trade_id)
        self._recent_fills.append(fill.trade_id)
        if len(self._seen_fills) > 20_000:
            self._seen_fills = set(self._recent_fills)
        account = self.account_of(fill.venue)
        assert account.venue is not None
        inst = account.venue.instruments().get(fill.instrument)
        if inst is None:
            return
        st = self.stats.per_underlying.get(inst.underlying)
        if st is None:
            return
        index = account.book.index_price(inst.underlying) if account.book is not None else math.nan
        q = account.market.quotes.get(fill.instrument)
        paid = fill_cost(
            fill,
            underlying=inst.underlying,
            amount_unit=inst.amount_unit,
            price_unit=inst.price_unit,
            index_usd=index,
            reference_price=q.mid_price if q is not None else fill.price,
        )
        cost = paid.cost_usd
        st.hedge_cost_usd += cost
        st.fees_usd += paid.fee_usd
        st.hedge_notional_usd += paid.notional_usd
        share = st.account(account.name)
        share.hedge_cost_usd += cost
        share.hedge_notional_usd += paid.notional_usd
        st.fills.append(fill)
        if self.shared.metrics is not None and math.isfinite(cost):
            self.shared.metrics.record_hedge(
                inst.underlying, account.name, cost_usd=cost, notional_usd=paid.notional_usd
            )
        if self.observer is not None:
            self.observer.on_hedge_fill(inst.underlying, fill, cost)

    def on_reject(self, rejection: OrderRejection) -> None:
        self.stats.error(f"order {rejection.label} rejected: {rejection.code} {rejection.reason}")
