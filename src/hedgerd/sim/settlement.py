"""Time-driven lifecycle of the simulated venue: listing new expiries and strikes, daily
settlement at 08:00 UTC (delivery price = index averaged over the 30 minutes before expiry;
options cash-settle in coin, dated futures realize their P&L at it; open orders on expired
instruments and good-til-day orders are cancelled), and perpetual funding.

Functions of a `SimExchange` (they read and change its state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from hedgerd.sim.deribit.instruments import SimInstrument
from hedgerd.sim.market import EIGHT_HOURS_MS

if TYPE_CHECKING:
    from hedgerd.sim.exchange import SimExchange

log = structlog.get_logger(__name__)


def refresh_options(ex: SimExchange) -> None:
    """Give each underlying the list of active options it marks."""
    by_ccy: dict[str, list[SimInstrument]] = {c: [] for c in ex.markets}
    for inst in ex.catalog.active():
        if inst.is_option:
            by_ccy[inst.currency].append(inst)
    for c, m in ex.markets.items():
        m.set_options(by_ccy[c])


def list_new(ex: SimExchange, t: int) -> None:
    """List the expiries and strikes due at `t` (UTC ms): new dailies, weeklies, monthlies,
    quarterlies, and strikes around the current spot."""
    ex._last_listing_ms = t
    new = []
    for u in ex.scenario.underlyings:
        new += ex.catalog.list_expiries(u, t, ex.markets[u.currency].index_price)
    if new:
        refresh_options(ex)
        ex._next_expiry_ms = next_expiry(ex)
        log.info("sim_instruments_listed", count=len(new))


def sample_delivery(ex: SimExchange, t: int) -> None:
    """Deribit's delivery price is the index averaged over the 30 minutes before expiry."""
    nxt = ex.next_settlement_ms()
    if nxt - t <= 30 * 60_000:
        for ccy, m in ex.markets.items():
            ex._delivery_samples.setdefault((ccy, nxt), []).append(m.index_price)


def next_expiry(ex: SimExchange) -> int:
    """The earliest expiry (UTC ms) among active dated instruments."""
    exps = [i.expiry_ms for i in ex.catalog.active() if i.is_dated]
    return min(exps) if exps else 1 << 62


def settle_due(ex: SimExchange, t: int) -> None:
    """Settle every dated instrument that expired at or before `t` (UTC ms)."""
    if t < ex._next_expiry_ms:
        return
    due = [i for i in ex.catalog.active() if i.is_dated and i.expiry_ms <= t]
    by_expiry: dict[tuple[str, int], float] = {}
    for inst in due:
        key = (inst.currency, inst.expiry_ms)
        if key not in by_expiry:
            samples = ex._delivery_samples.pop(key, None)
            by_expiry[key] = (
                sum(samples) / len(samples) if samples else ex.index_price(inst.currency)
            )
    for inst in due:
        delivery = by_expiry[(inst.currency, inst.expiry_ms)]
        settle_instrument(ex, inst, delivery, t)
    for (ccy, expiry), delivery in sorted(by_expiry.items()):
        ex.delivery_prices[(ccy, expiry)] = delivery  # other venues settle at the same price
        log.info("sim_expiry_settled", currency=ccy, expiry_ms=expiry, delivery_price=delivery)
    for ccy in ex.markets:
        ex._settlement_prices[ccy] = ex.index_price(ccy)
    for acct in ex.accounts.values():  # good_til_day ends at the daily settlement
        ex._cancel_where(acct, lambda o: o.time_in_force == "good_til_day", "settlement")
    list_new(ex, t)
    refresh_options(ex)
    ex._next_expiry_ms = next_expiry(ex)


def settle_instrument(ex: SimExchange, inst: SimInstrument, delivery: float, t: int) -> None:
    """Settle one instrument at `delivery` (USD): cancel its orders, pay out positions."""
    for acct in ex.accounts.values():
        touched = False
        for o in [o for o in acct.open_orders.values() if o.inst is inst]:
            ex._close_order(acct, o, "cancelled", "settlement", t)
            touched = True
        pos = acct.positions.get(inst.name)
        if pos is not None and pos.size != 0:
            ccy = inst.settlement_currency
            if inst.is_option:
                k = inst.strike or 0.0
                payoff = max(delivery - k, 0.0) if inst.is_call else max(k - delivery, 0.0)
                value = payoff / delivery
                acct.balances[ccy] += pos.size * value
                pos.realized_pnl += pos.size * (value - pos.average_price)
                ex._settlement_prices[inst.name] = value
            else:
                pnl = pos.size * (1.0 / pos.average_price - 1.0 / delivery)
                acct.balances[ccy] += pnl
                pos.realized_pnl += pnl
                ex._settlement_prices[inst.name] = delivery
            pos.size = 0.0
            pos.average_price = 0.0
            touched = True
        if touched:
            ex._publish_portfolios(acct)
    inst.state = "closed"
    ex._expired.append(inst)
    ex.books.pop(inst.name, None)
    ex._resting.discard(inst.name)
    if not inst.is_option:
        ex._settlement_prices[inst.name] = delivery
    log.debug("sim_instrument_settled", instrument=inst.name, delivery_price=delivery)


def accrue_funding(ex: SimExchange, t: int) -> None:
    """Charge (or pay) perpetual funding since the last accrual, at the current 8h rate;
    longs pay a positive rate. Inverse in coin, linear in USDC."""
    dt = t - ex._last_funding_ms
    ex._last_funding_ms = t
    for acct in ex.accounts.values():
        for pos in acct.positions.values():
            inst = pos.inst
            if not inst.perpetual or pos.size == 0:
                continue
            m = ex._market(inst)
            rate = m.funding_8h() * dt / EIGHT_HOURS_MS
            if rate == 0:
                continue
            if inst.inverse:
                amount = -pos.size / m.index_price * rate  # longs pay a positive rate
            else:
                amount = -pos.size * m.index_price * rate
            acct.balances[inst.settlement_currency] += amount
            pos.realized_funding += amount


# ------------------------------------------------------------------ notifications
