"""The operator's flatten: close the hedge positions of one or every underlying with
reduce-only IOC orders at a protected price, in any trading state, on every hedge account
(or the one named)."""

from __future__ import annotations

import math
from typing import Any

import structlog

from hedgerd.accounts.runtime import AccountRuntime
from hedgerd.control.commands import CommandRefusedError
from hedgerd.execution.executor import protected_price, round_down
from hedgerd.model import (
    AmountUnit,
    HedgeDecision,
    HedgeLeg,
    HedgeStyle,
    HedgeTrigger,
    InstrumentKind,
    OrderSide,
    PriceUnit,
)
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.scope import PortfolioScope, PortfolioService
from hedgerd.venues.base import VenueError

log = structlog.get_logger(__name__)


class Flattener(PortfolioService):
    """`OrderControl.flatten` for the control API."""

    def __init__(self, scope: PortfolioScope, hedge_loop: HedgeLoop) -> None:
        super().__init__(scope)
        self.hedge_loop = hedge_loop

    async def flatten(
        self, underlying: str | None, actor: str, venue: str | None = None
    ) -> dict[str, Any]:
        """The operator's flatten: close the hedge positions (the configured hedge
        instruments; never options) of `underlying`, or of every underlying when None, with
        reduce-only IOC orders at a protected price (sliced when large), in any trading state
        (HALTED included), on account `venue` or on every hedge account when None.
        Journalled like any order under decision id `flatten-<UNDERLYING>-<ts_ms>` (one per
        account: the ids carry the account). Every open order of a flattened account is
        cancelled first (`Executor.cancel_orders`, the cancel-all's code: UNKNOWN ones looked
        up by label) and the legs working them stopped: a resting hedge order that filled
        after the flatten would open the position again. Returns what was cancelled
        (`cancelled_orders`, labels) and sent, per underlying (one account) or per account
        and underlying (`accounts`)."""
        if venue is not None and venue not in self.accounts:
            raise CommandRefusedError(
                f"unknown venue account {venue!r}; known: {', '.join(self.accounts)}"
            )
        targets = (
            [self.accounts[venue]]
            if venue is not None
            else [a for a in self.accounts.values() if a.settings.hedges]
        )
        if len(self.accounts) == 1:
            return await self._flatten_account(targets[0], underlying, actor)
        out: dict[str, Any] = {}
        for account in targets:
            try:
                out[account.name] = await self._flatten_account(account, underlying, actor)
            except CommandRefusedError as exc:  # one account down must not stop the others
                out[account.name] = {"refused": str(exc)}
        return {"accounts": out}

    async def _flatten_account(
        self, account: AccountRuntime, underlying: str | None, actor: str
    ) -> dict[str, Any]:
        if underlying is None:
            unds = tuple(u for u in self.underlyings if u in account.underlyings)
        else:
            u = underlying.upper()
            if u not in self.underlyings:
                raise CommandRefusedError(
                    f"unknown underlying {underlying!r}; known: {', '.join(self.underlyings)}"
                )
            unds = (u,) if u in account.underlyings else ()
        if account.orders_blocked():
            raise CommandRefusedError(
                f"{account.name}: the venue's order session is down: nothing can be sent"
            )
        log.warning("daemon.flatten", actor=actor, venue=account.name, underlyings=list(unds))
        assert self.shared.executor is not None
        cancelled = await self.shared.executor.cancel_orders(
            f"operator flatten ({actor})", venue=account.name
        )
        out: dict[str, Any] = {}
        for u in unds:
            out[u] = await self._flatten_one(account, u)
        return {"cancelled_orders": cancelled, "underlyings": out}

    async def _flatten_one(self, account: AccountRuntime, underlying: str) -> dict[str, Any]:
        assert (
            account.venue is not None
            and self.shared.executor is not None
            and self.shared.board is not None
        )
        venue = account.venue
        now = self.clocks.clock_ms()
        hedge_names = set(self.config.hedge_instruments(account.name, underlying))
        try:
            positions = await venue.fetch_positions(underlying)
        except VenueError as exc:
            raise CommandRefusedError(f"{underlying}: positions unavailable: {exc}") from exc
        index = self.hedge_loop.index_price(underlying)
        slippage_bps = self.shared.executor.settings.max_slippage_bps
        legs: list[HedgeLeg] = []
        skipped: list[dict[str, Any]] = []
        for ev in positions:
            pos = ev.position
            inst = venue.instruments().get(pos.instrument)
            if inst is None or inst.kind is InstrumentKind.OPTION:
                continue  # options are the book, never flattened
            if pos.instrument not in hedge_names:
                skipped.append({"instrument": pos.instrument, "why": "not a hedge instrument"})
                continue
            amount = round_down(abs(pos.amount), inst.amount_step)
            if amount < inst.min_amount or amount <= 0:
                skipped.append({"instrument": pos.instrument, "why": "below the minimum size"})
                continue
            try:
                quote = await venue.fetch_quote(pos.instrument)
            except VenueError as exc:
                skipped.append({"instrument": pos.instrument, "why": f"no quote: {exc}"[:200]})
                continue
            side = OrderSide.SELL if pos.amount > 0 else OrderSide.BUY
            mid = quote.mid_price
            per_amount = 1.0 / mid if inst.amount_unit is AmountUnit.USD else 1.0
            try:
                limit = protected_price(side, mid, slippage_bps, inst.tick_size)
            except ValueError as exc:
                skipped.append({"instrument": pos.instrument, "why": str(exc)[:200]})
                continue
            price_usd = limit * index if inst.price_unit is PriceUnit.COIN else limit
            notional = amount if inst.amount_unit is AmountUnit.USD else amount * price_usd
            xs = self.shared.executor.settings
            slice_cap_usd = xs.max_slice_delta_coin * index
            if xs.max_slice_notional_usd is not None:  # the executor slices by notional too
                slice_cap_usd = min(slice_cap_usd, xs.max_slice_notional_usd)
            check = self.shared.board.check_order(
                now_ms=self.clocks.board_clock_ms(),
                notional_usd=min(notional, slice_cap_usd) if slice_cap_usd > 0 else notional,
                added_notional_usd=notional,  # every slice, in the budgets (never refused)
                price_usd=price_usd,
                reference_price_usd=index,
                delta_before_coin=0.0,
                delta_after_coin=0.0,
                is_operator_flatten=True,
            )
            if not check.allowed:
                skipped.append({"instrument": pos.instrument, "why": check.reason})
                continue
            legs.append(
                HedgeLeg(
                    venue=account.name,
                    instrument=pos.instrument,
                    side=side,
                    amount=amount,
                    amount_unit=inst.amount_unit,
                    delta_coin=side.sign * amount * per_amount,
                    style=HedgeStyle.TAKER,
                    limit_price=limit,
                    price_unit=inst.price_unit,
                    expected_cost_usd=0.0,
                )
            )
        result: dict[str, Any] = {"decision_id": None, "legs": [], "skipped": skipped}
        if not legs:
            return result
        book_delta = self.hedge_loop.book_delta_coin(underlying)
        net = book_delta if math.isfinite(book_delta) else 0.0
        traded = sum(leg.delta_coin for leg in legs)
        decision = HedgeDecision(
            decision_id=f"flatten-{underlying}-{now}"
            + ("" if len(self.accounts) == 1 else f"-{account.name}"),
            underlying=underlying,
            policy="operator-flatten",
            ts_ms=now,
            trigger=HedgeTrigger.NONE,
            net_delta_coin=net,
            book_delta_coin=net,
            in_flight_delta_coin=0.0,
            target_delta_coin=net + traded,
            band_lower_coin=net + traded,
            band_upper_coin=net + traded,
            wanted_coin=traded,
            delta_after_coin=net + traded,
            legs=tuple(legs),
            expected_cost_usd=0.0,
            lambda_frac=0.0,
            gamma_coin_per_usd=0.0,
            spot_usd=index if math.isfinite(index) else 0.0,
        )
        res = await self.shared.executor.execute(decision, operator_flatten=True)
        self.hedge_loop.after_execute(decision, res)
        result["decision_id"] = decision.decision_id
        result["legs"] = [
            {
                "instrument": leg.instrument,
                "side": str(leg.side),
                "amount": leg.amount,
                "amount_unit": str(leg.amount_unit),
                "limit_price": leg.limit_price,
                "outcome": str(r.outcome),
                "filled_amount": r.filled_amount,
                "labels": list(r.labels),
                "detail": r.detail,
            }
            for r in res.legs
            for leg in (decision.legs[r.leg],)
        ]
        log.warning("daemon.flattened", decision_id=decision.decision_id, legs=result["legs"])
        return result
